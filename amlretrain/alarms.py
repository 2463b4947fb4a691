"""Alarms of a guarded rollout: one probe round's figures, each against a threshold.

The classic and New services publish no metrics API, so the rollout probes the candidate
itself every ``probe_interval`` (during the shadow run and every bake) and hands each
round to :func:`observe`; :func:`evaluate` then asks every alarm whether it fires. When
one does, the rollout rolls back what it promoted and records the :class:`Fired`
alarm's evidence: score summaries, never raw scores.

Two kinds of alarms, both read from ``[[rollout.alarms]]`` by :func:`alarm_from_mapping`:

* :class:`Alarm`: a built-in figure (``error_rate``, ``p95_ms``, ``changed_labels`` or
  ``psi``) fires when it is strictly above its threshold;
* :class:`CallableAlarm`: the user's own ``"package.module:function"``, called with the
  round and an :class:`AlarmContext` (a query to their metrics store, say).

Pure code: no network, no clock.

Example:
    >>> round_ = observe(
    ...     stage="bake",
    ...     incumbent_scores=[0.1, 0.4, 0.6, 0.9],
    ...     candidate_scores=[0.2, 0.4, 0.7, 0.9],
    ...     incumbent_labels=["0", "0", "1", "1"],
    ...     candidate_labels=["0", "0", "1", "0"],
    ...     latencies_ms=[20.0, 30.0, 40.0, 50.0],
    ... )
    >>> round_.changed_labels, round_.p95_ms
    (0.25, 48.5)
    >>> context = AlarmContext(run_id="r1", stage="bake", targets=("classic:w/s/e",))
    >>> [fired.alarm for fired in evaluate([Alarm(metric="changed_labels", threshold=0.2),
    ...                                     Alarm(metric="p95_ms", threshold=100)],
    ...                                    round_, context)]
    ['changed_labels']
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from amlretrain._hooks import describe_error, json_ready, load_callable
from amlretrain._numbers import checked, checked_int
from amlretrain._redact import redact, redact_data
from amlretrain.blobs import strip_sas
from amlretrain.errors import ConfigurationError
from amlretrain.probe_stats import (
    ScoreSummary,
    agreement,
    error_rate,
    percentile,
    population_stability,
)

__all__ = [
    "HISTOGRAM_EDGES",
    "METRICS",
    "STAGES",
    "Alarm",
    "AlarmContext",
    "CallableAlarm",
    "Fired",
    "Observation",
    "alarm_from_mapping",
    "evaluate",
    "observe",
    "unmeasured",
]

log = logging.getLogger(__name__)

#: The probe rounds alarms are evaluated in.
STAGES: Final = ("shadow", "bake")
#: The built-in alarms' figures, each an attribute of :class:`Observation`.
METRICS: Final = ("error_rate", "p95_ms", "changed_labels", "psi")
#: The score histogram's bin edges: 10 equal bins over [0, 1] (the last one closed).
HISTOGRAM_EDGES: Final = tuple(k / 10 for k in range(11))


# -- one probe round ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Observation:
    """The figures of one probe round (built by :func:`observe`).

    Attributes:
        stage: ``"shadow"`` or ``"bake"``.
        rows: rows the candidate scored.
        errors: requests (or rows) that failed.
        error_rate: ``errors / requests`` (0.0 for a round that sent nothing).
        p95_ms: the 95th percentile of the request latencies, in ms (None: none timed).
        changed_labels: the share of rows whose label differs from the incumbent's (None:
            no labels on one side).
        agreement: ``1 - changed_labels`` (None likewise).
        psi: the population stability index of the candidate's scores against the
            incumbent's (None: no scores on one side).
        incumbent, candidate: their score summaries (None: no scores).
        histogram: ``{"edges": [...11], "incumbent": [...10 counts] or None, "candidate":
            [...10 counts] or None}``, 10 equal bins over [0, 1]; None when no side has
            scores or some score lies outside [0, 1] (not probabilities: the quantiles
            still describe them).
    """

    stage: str
    rows: int
    errors: int
    error_rate: float
    p95_ms: float | None = None
    changed_labels: float | None = None
    agreement: float | None = None
    psi: float | None = None
    incumbent: ScoreSummary | None = None
    candidate: ScoreSummary | None = None
    histogram: dict[str, Any] | None = None

    def to_evidence(self) -> dict[str, Any]:
        """The round as a rollout record's evidence (JSON-ready; summaries, no scores).

        Members: ``rows``, ``incumbent`` and ``candidate`` (each ``{n, mean, quantiles,
        histogram: {edges, counts}}`` or None; no ``histogram`` member when there is no
        histogram), ``agreement``, ``psi``, ``error_rate``, ``p95_ms``.
        """
        return {
            "rows": self.rows,
            "incumbent": self._summary("incumbent", self.incumbent),
            "candidate": self._summary("candidate", self.candidate),
            "agreement": self.agreement,
            "psi": self.psi,
            "error_rate": self.error_rate,
            "p95_ms": self.p95_ms,
        }

    def _summary(self, side: str, summary: ScoreSummary | None) -> dict[str, Any] | None:
        if summary is None:
            return None
        out: dict[str, Any] = {
            "n": summary.n,
            "mean": summary.mean,
            "quantiles": list(summary.quantiles),
        }
        counts = (self.histogram or {}).get(side)
        if self.histogram is not None and counts is not None:
            out["histogram"] = {"edges": list(self.histogram["edges"]), "counts": list(counts)}
        return out


def observe(
    *,
    stage: str,
    incumbent_scores: Sequence[float] | None,
    candidate_scores: Sequence[float],
    incumbent_labels: Sequence[object] | None = None,
    candidate_labels: Sequence[object] | None = None,
    errors: int = 0,
    requests: int | None = None,
    latencies_ms: Sequence[float] = (),
) -> Observation:
    """The figures of one probe round, computed with :mod:`amlretrain.probe_stats`.

    Args:
        stage: ``"shadow"`` or ``"bake"``.
        incumbent_scores: the incumbent's scores of the probe rows; None or empty for a
            bake round without a baseline (then ``psi`` is None).
        candidate_scores: the candidate's scores of the rows it answered (empty when
            every request failed).
        incumbent_labels, candidate_labels: their labels of the same rows, in the same
            order; ``changed_labels`` and ``agreement`` are None unless both are given.
        errors: the requests (or rows) that failed.
        requests: how many were sent; default ``rows + errors``.
        latencies_ms: the requests' latencies in ms (``p95_ms`` is None without them).

    Returns:
        The round. A round where every request failed has ``error_rate`` 1.0, no
        summaries, no ``psi`` and no ``changed_labels``.

    Raises:
        ConfigurationError: an unknown stage; a score, latency or count that is not a
            finite number of its range; labels that do not match the rows in number.
    """
    if stage not in STAGES:
        raise ConfigurationError(f"stage: must be one of {', '.join(STAGES)}, not {stage!r}")
    candidate = _scores(candidate_scores, "candidate_scores")
    incumbent = _scores(incumbent_scores or (), "incumbent_scores")
    rows = len(candidate) if candidate else len(candidate_labels or ())
    if candidate and candidate_labels and len(candidate_labels) != rows:
        raise ConfigurationError(
            f"candidate_labels: {len(candidate_labels)} labels for {rows} scored rows"
        )
    errors = checked_int(errors, name="errors", low=0, high=sys.maxsize)
    sent = rows + errors if requests is None else requests
    sent = checked_int(sent, name="requests", low=errors, high=sys.maxsize)
    outcomes = [True] * (sent - errors) + [False] * errors
    latencies = [
        checked(ms, name="latencies_ms", low=0, high=math.inf, unit="ms") for ms in latencies_ms
    ]
    changed: float | None = None
    if incumbent_labels and candidate_labels:
        changed = 1.0 - agreement(list(incumbent_labels), list(candidate_labels))
    return Observation(
        stage=stage,
        rows=rows,
        errors=errors,
        error_rate=error_rate(outcomes),
        p95_ms=percentile(latencies, 95) if latencies else None,
        changed_labels=changed,
        agreement=None if changed is None else 1.0 - changed,
        psi=population_stability(incumbent, candidate) if incumbent and candidate else None,
        incumbent=ScoreSummary.of(incumbent) if incumbent else None,
        candidate=ScoreSummary.of(candidate) if candidate else None,
        histogram=_histogram(incumbent, candidate),
    )


def _scores(values: Sequence[float], name: str) -> list[float]:
    out = []
    for value in values:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigurationError(f"{name}: scores are numbers, not {type(value).__name__}")
        if not math.isfinite(value):
            raise ConfigurationError(f"{name}: scores are finite numbers, not {value!r}")
        out.append(float(value))
    return out


def _histogram(incumbent: list[float], candidate: list[float]) -> dict[str, Any] | None:
    if not incumbent and not candidate:
        return None
    if any(not 0.0 <= s <= 1.0 for s in (*incumbent, *candidate)):
        return None

    def counts(scores: list[float]) -> list[int] | None:
        if not scores:
            return None
        out = [0] * (len(HISTOGRAM_EDGES) - 1)
        for score in scores:
            out[min(bisect.bisect_right(HISTOGRAM_EDGES, score) - 1, len(out) - 1)] += 1
        return out

    return {
        "edges": list(HISTOGRAM_EDGES),
        "incumbent": counts(incumbent),
        "candidate": counts(candidate),
    }


# -- what an alarm knows and says --------------------------------------------------------------


def _keys(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class AlarmContext:
    """Where a round was taken, for a callable alarm (and the messages).

    Attributes:
        run_id: the run.
        stage: ``"shadow"`` or ``"bake"``.
        targets: the keys of the targets the round concerns.
        model: the candidate model's URL, without its SAS.
        wave: the wave (1-based) being baked; None outside waves.
    """

    run_id: str | None
    stage: str
    targets: tuple[str, ...] = attrs.field(default=(), converter=_keys)
    model: str | None = attrs.field(default=None, converter=strip_sas)
    wave: int | None = None


@attrs.frozen(kw_only=True)
class Fired:
    """An alarm that fired, with its evidence (redacted; summaries, no raw scores).

    Attributes:
        alarm: the alarm's name.
        value: the figure that fired it (None: a callable alarm that gave none).
        threshold: the threshold it passed (None likewise).
        message: a line for people.
        evidence: ``alarm``, ``value``, ``threshold`` and the round's figures
            (:meth:`Observation.to_evidence`); a callable alarm's own members under
            ``details``.
    """

    alarm: str
    value: float | None
    threshold: float | None
    message: str = attrs.field(converter=redact)
    evidence: dict[str, Any] = attrs.field(factory=dict)

    def to_evidence(self) -> dict[str, Any]:
        """The evidence of the ``alarm`` rollout record (a copy)."""
        return json.loads(json.dumps(self.evidence))  # type: ignore[no-any-return]

    @classmethod
    def of(
        cls,
        *,
        alarm: str,
        value: float | None,
        threshold: float | None,
        message: str,
        observation: Observation,
        details: Mapping[str, Any] | None = None,
    ) -> Fired:
        """A fired alarm with its evidence built from ``observation``."""
        evidence: dict[str, Any] = {
            "alarm": alarm,
            "value": value,
            "threshold": threshold,
            **observation.to_evidence(),
        }
        if details:
            evidence["details"] = details
        return cls(
            alarm=alarm,
            value=value,
            threshold=threshold,
            message=message,
            evidence=redact_data(json_ready(evidence)),
        )


# -- built-in alarms ---------------------------------------------------------------------------


def _check_threshold(alarm: Alarm, attribute: attrs.Attribute[float], value: object) -> None:
    if alarm.metric in ("error_rate", "changed_labels"):
        checked(value, name=f"{alarm.name}: threshold", low=0.0, high=1.0, unit="")
    elif alarm.metric == "psi":
        checked(value, name=f"{alarm.name}: threshold", low=0.0, high=math.inf, unit="")
    else:
        number = checked(value, name=f"{alarm.name}: threshold", low=0.0, high=math.inf, unit="ms")
        if number <= 0:
            raise ConfigurationError(
                f"{alarm.name}: threshold: must be a finite number above 0 ms, not {value!r}"
            )


def _check_metric(alarm: Alarm, attribute: attrs.Attribute[str], value: object) -> None:
    if value not in METRICS:
        raise ConfigurationError(f"metric: must be one of {', '.join(METRICS)}, not {value!r}")


def _check_name(alarm: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"name: must be a non-empty string, not {value!r}")


def _as_float(value: Any) -> Any:
    # a number as a float (the validator refuses anything else, with its value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return value
    return value


@attrs.frozen(kw_only=True)
class Alarm:
    """A built-in alarm: fires when the round's ``metric`` is strictly above ``threshold``.

    A metric the round could not measure (None: no latencies, no labels or no baseline
    scores) does not fire; :func:`unmeasured` names such alarms, and :func:`evaluate`
    logs them.

    Attributes:
        metric: ``error_rate`` (share of failed requests), ``p95_ms`` (95th percentile
            latency, ms), ``changed_labels`` (share of rows whose label changed) or
            ``psi`` (population stability index of the scores).
        threshold: shares (``error_rate``, ``changed_labels``) in [0, 1]; ``p95_ms``
            above 0; ``psi`` at least 0.
        name: the alarm's name in records and messages (default: the metric).

    Raises:
        ConfigurationError: an unknown metric or a threshold outside its range.
    """

    metric: str = attrs.field(validator=_check_metric)
    threshold: float = attrs.field(converter=_as_float, validator=_check_threshold)
    name: str = attrs.field(
        default=attrs.Factory(lambda self: self.metric, takes_self=True), validator=_check_name
    )

    def measure(self, observation: Observation) -> float | None:
        """The round's figure for this alarm (None: not measured)."""
        value: float | None = getattr(observation, self.metric)
        return value

    def evaluate(self, observation: Observation, context: AlarmContext) -> Fired | None:
        """The fired alarm when the figure is strictly above the threshold, else None."""
        value = self.measure(observation)
        if value is None or not value > self.threshold:
            return None
        return Fired.of(
            alarm=self.name,
            value=value,
            threshold=float(self.threshold),
            message=(
                f"alarm {self.name}: {self.metric} {value:.4g} above its threshold "
                f"{self.threshold:g} ({observation.stage}, {observation.rows} rows)"
            ),
            observation=observation,
        )


