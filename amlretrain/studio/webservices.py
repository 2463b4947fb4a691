"""``WebServicesClient``: New (ARM) web services over azure-mgmt-resource.

The ``Microsoft.MachineLearning/webServices`` operations (API-NOTES 1.2) through the
generic resource operations of ``ResourceManagementClient`` (``get_by_id``,
``begin_create_or_update_by_id``, ``begin_update_by_id``, ``begin_delete_by_id``) and its
``send_request`` (list pages, ``listKeys``, ``CreateRegionalBlob``), so authentication,
retries, logging and long-running-operation polling are azure-core's. Every
azure-mgmt-resource call sits in :class:`ResourcesAdapter` (its signatures moved between
major versions); every azure-core error is translated once, here.

Retries (azure-core ``RetryPolicy`` defaults): up to 3 retries with exponential back-off
on connection errors, 408, 429, 500, 502, 503, 504, honouring Retry-After, for every
call. Long-running operations are polled every ``polling_interval`` seconds (or
``polling.initial`` of a :class:`~amlretrain.polling.PollPolicy`).

Every ``begin_*`` method returns a :class:`WebServicePoller`; its
``continuation_token()`` resumes the wait (and the verification after it) in another
process, through the same ``begin_*`` method with ``continuation_token=``. The token holds
the operation, the resource id, the initial request id, the trained-model URIs to verify
(without their SAS) and azure-core's own ARM token (the operation's URLs, no
``Authorization`` header): no secret.

What the live service answers (API-NOTES 1.3a) shapes the writes: a PUT or PATCH answers a
small body (``properties`` holds only ``provisioningState``), so the result of a write is
always the GET of the service after its operation succeeded, never the write's answer; a
DELETE of a service that does not exist is 204 without operation headers (the swagger's
202 form and a 404 are taken as success too).
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from amlretrain._arm import DonePoller, RequestIds, ResourcesAdapter, is_read_of
from amlretrain._errormap import translated as _translated
from amlretrain._tracing import in_this_span, traced
from amlretrain.blobs import BlobRef, is_loopback_host, same_blob, strip_sas
from amlretrain.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    OperationTimeout,
    VerificationFailed,
)
from amlretrain.studio.definition import WebServiceDefinition, WebServiceKeys

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.paging import ItemPaged
    from azure.core.polling import LROPoller

    from amlretrain.polling import PollPolicy

__all__ = ["PAYLOAD_MEMBERS", "WebServicePoller", "WebServicesClient", "split_payloads"]

log = logging.getLogger(__name__)

PROVIDER = "Microsoft.MachineLearning/webServices"

#: The kind of the continuation tokens of :class:`WebServicePoller`.
ARM_TOKEN_KIND = "arm"

#: The members of ``properties`` that a PUT may leave in a blob (``payloadsInBlobStorage``).
PAYLOAD_MEMBERS = ("assets", "input", "output", "package", "parameters", "exampleRequest")


def _model_uris(definition: WebServiceDefinition) -> dict[str, str | None]:
    return {m.asset_id: m.uri for m in definition.trained_models}


class WebServicePoller:
    """A long-running write: wait for it, then read the service back and verify it.

    Attributes:
        request_id: the ``x-ms-request-id`` of the initial request (service logs are
            keyed by it).
    """

    def __init__(
        self,
        poller: LROPoller[Any] | DonePoller,
        ids: RequestIds,
        context: str,
        finish: Callable[[Any], WebServiceDefinition | None],
        state: dict[str, Any] | None = None,
    ) -> None:
        self._poller = poller
        self._ids = ids
        self._context = context
        self._finish = finish
        self._state = state
        self._result: WebServiceDefinition | None = None
        self._finished = False

    def continuation_token(self) -> str:
        """A token that resumes this wait and its verification later, in any process.

        Give it to the same ``begin_*`` method (``continuation_token=``) of a client of
        the same subscription. It holds no secret: the operation, the resource id, the
        initial request id, the trained-model URIs to verify without their SAS, and
        azure-core's ARM token (the operation's URLs, no Authorization header).

        Raises:
            ValueError: the poller was not made by a :class:`WebServicesClient` method.
        """
        from amlretrain.polling import checked_core_token, encode_token

        if self._state is None:
            raise ValueError("this poller has no continuation token")
        lro = (
            None
            if isinstance(self._poller, DonePoller)
            else checked_core_token(self._poller.continuation_token())
        )
        return encode_token(
            ARM_TOKEN_KIND, {**self._state, "request_id": self._ids.initial, "lro": lro}
        )

    @property
    def request_id(self) -> str | None:
        """The ``x-ms-request-id`` of the initial request."""
        return self._ids.initial

    def done(self) -> bool:
        """True when the long-running operation has ended."""
        return bool(self._poller.done())

    def wait_done(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the operation to end (returning as soon as
        it does); True when it has. Its outcome, a failure too, is :meth:`result`'s."""
        try:
            self._poller.wait(timeout)
        except Exception:  # the failure is raised, translated, by result()
            return True
        return bool(self._poller.done())

    def status(self) -> str:
        """The operation's last known status (``InProgress``, ``Succeeded``...)."""
        return str(self._poller.status())

    def result(self, timeout: float | None = None) -> WebServiceDefinition | None:
        """Wait for the operation, then verify; return the service as read afterwards.

        Raises:
            OperationTimeout: ``timeout`` passed first.
            ServiceError: the operation failed (with the initial request id).
            VerificationFailed: it succeeded but the service does not show the change.
        """
        if self._finished:
            return self._result
        with _translated(self._context, lambda: self._ids.initial):
            self._poller.wait(timeout)
            if not self._poller.done():
                raise OperationTimeout(
                    f"{self._context}: not finished after {timeout} s "
                    f"(request id {self._ids.initial})",
                    waited=timeout,
                )
            final = self._poller.result()
        self._result = self._finish(final)
        self._finished = True
        return self._result

    def wait(self, timeout: float | None = None) -> None:
        """Wait (and verify) like :meth:`result`, discarding the value."""
        self.result(timeout)


