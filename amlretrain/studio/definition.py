"""``WebServiceDefinition``: the ARM ``Microsoft.MachineLearning/webServices`` resource.

Typed, frozen attrs models for both api-versions (2017-01-01, where node parameters are
``{value, certificateThumbprint}`` objects, and 2016-05-01-preview, where they are plain
strings), and lossless: ``WebServiceDefinition.from_dict(x).to_dict() == x`` for every
document, unknown members, key order and key casing included. Members are read
case-insensitively (the spec's own examples and PowerShell exports use PascalCase inside
``package``; live responses use camelCase) and written back as they were read.

Files use the format of ``Export-AzMlWebService`` / ``Import-AzMlWebService`` (indented
JSON), so they move both ways between PowerShell and amlretrain. A file loaded and saved
unchanged comes back byte for byte; a rewritten one keeps its encoding, BOM, newlines,
indentation and key order, and only the changed value differs.

Example:
    >>> d = WebServiceDefinition.from_dict({"properties": {"packageType": "Graph"}})
    >>> d.properties.package_type
    'Graph'
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from amlretrain._html import definition_html
from amlretrain._redact import redact
from amlretrain._wire import (
    JsonText,
    ListOf,
    MapOf,
    MapOfParameters,
    Nested,
    WireModel,
    find_key,
    read_json,
    structure,
    unstructure,
    wire,
    write_json,
)
from amlretrain.errors import ConfigurationError, DefinitionError
from amlretrain.studio._validate import validate_document
from amlretrain.studio.ilearner import (
    READ_ONLY_PROPERTIES,
    READ_ONLY_RESOURCE_FIELDS,
    TrainedModel,
    check_model_uri,
    select_trained_model,
)
from amlretrain.studio.ilearner import diff as _diff
from amlretrain.studio.ilearner import trained_models as _trained_models

if TYPE_CHECKING:
    from datetime import datetime

    import jsonpatch

__all__ = [
    "READ_ONLY_PROPERTIES",
    "READ_ONLY_RESOURCE_FIELDS",
    "AssetItem",
    "BlobLocation",
    "ColumnSpecification",
    "CommitmentPlan",
    "DiagnosticsConfiguration",
    "ExampleRequest",
    "GraphEdge",
    "GraphNode",
    "GraphPackage",
    "GraphParameter",
    "GraphParameterLink",
    "MachineLearningWorkspace",
    "ModeValueInfo",
    "ModuleAssetParameter",
    "Port",
    "RealtimeConfiguration",
    "ServiceInputOutputSpecification",
    "StorageAccount",
    "TableSpecification",
    "WebServiceDefinition",
    "WebServiceKeys",
    "WebServiceParameter",
    "WebServiceProperties",
]


def _redacted_repr(value: Any) -> str:
    return repr(redact(value)) if isinstance(value, str) else repr(value)


@attrs.frozen(kw_only=True)
class WebServiceKeys(WireModel):
    """The web service's API keys (never shown in ``repr``)."""

    primary: str | None = attrs.field(default=None, repr=False, metadata=wire("primary"))
    secondary: str | None = attrs.field(default=None, repr=False, metadata=wire("secondary"))


@attrs.frozen(kw_only=True)
class RealtimeConfiguration(WireModel):
    """Request-response settings."""

    max_concurrent_calls: int | None = attrs.field(
        default=None, metadata=wire("maxConcurrentCalls")
    )


@attrs.frozen(kw_only=True)
class DiagnosticsConfiguration(WireModel):
    """Diagnostics level (``None``, ``Error``, ``All``) and expiry."""

    level: str | None = attrs.field(default=None, metadata=wire("level"))
    expiry: str | None = attrs.field(default=None, metadata=wire("expiry"))


@attrs.frozen(kw_only=True)
class StorageAccount(WireModel):
    """The storage account of the service; GET returns the name only."""

    name: str | None = attrs.field(default=None, metadata=wire("name"))
    key: str | None = attrs.field(default=None, repr=False, metadata=wire("key"))


