"""Helpers of the Azure ML v2 emulator tests: URLs, operations, resources, model files."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests

from amlretrain.emulator import Emulator
from tests.integration.conftest import wait_for

API = {"api-version": "2024-04-01"}
TERMINAL = ("Succeeded", "Failed", "Canceled")


def headers(emu: Emulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.info.arm_token}"}


def ws_url(emu: Emulator) -> str:
    i = emu.info
    return (
        f"{i.arm_base_url}/subscriptions/{i.v2_subscription_id}/resourceGroups/"
        f"{i.v2_resource_group}/providers/Microsoft.MachineLearningServices/workspaces/"
        f"{i.v2_workspace}"
    )


def ep_url(emu: Emulator, ep: str) -> str:
    return f"{ws_url(emu)}/onlineEndpoints/{ep}"


def dep_url(emu: Emulator, ep: str, dep: str) -> str:
    return f"{ep_url(emu, ep)}/deployments/{dep}"


def unique(prefix: str = "ep") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_op(http: requests.Session, emu: Emulator, resp: requests.Response) -> dict[str, Any]:
    """Poll ``Azure-AsyncOperation`` until the operation is terminal; its document."""
    url = resp.headers["Azure-AsyncOperation"]

    def done() -> dict[str, Any] | None:
        doc: dict[str, Any] = http.get(url, headers=headers(emu)).json()
        return doc if doc["status"] in TERMINAL else None

    result: dict[str, Any] = wait_for(done)
    return result


def wait_location(
    http: requests.Session, emu: Emulator, resp: requests.Response
) -> requests.Response:
    """Poll ``Location`` until it answers something other than 202."""
    url = resp.headers["Location"]

    def done() -> requests.Response | None:
        r = http.get(url, headers=headers(emu))
        return r if r.status_code != 202 else None

    result: requests.Response = wait_for(done)
    return result


def endpoint_body(auth: str = "Key", **props: Any) -> dict[str, Any]:
    return {
        "location": "eastus",
        "identity": {"type": "SystemAssigned"},
        "properties": {"authMode": auth, **props},
    }


def put_endpoint(
    http: requests.Session, emu: Emulator, ep: str, auth: str = "Key", **props: Any
) -> requests.Response:
    return http.put(
        ep_url(emu, ep), params=API, headers=headers(emu), json=endpoint_body(auth, **props)
    )


def deployment_body(model: str, **props: Any) -> dict[str, Any]:
    return {
        "location": "eastus",
        "sku": {"name": "Default", "capacity": 1},
        "properties": {"endpointComputeType": "Managed", "model": model, **props},
    }


def put_deployment(
    http: requests.Session, emu: Emulator, ep: str, dep: str, model: str | None = None
) -> requests.Response:
    model = model or f"azureml:{emu.info.v2_model_name}:{emu.info.v2_model_version}"
    return http.put(
        dep_url(emu, ep, dep), params=API, headers=headers(emu), json=deployment_body(model)
    )


def make_endpoint(
    http: requests.Session, emu: Emulator, deployments: tuple[str, ...] = ("blue",), **props: Any
) -> str:
    """A new Key endpoint with the seeded model on each deployment (no traffic unless given)."""
    ep = unique()
    resp = put_endpoint(http, emu, ep)
    assert resp.status_code == 201, resp.text
    assert wait_op(http, emu, resp)["status"] == "Succeeded"
    for dep in deployments:
        resp = put_deployment(http, emu, ep, dep)
        assert resp.status_code == 201, resp.text
        assert wait_op(http, emu, resp)["status"] == "Succeeded"
    if props:
        set_traffic(http, emu, ep, **props)
    return ep


def set_traffic(http: requests.Session, emu: Emulator, ep: str, **props: Any) -> dict[str, Any]:
    resp = put_endpoint(http, emu, ep, **props)
    assert resp.status_code == 200, resp.text
    doc = wait_op(http, emu, resp)
    assert doc["status"] == "Succeeded", doc
    return doc


def keys(http: requests.Session, emu: Emulator, ep: str) -> dict[str, str]:
    resp = http.post(ep_url(emu, ep) + "/listKeys", params=API, headers=headers(emu))
    assert resp.status_code == 200, resp.text
    result: dict[str, str] = resp.json()
    return result


def rows(name: str = "census_new.csv", n: int = 5) -> dict[str, Any]:
    from importlib import resources

    text = (resources.files("amlretrain.emulator") / "data" / name).read_text()
    lines = [line.split(",") for line in text.splitlines()]
    return {"input_data": {"columns": lines[0], "data": lines[1 : n + 1]}}


def score(
    http: requests.Session,
    emu: Emulator,
    ep: str,
    key: str | None = None,
    deployment: str | None = None,
    body: dict[str, Any] | None = None,
) -> requests.Response:
    assert emu.state is not None
    with emu.state.lock:
        uri = emu.state.v2.endpoint_named(ep).resource["properties"]["scoringUri"]
    hdrs = {"Authorization": f"Bearer {key or keys(http, emu, ep)['primaryKey']}"}
    if deployment:
        hdrs["azureml-model-deployment"] = deployment
    return http.post(uri, json=body or rows(), headers=hdrs)


def upload_model(emu: Emulator, path: str, data: bytes) -> str:
    """Write a blob to workspaceblobstore; its datastore URI."""
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(emu.info.storage_connection_string) as svc:
        svc.get_blob_client("workspaceblobstore", path).upload_blob(data, overwrite=True)
    return f"azureml://datastores/workspaceblobstore/paths/{path}"


def trained_on(csv_name: str) -> bytes:
    from importlib import resources

    from amlretrain.emulator import learner

    data = (resources.files("amlretrain.emulator") / "data" / csv_name).read_bytes()
    return learner.train(data, label="income").to_bytes()


def register(http: requests.Session, emu: Emulator, name: str, version: str, uri: str) -> str:
    resp = http.put(
        f"{ws_url(emu)}/models/{name}/versions/{version}",
        params=API,
        headers=headers(emu),
        json={"properties": {"modelUri": uri, "modelType": "custom_model"}},
    )
    assert resp.status_code == 201, resp.text
    result: str = resp.json()["id"]
    return result


@contextmanager
def slow_operations(emu: Emulator) -> Iterator[None]:
    """Operations started inside stay running until the block ends (then finish at once)."""
    assert emu.state is not None
    before = emu.state.lro_delay
    emu.state.lro_delay = 600.0
    try:
        yield
    finally:
        emu.state.lro_delay = before
        finish_now(emu)


def finish_now(emu: Emulator) -> None:
    """Complete every running operation now."""
    assert emu.state is not None
    with emu.state.lock:
        for op in emu.state.operations.values():
            if not op.done:
                op.due = 0.0
        emu.state.advance()
