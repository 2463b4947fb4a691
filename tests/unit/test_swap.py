"""One target's deployment against a fake target: every branch, and what the ledger says."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from amlretrain.blobs import BlobRef
from amlretrain.errors import (
    ConfigurationError,
    Interrupted,
    OperationStillRunning,
    OperationTimeout,
    ServiceError,
    VerificationFailed,
)
from amlretrain.gate import Gate
from amlretrain.interrupt import StopSignal
from amlretrain.ledger import Ledger
from amlretrain.swap import Deployment, deploy_one
from amlretrain.targets import Sample, TargetState

OLD = "https://acct.blob.core.windows.net/models/old.ilearner"
NEW = BlobRef.from_url("https://acct.blob.core.windows.net/models/new.ilearner?sv=1&sig=SECRET")


class FakeTarget:
    """A target whose service is a variable; each call can be made to fail.

    Like a real target it keeps nothing between calls: every read returns a
    :class:`TargetState`, and the swap works from the state it is given. What it was
    asked to do is kept for the assertions (``sent``, ``pins``).
    """

    key = "classic:ws/svc/ep"
    label = "svc/ep"
    verify_timeout = 1.0

    def __init__(self, serves: str | None = OLD, **failures: Any) -> None:
        self.serves = serves
        self.failures = dict(failures)
        self.sent: list[str] = []
        #: (the state's model, pinned) of each deploy call.
        self.pins: list[tuple[str | None, bool]] = []
        self.reads = 0

    def _take(self, name: str) -> Exception | None:
        failure = self.failures.get(name)
        if isinstance(failure, list):
            failure = failure.pop(0) if failure else None
        return failure  # type: ignore[no-any-return]

    def _fail(self, name: str) -> None:
        failure = self._take(name)
        if failure is not None:
            raise failure

    def _state(self, checked: bool = False) -> TargetState:
        return TargetState(target=self.key, model=self.serves, resource="r", checked=checked)

    def check(self) -> TargetState:
        self._fail("check")
        return self._state(checked=True)

    def read(self, known: TargetState | None = None) -> TargetState:
        self._fail("read")
        self.reads += 1
        return self._state(checked=known is not None and known.checked)

    def current_model(self) -> str | None:
        return self.read().model

    def plan(self, model: BlobRef, state: TargetState) -> dict[str, Any]:
        self._fail("plan")
        return {"method": "PATCH", "url": "https://svc/ep", "body": {"uri": model.sas_url}}

    def deploy(
        self,
        model: BlobRef,
        state: TargetState | None = None,
        *,
        stop: StopSignal | None = None,
        pinned: bool = False,
        on_request: Callable[[str], None] | None = None,
    ) -> TargetState:
        self.sent.append(model.url)
        self.pins.append((state.model if state else None, pinned))
        failure = self._take("deploy")
        accepted = failure is None or isinstance(
            failure, (VerificationFailed, OperationStillRunning)
        )
        if on_request is not None and accepted:  # only a request the service took has an id
            on_request(f"req-{len(self.sent)}")
        if self.failures.get("lands_anyway"):
            self.serves = model.url
        if failure is not None:
            raise failure
        self.serves = model.sas_url
        return self._state(checked=True)

    def sample(self, state: TargetState | None = None) -> Sample | None:
        return Sample(columns=["a"], rows=[[1]])

    def score(self, sample: Sample, state: TargetState | None = None) -> Any:
        self._fail("score")
        return type("R", (), {"first": type("T", (), {"records": lambda self: [{"x": 1}]})()})()


def checked(target: FakeTarget, model: str | None = None) -> TargetState:
    """The state the run's check found (``model``: what it served then)."""
    state = target.check()
    return state if model is None else attrs.evolve(state, model=model)


def _run(tmp_path: Path, **kw: Any) -> Deployment:
    args: dict[str, Any] = {
        "metrics": {"AUC": 0.9},
        "gate": None,
        "ledger": Ledger(tmp_path / "l.jsonl"),
        "dry_run": False,
        "sample": None,
        "job_id": "job-1",
        "store": None,
        "run_id": "run-1",
    }
    args.update(kw)
    return Deployment(**args)


