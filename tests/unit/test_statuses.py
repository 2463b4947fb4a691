"""Status enums are ``str`` subclasses whose value is the string 0.1.0 used."""

from __future__ import annotations

import json

import pytest

from amlretrain._enums import StrStatus
from amlretrain.reconciliation import ReconcileStatus
from amlretrain.result import STATUSES, StepResult, StepStatus, TargetOutcome, TargetStatus
from amlretrain.studio.jobstatus import JobStatus

TODAY = {
    JobStatus: ["NotStarted", "Running", "Failed", "Cancelled", "Finished", "Unknown"],
    TargetStatus: [
        "succeeded",
        "rejected",
        "failed",
        "restored",
        "unknown",
        "skipped",
        "dry-run",
        "halted",
    ],
    StepStatus: ["ok", "skipped", "failed", "rejected"],
    ReconcileStatus: ["confirmed", "unknown", "clean"],
}


@pytest.mark.parametrize("enum", list(TODAY), ids=lambda e: e.__name__)
def test_each_status_is_a_str_whose_value_is_todays_string(enum: type[StrStatus]) -> None:
    assert [m.value for m in enum] == TODAY[enum]
    for member in enum:
        assert isinstance(member, str)
        assert member == member.value
        assert str(member) == member.value
        assert f"{member:<12}|" == f"{member.value:<12}|"
        assert json.dumps({"s": member}) == json.dumps({"s": member.value})
        assert enum(member.value) is member


def test_an_outcome_given_a_string_holds_the_enum() -> None:
    outcome = TargetOutcome(target="t", key="k", status="restored")
    assert outcome.status is TargetStatus.RESTORED
    assert outcome.to_dict()["status"] == "restored"
    assert StepResult(name="train", status="ok", seconds=1.0).status is StepStatus.OK


def test_an_outcome_refuses_a_status_that_does_not_exist() -> None:
    with pytest.raises(ValueError, match="'succeded' is not a valid TargetStatus"):
        TargetOutcome(target="t", key="k", status="succeded")


def test_the_status_table_lists_every_target_status() -> None:
    assert tuple(TODAY[TargetStatus]) == STATUSES


def test_a_job_status_reads_numbers_and_names_as_before() -> None:
    assert JobStatus.parse(4) is JobStatus.FINISHED
    assert JobStatus.parse("3") is JobStatus.CANCELLED
    assert JobStatus.parse("canceled") is JobStatus.CANCELLED
    assert JobStatus.parse("not_started") is JobStatus.NOT_STARTED
    assert JobStatus.FINISHED.label == "Finished"
