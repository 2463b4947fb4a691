"""The way over from Studio (classic) to Azure ML v2: what there is, and what maps to what.

Two questions a migration starts with, each answered as plain data:

* :func:`inventory`: the classic web services and endpoints (and the New web services)
  of the workspaces a ``retrain.toml`` reaches, the models each serves, and each one's
  metric history from the ledger.
* :func:`check_definition`: each module of a web-service definition with its Azure ML
  v2 (designer) equivalent, as the v2 notes' module mapping lists it (V2-NOTES 7.2),
  ``"none"`` where the notes list none, and ``"not in the notes"`` where they say
  nothing. Check the *training* service's definition: it holds the learner (the
  predictive one holds only its trained model, an ``.ilearner`` that v2 cannot load:
  V2-NOTES 7.3).

The notes condense Microsoft's migration table: most modules are named there only by
their group ("the manipulation ... modules"). A module matched through its group says
so (:attr:`ModuleMapping.basis` ``"group"``); the group lists here hold the Studio
(classic) module names of those groups. Names are matched case-insensitively.

Pure data and functions: :func:`inventory` reads through the clients it is given and
prints nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from amlretrain.blobs import strip_sas

if TYPE_CHECKING:
    from amlretrain.history import History
    from amlretrain.studio.definition import WebServiceDefinition
    from amlretrain.studio.management import ClassicClient
    from amlretrain.studio.webservices import WebServicesClient
    from amlretrain.targets import Target

__all__ = [
    "InventoryEndpoint",
    "InventoryService",
    "MetricPoint",
    "MigrationInventory",
    "ModuleMapping",
    "ServedModel",
    "check_definition",
    "holds_a_learner",
    "inventory",
]

#: The statuses of a :class:`ModuleMapping`.
SAME = "same"
REPLACED = "replaced"
NONE = "none"
NOT_IN_THE_NOTES = "not in the notes"

#: Groups whose modules are learners (a definition with none of them holds no learner).
LEARNER_GROUPS = frozenset({"classification", "regression", "anomaly detection", "clustering"})

_NOTES_72 = "V2-NOTES 7.2"
_NOTES_73 = "V2-NOTES 7.3"

# Same module in the designer, each named in V2-NOTES 7.2.
_SAME_NAMED: dict[str, tuple[str, ...]] = {
    "data input and output": ("Enter Data Manually", "Export Data", "Import Data"),
    "data format conversions": ("Convert to CSV", "Convert to Dataset"),
    "python": ("Execute Python Script",),
    "r": ("Execute R Script",),
    "classification": (
        "Two-Class Averaged Perceptron",
        "Two-Class Boosted Decision Tree",
        "Two-Class Decision Forest",
        "Two-Class Logistic Regression",
        "Two-Class Neural Network",
        "Two-Class Support Vector Machine",
        "Multiclass Decision Forest",
        "Multiclass Logistic Regression",
        "Multiclass Neural Network",
        "One-vs-All Multiclass",
    ),
    "regression": (
        "Boosted Decision Tree Regression",
        "Decision Forest Regression",
        "Fast Forest Quantile Regression",
        "Linear Regression",
        "Neural Network Regression",
        "Poisson Regression",
    ),
}

# Same module in the designer, by group: V2-NOTES 7.2 names the group, not the module
# ("the manipulation, scale, sample/split, evaluate, train, score ... modules"); these
# are the Studio (classic) modules of those groups, less the ones it lists as having none.
_SAME_BY_GROUP: dict[str, tuple[str, ...]] = {
    "data transformation - manipulation": (
        "Add Columns",
        "Add Rows",
        "Apply SQL Transformation",
        "Clean Missing Data",
        "Convert to Indicator Values",
        "Edit Metadata",
        "Join Data",
        "Remove Duplicate Rows",
        "Select Columns in Dataset",
        "Select Columns Transform",
        "SMOTE",
    ),
    "data transformation - scale and reduce": (
        "Clip Values",
        "Group Data into Bins",
        "Normalize Data",
    ),
    "data transformation - sample and split": ("Partition and Sample", "Split Data"),
    "evaluate": ("Cross Validate Model", "Evaluate Model", "Evaluate Recommender"),
    "train": ("Train Model", "Train Clustering Model", "Tune Model Hyperparameters"),
    "score": ("Score Model", "Assign Data to Clusters", "Apply Transformation"),
}

# Renamed or replaced (V2-NOTES 7.2: the pairs share a table row, no one-to-one mapping).
_REPLACED: dict[str, tuple[str, str]] = {
    "Score Vowpal Wabbit Version 7-10 Model": ("score", "Score Vowpal Wabbit Model"),
    "Score Vowpal Wabbit Version 8 Model": ("score", "Score Vowpal Wabbit Model"),
    "Train Vowpal Wabbit Version 7-10 Model": ("train", "Train Vowpal Wabbit Model"),
    "Train Vowpal Wabbit Version 8 Model": ("train", "Train Vowpal Wabbit Model"),
}

# No designer equivalent listed (V2-NOTES 7.2).
_NONE: dict[str, tuple[str, ...]] = {
    "data input and output": ("Load Trained Model", "Unpack Zipped Datasets"),
    "data format conversions": ("Convert to ARFF", "Convert to SVMLight", "Convert to TSV"),
    "data transformation - manipulation": ("Group Categorical Values",),
    "data transformation - scale and reduce": ("Principal Component Analysis",),
    "filter": (
        "Apply Filter",
        "FIR Filter",
        "IIR Filter",
        "Median Filter",
        "Moving Average Filter",
        "Threshold Filter",
        "User Defined Filter",
    ),
    "learning with counts": (
        "Build Counting Transform",
        "Export Count Table",
        "Import Count Table",
        "Merge Count Transform",
        "Modify Count Table Parameters",
    ),
    "feature selection": ("Fisher Linear Discriminant Analysis",),
    "classification": (
        "Multiclass Decision Jungle",
        "Two-Class Bayes Point Machine",
        "Two-Class Decision Jungle",
        "Two-Class Locally-Deep Support Vector Machine",
        "Two-Class Locally-Deep SVM",
    ),
    "regression": ("Bayesian Linear Regression", "Ordinal Regression"),
    "anomaly detection": ("One-Class Support Vector Machine", "One-Class SVM"),
    "train": ("Sweep Clustering", "Train Matchbox Recommender"),
    "score": ("Score Matchbox Recommender",),
    "opencv library modules": ("Import Images", "Pre-trained Cascade Image Classification"),
    "r": ("Create R Model",),
    "statistical functions": (
        "Compute Elementary Statistics",
        "Compute Linear Correlation",
        "Evaluate Probability Function",
        "Replace Discrete Values",
        "Test Hypothesis using t-Test",
    ),
    "text analytics": (
        "Detect Languages",
        "Extract Key Phrases from Text",
        "Named Entity Recognition",
    ),
    "time series": ("Time Series Anomaly Detection",),
}


def _norm(name: str) -> str:
    return re.sub(r"\s+", " ", name).strip().casefold()


def _table() -> dict[str, tuple[str, str, str | None, str]]:
    """normalized name -> (status, group, v2 equivalent, basis)."""
    table: dict[str, tuple[str, str, str | None, str]] = {}
    for group, names in _SAME_NAMED.items():
        table.update({_norm(n): (SAME, group, n, "name") for n in names})
    for group, names in _SAME_BY_GROUP.items():
        table.update({_norm(n): (SAME, group, n, "group") for n in names})
    for name, (group, v2) in _REPLACED.items():
        table[_norm(name)] = (REPLACED, group, v2, "name")
    for group, names in _NONE.items():
        table.update({_norm(n): (NONE, group, None, "name") for n in names})
    return table


_TABLE = _table()


@attrs.frozen(kw_only=True)
class ModuleMapping:
    """One module (or asset, or web-service port) of a definition and its v2 equivalent.

    Attributes:
        asset_id: its key in ``properties.assets`` (None for a web-service input/output).
        name: the module's name as the definition gives it.
        kind: ``module``, ``trained model``, ``resource`` or ``web service input`` /
            ``web service output``; another asset type as the definition spells it.
        module_id: the asset's ``locationInfo.uri`` (``aml://module/...``; a trained
            model's URL without its SAS).
        nodes: the graph nodes that use it.
        status: ``same`` (the designer has the same module), ``replaced`` (renamed or
            replaced, not one-to-one), ``none`` (the notes list no equivalent) or
            ``not in the notes``.
        v2: the v2 (designer) equivalent's name, None for ``none`` and ``not in the notes``.
        group: the module group the notes file it under (None when not in the notes).
        basis: ``name`` (the notes name the module), ``group`` (they name its group) or
            None (not in the notes).
        section: the section of the v2 notes that says so (``V2-NOTES 7.2``).
        note: one line on what to do.
    """

    asset_id: str | None
    name: str | None
    kind: str
    module_id: str | None = None
    nodes: tuple[str, ...] = ()
    status: str
    v2: str | None = None
    group: str | None = None
    basis: str | None = None
    section: str | None = None
    note: str = ""

    @property
    def has_equivalent(self) -> bool:
        """True when the notes give a v2 equivalent (``same`` or ``replaced``)."""
        return self.status in (SAME, REPLACED)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (snake_case), for ``amlretrain migrate check``."""
        return attrs.asdict(self, recurse=False) | {"nodes": list(self.nodes)}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _map_module(name: str | None) -> tuple[str, str | None, str | None, str | None, str, str]:
    """(status, v2, group, basis, section, note) of a module called ``name``."""
    found = _TABLE.get(_norm(name)) if name else None
    if found is None:
        return (
            NOT_IN_THE_NOTES,
            None,
            None,
            None,
            _NOTES_72,
            "not in the notes' mapping: look it up in Microsoft's full table, or rebuild it "
            "in the training script",
        )
    status, group, v2, basis = found
    if status == NONE:
        note = "no v2 equivalent: rebuild it in the training script (a command job)"
        if _norm(name or "") == _norm("Load Trained Model"):
            note = "no v2 equivalent: an .ilearner cannot be loaded in v2: retrain instead"
        return NONE, None, group, basis, _NOTES_72, note
    if status == REPLACED:
        return status, v2, group, basis, _NOTES_72, f"replaced by {v2} (not one-to-one)"
    how = "named there" if basis == "name" else f"its group ({group}) is"
    return status, v2, group, basis, _NOTES_72, f"the same module exists in the designer ({how})"


