r"""``OnlineEndpointTarget``: a verified blue/green swap on an Azure ML v2 managed online endpoint.

The :class:`~amlretrain.targets.Target` of the retrain loop for a v2 online endpoint
(issue 16): the loop hands it a model blob (a :class:`~amlretrain.blobs.BlobRef`), and
a swap is

1. the model version registered (:meth:`ModelsClient.register_version
   <amlretrain.azureml.registry.ModelsClient.register_version>`, idempotent): the blob
   as ``azureml://datastores/<datastore>/paths/<blob path>``, its version named from the
   blob URL (:func:`version_name`), so a resumed run never registers one twice;
2. the *standby* deployment (of the two ``deployment_names``, the one without the
   traffic) PUT as a copy of the live one's settings with the new model
   (:meth:`OnlineDeployment.copy_as <amlretrain.azureml.models.OnlineDeployment.copy_as>`),
   and awaited; skipped when the standby already serves that blob (a rollback is then
   only traffic). Two names used in turn: deployments never pile up against the 20 per
   endpoint (V2-NOTES 3.5);
3. the standby smoke-tested through the ``azureml-model-deployment`` header (T5) with
   the target's sample, when it has one: a failure changes no traffic;
4. the whole traffic map in one endpoint PUT (``{standby: 100, live: 0}``:
   :meth:`OnlineEndpointsClient.begin_set_traffic
   <amlretrain.azureml.endpoints.OnlineEndpointsClient.begin_set_traffic>`, which waits
   out a busy endpoint's 409 and never sends a PUT without the traffic, F1);
5. verified by a fresh read: the endpoint's traffic gives the standby 100% and the model
   it serves is the new blob.

The previous deployment stays, at 0%: putting it back is one traffic PUT. Deleting it
after a bake is not done yet (so an endpoint holds at most the two deployments of
``deployment_names`` plus whatever it had before).

A :class:`~amlretrain.targets.TargetState` of this target: ``model`` is the blob URL
(no SAS) of what the live deployment serves (its model version's ``modelUri`` mapped
back to the datastore's container), ``resource`` the live deployment's name,
``document`` an :class:`OnlineEndpointRead` (the endpoint, its deployments and the model
versions of the live and the standby one).

Example:
    >>> eps = OnlineEndpointsClient(cred, sub, "rg", "ws")                   # doctest: +SKIP
    >>> models = ModelsClient(cred, sub, "rg", "ws")                          # doctest: +SKIP
    >>> target = OnlineEndpointTarget(eps, models, "census",
    ...     datastore_account_url="https://acct.blob.core.windows.net/")     # doctest: +SKIP
    >>> deploy(model, [target], ledger=ledger, store=store)                   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from amlretrain._numbers import DURATION, POLLING_INTERVAL, checked
from amlretrain._redact import redact
from amlretrain.azureml.models import (
    ILEARNER_REFUSAL,
    ModelRef,
    ModelVersion,
    ModelVersionProperties,
    OnlineDeployment,
    OnlineEndpoint,
)
from amlretrain.azureml.scoring import OnlineEndpointScoring
from amlretrain.azureml.traffic import TrafficMap, endpoint_put_body, positive
from amlretrain.blobs import BlobRef, same_blob, strip_sas
from amlretrain.errors import (
    AmlRetrainError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    OperationStillRunning,
    ServiceError,
    VerificationFailed,
)
from amlretrain.polling import decode_token
from amlretrain.studio.scoring import ScoreResult, ScoringClient
from amlretrain.targets import Sample, TargetState, detach_if_running, swap_token_data

if TYPE_CHECKING:
    from amlretrain.azureml.endpoints import OnlineEndpointsClient
    from amlretrain.azureml.operations import AzureMLPoller
    from amlretrain.azureml.registry import ModelsClient
    from amlretrain.interrupt import StopSignal

__all__ = [
    "SWAP_TOKEN_KIND",
    "DeploymentView",
    "OnlineEndpointRead",
    "OnlineEndpointTarget",
    "blob_of_datastore_uri",
    "datastore_uri",
    "version_name",
]

log = logging.getLogger(__name__)

_SHORT = re.compile(r"^azureml://datastores/(?P<ds>[^/]+)/paths/(?P<path>.+)$", re.IGNORECASE)
_LONG = re.compile(
    r"^azureml://subscriptions/[^/]+/resourcegroups/[^/]+/workspaces/[^/]+"
    r"/datastores/(?P<ds>[^/]+)/paths/(?P<path>.+)$",
    re.IGNORECASE,
)


def _is_ilearner(path: str) -> bool:
    return path.lower().rstrip("/").endswith(".ilearner")


def datastore_uri(
    model: BlobRef, *, datastore: str = "workspaceblobstore", container: str | None = None
) -> str:
    """``azureml://datastores/<datastore>/paths/<blob path>`` of a model blob.

    Args:
        model: the blob (its SAS is not part of the URI).
        datastore: the datastore's name.
        container: the datastore's container (default: the datastore's name).

    Raises:
        ConfigurationError: a blob in another container, or an ``.ilearner`` (Studio
            (classic): v2 cannot load it, V2-NOTES 7.3).

    Example:
        >>> datastore_uri(BlobRef.from_url(
        ...     "https://a.blob.core.windows.net/workspaceblobstore/m/1/model.json?sig=x"))
        'azureml://datastores/workspaceblobstore/paths/m/1/model.json'
    """
    if _is_ilearner(model.blob_name):
        raise ConfigurationError(f"{model.url!r} {ILEARNER_REFUSAL}")
    wanted = container or datastore
    if model.container.lower() != wanted.lower():
        raise ConfigurationError(
            f"model {model.url} is in container {model.container!r}, not in "
            f"{wanted!r} (the container of datastore {datastore!r}): a v2 model version "
            "is registered from a datastore path; copy the model there, or give the "
            "target the datastore that holds it"
        )
    return f"azureml://datastores/{datastore}/paths/{model.blob_name}"


def blob_of_datastore_uri(
    uri: str,
    account_url: str,
    *,
    datastore: str = "workspaceblobstore",
    container: str | None = None,
) -> BlobRef:
    """The blob (no SAS) an ``azureml://datastores/<datastore>/paths/<p>`` URI (short or
    long form) names: ``<account_url><container>/<p>``.

    Raises:
        ConfigurationError: another form (a job output, ``runs:/``...) or another datastore.

    Example:
        >>> blob_of_datastore_uri("azureml://datastores/workspaceblobstore/paths/m/model.json",
        ...                       "https://a.blob.core.windows.net/").url
        'https://a.blob.core.windows.net/workspaceblobstore/m/model.json'
    """
    match = _SHORT.match(uri or "") or _LONG.match(uri or "")
    if match is None:
        raise ConfigurationError(
            f"model URI {uri!r} is not an azureml://datastores/<datastore>/paths/<path> URI: "
            "amlretrain cannot tell which blob it is (register the model from the datastore)"
        )
    if match["ds"].lower() != datastore.lower():
        raise ConfigurationError(
            f"model URI {uri!r} is in datastore {match['ds']!r}, not in {datastore!r} "
            "(the target's datastore)"
        )
    base = account_url if account_url.endswith("/") else account_url + "/"
    return BlobRef(
        base_location=base,
        relative_location=f"{container or datastore}/{match['path'].lstrip('/')}",
    )


def version_name(model: BlobRef | str) -> str:
    """The model version a blob is registered as: the first 12 hex digits of the SHA-256
    of its URL without the SAS (one blob, one version: a resumed run registers none twice).

    Example:
        >>> version_name("https://a.blob.core.windows.net/c/m.json?sig=1") == version_name(
        ...     "https://a.blob.core.windows.net/c/m.json")
        True
    """
    url = model.url if isinstance(model, BlobRef) else strip_sas(model) or ""
    return hashlib.sha256(url.encode()).hexdigest()[:12]


@attrs.frozen(kw_only=True)
class OnlineEndpointRead:
    """What one read of an online endpoint target found (a state's ``document``).

    Attributes:
        endpoint: the endpoint as read.
        deployments: its deployments, by name.
        live: the deployment with 100% of the live traffic (None: none or a split).
        versions: the model version each of the live and the standby deployment serves,
            by deployment name (None: not a workspace model version, or none found).
    """

    endpoint: OnlineEndpoint
    deployments: Mapping[str, OnlineDeployment]
    live: str | None
    versions: Mapping[str, ModelVersion | None]

    def deployment(self, name: str) -> OnlineDeployment | None:
        """The deployment called ``name`` (case-insensitively), if there is one."""
        for key, dep in self.deployments.items():
            if key.lower() == name.lower():
                return dep
        return None


def _bounded(deadline: float, stop: StopSignal | None) -> float:
    cut = stop.deadline() if stop is not None else None
    return deadline if cut is None else min(deadline, cut)


#: The kind of the continuation tokens of a detached swap (:meth:`OnlineEndpointTarget.resume`).
SWAP_TOKEN_KIND = "azureml.swap"


@attrs.define
class _Swap:
    """One swap's settings as its steps pass them on (deploy, resume)."""

    model: BlobRef
    live: str
    standby: str
    stop: StopSignal | None
    on_request: Callable[[str], None] | None
    detach: bool
    model_name: str = ""


class OnlineEndpointTarget:
    """An Azure ML v2 managed online endpoint, swapped blue/green (module docstring).

    Args:
        endpoints: the :class:`~amlretrain.azureml.endpoints.OnlineEndpointsClient` of
            the workspace.
        models: the :class:`~amlretrain.azureml.registry.ModelsClient` of the same
            workspace.
        endpoint: the endpoint's name.
        datastore_account_url: the blob service URL of the datastore's storage account
            (``https://<account>.blob.core.windows.net/``; Azurite:
            ``http://127.0.0.1:10000/devstoreaccount1/``): the models are blobs there.
        model_name: the model the versions are registered under (default: the live
            deployment's model's name).
        deployment_names: the two deployment names used in turn.
        datastore: the datastore the model blobs are registered from.
        datastore_container: its container (default: the datastore's name).
        sample: rows the standby deployment is smoke-tested with before it gets traffic
            (and the target's default scoring rows); None: no smoke test.
        verify_timeout: seconds each step may take (an operation and the reads that
            verify it).
        verify_interval: seconds between the reads of a verification.
        delete_previous: after a run's last bake, delete the deployment the swap took the
            traffic from (:meth:`retire`; its settings and model are recorded first, and a
            rollback recreates it); False keeps it at 0% (a rollback is then one traffic
            PUT).

    Raises:
        ConfigurationError: the two clients are of different workspaces, or the
            deployment names are not two different names.
    """

    def __init__(
        self,
        endpoints: OnlineEndpointsClient,
        models: ModelsClient,
        endpoint: str,
        *,
        datastore_account_url: str,
        model_name: str | None = None,
        deployment_names: tuple[str, str] = ("blue", "green"),
        datastore: str = "workspaceblobstore",
        datastore_container: str | None = None,
        sample: Sample | None = None,
        verify_timeout: float = 600.0,
        verify_interval: float = 1.0,
        delete_previous: bool = True,
    ) -> None:
        where = (endpoints.subscription_id, endpoints.resource_group, endpoints.workspace)
        other = (models.subscription_id, models.resource_group, models.workspace)
        if tuple(p.lower() for p in where) != tuple(p.lower() for p in other):
            raise ConfigurationError(
                f"the endpoints client is of workspace {where[2]} ({where[1]}), the models "
                f"client of {other[2]} ({other[1]}): give clients of one workspace"
            )
        names = tuple(deployment_names)
        if len(names) != 2 or not all(names) or names[0].lower() == names[1].lower():
            raise ConfigurationError(
                f"deployment_names {deployment_names!r}: give two different deployment names"
            )
        parts = urllib.parse.urlsplit(datastore_account_url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(
                f"datastore_account_url {datastore_account_url!r} is not an http(s) URL"
            )
        self.endpoints = endpoints
        self.models = models
        self.endpoint = endpoint
        self.endpoint_id = endpoints.endpoint_id(endpoint)  # refuses a bad name
        self.datastore_account_url = datastore_account_url.rstrip("/") + "/"
        self.model_name = model_name
        self.deployment_names: tuple[str, str] = (names[0], names[1])
        self.datastore = datastore
        self.datastore_container = datastore_container or datastore
        self.default_sample = sample
        self.delete_previous = bool(delete_previous)
        #: Live-traffic percentages the new deployment gets before 100% (:meth:`staged`).
        self.traffic_steps: tuple[int, ...] = ()
        #: Called after each of those steps (verified), before the next; raising stops
        #: the swap, the traffic back on the previous deployment.
        self.on_traffic_step: Callable[[int, str], None] | None = None
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
        return f"OnlineEndpointTarget({self.endpoints.workspace!r}, {self.endpoint!r})"

    @property
    def key(self) -> str:
        return f"azureml:{self.endpoint_id}"

    @property
    def label(self) -> str:
        return f"{self.endpoints.workspace}/{self.endpoint}"

    # -- the datastore ---------------------------------------------------------------------------

    def model_uri(self, model: BlobRef) -> str:
        """The ``azureml://datastores/...`` URI ``model`` is registered with.

        Raises:
            ConfigurationError: another container or account, or an ``.ilearner``.
        """
        uri = datastore_uri(model, datastore=self.datastore, container=self.datastore_container)
        if not same_blob(model.base_location, self.datastore_account_url):
            raise ConfigurationError(
                f"model {model.url} is not in the datastore's storage account "
                f"({self.datastore_account_url}): copy it there"
            )
        return uri

    def _blob_of(self, version: ModelVersion | None) -> BlobRef | None:
        uri = version.model_uri if version is not None else None
        if not uri:
            return None
        return blob_of_datastore_uri(
            uri,
            self.datastore_account_url,
            datastore=self.datastore,
            container=self.datastore_container,
        )

    # -- reads -----------------------------------------------------------------------------------

    def check(self) -> TargetState:
        """Read the endpoint; refuse one amlretrain cannot swap (reads only).

        Raises:
            ConfigurationError: no such endpoint; not Succeeded; traffic split or off
                (not exactly one deployment at 100%); a token auth mode; a live model
                that is no workspace model version in the target's datastore.
        """
        try:
            doc = self._read()
        except NotFoundError as err:
            raise ConfigurationError(
                f"online endpoint {self.label} does not exist: {err.service_message}"
            ) from err
        ep = doc.endpoint
        if ep.provisioning_state != "Succeeded":
            raise ConfigurationError(
                f"online endpoint {self.label} is {ep.provisioning_state}, not Succeeded"
            )
        if (ep.auth_mode or "").lower() != "key":
            raise ConfigurationError(
                f"online endpoint {self.label} has authMode {ep.auth_mode}: only Key endpoints "
                "are supported (tokens, AMLToken and AADToken, are not yet)"
            )
        if doc.live is None:
            shares = {k: v for k, v in ep.traffic.items() if v} or "none"
            raise ConfigurationError(
                f"online endpoint {self.label} has traffic {shares}: amlretrain swaps an "
                "endpoint whose whole live traffic goes to one deployment (100%), not a "
                "split one; finish or undo the split first"
            )
        standby = self._standby(doc.live)
        mirrored = {k: v for k, v in ep.mirror_traffic.items() if v}
        if any(k.lower() == standby.lower() for k in mirrored):
            raise ConfigurationError(
                f"online endpoint {self.label} mirrors traffic to {standby}, the deployment a "
                "swap would give the live traffic: end the mirror first (T4)"
            )
        live = doc.deployments[doc.live]
        ref = live.model_ref()
        if ref is None or ref.registry is not None:
            raise ConfigurationError(
                f"deployment {doc.live} of {self.label} serves {live.model!r}: not a model "
                "version of the workspace (amlretrain swaps workspace models registered "
                f"from datastore {self.datastore})"
            )
        version = doc.versions.get(doc.live)
        if version is None:
            raise ConfigurationError(
                f"deployment {doc.live} of {self.label} serves {ref.short}, which does not exist"
            )
        self._blob_of(version)  # raises: not a blob of the datastore
        return attrs.evolve(self._state(doc), checked=True)

    def read(self, known: TargetState | None = None) -> TargetState:
        """Read the endpoint, its deployments and the model versions of the live and the
        standby one; ``known``'s ``checked`` is kept. The state's ``model`` is None when
        no deployment has 100% of the traffic or its model is no blob of the datastore."""
        self._doc_in(known)  # refuses another target's state
        state = self._state(self._read())
        return attrs.evolve(state, checked=known is not None and known.checked)

    def current_model(self) -> str | None:
        """The model URL (no SAS) the endpoint's live deployment serves (one read)."""
        return self.read().model

    def _read(self) -> OnlineEndpointRead:
        ep = self.endpoints.get_endpoint(self.endpoint)
        deployments = {
            str(d.name): d for d in self.endpoints.list_deployments(self.endpoint) if d.name
        }
        at_100 = [k for k, v in ep.traffic.items() if v == 100]
        live = None
        if len(at_100) == 1 and sum(v for v in ep.traffic.values() if v) == 100:
            live = next((k for k in deployments if k.lower() == at_100[0].lower()), None)
        versions: dict[str, ModelVersion | None] = {}
        for name in [live, self._standby(live)] if live is not None else []:
            dep = next((d for k, d in deployments.items() if k.lower() == name.lower()), None)
            if dep is not None:
                versions[name] = self._version_of(dep)
        return OnlineEndpointRead(
            endpoint=ep, deployments=deployments, live=live, versions=versions
        )

    def _version_of(self, dep: OnlineDeployment) -> ModelVersion | None:
        ref = dep.model_ref()
        if ref is None or ref.registry is not None:
            return None
        try:
            return self.models.get_version(ref.name, ref.version)
        except NotFoundError:
            return None

    def _state(self, doc: OnlineEndpointRead) -> TargetState:
        model = None
        if doc.live is not None:
            try:
                blob = self._blob_of(doc.versions.get(doc.live))
            except ConfigurationError:
                blob = None
            model = blob.url if blob is not None else None
        return TargetState(target=self.key, model=model, resource=doc.live, document=doc)

    def _doc_in(self, state: TargetState | None) -> OnlineEndpointRead | None:
        if state is None:
            return None
        if state.target != self.key or not isinstance(state.document, OnlineEndpointRead):
            raise ValueError(f"{state!r} is not a state of online endpoint {self.label}")
        return state.document

    def _required(self, state: TargetState) -> tuple[OnlineEndpointRead, str]:
        doc = self._doc_in(state)
        assert doc is not None  # a state was given
        if doc.live is None:
            raise ConflictError(
                f"online endpoint {self.label} has no deployment with 100% of the traffic "
                f"(traffic {doc.endpoint.traffic}); nothing was sent",
                code="TrafficSplit",
            )
        return doc, doc.live

    def _standby(self, live: str | None) -> str:
        first, second = self.deployment_names
        return second if live is not None and live.lower() == first.lower() else first

    # -- the swap --------------------------------------------------------------------------------

    def _serves(self, doc: OnlineEndpointRead, name: str, model: BlobRef) -> bool:
        """True when deployment ``name`` exists, Succeeded, and serves ``model``'s blob."""
        dep = doc.deployment(name)
        if dep is None or dep.provisioning_state not in (None, "Succeeded"):
            return False
        try:
            blob = self._blob_of(doc.versions.get(name))
        except ConfigurationError:
            return False
        return blob is not None and same_blob(blob, model)

    def _model_name(self, live: OnlineDeployment) -> str:
        if self.model_name:
            return self.model_name
        ref = live.model_ref()
        if ref is None:
            raise ConfigurationError(
                f"deployment {live.name} of {self.label} serves {live.model!r}: give the "
                "target's model_name"
            )
        return ref.name

    def _traffic(self, doc: OnlineEndpointRead, standby: str) -> TrafficMap:
        live = {k: 0 for k, v in doc.endpoint.traffic.items() if k.lower() != standby.lower()}
        live[standby] = 100
        mirror = {
            k: v for k, v in doc.endpoint.mirror_traffic.items() if k.lower() != standby.lower()
        }
        return TrafficMap(live, mirror)

    def plan(self, model: BlobRef, state: TargetState) -> dict[str, Any]:
        """The requests a swap from ``state`` to ``model`` sends (no request).

        The top level is the endpoint PUT that moves the traffic (``method``, ``url``,
        ``body``); ``steps`` lists every changing request in order (the version PUT and
        the deployment PUT, absent when the standby serves ``model`` already; the smoke
        test; the traffic PUT). No key or SAS is in it.

        Raises:
            ConfigurationError: a model in another container or an ``.ilearner``.
        """
        uri = self.model_uri(model)
        doc, live_name = self._required(state)
        standby = self._standby(live_name)
        base = self.endpoints.base_url
        api = f"?api-version={self.endpoints.api_version}"
        steps: list[dict[str, Any]] = []
        version: str | None = None
        if not self._serves(doc, standby, model):
            live = doc.deployments[live_name]
            name, version = self._model_name(live), version_name(model)
            ref = ModelRef(name, version)
            props = ModelVersionProperties(
                model_uri=uri, model_type="custom_model", properties=self._properties(model)
            )
            steps.append(
                {
                    "method": "PUT",
                    "url": base + self.models.version_id(name, version) + api,
                    "body": ModelVersion(properties=props).for_put(),
                    "note": "skipped when the version exists, identical",
                }
            )
            steps.append(
                {
                    "method": "PUT",
                    "url": base + self.endpoints.deployment_id(self.endpoint, standby) + api,
                    "body": live.copy_as(standby, model=ref).for_put(),
                }
            )
        if self.default_sample is not None:
            steps.append(
                {
                    "method": "POST",
                    "url": doc.endpoint.scoring_uri,
                    "headers": {"azureml-model-deployment": standby},
                    "rows": len(self.default_sample.rows),
                    "note": "smoke test: a failure changes no traffic",
                }
            )
        names = list(doc.deployments)
        if doc.deployment(standby) is None:
            names.append(standby)
        traffic = {
            "method": "PUT",
            "url": base + self.endpoint_id + api,
            "body": endpoint_put_body(doc.endpoint, self._traffic(doc, standby), names),
        }
        steps.append(traffic)
        return {
            **traffic,
            "deployment": standby,
            "previous": live_name,
            "modelUri": uri,
            "version": version,
            "steps": steps,
        }

    @staticmethod
    def _properties(model: BlobRef) -> dict[str, str]:
        return {"amlretrain.model": model.url}

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
        """Swap from ``state`` to ``model`` blue/green and verify with fresh reads (see
        :meth:`Target.deploy <amlretrain.targets.Target.deploy>` and the module docstring).

        ``on_request`` gets the request ids of the deployment PUT and of the traffic PUT
        (the model version PUT is synchronous and its id is not surfaced by
        :class:`~amlretrain.azureml.registry.ModelsClient`).

        ``detach``: a deployment PUT or traffic PUT still running
        :data:`~amlretrain.targets.DETACH_AFTER` seconds after it was accepted raises
        :class:`~amlretrain.errors.OperationDetached` with a token; :meth:`resume` goes
        on from it.

        Raises:
            ConfigurationError: a model in another container or an ``.ilearner`` (nothing
                sent).
            ConflictError: the endpoint no longer serves what ``state`` says (nothing sent).
            ServiceError: the standby could not be made ready (its PUT failed or did not
                finish, or its smoke test failed): no traffic was changed.
            OperationTimeout, VerificationFailed: the traffic PUT was sent but did not
                show in time: what the endpoint serves is unknown.
        """
        uri = self.model_uri(model)  # ConfigurationError: nothing sent
        if state is None:
            state = self.read()  # that read is the pin
        elif not pinned:
            fresh = self.read(state)
            if same_blob(fresh.model, model.url):
                return fresh  # "already ours": an earlier attempt may have landed late
            if not same_blob(fresh.model, state.model):
                raise ConflictError(
                    f"online endpoint {self.label} changed since it was read: it serves "
                    f"{fresh.model} ({fresh.resource}), not {strip_sas(state.model)}; read it "
                    "again and redo the change",
                    code="ModelChanged",
                )
            state = fresh
        doc, live_name = self._required(state)
        if same_blob(state.model, model.url):
            return state
        standby = self._standby(live_name)
        swap = _Swap(model, live_name, standby, stop, on_request, detach)
        self._ready_standby(swap, uri, doc)
        return self._move_traffic(swap, doc, state)

    def _move_traffic(
        self, swap: _Swap, doc: OnlineEndpointRead, state: TargetState
    ) -> TargetState:
        """After the standby is ready: smoke it, move the traffic to it, verify."""
        self._smoke(doc, swap.live, swap.standby)
        if self.traffic_steps:
            self._steps(doc, swap.live, swap.standby, swap.stop, swap.on_request)
        poller = self.endpoints.begin_set_traffic(self.endpoint, self._traffic(doc, swap.standby))
        if poller.request_id and swap.on_request is not None:
            swap.on_request(poller.request_id)
        self._wait(poller, swap, "traffic", f"the traffic PUT of {self.label}")
        poller.result()
        return self._settle(swap.model, swap.standby, state, swap.stop)

    # -- a swap that did not wait for its operation (detach) ------------------------------------

    def _wait(self, poller: AzureMLPoller[Any], swap: _Swap, step: str, what: str) -> None:
        """Wait for ``poller``; with ``swap.detach``, raise OperationDetached instead when
        it still runs :data:`~amlretrain.targets.DETACH_AFTER` seconds on."""
        if swap.detach:
            data = {"step": step, "live": swap.live, "standby": swap.standby}
            detach_if_running(poller, what, SWAP_TOKEN_KIND, {**data, "model": swap.model.url})
        self._await(poller, what, swap.stop)

    def operation(self, token: str) -> AzureMLPoller[Any]:
        """The poller of a swap's detached operation (``token`` of
        :class:`~amlretrain.errors.OperationDetached`): ``done()``, ``status()``; it
        only reads (nothing is sent again).

        Raises:
            ValueError: not a token of this kind of swap.
        """
        data = decode_token(token, SWAP_TOKEN_KIND)
        lro = str(data["lro"])
        if data["step"] == "standby":
            return self.endpoints.begin_create_or_update_deployment(
                self.endpoint, str(data["standby"]), None, continuation_token=lro
            )
        return self.endpoints.begin_set_traffic(self.endpoint, None, continuation_token=lro)

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
        """Go on with a swap from its detached operation's ``token``: wait for it (nothing
        is sent again), then the rest of the swap as :meth:`deploy` does it, verified.

        Args:
            state: the endpoint read just now, under the lease the swap handed off.

        Raises:
            ConfigurationError: a token of another model or kind.
            ConflictError: the live deployment is no longer the one the swap started from.
            ServiceError: the standby's PUT failed (no traffic changed); and the errors of
                :meth:`deploy` for the rest of the swap.
        """
        data = swap_token_data(token, SWAP_TOKEN_KIND, model, self.label)
        swap = _Swap(model, str(data["live"]), str(data["standby"]), stop, on_request, detach)
        poller = self.operation(token)
        if data["step"] == "traffic":
            self._await(poller, f"the traffic PUT of {self.label}", stop)
            poller.result()
            return self._settle(model, swap.standby, state, stop)
        doc, live_name = self._required(state)
        if live_name.lower() != swap.live.lower():
            raise ConflictError(
                f"online endpoint {self.label}: {live_name} is live, not {swap.live} as when "
                "the swap started",
                code="ModelChanged",
            )
        swap.model_name = self._model_name(doc.deployments[live_name])
        self._finish_standby(poller, swap, f"deployment {swap.standby} of {self.label}")
        return self._move_traffic(swap, self._read(), state)

    def _ready_standby(self, swap: _Swap, uri: str, doc: OnlineEndpointRead) -> None:
        """Register the version and PUT the standby deployment (unless it serves ``model``)."""
        model, standby = swap.model, swap.standby
        if self._serves(doc, standby, model):
            log.info("%s: %s serves %s already: only traffic moves", self.label, standby, model.url)
            return
        live = doc.deployments[swap.live]
        name, version = self._model_name(live), version_name(model)
        swap.model_name = name
        self.models.register_version(
            name, version, uri, model_type="custom_model", properties=self._properties(model)
        )
        body = live.copy_as(standby, model=ModelRef(name, version))
        what = f"deployment {standby} of {self.label}"
        try:
            poller = self.endpoints.begin_create_or_update_deployment(self.endpoint, standby, body)
        except ServiceError as err:
            raise self._standby_failed(err, swap, what) from err
        if poller.request_id and swap.on_request is not None:
            swap.on_request(poller.request_id)
        self._finish_standby(poller, swap, what)

    def _finish_standby(self, poller: AzureMLPoller[Any], swap: _Swap, what: str) -> None:
        """Wait for the standby's PUT (or detach): its failure said as no traffic changed."""
        live_name = swap.live
        try:
            self._wait(poller, swap, "standby", f"the PUT of {what}")
            poller.result()
        except OperationStillRunning as err:
            raise ServiceError(
                f"{err}; no traffic was changed: {live_name} still has 100%",
                code="StandbyNotReady",
            ) from err
        except ServiceError as err:
            raise self._standby_failed(err, swap, what) from err
        except VerificationFailed as err:
            raise ServiceError(
                f"{err}; no traffic was changed: {live_name} still has 100%",
                code="StandbyNotReady",
            ) from err

    def _standby_failed(self, err: ServiceError, swap: _Swap, what: str) -> ServiceError:
        """The standby's PUT failed (answered): said so; no answer: as it was."""
        if not err.answered:
            return err  # no answer: the loop may send it again
        return ServiceError(
            f"{what} ({swap.model_name}:{version_name(swap.model)}) failed: "
            f"{err.service_message}; no traffic was changed: {swap.live} still has 100%",
            status=err.status,
            code=err.code,
            details=err.details,
            request_id=err.request_id,
        )

    # -- staged traffic, the standby as a candidate, mirror traffic, retiring --------------------

    def staged(
        self, steps: Sequence[int], on_step: Callable[[int, str], None] | None = None
    ) -> OnlineEndpointTarget:
        """A copy of this target whose swaps move the live traffic in ``steps``.

        Each step gives the new deployment that percentage of the live traffic (the rest
        stays on the previous one) in one endpoint PUT of the whole map (no mirror),
        verified by a fresh read and by scoring the target's sample through the
        endpoint; then ``on_step(percent, deployment)`` is called (a guarded rollout bakes
        there). When a step fails or ``on_step`` raises, the live traffic goes back to the
        previous deployment (verified) and the error is raised; after the last step the
        swap gives the new deployment 100% as without steps.

        Raises:
            ConfigurationError: a step not in 1-99, or steps not increasing.
        """
        try:
            given = tuple(int(s) for s in steps)
        except (TypeError, ValueError) as err:
            raise ConfigurationError(f"traffic steps {steps!r}: give percentages") from err
        if any(not 0 < s < 100 for s in given) or list(given) != sorted(set(given)):
            raise ConfigurationError(
                f"traffic steps {list(given)}: give increasing percentages between 1 and 99"
            )
        other = copy.copy(self)
        other.traffic_steps = given
        other.on_traffic_step = on_step
        return other

    def _steps(
        self,
        doc: OnlineEndpointRead,
        live_name: str,
        standby: str,
        stop: StopSignal | None,
        on_request: Callable[[str], None] | None,
    ) -> None:
        """The traffic steps before 100% (:meth:`staged`); on any failure, traffic back."""
        for percent in self.traffic_steps:
            try:
                self._move(
                    {standby: percent, live_name: 100 - percent},
                    {},
                    f"the traffic step {percent}% of {self.label}",
                    stop,
                    on_request,
                )
                if self.default_sample is not None:
                    self.score(self.default_sample)  # through the endpoint: both serve
                if self.on_traffic_step is not None:
                    self.on_traffic_step(percent, standby)
            except BaseException as err:
                log.warning(
                    "%s: stopped at %d%% on %s (%s): live traffic back to %s",
                    self.label,
                    percent,
                    standby,
                    redact(str(err)),
                    live_name,
                )
                self._move({live_name: 100}, {}, f"the traffic back to {live_name}", None, None)
                raise

    def _move(
        self,
        live: Mapping[str, int],
        mirror: Mapping[str, int],
        what: str,
        stop: StopSignal | None,
        on_request: Callable[[str], None] | None,
    ) -> OnlineEndpoint:
        """One whole traffic PUT, awaited; its result is a fresh GET of the endpoint
        showing that map (the poller re-reads until it does: F2).

        Raises:
            VerificationFailed: the fresh reads do not show that map.
        """
        poller = self.endpoints.begin_set_traffic(self.endpoint, TrafficMap(live, mirror))
        if poller.request_id and on_request is not None:
            on_request(poller.request_id)
        self._await(poller, what, stop)
        return poller.result()

    def prepare_standby(
        self, model: BlobRef, *, stop: StopSignal | None = None
    ) -> tuple[str, TargetState]:
        """Make the standby deployment serve ``model`` at 0% of the live traffic (a guarded
        rollout's candidate): the version registered, the deployment PUT as a copy of the
        live one (skipped when it serves ``model`` already), verified by a fresh read.

        Returns:
            The standby's name and the endpoint's state read afterwards.

        Raises:
            ConfigurationError: a model in another container or an ``.ilearner``, or an
                endpoint amlretrain cannot swap (nothing sent).
            ServiceError: the standby could not be made ready (no traffic changed).
            VerificationFailed: a fresh read does not show it serving ``model``.
        """
        uri = self.model_uri(model)
        state = self.check()
        doc, live_name = self._required(state)
        standby = self._standby(live_name)
        self._ready_standby(_Swap(model, live_name, standby, stop, None, False), uri, doc)
        fresh = self.read(state)
        after = self._doc_in(fresh)
        assert after is not None
        if not self._serves(after, standby, model) or not same_blob(fresh.model, state.model):
            raise VerificationFailed(
                f"online endpoint {self.label}: deployment {standby} was made for "
                f"{model.url}, but a fresh read shows it serving something else (or the live "
                "traffic moved)",
                expected=f"{standby}: {model.url}, live {live_name}",
                actual=f"live {fresh.resource}: {fresh.model}",
            )
        return standby, fresh

    def standby_view(self, deployment: str) -> DeploymentView:
        """``deployment`` of this endpoint as a target to score through (the header)."""
        return DeploymentView(self, deployment)

    def set_mirror(
        self, deployment: str | None, percent: int = 0, *, stop: StopSignal | None = None
    ) -> None:
        """Mirror ``percent`` of the live calls to ``deployment`` (at most 50%, one
        deployment, not one with live traffic: T2, T4), or end mirroring (None or 0): one
        whole traffic PUT, the live traffic as read, verified by a fresh GET.

        Raises:
            ConfigurationError: a rule broken (nothing sent).
        """
        ep = self.endpoints.get_endpoint(self.endpoint)
        mirror = {deployment: int(percent)} if deployment and percent else {}
        what = f"the mirror traffic of {self.label} ({mirror or 'off'})"
        self._move(positive(ep.traffic), mirror, what, stop, None)

    def model_of(self, state: TargetState, deployment: str) -> str | None:
        """The blob URL (no SAS) deployment ``deployment`` serves, as ``state`` read it
        (the live or the standby one; None: another, or no blob of the datastore)."""
        doc = self._doc_in(state)
        assert doc is not None
        version = next(
            (v for k, v in doc.versions.items() if k.lower() == deployment.lower()), None
        )
        try:
            blob = self._blob_of(version)
        except ConfigurationError:
            return None
        return blob.url if blob is not None else None

    def previous_deployment(self, state: TargetState | None = None) -> OnlineDeployment | None:
        """The other of the two deployments (the one without the live traffic), if it
        exists: what :meth:`retire` deletes (read when ``state`` is None)."""
        doc = self._doc_in(state) if state is not None else None
        doc = self._read() if doc is None else doc
        if doc.live is None:
            return None
        return doc.deployment(self._standby(doc.live))

    def retire(self, state: TargetState | None = None) -> OnlineDeployment | None:
        """Delete the other of the two deployments (the one the last swap took the live
        traffic from), when ``delete_previous`` and it has no traffic; verified gone.

        Returns:
            The deployment deleted, as it was read before (its settings, for the record),
            or None when there was nothing to delete.

        Raises:
            ConflictError: it has live or mirror traffic (nothing sent).
            ServiceError, OperationStillRunning: the delete failed or did not finish.
        """
        if not self.delete_previous:
            return None
        other = self.previous_deployment(state)
        if other is None or not other.name:
            return None
        self.delete_deployment(other.name)
        return other

    def standby_name(self, state: TargetState) -> str:
        """The deployment a swap from ``state`` would give the traffic (the other of
        ``deployment_names`` than the live one)."""
        return self._standby(state.resource)

    def delete_deployment(self, name: str) -> bool:
        """Delete deployment ``name`` unless it has live traffic (its mirror, if any, is
        ended first: T7), verified gone by a fresh read.

        Returns:
            False when it was gone already, True when it was deleted.

        Raises:
            ConflictError: it has live traffic (nothing sent).
            ServiceError, OperationStillRunning, VerificationFailed: the delete failed,
                did not finish, or a fresh read still lists it.
        """
        ep = self.endpoints.get_endpoint(self.endpoint)
        if positive(ep.traffic).get(name.lower()):
            raise ConflictError(
                f"deployment {name} of {self.label} has live traffic: not deleting it",
                code="DeploymentHasTraffic",
            )
        if positive(ep.mirror_traffic).get(name.lower()):
            self.set_mirror(None)
        try:
            self.endpoints.get_deployment(self.endpoint, name)
        except NotFoundError:
            return False
        poller = self.endpoints.begin_delete_deployment(self.endpoint, name)
        self._await(poller, f"the DELETE of deployment {name} of {self.label}", None)
        poller.result()
        if self._read().deployment(name) is not None:
            raise VerificationFailed(
                f"deployment {name} of {self.label} was deleted, but a fresh read still lists it",
                expected="no deployment " + name,
                actual="deployment " + name,
            )
        return True

    def _smoke(self, doc: OnlineEndpointRead, live_name: str, standby: str) -> None:
        """Score the target's sample on the standby (header); raise when it fails."""
        sample = self.default_sample
        if sample is None:
            return
        try:
            with self._scoring(doc, standby, None) as scoring:
                result = scoring.score(sample.columns, sample.rows, input_name=sample.input_name)
            if len(result.rows) != len(sample.rows):
                raise ServiceError(
                    f"it answered {len(result.rows)} rows for {len(sample.rows)}",
                    code="SmokeTestFailed",
                )
        except (AmlRetrainError, ConfigurationError) as err:
            raise ServiceError(
                f"the smoke test of deployment {standby} of {self.label} failed: {err}; no "
                f"traffic was changed: {live_name} still has 100%",
                code="SmokeTestFailed",
            ) from err

    def _await(self, poller: AzureMLPoller[Any], what: str, stop: StopSignal | None) -> None:
        started = time.monotonic()
        deadline = started + self.verify_timeout
        while not poller.done():
            limit = _bounded(deadline, stop)
            now = time.monotonic()
            if now >= limit:
                why = "the run is stopping and " if limit < deadline else ""
                raise OperationStillRunning(
                    f"{what}: {why}the operation is still running after {now - started:.0f} s "
                    f"(request id {poller.request_id}); what it serves is unknown until it is "
                    "reconciled",
                    waited=now - started,
                )
            poller.wait_done(min(0.5, limit - now))

    def _settle(
        self, model: BlobRef, standby: str, known: TargetState, stop: StopSignal | None
    ) -> TargetState:
        """Read until the traffic gives ``standby`` 100% serving ``model``, or time is up."""
        deadline = _bounded(time.monotonic() + self.verify_timeout, stop)
        while True:
            fresh = self.read(known)
            live = fresh.resource
            if (
                live is not None
                and live.lower() == standby.lower()
                and same_blob(fresh.model, model.url)
            ):
                return fresh
            remaining = _bounded(deadline, stop) - time.monotonic()
            if remaining <= 0:
                raise VerificationFailed(
                    f"online endpoint {self.label}: the traffic PUT succeeded but a fresh read "
                    f"shows {live or 'no deployment'} at 100% serving {fresh.model}, after "
                    f"{self.verify_timeout:g} s",
                    expected=f"{standby}: {model.url}",
                    actual=f"{live}: {fresh.model}",
                )
            time.sleep(min(self.verify_interval, remaining))

    # -- scoring ---------------------------------------------------------------------------------

    def sample(self, state: TargetState | None = None) -> Sample | None:
        """The sample given to the target (a v2 endpoint documents no example rows)."""
        return self.default_sample

    def _scoring(
        self, doc: OnlineEndpointRead | None, deployment: str | None, retries: int | None
    ) -> OnlineEndpointScoring:
        ep = doc.endpoint if doc is not None else self.endpoints.get_endpoint(self.endpoint)
        if not ep.scoring_uri:
            raise ConfigurationError(f"online endpoint {self.label} has no scoringUri")
        keys = self.endpoints.list_keys(self.endpoint)
        key = keys.primary_key or keys.secondary_key
        if not key:
            raise ConfigurationError(f"online endpoint {self.label} has no key (listKeys)")
        return OnlineEndpointScoring(
            ep.scoring_uri,
            key,
            deployment=deployment,
            transient_retries=3 if retries is None else retries,
        )

    def scoring(
        self, state: TargetState | None = None, *, retries: int | None = None
    ) -> ScoringClient:
        """A scoring client of the endpoint's live traffic (no deployment header), its
        address from ``state`` (read when None) and its key from ``listKeys``;
        ``retries``: its transient retries (default 3). Close it (a with-block)."""
        return self._scoring(self._doc_in(state), None, retries)

    def score(self, sample: Sample, state: TargetState | None = None) -> ScoreResult:
        """Score ``sample`` through the endpoint's live traffic (no deployment header)."""
        with self.scoring(state) as scoring:
            return scoring.score(sample.columns, sample.rows, input_name=sample.input_name)


class DeploymentView:
    """One deployment of an online endpoint, scored through the ``azureml-model-deployment``
    header (T5: whatever its traffic): a guarded rollout's candidate on v2 (the standby,
    at 0%). It reads and scores; it changes nothing (``deploy`` refuses).

    Its state's ``model`` is the blob the deployment serves, ``resource`` its name.
    """

    def __init__(self, target: OnlineEndpointTarget, deployment: str) -> None:
        self.target = target
        self.deployment = deployment

    def __repr__(self) -> str:
        return f"DeploymentView({self.target.label!r}, {self.deployment!r})"

    @property
    def key(self) -> str:
        return f"{self.target.key}/deployments/{self.deployment.lower()}"

    @property
    def label(self) -> str:
        return f"{self.target.label} ({self.deployment})"

    @property
    def verify_timeout(self) -> float:
        return self.target.verify_timeout

    def read(self, known: TargetState | None = None) -> TargetState:
        """The endpoint read; ``model``: the blob this deployment serves (None: none)."""
        doc = self.target._read()
        blob = None
        dep = doc.deployment(self.deployment)
        if dep is not None:
            try:
                blob = self.target._blob_of(self.target._version_of(dep))
            except ConfigurationError:
                blob = None
        return TargetState(
            target=self.key,
            model=blob.url if blob is not None else None,
            resource=self.deployment,
            document=doc,
            checked=known is not None and known.checked,
        )

    def check(self) -> TargetState:
        """:meth:`read`, refusing a deployment that does not exist."""
        state = self.read()
        if state.model is None:
            raise ConfigurationError(
                f"online endpoint {self.target.label} has no deployment {self.deployment} "
                "serving a model of its datastore"
            )
        return attrs.evolve(state, checked=True)

    def current_model(self) -> str | None:
        return self.read().model

    def plan(self, model: BlobRef, state: TargetState) -> dict[str, Any]:
        raise ConfigurationError(f"{self.label} is scored through, not swapped")

    def deploy(
        self,
        model: BlobRef,
        state: TargetState | None = None,
        *,
        stop: StopSignal | None = None,
        pinned: bool = False,
        on_request: Callable[[str], None] | None = None,
    ) -> TargetState:
        raise ConfigurationError(f"{self.label} is scored through, not swapped")

    def sample(self, state: TargetState | None = None) -> Sample | None:
        return self.target.default_sample

    def _doc(self, state: TargetState | None) -> OnlineEndpointRead | None:
        if state is not None and isinstance(state.document, OnlineEndpointRead):
            return state.document
        return None

    def scoring(
        self, state: TargetState | None = None, *, retries: int | None = None
    ) -> ScoringClient:
        """A scoring client sending every call to this deployment (the header)."""
        return self.target._scoring(self._doc(state), self.deployment, retries)

    def score(self, sample: Sample, state: TargetState | None = None) -> ScoreResult:
        with self.scoring(state) as scoring:
            return scoring.score(sample.columns, sample.rows, input_name=sample.input_name)
