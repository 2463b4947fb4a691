"""The emulator's thread-safe in-memory state: web services, endpoints, operations, jobs.

Every service module reads and writes through one :class:`State` under its re-entrant
lock. Long-running ARM operations finish lazily: whoever touches the state after an
operation's due time completes it (so no timer threads exist); a hung one (the
``lro_hang`` fault) never does, until a later write on its resource cancels it.

Stale reads (the ``stale`` fault) are a separate record of what a resource looked like
before a write, kept until a monotonic deadline: the HTTP read handlers answer it
meanwhile, while the state itself always holds the truth.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import attrs

__all__ = [
    "ArmService",
    "ClassicEndpoint",
    "ClassicService",
    "Job",
    "Operation",
    "Runtime",
    "StaleView",
    "State",
    "Workspace",
    "ci_get",
    "display_region",
    "new_id",
    "new_key",
    "normalize_region",
    "now_iso",
    "trained_model_asset",
]


def now_iso() -> str:
    """The current UTC time as ``2017-04-26T17:08:46.4482096Z``-style text."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id() -> str:
    """A 32-hex-digit id (web-service, endpoint and job ids look like this)."""
    return uuid.uuid4().hex


def new_key() -> str:
    """A random API key / token."""
    return secrets.token_urlsafe(48)


def normalize_region(region: str) -> str:
    """``"South Central US"`` -> ``"southcentralus"``."""
    return "".join(region.split()).lower()


#: Display names of Azure regions, by normalized name. The ARM provider answers a
#: resource's ``location`` in this form whatever the request spelled (API-NOTES 1.3a).
_REGION_NAMES = {
    normalize_region(name): name
    for name in (
        "South Central US",
        "West Europe",
        "Southeast Asia",
        "Japan East",
        "East US 2",
        "West Central US",
        "East US",
        "West US",
        "West US 2",
        "West US 3",
        "Central US",
        "North Central US",
        "Canada Central",
        "Canada East",
        "Brazil South",
        "North Europe",
        "UK South",
        "UK West",
        "France Central",
        "Germany West Central",
        "Switzerland North",
        "Norway East",
        "Sweden Central",
        "East Asia",
        "Japan West",
        "Korea Central",
        "Korea South",
        "Australia East",
        "Australia Southeast",
        "Central India",
        "South India",
        "West India",
        "UAE North",
        "South Africa North",
    )
}


def display_region(region: str) -> str:
    """``"southcentralus"`` (or any spelling of it) -> ``"South Central US"``.

    A region this table does not know is answered as it was sent.
    """
    return _REGION_NAMES.get(normalize_region(region), region)


def ci_get(data: Mapping[str, Any], key: str) -> Any:
    """``data[key]`` matching the key case-insensitively (None when absent)."""
    if key in data:
        return data[key]
    lowered = key.lower()
    for k, v in data.items():
        if isinstance(k, str) and k.lower() == lowered:
            return v
    return None


