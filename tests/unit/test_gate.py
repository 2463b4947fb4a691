"""The gate: thresholds, error-like metrics, beating the incumbent, bad rules, metric names."""

from __future__ import annotations

import itertools
import sys

import pytest

from amlretrain import ConfigurationError, GateRejected, metrics
from amlretrain.config import parse_config
from amlretrain.evaluation import EvaluationMetrics
from amlretrain.gate import Gate, lower_is_better

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV = {"TRAIN_KEY": "k", "STORAGE": "UseDevelopmentStorage=true", "WS_TOKEN": "t"}
RETRAIN_TOML = """
[training]
api_location = "https://ussouthcentral.services.azureml.net/workspaces/ws/services/train"
api_key_env = "TRAIN_KEY"
data = "new.csv"

[storage]
connection_string_env = "STORAGE"

[gate]
thresholds = { {gate} }

[[targets]]
kind = "classic"
workspace_id = "ws"
token_env = "WS_TOKEN"
web_service_id = "svc"
endpoint = "retrain"
"""

METRICS = {"AUC": 0.85, "Accuracy": 0.8, "Average Log Loss": 0.4, "F1 Score": 0.5}


def test_thresholds_pass_and_fail() -> None:
    assert Gate(thresholds={"AUC": 0.8, "accuracy": 0.75}).decide(METRICS).passed
    decision = Gate(thresholds={"AUC": 0.9}).decide(METRICS)
    assert not decision.passed
    assert decision.reasons == ("AUC 0.85 is not >= 0.9",)


def test_error_like_metrics_are_maxima() -> None:
    assert lower_is_better("Average Log Loss")
    assert lower_is_better("Root Mean Squared Error")
    assert not lower_is_better("AUC")
    assert Gate(thresholds={"Average Log Loss": 0.5}).decide(METRICS).passed
    assert not Gate(thresholds={"Average Log Loss": 0.3}).decide(METRICS).passed
    assert Gate(thresholds={"F1 Score": ("max", 0.6)}).decide(METRICS).passed
    assert not Gate(thresholds={"f1score": {"min": 0.6}}).decide(METRICS).passed


def test_missing_metric_is_a_rejection_naming_what_exists() -> None:
    decision = Gate(thresholds={"Recall": 0.5}).decide(METRICS)
    assert not decision.passed
    assert "Recall is not in the evaluation" in decision.reasons[0]
    assert "AUC" in decision.reasons[0]


def test_beat_incumbent_with_margin() -> None:
    gate = Gate(beat_incumbent=["AUC", "Average Log Loss"], margin=0.01)
    assert gate.decide(METRICS, incumbent={"AUC": 0.83, "Average Log Loss": 0.45}).passed
    decision = gate.decide(METRICS, incumbent={"AUC": 0.845, "Average Log Loss": 0.45})
    assert decision.reasons == ("AUC 0.85 does not beat the incumbent 0.845",)
    worse_loss = gate.decide(METRICS, incumbent={"AUC": 0.5, "Average Log Loss": 0.405})
    assert not worse_loss.passed


def test_no_incumbent_is_skipped_or_required() -> None:
    skipped = Gate(beat_incumbent="AUC").decide(METRICS)
    assert skipped.passed
    assert skipped.checks[0].startswith("skip")
    assert not Gate(beat_incumbent="AUC", require_incumbent=True).decide(METRICS).passed


def test_rejection_raises_with_reasons() -> None:
    decision = Gate(thresholds={"AUC": 0.9}).decide(METRICS)
    with pytest.raises(GateRejected) as info:
        decision.raise_if_rejected(METRICS)
    assert info.value.reasons == decision.reasons
    assert info.value.metrics["AUC"] == 0.85


@pytest.mark.parametrize("rule", [True, "high", ("between", 1), [1, 2, 3], {"min": 1, "max": 2}])
def test_bad_threshold_rules_are_configuration_errors(rule: object) -> None:
    with pytest.raises(ConfigurationError, match="AUC"):
        Gate(thresholds={"AUC": rule})


def test_empty_gate_passes_everything() -> None:
    assert Gate().is_empty
    assert Gate().decide({}).passed


# -- metric names: one normaliser with the evaluation parser ---------------------------------

