"""The v2 models (lossless on the swagger's own examples), ModelRef and the traffic rules."""

from __future__ import annotations

import copy
import doctest
import json
from pathlib import Path
from typing import Any

import pytest

from amlretrain.azureml import models, traffic
from amlretrain.azureml.models import (
    CommandJob,
    ModelContainer,
    ModelRef,
    ModelVersion,
    OnlineDeployment,
    OnlineEndpoint,
)
from amlretrain.azureml.traffic import TrafficMap, endpoint_put_body
from amlretrain.errors import ConfigurationError

EXAMPLES = Path(__file__).parent / "data" / "azureml-v2" / "examples"
SUB, RG, WS = "00000000-1111-2222-3333-444444444444", "test-rg", "my-aml-workspace"
W = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices/workspaces/{WS}"


def example(path: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / path).read_text(encoding="utf-8"))
    return data


def bodies(path: str) -> list[dict[str, Any]]:
    """Every resource body of an example: responses (list items too) and the request."""
    data = example(path)
    found = []
    request = data["parameters"].get("body")
    if isinstance(request, dict) and "properties" in request:
        found.append(request)
    for response in data["responses"].values():
        body = response.get("body")
        if isinstance(body, dict) and "value" in body:
            found.extend(body["value"])
        elif isinstance(body, dict) and "properties" in body:
            found.append(body)
    assert found, path
    return found


CASES = [
    (OnlineEndpoint, "Workspace/OnlineEndpoint/get.json"),
    (OnlineEndpoint, "Workspace/OnlineEndpoint/createOrUpdate.json"),
    (OnlineEndpoint, "Workspace/OnlineEndpoint/list.json"),
    (OnlineEndpoint, "Workspace/OnlineEndpoint/update.json"),
    (OnlineDeployment, "OnlineDeployment/ManagedOnlineDeployment/get.json"),
    (OnlineDeployment, "OnlineDeployment/ManagedOnlineDeployment/createOrUpdate.json"),
    (OnlineDeployment, "OnlineDeployment/KubernetesOnlineDeployment/get.json"),
    (OnlineDeployment, "OnlineDeployment/KubernetesOnlineDeployment/createOrUpdate.json"),
    (OnlineDeployment, "OnlineDeployment/list.json"),
    (ModelVersion, "Workspace/ModelVersion/createOrUpdate.json"),
    (ModelVersion, "Workspace/ModelVersion/get.json"),
    (ModelVersion, "Workspace/ModelVersion/list.json"),
    (ModelContainer, "Workspace/ModelContainer/get.json"),
    (ModelContainer, "Workspace/ModelContainer/list.json"),
    (CommandJob, "Job/CommandJob/createOrUpdate.json"),
    (CommandJob, "Job/CommandJob/get.json"),
    (CommandJob, "Job/CommandJob/list.json"),
]


@pytest.mark.parametrize(("cls", "path"), CASES)
def test_every_example_body_round_trips_exactly(cls: Any, path: str) -> None:
    for body in bodies(path):
        original = copy.deepcopy(body)
        model = cls.from_dict(body)
        assert model.to_dict() == original
        assert list(model.to_dict()) == list(original)  # member order too
        assert body == original  # reading does not change the input


@pytest.mark.parametrize(("cls", "path"), CASES)
def test_every_known_member_of_the_examples_is_typed_not_left_in_extra(cls: Any, path: str):
    for body in bodies(path):
        model = cls.from_dict(body)
        assert model.extra == {}, path
        assert model.properties is not None and model.properties.extra == {}, path


def test_unknown_members_and_odd_casing_are_kept_and_written_back_as_read():
    doc = {
        "Location": "westeurope",
        "futureMember": {"x": [1, 2]},
        "properties": {"AuthMode": "Key", "Traffic": {"blue": 100}, "newThing": True},
    }
    ep = OnlineEndpoint.from_dict(copy.deepcopy(doc))
    assert ep.location == "westeurope" and ep.auth_mode == "Key" and ep.traffic == {"blue": 100}
    assert ep.to_dict() == doc
    put = ep.for_put()
    assert put["futureMember"] == {"x": [1, 2]} and put["properties"]["newThing"] is True
    assert put["location"] == "westeurope" and put["properties"]["authMode"] == "Key"


def test_a_member_of_an_unexpected_shape_is_kept_raw():
    doc = {"properties": "not an object", "sku": 5}
    dep = OnlineDeployment.from_dict(doc)
    assert dep.properties is None and dep.sku is None
    assert dep.to_dict() == doc


def test_for_put_drops_exactly_the_read_only_members_of_the_endpoint():
    body = bodies("Workspace/OnlineEndpoint/get.json")[0]
    put = OnlineEndpoint.from_dict(body).for_put()
    assert not {"id", "name", "type", "systemData"} & set(put)
    assert not {"scoringUri", "swaggerUri", "provisioningState", "keys"} & set(put["properties"])
    assert "principalId" not in put["identity"] and "tenantId" not in put["identity"]
    for identity in put["identity"]["userAssignedIdentities"].values():
        assert identity == {}
    # everything else as read
    assert put["properties"]["traffic"] == body["properties"]["traffic"]
    assert put["properties"]["compute"] == body["properties"]["compute"]
    assert put["sku"] == body["sku"] and put["kind"] == body["kind"]
    assert put["location"] == body["location"] and put["tags"] == body["tags"]


