"""The numbers a guarded rollout's alarms compare: errors, latency, agreement, drift."""

from __future__ import annotations

import random

import pytest

from amlretrain.errors import ConfigurationError
from amlretrain.probe_stats import (
    ScoreSummary,
    agreement,
    error_rate,
    percentile,
    population_stability,
)


def test_percentiles_interpolate_between_the_sorted_values() -> None:
    assert percentile([3, 1, 2, 4], 50) == 2.5
    assert percentile([10], 95) == 10
    assert percentile(list(range(101)), 95) == 95
    with pytest.raises(ConfigurationError, match="between 0 and 100"):
        percentile([1], 101)
    with pytest.raises(ConfigurationError, match="no values"):
        percentile([], 50)


def test_the_error_rate_is_the_share_of_failed_calls() -> None:
    assert error_rate([True, False, True, True]) == 0.25
    assert error_rate([]) == 0.0


def test_agreement_is_the_share_of_unchanged_labels() -> None:
    assert agreement(["<=50K", ">50K"], ["<=50K", ">50K"]) == 1.0
    assert agreement([0, 1, 1, 0], [1, 1, 0, 0]) == 0.5
    with pytest.raises(ConfigurationError, match="the same rows"):
        agreement([0, 1], [0])


def test_the_stability_index_is_small_for_one_distribution_and_large_for_a_shift() -> None:
    rng = random.Random(7)
    base = [rng.gauss(0.5, 0.1) for _ in range(2000)]
    same = [rng.gauss(0.5, 0.1) for _ in range(2000)]
    moved = [rng.gauss(0.7, 0.1) for _ in range(2000)]
    assert population_stability(base, same) < 0.1
    assert population_stability(base, moved) > 0.25
    with pytest.raises(ConfigurationError, match="both sides"):
        population_stability([], moved)


def test_a_summary_keeps_counts_and_quantiles_not_the_scores() -> None:
    summary = ScoreSummary.of([0.1, 0.2, 0.3, 0.4, 0.5])
    assert summary.n == 5 and summary.mean == pytest.approx(0.3)
    assert summary.quantiles[2] == pytest.approx(0.3)
    assert len(summary.quantiles) == 5


def test_the_module_examples_run() -> None:
    import doctest

    import amlretrain.probe_stats

    result = doctest.testmod(amlretrain.probe_stats)
    assert result.attempted > 0 and result.failed == 0
