"""Typed, lossless models of the Azure ML v2 resources (api-version 2024-04-01).

``OnlineEndpoint``, ``OnlineDeployment``, ``ModelVersion``, ``ModelContainer`` and
``CommandJob`` are frozen attrs models over :mod:`amlretrain._wire`, like
:class:`~amlretrain.studio.definition.WebServiceDefinition`: every member of the wire
document is kept (unknown ones in ``extra``), members are read case-insensitively, and
``from_dict(x).to_dict() == x`` for any document. :meth:`~ArmResource.for_put` is the one
way a body is made for a write: camelCase, without the read-only members the swagger
marks (``id``, ``name``, ``type``, ``systemData``, ``provisioningState``, ``scoringUri``,
``swaggerUri``, the endpoint's create-only ``keys``, an identity's ``principalId`` /
``tenantId``, a job's ``status``, ``parameters`` and service ``status`` /
``errorMessage``), every other member as read.

:class:`ModelRef` reads the model references users already have (``azureml:name:version``,
the version's ARM id, ``azureml://registries/<r>/models/<n>/versions/<v>``) and refuses
anything else, an ``.ilearner`` blob of Studio (classic) with why (V2-NOTES 7.3).

Example:
    >>> ep = OnlineEndpoint.from_dict({"id": "/x", "location": "westeurope",
    ...     "properties": {"authMode": "Key", "traffic": {"blue": 100},
    ...                    "provisioningState": "Succeeded"}})
    >>> ep.traffic, ep.auth_mode
    ({'blue': 100}, 'Key')
    >>> ep.for_put()
    {'location': 'westeurope', 'properties': {'authMode': 'Key', 'traffic': {'blue': 100}}}
"""

from __future__ import annotations

import builtins
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import attrs

from amlretrain._wire import Nested, WireModel, as_int, structure, unstructure, wire
from amlretrain.errors import ConfigurationError, DefinitionError

__all__ = [
    "API_VERSION",
    "JOB_TERMINAL_STATUSES",
    "PROVIDER",
    "TERMINAL_STATES",
    "ArmResource",
    "CommandJob",
    "CommandJobProperties",
    "EndpointKeys",
    "ModelContainer",
    "ModelContainerProperties",
    "ModelRef",
    "ModelVersion",
    "ModelVersionProperties",
    "OnlineDeployment",
    "OnlineDeploymentProperties",
    "OnlineEndpoint",
    "OnlineEndpointProperties",
    "Sku",
]

#: The api-version of this contract (V2-NOTES 1.1).
API_VERSION = "2024-04-01"
#: The resource provider.
PROVIDER = "Microsoft.MachineLearningServices"
#: ``provisioningState`` values that end an operation (V2-NOTES 1.3); others mean it runs.
TERMINAL_STATES = frozenset({"Succeeded", "Failed", "Canceled"})
#: ``JobStatus`` values after which a command job changes no more (V2-NOTES 5.2, GUESS).
JOB_TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Canceled"})

R = TypeVar("R", bound="ArmResource")

#: Read-only members of every ARM resource (CT ``Resource``), by path (``*``: any key).
_ENVELOPE_READ_ONLY: tuple[tuple[str, ...], ...] = (
    ("id",),
    ("name",),
    ("type",),
    ("systemData",),
    ("identity", "principalId"),
    ("identity", "tenantId"),
    ("identity", "userAssignedIdentities", "*", "principalId"),
    ("identity", "userAssignedIdentities", "*", "clientId"),
)


def _drop(node: Any, path: tuple[str, ...]) -> None:
    """Remove the member at ``path`` (names matched case-insensitively) from ``node``."""
    if not isinstance(node, dict) or not path:
        return
    head, rest = path[0], path[1:]
    keys = [k for k in node if head == "*" or str(k).lower() == head.lower()]
    for key in keys:
        if rest:
            _drop(node[key], rest)
        else:
            del node[key]


@attrs.frozen(kw_only=True)
class Sku(WireModel):
    """An ARM ``sku``; for a deployment, ``capacity`` is its instance count."""

    name: str | None = attrs.field(default=None, metadata=wire("name"))
    tier: str | None = attrs.field(default=None, metadata=wire("tier"))
    size: str | None = attrs.field(default=None, metadata=wire("size"))
    family: str | None = attrs.field(default=None, metadata=wire("family"))
    capacity: int | None = attrs.field(default=None, metadata=wire("capacity"))


