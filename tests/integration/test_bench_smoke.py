"""Smoke test of the benchmarks: each still runs at its smallest size (``--quick``).

Most benchmarks start the emulator (and Azurite), so this runs with the integration tests
(tests/unit opens no sockets). It asserts the shape of what a benchmark reports, never a
time: timings belong to ``make bench`` and docs/performance.md, not to the test suite.
"""

from __future__ import annotations

import pytest

import bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]


# airflow_deferral needs .venv-airflow and a real Airflow stack (minutes): not a smoke test.
@pytest.mark.parametrize("name", [n for n in bench.NAMES if n != "airflow_deferral"])
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


def test_deploy_fanout_takes_its_endpoint_count_and_counts_requests_per_target() -> None:
    from bench import deploy_fanout

    report = deploy_fanout.run(True, count=3)
    assert report.data["count"] == 3
    assert "3 classic endpoints" in report.title
    # GET (check), PATCH, GET (verify) at least; the shared web-service read not counted
    assert report.data["per_target"] >= deploy_fanout.MINIMUM_PER_TARGET
