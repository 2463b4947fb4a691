r"""Studio (classic) deployment targets: the :class:`~amlretrain.targets.Target`\s of the loop.

* :class:`ArmTarget`: a New (ARM) web service. The swap is a definition rewrite sent as
  a minimal PATCH, awaited and verified by a fresh GET (:class:`WebServicesClient`).
* :class:`ClassicTarget`: a non-default endpoint of a classic predictive web service.
  The swap is a PATCH of its trained-model resource, verified by GET
  (:class:`ClassicClient`).
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from amlretrain._numbers import DURATION, POLLING_INTERVAL, checked
from amlretrain.blobs import BlobRef, same_blob, strip_sas
from amlretrain.errors import (
    ConfigurationError,
    ConflictError,
    OperationStillRunning,
    VerificationFailed,
)
from amlretrain.targets import Sample

if TYPE_CHECKING:
    from amlretrain.interrupt import StopSignal
    from amlretrain.studio.definition import WebServiceDefinition
    from amlretrain.studio.management import ClassicClient
    from amlretrain.studio.models import Endpoint
    from amlretrain.studio.scoring import ScoreResult, ScoringClient
    from amlretrain.studio.webservices import WebServicePoller, WebServicesClient

__all__ = ["ArmTarget", "ClassicTarget"]

log = logging.getLogger(__name__)


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
        self.include_sas = include_sas
        self.operation_timeout = checked(
            operation_timeout, name="operation_timeout", low=DURATION[0], high=DURATION[1]
        )
        self._verify_timeout = checked(
            verify_timeout, name="verify_timeout", low=DURATION[0], high=DURATION[1]
        )
        self.verify_interval = checked(
            verify_interval,
            name="verify_interval",
            low=POLLING_INTERVAL[0],
            high=POLLING_INTERVAL[1],
        )
        self._scoring_url = scoring_url
        self._definition: WebServiceDefinition | None = None
        self._request_ids: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"ArmTarget({self.resource_group!r}, {self.name!r})"

    @property
    def key(self) -> str:
        return f"arm:{self.client.resource_id(self.resource_group, self.name)}"

    @property
    def label(self) -> str:
        return f"{self.resource_group}/{self.name}"

    @property
    def request_ids(self) -> tuple[str, ...]:
        return self._request_ids

    @property
    def verify_timeout(self) -> float:
        return self._verify_timeout

    def _fetch(self) -> WebServiceDefinition:
        self._definition = self.client.get(self.resource_group, self.name)
        return self._definition

    def check(self) -> str | None:
        definition = self._fetch()
        if definition.is_read_only:
            raise ConfigurationError(
                f"web service {self.label} is read-only: it can only be deleted, not updated"
            )
        return self._model_of(definition)  # no or an ambiguous trained model: refused here

    def _model_of(self, definition: WebServiceDefinition) -> str | None:
        models = definition.trained_models
        if self.asset is None:
            if len(models) != 1:
                names = ", ".join(m.asset_id for m in models) or "none"
                raise ConfigurationError(
                    f"web service {self.label} has {len(models)} trained models ({names}); "
                    "name one with the target's asset setting (asset in retrain.toml)"
                )
            return models[0].uri
        for model in models:
            if self.asset in (model.asset_id, model.name):
                return model.uri
        raise ConfigurationError(f"web service {self.label} has no trained model {self.asset!r}")

    def current_model(self) -> str | None:
        return self._model_of(self._fetch())

    def _uri(self, model: BlobRef) -> str:
        return model.sas_url if self.include_sas else model.url

    def plan(self, model: BlobRef) -> dict[str, Any]:
        from amlretrain.studio.ilearner import patch_body

        current = self._definition or self._fetch()
        new = current.with_trained_model(self._uri(model), asset=self.asset)
        return {
            "method": "PATCH",
            "url": self.client.base_url + self.client.resource_id(self.resource_group, self.name),
            "jsonPatch": list(current.diff(new)),
            "body": patch_body(current, new),
        }

    def deploy(
        self, model: BlobRef, *, stop: StopSignal | None = None, pinned: bool = False
    ) -> str:
        # The definition read by check()/current_model() is the expected one: the client
        # re-reads the service and refuses (ConflictError) if its model changed since
        # (unless that read was just made under the lease: ``pinned``).
        just_read = pinned and self._definition is not None
        current = self._definition or self._fetch()
        new = current.with_trained_model(self._uri(model), asset=self.asset)
        self._request_ids = ()
        try:
            poller = self.client.begin_update(
                self.resource_group, self.name, new, expected=current, expected_is_fresh=just_read
            )
        except ConflictError:
            # "Already ours" passes: an earlier attempt of this swap may have landed late.
            fresh = self._fetch()
            served = self._model_of(fresh)
            if same_blob(served, model.url):
                return served or model.url
            raise
        self._request_ids = (poller.request_id,) if poller.request_id else ()
        _await(poller, self.label, self.operation_timeout, stop)
        try:
            after = poller.result()
        except VerificationFailed:
            # The operation succeeded but the read after it shows another model: reads
            # can lag behind a write. Read again until the verify window ends.
            after = self._settle(model, stop)
        if after is None:  # pragma: no cover - an update always returns the service
            after = self._fetch()
        self._definition = after
        served = self._model_of(after)
        if not same_blob(served, model.url):
            raise VerificationFailed(
                f"web service {self.label} serves another model after the update",
                expected=model.url,
                actual=strip_sas(served),
            )
        return served or model.url

    def _settle(self, model: BlobRef, stop: StopSignal | None) -> WebServiceDefinition:
        """Read until the service shows ``model`` or the verify window ends."""
        deadline = _bounded(time.monotonic() + self.verify_timeout, stop)
        while True:
            fresh = self._fetch()
            served = self._model_of(fresh)
            if same_blob(served, model.url):
                return fresh
            remaining = _bounded(deadline, stop) - time.monotonic()
            if remaining <= 0:
                raise VerificationFailed(
                    f"web service {self.label}: the update operation succeeded but reads "
                    f"still show another model after {self.verify_timeout:g} s",
                    expected=model.url,
                    actual=strip_sas(served),
                )
            time.sleep(min(self.verify_interval, remaining))

    def sample(self) -> Sample | None:
        definition = self._definition or self._fetch()
        return Sample.from_example_request(definition)

    def _scoring(self) -> ScoringClient:
        from amlretrain.studio.scoring import ScoringClient

        url = self._scoring_url
        if url is None:
            definition = self._definition or self._fetch()
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
        return ScoringClient(url, key)

    def score(self, sample: Sample) -> ScoreResult:
        with self._scoring() as scoring:
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
        #: The model (without SAS) of the last read: :meth:`deploy` pins it.
        self._expected: str | None = None
        self._read = False
        #: The endpoint as last read (check, pin or verification).
        self._endpoint: Endpoint | None = None
        #: check() refused the default endpoint already: deploy need not read the service.
        self._checked = False

    def __repr__(self) -> str:
        return f"ClassicTarget({self.web_service_id!r}, {self.endpoint!r})"

    @property
    def key(self) -> str:
        return f"classic:{self.client.workspace_id}/{self.web_service_id}/{self.endpoint}"

    @property
    def label(self) -> str:
        return f"{self.web_service_id}/{self.endpoint}"

    @property
    def request_ids(self) -> tuple[str, ...]:
        # The management API's PATCH response is not surfaced by ClassicClient.
        return ()

    def _read_endpoint(self) -> Endpoint:
        self._endpoint = self.client.get_endpoint(self.web_service_id, self.endpoint)
        return self._endpoint

    def _resource_of(self, endpoint: Endpoint) -> str:
        if self.resource_name is not None:
            return endpoint.resource(self.resource_name).name
        names = [r.name for r in endpoint.resources if r.name]
        if len(names) == 1:
            return names[0]
        if not names:
            endpoint.resource("")  # raises the documented "no updatable resources" error
        raise ConfigurationError(
            f"endpoint {self.label} has {len(names)} resources; name one with the target's "
            "resource name (resource_name in retrain.toml): " + ", ".join(repr(n) for n in names)
        )

    def _model_in(self, endpoint: Endpoint) -> str | None:
        location = endpoint.resource(self._resource_of(endpoint)).location
        served = location.sas_url if location else None
        self._expected, self._read = strip_sas(served), True
        return served

    def check(self) -> str | None:
        # Many endpoints of one service are checked together: one read of the service
        # (its default endpoint name does not change under a deployment) serves them all.
        service = self.client.get_web_service(self.web_service_id, max_age=60.0)
        service.refuse_default(self.endpoint)
        endpoint = self._read_endpoint()
        self.resource_name = self._resource_of(endpoint)
        self._checked = True
        return self._model_in(endpoint)

    def current_model(self) -> str | None:
        return self._model_in(self._read_endpoint())

    def plan(self, model: BlobRef) -> dict[str, Any]:
        from amlretrain.studio.management import trained_model_patch

        resource = self._resource_of(self._endpoint or self._read_endpoint())
        return {
            "method": "PATCH",
            "url": self.client.endpoint_url(self.web_service_id, self.endpoint),
            "body": trained_model_patch(resource, model),
        }

    def deploy(
        self, model: BlobRef, *, stop: StopSignal | None = None, pinned: bool = False
    ) -> str:
        # The management API has no conditional PATCH: pin the model read by
        # current_model() with a fresh read right before the write. What remains is the
        # window between this read and the PATCH (one round trip plus the client's own
        # pre-PATCH reads): a concurrent write landing there is not detected here, but
        # the verification read after the PATCH then shows another model.
        expected, was_read = self._expected, self._read
        if pinned and self._endpoint is not None:
            endpoint = self._endpoint  # just read under the lease: that read is the pin
        else:
            endpoint = self._read_endpoint()
        if was_read:
            now = strip_sas(self._model_in(endpoint))
            # "Already ours" passes: an earlier attempt of this swap may have landed late.
            if now not in (expected, model.url):
                raise ConflictError(
                    f"endpoint {self.label} changed since it was read: it serves {now}, "
                    f"not {expected}; read it again and redo the change",
                    code="ModelChanged",
                )
        self._endpoint = self.client.update_trained_model(
            self.web_service_id,
            self.endpoint,
            self._resource_of(endpoint),
            model,
            verify_timeout=self.verify_timeout,
            endpoint=endpoint,
            check_default=not self._checked,
            stop=stop,
        )
        return self._model_in(self._endpoint) or model.url

    def sample(self) -> Sample | None:
        return None

    def score(self, sample: Sample) -> ScoreResult:
        from amlretrain.studio.scoring import ScoringClient

        # The endpoint read by the last swap's verification (or check) has the address
        # and keys: no need to read it again.
        endpoint = self._endpoint or self._read_endpoint()
        key = endpoint.primary_key or endpoint.secondary_key
        if not endpoint.api_location or not key:
            raise ConfigurationError(f"endpoint {self.label} reports no ApiLocation or key")
        with ScoringClient(endpoint.api_location, key) as scoring:
            return scoring.score(sample.columns, sample.rows, input_name=sample.input_name)