@attrs.frozen(kw_only=True)
class ArmResource(WireModel):
    """The envelope every v2 resource shares (read-only ``id``, ``name``, ``type``,
    ``systemData``); the base of the resource models.

    Attributes:
        id: the ARM id (set by the service).
        name: the resource name (set by the service).
        type: the resource type (set by the service).
        system_data: who created and changed it, when (set by the service).
    """

    #: Paths of the read-only members :meth:`for_put` drops (besides the envelope's).
    READ_ONLY: ClassVar[tuple[tuple[str, ...], ...]] = ()

    id: str | None = attrs.field(default=None, metadata=wire("id"))
    name: str | None = attrs.field(default=None, metadata=wire("name"))
    type: str | None = attrs.field(default=None, metadata=wire("type"))
    system_data: dict[str, Any] | None = attrs.field(
        default=None, repr=False, metadata=wire("systemData")
    )

    @classmethod
    def from_dict(cls: builtins.type[R], data: Mapping[str, Any]) -> R:
        """Read a resource document (lossless, tolerant).

        Raises:
            DefinitionError: ``data`` is not an object.
        """
        if not isinstance(data, Mapping):
            raise DefinitionError(f"a {cls.__name__} is a JSON object")
        return structure(cls, data)

    def to_dict(self, *, canonical: bool = False) -> dict[str, Any]:
        """The document exactly as read, plus the changes made.

        Args:
            canonical: write known members under their camelCase names.
        """
        return unstructure(self, canonical=canonical)

    def for_put(self) -> dict[str, Any]:
        """The body of a PUT: camelCase, read-only members dropped, the rest as read."""
        doc = self.to_dict(canonical=True)
        for path in (*_ENVELOPE_READ_ONLY, *self.READ_ONLY):
            _drop(doc, path)
        return doc

    @property
    def provisioning_state(self) -> str | None:
        """``properties.provisioningState`` (None when absent)."""
        props = getattr(self, "properties", None)
        state = getattr(props, "provisioning_state", None)
        return None if state is None else str(state)


# -- online endpoints ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class EndpointKeys(WireModel):
    """An endpoint's keys (``listKeys``); never shown in ``repr``."""

    primary_key: str | None = attrs.field(default=None, repr=False, metadata=wire("primaryKey"))
    secondary_key: str | None = attrs.field(default=None, repr=False, metadata=wire("secondaryKey"))


def _int_map(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    out: dict[str, int] = {}
    for key, raw in value.items():
        number = as_int(raw)
        if number is not None:
            out[str(key)] = number
    return out


@attrs.frozen(kw_only=True)
class OnlineEndpointProperties(WireModel):
    """The ``properties`` of an online endpoint (``OnlineEndpoint`` in the swagger)."""

    auth_mode: str | None = attrs.field(default=None, metadata=wire("authMode"))
    description: str | None = attrs.field(default=None, metadata=wire("description"))
    properties: dict[str, Any] | None = attrs.field(default=None, metadata=wire("properties"))
    keys: dict[str, Any] | None = attrs.field(default=None, repr=False, metadata=wire("keys"))
    scoring_uri: str | None = attrs.field(default=None, metadata=wire("scoringUri"))
    swagger_uri: str | None = attrs.field(default=None, metadata=wire("swaggerUri"))
    compute: str | None = attrs.field(default=None, metadata=wire("compute"))
    public_network_access: str | None = attrs.field(
        default=None, metadata=wire("publicNetworkAccess")
    )
    traffic: dict[str, Any] | None = attrs.field(default=None, metadata=wire("traffic"))
    mirror_traffic: dict[str, Any] | None = attrs.field(
        default=None, metadata=wire("mirrorTraffic")
    )
    provisioning_state: str | None = attrs.field(default=None, metadata=wire("provisioningState"))


@attrs.frozen(kw_only=True)
class OnlineEndpoint(ArmResource):
    """An online endpoint (``OnlineEndpointTrackedResource``), typed and lossless.

    Traffic is changed only by a whole PUT of the endpoint with its ``traffic`` map
    (V2-NOTES 2.2): :func:`amlretrain.azureml.traffic.endpoint_put_body` makes that body,
    and ``OnlineEndpointsClient.begin_set_traffic`` sends it.

    Attributes:
        location: the region (required; set at creation only).
        tags, kind, identity: as read.
        sku: the endpoint's ``sku``, when it has one.
        properties: the :class:`OnlineEndpointProperties`.
    """

    READ_ONLY: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("properties", "provisioningState"),
        ("properties", "scoringUri"),
        ("properties", "swaggerUri"),
        ("properties", "keys"),  # create-only, and always returned null
    )

    location: str | None = attrs.field(default=None, metadata=wire("location"))
    tags: dict[str, Any] | None = attrs.field(default=None, metadata=wire("tags"))
    kind: str | None = attrs.field(default=None, metadata=wire("kind"))
    identity: dict[str, Any] | None = attrs.field(default=None, metadata=wire("identity"))
    sku: Sku | None = attrs.field(default=None, metadata=wire("sku", Nested(Sku)))
    properties: OnlineEndpointProperties | None = attrs.field(
        default=None, metadata=wire("properties", Nested(OnlineEndpointProperties))
    )

    @property
    def traffic(self) -> dict[str, int]:
        """``properties.traffic``: deployment name -> percent (empty when absent)."""
        return _int_map(self.properties.traffic if self.properties else None)

    @property
    def mirror_traffic(self) -> dict[str, int]:
        """``properties.mirrorTraffic``: deployment name -> percent (empty when absent)."""
        return _int_map(self.properties.mirror_traffic if self.properties else None)

    @property
    def auth_mode(self) -> str | None:
        """``properties.authMode`` (``Key``, ``AMLToken``, ``AADToken``)."""
        return self.properties.auth_mode if self.properties else None

    @property
    def scoring_uri(self) -> str | None:
        """``properties.scoringUri`` (set by the service)."""
        return self.properties.scoring_uri if self.properties else None


