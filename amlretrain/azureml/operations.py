"""What the v2 clients share: the ARM adapter, the workspace, and ``AzureMLPoller``.

Every request goes through the azure-mgmt-resource adapter of
:mod:`amlretrain.studio.webservices` (``ResourceManagementClient``'s generic operations
and ``send_request``; azure-core's retries, logging, tracing and ARM polling), with one
addition: a request with a JSON body that is not a long-running operation (the model
and job PUTs, ``getLogs``).

The long-running operations (V2-NOTES 1.3: ``Azure-AsyncOperation`` on a 201 or 200 PUT,
then a GET of the original URI; ``Location`` on a 202 PATCH, DELETE or POST) are
azure-core ``LROPoller``\\ s wrapped in an :class:`AzureMLPoller`, the shape of
:class:`~amlretrain.studio.webservices.WebServicePoller`: ``result(timeout)`` waits, then
the client reads the resource afresh and says what it found. The operation's verdict
is not taken on trust (F12): an operation reported Failed whose resource reads
Succeeded with the change made is a success, and the poller's :attr:`~AzureMLPoller.discrepancy`
says exactly what was reported and what was found.

A poller's ``continuation_token()`` resumes the wait and the verification in another
process, through the same ``begin_*`` method with ``continuation_token=``: it holds the
operation, the resource id, what is to be verified, the initial request id and
azure-core's token (the operation's URLs and its first answer, no ``Authorization``).
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from amlretrain._arm import DonePoller, RequestIds, ResourcesAdapter
from amlretrain._errormap import error_from_response
from amlretrain._errormap import translated as _translated
from amlretrain._tracing import in_this_span
from amlretrain.azureml.models import API_VERSION, PROVIDER
from amlretrain.errors import (
    AuthenticationError,
    ConfigurationError,
    OperationTimeout,
    ServiceError,
    ThrottledError,
)
from amlretrain.polling import PollPolicy, checked_core_token, decode_token, encode_token

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.paging import ItemPaged
    from azure.core.polling import LROPoller

__all__ = ["ARM", "TOKEN_KIND", "AzureMLPoller"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The ARM endpoint.
ARM = "https://management.azure.com"
#: The kind of the continuation tokens of :class:`AzureMLPoller`.
TOKEN_KIND = "azureml.arm"


class _Adapter(ResourcesAdapter):
    """The webservices adapter, plus requests with a JSON body that are not LROs."""

    def send_json(
        self, method: str, url: str, params: dict[str, str], body: Any | None = None
    ) -> Any:
        """One request with a JSON body (or none); raises on >= 400."""
        from azure.core.rest import HttpRequest

        request = HttpRequest(method, url, params=params, json=body)
        response = self.client.send_request(request, **self.options)
        if response.status_code >= 400:
            raise error_from_response(
                response.status_code,
                headers=dict(response.headers),
                body=response.content,
                method=method,
                url=response.request.url,
            )
        return response


class Finished(Generic[T]):
    """What a finish step returns: the verified result and, for F12, what disagreed."""

    def __init__(self, value: T, discrepancy: str | None = None) -> None:
        self.value = value
        self.discrepancy = discrepancy


class AzureMLPoller(Generic[T]):
    """A long-running write: wait for it, then read the resource afresh and verify it.

    Attributes:
        request_id: the ``x-ms-request-id`` of the initial request.
        operation_error: after :meth:`result`, the failure the operation itself
            reported (None when it reported success).
        discrepancy: after :meth:`result`, when the operation's verdict and the resource
            disagreed (F12), what was reported and what was found; else None.
    """

    def __init__(
        self,
        poller: LROPoller[Any] | DonePoller,
        ids: RequestIds,
        context: str,
        finish: Callable[[Any, ServiceError | None], Finished[T]],
        state: dict[str, Any],
    ) -> None:
        self._poller = poller
        self._ids = ids
        self._context = context
        self._finish = finish
        self._state = state
        self._result: Finished[T] | None = None
        self.operation_error: ServiceError | None = None

    def __repr__(self) -> str:
        return f"AzureMLPoller({self._context!r}, status={self.status()!r})"

    def continuation_token(self) -> str:
        """A token that resumes this wait and its verification later, in any process.

        Give it to the same ``begin_*`` method (``continuation_token=``) of a client of
        the same workspace. It holds no secret.
        """
        lro = (
            None
            if isinstance(self._poller, DonePoller)
            else checked_core_token(self._poller.continuation_token())
        )
        return encode_token(
            TOKEN_KIND, {**self._state, "request_id": self._ids.initial, "lro": lro}
        )

    @property
    def request_id(self) -> str | None:
        """The ``x-ms-request-id`` of the initial request."""
        return self._ids.initial

    @property
    def discrepancy(self) -> str | None:
        """What the operation reported and the resource showed, when they disagreed."""
        return self._result.discrepancy if self._result is not None else None

    def done(self) -> bool:
        """True when the long-running operation has ended."""
        return bool(self._poller.done())

    def status(self) -> str:
        """The operation's last known status (``InProgress``, ``Succeeded``...)."""
        return str(self._poller.status())

    def wait_done(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the operation to end; True when it has.

        Its outcome, a failure too, is :meth:`result`'s.
        """
        try:
            self._poller.wait(timeout)
        except Exception:  # the failure is raised, translated, by result()
            return True
        return bool(self._poller.done())

    def result(self, timeout: float | None = None) -> T:
        """Wait for the operation, read the resource afresh, and return it verified.

        Raises:
            OperationTimeout: ``timeout`` passed first.
            ServiceError: the operation failed and the resource shows it did.
            VerificationFailed: it reported success but the resource does not show it.
        """
        if self._result is not None:
            return self._result.value
        final: Any = None
        failure: ServiceError | None = None
        try:
            with _translated(self._context, lambda: self._ids.initial):
                self._poller.wait(timeout)
                if not self._poller.done():
                    raise OperationTimeout(
                        f"{self._context}: not finished after {timeout} s "
                        f"(request id {self._ids.initial})",
                        waited=timeout,
                    )
                final = self._poller.result()
        except ServiceError as err:
            if not err.answered or isinstance(err, AuthenticationError | ThrottledError):
                raise  # no answer, or refused credentials: not the operation's verdict
            # The operation's status document said Failed or Canceled, or its Location
            # answered an error: what the resource shows decides (F12).
            failure = err
        self.operation_error = failure
        self._result = self._finish(final, failure)
        if self._result.discrepancy:
            log.warning("%s: %s", self._context, self._result.discrepancy)
        return self._result.value

    def wait(self, timeout: float | None = None) -> None:
        """Wait (and verify) like :meth:`result`, discarding the value."""
        self.result(timeout)


def check_segment(what: str, value: str) -> None:
    """Refuse a name that would break the URL (empty, or with ``/ ? #``)."""
    if not isinstance(value, str) or not value or any(c in value for c in "/?#"):
        raise ConfigurationError(f"{what} {value!r} must be a non-empty name without / ? #")


def described(error: ServiceError) -> str:
    """``code: message`` of an operation's failure, for a discrepancy's text."""
    return f"{error.code or 'no code'}: {error.service_message}"


def failed_as_read(error: ServiceError, found: str) -> ServiceError:
    """The operation's failure, with what a fresh read of the resource found."""
    return ServiceError(
        f"{error.service_message}; {found}",
        status=error.status,
        code=error.code,
        details=error.details,
        request_id=error.request_id,
    )


_C = TypeVar("_C", bound="WorkspaceClient")


class WorkspaceClient:
    """Base of the v2 clients: one workspace, the ARM adapter, the polling policy.

    Args:
        credential: an azure-core ``TokenCredential`` (e.g. ``DefaultAzureCredential``).
        subscription_id, resource_group, workspace: the workspace.
        base_url: the ARM endpoint (a loopback emulator may be plain http).
        polling: spaces the operation polls (at ``initial`` seconds, as azure-core polls
            at a fixed interval unless the service sends ``Retry-After``) and the
            re-reads of a wait (busy endpoint, verification); default: polls every 5 s.
        timeout: ``(connect, read)`` seconds of every request.
        verify_timeout: how long a fresh read may take to show a finished operation's
            change (F2: eventual consistency), in seconds.
    """

    def __init__(
        self,
        credential: TokenCredential,
        subscription_id: str,
        resource_group: str,
        workspace: str,
        *,
        base_url: str = ARM,
        polling: PollPolicy | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        verify_timeout: float = 120.0,
    ) -> None:
        check_segment("subscription_id", subscription_id)
        check_segment("resource_group", resource_group)
        check_segment("workspace", workspace)
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.workspace = workspace
        self.base_url = base_url.rstrip("/")
        self.api_version = API_VERSION
        self.polling = polling if polling is not None else PollPolicy.fixed(5.0)
        self.verify_timeout = verify_timeout
        self._adapter = _Adapter(
            credential, subscription_id, self.base_url, self.polling.initial, timeout
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(subscription_id={self.subscription_id!r}, "
            f"resource_group={self.resource_group!r}, workspace={self.workspace!r}, "
            f"base_url={self.base_url!r})"
        )

    def close(self) -> None:
        """Close the underlying ARM client."""
        self._adapter.close()

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def workspace_id(self) -> str:
        """The workspace's ARM id (``{W}`` in V2-NOTES)."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{PROVIDER}/workspaces/{self.workspace}"
        )

    def _params(self) -> dict[str, str]:
        return {"api-version": self.api_version}

    def _pages(
        self, context: str, first: str, read: Callable[[Mapping[str, Any]], T]
    ) -> ItemPaged[T]:
        """An azure-core ``ItemPaged`` over a list operation (``value``, ``nextLink``)."""
        from azure.core.paging import ItemPaged

        def get_page(next_link: str | None) -> Any:
            with _translated(context):
                if next_link is None:
                    return self._adapter.send("GET", first, self._params())
                return self._adapter.send("GET", next_link)  # nextLink carries its query

        def read_page(response: Any) -> tuple[str | None, Iterator[T]]:
            with _translated(context):
                page = response.json()
            items = [read(v) for v in page.get("value", []) if isinstance(v, Mapping)]
            return page.get("nextLink") or None, iter(items)

        return ItemPaged(in_this_span(get_page), read_page)

    def _get(self, context: str, resource_id: str) -> Any:
        with _translated(context):
            return self._adapter.get(resource_id, self.api_version, {})

    def _pause(self, delays: Iterator[float], deadline: float) -> bool:
        """Sleep the policy's next delay (never past ``deadline``); False once it passed."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(max(0.0, min(next(delays), left)))
        return True

    # -- continuation tokens ------------------------------------------------------------------

    def _token(self, token: str, operation: str, resource_id: str) -> dict[str, Any]:
        """The data of a continuation token, checked to resume ``operation`` on ``resource_id``."""
        try:
            data = decode_token(token, TOKEN_KIND)
        except ValueError as err:
            raise ConfigurationError(str(err)) from err
        if str(data.get("resource_id", "")).lower() != resource_id.lower():
            raise ConfigurationError(
                f"the continuation token is of {data.get('resource_id')!r}, not of {resource_id}"
            )
        if data.get("operation") != operation:
            raise ConfigurationError(
                f"the continuation token resumes a {data.get('operation')!r}, not a {operation}"
            )
        return data

    def _resumed(
        self, data: Mapping[str, Any], context: str
    ) -> tuple[LROPoller[Any] | DonePoller, RequestIds]:
        """azure-core's poller of a token's operation (nothing is sent again)."""
        ids = RequestIds()
        ids.initial = data.get("request_id")
        lro = data.get("lro")
        if lro is None:
            return DonePoller(), ids
        rid, operation = str(data["resource_id"]), data["operation"]
        with _translated(context, lambda: ids.initial):
            if operation == "PUT":
                return self._adapter.begin_put(rid, {}, self.api_version, ids, str(lro)), ids
            if operation == "PATCH":
                return self._adapter.begin_patch(rid, {}, self.api_version, ids, str(lro)), ids
            if operation == "DELETE":
                return self._adapter.begin_delete(rid, self.api_version, ids, str(lro)), ids
            return self._adapter.resume_post(str(lro)), ids


def path_of(url: str) -> str:
    """The unquoted, lower-cased path of ``url`` without a trailing slash."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path).rstrip("/").lower()
