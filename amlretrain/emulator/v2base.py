"""Shared plumbing of the Azure ML v2 handlers: auth and api-version, workspaces, errors,
paging, lookups and the 409 of a busy resource, the long-running operations' headers and
documents (V2-NOTES 1).

The operations themselves are the emulator's one LRO machinery
(:meth:`~amlretrain.emulator.state.State.start_operation`, completed lazily as arm.py's);
this module only spells them the v2 way: ``Azure-AsyncOperation`` points at
``/subscriptions/{s}/providers/Microsoft.MachineLearningServices/locations/{region}/
mfeOperationsStatus/{id}`` and ``Location`` at ``…/mfeOperationResults/{id}``. No
``Retry-After`` is sent (V2-NOTES 1.3: clients then poll at their own interval); the
``x-ms-async-operation-timeout`` is ``PT1H`` (its real value is unknown).
"""

from __future__ import annotations

import copy
import re
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

from amlretrain.emulator._server import (
    Reply,
    Request,
    Response,
    arm_error,
    checked_arm_request,
    json_response,
)
from amlretrain.emulator.faults import Faults
from amlretrain.emulator.state import Operation, State
from amlretrain.emulator.v2state import (
    API_VERSION,
    BUSY,
    PROVIDER,
    V2Deployment,
    V2Endpoint,
    V2Workspace,
)

__all__ = ["V2Base", "W", "bad", "check_name", "conflict", "identity", "k8s_not_found"]
__all__ += ["not_found", "note_operation", "operation_document"]

W = "/subscriptions/{sub}/resourceGroups/{rg}/providers/" + PROVIDER + "/workspaces/{ws}"
TIMEOUT = "PT1H"
_NAME = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")


def bad(message: str, code: str = "BadArgument") -> Reply:
    """A 400 in the ARM error shape."""
    return Reply(arm_error(400, code, message))


def conflict(message: str, code: str = "Conflict") -> Reply:
    """A 409 in the ARM error shape (V2-NOTES 3.4)."""
    return Reply(arm_error(409, code, message))


def not_found(what: str) -> Reply:
    """A 404 ``ResourceNotFound``."""
    return Reply(arm_error(404, "ResourceNotFound", f"{what} was not found."))


