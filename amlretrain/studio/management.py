"""``ClassicClient``: the classic web-service management API (``management.azureml.net``).

Web services (list, get) and their endpoints (list, get, create, update, refresh,
delete), and the retraining swap: :meth:`ClassicClient.begin_update_trained_model`
PATCHes an endpoint's trained-model resource and returns a poller that reads the endpoint
back until it shows the new location (:meth:`ClassicClient.update_trained_model` waits for
it). The only PATCH sent carries ``Resources``, as documented; settings changes
(:meth:`ClassicClient.update_endpoint`) re-send the documented create-endpoint PUT (GUESS).

The models (:class:`ClassicWebService`, :class:`Endpoint`, :class:`EndpointResource`) are
frozen attrs classes read tolerantly (any key casing, unknown fields kept in ``extra``);
endpoint keys never appear in a repr.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

from amlretrain._deprecated import REMOVED_IN
from amlretrain._http import DEFAULT_TIMEOUT, HttpClient, bearer_auth
from amlretrain._redact import redact
from amlretrain._tracing import in_this_span, traced
from amlretrain.blobs import BlobRef, same_blob
from amlretrain.errors import (
    ConfigurationError,
    NotFoundError,
    OperationTimeout,
    ServiceError,
    VerificationFailed,
)
from amlretrain.polling import OperationPolling, Poller, PollPolicy
from amlretrain.studio.models import (
    ClassicWebService,
    Endpoint,
    _as_dict,
    _as_list,
)

if TYPE_CHECKING:
    import requests
    from azure.core.credentials import AzureKeyCredential
    from azure.core.paging import ItemPaged

    from amlretrain.interrupt import StopSignal

__all__ = [
    "MANAGEMENT_HOSTS",
    "ClassicClient",
    "TrainedModelUpdate",
    "management_url",
    "trained_model_patch",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Management API host per region (API-NOTES 3.1, azuremlps ``SetApiUrl``).
MANAGEMENT_HOSTS: dict[str, str] = {
    "south central us": "https://management.azureml.net",
    "west europe": "https://europewest.management.azureml.net",
    "southeast asia": "https://asiasoutheast.management.azureml.net",
    "japan east": "https://japaneast.management.azureml.net",
    "west central us": "https://uswestcentral.management.azureml.net",
    "germany central": "https://germanycentral.management.azureml.de",
}

#: Seconds a model blob found readable is not checked again by the same client.
BLOB_CHECK_MAX_AGE = 60.0

_ENDPOINT_NAME = re.compile(r"[a-z0-9]{1,24}")


def management_url(region: str) -> str:
    """The management API base URL of a region (display name or ``southcentralus`` form).

    Raises:
        ConfigurationError: the region has no known management host.
    """
    wanted = region.replace(" ", "").lower()
    for name, url in MANAGEMENT_HOSTS.items():
        if name.replace(" ", "") == wanted:
            return url
    raise ConfigurationError(
        f"no classic management host is known for region {region!r}; known: "
        + ", ".join(n.title() for n in MANAGEMENT_HOSTS)
        + " (or give the management API URL itself: management_url in retrain.toml, "
        "--management-url on the command line)"
    )


class ClassicClient:
    """Client of the classic web-service management API (one workspace).

    Args:
        workspace_id: the Studio workspace id.
        token: the workspace authorization token (or an endpoint API key for
            endpoint-level calls), a string or an ``AzureKeyCredential`` (read at request
            time, so ``credential.update()`` rotates it). A secret: never shown.
        region: the workspace region; picks the regional management host (API-NOTES 3.1).
        base_url: overrides the host (an emulator, a proxy).
        session: a ``requests.Session`` to use (its adapters then decide retries).
        timeout: ``(connect, read)`` seconds for every call.
        poll: spaces the reads that verify a trained-model update (default: every 2 s).

    Retries: GET, PUT and DELETE on connection errors and 429/500/502/503/504 (honouring
    Retry-After, capped at 60 s); PATCH and POST only on 429/503 with Retry-After. See
    :mod:`amlretrain._http`.

    Example:
        >>> client = ClassicClient(workspace_id, token, region="West Europe")  # doctest: +SKIP
        >>> [e.name for e in client.list_endpoints(web_service_id)]           # doctest: +SKIP
        ['default', 'retrained']
    """

    def __init__(
        self,
        workspace_id: str,
        token: str | AzureKeyCredential,
        *,
        region: str = "South Central US",
        base_url: str | None = None,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        poll: PollPolicy | None = None,
    ) -> None:
        if not workspace_id or "/" in workspace_id:
            raise ConfigurationError("the workspace id must be non-empty and without '/'")
        auth = bearer_auth(token, what="a workspace authorization token")
        self.workspace_id = workspace_id
        self.base_url = (base_url or management_url(region)).rstrip("/")
        self._http = HttpClient(session=session, auth=auth, timeout=timeout)
        #: Spaces the verification reads of :meth:`begin_update_trained_model`.
        self.poll = poll or PollPolicy.fixed(2.0)
        self._services: dict[str, tuple[float, ClassicWebService]] = {}
        self._services_lock = threading.Lock()
        #: Model blobs (their SAS URL) a HEAD found readable, and when: one model swapped
        #: into many endpoints is checked once a minute, not once per endpoint.
        self._readable: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"ClassicClient(workspace_id={self.workspace_id!r}, base_url={self.base_url!r})"

    @property
    def verify_interval(self) -> float:
        """Deprecated: seconds between verification reads; use ``poll=`` (a PollPolicy)."""
        _deprecated_interval()
        return self.poll.initial

    @verify_interval.setter
    def verify_interval(self, seconds: float) -> None:
        _deprecated_interval()
        self.poll = PollPolicy.fixed(seconds)

    def close(self) -> None:
        """Close the HTTP session this client created."""
        self._http.close()

    def __enter__(self) -> ClassicClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- URLs -----------------------------------------------------------------------------

    def _url(self, *segments: str) -> str:
        quoted = [urllib.parse.quote(s, safe="") for s in segments]
        for raw in segments:
            if not raw:
                raise ConfigurationError("an empty id or name cannot be part of a URL")
        return f"{self.base_url}/workspaces/{urllib.parse.quote(self.workspace_id, safe='')}/" + (
            "/".join(quoted)
        )

    def endpoint_url(self, web_service_id: str, endpoint_name: str) -> str:
        """The management URL of an endpoint (what its GET, PUT, PATCH and DELETE address).

        Raises:
            ConfigurationError: an empty id or name.
        """
        return self._url("webservices", web_service_id, "endpoints", endpoint_name)

    def _json(self, method: str, url: str, **kw: Any) -> Any:
        response = self._http.request(method, url, **kw)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as err:
            raise ServiceError(
                f"the service answered {method} with a body that is not JSON",
                status=response.status_code,
                request_id=response.headers.get("x-ms-request-id"),
                method=method,
                url=redact(url),
            ) from err

    # -- web services -----------------------------------------------------------------------

    @traced
    def list_web_services(self) -> ItemPaged[ClassicWebService]:
        """All web services of the workspace (none when there are none).

        Returns an azure-core ``ItemPaged``, read when first iterated (the management API
        answers one page); ``list(client.list_web_services())`` for a list.
        """
        return self._paged(self._url("webservices"), ClassicWebService.from_dict)

    @traced
    def get_web_service(self, web_service_id: str, *, max_age: float = 0.0) -> ClassicWebService:
        """One web service.

        Args:
            web_service_id: the web service.
            max_age: accept an answer this client read at most this many seconds ago
                (one read serves many endpoints of one service); 0 always reads.

        Raises:
            NotFoundError: no such web service in the workspace.
        """
        if max_age <= 0:
            return self._read_web_service(web_service_id)
        with self._services_lock:  # one read, however many threads ask at once
            cached = self._services.get(web_service_id)
            if cached is not None and time.monotonic() - cached[0] <= max_age:
                return cached[1]
            service = self._read_web_service(web_service_id)
            self._services[web_service_id] = (time.monotonic(), service)
            return service

    def _read_web_service(self, web_service_id: str) -> ClassicWebService:
        data = self._json("GET", self._url("webservices", web_service_id))
        return ClassicWebService.from_dict(_as_dict(data))

    @traced
    def delete_web_service(self, web_service_id: str) -> None:
        """Delete a web service and its endpoints; one that does not exist is not an error."""
        try:
            self._http.request("DELETE", self._url("webservices", web_service_id))
        except NotFoundError:
            log.debug("web service %s was already absent", web_service_id)

    # -- endpoints ---------------------------------------------------------------------------

    @traced
    def list_endpoints(self, web_service_id: str) -> ItemPaged[Endpoint]:
        """All endpoints of a web service.

        Returns an azure-core ``ItemPaged``, read when first iterated (the management API
        answers one page); ``list(client.list_endpoints(ws))`` for a list.

        Raises:
            ConfigurationError: an empty web service id (at the call, before any request).
            NotFoundError: no such web service (while iterating).
        """
        url = self._url("webservices", web_service_id, "endpoints")
        return self._paged(url, Endpoint.from_dict)

    def _paged(self, url: str, parse: Callable[[Mapping[str, Any]], _T]) -> ItemPaged[_T]:
        """The items of the JSON array at ``url``, as one lazily read page."""
        from azure.core.paging import ItemPaged

        def get_page(_token: str | None) -> Any:
            return self._json("GET", url)

        def read_page(data: Any) -> tuple[str | None, Iterator[_T]]:
            return None, iter([parse(d) for d in _as_list(data)])

        return ItemPaged(in_this_span(get_page), read_page)

    @traced
    def get_endpoint(self, web_service_id: str, endpoint_name: str) -> Endpoint:
        """One endpoint.

        Raises:
            NotFoundError: no such endpoint.
        """
        url = self._url("webservices", web_service_id, "endpoints", endpoint_name)
        return Endpoint.from_dict(_as_dict(self._json("GET", url)))

    @traced
    def create_endpoint(
        self,
        web_service_id: str,
        endpoint_name: str,
        *,
        description: str | None = None,
        throttle_level: str = "Low",
        max_concurrent_calls: int | None = None,
        prevent_update: bool = False,
    ) -> Endpoint:
        """Create an endpoint (PUT), then read it back (PowerShell: ``Add-AmlWebServiceEndpoint``).

        Args:
            endpoint_name: at most 24 lowercase letters or digits.
            throttle_level: ``"Low"`` (4 concurrent calls) or ``"High"``.
            max_concurrent_calls: 1-200, only with ``"High"``.
            prevent_update: the endpoint ignores later updates of the web service.

        Raises:
            ConfigurationError: a bad name, throttle level or call count (before any request).
            ConflictError: the service refused (e.g. the free tier's 3-endpoint limit).
        """
        _check_endpoint_name(endpoint_name)
        level = _check_throttle(throttle_level)
        _check_calls(level, max_concurrent_calls)
        body = _endpoint_request(
            web_service_id, endpoint_name, description, level, max_concurrent_calls, prevent_update
        )
        url = self._url("webservices", web_service_id, "endpoints", endpoint_name)
        self._http.request("PUT", url, json_body=body)
        log.info("created endpoint %s to web service %s", endpoint_name, web_service_id)
        return self.get_endpoint(web_service_id, endpoint_name)

    @traced
    def add_endpoint(
        self,
        web_service_id: str,
        endpoint_name: str,
        *,
        description: str | None = None,
        throttle_level: str = "Low",
        max_concurrent_calls: int | None = None,
        prevent_update: bool = False,
    ) -> Endpoint:
        """Deprecated alias of :meth:`create_endpoint` (the Azure verb), removed in 0.3.0."""
        warnings.warn(
            "ClassicClient.add_endpoint is deprecated: use ClassicClient.create_endpoint; "
            f"the old name is removed in {REMOVED_IN}",
            DeprecationWarning,
            stacklevel=4,  # the caller, past the two tracing wrappers
        )
        return self.create_endpoint(
            web_service_id,
            endpoint_name,
            description=description,
            throttle_level=throttle_level,
            max_concurrent_calls=max_concurrent_calls,
            prevent_update=prevent_update,
        )

    @traced
    def update_endpoint(
        self,
        web_service_id: str,
        endpoint_name: str,
        *,
        description: str | None = None,
        throttle_level: str | None = None,
        max_concurrent_calls: int | None = None,
        prevent_update: bool | None = None,
    ) -> Endpoint:
        """Change an endpoint's settings: PUT the add-endpoint body again, then read it back.

        GUESS: the management API documents one settings write, the PUT that adds an
        endpoint (API-NOTES 3.2), and no settings PATCH (its PATCH carries ``Resources``
        only). This method reads the endpoint, then PUTs the same body
        :meth:`create_endpoint` sends, with the endpoint's current values for every setting
        not given, to the existing endpoint. That a PUT to an existing endpoint updates it
        is not documented. The trained model is changed by :meth:`update_trained_model`.

        Args:
            description: the new description (None: keep the current one).
            throttle_level: ``"Low"`` or ``"High"`` (None: keep the current level).
            max_concurrent_calls: 1-200, only with a ``"High"`` level (None: keep the
                current count on a ``"High"`` endpoint; a ``"Low"`` one always gets 4).
            prevent_update: the endpoint ignores later updates of the web service
                (None: keep the current value).

        Returns:
            The endpoint as read after the PUT.

        Raises:
            ConfigurationError: nothing to change or a value out of range (before any
                request); ``max_concurrent_calls`` for an endpoint that stays ``"Low"``, or
                an endpoint that reports a throttle level other than Low/High when none
                is given (after the read, before the PUT).
            NotFoundError: no such endpoint (nothing is PUT: a PUT would add it).

        Example:
            >>> client.update_endpoint(ws_id, "retrained", description="v2")  # doctest: +SKIP
        """
        if all(v is None for v in (description, throttle_level, max_concurrent_calls,
                                   prevent_update)):  # fmt: skip
            raise ConfigurationError("the endpoint update was given nothing to change")
        if throttle_level is not None:
            _check_throttle(throttle_level)
        if max_concurrent_calls is not None and not 1 <= max_concurrent_calls <= 200:
            raise ConfigurationError("the maximum of concurrent calls must be between 1 and 200")
        current = self.get_endpoint(web_service_id, endpoint_name)
        level_given = throttle_level if throttle_level is not None else current.throttle_level
        if level_given is None or level_given.lower() not in ("low", "high"):
            raise ConfigurationError(
                f"endpoint {endpoint_name!r} reports throttle level {level_given!r}, not "
                "'Low' or 'High': give the throttle level (--throttle-level on the command "
                "line) so the PUT does not guess it"
            )
        level = _check_throttle(level_given)
        calls = max_concurrent_calls
        if calls is None and level == "High" and (current.throttle_level or "").lower() == "high":
            calls = current.max_concurrent_calls
            if calls is not None and not 1 <= calls <= 200:
                calls = None  # an out-of-range report is not re-sent: the service picks
        _check_calls(level, calls)
        keep_description = description if description is not None else current.description
        keep_prevent = prevent_update if prevent_update is not None else current.prevent_update
        body = _endpoint_request(
            web_service_id, endpoint_name, keep_description, level, calls, bool(keep_prevent)
        )
        url = self._url("webservices", web_service_id, "endpoints", endpoint_name)
        self._http.request("PUT", url, json_body=body)
        log.info("updated the settings of endpoint %s of %s", endpoint_name, web_service_id)
        return self.get_endpoint(web_service_id, endpoint_name)

    @traced
    def refresh_endpoint(
        self, web_service_id: str, endpoint_name: str, *, overwrite_resources: bool = False
    ) -> bool:
        """Copy the default endpoint's graph to a non-default endpoint (POST .../refresh).

        With ``overwrite_resources=True`` the endpoint's trained models are replaced by
        the experiment's: this undoes a retrain (logged as a warning).

        Returns:
            True when the endpoint changed, False when the service answered 304
            ("no change detected").

        Raises:
            ConfigurationError: ``endpoint_name`` is the default endpoint (before the POST).
        """
        self._refuse_default(web_service_id, endpoint_name, "refreshed")
        if overwrite_resources:
            log.warning(
                "refreshing %s with its resources overwritten replaces its trained models with "
                "the experiment's: a retrained model on this endpoint is undone",
                endpoint_name,
            )
        url = self._url("webservices", web_service_id, "endpoints", endpoint_name, "refresh")
        response = self._http.request(
            "POST",
            url,
            json_body={"OverwriteResources": "True" if overwrite_resources else "False"},
            ok=lambda s: 200 <= s < 300 or s == 304,
        )
        return response.status_code != 304

    @traced
    def delete_endpoint(self, web_service_id: str, endpoint_name: str) -> None:
        """Delete an endpoint; deleting one that does not exist is not an error."""
        url = self._url("webservices", web_service_id, "endpoints", endpoint_name)
        try:
            self._http.request("DELETE", url)
        except NotFoundError:
            log.debug("endpoint %s was already absent", endpoint_name)

    # -- the swap -------------------------------------------------------------------------------

    @overload
    def begin_update_trained_model(
        self,
        web_service_id: str,
        endpoint_name: str,
        resource_name: str,
        blob: BlobRef,
        *,
        verify_timeout: float = 120.0,
        blob_check: Callable[[BlobRef], bool] | None = None,
        endpoint: Endpoint | None = None,
        check_default: bool = True,
        stop: StopSignal | None = None,
    ) -> Poller[Endpoint]: ...

    @overload
    def begin_update_trained_model(
        self, *, continuation_token: str, stop: StopSignal | None = None
    ) -> Poller[Endpoint]: ...

    @traced
    def begin_update_trained_model(
        self,
        web_service_id: str | None = None,
        endpoint_name: str | None = None,
        resource_name: str | None = None,
        blob: BlobRef | None = None,
        *,
        verify_timeout: float = 120.0,
        blob_check: Callable[[BlobRef], bool] | None = None,
        endpoint: Endpoint | None = None,
        check_default: bool = True,
        stop: StopSignal | None = None,
        continuation_token: str | None = None,
    ) -> Poller[Endpoint]:
        """Point an endpoint's trained-model resource at a new ``.ilearner``; a poller verifies it.

        Before the PATCH: refuses the default endpoint, a resource name the endpoint does
        not list, a blob that is not an ``.ilearner``, whose SAS has expired, or that does
        not exist (checked with ``blob_check``, default an HTTP HEAD of its SAS URL).
        The poller then reads the endpoint (spaced by the client's ``poll``) until the
        resource shows the new location; its result is the endpoint as read then.

        Args:
            web_service_id: the *predictive* web service.
            endpoint_name: a non-default endpoint of it.
            resource_name: the resource to replace (``Endpoint.resources[].name``).
            blob: the new model (BES ``Results`` entry), with a read SAS.
            verify_timeout: seconds after the PATCH for the endpoint to show the new
                location.
            blob_check: returns whether the blob exists (e.g. ``BlobStore.exists``).
            endpoint: the endpoint as just read by the caller (saves a read); its
                resources are checked instead of a fresh read's.
            check_default: refuse the default endpoint (reads the web service); pass
                False only when the caller has already checked it.
            stop: a run's stop request: the verification ends at its grace deadline.
            continuation_token: resume the verification of an update already sent (the
                poller's ``continuation_token()``, from any process; it holds the
                endpoint, the resource, the blob URL without its SAS and the deadline,
                no secret). Nothing is sent again; give no other argument but ``stop``.

        Returns:
            A :class:`~amlretrain.polling.Poller` whose ``result()`` is the endpoint.

        Raises:
            ConfigurationError: a refused target (nothing was sent); a token of another
                workspace or not of this operation.
            VerificationFailed: (by ``result()``) the endpoint still shows another
                location at the deadline.

        Example:
            >>> poller = client.begin_update_trained_model(
            ...     ws_id, "retrained", "Census Model [trained model]", job.trained_model
            ... )                                                                 # doctest: +SKIP
            >>> token = poller.continuation_token()                              # doctest: +SKIP
            >>> client.begin_update_trained_model(
            ...     continuation_token=token
            ... ).result()                                                        # doctest: +SKIP
        """
        method = TrainedModelUpdate(self.poll, stop)
        if continuation_token is not None:
            if any(v is not None for v in (web_service_id, endpoint_name, resource_name, blob)):
                raise ConfigurationError(
                    "resuming from a continuation token takes no other target: the token names it"
                )
            try:
                return Poller.from_continuation_token(method, continuation_token, client=self)
            except ValueError as err:
                raise ConfigurationError(str(err)) from err
        if web_service_id is None or endpoint_name is None or resource_name is None:
            raise ConfigurationError(
                "a trained-model update needs the service, endpoint and resource"
            )
        if blob is None:
            raise ConfigurationError("a trained-model update needs the new model's blob")
        if not blob.relative_location.lower().endswith(".ilearner"):
            raise ConfigurationError(f"{blob.url} is not an .ilearner blob")
        if blob.is_expired():
            raise ConfigurationError(
                f"the SAS of {blob.url} expired at {blob.expires_on}: get the job again "
                "for a fresh SAS, or mint a new SAS for the blob"
            )
        if check_default:
            self._refuse_default(web_service_id, endpoint_name, "updated")
        if endpoint is None or endpoint.name.lower() != endpoint_name.lower():
            endpoint = self.get_endpoint(web_service_id, endpoint_name)
        endpoint.resource(resource_name)
        self._check_blob(blob, blob_check)

        url = self.endpoint_url(web_service_id, endpoint_name)
        self._http.request("PATCH", url, json_body=trained_model_patch(resource_name, blob))
        log.info("patched %s of endpoint %s to %s", resource_name, endpoint_name, blob.url)
        state = {
            "workspace_id": self.workspace_id,
            "web_service_id": web_service_id,
            "endpoint": endpoint_name,
            "resource": resource_name,
            "model": blob.url,
            "timeout": verify_timeout,
            "deadline": time.time() + verify_timeout,
        }
        method.initialize(self, state, None)
        return Poller(method)

    @traced
    def update_trained_model(
        self,
        web_service_id: str,
        endpoint_name: str,
        resource_name: str,
        blob: BlobRef,
        *,
        verify_timeout: float = 120.0,
        blob_check: Callable[[BlobRef], bool] | None = None,
        endpoint: Endpoint | None = None,
        check_default: bool = True,
        stop: StopSignal | None = None,
    ) -> Endpoint:
        """Point an endpoint's trained-model resource at a new ``.ilearner``, and verify it.

        :meth:`begin_update_trained_model` and its poller's ``result()``: the same
        arguments, refusals and verification.

        Returns:
            The endpoint as read after the swap.

        Raises:
            ConfigurationError: a refused target (nothing was sent).
            VerificationFailed: the endpoint still shows another location at the deadline.

        Example:
            >>> model = job.trained_model                                        # doctest: +SKIP
            >>> client.update_trained_model(ws_id, "retrained", "Census Model [trained model]",
            ...                             model)                                # doctest: +SKIP
        """
        return self.begin_update_trained_model(
            web_service_id,
            endpoint_name,
            resource_name,
            blob,
            verify_timeout=verify_timeout,
            blob_check=blob_check,
            endpoint=endpoint,
            check_default=check_default,
            stop=stop,
        ).result()

    def _refuse_default(self, web_service_id: str, endpoint_name: str, verb: str) -> None:
        self.get_web_service(web_service_id).refuse_default(endpoint_name, verb)

    def _check_blob(self, blob: BlobRef, blob_check: Callable[[BlobRef], bool] | None) -> None:
        if blob_check is not None:
            if not blob_check(blob):
                raise ConfigurationError(f"{blob.url} does not exist")
            return
        seen = self._readable.get(blob.sas_url)
        if seen is not None and time.monotonic() - seen <= BLOB_CHECK_MAX_AGE:
            return
        response = self._http.request("HEAD", blob.sas_url, authenticated=False, ok=lambda s: True)
        status = response.status_code
        if status == 404:
            raise ConfigurationError(f"{blob.url} does not exist")
        if status in (401, 403):
            raise ConfigurationError(
                f"storage refused the SAS of {blob.url} (HTTP {status}): expired, revoked "
                "or without read permission"
            )
        if status >= 400:
            raise ConfigurationError(f"could not check {blob.url}: HTTP {status}")
        self._readable[blob.sas_url] = time.monotonic()


class TrainedModelUpdate(OperationPolling[Endpoint]):
    """The verification of a classic trained-model update: reads until the endpoint shows it.

    Made by :meth:`ClassicClient.begin_update_trained_model` (which sent the PATCH); its
    continuation token (kind ``classic.trained_model``) holds the workspace, web
    service, endpoint and resource names, the model's URL without its SAS, the verify
    timeout and its deadline (wall clock), so another process resumes the same reads.
    """

    kind = "classic.trained_model"

    def __init__(self, policy: PollPolicy, stop: StopSignal | None = None) -> None:
        super().__init__(policy=policy)
        self._stop = stop
        self._state: dict[str, Any] = {}
        self._deadline = 0.0
        self._seen: Endpoint | None = None
        self._current: BlobRef | None = None

    def _load(self, state: Mapping[str, Any]) -> None:
        client: ClassicClient = self._client
        try:
            workspace = str(state["workspace_id"])
            for key in ("web_service_id", "endpoint", "resource", "model"):
                str(state[key])
            deadline, timeout = float(state["deadline"]), float(state["timeout"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError("the continuation token names no trained-model update") from err
        if workspace.lower() != client.workspace_id.lower():
            raise ValueError(
                f"the continuation token is of workspace {workspace}, not of this client's"
            )
        self._state = {**state, "deadline": deadline, "timeout": timeout}
        self._deadline = time.monotonic() + (deadline - time.time())

    def state(self) -> dict[str, Any]:
        return dict(self._state)

    def _read(self) -> float | None:
        client: ClassicClient = self._client
        state = self._state
        endpoint = client.get_endpoint(state["web_service_id"], state["endpoint"])
        self._current = endpoint.resource(state["resource"]).location
        if same_blob(self._current, state["model"]):
            self._seen = endpoint
        return None

    def finished(self) -> bool:
        return self._seen is not None

    def status(self) -> str:
        return "Succeeded" if self._seen is not None else "InProgress"

    def resource(self) -> Endpoint:
        if self._seen is None:
            raise VerificationFailed(
                f"endpoint {self._state.get('endpoint')!r} was not seen with the new model yet"
            )
        return self._seen

    def _cutoff(self) -> float | None:
        cut = self._stop.deadline() if self._stop is not None else None
        return self._deadline if cut is None else min(self._deadline, cut)

    def _expired(self) -> BaseException:
        state = self._state
        return VerificationFailed(
            f"endpoint {state['endpoint']!r} still reads {state['resource']!r} from another "
            f"location {state['timeout']:.0f} s after the update",
            expected=state["model"],
            actual=self._current.url if self._current else None,
        )

    def timed_out(self, waited: float) -> BaseException:
        return OperationTimeout(
            f"endpoint {self._state.get('endpoint')!r}: the new model was not seen within "
            f"{waited:.0f} s of waiting",
            waited=waited,
        )


def _deprecated_interval() -> None:
    warnings.warn(
        "ClassicClient.verify_interval is deprecated: give ClassicClient(poll=PollPolicy"
        f".fixed(seconds)) or set client.poll; the old name is removed in {REMOVED_IN}",
        DeprecationWarning,
        stacklevel=3,
    )


def trained_model_patch(resource_name: str, blob: BlobRef) -> dict[str, Any]:
    """The PATCH body that points an endpoint's resource at ``blob`` (API-NOTES 3.3).

    The only PATCH the management API documents: ``Resources`` with the resource's name
    and the BES location of the new ``.ilearner`` (its SAS included: a secret).
    """
    return {"Resources": [{"Name": resource_name, "Location": blob.to_bes()}]}


def _check_endpoint_name(name: str) -> None:
    if not _ENDPOINT_NAME.fullmatch(name):
        raise ConfigurationError(f"endpoint name {name!r} must be 1-24 lowercase letters or digits")


def _check_throttle(level: str) -> str:
    levels = {"low": "Low", "high": "High"}
    if level.lower() not in levels:
        raise ConfigurationError(f"throttle level {level!r} must be 'Low' or 'High'")
    return levels[level.lower()]


def _check_calls(level: str, calls: int | None) -> None:
    if calls is None:
        return
    if level != "High":
        raise ConfigurationError(
            "a maximum of concurrent calls applies to the throttle level 'High' only "
            "(a 'Low' endpoint always gets 4)"
        )
    if not 1 <= calls <= 200:
        raise ConfigurationError("the maximum of concurrent calls must be between 1 and 200")


def _endpoint_request(
    web_service_id: str,
    endpoint_name: str,
    description: str | None,
    level: str,
    calls: int | None,
    prevent_update: bool,
) -> dict[str, Any]:
    """The AddEndpointRequest body as azuremlps sends it (API-NOTES 3.2), and nothing else."""
    body: dict[str, Any] = {
        "WebServiceId": web_service_id,
        "EndpointName": endpoint_name,
        "ThrottleLevel": level,
        "PreventUpdate": prevent_update,
    }
    if description is not None:
        body["Description"] = description
    if calls is not None:
        body["MaxConcurrentCalls"] = calls
    return body
