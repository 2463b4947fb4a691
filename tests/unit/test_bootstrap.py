"""The champion/challenger comparison: AUC, a paired bootstrap bound, seeded."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import pytest

from amlretrain.bootstrap import accuracy, auc, compare, log_loss
from amlretrain.errors import ConfigurationError


def test_auc_counts_pairs_and_ties_half() -> None:
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert auc([0, 1], [0.5, 0.5]) == 0.5
    # positives 0.4, 0.8 against negatives 0.1, 0.4, 0.9: 1 + 0.5 + 0 + 1 + 1 + 0 of 6
    assert auc([1, 1, 0, 0, 0], [0.4, 0.8, 0.1, 0.4, 0.9]) == pytest.approx(3.5 / 6)
    with pytest.raises(ConfigurationError, match="both classes"):
        auc([1, 1], [0.1, 0.2])


def _rows(n: int, shift: float, seed: int) -> tuple[list[int], list[float], list[float]]:
    rng = random.Random(seed)
    labels = [int(rng.random() < 0.4) for _ in range(n)]
    champion = [rng.gauss(0.8 * y, 1.0) for y in labels]
    challenger = [rng.gauss((0.8 + shift) * y, 1.0) for y in labels]
    return labels, champion, challenger


def test_a_clearly_better_challenger_is_promoted_and_a_worse_one_is_not() -> None:
    labels, champion, challenger = _rows(600, 1.5, seed=4)
    better = compare(labels, champion, challenger, resamples=300, seed=1)
    assert better.difference > 0.1 and better.lower > 0 and better.promoted(0.0)
    assert not better.promoted(better.difference + 0.05)  # not by that much
    worse = compare(labels, challenger, champion, resamples=300, seed=1)
    assert not worse.promoted(0.0) and worse.upper < 0


def test_the_same_model_is_not_promoted_and_the_seed_repeats_the_run() -> None:
    labels, champion, _ = _rows(300, 0.0, seed=9)
    same = compare(labels, champion, champion, resamples=200, seed=3)
    assert same.difference == 0 and same.lower == 0 and not same.promoted(0.0)
    labels, champion, challenger = _rows(300, 0.2, seed=9)
    first = compare(labels, champion, challenger, resamples=200, seed=3)
    assert compare(labels, champion, challenger, resamples=200, seed=3) == first
    assert (first.n, first.resamples, first.confidence) == (300, 200, 0.95)
    assert first.lower <= first.difference <= first.upper


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resamples": 10}, "at least 100 resamples"),
        ({"confidence": 1.2}, "between 0.5 and 1"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    labels, champion, challenger = _rows(50, 0.0, seed=1)
    with pytest.raises(ConfigurationError, match=message):
        compare(labels, champion, challenger, **kwargs)  # type: ignore[arg-type]


def test_too_few_or_unpaired_rows_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least 10 holdout rows"):
        compare([0, 1], [0.1, 0.2], [0.2, 0.3])
    with pytest.raises(ConfigurationError, match="the same holdout rows"):
        compare([0, 1] * 10, [0.1] * 20, [0.2] * 19)


def test_the_module_example_runs() -> None:
    import doctest

    import amlretrain.bootstrap

    result = doctest.testmod(amlretrain.bootstrap)
    assert result.attempted > 0 and result.failed == 0


def _probabilities(scores: list[float]) -> list[float]:
    return [1 / (1 + math.exp(-s)) for s in scores]


def test_the_auc_of_each_resample_is_the_one_the_rows_give() -> None:
    # The prepared-ranks AUC against the AUC of each resample's rows (any other callable
    # takes that path); rounded scores make ties, which count half in both.
    labels, champion, challenger = _rows(300, 0.3, seed=5)
    tied = [round(s, 1) for s in challenger]
    for scores in (challenger, tied):
        fast = compare(labels, champion, scores, resamples=150, seed=8)
        slow = compare(labels, champion, scores, resamples=150, seed=8, metric=_called(auc))
        assert fast.lower == pytest.approx(slow.lower, abs=1e-12)
        assert fast.upper == pytest.approx(slow.upper, abs=1e-12)
        assert (fast.champion, fast.challenger) == (slow.champion, slow.challenger)


@pytest.mark.parametrize(("metric", "lower_is_better"), [(accuracy, False), (log_loss, True)])
def test_row_mean_metrics_of_each_resample_are_the_ones_the_rows_give(
    metric: Callable[[Sequence[int], Sequence[float]], float], lower_is_better: bool
) -> None:
    labels, champion, challenger = _rows(300, 0.5, seed=6)
    a, b = _probabilities(champion), _probabilities(challenger)
    fast = compare(labels, a, b, metric=metric, lower_is_better=lower_is_better, resamples=150)
    slow = compare(
        labels, a, b, metric=_called(metric), lower_is_better=lower_is_better, resamples=150
    )
    assert fast.lower == pytest.approx(slow.lower, abs=1e-12)
    assert fast.upper == pytest.approx(slow.upper, abs=1e-12)


def _called(
    metric: Callable[[Sequence[int], Sequence[float]], float],
) -> Callable[[Sequence[int], Sequence[float]], float]:
    return lambda labels, scores: metric(labels, scores)


def test_the_bound_is_an_order_statistic_of_paired_resamples() -> None:
    # A recording metric sees every resample: the champion's rows first, then the
    # challenger's, with the same labels (the same rows: paired).
    labels, champion, challenger = _rows(200, 0.3, seed=2)
    seen: list[tuple[tuple[int, ...], float]] = []

    def recording(rows: Sequence[int], scores: Sequence[float]) -> float:
        value = auc(rows, scores)
        seen.append((tuple(rows), value))
        return value

    result = compare(labels, champion, challenger, metric=recording, resamples=100, seed=4)
    pairs = list(zip(seen[2::2], seen[3::2], strict=True))  # after the two full-data calls
    assert len(pairs) == 100
    assert all(first[0] == second[0] for first, second in pairs)
    differences = sorted(second[1] - first[1] for first, second in pairs)
    # alpha = 0.05, B = 100: k = floor(0.05 * 101) = 5, the 5th smallest and 5th largest
    assert result.lower == differences[4]
    assert result.upper == differences[95]


def test_a_lower_is_better_metric_counts_a_smaller_loss_as_the_improvement() -> None:
    labels, champion, challenger = _rows(400, 1.0, seed=3)
    a, b = _probabilities(champion), _probabilities(challenger)
    result = compare(labels, a, b, metric=log_loss, lower_is_better=True, resamples=200)
    assert result.challenger < result.champion
    assert result.difference == pytest.approx(result.champion - result.challenger)
    assert result.lower > 0 and result.promoted(0.0)
    reverse = compare(labels, b, a, metric=log_loss, lower_is_better=True, resamples=200)
    assert reverse.difference < 0 and not reverse.promoted(0.0)


def test_accuracy_and_log_loss_are_the_textbook_ones() -> None:
    assert accuracy([0, 1, 1, 0], [0.2, 0.5, 0.4, 0.7]) == 0.5  # 0.5 is scored positive
    expected = -(math.log(0.8) + math.log(0.5)) / 2
    assert log_loss([0, 1], [0.2, 0.5]) == pytest.approx(expected)
    assert log_loss([1], [0.0]) == pytest.approx(-math.log(1e-15))  # clipped, not infinite
    with pytest.raises(ConfigurationError, match="between 0 and 1"):
        log_loss([1], [1.5])


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([1] * 20, [0.5] * 20, "both classes"),
        ([0, 2] * 10, [0.5] * 20, "0 and 1 only"),
        ([0, 1] * 10, [0.5] * 19 + [math.nan], "row 19: the champion's score is nan"),
    ],
)
def test_one_class_other_labels_and_non_numbers_are_refused(
    labels: list[int], scores: list[float], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        compare(labels, scores, [0.5] * 20, metric=_called(accuracy))
