"""The fleet runner's branches against fake targets and a fake training service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import amlretrain.training
from amlretrain.blobs import BlobRef, strip_sas
from amlretrain.errors import ConfigurationError, ThrottledError
from amlretrain.fleet import FleetGroup, retrain_fleet
from amlretrain.interrupt import StopSignal
from amlretrain.ledger import Ledger
from tests.unit.test_swap import OLD
from tests.unit.test_workflow import JOB, NEW, Batch, Job, Store, Target, _records, _training


def _group(batch: Batch, *targets: Target, name: str = "data.csv") -> FleetGroup:
    return FleetGroup(training=_training(batch), targets=targets, name=name)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.jsonl")


def test_a_failed_group_fails_its_targets_only(ledger: Ledger) -> None:
    good, bad = Batch(), Batch(fail=True)
    a, b, c = Target("a"), Target("b"), Target("c")
    result = retrain_fleet(
        [_group(good, a, c, name="good.csv"), _group(bad, b, name="bad.csv")],
        ledger=ledger,
        concurrency=1,
        stop=StopSignal(),
        order=[a, b, c],
    )
    assert [(t.target.split("/")[-1], t.status, t.data) for t in result.targets] == [
        ("a", "succeeded", "good.csv"),
        ("b", "failed", "bad.csv"),
        ("c", "succeeded", "good.csv"),
    ]
    assert "training failed (job job-1 on bad.csv): the job failed" in (
        result.targets[1].error or ""
    )
    assert b.sent == [] and a.sent and c.sent
    assert result.run_id is not None and result.counts() == {"succeeded": 2, "failed": 1}


def test_the_budget_halts_within_the_wave_that_crosses_it(ledger: Ledger) -> None:
    bad, good = Batch(fail=True), Batch()
    first, later = Target("first"), Target("later")
    result = retrain_fleet(
        [_group(bad, first, name="bad.csv"), _group(good, later, name="good.csv")],
        ledger=ledger,
        waves="1,100%",
        max_failures=0,
        stop=StopSignal(),
    )
    assert [t.status for t in result.targets] == ["failed", "halted"]
    assert result.halted_wave == 1 and later.sent == []


def test_gate_rejections_do_not_count_against_the_budget(ledger: Ledger) -> None:
    from amlretrain.gate import Gate

    weak = Batch(metrics={"AUC": 0.5})
    one, two = Target("one"), Target("two")
    result = retrain_fleet(
        [_group(weak, one, two)],
        ledger=ledger,
        gate=Gate(thresholds={"AUC": 0.8}),
        waves="1,100%",
        max_failures=0,
        stop=StopSignal(),
    )
    assert [t.status for t in result.targets] == ["rejected", "rejected"]
    assert result.halted_wave is None


def test_a_throttled_submit_is_sent_again(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(amlretrain.training, "THROTTLE_BACKOFF", 0.01)

    class Throttled(Batch):
        refused = 0

        def create_job(self, inputs: dict[str, Any], **kwargs: Any) -> Job:
            if self.refused < 2:
                self.refused += 1
                raise ThrottledError("too many jobs", status=429, retry_after=None)
            return super().create_job(inputs, **kwargs)

    batch, target = Throttled(), Target()
    result = retrain_fleet([_group(batch, target)], ledger=ledger, stop=StopSignal())
    assert result.targets[0].status == "succeeded" and batch.refused == 2
    refusals = [("job", "Submitting"), ("job", "NotSubmitted")] * 2
    assert (
        _records(ledger)[1:8]
        == [*refusals, *JOB[:1], ("job", "Submitted"), ("job", "Finished")][:7]
    )


def test_a_target_in_two_groups_or_a_bad_order_is_refused(ledger: Ledger) -> None:
    a = Target("a")
    with pytest.raises(ConfigurationError, match="listed twice"):
        retrain_fleet([_group(Batch(), a), _group(Batch(), a)], ledger=ledger)
    with pytest.raises(ConfigurationError, match="order must list every target"):
        retrain_fleet([_group(Batch(), a)], ledger=ledger, order=[a, Target("z")])
    with pytest.raises(ConfigurationError, match="the last wave is 50%"):
        retrain_fleet([_group(Batch(), a)], ledger=ledger, waves="1,50%")
    assert _records(ledger) == []  # refused before anything was written


def test_rollback_on_halt_puts_the_halted_wave_back(ledger: Ledger) -> None:
    good, bad = Batch(), Batch(fail=True)
    first, second, third = Target("first"), Target("second"), Target("third")
    result = retrain_fleet(
        [_group(good, first, name="good.csv"), _group(bad, second, name="bad.csv"),
         _group(good, third, name="good.csv#2")],
        ledger=ledger,
        waves="2,100%",
        max_failures=0,
        rollback_on_halt=True,
        concurrency=1,
        stop=StopSignal(),
    )  # fmt: skip
    assert [t.status for t in result.targets] == ["restored", "failed", "halted"]
    assert first.serves is not None and strip_sas(first.serves) == OLD
    assert "rolled back to" in (result.targets[0].error or "")
    assert third.sent == []
    actions = [(e.action, e.outcome) for e in ledger.entries(first.key)]
    assert actions == [("deploy", "succeeded"), ("rollback", "succeeded")]


def test_deploy_results_carry_the_run_id(ledger: Ledger) -> None:
    from amlretrain.workflow import deploy

    model = BlobRef.from_url(NEW)
    result = deploy(model, [Target()], ledger=ledger, store=Store(), stop=StopSignal())  # type: ignore[arg-type]
    assert result.run_id is not None and result.run_id.startswith("run-")


def test_a_submit_refused_as_unavailable_is_not_waited_out(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(amlretrain.training, "THROTTLE_BACKOFF", 0.01)

    class Down(Batch):
        refused = 0

        def create_job(self, inputs: dict[str, Any], **kwargs: Any) -> Job:
            self.refused += 1
            raise ThrottledError("service unavailable", status=503, retry_after=None)

    batch = Down()
    result = retrain_fleet([_group(batch, Target())], ledger=ledger, stop=StopSignal())
    assert result.targets[0].status == "failed" and batch.refused == 1
