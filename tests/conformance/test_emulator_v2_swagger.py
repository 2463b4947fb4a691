"""Every Azure ML v2 response the emulator sends validates against the trimmed 2024-04-01
swagger (``mfe-2024-04-01.trimmed.json``), and every vendored example request is accepted.

Validation is as in :mod:`tests.conformance.test_emulator_swagger` (jsonschema, Draft 4,
a bare ``type: object`` is any value and optional members may be null); the swagger's
discriminators are resolved: a reference to a discriminated base (``OnlineDeployment``,
``JobBase``, ``JobInput`` ...) means "one of its subtypes, by the discriminator value".

The one example the emulator refuses as sent is listed in :data:`NOTES_WIN`: V2-NOTES,
which win over the swagger, forbid what it does.
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from amlretrain.emulator import Emulator
from tests.conformance.test_emulator_swagger import _loosen
from tests.integration.v2support import finish_now

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

REF = Path(__file__).parent / "reference" / "azureml-v2"
SPEC: dict[str, Any] = json.loads((REF / "mfe-2024-04-01.trimmed.json").read_text())
API = {"api-version": "2024-04-01"}

#: Example requests the emulator refuses because V2-NOTES (which win) forbid them.
NOTES_WIN = {
    "Workspace/OnlineEndpoint/createOrUpdate.json": (
        'its traffic {"string": 1} sums to 1 (T1: 0 or 100) and names a deployment that does '
        "not exist (traffic can be set only after the deployments exist, V2-NOTES 2.2): 400; "
        "the same request without traffic is accepted"
    ),
}


def _flatten(defs: dict[str, Any], name: str) -> dict[str, Any]:
    """A definition with its ``allOf`` bases merged in (swagger inheritance), so that an
    ``additionalProperties: false`` sees the inherited members."""
    d = copy.deepcopy(defs[name])
    props: dict[str, Any] = {}
    required: list[str] = []
    closed: Any = None
    for part in d.pop("allOf", []):
        base = _flatten(defs, part["$ref"].split("/")[-1])
        props.update(base.get("properties", {}))
        required += base.get("required", [])
        closed = base.get("additionalProperties", closed)
    props.update(d.get("properties", {}))
    if props:
        d["properties"] = props
        d.setdefault("type", "object")
    if required or d.get("required"):
        d["required"] = sorted({*required, *d.get("required", [])})
    if closed is not None:
        d.setdefault("additionalProperties", closed)
    d.pop("discriminator", None)
    return d


def _definitions() -> dict[str, Any]:
    raw = SPEC["definitions"]
    subtypes: dict[str, list[tuple[str, str]]] = {}
    for name, d in raw.items():
        value = d.get("x-ms-discriminator-value")
        for part in d.get("allOf", []):
            base = part["$ref"].split("/")[-1]
            if value and raw[base].get("discriminator"):
                subtypes.setdefault(base, []).append((name, value))
    flat = {name: _flatten(raw, name) for name in raw}

    def poly(node: Any) -> Any:
        if isinstance(node, dict):
            base = str(node.get("$ref", "")).split("/")[-1]
            if base in subtypes:
                return {**node, "$ref": f"#/definitions/__poly_{base}"}
            return {k: poly(v) for k, v in node.items()}
        if isinstance(node, list):
            return [poly(v) for v in node]
        return node

    defs: dict[str, Any] = _loosen({k: poly(v) for k, v in flat.items()})
    for base, subs in subtypes.items():
        key = raw[base]["discriminator"]
        defs[f"__poly_{base}"] = {
            "anyOf": [
                {"allOf": [{"properties": {key: {"enum": [v]}}}, {"$ref": f"#/definitions/{s}"}]}
                for s, v in subs
            ]
        }
    return defs


DEFS = _definitions()


def check_schema(schema: dict[str, Any], body: Any) -> None:
    import jsonschema

    root = {"definitions": DEFS, **_loosen(copy.deepcopy(schema))}
    cls = jsonschema.validators.validator_for({}, default=jsonschema.Draft4Validator)
    errors = sorted(cls(root).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def operation(operation_id: str) -> dict[str, Any]:
    """The swagger operation, with its ``method`` and ``path`` added."""
    for path, ops in SPEC["paths"].items():
        for method, op in ops.items():
            if isinstance(op, dict) and op.get("operationId") == operation_id:
                return dict(op, method=method, path=path)
    raise KeyError(operation_id)


def check(operation_id: str, resp: requests.Response) -> None:
    """The response's status is declared (or an error as ``default``) and its body fits."""
    op = operation(operation_id)
    declared = op["responses"].get(str(resp.status_code))
    if declared is None:
        assert resp.status_code >= 400, f"{operation_id}: undeclared {resp.status_code}"
        declared = op["responses"]["default"]
    for header in declared.get("headers", {}):
        if header != "Retry-After":  # not sent, on purpose (V2-NOTES 1.3)
            assert header in resp.headers, f"{operation_id} {resp.status_code}: no {header}"
    if "schema" in declared:
        check_schema(declared["schema"], resp.json())