@attrs.frozen(kw_only=True)
class MachineLearningWorkspace(WireModel):
    """The Studio workspace the service belongs to."""

    id: str | None = attrs.field(default=None, metadata=wire("id"))


@attrs.frozen(kw_only=True)
class CommitmentPlan(WireModel):
    """The commitment plan (set at creation; GET does not return it)."""

    id: str | None = attrs.field(default=None, metadata=wire("id"))


@attrs.frozen(kw_only=True)
class ColumnSpecification(WireModel):
    """One column of an input or output table."""

    type: str | None = attrs.field(default=None, metadata=wire("type"))
    format: str | None = attrs.field(default=None, metadata=wire("format"))
    enum: list[Any] | None = attrs.field(default=None, metadata=wire("enum"))
    is_nullable: bool | None = attrs.field(default=None, metadata=wire("x-ms-isnullable"))
    is_ordered: bool | None = attrs.field(default=None, metadata=wire("x-ms-isordered"))


@attrs.frozen(kw_only=True)
class TableSpecification(WireModel):
    """One input or output table: its columns."""

    title: str | None = attrs.field(default=None, metadata=wire("title"))
    description: str | None = attrs.field(default=None, metadata=wire("description"))
    type: str | None = attrs.field(default=None, metadata=wire("type"))
    format: str | None = attrs.field(default=None, metadata=wire("format"))
    properties: dict[str, ColumnSpecification] | None = attrs.field(
        default=None, metadata=wire("properties", MapOf(ColumnSpecification))
    )


@attrs.frozen(kw_only=True)
class ServiceInputOutputSpecification(WireModel):
    """The service's inputs or outputs: a table per port."""

    title: str | None = attrs.field(default=None, metadata=wire("title"))
    description: str | None = attrs.field(default=None, metadata=wire("description"))
    type: str | None = attrs.field(default=None, metadata=wire("type"))
    properties: dict[str, TableSpecification] | None = attrs.field(
        default=None, metadata=wire("properties", MapOf(TableSpecification))
    )


@attrs.frozen(kw_only=True)
class ExampleRequest(WireModel):
    """Sample rows per input (first row: column names) and global parameters."""

    inputs: dict[str, list[list[Any]]] | None = attrs.field(default=None, metadata=wire("inputs"))
    global_parameters: dict[str, Any] | None = attrs.field(
        default=None, metadata=wire("globalParameters")
    )


@attrs.frozen(kw_only=True)
class BlobLocation(WireModel):
    """Where an asset lives: ``uri`` (its SAS is redacted in ``repr``) and credentials."""

    uri: str | None = attrs.field(default=None, repr=_redacted_repr, metadata=wire("uri"))
    credentials: str | None = attrs.field(default=None, repr=False, metadata=wire("credentials"))


@attrs.frozen(kw_only=True)
class Port(WireModel):
    """An input or output port of an asset."""

    type: str | None = attrs.field(default=None, metadata=wire("type"))


@attrs.frozen(kw_only=True)
class ModuleAssetParameter(WireModel):
    """A parameter of a module asset."""

    name: str | None = attrs.field(default=None, metadata=wire("name"))
    parameter_type: str | None = attrs.field(default=None, metadata=wire("parameterType"))
    mode_values_info: dict[str, ModeValueInfo] | None = attrs.field(
        default=None, metadata=wire("modeValuesInfo", MapOf(lambda: ModeValueInfo))
    )


@attrs.frozen(kw_only=True)
class ModeValueInfo(WireModel):
    """Nested parameters of one mode of a module parameter."""

    interface_string: str | None = attrs.field(default=None, metadata=wire("interfaceString"))
    parameters: tuple[ModuleAssetParameter, ...] | None = attrs.field(
        default=None, metadata=wire("parameters", ListOf(ModuleAssetParameter))
    )


