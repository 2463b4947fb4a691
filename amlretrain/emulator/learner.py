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

An optional member ``"emulator"`` carries *model-borne behaviour* (:class:`Behaviour`),
what a deliberately bad model does when it serves: ``{"error_rate": 0.3, "score_shift":
0.2, "latency": 0.05, "seed": 1, "error_status": 500}`` (every key optional). The
emulated request-response service honours it (errors, added latency); every scoring
with the model (request-response and batch) applies the score shift; :func:`evaluate`
measures the trained weights alone. A file without the member is scored as before, and
:meth:`Model.to_bytes` of a model without behaviour writes no member. Make one with
:func:`with_behaviour`; train on :func:`shuffled_labels` for a model that is simply worse.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

__all__ = ["LEARNER_FORMAT", "METRIC_COLUMNS", "Behaviour", "LearnerError", "Model", "evaluate"]
__all__ += ["evaluation_csv", "parse_evaluation_csv", "split_holdout", "train"]
__all__ += ["shuffled_labels", "with_behaviour"]

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


#: The keys of the ``"emulator"`` member and the HTTP statuses a failing model answers.
BEHAVIOUR_KEYS = ("error_rate", "score_shift", "latency", "seed", "error_status")
ERROR_STATUSES = (500, 503)
MAX_LATENCY = 300.0


