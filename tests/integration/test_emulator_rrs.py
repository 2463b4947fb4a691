"""The emulated request-response service and the classic management API, with plain requests.

The retrain loop end to end: train with BES, swap the model (classic PATCH / ARM PATCH),
and see the scores change; broken references fail as the real service does.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Any

import pytest
import requests

from amlretrain.emulator import Emulator, Faults
from amlretrain.emulator.classic import NO_UPDATABLE_RESOURCES
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

V = {"api-version": "2.0"}
ROWS: dict[str, Any] = json.loads(
    (resources.files("amlretrain.emulator") / "data" / "score_rows.json").read_text()
)


def train(http: requests.Session, emu: Emulator, relative: str) -> dict[str, str]:
    """Run a training job on census_new.csv writing the model to ``relative``."""
    jobs = f"{emu.info.training_endpoint_api_location}/jobs"
    headers = {"Authorization": f"Bearer {emu.info.training_api_key}"}
    conn = emu.info.storage_connection_string
    body = {
        "Inputs": {
            "input1": {"ConnectionString": conn, "RelativeLocation": emu.info.new_training_data}
        },
        "Outputs": {"output1": {"ConnectionString": conn, "RelativeLocation": relative}},
    }
    job_id = http.post(jobs, params=V, json=body, headers=headers).json()
    http.post(f"{jobs}/{job_id}/start", params=V, headers=headers)

    def finished() -> dict[str, Any] | None:
        doc: dict[str, Any] = http.get(f"{jobs}/{job_id}", params=V, headers=headers).json()
        return doc if doc["StatusCode"] == "Finished" else None

    result: dict[str, str] = wait_for(finished)["Results"]["output1"]
    return result


def score(
    http: requests.Session, base: str, key: str, *, swagger: bool = False
) -> requests.Response:
    params = {**V, "details": "true"}
    if swagger:
        params["format"] = "swagger"
        rows: Any = [dict(zip(ROWS["ColumnNames"], v, strict=True)) for v in ROWS["Values"]]
    else:
        rows = ROWS
    return http.post(
        f"{base}/execute",
        params=params,
        json={"Inputs": {"input1": rows}, "GlobalParameters": {}},
        headers={"Authorization": f"Bearer {key}"},
    )


def probabilities(resp: requests.Response) -> list[float]:
    assert resp.status_code == 200, resp.text
    table = resp.json()["Results"]["output1"]
    if isinstance(table, list):
        return [float(r["Scored Probabilities"]) for r in table]
    return [float(v[1]) for v in table["value"]["Values"]]


def mgmt(emu: Emulator, service: str | None, endpoint: str | None = None) -> str:
    url = f"{emu.info.management_url}/workspaces/{emu.info.workspace_id}/webservices"
    if service:
        url += f"/{service}"
    if endpoint:
        url += f"/endpoints/{endpoint}"
    return url


def ws_headers(emu: Emulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.info.workspace_token}"}


@pytest.fixture
def endpoint(emulator: Emulator, http: requests.Session) -> Any:
    """A fresh non-default endpoint on the classic predictive service (deleted afterwards)."""
    name = f"ep{time.monotonic_ns() % 10**9}"
    url = mgmt(emulator, emulator.info.predictive_service, name)
    resp = http.put(
        url, json={"Description": "test", "ThrottleLevel": "Low"}, headers=ws_headers(emulator)
    )
    assert resp.status_code == 201, resp.text
    yield resp.json()
    http.delete(url, headers=ws_headers(emulator))


def test_both_request_shapes_score_with_string_values_in_the_table_form(
    emulator: Emulator, http: requests.Session
) -> None:
    base, key = (
        str(emulator.info.predictive_endpoint_api_location),
        str(emulator.info.predictive_api_key),
    )
    table = score(http, base, key)
    value = table.json()["Results"]["output1"]["value"]
    assert value["ColumnNames"] == ["Scored Labels", "Scored Probabilities"]
    assert value["ColumnTypes"] == ["String", "Double"]
    assert all(isinstance(cell, str) for row in value["Values"] for cell in row)
    assert table.json()["Results"]["output1"]["type"] == "table"
    swagger = score(http, base, key, swagger=True)
    assert probabilities(swagger) == pytest.approx(probabilities(table))


def test_classic_retrain_patch_changes_the_scores_and_refresh_puts_the_experiment_model_back(
    emulator: Emulator, http: requests.Session, endpoint: dict[str, Any]
) -> None:
    base, key = endpoint["ApiLocation"], endpoint["PrimaryKey"]
    before = probabilities(score(http, base, key))
    model = train(http, emulator, f"rrs-tests/{endpoint['Name']}.ilearner")
    name = endpoint["Resources"][0]["Name"]
    url = mgmt(emulator, emulator.info.predictive_service, endpoint["Name"])
    patch = {
        "Resources": [
            {
                "Name": name,
                "Location": {
                    k: model[k] for k in ("BaseLocation", "RelativeLocation", "SasBlobToken")
                },
            }
        ]
    }
    resp = http.patch(url, json=patch, headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 200, resp.text
    got = http.get(url, headers=ws_headers(emulator)).json()
    assert got["Resources"][0]["Location"]["RelativeLocation"] == model["RelativeLocation"]
    after = probabilities(score(http, base, key))
    assert max(abs(a - b) for a, b in zip(before, after, strict=True)) > 0.05

    assert (
        http.post(
            url + "/refresh", json={"OverwriteResources": "False"}, headers=ws_headers(emulator)
        ).status_code
        == 304
    )
    back = http.post(
        url + "/refresh", json={"OverwriteResources": "True"}, headers=ws_headers(emulator)
    )
    assert back.status_code == 200
    assert probabilities(score(http, base, key)) == pytest.approx(before)
    again = http.post(
        url + "/refresh", json={"OverwriteResources": True}, headers=ws_headers(emulator)
    )
    assert again.status_code == 304


def test_new_service_patch_of_the_asset_uri_changes_the_scores(
    emulator: Emulator, http: requests.Session
) -> None:
    arm = {"Authorization": f"Bearer {emulator.info.arm_token}"}
    url = emulator.info.arm_base_url + str(emulator.info.arm_service_id)
    params = {"api-version": "2017-01-01"}
    base, key = str(emulator.info.arm_api_location), str(emulator.info.arm_api_key)
    definition = http.get(url, params=params, headers=arm).json()
    old_uri = definition["properties"]["assets"]["asset1"]["locationInfo"]["uri"]
    before = probabilities(score(http, base, key))
    model = train(http, emulator, "rrs-tests/arm.ilearner")
    new_uri = model["BaseLocation"] + model["RelativeLocation"] + model["SasBlobToken"]

    def patch_uri(uri: str) -> None:
        body = {
            "properties": {
                "packageType": "Graph",
                "assets": {"asset1": {"locationInfo": {"uri": uri}}},
            }
        }
        resp = http.patch(url, params=params, json=body, headers=arm)
        assert resp.status_code == 200
        op = resp.headers["Azure-AsyncOperation"]
        wait_for(lambda: http.get(op, headers=arm).json()["status"] == "Succeeded")

    patch_uri(new_uri)
    try:
        after = probabilities(score(http, base, key))
        assert max(abs(a - b) for a, b in zip(before, after, strict=True)) > 0.05
        kept = http.get(url, params=params, headers=arm).json()["properties"]["assets"]["asset1"]
        assert kept["name"] == "Census Model [trained model]"
    finally:
        patch_uri(old_uri)
    assert probabilities(score(http, base, key)) == pytest.approx(before)


def test_a_missing_blob_or_a_bad_sas_fails_scoring_with_resource_download(
    emulator: Emulator, http: requests.Session, endpoint: dict[str, Any]
) -> None:
    # PATCH refuses such references, so break the endpoint behind the API's back.
    state = emulator.state
    assert state is not None
    loc = endpoint["Resources"][0]["Location"]
    with state.lock:
        svc = state.workspaces[str(emulator.info.workspace_id)].services[
            str(emulator.info.predictive_service)
        ]
        resource = svc.endpoints[endpoint["Name"]].resources[0]
        resource["Location"] = {**loc, "RelativeLocation": "models/missing.ilearner"}
    resp = score(http, endpoint["ApiLocation"], endpoint["PrimaryKey"])
    assert resp.status_code == 500
    assert resp.json()["error"]["code"] == "InternalError"
    assert resp.json()["error"]["details"][0]["code"] == "ResourceDownload"
    with state.lock:
        resource["Location"] = {**loc, "SasBlobToken": loc["SasBlobToken"].replace("sig=", "sig=x")}
    resp = score(http, endpoint["ApiLocation"], endpoint["PrimaryKey"])
    assert resp.status_code == 500
    assert resp.json()["error"]["details"][0]["code"] == "ResourceDownload"
    assert "sig=" not in resp.text


def test_bytes_that_are_not_a_model_fail_with_resource_load_failed(
    emulator: Emulator, http: requests.Session, endpoint: dict[str, Any]
) -> None:
    from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

    from amlretrain.emulator.azurite import WELL_KNOWN_ACCOUNT, WELL_KNOWN_KEY

    with BlobServiceClient.from_connection_string(emulator.info.storage_connection_string) as svc:
        svc.get_blob_client("models", "junk.ilearner").upload_blob(b"not a model", overwrite=True)
    sas = generate_blob_sas(
        WELL_KNOWN_ACCOUNT,
        "models",
        "junk.ilearner",
        account_key=WELL_KNOWN_KEY,
        permission=BlobSasPermissions(read=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    loc = endpoint["Resources"][0]["Location"]
    junk = {**loc, "RelativeLocation": "models/junk.ilearner", "SasBlobToken": "?" + sas}
    patch = {"Resources": [{"Name": endpoint["Resources"][0]["Name"], "Location": junk}]}
    url = mgmt(emulator, emulator.info.predictive_service, endpoint["Name"])
    assert http.patch(url, json=patch, headers=ws_headers(emulator)).status_code == 200
    resp = score(http, endpoint["ApiLocation"], endpoint["PrimaryKey"])
    assert resp.status_code == 500
    assert resp.json()["error"]["details"][0]["code"] == "ResourceLoadFailed"


def test_scoring_errors(emulator: Emulator, http: requests.Session) -> None:
    base, key = (
        str(emulator.info.predictive_endpoint_api_location),
        str(emulator.info.predictive_api_key),
    )
    wrong = score(http, base, "wrong")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["details"][0]["code"] == "ScoreRequestUnauthorized"
    headers = {"Authorization": f"Bearer {key}"}
    missing = http.post(f"{base}/execute", params=V, json={"GlobalParameters": {}}, headers=headers)
    assert missing.status_code == 400
    assert missing.json()["error"]["details"][0]["code"] == "MissingRequestInput"
    bad_name = http.post(
        f"{base}/execute", params=V, json={"Inputs": {"inputX": ROWS}}, headers=headers
    )
    assert bad_name.json()["error"]["details"][0]["code"] == "InvalidInputNames"
    bad_rows = http.post(
        f"{base}/execute",
        params=V,
        json={"Inputs": {"input1": {"ColumnNames": ["age"], "Values": [["1"]]}}},
        headers=headers,
    )
    assert bad_rows.status_code == 400
    assert bad_rows.json()["error"]["code"] == "BadUserArgument"
    training = score(
        http, str(emulator.info.training_endpoint_api_location), str(emulator.info.training_api_key)
    )
    assert training.status_code == 400
    unknown = score(http, base.rsplit("/", 1)[0] + "/" + "0" * 32, key)
    assert unknown.status_code == 404


def test_classic_listing_and_every_endpoint_field(
    emulator: Emulator, http: requests.Session
) -> None:
    services = http.get(mgmt(emulator, None), headers=ws_headers(emulator)).json()
    ids = {s["Id"] for s in services}
    assert {emulator.info.training_service, emulator.info.predictive_service} <= ids
    svc = http.get(
        mgmt(emulator, emulator.info.predictive_service), headers=ws_headers(emulator)
    ).json()
    assert svc["DefaultEndpointName"] == "default"
    endpoints = http.get(
        mgmt(emulator, emulator.info.predictive_service) + "/endpoints",
        headers=ws_headers(emulator),
    ).json()
    assert svc["EndpointCount"] == len(endpoints)  # default and retrain, plus tests' own
    assert {"default", "retrain"} <= {ep["Name"] for ep in endpoints}
    fields = {
        "Name",
        "Description",
        "CreationTime",
        "WorkspaceId",
        "WebServiceId",
        "HelpLocation",
        "PrimaryKey",
        "SecondaryKey",
        "ApiLocation",
        "Version",
        "PreventUpdate",
        "SampleDataEnabled",
        "ExperimentLocation",
        "MaxConcurrentCalls",
        "DiagnosticsTraceLevel",
        "ThrottleLevel",
        "Resources",
    }
    assert all(set(ep) == fields for ep in endpoints)
    retrain = next(ep for ep in endpoints if ep["Name"] == "retrain")
    assert retrain["ApiLocation"] == emulator.info.predictive_endpoint_api_location
    resource = retrain["Resources"][0]
    assert resource["Name"] == emulator.info.predictive_resource_name
    assert set(resource["Location"]) == {"BaseLocation", "RelativeLocation", "SasBlobToken"}


def test_classic_auth_workspace_token_or_the_endpoints_own_key(
    emulator: Emulator, http: requests.Session
) -> None:
    url = mgmt(emulator, emulator.info.predictive_service, "retrain")
    own = {"Authorization": f"Bearer {emulator.info.predictive_api_key}"}
    assert http.get(url, headers=own).status_code == 200
    other = {"Authorization": f"Bearer {emulator.info.training_api_key}"}
    for headers in ({}, other, {"Authorization": "Bearer nope"}):
        resp = http.get(url, headers=headers)
        assert resp.status_code == 401
        assert resp.json()["error"]["details"][0]["code"] == "ManagementRequestUnauthorized"
    assert http.get(mgmt(emulator, None), headers=own).status_code == 401
    missing_ws = f"{emulator.info.management_url}/workspaces/{'0' * 32}/webservices"
    assert (
        http.get(missing_ws, headers=ws_headers(emulator)).json()["error"]["details"][0]["code"]
        == "WorkspaceNotFound"
    )
    missing_svc = http.get(mgmt(emulator, "0" * 32), headers=ws_headers(emulator))
    assert missing_svc.status_code == 404
    assert missing_svc.json()["error"]["details"][0]["code"] == "WebServiceNotFound"


def test_classic_patch_rules(
    emulator: Emulator, http: requests.Session, endpoint: dict[str, Any]
) -> None:
    h = ws_headers(emulator)
    loc = endpoint["Resources"][0]["Location"]
    name = endpoint["Resources"][0]["Name"]

    def patch(service: str, ep: str, resources: Any) -> requests.Response:
        return http.patch(mgmt(emulator, service, ep), json={"Resources": resources}, headers=h)

    default = patch(
        str(emulator.info.predictive_service), "default", [{"Name": name, "Location": loc}]
    )
    assert default.status_code == 400
    assert "default endpoint" in default.json()["error"]["message"]
    training = patch(
        str(emulator.info.training_service), "default", [{"Name": name, "Location": loc}]
    )
    assert training.status_code == 400
    assert NO_UPDATABLE_RESOURCES in training.json()["error"]["message"]
    ep_name, svc = endpoint["Name"], str(emulator.info.predictive_service)
    unknown = patch(svc, ep_name, [{"Name": "Other [trained model]", "Location": loc}])
    assert unknown.status_code == 400
    assert name in unknown.json()["error"]["message"]
    missing = patch(
        svc,
        ep_name,
        [{"Name": name, "Location": {**loc, "RelativeLocation": "models/nope.ilearner"}}],
    )
    assert missing.status_code == 400
    assert missing.json()["error"] == {
        "code": "BadArgument",
        "message": "Invalid argument provided.",
        "details": [missing.json()["error"]["details"][0]],
    }
    assert missing.json()["error"]["details"][0]["code"] == "InvalidBlob"
    bad_sas = patch(svc, ep_name, [{"Name": name, "Location": {**loc, "SasBlobToken": ""}}])
    assert bad_sas.json()["error"]["details"][0]["code"] == "InvalidBlob"
    ok = patch(svc, ep_name, [{"Name": name, "Location": loc}])
    assert ok.status_code == 200
    assert patch(svc, "nosuchendpoint", [{"Name": name, "Location": loc}]).status_code == 404


def test_a_classic_patch_without_resources_is_refused_and_changes_nothing(
    emulator: Emulator, http: requests.Session, endpoint: dict[str, Any]
) -> None:
    # API-NOTES 3.2 documents a PATCH with Resources only (the status is a GUESS).
    h = ws_headers(emulator)
    url = mgmt(emulator, str(emulator.info.predictive_service), endpoint["Name"])
    before = http.get(url, headers=h).json()
    for body in ({"Description": "d"}, {"ThrottleLevel": "High", "MaxConcurrentCalls": 9}, {}):
        resp = http.patch(url, json=body, headers=h)
        assert resp.status_code == 400, body
        assert resp.json()["error"]["code"] == "BadArgument"
        assert resp.json()["error"]["details"][0]["code"] == "RequestBodyInvalid"
    assert http.get(url, headers=h).json() == before


def test_classic_endpoint_names_and_settings(emulator: Emulator, http: requests.Session) -> None:
    h = ws_headers(emulator)
    svc = str(emulator.info.predictive_service)
    for bad in ("UPPER", "a" * 25, "with-dash"):
        resp = http.put(mgmt(emulator, svc, bad), json={}, headers=h)
        assert resp.status_code == 400, bad
    name = "a" * 24
    created = http.put(
        mgmt(emulator, svc, name),
        json={"ThrottleLevel": "High", "MaxConcurrentCalls": "30"},
        headers=h,
    )
    assert created.status_code == 201
    assert created.json()["MaxConcurrentCalls"] == 30
    assert (
        created.json()["Resources"]
        == http.get(mgmt(emulator, svc, "default"), headers=h).json()["Resources"]
    )
    too_many = http.put(
        mgmt(emulator, svc, name),
        json={"ThrottleLevel": "High", "MaxConcurrentCalls": 500},
        headers=h,
    )
    assert too_many.status_code == 400
    updated = http.put(mgmt(emulator, svc, name), json={"Description": "d"}, headers=h)
    assert updated.status_code == 200
    assert updated.json()["MaxConcurrentCalls"] == 4
    refresh_default = http.post(
        mgmt(emulator, svc, "default") + "/refresh", json={"OverwriteResources": "True"}, headers=h
    )
    assert refresh_default.status_code == 400
    assert http.delete(mgmt(emulator, svc, "default"), headers=h).status_code == 400
    assert http.delete(mgmt(emulator, svc, name), headers=h).status_code == 200
    assert http.get(mgmt(emulator, svc, name), headers=h).status_code == 404


def test_classic_faults_by_glob(emulator: Emulator, http: requests.Session, faults: Faults) -> None:
    faults.add(route="classic.*", kind="status", status=503, retry_after=2, count=None)
    resp = http.get(mgmt(emulator, None), headers=ws_headers(emulator))
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "2"
    assert resp.json()["error"]["code"] == "ServiceUnavailable"
    assert http.get(mgmt(emulator, None), headers=ws_headers(emulator)).status_code == 503
    faults.clear()
    assert http.get(mgmt(emulator, None), headers=ws_headers(emulator)).status_code == 200