class V2Base:
    """Auth, workspaces and LRO spelling shared by the v2 handler classes."""

    def __init__(self, *, state: State, faults: Faults, arm_token: str) -> None:
        self.state = state
        self.faults = faults
        self.arm_token = arm_token

    @property
    def v2(self) -> Any:
        """The v2 resources (``state.v2``)."""
        return self.state.v2

    def check(self, req: Request) -> None:
        """Bearer ARM token and ``api-version=2024-04-01``, as ARM checks them."""
        checked_arm_request(req, self.arm_token, (API_VERSION,))

    def workspace(self, req: Request) -> V2Workspace:
        """The request's workspace (checks auth first); 404 when it does not exist."""
        self.check(req)
        key = (req.params["sub"].lower(), req.params["rg"].lower(), req.params["ws"].lower())
        ws: V2Workspace | None = self.v2.workspaces.get(key)
        if ws is None:
            raise Reply(
                arm_error(
                    404,
                    "ResourceNotFound",
                    f"The workspace {req.params['ws']} was not found in resource group "
                    f"{req.params['rg']}.",
                )
            )
        return ws

    @staticmethod
    def body(req: Request) -> dict[str, Any]:
        """The JSON object body (400 otherwise)."""
        data = req.json(error=lambda m: arm_error(400, "InvalidRequestContent", m))
        if not isinstance(data, dict):
            raise bad("The request body must be a JSON object.", "InvalidRequestContent")
        return data

    def page(self, req: Request, views: list[dict[str, Any]]) -> Response:
        """One page of ``views`` (``$skip`` continuation, absolute ``nextLink``)."""
        try:
            start = max(0, int(req.arg("$skip") or "0"))
        except ValueError:
            raise bad(f"The $skip value {req.arg('$skip')!r} is not valid.") from None
        size = max(1, self.state.page_size)
        body: dict[str, Any] = {"value": views[start : start + size], "nextLink": None}
        if start + size < len(views):
            query = dict(req.query)
            query["$skip"] = str(start + size)
            body["nextLink"] = f"{req.base_url}{urllib.parse.quote(req.path)}?" + (
                urllib.parse.urlencode(query, safe="$")
            )
        return json_response(200, body)

    # -- lookups and shared writes ------------------------------------------------------

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

        return self.accepted(
            req,
            ws,
            apply,
            restore=restore,
            result=lambda: json_response(200, copy.deepcopy(target.resource)),
        )

    # -- long-running operations -------------------------------------------------------

    def start(
        self,
        ws: V2Workspace,
        *,
        on_success: Callable[[], None],
        on_failure: Callable[[], None] | None = None,
        failure: tuple[str, str, str] | None = None,
        result: Callable[[], Response] | None = None,
        delay: float | None = None,
    ) -> Operation:
        """Start an operation; ``failure`` = (status, code, message) makes it end so.

        ``result`` is what its ``Location`` answers once it succeeded (default 200, no body);
        ``delay`` how long it runs (None: the state's ``lro_delay``; see :meth:`lro_slow`).
        """
        status, code, message = failure if failure else ("Failed", "InternalServerError", None)
        op = self.state.start_operation(
            subscription_id=ws.subscription_id,
            region=ws.location,
            api_version=API_VERSION,
            on_success=on_success,
            on_failure=on_failure,
            fail_message=message,
            fail_status=status,
            fail_code=code,
            delay=delay,
        )
        self.v2.results[op.id] = result or (lambda: Response(status=200))
        return op

    def begin(
        self,
        req: Request,
        ws: V2Workspace,
        apply: Callable[[], None],
        *,
        restore: Callable[[], None] | None = None,
        result: Callable[[], Response] | None = None,
    ) -> Operation:
        """Start the operation of a write: ``apply`` when it succeeds, ``restore`` when it
        fails (a ``v2_*`` LRO fault decides; ``v2_reported_failed`` applies it all the same)."""
        failure = self.lro_failure(req, apply)
        return self.start(
            ws,
            on_success=apply,
            on_failure=failure[3] if failure and len(failure) > 3 else restore,
            failure=failure[:3] if failure else None,
            result=result,
            delay=self.lro_slow(req),
        )

    def accepted(
        self,
        req: Request,
        ws: V2Workspace,
        apply: Callable[[], None],
        *,
        restore: Callable[[], None] | None = None,
        result: Callable[[], Response] | None = None,
        status: bool = False,
    ) -> Response:
        """202 with ``Location`` (and ``Azure-AsyncOperation`` when ``status``) for a write
        whose operation :meth:`begin` starts."""
        op = self.begin(req, ws, apply, restore=restore, result=result)
        return Response(
            status=202, headers=self.async_headers(req, op, location=True, status=status)
        )

    def lro_failure(self, req: Request, apply: Callable[[], None]) -> tuple[Any, ...] | None:
        """The (status, code, message) a v2 LRO fault gives this write, or None.

        ``v2_reported_failed`` (F12) is returned as ``("Failed", ..., apply)``: the caller
        runs the change on failure too.
        """
        route = [req.route]
        if (f := self.faults.take_one(route, "v2_canceled")) is not None:
            return ("Canceled", "OperationCanceled", f.message or _CANCELED)
        if (f := self.faults.take_one(route, "v2_lro_fail")) is not None:
            return ("Failed", "ResourceNotReady", f.message or _NOT_READY)
        if (f := self.faults.take_one(route, "v2_internal_error")) is not None:
            return ("Failed", "InternalServerError", f.message or "Internal server error.")
        if (f := self.faults.take_one(route, "v2_out_of_quota")) is not None:
            return ("Failed", "OutOfQuota", f.message or _QUOTA)
        if (f := self.faults.take_one(route, "v2_reported_failed")) is not None:
            return ("Failed", "InternalServerError", f.message or _REPORTED, apply)
        return None

    def lro_slow(self, req: Request) -> float | None:
        """How long the operation this write starts runs, when an ``lro_slow`` fault says
        so (the fault taken), else None (the state's ``lro_delay``)."""
        fault = self.faults.take_one([req.route], "lro_slow")
        return fault.seconds if fault is not None else None

    @staticmethod
    def async_headers(
        req: Request, op: Operation, *, location: bool, status: bool
    ) -> dict[str, str]:
        """``Azure-AsyncOperation`` and/or ``Location`` of ``op``."""
        base = (
            f"{req.base_url}/subscriptions/{op.subscription_id}/providers/{PROVIDER}"
            f"/locations/{op.region}"
        )
        query = f"?api-version={API_VERSION}"
        headers = {"x-ms-async-operation-timeout": TIMEOUT}
        if status:
            headers["Azure-AsyncOperation"] = f"{base}/mfeOperationsStatus/{op.id}{query}"
        if location:
            headers["Location"] = f"{base}/mfeOperationResults/{op.id}{query}"
        return headers

    def op_status(self, req: Request) -> Response:
        """The operation-status document (ARMASYNC): InProgress, then terminal."""
        self.check(req)
        with self.state.locked():
            op = self.state.operations.get(req.params["op"])
            if op is None or op.id not in self.v2.results:
                raise not_found(f"Operation {req.params['op']}")
            return json_response(200, operation_document(op))

    def op_result(self, req: Request) -> Response:
        """The ``Location`` URL: 202 while running; then the result, or the error."""
        self.check(req)
        with self.state.locked():
            op = self.state.operations.get(req.params["op"])
            if op is None or op.id not in self.v2.results:
                raise not_found(f"Operation {req.params['op']}")
            if not op.done:
                return Response(
                    status=202,
                    headers={"Location": req.base_url + req.path + "?api-version=" + API_VERSION},
                )
            if op.error:
                return arm_error(
                    500 if op.status == "Failed" else 409, op.error["code"], op.error["message"]
                )
            response: Response = self.v2.results[op.id]()
            return response


