"""The gate: thresholds, error-like metrics, beating the incumbent, bad rules."""

from __future__ import annotations

import pytest

from amlretrain import ConfigurationError, GateRejected
from amlretrain.gate import Gate, lower_is_better

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