def _check_number(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LearnerError(f"behaviour {name!r}: expected a number, got {value!r:.60}")
    if not math.isfinite(value) or not low <= value <= high:
        raise LearnerError(f"behaviour {name!r}: {value!r} is not between {low:g} and {high:g}")
    return float(value)


@attrs.frozen(kw_only=True)
class Behaviour:
    """What a model does when it serves, besides scoring (the ``"emulator"`` member).

    Attributes:
        error_rate: share of scoring requests answered with an error (0 to 1). Which ones
            is decided by the request's feature values and ``seed`` (a hash), not by
            chance or order: the same rows fail on every call, through any endpoint that
            serves this model (so shadow and live scoring of the same request agree),
            and about ``error_rate`` of distinct requests fail.
        score_shift: added to every scored probability (-1 to 1), clipped to [0, 1];
            the scored label is recomputed from the 0.5 threshold.
        latency: seconds added to every request-response scoring (0 to 300).
        seed: picks which requests fail (any int).
        error_status: the failing requests' HTTP status: 500 (``InternalError``, a
            crashing model) or 503 (``ServiceUnavailable``).

    Raises:
        LearnerError: a value out of range or of the wrong type (named).
    """

    error_rate: float = 0.0
    score_shift: float = 0.0
    latency: float = 0.0
    seed: int = 0
    error_status: int = 500

    def __attrs_post_init__(self) -> None:
        _check_number("error_rate", self.error_rate, 0.0, 1.0)
        _check_number("score_shift", self.score_shift, -1.0, 1.0)
        _check_number("latency", self.latency, 0.0, MAX_LATENCY)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise LearnerError(f"behaviour 'seed': expected an int, got {self.seed!r:.60}")
        if self.error_status not in ERROR_STATUSES or isinstance(self.error_status, bool):
            raise LearnerError(
                f"behaviour 'error_status': expected one of {ERROR_STATUSES}, "
                f"got {self.error_status!r:.60}"
            )

    @property
    def inert(self) -> bool:
        """True when it changes nothing (no errors, no shift, no latency)."""
        return self.error_rate == 0 and self.score_shift == 0 and self.latency == 0

    @classmethod
    def from_json(cls, doc: object) -> Behaviour:
        """Read the ``"emulator"`` member (an object of :data:`BEHAVIOUR_KEYS`).

        Raises:
            LearnerError: not an object, an unknown key, or a bad value (named).
        """
        if not isinstance(doc, dict):
            raise LearnerError(f"model field 'emulator': expected an object, got {doc!r:.60}")
        unknown = sorted(str(k) for k in doc if k not in BEHAVIOUR_KEYS)
        if unknown:
            raise LearnerError(
                f"model field 'emulator': unknown key(s) {', '.join(unknown)}; "
                f"expected {', '.join(BEHAVIOUR_KEYS)}"
            )
        return cls(**doc)

    def to_json(self) -> dict[str, Any]:
        """The ``"emulator"`` member."""
        return attrs.asdict(self)

    def fails(self, model: Model, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> bool:
        """True when this request is one of the ``error_rate`` share that fails.

        Decided by a hash of ``seed`` and the request's feature values (in the model's
        feature order, as numbers: column order, extra columns and the string-or-number
        form do not matter).

        Raises:
            LearnerError: the rows cannot be scored by ``model`` (as :meth:`Model.predict`).
        """
        if self.error_rate <= 0:
            return False
        if self.error_rate >= 1:
            return True
        x = _features(columns, rows, model.features)
        digest = hashlib.sha256(f"{self.seed}:{x.shape}:".encode() + x.tobytes()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64 < self.error_rate


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
    behaviour: Behaviour | None = None

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
        del doc["behaviour"]
        if self.behaviour is not None:
            doc["emulator"] = self.behaviour.to_json()
        return json.dumps(doc, sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Model:
        """Load an ``.ilearner`` written by :meth:`to_bytes`.

        Raises:
            LearnerError: not JSON of our format, a field missing or mistyped, or a bad
                ``"emulator"`` member (named).
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
        if "emulator" in doc:
            args["behaviour"] = Behaviour.from_json(doc["emulator"])
        return cls(**args)

    def predict(
        self, columns: Sequence[str], rows: Sequence[Sequence[object]]
    ) -> list[tuple[str, float]]:
        """Score rows: ``(scored label, probability of the positive class)`` per row.

        ``columns`` may come in any order; extra columns (the label too) are ignored.
        Values may be strings (as request-response sends them) or numbers. A model with
        a :class:`Behaviour` has its ``score_shift`` added (clipped to [0, 1]).

        Raises:
            LearnerError: a feature column is missing, a row has the wrong length, or a
                value is not a finite number (names the row and column).
        """
        x = _features(columns, rows, self.features)
        probabilities = self._probabilities(x)
        if self.behaviour is not None and self.behaviour.score_shift:
            probabilities = np.clip(probabilities + self.behaviour.score_shift, 0.0, 1.0)
        return [
            (self.classes[1] if p >= THRESHOLD else self.classes[0], float(p))
            for p in probabilities
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
    return Model(
        features=tuple(features),
        label=label,
        classes=(classes[0], classes[1]),
        bias=float(b),
        trained_rows=len(y),
        weights=tuple(w.tolist()),
        means=tuple(means.tolist()),
        scales=tuple(scales.tolist()),
    )


def with_behaviour(
    model_bytes: bytes,
    *,
    error_rate: float = 0.0,
    score_shift: float = 0.0,
    latency: float = 0.0,
    seed: int = 0,
    error_status: int = 500,
) -> bytes:
    """An ``.ilearner`` file like ``model_bytes`` that misbehaves when it serves.

    The weights are kept; the ``"emulator"`` member is set to the given
    :class:`Behaviour` (replacing any), or removed when it changes nothing (all zero).

    Raises:
        LearnerError: ``model_bytes`` is not a model, or a value is out of range.

    Example: ``Path("bad.ilearner").write_bytes(with_behaviour(good, error_rate=0.3))``
    """
    model = Model.from_bytes(model_bytes)
    behaviour = Behaviour(
        error_rate=error_rate,
        score_shift=score_shift,
        latency=latency,
        seed=seed,
        error_status=error_status,
    )
    return attrs.evolve(model, behaviour=None if behaviour.inert else behaviour).to_bytes()


def shuffled_labels(csv_bytes: bytes, label: str | None = None, seed: int = 1) -> bytes:
    """The CSV with its label column shuffled (seeded): a model trained on it learns noise.

    Features and the label's values (so the class balance) are kept; only which row has
    which label changes. ``label`` defaults to the last column, as in :func:`train`.

    A model trained on noise scores along a random direction of the features, so how bad
    it is on held-out rows depends on the seed and the data: with few, individually
    predictive features (the bundled census data) some seeds land near the real model.
    With the default seed 1 the bundled census files give a holdout AUC of about 0.4
    (against about 0.9 trained on the real labels); with other data, check the AUC of
    the evaluation output, and pick another seed if it is not bad enough.

    Raises:
        LearnerError: a bad CSV or an unknown label column.

    Example: ``bad = train(shuffled_labels(data, "income", seed=1), label="income")``
    """
    header, rows = _read_csv(csv_bytes)
    label = header[-1] if label is None else label
    if label not in header:
        raise LearnerError(f"label column {label!r} not in the header {header}")
    column = header.index(label)
    order = np.random.default_rng(seed).permutation(len(rows))
    values = [rows[int(i)][column] for i in order]
    shuffled = [
        [*row[:column], value, *row[column + 1 :]] for row, value in zip(rows, values, strict=True)
    ]
    return _write_csv([header, *shuffled])


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
