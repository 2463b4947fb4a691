"""The seeded Azure ML v2 workspace: census data, a registered model, an endpoint serving it.

* workspace ``census-ws`` in resource group ``amlretrain-v2`` of the emulator's
  subscription (region ``eastus``; it exists without ``seed`` too);
* blobs ``data/census_train.csv`` and ``data/census_new.csv`` in the Azurite container
  ``workspaceblobstore`` (the datastore of the same name);
* model ``census`` version ``1``: the learner trained on census_train.csv (75% of it, as
  the classic initial model), at ``azureml://datastores/workspaceblobstore/paths/models/
  census/1/model.json``;
* endpoint ``census-v2`` (``authMode: Key``) with deployment ``blue`` serving
  ``azureml:census:1`` and 100% of the traffic.

The resources are made through the API's own handlers (no faults apply to them) and their
operations completed at once.
"""

from __future__ import annotations

import json
import uuid
from importlib import resources
from typing import Any

import attrs

from amlretrain.emulator._server import Reply, Request
from amlretrain.emulator._storage import Storage
from amlretrain.emulator.faults import Faults
from amlretrain.emulator.state import State
from amlretrain.emulator.v2state import API_VERSION, DEFAULT_DATASTORE, PROVIDER, V2Workspace

__all__ = ["V2Seeded", "register_workspace", "seed_v2"]

RESOURCE_GROUP = "amlretrain-v2"
WORKSPACE = "census-ws"
LOCATION = "eastus"
ENDPOINT = "census-v2"
DEPLOYMENT = "blue"
MODEL = "census"
LABEL = "income"


@attrs.frozen(kw_only=True)
class V2Seeded:
    """What the v2 seed created."""

    v2_endpoint: str
    v2_deployment: str
    v2_model_name: str
    v2_model_version: str
    v2_training_data: str
    v2_new_training_data: str


def register_workspace(state: State, subscription_id: str) -> V2Workspace:
    """The v2 workspace (always there, seeded or not)."""
    with state.lock:
        ws: V2Workspace = state.v2.add_workspace(
            subscription_id, RESOURCE_GROUP, WORKSPACE, LOCATION
        )
        return ws


def _call(api: Any, handler: str, method: str, path: str, body: Any, base_url: str) -> None:
    req = Request(
        method=method,
        path=path,
        query={"api-version": API_VERSION},
        headers={"authorization": f"Bearer {api.arm_token}"},
        body=json.dumps(body).encode(),
        params={},
        route="v2.seed",
        base_url=base_url,
        request_id=str(uuid.uuid4()),
    )
    parts = path.split("/")
    params = {"sub": parts[2], "rg": parts[4], "ws": parts[8]}
    if "onlineEndpoints" in parts:
        params["ep"] = parts[parts.index("onlineEndpoints") + 1]
    if "deployments" in parts:
        params["dep"] = parts[parts.index("deployments") + 1]
    if "versions" in parts:
        params["name"], params["version"] = parts[10], parts[12]
    req = attrs.evolve(req, params=params)
    try:
        response = getattr(api, handler)(req)
    except Reply as reply:
        response = reply.response
    if response.status >= 300:
        raise RuntimeError(f"v2 seed: {method} {path} -> {response.status} {response.body!r:.300}")


def _finish(state: State) -> None:
    with state.lock:
        for op in state.operations.values():
            op.due = 0.0
        state.advance()


def seed_v2(
    *, state: State, storage: Storage, workspace: V2Workspace, base_url: str, arm_token: str
) -> V2Seeded:
    """Create the v2 scenario (see the module docstring)."""
    from amlretrain.emulator import learner
    from amlretrain.emulator.v2 import V2Api
    from amlretrain.emulator.v2assets import V2AssetsApi
    from amlretrain.emulator.v2jobs import JobRunner

    data = resources.files("amlretrain.emulator") / "data"
    train_csv = (data / "census_train.csv").read_bytes()
    storage.upload(DEFAULT_DATASTORE, "data/census_train.csv", train_csv)
    storage.upload(DEFAULT_DATASTORE, "data/census_new.csv", (data / "census_new.csv").read_bytes())
    part, _ = learner.split_holdout(train_csv)
    model_path = f"models/{MODEL}/1/model.json"
    storage.upload(DEFAULT_DATASTORE, model_path, learner.train(part, label=LABEL).to_bytes())

    quiet = Faults()
    api = V2Api(state=state, faults=quiet, arm_token=arm_token, storage=storage)
    runner = JobRunner(state=state, storage=storage, faults=quiet, job_duration=0)
    assets = V2AssetsApi(state=state, faults=quiet, arm_token=arm_token, runner=runner)
    w = workspace.arm_id
    uri = f"azureml://datastores/{DEFAULT_DATASTORE}/paths/{model_path}"
    version = {
        "properties": {
            "modelUri": uri,
            "modelType": "custom_model",
            "description": "Census income, trained on census_train.csv",
        }
    }
    _call(assets, "put_version", "PUT", f"{w}/models/{MODEL}/versions/1", version, base_url)
    endpoint: dict[str, Any] = {
        "location": LOCATION,
        "identity": {"type": "SystemAssigned"},
        "properties": {"authMode": "Key", "description": "Census income (v2)"},
    }
    _call(api, "put_endpoint", "PUT", f"{w}/onlineEndpoints/{ENDPOINT}", endpoint, base_url)
    _finish(state)
    deployment = {
        "location": LOCATION,
        "sku": {"name": "Default", "capacity": 1},
        "properties": {
            "endpointComputeType": "Managed",
            "model": f"{w}/models/{MODEL}/versions/1",
            "instanceType": "Standard_DS3_v2",
        },
    }
    dep_path = f"{w}/onlineEndpoints/{ENDPOINT}/deployments/{DEPLOYMENT}"
    _call(api, "put_deployment", "PUT", dep_path, deployment, base_url)
    _finish(state)
    endpoint["properties"]["traffic"] = {DEPLOYMENT: 100}
    _call(api, "put_endpoint", "PUT", f"{w}/onlineEndpoints/{ENDPOINT}", endpoint, base_url)
    _finish(state)
    assert PROVIDER in w
    return V2Seeded(
        v2_endpoint=ENDPOINT,
        v2_deployment=DEPLOYMENT,
        v2_model_name=MODEL,
        v2_model_version="1",
        v2_training_data=f"azureml://datastores/{DEFAULT_DATASTORE}/paths/data/census_train.csv",
        v2_new_training_data=f"azureml://datastores/{DEFAULT_DATASTORE}/paths/data/census_new.csv",
    )
