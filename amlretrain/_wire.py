"""Lossless (un)structuring of wire documents into attrs models.

The one converter between JSON-like dicts and the typed models of
:mod:`amlretrain.definition`. Models stay plain attrs classes; this module reads the
``wire`` metadata of their fields. Guarantees:

* **Lossless**: ``unstructure(structure(cls, x)) == x`` for any mapping ``x``: unknown
  members go to ``extra``, the member names as read (order and casing) to ``wire_keys``,
  and a value of an unexpected type is kept raw in ``extra`` instead of being coerced.
* **Tolerant reading**: member names match case-insensitively (``AssetId`` and
  ``assetId`` both fill ``asset_id``).
* **Written back as read**: members keep the name they were read under; members the
  library adds get the service's camelCase name. ``canonical=True`` writes every known
  member under its camelCase name instead (for request bodies).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from copy import deepcopy as _deepcopy
from typing import Any, TypeVar

import attrs

__all__ = [
    "SCALAR",
    "Kind",
    "ListOf",
    "MapOf",
    "MapOfParameters",
    "Nested",
    "WireModel",
    "find_key",
    "structure",
    "unstructure",
    "wire",
]

T = TypeVar("T", bound="WireModel")


def _resolve(ref: type[WireModel] | Callable[[], type[WireModel]]) -> type[WireModel]:
    if isinstance(ref, type):
        return ref
    return ref()


class Kind:
    """How a field's wire value becomes a Python value and back."""

    def accepts(self, value: Any) -> bool:
        """True when ``value`` has the shape this kind can structure losslessly."""
        return True

    def parse(self, value: Any, copy: bool) -> Any:
        """Wire value -> Python value (only called when :meth:`accepts`)."""
        return _copied(value, copy)

    def dump(self, value: Any, canonical: bool, copy: bool) -> Any:
        """Python value -> wire value."""
        return _copied(value, copy)


SCALAR = Kind()


@attrs.frozen
class Nested(Kind):
    """A member holding one nested model."""

    cls: type[WireModel] | Callable[[], type[WireModel]]

    def accepts(self, value: Any) -> bool:
        return isinstance(value, Mapping)

    def parse(self, value: Any, copy: bool) -> Any:
        return structure(_resolve(self.cls), value, copy=copy)

    def dump(self, value: Any, canonical: bool, copy: bool) -> Any:
        return unstructure(value, canonical=canonical, copy=copy)


@attrs.frozen
class MapOf(Kind):
    """A member holding a map of name -> nested model."""

    cls: type[WireModel] | Callable[[], type[WireModel]]

    def accepts(self, value: Any) -> bool:
        return isinstance(value, Mapping) and all(isinstance(v, Mapping) for v in value.values())

    def parse(self, value: Any, copy: bool) -> Any:
        cls = _resolve(self.cls)
        return {str(k): structure(cls, v, copy=copy) for k, v in value.items()}

    def dump(self, value: Any, canonical: bool, copy: bool) -> Any:
        return {k: unstructure(v, canonical=canonical, copy=copy) for k, v in value.items()}


@attrs.frozen
class ListOf(Kind):
    """A member holding a list of nested models."""

    cls: type[WireModel] | Callable[[], type[WireModel]]

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list) and all(isinstance(v, Mapping) for v in value)

    def parse(self, value: Any, copy: bool) -> Any:
        cls = _resolve(self.cls)
        return tuple(structure(cls, v, copy=copy) for v in value)

    def dump(self, value: Any, canonical: bool, copy: bool) -> Any:
        return [unstructure(v, canonical=canonical, copy=copy) for v in value]


@attrs.frozen
class MapOfParameters(Kind):
    """A map whose values are either nested models (2017-01-01) or plain values (preview)."""

    cls: type[WireModel] | Callable[[], type[WireModel]]

    def accepts(self, value: Any) -> bool:
        return isinstance(value, Mapping)

    def parse(self, value: Any, copy: bool) -> Any:
        cls = _resolve(self.cls)
        return {
            str(k): structure(cls, v, copy=copy) if isinstance(v, Mapping) else _copied(v, copy)
            for k, v in value.items()
        }

    def dump(self, value: Any, canonical: bool, copy: bool) -> Any:
        return {
            k: (
                unstructure(v, canonical=canonical, copy=copy)
                if isinstance(v, WireModel)
                else _copied(v, copy)
            )
            for k, v in value.items()
        }


