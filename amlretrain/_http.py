"""HTTP plumbing for the requests-based clients, and the one mapping of errors to the tree.

One :class:`HttpClient` (one ``requests.Session``) per client object. Every call gets a
connect and a read timeout (defaults 10 s and 60 s), the user agent
``amlretrain/<version> python-requests/<version>``, debug logging with redacted URLs, and
its error response mapped once to :mod:`amlretrain.errors` by :func:`error_from_response`.

Which calls retry (urllib3 ``Retry`` mounted on the session, at most ``retries`` times,
exponential back-off 0.5 s x 2^n with a 30 s cap; ``Retry-After`` honoured, capped at
:data:`MAX_RETRY_AFTER` seconds with a log line saying so):

* GET, PUT, DELETE, HEAD (idempotent): on connection errors, read errors and timeouts,
  and on HTTP 429, 500, 502, 503, 504.
* POST and PATCH (not idempotent: a BES submit creates a new job each time): only on
  HTTP 429 or 503 *that carry Retry-After*, i.e. when the service refused the request
  without executing it. Never on a connection error, a dropped connection or a read
  timeout, since the request may have run.

After the retries, 429 and 503 raise :class:`~amlretrain.errors.ThrottledError` (with the
last ``Retry-After``); other statuses raise their member of the tree; a connection error
raises :class:`~amlretrain.errors.ServiceError` with ``status=None`` and a read timeout
:class:`~amlretrain.errors.OperationTimeout`.

Logging: each call is logged at DEBUG on ``amlretrain._http`` with its URL redacted.
urllib3 logs request lines (with query strings, hence SAS signatures) at DEBUG on
``urllib3.connectionpool``; :func:`new_session` adds a filter to that logger that redacts
those lines (it changes no level and adds no handler).

Tracing: each call is one CLIENT span (:func:`amlretrain._tracing.http_span`), a child of
the public method's span, when the user configured azure-core tracing.

``requests`` and ``urllib3`` are imported inside functions, so that ``import amlretrain``
stays light.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from amlretrain._redact import redact, redact_data
from amlretrain._tracing import http_span
from amlretrain._version import __version__
from amlretrain.errors import (
    AmlRetrainError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    OperationTimeout,
    ServiceError,
    ThrottledError,
)

if TYPE_CHECKING:
    import requests
    from azure.core.credentials import AzureKeyCredential

__all__ = [
    "DEFAULT_TIMEOUT",
    "IDEMPOTENT_METHODS",
    "MAX_BODY_IN_MESSAGE",
    "MAX_RETRY_AFTER",
    "EndpointClient",
    "HttpClient",
    "api_base_url",
    "bearer_auth",
    "error_from_azure",
    "error_from_exception",
    "error_from_response",
    "new_session",
    "parse_error_body",
    "parse_retry_after",
    "redacted_json",
    "user_agent",
]

log = logging.getLogger(__name__)

#: (connect, read) timeouts in seconds applied to every call.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)
#: Longest Retry-After we sleep for inside one call; longer values are capped (and logged).
MAX_RETRY_AFTER = 60.0
#: Methods retried on connection errors and 5xx.
IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE", "HEAD", "OPTIONS"})
#: Statuses retried for idempotent methods.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Statuses retried for POST/PATCH, and only with Retry-After.
REFUSED_STATUSES = frozenset({429, 503})
#: Longest slice of a response body quoted in an exception message.
MAX_BODY_IN_MESSAGE = 500
#: Bodies longer than this are not parsed as JSON for the error (only their head is quoted).
_MAX_BODY_PARSED = 1 << 20


#: Connections kept per host by a session (at least the deployment concurrency you use).
POOL_SIZE = 32


def user_agent() -> str:
    """The ``User-Agent`` header value: ``amlretrain/<version> python-requests/<version>``."""
    import requests

    return f"amlretrain/{__version__} python-requests/{requests.__version__}"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or HTTP date), or None."""
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parsed = email.utils.parsedate_tz(text)
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - time.time())


