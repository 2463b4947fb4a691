r"""Studio (classic) deployment targets: the :class:`~amlretrain.targets.Target`\s of the loop.

* :class:`ArmTarget`: a New (ARM) web service. The swap is a definition rewrite sent as
  a minimal PATCH, awaited and verified by a fresh GET (:class:`WebServicesClient`).
  Its :class:`~amlretrain.targets.TargetState` holds the definition read.
* :class:`ClassicTarget`: a non-default endpoint of a classic predictive web service.
  The swap is a PATCH of its trained-model resource, verified by GET
  (:class:`ClassicClient`). Its state holds the endpoint read (address and keys).

Both are configuration only: nothing is written to a target after it is made, so one
target serves many runs and threads; what a read found travels in its state.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from amlretrain._numbers import DURATION, POLLING_INTERVAL, checked
from amlretrain.blobs import BlobRef, same_blob, strip_sas
from amlretrain.errors import (
    ConfigurationError,
    ConflictError,
    OperationStillRunning,
    VerificationFailed,
)
from amlretrain.polling import decode_token
from amlretrain.targets import Sample, TargetState, detach_if_running, swap_token_data

if TYPE_CHECKING:
    from amlretrain.interrupt import StopSignal
    from amlretrain.studio.definition import WebServiceDefinition
    from amlretrain.studio.management import ClassicClient
    from amlretrain.studio.models import Endpoint
    from amlretrain.studio.scoring import ScoreResult, ScoringClient
    from amlretrain.studio.webservices import WebServicePoller, WebServicesClient

__all__ = ["SWAP_TOKEN_KIND", "ArmTarget", "ClassicTarget"]

log = logging.getLogger(__name__)

#: The kind of the continuation tokens of a New (ARM) web service's detached swap.
SWAP_TOKEN_KIND = "arm.swap"


def _bounded(deadline: float, stop: StopSignal | None) -> float:
    """``deadline``, or the stop request's grace deadline when that comes first."""
    cut = stop.deadline() if stop is not None else None
    return deadline if cut is None else min(deadline, cut)


def _await(poller: WebServicePoller, label: str, timeout: float, stop: StopSignal | None) -> None:
    """Wait for a long-running operation, bounded by ``timeout`` and a stop's grace."""
    started = time.monotonic()
    deadline = started + timeout
    told = False
    while not poller.done():
        limit = _bounded(deadline, stop)
        now = time.monotonic()
        if stop is not None and stop.requested and not told:
            told = True
            log.warning(
                "%s: stopping: waiting up to %.0f s for the update operation to finish",
                label,
                max(0.0, limit - now),
            )
        if now >= limit:
            why = "the run is stopping and " if limit < deadline else ""
            raise OperationStillRunning(
                f"web service {label}: {why}the update operation is still running after "
                f"{now - started:.0f} s (request id {poller.request_id}); what it serves is "
                "unknown until it is reconciled",
                waited=now - started,
            )
        poller.wait_done(min(0.5, limit - now))  # returns as soon as the operation ends


