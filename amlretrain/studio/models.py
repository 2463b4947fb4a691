"""The classic management API's typed models: web services, endpoints, their resources.

Frozen attrs classes read tolerantly through :mod:`amlretrain._wire`, the one tolerant
reader (any key casing, values converted leniently, unknown members kept in ``extra``);
endpoint keys never appear in a repr. Pure code: no requests are made here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from amlretrain._wire import Lenient, as_bool, as_int, as_text, ci_get, structure, wire
from amlretrain.blobs import BlobRef
from amlretrain.errors import ConfigurationError, ServiceError

__all__ = ["ClassicWebService", "Endpoint", "EndpointResource"]


def _name(value: Any) -> str:
    return str(value or "")


def _location(value: Any) -> BlobRef | None:
    if not isinstance(value, Mapping):
        return None
    try:
        return BlobRef.from_bes(value)
    except ConfigurationError:
        return None


def _resources(value: Any) -> tuple[EndpointResource, ...]:
    if not isinstance(value, list):  # tolerant: a malformed member is no list
        return ()
    return tuple(EndpointResource.from_dict(r) for r in value if isinstance(r, Mapping))


# How the members are read (the classic API's answers are only read, never written back).
_TEXT = Lenient(as_text)
_INT = Lenient(as_int)
_BOOL = Lenient(as_bool)
_NAME = Lenient(_name, missing="")  # the identifying name: "" when absent
_LOCATION = Lenient(_location)
_RESOURCES = Lenient(_resources)


def _field(name: str, kind: Lenient = _TEXT, **kw: Any) -> Any:
    return attrs.field(default=None, metadata=wire(name, kind), **kw)


@attrs.frozen(kw_only=True)
class ClassicWebService:
    """A classic web service (management API ``WebService``).

    Attributes:
        id, name, description, creation_time, workspace_id: as the service reports them.
        default_endpoint_name: the endpoint that follows the experiment (never patched).
        endpoint_count: how many endpoints the service has.
        extra: members this version does not model, as read.
    """

    id: str = attrs.field(metadata=wire("Id", _NAME))
    name: str | None = _field("Name")
    description: str | None = _field("Description")
    creation_time: str | None = _field("CreationTime")
    workspace_id: str | None = _field("WorkspaceId")
    default_endpoint_name: str | None = _field("DefaultEndpointName")
    endpoint_count: int | None = _field("EndpointCount", _INT)
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassicWebService:
        """Read the service's JSON (any key casing; unknown members kept in ``extra``)."""
        return structure(cls, data)

    def refuse_default(self, endpoint_name: str, verb: str = "patched") -> None:
        """Refuse ``endpoint_name`` when it is this service's default endpoint.

        Raises:
            ConfigurationError: it is (the default endpoint follows the experiment: a
                retrained model cannot be swapped into it).
        """
        default = self.default_endpoint_name
        if default is not None and default.lower() == endpoint_name.lower():
            raise ConfigurationError(
                f"{endpoint_name!r} is the default endpoint of web service {self.id!r}; "
                f"it follows the experiment and cannot be {verb}: add another "
                "endpoint to the web service and use that"
            )


@attrs.frozen(kw_only=True)
class EndpointResource:
    """An updatable resource of an endpoint (a trained model the endpoint uses).

    Attributes:
        name: the resource name the PATCH must use (e.g. ``"Census Model [trained model]"``).
        kind: the resource kind as reported (values undocumented).
        location: where the resource is read from, or None when not reported.
    """

    name: str = attrs.field(metadata=wire("Name", _NAME))
    kind: str | None = _field("Kind")
    location: BlobRef | None = attrs.field(default=None, metadata=wire("Location", _LOCATION))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EndpointResource:
        """Read one ``Resources[]`` entry (any key casing)."""
        return structure(cls, data)


@attrs.frozen(kw_only=True)
class Endpoint:
    """An endpoint of a classic web service (management API ``WebServiceEndPoint``).

    ``primary_key`` and ``secondary_key`` are secrets: never in ``repr``.

    Attributes:
        name, description, creation_time, web_service_id, workspace_id, help_location,
        api_location (the base of ``/execute`` and ``/jobs``), version, prevent_update,
        sample_data_enabled, experiment_location, max_concurrent_calls,
        diagnostics_trace_level, throttle_level: as reported.
        resources: the updatable resources (trained models).
        extra: members this version does not model, as read.
    """

    name: str = attrs.field(metadata=wire("Name", _NAME))
    description: str | None = _field("Description")
    creation_time: str | None = _field("CreationTime")
    web_service_id: str | None = _field("WebServiceId")
    workspace_id: str | None = _field("WorkspaceId")
    help_location: str | None = _field("HelpLocation")
    primary_key: str | None = _field("PrimaryKey", repr=False)
    secondary_key: str | None = _field("SecondaryKey", repr=False)
    api_location: str | None = _field("ApiLocation")
    version: str | None = _field("Version")
    prevent_update: bool | None = _field("PreventUpdate", _BOOL)
    sample_data_enabled: bool | None = _field("SampleDataEnabled", _BOOL)
    experiment_location: str | None = _field("ExperimentLocation")
    max_concurrent_calls: int | None = _field("MaxConcurrentCalls", _INT)
    diagnostics_trace_level: str | None = _field("DiagnosticsTraceLevel")
    throttle_level: str | None = _field("ThrottleLevel")
    resources: tuple[EndpointResource, ...] = attrs.field(
        default=(), metadata=wire("Resources", _RESOURCES)
    )
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Endpoint:
        """Read the endpoint's JSON (any key casing; unknown members kept in ``extra``)."""
        return structure(cls, data)

    def resource(self, name: str) -> EndpointResource:
        """The resource called ``name`` (exact match, as the PATCH needs it).

        Raises:
            ConfigurationError: the endpoint lists no such resource (the message names
                the ones it lists).
        """
        for res in self.resources:
            if res.name == name:
                return res
        listed = [r.name for r in self.resources if r.name]
        if not listed:
            raise ConfigurationError(
                f"endpoint {self.name!r} has no updatable resources (is it an endpoint of "
                "the training web service rather than the predictive one?)"
            )
        hint = ""
        close = [r for r in listed if r.lower() == name.lower()]
        if close:
            hint = f" (names are case-sensitive: did you mean {close[0]!r}?)"
        raise ConfigurationError(
            f"endpoint {self.name!r} has no resource {name!r}{hint}; it lists: "
            + ", ".join(repr(n) for n in listed)
        )


def _as_list(data: Any) -> list[Mapping[str, Any]]:
    if isinstance(data, Mapping):  # tolerate an OData-style {"value": [...]}
        data = ci_get(data, "value")
    if not isinstance(data, list):
        return []
    return [d for d in data if isinstance(d, Mapping)]


def _as_dict(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ServiceError("the service answered with a body that is not a JSON object")
    return data
