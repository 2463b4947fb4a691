"""A real Airflow 3.3.2 stack (api-server, scheduler with LocalExecutor at parallelism 1,
dag-processor, triggerer; SQLite) running AmlRetrainOperator DAGs against the emulator.

One stack for the session (tests/airflow/conftest.py ``stack``). Verdicts from the
emulator's own state (jobs, what each endpoint serves, the PATCH requests that swap a
model) and Airflow's database (task instance states and tries), sampled while runs go on.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from amlretrain.emulator import Emulator
from tests.airflow.harness import (
    Stack,
    classic_endpoints,
    emulator_secrets,
    endpoint_model,
    endpoint_patches,
    find_leaks,
    fleet_config,
    job_ids,
    running_jobs,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def _new_jobs(emulator: Emulator, before: set[str]) -> dict[str, str]:
    assert emulator.state is not None
    with emulator.state.lock:
        return {j: emulator.state.jobs[j].status for j in set(emulator.state.jobs) - before}


def _ti(stack: Stack, dag_id: str, run_id: str) -> tuple[Any, ...] | None:
    rows = stack.home.query(
        "select state, try_number, pid from task_instance"
        " where dag_id=:d and run_id=:r and task_id='retrain' and map_index=0",
        d=dag_id,
        r=run_id,
    )
    return rows[0] if rows else None


def test_a_task_killed_mid_wait_is_retried_and_reattaches_to_its_job_one_swap(
    emulator: Emulator, stack: Stack, tmp_path: Path
) -> None:
    """The worker waiting for a 25 s job (deferrable=False) is SIGKILLed, supervisor and
    task process (a lost machine: no on_kill); the scheduler retries the task after the
    heartbeat timeout (10 s here: attempt 2 starts 11-15 s after the kill, while the job
    still runs); attempt 2 resumes the same run: no second job, one swap."""
    emulator.faults.add("bes.submit", "job_slow", seconds=25, count=None)
    with classic_endpoints(emulator, 1, prefix="kl") as (name,):
        config = fleet_config(emulator, tmp_path, [(name, None)])
        before, jobs_before = endpoint_model(emulator, name), job_ids(emulator)
        stack.wait_parsed("aml_kill")
        run_id = stack.trigger("aml_kill", {"config": str(config), "targets": [name]})
        # attempt 1 runs and its job runs: the wait is in the worker
        wait_until(lambda: _new_jobs(emulator, jobs_before), 90, "the training job submitted")
        _state, tries, pid = wait_until(
            lambda: (ti := _ti(stack, "aml_kill", run_id)) and ti[0] == "running" and ti[2] and ti,
            30,
            "attempt 1 running with a pid",
        )
        assert tries == 1
        time.sleep(2)
        supervisor = _parent(pid)
        for victim in (supervisor, pid):
            if victim:
                os.kill(victim, signal.SIGKILL)
        assert set(_new_jobs(emulator, jobs_before).values()) == {"Running"}, "killed mid-wait"
        final = stack.wait_run("aml_kill", run_id, 150)
        ti = _ti(stack, "aml_kill", run_id)
        assert ti is not None
        assert (final, ti[0], ti[1]) == ("success", "success", 2), ti
        jobs = _new_jobs(emulator, jobs_before)
        assert list(jobs.values()) == ["Finished"], f"one job, re-attached, not cancelled: {jobs}"
        assert endpoint_model(emulator, name) != before
        assert endpoint_patches(emulator, name) == 1, "the swap happened once"


def _parent(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1])


def test_a_pool_with_include_deferred_bounds_jobs_slots_stay_free_and_a_triggerer_restart_resumes(
    emulator: Emulator, stack: Stack, tmp_path: Path
) -> None:
    """Four mapped deferrable retrains of 15 s jobs in a pool of 2 that counts deferred
    tasks, on one worker slot: at most 2 jobs run at once (the emulator's count), 2 tasks
    are deferred while the one slot is free, and a triggerer SIGKILLed mid-deferral is
    replaced: its triggers resume in the new one; every task succeeds with one job each."""
    # 15 s: shorter triggers meet Airflow 3.3.2's deferral race (tools/airflow/NOTES.md)
    emulator.faults.add("bes.submit", "job_slow", seconds=15, count=None)
    stack.cli("pools", "set", "aml_jobs", "2", "amlretrain jobs", "--include-deferred")
    with classic_endpoints(emulator, 4, prefix="pl") as names:
        config = fleet_config(emulator, tmp_path, [(n, None) for n in names])
        before, jobs_before = {n: endpoint_model(emulator, n) for n in names}, job_ids(emulator)
        stack.wait_parsed("aml_pool")
        run_id = stack.trigger("aml_pool", {"config": str(config), "targets": names})
        samples: list[tuple[int, int, int]] = []  # (running TIs, deferred TIs, running jobs)
        restarted: dict[str, Any] = {}

        def sample() -> None:
            rows = stack.home.query(
                "select state, count(*) from task_instance where dag_id='aml_pool'"
                " and run_id=:r and task_id='retrain' group by state",
                r=run_id,
            )
            counts = {str(s): int(c) for s, c in rows}
            samples.append(
                (counts.get("running", 0), counts.get("deferred", 0), running_jobs(emulator))
            )
            if not restarted and counts.get("deferred", 0) >= 2:
                old = stack.procs["triggerer"].pid
                stack.stop("triggerer", signal.SIGKILL)
                restarted["at"], restarted["old"] = time.monotonic(), old
                time.sleep(1)
                stack.start("triggerer")

        final = stack.wait_run("aml_pool", run_id, 240, each=sample)
        states = stack.home.task_states("aml_pool", run_id)
        assert final == "success", states
        assert restarted, f"never 2 deferred at once: {samples}"
        jobs = _new_jobs(emulator, jobs_before)
        assert sorted(jobs.values()) == ["Finished"] * 4, f"one job per task: {jobs}"
        for n in names:
            assert endpoint_model(emulator, n) != before[n]
            assert endpoint_patches(emulator, n) == 1
        assert max(s[2] for s in samples) == 2, f"the pool bounds the jobs at 2: {samples}"
        assert max(s[1] for s in samples) >= 2 > stack.parallelism, samples
        assert max(s[0] for s in samples) <= stack.parallelism, samples
        # the slot is free while two jobs run, waited for by the triggerer
        assert any(s[1] >= 2 and s[0] == 0 for s in samples), samples
        assert find_leaks(stack.home.text_to_scan(), emulator_secrets(emulator)) == []


def _lease_duration(emulator: Emulator, config: Path, endpoint: str) -> str | None:
    """The target's lock blob lease as Azurite has it: ``infinite`` once handed off."""
    from azure.storage.blob import BlobServiceClient

    from amlretrain.cli._emulator_config import emulator_environment
    from amlretrain.config import load_config
    from amlretrain.configured import find_target
    from amlretrain.locks import lock_name

    loaded = load_config(config, environ=emulator_environment(emulator.info))
    key = find_target(loaded, endpoint).key
    assert loaded.ledger_blob is not None
    container, _, name = loaded.ledger_blob.partition("/")
    service = BlobServiceClient.from_connection_string(emulator.info.storage_connection_string)
    blob = service.get_blob_client(
        container, f"{name.rpartition('/')[0]}/locks/{lock_name(key)}.lock"
    )
    if not blob.exists():
        return None
    lease = blob.get_blob_properties().lease
    return str(lease.duration) if lease.state == "leased" else None


def test_a_task_killed_while_its_detached_swap_runs_is_retried_and_finishes_it_from_its_token(
    emulator: Emulator, stack: Stack, tmp_path: Path
) -> None:
    """On an Azure ML v2 endpoint whose standby PUT takes 25 s: the swap detaches (its
    token in the ledger, the lease handed to the run: infinite in Azurite) and the worker
    waits for it (deferrable=False); that worker is SIGKILLed; attempt 2 takes the lease
    back and finishes the swap from the token: one standby PUT, green serving 100%."""
    import requests

    from tests.airflow.harness import deployment_puts, v2_config, v2_state
    from tests.integration.v2support import make_endpoint

    with requests.Session() as http:
        endpoint = make_endpoint(http, emulator, traffic={"blue": 100})
    emulator.faults.add("v2.deployment.put", "lro_slow", seconds=25, count=1)

    def standby_puts() -> int:
        return deployment_puts(emulator, endpoint, "green")

    config = v2_config(emulator, tmp_path, endpoint)
    puts = standby_puts()
    stack.wait_parsed("aml_kill")
    run_id = stack.trigger("aml_kill", {"config": str(config), "targets": [endpoint]})
    # attempt 1 sent the standby's PUT and handed the lease off: it waits for the operation
    wait_until(
        lambda: _lease_duration(emulator, config, endpoint) == "infinite",
        90,
        "the swap detached (the target's lease handed off)",
    )
    _state, tries, pid = wait_until(
        lambda: (ti := _ti(stack, "aml_kill", run_id)) and ti[0] == "running" and ti[2] and ti,
        30,
        "attempt 1 running with a pid",
    )
    assert tries == 1 and standby_puts() == puts + 1
    supervisor = _parent(pid)
    for victim in (supervisor, pid):
        if victim:
            os.kill(victim, signal.SIGKILL)
    assert v2_state(emulator, endpoint)[0] == {"blue": 100}, "killed before the traffic moved"
    final = stack.wait_run("aml_kill", run_id, 150)
    ti = _ti(stack, "aml_kill", run_id)
    assert ti is not None
    assert (final, ti[0], ti[1]) == ("success", "success", 2), ti
    traffic, models = v2_state(emulator, endpoint)
    assert traffic == {"green": 100} and set(models) == {"green"}  # blue retired
    assert standby_puts() == puts + 1, "the swap was finished from its token, not sent again"
    assert _lease_duration(emulator, config, endpoint) is None  # released at the end
    assert find_leaks(stack.home.text_to_scan(), emulator_secrets(emulator)) == []
