"""The emulator's HTTP server: routing, request/response objects, faults hook, request log.

One ``ThreadingHTTPServer`` on loopback serves every emulated service; routes are
registered by the service modules (:mod:`.arm`, :mod:`.classic`, :mod:`.batch`,
:mod:`.rrs`) with a *route name* that faults and the request log use.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

import attrs

from amlretrain._redact import redact
from amlretrain.emulator.faults import REQUEST_KINDS, Fault, Faults, kill_client

__all__ = [
    "LoggedRequest",
    "Reply",
    "Request",
    "Response",
    "Router",
    "Server",
    "arm_error",
    "json_response",
    "runtime_error",
]

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class Response:
    """What a handler answers. ``drop=True`` closes the connection without a response."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = attrs.field(factory=dict)
    drop: bool = False


_DROPPED = Response(status=0, drop=True)


class Reply(Exception):
    """Raised by handlers (and helpers) to answer at once with ``response``."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def json_response(status: int, data: Any, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response (``application/json; charset=utf-8``)."""
    hdrs = {"Content-Type": "application/json; charset=utf-8"}
    hdrs.update(headers or {})
    return Response(status=status, body=json.dumps(data).encode("utf-8"), headers=hdrs)


def arm_error(
    status: int,
    code: str,
    message: str,
    *,
    details: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An ARM error: ``{"error": {"code", "message"[, "details"]}}``."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return json_response(status, {"error": error}, headers)


def checked_arm_request(req: Request, token: str, versions: Sequence[str]) -> str:
    """The request's ``api-version`` after ARM's checks of it and of the Bearer token.

    Raises:
        Reply: 401 ``AuthenticationFailed`` (no Bearer) or ``InvalidAuthenticationToken``;
            400 ``MissingApiVersionParameter`` or ``InvalidApiVersionParameter``.
    """
    bearer = req.bearer()
    if bearer is None:
        raise Reply(
            arm_error(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing or is not "
                "in the 'Bearer <token>' format.",
            )
        )
    if bearer != token:
        raise Reply(arm_error(401, "InvalidAuthenticationToken", "The access token is invalid."))
    version = req.arg("api-version")
    if not version:
        raise Reply(
            arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        )
    if version not in versions:
        raise Reply(
            arm_error(
                400,
                "InvalidApiVersionParameter",
                f"The api-version '{version}' is invalid. The supported versions are "
                f"'{', '.join(versions)}'.",
            )
        )
    return version


def runtime_error(
    status: int,
    code: str,
    message: str,
    detail_code: str | None = None,
    detail_message: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A BES/RRS/management error (API-NOTES 2.6): ``{"error": {code, message, details}}``."""
    error: dict[str, Any] = {"code": code, "message": message}
    if detail_code:
        error["details"] = [{"code": detail_code, "message": detail_message or message}]
    return json_response(status, {"error": error}, headers)


@attrs.frozen(kw_only=True)
class Request:
    """A parsed request, as handlers see it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    params: dict[str, str]
    route: str
    base_url: str
    request_id: str

    def arg(self, name: str) -> str | None:
        """A query parameter, its name compared case-insensitively."""
        lowered = name.lower()
        for key, value in self.query.items():
            if key.lower() == lowered:
                return value
        return None

    def header(self, name: str) -> str | None:
        """A request header (case-insensitive)."""
        return self.headers.get(name.lower())

    def bearer(self) -> str | None:
        """The token of ``Authorization: Bearer <token>``, or None when absent or malformed."""
        value = self.header("authorization") or ""
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            return None
        return token

    def json(self, *, error: Callable[[str], Response]) -> Any:
        """The body parsed as JSON; ``error(message)`` is raised as a :class:`Reply` if not."""
        if not self.body.strip():
            raise Reply(error("The request body is empty."))
        try:
            return json.loads(self.body.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise Reply(error(f"The request body is not valid JSON: {err}")) from err


Handler = Callable[[Request], Response]


@attrs.frozen
class _Route:
    method: str
    regex: re.Pattern[str]
    name: str
    handler: Handler


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class Router:
    """Maps ``(method, path)`` to a named handler. Patterns use ``{name}`` placeholders."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add(
        self, method: str, pattern: str, name: str, handler: Handler, *, ignore_case: bool = False
    ) -> None:
        """Register ``handler`` for ``method`` on paths matching ``pattern``."""
        parts: list[str] = []
        pos = 0
        for m in _PLACEHOLDER.finditer(pattern):
            parts.append(re.escape(pattern[pos : m.start()]))
            parts.append(f"(?P<{m.group(1)}>[^/]*)")
            pos = m.end()
        parts.append(re.escape(pattern[pos:]))
        flags = re.IGNORECASE if ignore_case else 0
        regex = re.compile("^" + "".join(parts) + "/?$", flags)
        self._routes.append(_Route(method.upper(), regex, name, handler))

    def match(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | str | None:
        """The route and its path parameters; ``"method"`` if only the method is wrong."""
        path_matched = False
        for route in self._routes:
            m = route.regex.match(path)
            if not m:
                continue
            if route.method != method:
                path_matched = True
                continue
            params = {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}
            return route, params
        return "method" if path_matched else None


class LoggedRequest(NamedTuple):
    """One line of the request log: method, path (no query string), status (0 = dropped)."""

    method: str
    path: str
    status: int


def _fault_response(
    route: str, status: int, retry_after: float | None, message: str | None
) -> Response:
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = str(
            int(retry_after) if float(retry_after).is_integer() else retry_after
        )
    if route == "v2.score":  # F11 (V2-NOTES 6): the managed online endpoint's answers
        code = {408: "RequestTimeout", 424: "ModelError", 429: "TooManyRequests"}.get(
            status, "FaultInjected"
        )
        if status == 424:
            headers["ms-azureml-model-error-statuscode"] = "500"
            headers["ms-azureml-model-error-reason"] = "model_error"
        return arm_error(
            status, code, message or f"Injected fault: HTTP {status}.", headers=headers
        )
    if route.startswith(("arm.", "v2.")):
        code = {429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"}.get(
            status, "FaultInjected"
        )
        return arm_error(
            status, code, message or f"Injected fault: HTTP {status}.", headers=headers
        )
    code, detail = {
        429: ("ServiceUnavailable", "RequestThrottled"),
        500: ("InternalError", "InternalError"),
        503: ("ServiceUnavailable", "TooManyConcurrentRequests"),
        504: ("GatewayTimeout", "BackendScoreTimeout"),
    }.get(status, ("InternalError", "FaultInjected"))
    return runtime_error(
        status, code, message or f"Injected fault: HTTP {status}.", detail, headers=headers
    )


def _inject(fault: Fault, route: str) -> Response | None:
    """What a request-level fault answers instead of the handler, or None to carry on.

    The server calls it before the handler, or after it for the faults whose
    :attr:`~.faults.Fault.after_handler` is true (the handler's effect then stands).
    """
    if fault.kind == "kill":
        return _DROPPED if kill_client(fault) else None
    if fault.kind in ("drop", "apply_drop"):
        return _DROPPED
    if fault.kind in ("status", "apply_status"):
        assert fault.status is not None
        return _fault_response(route, fault.status, fault.retry_after, fault.message)
    return None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: Server) -> None:
        self.owner = owner
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (killed, timed out) is not an emulator error."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            log.debug("client %s went away: %s", client_address, error)
            return
        super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "amlretrain-emulator"
    # Headers and body go out in two writes: with Nagle's algorithm on, the second one
    # waits for the client's delayed ACK (about 40 ms per response on Linux).
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.sockets_lock:
            self.server.open_sockets.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.sockets_lock:
                self.server.open_sockets.discard(self.connection)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are logged (redacted) by Server.dispatch

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline().strip().split(b";")[0]
                size = int(size_line or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        response = self.server.owner.dispatch(self.command, self.path, headers, body)
        if response.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status not in (204, 304):
            self.send_header("Content-Length", str(len(response.body)))
        try:
            self.end_headers()
            if self.command != "HEAD" and response.status not in (204, 304):
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its read timeout): nothing left to tell it.
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class Server:
    """The loopback HTTP server shared by every emulated service.

    Args:
        host: loopback address to bind.
        port: port to bind (0 = a free one).
        faults: the fault rules consulted before each handler.
    """

    def __init__(self, *, host: str, port: int, faults: Faults) -> None:
        self.router = Router()
        self.faults = faults
        self._host = host
        self._port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._log: list[LoggedRequest] = []
        self._log_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` once started."""
        if self._httpd is None:
            raise RuntimeError("the emulator server is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[LoggedRequest]:
        """A copy of the request log."""
        with self._log_lock:
            return list(self._log)

    def clear_log(self) -> None:
        """Forget the logged requests."""
        with self._log_lock:
            self._log.clear()

    def start(self) -> None:
        """Bind and serve in a background thread."""
        self._httpd = _HTTPServer((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="amlretrain-emulator-http",
        )
        self._thread.start()
        log.info("emulator listening on %s", self.base_url)

    def stop(self) -> None:
        """Stop serving, close every open connection and join every thread."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        with httpd.sockets_lock:
            for sock in list(httpd.open_sockets):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # -- dispatch ----------------------------------------------------------------------

    def dispatch(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """Route one request through faults and its handler; log it; add common headers."""
        request_id = str(uuid.uuid4())
        parts = urllib.parse.urlsplit(target)
        path = urllib.parse.unquote(parts.path) or "/"
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        found = self.router.match(method, path)
        route_name = "unknown"
        try:
            if found is None:
                response = runtime_error(
                    404, "NotFound", f"No service answers {method} {path}.", "ResourceNotFound"
                )
            elif found == "method":
                response = runtime_error(
                    405, "BadArgument", f"The method {method} is not allowed on {path}."
                )
            else:
                assert not isinstance(found, str)
                route, params = found
                route_name = route.name
                response = self._run(route, method, path, query, headers, body, params, request_id)
        except Exception:  # a bug in a handler must not kill the connection silently
            if self._httpd is None:  # stopped while this request waited (a latency fault)
                log.debug("request %s %s outlived the server", method, redact(path))
            else:
                log.exception("emulator handler failed on %s %s", method, redact(path))
            response = runtime_error(
                500, "InternalError", "The emulator failed on this request.", "InternalError"
            )
        if not response.drop:
            response.headers.setdefault("x-ms-request-id", request_id)
        status = 0 if response.drop else response.status
        with self._log_lock:
            self._log.append(LoggedRequest(method, path, status))
        log.debug("%s %s [%s] -> %s", method, redact(target), route_name, status or "dropped")
        return response

    def _run(
        self,
        route: _Route,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        params: dict[str, str],
        request_id: str,
    ) -> Response:
        fired = self.faults.take(route.name, REQUEST_KINDS)
        for fault in fired:
            if fault.kind == "latency":
                time.sleep(fault.seconds)
        decisive = next((f for f in fired if f.kind != "latency"), None)
        if decisive is not None and not decisive.after_handler:
            early = _inject(decisive, route.name)
            if early is not None:
                return early
        request = Request(
            method=method,
            path=path,
            query=query,
            headers=headers,
            body=body,
            params=params,
            route=route.name,
            base_url=self.base_url,
            request_id=request_id,
        )
        try:
            response = route.handler(request)
        except Reply as reply:
            response = reply.response
        if decisive is not None and decisive.after_handler:
            return _inject(decisive, route.name) or response
        return response
