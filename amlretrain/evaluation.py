"""``EvaluationMetrics``: the metrics of Studio's *Evaluate Model* output, parsed tolerantly.

Studio writes the evaluation as CSV: a header row of metric names and one value row per
evaluated model (a second row when two scored datasets are compared), e.g. for a binary
classifier ``True Positive,False Negative,...,Accuracy,Precision,Recall,F-Score,AUC,...``
and for a regression ``Mean Absolute Error,Root Mean Squared Error,...,Coefficient of
Determination``. A two-column ``Metric,Value`` layout is read as well.

Names are compared through :func:`amlretrain.metrics.normalize_metric_name`, the gate's
normaliser too: case, spaces, ``-`` and ``_`` are ignored and aliases are one metric
(``F1`` = ``F-Score`` = ``F1 Score``, ``AUC`` = ``Area Under Curve``, ``R2`` =
``Coefficient of Determination``, ...). The metrics keep the names the CSV spelled.

What is refused (:class:`~amlretrain.errors.ConfigurationError`, naming the column): one
metric in two columns (also under two aliases), and a known metric whose cell is not a
finite number in its range (``AUC`` 1.5, a negative error, ``"8.7%"``, ``NaN``). Cells of
other columns that are not numbers are kept as text, never parsed.
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
from amlretrain.metrics import (
    check_metric_names,
    check_metric_value,
    find_metric,
    normalize_metric_name,
)

__all__ = ["EvaluationMetrics", "normalize_metric_name"]

_DECIMAL = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBER = re.compile(_DECIMAL)
# What a value cell may look like, even when it is not a value we accept (layout sniffing).
_NUMBER_LIKE = re.compile(rf"(?:{_DECIMAL})%?|[+-]?(?:nan|inf|infinity)", re.I)


def _number(text: str) -> float | None:
    """A plain decimal number (``0.84``, ``-1e-3``), finite; else None (``8.7%``, ``nan``)."""
    cleaned = text.strip()
    if not _NUMBER.fullmatch(cleaned):
        return None
    value = float(cleaned)
    return value if math.isfinite(value) else None


def _number_like(text: str) -> bool:
    return bool(_NUMBER_LIKE.fullmatch(text.strip()))


@attrs.frozen(kw_only=True)
class EvaluationMetrics:
    """Metrics of one evaluated model, by name as Studio wrote them.

    Names stay as the CSV spelled them (in ``values``, ``as_dict()`` and so in the
    ledger); lookups accept any spelling or alias (``m["F1"]`` reads ``F-Score``), as
    the gate does.

    Attributes:
        values: numeric metrics, in file order (``{"Accuracy": 0.84, ...}``).
        text: the cells of other columns that are not numbers (e.g. a ``Scored dataset``
            label).
        rows: every value row of the file (for a two-model comparison), as text; only
            the first is checked and read into ``values``.

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
            ConfigurationError: the text is not CSV or holds no metric; a metric is in
                two columns; a known metric's value is not a finite number in its range.
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
            start = 0 if _number_like(header[1]) else 1
            pairs = [(row[0], row[1]) for row in table[start:] if len(row) >= 2]
            rows = (tuple(v for _, v in pairs),)
        else:
            if not body:
                raise ConfigurationError("the evaluation output has a header but no values")
            first = body[0] + [""] * (len(header) - len(body[0]))
            pairs = list(zip(header, first, strict=False))
            rows = tuple(tuple(r) for r in body)
        pairs = [(name, cell) for name, cell in pairs if name]
        check_metric_names((name for name, _ in pairs), where="the evaluation output")
        values: dict[str, float] = {}
        text: dict[str, str] = {}
        for name, cell in pairs:
            number = _number(cell)
            if find_metric(name) is not None:
                values[name] = check_metric_value(
                    name, cell if number is None else number, what="evaluation column"
                )
            elif number is None:
                text[name] = cell
            else:
                values[name] = number
        if not values:
            raise ConfigurationError("the evaluation output holds no numeric metric")
        return cls(values=values, text=text, rows=rows)

    # -- lookups -----------------------------------------------------------------------------

    def get(self, name: str, default: float | None = None) -> float | None:
        """A metric by any spelling or alias of its name (``"F1"`` reads ``F-Score``)."""
        wanted = normalize_metric_name(name)
        for key, value in self.values.items():
            if normalize_metric_name(key) == wanted:
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
        """The numeric metrics as a plain dict, under the names the CSV spelled (what the
        ledger records; the gate matches them under any alias)."""
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
    if all(len(r) == 2 and _number_like(r[1]) and not _number_like(r[0]) for r in body):
        return len(body) > 1 or normalize_metric_name(header[1]) in ("value", "values")
    return False
