"""Which error a run raises for the targets that did not succeed (its exit code)."""

from __future__ import annotations

import pytest

from amlretrain.cli._common import exit_code_for
from amlretrain.errors import (
    ConfigurationError,
    ConflictError,
    GateRejected,
    OperationStillRunning,
    ServiceError,
    TargetsFailed,
    TrainingJobFailed,
    VerificationFailed,
)
from amlretrain.result import RetrainResult, TargetOutcome


def _t(name: str, status: str, error: BaseException | None = None) -> TargetOutcome:
    return TargetOutcome(
        target=name, key=f"k:{name}", status=status, error=str(error or ""), exception=error
    )


@pytest.mark.parametrize(
    ("outcomes", "kind", "code"),
    [
        ([_t("a", "succeeded")], None, 0),
        ([_t("a", "rejected"), _t("b", "rejected")], GateRejected, 11),
        ([_t("a", "failed", ConflictError("held")), _t("b", "failed", ConflictError("held"))],
         ConflictError, 8),
        # some succeeded, one failed: 14 whatever its family (a fleet with one bad file)
        ([_t("a", "failed", ConflictError("held")), _t("b", "succeeded")], TargetsFailed, 14),
        ([_t("a", "failed", TrainingJobFailed("bad", job_id="j", status="Failed")),
          _t("b", "succeeded"), _t("c", "skipped")], TargetsFailed, 14),
        ([_t("a", "rejected"), _t("b", "succeeded")], TargetsFailed, 14),
        ([_t("a", "unknown", VerificationFailed("v")), _t("b", "unknown", ServiceError("x"))],
         VerificationFailed, 12),
        ([_t("a", "unknown", OperationStillRunning("slow"))], OperationStillRunning, 13),
        ([_t("a", "failed", ConfigurationError("gone")), _t("b", "restored", ServiceError("500", status=500))],
         TargetsFailed, 14),
        ([_t("a", "unknown", VerificationFailed("v")), _t("b", "failed", ConflictError("c"))],
         TargetsFailed, 14),
        ([_t("a", "rejected"), _t("b", "failed", ConflictError("c"))], TargetsFailed, 14),
    ],
)  # fmt: skip
def test_the_error_of_a_run_names_its_family(
    outcomes: list[TargetOutcome], kind: type[BaseException] | None, code: int
) -> None:
    result = RetrainResult(steps=(), targets=tuple(outcomes))
    if kind is None:
        assert result.raise_for_status() is result
        return
    with pytest.raises(kind) as caught:
        result.raise_for_status()
    assert type(caught.value) is kind
    assert exit_code_for(caught.value) == code
    for outcome in outcomes:
        if outcome.status != "succeeded":
            assert outcome.target in str(caught.value)


def test_the_key_and_the_exception_are_not_mangled_in_json() -> None:
    outcome = _t("a", "failed", ConflictError("held"))
    data = outcome.to_dict()
    assert "exception" not in data
    assert data["key"] == "k:a"  # a target key is not a secret: not redacted
    assert data["key"] == "k:a"  # a ledger key is not a secret, though an API "key" is
    result = RetrainResult(steps=(), targets=(outcome,), job_id="j", dry_run=True)
    shown = result.to_dict()
    assert shown["targets"][0]["key"] == "k:a"
    assert (shown["job_id"], shown["dry_run"]) == ("j", True)


def test_a_printed_target_key_is_kept_and_an_api_key_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from amlretrain.cli._common import print_json

    arm = "arm:/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearning/webServices/w"
    print_json(
        {
            "targets": [{"key": arm}, {"key": "classic:ws/svc/ep"}],
            "storageAccount": {"key": "c2VjcmV0a2V5"},
            "other": {"key": "classic:ws/svc/ep?sig=abc"},
        }
    )
    shown = json.loads(capsys.readouterr().out)
    assert [t["key"] for t in shown["targets"]] == [arm, "classic:ws/svc/ep"]
    assert shown["storageAccount"]["key"] == "REDACTED"
    assert shown["other"]["key"] == "REDACTED"  # a SAS in it: not a target key