# -- online deployments -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class OnlineDeploymentProperties(WireModel):
    """The ``properties`` of an online deployment (Managed or Kubernetes)."""

    endpoint_compute_type: str | None = attrs.field(
        default=None, metadata=wire("endpointComputeType")
    )
    description: str | None = attrs.field(default=None, metadata=wire("description"))
    properties: dict[str, Any] | None = attrs.field(default=None, metadata=wire("properties"))
    model: str | None = attrs.field(default=None, metadata=wire("model"))
    model_mount_path: str | None = attrs.field(default=None, metadata=wire("modelMountPath"))
    code_configuration: dict[str, Any] | None = attrs.field(
        default=None, metadata=wire("codeConfiguration")
    )
    environment_id: str | None = attrs.field(default=None, metadata=wire("environmentId"))
    environment_variables: dict[str, Any] | None = attrs.field(
        default=None, metadata=wire("environmentVariables")
    )
    instance_type: str | None = attrs.field(default=None, metadata=wire("instanceType"))
    scale_settings: dict[str, Any] | None = attrs.field(
        default=None, metadata=wire("scaleSettings")
    )
    request_settings: dict[str, Any] | None = attrs.field(
        default=None, metadata=wire("requestSettings")
    )
    liveness_probe: dict[str, Any] | None = attrs.field(
        default=None, metadata=wire("livenessProbe")
    )
    readiness_probe: dict[str, Any] | None = attrs.field(
        default=None, metadata=wire("readinessProbe")
    )
    app_insights_enabled: bool | None = attrs.field(
        default=None, metadata=wire("appInsightsEnabled")
    )
    egress_public_network_access: str | None = attrs.field(
        default=None, metadata=wire("egressPublicNetworkAccess")
    )
    data_collector: dict[str, Any] | None = attrs.field(
        default=None, metadata=wire("dataCollector")
    )
    container_resource_requirements: dict[str, Any] | None = attrs.field(
        default=None, metadata=wire("containerResourceRequirements")
    )
    provisioning_state: str | None = attrs.field(default=None, metadata=wire("provisioningState"))