def wire(name: str, kind: Kind = SCALAR) -> dict[str, Any]:
    """The field metadata that binds a model field to the wire member ``name``.

    Use as ``title: str | None = attrs.field(default=None, metadata=wire("title"))``.

    Args:
        name: the member's camelCase name in the service's JSON.
        kind: how its value is (un)structured.
    """
    return {"wire": name, "kind": kind}


@attrs.frozen(kw_only=True)
class WireModel:
    """Base of every wire model.

    Attributes:
        extra: members the model does not know (or whose value had an unexpected type),
            by the name they were read under.
        wire_keys: every member name as read, in order; empty for a model built in code.
    """

    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    wire_keys: tuple[str, ...] = attrs.field(default=(), repr=False)


def _copied(value: Any, copy: bool) -> Any:
    # Only containers need copying: strings, numbers, booleans and None are immutable.
    if copy and isinstance(value, dict | list):
        return _deepcopy(value)
    return value


Spec = tuple[str, str, Kind]


def _specs(cls: type[WireModel]) -> tuple[list[Spec], dict[str, Spec]]:
    """The wire fields of ``cls`` and the same by lower-case wire name (cached)."""
    cached: tuple[list[Spec], dict[str, Spec]] | None = cls.__dict__.get("_wire_specs")
    if cached is None:
        specs = [
            (f.name, f.metadata["wire"], f.metadata["kind"])
            for f in attrs.fields(cls)
            if "wire" in f.metadata
        ]
        cached = (specs, {wire_name.lower(): spec for spec in specs for wire_name in [spec[1]]})
        cls._wire_specs = cached  # type: ignore[attr-defined]
    return cached


def structure(cls: type[T], data: Mapping[str, Any], *, copy: bool = True) -> T:
    """Build a ``cls`` from a wire mapping, losslessly (see module docstring).

    Args:
        copy: copy the containers of ``data`` (False only for a mapping nobody else
            holds, such as fresh ``json.loads`` output).
    """
    by_lower = _specs(cls)[1]
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in data.items():
        key = str(key)
        match = by_lower.get(key.lower())
        if match is None or match[0] in values:
            extra[key] = _copied(value, copy)
            continue
        attr, _, kind = match
        if value is None:
            values[attr] = None
        elif kind.accepts(value):
            values[attr] = kind.parse(value, copy)
        else:
            # Wrong shape: keep the raw value so nothing is lost; the field stays None.
            extra[key] = _copied(value, copy)
            values[attr] = None
    return cls(extra=extra, wire_keys=tuple(str(k) for k in data), **values)


def unstructure(model: WireModel, *, canonical: bool = False, copy: bool = True) -> dict[str, Any]:
    """Write a model back to its wire mapping (see module docstring).

    Args:
        canonical: write known members under their camelCase names.
        copy: copy the containers the model holds (False only for output that is read
            and dropped, such as the text of a file being saved).
    """
    specs, by_lower = _specs(type(model))
    out: dict[str, Any] = {}
    written: set[str] = set()
    for key in model.wire_keys:
        match = by_lower.get(key.lower())
        if key in model.extra:
            # In canonical form a duplicate of a known member (``Name`` beside ``name``)
            # cannot be written under its own name; the typed value wins.
            if not (canonical and match is not None and getattr(model, match[0]) is not None):
                out[key] = _copied(model.extra[key], copy)
            continue
        if match is None:
            continue  # dropped from extra by the caller: a deliberate removal
        attr, wire_name, kind = match
        written.add(attr)
        value = getattr(model, attr)
        out[wire_name if canonical else key] = (
            None if value is None else kind.dump(value, canonical, copy)
        )
    for attr, wire_name, kind in specs:
        value = getattr(model, attr)
        if attr in written or value is None:
            continue
        out[wire_name] = kind.dump(value, canonical, copy)
    for key, value in model.extra.items():
        match = by_lower.get(key.lower())
        if key not in out and not (
            canonical and match is not None and getattr(model, match[0]) is not None
        ):
            out[key] = _copied(value, copy)
    return out


def _find_key(node: Mapping[str, Any], name: str) -> str | None:
    if name in node:
        return name
    low = name.lower()
    for key in node:
        if isinstance(key, str) and key.lower() == low:
            return key
    return None


def find_key(node: Mapping[str, Any], name: str) -> str | None:
    """The member of ``node`` called ``name`` in any casing, or None."""
    return _find_key(node, name)