def trained_model_asset(properties: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The ``(asset id, asset)`` holding the trained model of an ARM definition, or None.

    It is the asset whose name ends in ``[trained model]``, else the first whose
    ``locationInfo.uri`` path ends in ``.ilearner``.
    """
    assets = ci_get(properties, "assets")
    if not isinstance(assets, Mapping):
        return None
    fallback: tuple[str, dict[str, Any]] | None = None
    for asset_id, asset in assets.items():
        if not isinstance(asset, dict):
            continue
        name = str(ci_get(asset, "name") or "")
        if name.strip().lower().endswith("[trained model]"):
            return str(asset_id), asset
        loc = ci_get(asset, "locationInfo")
        uri = str(ci_get(loc, "uri") or "") if isinstance(loc, Mapping) else ""
        if fallback is None and uri.split("?", 1)[0].lower().endswith(".ilearner"):
            fallback = (str(asset_id), asset)
    return fallback


@attrs.define(kw_only=True)
class Operation:
    """A long-running ARM operation and its status document."""

    id: str
    subscription_id: str
    region: str
    api_version: str
    started: float
    due: float
    start_time: str
    status: str = "Provisioning"
    end_time: str | None = None
    error: dict[str, str] | None = None
    fail_message: str | None = None
    #: How a failing operation ends (``fail_message`` set): its status and error code.
    fail_status: str = "Failed"
    fail_code: str = "InternalServerError"
    on_success: Callable[[], None] | None = None
    on_failure: Callable[[], None] | None = None
    resource_key: tuple[str, str, str] | None = None
    hang: bool = False

    @property
    def done(self) -> bool:
        """True once Succeeded, Failed or Canceled."""
        return self.status != "Provisioning"

    def document(self) -> dict[str, Any]:
        """The operationsStatus body (API-NOTES 1.3)."""
        doc: dict[str, Any] = {
            "id": (
                f"/subscriptions/{self.subscription_id}/providers/Microsoft.MachineLearning/"
                f"locations/{self.region}/operationsStatus/{self.id}"
            ),
            "name": self.id,
            "status": self.status,
            "startTime": self.start_time,
        }
        if self.end_time:
            doc["endTime"] = self.end_time
        if self.done:
            doc["percentComplete"] = 1.0
        else:
            span = max(self.due - self.started, 1e-6)
            doc["percentComplete"] = round(min(0.99, (time.monotonic() - self.started) / span), 2)
        if self.error:
            doc["error"] = dict(self.error)
            doc["errorInfo"] = dict(self.error)
        return doc


@attrs.frozen(kw_only=True)
class StaleView:
    """What reads of one resource answer until ``until`` (a ``time.monotonic()`` value).

    ``before`` is the resource as it was right before the write (an ARM resource dict, a
    :class:`ClassicEndpoint` copy), or None when the write created it.
    """

    until: float
    before: Any


@attrs.define(kw_only=True)
class ArmService:
    """A New (ARM) web service: its stored resource (keys included) and bookkeeping."""

    subscription_id: str
    resource_group: str
    name: str
    service_id: str
    resource: dict[str, Any]
    region: str
    regions: set[str] = attrs.field(factory=set)
    pending: str | None = None
    created: int = 0

    @property
    def key(self) -> tuple[str, str, str]:
        """The lookup key (subscription, resource group, name; case-insensitive)."""
        return (self.subscription_id.lower(), self.resource_group.lower(), self.name.lower())

    @property
    def properties(self) -> dict[str, Any]:
        """``resource["properties"]`` (always a dict)."""
        props = self.resource.setdefault("properties", {})
        assert isinstance(props, dict)
        return props

    @property
    def keys(self) -> dict[str, str]:
        """The service's API keys (``primary``/``secondary``)."""
        keys = ci_get(self.properties, "keys")
        if not isinstance(keys, Mapping):
            return {}
        return {
            "primary": str(ci_get(keys, "primary") or ""),
            "secondary": str(ci_get(keys, "secondary") or ""),
        }


@attrs.define(kw_only=True)
class ClassicEndpoint:
    """A classic web-service endpoint (API-NOTES 3.2, every field)."""

    name: str
    endpoint_id: str
    description: str = ""
    creation_time: str = attrs.field(factory=now_iso)
    primary_key: str = attrs.field(factory=new_key)
    secondary_key: str = attrs.field(factory=new_key)
    version: int = 1
    prevent_update: bool = False
    sample_data_enabled: bool = False
    max_concurrent_calls: int = 4
    diagnostics_trace_level: str = "None"
    throttle_level: str = "Low"
    resources: list[dict[str, Any]] = attrs.field(factory=list)


@attrs.define(kw_only=True)
class ClassicService:
    """A classic web service; ``kind`` is ``training`` or ``predictive``."""

    id: str
    name: str
    workspace_id: str
    kind: str
    description: str = ""
    creation_time: str = attrs.field(factory=now_iso)
    default_endpoint: str = "default"
    version: int = 1
    label: str | None = None
    #: A training service's input columns (what its swagger documents), label included.
    columns: tuple[str, ...] = ()
    endpoints: dict[str, ClassicEndpoint] = attrs.field(factory=dict)

    @property
    def default(self) -> ClassicEndpoint:
        """The default endpoint (it holds the experiment's resources)."""
        return self.endpoints[self.default_endpoint]


@attrs.define(kw_only=True)
class Workspace:
    """A classic workspace: its authorization token and web services."""

    id: str
    token: str
    services: dict[str, ClassicService] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Runtime:
    """What the batch and request-response services need to know about one endpoint.

    Attributes:
        key: ``classic/{ws}/{endpointId}`` or ``arm/{subNoDashes}/{serviceId}``.
        kind: ``training`` or ``predictive``.
        api_keys: the keys accepted as ``Authorization: Bearer``.
        inputs: input port names.
        outputs: output name -> ``model`` or ``dataset``.
        model_url: for predictive services, the ``.ilearner`` URL (with its SAS) referenced
            at this moment; None when there is none.
        model_container_blob: the same blob in the emulator's account, for definitions that
            reference a blob without a SAS (read with the service's storage account key).
        label: label column for training (None = the learner's default).
        columns: a training service's input columns, label included (its swagger).
    """

    key: str
    kind: str
    api_keys: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: dict[str, str]
    model_url: str | None = None
    storage_key: str | None = None
    label: str | None = None
    columns: tuple[str, ...] = ()


@attrs.define(kw_only=True)
class Job:
    """One batch job."""

    id: str
    runtime_key: str
    request: dict[str, Any]
    status: str = "NotStarted"
    results: dict[str, tuple[str, str]] | None = None
    details: str | None = None
    created: str = attrs.field(factory=now_iso)
    cancel: threading.Event = attrs.field(factory=threading.Event)
    thread: threading.Thread | None = None


class State:
    """All emulator state, behind one re-entrant lock.

    Args:
        lro_delay: seconds a long-running ARM operation stays ``Provisioning``.
        page_size: items per page of the ARM list operations.
    """

    def __init__(self, *, lro_delay: float = 0.2, page_size: int = 10) -> None:
        self.lock = threading.RLock()
        self.lro_delay = lro_delay
        self.page_size = page_size
        self.arm: dict[tuple[str, str, str], ArmService] = {}
        self.operations: dict[str, Operation] = {}
        self.workspaces: dict[str, Workspace] = {}
        self.jobs: dict[str, Job] = {}
        self._arm_counter = 0
        self._stale: dict[tuple[str, ...], StaleView] = {}
        from amlretrain.emulator.v2state import V2State

        #: The Azure ML v2 resources (:mod:`amlretrain.emulator.v2state`).
        self.v2 = V2State()

    @contextmanager
    def locked(self) -> Iterator[State]:
        """Hold the lock, with every due long-running operation completed first."""
        with self.lock:
            self.advance()
            yield self

    # -- long-running operations -------------------------------------------------------

    def advance(self) -> None:
        """Complete every operation whose time has come."""
        now = time.monotonic()
        with self.lock:
            for op in self.operations.values():
                if not op.done and not op.hang and now >= op.due:
                    self._finish(op)

    def _finish(self, op: Operation) -> None:
        op.end_time = now_iso()
        if op.fail_message is not None:
            op.status = op.fail_status
            op.error = {"code": op.fail_code, "message": op.fail_message}
            if op.on_failure:
                op.on_failure()
        else:
            op.status = "Succeeded"
            if op.on_success:
                op.on_success()
        svc = self.arm.get(op.resource_key) if op.resource_key else None
        if svc is not None and svc.pending == op.id:
            svc.pending = None

    def finish_pending(self, svc: ArmService) -> None:
        """Settle the operation still running on ``svc`` now (a new write supersedes it).

        A running operation completes at once; a hung one (``lro_hang``) is canceled: it
        ends ``Canceled`` and its change is never applied (its ``on_failure`` runs).
        """
        with self.lock:
            if svc.pending and svc.pending in self.operations:
                op = self.operations[svc.pending]
                if not op.done and op.hang:
                    self._cancel(op)
                elif not op.done:
                    self._finish(op)
            svc.pending = None

    @staticmethod
    def _cancel(op: Operation) -> None:
        op.end_time = now_iso()
        op.status = "Canceled"
        op.error = {
            "code": "OperationCanceled",
            "message": "The operation was canceled: a later request on the resource superseded it.",
        }
        if op.on_failure:
            op.on_failure()

    def start_operation(
        self,
        *,
        subscription_id: str,
        region: str,
        api_version: str,
        on_success: Callable[[], None] | None = None,
        on_failure: Callable[[], None] | None = None,
        fail_message: str | None = None,
        resource_key: tuple[str, str, str] | None = None,
        hang: bool = False,
        fail_status: str = "Failed",
        fail_code: str = "InternalServerError",
        delay: float | None = None,
    ) -> Operation:
        """Register a new operation that completes after ``delay`` seconds.

        ``delay`` None means :attr:`lro_delay` (an ``lro_slow`` fault gives its own).
        With ``hang=True`` it never completes (until :meth:`finish_pending` cancels it).
        With ``fail_message`` it ends ``fail_status`` (``Failed`` or ``Canceled``) with
        the error ``fail_code`` and runs ``on_failure``.
        """
        seconds = self.lro_delay if delay is None else delay
        started = time.monotonic()
        op = Operation(
            id=str(uuid.uuid4()),
            subscription_id=subscription_id,
            region=normalize_region(region) or "southcentralus",
            api_version=api_version,
            started=started,
            due=started + seconds,
            start_time=now_iso(),
            fail_message=fail_message,
            fail_status=fail_status,
            fail_code=fail_code,
            on_success=on_success,
            on_failure=on_failure,
            resource_key=resource_key,
            hang=hang,
        )
        with self.lock:
            self.operations[op.id] = op
            if resource_key and resource_key in self.arm:
                self.arm[resource_key].pending = op.id
            if seconds <= 0 and not hang:
                self._finish(op)
        return op

    # -- stale reads -------------------------------------------------------------------

    def hold_stale(self, key: tuple[str, ...], before: Any, seconds: float) -> None:
        """Make reads of ``key`` answer ``before`` for ``seconds`` (a ``stale`` fault)."""
        now = time.monotonic()
        with self.lock:
            for old in [k for k, v in self._stale.items() if v.until <= now]:
                del self._stale[old]
            self._stale[key] = StaleView(until=now + seconds, before=before)

    def stale(self, key: tuple[str, ...]) -> StaleView | None:
        """The stale view reads of ``key`` answer now, or None (read the state)."""
        with self.lock:
            view = self._stale.get(key)
            if view is not None and view.until <= time.monotonic():
                del self._stale[key]
                view = None
            return view

    # -- ARM services ------------------------------------------------------------------

    def next_arm_order(self) -> int:
        """A creation counter (list order)."""
        with self.lock:
            self._arm_counter += 1
            return self._arm_counter

    def arm_by_runtime(self, subscription_nodash: str, service_id: str) -> ArmService | None:
        """The ARM service whose BES/RRS base is ``/subscriptions/{sub}/services/{id}``."""
        with self.locked():
            for svc in self.arm.values():
                if (
                    svc.service_id == service_id.lower()
                    and svc.subscription_id.replace("-", "").lower() == subscription_nodash.lower()
                ):
                    return svc
        return None

    # -- classic services --------------------------------------------------------------

    def classic_by_endpoint_id(
        self, workspace_id: str, endpoint_id: str
    ) -> tuple[ClassicService, ClassicEndpoint] | None:
        """The classic service and endpoint whose ApiLocation ends in ``{endpoint_id}``."""
        with self.lock:
            ws = self.workspaces.get(workspace_id.lower())
            if ws is None:
                return None
            for svc in ws.services.values():
                for ep in svc.endpoints.values():
                    if ep.endpoint_id == endpoint_id.lower():
                        return svc, ep
        return None
