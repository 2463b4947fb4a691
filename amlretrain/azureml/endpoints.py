"""``OnlineEndpointsClient``: online endpoints, their deployments and traffic (v2, ARM).

The operations of the trimmed swagger on ``{W}/onlineEndpoints`` (V2-NOTES 1.2) through
the generic resource operations of azure-mgmt-resource (see
:mod:`amlretrain.azureml.operations`), api-version 2024-04-01:

* reads: list and GET endpoints and deployments, ``listKeys``, ``getLogs``;
* deployment writes: PUT (:meth:`~OnlineEndpointsClient.begin_create_or_update_deployment`),
  PATCH of ``sku``/``tags`` (:meth:`~OnlineEndpointsClient.begin_update_deployment`),
  DELETE (:meth:`~OnlineEndpointsClient.begin_delete_deployment`);
* traffic: :meth:`~OnlineEndpointsClient.begin_set_traffic`, the one endpoint write: a
  GET, the traffic rules checked (:mod:`amlretrain.azureml.traffic`), and a whole PUT of
  the endpoint as read with the whole ``traffic`` and ``mirrorTraffic`` maps (never a
  PUT without them: F1, F10).

What the service does that shapes the writes:

* **Busy endpoint** (3.4, F3): a write while an operation runs on the endpoint answers
  409 Conflict, even just after the endpoint read Succeeded. Every write first reads the
  endpoint and waits while its ``provisioningState`` is not terminal, and a 409 is waited
  out the same way (re-read, re-checked, sent again), at the client's
  :class:`~amlretrain.polling.PollPolicy`, up to ``busy_timeout`` seconds; then
  :class:`~amlretrain.errors.ConflictError` says what the endpoint was doing.
* **Verdicts not taken on trust** (F2, F12): after an operation, the resource is read
  afresh. A change not yet shown is re-read up to ``verify_timeout`` seconds (then
  :class:`~amlretrain.errors.VerificationFailed`); an operation reported Failed whose
  resource reads Succeeded with the change made is returned as the success it is, its
  poller's ``discrepancy`` saying what was reported and what was found; one whose
  resource shows no change raises the operation's error with what was found.
* **T7**: a deployment with live or mirror traffic is not deleted (refused before the
  DELETE).

Example:
    >>> eps = OnlineEndpointsClient(DefaultAzureCredential(), sub, "rg", "ws")  # doctest: +SKIP
    >>> blue = eps.get_deployment("census", "blue")                           # doctest: +SKIP
    >>> green = blue.copy_as("green", model="azureml:census:4")              # doctest: +SKIP
    >>> eps.begin_create_or_update_deployment("census", "green", green).result()  # doctest: +SKIP
    >>> eps.begin_set_traffic("census", {"blue": 90, "green": 10}).result()   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from amlretrain._arm import DonePoller, RequestIds, is_read_of
from amlretrain._errormap import translated as _translated
from amlretrain._tracing import traced
from amlretrain._wire import structure
from amlretrain.azureml.models import (
    TERMINAL_STATES,
    EndpointKeys,
    ModelRef,
    OnlineDeployment,
    OnlineEndpoint,
)
from amlretrain.azureml.operations import (
    AzureMLPoller,
    Finished,
    WorkspaceClient,
    check_segment,
    described,
    failed_as_read,
)
from amlretrain.azureml.traffic import TrafficMap, endpoint_put_body, positive
from amlretrain.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    ServiceError,
    VerificationFailed,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from azure.core.credentials import TokenCredential
    from azure.core.paging import ItemPaged

    from amlretrain.polling import PollPolicy

__all__ = ["OnlineEndpointsClient"]

log = logging.getLogger(__name__)


def _same_model(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a == b
    if a.lower() == b.lower():
        return True
    try:
        return ModelRef.parse(a).same_version(ModelRef.parse(b))
    except ConfigurationError:
        return False


class OnlineEndpointsClient(WorkspaceClient):
    """Client of the online endpoints of one Azure ML v2 workspace.

    Args:
        credential: an azure-core ``TokenCredential`` (e.g. ``DefaultAzureCredential``).
        subscription_id, resource_group, workspace: the workspace.
        base_url: the ARM endpoint (a loopback emulator may be plain http).
        polling: spaces the operation polls and every re-read of a wait (default: 5 s).
        timeout: ``(connect, read)`` seconds of every request.
        busy_timeout: how long a write waits for a busy endpoint (not terminal, or 409).
        verify_timeout: how long a fresh read may take to show a finished operation's
            change (F2).
    """

    def __init__(
        self,
        credential: TokenCredential,
        subscription_id: str,
        resource_group: str,
        workspace: str,
        *,
        base_url: str = "https://management.azure.com",
        polling: PollPolicy | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        busy_timeout: float = 900.0,
        verify_timeout: float = 120.0,
    ) -> None:
        super().__init__(
            credential,
            subscription_id,
            resource_group,
            workspace,
            base_url=base_url,
            polling=polling,
            timeout=timeout,
            verify_timeout=verify_timeout,
        )
        self.busy_timeout = busy_timeout

    def endpoint_id(self, endpoint: str) -> str:
        """The ARM id of an online endpoint."""
        check_segment("endpoint", endpoint)
        return f"{self.workspace_id}/onlineEndpoints/{endpoint}"

    def deployment_id(self, endpoint: str, deployment: str) -> str:
        """The ARM id of an online deployment."""
        check_segment("deployment", deployment)
        return f"{self.endpoint_id(endpoint)}/deployments/{deployment}"

    # -- reads --------------------------------------------------------------------------------

    @traced
    def get_endpoint(self, endpoint: str) -> OnlineEndpoint:
        """GET an online endpoint.

        Raises:
            NotFoundError: no such endpoint.
        """
        data = self._get(f"GET online endpoint {endpoint}", self.endpoint_id(endpoint))
        return OnlineEndpoint.from_dict(data)

    @traced
    def list_endpoints(self) -> ItemPaged[OnlineEndpoint]:
        """The workspace's online endpoints, page by page (an azure-core ``ItemPaged``)."""
        first = f"{self.workspace_id}/onlineEndpoints"
        return self._pages("list online endpoints", first, OnlineEndpoint.from_dict)

    @traced
    def get_deployment(self, endpoint: str, deployment: str) -> OnlineDeployment:
        """GET an online deployment.

        Raises:
            NotFoundError: no such deployment (or endpoint).
        """
        rid = self.deployment_id(endpoint, deployment)
        data = self._get(f"GET deployment {deployment} of {endpoint}", rid)
        return OnlineDeployment.from_dict(data)

    @traced
    def list_deployments(self, endpoint: str) -> ItemPaged[OnlineDeployment]:
        """An endpoint's deployments, page by page (an azure-core ``ItemPaged``)."""
        first = f"{self.endpoint_id(endpoint)}/deployments"
        return self._pages(f"list deployments of {endpoint}", first, OnlineDeployment.from_dict)

    @traced
    def list_keys(self, endpoint: str) -> EndpointKeys:
        """The endpoint's keys (POST ``listKeys``); never shown in a repr."""
        rid = self.endpoint_id(endpoint)
        with _translated(f"list keys of {endpoint}"):
            response = self._adapter.send_json("POST", f"{rid}/listKeys", self._params())
            body = response.json()
        return structure(EndpointKeys, body) if isinstance(body, Mapping) else EndpointKeys()

    @traced
    def get_logs(
        self,
        endpoint: str,
        deployment: str,
        *,
        tail: int | None = None,
        container_type: str | None = None,
    ) -> str:
        """A deployment's container logs (POST ``getLogs``).

        Args:
            tail: the number of lines from the end.
            container_type: ``InferenceServer`` (the service's default) or
                ``StorageInitializer``.
        """
        rid = self.deployment_id(endpoint, deployment)
        body: dict[str, Any] = {}
        if container_type is not None:
            body["containerType"] = container_type
        if tail is not None:
            body["tail"] = int(tail)
        with _translated(f"getLogs of {deployment} of {endpoint}"):
            response = self._adapter.send_json("POST", f"{rid}/getLogs", self._params(), body)
            data = response.json()
        content = data.get("content") if isinstance(data, Mapping) else None
        return "" if content is None else str(content)

    # -- deployment writes --------------------------------------------------------------------

    @traced
    def begin_create_or_update_deployment(
        self,
        endpoint: str,
        name: str,
        deployment: OnlineDeployment | None,
        *,
        continuation_token: str | None = None,
    ) -> AzureMLPoller[OnlineDeployment]:
        """PUT a whole deployment (creates it, or replaces it); traffic is not touched.

        The body is :meth:`OnlineDeployment.for_put` (read-only members dropped). The
        write waits for a busy endpoint (module docstring); the poller's result is the
        deployment read afresh, its model (and instance count) verified.

        Args:
            deployment: e.g. ``live.copy_as("green", model=...)`` or
                ``live.with_model(...)``.
            continuation_token: resume the wait of a PUT already sent (``deployment``
                is then not read: None will do).

        Raises:
            ConfigurationError: no ``location``, or a ``model`` that is no model version
                reference (an ``.ilearner`` blob...), before any request.
            ConflictError: the endpoint stayed busy for ``busy_timeout`` seconds.
        """
        rid = self.deployment_id(endpoint, name)
        if continuation_token is not None:
            data = self._token(continuation_token, "PUT", rid)
            return self._deployment_poller(endpoint, name, "PUT", data, *self._resume(data))
        if deployment is None:
            raise ConfigurationError("a PUT needs the deployment")
        if not deployment.location:
            raise ConfigurationError(
                f"deployment {name} has no location (copy it from the live deployment: copy_as)"
            )
        if deployment.model is not None:
            ModelRef.parse(deployment.model)  # refuses an .ilearner, a path, a label
        body = deployment.for_put()
        wanted = {"model": deployment.model, "capacity": deployment.capacity}
        context = f"PUT deployment {name} of {endpoint}"
        ids = RequestIds()

        def send(_endpoint: OnlineEndpoint) -> Any:
            return self._adapter.begin_put(rid, body, self.api_version, ids)

        poller = self._when_idle(endpoint, context, ids, send)
        log.info("PUT %s (request id %s)", rid, ids.initial)
        state = {"operation": "PUT", "resource_id": rid, "wanted": wanted}
        return self._deployment_poller(endpoint, name, "PUT", state, poller, ids)

    @traced
    def begin_update_deployment(
        self,
        endpoint: str,
        name: str,
        *,
        capacity: int | None = None,
        tags: Mapping[str, str] | None = None,
        continuation_token: str | None = None,
    ) -> AzureMLPoller[OnlineDeployment]:
        """PATCH a deployment's ``sku.capacity`` (its instance count) and/or ``tags``.

        The only members the swagger's PATCH takes (``PartialMinimalTrackedResourceWithSku``);
        the result is the deployment read afresh, its capacity verified.

        Raises:
            ConfigurationError: nothing to change, or a capacity below 1.
            ConflictError: the endpoint stayed busy for ``busy_timeout`` seconds.
        """
        rid = self.deployment_id(endpoint, name)
        if continuation_token is not None:
            data = self._token(continuation_token, "PATCH", rid)
            return self._deployment_poller(endpoint, name, "PATCH", data, *self._resume(data))
        body: dict[str, Any] = {}
        if capacity is not None:
            if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
                raise ConfigurationError(f"capacity {capacity!r}: give an instance count >= 1")
            body["sku"] = {"capacity": capacity}
        if tags is not None:
            body["tags"] = dict(tags)
        if not body:
            raise ConfigurationError("an update needs capacity= or tags=")
        context = f"PATCH deployment {name} of {endpoint}"
        ids = RequestIds()

        def send(_endpoint: OnlineEndpoint) -> Any:
            return self._adapter.begin_patch(rid, body, self.api_version, ids)

        poller = self._when_idle(endpoint, context, ids, send)
        state = {"operation": "PATCH", "resource_id": rid, "wanted": {"capacity": capacity}}
        return self._deployment_poller(endpoint, name, "PATCH", state, poller, ids)

    @traced
    def begin_delete_deployment(
        self, endpoint: str, name: str, *, continuation_token: str | None = None
    ) -> AzureMLPoller[None]:
        """DELETE a deployment that has no traffic (T7); one already absent is success.

        Raises:
            ConflictError: the deployment has live or mirror traffic (nothing is sent), or
                the endpoint stayed busy for ``busy_timeout`` seconds.
        """
        rid = self.deployment_id(endpoint, name)
        context = f"DELETE deployment {name} of {endpoint}"
        if continuation_token is not None:
            data = self._token(continuation_token, "DELETE", rid)
            poller, ids = self._resume(data)
            return self._delete_poller(endpoint, name, data, poller, ids)
        ids = RequestIds()

        def send(current: OnlineEndpoint) -> Any:
            for what, traffic in (("live", current.traffic), ("mirror", current.mirror_traffic)):
                share = positive(traffic).get(name.lower(), 0)
                if share:
                    raise ConflictError(
                        f"deployment {name} of {endpoint} has {share}% of the {what} traffic: "
                        "set it to 0% first (begin_set_traffic), then delete it (T7)",
                        code="DeploymentHasTraffic",
                    )
            try:
                with _translated(context, lambda: ids.initial):
                    return self._adapter.begin_delete(rid, self.api_version, ids)
            except NotFoundError:
                log.debug("deployment %s of %s was already absent", name, endpoint)
                return DonePoller()

        poller = self._when_idle(endpoint, context, ids, send, translate=False)
        state = {"operation": "DELETE", "resource_id": rid}
        return self._delete_poller(endpoint, name, state, poller, ids)

    # -- traffic --------------------------------------------------------------------------------

    @traced
    def begin_set_traffic(
        self,
        endpoint: str,
        traffic: Mapping[str, int] | TrafficMap | None,
        mirror: Mapping[str, int] | None = None,
        *,
        continuation_token: str | None = None,
    ) -> AzureMLPoller[OnlineEndpoint]:
        """Set the endpoint's whole traffic: a GET, the rules checked, a whole PUT.

        The PUT carries every member of the endpoint as read (read-only ones dropped)
        with the whole ``traffic`` and ``mirrorTraffic`` maps
        (:func:`~amlretrain.azureml.traffic.endpoint_put_body`). The result is the
        endpoint read afresh, its traffic verified (re-read while a finished operation's
        traffic is not yet shown: F2).

        Args:
            traffic: deployment -> percent of the live calls (summing to 100, or 0), or a
                :class:`~amlretrain.azureml.traffic.TrafficMap` (then ``mirror`` is its).
            mirror: deployment -> percent of the mirrored calls; None keeps the
                endpoint's current mirror (a deployment that gets live traffic must not
                stay mirrored: give ``{}`` to end mirroring).
            continuation_token: resume the wait of a PUT already sent.

        Raises:
            ConfigurationError: a traffic rule broken, naming it (before the PUT).
            ConflictError: the endpoint stayed busy for ``busy_timeout`` seconds.
        """
        rid = self.endpoint_id(endpoint)
        if continuation_token is not None:
            data = self._token(continuation_token, "PUT", rid)
            return self._traffic_poller(endpoint, data, *self._resume(data))
        if traffic is None:
            raise ConfigurationError("give the whole traffic map (deployment -> percent)")
        context = f"PUT traffic of online endpoint {endpoint}"
        ids = RequestIds()
        sent: dict[str, TrafficMap] = {}
        given = traffic if isinstance(traffic, TrafficMap) else None
        live = None if isinstance(traffic, TrafficMap) else dict(traffic)

        def send(current: OnlineEndpoint) -> Any:
            wanted = given
            if wanted is None:
                keep = current.mirror_traffic if mirror is None else mirror
                wanted = TrafficMap(live or {}, dict(keep))
            names = [d.name for d in self.list_deployments(endpoint) if d.name]
            checked = wanted.validate(names)
            body = endpoint_put_body(current, checked, names)
            sent["map"] = checked
            return self._adapter.begin_put(rid, body, self.api_version, ids)

        poller = self._when_idle(endpoint, context, ids, send)
        checked = sent["map"]
        log.info("PUT %s traffic %s (request id %s)", rid, dict(checked.live), ids.initial)
        state = {
            "operation": "PUT",
            "resource_id": rid,
            "wanted": {"traffic": dict(checked.live), "mirror": dict(checked.mirror)},
        }
        return self._traffic_poller(endpoint, state, poller, ids)

    # -- waiting for a busy endpoint ------------------------------------------------------------

    def _when_idle(
        self,
        endpoint: str,
        context: str,
        ids: RequestIds,
        send: Callable[[OnlineEndpoint], Any],
        *,
        translate: bool = True,
    ) -> Any:
        """Send a write once the endpoint is idle; a 409 is waited out (up to busy_timeout).

        ``send`` gets the endpoint as just read (a 409 makes it read again).
        """
        deadline = time.monotonic() + self.busy_timeout
        delays = self.polling.delays()
        while True:
            current = self.get_endpoint(endpoint)
            state = current.provisioning_state
            conflict: ConflictError | None = None
            if state is None or state in TERMINAL_STATES:
                ids.initial = None  # the id of the write that is answered, not of a 409
                try:
                    if not translate:
                        return send(current)
                    with _translated(context, lambda: ids.initial):
                        return send(current)
                except ConflictError as err:
                    if err.code == "DeploymentHasTraffic":
                        raise
                    conflict = err
                    log.info("%s: 409 (%s); waiting for the endpoint", context, err.code)
            else:
                log.info("%s: endpoint %s is %s; waiting", context, endpoint, state)
            if not self._pause(delays, deadline):
                why = f"409 Conflict ({conflict.service_message})" if conflict else f"{state}"
                raise ConflictError(
                    f"{context}: online endpoint {endpoint} stayed busy for "
                    f"{self.busy_timeout:g} s (last: provisioningState {state}, {why})",
                    code=conflict.code if conflict else "EndpointBusy",
                    request_id=conflict.request_id if conflict else None,
                )

    def _resume(self, data: Mapping[str, Any]) -> tuple[Any, RequestIds]:
        return self._resumed(data, f"resume {data.get('operation')} {data.get('resource_id')}")

    # -- verification ---------------------------------------------------------------------------

    def _settled(self, read: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
        """``read()`` again (at the polling policy) until ``done`` or verify_timeout."""
        deadline = time.monotonic() + self.verify_timeout
        delays = self.polling.delays()
        value = read()
        while not done(value) and self._pause(delays, deadline):
            value = read()
        return value

    def _deployment_poller(
        self,
        endpoint: str,
        name: str,
        operation: str,
        state: Mapping[str, Any],
        poller: Any,
        ids: RequestIds,
    ) -> AzureMLPoller[OnlineDeployment]:
        wanted = dict(state.get("wanted") or {})
        rid = self.deployment_id(endpoint, name)
        what = f"deployment {name} of {endpoint}"

        def changed(dep: OnlineDeployment) -> bool:
            model_ok = "model" not in wanted or _same_model(dep.model, wanted["model"])
            cap = wanted.get("capacity")
            return model_ok and (cap is None or dep.capacity == cap)

        def found(dep: OnlineDeployment) -> str:
            return (
                f"a fresh GET shows {what} provisioningState {dep.provisioning_state}, "
                f"model {dep.model}, capacity {dep.capacity}"
            )

        def finish(final: Any, failure: ServiceError | None) -> Finished[OnlineDeployment]:
            def read() -> OnlineDeployment:
                return self.get_deployment(endpoint, name)

            if failure is None and is_read_of(final, rid):
                first = OnlineDeployment.from_dict(final.body)
                fresh = first if _terminal(first) else self._settled(read, _terminal)
            else:
                try:
                    fresh = self._settled(read, _terminal)
                except NotFoundError:
                    if failure is not None:
                        raise failed_as_read(failure, f"{what} does not exist") from None
                    raise
            succeeded = fresh.provisioning_state == "Succeeded"
            if failure is not None:
                if succeeded and changed(fresh):
                    return Finished(
                        fresh,
                        f"the operation reported {described(failure)}, but {found(fresh)}: "
                        "the change was made (request id "
                        f"{failure.request_id or ids.initial})",
                    )
                raise failed_as_read(failure, found(fresh))
            if not succeeded:
                raise ServiceError(
                    f"{operation} {what}: the operation reported Succeeded, but {found(fresh)}",
                    code=f"Deployment{fresh.provisioning_state}",
                    request_id=ids.initial,
                )
            if not changed(fresh):
                fresh = self._settled(read, changed)
            if not changed(fresh):
                raise VerificationFailed(
                    f"{operation} {what}: the operation succeeded but {found(fresh)} "
                    f"(request id {ids.initial})",
                    expected=str(wanted),
                    actual=f"model {fresh.model}, capacity {fresh.capacity}",
                )
            log.info("verified %s", what)
            return Finished(fresh)

        context = f"{operation} {what}"
        return AzureMLPoller(poller, ids, context, finish, {k: v for k, v in state.items()})

    def _delete_poller(
        self,
        endpoint: str,
        name: str,
        state: Mapping[str, Any],
        poller: Any,
        ids: RequestIds,
    ) -> AzureMLPoller[None]:
        what = f"deployment {name} of {endpoint}"

        def read() -> OnlineDeployment | None:
            try:
                return self.get_deployment(endpoint, name)
            except NotFoundError:
                return None

        def finish(_final: Any, failure: ServiceError | None) -> Finished[None]:
            fresh = read()
            if fresh is not None and failure is None:
                fresh = self._settled(read, lambda d: d is None)
            if fresh is None:
                if failure is not None:
                    return Finished(
                        None,
                        f"the operation reported {described(failure)}, but a fresh GET "
                        f"finds no {what}: it was deleted",
                    )
                return Finished(None)
            found = f"a fresh GET still shows {what} (provisioningState {fresh.provisioning_state})"
            if failure is not None:
                raise failed_as_read(failure, found)
            raise VerificationFailed(
                f"DELETE {what}: the operation succeeded but {found} (request id {ids.initial})",
                expected="absent",
                actual=str(fresh.provisioning_state),
            )

        return AzureMLPoller(poller, ids, f"DELETE {what}", finish, dict(state))

    def _traffic_poller(
        self, endpoint: str, state: Mapping[str, Any], poller: Any, ids: RequestIds
    ) -> AzureMLPoller[OnlineEndpoint]:
        wanted = dict(state.get("wanted") or {})
        live = positive(wanted.get("traffic") or {})
        mirror = positive(wanted.get("mirror") or {})
        what = f"online endpoint {endpoint}"

        def changed(ep: OnlineEndpoint) -> bool:
            return positive(ep.traffic) == live and positive(ep.mirror_traffic) == mirror

        def found(ep: OnlineEndpoint) -> str:
            return (
                f"a fresh GET shows {what} provisioningState {ep.provisioning_state}, "
                f"traffic {ep.traffic}, mirror {ep.mirror_traffic}"
            )

        def read() -> OnlineEndpoint:
            return self.get_endpoint(endpoint)

        def finish(_final: Any, failure: ServiceError | None) -> Finished[OnlineEndpoint]:
            # Always a fresh GET: F2 (a finished operation's traffic not yet shown).
            fresh = self._settled(read, _terminal)
            if fresh.provisioning_state == "Succeeded" and not changed(fresh):
                fresh = self._settled(read, changed)
            succeeded = fresh.provisioning_state == "Succeeded"
            if failure is not None:
                if succeeded and changed(fresh):
                    return Finished(
                        fresh,
                        f"the operation reported {described(failure)}, but {found(fresh)}: "
                        f"the traffic was set (request id {failure.request_id or ids.initial})",
                    )
                raise failed_as_read(failure, found(fresh))
            if not succeeded:
                raise ServiceError(
                    f"PUT traffic of {what}: the operation reported Succeeded, but {found(fresh)}",
                    code=f"Endpoint{fresh.provisioning_state}",
                    request_id=ids.initial,
                )
            if not changed(fresh):
                raise VerificationFailed(
                    f"PUT traffic of {what}: the operation succeeded but {found(fresh)} "
                    f"(request id {ids.initial})",
                    expected=f"traffic {wanted.get('traffic')}, mirror {wanted.get('mirror')}",
                    actual=f"traffic {fresh.traffic}, mirror {fresh.mirror_traffic}",
                )
            log.info("verified the traffic of %s: %s", what, fresh.traffic)
            return Finished(fresh)

        return AzureMLPoller(poller, ids, f"PUT traffic of {what}", finish, dict(state))


def _terminal(resource: Any) -> bool:
    state = resource.provisioning_state
    return state is None or state in TERMINAL_STATES
