"""The one tolerant reader: (un)structuring of wire documents into attrs models.

The one converter between JSON-like dicts and typed models: the definitions of
:mod:`amlretrain.studio.definition` (losslessly, both ways), and documents that are only
read (the classic management API's answers in :mod:`amlretrain.studio.models`, ledger
lines in :mod:`amlretrain.ledger`). Models stay plain attrs classes; this module reads the
``wire`` metadata of their fields, and :func:`find_key` / :func:`ci_get` are the one
case-insensitive lookup for code that reads a mapping member by member. Guarantees:

* **Lossless**: ``unstructure(structure(cls, x)) == x`` for any mapping ``x``: unknown
  members go to ``extra``, the member names as read (order and casing) to ``wire_keys``,
  and a value of an unexpected type is kept raw in ``extra`` instead of being coerced.
* **Tolerant reading**: member names match case-insensitively (``AssetId`` and
  ``assetId`` both fill ``asset_id``).
* **Written back as read**: members keep the name they were read under; members the
  library adds get the service's camelCase name. ``canonical=True`` writes every known
  member under its camelCase name instead (for request bodies).

Documents that are only read use :class:`Lenient` fields instead: their value is
converted (``"4"`` to ``4`` for an integer field, a malformed one to None), a missing
member gets the field's ``missing`` value (or raises :class:`KeyError` when
:data:`REQUIRED`), and a model without ``extra`` or ``wire_keys`` fields drops what
they would hold. Such models are never written back through :func:`unstructure`.

It also reads and writes the JSON *text* of a document (:func:`read_json`,
:func:`write_json`): any Unicode encoding (UTF-8, UTF-16, UTF-32, with or without a
BOM), and back byte for byte when nothing changed; a changed document is written by
replacing only the changed values in the text it was read from, so encoding, BOM,
newlines, indentation, number spellings and key order stay as they were.
"""

from __future__ import annotations

import codecs
import gc
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from copy import deepcopy as _deepcopy
from typing import Any, BinaryIO, TypeVar

import attrs

from amlretrain.errors import DefinitionError

__all__ = [
    "MAX_SAFE_INTEGER",
    "REQUIRED",
    "SCALAR",
    "Fields",
    "JsonText",
    "Kind",
    "Lenient",
    "ListOf",
    "MapOf",
    "MapOfParameters",
    "Nested",
    "WireModel",
    "as_bool",
    "as_int",
    "as_text",
    "ci_get",
    "find_key",
    "read_json",
    "structure",
    "unstructure",
    "wire",
    "write_json",
]

T = TypeVar("T")


def _resolve(ref: type[WireModel] | Callable[[], type[WireModel]]) -> type[WireModel]:
    if isinstance(ref, type):
        return ref
    return ref()


class Kind:
    """How a field's wire value becomes a Python value and back."""

    #: True when :meth:`parse` reads every value, None included (see :class:`Lenient`).
    lenient = False

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

#: The ``missing`` of a :class:`Lenient` field without which a document is unreadable.
REQUIRED: Any = object()
#: The ``missing`` of a :class:`Lenient` field that takes the field's own default.
_OWN_DEFAULT: Any = object()


@attrs.frozen
class Lenient(Kind):
    """A member of a document that is only read, converted by ``convert``.

    Args:
        convert: wire value (None included) -> Python value; raises ``ValueError`` or
            ``TypeError`` when the document is unreadable without it.
        missing: the value of an absent member; :data:`REQUIRED` raises ``KeyError``
            (its wire name); unset, the field's own default.
    """

    convert: Callable[[Any], Any]
    missing: Any = _OWN_DEFAULT
    lenient = True

    def parse(self, value: Any, copy: bool) -> Any:
        return self.convert(value)


def as_text(value: Any) -> str | None:
    """A member read as text: None stays None, anything else its ``str``."""
    return None if value is None else str(value)