@attrs.frozen(kw_only=True)
class AssetItem(WireModel):
    """An asset of the graph: a module, or a resource such as a trained model."""

    name: str | None = attrs.field(default=None, metadata=wire("name"))
    id: str | None = attrs.field(default=None, metadata=wire("id"))
    type: str | None = attrs.field(default=None, metadata=wire("type"))
    location_info: BlobLocation | None = attrs.field(
        default=None, metadata=wire("locationInfo", Nested(BlobLocation))
    )
    input_ports: dict[str, Port] | None = attrs.field(
        default=None, metadata=wire("inputPorts", MapOf(Port))
    )
    output_ports: dict[str, Port] | None = attrs.field(
        default=None, metadata=wire("outputPorts", MapOf(Port))
    )
    metadata: dict[str, str] | None = attrs.field(default=None, metadata=wire("metadata"))
    parameters: tuple[ModuleAssetParameter, ...] | None = attrs.field(
        default=None, metadata=wire("parameters", ListOf(ModuleAssetParameter))
    )


@attrs.frozen(kw_only=True)
class WebServiceParameter(WireModel):
    """A parameter value (2017-01-01); ``certificate_thumbprint`` is set when encrypted."""

    value: Any = attrs.field(default=None, metadata=wire("value"))
    certificate_thumbprint: str | None = attrs.field(
        default=None, metadata=wire("certificateThumbprint")
    )


@attrs.frozen(kw_only=True)
class GraphNode(WireModel):
    """A node of the graph: exactly one of ``asset_id``, ``input_id``, ``output_id``.

    ``parameters`` values are :class:`WebServiceParameter` (2017-01-01) or plain
    strings (2016-05-01-preview).
    """

    asset_id: str | None = attrs.field(default=None, metadata=wire("assetId"))
    input_id: str | None = attrs.field(default=None, metadata=wire("inputId"))
    output_id: str | None = attrs.field(default=None, metadata=wire("outputId"))
    parameters: dict[str, WebServiceParameter | Any] | None = attrs.field(
        default=None, metadata=wire("parameters", MapOfParameters(WebServiceParameter))
    )


@attrs.frozen(kw_only=True)
class GraphEdge(WireModel):
    """An edge from a node's output port to a node's input port."""

    source_node_id: str | None = attrs.field(default=None, metadata=wire("sourceNodeId"))
    source_port_id: str | None = attrs.field(default=None, metadata=wire("sourcePortId"))
    target_node_id: str | None = attrs.field(default=None, metadata=wire("targetNodeId"))
    target_port_id: str | None = attrs.field(default=None, metadata=wire("targetPortId"))


@attrs.frozen(kw_only=True)
class GraphParameterLink(WireModel):
    """Where a graph parameter is applied: a node and its parameter key."""

    node_id: str | None = attrs.field(default=None, metadata=wire("nodeId"))
    parameter_key: str | None = attrs.field(default=None, metadata=wire("parameterKey"))


@attrs.frozen(kw_only=True)
class GraphParameter(WireModel):
    """A global parameter of the graph."""

    description: str | None = attrs.field(default=None, metadata=wire("description"))
    type: str | None = attrs.field(default=None, metadata=wire("type"))
    links: tuple[GraphParameterLink, ...] | None = attrs.field(
        default=None, metadata=wire("links", ListOf(GraphParameterLink))
    )


@attrs.frozen(kw_only=True)
class GraphPackage(WireModel):
    """The graph: nodes, edges and graph parameters."""

    nodes: dict[str, GraphNode] | None = attrs.field(
        default=None, metadata=wire("nodes", MapOf(GraphNode))
    )
    edges: tuple[GraphEdge, ...] | None = attrs.field(
        default=None, metadata=wire("edges", ListOf(GraphEdge))
    )
    graph_parameters: dict[str, GraphParameter] | None = attrs.field(
        default=None, metadata=wire("graphParameters", MapOf(GraphParameter))
    )


