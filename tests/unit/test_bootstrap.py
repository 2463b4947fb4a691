"""The champion/challenger comparison: AUC, a paired bootstrap bound, seeded."""

from __future__ import annotations

import random

import pytest

from amlretrain.bootstrap import auc, compare
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
