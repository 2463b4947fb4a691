"""The write-ahead ledger against the emulator: intents, unknown outcomes, reconcile, leases.

Every verdict is judged from the emulator's own state (what a service really references),
never from the SDK's reading of it.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from amlretrain import ConfigurationError, ConflictError, OperationTimeout, VerificationFailed
from amlretrain.blobs import BlobRef
from amlretrain.emulator import Emulator, Faults
from amlretrain.emulator.state import trained_model_asset
from amlretrain.interrupt import StopSignal
from amlretrain.ledger import Ledger, strip_sas
from amlretrain.reconciliation import reconcile
from amlretrain.studio.targets import ArmTarget, ClassicTarget
from amlretrain.training import Training
from amlretrain.workflow import deploy, retrain, rollback

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "amlretrain" / "emulator" / "data"


def _target(clients: dict[str, Any], kind: str, **kw: Any) -> ArmTarget | ClassicTarget:
    info = clients["info"]
    if kind == "arm":
        return ArmTarget(
            clients["arm"], info.resource_group, info.arm_service_name, verify_interval=0.1, **kw
        )
    return ClassicTarget(
        clients["classic"], info.predictive_service, info.predictive_endpoint, **kw
    )


def _served(emu: Emulator, kind: str) -> str | None:
    """What the emulator really serves (its state, not an HTTP answer)."""
    info = emu.info
    with emu.state.locked() as state:
        if kind == "arm":
            key = (
                info.subscription_id.lower(),
                info.resource_group.lower(),
                info.arm_service_name.lower(),
            )
            found = trained_model_asset(state.arm[key].properties)
            assert found is not None
            return strip_sas(found[1]["locationInfo"]["uri"])
        ws = state.workspaces[info.workspace_id.lower()]
        svc = ws.services[info.predictive_service.lower()]
        ep = next(e for e in svc.endpoints.values() if e.name == info.predictive_endpoint)
        loc = ep.resources[0]["Location"]
        return strip_sas(loc["BaseLocation"].rstrip("/") + "/" + loc["RelativeLocation"])


def _other_model(clients: dict[str, Any], emu: Emulator, kind: str) -> BlobRef:
    """A new model blob (the served one's bytes under a new name), with a read SAS."""
    served = _served(emu, kind)
    assert served is not None
    data = clients["store"].download_bytes(BlobRef.from_url(served))
    ref = clients["store"].upload(
        data, container="amlretrain-models", blob_name=f"wal/{kind}-{time.monotonic_ns()}.ilearner"
    )
    return clients["store"].sas(ref, expires_in=__import__("datetime").timedelta(days=1))


def _kinds(path: Path) -> list[str]:
    return [json.loads(line)["kind"] for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("kind", ["arm", "classic"])
def test_every_change_is_announced_before_it_is_sent(
    clients: dict[str, Any], emulator: Emulator, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "ledger.jsonl"
    model = _other_model(clients, emulator, kind)
    result = deploy(model, [_target(clients, kind)], ledger=Ledger(path), store=clients["store"])
    assert result.targets[0].status == "succeeded", result.targets[0].error
    assert _served(emulator, kind) == model.url
    assert _kinds(path) == ["run-start", "intent", "outcome"]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    intent, outcome = lines[1], lines[2]
    assert intent["newModel"] == model.url and intent["request"]["method"] == "PATCH"
    assert outcome["intents"] == [intent["id"]]
    assert "sig=" not in path.read_text() or "sig=REDACTED" in path.read_text()
    assert Ledger(path).pending() == []


def test_stale_reads_past_the_verify_window_are_unknown_then_reconciled(
    clients: dict[str, Any], emulator: Emulator, faults: Faults, tmp_path: Path
) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    model = _other_model(clients, emulator, "arm")
    faults.add(route="arm.patch", kind="stale", seconds=2.5)
    target = _target(clients, "arm", verify_timeout=1)
    result = deploy(model, [target], ledger=ledger, store=clients["store"])
    outcome = result.targets[0]
    assert outcome.status == "unknown", outcome.error
    assert _served(emulator, "arm") == model.url  # it did land: "previous" would be a lie
    assert ledger.entries()[-1].outcome == "unknown"
    with pytest.raises(VerificationFailed):
        result.raise_for_status()
    assert [p.target for p in ledger.pending()] == [target.key]
    time.sleep(2.6)  # the reads catch up
    report = reconcile([_target(clients, "arm", verify_timeout=1)], ledger=ledger)
    assert [t.status for t in report.targets] == ["confirmed"]
    last = ledger.entries()[-1]
    assert last.reconciled and last.outcome == "succeeded"
    assert last.serving_model == _served(emulator, "arm") == model.url
    assert ledger.pending() == []


def test_a_stale_read_within_the_verify_window_is_waited_out(
    clients: dict[str, Any], emulator: Emulator, faults: Faults, tmp_path: Path
) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    model = _other_model(clients, emulator, "arm")
    faults.add(route="arm.patch", kind="stale", seconds=1.0)
    result = deploy(
        model, [_target(clients, "arm", verify_timeout=10)], ledger=ledger, store=clients["store"]
    )
    assert result.targets[0].status == "succeeded", result.targets[0].error
    assert ledger.entries()[-1].serving_model == _served(emulator, "arm") == model.url


def test_an_operation_that_never_completes_hits_operation_timeout_and_reconcile_settles_it(
    clients: dict[str, Any], emulator: Emulator, faults: Faults, tmp_path: Path
) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    before = _served(emulator, "arm")
    model = _other_model(clients, emulator, "arm")
    faults.add(route="arm.patch", kind="lro_hang")
    started = time.monotonic()
    result = deploy(
        model, [_target(clients, "arm", operation_timeout=1, verify_timeout=1)], ledger=ledger
    )
    assert time.monotonic() - started < 30
    assert result.targets[0].status == "unknown"
    with pytest.raises(OperationTimeout):
        result.raise_for_status()
    assert _served(emulator, "arm") == before
    report = reconcile([_target(clients, "arm", verify_timeout=1)], ledger=ledger)
    assert report.targets[0].status == "confirmed"
    last = ledger.entries()[-1]
    assert (last.outcome, last.serving_model) == ("failed", before)
    assert last.serving_model == _served(emulator, "arm")


@pytest.mark.parametrize("kind", ["arm", "classic"])
def test_an_open_intent_is_reconciled_before_the_next_run_and_rollback_goes_one_back(
    clients: dict[str, Any], emulator: Emulator, tmp_path: Path, kind: str
) -> None:
    """A crash after the change landed but before its outcome: the next run settles it."""
    ledger = Ledger(tmp_path / "ledger.jsonl")
    first = _other_model(clients, emulator, kind)
    deploy(first, [_target(clients, kind)], ledger=ledger).raise_for_status()
    second = _other_model(clients, emulator, kind)
    target = _target(clients, kind, verify_timeout=1)
    state = target.check()
    # what a SIGKILL between the swap and its outcome leaves: an intent, the change live
    from amlretrain.ledger import Intent

    ledger.append(
        Intent.new(
            run_id="run-crashed",
            target=target.key,
            action="deploy",
            previous_model=first.url,
            new_model=second.url,
            metrics={"AUC": 0.9},
        )
    )
    target.deploy(second, state)
    assert _served(emulator, kind) == second.url
    outcome = rollback(
        _target(clients, kind, verify_timeout=1), ledger=ledger, store=clients["store"]
    )
    assert outcome.status == "succeeded", outcome.error
    assert _served(emulator, kind) == first.url  # one back, not two
    reconciled = [e for e in ledger.entries() if e.reconciled]
    assert [(e.outcome, e.new_model, e.metrics) for e in reconciled] == [
        ("succeeded", second.url, {"AUC": 0.9})
    ]
    assert ledger.pending() == []


@pytest.mark.parametrize("kind", ["arm", "classic"])
def test_a_target_leased_by_another_run_is_refused_before_anything_changes(
    clients: dict[str, Any], emulator: Emulator, tmp_path: Path, kind: str
) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    before = _served(emulator, kind)
    model = _other_model(clients, emulator, kind)
    target = _target(clients, kind)
    with ledger.locks.hold(target.key, run_id="the-other-run"):
        result = deploy(model, [target], ledger=ledger, store=clients["store"])
    outcome = result.targets[0]
    assert outcome.status == "failed"
    assert "the-other-run" in (outcome.error or "") and "nothing was sent" in (outcome.error or "")
    with pytest.raises(ConflictError):
        result.raise_for_status()
    assert _served(emulator, kind) == before
    assert "intent" not in _kinds(tmp_path / "ledger.jsonl")


def test_wait_lock_waits_for_the_holder_and_records_the_right_previous_model(
    clients: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    winner, loser = _other_model(clients, emulator, "arm"), _other_model(clients, emulator, "arm")
    held = threading.Event()

    def hold_then_deploy() -> None:
        with ledger.locks.hold(_target(clients, "arm").key, run_id="winner"):
            held.set()
            time.sleep(0.5)
        deploy(winner, [_target(clients, "arm")], ledger=ledger, wait_lock=10).raise_for_status()

    thread = threading.Thread(target=hold_then_deploy)
    thread.start()
    held.wait(5)
    result = deploy(loser, [_target(clients, "arm")], ledger=ledger, wait_lock=20)
    thread.join()
    assert result.targets[0].status == "succeeded", result.targets[0].error
    successes = [e for e in ledger.entries() if e.outcome == "succeeded"]
    assert len(successes) == 2
    # a chain: each success's previous model is the one before it
    assert successes[1].previous_model == successes[0].new_model
    assert _served(emulator, "arm") == successes[1].new_model


def test_an_unwritable_ledger_refuses_the_run_before_anything_is_trained(
    clients: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    (tmp_path / "ledger.jsonl").mkdir()  # cannot be opened as a file
    submits = sum(1 for r in emulator.requests if r.path.endswith("/jobs"))
    before = _served(emulator, "arm")
    training = Training(
        batch=clients["batch"], data=DATA / "census_new.csv", store=clients["store"]
    )
    with pytest.raises(ConfigurationError, match="nothing was changed"):
        retrain(training, [_target(clients, "arm")], ledger=Ledger(tmp_path / "ledger.jsonl"))
    assert sum(1 for r in emulator.requests if r.path.endswith("/jobs")) == submits
    assert _served(emulator, "arm") == before


def test_a_stop_during_training_cancels_the_job_and_changes_nothing(
    clients: dict[str, Any], emulator: Emulator, faults: Faults, tmp_path: Path
) -> None:
    from amlretrain.errors import Interrupted

    ledger = Ledger(tmp_path / "ledger.jsonl")
    before = _served(emulator, "arm")
    faults.add(route="bes.*", kind="job_slow", seconds=20)
    stop = StopSignal(grace=5)
    threading.Timer(1.5, stop.request, args=(15,)).start()
    training = Training(
        batch=clients["batch"], data=DATA / "census_new.csv", store=clients["store"]
    )
    with pytest.raises(Interrupted) as caught:
        retrain(training, [_target(clients, "arm")], ledger=ledger, stop=stop)
    assert caught.value.exit_code == 143
    jobs = [r for r in ledger.read().records if type(r).__name__ == "JobRecord"]
    assert [j.status for j in jobs] == ["Submitting", "Submitted", "Cancelled"]  # type: ignore[attr-defined]
    with emulator.state.locked() as state:
        assert state.jobs[jobs[1].job_id.lower()].status == "Cancelled"  # type: ignore[attr-defined]
    assert _served(emulator, "arm") == before
    assert ledger.pending() == [] and ledger.open_jobs() == []


def test_a_stop_during_the_swap_lets_it_finish_and_records_it(
    clients: dict[str, Any], emulator: Emulator, faults: Faults, tmp_path: Path
) -> None:
    from amlretrain.errors import Interrupted

    ledger = Ledger(tmp_path / "ledger.jsonl")
    model = _other_model(clients, emulator, "arm")
    stop = StopSignal(grace=10)
    faults.add(route="arm.patch", kind="latency", seconds=0.5)
    threading.Timer(0.2, stop.request).start()
    with pytest.raises(Interrupted) as caught:
        deploy(model, [_target(clients, "arm")], ledger=ledger, stop=stop, store=clients["store"])
    result = caught.value.result
    assert caught.value.exit_code == 130
    assert result.targets[0].status == "succeeded", result.targets[0].error
    assert ledger.entries()[-1].serving_model == _served(emulator, "arm") == model.url
    assert ledger.pending() == []
