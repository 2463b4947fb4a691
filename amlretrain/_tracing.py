"""Distributed tracing through azure-core: one span per client call, one per HTTP request.

:func:`traced` puts azure-core's ``distributed_trace`` on a public client method (span
``Class.method``); :func:`http_span` wraps one request sent through ``requests`` in a
child span (kind CLIENT) with its method, redacted URL and status. Both do nothing
unless the user configured a tracing implementation
(``azure.core.settings.settings.tracing_implementation = "opentelemetry"``) or turned on
azure-core's own OpenTelemetry tracing (``settings.tracing_enabled = True``). The ARM
and storage clients need no :func:`http_span`: azure-core's pipeline makes their HTTP
spans.

azure-core is imported on the first call, not at import, so that ``import amlretrain``
and the CLI stay light.
"""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from amlretrain._redact import REDACTED, redact
from amlretrain._version import __version__

__all__ = ["http_span", "in_this_span", "traced"]

P = ParamSpec("P")
T = TypeVar("T")


def traced(func: Callable[P, T]) -> Callable[P, T]:
    """Trace a public client method as azure-core's ``distributed_trace`` does.

    The span is named by the method's qualified name (``BlobStore.upload``). A method
    returning an ``ItemPaged`` gets the span of the call that builds the pager, as in
    the Azure SDKs (its page reads are children of that span when the pager runs them
    through :func:`in_this_span`).
    """
    decorated: list[Callable[P, T]] = []

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        if not decorated:
            from azure.core.tracing.decorator import distributed_trace

            decorated.append(distributed_trace(name_of_span=func.__qualname__)(func))
        return decorated[0](*args, **kwargs)

    return wrapper


class _Recorder:
    """What :func:`http_span` hands the request code: set the response's status."""

    def __init__(self, set_attribute: Callable[[str, Any], object] | None) -> None:
        self._set = set_attribute

    def response(self, status: int, request_id: str | None) -> None:
        if self._set is None:
            return
        self._set("http.response.status_code", status)
        if status >= 400:
            self._set("error.type", str(status))
        if request_id:
            self._set("az.service_request_id", request_id)


def in_this_span(func: Callable[P, T]) -> Callable[P, T]:
    """``func``, to be run later (a pager's page reads), as a child of the current span.

    azure-core's ``with_current_context``: without it the requests of an ``ItemPaged``,
    read while the caller iterates, would belong to no span of the call that built it.
    """
    from azure.core.tracing.common import with_current_context

    wrapped: Callable[P, T] = with_current_context(func)
    return wrapped


#: Query parameters whose values a span may show (as azure-core's pipeline allows).
_SHOWN_QUERY_PARAMS = frozenset({"api-version"})


def _sanitized(url: str) -> str:
    """``url`` with every query value but the api-version replaced, then redacted."""
    parts = urllib.parse.urlsplit(url)
    query = "&".join(
        f"{name}={value if name.lower() in _SHOWN_QUERY_PARAMS else REDACTED}"
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    return redact(urllib.parse.urlunsplit(parts._replace(query=query)))


@contextmanager
def http_span(
    method: str, url: str, params: Mapping[str, str] | None = None
) -> Iterator[_Recorder]:
    """A CLIENT span for one HTTP request, child of the current span; no-op untraced.

    Args:
        method: the HTTP method (also the span's name, as azure-core names its spans).
        url: the full URL; recorded with its query values (but the api-version)
            replaced and redacted (no SAS signature, no key).
        params: query parameters sent besides those in ``url``.

    Yields:
        A recorder: call ``response(status, request_id)`` once the response arrived.
    """
    from azure.core.settings import settings

    span_type = settings.tracing_implementation()
    # tracing_enabled (newer azure-core) may switch off a configured implementation,
    # or switch on azure-core's own OpenTelemetry tracing without one.
    enabled = getattr(settings, "tracing_enabled", None)
    if enabled is not None and not enabled():
        yield _Recorder(None)
        return
    tracer: Any = _native_tracer() if span_type is None and enabled is not None else None
    if span_type is None and tracer is None:
        yield _Recorder(None)
        return
    from azure.core.tracing import SpanKind

    if params:
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
    attributes: dict[str, str | int] = {
        "http.request.method": method,
        "url.full": _sanitized(url),
    }
    parts = urllib.parse.urlsplit(url)
    if parts.hostname:
        attributes["server.address"] = parts.hostname
    if parts.port:
        attributes["server.port"] = parts.port
    if span_type is not None:
        with span_type(name=method, kind=SpanKind.CLIENT) as span:
            for key, value in attributes.items():
                span.add_attribute(key, value)
            yield _Recorder(span.add_attribute)
        return
    with tracer.start_as_current_span(method, kind=SpanKind.CLIENT, attributes=attributes) as span:
        yield _Recorder(span.set_attribute)


def _native_tracer() -> Any:
    """azure-core's own OpenTelemetry tracer (newer azure-core), or None."""
    try:
        from azure.core.instrumentation import get_tracer
    except ImportError:  # an older azure-core: no native tracing
        return None
    return get_tracer(library_name="amlretrain", library_version=__version__)
