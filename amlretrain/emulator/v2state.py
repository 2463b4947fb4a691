"""The emulated Azure ML v2 resources (V2-NOTES 2-5): workspaces, online endpoints and
deployments, model containers and versions, command jobs; traffic rules and URIs.

Everything lives in one :class:`V2State` (``emulator.state.v2``) guarded by the shared
:class:`~amlretrain.emulator.state.State` lock. Resource names are matched
case-insensitively (ARM), and stored as the client spelled them.

Datastores map to Azurite containers: ``azureml://datastores/<ds>/paths/<p>`` (or the long
``azureml://subscriptions/…/workspaces/…/datastores/<ds>/paths/<p>`` form, the
``resourceGroups`` segment in any case) is blob ``<p>`` of container ``<ds>`` lower-cased
(``workspaceblobstore`` for the workspace default).
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from amlretrain.emulator.learner import Model

__all__ = ["BUSY", "V2Deployment", "V2Endpoint", "V2Job", "V2Model", "V2State", "V2Workspace"]
__all__ += ["TrafficError", "check_traffic", "datastore_path", "system_data"]

API_VERSION = "2024-04-01"
PROVIDER = "Microsoft.MachineLearningServices"
DEFAULT_DATASTORE = "workspaceblobstore"
#: Provisioning states during which any other write is a 409 Conflict (V2-NOTES 3.4).
BUSY = ("Creating", "Updating", "Deleting", "Scaling")
#: Deployments per endpoint (V2-NOTES 3.5).
MAX_DEPLOYMENTS = 20

Key = tuple[str, str, str, str]


def now_iso() -> str:
    """The current UTC time, as :func:`amlretrain.emulator.state.now_iso` writes it (this
    module imports nothing of the emulator's: :mod:`.state` holds a :class:`V2State`)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def system_data(created: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A ``SystemData`` block: created as given (or now), modified now."""
    now = now_iso()
    by = "amlretrain-emulator"
    out = {
        "createdBy": by,
        "createdByType": "Application",
        "createdAt": now,
        "lastModifiedBy": by,
        "lastModifiedByType": "Application",
        "lastModifiedAt": now,
    }
    if created:
        out.update({k: created[k] for k in ("createdBy", "createdByType", "createdAt")})
    return out


@attrs.define(kw_only=True)
class V2Workspace:
    """A v2 workspace (the container of everything below); ``location`` is a region name."""

    subscription_id: str
    resource_group: str
    name: str
    location: str

    @property
    def key(self) -> tuple[str, str, str]:
        """Lookup key (lower-cased)."""
        return (self.subscription_id.lower(), self.resource_group.lower(), self.name.lower())

    @property
    def arm_id(self) -> str:
        """The workspace's ARM id."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{PROVIDER}/workspaces/{self.name}"
        )


@attrs.define(kw_only=True)
class V2Deployment:
    """An online deployment: its resource as GET answers it and the model it serves.

    ``model`` is the learner model loaded when the deployment last provisioned (the
    scoring script's ``init()``); ``calls`` counts the scoring requests it answered and
    ``mirrored`` the mirrored copies it received (their answers discarded).
    """

    name: str
    resource: dict[str, Any]
    model: Model | None = None
    model_ref: str | None = None
    logs: list[str] = attrs.field(factory=list)
    calls: int = 0
    mirrored: int = 0
    in_flight: int = 0
    created: int = 0

    @property
    def state(self) -> str:
        """``properties.provisioningState``."""
        return str(self.resource["properties"].get("provisioningState", "Succeeded"))


@attrs.define(kw_only=True)
class V2Endpoint:
    """An online endpoint, its keys, issued tokens and deployments.

    ``resource`` is what is in effect (GET); ``mirrored`` counts the header-less calls
    copied to the mirror deployment.
    """

    workspace: V2Workspace
    name: str
    resource: dict[str, Any]
    primary_key: str
    secondary_key: str
    tokens: dict[str, float] = attrs.field(factory=dict)
    deployments: dict[str, V2Deployment] = attrs.field(factory=dict)
    mirrored: int = 0
    created: int = 0
    rng: random.Random = attrs.field(factory=lambda: random.Random(0))

    @property
    def state(self) -> str:
        """``properties.provisioningState``."""
        return str(self.resource["properties"].get("provisioningState", "Succeeded"))

    @property
    def traffic(self) -> dict[str, int]:
        """The live traffic in effect (deployment name -> percent)."""
        return dict(self.resource["properties"].get("traffic") or {})

    @property
    def mirror_traffic(self) -> dict[str, int]:
        """The mirror traffic in effect."""
        return dict(self.resource["properties"].get("mirrorTraffic") or {})

    def deployment(self, name: str) -> V2Deployment | None:
        """A deployment by name (case-insensitive)."""
        return self.deployments.get(name.lower())

    def weight(self, name: str) -> int:
        """The live traffic of deployment ``name`` (0 when absent)."""
        return next((int(v) for k, v in self.traffic.items() if k.lower() == name.lower()), 0)


@attrs.define(kw_only=True)
class V2Model:
    """A model container and its versions (version string -> ModelVersionResource)."""

    name: str
    resource: dict[str, Any]
    versions: dict[str, dict[str, Any]] = attrs.field(factory=dict)


@attrs.define(kw_only=True)
class V2Job:
    """A command job; ``resource`` is what GET answers (its status inside); ``history`` is
    every status it went through, in order."""

    name: str
    resource: dict[str, Any]
    history: list[str] = attrs.field(factory=list)
    #: The output the trained model is written to.
    model_output: str = "model"
    cancel: threading.Event = attrs.field(factory=threading.Event)
    thread: threading.Thread | None = None
    created: int = 0

    @property
    def status(self) -> str:
        """``properties.status``."""
        return str(self.resource["properties"].get("status", "NotStarted"))


class V2State:
    """Every v2 resource of the emulator (guarded by the shared state lock)."""

    def __init__(self) -> None:
        self.workspaces: dict[tuple[str, str, str], V2Workspace] = {}
        self.endpoints: dict[Key, V2Endpoint] = {}
        self.models: dict[Key, V2Model] = {}
        self.jobs: dict[Key, V2Job] = {}
        #: What the ``Location`` URL of a finished operation answers: op id -> callable.
        self.results: dict[str, Any] = {}
        self._counter = 0

    def order(self) -> int:
        """A creation counter (list order)."""
        self._counter += 1
        return self._counter

    def add_workspace(
        self, subscription_id: str, resource_group: str, name: str, location: str = "eastus"
    ) -> V2Workspace:
        """Register a workspace (idempotent)."""
        ws = V2Workspace(
            subscription_id=subscription_id,
            resource_group=resource_group,
            name=name,
            location=location,
        )
        return self.workspaces.setdefault(ws.key, ws)

    def endpoint_named(self, name: str) -> V2Endpoint | None:
        """The endpoint of that name in any workspace (names are unique in a region)."""
        return next((e for e in self.endpoints.values() if e.name.lower() == name.lower()), None)

    def model_version(self, ws: V2Workspace, name: str, version: str) -> dict[str, Any] | None:
        """A registered model version's resource, or None."""
        found = self.models.get((*ws.key, name.lower()))
        return None if found is None else found.versions.get(version)

    def job(self, ws: V2Workspace, name: str) -> V2Job | None:
        """A job by name, or None."""
        return self.jobs.get((*ws.key, name.lower()))


def endpoint_seed(name: str) -> random.Random:
    """The deterministic RNG of an endpoint's traffic split (seeded by its name)."""
    digest = hashlib.sha256(name.lower().encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class TrafficError(ValueError):
    """A traffic rule broken (V2-NOTES 3.3); the message names the rule."""


def _int_map(value: Any, what: str) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TrafficError(f"{what} must be an object of deployment name -> percent")
    out: dict[str, int] = {}
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 100:
            raise TrafficError(f"{what}[{k!r}] must be an integer from 0 to 100, not {v!r}")
        out[str(k)] = v
    return out


def check_traffic(
    traffic: Any, mirror: Any, deployments: Mapping[str, V2Deployment]
) -> tuple[dict[str, int], dict[str, int]]:
    """Validate an endpoint PUT's ``traffic`` and ``mirrorTraffic`` (T1, T2, T3, T4).

    Every name must be an existing deployment. Returns both maps (ints).

    Raises:
        TrafficError: a rule is broken.
    """
    live, shadow = _int_map(traffic, "traffic"), _int_map(mirror, "mirrorTraffic")
    for what, values in (("traffic", live), ("mirrorTraffic", shadow)):
        unknown = [k for k in values if k.lower() not in deployments]
        if unknown:
            raise TrafficError(
                f"{what} names deployment(s) {', '.join(sorted(unknown))} that do not exist "
                "in this endpoint: create a deployment before giving it traffic."
            )
    total = sum(live.values())
    if total not in (0, 100):
        raise TrafficError(
            f"T1: the traffic values sum to {total}; they must sum to 0 (no traffic) or 100."
        )
    positive = {k: v for k, v in shadow.items() if v > 0}
    if len(positive) > 1:
        raise TrafficError("T2: mirror traffic can go to one deployment only.")
    if sum(positive.values()) > 50:
        raise TrafficError("T2: mirror traffic may be at most 50 percent.")
    for name in positive:
        dep = deployments[name.lower()]
        if dep.resource["properties"].get("endpointComputeType") == "Kubernetes":
            raise TrafficError("T3: mirror traffic is not supported for Kubernetes deployments.")
        if any(k.lower() == name.lower() and v > 0 for k, v in live.items()):
            raise TrafficError(
                f"T4: deployment {name} cannot receive both live and mirrored traffic."
            )
    return live, shadow


_SHORT = re.compile(r"^azureml://datastores/([^/]+)/paths/(.*)$", re.IGNORECASE)
_LONG = re.compile(
    r"^azureml://subscriptions/[^/]+/resourcegroups/[^/]+/workspaces/[^/]+"
    r"/datastores/([^/]+)/paths/(.*)$",
    re.IGNORECASE,
)
_JOB = re.compile(r"^azureml://jobs/([^/]+)/outputs/([^/]+)(?:/paths/(.*))?$", re.IGNORECASE)


def datastore_path(uri: str) -> tuple[str, str] | None:
    """``(container, blob)`` of a datastore URI (short or long form), or None."""
    m = _SHORT.match(uri) or _LONG.match(uri)
    if m is None:
        return None
    return m.group(1).lower(), m.group(2).lstrip("/")


def job_output(uri: str) -> tuple[str, str, str] | None:
    """``(job, output, path)`` of an ``azureml://jobs/<job>/outputs/<out>[/paths/<p>]``."""
    m = _JOB.match(uri)
    return None if m is None else (m.group(1), m.group(2), (m.group(3) or "").lstrip("/"))