def _kinds(tmp_path: Path) -> list[tuple[str, str | None]]:
    lines = (
        (tmp_path / "l.jsonl").read_text().splitlines() if (tmp_path / "l.jsonl").exists() else []
    )
    return [(d["kind"], d.get("outcome") or d.get("action")) for d in map(json.loads, lines)]


def test_a_swap_is_announced_sent_verified_and_recorded(tmp_path: Path) -> None:
    target = FakeTarget()
    outcome = deploy_one(target, NEW, checked(target, OLD), _run(tmp_path))
    assert (outcome.status, outcome.serving_model, outcome.previous_model) == (
        "succeeded",
        NEW.url,
        OLD,
    )
    assert _kinds(tmp_path) == [("intent", "deploy"), ("outcome", "succeeded")]
    assert "SECRET" not in (tmp_path / "l.jsonl").read_text()
    entry = Ledger(tmp_path / "l.jsonl").entries()[-1]
    assert entry.request_ids == ("req-1",) and entry.run_id == "run-1"


def test_the_gate_rejects_and_nothing_is_sent(tmp_path: Path) -> None:
    target = FakeTarget()
    run = _run(tmp_path, gate=Gate(thresholds={"AUC": 0.95}))
    outcome = deploy_one(target, NEW, checked(target, OLD), run)
    assert outcome.status == "rejected" and target.sent == []
    assert _kinds(tmp_path) == [("outcome", "rejected")]


def test_a_target_that_serves_the_model_is_skipped(tmp_path: Path) -> None:
    target = FakeTarget(serves=NEW.url)
    outcome = deploy_one(target, NEW, checked(target, NEW.url), _run(tmp_path))
    assert outcome.status == "skipped" and target.sent == []


def test_the_re_read_under_the_lease_is_the_recorded_previous_model(tmp_path: Path) -> None:
    target = FakeTarget(serves="https://acct.blob.core.windows.net/models/theirs.ilearner")
    outcome = deploy_one(target, NEW, checked(target, OLD), _run(tmp_path))
    theirs = "https://acct.blob.core.windows.net/models/theirs.ilearner"
    assert outcome.status == "succeeded" and outcome.previous_model == theirs
    assert Ledger(tmp_path / "l.jsonl").entries()[-1].previous_model == theirs


def test_a_plan_failure_is_failed_and_sends_nothing(tmp_path: Path) -> None:
    target = FakeTarget(plan=ConfigurationError("no asset"))
    outcome = deploy_one(target, NEW, checked(target, OLD), _run(tmp_path))
    assert outcome.status == "failed" and target.sent == []
    assert isinstance(outcome.exception, ConfigurationError)
    assert _kinds(tmp_path) == [("outcome", "failed")]


def test_an_answered_failure_that_landed_is_restored_with_an_intent_of_its_own(
    tmp_path: Path,
) -> None:
    target = FakeTarget(lands_anyway=True, deploy=[ServiceError("boom", status=500)])
    outcome = deploy_one(target, NEW, checked(target, OLD), _run(tmp_path))
    assert outcome.status == "restored" and target.serves == OLD
    assert target.sent == [NEW.url, OLD]
    assert _kinds(tmp_path) == [
        ("intent", "deploy"),
        ("intent", "restore"),
        ("outcome", "restored"),
    ]
    assert Ledger(tmp_path / "l.jsonl").pending() == []


def test_a_scoring_failure_restores_the_previous_model(tmp_path: Path) -> None:
    target = FakeTarget(score=ServiceError("bad model", status=400))
    outcome = deploy_one(target, NEW, checked(target, OLD), _run(tmp_path, sample=None))
    assert outcome.status == "restored" and target.serves == OLD