def as_int(value: Any) -> int | None:
    """A member read as an integer (``4`` or ``"4"``); None when it is none."""
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def as_bool(value: Any) -> bool | None:
    """A member read as a boolean (``true``, ``"True"``, ``"1"``, ``"yes"``); None stays None."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


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


class Fields:
    """How the members of a mapping become keyword arguments: the one tolerant reader.

    Built from the ``wire`` metadata of a model's fields (:func:`structure` does so, once
    per class), or written out for a document that is only read into a class whose
    fields carry no metadata (``Fields(id=("id", Lenient(str, missing=REQUIRED)))``).

    Args:
        fields: attribute name -> (wire name, kind).
    """

    def __init__(self, **fields: tuple[str, Kind]) -> None:
        self.specs = [(attr, wire_name, kind) for attr, (wire_name, kind) in fields.items()]
        self.by_lower = {wire_name.lower(): spec for spec in self.specs for wire_name in [spec[1]]}
        self.missing = [
            (attr, wire_name, kind.missing)
            for attr, wire_name, kind in self.specs
            if isinstance(kind, Lenient) and kind.missing is not _OWN_DEFAULT
        ]

    def read(self, data: Mapping[str, Any], *, copy: bool = True) -> dict[str, Any]:
        """The keyword arguments read from ``data``; members it does not name are dropped.

        Raises:
            KeyError: a :data:`REQUIRED` member is missing (its wire name).
            ValueError, TypeError: a :class:`Lenient` field could not read its member.
        """
        return self._read(data, copy)[0]

    def _read(self, data: Mapping[str, Any], copy: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        by_lower = self.by_lower
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            key = str(key)
            match = by_lower.get(key.lower())
            if match is None or match[0] in values:
                extra[key] = _copied(value, copy)
                continue
            attr, _, kind = match
            if value is None and not kind.lenient:
                values[attr] = None
            elif kind.accepts(value):
                values[attr] = kind.parse(value, copy)
            else:
                # Wrong shape: keep the raw value so nothing is lost; the field stays None.
                extra[key] = _copied(value, copy)
                values[attr] = None
        for attr, wire_name, default in self.missing:
            if attr not in values:
                if default is REQUIRED:
                    raise KeyError(wire_name)
                values[attr] = default
        return values, extra


def _fields(cls: type[Any]) -> tuple[Fields, bool, bool]:
    """The :class:`Fields` of ``cls``, and whether it has ``extra`` and ``wire_keys`` (cached)."""
    cached: tuple[Fields, bool, bool] | None = cls.__dict__.get("_wire_fields")
    if cached is None:
        names = attrs.fields_dict(cls)
        fields = Fields(
            **{
                f.name: (f.metadata["wire"], f.metadata["kind"])
                for f in attrs.fields(cls)
                if "wire" in f.metadata
            }
        )
        cached = (fields, "extra" in names, "wire_keys" in names)
        cls._wire_fields = cached
    return cached


def structure(cls: type[T], data: Mapping[str, Any], *, copy: bool = True) -> T:
    """Build a ``cls`` from a wire mapping, losslessly (see module docstring).

    ``cls`` is a :class:`WireModel`, or (for a document that is only read) any attrs
    class whose fields carry :func:`wire` metadata, typically with :class:`Lenient` kinds.

    Args:
        copy: copy the containers of ``data`` (False only for a mapping nobody else
            holds, such as fresh ``json.loads`` output).

    Raises:
        KeyError: a :data:`REQUIRED` member is missing (its wire name).
        ValueError, TypeError: a :class:`Lenient` field could not read its member.
    """
    fields, has_extra, has_wire_keys = _fields(cls)
    values, extra = fields._read(data, copy)
    if has_extra:
        values["extra"] = extra
    if has_wire_keys:
        values["wire_keys"] = tuple(str(k) for k in data)
    return cls(**values)


def unstructure(model: WireModel, *, canonical: bool = False, copy: bool = True) -> dict[str, Any]:
    """Write a model back to its wire mapping (see module docstring).

    Args:
        canonical: write known members under their camelCase names.
        copy: copy the containers the model holds (False only for output that is read
            and dropped, such as the text of a file being saved).
    """
    fields = _fields(type(model))[0]
    specs, by_lower = fields.specs, fields.by_lower
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


def find_key(node: Mapping[str, Any], name: str) -> str | None:
    """The member of ``node`` called ``name`` in any casing, or None.

    The one case-insensitive lookup of the package: the name spelled exactly wins, else
    the first member (in document order) spelled the same in any case.
    """
    if name in node:
        return name
    low = name.lower()
    for key in node:
        if isinstance(key, str) and key.lower() == low:
            return key
    return None


def ci_get(node: Mapping[str, Any] | None, *names: str) -> Any:
    """The value of the first of ``names`` that ``node`` has in any casing, or None.

    For reading services' JSON and headers tolerantly (``Results``, ``results`` and
    ``RESULTS`` are one member); see :func:`find_key` for which member wins.

    Example:
        >>> ci_get({"StatusCode": "Finished"}, "statusCode")
        'Finished'
    """
    if not node:
        return None
    for name in names:
        key = find_key(node, name)
        if key is not None:
            return node[key]
    return None


# -- JSON text --------------------------------------------------------------------------

#: The largest integer a JSON number holds exactly in every reader (RFC 7493, I-JSON:
#: services read numbers as IEEE doubles, whose integers are exact up to 2**53 - 1).
MAX_SAFE_INTEGER = 2**53 - 1

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE, whose BOM it starts with
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_WS = re.compile(r"[ \t\n\r]*")
_INDENT = re.compile(r"[ \t]*")
_KEY_SEPARATOR = re.compile(r'"([ \t]*):([ \t]*)')
_ITEM_SEPARATOR = re.compile(r",([ \t]*)")
#: The C string scanner of :mod:`json` (not in its type stubs): (text, index after the
#: opening quote) -> (the string, index after the closing quote).
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
#: Skips a value without building it: every object becomes its member count.
_SKIPPER = json.JSONDecoder(object_pairs_hook=len)
_CHUNK = 1 << 20  # characters encoded per write: no second copy of a big file in memory

Duplicates = tuple[tuple[Mapping[str, Any], tuple[str, ...]], ...]


@attrs.define(eq=False, repr=False)
class JsonText:
    """A JSON document and the text it was read from (what :func:`write_json` needs).

    Attributes:
        text: the text, without its byte order mark.
        encoding: the codec of its bytes (``"utf-8"``, ``"utf-16-le"``, ...).
        bom: the byte order mark the bytes started with (``b""`` for none).
        document: the value parsed from ``text``; never modified.
        duplicates: the objects of ``document`` in which a member name appears more
            than once, with those names (a JSON reader silently keeps one of them).
        odd_numbers: ``text`` holds ``NaN``, ``Infinity``, ``-Infinity``, or a number
            out of range (beyond a double, or an integer beyond ``MAX_SAFE_INTEGER``).
    """

    text: str
    encoding: str
    bom: bytes
    document: Any
    duplicates: Duplicates = ()
    odd_numbers: bool = False


def _sniff(data: bytes) -> str:
    # Without a BOM, the zero bytes around the first (ASCII) character tell (RFC 4627 §3).
    head = data[:4]
    if len(head) == 4 and head[3] and not any(head[:3]):
        return "utf-32-be"
    if len(head) == 4 and head[0] and not any(head[1:]):
        return "utf-32-le"
    if len(head) >= 2 and head[1] and not head[0]:
        return "utf-16-be"
    if len(head) >= 2 and head[0] and not head[1]:
        return "utf-16-le"
    return "utf-8"


def _decode(data: bytes, source: str | None) -> tuple[str, str, bytes]:
    bom, encoding = b"", ""
    for mark, codec in _BOMS:
        if data.startswith(mark):
            bom, encoding = mark, codec
            break
    encoding = encoding or _sniff(data)
    try:
        return str(memoryview(data)[len(bom) :], encoding), encoding, bom
    except UnicodeDecodeError as err:
        raise DefinitionError(
            f"the file is not {encoding} text (byte {err.start + len(bom)}); save it as UTF-8",
            source=source,
        ) from err


def read_json(data: str | bytes, *, source: str | None = None) -> JsonText:
    """Parse JSON text, or bytes in any Unicode encoding, keeping what :func:`write_json` needs.

    Notes what JSON parsers disagree on (duplicate member names; ``NaN``/``Infinity``;
    numbers out of range) for validation to report; it is not refused here, so a
    document can still be read with ``validate=False``.

    Raises:
        DefinitionError: not text in its encoding, or not JSON (with line and column).
    """
    if isinstance(data, bytes | bytearray):
        text, encoding, bom = _decode(bytes(data), source)
    else:
        text, encoding, bom = data, "utf-8", b""
        if text.startswith("\ufeff"):
            text, bom = text[1:], codecs.BOM_UTF8
    duplicates: list[tuple[Mapping[str, Any], tuple[str, ...]]] = []
    odd: list[str] = []

    def members(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) != len(items):
            seen: set[str] = set()
            repeated: dict[str, None] = {}
            for key, _ in items:
                if key in seen:
                    repeated[key] = None
                seen.add(key)
            duplicates.append((obj, tuple(repeated)))
        return obj

    def constant(literal: str) -> float:
        odd.append(literal)
        return float(literal)

    def number(literal: str) -> float:
        value = float(literal)
        if math.isinf(value):
            odd.append(literal)
        return value

    def integer(literal: str) -> int | float:
        try:
            value = int(literal)
        except ValueError:  # more digits than Python converts: out of range in any case
            odd.append(literal)
            return -math.inf if literal.startswith("-") else math.inf
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            odd.append(literal)
        return value

    decoder = json.JSONDecoder(
        object_pairs_hook=members, parse_constant=constant, parse_float=number, parse_int=integer
    )
    collecting = gc.isenabled()
    try:
        # The hook makes a (key, value) tuple per member: garbage without cycles that
        # would set off the cycle collector again and again over a big document.
        gc.disable()
        document = decoder.decode(text)
    except json.JSONDecodeError as err:
        raise DefinitionError(
            f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}", source=source
        ) from err
    except RecursionError as err:
        raise DefinitionError("JSON nested too deeply to read", source=source) from err
    finally:
        if collecting:
            gc.enable()
    return JsonText(text, encoding, bom, document, tuple(duplicates), bool(odd))


def write_json(handle: BinaryIO, document: Any, source: JsonText | None = None) -> None:
    """Write ``document`` as JSON to the binary file ``handle``.

    Without ``source``: UTF-8, indented by two spaces as ``Export-AzMlWebService``
    writes, and a final newline. With the :class:`JsonText` it was read (or derived)
    from: the same bytes when ``document`` is ``source.document``; else the source text
    with only the changed values replaced (and members added at the end of an object
    inserted after its last one), in its encoding and BOM. Any other change (a member
    removed or moved) re-writes the whole document in the source's encoding, BOM,
    newlines, indentation and separators.
    """
    pieces: list[tuple[str, int, int]]
    if source is None:
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        encoding, bom, pieces = "utf-8", b"", [(text, 0, len(text))]
    else:
        encoding, bom = source.encoding, source.bom
        if document is source.document:
            pieces = [(source.text, 0, len(source.text))]
        else:
            pieces = _spliced(source, document) or _restyled(source, document)
    handle.write(bom)
    for text, start, end in pieces:
        for at in range(start, end, _CHUNK):
            handle.write(text[at : min(at + _CHUNK, end)].encode(encoding))


@attrs.frozen
class _Style:
    indent: str | None
    newline: str
    separators: tuple[str, str]
    ascii: bool


def _body_bounds(text: str) -> tuple[int, int]:
    start = _WS.match(text).end()  # type: ignore[union-attr]  # [ \t\n\r]* always matches
    end = len(text)
    while end > start and text[end - 1] in " \t\r\n":
        end -= 1
    return start, end


def _style(text: str) -> _Style:
    start, end = _body_bounds(text)
    newline_at = text.find("\n", start, end)
    key = _KEY_SEPARATOR.search(text, start, min(end, start + _CHUNK))
    if newline_at == -1:
        item = _ITEM_SEPARATOR.search(text, start, min(end, start + _CHUNK))
        indent, newline = None, "\r\n" if "\r\n" in text[end:] else "\n"
        item_separator, key_separator = "," + (item.group(1) if item else ""), ":"
    else:
        indent = _INDENT.match(text, newline_at + 1).group()  # type: ignore[union-attr]
        newline = "\r\n" if text[newline_at - 1] == "\r" else "\n"
        item_separator, key_separator = ",", ": "
    if key is not None:
        key_separator = f"{key.group(1)}:{key.group(2)}"
    separators = (item_separator, key_separator)
    return _Style(indent, newline, separators, text.isascii() and "\\u" in text)


def _render(value: Any, style: _Style, indent: str) -> str:
    out = json.dumps(
        value, indent=style.indent, separators=style.separators, ensure_ascii=style.ascii
    )
    return out.replace("\n", style.newline + indent) if "\n" in out else out


def _restyled(source: JsonText, document: Any) -> list[tuple[str, int, int]]:
    text = source.text
    style = _style(text)
    start, end = _body_bounds(text)
    body = json.dumps(
        document, indent=style.indent, separators=style.separators, ensure_ascii=style.ascii
    )
    if style.newline != "\n" and style.indent is not None:
        body = body.replace("\n", style.newline)
    return [(text, 0, start), (body, 0, len(body)), (text, end, len(text))]


def _same_json(a: Any, b: Any) -> bool:
    """JSON equality, exactly: ``true`` is not ``1``, ``1`` is not ``1.0``, order counts."""
    if a is b:
        return True
    if type(a) is not type(b) or a != b:
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_json(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    return True


Edit = tuple[tuple[str, ...], Any, bool]  # (path, new value | added members, is an addition)


def _changes(old: Any, new: Any, path: tuple[str, ...], edits: list[Edit]) -> bool:
    """Collect the edits that turn ``old`` into ``new``; False when one cannot be spliced."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = list(old)
        new_keys = list(new)
        if new_keys[: len(keys)] != keys:
            return False  # a member removed or moved
        for key in keys:
            a, b = old[key], new[key]
            if not _same_json(a, b) and not _changes(a, b, (*path, key), edits):
                return False
        if len(new_keys) > len(keys):
            edits.append((path, [(k, new[k]) for k in new_keys[len(keys) :]], True))
        return True
    if not _same_json(old, new):
        edits.append((path, new, False))
    return True