@attrs.frozen(kw_only=True)
class WebServiceProperties(WireModel):
    """The ``properties`` of a web service (the Graph package type)."""

    title: str | None = attrs.field(default=None, metadata=wire("title"))
    description: str | None = attrs.field(default=None, metadata=wire("description"))
    created_on: str | None = attrs.field(default=None, metadata=wire("createdOn"))
    modified_on: str | None = attrs.field(default=None, metadata=wire("modifiedOn"))
    provisioning_state: str | None = attrs.field(default=None, metadata=wire("provisioningState"))
    keys: WebServiceKeys | None = attrs.field(
        default=None, metadata=wire("keys", Nested(WebServiceKeys))
    )
    read_only: bool | None = attrs.field(default=None, metadata=wire("readOnly"))
    swagger_location: str | None = attrs.field(default=None, metadata=wire("swaggerLocation"))
    expose_sample_data: bool | None = attrs.field(default=None, metadata=wire("exposeSampleData"))
    realtime_configuration: RealtimeConfiguration | None = attrs.field(
        default=None, metadata=wire("realtimeConfiguration", Nested(RealtimeConfiguration))
    )
    diagnostics: DiagnosticsConfiguration | None = attrs.field(
        default=None, metadata=wire("diagnostics", Nested(DiagnosticsConfiguration))
    )
    storage_account: StorageAccount | None = attrs.field(
        default=None, metadata=wire("storageAccount", Nested(StorageAccount))
    )
    machine_learning_workspace: MachineLearningWorkspace | None = attrs.field(
        default=None, metadata=wire("machineLearningWorkspace", Nested(MachineLearningWorkspace))
    )
    commitment_plan: CommitmentPlan | None = attrs.field(
        default=None, metadata=wire("commitmentPlan", Nested(CommitmentPlan))
    )
    input: ServiceInputOutputSpecification | None = attrs.field(
        default=None, metadata=wire("input", Nested(ServiceInputOutputSpecification))
    )
    output: ServiceInputOutputSpecification | None = attrs.field(
        default=None, metadata=wire("output", Nested(ServiceInputOutputSpecification))
    )
    example_request: ExampleRequest | None = attrs.field(
        default=None, metadata=wire("exampleRequest", Nested(ExampleRequest))
    )
    assets: dict[str, AssetItem] | None = attrs.field(
        default=None, metadata=wire("assets", MapOf(AssetItem))
    )
    parameters: dict[str, WebServiceParameter | Any] | None = attrs.field(
        default=None, metadata=wire("parameters", MapOfParameters(WebServiceParameter))
    )
    package_type: str | None = attrs.field(default=None, metadata=wire("packageType"))
    payloads_in_blob_storage: bool | None = attrs.field(
        default=None, metadata=wire("payloadsInBlobStorage")
    )
    payloads_location: BlobLocation | None = attrs.field(
        default=None, metadata=wire("payloadsLocation", Nested(BlobLocation))
    )
    package: GraphPackage | None = attrs.field(
        default=None, metadata=wire("package", Nested(GraphPackage))
    )


