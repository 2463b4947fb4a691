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