def test_for_put_of_a_job_drops_status_parameters_and_service_status():
    body = bodies("Job/CommandJob/get.json")[0]
    put = CommandJob.from_dict(body).for_put()
    props = put["properties"]
    assert "status" not in props and "parameters" not in props
    for service in props["services"].values():
        assert "status" not in service and "errorMessage" not in service
        assert service["endpoint"] == "string"
    assert props["command"] == "string" and props["jobType"] == "Command"


def test_views_the_loop_needs():
    ep = OnlineEndpoint.from_dict(bodies("Workspace/OnlineEndpoint/get.json")[0])
    assert ep.provisioning_state == "Creating" and ep.scoring_uri.startswith("https://")
    assert ep.mirror_traffic == {}
    dep = OnlineDeployment.from_dict(bodies("OnlineDeployment/ManagedOnlineDeployment/get.json")[0])
    assert (dep.model, dep.capacity, dep.instance_type) == ("string", 1, "string")
    assert dep.provisioning_state == "Creating"
    version = ModelVersion.from_dict(bodies("Workspace/ModelVersion/get.json")[0])
    assert version.model_type == "CustomModel" and version.model_uri == "string"
    job = CommandJob.from_dict(bodies("Job/CommandJob/get.json")[0])
    assert job.status == "NotStarted" and not job.is_terminal
    assert set(job.outputs) == {"string"}
    done = CommandJob.from_dict({"name": "j1", "properties": {"status": "Completed"}})
    assert done.is_terminal
    assert {"Completed", "Failed", "Canceled"} == models.JOB_TERMINAL_STATUSES


def test_a_traffic_value_sent_as_text_is_read_as_a_number():
    ep = OnlineEndpoint.from_dict({"properties": {"traffic": {"blue": "100", "bad": "x"}}})
    assert ep.traffic == {"blue": 100}


def test_a_job_output_uri_for_registering_a_model():
    job = CommandJob.from_dict({"name": "j1", "properties": {"outputs": {"model": {}}}})
    assert job.output_uri("model", "/m.pkl") == "azureml://jobs/j1/outputs/model/paths/m.pkl"
    with pytest.raises(ConfigurationError, match="no output 'other'"):
        job.output_uri("other")


# -- deployments derived from the live one ------------------------------------------------------


def _live_deployment() -> OnlineDeployment:
    body = bodies("OnlineDeployment/ManagedOnlineDeployment/get.json")[0]
    body = {**body, "id": f"{W}/onlineEndpoints/ep/deployments/blue", "name": "blue"}
    return OnlineDeployment.from_dict(body)


def test_with_model_changes_only_the_model_and_writes_the_arm_id():
    live = _live_deployment()
    new = live.with_model("azureml:census:4")
    assert new.model == f"{W}/models/census/versions/4"
    before, after = live.to_dict(), new.to_dict()
    assert after["properties"].pop("model") != before["properties"].pop("model")
    assert after == before


def test_with_model_passes_a_registry_model_through_and_needs_a_workspace_otherwise():
    live = _live_deployment()
    reg = "azureml://registries/shared/models/census/versions/2"
    assert live.with_model(reg).model == reg
    bare = OnlineDeployment.from_dict({"properties": {"model": "x"}})
    with pytest.raises(ConfigurationError, match="workspace="):
        bare.with_model("azureml:census:4")
    assert bare.with_model("azureml:m:1", workspace=("s", "r", "w")).model.endswith(
        "/workspaces/w/models/m/versions/1"
    )


def test_copy_as_keeps_the_settings_drops_the_read_only_members():
    live = _live_deployment()
    green = live.copy_as("green", model="azureml:census:5")
    doc = green.to_dict()
    assert doc["name"] == "green"
    assert not {"id", "type", "systemData"} & set(doc)
    assert "provisioningState" not in doc["properties"]
    assert "principalId" not in doc["identity"]
    assert green.model is not None and green.model.endswith("/models/census/versions/5")
    assert green.instance_type == live.instance_type and green.sku == live.sku
    keep = ("codeConfiguration", "environmentId", "requestSettings", "livenessProbe")
    for member in keep:
        assert doc["properties"][member] == live.to_dict()["properties"][member]
    with pytest.raises(ConfigurationError):
        live.copy_as("")


# -- model references --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "azureml:census:3",
        f"{W}/models/census/versions/3",
        f"{W}/models/census/versions/3".upper().replace("CENSUS", "census"),
        f"azureml:{W}/models/census/versions/3",
        f"{W.lower()}/models/census/versions/3/",
    ],
)
def test_model_references_in_every_workspace_form(text: str) -> None:
    ref = ModelRef.parse(text)
    assert (ref.name, ref.version, ref.registry) == ("census", "3", None)
    assert ref.short == "azureml:census:3"
    assert ref.arm_id(SUB, RG, WS) == f"{W}/models/census/versions/3"


