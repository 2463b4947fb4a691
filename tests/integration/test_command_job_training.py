"""`amlretrain retrain` with an Azure ML v2 command-job training, against the emulator:
judged from the emulator's own state (its jobs, endpoints, versions) and the ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from amlretrain.azureml.targets import version_name
from amlretrain.azureml.training import CommandJobTraining
from amlretrain.cli import main
from amlretrain.emulator import Emulator, Faults
from amlretrain.ledger import Ledger
from amlretrain.records import JobRecord
from amlretrain.storage import BlobStore
from tests.integration.conftest import wait_for
from tests.integration.v2support import make_endpoint, score

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

DATASTORE = "workspaceblobstore"
DATA_CSV = (
    Path(__file__).resolve().parents[2] / "amlretrain" / "emulator" / "data" / "census_new.csv"
)


@pytest.fixture
def env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from amlretrain.cli._emulator_config import emulator_environment

    for name, value in emulator_environment(emulator.info).items():
        monkeypatch.setenv(name, value)


def q(value: str) -> str:
    return json.dumps(value)


def command_job(emulator: Emulator, *, array: bool = False) -> str:
    info = emulator.info
    return "\n".join(
        [
            "[[training]]" if array else "[training]",
            'kind = "command_job"',
            f"subscription_id = {q(str(info.v2_subscription_id))}",
            f"resource_group = {q(str(info.v2_resource_group))}",
            f"workspace = {q(str(info.v2_workspace))}",
            'command = "python train.py --data ${{inputs.data}} --model ${{outputs.model}}"',
            'environment_id = "azureml:sklearn:1"',
            'compute = "cpu-cluster"',
            f"data = {q(str(DATA_CSV))}",
            'inputs = { label = "income" }',
            f"arm_base_url = {q(info.arm_base_url)}",
            'arm_token_env = "AMLRETRAIN_ARM_TOKEN"',
            "polling_interval = 0.05",
            "timeout = 60",
            "",
        ]
    )


def batch(emulator: Emulator) -> str:
    return "\n".join(
        [
            "[[training]]",
            f"api_location = {q(emulator.info.training_endpoint_api_location)}",
            'api_key_env = "AMLRETRAIN_TRAINING_API_KEY"',
            f"data = {q(str(DATA_CSV))}",
            "timeout = 60",
            "",
        ]
    )


def common(ledger: Path) -> str:
    return "\n".join(
        [
            "[storage]",
            'connection_string_env = "AMLRETRAIN_STORAGE_CONNECTION_STRING"',
            "",
            "[gate]",
            "thresholds = { AUC = 0.6 }",
            "",
            "[ledger]",
            f"path = {q(str(ledger))}",
            "",
        ]
    )


def v2_target(emulator: Emulator, endpoint: str, store: BlobStore) -> str:
    info = emulator.info
    return "\n".join(
        [
            "[[targets]]",
            'kind = "online_endpoint"',
            f"subscription_id = {q(str(info.v2_subscription_id))}",
            f"resource_group = {q(str(info.v2_resource_group))}",
            f"workspace = {q(str(info.v2_workspace))}",
            f"endpoint = {q(endpoint)}",
            f"datastore_account_url = {q(store.account_url)}",
            f"arm_base_url = {q(info.arm_base_url)}",
            'arm_token_env = "AMLRETRAIN_ARM_TOKEN"',
            "polling_interval = 0.1",
            "verify_timeout = 20",
            "",
        ]
    )


def classic_target(emulator: Emulator) -> str:
    info = emulator.info
    return "\n".join(
        [
            "[[targets]]",
            'kind = "classic"',
            f"workspace_id = {q(info.workspace_id)}",
            'token_env = "AMLRETRAIN_WORKSPACE_TOKEN"',
            f"management_url = {q(info.management_url)}",
            f"web_service_id = {q(info.predictive_service)}",
            f"endpoint = {q(info.predictive_endpoint)}",
            f"resource_name = {q(info.predictive_resource_name)}",
            "",
        ]
    )


@pytest.fixture
def store(emulator: Emulator) -> Iterator[BlobStore]:
    with BlobStore.from_connection_string(emulator.info.storage_connection_string) as s:
        yield s


def v2_jobs(emulator: Emulator) -> dict[str, tuple[str, list[str], dict[str, Any]]]:
    """Every command job the emulator holds: name -> (status, history, properties)."""
    assert emulator.state is not None
    with emulator.state.lock:
        return {
            j.name: (j.status, list(j.history), json.loads(json.dumps(j.resource["properties"])))
            for j in emulator.state.v2.jobs.values()
        }


def endpoint_state(emulator: Emulator, endpoint: str) -> tuple[dict[str, int], dict[str, str]]:
    assert emulator.state is not None
    with emulator.state.lock:
        ep = emulator.state.v2.endpoint_named(endpoint)
        assert ep is not None
        models = {n: str(d.resource["properties"]["model"]) for n, d in ep.deployments.items()}
        return {k: v for k, v in ep.traffic.items() if v}, models


def versions(emulator: Emulator) -> int:
    assert emulator.state is not None
    with emulator.state.lock:
        return sum(len(m.versions) for m in emulator.state.v2.models.values())


def run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    code = main([*args, "--output", "json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def test_retrain_trains_a_command_job_and_serves_its_model_on_the_v2_endpoint(
    emulator: Emulator,
    http: requests.Session,
    store: BlobStore,
    env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    before_scores = score(http, emulator, ep).json()
    config = tmp_path / "retrain.toml"
    ledger_path = tmp_path / "ledger.jsonl"
    config.write_text(command_job(emulator) + common(ledger_path) + v2_target(emulator, ep, store))
    known = set(v2_jobs(emulator))
    code, plan = run_json(["retrain", "--config", str(config), "--dry-run"], capsys)
    assert code == 0, plan
    assert [t["status"] for t in plan["targets"]] == ["dry-run"]
    train = next(s for s in plan["steps"] if s["name"] == "train")
    assert '"command": "python train.py' in train["detail"]  # the PUT body, not sent
    assert set(v2_jobs(emulator)) == known and endpoint_state(emulator, ep)[0] == {"blue": 100}

    code, result = run_json(["retrain", "--config", str(config)], capsys)

    assert code == 0, result
    (row,) = result["targets"]
    assert row["status"] == "succeeded", row
    (name,) = set(v2_jobs(emulator)) - known  # one job, and it really trained
    status, history, props = v2_jobs(emulator)[name]
    assert status == "Completed" and history[-1] == "Completed"
    data_path = f"amlretrain-inputs/{name}/census_new.csv"
    assert props["inputs"]["data"]["uri"] == f"azureml://datastores/{DATASTORE}/paths/{data_path}"
    assert props["inputs"]["label"] == {"jobInputType": "literal", "value": "income"}
    assert store.download_bytes(store.ref(DATASTORE, data_path)) == DATA_CSV.read_bytes()
    model = store.ref(DATASTORE, f"amlretrain-models/{name}/model.json")
    traffic, models = endpoint_state(emulator, ep)
    assert traffic == {"green": 100}
    assert models["green"].endswith(f"/versions/{version_name(model)}")  # from the job's output
    assert score(http, emulator, ep).json() != before_scores  # it serves the new model

    ledger = Ledger(ledger_path)
    (entry,) = ledger.entries()
    assert entry.job_id == name and entry.new_model == model.url
    assert entry.metrics["AUC"] > 0.6 and row["metrics"] == entry.metrics
    jobs = [r for r in ledger.read().records if isinstance(r, JobRecord)]
    assert [(r.job_id, r.status) for r in jobs] == [
        ("", "Submitting"),
        (name, "Submitted"),
        (name, "Finished"),
    ]
    assert jobs[0].data == f"command_job:{DATA_CSV}"
    assert main(["history", "--config", str(config)]) == 0
    shown = capsys.readouterr().out
    assert f"job {name}" in shown and "AUC" in shown


def test_a_mixed_config_trains_once_per_platform(
    emulator: Emulator,
    http: requests.Session,
    store: BlobStore,
    env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert emulator.state is not None
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    config = tmp_path / "retrain.toml"
    config.write_text(
        batch(emulator)
        + command_job(emulator, array=True)
        + common(tmp_path / "ledger.jsonl")
        + classic_target(emulator)
        + v2_target(emulator, ep, store)
    )
    known_v2 = set(v2_jobs(emulator))
    with emulator.state.lock:
        known_bes = set(emulator.state.jobs)

    code, result = run_json(["retrain", "--config", str(config)], capsys)

    assert code == 0, result
    assert [t["status"] for t in result["targets"]] == ["succeeded", "succeeded"]
    with emulator.state.lock:
        bes = [emulator.state.jobs[k] for k in set(emulator.state.jobs) - known_bes]
    assert [j.status for j in bes] == ["Finished"]  # one BES job: the classic target's
    new_v2 = set(v2_jobs(emulator)) - known_v2
    assert [v2_jobs(emulator)[n][0] for n in new_v2] == ["Completed"]  # one command job
    classic, v2 = result["targets"]
    assert classic["new_model"].endswith(".ilearner") and classic["job_id"] == bes[0].id
    (name,) = new_v2
    assert v2["job_id"] == name and v2["new_model"].endswith(f"/{name}/model.json")


def crashed_while_training(
    emulator: Emulator,
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> str:
    """``amlretrain retrain`` killed while its command job runs (no cancel, no record of
    its end): the job's name."""
    known = set(v2_jobs(emulator))

    def crash(self: CommandJobTraining, name: str, stop: Any) -> Any:
        raise SystemExit("the process died while the job ran")

    with monkeypatch.context() as patched:
        patched.setattr(CommandJobTraining, "_wait", crash)
        with pytest.raises(SystemExit):
            main(["retrain", "--config", str(config)])
    capsys.readouterr()
    (name,) = set(v2_jobs(emulator)) - known
    return name