def _make_retry(retries: int, backoff_factor: float, max_retry_after: float) -> Any:
    from urllib3.exceptions import MaxRetryError
    from urllib3.util.retry import Retry

    class _AmlRetry(Retry):
        """Retry idempotent calls; POST/PATCH only when refused with Retry-After."""

        def __init__(self, *args: Any, max_retry_after: float = MAX_RETRY_AFTER, **kw: Any):
            super().__init__(*args, **kw)
            self.max_retry_after = max_retry_after

        def new(self, **kw: Any) -> _AmlRetry:
            fresh = super().new(**kw)
            fresh.max_retry_after = self.max_retry_after
            return fresh

        def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
            if not self.total:
                return False
            if method.upper() in IDEMPOTENT_METHODS:
                return status_code in RETRY_STATUSES
            return has_retry_after and status_code in REFUSED_STATUSES

        def parse_retry_after(self, retry_after: str) -> float:
            seconds = parse_retry_after(retry_after)
            if seconds is None:
                return 0.0
            if seconds > self.max_retry_after:
                log.info("Retry-After of %.0f s capped at %.0f s", seconds, self.max_retry_after)
                return self.max_retry_after
            return seconds

        def increment(
            self,
            method: str | None = None,
            url: str | None = None,
            response: Any = None,
            error: Exception | None = None,
            _pool: Any = None,
            _stacktrace: Any = None,
        ) -> _AmlRetry:
            if error is not None and (method or "").upper() not in IDEMPOTENT_METHODS:
                # The request may have reached the service: never resend it.
                if self._is_read_error(error):
                    raise error
                raise MaxRetryError(_pool, url or "", error) from error
            result: _AmlRetry = super().increment(
                method, url, response=response, error=error, _pool=_pool, _stacktrace=_stacktrace
            )
            cause = f"HTTP {response.status}" if response is not None else type(error).__name__
            log.debug("retrying %s %s after %s", method, redact(url or ""), cause)
            return result

    return _AmlRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        redirect=5,
        allowed_methods=IDEMPOTENT_METHODS,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_factor,
        backoff_max=30,
        raise_on_status=False,
        raise_on_redirect=False,
        respect_retry_after_header=True,
        max_retry_after=max_retry_after,
    )


