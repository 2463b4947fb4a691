"""Validation of a web-service definition document, with JSON-Pointer paths in errors.

Works on the raw document (the mapping as read), so every path names a member exactly
as it is spelled in the file. Member names match case-insensitively.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from amlretrain._wire import find_key
from amlretrain.errors import DefinitionError

__all__ = ["KNOWN_PACKAGE_TYPES", "pointer", "validate_document"]

KNOWN_PACKAGE_TYPES = ("Graph",)


def pointer(*parts: str | int) -> str:
    """An RFC 6901 JSON Pointer from its reference tokens."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _member(node: Mapping[str, Any], name: str) -> tuple[str | None, Any]:
    key = find_key(node, name)
    return key, (node[key] if key is not None else None)


def validate_document(doc: Any, *, source: str | None = None) -> None:
    """Raise :class:`DefinitionError` for the first problem found in ``doc``.

    Checks: an object; ``properties`` an object; a known ``packageType``; assets inline
    (not ``payloadsInBlobStorage``); every asset an object with ``locationInfo.uri``;
    every node's ``assetId`` names an asset; every edge names existing nodes.
    """

    def fail(message: str, *parts: str | int) -> DefinitionError:
        return DefinitionError(message, path=pointer(*parts), source=source)

    if not isinstance(doc, Mapping):
        raise fail(f"a web-service definition is a JSON object, not {_kind(doc)}")
    pkey, props = _member(doc, "properties")
    if pkey is None:
        raise fail("the definition has no 'properties' object")
    if not isinstance(props, Mapping):
        raise fail(f"'properties' must be an object, not {_kind(props)}", pkey)

    tkey, ptype = _member(props, "packageType")
    if tkey is None or ptype is None:
        raise fail(
            "'packageType' is missing; it is required (the only supported value is 'Graph')",
            pkey,
            tkey or "packageType",
        )
    if ptype not in KNOWN_PACKAGE_TYPES:
        raise fail(
            f"unknown packageType {ptype!r}; supported: {', '.join(KNOWN_PACKAGE_TYPES)}",
            pkey,
            tkey,
        )

    bkey, in_blob = _member(props, "payloadsInBlobStorage")
    if in_blob is True:
        _, loc = _member(props, "payloadsLocation")
        where = ""
        if isinstance(loc, Mapping):
            _, uri = _member(loc, "uri")
            if isinstance(uri, str):
                where = f" ({uri.split('?')[0]})"
        raise fail(
            "the assets, input, output, package and parameters are not inline: the service "
            f"stored them in blob storage at properties.payloadsLocation{where} because the "
            "definition is over 3 MB. Download that blob and merge it into 'properties' "
            "before editing, or shrink the definition",
            pkey,
            bkey or "payloadsInBlobStorage",
        )

    akey, assets = _member(props, "assets")
    asset_ids: set[str] = set()
    if akey is not None and assets is not None:
        if not isinstance(assets, Mapping):
            raise fail(
                f"'assets' must be an object of asset id -> asset, not {_kind(assets)}", pkey, akey
            )
        for asset_id, asset in assets.items():
            asset_ids.add(str(asset_id))
            if not isinstance(asset, Mapping):
                raise fail(
                    f"asset {asset_id!r} must be an object, not {_kind(asset)}",
                    pkey,
                    akey,
                    asset_id,
                )
            lkey, loc = _member(asset, "locationInfo")
            if not isinstance(loc, Mapping):
                raise fail(
                    f"asset {asset_id!r} has no locationInfo object with a 'uri'",
                    pkey,
                    akey,
                    asset_id,
                    lkey or "locationInfo",
                )
            ukey, uri = _member(loc, "uri")
            if not isinstance(uri, str) or not uri:
                raise fail(
                    f"asset {asset_id!r} has no locationInfo.uri",
                    pkey,
                    akey,
                    asset_id,
                    lkey or "locationInfo",
                    ukey or "uri",
                )

    gkey, package = _member(props, "package")
    if gkey is None or package is None:
        return
    if not isinstance(package, Mapping):
        raise fail(f"'package' must be an object, not {_kind(package)}", pkey, gkey)
    nkey, nodes = _member(package, "nodes")
    node_ids: set[str] = set()
    if nkey is not None and nodes is not None:
        if not isinstance(nodes, Mapping):
            raise fail(f"'nodes' must be an object, not {_kind(nodes)}", pkey, gkey, nkey)
        for node_id, node in nodes.items():
            node_ids.add(str(node_id))
            if not isinstance(node, Mapping):
                raise fail(
                    f"node {node_id!r} must be an object, not {_kind(node)}",
                    pkey,
                    gkey,
                    nkey,
                    node_id,
                )
            ikey, ref = _member(node, "assetId")
            if ikey is not None and ref is not None and str(ref) not in asset_ids:
                known = ", ".join(sorted(asset_ids)) or "none"
                raise fail(
                    f"node {node_id!r} names asset {ref!r}, which is not in "
                    f"properties.assets (known: {known})",
                    pkey,
                    gkey,
                    nkey,
                    node_id,
                    ikey,
                )
    ekey, edges = _member(package, "edges")
    if ekey is None or edges is None:
        return
    if not isinstance(edges, list):
        raise fail(f"'edges' must be an array, not {_kind(edges)}", pkey, gkey, ekey)
    for index, edge in enumerate(edges):
        if not isinstance(edge, Mapping):
            raise fail(
                f"edge {index} must be an object, not {_kind(edge)}", pkey, gkey, ekey, index
            )
        for end in ("sourceNodeId", "targetNodeId"):
            key, ref = _member(edge, end)
            if key is not None and ref is not None and str(ref) not in node_ids:
                raise fail(
                    f"edge {index} names node {ref!r} as its {end}, which is not in package.nodes",
                    pkey,
                    gkey,
                    ekey,
                    index,
                    key,
                )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
