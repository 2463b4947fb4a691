"""A guarded rollout to an Azure ML v2 online endpoint, judged from the emulator's state.

The stages map onto the endpoint (V2-NOTES T9): the candidate is the standby deployment at
0% (scored through its header), the shadow may mirror live calls to it (back at 0 before
any live traffic moves), the live traffic moves in steps, each verified and baked under
the alarms, and the previous deployment is deleted after the last bake.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from amlretrain import deploy, reconcile
from amlretrain.alarms import Alarm
from amlretrain.emulator import Emulator, learner
from amlretrain.ledger import Ledger
from amlretrain.rollout import Rollout
from amlretrain.targets import Sample
from tests.integration.test_online_endpoint_target import (
    DATASTORE,
    emulated,
    new_model,
    seeded_model,
    target_of,
)
from tests.integration.test_online_endpoint_target import v2 as v2
from tests.integration.v2support import make_endpoint, rows, trained_on, unique, upload_model

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def probe(n: int = 24) -> Sample:
    body = rows(n=n)["input_data"]
    return Sample(columns=body["columns"], rows=body["data"])


def misbehaving(emulator: Emulator, v2: dict[str, Any], **behaviour: Any) -> Any:
    path = f"tests/{unique('bad')}/model.json"
    upload_model(emulator, path, learner.with_behaviour(trained_on("census_new.csv"), **behaviour))
    return v2["store"].ref(DATASTORE, path)


class Watch:
    """The endpoint's (live, mirror) traffic as the emulator holds it, sampled every 5 ms
    while a run goes on: each distinct state in the order seen."""

    def __init__(self, emulator: Emulator, endpoint: str) -> None:
        self.emulator, self.endpoint = emulator, endpoint
        self.seen: list[tuple[dict[str, int], dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _now(self) -> tuple[dict[str, int], dict[str, int]]:
        assert self.emulator.state is not None
        with self.emulator.state.lock:
            ep = self.emulator.state.v2.endpoint_named(self.endpoint)
            assert ep is not None
            props = ep.resource["properties"]
            live = {k: int(v) for k, v in (props.get("traffic") or {}).items() if v}
            mirror = {k: int(v) for k, v in (props.get("mirrorTraffic") or {}).items() if v}
            return live, mirror

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self._now()
            if not self.seen or self.seen[-1] != now:
                self.seen.append(now)
            time.sleep(0.005)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def endpoint(emulator: Emulator, http: requests.Session) -> str:
    return make_endpoint(http, emulator, traffic={"blue": 100})


def _stages(ledger: Ledger, run_id: str | None) -> list[tuple[str, str]]:
    return [(e.stage, e.verdict) for e in ledger.history().rollout_events(run_id)]


def test_a_good_model_goes_through_mirror_and_traffic_steps_and_the_old_deployment_goes(
    emulator: Emulator,
    v2: dict[str, Any],
    endpoint: str,
    tmp_path: Path,
) -> None:
    target = target_of(v2, endpoint)
    model = new_model(emulator, v2)
    ledger = Ledger(tmp_path / "ledger.jsonl")
    rollout = Rollout(
        stages=("smoke", "shadow", "canary"),
        probe=probe(),
        probe_batch=2,
        probe_interval=0.1,
        bake=0.3,
        mirror=50,
        traffic_steps=(10, 50),
        alarms=(Alarm(metric="error_rate", threshold=0.05),),
    )
    with Watch(emulator, endpoint) as watch:
        result = deploy(model, [target], ledger=ledger, store=v2["store"], rollout=rollout)

    assert [o.status for o in result.targets] == ["succeeded"], result.targets[0].error
    traffic, models = emulated(emulator, endpoint)
    assert {k: v for k, v in traffic.items() if v} == {"green": 100}
    assert set(models) == {"green"}  # blue deleted after the last bake
    # The order the endpoint went through, as the emulator held it:
    assert watch.seen == [
        ({"blue": 100}, {}),
        ({"blue": 100}, {"green": 50}),  # the shadow, mirrored
        ({"blue": 100}, {}),  # the mirror back at 0 before any live traffic moves
        ({"blue": 90, "green": 10}, {}),
        ({"blue": 50, "green": 50}, {}),
        ({"green": 100}, {}),
    ]
    assert emulator.state is not None
    with emulator.state.lock:
        ep = emulator.state.v2.endpoint_named(endpoint)
        assert ep is not None and ep.mirrored > 0  # the mirror was real
    stages = _stages(ledger, result.run_id)
    assert stages[:6] == [
        ("candidate", "started"),
        ("smoke", "passed"),
        ("mirror", "started"),
        ("mirror", "done"),
        ("shadow", "passed"),
        ("candidate", "done"),
    ]
    steps = [e for e in ledger.history().rollout_events(result.run_id) if e.stage == "traffic"]
    assert [e.evidence["percent"] for e in steps] == [10, 50]
    assert all(e.target == target.key for e in steps)
    bakes = [e for e in ledger.history().rollout_events(result.run_id) if e.stage == "bake"]
    assert bakes and all(e.target == target.key for e in bakes)
    assert ("retire", "done") in stages and stages[-1] == ("promote", "done")
    kept = next(
        e
        for e in ledger.history().rollout_events(result.run_id)
        if e.stage == "candidate" and e.verdict == "done"
    )
    assert kept.evidence["result"] == "kept for the swap"
    # nothing left over for reconcile to delete
    assert reconcile([target], ledger=ledger).candidates == ()
    # the history and the evidence report read the v2 target's records as any other's
    (entry,) = ledger.history().deployments(target.key)
    assert entry.new_model == model.url and entry.outcome == "succeeded"
    html = result.report(ledger).html()
    assert f"Target {target.key}" in html
    for stage in ("mirror", "traffic", "retire"):
        assert stage in html


def test_a_model_failing_at_a_traffic_step_is_put_back_and_the_run_halts(
    emulator: Emulator,
    v2: dict[str, Any],
    endpoint: str,
    tmp_path: Path,
) -> None:
    target = target_of(v2, endpoint, sample=None)  # no smoke: the step's bake must catch it
    model = misbehaving(emulator, v2, error_rate=0.5, seed=2)
    ledger = Ledger(tmp_path / "ledger.jsonl")
    rollout = Rollout(
        stages=("canary",),
        probe=probe(),
        probe_batch=2,
        probe_interval=0.1,
        bake=0.3,
        traffic_steps=(10,),
        alarms=(Alarm(metric="error_rate", threshold=0.05),),
    )
    with Watch(emulator, endpoint) as watch:
        result = deploy(model, [target], ledger=ledger, store=v2["store"], rollout=rollout)

    (outcome,) = result.targets
    assert outcome.status == "failed", outcome
    assert "alarm" in (outcome.error or "") and "still serves its previous model" in (
        outcome.error or ""
    )
    assert result.halted_wave == 1 and "alarm" in (result.halt_reason or "")
    traffic, models = emulated(emulator, endpoint)
    assert {k: v for k, v in traffic.items() if v} == {"blue": 100}
    assert set(models) == {"blue", "green"}  # nothing retired after an alarm
    assert watch.seen == [
        ({"blue": 100}, {}),
        ({"blue": 90, "green": 10}, {}),
        ({"blue": 100}, {}),
    ]
    stages = _stages(ledger, result.run_id)
    assert ("traffic", "done") in stages and ("alarm", "fired") in stages
    assert ("retire", "started") not in stages
    assert target.current_model() == seeded_model(v2).url


def test_a_model_stopped_by_the_shadow_leaves_no_standby_and_no_mirror(
    emulator: Emulator,
    v2: dict[str, Any],
    endpoint: str,
    tmp_path: Path,
) -> None:
    target = target_of(v2, endpoint, sample=None)
    model = misbehaving(emulator, v2, error_rate=0.5, seed=3)
    ledger = Ledger(tmp_path / "ledger.jsonl")
    rollout = Rollout(
        stages=("shadow", "canary"),
        probe=probe(),
        probe_batch=2,
        mirror=50,
        traffic_steps=(10,),
        alarms=(Alarm(metric="error_rate", threshold=0.05),),
    )
    result = deploy(model, [target], ledger=ledger, store=v2["store"], rollout=rollout)

    (outcome,) = result.targets
    assert outcome.status == "rejected" and "rollout shadow" in (outcome.error or "")
    traffic, models = emulated(emulator, endpoint)
    assert {k: v for k, v in traffic.items() if v} == {"blue": 100}
    assert set(models) == {"blue"}  # the candidate deployment was deleted
    assert emulator.state is not None
    with emulator.state.lock:
        ep = emulator.state.v2.endpoint_named(endpoint)
        assert ep is not None and not any(
            (ep.resource["properties"].get("mirrorTraffic") or {}).values()
        )
    stages = _stages(ledger, result.run_id)
    assert ("mirror", "done") in stages and ("shadow", "failed") in stages
    assert ("traffic", "done") not in stages