class WebServicesClient:
    """Client of ``Microsoft.MachineLearning/webServices`` in one subscription.

    Args:
        credential: an azure-core ``TokenCredential`` (e.g. ``DefaultAzureCredential``).
        subscription_id: the subscription.
        base_url: the ARM endpoint (a loopback emulator may be plain http).
        api_version: the provider's api-version.
        polling_interval: seconds between long-running-operation polls.
        timeout: ``(connect, read)`` seconds for every request, polls included.
        polling: a :class:`~amlretrain.polling.PollPolicy` instead of
            ``polling_interval``: azure-core polls an ARM operation every
            ``polling.initial`` seconds (or what the service's ``Retry-After`` asks).

    Retries: azure-core's ``RetryPolicy`` (3 retries, exponential, on connection errors,
    408, 429, 5xx, honouring Retry-After) for every call; see the module docstring.

    Verbs: :meth:`get`, :meth:`list`, :meth:`list_keys`, :meth:`create_or_update`,
    :meth:`create_from_blob`, :meth:`update`, :meth:`delete`,
    :meth:`create_regional_properties`, and a ``begin_*`` of each write, returning a
    :class:`WebServicePoller` (``continuation_token=`` resumes one).

    Example:
        >>> arm = WebServicesClient(DefaultAzureCredential(), sub_id)          # doctest: +SKIP
        >>> current = arm.get("rg", "census-predictive")                        # doctest: +SKIP
        >>> arm.update("rg", "census-predictive",
        ...            current.with_trained_model(job.trained_model.url))     # doctest: +SKIP
    """

    def __init__(
        self,
        credential: TokenCredential,
        subscription_id: str,
        *,
        base_url: str = "https://management.azure.com",
        api_version: str = "2017-01-01",
        polling_interval: float = 5,
        timeout: tuple[float, float] = (10.0, 60.0),
        polling: PollPolicy | None = None,
    ) -> None:
        _check_segment("subscription_id", subscription_id)
        self.subscription_id = subscription_id
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        interval = polling.initial if polling is not None else polling_interval
        self._adapter = ResourcesAdapter(
            credential, subscription_id, self.base_url, interval, timeout
        )

    def __repr__(self) -> str:
        return (
            f"WebServicesClient(subscription_id={self.subscription_id!r}, "
            f"base_url={self.base_url!r})"
        )

    def close(self) -> None:
        """Close the underlying ARM client."""
        self._adapter.close()

    def __enter__(self) -> WebServicesClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def resource_id(self, resource_group: str, name: str) -> str:
        """The ARM id of a web service."""
        _check_segment("resource_group", resource_group)
        _check_segment("name", name)
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{resource_group}"
            f"/providers/{PROVIDER}/{name}"
        )

    # -- reads --------------------------------------------------------------------------------

    @traced
    def get(
        self, resource_group: str, name: str, *, region: str | None = None
    ) -> WebServiceDefinition:
        """GET a web service (keys and the storage key are never returned).

        Args:
            region: read the definition whose encrypted parameters are valid in this
                region (needs :meth:`begin_create_regional_properties` first).

        Raises:
            NotFoundError: no such service (or no regional properties for ``region``).
        """
        rid = self.resource_id(resource_group, name)
        params = {"region": region} if region else {}
        with _translated(f"GET web service {name}"):
            data = self._adapter.get(rid, self.api_version, params)
        return WebServiceDefinition.from_dict(data, validate=False, source=rid)

    @traced
    def list(self, resource_group: str | None = None) -> ItemPaged[WebServiceDefinition]:
        """The web services of a resource group (or of the subscription), page by page.

        Returns an azure-core ``ItemPaged``: nothing is read until it is iterated, and
        each page (the service's ``nextLink``) is read when the iteration reaches it;
        ``.by_page()`` iterates the pages. ``list(arm.list(rg))`` reads them all. List
        items are sparse (top-level members only), as the service returns them.

        Raises:
            ConfigurationError: a bad resource group name (at the call, before any request).
            AmlRetrainError: (or a subclass) a page could not be read (while iterating).

        Example:
            >>> names = [s.name for s in arm.list("rg")]                # doctest: +SKIP
        """
        from azure.core.paging import ItemPaged

        scope = f"/subscriptions/{self.subscription_id}"
        if resource_group is not None:
            _check_segment("resource_group", resource_group)
            scope += f"/resourceGroups/{resource_group}"
        first = f"{scope}/providers/{PROVIDER}"

        def get_page(next_link: str | None) -> Any:
            with _translated("list web services"):
                if next_link is None:
                    return self._adapter.send("GET", first, {"api-version": self.api_version})
                return self._adapter.send("GET", next_link)  # nextLink carries its own query

        def read_page(response: Any) -> tuple[str | None, Iterator[WebServiceDefinition]]:
            with _translated("list web services"):
                page = response.json()
            items = [
                WebServiceDefinition.from_dict(v, validate=False) for v in page.get("value", [])
            ]
            return page.get("nextLink") or None, iter(items)

        return ItemPaged(in_this_span(get_page), read_page)

    @traced
    def list_keys(self, resource_group: str, name: str) -> WebServiceKeys:
        """The service's API keys (GET ``.../listKeys``); never shown in a repr."""
        rid = self.resource_id(resource_group, name)
        with _translated(f"list keys of {name}"):
            data = self._adapter.send("GET", f"{rid}/listKeys", {"api-version": self.api_version})
            body = data.json()
        return WebServiceKeys(primary=body.get("primary"), secondary=body.get("secondary"))

    # -- writes -------------------------------------------------------------------------------

    @traced
    def begin_create_or_update(
        self,
        resource_group: str,
        name: str,
        definition: WebServiceDefinition | None,
        *,
        overwrite_fetched: bool = False,
        continuation_token: str | None = None,
    ) -> WebServicePoller:
        """PUT a whole definition: creates the service, or OVERWRITES it without recovery.

        A document read by GET lacks the keys, the storage key and the commitment plan, so
        it is refused unless ``overwrite_fetched=True``. Read-only members are not sent.
        The poller's result is the service read back, its trained models verified.

        Args:
            continuation_token: resume the wait of a PUT already sent (a poller's
                ``continuation_token()``, from any process): nothing is sent again and
                ``definition`` is not read (None will do).

        Raises:
            ConfigurationError: a fetched document without ``overwrite_fetched``, or no
                ``location`` (before any request); a token of another operation.
        """
        if continuation_token is not None:
            return self._resume(continuation_token, "PUT", resource_group, name)
        if definition is None:
            raise ConfigurationError("a PUT needs the definition")
        _check_put(definition, overwrite_fetched)
        return self._put(resource_group, name, definition, definition.for_put())

    def _put(
        self, resource_group: str, name: str, wanted: WebServiceDefinition, body: dict[str, Any]
    ) -> WebServicePoller:
        rid = self.resource_id(resource_group, name)
        ids = RequestIds()
        with _translated(f"PUT web service {name}", lambda: ids.initial):
            poller = self._adapter.begin_put(rid, body, self.api_version, ids)
        log.info("PUT %s (request id %s)", rid, ids.initial)
        return self._poller("PUT", resource_group, name, poller, ids, _model_uris(wanted))

    @traced
    def create_or_update(
        self,
        resource_group: str,
        name: str,
        definition: WebServiceDefinition,
        *,
        overwrite_fetched: bool = False,
        timeout: float | None = None,
    ) -> WebServiceDefinition:
        """:meth:`begin_create_or_update` and wait for it; returns the verified service."""
        poller = self.begin_create_or_update(
            resource_group, name, definition, overwrite_fetched=overwrite_fetched
        )
        return _required(poller.result(timeout))

    @traced
    def begin_create_from_blob(
        self,
        resource_group: str,
        name: str,
        definition: WebServiceDefinition | None,
        payloads: BlobRef | str | None,
        *,
        credentials: str | None = None,
        overwrite_fetched: bool = False,
        continuation_token: str | None = None,
    ) -> WebServicePoller:
        """PUT a definition whose graph is in a blob (``payloadsInBlobStorage``).

        For a definition too large to send inline (the service's limit is 3 MB for the
        assets, input, output, package, parameters and exampleRequest together): the blob
        holds those members as one JSON object, ``definition`` the rest (title, keys,
        storage account, commitment plan, location...); :func:`split_payloads` makes both
        from a whole definition. The PUT carries ``payloadsInBlobStorage: true`` and
        ``payloadsLocation``; the service reads the blob, and the poller's result is the
        service read back after the operation (the graph inline, as the live service
        answers it). Like :meth:`begin_create_or_update`, it overwrites a service that
        exists.

        Args:
            definition: the definition without its graph members.
            payloads: the blob, readable by the service: a :class:`~amlretrain.blobs.BlobRef`
                with a SAS, or its URL with the SAS.
            credentials: ``payloadsLocation.credentials``, for a blob URL without a SAS.
            overwrite_fetched: as for :meth:`begin_create_or_update`.
            continuation_token: resume the wait of a PUT already sent (as for
                :meth:`begin_create_or_update`; ``definition`` and ``payloads`` may be
                None).

        Raises:
            ConfigurationError: ``definition`` still holds graph members, the blob URL has
                no SAS (and no ``credentials`` were given) or its SAS has expired, or a
                refusal of :meth:`begin_create_or_update` (all before any request).

        Example:
            >>> small, graph = split_payloads(definition)                       # doctest: +SKIP
            >>> blob = store.upload(json.dumps(graph).encode(), container="payloads",
            ...                     blob_name="census.json")                   # doctest: +SKIP
            >>> readable = store.sas(blob, expires_in=timedelta(hours=1))      # doctest: +SKIP
            >>> arm.create_from_blob("rg", "census", small, readable)         # doctest: +SKIP
        """
        if continuation_token is not None:
            return self._resume(continuation_token, "PUT", resource_group, name)
        if definition is None or payloads is None:
            raise ConfigurationError("a PUT from a blob needs the definition and the blob")
        uri = payloads.sas_url if isinstance(payloads, BlobRef) else str(payloads)
        _check_payloads_uri(uri, credentials)
        props = definition.to_dict().get("properties")
        members = {m.lower() for m in PAYLOAD_MEMBERS}
        inline = [k for k in (props if isinstance(props, dict) else {}) if k.lower() in members]
        if inline:
            raise ConfigurationError(
                f"the definition still holds {', '.join(inline)} inline: with the graph in a "
                "blob, these come from the blob (split_payloads() makes both)"
            )
        _check_put(definition, overwrite_fetched)
        body = definition.for_put()
        body_props = body.setdefault("properties", {})
        for key in [k for k in body_props if k.lower().startswith("payloads")]:
            del body_props[key]
        body_props["payloadsInBlobStorage"] = True
        location: dict[str, str] = {"uri": uri}
        if credentials:
            location["credentials"] = credentials
        body_props["payloadsLocation"] = location
        return self._put(resource_group, name, definition, body)

    @traced
    def create_from_blob(
        self,
        resource_group: str,
        name: str,
        definition: WebServiceDefinition,
        payloads: BlobRef | str,
        *,
        credentials: str | None = None,
        overwrite_fetched: bool = False,
        timeout: float | None = None,
    ) -> WebServiceDefinition:
        """:meth:`begin_create_from_blob` and wait for it; returns the service read back."""
        poller = self.begin_create_from_blob(
            resource_group,
            name,
            definition,
            payloads,
            credentials=credentials,
            overwrite_fetched=overwrite_fetched,
        )
        return _required(poller.result(timeout))

    @traced
    def begin_update(
        self,
        resource_group: str,
        name: str,
        new_definition: WebServiceDefinition | None,
        *,
        expected: WebServiceDefinition | None = None,
        expected_is_fresh: bool = False,
        continuation_token: str | None = None,
    ) -> WebServicePoller:
        """PATCH only what changed (plus ``packageType``); the result is verified.

        The change is computed from ``expected`` (the definition ``new_definition`` was
        made from) when given, otherwise from a fresh GET. With ``expected``, the service's
        current trained models must still be those of ``expected`` (a GET checks it,
        unless ``expected_is_fresh``: the caller has just read it and holds the target's
        lease, so that read is the check).

        Args:
            continuation_token: resume the wait and the verification of a PATCH already
                sent (a poller's ``continuation_token()``, from any process): nothing is
                sent again and ``new_definition`` is not read (None will do).

        Raises:
            ConfigurationError: nothing changed (before any request when ``expected`` is
                given, else before the PATCH), or the service is read-only.
            ConflictError: the service's trained models are no longer ``expected``'s.
        """
        from amlretrain.studio.ilearner import patch_body

        if continuation_token is not None:
            return self._resume(continuation_token, "PATCH", resource_group, name)
        if new_definition is None:
            raise ConfigurationError("an update needs the new definition")
        if expected is not None:
            body = patch_body(expected, new_definition)
            if expected.is_read_only:
                raise _read_only(name)
        current = expected if expected is not None and expected_is_fresh else None
        if current is None:
            current = self.get(resource_group, name)
        if current.is_read_only:
            raise _read_only(name)
        if expected is not None:
            if _model_uris(current) != _model_uris(expected):
                raise ConflictError(
                    f"web service {name} changed since the expected definition was read: its "
                    "trained models differ; read it again and redo the change",
                    code="DefinitionChanged",
                )
        else:
            body = patch_body(current, new_definition)
        if new_definition.is_read_only:
            log.warning("this update makes web service %s read-only: for good", name)
        rid = self.resource_id(resource_group, name)
        ids = RequestIds()
        with _translated(f"PATCH web service {name}", lambda: ids.initial):
            poller = self._adapter.begin_patch(rid, body, self.api_version, ids)
        log.info("PATCH %s (request id %s)", rid, ids.initial)
        return self._poller("PATCH", resource_group, name, poller, ids, _model_uris(new_definition))

    @traced
    def update(
        self,
        resource_group: str,
        name: str,
        new_definition: WebServiceDefinition,
        *,
        expected: WebServiceDefinition | None = None,
        timeout: float | None = None,
    ) -> WebServiceDefinition:
        """:meth:`begin_update` and wait for it; returns the verified service.

        Raises:
            VerificationFailed: the operation succeeded but a fresh GET shows another
                trained model.
        """
        poller = self.begin_update(resource_group, name, new_definition, expected=expected)
        return _required(poller.result(timeout))

    @traced
    def begin_delete(
        self, resource_group: str, name: str, *, continuation_token: str | None = None
    ) -> WebServicePoller:
        """DELETE a web service; deleting one that does not exist is success.

        The live service answers that case 204 without operation headers (done at once);
        the swagger's form (202 and an operation that succeeds) and a 404 are success too.

        Args:
            continuation_token: resume the wait of a DELETE already sent (a poller's
                ``continuation_token()``, from any process).
        """
        if continuation_token is not None:
            return self._resume(continuation_token, "DELETE", resource_group, name)
        rid = self.resource_id(resource_group, name)
        ids = RequestIds()
        try:
            with _translated(f"DELETE web service {name}", lambda: ids.initial):
                poller = self._adapter.begin_delete(rid, self.api_version, ids)
        except NotFoundError:
            log.debug("web service %s was already absent", name)
            return self._poller("DELETE", resource_group, name, DonePoller(), ids, None)
        return self._poller("DELETE", resource_group, name, poller, ids, None)

    @traced
    def delete(self, resource_group: str, name: str, *, timeout: float | None = None) -> None:
        """:meth:`begin_delete` and wait for it."""
        self.begin_delete(resource_group, name).wait(timeout)

    @traced
    def begin_create_regional_properties(
        self,
        resource_group: str,
        name: str,
        region: str,
        *,
        continuation_token: str | None = None,
    ) -> WebServicePoller:
        """POST ``CreateRegionalBlob``: encrypt the service's credentials for ``region``.

        Needed before :meth:`get` with ``region=`` for a region other than the service's.

        Args:
            continuation_token: resume the wait of a POST already sent (a poller's
                ``continuation_token()``, from any process).
        """
        if continuation_token is not None:
            return self._resume(continuation_token, "POST", resource_group, name)
        if not region:
            raise ConfigurationError("a region is required")
        rid = self.resource_id(resource_group, name)
        ids = RequestIds()
        params = {"region": region, "api-version": self.api_version}
        with _translated(f"CreateRegionalBlob of {name}", lambda: ids.initial):
            poller = self._adapter.begin_post(f"{rid}/CreateRegionalBlob", params, ids)
        return self._poller("POST", resource_group, name, poller, ids, None)

    @traced
    def create_regional_properties(
        self, resource_group: str, name: str, region: str, *, timeout: float | None = None
    ) -> None:
        """:meth:`begin_create_regional_properties` and wait for it."""
        self.begin_create_regional_properties(resource_group, name, region).wait(timeout)

    # -- pollers and their continuation tokens ------------------------------------------------

    def _poller(
        self,
        operation: str,
        resource_group: str,
        name: str,
        poller: LROPoller[Any] | DonePoller,
        ids: RequestIds,
        models: dict[str, str | None] | None,
    ) -> WebServicePoller:
        """The poller of one operation; ``models`` are the trained-model URIs to verify."""
        context = _CONTEXTS[operation].format(name=name)
        wanted = None if models is None else dict(models)

        def finish(final: Any) -> WebServiceDefinition | None:
            if wanted is None:  # a DELETE or a POST: nothing to read back
                return None
            return self._verify(resource_group, name, wanted, ids.initial, final)

        state = {
            "operation": operation,
            "resource_id": self.resource_id(resource_group, name),
            "models": None if models is None else {k: strip_sas(v) for k, v in models.items()},
        }
        return WebServicePoller(poller, ids, context, finish, state)

    def _resume(
        self, token: str, operation: str, resource_group: str, name: str
    ) -> WebServicePoller:
        """The poller of ``token``: an ``operation`` on this service, already sent."""
        from amlretrain.polling import decode_token

        try:
            data = decode_token(token, ARM_TOKEN_KIND)
        except ValueError as err:
            raise ConfigurationError(str(err)) from err
        rid = self.resource_id(resource_group, name)
        if str(data.get("resource_id", "")).lower() != rid.lower():
            raise ConfigurationError(
                f"the continuation token is of {data.get('resource_id')!r}, not of {rid}"
            )
        if data.get("operation") != operation:
            raise ConfigurationError(
                f"the continuation token resumes a {data.get('operation')!r}, not a {operation}"
            )
        models = data.get("models")
        if models is not None and not isinstance(models, dict):
            raise ConfigurationError("the continuation token holds no trained models")
        ids = RequestIds()
        ids.initial = data.get("request_id")
        lro = data.get("lro")
        context = _CONTEXTS[operation].format(name=name)
        if lro is None:
            poller: LROPoller[Any] | DonePoller = DonePoller()
        else:
            with _translated(context, lambda: ids.initial):
                if operation == "PUT":
                    poller = self._adapter.begin_put(rid, {}, self.api_version, ids, str(lro))
                elif operation == "PATCH":
                    poller = self._adapter.begin_patch(rid, {}, self.api_version, ids, str(lro))
                elif operation == "DELETE":
                    poller = self._adapter.begin_delete(rid, self.api_version, ids, str(lro))
                else:
                    poller = self._adapter.resume_post(str(lro))
        log.info("resumed %s %s (request id %s)", operation, rid, ids.initial)
        return self._poller(operation, resource_group, name, poller, ids, models)

    # -- verification -------------------------------------------------------------------------

    def _verify(
        self,
        resource_group: str,
        name: str,
        wanted: dict[str, str | None],
        request_id: str | None,
        final: Any = None,
    ) -> WebServiceDefinition:
        # azure-core ends a long-running write with a GET of the resource once the
        # operation has succeeded: that answer is the fresh read to verify against. The
        # PUT's or PATCH's own answer never is (the live one is a small body without the
        # definition), so anything but that GET means the service is read again.
        if is_read_of(final, self.resource_id(resource_group, name)):
            fresh = WebServiceDefinition.from_dict(final.body, validate=False)
        else:
            fresh = self.get(resource_group, name)
        have = _model_uris(fresh)
        for asset_id, uri in wanted.items():
            got = have.get(asset_id)
            if got != uri and not same_blob(got, uri):  # (two absent URIs agree)
                raise VerificationFailed(
                    f"web service {name}: the operation succeeded but asset {asset_id} still "
                    f"references another model (request id {request_id})",
                    expected=strip_sas(uri),
                    actual=strip_sas(got),
                )
        log.info("verified web service %s", name)
        return fresh


