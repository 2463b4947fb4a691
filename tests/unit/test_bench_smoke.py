"""The benchmarks' pure helpers (the benchmarks themselves run in
tests/integration/test_bench_smoke.py: most of them start the emulator)."""

from __future__ import annotations

import pytest

from bench._probe import intervals_union


def test_overlapping_intervals_are_counted_once() -> None:
    assert intervals_union([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)]) == pytest.approx(4.0)
    assert intervals_union([]) == 0.0
