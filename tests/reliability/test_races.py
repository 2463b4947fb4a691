"""Races and interruption: concurrent deployments, KeyboardInterrupt, deadlines."""

from __future__ import annotations

import _thread
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from amlretrain.blobs import BlobRef
from amlretrain.emulator import Faults
from amlretrain.errors import Interrupted, OperationTimeout
from amlretrain.ledger import Ledger, strip_sas
from amlretrain.workflow import deploy, retrain
from tests.reliability.matrix import READ_TIMEOUT, Rig

pytestmark = pytest.mark.integration


def _copy_of_served_model(rig: Rig, kind: str, name: str) -> BlobRef:
    """A new model blob (same bytes as the served one, another URL), with a read SAS."""
    served = strip_sas(rig.target(kind).current_model())
    assert served is not None
    data = rig.store.download_bytes(BlobRef.from_url(served))
    ref = rig.store.upload(
        data, container="amlretrain-models", blob_name=f"race/{name}-{time.monotonic_ns()}.ilearner"
    )
    return rig.store.sas(ref, expires_in=timedelta(days=1))


def _wait_for_request(rig: Rig, start: int, method: str, suffix: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(r.method == method and r.path.endswith(suffix) for r in rig.emu.requests[start:]):
            return
        time.sleep(0.01)


def _then_idle(call: Any) -> None:
    """Run ``call``; if the interrupt did not land inside it, it lands in the sleep."""
    call()
    time.sleep(30)  # reached only when the call returned: the test then fails on timing


@pytest.mark.parametrize("kind", ["arm", "classic"])
def test_a_deployment_during_the_training_is_seen_by_the_swap_and_recorded_as_its_previous(
    rig: Rig, faults: Faults, tmp_path: Path, kind: str
) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    winner_model = _copy_of_served_model(rig, kind, "winner")
    winner = rig.target(kind)

    def deploy_the_winner(step: str) -> None:
        if step == "train":  # the retrain read the target already; deploy someone else's
            deploy(winner_model, [winner], ledger=ledger).raise_for_status()

    loser = rig.target(kind)
    result = retrain(rig.training(), [loser], ledger=ledger, on_step=deploy_the_winner)
    outcome = result.targets[0]
    # The swap reads the target again under its lease: the winner's model is what it
    # replaces, and the ledger says so (nothing is overwritten silently).
    assert outcome.status == "succeeded", outcome.error
    assert outcome.previous_model == winner_model.url
    served = strip_sas(rig.target(kind).current_model())
    assert served == result.model
    assert rig.scores_confirm(rig.target(kind), served or "")
    entries = ledger.entries()
    assert [(e.outcome, e.previous_model, e.new_model) for e in entries][-1] == (
        "succeeded",
        winner_model.url,
        result.model,
    )
    assert entries[-2].new_model == winner_model.url


@pytest.mark.parametrize("kind", ["arm", "classic"])
def test_two_deployments_at_once_are_serialised_and_the_ledger_chains_them(
    rig: Rig, faults: Faults, tmp_path: Path, kind: str
) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    models = [_copy_of_served_model(rig, kind, f"m{i}") for i in range(2)]
    targets = [rig.target(kind) for _ in models]
    # Both read the target before either writes.
    barrier = threading.Barrier(2)
    for t in targets:
        read = t.check

        def read_then_wait(read: Any = read, first: list[bool] = []) -> str | None:  # noqa: B006
            value = read()
            if not first:
                first.append(True)
                barrier.wait(timeout=20)
            return value

        t.check = read_then_wait  # type: ignore[method-assign]
    results = {}

    def run(i: int) -> None:
        results[i] = deploy(models[i], [targets[i]], ledger=ledger, wait_lock=30).targets[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o.status for o in results.values()) == ["succeeded", "succeeded"]
    served = strip_sas(rig.target(kind).current_model())
    entries = [e for e in ledger.entries() if e.outcome == "succeeded"]
    assert len(entries) == 2
    first, second = entries
    assert second.previous_model == first.new_model  # the second saw the first
    assert second.new_model == served
    assert rig.scores_confirm(rig.target(kind), served or "")
    assert ledger.pending() == []


def test_keyboard_interrupt_during_the_job_wait_cancels_the_job(rig: Rig, faults: Faults) -> None:
    target = rig.target("classic")
    target.check()
    before = target.current_model()
    faults.add(route="bes.*", kind="job_slow", seconds=5)
    start = len(rig.emu.requests)

    def interrupt() -> None:
        _wait_for_request(rig, start, "POST", "/start")
        time.sleep(0.3)
        _thread.interrupt_main()

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        _then_idle(lambda: retrain(rig.training(), [target]))
    assert any(r.method == "DELETE" and "/jobs/" in r.path for r in rig.emu.requests[start:])
    assert rig.target("classic").current_model() == before


def test_a_deadline_in_the_job_wait_cancels_the_job(rig: Rig, faults: Faults) -> None:
    target = rig.target("arm")
    target.check()
    before = target.current_model()
    faults.add(route="bes.*", kind="job_slow", seconds=5)
    start = len(rig.emu.requests)
    with pytest.raises(OperationTimeout, match="cancelled"):
        retrain(rig.training(timeout=0.8), [target])
    assert any(r.method == "DELETE" and "/jobs/" in r.path for r in rig.emu.requests[start:])
    assert rig.target("arm").current_model() == before


def test_ctrl_c_during_the_swap_lets_it_finish_records_it_and_says_so(
    rig: Rig, faults: Faults, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kind = "classic"
    ledger = Ledger(tmp_path / "ledger.jsonl")
    model = _copy_of_served_model(rig, kind, "interrupted")
    target = rig.target(kind)
    # The verification reads are slowed down so that the interrupt lands inside the swap.
    start = len(rig.emu.requests)

    def interrupt() -> None:
        _wait_for_request(rig, start, "PATCH", "")
        _thread.interrupt_main()  # SIGINT, as Ctrl-C: deploy() routes it to its stop request

    faults.add(route="classic.get_endpoint", kind="latency", seconds=0.5, count=None)
    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(Interrupted) as caught:
        _then_idle(lambda: deploy(model, [target], ledger=ledger))
    faults.clear()
    assert caught.value.exit_code == 130
    served = strip_sas(rig.target(kind).current_model())
    assert served == model.url  # the swap already sent was finished, not abandoned
    assert rig.scores_confirm(rig.target(kind), served or "")
    last = ledger.entries()[-1]
    assert (last.outcome, last.serving_model) == ("succeeded", served)
    assert ledger.pending() == []
    assert caught.value.result.targets[0].status == "succeeded"
    assert "stopping; a swap already sent may finish" in capsys.readouterr().err


def test_a_restored_model_gets_a_sas_that_outlives_the_hour(
    rig: Rig, faults: Faults, tmp_path: Path
) -> None:
    target = rig.target("classic")
    target.check()
    previous = strip_sas(target.current_model())
    faults.add(route="rrs.execute", kind="status", status=500, count=None)
    result = retrain(rig.training(), [target], ledger=Ledger(tmp_path / "l"), sample=rig.sample)
    assert result.targets[0].status == "restored"
    now = rig.target("classic").current_model() or ""
    assert strip_sas(now) == previous
    expiry = parse_qs(urlsplit(now).query)["se"][0]
    expires = datetime.fromisoformat(expiry.replace("Z", "+00:00"))
    assert expires - datetime.now(timezone.utc) > timedelta(days=1)


def test_a_start_that_timed_out_does_not_leave_the_job_running(rig: Rig, faults: Faults) -> None:
    target = rig.target("classic")
    target.check()
    before = target.current_model()
    start = len(rig.emu.requests)
    faults.add(route="bes.start", kind="latency", seconds=READ_TIMEOUT + 0.5)
    with pytest.raises(OperationTimeout):
        retrain(rig.training(), [target])
    time.sleep(0.6)  # the start runs on the service once its latency is over
    assert any(r.method == "DELETE" and "/jobs/" in r.path for r in rig.emu.requests[start:])
    assert rig.target("classic").current_model() == before
