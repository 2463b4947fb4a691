"""The emulated Azure ML v2 online endpoints and deployments (V2-NOTES 1-3).

Routes (``v2.*`` names for faults and the request log) under ``{W}`` =
``/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/
workspaces/{ws}``, ``api-version=2024-04-01`` and the emulator's ARM bearer token:
``v2.endpoint.{list,get,put,patch,delete,listkeys,regeneratekeys,token}``,
``v2.deployment.{list,get,put,patch,delete,getlogs}``, ``v2.operation``. Models and jobs
are in :mod:`.v2assets`, scoring in :mod:`.v2score`.

Behaviour:

* PUT of an endpoint or deployment: 201 (create) or 200 (update), the body in
  ``Creating``/``Updating`` with ``Azure-AsyncOperation``; the change takes effect when the
  operation succeeds (GET shows the previous resource, ``Updating``, meanwhile). PATCH
  (endpoint: ``tags``, ``identity``; deployment: ``tags``, ``sku``; anything else is 400)
  and DELETE: 202 with ``Location``. ``regenerateKeys``: 202 with both headers.
* 409 ``Conflict`` for any write while the endpoint or the deployment is Creating,
  Updating, Scaling or Deleting (3.4); a deployment PUT on a busy endpoint says "Cannot
  create a deployment in endpoint {e} because it is in Updating provisioning state."
* Traffic (3.3): T1, T2, T3, T4 and names of existing deployments are checked on the PUT
  (400 ``BadArgument``, the rule named). A PUT without ``traffic`` sets every deployment
  to 0% (F1, the real service's behaviour) and one without ``mirrorTraffic`` turns
  mirroring off (F10). Traffic cannot be changed by PATCH.
* T7: a DELETE of a deployment with live traffic is refused: 409 ``Conflict`` (GUESS: the
  notes found neither the status nor the code).
* A deployment's ``properties.model`` (a model version's ARM id or ``azureml:name:version``)
  is loaded when its operation runs; a missing version ends the operation ``Failed`` /
  ``ResourceNotFound``, a model that cannot load (an ``.ilearner``, V2-NOTES 7.3, or
  bytes not in the learner's JSON format) ``Failed`` / ``ResourceNotReady``.
* An endpoint name is unique within the region (8, F8): a create with a name another
  workspace's endpoint holds is 409 ``EndpointAlreadyExists`` (GUESS: status and code).
"""

from __future__ import annotations

import copy
import logging
import re
import secrets
import time
import uuid
from typing import Any

from amlretrain.emulator._server import Request, Response, Router, arm_error, json_response
from amlretrain.emulator._storage import Storage
from amlretrain.emulator.faults import Faults
from amlretrain.emulator.state import State, new_key
from amlretrain.emulator.v2base import V2Base, W, bad, conflict, not_found
from amlretrain.emulator.v2score import ModelProblem, resolve_model
from amlretrain.emulator.v2state import (
    BUSY,
    MAX_DEPLOYMENTS,
    PROVIDER,
    TrafficError,
    V2Deployment,
    V2Endpoint,
    V2Workspace,
    check_traffic,
    endpoint_seed,
    system_data,
)