# -- the user's own alarms ---------------------------------------------------------------------


def _check_spec(alarm: CallableAlarm, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):  # the rest is checked when the function is loaded
        load_callable(value, where=alarm.where)


_RETURNS = "None or False (quiet), True, a reason string or a mapping (fired)"


@attrs.frozen(kw_only=True)
class CallableAlarm:
    """The user's alarm: ``function(observation, context)`` from ``"package.module:function"``.

    The function is imported when the alarm is built (a typo is refused before anything
    is deployed). It returns None or False (quiet), or fires with True, a string (the
    reason) or a mapping (optional ``reason``, ``value`` and ``threshold`` numbers, other
    JSON-able members kept under ``details``). A function that raises, or returns
    anything else, fires too: ``"the alarm could not be evaluated: <error>"``.

    Attributes:
        spec: ``"package.module:function"``.
        name: the alarm's name in records and messages (default: ``spec``).
        where: what the setting is, first in a construction error's message.

    Raises:
        ConfigurationError: the spec cannot be loaded (see
            :func:`amlretrain._hooks.load_callable`).
    """

    spec: str = attrs.field(validator=_check_spec)
    name: str = attrs.field(
        default=attrs.Factory(lambda self: self.spec, takes_self=True), validator=_check_name
    )
    where: str = attrs.field(default="rollout alarm", eq=False, repr=False)
    _function: Callable[..., Any] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_function", load_callable(self.spec, where=self.where))

    def evaluate(self, observation: Observation, context: AlarmContext) -> Fired | None:
        """Call the function; its answer as a fired alarm, or None when it is quiet."""
        try:
            answer = self._function(observation, context)
        except Exception as err:  # the user's code: any failure fires the alarm
            return self._unevaluated(describe_error(err), observation)
        if answer is None or answer is False:
            return None
        if answer is True:
            return self._fired("fired", None, None, observation)
        if isinstance(answer, str):
            return self._fired(answer.strip() or "fired", None, None, observation)
        if isinstance(answer, Mapping):
            return self._from_mapping(answer, observation)
        return self._unevaluated(
            f"it returned {type(answer).__name__} {_short(answer)}; expected {_RETURNS}",
            observation,
        )

    def _from_mapping(self, answer: Mapping[Any, Any], observation: Observation) -> Fired:
        numbers: dict[str, float | None] = {}
        for key in ("value", "threshold"):
            number = answer.get(key)
            if number is not None and (
                not isinstance(number, int | float)
                or isinstance(number, bool)
                or not math.isfinite(number)
            ):
                return self._unevaluated(
                    f"its {key} is {_short(number)}, not a finite number", observation
                )
            numbers[key] = None if number is None else float(number)
        reason = answer.get("reason")
        details = {
            str(k): v for k, v in answer.items() if k not in ("reason", "value", "threshold")
        }
        text = str(reason).strip() if reason is not None else ""
        return self._fired(
            text or "fired", numbers["value"], numbers["threshold"], observation, details
        )

    def _fired(
        self,
        reason: str,
        value: float | None,
        threshold: float | None,
        observation: Observation,
        details: Mapping[str, Any] | None = None,
    ) -> Fired:
        return Fired.of(
            alarm=self.name,
            value=value,
            threshold=threshold,
            message=f"alarm {self.name}: {reason}",
            observation=observation,
            details=details,
        )

    def _unevaluated(self, error: str, observation: Observation) -> Fired:
        return self._fired(f"the alarm could not be evaluated: {error}", None, None, observation)


