"""OnlineEndpointTarget against the emulated Azure ML v2 service: blue/green swaps through
the loop (deploy, rollback), judged from the emulator's own state and request log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from amlretrain import OnlineEndpointTarget, deploy, reconcile, rollback
from amlretrain._rollout_guard import probe_rows
from amlretrain.azureml.endpoints import OnlineEndpointsClient
from amlretrain.azureml.registry import ModelsClient
from amlretrain.azureml.targets import version_name
from amlretrain.blobs import BlobRef
from amlretrain.emulator import Emulator, Faults
from amlretrain.errors import ConfigurationError, ServiceError
from amlretrain.ledger import Ledger
from amlretrain.polling import PollPolicy
from amlretrain.storage import BlobStore
from amlretrain.targets import Sample
from tests.integration.conftest import wait_for
from tests.integration.v2support import make_endpoint, rows, trained_on, unique, upload_model

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

DATASTORE = "workspaceblobstore"
DATA_CSV = (
    Path(__file__).resolve().parents[2] / "amlretrain" / "emulator" / "data" / "census_new.csv"
)


@pytest.fixture(scope="module")
def v2(emulator: Emulator) -> Iterator[dict[str, Any]]:
    info = emulator.info
    where = (info.v2_subscription_id, info.v2_resource_group, info.v2_workspace)
    options: dict[str, Any] = {
        "base_url": info.arm_base_url,
        "polling": PollPolicy.fixed(0.05),
        "verify_timeout": 10.0,
    }
    with (
        OnlineEndpointsClient(emulator.credential(), *where, busy_timeout=30.0, **options) as eps,
        ModelsClient(emulator.credential(), *where, **options) as models,
        BlobStore.from_connection_string(info.storage_connection_string) as store,
    ):
        yield {"endpoints": eps, "models": models, "store": store}


def target_of(v2: dict[str, Any], endpoint: str, **kw: Any) -> OnlineEndpointTarget:
    body = rows(n=4)["input_data"]
    kw.setdefault("sample", Sample(columns=body["columns"], rows=body["data"]))
    return OnlineEndpointTarget(
        v2["endpoints"],
        v2["models"],
        endpoint,
        datastore_account_url=v2["store"].account_url,
        verify_timeout=20.0,
        verify_interval=0.05,
        **kw,
    )


def new_model(emulator: Emulator, v2: dict[str, Any], csv: str = "census_new.csv") -> BlobRef:
    path = f"tests/{unique('model')}/model.json"
    upload_model(emulator, path, trained_on(csv))
    ref: BlobRef = v2["store"].ref(DATASTORE, path)
    return ref


def seeded_model(v2: dict[str, Any]) -> BlobRef:
    ref: BlobRef = v2["store"].ref(DATASTORE, "models/census/1/model.json")
    return ref


def emulated(emulator: Emulator, endpoint: str) -> tuple[dict[str, int], dict[str, str]]:
    """The endpoint's traffic and each deployment's model, from the emulator's state."""
    assert emulator.state is not None
    with emulator.state.lock:
        ep = emulator.state.v2.endpoint_named(endpoint)
        assert ep is not None
        models = {
            name: str(dep.resource["properties"]["model"]) for name, dep in ep.deployments.items()
        }
        return dict(ep.traffic), models


def puts_since(emulator: Emulator, start: int, fragment: str) -> list[tuple[str, int]]:
    return [
        (r.path, r.status)
        for r in emulator.requests[start:]
        if r.method == "PUT" and fragment in r.path
    ]


def probabilities(target: OnlineEndpointTarget) -> list[float]:
    sample = target.sample()
    assert sample is not None
    result = target.score(sample)
    assert result.columns == ("Scored Labels", "Scored Probabilities")
    return [float(r[1]) for r in result.rows]


def test_check_reads_the_seeded_endpoint(emulator: Emulator, v2: dict[str, Any]) -> None:
    target = target_of(v2, str(emulator.info.v2_endpoint))
    state = target.check()
    assert state.checked and state.resource == "blue"
    assert state.model == seeded_model(v2).url
    assert target.key.startswith("azureml:/subscriptions/")
    assert target.key.endswith("/workspaces/census-ws/onlineEndpoints/census-v2")
    assert target.label == "census-ws/census-v2"
    assert target.current_model() == state.model
    sample = target.sample(state)
    assert sample is not None
    probed = probe_rows(target, state, sample, 2)  # the guarded rollout's probe
    assert probed.errors == 0 and len(probed.ok_scores()) == len(sample.rows)
    assert set(probed.labels) <= {">50K", "<=50K"}