def check_definition(definition: WebServiceDefinition) -> tuple[ModuleMapping, ...]:
    """Each module of ``definition`` with its v2 equivalent (V2-NOTES 7), in asset order.

    Modules (assets of type ``Module``) are mapped by name: ``same``, ``replaced``,
    ``none`` (the notes list no equivalent) or ``not in the notes``. A trained model
    (an ``.ilearner`` asset) is ``none``: v2 cannot load it (V2-NOTES 7.3; retrain from
    the same data). Another ``Resource`` (a dataset) becomes a data asset (V2-NOTES 7.1).
    The web-service inputs and outputs of the graph map to Web Service Input/Output.

    Pass the *training* web service's definition: it holds the learner.

    Example:
        >>> from amlretrain import WebServiceDefinition, check_definition
        >>> rows = check_definition(WebServiceDefinition.load("training.json"))  # doctest: +SKIP
        >>> [r.name for r in rows if not r.has_equivalent]                    # doctest: +SKIP
        []
    """
    trained = {m.asset_id for m in definition.trained_models}
    package = definition.properties.package if definition.properties else None
    nodes = dict(package.nodes or {}) if package is not None else {}
    used: dict[str, list[str]] = {}
    ports: list[ModuleMapping] = []
    for node_id, node in nodes.items():
        if node.asset_id:
            used.setdefault(node.asset_id, []).append(node_id)
        for port, port_kind, port_v2 in (
            (node.input_id, "web service input", "Web Service Input"),
            (node.output_id, "web service output", "Web Service Output"),
        ):
            if port:
                ports.append(
                    ModuleMapping(
                        asset_id=None,
                        name=port,
                        kind=port_kind,
                        nodes=(node_id,),
                        status=SAME,
                        v2=port_v2,
                        group="web service",
                        basis="group",
                        section=_NOTES_72,
                        note="the same module exists in the designer (its group is); "
                        "in a command job: its input or output",
                    )
                )
    rows: list[ModuleMapping] = []
    for asset_id, asset in definition.assets.items():
        location = asset.location_info.uri if asset.location_info else None
        common: dict[str, Any] = {
            "asset_id": asset_id,
            "name": asset.name,
            "nodes": tuple(used.get(asset_id, ())),
        }
        kind = (asset.type or "").strip()
        if asset_id in trained:
            rows.append(
                ModuleMapping(
                    **common,
                    kind="trained model",
                    module_id=strip_sas(location),
                    status=NONE,
                    section=_NOTES_73,
                    note="an .ilearner cannot be loaded in v2: retrain from the same data "
                    "(a command job) and deploy the model it registers",
                )
            )
        elif kind.lower() == "module":
            status, v2, group, basis, section, note = _map_module(asset.name)
            rows.append(
                ModuleMapping(
                    **common,
                    kind="module",
                    module_id=strip_sas(location),
                    status=status,
                    v2=v2,
                    group=group,
                    basis=basis,
                    section=section,
                    note=note,
                )
            )
        elif kind.lower() == "resource":
            rows.append(
                ModuleMapping(
                    **common,
                    kind="resource",
                    module_id=strip_sas(location),
                    status=REPLACED,
                    v2="a data asset",
                    group="datasets",
                    basis="group",
                    section="V2-NOTES 7.1",
                    note="migrate the dataset first (a data asset or a datastore file)",
                )
            )
        else:
            rows.append(
                ModuleMapping(
                    **common,
                    kind=kind or "unknown",
                    module_id=strip_sas(location),
                    status=NOT_IN_THE_NOTES,
                    section=_NOTES_72,
                    note=f"an asset of type {asset.type!r}: not in the notes' mapping",
                )
            )
    return (*rows, *ports)


