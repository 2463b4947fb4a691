"""The emulated Azure ML v2 online deployments (V2-NOTES 3): the handlers of
:class:`~amlretrain.emulator.v2.V2Api` for ``v2.deployment.*`` (see :mod:`.v2` for the
behaviour: LROs, 409 while busy, T7, the model loaded by the operation).
"""

from __future__ import annotations

import copy
import time
from typing import Any

from amlretrain.emulator._server import Request, Response, json_response
from amlretrain.emulator._storage import Storage
from amlretrain.emulator.v2base import (
    V2Base,
    bad,
    check_name,
    conflict,
    identity,
    k8s_not_found,
    note_operation,
)
from amlretrain.emulator.v2score import ModelProblem, resolve_model
from amlretrain.emulator.v2state import (
    BUSY,
    MAX_DEPLOYMENTS,
    PROVIDER,
    V2Deployment,
    V2Endpoint,
    V2Workspace,
    system_data,
)

__all__ = ["DeploymentsMixin"]


class DeploymentsMixin(V2Base):
    """Online deployments (list, get, PUT, PATCH, DELETE, getLogs)."""

    storage: Storage

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
                return k8s_not_found(f.message)
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
                check_name(name, "deployment")
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
        ident = identity(body.get("identity"))
        if ident is not None:
            out["identity"] = ident
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
            ws,
            on_success=apply,
            on_failure=on_failure,
            failure=failure[:3] if failure else None,
            delay=self.lro_slow(req),
        )
        headers = self.async_headers(req, op, location=False, status=True)
        note_operation(resource, target.resource, headers["Azure-AsyncOperation"])
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

            return self.accepted(req, ws, apply, restore=restore)

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
