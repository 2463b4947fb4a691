"""The ready scenario: sample data in Azurite, an initial model, and the seeded web services.

* ``datasets/census_train.csv`` and ``datasets/census_new.csv`` (label ``income``);
* ``models/initial.ilearner``, trained on census_train.csv the way the training service
  trains (75/25 split, logistic regression);
* a classic TRAINING web service (default endpoint: BES ``input1`` CSV -> ``output1``
  ``.ilearner`` + ``output2`` evaluation CSV);
* a classic PREDICTIVE web service with its default endpoint and a non-default endpoint
  ``retrain`` whose resource ``Census Model [trained model]`` points at initial.ilearner;
* a New (ARM) predictive web service ``census-predictive`` in resource group
  ``amlretrain-demo`` of subscription ``00000000-0000-0000-0000-000000000000``, from
  ``data/predictive_definition.json``, its trained-model asset uri pointing at
  initial.ilearner with a read SAS.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from importlib import resources
from typing import Any

import attrs

from amlretrain.emulator._storage import Storage
from amlretrain.emulator.arm import ArmApi, runtime_base
from amlretrain.emulator.classic import api_location
from amlretrain.emulator.state import (
    ClassicEndpoint,
    ClassicService,
    State,
    Workspace,
    ci_get,
    new_id,
    trained_model_asset,
)

__all__ = [
    "ARM_SERVICE_NAME",
    "DATA_CONTAINER",
    "MODEL_CONTAINER",
    "PREDICTIVE_ENDPOINT",
    "RESOURCE_GROUP",
    "RESOURCE_NAME",
    "SUBSCRIPTION_ID",
    "Seeded",
    "seed",
]

SUBSCRIPTION_ID = "00000000-0000-0000-0000-000000000000"
RESOURCE_GROUP = "amlretrain-demo"
ARM_SERVICE_NAME = "census-predictive"
RESOURCE_NAME = "Census Model [trained model]"
PREDICTIVE_ENDPOINT = "retrain"
DATA_CONTAINER = "datasets"
MODEL_CONTAINER = "models"
LABEL = "income"


@attrs.frozen(kw_only=True)
class Seeded:
    """What the seed created (ids, locations and keys)."""

    training_service: str
    training_endpoint: str
    training_endpoint_api_location: str
    training_api_key: str = attrs.field(repr=False)
    predictive_service: str
    predictive_default_endpoint: str
    predictive_endpoint: str
    predictive_endpoint_api_location: str
    predictive_api_key: str = attrs.field(repr=False)
    predictive_resource_name: str
    arm_service_name: str
    arm_service_id: str
    arm_api_location: str
    arm_api_key: str = attrs.field(repr=False)
    training_data: str
    new_training_data: str
    initial_model: str


def _data(name: str) -> bytes:
    return (resources.files("amlretrain.emulator") / "data" / name).read_bytes()


def seed(
    *, state: State, storage: Storage, arm: ArmApi, workspace: Workspace, base_url: str
) -> Seeded:
    """Create the ready scenario (see the module docstring)."""
    from amlretrain.emulator import learner

    train_csv = _data("census_train.csv")
    storage.upload(DATA_CONTAINER, "census_train.csv", train_csv)
    storage.upload(DATA_CONTAINER, "census_new.csv", _data("census_new.csv"))
    part, _ = learner.split_holdout(train_csv)
    model = learner.train(part, label=LABEL)
    storage.upload(MODEL_CONTAINER, "initial.ilearner", model.to_bytes())
    sas = storage.read_sas(MODEL_CONTAINER, "initial.ilearner", lifetime=timedelta(days=3650))
    model_location = {
        "BaseLocation": storage.base_location,
        "RelativeLocation": f"{MODEL_CONTAINER}/initial.ilearner",
        "SasBlobToken": sas,
    }

    training = ClassicService(
        id=new_id(),
        name="Census Income [Training]",
        description="Trains the census income model (BES: input1 -> output1, output2).",
        workspace_id=workspace.id,
        kind="training",
        label=LABEL,
        columns=tuple(train_csv.decode("utf-8").splitlines()[0].split(",")),
    )
    training.endpoints["default"] = ClassicEndpoint(
        name="default", endpoint_id=new_id(), description="Default endpoint"
    )
    predictive = ClassicService(
        id=new_id(),
        name="Census Income [Predictive Exp.]",
        description="Scores census rows: probability that income is >50K.",
        workspace_id=workspace.id,
        kind="predictive",
    )
    resource = {"Name": RESOURCE_NAME, "Kind": "Resource", "Location": model_location}
    predictive.endpoints["default"] = ClassicEndpoint(
        name="default",
        endpoint_id=new_id(),
        description="Default endpoint",
        resources=[copy.deepcopy(resource)],
    )
    retrain = ClassicEndpoint(
        name=PREDICTIVE_ENDPOINT,
        endpoint_id=new_id(),
        description="Endpoint that receives retrained models",
        resources=[copy.deepcopy(resource)],
    )
    predictive.endpoints[PREDICTIVE_ENDPOINT] = retrain
    with state.lock:
        workspace.services[training.id] = training
        workspace.services[predictive.id] = predictive

    definition: dict[str, Any] = json.loads(_data("predictive_definition.json"))
    props = definition["properties"]
    found = trained_model_asset(props)
    if found is None:
        raise RuntimeError("predictive_definition.json has no trained-model asset")
    location = ci_get(found[1], "locationInfo")
    location["uri"] = storage.base_location + f"{MODEL_CONTAINER}/initial.ilearner" + sas
    props["storageAccount"] = {"name": storage.account_name, "key": storage.account_key}
    props["machineLearningWorkspace"] = {"id": workspace.id}
    svc = arm.create_now(base_url, (SUBSCRIPTION_ID, RESOURCE_GROUP, ARM_SERVICE_NAME), definition)

    default = training.endpoints["default"]
    return Seeded(
        training_service=training.id,
        training_endpoint=default.name,
        training_endpoint_api_location=api_location(base_url, workspace.id, default),
        training_api_key=default.primary_key,
        predictive_service=predictive.id,
        predictive_default_endpoint="default",
        predictive_endpoint=PREDICTIVE_ENDPOINT,
        predictive_endpoint_api_location=api_location(base_url, workspace.id, retrain),
        predictive_api_key=retrain.primary_key,
        predictive_resource_name=RESOURCE_NAME,
        arm_service_name=ARM_SERVICE_NAME,
        arm_service_id=str(svc.resource["id"]),
        arm_api_location=runtime_base(base_url, svc),
        arm_api_key=svc.keys["primary"],
        training_data=f"{DATA_CONTAINER}/census_train.csv",
        new_training_data=f"{DATA_CONTAINER}/census_new.csv",
        initial_model=f"{MODEL_CONTAINER}/initial.ilearner",
    )
