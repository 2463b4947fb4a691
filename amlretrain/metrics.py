"""Metric names and their valid values: the one normaliser of the evaluation and the gate.

Studio's *Evaluate Model* writes a metric under one name (``F-Score``, ``AUC``,
``Coefficient of Determination``); people write ``F1``, ``Area Under Curve`` or ``R²``.
:func:`normalize_metric_name` gives every spelling of a metric the same key: it ignores
case, spaces, ``-``, ``_`` and ``.``, reads ``²`` as ``2`` (Unicode NFKC), and maps each
alias below to its metric. The evaluation parser and the gate compare names only through
it, so a threshold on ``F1`` matches a column ``F-Score``, and an incumbent recorded as
``AUC`` matches a new ``Area Under Curve``.

| metric (Studio's name)       | aliases                   | valid values | better |
|------------------------------|---------------------------|--------------|--------|
| Accuracy                     | Overall accuracy          | [0, 1]       | higher |
| Precision                    |                           | [0, 1]       | higher |
| Recall                       |                           | [0, 1]       | higher |
| F-Score                      | F1 Score, F1              | [0, 1]       | higher |
| AUC                          | Area Under Curve, ROC AUC | [0, 1]       | higher |
| Average Log Loss             | Log Loss                  | [0, inf)     | lower  |
| Training Log Loss            |                           | (-inf, 1]    | higher |
| Negative Log Likelihood      |                           | any          | lower  |
| Mean Absolute Error          | MAE                       | [0, inf)     | lower  |
| Root Mean Squared Error      | RMSE                      | [0, inf)     | lower  |
| Relative Absolute Error      | RAE                       | [0, inf)     | lower  |
| Relative Squared Error       | RSE                       | [0, inf)     | lower  |
| Coefficient of Determination | R2, R², R Squared         | (-inf, 1]    | higher |

Studio's *Training Log Loss* is the log-loss reduction over predicting the prior (1 is
perfect, below 0 worse than the prior), so larger is better despite its name. Other names
are metrics too, with no range; those naming a loss or an error are lower-is-better.

Example:
    >>> normalize_metric_name("F1 Score") == normalize_metric_name("f-score")
    True
    >>> canonical_metric_name("r²"), canonical_metric_name("Area under curve")
    ('Coefficient of Determination', 'AUC')
    >>> try:
    ...     check_metric_value("AUC", 1.5)
    ... except ConfigurationError as err:
    ...     print(err)
    metric 'AUC': must be a finite number between 0 and 1, not 1.5
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from typing import Final

import attrs

from amlretrain._numbers import checked
from amlretrain.errors import ConfigurationError

__all__ = [
    "METRICS",
    "Metric",
    "canonical_metric_name",
    "check_metric_names",
    "check_metric_value",
    "find_metric",
    "lower_is_better",
    "normalize_metric_name",
]

_SEPARATORS = re.compile(r"[\s\-_.]+")
# For a name outside the table: Studio's and everyone's losses and errors shrink as they improve.
_LOWER_IS_BETTER = re.compile(r"(loss|error)")


def _squash(name: str) -> str:
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", name).casefold())


@attrs.frozen(kw_only=True)
class Metric:
    """A metric of Studio's Evaluate Model: its name, aliases and valid values.

    Attributes:
        name: Studio's name, the canonical one (``"F-Score"``).
        aliases: other names of it (``("F1 Score", "F1")``).
        low, high: the inclusive range of a possible value (``-inf``/``inf``: unbounded).
        lower_is_better: True for losses and errors.
    """

    name: str
    aliases: tuple[str, ...] = ()
    low: float = -math.inf
    high: float = math.inf
    lower_is_better: bool = False

    @property
    def key(self) -> str:
        """The key :func:`normalize_metric_name` gives each of its names."""
        return _squash(self.name)

    @property
    def valid_range(self) -> str:
        """The range as text: ``"[0, 1]"``, ``"[0, inf)"``, ``"(-inf, 1]"``, ``"any"``."""
        if math.isinf(self.low) and math.isinf(self.high):
            return "any"
        low = "(-inf" if math.isinf(self.low) else f"[{self.low:g}"
        high = "inf)" if math.isinf(self.high) else f"{self.high:g}]"
        return f"{low}, {high}"


def _probability(name: str, *aliases: str) -> Metric:
    return Metric(name=name, aliases=aliases, low=0.0, high=1.0)


def _error(name: str, *aliases: str) -> Metric:
    return Metric(name=name, aliases=aliases, low=0.0, lower_is_better=True)


#: Every metric with known aliases, range and direction, in Studio's column order.
METRICS: Final[tuple[Metric, ...]] = (
    _probability("Accuracy", "Overall accuracy"),
    _probability("Precision"),
    _probability("Recall"),
    _probability("F-Score", "F1 Score", "F1"),
    _probability("AUC", "Area Under Curve", "ROC AUC"),
    _error("Average Log Loss", "Log Loss"),
    Metric(name="Training Log Loss", high=1.0),
    Metric(name="Negative Log Likelihood", lower_is_better=True),
    _error("Mean Absolute Error", "MAE"),
    _error("Root Mean Squared Error", "RMSE"),
    _error("Relative Absolute Error", "RAE"),
    _error("Relative Squared Error", "RSE"),
    Metric(name="Coefficient of Determination", aliases=("R2", "R²", "R Squared"), high=1.0),
)

_BY_KEY: Final[dict[str, Metric]] = {
    _squash(spelling): metric for metric in METRICS for spelling in (metric.name, *metric.aliases)
}


def normalize_metric_name(name: str) -> str:
    """The key of a metric name: equal for every spelling and alias of one metric.

    Case, spaces, ``-``, ``_`` and ``.`` are ignored and ``²`` is ``2``; an alias of a
    known metric gives that metric's key (``"F1"`` -> ``"fscore"``, as ``"F-Score"``).
    """
    squashed = _squash(name)
    metric = _BY_KEY.get(squashed)
    return metric.key if metric is not None else squashed


def find_metric(name: str) -> Metric | None:
    """The known metric ``name`` names (under any alias), or None."""
    return _BY_KEY.get(_squash(name))


def canonical_metric_name(name: str) -> str:
    """Studio's name of a known metric (``"R2"`` -> ``"Coefficient of Determination"``);
    any other name stripped of surrounding spaces."""
    metric = find_metric(name)
    return metric.name if metric is not None else name.strip()


def lower_is_better(name: str) -> bool:
    """True for error-like metrics (log loss, mean absolute error, ...).

    Known metrics say so in :data:`METRICS`; another name is lower-is-better when it
    contains "loss" or "error".
    """
    metric = find_metric(name)
    if metric is not None:
        return metric.lower_is_better
    return bool(_LOWER_IS_BETTER.search(_squash(name)))


def check_metric_value(name: str, value: object, *, what: str = "metric") -> float:
    """``value`` as a float when it is a possible value of metric ``name``.

    Every metric's value must be a finite real number (not a boolean, not text such as
    ``"8.7%"``); a known metric's must also be in its range.

    Args:
        name: the metric's name as given (quoted in the message, with Studio's name
            when it differs).
        value: the value as given.
        what: what the name is, first in the message (``"gate threshold for"``).

    Raises:
        ConfigurationError: ``"<what> '<name>' (<Studio's name>): must be a finite
            number between <low> and <high>, not <value>"``.
    """
    metric = find_metric(name)
    label = f"{what} {name!r}"
    if metric is not None and metric.name != name:
        label += f" ({metric.name})"
    low, high = (metric.low, metric.high) if metric is not None else (-math.inf, math.inf)
    return checked(value, name=label, low=low, high=high, unit="")


def check_metric_names(names: Iterable[str], *, where: str) -> None:
    """Refuse ``names`` that name one metric more than once (also under two aliases).

    Raises:
        ConfigurationError: ``"<where>: AUC appears more than once, as 'AUC' and 'Area
            Under Curve'"`` (one clause per repeated metric).
    """
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(normalize_metric_name(name), []).append(name)
    repeated = []
    for group in groups.values():
        if len(group) > 1:
            quoted = [repr(name) for name in group]
            listed = ", ".join(quoted[:-1]) + " and " + quoted[-1]
            repeated.append(
                f"{canonical_metric_name(group[0])} appears more than once, as {listed}"
            )
    if repeated:
        raise ConfigurationError(f"{where}: " + "; ".join(repeated))
