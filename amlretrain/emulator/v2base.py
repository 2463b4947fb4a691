"""Shared plumbing of the Azure ML v2 handlers: auth and api-version, workspaces, errors,
paging, the long-running operations' headers and documents (V2-NOTES 1).

The operations themselves are the emulator's one LRO machinery
(:meth:`~amlretrain.emulator.state.State.start_operation`, completed lazily as arm.py's);
this module only spells them the v2 way: ``Azure-AsyncOperation`` points at
``/subscriptions/{s}/providers/Microsoft.MachineLearningServices/locations/{region}/
mfeOperationsStatus/{id}`` and ``Location`` at ``…/mfeOperationResults/{id}``. No
``Retry-After`` is sent (V2-NOTES 1.3: clients then poll at their own interval); the
``x-ms-async-operation-timeout`` is ``PT1H`` (its real value is unknown).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

from amlretrain.emulator._server import Reply, Request, Response, arm_error, json_response
from amlretrain.emulator.faults import Faults
from amlretrain.emulator.state import Operation, State
from amlretrain.emulator.v2state import API_VERSION, PROVIDER, V2Workspace

__all__ = ["V2Base", "W", "bad", "conflict", "not_found"]

W = "/subscriptions/{sub}/resourceGroups/{rg}/providers/" + PROVIDER + "/workspaces/{ws}"
TIMEOUT = "PT1H"


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
        """Bearer ARM token and ``api-version=2024-04-01``, as arm.py checks them."""
        token = req.bearer()
        if token is None:
            raise Reply(
                arm_error(
                    401,
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing or is not "
                    "in the 'Bearer <token>' format.",
                )
            )
        if token != self.arm_token:
            raise Reply(
                arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.")
            )
        version = req.arg("api-version")
        if not version:
            raise Reply(
                arm_error(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            )
        if version != API_VERSION:
            raise Reply(
                arm_error(
                    400,
                    "InvalidApiVersionParameter",
                    f"The api-version '{version}' is invalid. The supported versions are "
                    f"'{API_VERSION}'.",
                )
            )

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

    # -- long-running operations -------------------------------------------------------

    def start(
        self,
        ws: V2Workspace,
        *,
        on_success: Callable[[], None],
        on_failure: Callable[[], None] | None = None,
        failure: tuple[str, str, str] | None = None,
        result: Callable[[], Response] | None = None,
    ) -> Operation:
        """Start an operation; ``failure`` = (status, code, message) makes it end so.

        ``result`` is what its ``Location`` answers once it succeeded (default 200, no body).
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
        )
        self.v2.results[op.id] = result or (lambda: Response(status=200))
        return op

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
