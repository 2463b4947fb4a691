"""A guarded rollout: how a new model reaches live targets, stage by stage.

A :class:`Rollout` says which stages run, in this order, each optional:

* ``smoke``: the sample (or the first probe rows) scored on a *candidate* (an endpoint or
  web service made for the purpose, serving the new model, deleted afterwards) only;
* the champion/challenger gate (``champion``, :mod:`amlretrain.champion`): the holdout
  scored on the incumbent target and on the candidate, compared by a paired bootstrap;
* ``shadow``: the probe rows scored on the incumbent and on the candidate and compared
  (error rate, p95 latency, changed labels, drift of the scores), the alarms evaluated,
  before any live target changes;
* ``canary`` (the run's ``waves``) or ``linear`` (``linear_steps`` equal waves): the live
  targets in cumulative waves, each followed by a bake of ``bake`` seconds during which
  the probe rows are scored on the wave's targets every ``probe_interval`` seconds and
  the alarms evaluated. An alarm rolls back everything the rollout promoted (verified,
  recorded) and halts the run.

Every stage's verdict and its evidence (summaries, never raw scores) is a
:class:`~amlretrain.records.RolloutEvent` in the ledger; notifications
(:class:`~amlretrain.notify.Notifier`) are sent on promote, alarm and rollback.

Example:
    >>> from amlretrain.alarms import Alarm
    >>> rollout = Rollout(stages=("canary",), alarms=(Alarm(metric="error_rate", threshold=0.05),))
    >>> rollout.stages, rollout.needs_candidate
    (('canary',), False)
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from amlretrain._numbers import DURATION, checked, checked_int
from amlretrain.errors import ConfigurationError
from amlretrain.targets import Sample
from amlretrain.waves import Waves

if TYPE_CHECKING:
    from amlretrain.alarms import Alarm, CallableAlarm
    from amlretrain.champion import ChampionGate
    from amlretrain.notify import Notifier

__all__ = ["STAGES", "Rollout", "read_probe"]

#: The stages a rollout may run, in the order they run.
STAGES = ("smoke", "shadow", "canary", "linear")
#: Keys of ``[rollout]`` in retrain.toml.
_KEYS = frozenset(
    {
        "stages",
        "probe",
        "probe_input",
        "probe_interval",
        "probe_batch",
        "bake",
        "linear_steps",
        "alarms",
        "champion",
        "notify",
        "arm_storage_key_env",
        "arm_commitment_plan",
        "mirror",
        "traffic_steps",
    }
)


def _stages(value: Sequence[str]) -> tuple[str, ...]:
    stages = tuple(str(s) for s in value)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ConfigurationError(f"rollout.stages: unknown stage {unknown[0]!r}; one of {STAGES}")
    if len(set(stages)) != len(stages):
        raise ConfigurationError(f"rollout.stages: a stage given twice: {list(stages)}")
    if "canary" in stages and "linear" in stages:
        raise ConfigurationError("rollout.stages: canary or linear, not both")
    order = [STAGES.index(s) for s in stages]
    if order != sorted(order):
        raise ConfigurationError(
            f"rollout.stages: {list(stages)}: stages run in the order "
            "smoke, shadow, canary/linear; list them so"
        )
    return stages


def _percents(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


def _alarms(value: Iterable[Alarm | CallableAlarm]) -> tuple[Alarm | CallableAlarm, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class Rollout:
    """How a new model reaches the live targets (see the module's description).

    Attributes:
        stages: a subset of :data:`STAGES`, in that order.
        probe: the rows the shadow and the bakes score (:func:`read_probe`).
        probe_interval: seconds between two probe rounds of a bake.
        probe_batch: rows per scoring request (the error rate counts requests).
        bake: seconds each wave bakes (None: the run's ``bake``).
        linear_steps: the waves of ``linear`` (equal shares of the targets).
        alarms: evaluated on the shadow and on every probe round of a bake.
        champion: the champion/challenger gate, run on the candidate before the shadow.
        notify: called on promote, alarm and rollback.
        arm_storage_key_env: the environment variable holding the storage account key a
            candidate New (ARM) web service is created with (a GET omits it).
        arm_commitment_plan: the commitment plan's ARM id for that candidate.
        mirror: v2 online endpoints only: the percentage of the live calls mirrored to the
            candidate deployment during the shadow (0-50, T2; 0: none). Mirrored calls
            return nothing to amlretrain (T6): the mirror adds the real load to the new
            deployment while the probe compares; it is back at 0 (verified) before any live
            traffic moves.
        traffic_steps: v2 online endpoints only: the percentages of an endpoint's live
            traffic the new deployment gets before 100% (e.g. ``(10, 50)``), each in one
            whole-map PUT, verified, and baked under the alarms (probe rounds on the new
            deployment) for the rollout's bake; an alarm there puts the traffic back and
            halts the run.
    """

    stages: tuple[str, ...] = attrs.field(default=("smoke", "shadow", "canary"), converter=_stages)
    probe: Sample | None = None
    probe_interval: float = 30.0
    probe_batch: int = 10
    bake: float | None = None
    linear_steps: int = 4
    alarms: tuple[Alarm | CallableAlarm, ...] = attrs.field(default=(), converter=_alarms)
    champion: ChampionGate | None = None
    notify: Notifier | None = None
    arm_storage_key_env: str | None = None
    arm_commitment_plan: str | None = None
    mirror: int = 0
    traffic_steps: tuple[int, ...] = attrs.field(default=(), converter=_percents)

    def __attrs_post_init__(self) -> None:
        from amlretrain.azureml.traffic import MAX_MIRROR_PERCENT

        checked_int(self.mirror, name="rollout.mirror", low=0, high=MAX_MIRROR_PERCENT)
        steps = self.traffic_steps
        if any(isinstance(s, bool) or not isinstance(s, int) or not 0 < s < 100 for s in steps):
            raise ConfigurationError(
                f"rollout.traffic_steps {list(steps)}: percentages between 1 and 99"
            )
        if list(steps) != sorted(set(steps)):
            raise ConfigurationError(
                f"rollout.traffic_steps {list(steps)}: give them increasing, each once"
            )
        if self.mirror and "shadow" not in self.stages:
            raise ConfigurationError(
                "rollout.mirror mirrors live calls to the candidate during the shadow stage: "
                "add shadow to rollout.stages"
            )
        checked(self.probe_interval, name="rollout.probe_interval", low=0.1, high=DURATION[1])
        checked_int(self.probe_batch, name="rollout.probe_batch", low=1, high=1000)
        checked_int(self.linear_steps, name="rollout.linear_steps", low=1, high=100)
        if self.bake is not None:
            checked(self.bake, name="rollout.bake", low=0.0, high=DURATION[1])
        if "shadow" in self.stages and self.probe is None:
            raise ConfigurationError(
                "rollout: the shadow stage scores the probe rows: give rollout.probe "
                "(a CSV file of rows)"
            )
        if self.alarms and self.probe is None:
            raise ConfigurationError(
                "rollout.alarms are evaluated on probe rounds: give rollout.probe "
                "(a CSV file of rows)"
            )

    @property
    def needs_candidate(self) -> bool:
        """True when a stage scores the new model before any live target serves it."""
        return "smoke" in self.stages or "shadow" in self.stages or self.champion is not None

    @property
    def live(self) -> bool:
        """True when the rollout changes live targets (``canary`` or ``linear``)."""
        return "canary" in self.stages or "linear" in self.stages

    def waves(self, run_waves: Waves | None) -> Waves | None:
        """The waves of the live stage: ``linear``'s equal steps, else the run's."""
        if "linear" in self.stages:
            steps = [
                f"{round(100 * (i + 1) / self.linear_steps, 4):g}%"
                for i in range(self.linear_steps)
            ]
            return Waves.parse(steps, where="rollout.linear_steps")
        return run_waves

    def bake_seconds(self, run_bake: float) -> float:
        """Seconds each wave bakes."""
        return run_bake if self.bake is None else self.bake

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        *,
        where: str = "retrain.toml [rollout]",
        base: Path | None = None,
    ) -> Rollout:
        """Read a ``[rollout]`` table (its files relative to ``base``).

        Raises:
            ConfigurationError: an unknown key, a value of the wrong type or range, a probe
                file that cannot be read (each named with ``where``).
        """
        from amlretrain.alarms import alarm_from_mapping
        from amlretrain.champion import ChampionGate
        from amlretrain.notify import Notifier

        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown key {unknown[0]!r}; the keys are {', '.join(sorted(_KEYS))}"
            )

        def typed(key: str, kinds: type | tuple[type, ...]) -> Any:
            value = data.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
                raise ConfigurationError(f"{where}: {key}: {value!r} is not of the right type")
            return value

        stages = typed("stages", list)
        probe_path = typed("probe", str)
        alarms = typed("alarms", list) or []
        champion = typed("champion", dict)
        notify = typed("notify", dict)
        base = base or Path.cwd()
        probe = None
        if probe_path is not None:
            path = Path(probe_path).expanduser()
            probe = read_probe(
                path if path.is_absolute() else base / path,
                input_name=typed("probe_input", str) or "input1",
                where=f"{where} probe",
            )
        kwargs: dict[str, Any] = {}
        for key in ("probe_interval", "bake"):
            value = typed(key, (int, float))
            if value is not None:
                kwargs[key] = float(value)
        steps = typed("traffic_steps", list)
        if steps is not None:
            kwargs["traffic_steps"] = tuple(steps)
        for key in ("probe_batch", "linear_steps", "mirror"):
            value = typed(key, int)
            if value is not None:
                kwargs[key] = value
        try:
            return cls(
                stages=tuple(stages) if stages is not None else ("smoke", "shadow", "canary"),
                probe=probe,
                alarms=tuple(
                    alarm_from_mapping(
                        a, where=f"{where.replace('[rollout]', '[[rollout.alarms]]')} #{i + 1}"
                    )
                    if isinstance(a, Mapping)
                    else _not_a_table(where, i)
                    for i, a in enumerate(alarms)
                ),
                champion=(
                    ChampionGate.from_mapping(champion, where=f"{where}.champion")
                    if champion is not None
                    else None
                ),
                notify=Notifier.from_mapping(notify, where=f"{where}.notify") if notify else None,
                arm_storage_key_env=typed("arm_storage_key_env", str),
                arm_commitment_plan=typed("arm_commitment_plan", str),
                **kwargs,
            )
        except ConfigurationError as err:
            if where in err.message:
                raise
            raise ConfigurationError(f"{where}: {err.message}") from None

    def storage_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The storage account key for a candidate ARM service (from its variable).

        Raises:
            ConfigurationError: the variable is named but not set.
        """
        if self.arm_storage_key_env is None:
            return None
        value = (os.environ if environ is None else environ).get(self.arm_storage_key_env)
        if not value:
            raise ConfigurationError(
                f"rollout.arm_storage_key_env: the environment variable "
                f"{self.arm_storage_key_env} is not set"
            )
        return value


def _not_a_table(where: str, index: int) -> Any:
    raise ConfigurationError(f"{where}: alarms #{index + 1}: must be a table ([[rollout.alarms]])")


def read_probe(
    path: str | os.PathLike[str], *, input_name: str = "input1", where: str | None = None
) -> Sample:
    """The rows of a probe file.

    Either a UTF-8 CSV, its first line the column names, or (``.jsonl``) recorded
    requests to replay: one request-response body a line, ``{"Inputs": {"input1":
    {"ColumnNames": [...], "Values": [[...], ...]}}}``, every line with the same columns
    (their rows are scored again, ``probe_batch`` a request).

    Raises:
        ConfigurationError: it cannot be read, is not UTF-8, has no rows, or a row has
            another number of values than the header (its line named).
    """
    what = where or os.fspath(path)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as err:
        raise ConfigurationError(f"{what}: cannot read {os.fspath(path)}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise ConfigurationError(
            f"{what}: {os.fspath(path)} is not UTF-8 text ({err.reason})"
        ) from err
    if Path(path).suffix.lower() == ".jsonl":
        return _recorded(text, input_name, f"{what}: {os.fspath(path)}")
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if len(rows) < 2:
        raise ConfigurationError(f"{what}: {os.fspath(path)} has no rows after its header")
    header = rows[0]
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ConfigurationError(
                f"{what}: {os.fspath(path)} line {number}: {len(row)} values for "
                f"{len(header)} columns"
            )
    return Sample(columns=header, rows=rows[1:], input_name=input_name)


def _recorded(text: str, input_name: str, what: str) -> Sample:
    """The rows of recorded request-response bodies, one JSON object a line."""
    import json

    columns: list[str] | None = None
    rows: list[list[Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            body = json.loads(line)
            table = body["Inputs"][input_name]
            names = [str(c) for c in table["ColumnNames"]]
            values = table["Values"]
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigurationError(
                f"{what} line {number}: not a recorded request with Inputs.{input_name}."
                f"ColumnNames and Values ({type(err).__name__}: {err})"
            ) from None
        if columns is None:
            columns = names
        elif names != columns:
            raise ConfigurationError(
                f"{what} line {number}: columns {names} differ from line 1's {columns}"
            )
        for row in values:
            if not isinstance(row, list) or len(row) != len(columns):
                raise ConfigurationError(
                    f"{what} line {number}: a row of {len(row) if isinstance(row, list) else 0}"
                    f" values for {len(columns)} columns"
                )
            rows.append(row)
    if columns is None or not rows:
        raise ConfigurationError(f"{what}: no recorded request with rows")
    return Sample(columns=columns, rows=rows, input_name=input_name)
