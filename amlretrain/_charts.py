"""The evidence report's charts: matplotlib figures, each rendered as inline SVG.

matplotlib is an optional extra (``pip install 'amlretrain[report]'``), imported only when
a chart is drawn (``import amlretrain`` never imports it). No pyplot: each chart is a
:class:`matplotlib.figure.Figure` of its own, saved by the SVG backend, so a report drawn
in a notebook or a thread neither changes nor uses the process's GUI backend or its
current figure. Text stays text (``svg.fonttype = none``: the browser's own sans-serif,
no font file), ids are salted per chart (two charts of one page never share one, and the
same report draws the same bytes), and what the SVG writer adds for a file of its own
(the XML declaration, the DOCTYPE, the RDF metadata, the namespace URIs, which an SVG
inside HTML does not need) is removed: the page names no URL.

Pure data in, SVG text out; no amlretrain import.
"""

from __future__ import annotations

import inspect
import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "CANDIDATE",
    "INCUMBENT",
    "gate_chart",
    "metric_history_chart",
    "require_matplotlib",
    "shadow_chart",
]

#: The two models' colours in every chart (and the report's legend).
INCUMBENT = "#1f77b4"
CANDIDATE = "#ff7f0e"
_REFUSED = "#d62728"
_GRID = "#dddddd"

