"""``EvaluationMetrics``: the metrics of Studio's *Evaluate Model* output, parsed tolerantly.

Studio writes the evaluation as CSV: a header row of metric names and one value row per
evaluated model (a second row when two scored datasets are compared), e.g. for a binary
classifier ``True Positive,False Negative,...,Accuracy,Precision,Recall,F-Score,AUC,...``
and for a regression ``Mean Absolute Error,Root Mean Squared Error,...,Coefficient of
Determination``. A two-column ``Metric,Value`` layout is read as well. Names are matched
ignoring case, spaces, ``-`` and ``_``; non-numeric cells are kept as text.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from amlretrain.errors import ConfigurationError

__all__ = ["EvaluationMetrics", "normalize_metric_name"]


def normalize_metric_name(name: str) -> str:
    """The comparison key of a metric name: lowercase, without spaces, ``-``, ``_``, ``.``."""
    return re.sub(r"[\s\-_.]+", "", name.strip().lower())


_ALIASES: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy", "overallaccuracy"),
    "precision": ("precision", "averageprecision"),
    "recall": ("recall", "averagerecall"),
    "f_score": ("fscore", "f1score", "f1"),
    "auc": ("auc", "areaundercurve", "rocauc"),
    "log_loss": ("averagelogloss", "logloss"),
    "mean_absolute_error": ("meanabsoluteerror", "mae"),
    "root_mean_squared_error": ("rootmeansquarederror", "rmse"),
    "relative_absolute_error": ("relativeabsoluteerror",),
    "relative_squared_error": ("relativesquarederror",),
    "coefficient_of_determination": ("coefficientofdetermination", "r2", "rsquared"),
}


def _number(text: str) -> float | None:
    cleaned = text.strip().rstrip("%")
    if not cleaned:
        return None
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@attrs.frozen(kw_only=True)
class EvaluationMetrics:
    """Metrics of one evaluated model, by name as Studio wrote them.

    Attributes:
        values: numeric metrics, in file order (``{"Accuracy": 0.84, ...}``).
        text: the cells that are not numbers (e.g. a ``Scored dataset`` label).
        rows: every value row of the file (for a two-model comparison), as text.

    Example:
        >>> m = EvaluationMetrics.from_csv("Accuracy,AUC\\n0.84,0.9\\n")
        >>> m.accuracy, m["auc"]
        (0.84, 0.9)
    """

    values: Mapping[str, float] = attrs.field(factory=dict)
    text: Mapping[str, str] = attrs.field(factory=dict)
    rows: tuple[tuple[str, ...], ...] = ()

    @classmethod
    def from_csv(cls, data: str | bytes) -> EvaluationMetrics:
        """Parse Studio's evaluation CSV (header + values, or ``Metric,Value`` pairs).

        Raises:
            ConfigurationError: the text is not CSV, or holds no metric at all.
        """
        if isinstance(data, bytes):
            data = data.decode("utf-8-sig", "replace")
        data = data.lstrip("\ufeff")
        try:
            dialect: Any = csv.Sniffer().sniff(data[:4096], delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        try:
            table = [
                [cell.strip() for cell in row]
                for row in csv.reader(io.StringIO(data), dialect)
                if any(cell.strip() for cell in row)
            ]
        except csv.Error as err:
            raise ConfigurationError(f"the evaluation output is not CSV: {err}") from err
        if not table:
            raise ConfigurationError("the evaluation output is empty")
        header, body = table[0], table[1:]
        pairs: list[tuple[str, str]]
        rows: tuple[tuple[str, ...], ...]
        if _is_key_value_layout(header, body):
            start = 0 if _number(header[1]) is not None else 1
            pairs = [(row[0], row[1]) for row in table[start:] if len(row) >= 2]
            rows = (tuple(v for _, v in pairs),)
        else:
            if not body:
                raise ConfigurationError("the evaluation output has a header but no values")
            first = body[0]
            pairs = list(zip(header, first, strict=False))
            rows = tuple(tuple(r) for r in body)
        values: dict[str, float] = {}
        text: dict[str, str] = {}
        for name, cell in pairs:
            if not name:
                continue
            number = _number(cell)
            if number is None:
                text[name] = cell
            else:
                values[name] = number
        if not values:
            raise ConfigurationError("the evaluation output holds no numeric metric")
        return cls(values=values, text=text, rows=rows)

    # -- lookups -----------------------------------------------------------------------------

    def get(self, name: str, default: float | None = None) -> float | None:
        """A metric by name (case, spaces, ``-`` and ``_`` ignored; common aliases known)."""
        wanted = normalize_metric_name(name)
        candidates = {wanted, *_ALIASES.get(name, ()), *_ALIASES.get(wanted, ())}
        for key, value in self.values.items():
            if normalize_metric_name(key) in candidates:
                return value
        return default

    def __getitem__(self, name: str) -> float:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def as_dict(self) -> dict[str, float]:
        """The numeric metrics as a plain dict."""
        return dict(self.values)

    @property
    def accuracy(self) -> float | None:
        """Accuracy (classification), or None."""
        return self.get("accuracy")

    @property
    def precision(self) -> float | None:
        """Precision (classification), or None."""
        return self.get("precision")

    @property
    def recall(self) -> float | None:
        """Recall (classification), or None."""
        return self.get("recall")

    @property
    def f_score(self) -> float | None:
        """F-Score (classification), or None."""
        return self.get("f_score")

    @property
    def auc(self) -> float | None:
        """Area under the ROC curve (binary classification), or None."""
        return self.get("auc")

    @property
    def mean_absolute_error(self) -> float | None:
        """Mean absolute error (regression), or None."""
        return self.get("mean_absolute_error")

    @property
    def root_mean_squared_error(self) -> float | None:
        """Root mean squared error (regression), or None."""
        return self.get("root_mean_squared_error")

    @property
    def coefficient_of_determination(self) -> float | None:
        """Coefficient of determination, R² (regression), or None."""
        return self.get("coefficient_of_determination")

    def _repr_html_(self) -> str:
        import html

        cells = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{v:.6g}</td></tr>" for k, v in self.values.items()
        )
        return f"<table><tr><th>metric</th><th>value</th></tr>{cells}</table>"


def _is_key_value_layout(header: list[str], body: list[list[str]]) -> bool:
    """True for a ``Metric,Value`` file: two columns, names on the left, numbers right."""
    if len(header) != 2 or not body:
        return False
    if all(len(r) == 2 and _number(r[1]) is not None and _number(r[0]) is None for r in body):
        return len(body) > 1 or normalize_metric_name(header[1]) in ("value", "values")
    return False