#: Every spelling of each metric the issue names, Studio's first.
SPELLINGS = (
    ("F-Score", "F1", "F1 Score", "f1_score"),
    ("AUC", "Area Under Curve", "area-under-curve"),
    ("Mean Absolute Error", "MAE"),
    ("Root Mean Squared Error", "RMSE"),
    ("Relative Absolute Error", "RAE"),
    ("Relative Squared Error", "RSE"),
    ("Coefficient of Determination", "R2", "R²"),
)
ALIAS_PAIRS = [pair for group in SPELLINGS for pair in itertools.permutations(group, 2)]


@pytest.mark.parametrize(("threshold", "column"), ALIAS_PAIRS)
def test_a_threshold_under_one_alias_reads_a_csv_column_under_another(
    threshold: str, column: str
) -> None:
    parsed = EvaluationMetrics.from_csv(f"{column}\n0.25\n").as_dict()
    kind = "max" if lower_is_better(threshold) else "min"
    sign = "<=" if kind == "max" else ">="
    decision = Gate(thresholds={threshold: (kind, 0.25)}).decide(parsed)
    assert decision.checks == (f"ok   {threshold} ({column}) 0.25 {sign} 0.25",)
    assert lower_is_better(threshold) is lower_is_better(column)


@pytest.mark.parametrize(("recorded", "new"), ALIAS_PAIRS)
def test_an_incumbent_recorded_under_one_alias_is_compared_with_another(
    recorded: str, new: str
) -> None:
    worse = 0.3 if lower_is_better(new) else 0.1
    decision = Gate(beat_incumbent=new).decide({new: worse}, incumbent={recorded: 0.2})
    assert decision.checks == (f"FAIL {new} {worse:g} vs incumbent 0.2",)


def test_a_ledger_written_before_compares_auc_with_area_under_curve() -> None:
    new = EvaluationMetrics.from_csv("Area Under Curve,Accuracy\n0.91,0.8\n").as_dict()
    gate = Gate(thresholds={"AUC": 0.9}, beat_incumbent=["auc"])
    decision = gate.decide(new, incumbent={"AUC": 0.9, "Accuracy": 0.8})
    assert decision.passed
    assert decision.checks == (
        "ok   AUC (Area Under Curve) 0.91 >= 0.9",
        "ok   auc 0.91 vs incumbent 0.9",
    )


def test_an_alias_added_to_the_table_reaches_the_parser_and_the_gate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    auc = metrics.find_metric("AUC")
    monkeypatch.setitem(metrics._BY_KEY, "areaundertheroc", auc)
    parsed = EvaluationMetrics.from_csv("Area under the ROC\n0.95\n")
    assert Gate(thresholds={"AUC": 0.9}).decide(parsed.as_dict()).passed
    with pytest.raises(ConfigurationError, match="AUC appears more than once"):
        EvaluationMetrics.from_csv("AUC,Area under the ROC\n0.9,0.9\n")
    with pytest.raises(ConfigurationError, match="AUC appears more than once"):
        Gate(thresholds={"AUC": 0.9, "area under the roc": 0.8})