@attrs.frozen(kw_only=True)
class OnlineDeployment(ArmResource):
    """An online deployment (``OnlineDeploymentTrackedResource``), typed and lossless.

    Attributes:
        location: the region (required; set at creation only).
        tags, kind, identity: as read.
        sku: its ``sku``; ``sku.capacity`` is the instance count.
        properties: the :class:`OnlineDeploymentProperties`.
    """

    READ_ONLY: ClassVar[tuple[tuple[str, ...], ...]] = (("properties", "provisioningState"),)

    location: str | None = attrs.field(default=None, metadata=wire("location"))
    tags: dict[str, Any] | None = attrs.field(default=None, metadata=wire("tags"))
    kind: str | None = attrs.field(default=None, metadata=wire("kind"))
    identity: dict[str, Any] | None = attrs.field(default=None, metadata=wire("identity"))
    sku: Sku | None = attrs.field(default=None, metadata=wire("sku", Nested(Sku)))
    properties: OnlineDeploymentProperties | None = attrs.field(
        default=None, metadata=wire("properties", Nested(OnlineDeploymentProperties))
    )

    @property
    def model(self) -> str | None:
        """``properties.model``: the model version it serves (as the service spells it)."""
        return self.properties.model if self.properties else None

    @property
    def instance_type(self) -> str | None:
        """``properties.instanceType`` (``Standard_DS3_v2``)."""
        return self.properties.instance_type if self.properties else None

    @property
    def capacity(self) -> int | None:
        """``sku.capacity``: the instance count."""
        return self.sku.capacity if self.sku else None

    def model_ref(self) -> ModelRef | None:
        """:attr:`model` read as a :class:`ModelRef`; None when absent or another form."""
        if not self.model:
            return None
        try:
            return ModelRef.parse(self.model)
        except ConfigurationError:
            return None

    def workspace(self) -> tuple[str, str, str] | None:
        """``(subscription, resource group, workspace)`` of its ARM id, when it has one."""
        return _workspace_of(self.id)

    def with_model(
        self, model: ModelRef | str, *, workspace: tuple[str, str, str] | None = None
    ) -> OnlineDeployment:
        """This deployment serving another model version; nothing else changes.

        The model is written as the SDK sends it (V2-NOTES 3.1): a workspace model as the
        version's ARM id, in the workspace of this deployment's id (or ``workspace``), a
        registry model as its ``azureml://registries/...`` id.

        Args:
            model: a :class:`ModelRef` or any form :meth:`ModelRef.parse` reads.
            workspace: ``(subscription, resource group, workspace)`` for a workspace model
                when this deployment has no ARM id (one built in code).

        Raises:
            ConfigurationError: not a model reference, or no workspace to name it in.
        """
        ref = ModelRef.parse(model) if isinstance(model, str) else model
        props = self.properties or OnlineDeploymentProperties()
        if ref.registry is not None:
            uri = ref.registry_uri
        else:
            where = workspace or self.workspace() or ref.workspace()
            if where is None:
                raise ConfigurationError(
                    f"{ref.short}: the deployment has no ARM id to take the workspace from; "
                    "give workspace=(subscription, resource group, workspace)"
                )
            uri = ref.arm_id(*where)
        return attrs.evolve(self, properties=attrs.evolve(props, model=uri))

    def copy_as(self, name: str, *, model: ModelRef | str | None = None) -> OnlineDeployment:
        """A new deployment named ``name`` with this one's settings (and ``model``).

        The read-only members (``id``, ``type``, ``systemData``, ``provisioningState``,
        an identity's ids) are dropped; ``name`` is the new one. Send it with
        ``OnlineEndpointsClient.begin_create_or_update_deployment(endpoint, name, ...)``.

        Raises:
            ConfigurationError: ``name`` is empty, or a bad ``model`` (see :meth:`with_model`).
        """
        if not name:
            raise ConfigurationError("a deployment needs a name")
        source = self if model is None else self.with_model(model)
        body = source.for_put()
        body = {"name": name, **body}
        return OnlineDeployment.from_dict(body)


# -- models --------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ModelVersionProperties(WireModel):
    """The ``properties`` of a model version."""

    description: str | None = attrs.field(default=None, metadata=wire("description"))
    tags: dict[str, Any] | None = attrs.field(default=None, metadata=wire("tags"))
    properties: dict[str, Any] | None = attrs.field(default=None, metadata=wire("properties"))
    is_anonymous: bool | None = attrs.field(default=None, metadata=wire("isAnonymous"))
    is_archived: bool | None = attrs.field(default=None, metadata=wire("isArchived"))
    flavors: dict[str, Any] | None = attrs.field(default=None, metadata=wire("flavors"))
    job_name: str | None = attrs.field(default=None, metadata=wire("jobName"))
    model_type: str | None = attrs.field(default=None, metadata=wire("modelType"))
    model_uri: str | None = attrs.field(default=None, metadata=wire("modelUri"))
    stage: str | None = attrs.field(default=None, metadata=wire("stage"))
    provisioning_state: str | None = attrs.field(default=None, metadata=wire("provisioningState"))