_INSTALL = "pip install 'amlretrain[report]'"
_PROLOGUE = re.compile(r"\A.*?(?=<svg\b)", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_NAMESPACES = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')
_ID = re.compile(r'\b(id)="([^"]+)"')
_REFERENCE = re.compile(r'(url\(|href=")#([^")]+)')


def require_matplotlib() -> Any:
    """The ``matplotlib.figure`` module.

    Raises:
        ImportError: matplotlib is not installed (the message names the extra).
    """
    try:
        import matplotlib.figure
    except ImportError as err:
        raise ImportError(
            f"the evidence report draws its charts with matplotlib, which is not installed: "
            f"{_INSTALL}"
        ) from err
    return matplotlib.figure


def _ticker() -> Any:
    import matplotlib.ticker

    return matplotlib.ticker


def _figure(width: float, height: float) -> Any:
    figure = require_matplotlib().Figure(figsize=(width, height), dpi=72, layout="constrained")
    figure.patch.set_facecolor("white")
    return figure


def _svg(figure: Any, salt: str) -> str:
    """``figure`` as an SVG element for an HTML page (see the module docstring)."""
    import matplotlib

    out = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        figure.savefig(
            out,
            format="svg",
            metadata={"Creator": None, "Date": None, "Format": None, "Type": None},
        )
    text = _PROLOGUE.sub("", out.getvalue(), count=1)
    text = _METADATA.sub("", text)
    text = _NAMESPACES.sub("", text).strip()
    # ids unique in the page: matplotlib numbers each figure's groups from 1
    text = _ID.sub(lambda m: f'{m.group(1)}="{salt}-{m.group(2)}"', text)
    return _REFERENCE.sub(lambda m: f"{m.group(1)}#{salt}-{m.group(2)}", text)


def _style(ax: Any) -> None:
    ax.grid(True, color=_GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def metric_history_chart(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    deployed: Sequence[bool],
    in_run: Sequence[bool],
    salt: str,
) -> str:
    """One panel per metric: its value at each retrain of a target, oldest first.

    Args:
        labels: each retrain's x label (its date).
        series: per metric, its value at each retrain (None: not recorded then).
        deployed: per retrain, True when the model was deployed (joined by the line),
            False when the gate refused it (a red cross).
        in_run: per retrain, True when the report's run wrote it (a ring around it).
        salt: the chart's id salt (unique in the page).
    """
    names = list(series)
    figure = _figure(7.5, 1.3 + 1.5 * len(names))
    axes = figure.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    xs = list(range(len(labels)))
    for ax, name in zip(axes, names, strict=True):
        values = series[name]
        kept = [
            (x, v) for x, v, ok in zip(xs, values, deployed, strict=True) if ok and v is not None
        ]
        refused = [
            (x, v)
            for x, v, ok in zip(xs, values, deployed, strict=True)
            if not ok and v is not None
        ]
        ringed = [
            (x, v) for x, v, mine in zip(xs, values, in_run, strict=True) if mine and v is not None
        ]
        if kept:
            ax.plot(*zip(*kept, strict=True), marker="o", color=INCUMBENT, linewidth=1.8)
        if refused:
            ax.plot(*zip(*refused, strict=True), "x", color=_REFUSED, markersize=9, mew=2)
        if ringed:
            ax.plot(*zip(*ringed, strict=True), "o", mfc="none", mec=CANDIDATE, ms=13, mew=2)
        ax.set_ylabel(name, fontsize=9)
        _style(ax)
    axes[-1].set_xticks(xs, labels, rotation=30, ha="right", fontsize=8)
    axes[0].set_title(
        "deployed (line), refused by the gate (red x), this run (ring)", fontsize=9, loc="left"
    )
    return _svg(figure, salt)


def gate_chart(
    *,
    metric: str,
    champion: float | None,
    challenger: float | None,
    difference: float | None,
    lower: float | None,
    upper: float | None,
    min_change: float | None,
    confidence: float | None,
    salt: str,
) -> str:
    """The champion against the challenger, and their difference with its interval.

    Left: the metric of each model on the holdout. Right: challenger minus champion, its
    bootstrap interval (``lower`` to ``upper``, or to the difference when no upper bound
    was recorded) and the line it must clear (``min_change``, dashed; 0, grey).
    Any figure may be None: what is missing is not drawn.
    """
    figure = _figure(7.5, 2.4)
    left, right = figure.subplots(1, 2, width_ratios=(1, 1.6))
    pairs = (("champion", champion, INCUMBENT), ("challenger", challenger, CANDIDATE))
    models = [(n, v, c) for n, v, c in pairs if v is not None]
    if models:
        names, values, colours = zip(*models, strict=True)
        left.barh(names, values, color=colours, height=0.55)
        left.invert_yaxis()
        span = max(abs(v) for v in values) or 1.0
        for y, value in enumerate(values):
            left.text(value, y, f" {value:.4g}", va="center", fontsize=8)
        left.set_xlim(min(0.0, *values), max(0.0, *values) + span * 0.3)
    left.set_title(metric, fontsize=9, loc="left")
    _style(left)
    if difference is not None:
        low = lower if lower is not None else difference
        high = upper if upper is not None else difference
        xerr = [[max(difference - low, 0.0)], [max(high - difference, 0.0)]]
        right.errorbar(
            [difference], [0], xerr=xerr, fmt="o", color=CANDIDATE, ecolor=CANDIDATE,
            elinewidth=3, capsize=8, markersize=8,
        )  # fmt: skip
    right.axvline(0.0, color="#888888", linewidth=1)
    if min_change is not None:
        right.axvline(min_change, color=_REFUSED, linestyle="--", linewidth=1.5)
    level = f"{confidence:.0%} " if confidence is not None else ""
    right.set_title(
        f"challenger - champion, {level}interval; dashed: min_change", fontsize=9, loc="left"
    )
    right.set_yticks([])
    right.xaxis.set_major_locator(_ticker().MaxNLocator(5))
    right.set_ylim(-1, 1)
    _style(right)
    return _svg(figure, salt)


def shadow_chart(
    incumbent: Mapping[str, Any] | None,
    candidate: Mapping[str, Any] | None,
    *,
    salt: str,
) -> str:
    """Two score distributions: histograms (shares of rows) when both summaries have
    one, else box plots of their quantiles (5th to 95th percentile whiskers).

    Each summary is ``{"histogram": {"edges": [...], "counts": [...]}}`` or
    ``{"quantiles": [q5, q25, q50, q75, q95], "mean": m}`` (validated by the caller).
    """
    figure = _figure(7.5, 2.6)
    ax = figure.subplots()
    both = [(n, s, c) for n, s, c in (("incumbent", incumbent, INCUMBENT),
                                      ("candidate", candidate, CANDIDATE)) if s]  # fmt: skip
    if all("histogram" in s for _, s, _ in both):
        for name, summary, colour in both:
            edges, counts = summary["histogram"]["edges"], summary["histogram"]["counts"]
            total = sum(counts) or 1
            shares = [c / total for c in counts]
            ax.stairs(shares, edges, fill=True, alpha=0.35, color=colour, label=name)
            ax.stairs(shares, edges, color=colour, linewidth=1.8)
        ax.set_xlabel("score", fontsize=9)
        ax.set_ylabel("share of rows", fontsize=9)
        ax.legend(fontsize=8, frameon=False)
    else:
        stats = []
        for name, summary, _ in both:
            q5, q25, q50, q75, q95 = summary["quantiles"]
            stat = {"label": name, "whislo": q5, "q1": q25, "med": q50, "q3": q75, "whishi": q95}
            if summary.get("mean") is not None:
                stat["mean"] = summary["mean"]
            stats.append(stat)
        # matplotlib 3.10 named it orientation; vert (3.7-3.9) is deprecated since
        horizontal = (
            {"orientation": "horizontal"}
            if "orientation" in inspect.signature(ax.bxp).parameters
            else {"vert": False}
        )
        boxes = ax.bxp(
            stats, showfliers=False, showmeans=any("mean" in s for s in stats),
            patch_artist=True, widths=0.5, **horizontal,
        )  # fmt: skip
        for patch, (_, _, colour) in zip(boxes["boxes"], both, strict=True):
            patch.set_facecolor(colour)
            patch.set_alpha(0.6)
        ax.set_xlabel("score (box: 25th-75th percentile, whiskers: 5th-95th)", fontsize=9)
    _style(ax)
    return _svg(figure, salt)
