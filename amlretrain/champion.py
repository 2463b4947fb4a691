"""The champion/challenger gate of a guarded rollout: both models score a holdout, a bound decides.

The batch training job reports aggregate metrics only, so the comparison needs rows both
models score: a holdout file, or rows held back from the training data before it is
uploaded (:func:`hold_out`). The champion (the model serving now) and the challenger (the
retrained one) score those rows through their scoring endpoints; :func:`scores_from`
reads each model's scores from its answer and :func:`judge` promotes the challenger only
when the lower bound of its improvement, from a paired bootstrap (:mod:`amlretrain.bootstrap`),
is above ``min_change``. :meth:`ChampionEvidence.to_evidence` is what the ledger's
``RolloutEvent(stage="gate")`` records: figures, never the rows or the scores.

Pure code: the scoring calls are the caller's (a ``ScoringClient.score`` per model).

Example:
    >>> gate = ChampionGate(label="income", holdout_fraction=0.2, resamples=200)
    >>> labels = [0, 1] * 50
    >>> champion = [0.4, 0.6] * 25 + [0.6, 0.4] * 25     # right on half the rows
    >>> challenger = [0.3, 0.7] * 45 + [0.6, 0.4] * 5     # right on 90 of 100
    >>> verdict = judge(gate, labels, champion, challenger)
    >>> verdict.promoted, verdict.n, round(verdict.difference, 2)
    (True, 100, 0.49)
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs

from amlretrain.bootstrap import accuracy, auc, compare, log_loss
from amlretrain.errors import ConfigurationError

__all__ = [
    "METRICS",
    "ChampionEvidence",
    "ChampionGate",
    "HoldoutRows",
    "hold_out",
    "judge",
    "scores_from",
]

#: The metrics a gate compares on, and whether lower is better.
METRICS: Mapping[str, bool] = {"auc": False, "accuracy": False, "log_loss": True}
_FUNCTIONS = {"auc": auc, "accuracy": accuracy, "log_loss": log_loss}
#: The keys of :meth:`ChampionEvidence.to_evidence`, in order.
_EVIDENCE = (
    *("metric", "n", "champion", "challenger", "difference", "lower"),
    *("confidence", "resamples", "seed", "min_change", "promoted"),
)
_SHOWN = 40  # characters of a bad value quoted in a message
_BOM = "\ufeff"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _to_path(value: object) -> object:
    # a str or PathLike becomes a Path; anything else is left for the check to refuse
    return Path(value) if isinstance(value, str | os.PathLike) else value


@attrs.frozen(kw_only=True)
class ChampionGate:
    """The settings of the champion/challenger gate (``[rollout.champion]`` in retrain.toml).

    Attributes:
        label: the label column of the training data and of the holdout.
        metric: ``"auc"``, ``"accuracy"`` (scored positive from 0.5) or ``"log_loss"``
            (lower is better: the improvement is the champion's loss minus the
            challenger's).
        min_change: how much the challenger must beat the champion by, at least 0.
        confidence: the level of the one-sided lower bound, between 0.5 and 1.
        resamples: bootstrap resamples, at least 100.
        seed: the random seed of the holdout split and of the bootstrap.
        holdout: a CSV file of holdout rows (with the label column).
        holdout_fraction: or the share of the training rows held back, between 0 and
            0.5 (exclusive). One of ``holdout`` and ``holdout_fraction``, not both.

    Raises:
        ConfigurationError: a bad value, naming the key and the value.

    Example:
        >>> ChampionGate(label="income", holdout_fraction=0.2).metric
        'auc'
    """

    label: str
    metric: str = "auc"
    min_change: float = 0.0
    confidence: float = 0.95
    resamples: int = 1000
    seed: int = 0
    holdout: Path | None = attrs.field(default=None, converter=_to_path)
    holdout_fraction: float | None = None

    def __attrs_post_init__(self) -> None:
        _check_gate(self)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, where: str, base: Path | None = None
    ) -> ChampionGate:
        """The gate of a TOML table (keys as the attributes).

        Args:
            data: the table.
            where: what it is, first in every message (``"retrain.toml
                [rollout.champion]"``).
            base: the directory a relative ``holdout`` path is read from (the one of
                retrain.toml); None: as given (the current directory).

        Raises:
            ConfigurationError: not a table, an unknown key, no ``label``, or a bad value.

        Example:
            >>> table = {"label": "income", "holdout_fraction": 0.1, "min_change": 0.01}
            >>> ChampionGate.from_mapping(table, where="retrain.toml [rollout.champion]").min_change
            0.01
        """
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{where}: must be a table, not {type(data).__name__}")
        known = [field.name for field in attrs.fields(cls)]
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown key{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(unknown)} (a typo?); the keys are {', '.join(known)}"
            )
        if "label" not in data:
            raise ConfigurationError(f"{where}: label: required (the label column's name)")
        values = dict(data)
        holdout = values.get("holdout")
        if base is not None and isinstance(holdout, str) and not Path(holdout).is_absolute():
            values["holdout"] = base / holdout
        try:
            return cls(**values)
        except ConfigurationError as err:
            raise ConfigurationError(f"{where}: {err.message}") from None


def _check_gate(gate: ChampionGate) -> None:
    def fail(key: str, wanted: str) -> ConfigurationError:
        return ConfigurationError(f"{key}: must be {wanted}, not {_shown(getattr(gate, key))}")

    if not isinstance(gate.label, str) or not gate.label.strip():
        raise fail("label", "the label column's name")
    if gate.metric not in METRICS:
        raise fail("metric", f"one of {', '.join(METRICS)}")
    if not _is_number(gate.min_change) or not 0 <= gate.min_change < math.inf:
        raise fail("min_change", "a finite number of at least 0")
    if not _is_number(gate.confidence) or not 0.5 < gate.confidence < 1:
        raise fail("confidence", "a number between 0.5 and 1 (exclusive), such as 0.95")
    if not isinstance(gate.resamples, int) or isinstance(gate.resamples, bool):
        raise fail("resamples", "an integer of at least 100")
    if gate.resamples < 100:
        raise fail("resamples", "an integer of at least 100")
    if not isinstance(gate.seed, int) or isinstance(gate.seed, bool):
        raise fail("seed", "an integer")
    if gate.holdout is not None and not isinstance(gate.holdout, Path):
        raise fail("holdout", "the path of a CSV file")
    fraction = gate.holdout_fraction
    if fraction is not None and (not _is_number(fraction) or not 0 < fraction < 0.5):
        raise fail("holdout_fraction", "a number between 0 and 0.5 (exclusive), such as 0.2")
    if gate.holdout is not None and fraction is not None:
        raise ConfigurationError(
            f"holdout, holdout_fraction: give one of them, not both (holdout = "
            f"{_shown(str(gate.holdout))}, holdout_fraction = {fraction!r})"
        )
    if gate.holdout is None and fraction is None:
        raise ConfigurationError(
            "holdout, holdout_fraction: one is required: a holdout CSV file, or the share "
            "of the training rows to hold back (such as 0.2)"
        )


@attrs.frozen(kw_only=True)
class HoldoutRows:
    """Holdout rows, as both models score them, and their labels.

    Attributes:
        columns: the input columns (every column but the label), as the header names them.
        rows: the input values of each row, as strings (as request-response sends them).
        labels: 0 or 1 per row: 1 for ``classes[1]``.
        classes: the two label values, ``(negative, positive)``: the one that sorts first
            is the negative class, as the trained model decides it (its "Scored
            Probabilities" are the probability of the other).
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    labels: tuple[int, ...]
    classes: tuple[str, str]

    @classmethod
    def from_csv(
        cls, source: str | os.PathLike[str] | bytes, label: str, where: str | None = None
    ) -> HoldoutRows:
        """The rows of a holdout CSV file (header first, with the label column).

        Args:
            source: the file's path, or its bytes.
            label: the label column.
            where: what to call it in messages (default: the path, or "the holdout").

        Raises:
            ConfigurationError: no such file, not UTF-8 CSV, no such label column, a ragged
                row, no rows, or not exactly two label values.
        """
        if isinstance(source, bytes):
            data, where = source, where or "the holdout"
        else:
            path = Path(source)
            where = where or str(path)
            try:
                data = path.read_bytes()
            except OSError as err:
                raise ConfigurationError(f"{where}: cannot read the holdout: {err}") from None
        table = _Table.parse(data, label, where)
        if not table.records:
            raise ConfigurationError(f"{where}: no data rows under the header")
        classes = table.classes()
        return table.holdout(range(len(table.records)), classes)


def hold_out(
    csv_bytes: bytes, fraction: float, seed: int, label: str, *, where: str = "the training data"
) -> tuple[bytes, HoldoutRows]:
    """Split training data into what is uploaded and rows held back for the gate.

    ``round(fraction * rows)`` data rows, chosen by ``random.Random(seed)`` (the same seed
    holds back the same rows), are held back; the training bytes are the header and every
    other row exactly as they were written (quoting, line endings, a BOM kept), in their
    order. Blank lines are dropped.

    Args:
        csv_bytes: the training CSV (UTF-8, header first).
        fraction: the share held back, between 0 and 0.5 (exclusive).
        seed: the random seed.
        label: the label column.
        where: what to call the data in messages (its file name).

    Returns:
        The CSV to upload, and the held-back rows.

    Raises:
        ConfigurationError: a bad fraction, not UTF-8 CSV, no such label column, a ragged
            row, not exactly two label values, or too few rows to hold back 10.

    Example:
        >>> data = b"x,y\\n" + b"".join(b"%d,%d\\n" % (i, i % 2) for i in range(100))
        >>> training, holdout = hold_out(data, 0.2, seed=7, label="y")
        >>> len(training.splitlines()) - 1, len(holdout.rows), holdout.columns
        (80, 20, ('x',))
    """
    if not _is_number(fraction) or not 0 < fraction < 0.5:
        raise ConfigurationError(
            f"{where}: holdout_fraction: must be a number between 0 and 0.5 (exclusive), "
            f"not {_shown(fraction)}"
        )
    table = _Table.parse(csv_bytes, label, where)
    total = len(table.records)
    count = round(fraction * total)
    if count < 10:
        raise ConfigurationError(
            f"{where}: {total} data rows: holding back {fraction:g} of them keeps {count} "
            "holdout rows, and the gate needs at least 10 (more rows, a larger "
            "holdout_fraction, or a holdout file)"
        )
    classes = table.classes()
    held = sorted(random.Random(seed).sample(range(total), count))
    chosen = set(held)
    kept = [record for i, record in enumerate(table.records) if i not in chosen]
    training = table.bom + table.header_text + "".join(text for _, text in kept)
    return training.encode("utf-8"), table.holdout(held, classes)


@attrs.frozen(kw_only=True)
class _Table:
    """A parsed CSV that remembers each record's text (to write the training rows back)."""

    where: str
    header: tuple[str, ...]
    label_at: int
    bom: str
    header_text: str
    records: list[tuple[list[str], str]]

    @classmethod
    def parse(cls, data: bytes, label: str, where: str) -> _Table:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ConfigurationError(f"{where}: not UTF-8 (byte {err.start})") from None
        bom = _BOM if text.startswith(_BOM) else ""
        records = _records(text[len(bom) :], where)
        header = next(records, None)
        if header is None:
            raise ConfigurationError(f"{where}: empty: expected a header row and data rows")
        names = tuple(name.strip() for name in header[0])
        if label not in names:
            raise ConfigurationError(
                f"{where}: no label column {label!r}; the columns are {list(names)}"
            )
        header_text = header[1]
        ending = next((e for e in ("\r\n", "\n", "\r") if header_text.endswith(e)), "\n")
        if not header_text.endswith(ending):
            header_text += ending
        rows: list[tuple[list[str], str]] = []
        for fields, raw in records:
            if len(fields) != len(names):
                raise ConfigurationError(
                    f"{where}: data row {len(rows) + 1} has {len(fields)} values, the header "
                    f"{len(names)}"
                )
            rows.append((fields, raw if raw.endswith(("\n", "\r")) else raw + ending))
        return cls(
            where=where,
            header=names,
            label_at=names.index(label),
            bom=bom,
            header_text=header_text,
            records=rows,
        )

    def classes(self) -> tuple[str, str]:
        """The two label values, negative first (sorted, as the trained model orders them)."""
        values = sorted({fields[self.label_at].strip() for fields, _ in self.records})
        if len(values) != 2:
            raise ConfigurationError(
                f"{self.where}: the label column {self.header[self.label_at]!r} has "
                f"{len(values)} distinct value(s) {values[:5]}; the gate compares two-class "
                "models, on rows of both classes"
            )
        return values[0], values[1]

    def holdout(self, indices: Sequence[int] | range, classes: tuple[str, str]) -> HoldoutRows:
        at = self.label_at
        chosen = [self.records[i][0] for i in indices]
        return HoldoutRows(
            columns=tuple(name for j, name in enumerate(self.header) if j != at),
            rows=tuple(tuple(v for j, v in enumerate(fields) if j != at) for fields in chosen),
            labels=tuple(int(fields[at].strip() == classes[1]) for fields in chosen),
            classes=classes,
        )


def _records(text: str, where: str) -> Iterator[tuple[list[str], str]]:
    """Each non-blank CSV record with the text it was read from (quoted newlines kept)."""
    raw: list[str] = []

    def lines() -> Iterator[str]:
        for line in io.StringIO(text, newline=""):
            raw.append(line)
            yield line

    reader = csv.reader(lines())
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise ConfigurationError(f"{where}: cannot be read as CSV: {err}") from None
        record = "".join(raw)
        raw.clear()
        if any(field.strip() for field in fields):
            yield fields, record


class _Scored(Protocol):
    """What :func:`scores_from` reads: a ``ScoreResult`` (its first output)."""

    @property
    def columns(self) -> tuple[str, ...]: ...

    @property
    def rows(self) -> tuple[tuple[Any, ...], ...]: ...


def scores_from(result: _Scored, column: str = "Scored Probabilities") -> list[float]:
    """The scores of a scoring call's rows (an ``amlretrain.studio.scoring.ScoreResult``).

    Values may be numbers or strings of numbers (the table form answers strings). The
    column is matched exactly, else ignoring case.

    Raises:
        ConfigurationError: no such column (names the columns there are), or a value that
            is not a finite number (names the row and the column).

    Example:
        >>> from amlretrain.studio.scoring import ScoreResult, ScoreTable
        >>> table = ScoreTable(columns=("Scored Labels", "Scored Probabilities"),
        ...                    rows=(("1", "0.875"), ("0", "0.25")))
        >>> scores_from(ScoreResult(outputs={"output1": table}))
        [0.875, 0.25]
    """
    columns = list(result.columns)
    if column in columns:
        at = columns.index(column)
    else:
        folded = [name.casefold() for name in columns]
        if column.casefold() not in folded:
            raise ConfigurationError(
                f"the scoring output has no column {column!r}; its columns are {columns}"
            )
        at = folded.index(column.casefold())
    scores = []
    for row, values in enumerate(result.rows):
        value = values[at] if at < len(values) else None
        score = _number(value)
        if score is None:
            raise ConfigurationError(
                f"row {row}: {columns[at]!r} is {_shown(value)}, not a finite number"
            )
        scores.append(score)
    return scores


def _number(value: object) -> float | None:
    if _is_number(value):
        number = float(value)  # type: ignore[arg-type]
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


@attrs.frozen(kw_only=True)
class ChampionEvidence:
    """What the gate found: the figures the ledger records, and the decision.

    Attributes:
        metric: the metric compared.
        n: the holdout rows.
        champion, challenger: each model's metric on all of them.
        difference: the challenger's improvement (challenger minus champion; for log
            loss champion minus challenger): positive is better.
        lower: the one-sided lower bound of the improvement at ``confidence``.
        confidence, resamples, seed, min_change: the settings it was judged with.
        promoted: ``lower > min_change``.
        reason: the decision in a sentence.
    """

    metric: str
    n: int
    champion: float
    challenger: float
    difference: float
    lower: float
    confidence: float
    resamples: int
    seed: int
    min_change: float
    promoted: bool
    reason: str

    def to_evidence(self) -> dict[str, Any]:
        """The figures as the ledger's ``RolloutEvent(stage="gate").evidence`` (JSON-ready).

        Keys: ``metric, n, champion, challenger, difference, lower, confidence, resamples,
        seed, min_change, promoted`` (the reason goes in the event's message).
        """
        return {name: getattr(self, name) for name in _EVIDENCE}


def judge(
    gate: ChampionGate,
    labels: Sequence[int],
    champion_scores: Sequence[float],
    challenger_scores: Sequence[float],
) -> ChampionEvidence:
    """Decide: the challenger is promoted when the lower bound of its improvement on the
    holdout, from a paired bootstrap, is above ``gate.min_change``.

    Strictly above: a bound equal to ``min_change`` keeps the champion, so a challenger
    scoring exactly as the champion does is never promoted, even at ``min_change = 0``.
    See :func:`amlretrain.bootstrap.compare` for the bound.

    Args:
        gate: the settings.
        labels: the holdout's labels (0/1, :attr:`HoldoutRows.labels`).
        champion_scores, challenger_scores: each model's score of each holdout row, in
            the same order (:func:`scores_from`).

    Raises:
        ConfigurationError: the three differ in length, fewer than 10 rows, a holdout
            of one class only, or (log loss) a score outside [0, 1].
    """
    n = len(labels)
    if not n == len(champion_scores) == len(challenger_scores):
        raise ConfigurationError(
            f"the holdout has {n} rows, the champion scored {len(champion_scores)} and the "
            f"challenger {len(challenger_scores)}: both must score every holdout row"
        )
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ConfigurationError(
            f"the holdout's {n} rows are all of one class ({classes[0] if classes else '-'}):"
            " the comparison needs rows of both classes (a larger holdout, or a holdout file)"
        )
    lower_is_better = METRICS[gate.metric]
    result = compare(
        labels,
        champion_scores,
        challenger_scores,
        metric=_FUNCTIONS[gate.metric],
        lower_is_better=lower_is_better,
        resamples=gate.resamples,
        confidence=gate.confidence,
        seed=gate.seed,
    )
    promoted = result.promoted(gate.min_change)
    figures = (
        f"{gate.metric} {result.challenger:.4f} against {result.champion:.4f} on {n} rows: "
        f"improvement {result.difference:+.4f}, {gate.confidence:.0%} lower bound "
        f"{result.lower:+.4f}"
    )
    if promoted:
        reason = f"challenger promoted: {figures} > min_change {gate.min_change:g}"
    else:
        reason = f"champion kept: {figures} is not above min_change {gate.min_change:g}"
    return ChampionEvidence(
        metric=gate.metric,
        n=n,
        champion=result.champion,
        challenger=result.challenger,
        difference=result.difference,
        lower=result.lower,
        confidence=gate.confidence,
        resamples=gate.resamples,
        seed=gate.seed,
        min_change=gate.min_change,
        promoted=promoted,
        reason=reason,
    )
