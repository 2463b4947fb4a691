"""The benchmarks' pure helpers (the benchmarks themselves run in
tests/integration/test_bench_smoke.py: most of them start the emulator)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench._probe import intervals_union


def test_overlapping_intervals_are_counted_once() -> None:
    assert intervals_union([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)]) == pytest.approx(4.0)
    assert intervals_union([]) == 0.0


def test_the_fleet_retrain_data_files_are_distinct_and_keep_the_header(tmp_path: Path) -> None:
    from bench.fleet_retrain import _data_files

    paths = _data_files(tmp_path, 5)
    texts = [p.read_text() for p in paths]
    assert len(set(texts)) == 5
    header = texts[0].splitlines()[0]
    assert all(t.splitlines()[0] == header and len(t.splitlines()) == 301 for t in texts)


def test_the_memory_client_reads_its_own_peak_rss() -> None:
    from bench._deploy_client import _peak_rss_kb

    assert _peak_rss_kb() > 1024  # a Python process holds more than 1 MB


def test_the_v2_swap_minimum_counts_the_polls_of_each_operation() -> None:
    from bench.v2_swap import minimum, minimum_wall, polls

    assert [polls(d, 1) for d in (0.5, 1.0, 1.5, 3.0)] == [1, 1, 2, 3]
    least = minimum(3.0, 1)
    # read 3, register 1, smoke 2; each operation: its PUT, 3 polls, its final GET
    assert least == {"read": 3, "register": 1, "standby": 5, "smoke": 2, "traffic": 5}
    assert sum(least.values()) == 10 + 2 * 3
    wall = minimum_wall(3.0, 1, 0.01)
    # an operation's wall: D plus the round trips not overlapped by it (PUT, last poll, GET)
    assert wall["standby"] == pytest.approx(3.0 + 3 * 0.01)
    assert wall["read"] == pytest.approx(3 * 0.01)
    assert sum(wall.values()) == pytest.approx(6.0 + 12 * 0.01)


def test_the_v2_swap_retry_after_patch_is_put_back() -> None:
    from amlretrain.emulator.v2base import V2Base
    from bench.v2_swap import retry_after

    before = (V2Base.__dict__["async_headers"], V2Base.__dict__["op_status"])
    with retry_after(1):
        assert V2Base.__dict__["op_status"] is not before[1]
    assert (V2Base.__dict__["async_headers"], V2Base.__dict__["op_status"]) == before
