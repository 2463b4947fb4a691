"""What a probe's scores say: error rate, p95 latency, label agreement, score drift (PSI).

Groundwork of the guarded rollout (issue "Guarded rollout"): its alarms compare what
amlretrain's own probe scoring of the candidate shows with the incumbent, each against a
threshold. Pure code: summaries in, numbers out; raw scores never leave this module in a
record (:class:`ScoreSummary` keeps counts and quantiles only).

Example:
    >>> agreement(["a", "b", "a"], ["a", "b", "b"])
    0.6666666666666666
    >>> round(population_stability([0.1, 0.2, 0.3, 0.4] * 25, [0.1, 0.2, 0.3, 0.4] * 25), 6)
    0.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs

from amlretrain.errors import ConfigurationError

__all__ = [
    "ScoreSummary",
    "agreement",
    "error_rate",
    "percentile",
    "population_stability",
]

#: A share of a bucket never taken as 0 in the PSI (log of 0): the usual small floor.
_FLOOR = 1e-4


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated.

    Raises:
        ConfigurationError: no values, or ``q`` outside 0-100.
    """
    if not values:
        raise ConfigurationError("a percentile of no values")
    if not 0 <= q <= 100:
        raise ConfigurationError(f"a percentile is between 0 and 100, not {q}")
    ordered = sorted(values)
    at = (len(ordered) - 1) * q / 100
    low, high = math.floor(at), math.ceil(at)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def error_rate(outcomes: Sequence[bool]) -> float:
    """The share of failed calls (``outcomes``: True for a call that succeeded); 0 for none."""
    if not outcomes:
        return 0.0
    return sum(1 for ok in outcomes if not ok) / len(outcomes)


def agreement(incumbent: Sequence[object], candidate: Sequence[object]) -> float:
    """The share of rows whose label is the same on both models (1.0: all agree).

    Raises:
        ConfigurationError: the two do not score the same number of rows, or none.
    """
    if len(incumbent) != len(candidate):
        raise ConfigurationError(
            f"agreement needs the same rows scored by both: {len(incumbent)} and "
            f"{len(candidate)} labels"
        )
    if not incumbent:
        raise ConfigurationError("agreement of no rows")
    same = sum(1 for a, b in zip(incumbent, candidate, strict=True) if a == b)
    return same / len(incumbent)


def population_stability(
    expected: Sequence[float], actual: Sequence[float], *, buckets: int = 10
) -> float:
    """The population stability index of ``actual`` scores against ``expected`` ones.

    Buckets are the deciles (``buckets`` quantiles) of ``expected``; each bucket's share
    is floored at 1e-4. Rule of thumb: below 0.1 stable, 0.1-0.25 a shift, above 0.25 a
    large one.

    Raises:
        ConfigurationError: no scores on either side, or fewer than 2 buckets.
    """
    if not expected or not actual:
        raise ConfigurationError("the stability index needs scores on both sides")
    if buckets < 2:
        raise ConfigurationError("the stability index needs at least 2 buckets")
    edges = sorted({percentile(expected, 100 * k / buckets) for k in range(1, buckets)})

    def shares(values: Sequence[float]) -> list[float]:
        counts = [0] * (len(edges) + 1)
        for value in values:
            counts[sum(1 for edge in edges if value > edge)] += 1
        return [max(c / len(values), _FLOOR) for c in counts]

    before, after = shares(expected), shares(actual)
    return sum((a - b) * math.log(a / b) for a, b in zip(after, before, strict=True))


@attrs.frozen(kw_only=True)
class ScoreSummary:
    """A distribution of scores without the scores: what the ledger may record.

    Attributes:
        n: how many scores.
        mean: their mean.
        quantiles: the 5th, 25th, 50th, 75th and 95th percentiles.
    """

    n: int
    mean: float
    quantiles: tuple[float, float, float, float, float]

    @classmethod
    def of(cls, scores: Sequence[float]) -> ScoreSummary:
        """Summarise ``scores``.

        Raises:
            ConfigurationError: no scores.
        """
        if not scores:
            raise ConfigurationError("a summary of no scores")
        q = tuple(percentile(scores, p) for p in (5, 25, 50, 75, 95))
        return cls(n=len(scores), mean=sum(scores) / len(scores), quantiles=q)  # type: ignore[arg-type]
