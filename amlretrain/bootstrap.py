"""A statistical champion/challenger comparison: a paired bootstrap of a metric on holdout rows.

Groundwork of the guarded rollout's gate: both models score the same holdout rows; the
challenger is promoted only when its metric beats the champion's by ``min_change`` with a
one-sided confidence bound from a paired bootstrap (the same resampled rows for both).
Seeded, so a run can be repeated. Pure code, no numpy: about 0.2 s for 1,000 rows and
1,000 resamples of the AUC (the AUC of a resample is read from ranks computed once).

Example:
    >>> labels = [0, 0, 1, 1] * 50
    >>> champion = [0.4, 0.6, 0.5, 0.7] * 50
    >>> challenger = [0.1, 0.2, 0.8, 0.9] * 50
    >>> result = compare(labels, champion, challenger, resamples=200, seed=1)
    >>> result.promoted(0.0), round(result.difference, 3)
    (True, 0.25)
"""

from __future__ import annotations

import math
import random
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import accumulate, repeat
from operator import add, itemgetter, mod, mul
from typing import Any, cast

import attrs

from amlretrain.errors import ConfigurationError

__all__ = ["Comparison", "accuracy", "auc", "compare", "log_loss"]

#: The probability from which a row is scored as the positive class (as Studio's
#: "Scored Labels" and the emulator do).
THRESHOLD = 0.5
#: Probabilities are clipped to [EPSILON, 1 - EPSILON] in the log loss (log of 0).
EPSILON = 1e-15


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


def accuracy(labels: Sequence[int], scores: Sequence[float]) -> float:
    """The share of rows whose scored label is right: positive when the score is >= 0.5.

    Raises:
        ConfigurationError: different lengths, or no rows.
    """
    return _mean(_correct(labels, scores))


def log_loss(labels: Sequence[int], scores: Sequence[float]) -> float:
    """The average log loss of probabilities of the positive class (lower is better).

    Probabilities are clipped to [1e-15, 1 - 1e-15], as Studio's "Evaluate Model" does.

    Raises:
        ConfigurationError: different lengths, no rows, or a score outside [0, 1].
    """
    return _mean(_losses(labels, scores))


def _correct(labels: Sequence[int], scores: Sequence[float]) -> list[float]:
    _same_length(labels, scores)
    return [float((p >= THRESHOLD) == bool(y)) for y, p in zip(labels, scores, strict=True)]


def _losses(labels: Sequence[int], scores: Sequence[float]) -> list[float]:
    _same_length(labels, scores)
    out = []
    for row, (y, p) in enumerate(zip(labels, scores, strict=True)):
        if not 0 <= p <= 1:
            raise ConfigurationError(
                f"row {row}: the log loss needs probabilities between 0 and 1, not {p!r}"
            )
        p = min(max(p, EPSILON), 1 - EPSILON)
        out.append(-math.log(p if y else 1 - p))
    return out


def _same_length(labels: Sequence[int], scores: Sequence[float]) -> None:
    if len(labels) != len(scores):
        raise ConfigurationError(f"{len(labels)} labels for {len(scores)} scores")
    if not labels:
        raise ConfigurationError("a metric of no rows")


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


#: The metrics whose value is a mean over rows: a resample's value is a weighted sum.
_PER_ROW: tuple[tuple[Callable[..., float], Callable[..., list[float]]], ...] = (
    (accuracy, _correct),
    (log_loss, _losses),
)


@attrs.frozen(kw_only=True)
class Comparison:
    """The challenger against the champion on ``n`` holdout rows.

    Attributes:
        n: the rows.
        champion, challenger: their metric on all rows.
        difference: the challenger's improvement on all rows: challenger minus champion,
            or champion minus challenger for a lower-is-better metric (log loss). Positive
            means the challenger is better.
        lower, upper: the bootstrap interval of the improvement: ``lower`` is the
            one-sided lower bound at ``confidence`` (the improvement is above it with
            that confidence), ``upper`` the symmetric upper one.
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
        with ``confidence``: the lower bound of the improvement is above it.

        Strictly above: a lower bound equal to ``min_change`` keeps the champion, so a
        challenger that scores exactly like it (every resample's difference 0) is never
        promoted at ``min_change = 0``.
        """
        return self.lower > min_change