class ArmTarget:
    """A New (ARM) predictive web service.

    Args:
        client: the :class:`~amlretrain.studio.webservices.WebServicesClient`.
        resource_group: the web service's resource group.
        name: the web service's name.
        asset: the trained-model asset id or name (default: the only one).
        scoring_url: the request-response base URL; default: derived from the service's
            ``swaggerLocation`` (``.../services/{id}/swagger.json`` -> ``.../services/{id}``).
        include_sas: put the model's SAS into ``locationInfo.uri`` (default True). Whether
            the real service needs one for a private blob is not documented; the
            emulator does.
        operation_timeout: seconds the update operation may take (default 900); after
            that :class:`~amlretrain.errors.OperationTimeout`, and what the service
            serves is unknown until reconciled.
        verify_timeout: seconds reads may keep showing the previous model after the
            operation succeeded (ARM reads can lag; default 120).
        verify_interval: seconds between those reads.

    Example:
        >>> target = ArmTarget(arm, "my-rg", "census-predictive")         # doctest: +SKIP
        >>> state = target.check()                                        # doctest: +SKIP
        >>> after = target.deploy(model, state)                           # doctest: +SKIP
    """

    def __init__(
        self,
        client: WebServicesClient,
        resource_group: str,
        name: str,
        *,
        asset: str | None = None,
        scoring_url: str | None = None,
        include_sas: bool = True,
        operation_timeout: float = 900.0,
        verify_timeout: float = 120.0,
        verify_interval: float = 1.0,
    ) -> None:
        self.client = client
        self.resource_group = resource_group
        self.name = name
        self.asset = asset
        self.scoring_url = scoring_url
        self.include_sas = include_sas
        self.operation_timeout = checked(
            operation_timeout, name="operation_timeout", low=DURATION[0], high=DURATION[1]
        )
        self.verify_timeout = checked(
            verify_timeout, name="verify_timeout", low=DURATION[0], high=DURATION[1]
        )
        self.verify_interval = checked(
            verify_interval,
            name="verify_interval",
            low=POLLING_INTERVAL[0],
            high=POLLING_INTERVAL[1],
        )

    def __repr__(self) -> str:
        return f"ArmTarget({self.resource_group!r}, {self.name!r})"

    @property
    def key(self) -> str:
        return f"arm:{self.client.resource_id(self.resource_group, self.name)}"

    @property
    def label(self) -> str:
        return f"{self.resource_group}/{self.name}"

    # -- reads ---------------------------------------------------------------------------

    def check(self) -> TargetState:
        """Read the service; refuse a read-only one and no or an ambiguous trained model.

        Raises:
            ConfigurationError: the service cannot be swapped.
        """
        definition = self.client.get(self.resource_group, self.name)
        if definition.is_read_only:
            raise ConfigurationError(
                f"web service {self.label} is read-only: it can only be deleted, not updated"
            )
        return self._state(definition, checked=True)

    def read(self, known: TargetState | None = None) -> TargetState:
        """Read the service's definition (one GET); ``known``'s ``checked`` is kept."""
        self._definition_in(known)  # refuses another target's state
        definition = self.client.get(self.resource_group, self.name)
        return self._state(definition, checked=known is not None and known.checked)

    def current_model(self) -> str | None:
        """The model URL the service serves now (one read; may carry a SAS: a secret)."""
        return self.read().model

    def _state(self, definition: WebServiceDefinition, *, checked: bool) -> TargetState:
        asset, uri = self._model_of(definition)  # no or an ambiguous trained model: refused
        return TargetState(
            target=self.key, model=uri, resource=asset, document=definition, checked=checked
        )

    def _definition_in(self, state: TargetState | None) -> WebServiceDefinition | None:
        """The definition ``state`` holds (None for None); another target's is refused."""
        from amlretrain.studio.definition import WebServiceDefinition

        if state is None:
            return None
        if state.target != self.key or not isinstance(state.document, WebServiceDefinition):
            raise ValueError(f"{state!r} is not a state of web service {self.label}")
        return state.document

    def _model_of(self, definition: WebServiceDefinition) -> tuple[str, str | None]:
        """The trained model's asset id and uri."""
        models = definition.trained_models
        if self.asset is None:
            if len(models) != 1:
                names = ", ".join(m.asset_id for m in models) or "none"
                raise ConfigurationError(
                    f"web service {self.label} has {len(models)} trained models ({names}); "
                    "name one with the target's asset setting (asset in retrain.toml)"
                )
            return models[0].asset_id, models[0].uri
        for model in models:
            if self.asset in (model.asset_id, model.name):
                return model.asset_id, model.uri
        raise ConfigurationError(f"web service {self.label} has no trained model {self.asset!r}")

    # -- the swap ------------------------------------------------------------------------

    def _uri(self, model: BlobRef) -> str:
        return model.sas_url if self.include_sas else model.url

    def plan(self, model: BlobRef, state: TargetState) -> dict[str, Any]:
        """The PATCH a swap from ``state`` to ``model`` sends (no request)."""
        from amlretrain.studio.ilearner import patch_body

        current = self._required(state)
        new = current.with_trained_model(self._uri(model), asset=self.asset)
        return {
            "method": "PATCH",
            "url": self.client.base_url + self.client.resource_id(self.resource_group, self.name),
            "jsonPatch": list(current.diff(new)),
            "body": patch_body(current, new),
        }

    def _required(self, state: TargetState) -> WebServiceDefinition:
        definition = self._definition_in(state)
        assert definition is not None  # a state was given
        return definition

    def deploy(
        self,
        model: BlobRef,
        state: TargetState | None = None,
        *,
        stop: StopSignal | None = None,
        pinned: bool = False,
        on_request: Callable[[str], None] | None = None,
        detach: bool = False,
    ) -> TargetState:
        """Rewrite the definition read in ``state`` to ``model``: a minimal PATCH, awaited
        (at most ``operation_timeout``) and verified by fresh reads (see
        :meth:`Target.deploy <amlretrain.targets.Target.deploy>`).

        ``detach``: a PATCH whose operation still runs
        :data:`~amlretrain.targets.DETACH_AFTER` seconds after it was accepted raises
        :class:`~amlretrain.errors.OperationDetached` with a token; :meth:`resume` goes
        on from it."""
        if state is None:
            state, pinned = self.read(), True
        # The client re-reads the service and refuses (ConflictError) if its model changed
        # since ``state`` was read, unless that read was just made under the lease.
        current = self._required(state)
        new = current.with_trained_model(self._uri(model), asset=self.asset)
        try:
            poller = self.client.begin_update(
                self.resource_group, self.name, new, expected=current, expected_is_fresh=pinned
            )
        except ConflictError:
            # "Already ours" passes: an earlier attempt of this swap may have landed late.
            fresh = self.read(state)
            if same_blob(fresh.model, model.url):
                return fresh
            raise
        if poller.request_id and on_request is not None:
            on_request(poller.request_id)
        if detach:
            what = f"the update of web service {self.label}"
            detach_if_running(poller, what, SWAP_TOKEN_KIND, {"model": model.url})
        return self._finish(poller, model, state, stop)

    def operation(self, token: str) -> WebServicePoller:
        """The poller of a swap's detached update (``token`` of
        :class:`~amlretrain.errors.OperationDetached`): ``done()``, ``status()``; it only
        reads (nothing is sent again).

        Raises:
            ValueError: not a token of this kind of swap.
        """
        lro = str(decode_token(token, SWAP_TOKEN_KIND)["lro"])
        return self.client.begin_update(
            self.resource_group, self.name, None, continuation_token=lro
        )

    def resume(
        self,
        model: BlobRef,
        state: TargetState,
        token: str,
        *,
        stop: StopSignal | None = None,
        on_request: Callable[[str], None] | None = None,
        detach: bool = False,
    ) -> TargetState:
        """Go on with a swap from its detached update's ``token``: wait for the operation
        (nothing is sent again) and verify it as :meth:`deploy` does.

        Raises:
            ConfigurationError: a token of another model or kind.
        """
        swap_token_data(token, SWAP_TOKEN_KIND, model, self.label)  # checked
        return self._finish(self.operation(token), model, state, stop)

    def _finish(
        self,
        poller: WebServicePoller,
        model: BlobRef,
        state: TargetState,
        stop: StopSignal | None,
    ) -> TargetState:
        """Wait for the update (at most ``operation_timeout``) and verify it."""
        _await(poller, self.label, self.operation_timeout, stop)
        try:
            definition = poller.result()
        except VerificationFailed:
            # The operation succeeded but the read after it shows another model: reads
            # can lag behind a write. Read again until the verify window ends.
            return self._settle(model, state, stop)
        after = (
            self.read(state)  # pragma: no cover - an update always returns the service
            if definition is None
            else self._state(definition, checked=state.checked)
        )
        if not same_blob(after.model, model.url):
            raise VerificationFailed(
                f"web service {self.label} serves another model after the update",
                expected=model.url,
                actual=strip_sas(after.model),
            )
        return after

    def _settle(self, model: BlobRef, known: TargetState, stop: StopSignal | None) -> TargetState:
        """Read until the service shows ``model`` or the verify window ends."""
        deadline = _bounded(time.monotonic() + self.verify_timeout, stop)
        while True:
            fresh = self.read(known)
            if same_blob(fresh.model, model.url):
                return fresh
            remaining = _bounded(deadline, stop) - time.monotonic()
            if remaining <= 0:
                raise VerificationFailed(
                    f"web service {self.label}: the update operation succeeded but reads "
                    f"still show another model after {self.verify_timeout:g} s",
                    expected=model.url,
                    actual=strip_sas(fresh.model),
                )
            time.sleep(min(self.verify_interval, remaining))

    # -- scoring -------------------------------------------------------------------------

    def sample(self, state: TargetState | None = None) -> Sample | None:
        """The definition's ``exampleRequest`` (``state``'s; read when None)."""
        return Sample.from_example_request(self._required(state or self.read()))

    def scoring(
        self, state: TargetState | None = None, *, retries: int | None = None
    ) -> ScoringClient:
        """A scoring client of the service as read in ``state`` (read when None), to score
        many requests on one connection; ``retries``: its transient retries (default 3).
        Close it (a with-block)."""
        from amlretrain.studio.scoring import ScoringClient

        url = self.scoring_url
        if url is None:
            definition = self._required(state or self.read())
            swagger = definition.properties.swagger_location if definition.properties else None
            if not swagger:
                raise ConfigurationError(
                    f"web service {self.label} has no swaggerLocation: give the target's "
                    "scoring URL (scoring_url in retrain.toml)"
                )
            parts = urllib.parse.urlsplit(swagger)
            path = parts.path.rsplit("/", 1)[0] if parts.path.endswith(".json") else parts.path
            url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        keys = self.client.list_keys(self.resource_group, self.name)
        key = keys.primary or keys.secondary
        if not key:
            raise ConfigurationError(f"web service {self.label} has no API key")
        return ScoringClient(url, key, transient_retries=3 if retries is None else retries)

    def score(self, sample: Sample, state: TargetState | None = None) -> ScoreResult:
        """Score ``sample`` (the URL from ``state``'s ``swaggerLocation`` unless the target
        was given one; the key from ``listKeys``)."""
        with self.scoring(state) as scoring:
            return scoring.score(sample.columns, sample.rows, input_name=sample.input_name)


