"""Training data against what the training service expects: columns, before any upload.

The columns a training service's input expects are read from its per-endpoint swagger
document (``{ApiLocation}/swagger.json``, API-NOTES 2.1). The notes name the document
but not its shape: **GUESS**, read tolerantly: the properties of an ``<input>Item``
definition (how the R AzureML package reads it), or of the item schema an
``ExecutionInputs``/``BatchExecutionInputs`` definition gives that input. When no
columns can be found, the check warns and the run goes on.

The data's own columns come from its header: the first line of a CSV (``,``) or TSV
(tab), the ``@attribute`` lines of an ARFF file.

Example:
    >>> doc = {"definitions": {"input1Item": {"properties": {"age": {}, "income": {}}}}}
    >>> expected_columns(doc, "input1")
    ('age', 'income')
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from amlretrain._wire import find_key
from amlretrain.errors import ConfigurationError

__all__ = ["check_columns", "data_columns", "expected_columns"]

log = logging.getLogger(__name__)

#: Bytes of a data file read to find its header.
HEADER_BYTES = 1 << 20


def _member(node: Any, name: str) -> Any:
    if not isinstance(node, Mapping):
        return None
    key = find_key(node, name)
    return node[key] if key is not None else None


def _properties(schema: Any, definitions: Any) -> tuple[str, ...] | None:
    """The property names of a schema (following one ``$ref`` and an array's items)."""
    for _ in range(3):
        if not isinstance(schema, Mapping):
            return None
        ref = _member(schema, "$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            schema = _member(definitions, ref.rsplit("/", 1)[1])
            continue
        items = _member(schema, "items")
        if items is not None and _member(schema, "properties") is None:
            schema = items
            continue
        props = _member(schema, "properties")
        if isinstance(props, Mapping) and props:
            return tuple(str(k) for k in props)
        return None
    return None


def expected_columns(doc: Any, input_name: str) -> tuple[str, ...] | None:
    """The columns the swagger document says ``input_name`` takes, or None (unknown)."""
    definitions = _member(doc, "definitions")
    if not isinstance(definitions, Mapping):
        return None
    found = _properties(_member(definitions, f"{input_name}Item"), definitions)
    if found:
        return found
    for container in ("ExecutionInputs", "BatchExecutionInputs"):
        inputs = _member(_member(definitions, container), "properties")
        found = _properties(_member(inputs, input_name), definitions)
        if found:
            return found
    return None


def data_columns(path: Path) -> tuple[str, ...]:
    """The column names of a local ``.csv``, ``.tsv`` or ``.arff`` file (its header).

    Raises:
        ConfigurationError: it cannot be read, or has no header.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(HEADER_BYTES)
    except OSError as err:
        raise ConfigurationError(f"cannot read the training data {path}: {err.strerror}") from err
    text = head.decode("utf-8-sig", errors="replace")
    if path.suffix.lower() == ".arff":
        names = []
        for line in text.splitlines():
            parts = line.strip().split(None, 2)
            if parts and parts[0].lower() == "@attribute" and len(parts) >= 2:
                names.append(parts[1].strip("'\""))
            elif parts and parts[0].lower() == "@data":
                break
        if not names:
            raise ConfigurationError(f"the training data {path} has no @attribute lines")
        return tuple(names)
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    row = next(csv.reader(io.StringIO(first), delimiter=delimiter), [])
    names = [c.strip() for c in row]
    if not names or not any(names):
        raise ConfigurationError(f"the training data {path} has no header row")
    return tuple(names)


def check_columns(expected: Sequence[str], actual: Sequence[str], *, source: str) -> list[str]:
    """Refuse data missing expected columns; return warnings for extra ones.

    Raises:
        ConfigurationError: a column the service expects (the label among them) is
            missing; the message names each, and a column that differs only in case.
    """
    have = set(actual)
    missing = [c for c in expected if c not in have]
    if missing:
        lowered = {c.lower(): c for c in actual}
        named = [
            f"{c!r} (the data has {lowered[c.lower()]!r})" if c.lower() in lowered else repr(c)
            for c in missing
        ]
        raise ConfigurationError(
            f"{source}: the training service expects column(s) {', '.join(named)} that the "
            f"data does not have (it has {', '.join(actual)}); nothing was uploaded"
        )
    extra = [c for c in actual if c not in set(expected)]
    if extra:
        return [
            f"{source}: column(s) {', '.join(repr(c) for c in extra)} are not among the "
            "training service's inputs: the service may refuse or ignore them"
        ]
    return []