def holds_a_learner(rows: Iterable[ModuleMapping]) -> bool:
    """True when one of ``rows`` (from :func:`check_definition`) is a learner module."""
    return any(r.kind == "module" and r.group in LEARNER_GROUPS for r in rows)


# -- inventory ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class MetricPoint:
    """One deployment of a target, from the ledger, with the metrics of its model.

    Attributes:
        time: when it was recorded (UTC, ISO 8601).
        action: ``deploy`` or ``rollback``.
        model: the model it then served (no SAS).
        metrics: that model's evaluation metrics (empty when none were recorded).
        entry_id: the ledger entry.
        run_id: the run that wrote it (None before schema 2).
    """

    time: str
    action: str
    model: str | None
    metrics: Mapping[str, float] = attrs.field(factory=dict)
    entry_id: str
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (snake_case)."""
        return attrs.asdict(self, recurse=False) | {"metrics": dict(self.metrics)}


@attrs.frozen(kw_only=True)
class ServedModel:
    """A trained model an endpoint (or a New web service) references.

    Attributes:
        name: the resource or asset name (``"... [trained model]"``).
        uri: its blob URL, without the SAS.
    """

    name: str | None
    uri: str | None

    @property
    def is_ilearner(self) -> bool:
        """True when the blob is an ``.ilearner`` (v2 cannot load it: V2-NOTES 7.3)."""
        return bool(self.uri) and str(self.uri).lower().endswith(".ilearner")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (snake_case)."""
        return {"name": self.name, "uri": self.uri, "is_ilearner": self.is_ilearner}