@attrs.frozen(kw_only=True)
class ModelVersion(ArmResource):
    """A model version (``ModelVersionResource``), typed and lossless.

    Attributes:
        properties: the :class:`ModelVersionProperties`.
    """

    READ_ONLY: ClassVar[tuple[tuple[str, ...], ...]] = (("properties", "provisioningState"),)

    properties: ModelVersionProperties | None = attrs.field(
        default=None, metadata=wire("properties", Nested(ModelVersionProperties))
    )

    @property
    def model_uri(self) -> str | None:
        """``properties.modelUri``: where the model's files are."""
        return self.properties.model_uri if self.properties else None

    @property
    def model_type(self) -> str | None:
        """``properties.modelType`` (``custom_model``, ``CustomModel``, ``mlflow_model``...)."""
        return self.properties.model_type if self.properties else None

    @property
    def job_name(self) -> str | None:
        """``properties.jobName``: the training job that produced it."""
        return self.properties.job_name if self.properties else None


@attrs.frozen(kw_only=True)
class ModelContainerProperties(WireModel):
    """The ``properties`` of a model container (a model's name)."""

    description: str | None = attrs.field(default=None, metadata=wire("description"))
    tags: dict[str, Any] | None = attrs.field(default=None, metadata=wire("tags"))
    properties: dict[str, Any] | None = attrs.field(default=None, metadata=wire("properties"))
    is_archived: bool | None = attrs.field(default=None, metadata=wire("isArchived"))
    latest_version: str | None = attrs.field(default=None, metadata=wire("latestVersion"))
    next_version: str | None = attrs.field(default=None, metadata=wire("nextVersion"))
    provisioning_state: str | None = attrs.field(default=None, metadata=wire("provisioningState"))


@attrs.frozen(kw_only=True)
class ModelContainer(ArmResource):
    """A model container (``ModelContainerResource``): a model's name and its versions.

    Attributes:
        properties: the :class:`ModelContainerProperties`.
    """

    READ_ONLY: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("properties", "provisioningState"),
        ("properties", "latestVersion"),
        ("properties", "nextVersion"),
    )

    properties: ModelContainerProperties | None = attrs.field(
        default=None, metadata=wire("properties", Nested(ModelContainerProperties))
    )

    @property
    def latest_version(self) -> str | None:
        """``properties.latestVersion`` (set by the service)."""
        return self.properties.latest_version if self.properties else None


# -- command jobs --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CommandJobProperties(WireModel):
    """The ``properties`` of a command job (``JobBase`` and ``CommandJob``)."""

    job_type: str | None = attrs.field(default=None, metadata=wire("jobType"))
    display_name: str | None = attrs.field(default=None, metadata=wire("displayName"))
    description: str | None = attrs.field(default=None, metadata=wire("description"))
    tags: dict[str, Any] | None = attrs.field(default=None, metadata=wire("tags"))
    properties: dict[str, Any] | None = attrs.field(default=None, metadata=wire("properties"))
    experiment_name: str | None = attrs.field(default=None, metadata=wire("experimentName"))
    compute_id: str | None = attrs.field(default=None, metadata=wire("computeId"))
    component_id: str | None = attrs.field(default=None, metadata=wire("componentId"))
    identity: dict[str, Any] | None = attrs.field(default=None, metadata=wire("identity"))
    is_archived: bool | None = attrs.field(default=None, metadata=wire("isArchived"))
    notification_setting: dict[str, Any] | None = attrs.field(
        default=None, metadata=wire("notificationSetting")
    )
    services: dict[str, Any] | None = attrs.field(default=None, metadata=wire("services"))
    status: str | None = attrs.field(default=None, metadata=wire("status"))
    command: str | None = attrs.field(default=None, metadata=wire("command"))
    environment_id: str | None = attrs.field(default=None, metadata=wire("environmentId"))
    code_id: str | None = attrs.field(default=None, metadata=wire("codeId"))
    environment_variables: dict[str, Any] | None = attrs.field(
        default=None, metadata=wire("environmentVariables")
    )
    inputs: dict[str, Any] | None = attrs.field(default=None, metadata=wire("inputs"))
    outputs: dict[str, Any] | None = attrs.field(default=None, metadata=wire("outputs"))
    resources: dict[str, Any] | None = attrs.field(default=None, metadata=wire("resources"))
    limits: dict[str, Any] | None = attrs.field(default=None, metadata=wire("limits"))
    distribution: dict[str, Any] | None = attrs.field(default=None, metadata=wire("distribution"))
    queue_settings: dict[str, Any] | None = attrs.field(
        default=None, metadata=wire("queueSettings")
    )
    parameters: dict[str, Any] | None = attrs.field(default=None, metadata=wire("parameters"))