#: What an operation's errors and logs call it.
_CONTEXTS = {
    "PUT": "PUT web service {name}",
    "PATCH": "PATCH web service {name}",
    "DELETE": "DELETE web service {name}",
    "POST": "CreateRegionalBlob of {name}",
}


def split_payloads(
    definition: WebServiceDefinition,
) -> tuple[WebServiceDefinition, dict[str, Any]]:
    """Split a definition into its graph and the rest (for ``create_from_blob``).

    Returns:
        ``(definition, payloads)``: the definition without the members of
        :data:`PAYLOAD_MEMBERS` (nor ``payloadsInBlobStorage``/``payloadsLocation``), and
        those members as one JSON object, spelled as the definition spells them: what the
        blob holds.

    Example:
        >>> d = WebServiceDefinition.from_dict({"location": "West Europe", "properties": {
        ...     "title": "t", "packageType": "Graph", "package": {"nodes": {}}}})
        >>> small, graph = split_payloads(d)
        >>> sorted(small.to_dict()["properties"]), graph
        (['packageType', 'title'], {'package': {'nodes': {}}})
    """
    doc = definition.to_dict()
    props = doc.get("properties")
    payloads: dict[str, Any] = {}
    if isinstance(props, dict):
        members = {m.lower() for m in PAYLOAD_MEMBERS}
        for key in list(props):
            if key.lower() in members:
                payloads[key] = props.pop(key)
            elif key.lower() in ("payloadsinblobstorage", "payloadslocation"):
                del props[key]
    return WebServiceDefinition.from_dict(doc, validate=False), payloads