def test_a_resumed_run_re_attaches_to_its_command_job(
    emulator: Emulator,
    http: requests.Session,
    store: BlobStore,
    env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    config = tmp_path / "retrain.toml"
    ledger_path = tmp_path / "ledger.jsonl"
    config.write_text(command_job(emulator) + common(ledger_path) + v2_target(emulator, ep, store))
    known = set(v2_jobs(emulator))
    name = crashed_while_training(emulator, config, monkeypatch, capsys)
    run = Ledger(ledger_path).history().runs()[-1]
    assert [(j.job_id, j.status) for j in run.jobs] == [(name, "Submitted")]
    puts = sum(1 for r in emulator.requests if r.method == "PUT" and r.path.endswith(name))

    code, result = run_json(["retrain", "--config", str(config), "--resume", run.run_id], capsys)

    assert code == 0, result
    assert set(v2_jobs(emulator)) - known == {name}  # no second job
    assert sum(1 for r in emulator.requests if r.method == "PUT" and r.path.endswith(name)) == puts
    assert result["targets"][0]["job_id"] == name
    _, models = endpoint_state(emulator, ep)
    model = store.ref(DATASTORE, f"amlretrain-models/{name}/model.json")
    assert models["green"].endswith(f"/versions/{version_name(model)}")


def test_a_failed_command_job_changes_nothing(
    emulator: Emulator,
    http: requests.Session,
    store: BlobStore,
    env: None,
    faults: Faults,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    config = tmp_path / "retrain.toml"
    ledger_path = tmp_path / "ledger.jsonl"
    config.write_text(command_job(emulator) + common(ledger_path) + v2_target(emulator, ep, store))
    before = endpoint_state(emulator, ep)
    registered = versions(emulator)
    known = set(v2_jobs(emulator))
    faults.add("v2.job.put", "job_fail", message="out of memory while training (injected)")

    code, result = run_json(["retrain", "--config", str(config)], capsys)

    assert code != 0
    (row,) = result["targets"]
    assert row["status"] == "failed" and "out of memory" in row["error"]
    (name,) = set(v2_jobs(emulator)) - known
    assert v2_jobs(emulator)[name][0] == "Failed"
    assert endpoint_state(emulator, ep) == before  # no deployment, no traffic change
    assert versions(emulator) == registered  # no version registered
    ledger = Ledger(ledger_path)
    assert ledger.entries() == [] or all(e.outcome != "succeeded" for e in ledger.entries())
    jobs = [r for r in ledger.read().records if isinstance(r, JobRecord)]
    assert (jobs[-1].job_id, jobs[-1].status) == (name, "Failed")


def test_a_job_put_whose_answer_was_lost_makes_one_job(
    emulator: Emulator,
    http: requests.Session,
    store: BlobStore,
    env: None,
    faults: Faults,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    config = tmp_path / "retrain.toml"
    ledger_path = tmp_path / "ledger.jsonl"
    config.write_text(command_job(emulator) + common(ledger_path) + v2_target(emulator, ep, store))
    known = set(v2_jobs(emulator))
    faults.add("v2.job.put", "apply_drop")  # the job is created, its answer never comes

    code, result = run_json(["retrain", "--config", str(config)], capsys)

    assert code == 0, result
    (name,) = set(v2_jobs(emulator)) - known  # sent again under its name: the same job
    puts = [r for r in emulator.requests if r.method == "PUT" and r.path.endswith(f"/jobs/{name}")]
    assert len(puts) >= 2 and v2_jobs(emulator)[name][0] == "Completed"
    assert result["targets"][0]["status"] == "succeeded"
    assert result["targets"][0]["job_id"] == name


def test_reconcile_reads_an_open_command_job_from_its_workspace(
    emulator: Emulator,
    http: requests.Session,
    store: BlobStore,
    env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    config = tmp_path / "retrain.toml"
    ledger_path = tmp_path / "ledger.jsonl"
    config.write_text(command_job(emulator) + common(ledger_path) + v2_target(emulator, ep, store))
    name = crashed_while_training(emulator, config, monkeypatch, capsys)
    assert [j.job_id for j in Ledger(ledger_path).open_jobs()] == [name]
    wait_for(lambda: v2_jobs(emulator)[name][0] == "Completed", timeout=20)

    code, report = run_json(["reconcile", "--config", str(config)], capsys)

    assert code == 0, report
    assert [(j["job_id"], j["status"]) for j in report["jobs"]] == [(name, "Finished")]
    assert Ledger(ledger_path).open_jobs() == []  # its end is recorded now