class _RedactingFilter(logging.Filter):
    """Rewrites a log record's message with secrets redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def _guard_third_party_logs() -> None:
    for name in ("urllib3.connectionpool", "urllib3.util.retry"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactingFilter) for f in logger.filters):
            logger.addFilter(_RedactingFilter())


def new_session(
    *,
    retries: int = 3,
    backoff_factor: float = 0.5,
    max_retry_after: float = MAX_RETRY_AFTER,
) -> requests.Session:
    """A ``requests.Session`` with the retry policy of this module and the user agent.

    Args:
        retries: how many times one call may be retried (0 disables retries).
        backoff_factor: base of the exponential back-off between retries, in seconds.
        max_retry_after: cap on a ``Retry-After`` the session sleeps for.

    Returns:
        A new session; the caller owns it (close it, or let the client do so).
    """
    import requests
    from requests.adapters import HTTPAdapter

    _guard_third_party_logs()
    session = requests.Session()
    # One pool per host, large enough for the workflow's concurrent deployments (the
    # default of 10 would make the 11th concurrent request wait for a connection).
    adapter = HTTPAdapter(
        max_retries=_make_retry(retries, backoff_factor, max_retry_after),
        pool_connections=8,
        pool_maxsize=POOL_SIZE,
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = user_agent()
    return session


def api_base_url(api_location: str) -> str:
    """An endpoint's ``ApiLocation`` without a trailing ``/jobs`` or ``/execute`` and query.

    Accepts the ApiLocation itself or a BES/RRS URL copied from a help page.

    Raises:
        ConfigurationError: not an http(s) URL.
    """
    parts = urllib.parse.urlsplit(api_location.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"{redact(api_location)!r} is not an http(s) URL")
    path = parts.path.rstrip("/")
    for suffix in ("/jobs", "/execute"):
        if path.lower().endswith(suffix):
            path = path[: -len(suffix)]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


# -- error mapping --------------------------------------------------------------------------


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return str(value)
    lower = name.lower()
    for key, val in headers.items():
        if str(key).lower() == lower:
            return str(val)
    return None


def _truncate(text: str, limit: int = MAX_BODY_IN_MESSAGE) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    return text[:limit] + f"... ({len(text) - limit} more characters)"


def _ci_get(data: Mapping[str, Any], *names: str) -> Any:
    wanted = {n.lower() for n in names}
    for key, value in data.items():
        if isinstance(key, str) and key.lower() in wanted:
            return value
    return None


def parse_error_body(body: Any) -> tuple[str | None, str | None, list[tuple[str, str]]]:
    """Read ``(code, message, details)`` from a decoded error body, whatever its shape.

    Understands the runtime/classic and ARM shape ``{"error": {"code", "message",
    "details": [{"code", "message"}]}}``, an LRO status document's ``error`` or
    ``errorInfo``, and a bare ``{"code", "message"}`` (any key casing). Unknown shapes
    give ``(None, None, [])``.
    """
    if not isinstance(body, Mapping):
        return None, None, []
    inner = _ci_get(body, "error", "errorInfo", "odata.error")
    node: Mapping[str, Any] = inner if isinstance(inner, Mapping) else body
    code = _ci_get(node, "code")
    message = _ci_get(node, "message")
    if isinstance(message, Mapping):  # OData: {"message": {"lang", "value"}}
        message = _ci_get(message, "value")
    details: list[tuple[str, str]] = []
    raw_details = _ci_get(node, "details")
    if isinstance(raw_details, list):
        for item in raw_details[:10]:
            if isinstance(item, Mapping):
                dcode = _ci_get(item, "code")
                dmsg = _ci_get(item, "message")
                details.append((str(dcode or ""), _truncate(str(dmsg or ""), MAX_BODY_IN_MESSAGE)))
    return (
        str(code) if code is not None else None,
        _truncate(str(message)) if message is not None else None,
        details,
    )


def _decode(body: bytes | str | None) -> tuple[Any, str]:
    if body is None:
        return None, ""
    if isinstance(body, bytes):
        head = body[: MAX_BODY_IN_MESSAGE * 4].decode("utf-8", "replace")
        if len(body) > _MAX_BODY_PARSED:
            return None, head
        text = body.decode("utf-8", "replace")
    else:
        if len(body) > _MAX_BODY_PARSED:
            return None, body[: MAX_BODY_IN_MESSAGE * 4]
        text = body
    try:
        return json.loads(text), text
    except ValueError:
        return None, text


def error_from_response(
    status: int | None,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | str | Any = None,
    method: str | None = None,
    url: str | None = None,
    request_id: str | None = None,
    code: str | None = None,
    message: str | None = None,
) -> ServiceError:
    """Map one error response to its member of the exception tree (the one mapping).

    Args:
        status: the HTTP status (None when the failure is not an HTTP status).
        headers: the response headers (for ``x-ms-request-id``, ``Retry-After``,
            ``x-ms-error-code``).
        body: raw bytes or text, or an already decoded JSON value.
        method, url: the request (the URL is redacted).
        request_id: overrides the response's ``x-ms-request-id`` (an LRO failure reports
            the id of the initial request).
        code, message: used when the body does not carry them.

    Returns:
        401/403 AuthenticationError, 404 NotFoundError, 409/412 ConflictError,
        429/503 ThrottledError (with ``retry_after``), anything else ServiceError. The
        message is truncated and redacted.
    """
    if isinstance(body, bytes | str) or body is None:
        decoded, text = _decode(body)
    else:
        decoded, text = body, ""
    body_code, body_message, details = parse_error_body(decoded)
    code = body_code or code or _header(headers, "x-ms-error-code")
    if body_message:
        message = body_message
    elif not message:
        message = _truncate(text) if text.strip() else "no error body"
    rid = request_id or _header(headers, "x-ms-request-id")
    kwargs: dict[str, Any] = {
        "status": status,
        "code": code,
        "details": [(c, redact(m)) for c, m in details],
        "request_id": rid,
        "method": method,
        "url": redact(url) if url else None,
    }
    text_message = redact(message)
    if status in (401, 403):
        return AuthenticationError(text_message, **kwargs)
    if status == 404:
        return NotFoundError(text_message, **kwargs)
    if status in (409, 412):
        return ConflictError(text_message, **kwargs)
    if status in (429, 503):
        retry_after = parse_retry_after(_header(headers, "Retry-After"))
        return ThrottledError(text_message, retry_after=retry_after, **kwargs)
    return ServiceError(text_message, **kwargs)


def error_from_exception(exc: BaseException, *, method: str, url: str) -> AmlRetrainError:
    """Map a requests transport exception (no response) to the tree.

    A read timeout becomes :class:`OperationTimeout`; every other connection failure a
    :class:`ServiceError` with ``status=None``.
    """
    import requests

    if isinstance(exc, requests.exceptions.ReadTimeout):
        return OperationTimeout(
            f"{method} {redact(url)}: no response within the read timeout ({type(exc).__name__})"
        )
    if isinstance(exc, requests.exceptions.RetryError):
        return ServiceError(
            "the service kept failing after the retries", method=method, url=redact(url)
        )
    return ServiceError(
        f"could not reach the service ({type(exc).__name__})", method=method, url=redact(url)
    )


def error_from_azure(
    exc: BaseException, *, request_id: str | None = None, context: str | None = None
) -> AmlRetrainError:
    """Map an azure-core exception (ARM, storage) to the tree, through :func:`error_from_response`.

    Args:
        exc: an ``azure.core.exceptions.AzureError``.
        request_id: the id to report instead of the failing response's (for a failed
            long-running operation: the id of the initial request).
        context: a few words on what was being done, prefixed to the message.

    Returns:
        The mapped error. A failed long-running operation (a 2xx status document that
        says ``Failed``) gives a :class:`ServiceError` with ``status=None`` and the
        operation's error code; a read timeout an :class:`OperationTimeout`; no response
        a :class:`ServiceError` with ``status=None``.
    """
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceResponseTimeoutError,
    )

    prefix = f"{context}: " if context else ""
    first_line = (str(getattr(exc, "message", None) or exc).strip().splitlines() or [""])[0]
    response: Any = getattr(exc, "response", None)
    if isinstance(exc, HttpResponseError) and response is not None:
        status = exc.status_code
        try:
            body: Any = response.body() if hasattr(response, "body") else response.content
        except Exception:  # a streamed or closed response: the message is all we have
            body = None
        request: Any = getattr(response, "request", None)
        return error_from_response(
            status if status is not None and status >= 400 else None,
            headers=dict(response.headers),
            body=body,
            method=getattr(request, "method", None),
            url=getattr(request, "url", None),
            request_id=request_id,
            code=getattr(exc, "error_code", None),
            message=prefix + first_line,
        )
    if isinstance(exc, ClientAuthenticationError):  # no response: the credential failed
        return AuthenticationError(f"{prefix}could not get a token: {redact(first_line)}")
    if isinstance(exc, ServiceResponseTimeoutError):
        return OperationTimeout(f"{prefix}no response within the read timeout")
    return ServiceError(
        f"{prefix}could not reach the service ({type(exc).__name__}: {redact(first_line)})",
        request_id=request_id,
    )


# -- the per-client wrapper -------------------------------------------------------------------


def bearer_auth(key: str | AzureKeyCredential, *, what: str = "an API key") -> Callable[[], str]:
    """The ``Authorization`` value of a key, read at request time.

    Args:
        key: the key as a string, or an ``azure.core.credentials.AzureKeyCredential``
            (whose ``update()`` then rotates the key sent by the next request).
        what: names the key in the error.

    Raises:
        ConfigurationError: the key is empty.
    """
    if not key:
        raise ConfigurationError(f"{what} is required")
    if isinstance(key, str):
        header = f"Bearer {key}"
        return lambda: header
    read = getattr(key, "key", None)
    if not isinstance(read, str):
        raise ConfigurationError(f"{what} must be a string or an AzureKeyCredential")
    if not read:
        raise ConfigurationError(f"{what} is required")
    return lambda: f"Bearer {key.key}"


class HttpClient:
    """Internal: one Session, the timeouts, logging, and error mapping for one client.

    Args:
        session: a session to use (its adapters decide retries); default: :func:`new_session`.
        auth: the ``Authorization`` value sent on authenticated calls, or a function
            returning it at request time (a secret: never logged or shown).
        timeout: ``(connect, read)`` seconds, applied to every call.
    """

    def __init__(
        self,
        *,
        session: requests.Session | None = None,
        auth: str | Callable[[], str] | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        self._owns_session = session is None
        self.session = session if session is not None else new_session()
        self._auth = auth
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"HttpClient(timeout={self.timeout!r})"

    def close(self) -> None:
        """Close the session if this object created it."""
        if self._owns_session:
            self.session.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        authenticated: bool = True,
        ok: Iterable[int] | Callable[[int], bool] = range(200, 300),
        stream: bool = False,
    ) -> requests.Response:
        """Send one request; return the response when its status is ``ok``, else raise.

        Raises:
            ServiceError: (or a subclass) the service answered with an error status.
            OperationTimeout: no response within the read timeout.
        """
        import requests

        send_headers: dict[str, str] = {"Accept": "application/json"}
        if json_body is not None:
            send_headers["Content-Type"] = "application/json"
        auth = self._auth() if callable(self._auth) else self._auth
        if authenticated and auth:
            send_headers["Authorization"] = auth
        if headers:
            send_headers.update(headers)
        data = json.dumps(json_body).encode("utf-8") if json_body is not None else None
        started = time.monotonic()
        with http_span(method, url, params) as span:
            try:
                response = self.session.request(
                    method,
                    url,
                    params=dict(params) if params else None,
                    data=data,
                    headers=send_headers,
                    timeout=self.timeout,
                    stream=stream,
                )
            except requests.exceptions.RequestException as exc:
                log.debug("%s %s failed: %s", method, redact(url), type(exc).__name__)
                raise error_from_exception(exc, method=method, url=url) from exc
            span.response(response.status_code, response.headers.get("x-ms-request-id"))
        elapsed = (time.monotonic() - started) * 1000
        full_url = response.url or url
        log.debug(
            "%s %s -> %s (%.0f ms, request id %s)",
            method,
            redact(full_url),
            response.status_code,
            elapsed,
            response.headers.get("x-ms-request-id", "-"),
        )
        good = ok(response.status_code) if callable(ok) else response.status_code in set(ok)
        if good:
            return response
        body = response.content if not stream else response.raw.read(_MAX_BODY_PARSED + 1)
        err = error_from_response(
            response.status_code,
            headers=response.headers,
            body=body,
            method=method,
            url=full_url,
        )
        response.close()
        raise err


def redacted_json(data: Any) -> str:
    """JSON text of ``data`` with secrets redacted (for debug logs)."""
    return _truncate(json.dumps(redact_data(data), default=str), 2000)


_E = TypeVar("_E", bound="EndpointClient")


class EndpointClient:
    """Base of the clients of one endpoint's runtime API (batch jobs, scoring).

    Holds the endpoint's base URL (``ApiLocation``) and an :class:`HttpClient` that sends
    its API key as a bearer token; closes the session it made, also as a context manager.
    The key is a string or an ``azure.core.credentials.AzureKeyCredential``, read at
    request time (``credential.update(new_key)`` rotates it).
    """

    def __init__(
        self,
        api_location: str,
        api_key: str | AzureKeyCredential,
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        auth = bearer_auth(api_key)
        self.api_location = api_base_url(api_location)
        self._http = HttpClient(session=session, auth=auth, timeout=timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.api_location!r})"

    def close(self) -> None:
        """Close the HTTP session this client created."""
        self._http.close()

    def __enter__(self: _E) -> _E:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