def _check_payloads_uri(uri: str, credentials: str | None) -> None:
    from datetime import datetime, timezone

    from amlretrain.blobs import sas_expiry

    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.netloc or not parts.path.strip("/"):
        raise ConfigurationError("the payloads blob must be given as a blob URL (with its SAS)")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigurationError("the payloads blob URL must be https (http only for loopback)")
    if "sig=" not in parts.query and not credentials:
        raise ConfigurationError(
            "the service reads the payloads blob with the SAS of its URL: give a URL with a "
            "read SAS (BlobStore.sas), or credentials"
        )
    expiry = sas_expiry(parts.query)
    if expiry is not None and expiry <= datetime.now(timezone.utc):
        raise ConfigurationError(
            f"the SAS of the payloads blob expired at {expiry.isoformat()}: sign a new one"
        )


def _check_put(definition: WebServiceDefinition, overwrite_fetched: bool) -> None:
    if _looks_fetched(definition) and not overwrite_fetched:
        raise ConfigurationError(
            "this definition was read from the service (it has server-set members); "
            "GET leaves out the keys, the storage key and the commitment plan, so a PUT of "
            "it overwrites them: allow that explicitly if it is intended (the "
            "overwrite-fetched option: --overwrite-fetched on the command line), or "
            "update the service instead (a minimal PATCH)"
        )
    if not definition.location:
        raise ConfigurationError("a PUT needs the definition's location")


def _required(value: WebServiceDefinition | None) -> WebServiceDefinition:
    if value is None:  # pragma: no cover - write pollers always verify
        raise VerificationFailed("the operation returned no definition")
    return value


def _read_only(name: str) -> ConfigurationError:
    return ConfigurationError(
        f"web service {name} is read-only: it cannot be updated, only deleted"
    )


def _looks_fetched(definition: WebServiceDefinition) -> bool:
    """True for a document read from the service (server-set members present)."""
    props = definition.properties
    if definition.id or definition.type:
        return True
    if props is None:
        return False
    return any(
        value is not None
        for value in (
            props.provisioning_state,
            props.created_on,
            props.modified_on,
            props.swagger_location,
        )
    )


def _check_segment(what: str, value: str) -> None:
    if not value or "/" in value or "?" in value or "#" in value:
        raise ConfigurationError(f"{what} {value!r} must be a non-empty name without / ? #")