__all__ = ["V2Api", "score_base"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
_EP = W + "/onlineEndpoints/{ep}"
_DEP = _EP + "/deployments/{dep}"
_AUTH_MODES = {"key": "Key", "amltoken": "AMLToken", "aadtoken": "AADToken"}


def score_base(base_url: str, endpoint: str) -> str:
    """The loopback base of an endpoint's scoring and swagger URIs."""
    return f"{base_url}/v2/online/{endpoint}"


def _check_name(name: str, what: str) -> None:
    if not (3 <= len(name) <= 32 and _NAME.match(name)) or "--" in name:
        raise bad(
            f"The {what} name {name!r} is not valid: 3 to 32 letters, digits and single "
            "dashes, beginning with a letter and not ending with a dash."
        )


def _identity(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    out = copy.deepcopy(value)
    if "SystemAssigned" in str(out.get("type", "")):
        out.setdefault("principalId", str(uuid.uuid4()))
        out.setdefault("tenantId", "00000000-0000-0000-0000-000000000000")
    users = out.get("userAssignedIdentities")
    if isinstance(users, dict):
        out["userAssignedIdentities"] = {
            k: {"principalId": str(uuid.uuid4()), "clientId": str(uuid.uuid4())} for k in users
        }
    return out


class V2Api(V2Base):
    """Online endpoints and deployments on the emulator's server."""

    def __init__(self, *, state: State, faults: Faults, arm_token: str, storage: Storage) -> None:
        super().__init__(state=state, faults=faults, arm_token=arm_token)
        self.storage = storage

    def register(self, router: Router) -> None:
        """Add the routes (ARM paths are case-insensitive)."""

        def add(method: str, pattern: str, name: str, handler: Any) -> None:
            router.add(method, pattern, name, handler, ignore_case=True)

        add("GET", W + "/onlineEndpoints", "v2.endpoint.list", self.list_endpoints)
        add("GET", _EP, "v2.endpoint.get", self.get_endpoint)
        add("PUT", _EP, "v2.endpoint.put", self.put_endpoint)
        add("PATCH", _EP, "v2.endpoint.patch", self.patch_endpoint)
        add("DELETE", _EP, "v2.endpoint.delete", self.delete_endpoint)
        add("POST", _EP + "/listKeys", "v2.endpoint.listkeys", self.list_keys)
        add("POST", _EP + "/regenerateKeys", "v2.endpoint.regeneratekeys", self.regenerate)
        add("POST", _EP + "/token", "v2.endpoint.token", self.token)
        add("GET", _EP + "/deployments", "v2.deployment.list", self.list_deployments)
        add("GET", _DEP, "v2.deployment.get", self.get_deployment)
        add("PUT", _DEP, "v2.deployment.put", self.put_deployment)
        add("PATCH", _DEP, "v2.deployment.patch", self.patch_deployment)
        add("DELETE", _DEP, "v2.deployment.delete", self.delete_deployment)
        add("POST", _DEP + "/getLogs", "v2.deployment.getlogs", self.get_logs)
        loc = "/subscriptions/{sub}/providers/" + PROVIDER + "/locations/{loc}"
        add("GET", loc + "/mfeOperationsStatus/{op}", "v2.operation", self.op_status)
        add("GET", loc + "/mfeOperationResults/{op}", "v2.operation", self.op_result)

    # -- lookups -----------------------------------------------------------------------

    def _endpoint(self, ws: V2Workspace, req: Request) -> V2Endpoint:
        ep: V2Endpoint | None = self.v2.endpoints.get((*ws.key, req.params["ep"].lower()))
        if ep is None:
            raise not_found(f"The online endpoint {req.params['ep']}")
        return ep

    def _deployment(self, ep: V2Endpoint, req: Request) -> V2Deployment:
        dep = ep.deployment(req.params["dep"])
        if dep is None:
            raise not_found(f"The deployment {req.params['dep']} of endpoint {ep.name}")
        return dep

    @staticmethod
    def _idle(ep: V2Endpoint, dep: V2Deployment | None = None, *, whole: bool = False) -> None:
        """409 while ``ep`` (or ``dep``; with ``whole``, any of its deployments) is busy."""
        if ep.state in BUSY:
            raise conflict(
                f"The online endpoint {ep.name} is in {ep.state} provisioning state: another "
                "operation is in progress on it. Retry when it has finished."
            )
        busy = [d for d in ep.deployments.values() if d.state in BUSY] if whole else []
        if busy:
            raise conflict(
                f"The deployment {busy[0].name} of online endpoint {ep.name} is in "
                f"{busy[0].state} provisioning state: another operation is in progress on "
                "the endpoint. Retry when it has finished."
            )
        if dep is not None and dep.state in BUSY:
            raise conflict(
                f"The deployment {dep.name} is in {dep.state} provisioning state: another "
                "operation is in progress on it. Retry when it has finished."
            )

    def endpoint_view(self, ep: V2Endpoint) -> dict[str, Any]:
        """What GET answers (a stale view under F2)."""
        stale = self.state.stale(("v2", *ep.workspace.key, ep.name.lower()))
        return copy.deepcopy(stale.before if stale is not None else ep.resource)

    # -- endpoints ---------------------------------------------------------------------

    def list_endpoints(self, req: Request) -> Response:
        """``OnlineEndpoints_List``."""
        with self.state.locked():
            ws = self.workspace(req)
            eps = sorted(
                (e for k, e in self.v2.endpoints.items() if k[:3] == ws.key),
                key=lambda e: e.created,
            )
            return self.page(req, [self.endpoint_view(e) for e in eps])

    def get_endpoint(self, req: Request) -> Response:
        """``OnlineEndpoints_Get``."""
        with self.state.locked():
            ep = self._endpoint(self.workspace(req), req)
            return json_response(200, self.endpoint_view(ep))

    def put_endpoint(self, req: Request) -> Response:
        """``OnlineEndpoints_CreateOrUpdate``: 201/200 + ``Azure-AsyncOperation``."""
        with self.state.locked():
            ws = self.workspace(req)
            body = self.body(req)
            name = req.params["ep"]
            ep: V2Endpoint | None = self.v2.endpoints.get((*ws.key, name.lower()))
            if (f := self.faults.take_one([req.route], "v2_k8s_not_found")) is not None:
                return _k8s_not_found(f.message)
            props = body.get("properties")
            if not isinstance(props, dict):
                raise bad("The request body must contain 'properties'.")
            mode = _AUTH_MODES.get(str(props.get("authMode", "")).lower())
            if mode is None:
                raise bad("properties.authMode is required: one of AMLToken, Key, AADToken.")
            if ep is None:
                self._check_create(req, ws, name, body)
            else:
                self._idle(ep, whole=True)
            if self.faults.take_one([req.route], "v2_busy") is not None:
                raise conflict(f"The online endpoint {name} is in Updating provisioning state.")
            try:
                live, mirror = check_traffic(
                    props.get("traffic"), props.get("mirrorTraffic"), ep.deployments if ep else {}
                )
            except TrafficError as err:
                raise bad(str(err)) from None
            resource = self._endpoint_resource(req, ws, name, body, ep, mode, live, mirror)
            return self._put_endpoint(req, ws, ep, resource, props)

    def _check_create(self, req: Request, ws: V2Workspace, name: str, body: dict[str, Any]) -> None:
        _check_name(name, "endpoint")
        if not body.get("location"):
            raise bad("The location property is required for this resource.", "LocationRequired")
        other = self.v2.endpoint_named(name)
        taken = other is not None and other.workspace.location.lower() == ws.location.lower()
        if taken or self.faults.take_one([req.route], "v2_name_taken") is not None:
            raise conflict(
                "There is already an endpoint with this name, Endpoint name needs to be "
                "unique within a region",
                "EndpointAlreadyExists",
            )

    def _endpoint_resource(
        self,
        req: Request,
        ws: V2Workspace,
        name: str,
        body: dict[str, Any],
        ep: V2Endpoint | None,
        mode: str,
        live: dict[str, int],
        mirror: dict[str, int],
    ) -> dict[str, Any]:
        props: dict[str, Any] = body["properties"]
        old = ep.resource if ep is not None else None
        arm_id = f"{ws.arm_id}/onlineEndpoints/{name if ep is None else ep.name}"
        base = score_base(req.base_url, name if ep is None else ep.name)
        extra = dict(old["properties"].get("properties") or {}) if old else {}
        extra.update({str(k): str(v) for k, v in (props.get("properties") or {}).items()})
        extra["azureml.onlineendpointid"] = arm_id.lower()
        out: dict[str, Any] = {
            "id": arm_id,
            "name": name if ep is None else ep.name,
            "type": f"{PROVIDER}/workspaces/onlineEndpoints",
            "location": old["location"] if old else str(body["location"]),
            "tags": {str(k): str(v) for k, v in (body.get("tags") or {}).items()},
            "systemData": system_data(old["systemData"] if old else None),
            "properties": {
                "authMode": mode,
                "description": props.get("description"),
                "properties": extra,
                "keys": None,
                "scoringUri": base + "/score",
                "swaggerUri": base + "/swagger.json",
                "compute": props.get("compute"),
                "publicNetworkAccess": props.get("publicNetworkAccess") or "Enabled",
                "traffic": live,
                "mirrorTraffic": mirror,
                "provisioningState": "Creating" if ep is None else "Updating",
            },
        }
        identity = _identity(body.get("identity"))
        if identity is not None:
            out["identity"] = identity
        for member in ("kind", "sku"):
            if body.get(member) is not None:
                out[member] = copy.deepcopy(body[member])
        return out

    def _put_endpoint(
        self,
        req: Request,
        ws: V2Workspace,
        ep: V2Endpoint | None,
        resource: dict[str, Any],
        props: dict[str, Any],
    ) -> Response:
        created = ep is None
        if ep is None:
            given = props.get("keys")
            keys: dict[str, Any] = given if isinstance(given, dict) else {}
            ep = V2Endpoint(
                workspace=ws,
                name=resource["name"],
                resource=copy.deepcopy(resource),
                primary_key=str(keys.get("primaryKey") or new_key()),
                secondary_key=str(keys.get("secondaryKey") or new_key()),
                created=self.v2.order(),
                rng=endpoint_seed(resource["name"]),
            )
            key = (*ws.key, ep.name.lower())
            self.v2.endpoints[key] = ep
        target = ep
        before = copy.deepcopy(ep.resource)
        prev_state = "Failed" if created else ep.state
        ep.resource["properties"]["provisioningState"] = resource["properties"]["provisioningState"]
        stale = self.faults.take_one([req.route], "v2_stale_traffic")

        def apply() -> None:
            final = copy.deepcopy(resource)
            final["properties"]["provisioningState"] = "Succeeded"
            target.resource = final
            if stale is not None and not created:
                view = copy.deepcopy(final)
                for member in ("traffic", "mirrorTraffic"):
                    view["properties"][member] = before["properties"].get(member) or {}
                key = ("v2", *ws.key, target.name.lower())
                self.state.hold_stale(key, view, stale.seconds)

        def restore() -> None:
            if created:
                ended = failure[0] if failure else "Failed"
                target.resource["properties"]["provisioningState"] = ended
            else:
                before["properties"]["provisioningState"] = prev_state
                target.resource = before

        failure = self.lro_failure(req, apply)
        op = self.start(
            ws,
            on_success=apply,
            on_failure=failure[3] if failure and len(failure) > 3 else restore,
            failure=failure[:3] if failure else None,
        )
        headers = self.async_headers(req, op, location=False, status=True)
        _note_operation(resource, target.resource, headers["Azure-AsyncOperation"])
        view = copy.deepcopy(resource)
        view["properties"]["provisioningState"] = "Creating" if created else "Updating"
        return json_response(201 if created else 200, view, headers)

    def patch_endpoint(self, req: Request) -> Response:
        """``OnlineEndpoints_Update``: tags and identity only; 202 + ``Location``."""
        with self.state.locked():
            ws = self.workspace(req)
            body = self.body(req)
            ep = self._endpoint(ws, req)
            extra = sorted(k for k in body if k not in ("tags", "identity"))
            if extra:
                raise bad(
                    f"PATCH of an online endpoint accepts tags and identity only, not "
                    f"{', '.join(extra)}: change traffic with a PUT of the whole endpoint."
                )
            self._idle(ep)
            merged = copy.deepcopy(ep.resource)
            if "tags" in body:
                merged["tags"] = {str(k): str(v) for k, v in (body["tags"] or {}).items()}
            if "identity" in body:
                identity = _identity(body["identity"])
                if identity is None:
                    merged.pop("identity", None)
                else:
                    merged["identity"] = identity
            merged["systemData"] = system_data(merged["systemData"])
            return self._patch(req, ws, ep, merged)

    def _patch(
        self,
        req: Request,
        ws: V2Workspace,
        res: V2Endpoint | V2Deployment,
        merged: dict[str, Any],
        during: str = "Updating",
    ) -> Response:
        prev = res.state
        res.resource["properties"]["provisioningState"] = during
        target = res

        def apply() -> None:
            merged["properties"]["provisioningState"] = "Succeeded"
            target.resource = merged

        def restore() -> None:
            target.resource["properties"]["provisioningState"] = prev

        failure = self.lro_failure(req, apply)
        op = self.start(
            ws,
            on_success=apply,
            on_failure=failure[3] if failure and len(failure) > 3 else restore,
            failure=failure[:3] if failure else None,
            result=lambda: json_response(200, copy.deepcopy(target.resource)),
        )
        return Response(
            status=202, headers=self.async_headers(req, op, location=True, status=False)
        )

    def delete_endpoint(self, req: Request) -> Response:
        """``OnlineEndpoints_Delete``: 202 + ``Location``; its deployments go with it."""
        with self.state.locked():
            ws = self.workspace(req)
            ep: V2Endpoint | None = self.v2.endpoints.get((*ws.key, req.params["ep"].lower()))
            if ep is None:
                return Response(status=204)
            self._idle(ep, whole=True)
            prev = ep.state
            ep.resource["properties"]["provisioningState"] = "Deleting"
            target = ep

            def apply() -> None:
                self.v2.endpoints.pop((*ws.key, target.name.lower()), None)

            def restore() -> None:
                target.resource["properties"]["provisioningState"] = prev

            failure = self.lro_failure(req, apply)
            op = self.start(
                ws,
                on_success=apply,
                on_failure=failure[3] if failure and len(failure) > 3 else restore,
                failure=failure[:3] if failure else None,
            )
            return Response(
                status=202, headers=self.async_headers(req, op, location=True, status=False)
            )

    def list_keys(self, req: Request) -> Response:
        """``OnlineEndpoints_ListKeys``."""
        with self.state.locked():
            ep = self._endpoint(self.workspace(req), req)
            return json_response(
                200, {"primaryKey": ep.primary_key, "secondaryKey": ep.secondary_key}
            )

    def regenerate(self, req: Request) -> Response:
        """``OnlineEndpoints_RegenerateKeys``: 202 with both operation headers.

        ``keyValue`` sets the key, unless it equals the current one (the SDK sends the
        current key): then a new key is generated (GUESS of V2-NOTES 2.3).
        """
        with self.state.locked():
            ws = self.workspace(req)
            body = self.body(req)
            ep = self._endpoint(ws, req)
            kind = str(body.get("keyType", ""))
            if kind.lower() not in ("primary", "secondary"):
                raise bad("keyType is required: Primary or Secondary.")
            self._idle(ep)
            attr = "primary_key" if kind.lower() == "primary" else "secondary_key"
            value = body.get("keyValue")
            new = str(value) if value and value != getattr(ep, attr) else new_key()
            target = ep

            def apply() -> None:
                setattr(target, attr, new)

            failure = self.lro_failure(req, apply)
            op = self.start(
                ws,
                on_success=apply,
                on_failure=failure[3] if failure and len(failure) > 3 else None,
                failure=failure[:3] if failure else None,
            )
            return Response(
                status=202, headers=self.async_headers(req, op, location=True, status=True)
            )

    def token(self, req: Request) -> Response:
        """``OnlineEndpoints_GetToken``: a token scoring accepts for an hour (AMLToken)."""
        with self.state.locked():
            ep = self._endpoint(self.workspace(req), req)
            if ep.resource["properties"]["authMode"] != "AMLToken":
                raise bad(
                    f"The endpoint {ep.name} uses authMode "
                    f"{ep.resource['properties']['authMode']}: tokens are for AMLToken "
                    "endpoints (use listKeys for Key)."
                )
            now = int(time.time())
            value = secrets.token_urlsafe(32)
            ep.tokens[value] = now + 3600.0
            return json_response(
                200,
                {
                    "accessToken": value,
                    "tokenType": "Bearer",
                    "expiryTimeUtc": now + 3600,
                    "refreshAfterTimeUtc": now + 1800,
                },
            )

    # -- deployments -------------------------------------------------------------------

    def list_deployments(self, req: Request) -> Response:
        """``OnlineDeployments_List``."""
        with self.state.locked():
            ep = self._endpoint(self.workspace(req), req)
            deps = sorted(ep.deployments.values(), key=lambda d: d.created)
            return self.page(req, [copy.deepcopy(d.resource) for d in deps])

    def get_deployment(self, req: Request) -> Response:
        """``OnlineDeployments_Get``."""
        with self.state.locked():
            ep = self._endpoint(self.workspace(req), req)
            return json_response(200, copy.deepcopy(self._deployment(ep, req).resource))

    def put_deployment(self, req: Request) -> Response:
        """``OnlineDeployments_CreateOrUpdate``: 201/200 + ``Azure-AsyncOperation``."""
        with self.state.locked():
            ws = self.workspace(req)
            body = self.body(req)
            ep = self._endpoint(ws, req)
            if (f := self.faults.take_one([req.route], "v2_k8s_not_found")) is not None:
                return _k8s_not_found(f.message)
            if ep.state in BUSY or self.faults.take_one([req.route], "v2_busy") is not None:
                raise conflict(
                    f"Cannot create a deployment in endpoint {ep.name} because it is in "
                    f"{ep.state if ep.state in BUSY else 'Updating'} provisioning state."
                )
            name = req.params["dep"]
            dep = ep.deployment(name)
            props = body.get("properties")
            if not isinstance(props, dict) or props.get("endpointComputeType") not in (
                "Managed",
                "Kubernetes",
                "AzureMLCompute",
            ):
                raise bad(
                    "properties.endpointComputeType is required: Managed, Kubernetes or "
                    "AzureMLCompute."
                )
            if dep is None:
                _check_name(name, "deployment")
                if not body.get("location"):
                    raise bad("The location property is required.", "LocationRequired")
                if len(ep.deployments) >= MAX_DEPLOYMENTS:
                    raise bad(f"An endpoint holds at most {MAX_DEPLOYMENTS} deployments.")
            else:
                self._idle(ep, dep)
            resource = self._deployment_resource(ws, ep, name, body, dep)
            return self._put_deployment(req, ws, ep, dep, resource)

    def _deployment_resource(
        self,
        ws: V2Workspace,
        ep: V2Endpoint,
        name: str,
        body: dict[str, Any],
        dep: V2Deployment | None,
    ) -> dict[str, Any]:
        props = copy.deepcopy(body["properties"])
        name = dep.name if dep is not None else name
        old = dep.resource if dep is not None else None
        props.pop("provisioningState", None)
        props.setdefault("appInsightsEnabled", False)
        props.setdefault("egressPublicNetworkAccess", "Enabled")
        default_scale = "Default" if props["endpointComputeType"] == "Managed" else None
        if not props.get("scaleSettings"):
            props["scaleSettings"] = (
                {"scaleType": "Default"}
                if default_scale
                else {
                    "scaleType": "TargetUtilization",
                    "minInstances": 1,
                    "maxInstances": 1,
                    "pollingInterval": "PT1S",
                    "targetUtilizationPercentage": 70,
                }
            )
        props.setdefault(
            "requestSettings",
            {"requestTimeout": "PT5S", "maxConcurrentRequestsPerInstance": 1},
        )
        props["provisioningState"] = "Creating" if dep is None else "Updating"
        out: dict[str, Any] = {
            "id": f"{ws.arm_id}/onlineEndpoints/{ep.name}/deployments/{name}",
            "name": name,
            "type": f"{PROVIDER}/workspaces/onlineEndpoints/deployments",
            "location": old["location"] if old else str(body["location"]),
            "tags": {str(k): str(v) for k, v in (body.get("tags") or {}).items()},
            "systemData": system_data(old["systemData"] if old else None),
            "properties": props,
            "sku": copy.deepcopy(body.get("sku") or {"name": "Default", "capacity": 1}),
        }
        identity = _identity(body.get("identity"))
        if identity is not None:
            out["identity"] = identity
        if body.get("kind") is not None:
            out["kind"] = body["kind"]
        return out

    def _put_deployment(
        self,
        req: Request,
        ws: V2Workspace,
        ep: V2Endpoint,
        dep: V2Deployment | None,
        resource: dict[str, Any],
    ) -> Response:
        created = dep is None
        if dep is None:
            dep = V2Deployment(
                name=resource["name"], resource=copy.deepcopy(resource), created=self.v2.order()
            )
            ep.deployments[dep.name.lower()] = dep
        target = dep
        before = copy.deepcopy(dep.resource)
        prev_state = dep.state
        dep.resource["properties"]["provisioningState"] = resource["properties"][
            "provisioningState"
        ]
        ref = str(resource["properties"].get("model") or "")
        model = None
        failure: tuple[Any, ...] | None = None
        try:
            model = resolve_model(self.storage, self.v2, ws, ref)
        except ModelProblem as err:
            failure = ("Failed", err.code, err.message)
        target.logs.append(f"{time.strftime('%H:%M:%S')} provisioning with model {ref!r}")

        def apply() -> None:
            final = copy.deepcopy(resource)
            final["properties"]["provisioningState"] = "Succeeded"
            target.resource, target.model, target.model_ref = final, model, ref
            target.logs.append("init(): model loaded; the server is ready")

        def fail() -> None:
            final = copy.deepcopy(resource if created else before)
            final["properties"]["provisioningState"] = failure[0] if failure else "Failed"
            target.resource = final
            if code != "InternalServerError":
                target.logs.append(f"init() failed: {message}")

        def restore() -> None:
            before["properties"]["provisioningState"] = prev_state
            target.resource = before

        fault = self.lro_failure(req, apply)
        failure = failure or fault
        code, message = (failure[1], failure[2]) if failure else ("", "")
        on_failure = fail
        if failure is not None and len(failure) > 3:
            on_failure = failure[3]
        elif failure is not None and failure[0] == "Canceled" and not created:
            on_failure = restore
        op = self.start(
            ws, on_success=apply, on_failure=on_failure, failure=failure[:3] if failure else None
        )
        headers = self.async_headers(req, op, location=False, status=True)
        _note_operation(resource, target.resource, headers["Azure-AsyncOperation"])
        return json_response(201 if created else 200, copy.deepcopy(resource), headers)

    def patch_deployment(self, req: Request) -> Response:
        """``OnlineDeployments_Update``: tags and sku only; 202 + ``Location``.

        The deployment is ``Scaling`` while a new ``sku.capacity`` applies, else ``Updating``.
        """
        with self.state.locked():
            ws = self.workspace(req)
            body = self.body(req)
            ep = self._endpoint(ws, req)
            dep = self._deployment(ep, req)
            extra = sorted(k for k in body if k not in ("tags", "sku"))
            if extra:
                raise bad(
                    f"PATCH of a deployment accepts tags and sku only, not {', '.join(extra)}."
                )
            self._idle(ep, dep)
            merged = copy.deepcopy(dep.resource)
            if "tags" in body:
                merged["tags"] = {str(k): str(v) for k, v in (body["tags"] or {}).items()}
            if isinstance(body.get("sku"), dict):
                merged["sku"] = {**merged.get("sku", {}), **copy.deepcopy(body["sku"])}
            merged["systemData"] = system_data(merged["systemData"])
            scaling = merged.get("sku", {}).get("capacity") != dep.resource.get("sku", {}).get(
                "capacity"
            )
            return self._patch(req, ws, dep, merged, "Scaling" if scaling else "Updating")

    def delete_deployment(self, req: Request) -> Response:
        """``OnlineDeployments_Delete``: 202 + ``Location``; refused with live traffic (T7)."""
        with self.state.locked():
            ws = self.workspace(req)
            ep = self._endpoint(ws, req)
            dep = ep.deployment(req.params["dep"])
            if dep is None:
                return Response(status=204)
            if self.faults.take_one([req.route], "v2_busy") is not None:
                raise conflict(f"The online endpoint {ep.name} is in Updating provisioning state.")
            self._idle(ep, dep)
            if ep.weight(dep.name) > 0:
                raise conflict(
                    f"T7: the deployment {dep.name} has {ep.weight(dep.name)}% of the live "
                    f"traffic of endpoint {ep.name}. Set its traffic to 0% before deleting it."
                )
            prev = dep.state
            dep.resource["properties"]["provisioningState"] = "Deleting"
            target = dep

            def apply() -> None:
                ep.deployments.pop(target.name.lower(), None)
                for member in ("traffic", "mirrorTraffic"):
                    values = ep.resource["properties"].get(member) or {}
                    for k in [k for k in values if k.lower() == target.name.lower()]:
                        del values[k]

            def restore() -> None:
                target.resource["properties"]["provisioningState"] = prev

            failure = self.lro_failure(req, apply)
            op = self.start(
                ws,
                on_success=apply,
                on_failure=failure[3] if failure and len(failure) > 3 else restore,
                failure=failure[:3] if failure else None,
            )
            return Response(
                status=202, headers=self.async_headers(req, op, location=True, status=False)
            )

    def get_logs(self, req: Request) -> Response:
        """``OnlineDeployments_GetLogs``: the last ``tail`` lines of the deployment's log."""
        with self.state.locked():
            ep = self._endpoint(self.workspace(req), req)
            dep = self._deployment(ep, req)
            body = self.body(req) if req.body.strip() else {}
            tail = body.get("tail")
            lines = list(dep.logs)
            if isinstance(tail, int) and not isinstance(tail, bool) and tail > 0:
                lines = lines[-tail:]
            return json_response(200, {"content": "\n".join(lines)})


def _note_operation(resource: dict[str, Any], stored: dict[str, Any], uri: str) -> None:
    """``properties.properties.AzureAsyncOperationUri``: where RESTSH reads the operation
    URL (V2-NOTES 1.3), in the answer and in what the operation applies (or applied)."""
    for res in (resource, stored):
        extra = res["properties"].get("properties")
        if not isinstance(extra, dict):
            extra = res["properties"]["properties"] = {}
        extra["AzureAsyncOperationUri"] = uri


def _k8s_not_found(message: str | None) -> Response:
    """F9: the Kubernetes plumbing failure of V2-NOTES 8 (azure-cli-extensions#7107)."""
    return json_response(
        404,
        {
            "error": {
                "code": "NotFound",
                "message": message or "The inferencing client call failed.",
                "details": [{"code": "InferencingClientCallFailed", "message": "Not found."}],
                "additionalInfo": [{"type": "ComponentName", "info": {"value": "inference"}}],
            }
        },
    )


_ = arm_error  # re-exported shape helper (used through v2base)