def _skip_ws(text: str, at: int) -> int:
    return _WS.match(text, at).end()  # type: ignore[union-attr]


def _value_end(text: str, at: int) -> int:
    end: int = _SKIPPER.raw_decode(text, at)[1]
    return end


def _locate(text: str, path: tuple[str, ...]) -> int:
    """Where the value at ``path`` (object members only) starts in ``text``."""
    at = _skip_ws(text, 0)
    for part in path:
        if not text.startswith("{", at):
            raise LookupError(part)
        at = _skip_ws(text, at + 1)
        while True:
            if not text.startswith('"', at):
                raise LookupError(part)
            key, key_end = _scanstring(text, at + 1)
            value = _skip_ws(text, _skip_ws(text, key_end) + 1)
            if key == part:
                at = value
                break
            at = _skip_ws(text, _value_end(text, value))
            if not text.startswith(",", at):
                raise LookupError(part)
            at = _skip_ws(text, at + 1)
    return at


def _members(text: str, at: int) -> Iterator[tuple[int, int, int, int]]:
    """(key start, key end, value start, value end) of each member of the object at ``at``."""
    at = _skip_ws(text, at + 1)
    while text.startswith('"', at):
        _, key_end = _scanstring(text, at + 1)
        value = _skip_ws(text, _skip_ws(text, key_end) + 1)
        end = _value_end(text, value)
        yield at, key_end, value, end
        at = _skip_ws(text, end)
        if not text.startswith(",", at):
            return
        at = _skip_ws(text, at + 1)


