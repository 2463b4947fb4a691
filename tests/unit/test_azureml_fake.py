"""A strict fake of the v2 ARM API for the clients' unit tests (no socket: ``responses``).

It answers azure-core's requests transport as V2-NOTES describes the service (1.2, 1.3):
an endpoint or deployment PUT is 201 with ``Azure-AsyncOperation`` (then the operation
document, then the resource), a PATCH or DELETE 202 with ``Location`` (202 while it runs,
then 200/204); model and job PUTs are synchronous; a job cancel is 202 with ``location``.
It records every request (method, path, api-version, body) and every *violation* of what
a careful client does: a request without api-version 2024-04-01, a read-only member in a
PUT body, an endpoint PUT without its whole ``traffic`` map, a write while the endpoint is
Updating (answered 409, as the service does). Tests assert ``fake.violations == []``.

Scripting: ``fake.busy_reads`` (the endpoint reads Updating for that many GETs),
``fake.conflicts`` (that many writes answered 409), ``fake.outcome`` (the operation's
verdict: ``Succeeded``, ``Failed``), ``fake.apply`` (whether the write takes effect),
``fake.polls`` (operation polls that answer InProgress first).
"""

from __future__ import annotations

import copy
import json
import re
import urllib.parse
from typing import Any

import pytest

ARM = "https://management.azure.com"
SUB, RG, WS = "sub", "rg", "ws"
W = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices/workspaces/{WS}"
OPS = f"/subscriptions/{SUB}/providers/Microsoft.MachineLearningServices/locations/westeurope"

READ_ONLY_TOP = {"id", "name", "type", "systemData"}
READ_ONLY_PROPS = {
    "provisioningState",
    "scoringUri",
    "swaggerUri",
    "keys",
    "status",
    "parameters",
    "latestVersion",
    "nextVersion",
}


def endpoint_doc(name: str = "ep", traffic: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "id": f"{W}/onlineEndpoints/{name}",
        "name": name,
        "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
        "location": "westeurope",
        "tags": {"team": "ml"},
        "kind": "Managed",
        "identity": {"type": "SystemAssigned", "principalId": "p-1", "tenantId": "t-1"},
        "systemData": {"createdBy": "someone"},
        "properties": {
            "authMode": "Key",
            "description": "census",
            "properties": {"azureml.onlineendpointid": "x"},
            "scoringUri": f"https://{name}.westeurope.inference.ml.azure.com/score",
            "swaggerUri": f"https://{name}.westeurope.inference.ml.azure.com/swagger.json",
            "publicNetworkAccess": "Enabled",
            "traffic": dict(traffic if traffic is not None else {"blue": 100}),
            "mirrorTraffic": {},
            "provisioningState": "Succeeded",
            "futureMember": {"kept": True},
        },
    }


def deployment_doc(name: str, model: str, endpoint: str = "ep", capacity: int = 1) -> dict:
    return {
        "id": f"{W}/onlineEndpoints/{endpoint}/deployments/{name}",
        "name": name,
        "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
        "location": "westeurope",
        "tags": {},
        "kind": "Managed",
        "identity": {"type": "SystemAssigned", "principalId": "p-2", "tenantId": "t-1"},
        "systemData": {"createdBy": "someone"},
        "sku": {"name": "Default", "capacity": capacity},
        "properties": {
            "endpointComputeType": "Managed",
            "model": model,
            "codeConfiguration": {"codeId": f"{W}/codes/c/versions/1", "scoringScript": "score.py"},
            "environmentId": f"{W}/environments/env/versions/1",
            "instanceType": "Standard_DS3_v2",
            "requestSettings": {"requestTimeout": "PT5S", "maxConcurrentRequestsPerInstance": 1},
            "provisioningState": "Succeeded",
        },
    }


def model_id(name: str, version: str) -> str:
    return f"{W}/models/{name}/versions/{version}"