def test_a_registry_reference():
    ref = ModelRef.parse("azureml://registries/shared/models/census/versions/7")
    assert (ref.registry, ref.name, ref.version) == ("shared", "census", "7")
    assert ref.registry_uri == "azureml://registries/shared/models/census/versions/7"
    with pytest.raises(ConfigurationError, match="registry model"):
        ref.arm_id(SUB, RG, WS)


def test_an_arm_id_of_another_workspace_is_not_moved_silently():
    ref = ModelRef.parse(f"{W}/models/census/versions/3")
    with pytest.raises(ConfigurationError, match="belongs to workspace"):
        ref.arm_id(SUB, RG, "other-ws")


def test_an_ilearner_blob_is_refused_with_why():
    url = "https://acct.blob.core.windows.net/models/census.ilearner?sv=1&sig=SECRET"
    with pytest.raises(ConfigurationError) as info:
        ModelRef.parse(url)
    text = str(info.value)
    assert "Studio (classic)" in text and "no loader" in text and "retrain" in text
    assert "SECRET" not in text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("census", "not a model version reference"),
        ("azureml:census", "not a model version reference"),
        ("azureml:census@latest", "label"),
        ("azureml://datastores/workspaceblobstore/paths/m.pkl", "register"),
        ("azureml://jobs/j1/outputs/model/paths/m.pkl", "register"),
        (f"{W}/models/census", "not a model version reference"),
        (
            "/subscriptions/s/resourceGroups/r/providers/Other/workspaces/w/models/m/versions/1",
            "not",
        ),
        ("", "required"),
    ],
)
def test_anything_else_is_refused_clearly(text: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        ModelRef.parse(text)


def test_the_module_examples_run():
    for module in (models, traffic):
        result = doctest.testmod(module)
        assert result.attempted and not result.failed, module.__name__


# -- traffic -----------------------------------------------------------------------------------


DEPLOYMENTS = ["blue", "Green"]


@pytest.mark.parametrize(
    ("live", "mirror", "says"),
    [
        ({"blue": 90}, {}, r"sums to 90%.*\(T1\)"),
        ({"blue": 60, "green": 60}, {}, r"sums to 120%"),
        ({"blue": 100}, {"green": 51}, r"at most 50% \(T2\)"),
        ({"blue": 100}, {"green": 10, "blue": 5}, r"one\s+deployment only \(T2\)"),
        ({"blue": 90, "green": 10}, {"green": 10}, r"both live .* \(T4\)"),
        ({"blue": 100, "red": 0}, {}, "'red', which is no deployment"),
        ({"blue": 100}, {"red": 10}, "mirror traffic names 'red'"),
        ({"blue": 100, "BLUE": 0}, {}, "twice"),
        ({"blue": 100.0}, {}, "whole percent"),
        ({"blue": True}, {}, "whole percent"),
        ({"blue": 110, "green": -10}, {}, "0 to 100"),
    ],
)
def test_traffic_rules_are_checked_before_anything_is_sent(live, mirror, says) -> None:
    with pytest.raises(ConfigurationError, match=says):
        TrafficMap(live, mirror).validate(DEPLOYMENTS)


def test_valid_maps_get_the_deployments_spelling():
    checked = TrafficMap({"blue": 90, "green": 10}).validate(DEPLOYMENTS)
    assert checked.live == {"blue": 90, "Green": 10} and checked.serving == ("blue", "Green")
    assert TrafficMap({}, {"green": 0}).validate(DEPLOYMENTS).live == {}  # traffic off: 0
    assert TrafficMap({"blue": 100}, {"green": 50}).validate(DEPLOYMENTS).mirror == {"Green": 50}


def test_the_endpoint_body_is_the_endpoint_as_read_with_the_whole_traffic():
    body = bodies("Workspace/OnlineEndpoint/get.json")[0]
    body["properties"]["mirrorTraffic"] = {"blue": 10}
    ep = OnlineEndpoint.from_dict(body)
    put = endpoint_put_body(ep, TrafficMap({"blue": 0, "green": 100}, {}), ["blue", "green"])
    assert put["properties"]["traffic"] == {"blue": 0, "green": 100}
    assert put["properties"]["mirrorTraffic"] == {}
    expected = ep.for_put()
    expected["properties"]["traffic"] = {"blue": 0, "green": 100}
    expected["properties"]["mirrorTraffic"] = {}
    assert put == expected
    assert not {"id", "name", "type", "systemData"} & set(put)


def test_an_endpoint_not_read_from_the_service_gives_no_body():
    with pytest.raises(ConfigurationError, match="read it from the service"):
        endpoint_put_body(OnlineEndpoint(), TrafficMap({"blue": 100}), ["blue"])