# -- thresholds that cannot hold --------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "rule", "message"),
    [
        ("AUC", 1.5, "'AUC': must be a finite number between 0 and 1, not 1.5"),
        ("AUC", ("max", -0.1), "'AUC': must be a finite number between 0 and 1, not -0.1"),
        ("Accuracy", {"min": 1.01}, "'Accuracy': must be a finite number between 0 and 1, not 1.01"),
        ("Precision", -1, "'Precision': must be a finite number between 0 and 1, not -1.0"),
        ("Recall", 2, "'Recall': must be a finite number between 0 and 1, not 2.0"),
        ("F1", 1.1, "'F1' (F-Score): must be a finite number between 0 and 1, not 1.1"),
        ("Area Under Curve", -0.5, "'Area Under Curve' (AUC): must be a finite number between 0 and 1, not -0.5"),
        ("MAE", -1, "'MAE' (Mean Absolute Error): must be a finite number of at least 0, not -1.0"),
        ("rmse", ("max", -0.01), "'rmse' (Root Mean Squared Error): must be a finite number of at least 0, not -0.01"),
        ("Average Log Loss", -0.2, "'Average Log Loss': must be a finite number of at least 0, not -0.2"),
        ("R²", ("min", 1.5), "'R²' (Coefficient of Determination): must be a finite number of at most 1, not 1.5"),
        ("Training Log Loss", 1.1, "'Training Log Loss': must be a finite number of at most 1, not 1.1"),
        ("AUC", float("nan"), "'AUC': must be a finite number between 0 and 1, not nan"),
        ("MAE", float("inf"), "'MAE' (Mean Absolute Error): must be a finite number of at least 0, not inf"),
        ("Scored Rows", float("-inf"), "'Scored Rows': must be a finite number, not -inf"),
    ],
)  # fmt: skip
def test_an_impossible_threshold_names_the_metric_and_the_range(
    metric: str, rule: object, message: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Gate(thresholds={metric: rule})
    assert info.value.message == f"gate threshold for {message}"


@pytest.mark.parametrize(
    ("metric", "rule"),
    [
        ("AUC", 0), ("AUC", 1), ("Accuracy", ("max", 0.0)), ("F-Score", {"min": 1.0}),
        ("MAE", 0), ("RSE", 1e9), ("R2", 1), ("R2", -1e6), ("Training Log Loss", -2),
        ("Negative Log Likelihood", -50), ("Scored Rows", -3),
    ],
)  # fmt: skip
def test_thresholds_on_the_bounds_are_accepted(metric: str, rule: object) -> None:
    assert not Gate(thresholds={metric: rule}).is_empty


def test_an_impossible_threshold_in_retrain_toml_names_the_file_and_the_metric() -> None:
    document = tomllib.loads(RETRAIN_TOML.replace("{gate}", '"Area Under Curve" = 1.5'))
    with pytest.raises(ConfigurationError) as info:
        parse_config(document, source="retrain.toml", environ=ENV)
    assert info.value.message == (
        "retrain.toml: gate.thresholds: gate threshold for 'Area Under Curve' (AUC): "
        "must be a finite number between 0 and 1, not 1.5"
    )
    fine = tomllib.loads(RETRAIN_TOML.replace("{gate}", "R2 = -0.5"))
    assert parse_config(fine, source="retrain.toml", environ=ENV).gate.thresholds == {"R2": -0.5}


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"AUC": 0.8, "Area Under Curve": 0.9}, "AUC appears more than once, as 'AUC' and 'Area Under Curve'"),
        ({"F1": 0.5, "f-score": ("max", 0.9)}, "F-Score appears more than once, as 'F1' and 'f-score'"),
        ({"R2": 0.5, "R²": 0.6}, "Coefficient of Determination appears more than once, as 'R2' and 'R²'"),
    ],
)  # fmt: skip
def test_a_metric_with_two_thresholds_is_refused(
    thresholds: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Gate(thresholds=thresholds)
    assert info.value.message == f"gate thresholds: {message}"


def test_a_metric_named_twice_in_beat_incumbent_is_refused() -> None:
    with pytest.raises(ConfigurationError) as info:
        Gate(beat_incumbent=["RMSE", "Root Mean Squared Error"])
    assert info.value.message == (
        "gate beat_incumbent: Root Mean Squared Error appears more than once, "
        "as 'RMSE' and 'Root Mean Squared Error'"
    )


# -- metrics given to decide() -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"AUC": 1.5}, "the new model's 'AUC': must be a finite number between 0 and 1, not 1.5"),
        ({"Accuracy": "8.7%"}, "the new model's 'Accuracy': must be a finite number between 0 and 1, not the string '8.7%'"),
        ({"MAE": -1.0}, "the new model's 'MAE' (Mean Absolute Error): must be a finite number of at least 0, not -1.0"),
        ({"AUC": 0.9, "Area Under Curve": 0.8}, "the new model's metrics: AUC appears more than once, as 'AUC' and 'Area Under Curve'"),
        ({"AUC": 0.9, "Scored Rows": float("nan")}, "the new model's 'Scored Rows': must be a finite number, not nan"),
    ],
)  # fmt: skip
def test_impossible_new_metrics_are_refused(given: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Gate(thresholds={"AUC": 0.5}).decide(given)
    assert info.value.message == message


@pytest.mark.parametrize(
    ("recorded", "line"),
    [
        ({"AUC": 87.0}, "the incumbent's recorded 'AUC': must be a finite number between 0 and 1, not 87.0: it cannot be compared"),
        ({"AUC": 0.8, "Area Under Curve": 0.8}, "the incumbent's recorded metrics: AUC appears more than once, as 'AUC' and 'Area Under Curve': it cannot be compared"),
    ],
)  # fmt: skip
def test_an_incumbent_record_that_cannot_be_compared_fails_its_check(
    recorded: dict[str, float], line: str
) -> None:
    decision = Gate(beat_incumbent="AUC").decide({"AUC": 0.9}, incumbent=recorded)
    assert not decision.passed
    assert decision.reasons == (line,)
    assert decision.checks == ("FAIL " + line,)
