"""Evaluate Model CSV: metric aliases both ways, one column per metric, impossible values."""

from __future__ import annotations

import itertools

import pytest

from amlretrain import AmlRetrainError, ConfigurationError, evaluation, metrics
from amlretrain.evaluation import EvaluationMetrics
from amlretrain.metrics import (
    METRICS,
    canonical_metric_name,
    find_metric,
    lower_is_better,
    normalize_metric_name,
)

#: Every spelling of each metric the issue names, Studio's first.
ALIASES = {
    "F-Score": ("F-Score", "F1", "F1 Score", "f1_score", "F Score"),
    "AUC": ("AUC", "Area Under Curve", "area-under-curve"),
    "Mean Absolute Error": ("Mean Absolute Error", "MAE", "mean_absolute_error"),
    "Root Mean Squared Error": ("Root Mean Squared Error", "RMSE", "root mean squared error"),
    "Relative Absolute Error": ("Relative Absolute Error", "RAE"),
    "Relative Squared Error": ("Relative Squared Error", "RSE"),
    "Coefficient of Determination": ("Coefficient of Determination", "R2", "R²", "r-squared"),
}
PAIRS = [
    (canonical, written, asked)
    for canonical, spellings in ALIASES.items()
    for written, asked in itertools.permutations(spellings, 2)
]


def _message(csv: str) -> str:
    with pytest.raises(ConfigurationError) as info:
        EvaluationMetrics.from_csv(csv)
    return info.value.message


# -- one normaliser --------------------------------------------------------------------------


@pytest.mark.parametrize(("canonical", "written", "asked"), PAIRS)
def test_a_column_under_one_alias_is_read_under_every_other(
    canonical: str, written: str, asked: str
) -> None:
    parsed = EvaluationMetrics.from_csv(f"{written}\n0.25\n")
    assert parsed[asked] == 0.25
    assert asked in parsed
    assert normalize_metric_name(written) == normalize_metric_name(asked)
    assert canonical_metric_name(written) == canonical


def test_the_parser_and_the_gate_share_the_normaliser() -> None:
    assert evaluation.normalize_metric_name is metrics.normalize_metric_name


def test_names_stay_as_the_csv_spelled_them() -> None:
    parsed = EvaluationMetrics.from_csv("Area Under Curve,F1 Score,R²\n0.9,0.7,0.5\n")
    assert parsed.as_dict() == {"Area Under Curve": 0.9, "F1 Score": 0.7, "R²": 0.5}
    assert list(parsed) == ["Area Under Curve", "F1 Score", "R²"]
    assert (parsed.auc, parsed.f_score, parsed.coefficient_of_determination) == (0.9, 0.7, 0.5)


def test_the_normaliser_ignores_case_spaces_underscores_hyphens_and_dots() -> None:
    keys = {normalize_metric_name(n) for n in ("Log Loss", "log_loss", "LOG-LOSS", "log.loss")}
    assert keys == {normalize_metric_name("Average Log Loss")}
    assert normalize_metric_name(" Scored  Rows ") == "scoredrows"


def test_every_spelling_in_the_table_finds_its_own_metric() -> None:
    for metric in METRICS:
        for spelling in (metric.name, *metric.aliases):
            assert find_metric(spelling) is metric, spelling
    assert find_metric("Average Precision") is None
    assert find_metric("Threshold") is None


@pytest.mark.parametrize(
    ("name", "lower"),
    [
        *[(n, True) for n in ("MAE", "rmse", "RAE", "Relative Squared Error", "Log Loss")],
        *[(n, True) for n in ("Negative Log Likelihood", "Mean Squared Error", "Hinge Loss")],
        *[(n, False) for n in ("R2", "F1", "Area Under Curve", "Accuracy", "Recall")],
        ("Training Log Loss", False),  # Studio's log-loss *reduction*: larger is better
    ],
)
def test_direction_is_known_under_every_alias(name: str, lower: bool) -> None:
    assert lower_is_better(name) is lower


@pytest.mark.parametrize(
    ("metric", "text"),
    [
        ("Accuracy", "[0, 1]"),
        ("Mean Absolute Error", "[0, inf)"),
        ("Coefficient of Determination", "(-inf, 1]"),
        ("Training Log Loss", "(-inf, 1]"),
        ("Negative Log Likelihood", "any"),
    ],
)
def test_valid_ranges_as_text(metric: str, text: str) -> None:
    found = find_metric(metric)
    assert found is not None
    assert found.valid_range == text


# -- one column per metric -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "canonical"),
    [
        ("AUC", "AUC", "AUC"),
        ("AUC", "Area Under Curve", "AUC"),
        ("Area Under Curve", "auc", "AUC"),
        ("F-Score", "F1 Score", "F-Score"),
        ("F1", "f-score", "F-Score"),
        ("R2", "Coefficient of Determination", "Coefficient of Determination"),
        ("RMSE", "Root Mean Squared Error", "Root Mean Squared Error"),
        ("Scored Rows", "scored_rows", "Scored Rows"),
    ],
)
def test_a_metric_in_two_columns_is_refused_naming_both(
    first: str, second: str, canonical: str
) -> None:
    message = _message(f"{first},Accuracy,{second}\n0.8,0.7,0.8\n")
    assert message == (
        f"the evaluation output: {canonical} appears more than once, as {first!r} and {second!r}"
    )