class FakeArm:
    def __init__(self) -> None:
        self.endpoints: dict[str, dict[str, Any]] = {"ep": endpoint_doc()}
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {
            ("ep", "blue"): deployment_doc("blue", model_id("census", "1"))
        }
        self.models: dict[tuple[str, str], dict[str, Any]] = {}
        self.containers: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.sent: list[tuple[str, str, Any]] = []
        self.violations: list[str] = []
        self.ops: dict[str, dict[str, Any]] = {}
        self.busy_reads = 0
        self.conflicts = 0
        self.outcome = "Succeeded"
        self.apply = True
        self.polls = 0
        self.stale_reads = 0  # endpoint GETs after an operation that still show the old traffic
        self._stale: dict[str, Any] | None = None
        self.logs = "line 1\nline 2"

    # -- plumbing ---------------------------------------------------------------------------

    def install(self, mock: Any) -> None:
        pattern = re.compile(re.escape(ARM) + r"/.*")
        for method in ("GET", "PUT", "PATCH", "DELETE", "POST"):
            mock.add_callback(method, pattern, callback=self.handle)

    def methods(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, _ in self.sent]

    def bodies(self, method: str, path_end: str) -> list[Any]:
        return [b for m, p, b in self.sent if m == method and p.endswith(path_end)]

    def handle(self, request: Any) -> tuple[int, dict[str, str], str]:
        parts = urllib.parse.urlsplit(request.url)
        path = urllib.parse.unquote(parts.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        body = json.loads(request.body) if request.body else None
        method = request.method
        self.sent.append((method, path, body))
        if "Authorization" not in request.headers:
            self.violations.append(f"{method} {path} without Authorization")
        if path.startswith(OPS):
            return self._operation(method, path)
        if query.get("api-version") != "2024-04-01":
            self.violations.append(f"{method} {path} api-version {query.get('api-version')}")
        if not path.startswith(W):
            return self._error(404, "NotFound", f"no such path {path}")
        rest = path[len(W) :].strip("/").split("/")
        try:
            return self._route(method, rest, body)
        except KeyError:
            return self._error(404, "NotFound", "The resource was not found.")

    def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        headers = {"x-ms-request-id": f"req-{len(self.sent)}", **(headers or {})}
        text = "" if body is None else json.dumps(body)
        if body is not None:
            headers["Content-Type"] = "application/json"
        return status, headers, text

    def _error(self, status: int, code: str, message: str):
        return self._reply(status, {"error": {"code": code, "message": message}})

    def _check_put(self, what: str, body: Any) -> None:
        if not isinstance(body, dict):
            self.violations.append(f"{what}: no body")
            return
        for key in READ_ONLY_TOP & set(body):
            self.violations.append(f"{what}: read-only {key} sent")
        props = body.get("properties") or {}
        for key in READ_ONLY_PROPS & set(props):
            self.violations.append(f"{what}: read-only properties.{key} sent")
        identity = body.get("identity") or {}
        for key in {"principalId", "tenantId"} & set(identity):
            self.violations.append(f"{what}: read-only identity.{key} sent")

    def _busy(self, endpoint: str, what: str) -> bool:
        ep = self.endpoints.get(endpoint)
        if ep is None:
            return False
        if ep["properties"]["provisioningState"] not in ("Succeeded", "Failed", "Canceled"):
            self.violations.append(f"{what} while the endpoint is Updating")
            return True
        if self.conflicts:
            self.conflicts -= 1
            return True
        return False

    def _start(self, kind: str, key: Any, apply: Any, status: int, *, location: bool) -> Any:
        op = f"op{len(self.ops) + 1}"
        self.ops[op] = {"kind": kind, "key": key, "apply": apply, "polls": self.polls}
        if kind in ("endpoint", "deployment"):
            self.endpoints[key[0]]["properties"]["provisioningState"] = "Updating"
        url = f"{ARM}{OPS}/mfeOperations{'Results' if location else 'Status'}/{op}?api-version=x"
        header = {"Location": url} if location else {"Azure-AsyncOperation": url}
        return header

    def _finish(self, op: dict[str, Any]) -> None:
        if op.get("done"):
            return
        op["done"] = True
        if self.apply:
            op["apply"]()
        kind, key = op["kind"], op["key"]
        if kind in ("endpoint", "deployment") and key[0] in self.endpoints:
            self.endpoints[key[0]]["properties"]["provisioningState"] = "Succeeded"

    def _operation(self, method: str, path: str):
        op_id = path.rsplit("/", 1)[-1]
        op = self.ops[op_id]
        location = "/mfeOperationsResults/" in path
        if op["polls"] > 0:
            op["polls"] -= 1
            if location:
                return self._reply(202, None, {"Location": f"{ARM}{path}?api-version=x"})
            return self._reply(200, {"name": op_id, "status": "InProgress"})
        self._finish(op)
        if location:
            if self.outcome != "Succeeded":
                return self._error(400, "ResourceNotReady", "init() crashed")
            return self._reply(200, op.get("final"))
        doc: dict[str, Any] = {"name": op_id, "status": self.outcome}
        if self.outcome != "Succeeded":
            doc["error"] = {"code": "ResourceNotReady", "message": "init() crashed"}
        return self._reply(200, doc)

    # -- the resources ------------------------------------------------------------------------

    def _route(self, method: str, rest: list[str], body: Any):
        if rest[0] == "onlineEndpoints":
            return self._endpoints(method, rest[1:], body)
        if rest[0] == "models":
            return self._models(method, rest[1:], body)
        if rest[0] == "jobs":
            return self._jobs(method, rest[1:], body)
        raise KeyError(rest[0])

    def _endpoints(self, method: str, rest: list[str], body: Any):
        if not rest:
            return self._reply(200, {"value": list(self.endpoints.values()), "nextLink": None})
        name = rest[0]
        if len(rest) == 1:
            if method == "GET":
                ep = copy.deepcopy(self.endpoints[name])
                if self.busy_reads:
                    self.busy_reads -= 1
                    ep["properties"]["provisioningState"] = "Updating"
                if self._stale is not None and self.stale_reads:
                    self.stale_reads -= 1
                    ep["properties"]["traffic"] = copy.deepcopy(self._stale)
                return self._reply(200, ep)
            if method == "PUT":
                self._check_put(f"PUT endpoint {name}", body)
                props = (body or {}).get("properties") or {}
                if "traffic" not in props:
                    self.violations.append(f"PUT endpoint {name} without traffic (F1)")
                if "mirrorTraffic" not in props:
                    self.violations.append(f"PUT endpoint {name} without mirrorTraffic (F10)")
                if self._busy(name, f"PUT endpoint {name}"):
                    return self._error(409, "Conflict", "Another operation is in progress.")
                old = copy.deepcopy(self.endpoints[name]["properties"]["traffic"])

                def apply() -> None:
                    self._stale = old
                    doc = self.endpoints[name]
                    for key, value in props.items():
                        doc["properties"][key] = copy.deepcopy(value)

                headers = self._start("endpoint", (name,), apply, 201, location=False)
                return self._reply(201, self.endpoints[name], headers)
            raise KeyError(method)
        if rest[1] == "listKeys" and method == "POST":
            self.endpoints[name]
            return self._reply(200, {"primaryKey": "PRIMARY-SECRET", "secondaryKey": "SECOND"})
        if rest[1] != "deployments":
            raise KeyError(rest[1])
        if len(rest) == 2:
            items = [d for (e, _), d in self.deployments.items() if e == name]
            return self._reply(200, {"value": items, "nextLink": None})
        dep = rest[2]
        key = (name, dep)
        if len(rest) == 4 and rest[3] == "getLogs" and method == "POST":
            self.deployments[key]
            return self._reply(200, {"content": self.logs})
        if method == "GET":
            return self._reply(200, self.deployments[key])
        if method == "PUT":
            self._check_put(f"PUT deployment {dep}", body)
            if self._busy(name, f"PUT deployment {dep}"):
                return self._error(
                    409,
                    "Conflict",
                    f"Cannot create a deployment in endpoint {name} because it is in Updating provisioning state.",
                )
            new = copy.deepcopy(body)

            def apply_put() -> None:
                doc = deployment_doc(dep, new["properties"].get("model"), name)
                doc.update({k: v for k, v in new.items() if k != "properties"})
                doc["properties"].update(new["properties"])
                doc["properties"]["provisioningState"] = "Succeeded"
                self.deployments[key] = doc

            headers = self._start("deployment", key, apply_put, 201, location=False)
            answer = {**new, "properties": {**new["properties"], "provisioningState": "Creating"}}
            return self._reply(201, answer, headers)
        if method == "PATCH":
            current = self.deployments[key]
            if set(body) - {"sku", "tags"}:
                self.violations.append(f"PATCH deployment {dep} with {sorted(body)}")
            if self._busy(name, f"PATCH deployment {dep}"):
                return self._error(409, "Conflict", "Another operation is in progress.")

            def apply_patch() -> None:
                if "sku" in body:
                    current["sku"].update(body["sku"])
                if "tags" in body:
                    current["tags"] = body["tags"]

            headers = self._start("deployment", key, apply_patch, 202, location=True)
            return self._reply(202, None, headers)
        if method == "DELETE":
            if key not in self.deployments:
                return self._reply(204)
            if self._busy(name, f"DELETE deployment {dep}"):
                return self._error(409, "Conflict", "Another operation is in progress.")
            if self.endpoints[name]["properties"]["traffic"].get(dep):
                self.violations.append(f"DELETE deployment {dep} with live traffic (T7)")

            def apply_delete() -> None:
                self.deployments.pop(key, None)

            headers = self._start("deployment", key, apply_delete, 202, location=True)
            return self._reply(202, None, headers)
        raise KeyError(method)

    def _models(self, method: str, rest: list[str], body: Any):
        if not rest:
            return self._reply(200, {"value": list(self.containers.values()), "nextLink": None})
        name = rest[0]
        if len(rest) == 1:
            if method == "GET":
                return self._reply(200, self.containers[name])
            if method == "PUT":
                self._check_put(f"PUT model {name}", body)
                doc = {"id": f"{W}/models/{name}", "name": name, **copy.deepcopy(body)}
                created = name not in self.containers
                self.containers[name] = doc
                return self._reply(201 if created else 200, doc)
            raise KeyError(method)
        if len(rest) == 2:
            items = [d for (n, _), d in self.models.items() if n == name]
            return self._reply(200, {"value": items, "nextLink": None})
        key = (name, rest[2])
        if method == "GET":
            return self._reply(200, self.models[key])
        if method == "PUT":
            self._check_put(f"PUT model version {key}", body)
            if key in self.models:
                self.violations.append(f"PUT of the existing model version {key}")
            doc = {"id": model_id(*key), "name": key[1], **copy.deepcopy(body)}
            doc["properties"]["provisioningState"] = "Succeeded"
            self.models[key] = doc
            return self._reply(201, doc)
        raise KeyError(method)

    def _jobs(self, method: str, rest: list[str], body: Any):
        if not rest:
            return self._reply(200, {"value": list(self.jobs.values()), "nextLink": None})
        name = rest[0]
        if len(rest) == 2 and rest[1] == "cancel" and method == "POST":
            job = self.jobs[name]
            job["properties"]["status"] = "CancelRequested"

            def apply_cancel() -> None:
                job["properties"]["status"] = "Canceled"

            headers = self._start("job", name, apply_cancel, 202, location=True)
            return self._reply(202, None, {"location": headers["Location"]})
        if method == "GET":
            job = self.jobs[name]
            script = job.get("_script")
            if script:
                job["properties"]["status"] = script.pop(0)
            return self._reply(200, {k: v for k, v in job.items() if k != "_script"})
        if method == "PUT":
            self._check_put(f"PUT job {name}", body)
            doc = {"id": f"{W}/jobs/{name}", "name": name, **copy.deepcopy(body)}
            doc["properties"]["status"] = "NotStarted"
            self.jobs[name] = doc
            return self._reply(201, doc)
        if method == "DELETE":
            if name not in self.jobs:
                return self._reply(204)

            def apply_delete() -> None:
                self.jobs.pop(name, None)

            headers = self._start("job", name, apply_delete, 202, location=True)
            return self._reply(202, None, headers)
        raise KeyError(method)


@pytest.fixture
def fake() -> Any:
    import responses

    arm = FakeArm()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        arm.install(mock)
        yield arm


# -- the fake itself can fail a client -------------------------------------------------------


def _session() -> Any:
    import requests

    return requests.Session()


def test_the_fake_flags_an_endpoint_put_without_traffic_and_with_read_only_members(fake):
    body = endpoint_doc()
    del body["properties"]["traffic"]
    url = f"{ARM}{W}/onlineEndpoints/ep?api-version=2024-04-01"
    _session().put(url, json=body, headers={"Authorization": "Bearer t"})
    assert "PUT endpoint ep without traffic (F1)" in fake.violations
    assert "PUT endpoint ep: read-only id sent" in fake.violations
    assert "PUT endpoint ep: read-only properties.scoringUri sent" in fake.violations


def test_the_fake_answers_409_and_flags_a_write_while_the_endpoint_is_updating(fake):
    fake.endpoints["ep"]["properties"]["provisioningState"] = "Updating"
    url = f"{ARM}{W}/onlineEndpoints/ep/deployments/green?api-version=2024-04-01"
    answer = _session().put(url, json={"properties": {}}, headers={"Authorization": "Bearer t"})
    assert answer.status_code == 409
    assert "PUT deployment green while the endpoint is Updating" in fake.violations


def test_the_fake_flags_a_missing_api_version(fake):
    _session().get(f"{ARM}{W}/onlineEndpoints/ep", headers={"Authorization": "Bearer t"})
    assert fake.violations == ["GET /" + W.lstrip("/") + "/onlineEndpoints/ep api-version None"]