def _short(value: object, limit: int = 80) -> str:
    text = redact(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- settings and evaluation -------------------------------------------------------------------

_METRIC_KEYS = ("metric", "threshold", "name")
_CHECK_KEYS = ("check", "name")


def alarm_from_mapping(data: Mapping[str, Any], *, where: str) -> Alarm | CallableAlarm:
    """The alarm of one ``[[rollout.alarms]]`` table.

    Either ``metric`` and ``threshold`` (and an optional ``name``): a built-in
    :class:`Alarm`; or ``check = "package.module:function"`` (and an optional ``name``):
    a :class:`CallableAlarm`.

    Args:
        data: the table.
        where: what it is, first in every message (``"retrain.toml [[rollout.alarms]] #2"``).

    Raises:
        ConfigurationError: not a table; unknown keys; both forms or neither; a bad value.

    Example:
        >>> alarm_from_mapping({"metric": "psi", "threshold": 0.25}, where="#1")
        Alarm(metric='psi', threshold=0.25, name='psi')
    """
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{where}: must be a table, not {type(data).__name__}")
    keys = sorted(str(k) for k in data)
    unknown = [k for k in keys if k not in {*_METRIC_KEYS, *_CHECK_KEYS}]
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"(a typo?); an alarm is either {' + '.join(_METRIC_KEYS[:2])} (+ name) or "
            "check (+ name)"
        )
    has_metric = "metric" in data or "threshold" in data
    if has_metric and "check" in data:
        given = ", ".join(k for k in keys if k != "name")
        raise ConfigurationError(
            f"{where}: {given}: an alarm is either metric + threshold or check, not both"
        )
    try:
        if "check" in data:
            check = data["check"]
            if "name" in data:
                return CallableAlarm(spec=check, name=data["name"], where=f"{where}: check")
            return CallableAlarm(spec=check, where=f"{where}: check")
        if not has_metric:
            raise ConfigurationError(
                f"{where}: an alarm needs metric + threshold (one of {', '.join(METRICS)}) or "
                f'check = "package.module:function"; given: {", ".join(keys) or "no keys"}'
            )
        missing = [k for k in ("metric", "threshold") if k not in data]
        if missing:
            raise ConfigurationError(f"{where}: {missing[0]}: required with {_other(missing[0])}")
        if "name" in data:
            return Alarm(metric=data["metric"], threshold=data["threshold"], name=data["name"])
        return Alarm(metric=data["metric"], threshold=data["threshold"])
    except ConfigurationError as err:
        if err.message.startswith(where):
            raise
        raise ConfigurationError(f"{where}: {err.message}") from None


def _other(key: str) -> str:
    return "threshold" if key == "metric" else "metric"


def unmeasured(alarms: Sequence[Alarm | CallableAlarm], observation: Observation) -> list[str]:
    """The names of the built-in alarms whose figure the round could not measure."""
    return [a.name for a in alarms if isinstance(a, Alarm) and a.measure(observation) is None]


def evaluate(
    alarms: Sequence[Alarm | CallableAlarm], observation: Observation, context: AlarmContext
) -> list[Fired]:
    """Every alarm evaluated on the round, in order; those that fired.

    Built-in alarms whose figure was not measured do not fire; they are logged (INFO on
    ``amlretrain.alarms``) and named by :func:`unmeasured`.
    """
    quiet = unmeasured(alarms, observation)
    if quiet:
        log.info(
            "%s round: not measured, so not evaluated: %s", observation.stage, ", ".join(quiet)
        )
    fired = []
    for alarm in alarms:
        outcome = alarm.evaluate(observation, context)
        if outcome is not None:
            fired.append(outcome)
    return fired
