"""The emulated Azure ML v2 online endpoints and deployments (V2-NOTES 1-3).

Routes (``v2.*`` names for faults and the request log) under ``{W}`` =
``/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/
workspaces/{ws}``, ``api-version=2024-04-01`` and the emulator's ARM bearer token:
``v2.endpoint.{list,get,put,patch,delete,listkeys,regeneratekeys,token}``,
``v2.deployment.{list,get,put,patch,delete,getlogs}``, ``v2.operation``. Models and jobs
are in :mod:`.v2assets`, scoring in :mod:`.v2score`; the deployment handlers are in
:mod:`.v2deploy` (mixed into :class:`V2Api`).

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
import secrets
import time
from typing import Any

from amlretrain.emulator._server import Request, Response, Router, json_response
from amlretrain.emulator._storage import Storage
from amlretrain.emulator.faults import Faults
from amlretrain.emulator.state import State, new_key
from amlretrain.emulator.v2base import (
    W,
    bad,
    check_name,
    conflict,
    identity,
    k8s_not_found,
    note_operation,
)
from amlretrain.emulator.v2deploy import DeploymentsMixin
from amlretrain.emulator.v2state import (
    PROVIDER,
    TrafficError,
    V2Endpoint,
    V2Workspace,
    check_traffic,
    endpoint_seed,
    system_data,
)

__all__ = ["V2Api", "score_base"]

log = logging.getLogger(__name__)

_EP = W + "/onlineEndpoints/{ep}"
_DEP = _EP + "/deployments/{dep}"
_AUTH_MODES = {"key": "Key", "amltoken": "AMLToken", "aadtoken": "AADToken"}


def score_base(base_url: str, endpoint: str) -> str:
    """The loopback base of an endpoint's scoring and swagger URIs."""
    return f"{base_url}/v2/online/{endpoint}"


class V2Api(DeploymentsMixin):
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
                return k8s_not_found(f.message)
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
        check_name(name, "endpoint")
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
        ident = identity(body.get("identity"))
        if ident is not None:
            out["identity"] = ident
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
            delay=self.lro_slow(req),
        )
        headers = self.async_headers(req, op, location=False, status=True)
        note_operation(resource, target.resource, headers["Azure-AsyncOperation"])
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
                ident = identity(body["identity"])
                if ident is None:
                    merged.pop("identity", None)
                else:
                    merged["identity"] = ident
            merged["systemData"] = system_data(merged["systemData"])
            return self._patch(req, ws, ep, merged)

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

            return self.accepted(req, ws, apply, restore=restore)

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

            return self.accepted(req, ws, apply, status=True)

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
