"""HTML renderings for Jupyter (``_repr_html_``): small tables, secrets redacted."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

from amlretrain._redact import redact

__all__ = ["definition_html", "table_html"]


def _cell(value: Any) -> str:
    return html.escape(redact("" if value is None else str(value)))


def table_html(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None
) -> str:
    """An HTML table; every cell is escaped and redacted."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def definition_html(
    *,
    title: str,
    package_type: str | None,
    rows: Sequence[tuple[str, str | None, str | None, bool, str | None]],
    read_only: bool,
) -> str:
    """A web-service definition at a glance: a summary line and a table of its assets.

    Args:
        title: the service's title (or name).
        package_type: ``properties.packageType``.
        rows: per asset: its id, name, type, whether it holds a trained model, its uri.
        read_only: the service is read-only.
    """
    trained = sum(1 for row in rows if row[3])
    summary = (
        f"<p><b>{html.escape(title)}</b> · package {_cell(package_type)}"
        f" · {len(rows)} assets · {trained} trained model(s)"
        f"{' · read-only' if read_only else ''}</p>"
    )
    cells = [(a, name, kind, "yes" if model else "", uri) for a, name, kind, model, uri in rows]
    return summary + table_html(("asset", "name", "type", "trained model", "uri"), cells)
