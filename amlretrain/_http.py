"""HTTP plumbing for the requests-based clients.

One :class:`HttpClient` (one ``requests.Session``) per client object. Every call gets a
connect and a read timeout (defaults 10 s and 60 s), the user agent
``amlretrain/<version> python-requests/<version>``, debug logging with redacted URLs, and
its error response mapped once to :mod:`amlretrain.errors` (by
:mod:`amlretrain._errormap`, the one mapping of errors).

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

import functools
import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from amlretrain._errormap import (
    MAX_BODY_PARSED,
    error_from_exception,
    error_from_response,
    parse_retry_after,
    truncate,
)
from amlretrain._redact import redact, redact_data
from amlretrain._tracing import http_span
from amlretrain._version import __version__
from amlretrain.errors import ConfigurationError

if TYPE_CHECKING:
    import requests
    from azure.core.credentials import AzureKeyCredential

__all__ = [
    "DEFAULT_TIMEOUT",
    "IDEMPOTENT_METHODS",
    "MAX_RETRY_AFTER",
    "EndpointClient",
    "HttpClient",
    "api_base_url",
    "bearer_auth",
    "new_session",
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


#: Connections kept per host by a session (at least the deployment concurrency you use).
POOL_SIZE = 32


def user_agent() -> str:
    """The ``User-Agent`` header value: ``amlretrain/<version> python-requests/<version>``."""
    import requests

    return f"amlretrain/{__version__} python-requests/{requests.__version__}"


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


@functools.cache
def _session_class() -> type[requests.Session]:
    import requests

    class EnvironmentOnce(requests.Session):
        """A Session that reads the environment's proxy and CA settings once per host.

        ``requests`` scans every environment variable for proxies on every request
        (``merge_environment_settings``, about a twentieth of a small request's CPU in
        ``bench/deploy_fanout``). The settings hold for the session's life: a process
        that changes ``HTTPS_PROXY`` or ``REQUESTS_CA_BUNDLE`` later makes a new client.
        """

        def __init__(self) -> None:
            super().__init__()
            self._environment: dict[tuple[Any, ...], Any] = {}

        def merge_environment_settings(
            self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
        ) -> Any:
            parts = urllib.parse.urlsplit(str(url))
            key = (
                parts.scheme,
                parts.netloc,
                tuple(sorted((proxies or {}).items())),
                stream,
                verify,
                cert,
            )
            if key not in self._environment:
                self._environment[key] = super().merge_environment_settings(
                    url, proxies, stream, verify, cert
                )
            settings = dict(self._environment[key])
            settings["proxies"] = dict(settings.get("proxies") or {})
            return settings

    return EnvironmentOnce


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
    from requests.adapters import HTTPAdapter

    _guard_third_party_logs()
    session = _session_class()()
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
        body = response.content if not stream else response.raw.read(MAX_BODY_PARSED + 1)
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
    return truncate(json.dumps(redact_data(data), default=str), 2000)


_E = TypeVar("_E", bound="EndpointClient")
_T = TypeVar("_T")


def retry_transient(call: Callable[[], _T], retries: int, *, what: str = "scoring") -> _T:
    """``call()``, sent again up to ``retries`` times after a transient failure
    (:func:`amlretrain._errormap.transient`), after 0.5 s, 1 s, 2 s ... or the service's
    ``Retry-After`` (at most 30 s); the last failure, or any other, is raised."""
    from amlretrain._errormap import transient
    from amlretrain.errors import AmlRetrainError

    delay = 0.5
    for attempt in range(retries + 1):
        try:
            return call()
        except AmlRetrainError as err:
            if attempt == retries or not transient(err):
                raise
            wait = getattr(err, "retry_after", None) or delay
            log.info("%s failed transiently (%s); again in %.1f s", what, err, wait)
            time.sleep(min(wait, 30.0))
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


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
