"""The emulator's model: two-class logistic regression and its ``.ilearner`` file format.

The emulated training service calls :func:`train` and :func:`evaluate`; the emulated
predictive service loads whatever ``.ilearner`` it references with
:meth:`Model.from_bytes` and scores with :meth:`Model.predict`. So a retrain that swaps
the model really changes the predictions.

The ``.ilearner`` file is our own documented format (not Studio's binary one): UTF-8
JSON with sorted keys, ``{"format": "amlretrain-ilearner/1", "features": [...],
"label": ..., "classes": [negative, positive], "weights": [...], "bias": ...,
"means": [...], "scales": [...], "trained_rows": ...}``. A row is scored as
``sigmoid(bias + sum(weights * (x - means) / scales))``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

__all__ = ["LEARNER_FORMAT", "METRIC_COLUMNS", "LearnerError", "Model", "evaluate"]
__all__ += ["evaluation_csv", "parse_evaluation_csv", "split_holdout", "train"]

log = logging.getLogger(__name__)

LEARNER_FORMAT = "amlretrain-ilearner/1"
THRESHOLD = 0.5
COUNT_COLUMNS = ("True Positive", "False Negative", "False Positive", "True Negative")
METRIC_COLUMNS = (
    *COUNT_COLUMNS,
    *("Accuracy", "Precision", "Recall", "F1 Score", "Threshold", "AUC"),
    *("Average Log Loss", "Training Log Loss"),
)
_ALIASES = {"f-score": "F1 Score", "f1": "F1 Score", "fscore": "F1 Score"}
_LISTS = {"features": str, "classes": str, "weights": float, "means": float, "scales": float}
_SCALARS = {"label": str, "bias": float, "trained_rows": int}


class LearnerError(ValueError):
    """Bad training/scoring CSV or bad model bytes; the message says what and where."""


@attrs.frozen(kw_only=True)
class Model:
    """A trained two-class logistic regression over standardised numeric features."""

    features: tuple[str, ...]
    label: str
    classes: tuple[str, str]
    weights: tuple[float, ...]
    bias: float
    means: tuple[float, ...]
    scales: tuple[float, ...]
    trained_rows: int

    def __attrs_post_init__(self) -> None:
        n = len(self.features)
        if n == 0 or not (len(self.weights) == len(self.means) == len(self.scales) == n):
            raise LearnerError("model: features, weights, means and scales differ in length")
        numbers = (*self.weights, *self.means, *self.scales, self.bias)
        if not all(math.isfinite(v) for v in numbers) or min(self.scales) <= 0:
            raise LearnerError("model: weights, means and scales must be finite, scales > 0")

    def to_bytes(self) -> bytes:
        """The ``.ilearner`` file: UTF-8 JSON with sorted keys (see the module docstring)."""
        doc: dict[str, Any] = {"format": LEARNER_FORMAT, **attrs.asdict(self)}
        return json.dumps(doc, sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Model:
        """Load an ``.ilearner`` written by :meth:`to_bytes`.

        Raises:
            LearnerError: not JSON of our format, or a field missing or mistyped (named).
        """
        try:
            doc: Any = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise LearnerError(f"not an {LEARNER_FORMAT} model: not UTF-8 JSON ({err})") from err
        if not isinstance(doc, dict) or doc.get("format") != LEARNER_FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise LearnerError(f"not an {LEARNER_FORMAT} model (format: {found!r})")
        args: dict[str, Any] = {}
        for name, kind in (*_LISTS.items(), *_SCALARS.items()):
            value = doc.get(name)
            if name in _LISTS and isinstance(value, list) and all(_is(v, kind) for v in value):
                args[name] = tuple(value)
            elif name in _SCALARS and _is(value, kind):
                args[name] = value
            else:
                what = f"list of {kind.__name__}" if name in _LISTS else kind.__name__
                raise LearnerError(f"model field {name!r}: expected {what}, got {value!r:.60}")
        if len(args["classes"]) != 2:
            raise LearnerError(f"model field 'classes': expected 2 values: {args['classes']}")
        return cls(**args)

    def predict(
        self, columns: Sequence[str], rows: Sequence[Sequence[object]]
    ) -> list[tuple[str, float]]:
        """Score rows: ``(scored label, probability of the positive class)`` per row.

        ``columns`` may come in any order; extra columns (the label too) are ignored.
        Values may be strings (as request-response sends them) or numbers.

        Raises:
            LearnerError: a feature column is missing, a row has the wrong length, or a
                value is not a finite number (names the row and column).
        """
        x = _features(columns, rows, self.features)
        return [
            (self.classes[1] if p >= THRESHOLD else self.classes[0], float(p))
            for p in self._probabilities(x)
        ]

    def _probabilities(self, x: np.ndarray) -> np.ndarray:
        z = (x - np.array(self.means)) / np.array(self.scales)
        return _sigmoid(z @ np.array(self.weights) + self.bias)


def train(
    csv_bytes: bytes, *, label: str | None = None, iterations: int = 300, l2: float = 1e-3
) -> Model:
    """Train logistic regression on a CSV, deterministically (batch gradient descent).

    Args:
        csv_bytes: CSV with a header row; every column but the label is a numeric feature.
        label: the label column (default: the last one). It must hold exactly two distinct
            values; the one that sorts first (``<=50K``, ``0``, ``no``) is the negative class.
        iterations: gradient-descent steps; l2: L2 penalty on the weights.

    Raises:
        LearnerError: empty CSV, no data rows, ragged row, unknown label column, not
            exactly two label values, or a non-numeric feature value (names row and column).

    Example: ``model = train(Path("census_train.csv").read_bytes(), label="income")``
    """
    header, rows = _read_csv(csv_bytes)
    label = header[-1] if label is None else label
    if label not in header:
        raise LearnerError(f"label column {label!r} not in the header {header}")
    if len(header) < 2:
        raise LearnerError("CSV needs at least one feature column besides the label")
    features = [h for h in header if h != label]
    x = _features(header, rows, features)
    labels = [row[header.index(label)].strip() for row in rows]
    classes = sorted(set(labels))
    if len(classes) != 2:
        raise LearnerError(
            f"label column {label!r} has {len(classes)} distinct value(s) "
            f"{classes[:5]}; two-class training needs exactly 2"
        )
    y = np.array([v == classes[1] for v in labels], dtype=float)
    means, scales = x.mean(axis=0), x.std(axis=0)
    scales[scales == 0] = 1.0
    z = (x - means) / scales
    w, b = np.zeros(len(features)), 0.0
    for _ in range(iterations):
        error = _sigmoid(z @ w + b) - y
        w -= 0.5 * (z.T @ error / len(y) + l2 * w)
        b -= 0.5 * float(error.mean())
    log.debug("trained on %d rows, %d features", len(y), len(features))
    arrays = {"weights": w, "means": means, "scales": scales}
    return Model(
        features=tuple(features),
        label=label,
        classes=(classes[0], classes[1]),
        bias=float(b),
        trained_rows=len(y),
        **{name: tuple(a.tolist()) for name, a in arrays.items()},
    )


def evaluate(model: Model, csv_bytes: bytes) -> dict[str, float]:
    """Binary-classification metrics named as Studio's "Evaluate Model" reports them.

    Keys are :data:`METRIC_COLUMNS`; Precision/Recall/F1 are 0.0 when undefined.
    "Training Log Loss" is, as in Studio, the relative improvement of the average log
    loss over always predicting the data's positive rate (1 = perfect, < 0 = worse).

    Raises:
        LearnerError: bad CSV, missing label/feature column, a label outside the
            model's classes, or data that does not hold both classes.
    """
    header, rows = _read_csv(csv_bytes)
    if model.label not in header:
        raise LearnerError(f"label column {model.label!r} not in the header {header}")
    x = _features(header, rows, model.features)
    labels = [row[header.index(model.label)].strip() for row in rows]
    for r, value in enumerate(labels, start=1):
        if value not in model.classes:
            raise LearnerError(f"data row {r}: label {value!r} is not in {list(model.classes)}")
    y = np.array([v == model.classes[1] for v in labels])
    if y.all() or not y.any():
        raise LearnerError("evaluation data must hold both label values to compute AUC")
    p = np.clip(model._probabilities(x), 1e-15, 1 - 1e-15)
    predicted = p >= THRESHOLD
    tp, fn = float(np.sum(predicted & y)), float(np.sum(~predicted & y))
    fp, tn = float(np.sum(predicted & ~y)), float(np.sum(~predicted & ~y))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    log_loss = float(-np.mean(np.where(y, np.log(p), np.log(1 - p))))
    rate = float(y.mean())
    prior_loss = -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))
    # AUC = Mann-Whitney U, tied scores sharing their average rank
    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]
    n_pos, n_neg = float(y.sum()), float((~y).sum())
    auc = (float(ranks[y].sum()) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    values = [tp, fn, fp, tn, (tp + tn) / len(y), precision, recall, f1, THRESHOLD, auc]
    return dict(zip(METRIC_COLUMNS, [*values, log_loss, 1 - log_loss / prior_loss], strict=True))


def evaluation_csv(metrics: Mapping[str, float]) -> bytes:
    """The evaluation-results CSV: a header and one value row, in Studio's column order.

    :data:`METRIC_COLUMNS` first (all required, else LearnerError), other keys after.
    """
    missing = [name for name in METRIC_COLUMNS if name not in metrics]
    if missing:
        raise LearnerError(f"evaluation metrics missing: {', '.join(missing)}")
    names = [*METRIC_COLUMNS, *(k for k in metrics if k not in METRIC_COLUMNS)]

    def text(name: str) -> str:
        value = float(metrics[name])
        return str(int(value)) if name in COUNT_COLUMNS and value.is_integer() else repr(value)

    return _write_csv([names, [text(n) for n in names]])


def parse_evaluation_csv(data: bytes) -> dict[str, float]:
    """Read an evaluation-results CSV (the inverse of :func:`evaluation_csv`), tolerantly.

    Headers match case-insensitively (``F-Score`` reads as ``F1 Score``), in any order;
    extra numeric columns are kept, non-numeric ones (``Positive Label``) skipped; only
    the first value row is read. Missing metrics are not an error here.

    Raises:
        LearnerError: no value row, or a known metric whose value is not a number.
    """
    header, rows = _read_csv(data)
    canonical = {name.lower(): name for name in METRIC_COLUMNS} | _ALIASES
    result: dict[str, float] = {}
    for column, value in zip(header, rows[0], strict=True):
        name = canonical.get(column.strip().lower())
        try:
            result[name or column] = float(value)
        except ValueError as err:
            if name is not None:
                msg = f"evaluation column {column!r}: {value!r} is not a number"
                raise LearnerError(msg) from err
            log.debug("skipping non-numeric evaluation column %r: %s", column, err)
    return result


def split_holdout(csv_bytes: bytes, fraction: float = 0.25) -> tuple[bytes, bytes]:
    """Split a CSV deterministically into (training, holdout) CSVs with the same header.

    Row ``i`` (0-based) is held out when ``floor((i+1)*fraction)`` steps up: with 0.25,
    every 4th row. Raises LearnerError for a bad CSV, ``fraction`` outside (0, 1), or
    too few rows for both parts.
    """
    if not 0 < fraction < 1:
        raise LearnerError(f"holdout fraction must be between 0 and 1, got {fraction}")
    header, rows = _read_csv(csv_bytes)
    parts: tuple[list[list[str]], list[list[str]]] = ([header], [header])
    for i, row in enumerate(rows):
        parts[math.floor((i + 1) * fraction) > math.floor(i * fraction)].append(row)
    if len(parts[0]) < 2 or len(parts[1]) < 2:
        raise LearnerError(f"{len(rows)} data row(s) are too few to split at {fraction}")
    return _write_csv(parts[0]), _write_csv(parts[1])


def _read_csv(data: bytes) -> tuple[list[str], list[list[str]]]:
    """Header and data rows; BOM, CRLF and blank lines tolerated; ragged rows rejected."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise LearnerError(f"CSV is not UTF-8 (byte {err.start})") from err
    try:
        lines = [row for row in csv.reader(io.StringIO(text, newline="")) if any(row)]
    except csv.Error as err:
        raise LearnerError(f"CSV cannot be parsed: {err}") from err
    if not lines:
        raise LearnerError("CSV is empty: expected a header row and data rows")
    header = [name.strip() for name in lines[0]]
    if "" in header or len(set(header)) != len(header):
        raise LearnerError(f"CSV header has empty or duplicate column names: {header}")
    if len(lines) == 1:
        raise LearnerError("CSV has a header but no data rows")
    for r, row in enumerate(lines[1:], start=1):
        if len(row) != len(header):
            raise LearnerError(f"data row {r} has {len(row)} values, the header {len(header)}")
    return header, lines[1:]


def _write_csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def _features(
    columns: Sequence[str], rows: Sequence[Sequence[object]], features: Sequence[str]
) -> np.ndarray:
    """The feature matrix, columns in ``features`` order, from rows of any column order."""
    missing = [f for f in features if f not in columns]
    if missing:
        raise LearnerError(f"missing feature column(s): {', '.join(map(repr, missing))}")
    index = [list(columns).index(f) for f in features]
    x = np.empty((len(rows), len(features)))
    for r, row in enumerate(rows, start=1):
        if len(row) != len(columns):
            raise LearnerError(f"data row {r} has {len(row)} values for {len(columns)} columns")
        for j, i in enumerate(index):
            x[r - 1, j] = _number(row[i], f"data row {r}, column {columns[i]!r}")
    return x


def _is(value: object, kind: type) -> bool:
    if isinstance(value, bool):  # a JSON true is no number
        return kind is bool
    if kind is float:  # a float field also accepts a JSON integer
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, kind)


def _number(value: object, where: str) -> float:
    try:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError
        number = float(value)
    except ValueError:
        raise LearnerError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise LearnerError(f"{where}: {value!r} is not a finite number")
    return number


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))  # type: ignore[no-any-return]
