"""Benchmarks of amlretrain (not tests): each prints a figure beside its baseline.

Every figure is measured side by side with its baseline in the same run, interleaved
and repeated, and reported as a median, because these machines are noisy. Run them
with ``make bench`` (all) or ``python -m bench NAME... [--quick]``.

Each benchmark module has ``NAME``, ``TITLE`` and ``run(quick: bool) -> Report``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from typing import Any

import attrs

__all__ = ["NAMES", "Report", "Row", "benchmarks", "median", "render"]


@attrs.define(kw_only=True)
class Row:
    """One line of a benchmark's table.

    Attributes:
        what: the figure measured.
        figure: amlretrain's value (already formatted with its unit).
        baseline: the baseline's value (formatted), or "-".
        ratio: figure / baseline (or its inverse, as ``ratio_label`` says), or None.
        target: the target, in words.
        passed: True (PASS), False (MISS) or None (information only).
    """

    what: str
    figure: str
    baseline: str = "-"
    ratio: float | None = None
    ratio_label: str = "x"
    target: str = "-"
    passed: bool | None = None

    @property
    def verdict(self) -> str:
        """PASS, MISS or ``info``."""
        if self.passed is None:
            return "info"
        return "PASS" if self.passed else "MISS"


@attrs.define(kw_only=True)
class Report:
    """What one benchmark found: its table and free-text notes (findings, method)."""

    name: str
    title: str
    rows: list[Row] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)
    data: dict[str, Any] = attrs.field(factory=dict)

    @property
    def misses(self) -> list[Row]:
        """The rows that missed their target."""
        return [r for r in self.rows if r.passed is False]


def median(values: Iterable[float]) -> float:
    """The median of ``values``."""
    return float(statistics.median(list(values)))


def _ratio(row: Row) -> str:
    if row.ratio is None:
        return "-"
    return f"{row.ratio:.3g}{row.ratio_label}"


def render(report: Report) -> str:
    """The report as a Markdown table plus its notes."""
    head = ["what", "amlretrain", "baseline", "ratio", "target", "result"]
    lines = [[r.what, r.figure, r.baseline, _ratio(r), r.target, r.verdict] for r in report.rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [f"### {report.name}: {report.title}", "", fmt(head)]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out += [fmt(line) for line in lines]
    if report.notes:
        out.append("")
        out += [f"- {n}" for n in report.notes]
    return "\n".join(out)


#: The benchmark modules, in the order of the Performance issue.
NAMES = (
    "patch_bytes",
    "deploy_fanout",
    "job_wait",
    "upload",
    "definition_ops",
    "startup",
    "loop_overhead",
    "fleet_memory",
    "fleet_retrain",
    "gate_calibration",
    "rollout_alarm",
    "shadow_overhead",
    "v2_swap",
    "airflow_deferral",
)


def benchmarks() -> dict[str, Callable[[bool], Report]]:
    """Benchmark name -> ``run(quick)`` (each module is imported when it runs)."""
    import importlib

    def runner(name: str) -> Callable[[bool], Report]:
        def run(quick: bool) -> Report:
            module: Any = importlib.import_module(f"bench.{name}")
            report: Report = module.run(quick)
            return report

        return run

    return {name: runner(name) for name in NAMES}
