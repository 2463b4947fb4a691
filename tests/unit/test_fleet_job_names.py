"""The fleet engine's resume of a group's training job: which job, under which name."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from amlretrain._fleet_run import FleetRun
from amlretrain.errors import ConfigurationError
from amlretrain.history import RunSummary
from amlretrain.records import JobRecord
from amlretrain.training import job_name

RUN = "run-20260101T000000000000Z-abc123"
DATA = "command_job:new.csv"


def engine(*records: tuple[str, str]) -> FleetRun:
    run = object.__new__(FleetRun)  # only the prior run and the run id are read
    jobs = [JobRecord.new(run_id=RUN, job_id=j, status=s, data=DATA) for j, s in records]
    latest = {(j.job_id or f"submit:{j.data}"): j for j in jobs}
    run.prior = RunSummary(
        run_id=RUN,
        command="retrain",
        started="",
        host="",
        targets=(),
        fingerprint=None,
        attempts=1,
        jobs=tuple(latest.values()),
        outcomes=(),
    )
    run.run_id = RUN
    return run


def group(names_jobs: bool) -> Any:
    return SimpleNamespace(label=DATA, training=SimpleNamespace(names_jobs=names_jobs))


def test_a_job_still_recorded_as_running_is_re_attached() -> None:
    first = job_name(RUN, DATA)
    assert engine((first, "Submitted"))._job_to_resume(group(True)) == (first, f"{first}-2", None)


def test_a_cancelled_job_is_submitted_anew_under_a_new_name() -> None:
    first = job_name(RUN, DATA)
    attach, name, error = engine((first, "Cancelled"))._job_to_resume(group(True))
    assert (attach, error) == (None, None) and name == f"{first}-2"


def test_a_lost_submit_is_sent_again_under_its_name_when_the_training_names_its_jobs() -> None:
    lost = engine(("", "Submitting"))
    assert lost._job_to_resume(group(True)) == (None, job_name(RUN, DATA), None)
    _, _, error = lost._job_to_resume(group(False))  # the service chose the id: not again
    assert isinstance(error, ConfigurationError) and "got no answer" in str(error)


def test_a_refused_submit_is_sent_again_under_the_same_name() -> None:
    refused = engine(("", "Submitting"), ("", "NotSubmitted"))
    assert refused._job_to_resume(group(False)) == (None, job_name(RUN, DATA), None)
