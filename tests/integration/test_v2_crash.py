"""The real CLI, SIGKILLed in a guarded rollout on a v2 online endpoint, then reconciled.

``amlretrain deploy`` (stages smoke, shadow with ``mirror``, canary) runs as a subprocess
and is killed by the emulator's ``kill`` fault right after the endpoint PUT that starts
the mirror (its first endpoint PUT: the candidate is a deployment PUT). It leaves the
standby deployment (the candidate) with mirror traffic, and its blob lease, which lapses
within ``LEASE_SECONDS`` (15 s): a reconcile started at once finds the incumbent leased
and skips the candidate, changing nothing (docs/candidates.md: "a run still shadowing
holds it"); one given ``--wait-lock`` waits the lease out. It must then end the mirror, delete
the standby (``OnlineEndpointTarget.delete_deployment``, called by
``candidates.delete_leftovers``), leave the live traffic where it was and record the
candidate ``done``. Everything is judged from the emulator's own state and the ledger.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import requests

from amlretrain.candidates import leftover_candidates
from amlretrain.cli._emulator_config import emulator_environment
from amlretrain.config import load_config
from amlretrain.emulator import Emulator, Faults
from amlretrain.records import RolloutEvent
from tests.airflow.harness import v2_config, v2_state
from tests.integration.conftest import wait_for
from tests.integration.test_online_endpoint_target import new_model
from tests.integration.test_online_endpoint_target import v2 as v2
from tests.integration.v2support import make_endpoint

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

#: How long one CLI subprocess may run before the test fails.
CLI_TIMEOUT = 90
#: The real CLI.
AMLRETRAIN = (sys.executable, "-m", "amlretrain")


def _probe(folder: Path, n: int = 20) -> Path:
    """A probe CSV: ``n`` rows of the bundled census data, without the label."""
    text = (resources.files("amlretrain.emulator") / "data" / "census_new.csv").read_text()
    rows = list(csv.reader(text.splitlines()))
    label = rows[0].index("income")
    path = folder / "probe.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([c for i, c in enumerate(r) if i != label] for r in rows[: n + 1])
    return path


def _config(emulator: Emulator, folder: Path, endpoint: str) -> Path:
    path = v2_config(emulator, folder, endpoint)
    probe = _probe(folder)
    rollout = "\n".join(
        [
            "",
            "[rollout]",
            'stages = ["smoke", "shadow", "canary"]',
            f"probe = {json.dumps(probe.name)}",
            "probe_batch = 5",
            "probe_interval = 0.1",
            "bake = 0.3",
            "mirror = 50",
            "traffic_steps = [10, 50]",
            "",
            "[[rollout.alarms]]",
            'metric = "error_rate"',
            "threshold = 0.05",
            "",
        ]
    )
    path.write_text(path.read_text() + rollout)
    return path


def _endpoint_now(emulator: Emulator, endpoint: str) -> dict[str, Any]:
    """The endpoint as the emulator holds it (its due operations completed first)."""
    assert emulator.state is not None
    with emulator.state.locked() as state:
        ep = state.v2.endpoint_named(endpoint)
        assert ep is not None
        return {
            "state": ep.state,
            "traffic": {k: int(v) for k, v in ep.traffic.items() if v},
            "mirror": {k: int(v) for k, v in ep.mirror_traffic.items() if v},
            "deployments": set(ep.deployments),
        }


def _reconcile(
    config: Path, cwd: Path, env: dict[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    """``amlretrain reconcile --config F --output json EXTRA`` as a subprocess."""
    return subprocess.run(
        [*AMLRETRAIN, "reconcile", "--config", str(config), "--output", "json", *extra],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def _candidate_events(events: list[RolloutEvent], endpoint_id: str) -> list[RolloutEvent]:
    return [
        e
        for e in events
        if e.stage == "candidate"
        and str(e.evidence.get("where", {}).get("endpoint_id", "")).lower() == endpoint_id.lower()
    ]


def test_a_deploy_killed_after_the_mirror_put_is_cleaned_up_by_reconcile(
    emulator: Emulator,
    faults: Faults,
    http: requests.Session,
    v2: dict[str, Any],
    tmp_path: Path,
) -> None:
    endpoint = make_endpoint(http, emulator, traffic={"blue": 100})
    seeded = v2_state(emulator, endpoint)[1]["blue"]
    model = new_model(emulator, v2)
    config = _config(emulator, tmp_path, endpoint)
    env = {**os.environ, **emulator_environment(emulator.info)}
    ledger = load_config(config, environ=env).ledger()
    (target,) = [t for t, _ in load_config(config, environ=env).targets()]

    # The process waits on its stdin before it execs Python (its pid stays the same), so
    # the fault naming its pid is in place before its first request.
    deploy = [*AMLRETRAIN, "deploy", "--config", str(config), "--model", model.url]
    began = time.monotonic()
    proc = subprocess.Popen(
        ["sh", "-c", 'read _ && exec "$@"', "sh", *deploy],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    kill = faults.add(route="v2.endpoint.put", kind="kill", pid=proc.pid, when="after", count=1)
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.close()
    proc.stdin = None
    out, err = proc.communicate(timeout=CLI_TIMEOUT)
    killed_after = time.monotonic() - began
    assert proc.returncode == -9, f"exit {proc.returncode}\n{out}\n{err[-3000:]}"
    assert kill.fired == 1

    # What the kill left: the first endpoint PUT was the mirror's (the operation, started
    # before the kill, completes on the service as it would on Azure).
    after_kill = wait_for(
        lambda: (
            (now := _endpoint_now(emulator, endpoint))["state"] == "Succeeded"
            and now["mirror"]
            and now
        )
    )
    standby = next(iter(after_kill["mirror"]))
    assert standby != "blue" and after_kill["mirror"][standby] == 50
    assert after_kill["deployments"] == {"blue", standby}
    assert after_kill["traffic"] == {"blue": 100}
    events = _candidate_events(ledger.history().rollout_events(), target.endpoint_id)
    assert [e.verdict for e in events] == ["started"]
    assert events[0].evidence["where"]["deployment"].lower() == standby.lower()
    # The mirror's own record is written once its PUT is verified: the kill came first.
    # The candidate's write-ahead "started" record is what reconcile cleans up from.
    assert [e for e in ledger.history().rollout_events() if e.stage == "mirror"] == []
    assert [left.where["deployment"].lower() for left in leftover_candidates(ledger.history())] == [
        standby.lower()
    ]
    assert ledger.pending() == []  # no swap had begun: no intent was written
    stages = [(e.stage, e.verdict) for e in ledger.history().rollout_events()]
    assert stages == [("candidate", "started"), ("smoke", "passed")], stages
    # The dead run's blob lease is still there (it lapses unrenewed within 15 s).
    held = [i for i in ledger.locks.list() if i.target == target.key]
    assert held and f":{proc.pid}" in held[0].holder, held

    # A reconcile at once (no --wait-lock) must not delete under the lease: it skips the
    # candidate (a run still shadowing would hold the lease), changes nothing, exits 0.
    start = len(emulator.requests)
    done = _reconcile(config, tmp_path, env)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout)
    assert [(c["status"], c["run_id"]) for c in report["candidates"]] == [
        ("skipped", events[0].run_id)
    ], report
    assert "leased by" in report["candidates"][0]["message"]
    assert _endpoint_now(emulator, endpoint) == after_kill
    assert [r for r in emulator.requests[start:] if r.method != "GET"] == []
    assert len(leftover_candidates(ledger.history())) == 1

    # reconcile waiting for the killed run's blob lease to lapse (within 15 s of its last
    # renewal): it deletes the candidate.
    start = len(emulator.requests)
    began = time.monotonic()
    done = _reconcile(config, tmp_path, env, "--wait-lock", "30")
    reconciled_in = time.monotonic() - began
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout)
    assert [(c["kind"], c["status"]) for c in report["candidates"]] == [
        ("azureml-deployment", "deleted")
    ], report
    assert report["not_in_config"] == []

    # Its writes: the mirror ended by a traffic PUT, then the standby deleted (the
    # emulator's DELETE would drop a mirror by itself: this shows reconcile ended it).
    writes = [
        (r.method, r.path.rstrip("/").rsplit("/", 2)[-2:])
        for r in emulator.requests[start:]
        if r.method in ("PUT", "PATCH", "DELETE") and r.status and f"/{endpoint}" in r.path
    ]
    assert writes == [
        ("PUT", ["onlineEndpoints", endpoint]),
        ("DELETE", ["deployments", standby]),
    ], writes

    # The emulator's own state: the standby gone, the mirror off, the live traffic kept.
    now = _endpoint_now(emulator, endpoint)
    assert now["state"] == "Succeeded"
    assert now["deployments"] == {"blue"}
    assert now["mirror"] == {}
    assert now["traffic"] == {"blue": 100}
    traffic, models = v2_state(emulator, endpoint)
    assert traffic == {"blue": 100} and models == {"blue": seeded}

    # The ledger: nothing open, no leftover, the candidate's last record says it went.
    ledger = load_config(config, environ=env).ledger()
    assert ledger.pending() == []
    assert leftover_candidates(ledger.history()) == []
    events = _candidate_events(ledger.history().rollout_events(), target.endpoint_id)
    assert [e.verdict for e in events] == ["started", "done"]
    last = events[-1]
    assert last.evidence["result"] == "deleted"
    assert last.evidence["reconciled"] is True
    assert last.evidence["reconciledBy"] and last.run_id == events[0].run_id
    assert last.model == model.url
    print(f"killed after {killed_after:.2f} s, reconciled in {reconciled_in:.2f} s")
