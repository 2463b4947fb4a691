"""The one mapping of errors to :mod:`amlretrain.errors`: HTTP statuses, requests, azure-core.

Every client translates the errors of the libraries it uses here, once, at its boundary:

* an error response (status, headers, body, from requests or azure-core):
  :func:`error_from_response`; 401/403 :class:`~amlretrain.errors.AuthenticationError`,
  404 :class:`~amlretrain.errors.NotFoundError`, 409/412
  :class:`~amlretrain.errors.ConflictError`, 429/503
  :class:`~amlretrain.errors.ThrottledError` (with ``Retry-After``), anything else
  :class:`~amlretrain.errors.ServiceError`; the service's error code, message, details
  and request id are read from any of its body shapes (:func:`parse_error_body`);
* a requests transport failure (no response): :func:`error_from_exception`;
* an azure-core exception (ARM, storage): :func:`error_from_azure`, or the
  :func:`translated` context manager around the calls.

Messages are truncated and redacted. ``requests`` and ``azure-core`` are imported
inside functions, so that ``import amlretrain`` stays light.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from amlretrain._redact import redact
from amlretrain._wire import ci_get
from amlretrain.errors import (
    AmlRetrainError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    OperationTimeout,
    ServiceError,
    ThrottledError,
)

__all__ = [
    "MAX_BODY_IN_MESSAGE",
    "MAX_BODY_PARSED",
    "error_from_azure",
    "error_from_exception",
    "error_from_response",
    "parse_error_body",
    "parse_retry_after",
    "transient",
    "translated",
    "truncate",
]

#: Longest slice of a response body quoted in an exception message.
MAX_BODY_IN_MESSAGE = 500
#: Bodies longer than this are not parsed as JSON for the error (only their head is quoted).
MAX_BODY_PARSED = 1 << 20


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


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    value = ci_get(headers, name)
    return None if value is None else str(value)


def truncate(text: str, limit: int = MAX_BODY_IN_MESSAGE) -> str:
    """``text`` stripped and cut to ``limit`` characters, saying how many were left out."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return text[:limit] + f"... ({len(text) - limit} more characters)"


def parse_error_body(body: Any) -> tuple[str | None, str | None, list[tuple[str, str]]]:
    """Read ``(code, message, details)`` from a decoded error body, whatever its shape.

    Understands the runtime/classic and ARM shape ``{"error": {"code", "message",
    "details": [{"code", "message"}]}}``, an LRO status document's ``error`` or
    ``errorInfo``, and a bare ``{"code", "message"}`` (any key casing). Unknown shapes
    give ``(None, None, [])``.
    """
    if not isinstance(body, Mapping):
        return None, None, []
    inner = ci_get(body, "error", "errorInfo", "odata.error")
    node: Mapping[str, Any] = inner if isinstance(inner, Mapping) else body
    code = ci_get(node, "code")
    message = ci_get(node, "message")
    if isinstance(message, Mapping):  # OData: {"message": {"lang", "value"}}
        message = ci_get(message, "value")
    details: list[tuple[str, str]] = []
    raw_details = ci_get(node, "details")
    if isinstance(raw_details, list):
        for item in raw_details[:10]:
            if isinstance(item, Mapping):
                dcode = ci_get(item, "code")
                dmsg = ci_get(item, "message")
                details.append((str(dcode or ""), truncate(str(dmsg or ""), MAX_BODY_IN_MESSAGE)))
    return (
        str(code) if code is not None else None,
        truncate(str(message)) if message is not None else None,
        details,
    )


def _decode(body: bytes | str | None) -> tuple[Any, str]:
    if body is None:
        return None, ""
    if isinstance(body, bytes):
        head = body[: MAX_BODY_IN_MESSAGE * 4].decode("utf-8", "replace")
        if len(body) > MAX_BODY_PARSED:
            return None, head
        text = body.decode("utf-8", "replace")
    else:
        if len(body) > MAX_BODY_PARSED:
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
    """Map one error response to its member of the exception tree.

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
        message = truncate(text) if text.strip() else "no error body"
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


@contextlib.contextmanager
def translated(context: str, request_id: Callable[[], str | None] | None = None) -> Iterator[None]:
    """Raise the azure-core errors of the block as their member of the tree.

    Args:
        context: a few words on what the block does, prefixed to the message.
        request_id: called on failure for the id to report (see :func:`error_from_azure`).

    Example:
        >>> with translated("GET web service w"):  # doctest: +SKIP
        ...     client.resources.get_by_id(resource_id, api_version)
    """
    from azure.core.exceptions import AzureError

    try:
        yield
    except AzureError as exc:
        rid = request_id() if request_id else None
        raise error_from_azure(exc, request_id=rid, context=context) from exc


def transient(err: AmlRetrainError) -> bool:
    """A failure worth one more try: throttled, a 5xx gateway error, no answer at all."""
    if isinstance(err, OperationTimeout | ThrottledError):
        return True
    return isinstance(err, ServiceError) and (
        err.status in (500, 502, 503, 504) or not err.answered
    )
