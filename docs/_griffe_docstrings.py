"""Griffe extension for the API reference: read amlretrain's docstrings as they are written.

Loaded by mkdocstrings (mkdocs.yml), never by the library. Two differences between how the
docstrings are written and what griffe's Google parser renders as Markdown:

- a doctest section headed ``Example:`` (which Napoleon accepts): griffe knows only
  ``Examples:`` and would render the doctest as Markdown, where ``['a1']`` becomes a
  broken reference link (an error under ``mkdocs build --strict``);
- Sphinx roles (``:class:`~amlretrain.blobs.BlobRef```): Markdown shows them literally,
  so they become code spans (``BlobRef``). Not links: a name that does not resolve would
  fail the strict build;
- constants documented by ``#:`` comments above them (as Sphinx reads them): griffe reads
  only docstrings, and would leave such public constants out of the reference.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^([ \t]*)Example:[ \t]*$", re.M)
_ROLE = re.compile(r":(?:py:)?(?:attr|class|data|exc|func|meth|mod|obj|const):`(~?)([^`]+)`")


def _code_span(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def rewrite(docstring: str) -> str:
    """The docstring with ``Example:`` read as ``Examples:`` and Sphinx roles as code."""
    return _ROLE.sub(_code_span, _EXAMPLE.sub(r"\1Examples:", docstring))


class AmlretrainDocstrings(griffe.Extension):
    """Read ``#:`` comments of attributes, then :func:`rewrite` every docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None and obj.is_attribute:
            comment = _comment_above(obj)
            if comment:
                obj.docstring = griffe.Docstring(comment, lineno=obj.lineno, parent=obj)
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)


def _comment_above(obj: griffe.Object) -> str:
    """The ``#:`` comment lines right above an assignment, without the markers."""
    if obj.filepath is None or obj.lineno is None or isinstance(obj.filepath, list):
        return ""
    try:
        lines = obj.lines_collection[obj.filepath]
    except KeyError:
        return ""
    comment: list[str] = []
    for line in reversed(lines[: obj.lineno - 1]):
        stripped = line.strip()
        if not stripped.startswith("#:"):
            break
        comment.insert(0, stripped[2:].strip())
    return "\n".join(comment)
