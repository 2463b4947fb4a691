"""The evaluation gate: decide whether a newly trained model may be deployed.

Two kinds of rule, combinable:

* thresholds: ``{"AUC": 0.8}`` (at least) or ``{"Average Log Loss": ("max", 0.5)}``;
* "must beat the incumbent": the new model's metric must be better than the metrics
  recorded (in the ledger) when the model now deployed was deployed, by ``margin``.

Metric names match ignoring case, spaces, ``-`` and ``_`` (``f1score`` = ``F1 Score``).
For error-like metrics (log loss, errors) smaller is better; for the others larger is.

Example:
    >>> gate = Gate(thresholds={"AUC": 0.8}, beat_incumbent="AUC")
    >>> gate.decide({"AUC": 0.85}, incumbent={"AUC": 0.83}).passed
    True
    >>> gate.decide({"AUC": 0.82}, incumbent={"AUC": 0.83}).reasons
    ('AUC 0.82 does not beat the incumbent 0.83',)
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

import attrs

from amlretrain.errors import ConfigurationError, GateRejected

__all__ = ["Gate", "GateDecision", "lower_is_better"]

_LOWER_IS_BETTER = re.compile(r"(loss|error|rmse|mae)", re.I)


def _key(name: str) -> str:
    return re.sub(r"[\s\-_.]+", "", name.strip().lower())


def lower_is_better(metric: str) -> bool:
    """True for error-like metrics (log loss, mean absolute error, ...)."""
    return bool(_LOWER_IS_BETTER.search(_key(metric)))


def _lookup(metrics: Mapping[str, float], name: str) -> float | None:
    wanted = _key(name)
    for key, value in metrics.items():
        if _key(key) == wanted:
            return float(value)
    return None


def _names(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


@attrs.frozen(kw_only=True)
class GateDecision:
    """The gate's verdict.

    Attributes:
        passed: True when every rule held.
        reasons: one line per rule that failed.
        checks: one line per rule, passed or not (for reports).
        incumbent: the incumbent's metrics used, if any.
    """

    passed: bool
    reasons: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()
    incumbent: Mapping[str, float] | None = None

    def raise_if_rejected(self, metrics: Mapping[str, float]) -> None:
        """Raise :class:`GateRejected` when the gate did not pass."""
        if not self.passed:
            raise GateRejected(
                "the new model did not pass the gate: " + "; ".join(self.reasons),
                reasons=self.reasons,
                metrics=metrics,
            )

    def _repr_html_(self) -> str:
        verdict = "passed" if self.passed else "rejected"
        items = "".join(f"<li>{html.escape(c)}</li>" for c in self.checks)
        return f"<p><b>gate {verdict}</b></p><ul>{items}</ul>"


@attrs.frozen(kw_only=True)
class Gate:
    """Rules a new model must pass before it is deployed.

    Attributes:
        thresholds: metric -> minimum, or metric -> ``("min"|"max", bound)``. Error-like
            metrics given as a bare number are maxima.
        beat_incumbent: metric names the new model must improve on the incumbent's
            recorded value (a name, or several).
        margin: how much better than the incumbent (absolute; default 0: strictly better
            is not required, equal passes).
        require_incumbent: reject when no incumbent metrics are recorded (default: the
            comparison is skipped and said so).
    """

    thresholds: Mapping[str, Any] = attrs.field(factory=dict)
    beat_incumbent: tuple[str, ...] = attrs.field(default=(), converter=_names)
    margin: float = 0.0
    require_incumbent: bool = False

    def __attrs_post_init__(self) -> None:
        for metric, rule in self.thresholds.items():
            self._bound(metric, rule)

    @staticmethod
    def _bound(metric: str, rule: Any) -> tuple[str, float]:
        if isinstance(rule, bool):
            raise ConfigurationError(f"gate threshold for {metric!r} must be a number")
        if isinstance(rule, int | float):
            return ("max" if lower_is_better(metric) else "min", float(rule))
        if isinstance(rule, Mapping) and len(rule) == 1:
            ((kind, bound),) = rule.items()
            rule = (kind, bound)
        if (
            isinstance(rule, tuple | list)
            and len(rule) == 2
            and rule[0] in ("min", "max")
            and isinstance(rule[1], int | float)
            and not isinstance(rule[1], bool)
        ):
            return (str(rule[0]), float(rule[1]))
        raise ConfigurationError(
            f"gate threshold for {metric!r} must be a number, ('min', n) or ('max', n); "
            f"got {rule!r}"
        )

    @property
    def is_empty(self) -> bool:
        """True when the gate has no rule (every model passes)."""
        return not self.thresholds and not self.beat_incumbent

    def decide(
        self, metrics: Mapping[str, float], *, incumbent: Mapping[str, float] | None = None
    ) -> GateDecision:
        """Apply the rules to the new model's ``metrics``."""
        reasons: list[str] = []
        checks: list[str] = []
        for metric, rule in self.thresholds.items():
            kind, bound = self._bound(metric, rule)
            value = _lookup(metrics, metric)
            if value is None:
                line = f"{metric} is not in the evaluation (have: {', '.join(metrics) or 'none'})"
                reasons.append(line)
                checks.append("FAIL " + line)
                continue
            ok = value >= bound if kind == "min" else value <= bound
            sign = ">=" if kind == "min" else "<="
            line = f"{metric} {_fmt(value)} {sign} {_fmt(bound)}"
            checks.append(("ok   " if ok else "FAIL ") + line)
            if not ok:
                reasons.append(f"{metric} {_fmt(value)} is not {sign} {_fmt(bound)}")
        for metric in self.beat_incumbent:
            value = _lookup(metrics, metric)
            old = _lookup(incumbent, metric) if incumbent else None
            if value is None:
                line = f"{metric} is not in the evaluation"
                reasons.append(line)
                checks.append("FAIL " + line)
                continue
            if old is None:
                line = f"no recorded {metric} for the incumbent model"
                if self.require_incumbent:
                    reasons.append(line)
                    checks.append("FAIL " + line)
                else:
                    checks.append("skip " + line + ": comparison skipped")
                continue
            better = (
                value <= old - self.margin
                if lower_is_better(metric)
                else value >= old + self.margin
            )
            line = f"{metric} {_fmt(value)} vs incumbent {_fmt(old)}"
            checks.append(("ok   " if better else "FAIL ") + line)
            if not better:
                reasons.append(f"{metric} {_fmt(value)} does not beat the incumbent {_fmt(old)}")
        return GateDecision(
            passed=not reasons,
            reasons=tuple(reasons),
            checks=tuple(checks),
            incumbent=dict(incumbent) if incumbent else None,
        )