class Session:
    """Sends example requests to the seeded workspace with fresh resource names."""

    def __init__(self, emu: Emulator, http: requests.Session) -> None:
        self.emu, self.http = emu, http
        tag = uuid.uuid4().hex[:6]
        self.names = {
            "endpointName": f"ex-{tag}",
            "deploymentName": f"dep-{tag}",
            "name": f"model-{tag}",
            "version": "1",
            "id": f"job-{tag}",
        }

    def url(self, path: str) -> str:
        info = self.emu.info
        out = path.replace("{subscriptionId}", str(info.v2_subscription_id))
        out = out.replace("{resourceGroupName}", str(info.v2_resource_group))
        out = out.replace("{workspaceName}", str(info.v2_workspace))
        for key, value in self.names.items():
            out = out.replace("{" + key + "}", value)
        return info.arm_base_url + out

    def send(
        self, operation_id: str, body: Any = None, example: str | None = None
    ) -> requests.Response:
        op = operation(operation_id)
        path = op["path"]
        params = dict(API)
        if example is not None:
            doc = json.loads((REF / "examples" / example).read_text())["parameters"]
            body = doc.get("body")
            path_names = {"subscriptionId", "resourceGroupName", "workspaceName", *self.names}
            params.update(
                {k: str(v) for k, v in doc.items() if k not in path_names and k != "body"}
            )
            params["api-version"] = "2024-04-01"
        resp = self.http.request(
            op["method"].upper(),
            self.url(path),
            params=params,
            json=body,
            headers={"Authorization": f"Bearer {self.emu.info.arm_token}"},
        )
        check(operation_id, resp)
        return resp

    def wait(self, resp: requests.Response) -> requests.Response:
        """Finish the operation and read its status document (validated as ARM's)."""
        finish_now(self.emu)
        url = resp.headers.get("Azure-AsyncOperation") or resp.headers["Location"]
        done = self.http.get(url, headers={"Authorization": f"Bearer {self.emu.info.arm_token}"})
        assert done.status_code in (200, 204, 500), done.text
        return done


EXAMPLES = sorted(str(p.relative_to(REF / "examples")) for p in (REF / "examples").rglob("*.json"))
ORDER = [
    ("Workspace/OnlineEndpoint/createOrUpdate.json", "OnlineEndpoints_CreateOrUpdate"),
    (
        "OnlineDeployment/ManagedOnlineDeployment/createOrUpdate.json",
        "OnlineDeployments_CreateOrUpdate",
    ),
    (
        "OnlineDeployment/KubernetesOnlineDeployment/createOrUpdate.json",
        "OnlineDeployments_CreateOrUpdate",
    ),
    ("OnlineDeployment/ManagedOnlineDeployment/get.json", "OnlineDeployments_Get"),
    ("OnlineDeployment/KubernetesOnlineDeployment/get.json", "OnlineDeployments_Get"),
    ("OnlineDeployment/ManagedOnlineDeployment/update.json", "OnlineDeployments_Update"),
    ("OnlineDeployment/KubernetesOnlineDeployment/update.json", "OnlineDeployments_Update"),
    ("OnlineDeployment/list.json", "OnlineDeployments_List"),
    ("OnlineDeployment/getLogs.json", "OnlineDeployments_GetLogs"),
    ("Workspace/OnlineEndpoint/get.json", "OnlineEndpoints_Get"),
    ("Workspace/OnlineEndpoint/list.json", "OnlineEndpoints_List"),
    ("Workspace/OnlineEndpoint/update.json", "OnlineEndpoints_Update"),
    ("Workspace/OnlineEndpoint/listKeys.json", "OnlineEndpoints_ListKeys"),
    ("Workspace/OnlineEndpoint/regenerateKeys.json", "OnlineEndpoints_RegenerateKeys"),
    ("Workspace/OnlineEndpoint/getToken.json", "OnlineEndpoints_GetToken"),
    ("Workspace/ModelContainer/createOrUpdate.json", "ModelContainers_CreateOrUpdate"),
    ("Workspace/ModelContainer/get.json", "ModelContainers_Get"),
    ("Workspace/ModelContainer/list.json", "ModelContainers_List"),
    ("Workspace/ModelVersion/createOrUpdate.json", "ModelVersions_CreateOrUpdate"),
    ("Workspace/ModelVersion/get.json", "ModelVersions_Get"),
    ("Workspace/ModelVersion/list.json", "ModelVersions_List"),
    ("Workspace/ModelVersion/delete.json", "ModelVersions_Delete"),
    ("Workspace/ModelContainer/delete.json", "ModelContainers_Delete"),
    ("Job/CommandJob/createOrUpdate.json", "Jobs_CreateOrUpdate"),
    ("Job/CommandJob/get.json", "Jobs_Get"),
    ("Job/CommandJob/list.json", "Jobs_List"),
    ("Job/cancel.json", "Jobs_Cancel"),
    ("Job/delete.json", "Jobs_Delete"),
    ("Workspace/OnlineDeployment/delete.json", "OnlineDeployments_Delete"),
    ("Workspace/OnlineEndpoint/delete.json", "OnlineEndpoints_Delete"),
]