def test_an_unanswered_swap_is_sent_once_more(tmp_path: Path) -> None:
    target = FakeTarget(deploy=[ServiceError("connection dropped")])
    outcome = deploy_one(target, NEW, checked(target, OLD), _run(tmp_path))
    assert outcome.status == "succeeded" and target.sent == [NEW.url, NEW.url]
    # The first send's pin is the read under the lease; the second reads again.
    assert target.pins == [(OLD, True), (OLD, False)]
    assert Ledger(tmp_path / "l.jsonl").entries()[-1].request_ids == ("req-2",)


def test_the_read_under_the_lease_is_the_pin_and_keeps_what_check_established(
    tmp_path: Path,
) -> None:
    target = FakeTarget()
    state = checked(target, OLD)
    seen: list[TargetState] = []
    read = target.read

    def spy(known: TargetState | None = None) -> TargetState:
        seen.append(read(known))
        return seen[-1]

    target.read = spy  # type: ignore[method-assign]
    outcome = deploy_one(target, NEW, state, _run(tmp_path))
    assert outcome.status == "succeeded"
    assert len(seen) == 1 and seen[0].checked  # one read, under the lease, from the check
    assert target.pins == [(OLD, True)]


def test_an_unconfirmed_change_records_the_request_id_of_the_accepted_request(
    tmp_path: Path,
) -> None:
    target = FakeTarget(deploy=[OperationStillRunning("still running")])
    outcome = deploy_one(target, NEW, checked(target, OLD), _run(tmp_path))
    assert outcome.status == "unknown"
    entry = Ledger(tmp_path / "l.jsonl").entries()[-1]
    assert (entry.outcome, entry.request_ids) == ("unknown", ("req-1",))


@pytest.mark.parametrize(
    "error",
    [
        VerificationFailed("reads still show the old model"),
        OperationStillRunning("still running"),
        [ServiceError("dropped"), OperationTimeout("no answer")],
    ],
)
def test_a_change_that_cannot_be_confirmed_is_unknown_and_stays_open(
    tmp_path: Path, error: Any
) -> None:
    failures = error if isinstance(error, list) else [error]
    target = FakeTarget(deploy=list(failures))
    outcome = deploy_one(target, NEW, checked(target, OLD), _run(tmp_path))
    assert outcome.status == "unknown" and outcome.serving_model is None
    assert len(target.sent) == len(failures)  # an operation still running is not resent
    assert _kinds(tmp_path) == [("intent", "deploy"), ("outcome", "unknown")]
    (pending,) = Ledger(tmp_path / "l.jsonl").pending()
    assert pending.unknown is not None and len(pending.intents) == 1


def test_a_leased_target_is_refused_before_anything(tmp_path: Path) -> None:
    run = _run(tmp_path)
    target = FakeTarget()
    assert run.ledger is not None
    with run.ledger.locks.hold(target.key, run_id="other-run"):
        outcome = deploy_one(target, NEW, checked(target, OLD), run)
    assert outcome.status == "failed" and target.sent == []
    assert "other-run" in (outcome.error or "") and "nothing was sent" in (outcome.error or "")


def test_a_stop_requested_before_the_target_sends_nothing(tmp_path: Path) -> None:
    stop = StopSignal()
    stop.request()
    target = FakeTarget()
    outcome = deploy_one(target, NEW, checked(target, OLD), _run(tmp_path, stop=stop))
    assert outcome.status == "failed" and "not started" in (outcome.error or "")
    assert target.sent == [] and _kinds(tmp_path) == []
    with pytest.raises(Interrupted):
        stop.raise_if_requested()


def test_a_dry_run_plans_and_writes_nothing(tmp_path: Path) -> None:
    target = FakeTarget()
    outcome = deploy_one(target, NEW, checked(target, OLD), _run(tmp_path, dry_run=True))
    assert outcome.status == "dry-run" and target.sent == []
    assert "sig=REDACTED" in json.dumps(outcome.plan)
    assert not (tmp_path / "l.jsonl").exists()