def _indent_at(text: str, at: int) -> str:
    line = text.rfind("\n", 0, at) + 1
    return _INDENT.match(text, line, at).group()  # type: ignore[union-attr]


def _spliced(source: JsonText, document: Any) -> list[tuple[str, int, int]] | None:
    """The source text with only the changed values replaced, or None when it cannot be."""
    if source.duplicates:
        return None  # which of the repeated members a path means is ambiguous
    edits: list[Edit] = []
    if not _changes(source.document, document, (), edits):
        return None
    text = source.text
    style = _style(text)
    spans: list[tuple[int, int, str]] = []
    try:
        for path, value, added in edits:
            start = _locate(text, path)
            if not added:
                new = _render(value, style, _indent_at(text, start))
                spans.append((start, _value_end(text, start), new))
                continue
            members = list(_members(text, start)) if text.startswith("{", start) else []
            if not members:
                return None  # an empty object shows no layout to follow
            key_start, key_end, value_start, value_end = members[-1]
            if len(members) > 1:
                separator = text[members[-2][3] : key_start]
            else:  # one member: the layout after "{" tells, when it is a line break
                gap = text[start + 1 : key_start]
                separator = "," + gap if "\n" in gap else style.separators[0]
            colon = text[key_end:value_start]
            indent = _indent_at(text, key_start)
            new = "".join(
                separator + _render(k, style, indent) + colon + _render(v, style, indent)
                for k, v in value
            )
            spans.append((value_end, value_end, new))
    except ValueError:  # includes json.JSONDecodeError: not the text we thought
        return None
    except LookupError:
        return None
    spans.sort(key=lambda span: (span[0], span[1]))
    pieces: list[tuple[str, int, int]] = []
    at = 0
    for start, end, new in spans:
        if start < at:
            return None
        pieces += [(text, at, start), (new, 0, len(new))]
        at = end
    pieces.append((text, at, len(text)))
    return pieces
