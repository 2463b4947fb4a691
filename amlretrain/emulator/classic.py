"""The emulated classic web-service management API (API-NOTES 3), no api-version.

``/workspaces/{ws}/webservices[/{id}[/endpoints[/{name}[/refresh]]]]``: list/get/delete web
services; list/get/add (PUT)/PATCH/refresh (POST)/DELETE endpoints, with the real rules:
a PATCH swaps trained models (``Resources``) and nothing else, so a PATCH without
``Resources`` is refused with 400 ``RequestBodyInvalid`` (GUESS: API-NOTES 3.2 documents
no other PATCH body, and not what the service answers to one); a PUT to an existing
endpoint updates its settings (GUESS: documented only for adding one);
the default endpoint cannot be patched; an endpoint of a training service has no
updatable resources; a patched resource must be one the endpoint lists and its blob must
exist and be readable with the given SAS; endpoint names are at most 24 lowercase letters
or digits (API-NOTES 3.2, create-endpoint.md); a web service holds at most
``max_endpoints`` endpoints, the default one included (API-NOTES 3.2 documents 3 for a
free workspace and no limit for a standard one: the emulator's default of 20 is a GUESS;
the refusal's status and codes, 409 ``Conflict`` / ``EndpointLimitReached``, are GUESSes
too); refresh answers 304 when nothing changed. Auth is the workspace token, or the
endpoint's own key for endpoint-level calls. A ``stale`` fault on ``classic.patch_endpoint``
makes GET (and list) answer the endpoint as it was before the PATCH for a while, as the
real service takes some time to serve a patched model (API-NOTES 3.2).
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from typing import Any

from amlretrain.blobs import BlobRef
from amlretrain.emulator._server import (
    Reply,
    Request,
    Response,
    Router,
    json_response,
    runtime_error,
)
from amlretrain.emulator._storage import BlobAccessError, Storage
from amlretrain.emulator.faults import Faults
from amlretrain.emulator.state import (
    ClassicEndpoint,
    ClassicService,
    State,
    Workspace,
    ci_get,
    new_id,
)
from amlretrain.errors import ConfigurationError

__all__ = ["NO_UPDATABLE_RESOURCES", "ClassicApi", "endpoint_json", "service_json"]

log = logging.getLogger(__name__)

NO_UPDATABLE_RESOURCES = (
    "Sorry, but this feature is not supported or available in this context. "
    "This Web Service has no updatable resources."
)
_NAME = re.compile(r"^[a-z0-9]{1,24}$")
#: Endpoints a web service may hold, its default one included. GUESS: API-NOTES 3.2 gives
#: 3 for a free workspace (``ClassicApi(max_endpoints=3)``) and nothing for a standard one.
DEFAULT_MAX_ENDPOINTS = 20
_SVC = "/workspaces/{ws}/webservices/{svc}"
_EP = _SVC + "/endpoints/{ep}"


def api_location(base_url: str, workspace_id: str, ep: ClassicEndpoint) -> str:
    """The endpoint's ApiLocation (base of ``/jobs`` and ``/execute``)."""
    return f"{base_url}/workspaces/{workspace_id}/services/{ep.endpoint_id}"


def endpoint_json(base_url: str, svc: ClassicService, ep: ClassicEndpoint) -> dict[str, Any]:
    """An Endpoint object with every field of API-NOTES 3.2 (keys included)."""
    ws = svc.workspace_id
    return {
        "Name": ep.name,
        "Description": ep.description,
        "CreationTime": ep.creation_time,
        "WorkspaceId": ws,
        "WebServiceId": svc.id,
        "HelpLocation": (
            f"{base_url}/apihelp/workspaces/{ws}/webservices/{svc.id}/endpoints/{ep.name}"
        ),
        "PrimaryKey": ep.primary_key,
        "SecondaryKey": ep.secondary_key,
        "ApiLocation": api_location(base_url, ws, ep),
        "Version": str(ep.version),
        "PreventUpdate": ep.prevent_update,
        "SampleDataEnabled": ep.sample_data_enabled,
        "ExperimentLocation": f"{base_url}/studio/workspaces/{ws}/experiments/{svc.id}",
        "MaxConcurrentCalls": ep.max_concurrent_calls,
        "DiagnosticsTraceLevel": ep.diagnostics_trace_level,
        "ThrottleLevel": ep.throttle_level,
        "Resources": copy.deepcopy(ep.resources),
    }


def service_json(svc: ClassicService) -> dict[str, Any]:
    """A classic WebService object."""
    return {
        "Id": svc.id,
        "Name": svc.name,
        "Description": svc.description,
        "CreationTime": svc.creation_time,
        "WorkspaceId": svc.workspace_id,
        "DefaultEndpointName": svc.default_endpoint,
        "EndpointCount": len(svc.endpoints),
    }


