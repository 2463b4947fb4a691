"""`airflow dags test` (real Airflow 3.3.2, no scheduler) of AmlRetrainOperator DAGs.

Verdicts come from the emulator's own state (what each endpoint serves, the jobs it ran),
Airflow's database (task instance states, XComs) and the task logs, never from the
operator's report of itself alone.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from amlretrain.emulator import Emulator
from tests.airflow.harness import (
    AirflowHome,
    bad_data,
    classic_endpoints,
    deployment_puts,
    emulator_secrets,
    endpoint_model,
    find_leaks,
    fleet_config,
    job_ids,
    v2_config,
    v2_jobs,
    v2_state,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

FLEET = 20


def test_the_example_dag_on_a_fleet_of_20_one_bad_data_file_fails_only_its_task(
    emulator: Emulator, airflow_home: AirflowHome, tmp_path: Path
) -> None:
    """docs/airflow/example_dag.py (through tests/airflow/dags/example_dag.py: retry delay
    1 s) on 20 classic endpoints by mapping, one of them trained on a file without the
    label column."""
    with classic_endpoints(emulator, FLEET, prefix="fl") as names:
        bad_index = 7
        bad = names[bad_index]
        config = fleet_config(
            emulator, tmp_path, [(n, bad_data(tmp_path) if n == bad else None) for n in names]
        )
        before, jobs_before = {n: endpoint_model(emulator, n) for n in names}, job_ids(emulator)
        airflow_home.cli("pools", "set", "aml_jobs", "8", "amlretrain jobs", "--include-deferred")
        t0 = time.monotonic()
        run_id = airflow_home.dags_test(
            "amlretrain_fleet", {}, extra_env={"AMLRETRAIN_CONFIG": str(config)}
        )
        took = time.monotonic() - t0
        after = {n: endpoint_model(emulator, n) for n in names}
        states = airflow_home.task_states("amlretrain_fleet", run_id)
        xcoms = airflow_home.xcoms("amlretrain_fleet", run_id)

        retrains = {m: s for (t, m), s in states.items() if t == "retrain"}
        assert sorted(retrains) == list(range(FLEET)), states
        assert retrains[bad_index] == ("failed", 2), retrains  # retried once, as documented
        good = [i for i in range(FLEET) if i != bad_index]
        assert all(retrains[i] == ("success", 1) for i in good), retrains
        # the emulator's state: the 19 serve a new model, the bad one its old one; one job
        # per good task; none for the bad one (its data is refused before a job is sent)
        # nor for its retry (the run has its outcome)
        assert after[bad] == before[bad]
        for i in good:
            assert after[names[i]] != before[names[i]], f"{names[i]} serves a new model"
            (target,) = xcoms[("retrain", i, "return_value")]["targets"]
            assert target["status"] == "succeeded"
            assert target["model"] and after[names[i]].split("/")[-1] in target["model"]
        assert len(job_ids(emulator) - jobs_before) == FLEET - 1
        # the bad one's task failed with the reason: the label column is missing
        reasons = [
            line
            for line in airflow_home.last_output.splitlines()
            if "AirflowException" in line and bad in line
        ]
        assert reasons and all("'income'" in r and "no_label.csv" in r for r in reasons), reasons
        assert xcoms[("retrain", bad_index, "return_value")]["targets"][0]["status"] == "failed"
        # the example's report task read every outcome (all_done)
        assert xcoms[("report", -1, "return_value")] == {"succeeded": FLEET - 1, "failed": 1}
        # no secret the emulator issued, and no SAS, in any log, CLI output or XCom
        assert find_leaks(airflow_home.text_to_scan(), emulator_secrets(emulator)) == []
        print(f"dags test of the example DAG, {FLEET} mapped retrains: {took:.1f} s")


def test_a_deferred_wait_on_a_30_s_job_runs_in_the_trigger_and_succeeds_after_it(
    emulator: Emulator, airflow_home: AirflowHome, tmp_path: Path
) -> None:
    """On an Azure ML v2 target (a command job, a blue/green swap): the classic targets
    are the fleet's and the stack's; the operator treats both alike. The standby's PUT
    takes 8 s: the swap defers too (its operation waited in the trigger, from its token)
    and is finished after it without a second PUT."""
    import requests

    from amlretrain.azureml.targets import version_name
    from tests.integration.v2support import make_endpoint

    with requests.Session() as http:
        endpoint = make_endpoint(http, emulator, traffic={"blue": 100})
    emulator.faults.add("v2.job.put", "job_slow", seconds=30, count=1)
    emulator.faults.add("v2.deployment.put", "lro_slow", seconds=8, count=1)

    def standby_puts() -> int:
        return deployment_puts(emulator, endpoint, "green")

    config = v2_config(emulator, tmp_path, endpoint)
    jobs_before = set(v2_jobs(emulator))
    puts_before = standby_puts()
    t0 = time.monotonic()
    run_id = airflow_home.dags_test("aml_wait", {"config": str(config), "targets": [endpoint]})
    took = time.monotonic() - t0
    assert airflow_home.task_states("aml_wait", run_id)[("retrain", 0)][0] == "success"
    jobs = v2_jobs(emulator)
    new_jobs = set(jobs) - jobs_before
    assert len(new_jobs) == 1 and jobs[new_jobs.pop()] == "Completed", jobs
    (target,) = airflow_home.xcoms("aml_wait", run_id)[("retrain", 0, "return_value")]["targets"]
    assert target["status"] == "succeeded" and target["key"].startswith("azureml:")
    assert "?" not in target["model"]  # no SAS in XCom
    traffic, models = v2_state(emulator, endpoint)
    assert traffic == {"green": 100}  # blue retired after the swap
    assert set(models) == {"green"}
    assert models["green"].endswith("/versions/" + version_name(target["model"]))
    assert took >= 30, f"the task ended {took:.1f} s after it started: before its 30 s job"
    # the waits were the trigger's (run inline by dags test), not a worker's: the job's,
    # then the standby PUT's, whose swap was finished from its token (one PUT)
    assert airflow_home.last_output.count("[DAG TEST] running trigger in line") == 2
    assert "the PUT of deployment green" in airflow_home.last_output
    assert standby_puts() == puts_before + 1
    assert not find_leaks(airflow_home.text_to_scan(), emulator_secrets(emulator))


def test_the_emulator_configs_connection_file_imports_as_an_amlretrain_connection(
    emulator: Emulator, airflow_home: AirflowHome, tmp_path: Path
) -> None:
    """docs/airflow.md's recipe: `amlretrain emulator config --ledger-blob ...
    --airflow-connection FILE`, then `airflow connections import FILE`."""
    import json
    import subprocess
    import sys

    from amlretrain.cli._emulator_config import emulator_environment

    info = tmp_path / "emulator.json"
    info.write_text(json.dumps(emulator.info.to_dict(include_secrets=True)))
    conn = tmp_path / "airflow-connection.json"
    subprocess.run(
        [sys.executable, "-m", "amlretrain", "emulator", "config", "--info-file", str(info),
         "-o", str(tmp_path / "retrain.toml"), "--env-file", str(tmp_path / "e.env"),
         "--ledger-blob", "amlretrain/recipe/ledger.jsonl", "--airflow-connection", str(conn)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    # under another id: the session's amlretrain_default comes from an AIRFLOW_CONN_ variable
    written = json.loads(conn.read_text())
    conn.write_text(json.dumps({"amlretrain_imported": written["amlretrain_default"]}))
    airflow_home.cli("connections", "import", str(conn))
    got = subprocess.run(  # not kept with the outputs the leak scans read: it shows the extra
        [str(airflow_home.airflow), "connections", "get", "amlretrain_imported", "-o", "json"],
        env=airflow_home.env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    (row,) = json.loads(got.stdout.strip().splitlines()[-1])
    assert row["conn_type"] == "amlretrain"
    assert row["extra_dejson"] == {"env": emulator_environment(emulator.info)}


def _arm_serves(emulator: Emulator) -> str | None:
    """The model the seeded New (ARM) web service references, from the emulator's state."""
    from amlretrain.blobs import strip_sas
    from amlretrain.emulator.state import ci_get, trained_model_asset

    info, state = emulator.info, emulator.state
    assert state is not None
    key = (
        str(info.subscription_id).lower(),
        str(info.resource_group).lower(),
        str(info.arm_service_name).lower(),
    )
    with state.locked():
        found = trained_model_asset(state.arm[key].properties)
        uri = ci_get(ci_get(found[1], "locationInfo") or {}, "uri") if found else None
    return strip_sas(str(uri)) if uri else None


def test_a_new_arm_swap_waits_in_the_trigger_and_is_finished_from_its_token(
    emulator: Emulator, airflow_home: AirflowHome, tmp_path: Path
) -> None:
    """The New (ARM) web service of the emulator config, its PATCH's operation 6 s: the
    swap defers (the trigger follows the operation from its token) and the resumed task
    finishes it: one PATCH, the service references the XCom's model."""
    import uuid

    from amlretrain.cli._emulator_config import emulator_config

    data = Path(__file__).resolve().parents[2] / "amlretrain" / "emulator" / "data"
    config = tmp_path / "retrain.toml"
    config.write_text(
        emulator_config(
            emulator.info,
            data=data / "census_new.csv",
            ledger="unused.jsonl",
            ledger_blob=f"ledgers/airflow-{uuid.uuid4().hex[:12]}/ledger.jsonl",
        )
    )
    name = str(emulator.info.arm_service_name)
    path = f"/webservices/{name}".lower()

    def patches() -> int:
        return sum(
            1 for r in emulator.requests if r.method == "PATCH" and r.path.lower().endswith(path)
        )

    before, patched = _arm_serves(emulator), patches()
    emulator.faults.add("arm.patch", "lro_slow", seconds=6, count=1)
    run_id = airflow_home.dags_test("aml_wait", {"config": str(config), "targets": [name]})
    assert airflow_home.task_states("aml_wait", run_id)[("retrain", 0)][0] == "success"
    (target,) = airflow_home.xcoms("aml_wait", run_id)[("retrain", 0, "return_value")]["targets"]
    assert target["status"] == "succeeded" and target["key"].startswith("arm:")
    assert _arm_serves(emulator) == target["model"] != before
    assert patches() == patched + 1, "the swap was finished from its token, not sent again"
    assert "the update of web service" in airflow_home.last_output
    assert "[DAG TEST] running trigger in line" in airflow_home.last_output
    assert not find_leaks(airflow_home.text_to_scan(), emulator_secrets(emulator))