def test_plan_lists_the_requests_without_secrets(
    emulator: Emulator, http: requests.Session, v2: dict[str, Any]
) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    target = target_of(v2, ep)
    model = v2["store"].sas(new_model(emulator, v2), expires_in=timedelta(hours=1))
    start = len(emulator.requests)
    plan = target.plan(model, target.check())
    assert [r for r in emulator.requests[start:] if r.method != "GET"] == []
    assert [(s["method"], s["url"].split("?")[0].rsplit("/", 2)[-2]) for s in plan["steps"]] == [
        ("PUT", "versions"),
        ("PUT", "deployments"),
        ("POST", ep),
        ("PUT", "onlineEndpoints"),
    ]
    version = plan["steps"][0]["body"]["properties"]
    assert version["modelUri"] == f"azureml://datastores/{DATASTORE}/paths/{model.blob_name}"
    assert plan["body"]["properties"]["traffic"] == {"blue": 0, "green": 100}
    assert plan["steps"][1]["url"].split("?")[0].endswith(f"/{ep}/deployments/green")
    model_id = plan["steps"][1]["body"]["properties"]["model"]
    assert model_id.endswith(f"/models/census/versions/{version_name(model)}")
    assert model.sas_token[1:] not in str(plan)


def test_deploy_swaps_to_green_and_rollback_is_one_traffic_put(
    emulator: Emulator, http: requests.Session, v2: dict[str, Any], tmp_path: Path
) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    target = target_of(v2, ep, delete_previous=False)
    model = new_model(emulator, v2)
    before = probabilities(target)
    ledger = Ledger(tmp_path / "ledger.jsonl")

    result = deploy(model, [target], ledger=ledger, store=v2["store"])

    outcome = result.targets[0]
    assert outcome.status == "succeeded", outcome.error
    assert outcome.serving_model == model.url and outcome.previous_model == seeded_model(v2).url
    traffic, models = emulated(emulator, ep)
    assert {k: v for k, v in traffic.items() if v} == {"green": 100}
    assert models["green"].endswith(f"/models/census/versions/{version_name(model)}")
    assert models["blue"] == "azureml:census:1"  # the previous deployment stays, at 0%
    assert probabilities(target) != before
    intents, entries = ledger.intents(target.key), ledger.entries(target.key)
    assert len(intents) == 1 and intents[0].new_model == model.url
    assert intents[0].request["deployment"] == "green"
    assert [e.outcome for e in entries] == ["succeeded"]
    assert len(entries[0].request_ids) == 2  # the deployment PUT and the traffic PUT

    start = len(emulator.requests)
    back = rollback(target, ledger=ledger, store=v2["store"])

    assert back.status == "succeeded", back.error
    assert back.serving_model == seeded_model(v2).url
    assert puts_since(emulator, start, f"/onlineEndpoints/{ep}/deployments/") == []
    assert puts_since(emulator, start, "/versions/") == []
    assert [s for _, s in puts_since(emulator, start, f"/onlineEndpoints/{ep}")] == [200]
    traffic, _ = emulated(emulator, ep)
    assert {k: v for k, v in traffic.items() if v} == {"blue": 100}
    assert probabilities(target) == before
    assert [e.outcome for e in ledger.entries(target.key)] == ["succeeded", "succeeded"]
    assert ledger.entries(target.key)[-1].action == "rollback"


def test_the_previous_deployment_is_retired_and_a_rollback_recreates_it(
    emulator: Emulator, http: requests.Session, v2: dict[str, Any], tmp_path: Path
) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    target = target_of(v2, ep)  # delete_previous by default
    model = new_model(emulator, v2)
    before = probabilities(target)
    ledger = Ledger(tmp_path / "ledger.jsonl")

    result = deploy(model, [target], ledger=ledger, store=v2["store"])

    assert result.targets[0].status == "succeeded", result.targets[0].error
    traffic, models = emulated(emulator, ep)
    assert {k: v for k, v in traffic.items() if v} == {"green": 100}
    assert set(models) == {"green"}  # blue deleted after the swap verified
    retired = [e for e in ledger.history().rollout_events() if e.stage == "retire"]
    assert [e.verdict for e in retired] == ["started", "done"]
    assert retired[0].evidence["deployment"] == "blue"
    assert retired[0].model == seeded_model(v2).url
    assert next(s for s in result.steps if s.name == "retire").status == "ok"

    start = len(emulator.requests)
    back = rollback(target, ledger=ledger, store=v2["store"])

    assert back.status == "succeeded", back.error
    puts = puts_since(emulator, start, f"/onlineEndpoints/{ep}/deployments/blue")
    assert [s for _, s in puts] == [201]  # recreated, a copy of green with the old model
    traffic, models = emulated(emulator, ep)
    assert {k: v for k, v in traffic.items() if v} == {"blue": 100}
    assert models["blue"].endswith(f"/versions/{version_name(seeded_model(v2))}")
    assert probabilities(target) == before
    assert "green" in models  # a rollback deletes nothing: the bad model stays at 0%


