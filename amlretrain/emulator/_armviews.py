"""Views of stored ARM web services (what GET, list and the writes answer) and PATCH's merge.

The write answers are the live service's small bodies (API-NOTES 1.3a): a PUT or PATCH
never echoes the definition; the definition is read by a GET after the operation.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from amlretrain.emulator.state import ci_get

__all__ = [
    "ci_key",
    "ci_pop",
    "drop_empty_members",
    "list_view",
    "merge",
    "service_view",
    "write_view",
]

_LIST_FIELDS = (
    "title",
    "description",
    "readOnly",
    "exposeSampleData",
    "storageAccount",
    "createdOn",
    "modifiedOn",
    "provisioningState",
    "swaggerLocation",
    "realtimeConfiguration",
    "diagnostics",
    "payloadsInBlobStorage",
    "packageType",
)


def ci_key(data: Mapping[str, Any], key: str) -> str | None:
    """The member name matching ``key`` case-insensitively, or None."""
    lowered = key.lower()
    for k in data:
        if isinstance(k, str) and k.lower() == lowered:
            return k
    return None


def ci_pop(data: dict[str, Any], key: str) -> Any:
    """Remove and return the member matching ``key`` case-insensitively (None if absent)."""
    found = ci_key(data, key)
    return data.pop(found) if found is not None else None


def merge(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``patch`` into ``target`` in place, recursively (JSON merge patch, RFC 7396).

    Objects merge member by member (names matched case-insensitively, the stored casing
    kept); anything else replaces; ``null`` removes the member.
    """
    for key, value in patch.items():
        existing = ci_key(target, key)
        name = existing if existing is not None else key
        if value is None:
            target.pop(name, None)
        elif isinstance(value, Mapping) and isinstance(target.get(name), dict):
            merge(target[name], value)
        else:
            target[name] = copy.deepcopy(value)
    return target


def service_view(resource: Mapping[str, Any]) -> dict[str, Any]:
    """What GET returns: no ``keys``, ``storageAccount`` with its name only, no commitmentPlan."""
    res = copy.deepcopy(dict(resource))
    props = res.get("properties")
    if isinstance(props, dict):
        ci_pop(props, "keys")
        ci_pop(props, "commitmentPlan")
        sa_key = ci_key(props, "storageAccount")
        if sa_key is not None and isinstance(props[sa_key], Mapping):
            name = ci_get(props[sa_key], "name")
            props[sa_key] = {"name": name} if name is not None else {}
    return res


def list_view(resource: Mapping[str, Any]) -> dict[str, Any]:
    """A list item: top-level members and simple properties only ("sparsely populated")."""
    full = service_view(resource)
    props = full.get("properties") or {}
    sparse = {k: v for k, v in props.items() if k in _LIST_FIELDS}
    out: dict[str, Any] = {
        k: full[k] for k in ("id", "name", "type", "location", "tags") if k in full
    }
    out["properties"] = sparse
    return out


def write_view(
    resource: Mapping[str, Any], *, put: bool, payloads_member: bool = True
) -> dict[str, Any]:
    """The small body a PUT (200/201) or PATCH (200) answers, ``Provisioning``.

    ``id, name, type, location, tags`` and ``properties`` holding only
    ``payloadsInBlobStorage`` (PUT, when the api-version has it) and ``provisioningState``.
    """
    out: dict[str, Any] = {
        k: copy.deepcopy(resource[k])
        for k in ("id", "name", "type", "location", "tags")
        if k in resource
    }
    props: dict[str, Any] = {}
    if put and payloads_member:
        props["payloadsInBlobStorage"] = False
    props["provisioningState"] = "Provisioning"
    out["properties"] = props
    return out


def drop_empty_members(properties: dict[str, Any]) -> dict[str, Any]:
    """Remove the members of ``properties`` that are empty objects (what a PATCH does)."""
    for key in [k for k, v in properties.items() if isinstance(v, Mapping) and not v]:
        del properties[key]
    return properties