def _bad(detail: str, message: str, code: str = "BadArgument") -> Reply:
    return Reply(runtime_error(400, code, message, detail, message))


def _not_found(detail: str, message: str) -> Reply:
    return Reply(runtime_error(404, "NotFound", message, detail, message))


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


class ClassicApi:
    """The management routes on the emulator's server (the "management host").

    Args:
        state: the shared state.
        storage: the emulator's blob storage (patched models are checked there).
        faults: the fault rules (``stale`` is consumed by PATCH); None = no faults.
        max_endpoints: endpoints a web service may hold, its default one included (a
            PUT adding one more is refused with 409); None = no limit. GUESS: 3 is the
            documented limit of a free workspace; the default 20 stands for a standard
            one, whose limit is not documented.
    """

    def __init__(
        self,
        *,
        state: State,
        storage: Storage,
        faults: Faults | None = None,
        max_endpoints: int | None = DEFAULT_MAX_ENDPOINTS,
    ) -> None:
        if max_endpoints is not None and (isinstance(max_endpoints, bool) or max_endpoints < 1):
            raise ValueError(f"max_endpoints must be an int >= 1 or None, not {max_endpoints!r}")
        self.state = state
        self.storage = storage
        self.faults = faults if faults is not None else Faults()
        self.max_endpoints = max_endpoints

    def register(self, router: Router) -> None:
        """Add the management routes."""
        add = router.add
        add("GET", "/workspaces/{ws}/webservices", "classic.list_services", self.list_services)
        add("GET", _SVC, "classic.get_service", self.get_service)
        add("DELETE", _SVC, "classic.delete_service", self.delete_service)
        add("GET", _SVC + "/endpoints", "classic.list_endpoints", self.list_endpoints)
        add("GET", _EP, "classic.get_endpoint", self.get_endpoint)
        add("PUT", _EP, "classic.add_endpoint", self.add_endpoint)
        add("PATCH", _EP, "classic.patch_endpoint", self.patch_endpoint)
        add("DELETE", _EP, "classic.delete_endpoint", self.delete_endpoint)
        add("POST", _EP + "/refresh", "classic.refresh_endpoint", self.refresh_endpoint)

    # -- lookups and auth --------------------------------------------------------------

    def _workspace(self, req: Request) -> Workspace:
        ws = self.state.workspaces.get(req.params["ws"].lower())
        if ws is None:
            raise _not_found("WorkspaceNotFound", f"Workspace {req.params['ws']} was not found.")
        return ws

    @staticmethod
    def _authorize(req: Request, ws: Workspace, ep: ClassicEndpoint | None = None) -> None:
        token = req.bearer()
        allowed = {ws.token}
        if ep is not None:
            allowed |= {ep.primary_key, ep.secondary_key}
        if token is None or token not in allowed:
            raise Reply(
                runtime_error(
                    401,
                    "Unauthorized",
                    "Invalid credentials provided.",
                    "ManagementRequestUnauthorized",
                    "Invalid credentials provided: use the workspace authorization token"
                    + (" or this endpoint's API key." if ep is not None else "."),
                )
            )

    def _service(self, req: Request, ws: Workspace) -> ClassicService:
        svc = ws.services.get(req.params["svc"].lower())
        if svc is None:
            raise _not_found(
                "WebServiceNotFound",
                f"Web service {req.params['svc']} was not found in workspace {ws.id}.",
            )
        return svc

    def _endpoint(self, req: Request) -> tuple[Workspace, ClassicService, ClassicEndpoint]:
        ws = self._workspace(req)
        svc = ws.services.get(req.params["svc"].lower())
        ep = svc.endpoints.get(req.params["ep"]) if svc is not None else None
        self._authorize(req, ws, ep)
        svc = self._service(req, ws)
        if ep is None:
            raise _not_found(
                "EndpointNotFound",
                f"Endpoint '{req.params['ep']}' was not found in web service {svc.id}.",
            )
        return ws, svc, ep

    @staticmethod
    def _stale_key(svc: ClassicService, ep: ClassicEndpoint) -> tuple[str, ...]:
        return ("classic", svc.workspace_id.lower(), svc.id, ep.name)

    def _readable(self, svc: ClassicService, ep: ClassicEndpoint) -> ClassicEndpoint:
        """The endpoint as reads answer it: a stale view's (``stale`` fault), else ``ep``."""
        view = self.state.stale(self._stale_key(svc, ep))
        if view is not None and isinstance(view.before, ClassicEndpoint):
            return view.before
        return ep

    def _hold_stale(
        self, req: Request, svc: ClassicService, ep: ClassicEndpoint, before: ClassicEndpoint
    ) -> None:
        """After a write: reads answer ``before`` for a while, if a ``stale`` fault says so."""
        fault = self.faults.take_one([req.route], "stale")
        if fault is not None:
            self.state.hold_stale(self._stale_key(svc, ep), before, fault.seconds)

    # -- web services ------------------------------------------------------------------

    def list_services(self, req: Request) -> Response:
        """GET the workspace's web services."""
        with self.state.lock:
            ws = self._workspace(req)
            self._authorize(req, ws)
            return json_response(200, [service_json(s) for s in ws.services.values()])

    def get_service(self, req: Request) -> Response:
        """GET one web service."""
        with self.state.lock:
            ws = self._workspace(req)
            self._authorize(req, ws)
            return json_response(200, service_json(self._service(req, ws)))

    def delete_service(self, req: Request) -> Response:
        """DELETE a web service and its endpoints."""
        with self.state.lock:
            ws = self._workspace(req)
            self._authorize(req, ws)
            svc = self._service(req, ws)
            del ws.services[svc.id]
        return Response(status=200)

    # -- endpoints ---------------------------------------------------------------------

    def list_endpoints(self, req: Request) -> Response:
        """GET the endpoints of a web service."""
        with self.state.lock:
            ws = self._workspace(req)
            self._authorize(req, ws)
            svc = self._service(req, ws)
            body = [
                endpoint_json(req.base_url, svc, self._readable(svc, ep))
                for ep in svc.endpoints.values()
            ]
            return json_response(200, body)

    def get_endpoint(self, req: Request) -> Response:
        """GET one endpoint (workspace token or the endpoint's key)."""
        with self.state.lock:
            _, svc, ep = self._endpoint(req)
            return json_response(200, endpoint_json(req.base_url, svc, self._readable(svc, ep)))

    def add_endpoint(self, req: Request) -> Response:
        """PUT an endpoint: create it (201) or update its settings (200; GUESS)."""
        body = req.json(error=lambda m: runtime_error(400, "BadArgument", m, "RequestBodyInvalid"))
        if not isinstance(body, Mapping):
            raise _bad("RequestBodyInvalid", "The request body must be a JSON object.")
        name = req.params["ep"]
        if not _NAME.match(name):
            raise _bad(
                "InvalidEndpointName",
                f"Endpoint name '{name}' is not valid: use 1 to 24 lowercase letters or digits.",
            )
        throttle = str(ci_get(body, "ThrottleLevel") or "Low").capitalize()
        if throttle not in ("Low", "High"):
            raise _bad("UserParameterInvalid", "ThrottleLevel must be 'High' or 'Low'.")
        calls_raw = ci_get(body, "MaxConcurrentCalls")
        calls = 4
        if throttle == "High":
            try:
                calls = int(calls_raw) if calls_raw not in (None, "") else 20
            except (TypeError, ValueError) as err:
                raise _bad("UserParameterInvalid", "MaxConcurrentCalls must be a number.") from err
            if not 1 <= calls <= 200:
                raise _bad("UserParameterInvalid", "MaxConcurrentCalls must be between 1 and 200.")
        with self.state.lock:
            ws = self._workspace(req)
            self._authorize(req, ws)
            svc = self._service(req, ws)
            ep = svc.endpoints.get(name)
            created = ep is None
            limit = self.max_endpoints
            if ep is None and limit is not None and len(svc.endpoints) >= limit:
                # GUESS: status and codes (API-NOTES 3.2 names the limit, not its error).
                message = (
                    f"Web service {svc.id} already has {len(svc.endpoints)} endpoints, the "
                    f"most it may hold ({limit}, the default one included): "
                    "delete one before adding another."
                )
                raise Reply(runtime_error(409, "Conflict", message, "EndpointLimitReached"))
            if ep is None:
                ep = ClassicEndpoint(
                    name=name,
                    endpoint_id=new_id(),
                    version=svc.version,
                    resources=copy.deepcopy(svc.default.resources),
                )
                svc.endpoints[name] = ep
            ep.description = str(ci_get(body, "Description") or ep.description or "")
            ep.throttle_level = throttle
            ep.max_concurrent_calls = calls
            if ci_get(body, "PreventUpdate") is not None:
                ep.prevent_update = _truthy(ci_get(body, "PreventUpdate"))
            log.info("classic endpoint %s/%s %s", svc.id, name, "added" if created else "updated")
            return json_response(201 if created else 200, endpoint_json(req.base_url, svc, ep))

    def patch_endpoint(self, req: Request) -> Response:
        """PATCH an endpoint's trained-model resources (the only documented PATCH body)."""
        body = req.json(error=lambda m: runtime_error(400, "BadArgument", m, "RequestBodyInvalid"))
        if not isinstance(body, Mapping):
            raise _bad("RequestBodyInvalid", "The request body must be a JSON object.")
        with self.state.lock:
            _, svc, ep = self._endpoint(req)
            resources = ci_get(body, "Resources")
            if resources is None:
                # GUESS: the status and code the real service gives are not documented.
                raise _bad(
                    "RequestBodyInvalid",
                    "A PATCH of an endpoint must hold Resources (the trained models to "
                    "replace); change its settings with a PUT of the endpoint.",
                )
            if svc.kind == "training":
                raise _bad("NoUpdatableResources", NO_UPDATABLE_RESOURCES)
            if ep.name == svc.default_endpoint:
                raise _bad(
                    "DefaultEndpointUpdateNotAllowed",
                    "The default endpoint cannot be patched: it stays in sync with the "
                    "experiment. Add a non-default endpoint and patch that one.",
                )
            if not isinstance(resources, list) or not resources:
                raise _bad("RequestBodyInvalid", "Resources must be a non-empty list.")
            known = {str(r.get("Name")): r for r in ep.resources}
            updates: list[tuple[dict[str, Any], dict[str, Any]]] = []
            for item in resources:
                if not isinstance(item, Mapping):
                    raise _bad("RequestBodyInvalid", "Each resource must be an object.")
                name = str(ci_get(item, "Name") or "")
                if name not in known:
                    raise _bad(
                        "InvalidResourceName",
                        f"Resource '{name}' is not an updatable resource of this endpoint; "
                        f"its resources are {', '.join(map(repr, known)) or 'none'}.",
                    )
                location = ci_get(item, "Location")
                updates.append((known[name], self._check_location(name, location)))
        # Reading the blob happens outside the lock (it is a network call).
        for _, loc in updates:
            self._check_readable(loc)
        with self.state.lock:
            before = copy.deepcopy(ep)
            for resource, loc in updates:
                resource["Location"] = loc
            self._hold_stale(req, svc, ep, before)
            log.info("classic endpoint %s/%s patched", svc.id, ep.name)
        return Response(status=200)

    @staticmethod
    def _check_location(name: str, location: Any) -> dict[str, Any]:
        if not isinstance(location, Mapping):
            raise _bad("InvalidBlob", f"Resource '{name}' needs a Location object.")
        try:
            ref = BlobRef.from_bes(location)
        except ConfigurationError as err:
            raise _bad("InvalidBlob", f"Resource '{name}': {err.message}") from err
        if not ref.relative_location.lower().endswith(".ilearner"):
            raise _bad(
                "InvalidBlobExtension",
                f"Resource '{name}': a trained model must be an .ilearner blob.",
            )
        return {
            "BaseLocation": str(ci_get(location, "BaseLocation")),
            "RelativeLocation": str(ci_get(location, "RelativeLocation")),
            "SasBlobToken": str(ci_get(location, "SasBlobToken") or ""),
        }

    def _check_readable(self, location: Mapping[str, Any]) -> None:
        ref = BlobRef.from_bes(location)
        try:
            self.storage.fetch(ref.sas_url)
        except BlobAccessError as err:
            why = {
                "missing": "does not exist",
                "denied": "cannot be read with the given SAS (missing, wrong or expired)",
            }.get(err.reason, "cannot be read")
            raise Reply(
                runtime_error(
                    400,
                    "BadArgument",
                    "Invalid argument provided.",
                    "InvalidBlob",
                    f"The blob {ref.url} {why}.",
                )
            ) from err

    def refresh_endpoint(self, req: Request) -> Response:
        """POST refresh: copy the experiment's graph (and, with OverwriteResources, its model)."""
        body: Any = {}
        if req.body.strip():
            body = req.json(
                error=lambda m: runtime_error(400, "BadArgument", m, "RequestBodyInvalid")
            )
        overwrite = (
            _truthy(ci_get(body, "OverwriteResources")) if isinstance(body, Mapping) else False
        )
        with self.state.lock:
            _, svc, ep = self._endpoint(req)
            if ep.name == svc.default_endpoint:
                raise _bad(
                    "DefaultEndpointUpdateNotAllowed",
                    "The default endpoint cannot be refreshed: it is always in sync with the "
                    "experiment.",
                )
            changed = ep.version != svc.version
            if overwrite and ep.resources != svc.default.resources:
                ep.resources = copy.deepcopy(svc.default.resources)
                changed = True
            ep.version = svc.version
            if not changed:
                return Response(status=304)
            log.info("classic endpoint %s/%s refreshed", svc.id, ep.name)
            return Response(status=200)

    def delete_endpoint(self, req: Request) -> Response:
        """DELETE an endpoint (the default one only when it is the last)."""
        with self.state.lock:
            ws, svc, ep = self._endpoint(req)
            if ep.name == svc.default_endpoint:
                if len(svc.endpoints) > 1:
                    raise _bad(
                        "DefaultEndpointDeleteNotAllowed",
                        "The default endpoint cannot be deleted while other endpoints exist.",
                    )
                del ws.services[svc.id]
            else:
                del svc.endpoints[ep.name]
        return Response(status=200)
