"""HTML renderings for Jupyter (``_repr_html_``): small tables, secrets redacted."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from amlretrain._redact import redact

if TYPE_CHECKING:
    from amlretrain.studio.definition import WebServiceDefinition

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


def definition_html(definition: WebServiceDefinition) -> str:
    """Assets and trained models of a definition at a glance."""
    props = definition.properties
    title = props.title if props and props.title else definition.name or "web service"
    trained = {m.asset_id for m in definition.trained_models}
    rows = [
        (
            asset_id,
            asset.name,
            asset.type,
            "yes" if asset_id in trained else "",
            asset.location_info.uri if asset.location_info else "",
        )
        for asset_id, asset in definition.assets.items()
    ]
    summary = (
        f"<p><b>{html.escape(str(title))}</b> · package {_cell(definition.package_type)}"
        f" · {len(rows)} assets · {len(trained)} trained model(s)"
        f"{' · read-only' if definition.is_read_only else ''}</p>"
    )
    return summary + table_html(("asset", "name", "type", "trained model", "uri"), rows)