def compare(
    labels: Sequence[int],
    champion: Sequence[float],
    challenger: Sequence[float],
    *,
    metric: Callable[[Sequence[int], Sequence[float]], float] = auc,
    lower_is_better: bool = False,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Compare two models' scores of the same rows with a paired bootstrap.

    Each resample draws ``n`` rows with replacement (uniformly, from ``random.Random(seed)``)
    and computes both models' metric on those same rows; the improvement's percentile
    interval gives the bounds. With ``B`` resamples and ``alpha = 1 - confidence``,
    ``lower`` is the ``k``-th smallest of the ``B`` improvements, ``k = floor(alpha * (B +
    1))`` (at least 1): for 1,000 resamples at 95%, the 50th. A resample that holds one
    class only is drawn again (the AUC is undefined). :func:`auc`, :func:`accuracy` and
    :func:`log_loss` are computed from values prepared once (ranks, per-row values); any
    other ``metric`` is called on each resample's rows, with the same results for the
    same seed.

    Args:
        labels: 0/1 per row.
        champion, challenger: each model's score of each row (the probability of the
            positive class for accuracy and log loss).
        metric: the metric of (labels, scores).
        lower_is_better: True for a loss (the improvement is then champion minus
            challenger).
        resamples: how many bootstrap resamples (at least 100).
        confidence: the level of the one-sided bound, between 0.5 and 1.
        seed: the random seed: the same inputs and seed give the same result.

    Raises:
        ConfigurationError: different lengths, fewer than 10 rows or 100 resamples, a
            confidence outside (0.5, 1), a score that is not a finite number, labels other
            than 0 and 1, or one class only.
    """
    n = len(labels)
    if not n == len(champion) == len(challenger):
        raise ConfigurationError(
            f"both models must score the same holdout rows: {n} labels, {len(champion)} "
            f"champion and {len(challenger)} challenger scores"
        )
    if n < 10:
        raise ConfigurationError(f"a comparison needs at least 10 holdout rows, not {n}")
    if resamples < 100:
        raise ConfigurationError(f"at least 100 resamples, not {resamples}")
    if not 0.5 < confidence < 1:
        raise ConfigurationError(f"the confidence is between 0.5 and 1, not {confidence}")
    for name, scores in (("champion", champion), ("challenger", challenger)):
        for row, score in enumerate(scores):
            if not math.isfinite(score):
                raise ConfigurationError(f"row {row}: the {name}'s score is {score!r}")
    if any(y not in (0, 1) for y in labels):
        raise ConfigurationError("the labels are 0 and 1 only")
    if not 0 < sum(labels) < n:  # else every resample would be drawn again, for ever
        raise ConfigurationError("the comparison needs holdout rows of both classes")
    base_champion = metric(labels, champion)
    base_challenger = metric(labels, challenger)
    sign = -1.0 if lower_is_better else 1.0
    improvement = _improvement(labels, champion, challenger, metric, sign)
    positives = itemgetter(*(i for i in range(n) if labels[i]))
    rng = random.Random(seed)
    differences: list[float] = []
    while len(differences) < resamples:
        weights = _resample(rng, n)
        pos = _tuple(positives(weights))
        if not 0 < sum(pos) < n:
            continue
        differences.append(improvement(weights, pos))
    differences.sort()
    k = max(1, math.floor(round((1 - confidence) * (resamples + 1), 9)))
    return Comparison(
        n=n,
        champion=base_champion,
        challenger=base_challenger,
        difference=sign * (base_challenger - base_champion),
        lower=differences[k - 1],
        upper=differences[resamples - k],
        confidence=confidence,
        resamples=resamples,
        seed=seed,
    )


def _resample(rng: random.Random, n: int) -> list[int]:
    """How many times each of ``n`` rows is drawn in ``n`` draws with replacement.

    Each draw is a 64-bit random integer modulo ``n`` (its bias, below n / 2**64, is
    nothing); read little-endian on every platform, so a seed draws the same rows.
    """
    draws = array("Q", rng.getrandbits(64 * n).to_bytes(8 * n, "little"))
    if sys.byteorder == "big":  # pragma: no cover - the same draws on every platform
        draws.byteswap()
    counts = Counter(map(mod, draws, repeat(n)))
    return list(map(counts.get, range(n), repeat(0)))


def _tuple(picked: Any) -> tuple[int, ...]:
    # itemgetter of one index returns the item, not a 1-tuple
    return cast("tuple[int, ...]", picked if isinstance(picked, tuple) else (picked,))


def _improvement(
    labels: Sequence[int],
    champion: Sequence[float],
    challenger: Sequence[float],
    metric: Callable[[Sequence[int], Sequence[float]], float],
    sign: float,
) -> Callable[[list[int], tuple[int, ...]], float]:
    """The improvement of a resample, from its row counts (``weights``) and those of the
    positive rows (``pos``), prepared once."""
    n = len(labels)
    if metric is auc:
        first, second = _ranked(labels, champion), _ranked(labels, challenger)

        def by_ranks(weights: list[int], pos: tuple[int, ...]) -> float:
            total = sum(pos) * (n - sum(pos))
            return sign * (second(weights, pos) - first(weights, pos)) / (2 * total)

        return by_ranks
    values = next((v for m, v in _PER_ROW if m is metric), None)
    if values is not None:
        rows = [
            sign * (b - a)
            for a, b in zip(values(labels, champion), values(labels, challenger), strict=True)
        ]

        def by_rows(weights: list[int], pos: tuple[int, ...]) -> float:
            return float(sum(map(mul, weights, rows))) / n

        return by_rows

    def by_metric(weights: list[int], pos: tuple[int, ...]) -> float:
        rows = [i for i, count in enumerate(weights) for _ in range(count)]
        sample = [labels[i] for i in rows]
        a = metric(sample, [champion[i] for i in rows])
        b = metric(sample, [challenger[i] for i in rows])
        return sign * (b - a)

    return by_metric


def _ranked(
    labels: Sequence[int], scores: Sequence[float]
) -> Callable[[list[int], tuple[int, ...]], int]:
    """Twice the Mann-Whitney U of a resample, from the negatives' order computed once.

    For each positive row, ``below`` and ``upto`` are how many negatives score lower and
    at most as high (bisection, once). A resample's U sums, over positives, their count
    times the count of negatives below them plus half of those tied: with the negatives'
    cumulative counts in score order, ``2U = sum(count * (cum[below] + cum[upto]))``,
    exact in integers.
    """
    negatives = sorted((i for i in range(len(labels)) if not labels[i]), key=scores.__getitem__)
    ordered = [scores[i] for i in negatives]
    positive_scores = [scores[i] for i in range(len(labels)) if labels[i]]
    below = [bisect_left(ordered, s) for s in positive_scores]
    upto = [bisect_right(ordered, s) for s in positive_scores]
    of_negatives = itemgetter(*negatives)
    at_below, at_upto = itemgetter(*below), itemgetter(*upto)
    tied = below != upto

    def twice_u(weights: list[int], pos: tuple[int, ...]) -> int:
        cumulative = list(accumulate(_tuple(of_negatives(weights)), initial=0))
        lows = _tuple(at_below(cumulative))
        if not tied:
            return 2 * int(sum(map(mul, pos, lows)))
        return int(sum(map(mul, pos, map(add, lows, _tuple(at_upto(cumulative))))))

    return twice_u
