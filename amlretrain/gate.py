"""The evaluation gate: decide whether a newly trained model may be deployed.

Two kinds of rule, combinable:

* thresholds: ``{"AUC": 0.8}`` (at least) or ``{"Average Log Loss": ("max", 0.5)}``;
* "must beat the incumbent": the new model's metric must be better than the metrics
  recorded (in the ledger) when the model now deployed was deployed, by ``margin``.

Metric names are compared through :func:`amlretrain.metrics.normalize_metric_name`, the
evaluation parser's normaliser too: case, spaces, ``-`` and ``_`` are ignored and aliases
are one metric, so a threshold on ``F1`` reads an evaluation's ``F-Score`` and an
incumbent recorded as ``AUC`` is compared with a new ``Area Under Curve``. For error-like
metrics (log loss, errors) smaller is better; for the others larger is.

Example:
    >>> gate = Gate(thresholds={"AUC": 0.8}, beat_incumbent="AUC")
    >>> gate.decide({"AUC": 0.85}, incumbent={"AUC": 0.83}).passed
    True
    >>> gate.decide({"Area Under Curve": 0.82}, incumbent={"AUC": 0.83}).reasons
    ('AUC 0.82 does not beat the incumbent 0.83',)
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import attrs

from amlretrain.errors import ConfigurationError, GateRejected
from amlretrain.metrics import (
    check_metric_names,
    check_metric_value,
    lower_is_better,
    normalize_metric_name,
)

__all__ = ["Gate", "GateDecision", "lower_is_better"]


def _checked(metrics: Mapping[str, Any], whose: str) -> dict[str, tuple[str, float]]:
    """``metrics`` by metric key, each as ``(name as given, value)``.

    Raises:
        ConfigurationError: a metric under two names, or a value that is not a possible
            value of its metric.
    """
    check_metric_names(metrics, where=f"{whose} metrics")
    return {
        normalize_metric_name(name): (name, check_metric_value(name, value, what=whose))
        for name, value in metrics.items()
    }


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

    Metric names match any spelling or alias of the metric (``F1`` = ``F-Score``).

    Attributes:
        thresholds: metric -> minimum, or metric -> ``("min"|"max", bound)``. Error-like
            metrics given as a bare number are maxima. A bound must be a possible value
            of the metric (``AUC`` in [0, 1], an error at least 0, R² at most 1).
        beat_incumbent: metric names the new model must improve on the incumbent's
            recorded value (a name, or several).
        margin: how much better than the incumbent (absolute; default 0: strictly better
            is not required, equal passes).
        require_incumbent: reject when no incumbent metrics are recorded (default: the
            comparison is skipped and said so).

    Raises:
        ConfigurationError: a threshold that is not a number or ``("min"|"max", n)``, or
            whose bound is impossible for its metric; a metric named twice (also under
            two aliases) in ``thresholds`` or in ``beat_incumbent``.
    """

    thresholds: Mapping[str, Any] = attrs.field(factory=dict)
    beat_incumbent: tuple[str, ...] = attrs.field(default=(), converter=_names)
    margin: float = 0.0
    require_incumbent: bool = False

    def __attrs_post_init__(self) -> None:
        check_metric_names(self.thresholds, where="gate thresholds")
        check_metric_names(self.beat_incumbent, where="gate beat_incumbent")
        for metric, rule in self.thresholds.items():
            _, bound = self._bound(metric, rule)
            check_metric_value(metric, bound, what="gate threshold for")

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
        """Apply the rules to the new model's ``metrics``.

        Args:
            metrics: the new model's metrics, under any spelling of their names.
            incumbent: the metrics recorded for the model the target serves, if any. A
                recorded metric the comparison cannot use (an impossible value, two
                names of one metric) fails its check.

        Raises:
            ConfigurationError: ``metrics`` holds a metric under two names, or a value
                that is not possible for its metric.
        """
        new = _checked(metrics, "the new model's")
        reasons: list[str] = []
        checks: list[str] = []

        def fail(line: str) -> None:
            reasons.append(line)
            checks.append("FAIL " + line)

        for metric, rule in self.thresholds.items():
            kind, bound = self._bound(metric, rule)
            found = new.get(normalize_metric_name(metric))
            if found is None:
                fail(f"{metric} is not in the evaluation (have: {', '.join(metrics) or 'none'})")
                continue
            name, value = found
            shown = metric if name == metric else f"{metric} ({name})"
            ok = value >= bound if kind == "min" else value <= bound
            sign = ">=" if kind == "min" else "<="
            checks.append(
                ("ok   " if ok else "FAIL ") + f"{shown} {_fmt(value)} {sign} {_fmt(bound)}"
            )
            if not ok:
                reasons.append(f"{shown} {_fmt(value)} is not {sign} {_fmt(bound)}")
        for metric in self.beat_incumbent:
            found = new.get(normalize_metric_name(metric))
            if found is None:
                fail(f"{metric} is not in the evaluation")
                continue
            value = found[1]
            old, problem = _recorded(incumbent, metric)
            if problem is not None:
                fail(problem)
                continue
            if old is None:
                line = f"no recorded {metric} for the incumbent model"
                if self.require_incumbent:
                    fail(line)
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


def _recorded(incumbent: Mapping[str, Any] | None, metric: str) -> tuple[float | None, str | None]:
    """The incumbent's recorded ``metric`` (under any of its names), or why it is unusable."""
    wanted = normalize_metric_name(metric)
    found = {k: v for k, v in (incumbent or {}).items() if normalize_metric_name(k) == wanted}
    if not found:
        return None, None
    try:
        ((_, value),) = _checked(found, "the incumbent's recorded").values()
    except ConfigurationError as err:
        return None, f"{err.message}: it cannot be compared"
    return value, None
