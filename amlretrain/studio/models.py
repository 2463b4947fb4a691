"""The classic management API's typed models: web services, endpoints, their resources.

Frozen attrs classes read tolerantly (any key casing, unknown fields kept in ``extra``);
endpoint keys never appear in a repr. Pure code: no requests are made here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from amlretrain.blobs import BlobRef
from amlretrain.errors import ConfigurationError, ServiceError

__all__ = ["ClassicWebService", "Endpoint", "EndpointResource"]


def _lower(data: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in data.items()}


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _extra(data: Mapping[str, Any], known: set[str]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if str(k).lower() not in known}


@attrs.frozen(kw_only=True)
class ClassicWebService:
    """A classic web service (management API ``WebService``).

    Attributes:
        id, name, description, creation_time, workspace_id: as the service reports them.
        default_endpoint_name: the endpoint that follows the experiment (never patched).
        endpoint_count: how many endpoints the service has.
        extra: members this version does not model, as read.
    """

    id: str
    name: str | None = None
    description: str | None = None
    creation_time: str | None = None
    workspace_id: str | None = None
    default_endpoint_name: str | None = None
    endpoint_count: int | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    _KNOWN = frozenset(
        {"id", "name", "description", "creationtime", "workspaceid", "defaultendpointname",
         "endpointcount"}
    )  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassicWebService:
        """Read the service's JSON (any key casing; unknown members kept in ``extra``)."""
        low = _lower(data)
        return cls(
            id=str(low.get("id") or ""),
            name=_str(low.get("name")),
            description=_str(low.get("description")),
            creation_time=_str(low.get("creationtime")),
            workspace_id=_str(low.get("workspaceid")),
            default_endpoint_name=_str(low.get("defaultendpointname")),
            endpoint_count=_int(low.get("endpointcount")),
            extra=_extra(data, set(cls._KNOWN)),
        )

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

    name: str
    kind: str | None = None
    location: BlobRef | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EndpointResource:
        """Read one ``Resources[]`` entry (any key casing)."""
        low = _lower(data)
        location: BlobRef | None = None
        raw = low.get("location")
        if isinstance(raw, Mapping):
            try:
                location = BlobRef.from_bes(raw)
            except ConfigurationError:
                location = None
        return cls(name=str(low.get("name") or ""), kind=_str(low.get("kind")), location=location)


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

    name: str
    description: str | None = None
    creation_time: str | None = None
    web_service_id: str | None = None
    workspace_id: str | None = None
    help_location: str | None = None
    primary_key: str | None = attrs.field(default=None, repr=False)
    secondary_key: str | None = attrs.field(default=None, repr=False)
    api_location: str | None = None
    version: str | None = None
    prevent_update: bool | None = None
    sample_data_enabled: bool | None = None
    experiment_location: str | None = None
    max_concurrent_calls: int | None = None
    diagnostics_trace_level: str | None = None
    throttle_level: str | None = None
    resources: tuple[EndpointResource, ...] = ()
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    _KNOWN = frozenset(
        {"name", "description", "creationtime", "webserviceid", "workspaceid", "helplocation",
         "primarykey", "secondarykey", "apilocation", "version", "preventupdate",
         "sampledataenabled", "experimentlocation", "maxconcurrentcalls",
         "diagnosticstracelevel", "throttlelevel", "resources"}
    )  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Endpoint:
        """Read the endpoint's JSON (any key casing; unknown members kept in ``extra``)."""
        low = _lower(data)
        raw_resources = low.get("resources")
        if not isinstance(raw_resources, list):  # tolerant: a malformed member is no list
            raw_resources = []
        resources = tuple(
            EndpointResource.from_dict(r) for r in raw_resources if isinstance(r, Mapping)
        )
        return cls(
            name=str(low.get("name") or ""),
            description=_str(low.get("description")),
            creation_time=_str(low.get("creationtime")),
            web_service_id=_str(low.get("webserviceid")),
            workspace_id=_str(low.get("workspaceid")),
            help_location=_str(low.get("helplocation")),
            primary_key=_str(low.get("primarykey")),
            secondary_key=_str(low.get("secondarykey")),
            api_location=_str(low.get("apilocation")),
            version=_str(low.get("version")),
            prevent_update=_bool(low.get("preventupdate")),
            sample_data_enabled=_bool(low.get("sampledataenabled")),
            experiment_location=_str(low.get("experimentlocation")),
            max_concurrent_calls=_int(low.get("maxconcurrentcalls")),
            diagnostics_trace_level=_str(low.get("diagnosticstracelevel")),
            throttle_level=_str(low.get("throttlelevel")),
            resources=resources,
            extra=_extra(data, set(cls._KNOWN)),
        )

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
        data = data.get("value", data.get("Value", []))
    if not isinstance(data, list):
        return []
    return [d for d in data if isinstance(d, Mapping)]


def _as_dict(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ServiceError("the service answered with a body that is not a JSON object")
    return data
