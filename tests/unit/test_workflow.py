"""The workflow's branches against fake targets and a fake training service.

retrain/deploy/rollback: gate rejects, skips, plan failures, a failed swap put back,
interrupts (before training, during training, during a swap), and what the ledger says
for each. Nothing here opens a socket: the training job, the storage and the targets are
fakes (see tests/unit/test_swap.py's FakeTarget).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from amlretrain.blobs import BlobRef, strip_sas
from amlretrain.errors import (
    ConfigurationError,
    Interrupted,
    ServiceError,
    TrainingJobFailed,
)
from amlretrain.gate import Gate
from amlretrain.interrupt import StopSignal
from amlretrain.ledger import Intent, Ledger
from amlretrain.targets import TargetState
from amlretrain.training import Training
from amlretrain.workflow import deploy, retrain, rollback
from tests.unit.test_swap import OLD, FakeTarget

NEW = "https://acct.blob.core.windows.net/amlretrain-models/run/model.ilearner"
SAS = "?sv=1&se=2099-01-01T00%3A00%3A00Z&sp=r&sig=SECRET"


# -- fakes -----------------------------------------------------------------------------


class Target(FakeTarget):
    """A fake target with a name of its own (keys are unique in a run)."""

    def __init__(self, name: str = "ep", serves: str | None = OLD, **failures: Any) -> None:
        super().__init__(serves, **failures)
        self.key = f"classic:ws/svc/{name}"
        self.label = f"svc/{name}"
        #: Called at the start of each deploy (e.g. to request a stop meanwhile).
        self.on_deploy: Callable[[], None] | None = None

    def deploy(self, model: BlobRef, *args: Any, **kwargs: Any) -> TargetState:
        if self.on_deploy is not None:
            self.on_deploy()
        return super().deploy(model, *args, **kwargs)


class Status:
    def __init__(self, label: str) -> None:
        self.label = label

    @property
    def is_terminal(self) -> bool:
        return self.label in ("Finished", "Failed", "Cancelled")


class Evaluation:
    def __init__(self, metrics: dict[str, float]) -> None:
        self.metrics = metrics

    def as_dict(self) -> dict[str, float]:
        return dict(self.metrics)


class Job:
    """A training job that finishes at once (or fails, or sees the stop request)."""

    job_id = "job-1"

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.status = Status("NotStarted")
        self.trained_model = BlobRef.from_url(NEW)

    def start(self) -> None:
        self.status = Status("Running")

    def wait(self, *, timeout: float, progress: bool, stop: StopSignal | None) -> None:
        if self.batch.during_wait is not None:
            self.batch.during_wait()
        if stop is not None and stop.requested:
            self.cancel()
            raise Interrupted(stop.signum or 2)
        if self.batch.fail:
            self.status = Status("Failed")
            raise TrainingJobFailed("the job failed", job_id=self.job_id, status="Failed")
        self.status = Status("Finished")

    def cancel(self) -> None:
        self.batch.cancelled.append(self.job_id)
        self.status = Status("Cancelled")

    def evaluation(self, output: str | None) -> Evaluation:
        return Evaluation(self.batch.metrics)


class Batch:
    """The training service: records what it was asked to run."""

    api_location = "https://ussouthcentral.services.azureml.net/workspaces/ws/services/train"

    def __init__(self, metrics: dict[str, float] | None = None, fail: bool = False) -> None:
        self.metrics = {"AUC": 0.9} if metrics is None else metrics
        self.fail = fail
        self.submitted: list[dict[str, Any]] = []
        self.cancelled: list[str] = []
        self.during_wait: Callable[[], None] | None = None

    def create_job(self, inputs: dict[str, Any], **kwargs: Any) -> Job:
        self.submitted.append(inputs)
        return Job(self)


class Store:
    """A storage account that owns every blob; a minted SAS is a fixed one."""

    def owns(self, blob: BlobRef) -> bool:
        return True

    def sas(self, blob: BlobRef, *, expires_in: Any) -> BlobRef:
        return BlobRef.from_url(blob.url + SAS)

    def check_readable(self, blob: BlobRef) -> None:
        return None

    def ref(self, container: str, name: str) -> BlobRef:
        return BlobRef.from_url(f"https://acct.blob.core.windows.net/{container}/{name}")


def _training(batch: Batch) -> Training:
    data = BlobRef.from_url("https://acct.blob.core.windows.net/data/new.csv")
    return Training(batch=batch, data=data, store=Store())  # type: ignore[arg-type]


def _records(ledger: Ledger) -> list[tuple[str, str | None]]:
    """(kind, outcome or action or job status) of every ledger record, in order."""
    out = []
    for record in ledger.read().records:
        data = record.to_dict()
        out.append((data["kind"], data.get("outcome") or data.get("action") or data.get("status")))
    return out


def _retrain(batch: Batch, targets: list[Target], ledger: Ledger | None, **kw: Any) -> Any:
    kw.setdefault("stop", StopSignal())
    return retrain(_training(batch), targets, ledger=ledger, concurrency=1, **kw)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.jsonl")


JOB = [("job", "Submitting"), ("job", "Submitted"), ("job", "Finished")]


# -- the whole loop --------------------------------------------------------------------


def test_a_retrain_trains_swaps_verifies_and_records_every_step(ledger: Ledger) -> None:
    target = Target()
    result = _retrain(Batch(), [target], ledger)
    (outcome,) = result.targets
    assert (outcome.status, outcome.previous_model, outcome.serving_model) == (
        "succeeded",
        OLD,
        NEW,
    )
    assert target.sent == [NEW] and target.serves == NEW + SAS
    assert [s.name for s in result.steps] == [
        "check targets",
        "upload",
        "train",
        "evaluate",
        "deploy",
    ]
    assert _records(ledger) == [
        ("run-start", None),
        *JOB,
        ("intent", "deploy"),
        ("outcome", "succeeded"),
    ]
    entry = ledger.entries()[-1]
    assert entry.metrics == {"AUC": 0.9} and entry.job_id == "job-1"
    assert "SECRET" not in ledger.backend.read_bytes().decode()


def test_a_wrong_target_fails_the_run_before_anything_is_trained(ledger: Ledger) -> None:
    batch = Batch()
    bad = Target("default", check=ConfigurationError("the default endpoint cannot be patched"))
    with pytest.raises(ConfigurationError, match="default endpoint"):
        _retrain(batch, [Target(), bad], ledger)
    assert batch.submitted == [] and _records(ledger) == []


def test_a_failed_training_job_changes_no_target(ledger: Ledger) -> None:
    target = Target()
    with pytest.raises(TrainingJobFailed):
        _retrain(Batch(fail=True), [target], ledger)
    assert target.sent == []
    assert _records(ledger) == [
        ("run-start", None),
        ("job", "Submitting"),
        ("job", "Submitted"),
        ("job", "Failed"),
    ]


# -- the gate --------------------------------------------------------------------------


def test_the_gate_rejects_a_weak_model_and_nothing_is_sent(ledger: Ledger) -> None:
    target = Target()
    result = _retrain(Batch({"AUC": 0.7}), [target], ledger, gate=Gate(thresholds={"AUC": 0.8}))
    (outcome,) = result.targets
    assert outcome.status == "rejected" and outcome.gate_passed is False
    assert "AUC" in (outcome.error or "")
    assert target.sent == [] and target.serves == OLD
    assert result.steps[-1].status == "rejected"
    assert _records(ledger) == [("run-start", None), *JOB, ("outcome", "rejected")]
    assert ledger.entries()[-1].action == "gate"


def test_the_gate_compares_each_target_with_the_model_it_serves(ledger: Ledger) -> None:
    # The incumbent of "better" scored 0.95: the new model (0.9) does not beat it there;
    # "worse" serves a model without metrics and gets the new one.
    better, worse = Target("better", serves=OLD), Target("worse", serves=None)
    ledger.append(_outcome(better.key, OLD, {"AUC": 0.95}))
    gate = Gate(beat_incumbent=("AUC",))
    result = _retrain(Batch({"AUC": 0.9}), [better, worse], ledger, gate=gate)
    assert [o.status for o in result.targets] == ["rejected", "succeeded"]
    assert better.sent == [] and worse.sent == [NEW]


def _outcome(key: str, model: str, metrics: dict[str, float]) -> Any:
    from amlretrain.ledger import LedgerEntry

    return LedgerEntry.new(
        target=key,
        action="deploy",
        outcome="succeeded",
        previous_model=None,
        new_model=model,
        serving_model=model,
        metrics=metrics,
    )


# -- skips and dry runs ----------------------------------------------------------------


def test_a_target_that_already_serves_the_model_is_skipped_and_nothing_is_recorded(
    ledger: Ledger,
) -> None:
    model = BlobRef.from_url(NEW + SAS)
    target = Target(serves=NEW + "?sv=2&sig=OTHER")  # the same blob, another SAS
    result = deploy(model, [target], ledger=ledger, store=Store(), stop=StopSignal())  # type: ignore[arg-type]
    (outcome,) = result.targets
    assert outcome.status == "skipped" and target.sent == []
    assert result.steps[-1].status == "ok"
    assert _records(ledger) == [("run-start", None)]  # no intent, no outcome


def test_a_dry_run_trains_nothing_writes_nothing_and_plans_every_target(ledger: Ledger) -> None:
    batch, target = Batch(), Target()
    result = _retrain(batch, [target], ledger, dry_run=True, gate=Gate(thresholds={"AUC": 0.8}))
    (outcome,) = result.targets
    assert outcome.status == "dry-run" and outcome.plan["method"] == "PATCH"
    assert outcome.gate_checks == ("skip the gate: a dry run trains nothing",)
    assert batch.submitted == [] and target.sent == [] and target.reads == 0
    assert _records(ledger) == []


# -- failures of one target ------------------------------------------------------------


def test_a_plan_failure_fails_that_target_and_the_others_still_deploy(ledger: Ledger) -> None:
    broken = Target("broken", plan=ConfigurationError("no trained model asset"))
    fine = Target("fine")
    result = _retrain(Batch(), [broken, fine], ledger)
    assert [o.status for o in result.targets] == ["failed", "succeeded"]
    assert "no trained model asset" in (result.targets[0].error or "")
    assert broken.sent == [] and fine.sent == [NEW]
    assert result.steps[-1].status == "failed"
    outcomes = [(e.target, e.outcome) for e in ledger.entries()]
    assert outcomes == [(broken.key, "failed"), (fine.key, "succeeded")]
    assert [i.target for i in ledger.intents()] == [fine.key]  # nothing was sent to broken


def test_a_failed_swap_puts_the_previous_model_back(ledger: Ledger) -> None:
    target = Target(lands_anyway=True, deploy=[ServiceError("internal error", status=500)])
    result = _retrain(Batch(), [target], ledger)
    (outcome,) = result.targets
    assert outcome.status == "restored" and outcome.serving_model == OLD
    assert "put back and verified" in (outcome.error or "")
    # The old model is put back with a fresh read SAS (the store holds it).
    assert target.sent == [NEW, OLD] and strip_sas(target.serves) == OLD
    assert _records(ledger)[-3:] == [
        ("intent", "deploy"),
        ("intent", "restore"),
        ("outcome", "restored"),
    ]
    assert ledger.pending() == []
    # The restore's pin is the read after the failure (it showed the new model).
    assert target.pins[-1] == (NEW, True)


def test_a_failed_swap_that_did_not_land_sends_nothing_more(ledger: Ledger) -> None:
    target = Target(deploy=[ServiceError("bad request", status=400)])
    result = _retrain(Batch(), [target], ledger)
    (outcome,) = result.targets
    assert outcome.status == "failed" and "still serves its previous model" in (outcome.error or "")
    assert target.sent == [NEW] and target.serves == OLD
    assert _records(ledger)[-2:] == [("intent", "deploy"), ("outcome", "failed")]


def test_a_restore_that_fails_too_says_what_the_target_serves(ledger: Ledger) -> None:
    target = Target(
        lands_anyway=True,
        deploy=[ServiceError("internal error", status=500), ServiceError("again", status=500)],
    )
    result = _retrain(Batch(), [target], ledger)
    (outcome,) = result.targets
    assert outcome.status == "failed" and outcome.serving_model == NEW
    assert "restoring the previous model failed too" in (outcome.error or "")
    assert _records(ledger)[-3:] == [
        ("intent", "deploy"),
        ("intent", "restore"),
        ("outcome", "failed"),
    ]


# -- interrupts ------------------------------------------------------------------------


def test_a_stop_before_training_trains_nothing_and_changes_nothing(ledger: Ledger) -> None:
    stop, batch, target = StopSignal(), Batch(), Target()
    original = target.check

    def check_then_stop() -> TargetState:
        state = original()
        stop.request()  # SIGINT while the targets are checked
        return state

    target.check = check_then_stop  # type: ignore[method-assign]
    with pytest.raises(Interrupted):
        _retrain(batch, [target], ledger, stop=stop)
    assert batch.submitted == [] and target.sent == []
    assert _records(ledger) == [("run-start", None)]


def test_a_stop_during_training_cancels_the_job_and_records_it(ledger: Ledger) -> None:
    stop, batch, target = StopSignal(), Batch(), Target()
    batch.during_wait = stop.request
    with pytest.raises(Interrupted):
        _retrain(batch, [target], ledger, stop=stop)
    assert batch.cancelled == ["job-1"] and target.sent == []
    assert _records(ledger) == [
        ("run-start", None),
        ("job", "Submitting"),
        ("job", "Submitted"),
        ("job", "Cancelled"),
    ]


def test_a_stop_during_a_swap_finishes_it_and_starts_no_other(ledger: Ledger) -> None:
    stop = StopSignal()
    first, second = Target("first"), Target("second")
    first.on_deploy = stop.request
    with pytest.raises(Interrupted) as info:
        _retrain(Batch(), [first, second], ledger, stop=stop)
    result = info.value.result
    assert [o.status for o in result.targets] == ["succeeded", "failed"]
    assert "not started" in (result.targets[1].error or "")
    assert first.sent == [NEW] and second.sent == []
    assert [(e.target, e.outcome) for e in ledger.entries()] == [(first.key, "succeeded")]
    assert ledger.pending() == []


# -- rollback --------------------------------------------------------------------------


def test_a_rollback_puts_back_the_model_served_before_the_last_deployment(
    ledger: Ledger,
) -> None:
    target = Target()
    _retrain(Batch(), [target], ledger)
    outcome = rollback(target, ledger=ledger, store=Store(), stop=StopSignal())  # type: ignore[arg-type]
    assert (outcome.status, outcome.previous_model, outcome.serving_model) == (
        "succeeded",
        NEW,
        OLD,
    )
    assert target.sent == [NEW, OLD] and target.serves == OLD + SAS
    last = ledger.entries()[-1]
    assert (last.action, last.rollback_of) == ("rollback", ledger.entries()[0].id)


def test_a_rollback_reconciles_an_open_intent_first(ledger: Ledger) -> None:
    # A crash left an intent open; the target serves its new model: reconcile settles it
    # as succeeded, so the rollback puts back what that change replaced.
    target = Target(serves=NEW)
    ledger.append(
        Intent.new(
            run_id="crashed",
            target=target.key,
            action="deploy",
            previous_model=OLD,
            new_model=NEW,
            metrics={"AUC": 0.9},
        )
    )
    outcome = rollback(target, ledger=ledger, store=Store(), stop=StopSignal())  # type: ignore[arg-type]
    assert outcome.status == "succeeded" and target.serves == OLD + SAS
    reconciled = ledger.entries()[0]
    assert reconciled.reconciled and reconciled.outcome == "succeeded"
    assert ledger.pending() == []


def test_deploy_talks_to_at_most_concurrency_services_while_more_workers_keep_the_books(
    ledger: Ledger,
) -> None:
    import threading
    import time

    from amlretrain import ledger as ledger_module

    talking, most, booking = [0], [0], [0]
    bookkeepers: set[int] = set()
    guard = threading.Lock()

    def deploying() -> None:
        with guard:
            talking[0] += 1
            most[0] = max(most[0], talking[0])
        time.sleep(0.02)
        with guard:
            talking[0] -= 1

    targets = [Target(f"ep{i}") for i in range(24)]
    for target in targets:
        target.on_deploy = deploying
    real_append = ledger_module.Ledger.append

    def counting_append(self: Ledger, record: Any) -> Any:
        with guard:  # a target keeping its books while others talk to their services
            if talking[0]:
                booking[0] += 1
            if threading.current_thread() is not threading.main_thread():
                bookkeepers.add(threading.get_ident())
        return real_append(self, record)

    model = BlobRef.from_url(NEW + SAS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ledger_module.Ledger, "append", counting_append)
        result = deploy(model, targets, ledger=ledger, store=Store(), concurrency=4)  # type: ignore[arg-type]
    assert {o.status for o in result.targets} == {"succeeded"}
    assert most[0] == 4  # every slot was used, never more
    assert booking[0] > 0
    assert len(bookkeepers) > 4  # more workers than slots: the books never hold a slot