@attrs.frozen(kw_only=True, repr=False)
class WebServiceDefinition(WireModel):
    """A New (ARM) web service definition, typed and lossless.

    Build one with :meth:`load`, :meth:`from_json` or :meth:`from_dict`; every change
    makes a new object (``attrs.evolve`` or :meth:`with_trained_model`).

    Attributes:
        id: the ARM resource id (set by the service).
        name: the web service name (set by the service in 2017-01-01).
        location: the Azure region (``"South Central US"``).
        type: ``Microsoft.MachineLearning/webServices``.
        tags: the resource tags.
        properties: the :class:`WebServiceProperties`.

    Example:
        >>> d = WebServiceDefinition.from_dict({"name": "svc", "properties": {
        ...     "packageType": "Graph", "assets": {"a1": {"name": "M [trained model]",
        ...     "type": "Resource", "locationInfo": {"uri": "https://s.blob.core.windows.net/c/m.ilearner"}}}}})
        >>> [m.asset_id for m in d.trained_models]
        ['a1']
        >>> d2 = d.with_trained_model("https://s.blob.core.windows.net/c/new.ilearner")
        >>> [op["op"] for op in d.diff(d2)]
        ['test', 'replace']
    """

    id: str | None = attrs.field(default=None, metadata=wire("id"))
    name: str | None = attrs.field(default=None, metadata=wire("name"))
    location: str | None = attrs.field(default=None, metadata=wire("location"))
    type: str | None = attrs.field(default=None, metadata=wire("type"))
    tags: dict[str, str] | None = attrs.field(default=None, metadata=wire("tags"))
    properties: WebServiceProperties | None = attrs.field(
        default=None, metadata=wire("properties", Nested(WebServiceProperties))
    )
    # The document as written, computed once per object (it is immutable); read-only.
    _documents: dict[bool, dict[str, Any]] = attrs.field(
        init=False, factory=dict, eq=False, repr=False
    )
    # The JSON text it was read from (or derived from), so save() writes it back as it was.
    _text: JsonText | None = attrs.field(init=False, default=None, eq=False, repr=False)

    # -- reading -----------------------------------------------------------------------

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, validate: bool = True, source: str | None = None
    ) -> WebServiceDefinition:
        """Build from a JSON-like mapping (lossless).

        Args:
            data: the resource document, as ARM returns it or a file holds it.
            validate: check it first (see :meth:`validate`); pass False for the sparse
                documents of list responses.
            source: where it came from, for error messages.

        Raises:
            DefinitionError: not an object, or (with ``validate``) invalid.
        """
        if validate:
            validate_document(data, source=source)
        elif not isinstance(data, Mapping):
            raise DefinitionError("a web-service definition is a JSON object", source=source)
        return structure(cls, data)

    @classmethod
    def _from_text(
        cls, parsed: JsonText, *, validate: bool, source: str | None
    ) -> WebServiceDefinition:
        data = parsed.document
        if validate:
            validate_document(
                data, source=source, duplicates=parsed.duplicates, numbers=parsed.odd_numbers
            )
        elif not isinstance(data, Mapping):
            raise DefinitionError("a web-service definition is a JSON object", source=source)
        # ``data`` is fresh parser output that nobody else holds: no need to copy it.
        definition = structure(cls, data, copy=False)
        # Lossless: the document read is exactly what unstructure() would write back.
        definition.share_document(data)
        object.__setattr__(definition, "_text", parsed)
        return definition

    @classmethod
    def from_json(
        cls, text: str | bytes, *, validate: bool = True, source: str | None = None
    ) -> WebServiceDefinition:
        """Parse JSON text (or bytes: UTF-8, or UTF-16/32, with or without a BOM).

        :meth:`save` writes the result back as it was read (see :meth:`save`).

        Raises:
            DefinitionError: not JSON (with line and column), not an object, or invalid.
        """
        return cls._from_text(read_json(text, source=source), validate=validate, source=source)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, validate: bool = True) -> WebServiceDefinition:
        """Read a definition file (what ``Export-AzMlWebService -OutputFile`` writes).

        Raises:
            ConfigurationError: the file cannot be read.
            DefinitionError: its content is not a valid definition.
        """
        source = os.fspath(path)
        try:
            data = Path(path).read_bytes()
        except OSError as err:
            raise ConfigurationError(f"cannot read {source}: {err.strerror}") from err
        parsed = read_json(data, source=source)
        del data  # a big file is not held twice while it is structured
        return cls._from_text(parsed, validate=validate, source=source)

    def validate(self, *, source: str | None = None, full: bool = True) -> WebServiceDefinition:
        """Check the definition and return it.

        Checks the JSON first: no member name twice in one object (in the file it was
        read from), no ``NaN``/``Infinity``, no number out of range (beyond a double, or
        an integer beyond ±(2**53 - 1), the integers a double holds exactly). Then, with
        ``full``: ``properties`` is an object; ``packageType`` is present and known; the
        assets are inline (not ``payloadsInBlobStorage``); every asset has a
        ``locationInfo.uri``; nodes name existing assets; edges name existing nodes.

        Args:
            source: where it came from, for the error message.
            full: False checks only the JSON (for a document to send that need not be
                complete, such as one read from the service).

        Raises:
            DefinitionError: naming the JSON path of the first problem.
        """
        text = self._text
        validate_document(
            self.document(),
            source=source,
            duplicates=text.duplicates if text is not None else (),
            origin=text.document if text is not None else None,
            full=full,
        )
        return self

    # -- writing -----------------------------------------------------------------------

    def to_dict(self, *, canonical: bool = False) -> dict[str, Any]:
        """The document, exactly as read plus the changes made.

        Args:
            canonical: write known members under their camelCase names (for requests).
        """
        return unstructure(self, canonical=canonical)

    def document(self, *, canonical: bool = False) -> Mapping[str, Any]:
        """The document like :meth:`to_dict`, computed once and shared: do not modify it.

        For reading (serializing, comparing); :meth:`to_dict` gives a copy to change.
        """
        doc = self._documents.get(canonical)
        if doc is None:
            doc = unstructure(self, canonical=canonical, copy=False)
            self._documents[canonical] = doc
        return doc

    def share_document(self, document: dict[str, Any]) -> None:
        """Set the (non-canonical) :meth:`document` this object would compute.

        For code that derives a definition from another and can build its document by
        sharing the unchanged parts (see :meth:`with_trained_model`);
        ``document`` must equal ``unstructure(self)`` and is never modified afterwards.
        """
        self._documents[False] = document

    def keep_format(self, original: WebServiceDefinition) -> None:
        """Make :meth:`save` write this definition in the format ``original`` was read in.

        For code that derives a definition from another (see :meth:`with_trained_model`):
        the file keeps its encoding, BOM, newlines, indentation and number spellings, and
        only the changed values differ.
        """
        object.__setattr__(self, "_text", original._text)

    def to_json(self, *, indent: int | None = 2) -> str:
        """JSON text, indented like ``Export-AzMlWebService`` writes it."""
        return json.dumps(self.document(), indent=indent, ensure_ascii=False)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the definition to ``path`` atomically (temporary file + rename).

        A definition read from a file (:meth:`load`, :meth:`from_json`) is written as it
        was read: unchanged, byte for byte (encoding, BOM, newlines, indentation, spacing,
        number spellings); rewritten (:meth:`with_trained_model`), with only the changed
        values replaced in that text. Any other definition is written as UTF-8 indented
        by two spaces, like ``Export-AzMlWebService``.

        A crash never leaves a half-written file: the old file stays until the new one
        is complete. An existing file keeps its permissions.

        Raises:
            ConfigurationError: the file cannot be written.
        """
        target = Path(path)
        try:
            mode = target.stat().st_mode & 0o7777 if target.exists() else None
            fd, tmp = tempfile.mkstemp(
                prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or Path(".")
            )
        except OSError as err:
            raise ConfigurationError(f"cannot write {target}: {err.strerror}") from err
        try:
            with os.fdopen(fd, "wb") as handle:
                write_json(handle, self.document(), self._text)
                handle.flush()
                os.fsync(handle.fileno())
            if mode is not None:
                os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException as err:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(err, OSError):
                raise ConfigurationError(f"cannot write {target}: {err.strerror}") from err
            raise

    def for_put(self) -> dict[str, Any]:
        """The document for an explicit PUT: camelCase, without the read-only members.

        Drops ``id``, ``name``, ``type`` and ``properties.createdOn``, ``modifiedOn``,
        ``provisioningState``, ``swaggerLocation``. The definition is validated first
        (:meth:`validate`), so an invalid one is never sent.

        Raises:
            DefinitionError: the definition is invalid.
        """
        self.validate()
        doc = self.to_dict(canonical=True)
        for key in READ_ONLY_RESOURCE_FIELDS:
            doc.pop(key, None)
        props = doc.get("properties")
        if isinstance(props, dict):
            for key in READ_ONLY_PROPERTIES:
                props.pop(key, None)
        return doc

    def without_secrets(self) -> WebServiceDefinition:
        """A copy safe to share: no API keys, storage key, asset credentials or SAS.

        Drops ``properties.keys``, ``storageAccount.key`` and every asset's
        ``locationInfo.credentials``, and removes the query string (the SAS) of asset
        URIs that carry a signature (``sig=``): the documented form of a trained-model
        reference is the blob URL alone.
        """
        props = self.properties
        if props is None:
            return self
        changes: dict[str, Any] = {}
        if props.storage_account is not None:
            changes["storage_account"] = _forget(props.storage_account, "key")
        if props.assets:
            changes["assets"] = {
                asset_id: (
                    attrs.evolve(asset, location_info=_shareable(asset.location_info))
                    if asset.location_info is not None
                    else asset
                )
                for asset_id, asset in props.assets.items()
            }
        stripped = _forget(attrs.evolve(props, **changes), "keys")
        shared = attrs.evolve(self, properties=stripped)
        shared.keep_format(self)
        return shared

    # -- views -------------------------------------------------------------------------

    @property
    def package_type(self) -> str | None:
        """``properties.packageType`` (``"Graph"``)."""
        return self.properties.package_type if self.properties else None

    @property
    def is_read_only(self) -> bool:
        """True when the service is read-only (it can then only be deleted)."""
        return bool(self.properties and self.properties.read_only is True)

    @property
    def assets(self) -> dict[str, AssetItem]:
        """``properties.assets`` (empty when absent)."""
        return dict(self.properties.assets or {}) if self.properties else {}

    @property
    def api_shape(self) -> str:
        """Which api-version's shape the document has.

        ``"2016-05-01-preview"`` when node or global parameters are plain values,
        ``"2017-01-01"`` when they are ``{value, certificateThumbprint}`` objects, or when
        the document uses members only 2017-01-01 has (``payloadsInBlobStorage``);
        ``"unknown"`` when nothing tells.
        """
        props = self.properties
        if props is None:
            return "unknown"
        values: list[Any] = list((props.parameters or {}).values())
        for node in (props.package.nodes or {}).values() if props.package else ():
            values.extend((node.parameters or {}).values())
        if any(isinstance(v, WebServiceParameter) for v in values):
            return "2017-01-01"
        if values:
            return "2016-05-01-preview"
        if props.payloads_in_blob_storage is not None or props.payloads_location is not None:
            return "2017-01-01"
        return "unknown"

    @property
    def trained_models(self) -> tuple[TrainedModel, ...]:
        """The assets that hold a trained model (see ``ilearner.trained_models``)."""
        return _trained_models(self)

    def with_trained_model(
        self,
        uri: str,
        asset: str | None = None,
        credentials: str | None = None,
        *,
        now: datetime | None = None,
    ) -> WebServiceDefinition:
        """A new definition in which only the trained model's uri (and credentials) changed.

        Saved (:meth:`save`), it differs from the file this one was read from in that
        value only.

        Args:
            uri: the new model's blob URL (``BaseLocation + RelativeLocation``, optionally
                with a SAS), checked with :func:`~amlretrain.studio.ilearner.check_model_uri`.
            asset: the asset id or name; when None, the only trained model.
            credentials: a new ``locationInfo.credentials``, when given.
            now: the time the SAS expiry is checked against (default: now).

        Raises:
            ConfigurationError: a bad uri, or no / an ambiguous asset (the message lists
                the candidates).
        """
        check_model_uri(uri, now=now)
        asset_id = select_trained_model(self, asset)
        props = self.properties
        item = props.assets.get(asset_id) if props is not None and props.assets else None
        if props is None or props.assets is None or item is None:
            raise ConfigurationError(f"asset {asset_id!r} is not an object: it cannot be rewritten")
        location = item.location_info or BlobLocation()
        location = attrs.evolve(location, uri=uri)
        if credentials is not None:
            location = attrs.evolve(location, credentials=credentials)
        assets = dict(props.assets)
        assets[asset_id] = attrs.evolve(item, location_info=location)
        new = attrs.evolve(self, properties=attrs.evolve(props, assets=assets))
        _share_document(self, new, asset_id, location)
        new.keep_format(self)  # saved, only the changed value differs from the file
        return new

    def diff(self, other: WebServiceDefinition) -> jsonpatch.JsonPatch:
        """The minimal RFC 6902 JSON Patch from this definition to ``other``.

        See :func:`amlretrain.studio.ilearner.diff`.
        """
        return _diff(self, other)

    def __repr__(self) -> str:
        props = self.properties
        title = props.title if props else None
        models = ", ".join(f"{m.asset_id}={m.uri_redacted}" for m in self.trained_models)
        return (
            f"WebServiceDefinition(name={self.name!r}, title={title!r}, "
            f"package_type={self.package_type!r}, assets={len(self.assets)}, "
            f"trained_models=[{models}])"
        )

    def _repr_html_(self) -> str:
        props = self.properties
        trained = {m.asset_id for m in self.trained_models}
        return definition_html(
            title=str(props.title if props and props.title else self.name or "web service"),
            package_type=self.package_type,
            rows=[
                (
                    asset_id,
                    asset.name,
                    asset.type,
                    asset_id in trained,
                    asset.location_info.uri if asset.location_info else "",
                )
                for asset_id, asset in self.assets.items()
            ],
            read_only=self.is_read_only,
        )


def _share_document(
    old: WebServiceDefinition, new: WebServiceDefinition, asset_id: str, location: BlobLocation
) -> None:
    """Give ``new`` the document of ``old`` with only the asset's locationInfo replaced.

    The document shares every other member with ``old``'s (both are read-only), so a big
    definition is not written out again, and a diff compares by identity first. When a
    member on the way is missing or oddly shaped, ``new`` computes its own.
    """
    doc = old.document()
    props_key = find_key(doc, "properties")
    props = doc.get(props_key) if props_key else None
    assets_key = find_key(props, "assets") if isinstance(props, Mapping) else None
    assets = props.get(assets_key) if assets_key and isinstance(props, Mapping) else None
    asset = assets.get(asset_id) if isinstance(assets, Mapping) else None
    loc_key = find_key(asset, "locationInfo") if isinstance(asset, Mapping) else None
    if not (props_key and assets_key and loc_key and isinstance(asset, Mapping)):
        return
    assert isinstance(props, Mapping) and isinstance(assets, Mapping)
    new_asset = {**asset, loc_key: unstructure(location)}
    new_doc = {**doc, props_key: {**props, assets_key: {**assets, asset_id: new_asset}}}
    new.share_document(new_doc)


M = TypeVar("M", bound=WireModel)


def _forget(model: M, *names: str) -> M:
    """``model`` without the members ``names`` (fields None, and not written back)."""
    lowered = {n.lower() for n in names}
    wire_names = {
        f.name: f.metadata["wire"] for f in attrs.fields(type(model)) if "wire" in f.metadata
    }
    cleared = {attr: None for attr, wire in wire_names.items() if wire.lower() in lowered}
    keys = tuple(k for k in model.wire_keys if k.lower() not in lowered)
    extra = {k: v for k, v in model.extra.items() if k.lower() not in lowered}
    return attrs.evolve(model, wire_keys=keys, extra=extra, **cleared)


def _shareable(location: BlobLocation) -> BlobLocation:
    uri = location.uri
    if isinstance(uri, str) and "sig=" in uri.lower():
        uri = uri.split("?", 1)[0]
    return _forget(attrs.evolve(location, uri=uri), "credentials")