@attrs.frozen(kw_only=True)
class CommandJob(ArmResource):
    """A command job (``JobBaseResource`` with ``jobType: Command``), typed and lossless.

    Attributes:
        properties: the :class:`CommandJobProperties`.
    """

    READ_ONLY: ClassVar[tuple[tuple[str, ...], ...]] = (
        ("properties", "status"),
        ("properties", "parameters"),
        ("properties", "services", "*", "status"),
        ("properties", "services", "*", "errorMessage"),
    )

    properties: CommandJobProperties | None = attrs.field(
        default=None, metadata=wire("properties", Nested(CommandJobProperties))
    )

    @property
    def status(self) -> str | None:
        """``properties.status`` (``NotStarted`` ... ``Completed``, ``Failed``, ``Canceled``)."""
        return self.properties.status if self.properties else None

    @property
    def is_terminal(self) -> bool:
        """True once the status is one of :data:`JOB_TERMINAL_STATUSES`."""
        return self.status in JOB_TERMINAL_STATUSES

    @property
    def outputs(self) -> dict[str, Any]:
        """``properties.outputs``: output name -> ``JobOutput`` (empty when absent)."""
        return dict(self.properties.outputs or {}) if self.properties else {}

    def output_uri(self, output: str, path: str | None = None) -> str:
        """The ``azureml://jobs/<job>/outputs/<output>[/paths/<path>]`` URI of an output
        (V2-NOTES 4.2): a ``modelUri`` for ``register_version``.

        Raises:
            ConfigurationError: the job has no name, or no such output.
        """
        if not self.name:
            raise ConfigurationError("the job has no name (read it from the service)")
        if output not in self.outputs:
            raise ConfigurationError(
                f"job {self.name} has no output {output!r}; outputs: {sorted(self.outputs)}"
            )
        uri = f"azureml://jobs/{self.name}/outputs/{output}"
        return f"{uri}/paths/{path.lstrip('/')}" if path else uri


# -- model references ----------------------------------------------------------------------------

_NAME = r"[A-Za-z0-9][A-Za-z0-9._\-]*"
_VERSION = r"[A-Za-z0-9][A-Za-z0-9._\-]*"
_SHORT = re.compile(rf"azureml:(?P<name>{_NAME}):(?P<version>{_VERSION})")
_ARM = re.compile(
    rf"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    rf"/providers/{PROVIDER}/workspaces/(?P<ws>[^/]+)"
    rf"/models/(?P<name>{_NAME})/versions/(?P<version>{_VERSION})/?",
    re.IGNORECASE,
)
_REGISTRY = re.compile(
    rf"azureml://registries/(?P<registry>[^/]+)/models/(?P<name>{_NAME})"
    rf"/versions/(?P<version>{_VERSION})/?",
    re.IGNORECASE,
)
_WORKSPACE = re.compile(
    rf"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    rf"/providers/{PROVIDER}/workspaces/(?P<ws>[^/]+)(/|$)",
    re.IGNORECASE,
)

#: Why a Studio (classic) ``.ilearner`` is no v2 model (V2-NOTES 7.3).
ILEARNER_REFUSAL = (
    "is a Studio (classic) trained model (.ilearner): Azure Machine Learning v2 has no "
    "loader for it (the designer has no 'Load Trained Model', and the migration path is "
    "to rebuild and retrain, not import); retrain the model in v2, register the result "
    "as a model version, and deploy that (azureml:<name>:<version>)"
)


def _workspace_of(resource_id: str | None) -> tuple[str, str, str] | None:
    match = _WORKSPACE.match(resource_id or "")
    return (match["sub"], match["rg"], match["ws"]) if match else None


def _shown(text: str) -> str:
    parts = urllib.parse.urlsplit(text)
    return urllib.parse.urlunsplit(parts._replace(query="")) if parts.query else text


