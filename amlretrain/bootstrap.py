"""A statistical champion/challenger comparison: a paired bootstrap of a metric on holdout rows.

Groundwork of the guarded rollout's gate: both models score the same holdout rows; the
challenger is promoted only when its metric beats the champion's by ``min_change`` with a
one-sided confidence bound from a paired bootstrap (the same resampled rows for both).
Seeded, so a run can be repeated. Pure code, no numpy: about a second for 1,000 rows
and 1,000 resamples.

Example:
    >>> labels = [0, 0, 1, 1] * 50
    >>> champion = [0.4, 0.6, 0.5, 0.7] * 50
    >>> challenger = [0.1, 0.2, 0.8, 0.9] * 50
    >>> result = compare(labels, champion, challenger, resamples=200, seed=1)
    >>> result.promoted(0.0), round(result.difference, 3)
    (True, 0.25)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import attrs

from amlretrain.errors import ConfigurationError

__all__ = ["Comparison", "auc", "compare"]


def auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """The area under the ROC curve (Mann-Whitney; ties count half).

    Raises:
        ConfigurationError: different lengths, or not both classes present.
    """
    if len(labels) != len(scores):
        raise ConfigurationError(f"{len(labels)} labels for {len(scores)} scores")
    order = sorted(range(len(scores)), key=scores.__getitem__)
    rank_sum = 0.0
    positives = 0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        rank = (i + j) / 2 + 1  # the mean rank of a run of ties
        for k in range(i, j + 1):
            if labels[order[k]]:
                rank_sum += rank
                positives += 1
        i = j + 1
    negatives = len(labels) - positives
    if not positives or not negatives:
        raise ConfigurationError("the AUC needs rows of both classes")
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


@attrs.frozen(kw_only=True)
class Comparison:
    """The challenger against the champion on ``n`` holdout rows.

    Attributes:
        n: the rows.
        champion, challenger: their metric on all rows.
        difference: challenger minus champion.
        lower, upper: the bootstrap interval of the difference (``lower`` is the
            one-sided bound at ``confidence``; ``upper`` the symmetric one).
        confidence: the confidence level of ``lower``.
        resamples: how many bootstrap resamples.
        seed: the random seed.
    """

    n: int
    champion: float
    challenger: float
    difference: float
    lower: float
    upper: float
    confidence: float
    resamples: int
    seed: int

    def promoted(self, min_change: float = 0.0) -> bool:
        """True when the challenger beats the champion by more than ``min_change``,
        with ``confidence``: the lower bound of the difference is above it."""
        return self.lower > min_change


def compare(
    labels: Sequence[int],
    champion: Sequence[float],
    challenger: Sequence[float],
    *,
    metric: Callable[[Sequence[int], Sequence[float]], float] = auc,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Compare two models' scores of the same rows with a paired bootstrap.

    A resample that holds one class only is drawn again (the metric is undefined).

    Raises:
        ConfigurationError: different lengths, fewer than 10 rows or 100 resamples, a
            confidence outside (0.5, 1), or one class only.
    """
    n = len(labels)
    if not n == len(champion) == len(challenger):
        raise ConfigurationError("both models must score the same holdout rows")
    if n < 10:
        raise ConfigurationError(f"a comparison needs at least 10 holdout rows, not {n}")
    if resamples < 100:
        raise ConfigurationError(f"at least 100 resamples, not {resamples}")
    if not 0.5 < confidence < 1:
        raise ConfigurationError(f"the confidence is between 0.5 and 1, not {confidence}")
    base_champion = metric(labels, champion)
    base_challenger = metric(labels, challenger)
    rng = random.Random(seed)
    differences: list[float] = []
    while len(differences) < resamples:
        rows = [rng.randrange(n) for _ in range(n)]
        sample = [labels[i] for i in rows]
        if len(set(sample)) < 2:
            continue
        a = metric(sample, [champion[i] for i in rows])
        b = metric(sample, [challenger[i] for i in rows])
        differences.append(b - a)
    differences.sort()
    tail = 1 - confidence
    lower = differences[int(tail * resamples)]
    upper = differences[min(resamples - 1, int(confidence * resamples))]
    return Comparison(
        n=n,
        champion=base_champion,
        challenger=base_challenger,
        difference=base_challenger - base_champion,
        lower=lower,
        upper=upper,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
    )
