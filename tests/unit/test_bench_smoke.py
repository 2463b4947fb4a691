"""Smoke test of the benchmarks: each still runs at its smallest size (``--quick``).

It asserts the shape of what a benchmark reports, never a time: timings belong to
``make bench`` and docs/performance.md, not to the test suite.
"""

from __future__ import annotations

import pytest

import bench
from bench._probe import intervals_union


def test_overlapping_intervals_are_counted_once() -> None:
    assert intervals_union([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)]) == pytest.approx(4.0)
    assert intervals_union([]) == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("name", bench.NAMES)
def test_each_benchmark_runs_in_quick_mode_and_reports_a_table(name: str) -> None:
    report = bench.benchmarks()[name](True)
    assert report.name == name
    assert report.rows, "a benchmark must report at least one row"
    for row in report.rows:
        assert row.what and row.figure
        assert row.verdict in ("PASS", "MISS", "info")
        if row.passed is not None:
            assert row.target != "-", "a PASS/MISS row must say its target"
    table = bench.render(report)
    assert table.startswith(f"### {name}:")
    assert all(row.what in table for row in report.rows)
