"""Distributed tracing through azure-core: one span per client call, one per HTTP request.

:func:`traced` puts azure-core's ``distributed_trace`` on a public client method (span
``Class.method``); :func:`http_span` wraps one request sent through ``requests`` in a
child span (kind CLIENT) with its method, redacted URL and status. Both do nothing
unless the user configured a tracing implementation
(``azure.core.settings.settings.tracing_implementation = "opentelemetry"``). The ARM
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

__all__ = ["http_span", "traced"]

P = ParamSpec("P")
T = TypeVar("T")


def traced(func: Callable[P, T]) -> Callable[P, T]:
    """Trace a public client method as azure-core's ``distributed_trace`` does.

    The span is named by the method's qualified name (``BlobStore.upload``). A method
    returning an ``ItemPaged`` gets the span of the call that builds the pager, as in
    the Azure SDKs.
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

    def __init__(self, span: Any) -> None:
        self._span = span

    def response(self, status: int, request_id: str | None) -> None:
        if self._span is None:
            return
        self._span.add_attribute("http.response.status_code", status)
        if status >= 400:
            self._span.add_attribute("error.type", str(status))
        if request_id:
            self._span.add_attribute("az.service_request_id", request_id)


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
    # tracing_enabled (azure-core >= 1.31) may switch off a configured implementation.
    enabled = getattr(settings, "tracing_enabled", None)
    if span_type is None or (enabled is not None and not enabled()):
        yield _Recorder(None)
        return
    from azure.core.tracing import SpanKind

    if params:
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
    with span_type(name=method, kind=SpanKind.CLIENT) as span:
        span.add_attribute("http.request.method", method)
        span.add_attribute("url.full", _sanitized(url))
        parts = urllib.parse.urlsplit(url)
        if parts.hostname:
            span.add_attribute("server.address", parts.hostname)
        if parts.port:
            span.add_attribute("server.port", parts.port)
        yield _Recorder(span)
