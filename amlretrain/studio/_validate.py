"""Validation of a web-service definition document, with JSON-Pointer paths in errors.

Works on the raw document (the mapping as read), so every path names a member exactly
as it is spelled in the file. Member names match case-insensitively.

The JSON itself is checked first, for what JSON parsers disagree on and services
refuse or misread:

* a member name twice in one object (JSON allows it; Python and .NET silently keep the
  last one, other readers the first);
* ``NaN``, ``Infinity``, ``-Infinity`` (not JSON; Python reads and writes them);
* numbers out of range: beyond the range of an IEEE double (about ±1.8e308, which
  Python reads as infinity), and integers beyond ±(2**53 - 1), the integers a double
  holds exactly (RFC 7493, I-JSON): a service reading numbers as doubles would change
  them silently.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from amlretrain._wire import MAX_SAFE_INTEGER, Duplicates, find_key
from amlretrain.errors import DefinitionError

__all__ = ["KNOWN_PACKAGE_TYPES", "pointer", "validate_document"]

Parts = tuple[str | int, ...]

KNOWN_PACKAGE_TYPES = ("Graph",)


def pointer(*parts: str | int) -> str:
    """An RFC 6901 JSON Pointer from its reference tokens."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _member(node: Mapping[str, Any], name: str) -> tuple[str | None, Any]:
    key = find_key(node, name)
    return key, (node[key] if key is not None else None)


def validate_document(
    doc: Any,
    *,
    source: str | None = None,
    duplicates: Duplicates = (),
    origin: Any = None,
    numbers: bool = True,
    full: bool = True,
) -> None:
    """Raise :class:`DefinitionError` for the first problem found in ``doc``.

    Checks: an object; the JSON (module docstring); then, with ``full``: ``properties``
    an object; a known ``packageType``; assets inline (not ``payloadsInBlobStorage``);
    every asset an object with ``locationInfo.uri``; every node's ``assetId`` names an
    asset; every edge names existing nodes.

    Args:
        duplicates: the objects that had a member name twice in the text ``doc`` was
            read from (:attr:`amlretrain._wire.JsonText.duplicates`).
        origin: the document parsed from that text, when ``doc`` was derived from it
            (a rewrite): a repeated member is reported where ``doc`` still has it.
        numbers: look for NaN, Infinity and numbers out of range (False when the
            parser saw none: the walk is skipped).
        full: False checks only the JSON.
    """

    def fail(message: str, *parts: str | int) -> DefinitionError:
        return DefinitionError(message, path=pointer(*parts), source=source)

    if not isinstance(doc, Mapping):
        raise fail(f"a web-service definition is a JSON object, not {_kind(doc)}")
    for parts, name in _duplicates(doc if origin is None else origin, duplicates):
        if _has_path(doc, (*parts, name)):
            raise fail(
                f"member {name!r} appears more than once in this object; JSON readers "
                "silently keep one of them (not all the same one): keep only one",
                *parts,
                name,
            )
    if numbers:
        odd = _first_odd_number(doc)
        if odd is not None:
            parts, value = odd
            raise fail(_number_problem(value), *parts)
    if not full:
        return
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


def _duplicates(doc: Any, duplicates: Duplicates) -> Iterator[tuple[Parts, str]]:
    """Path and repeated name of each object of ``duplicates`` in ``doc``, in document order."""
    if not duplicates:
        return
    wanted = {id(obj): names for obj, names in duplicates}
    stack: list[tuple[Any, Parts]] = [(doc, ())]
    while stack:
        node, parts = stack.pop()
        if isinstance(node, Mapping):
            for name in wanted.get(id(node), ()):
                yield parts, name
            children: list[tuple[Any, Parts]] = [
                (v, (*parts, k)) for k, v in node.items() if isinstance(v, Mapping | list)
            ]
        elif isinstance(node, list):
            children = [(v, (*parts, i)) for i, v in enumerate(node)]
        else:
            continue
        stack.extend(reversed(children))


def _has_path(doc: Any, parts: Parts) -> bool:
    node = doc
    for part in parts:
        found = (isinstance(node, Mapping) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        )
        if not found:
            return False
        node = node[part]
    return True


def _is_odd(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, int):
        return not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    return False


def _has_odd_number(doc: Any) -> bool:
    # One pass without paths (a definition is mostly strings): fast for a big document.
    stack = [doc]
    pop, push = stack.pop, stack.extend
    while stack:
        value = pop()
        kind = type(value)
        if kind is str or value is None or kind is bool:
            continue
        if kind is dict:
            push(value.values())
        elif kind is list:
            push(value)
        elif kind is float:
            if value - value != 0:  # inf - inf and nan - nan are nan
                return True
        elif kind is int:
            if value > MAX_SAFE_INTEGER or value < -MAX_SAFE_INTEGER:
                return True
        elif isinstance(value, Mapping):
            push(value.values())
        elif isinstance(value, list | tuple):
            push(value)
        elif _is_odd(value):
            return True
    return False


def _first_odd_number(doc: Any) -> tuple[Parts, Any] | None:
    """The path (document order) and value of the first NaN, infinity or out-of-range number."""
    if not _has_odd_number(doc):
        return None
    stack: list[tuple[Any, Parts]] = [(doc, ())]
    while stack:
        value, parts = stack.pop()
        if isinstance(value, Mapping):
            stack.extend(reversed([(v, (*parts, k)) for k, v in value.items()]))
        elif isinstance(value, list | tuple):
            stack.extend(reversed([(v, (*parts, i)) for i, v in enumerate(value)]))
        elif _is_odd(value):
            return parts, value
    return None


def _number_problem(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN is not a JSON number and the service cannot read it; write a number or null"
    if isinstance(value, float):
        sign = "-" if value < 0 else ""
        return (
            f"{sign}Infinity, or a number beyond ±1.8e308 (the range of a double), is not a "
            "JSON number the service can read"
        )
    shown = str(value) if value.bit_length() <= 256 else f"of {value.bit_length()} bits"
    return (
        f"the integer {shown} is out of range: JSON numbers are read as doubles, which hold "
        f"integers exactly only within ±{MAX_SAFE_INTEGER} (2**53 - 1); write it as a string"
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