_CANCELED = "Operation was canceled by another operation that has a higher priority."
_NOT_READY = "The deployment's scoring script init() failed: the resource is not ready."
_QUOTA = (
    "Not enough quota: the deployment needs its instances plus 20% for upgrades "
    "(1.2 x instance count)."
)
_REPORTED = "The operation failed (the resource may nevertheless have been changed)."


def operation_document(op: Operation) -> dict[str, Any]:
    """The v2 operation-status body of ``op``."""
    doc: dict[str, Any] = {
        "id": (
            f"/subscriptions/{op.subscription_id}/providers/{PROVIDER}/locations/{op.region}"
            f"/mfeOperationsStatus/{op.id}"
        ),
        "name": op.id,
        "status": op.status if op.done else "InProgress",
        "startTime": op.start_time,
        "percentComplete": 100.0 if op.done else 0.0,
    }
    if op.end_time:
        doc["endTime"] = op.end_time
    if op.error:
        doc["error"] = dict(op.error)
    return doc


def check_name(name: str, what: str) -> None:
    """Endpoint and deployment names: 3-32 letters, digits, single dashes (V2-NOTES 1.1)."""
    if not (3 <= len(name) <= 32 and _NAME.match(name)) or "--" in name:
        raise bad(
            f"The {what} name {name!r} is not valid: 3 to 32 letters, digits and single "
            "dashes, beginning with a letter and not ending with a dash."
        )


def identity(value: Any) -> dict[str, Any] | None:
    """A ``ManagedServiceIdentity`` as read back: principal, tenant and client ids filled."""
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


def note_operation(resource: dict[str, Any], stored: dict[str, Any], uri: str) -> None:
    """``properties.properties.AzureAsyncOperationUri``: where RESTSH reads the operation
    URL (V2-NOTES 1.3), in the answer and in what the operation applies (or applied)."""
    for res in (resource, stored):
        extra = res["properties"].get("properties")
        if not isinstance(extra, dict):
            extra = res["properties"]["properties"] = {}
        extra["AzureAsyncOperationUri"] = uri


def k8s_not_found(message: str | None) -> Response:
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