class ClassicTarget:
    """A non-default endpoint of a classic predictive web service.

    Args:
        client: the :class:`~amlretrain.studio.management.ClassicClient` of the workspace.
        web_service_id: the predictive web service.
        endpoint: the endpoint name (never the default one).
        resource_name: the trained-model resource (``"... [trained model]"``); default:
            the endpoint's only resource.
        verify_timeout: seconds to wait for the endpoint to show the new model.

    Example:
        >>> target = ClassicTarget(classic, ws_id, "retrained")           # doctest: +SKIP
        >>> state = target.check()  # refuses the default endpoint     # doctest: +SKIP
        >>> after = target.deploy(model, state)                           # doctest: +SKIP
    """

    def __init__(
        self,
        client: ClassicClient,
        web_service_id: str,
        endpoint: str,
        *,
        resource_name: str | None = None,
        verify_timeout: float = 120.0,
    ) -> None:
        self.client = client
        self.web_service_id = web_service_id
        self.endpoint = endpoint
        self.resource_name = resource_name
        self.verify_timeout = checked(
            verify_timeout, name="verify_timeout", low=DURATION[0], high=DURATION[1]
        )

    def __repr__(self) -> str:
        return f"ClassicTarget({self.web_service_id!r}, {self.endpoint!r})"

    @property
    def key(self) -> str:
        return f"classic:{self.client.workspace_id}/{self.web_service_id}/{self.endpoint}"

    @property
    def label(self) -> str:
        return f"{self.web_service_id}/{self.endpoint}"

    # -- reads ---------------------------------------------------------------------------

    def check(self) -> TargetState:
        """Refuse the default endpoint and no or an ambiguous resource; read the endpoint.

        Raises:
            ConfigurationError: the endpoint cannot be swapped.
        """
        # Many endpoints of one service are checked together: one read of the service
        # (its default endpoint name does not change under a deployment) serves them all.
        service = self.client.get_web_service(self.web_service_id, max_age=60.0)
        service.refuse_default(self.endpoint)
        state = self._state(self._get(), self.resource_name)
        return attrs.evolve(state, checked=True)

    def read(self, known: TargetState | None = None) -> TargetState:
        """Read the endpoint (one GET); ``known``'s resolved resource is kept."""
        if known is None:
            return self._state(self._get(), self.resource_name)
        self._endpoint_in(known)  # refuses another target's state
        return attrs.evolve(self._state(self._get(), known.resource), checked=known.checked)

    def current_model(self) -> str | None:
        """The model URL the endpoint serves now (one read; carries a SAS: a secret)."""
        return self.read().model

    def _get(self) -> Endpoint:
        return self.client.get_endpoint(self.web_service_id, self.endpoint)

    def _state(self, endpoint: Endpoint, resource: str | None) -> TargetState:
        name = self._resource_of(endpoint, resource)
        location = endpoint.resource(name).location
        return TargetState(
            target=self.key,
            model=location.sas_url if location else None,
            resource=name,
            document=endpoint,
        )

    def _endpoint_in(self, state: TargetState) -> Endpoint:
        from amlretrain.studio.models import Endpoint

        if state.target != self.key or not isinstance(state.document, Endpoint):
            raise ValueError(f"{state!r} is not a state of endpoint {self.label}")
        return state.document

    def _resource_of(self, endpoint: Endpoint, resource: str | None) -> str:
        if resource is not None:
            return endpoint.resource(resource).name
        names = [r.name for r in endpoint.resources if r.name]
        if len(names) == 1:
            return names[0]
        if not names:
            endpoint.resource("")  # raises the documented "no updatable resources" error
        raise ConfigurationError(
            f"endpoint {self.label} has {len(names)} resources; name one with the target's "
            "resource name (resource_name in retrain.toml): " + ", ".join(repr(n) for n in names)
        )

    # -- the swap ------------------------------------------------------------------------

    def plan(self, model: BlobRef, state: TargetState) -> dict[str, Any]:
        """The PATCH of the trained-model resource a swap sends (no request)."""
        from amlretrain.studio.management import trained_model_patch

        resource = self._resource_of(self._endpoint_in(state), state.resource)
        return {
            "method": "PATCH",
            "url": self.client.endpoint_url(self.web_service_id, self.endpoint),
            "body": trained_model_patch(resource, model),
        }

    def deploy(
        self,
        model: BlobRef,
        state: TargetState | None = None,
        *,
        stop: StopSignal | None = None,
        pinned: bool = False,
        on_request: Callable[[str], None] | None = None,
    ) -> TargetState:
        """PATCH the endpoint's trained-model resource to ``model`` and read it until it
        shows it (see :meth:`Target.deploy <amlretrain.targets.Target.deploy>`).

        The management API's PATCH response is not surfaced by ClassicClient:
        ``on_request`` is never called.
        """
        # The management API has no conditional PATCH: an expected (not pinned) state is
        # checked by a fresh read right before the write. What remains is the window
        # between that read and the PATCH (one round trip plus the client's own pre-PATCH
        # reads): a concurrent write landing there is not detected here, but the
        # verification read after the PATCH then shows another model.
        if state is None:
            state = self.read()  # that read is the pin
        elif not pinned:
            fresh = self.read(state)
            now, expected = strip_sas(fresh.model), strip_sas(state.model)
            # "Already ours" passes: an earlier attempt of this swap may have landed late.
            if now not in (expected, model.url):
                raise ConflictError(
                    f"endpoint {self.label} changed since it was read: it serves {now}, "
                    f"not {expected}; read it again and redo the change",
                    code="ModelChanged",
                )
            state = fresh
        endpoint = self._endpoint_in(state)
        resource = self._resource_of(endpoint, state.resource)
        after = self.client.update_trained_model(
            self.web_service_id,
            self.endpoint,
            resource,
            model,
            verify_timeout=self.verify_timeout,
            endpoint=endpoint,
            check_default=not state.checked,
            stop=stop,
        )
        # update_trained_model refused the default endpoint when the state had not.
        return attrs.evolve(self._state(after, resource), checked=True)

    # -- scoring -------------------------------------------------------------------------

    def sample(self, state: TargetState | None = None) -> Sample | None:
        """None: a classic endpoint documents no example rows."""
        return None

    def scoring(
        self, state: TargetState | None = None, *, retries: int | None = None
    ) -> ScoringClient:
        """A scoring client of the endpoint as read in ``state`` (read when None), to score
        many requests on one connection; ``retries``: its transient retries (default 3).
        Close it (a with-block)."""
        from amlretrain.studio.scoring import ScoringClient

        endpoint = self._endpoint_in(state) if state is not None else self._get()
        key = endpoint.primary_key or endpoint.secondary_key
        if not endpoint.api_location or not key:
            raise ConfigurationError(f"endpoint {self.label} reports no ApiLocation or key")
        return ScoringClient(
            endpoint.api_location, key, transient_retries=3 if retries is None else retries
        )

    def score(self, sample: Sample, state: TargetState | None = None) -> ScoreResult:
        """Score ``sample`` with the address and key of the endpoint as read in ``state``
        (read when None)."""
        with self.scoring(state) as scoring:
            return scoring.score(sample.columns, sample.rows, input_name=sample.input_name)