def test_the_sequence_covers_every_example_and_operation() -> None:
    assert sorted(e for e, _ in ORDER) == EXAMPLES
    ids = {
        op["operationId"]
        for ops in SPEC["paths"].values()
        for op in ops.values()
        if isinstance(op, dict) and "operationId" in op
    }
    assert {o for _, o in ORDER} == ids


def test_every_example_request_is_accepted_and_every_answer_validates(
    emulator: Emulator, http: requests.Session
) -> None:
    s = Session(emulator, http)
    for example, operation_id in ORDER:
        if example in NOTES_WIN:
            resp = s.send(operation_id, example=example)
            assert resp.status_code == 400 and "traffic" in resp.json()["error"]["message"]
            body = json.loads((REF / "examples" / example).read_text())["parameters"]["body"]
            del body["properties"]["traffic"]
            resp = s.send(operation_id, body=body)
        else:
            resp = s.send(operation_id, example=example)
        assert 200 <= resp.status_code < 300, f"{example}: {resp.status_code} {resp.text}"
        if "Azure-AsyncOperation" in resp.headers or "Location" in resp.headers:
            s.wait(resp)


def test_the_seeded_resources_and_operation_documents_validate(
    emulator: Emulator, http: requests.Session
) -> None:
    s = Session(emulator, http)
    s.names.update(endpointName="census-v2", deploymentName="blue", name="census", version="1")
    for operation_id in (
        "OnlineEndpoints_Get",
        "OnlineEndpoints_List",
        "OnlineDeployments_Get",
        "OnlineDeployments_List",
        "ModelContainers_Get",
        "ModelContainers_List",
        "ModelVersions_Get",
        "ModelVersions_List",
        "Jobs_List",
    ):
        assert s.send(operation_id).status_code == 200
    s.names["endpointName"] = "no-such-endpoint"
    missing = s.send("OnlineEndpoints_Get")
    assert missing.status_code == 404


def test_a_trained_job_validates_as_a_command_job(
    emulator: Emulator, http: requests.Session
) -> None:
    s = Session(emulator, http)
    body = {
        "properties": {
            "jobType": "Command",
            "command": "python train.py",
            "environmentId": "azureml:env:1",
            "inputs": {
                "data": {"jobInputType": "uri_file", "uri": emulator.info.v2_training_data},
                "label": {"jobInputType": "literal", "value": "income"},
            },
            "outputs": {"evaluation": {"jobOutputType": "uri_file"}},
        }
    }
    assert s.send("Jobs_CreateOrUpdate", body=body).status_code == 201
    import time

    deadline = time.monotonic() + 20
    while s.send("Jobs_Get").json()["properties"]["status"] not in ("Completed", "Failed"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert s.send("Jobs_Get").json()["properties"]["status"] == "Completed"


def test_the_validator_refuses_what_the_swagger_refuses() -> None:
    good = {"location": "eastus", "properties": {"authMode": "Key"}}
    check_schema({"$ref": "#/definitions/OnlineEndpointTrackedResource"}, good)
    for bad in (
        {**good, "bogus": 1},
        {"location": "eastus", "properties": {"authMode": "Nope"}},
        {"properties": {"authMode": "Key"}},
    ):
        with pytest.raises(AssertionError):
            check_schema({"$ref": "#/definitions/OnlineEndpointTrackedResource"}, bad)
    job = {"properties": {"jobType": "Command", "command": "x", "environmentId": "e"}}
    check_schema({"$ref": "#/definitions/JobBaseResource"}, job)
    with pytest.raises(AssertionError):
        check_schema(
            {"$ref": "#/definitions/JobBaseResource"}, {"properties": {"jobType": "Command"}}
        )