def test_a_metric_on_two_rows_of_a_metric_value_file_is_refused() -> None:
    message = _message("Metric,Value\nAUC,0.9\nArea Under Curve,0.8\n")
    assert message == (
        "the evaluation output: AUC appears more than once, as 'AUC' and 'Area Under Curve'"
    )


def test_every_repeated_metric_is_named() -> None:
    message = _message("F1,AUC,F-Score,Area Under Curve,F1 Score\n0.7,0.9,0.7,0.9,0.7\n")
    assert message == (
        "the evaluation output: F-Score appears more than once, as 'F1', 'F-Score' and "
        "'F1 Score'; AUC appears more than once, as 'AUC' and 'Area Under Curve'"
    )


# -- impossible values -----------------------------------------------------------------------

PROBABILITIES = ("Accuracy", "Precision", "Recall", "F-Score", "AUC")
ERRORS = (
    "Average Log Loss",
    "Mean Absolute Error",
    "Root Mean Squared Error",
    "Relative Absolute Error",
    "Relative Squared Error",
)


@pytest.mark.parametrize(
    ("metric", "cell", "value"),
    [
        *[(m, cell, float(cell)) for m in PROBABILITIES for cell in ("0", "1", "0.5", "1.0")],
        *[(m, cell, float(cell)) for m in ERRORS for cell in ("0", "0.0", "3.5", "1e6")],
        *[("Coefficient of Determination", cell, float(cell)) for cell in ("1", "0", "-42.5")],
        *[("Training Log Loss", cell, float(cell)) for cell in ("1", "-3.25")],
        *[("Negative Log Likelihood", cell, float(cell)) for cell in ("-1e3", "1e3")],
        ("AUC", "+.5", 0.5),
        ("AUC", "5E-1", 0.5),
    ],
)
def test_possible_values_are_read(metric: str, cell: str, value: float) -> None:
    assert EvaluationMetrics.from_csv(f"{metric}\n{cell}\n")[metric] == value


@pytest.mark.parametrize(
    ("metric", "cell", "wanted", "shown"),
    [
        *[(m, "-0.01", "between 0 and 1", "-0.01") for m in PROBABILITIES],
        *[(m, "1.01", "between 0 and 1", "1.01") for m in PROBABILITIES],
        *[(m, "-1e-09", "of at least 0", "-1e-09") for m in ERRORS],
        ("Coefficient of Determination", "1.0001", "of at most 1", "1.0001"),
        ("Training Log Loss", "1.5", "of at most 1", "1.5"),
    ],
)
def test_an_impossible_value_names_the_metric_the_value_and_the_range(
    metric: str, cell: str, wanted: str, shown: str
) -> None:
    assert _message(f"Scored dataset,{metric}\nmine,{cell}\n") == (
        f"evaluation column {metric!r}: must be a finite number {wanted}, not {shown}"
    )


@pytest.mark.parametrize(
    ("column", "canonical", "cell", "wanted"),
    [
        ("Area Under Curve", "AUC", "1.5", "between 0 and 1, not 1.5"),
        ("F1", "F-Score", "-0.5", "between 0 and 1, not -0.5"),
        ("MAE", "Mean Absolute Error", "-2", "of at least 0, not -2.0"),
        ("R²", "Coefficient of Determination", "2", "of at most 1, not 2.0"),
    ],
)
def test_an_impossible_value_under_an_alias_names_both_names(
    column: str, canonical: str, cell: str, wanted: str
) -> None:
    assert _message(f"{column}\n{cell}\n") == (
        f"evaluation column {column!r} ({canonical}): must be a finite number {wanted}"
    )


@pytest.mark.parametrize("cell", ["8.7%", "87%", "NaN", "nan", "inf", "-Infinity", "1e999", ""])
def test_a_known_metric_that_is_not_a_finite_number_is_refused(cell: str) -> None:
    assert _message(f"AUC,Accuracy\n0.9,{cell}\n") == (
        "evaluation column 'Accuracy': must be a finite number between 0 and 1, "
        f"not the string {cell!r}"
    )


def test_a_percent_in_a_metric_value_file_is_refused() -> None:
    assert _message("Metric,Value\nAUC,0.9\nAccuracy,8.7%\n") == (
        "evaluation column 'Accuracy': must be a finite number between 0 and 1, "
        "not the string '8.7%'"
    )


def test_a_missing_cell_of_a_known_metric_is_refused() -> None:
    assert _message("Accuracy,AUC\n0.9\n") == (
        "evaluation column 'AUC': must be a finite number between 0 and 1, not the string ''"
    )


@pytest.mark.parametrize("cell", ["8.7%", "nan", "inf", "1e999", "1_000", "0x10", ">50K"])
def test_other_columns_that_are_not_plain_numbers_are_kept_as_text(cell: str) -> None:
    parsed = EvaluationMetrics.from_csv(f"AUC,Positive Label\n0.9,{cell}\n")
    assert parsed.as_dict() == {"AUC": 0.9}
    assert parsed.text == {"Positive Label": cell}


def test_only_the_first_row_is_checked() -> None:
    parsed = EvaluationMetrics.from_csv("AUC\n0.9\n1.5\n")
    assert parsed.as_dict() == {"AUC": 0.9}
    assert parsed.rows == (("0.9",), ("1.5",))


def test_refusals_are_typed_configuration_errors() -> None:
    with pytest.raises(AmlRetrainError):
        EvaluationMetrics.from_csv("AUC\n8.7%\n")
    with pytest.raises(ConfigurationError, match="holds no numeric metric"):
        EvaluationMetrics.from_csv("Positive Label\n8.7%\n")