def test_a_deleted_previous_deployment_is_recreated(
    emulator: Emulator, http: requests.Session, v2: dict[str, Any]
) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    target = target_of(v2, ep)
    model = new_model(emulator, v2)
    target.deploy(model, target.check())
    v2["endpoints"].begin_delete_deployment(ep, "blue").result()
    after = target.deploy(seeded_model(v2), target.check())
    assert after.resource == "blue" and after.model == seeded_model(v2).url
    traffic, models = emulated(emulator, ep)
    assert {k: v for k, v in traffic.items() if v} == {"blue": 100}
    assert models["blue"].endswith(f"/versions/{version_name(seeded_model(v2))}")


def test_an_ilearner_is_refused_before_anything_is_sent(
    emulator: Emulator, http: requests.Session, v2: dict[str, Any], tmp_path: Path
) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    target = target_of(v2, ep)
    path = f"tests/{unique('classic')}/model.ilearner"
    upload_model(emulator, path, b"not a v2 model")
    model = v2["store"].ref(DATASTORE, path)
    with pytest.raises(ConfigurationError, match="ilearner"):
        target.plan(model, target.check())
    start = len(emulator.requests)
    ledger = Ledger(tmp_path / "ledger.jsonl")
    outcome = deploy(model, [target], ledger=ledger, store=v2["store"]).targets[0]
    assert outcome.status == "failed" and "no loader" in str(outcome.error)
    assert [r for r in emulator.requests[start:] if r.method != "GET" and ep in r.path] == []
    assert puts_since(emulator, start, "/versions/") == []
    assert ledger.intents(target.key) == []


def test_a_split_endpoint_is_refused_by_check(
    emulator: Emulator, http: requests.Session, v2: dict[str, Any]
) -> None:
    ep = make_endpoint(
        http, emulator, deployments=("blue", "green"), traffic={"blue": 50, "green": 50}
    )
    with pytest.raises(ConfigurationError, match="split"):
        target_of(v2, ep).check()


def test_a_busy_endpoint_is_waited_out(
    emulator: Emulator, http: requests.Session, v2: dict[str, Any], faults: Faults
) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    target = target_of(v2, ep)
    model = new_model(emulator, v2)
    start = len(emulator.requests)
    faults.add(route="v2.deployment.put", kind="v2_busy", count=2)
    after = target.deploy(model, target.check())
    assert after.resource == "green" and after.model == model.url
    statuses = [s for _, s in puts_since(emulator, start, f"/onlineEndpoints/{ep}/deployments/")]
    assert statuses[:2] == [409, 409] and statuses[2] in (200, 201)


def test_the_same_model_is_registered_once(
    emulator: Emulator, http: requests.Session, v2: dict[str, Any]
) -> None:
    model = new_model(emulator, v2)
    start = len(emulator.requests)
    for _ in range(2):
        target = target_of(v2, make_endpoint(http, emulator, traffic={"blue": 100}))
        assert target.deploy(model, target.check()).model == model.url
    version = version_name(model)
    assert len(puts_since(emulator, start, f"/models/census/versions/{version}")) == 1
    assert emulator.state is not None
    with emulator.state.lock:
        ws = next(iter(emulator.state.v2.workspaces.values()))
        found = emulator.state.v2.model_version(ws, "census", version)
        assert found is not None
        assert found["properties"]["modelUri"] == f"azureml://datastores/{DATASTORE}/paths/" + (
            model.blob_name
        )


def test_a_failed_smoke_test_changes_no_traffic(
    emulator: Emulator, http: requests.Session, v2: dict[str, Any], faults: Faults, tmp_path: Path
) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    target = target_of(v2, ep)
    model = new_model(emulator, v2)
    faults.add(route="v2.score", kind="status", status=424)
    start = len(emulator.requests)
    ledger = Ledger(tmp_path / "ledger.jsonl")
    outcome = deploy(model, [target], ledger=ledger, store=v2["store"]).targets[0]
    assert outcome.status == "failed"
    assert "smoke test" in str(outcome.error) and "no traffic was changed" in str(outcome.error)
    assert outcome.serving_model == seeded_model(v2).url
    puts = [path for path, _ in puts_since(emulator, start, f"/onlineEndpoints/{ep}")]
    assert puts and all(p.endswith(f"/onlineEndpoints/{ep}/deployments/green") for p in puts)
    traffic, _ = emulated(emulator, ep)
    assert {k: v for k, v in traffic.items() if v} == {"blue": 100}
    assert [e.outcome for e in ledger.entries(target.key)] == ["failed"]