@attrs.frozen(kw_only=True)
class InventoryEndpoint:
    """An endpoint of a classic web service, or a New web service (its own endpoint).

    Attributes:
        name: the endpoint's name (a New web service's: the service's name).
        key: its ledger key (``classic:<ws>/<svc>/<endpoint>`` or ``arm:<resource id>``).
        default: the classic default endpoint (it follows the experiment).
        configured: a ``[[targets]]`` entry of the configuration.
        models: the trained models it references.
        history: its deployments in the ledger, oldest first.
    """

    name: str
    key: str
    default: bool = False
    configured: bool = False
    models: tuple[ServedModel, ...] = ()
    history: tuple[MetricPoint, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (snake_case)."""
        return {
            "name": self.name,
            "key": self.key,
            "default": self.default,
            "configured": self.configured,
            "models": [m.to_dict() for m in self.models],
            "history": [p.to_dict() for p in self.history],
        }


@attrs.frozen(kw_only=True)
class InventoryService:
    """A web service: classic (with its endpoints) or New (ARM; one endpoint: itself).

    Attributes:
        kind: ``classic`` or ``arm``.
        id: the classic web service id, or the New service's ARM resource id.
        name: its name.
        workspace: the classic workspace id, or ``<subscription>/<resource group>``.
        endpoints: its endpoints.
    """

    kind: str
    id: str
    name: str | None
    workspace: str
    endpoints: tuple[InventoryEndpoint, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (snake_case)."""
        return {
            "kind": self.kind,
            "id": self.id,
            "name": self.name,
            "workspace": self.workspace,
            "endpoints": [e.to_dict() for e in self.endpoints],
        }


@attrs.frozen(kw_only=True)
class MigrationInventory:
    """What :func:`inventory` found.

    Attributes:
        services: the web services, classic first, in the services' order.
        v2_targets: the keys of configured targets already on Azure ML v2.
    """

    services: tuple[InventoryService, ...] = ()
    v2_targets: tuple[str, ...] = ()

    def endpoints(self) -> list[tuple[InventoryService, InventoryEndpoint]]:
        """Every (service, endpoint) pair, in order."""
        return [(s, e) for s in self.services for e in s.endpoints]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (snake_case), for ``amlretrain migrate inventory``."""
        return {
            "services": [s.to_dict() for s in self.services],
            "v2_targets": list(self.v2_targets),
        }


def _history_of(history: History | None, key: str) -> tuple[MetricPoint, ...]:
    if history is None:
        return ()
    points = []
    for entry in history.deployments(key):
        model = entry.serving_model or entry.new_model
        metrics = entry.metrics or history.metrics_of(key, model) or {}
        points.append(
            MetricPoint(
                time=entry.time,
                action=entry.action,
                model=model,
                metrics=dict(metrics),
                entry_id=entry.id,
                run_id=entry.run_id,
            )
        )
    return tuple(points)


def _classic_services(
    client: ClassicClient, configured: set[str], history: History | None
) -> list[InventoryService]:
    out = []
    for service in client.list_web_services():
        endpoints = []
        for endpoint in client.list_endpoints(service.id):
            key = f"classic:{client.workspace_id}/{service.id}/{endpoint.name}"
            default = (service.default_endpoint_name or "").lower() == endpoint.name.lower()
            endpoints.append(
                InventoryEndpoint(
                    name=endpoint.name,
                    key=key,
                    default=default,
                    configured=key in configured,
                    models=tuple(
                        ServedModel(name=r.name, uri=r.location.url if r.location else None)
                        for r in endpoint.resources
                    ),
                    history=_history_of(history, key),
                )
            )
        out.append(
            InventoryService(
                kind="classic",
                id=service.id,
                name=service.name,
                workspace=client.workspace_id,
                endpoints=tuple(endpoints),
            )
        )
    return out


def _arm_services(
    client: WebServicesClient,
    resource_group: str,
    configured: set[str],
    history: History | None,
) -> list[InventoryService]:
    out = []
    for listed in client.list(resource_group):
        name = listed.name or ""
        # list items are sparse (no assets): the models are in a GET of each
        definition = client.get(resource_group, name)
        rid = client.resource_id(resource_group, name)
        key = f"arm:{rid}"
        endpoint = InventoryEndpoint(
            name=name,
            key=key,
            configured=key in configured,
            models=tuple(
                ServedModel(name=m.name, uri=strip_sas(m.uri)) for m in definition.trained_models
            ),
            history=_history_of(history, key),
        )
        out.append(
            InventoryService(
                kind="arm",
                id=rid,
                name=name,
                workspace=f"{client.subscription_id}/{resource_group}",
                endpoints=(endpoint,),
            )
        )
    return out


def inventory(targets: Iterable[Target], *, history: History | None = None) -> MigrationInventory:
    """The web services the ``targets``' clients reach, their endpoints, models, metrics.

    Every classic web service of each classic target's workspace (every endpoint of
    each, with the trained models it references), and every New web service of each
    ARM target's resource group (with its trained model); each endpoint's deployments
    and their metrics from ``history``. Targets already on Azure ML v2 are listed by
    key only. Reads only: nothing is changed.

    Args:
        targets: the configuration's targets (``RetrainConfig.targets()``: each a
            ``ClassicTarget``, ``ArmTarget`` or ``OnlineEndpointTarget``); targets that
            share a client (a workspace) are listed once.
        history: the ledger's history (``Ledger.history()``), for the metrics.

    Raises:
        ServiceError: (or a subclass) a list or read failed.

    Example:
        >>> config = load_config("retrain.toml")                       # doctest: +SKIP
        >>> found = inventory([t for t, _ in config.targets()],
        ...                   history=config.ledger().history())     # doctest: +SKIP
    """
    from amlretrain.azureml.targets import OnlineEndpointTarget
    from amlretrain.studio.targets import ArmTarget, ClassicTarget

    targets = list(targets)
    configured = {t.key for t in targets}
    classic: dict[int, ClassicClient] = {}
    arm: dict[tuple[int, str], tuple[WebServicesClient, str]] = {}
    v2: list[str] = []
    for target in targets:
        if isinstance(target, ClassicTarget):
            classic.setdefault(id(target.client), target.client)
        elif isinstance(target, ArmTarget):
            where = (id(target.client), target.resource_group.lower())
            arm.setdefault(where, (target.client, target.resource_group))
        elif isinstance(target, OnlineEndpointTarget):
            v2.append(target.key)
    services: list[InventoryService] = []
    seen: set[str] = set()
    for client in classic.values():
        ws = client.workspace_id.lower()
        if ws not in seen:  # two clients of one workspace (different tokens) list it once
            seen.add(ws)
            services += _classic_services(client, configured, history)
    for arm_client, resource_group in arm.values():
        services += _arm_services(arm_client, resource_group, configured, history)
    return MigrationInventory(services=tuple(services), v2_targets=tuple(v2))