@attrs.frozen
class ModelRef:
    """A model version, named in a form users have; :meth:`parse` reads them all.

    Attributes:
        name: the model's name.
        version: its version.
        registry: the registry, for a registry model (else None: a workspace model).
        subscription_id, resource_group, workspace_name: the workspace, when the
            reference named one (an ARM id).

    Example:
        >>> ref = ModelRef.parse("azureml:census:3")
        >>> ref.arm_id("sub", "rg", "ws")
        '/subscriptions/sub/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/models/census/versions/3'
        >>> ModelRef.parse(ref.arm_id("sub", "rg", "ws").upper().replace("CENSUS", "census")).short
        'azureml:census:3'
    """

    name: str
    version: str
    registry: str | None = None
    subscription_id: str | None = None
    resource_group: str | None = None
    workspace_name: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Read ``azureml:<name>:<version>``, the version's ARM id (segment names in any
        case, optionally after ``azureml:``), or
        ``azureml://registries/<registry>/models/<name>/versions/<version>``.

        Raises:
            ConfigurationError: anything else, saying why (an ``.ilearner`` blob: why v2
                cannot load it; a label such as ``@latest``, a path or a job output: to
                register it as a model version first).
        """
        if not isinstance(text, str) or not text.strip():
            raise ConfigurationError("a model reference is required (azureml:<name>:<version>)")
        value = text.strip()
        path = urllib.parse.urlsplit(value).path
        if path.lower().rstrip("/").endswith(".ilearner"):
            raise ConfigurationError(f"{_shown(value)!r} {ILEARNER_REFUSAL}")
        if (match := _SHORT.fullmatch(value)) is not None:
            return cls(match["name"], match["version"])
        arm = value[len("azureml:") :] if value.lower().startswith("azureml:/s") else value
        if (match := _ARM.fullmatch(arm)) is not None:
            return cls(
                match["name"],
                match["version"],
                subscription_id=match["sub"],
                resource_group=match["rg"],
                workspace_name=match["ws"],
            )
        if (match := _REGISTRY.fullmatch(value)) is not None:
            return cls(match["name"], match["version"], registry=match["registry"])
        if re.fullmatch(rf"azureml:{_NAME}@\w+", value):
            raise ConfigurationError(
                f"{value!r} names a label, not a version: give azureml:<name>:<version>"
            )
        raise ConfigurationError(
            f"{_shown(value)!r} is not a model version reference: give "
            "azureml:<name>:<version>, the version's ARM id (/subscriptions/.../workspaces/"
            "<ws>/models/<name>/versions/<version>) or azureml://registries/<registry>/"
            "models/<name>/versions/<version>; files, datastore paths and job outputs are "
            "registered as a model version first (register_version)"
        )

    def workspace(self) -> tuple[str, str, str] | None:
        """``(subscription, resource group, workspace)`` when the reference named one."""
        if self.subscription_id and self.resource_group and self.workspace_name:
            return (self.subscription_id, self.resource_group, self.workspace_name)
        return None

    def arm_id(self, subscription_id: str, resource_group: str, workspace: str) -> str:
        """The version's ARM id in a workspace.

        Raises:
            ConfigurationError: a registry model (it has no workspace id), or a reference
                that named another workspace.
        """
        if self.registry is not None:
            raise ConfigurationError(
                f"{self.registry_uri} is a registry model: it has no workspace ARM id"
            )
        named = self.workspace()
        if named is not None and tuple(p.lower() for p in named) != tuple(
            p.lower() for p in (subscription_id, resource_group, workspace)
        ):
            raise ConfigurationError(
                f"model {self.short} belongs to workspace {named[2]} of resource group "
                f"{named[1]}, not to {workspace} of {resource_group}"
            )
        return (
            f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
            f"/providers/{PROVIDER}/workspaces/{workspace}"
            f"/models/{self.name}/versions/{self.version}"
        )

    @property
    def short(self) -> str:
        """``azureml:<name>:<version>``."""
        return f"azureml:{self.name}:{self.version}"

    @property
    def registry_uri(self) -> str:
        """``azureml://registries/<registry>/models/<name>/versions/<version>``.

        Raises:
            ConfigurationError: not a registry model.
        """
        if self.registry is None:
            raise ConfigurationError(f"{self.short} is a workspace model, not a registry one")
        return f"azureml://registries/{self.registry}/models/{self.name}/versions/{self.version}"

    def same_version(self, other: ModelRef) -> bool:
        """True when both name the same version (names compared case-insensitively)."""
        return (
            self.name.lower() == other.name.lower()
            and self.version == other.version
            and (self.registry or "").lower() == (other.registry or "").lower()
        )
