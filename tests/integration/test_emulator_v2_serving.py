"""The emulated Azure ML v2 data plane, command jobs and faults (V2-NOTES 3.3, 5, 6, 8)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from amlretrain.emulator import Emulator, Faults
from tests.integration.conftest import wait_for
from tests.integration.v2support import (
    API,
    dep_url,
    ep_url,
    headers,
    make_endpoint,
    put_deployment,
    put_endpoint,
    register,
    rows,
    score,
    set_traffic,
    trained_on,
    unique,
    upload_model,
    wait_location,
    wait_op,
    ws_url,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def probabilities(resp: requests.Response) -> list[float]:
    assert resp.status_code == 200, resp.text
    return [r["Scored Probabilities"] for r in resp.json()]


def second_model(http: requests.Session, emu: Emulator) -> str:
    name = unique("model")
    uri = upload_model(emu, f"tests/{name}/model.json", trained_on("census_new.csv"))
    register(http, emu, name, "1", uri)
    return f"azureml:{name}:1"


def test_a_swap_to_another_model_version_changes_the_predictions(
    emulator: Emulator, http: requests.Session
) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    before = probabilities(score(http, emulator, ep))
    resp = put_deployment(http, emulator, ep, "blue", model=second_model(http, emulator))
    assert resp.status_code == 200 and wait_op(http, emulator, resp)["status"] == "Succeeded"
    after = probabilities(score(http, emulator, ep))
    assert before != after and len(after) == len(before)


def test_the_header_names_the_deployment_and_weights_split_the_rest(
    emulator: Emulator, http: requests.Session
) -> None:
    ep = make_endpoint(http, emulator, deployments=("blue", "green"), traffic={"blue": 100})
    served = {score(http, emulator, ep).headers["azureml-model-deployment"] for _ in range(5)}
    assert served == {"blue"}
    resp = score(http, emulator, ep, deployment="green")  # T5: at 0%
    assert resp.status_code == 200 and resp.headers["azureml-model-deployment"] == "green"
    assert score(http, emulator, ep, deployment="nobody").status_code == 404
    set_traffic(http, emulator, ep, traffic={"blue": 50, "green": 50})
    served = {score(http, emulator, ep).headers["azureml-model-deployment"] for _ in range(30)}
    assert served == {"blue", "green"}
    bad = score(http, emulator, ep, body={"rows": []})
    assert bad.status_code == 400


def test_mirror_traffic_is_copied_counted_and_discarded(
    emulator: Emulator, http: requests.Session
) -> None:
    ep = make_endpoint(
        http,
        emulator,
        deployments=("blue", "green"),
        traffic={"blue": 100},
        mirrorTraffic={"green": 50},
    )
    for _ in range(30):
        assert score(http, emulator, ep).headers["azureml-model-deployment"] == "blue"
    for _ in range(5):
        score(http, emulator, ep, deployment="blue")  # named calls are never mirrored
    assert emulator.state is not None
    with emulator.state.lock:
        endpoint = emulator.state.v2.endpoint_named(ep)
        green, blue = endpoint.deployment("green"), endpoint.deployment("blue")
        assert 0 < endpoint.mirrored < 30 and green.mirrored == endpoint.mirrored
        assert green.calls == 0 and blue.calls == 35 and blue.mirrored == 0
    set_traffic(http, emulator, ep, traffic={"blue": 100})  # F10: no mirrorTraffic, no mirror
    got = http.get(ep_url(emulator, ep), params=API, headers=headers(emulator)).json()
    assert got["properties"]["mirrorTraffic"] == {}


def test_an_ilearner_or_a_missing_model_fails_the_deployment(
    emulator: Emulator, http: requests.Session
) -> None:
    ep = make_endpoint(http, emulator, deployments=())
    name = unique("classic")
    register(http, emulator, name, "1", "azureml://datastores/workspaceblobstore/paths/m.ilearner")
    resp = put_deployment(http, emulator, ep, "blue", model=f"azureml:{name}:1")
    doc = wait_op(http, emulator, resp)
    assert doc["status"] == "Failed" and doc["error"]["code"] == "ResourceNotReady"
    got = http.get(dep_url(emulator, ep, "blue"), params=API, headers=headers(emulator)).json()
    assert got["properties"]["provisioningState"] == "Failed"
    resp = put_deployment(http, emulator, ep, "green", model="azureml:nothing-here:7")
    assert wait_op(http, emulator, resp)["error"]["code"] == "ResourceNotFound"


def job_body(data: str, **outputs: Any) -> dict[str, Any]:
    return {
        "properties": {
            "jobType": "Command",
            "command": "python train.py --data ${{inputs.data}}",
            "environmentId": "azureml:sklearn:1",
            "inputs": {
                "data": {"jobInputType": "uri_file", "uri": data},
                "label": {"jobInputType": "literal", "value": "income"},
            },
            "outputs": {
                "model": {"jobOutputType": "custom_model"},
                "evaluation": {"jobOutputType": "uri_file"},
                **outputs,
            },
        }
    }


def run_job(http: requests.Session, emu: Emulator, data: str) -> tuple[str, dict[str, Any]]:
    name = unique("job")
    url = f"{ws_url(emu)}/jobs/{name}"
    resp = http.put(url, params=API, headers=headers(emu), json=job_body(data))
    assert resp.status_code == 201, resp.text
    assert resp.json()["properties"]["status"] == "NotStarted"

    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = http.get(url, params=API, headers=headers(emu)).json()
        return job if job["properties"]["status"] in ("Completed", "Failed", "Canceled") else None

    return name, wait_for(done)


def test_command_jobs_train_models_that_score_differently(
    emulator: Emulator, http: requests.Session
) -> None:
    info = emulator.info
    scores = []
    for data in (info.v2_training_data, info.v2_new_training_data):
        assert data is not None
        name, job = run_job(http, emulator, data)
        assert job["properties"]["status"] == "Completed", job["properties"]["properties"]
        assert emulator.state is not None
        with emulator.state.lock:
            history = emulator.state.v2.jobs[
                next(k for k in emulator.state.v2.jobs if k[3] == name.lower())
            ].history
        assert history == [
            *("NotStarted", "Starting", "Preparing", "Queued", "Running", "Finalizing"),
            "Completed",
        ]
        outputs = job["properties"]["outputs"]
        assert outputs["model"]["uri"].endswith(f"/{name}/model/model.json")
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient.from_connection_string(info.storage_connection_string) as svc:
            blob = outputs["evaluation"]["uri"].split("/paths/", 1)[1]
            metrics = json.loads(
                svc.get_blob_client("workspaceblobstore", blob).download_blob().readall()
            )
        assert 0.5 < metrics["AUC"] <= 1
        model = unique("trained")
        register(
            http, emulator, model, "1", f"azureml://jobs/{name}/outputs/model/paths/model.json"
        )
        ep = make_endpoint(http, emulator, deployments=())
        resp = put_deployment(http, emulator, ep, "blue", model=f"azureml:{model}:1")
        assert wait_op(http, emulator, resp)["status"] == "Succeeded"
        scores.append(probabilities(score(http, emulator, ep, deployment="blue")))
    assert scores[0] != scores[1]


def test_a_job_can_be_canceled_and_deleted(
    emulator: Emulator, http: requests.Session, faults: Faults
) -> None:
    faults.add(route="v2.job.put", kind="job_slow", seconds=30)
    name = unique("job")
    url = f"{ws_url(emulator)}/jobs/{name}"
    data = str(emulator.info.v2_training_data)
    assert (
        http.put(url, params=API, headers=headers(emulator), json=job_body(data)).status_code == 201
    )
    resp = http.post(url + "/cancel", params=API, headers=headers(emulator))
    assert resp.status_code == 202
    assert wait_location(http, emulator, resp).status_code == 200
    job = http.get(url, params=API, headers=headers(emulator)).json()
    assert job["properties"]["status"] == "Canceled"
    resp = http.delete(url, params=API, headers=headers(emulator))
    assert resp.status_code == 202 and wait_location(http, emulator, resp).status_code == 200
    assert http.get(url, params=API, headers=headers(emulator)).status_code == 404
    refused = http.put(
        url, params=API, headers=headers(emulator), json={"properties": {"jobType": "Sweep"}}
    )
    assert refused.status_code == 400


def test_a_job_fail_fault_fails_the_job(
    emulator: Emulator, http: requests.Session, faults: Faults
) -> None:
    faults.add(route="v2.job.put", kind="job_fail", message="Out of memory")
    _, job = run_job(http, emulator, str(emulator.info.v2_training_data))
    assert job["properties"]["status"] == "Failed"
    assert job["properties"]["properties"]["azureml.error"] == "Out of memory"


# -- faults (V2-NOTES 8) ---------------------------------------------------------------


def test_f2_stale_traffic_after_the_operation_succeeded(
    emulator: Emulator, http: requests.Session, faults: Faults
) -> None:
    ep = make_endpoint(http, emulator, deployments=("blue", "green"), traffic={"blue": 100})
    faults.add(route="v2.endpoint.put", kind="v2_stale_traffic", seconds=60)
    set_traffic(http, emulator, ep, traffic={"green": 100})
    got = http.get(ep_url(emulator, ep), params=API, headers=headers(emulator)).json()
    assert got["properties"]["traffic"] == {"blue": 100}
    assert got["properties"]["provisioningState"] == "Succeeded"
    assert score(http, emulator, ep).headers["azureml-model-deployment"] == "green"


def test_f3_busy_endpoint(emulator: Emulator, http: requests.Session, faults: Faults) -> None:
    ep = make_endpoint(http, emulator, deployments=())
    faults.add(route="v2.deployment.put", kind="v2_busy")
    resp = put_deployment(http, emulator, ep, "blue")
    assert resp.status_code == 409
    assert resp.json()["error"]["message"] == (
        f"Cannot create a deployment in endpoint {ep} because it is in Updating provisioning state."
    )
    assert put_deployment(http, emulator, ep, "blue").status_code == 201


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("v2_canceled", "Canceled", "OperationCanceled"),
        ("v2_lro_fail", "Failed", "ResourceNotReady"),
        ("v2_internal_error", "Failed", "InternalServerError"),
        ("v2_out_of_quota", "Failed", "OutOfQuota"),
    ],
)
def test_f4_to_f7_deployment_operations_fail(
    emulator: Emulator, http: requests.Session, faults: Faults, kind: str, status: str, code: str
) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    faults.add(route="v2.deployment.put", kind=kind)
    resp = put_deployment(http, emulator, ep, "green")
    doc = wait_op(http, emulator, resp)
    assert (doc["status"], doc["error"]["code"]) == (status, code)
    got = http.get(dep_url(emulator, ep, "green"), params=API, headers=headers(emulator)).json()
    assert got["properties"]["provisioningState"] == status
    assert score(http, emulator, ep).status_code == 200  # the endpoint is fine


def test_f8_name_taken_and_f9_kubernetes_plumbing(
    emulator: Emulator, http: requests.Session, faults: Faults
) -> None:
    faults.add(route="v2.endpoint.put", kind="v2_name_taken")
    resp = put_endpoint(http, emulator, unique())
    assert resp.status_code == 409 and "unique within a region" in resp.json()["error"]["message"]
    faults.add(route="v2.endpoint.put", kind="v2_k8s_not_found")
    resp = put_endpoint(http, emulator, unique())
    error = resp.json()["error"]
    assert resp.status_code == 404 and error["details"][0]["code"] == "InferencingClientCallFailed"
    assert error["additionalInfo"][0]["type"] == "ComponentName"


@pytest.mark.parametrize("status", [408, 424, 429])
def test_f11_scoring_faults(
    emulator: Emulator, http: requests.Session, faults: Faults, status: int
) -> None:
    faults.add(route="v2.score", kind="status", status=status)
    resp = score(http, emulator, "census-v2")
    assert resp.status_code == status
    if status == 424:
        assert resp.headers["ms-azureml-model-error-statuscode"]
        assert resp.headers["ms-azureml-model-error-reason"]
    assert score(http, emulator, "census-v2").status_code == 200


def test_f12_reported_failed_but_succeeded(
    emulator: Emulator, http: requests.Session, faults: Faults
) -> None:
    ep = make_endpoint(http, emulator, deployments=("blue", "green"), traffic={"blue": 100})
    faults.add(route="v2.endpoint.put", kind="v2_reported_failed")
    resp = put_endpoint(http, emulator, ep, traffic={"green": 100})
    assert wait_op(http, emulator, resp)["status"] == "Failed"
    got = http.get(ep_url(emulator, ep), params=API, headers=headers(emulator)).json()
    assert got["properties"]["provisioningState"] == "Succeeded"
    assert got["properties"]["traffic"] == {"green": 100}


def test_a_model_with_behaviour_fails_its_share_with_424(
    emulator: Emulator, http: requests.Session
) -> None:
    from amlretrain.emulator import learner

    bad = learner.with_behaviour(trained_on("census_train.csv"), error_rate=1.0)
    name = unique("bad")
    register(http, emulator, name, "1", upload_model(emulator, f"tests/{name}/model.json", bad))
    ep = make_endpoint(http, emulator, deployments=())
    resp = put_deployment(http, emulator, ep, "blue", model=f"azureml:{name}:1")
    assert wait_op(http, emulator, resp)["status"] == "Succeeded"
    resp = score(http, emulator, ep, deployment="blue", body=rows(n=2))
    assert resp.status_code == 424 and resp.headers["ms-azureml-model-error-statuscode"] == "500"


def test_a_job_writes_its_model_to_the_output_it_declares(
    emulator: Emulator, http: requests.Session
) -> None:
    name = unique("job")
    url = f"{ws_url(emulator)}/jobs/{name}"
    body = job_body(str(emulator.info.v2_training_data))
    body["properties"]["outputs"] = {
        "trained": {
            "jobOutputType": "uri_folder",
            "uri": "azureml://datastores/${{default_datastore}}/paths/${{name}}/${{output_name}}/",
        }
    }
    assert http.put(url, params=API, headers=headers(emulator), json=body).status_code == 201

    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = http.get(url, params=API, headers=headers(emulator)).json()
        return job if job["properties"]["status"] in ("Completed", "Failed") else None

    job = wait_for(done)
    assert job["properties"]["status"] == "Completed"
    uri = job["properties"]["outputs"]["trained"]["uri"]
    assert uri == f"azureml://datastores/workspaceblobstore/paths/{name}/trained/"
    assert set(job["properties"]["outputs"]) == {"trained"}
    model = unique("folder")
    register(http, emulator, model, "1", f"azureml://jobs/{name}/outputs/trained")
    ep = make_endpoint(http, emulator, deployments=())
    resp = put_deployment(http, emulator, ep, "blue", model=f"azureml:{model}:1")
    assert wait_op(http, emulator, resp)["status"] == "Succeeded"
    assert score(http, emulator, ep, deployment="blue").status_code == 200


def test_t3_no_mirror_to_a_kubernetes_deployment(
    emulator: Emulator, http: requests.Session
) -> None:
    ep = make_endpoint(http, emulator)
    model = f"azureml:{emulator.info.v2_model_name}:{emulator.info.v2_model_version}"
    body = {
        "location": "eastus",
        "properties": {"endpointComputeType": "Kubernetes", "model": model},
    }
    resp = http.put(dep_url(emulator, ep, "kube"), params=API, headers=headers(emulator), json=body)
    assert wait_op(http, emulator, resp)["status"] == "Succeeded"
    resp = put_endpoint(http, emulator, ep, traffic={"blue": 100}, mirrorTraffic={"kube": 10})
    assert resp.status_code == 400 and "T3" in resp.json()["error"]["message"]


def test_an_unseeded_emulator_has_the_v2_workspace_and_nothing_in_it(emulator: Emulator) -> None:
    with (
        Emulator(seed=False, azurite=emulator._azurite) as bare,
        requests.Session() as http,
    ):
        http.trust_env = False
        assert bare.info.v2_endpoint is None and bare.info.v2_workspace == "census-ws"
        listed = http.get(f"{ws_url(bare)}/onlineEndpoints", params=API, headers=headers(bare))
        assert listed.status_code == 200 and listed.json()["value"] == []


def test_too_many_pending_requests_are_429(emulator: Emulator, http: requests.Session) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})  # capacity 1, 1 per instance
    assert emulator.state is not None
    with emulator.state.lock:
        blue = emulator.state.v2.endpoint_named(ep).deployment("blue")
        blue.in_flight = 2  # two requests pending: 2 x 1 x 1
    try:
        resp = score(http, emulator, ep)
        assert resp.status_code == 429 and resp.json()["error"]["code"] == "TooManyRequests"
    finally:
        with emulator.state.lock:
            blue.in_flight = 0
    assert score(http, emulator, ep).status_code == 200
    with emulator.state.lock:
        assert blue.in_flight == 0