def test_a_model_the_standby_cannot_load_changes_no_traffic(
    emulator: Emulator, http: requests.Session, v2: dict[str, Any]
) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    target = target_of(v2, ep)
    path = f"tests/{unique('broken')}/model.json"
    upload_model(emulator, path, b"{not json")
    with pytest.raises(ServiceError, match="no traffic was changed"):
        target.deploy(v2["store"].ref(DATASTORE, path), target.check())
    traffic, _ = emulated(emulator, ep)
    assert {k: v for k, v in traffic.items() if v} == {"blue": 100}


def test_an_unconfirmed_swap_is_recorded_unknown_and_reconciled(
    emulator: Emulator, http: requests.Session, v2: dict[str, Any], faults: Faults, tmp_path: Path
) -> None:
    info = emulator.info
    where = (info.v2_subscription_id, info.v2_resource_group, info.v2_workspace)
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    model = new_model(emulator, v2)
    ledger = Ledger(tmp_path / "ledger.jsonl")
    with OnlineEndpointsClient(
        emulator.credential(),
        *where,
        base_url=info.arm_base_url,
        polling=PollPolicy.fixed(0.05),
        verify_timeout=1.0,
    ) as impatient:
        target = OnlineEndpointTarget(
            impatient,
            v2["models"],
            ep,
            datastore_account_url=v2["store"].account_url,
            verify_timeout=1.0,
            verify_interval=0.05,
        )
        faults.add(route="v2.endpoint.put", kind="v2_stale_traffic", seconds=3.0)  # F2
        outcome = deploy(model, [target], ledger=ledger, store=v2["store"]).targets[0]
        assert outcome.status == "unknown", outcome.error
        assert [p.target for p in ledger.pending(target.key)] == [target.key]
        wait_for(lambda: target.current_model() == model.url)
        report = reconcile([target], ledger=ledger)
    assert [r.status for r in report.targets] == ["confirmed"]
    assert ledger.pending(target.key) == []
    assert ledger.last_known(target.key) == model.url


def test_amlretrain_deploy_reaches_an_online_endpoint_target_from_retrain_toml(
    emulator: Emulator,
    http: requests.Session,
    v2: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from amlretrain.cli import main
    from amlretrain.cli._emulator_config import emulator_config, emulator_environment

    for name, value in emulator_environment(emulator.info).items():
        monkeypatch.setenv(name, value)
    info = emulator.info
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    text = emulator_config(info, data=DATA_CSV, ledger=tmp_path / "ledger.jsonl")
    head = text[: text.index("[[targets]]")]
    head = head[: head.index("[sample]")] if "[sample]" in head else head  # v2 rows differ
    target = "\n".join(
        [
            "[[targets]]",
            'kind = "online_endpoint"',
            f'subscription_id = "{info.v2_subscription_id}"',
            f'resource_group = "{info.v2_resource_group}"',
            f'workspace = "{info.v2_workspace}"',
            f'endpoint = "{ep}"',
            f'datastore_account_url = "{v2["store"].account_url}"',
            f'arm_base_url = "{info.arm_base_url}"',
            'arm_token_env = "AMLRETRAIN_ARM_TOKEN"',
            "polling_interval = 0.1",
            "verify_timeout = 20",
            "",
        ]
    )
    config = tmp_path / "retrain.toml"
    config.write_text(head + target)
    model = new_model(emulator, v2)
    code = main(["deploy", "--config", str(config), "--model", model.url, "--output", "json"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured.err
    (row,) = json.loads(out)["targets"]
    assert row["status"] == "succeeded" and row["key"].endswith(f"/onlineEndpoints/{ep}")
    traffic, models = emulated(emulator, ep)
    assert traffic == {"green": 100}  # blue retired after the verified swap
    assert set(models) == {"green"}
    assert models["green"].endswith(f"/versions/{version_name(model.url)}")
    bad = main(["deploy", "--config", str(config), "--model", model.url[:-4] + "ilearner"])
    assert bad == 4  # an .ilearner is refused before anything is sent
    assert "ilearner" in capsys.readouterr().err
