"""amlretrain.alarms: a probe round's figures, built-in and callable alarms, their evidence."""

from __future__ import annotations

import doctest
import json
import logging
import math
import random
import re
import sys
from pathlib import Path
from typing import Any

import pytest

import amlretrain._hooks
import amlretrain.alarms
from amlretrain.alarms import (
    Alarm,
    AlarmContext,
    CallableAlarm,
    Fired,
    Observation,
    alarm_from_mapping,
    evaluate,
    observe,
    unmeasured,
)
from amlretrain.errors import ConfigurationError
from tests.conftest import REPO
from tests.unit import _alarm_hooks
from tests.unit.test_docs_examples import python_blocks

HOOKS = "tests.unit._alarm_hooks"
CONTEXT = AlarmContext(
    run_id="run-1",
    stage="bake",
    targets=["classic:w/s/e"],
    model="https://a.blob.core.windows.net/m/v2.ilearner?sv=1&sig=s3cr3t",
    wave=2,
)


def _round(**figures: Any) -> Observation:
    base: dict[str, Any] = {"stage": "bake", "rows": 100, "errors": 0, "error_rate": 0.0}
    return Observation(**{**base, **figures})


# -- built-in alarms ---------------------------------------------------------------------------

THRESHOLDS = {"error_rate": 0.05, "p95_ms": 200.0, "changed_labels": 0.1, "psi": 0.25}


@pytest.mark.parametrize("metric", sorted(THRESHOLDS))
def test_a_metric_fires_strictly_above_its_threshold(metric: str) -> None:
    threshold = THRESHOLDS[metric]
    alarm = Alarm(metric=metric, threshold=threshold)
    above = threshold * 1.01 if threshold < 1 else threshold + 0.5
    fired = alarm.evaluate(_round(**{metric: above}), CONTEXT)
    assert fired is not None
    assert (fired.alarm, fired.value, fired.threshold) == (metric, above, threshold)
    assert metric in fired.message and "above its threshold" in fired.message
    assert fired.evidence["alarm"] == metric
    assert fired.evidence["value"] == above and fired.evidence["threshold"] == threshold
    for value in (threshold, threshold * 0.99, 0.0):
        assert alarm.evaluate(_round(**{metric: value}), CONTEXT) is None, value


@pytest.mark.parametrize("metric", ["p95_ms", "changed_labels", "psi"])
def test_a_metric_not_measured_does_not_fire_but_is_named(
    metric: str, caplog: pytest.LogCaptureFixture
) -> None:
    alarm = Alarm(metric=metric, threshold=THRESHOLDS[metric], name=f"my-{metric}")
    observation = _round(**{metric: None})
    assert alarm.measure(observation) is None
    assert alarm.evaluate(observation, CONTEXT) is None
    assert unmeasured([alarm, Alarm(metric="error_rate", threshold=0.5)], observation) == [
        f"my-{metric}"
    ]
    with caplog.at_level(logging.INFO, logger="amlretrain.alarms"):
        assert evaluate([alarm], observation, CONTEXT) == []
    assert f"my-{metric}" in caplog.text and "not measured" in caplog.text


@pytest.mark.parametrize(
    ("metric", "threshold", "said"),
    [
        ("error_rate", 1.5, "between 0 and 1"),
        ("error_rate", -0.1, "between 0 and 1"),
        ("changed_labels", 2, "between 0 and 1"),
        ("p95_ms", 0, "above 0 ms"),
        ("p95_ms", -5, "at least 0"),
        ("psi", -0.01, "at least 0"),
        ("psi", math.inf, "at least 0"),
        ("psi", math.nan, "at least 0"),
        ("psi", True, "a boolean"),
        ("psi", "0.2", "the string"),
    ],
)
def test_a_threshold_is_checked_for_its_metric(metric: str, threshold: Any, said: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{metric}: threshold: .*{said}"):
        Alarm(metric=metric, threshold=threshold)


def test_a_threshold_at_the_edge_of_its_range_is_accepted() -> None:
    assert Alarm(metric="error_rate", threshold=0).threshold == 0.0
    assert Alarm(metric="changed_labels", threshold=1).threshold == 1.0
    assert Alarm(metric="psi", threshold=0).threshold == 0.0
    assert Alarm(metric="p95_ms", threshold=1).threshold == 1.0


def test_an_unknown_metric_or_empty_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="metric: must be one of error_rate, p95_ms"):
        Alarm(metric="latency", threshold=1)
    with pytest.raises(ConfigurationError, match="name: must be a non-empty string"):
        Alarm(metric="psi", threshold=1, name=" ")


def test_the_name_defaults_to_the_metric() -> None:
    assert Alarm(metric="psi", threshold=0.2).name == "psi"
    assert Alarm(metric="psi", threshold=0.2, name="drift").name == "drift"


# -- observe -----------------------------------------------------------------------------------


def test_observe_computes_the_figures_of_known_inputs() -> None:
    incumbent = [0.25] * 50 + [0.75] * 50
    candidate = [0.25] * 80 + [0.75] * 20
    observation = observe(
        stage="shadow",
        incumbent_scores=incumbent,
        candidate_scores=candidate,
        incumbent_labels=["0"] * 50 + ["1"] * 50,
        candidate_labels=["0"] * 80 + ["1"] * 20,  # 30 of the 100 rows changed label
        errors=0,
        latencies_ms=[10, 20, 30, 40, 50],
    )
    assert observation.stage == "shadow"
    assert (observation.rows, observation.errors, observation.error_rate) == (100, 0, 0.0)
    assert observation.changed_labels == pytest.approx(0.3)
    assert observation.agreement == pytest.approx(0.7)
    # p95 of 10..50: position 4 * 0.95 = 3.8, so 40 + 0.8 * 10
    assert observation.p95_ms == pytest.approx(48.0)
    # deciles of the incumbent give the edges 0.25, 0.5, 0.75: shares 0.5/0/0.5/0 (floored
    # at 1e-4) against 0.8/0/0.2/0, so PSI = 0.3 ln(0.8/0.5) + (-0.3) ln(0.2/0.5) = 0.3 ln 4
    assert observation.psi == pytest.approx(0.3 * math.log(4))
    assert observation.incumbent is not None and observation.incumbent.n == 100
    assert observation.candidate is not None and observation.candidate.mean == pytest.approx(0.35)
    assert observation.histogram is not None
    assert observation.histogram["edges"] == [k / 10 for k in range(11)]
    assert observation.histogram["incumbent"] == [0, 0, 50, 0, 0, 0, 0, 50, 0, 0]
    assert observation.histogram["candidate"] == [0, 0, 80, 0, 0, 0, 0, 20, 0, 0]


def test_the_histogram_bins_over_zero_to_one_with_the_last_bin_closed() -> None:
    observation = observe(
        stage="bake", incumbent_scores=None, candidate_scores=[0.0, 0.1, 0.3, 0.99, 1.0]
    )
    assert observation.histogram is not None
    assert observation.histogram["candidate"] == [1, 1, 0, 1, 0, 0, 0, 0, 0, 2]
    assert observation.histogram["incumbent"] is None


def test_scores_outside_zero_to_one_have_no_histogram_but_their_quantiles() -> None:
    observation = observe(stage="bake", incumbent_scores=[1.0, 2.0], candidate_scores=[3.0, 40.0])
    assert observation.histogram is None
    evidence = observation.to_evidence()
    assert "histogram" not in evidence["candidate"]
    assert len(evidence["candidate"]["quantiles"]) == 5


def test_a_bake_round_without_a_baseline_has_no_psi_nor_changed_labels() -> None:
    baselines: tuple[list[float] | None, ...] = (None, [])
    for baseline in baselines:
        observation = observe(
            stage="bake",
            incumbent_scores=baseline,
            candidate_scores=[0.2, 0.8],
            candidate_labels=["0", "1"],
        )
        assert observation.psi is None and observation.incumbent is None
        assert observation.changed_labels is None and observation.agreement is None
        assert observation.candidate is not None and observation.rows == 2
        assert observation.p95_ms is None


def test_a_round_where_every_request_failed() -> None:
    observation = observe(stage="bake", incumbent_scores=[0.5], candidate_scores=[], errors=4)
    assert (observation.rows, observation.errors, observation.error_rate) == (0, 4, 1.0)
    assert observation.candidate is None and observation.psi is None
    assert observation.changed_labels is None
    evidence = observation.to_evidence()
    assert evidence["candidate"] is None and evidence["error_rate"] == 1.0
    fired = Alarm(metric="error_rate", threshold=0.5).evaluate(observation, CONTEXT)
    assert fired is not None and fired.value == 1.0


def test_error_rate_is_errors_over_requests() -> None:
    default = observe(stage="bake", incumbent_scores=None, candidate_scores=[0.5] * 9, errors=1)
    assert default.error_rate == pytest.approx(0.1)  # requests = rows + errors = 10
    given = observe(
        stage="bake", incumbent_scores=None, candidate_scores=[0.5] * 9, errors=1, requests=4
    )
    assert given.error_rate == pytest.approx(0.25)  # 4 requests of several rows, 1 failed
    nothing = observe(stage="bake", incumbent_scores=None, candidate_scores=[])
    assert (nothing.rows, nothing.error_rate) == (0, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        ({"stage": "canary"}, "stage: must be one of shadow, bake"),
        ({"errors": -1}, "errors: must be an integer"),
        ({"errors": 1.5}, "errors: must be an integer"),
        ({"errors": 5, "requests": 3}, "requests: must be an integer between 5"),
        ({"candidate_scores": [0.1, math.nan]}, "candidate_scores: scores are finite"),
        ({"incumbent_scores": [math.inf]}, "incumbent_scores: scores are finite"),
        ({"candidate_scores": ["0.3"]}, "candidate_scores: scores are numbers, not str"),
        ({"latencies_ms": [-1.0]}, "latencies_ms: must be a finite number of at least 0"),
        ({"candidate_labels": ["0"]}, "candidate_labels: 1 labels for 2 scored rows"),
        (
            {"incumbent_labels": ["0"], "candidate_labels": ["0", "1"]},
            "the same rows scored by both",
        ),
    ],
)
def test_observe_refuses_bad_inputs(kwargs: dict[str, Any], said: str) -> None:
    arguments: dict[str, Any] = {
        "stage": "bake",
        "incumbent_scores": [0.1, 0.2],
        "candidate_scores": [0.1, 0.2],
        **kwargs,
    }
    with pytest.raises(ConfigurationError, match=said):
        observe(**arguments)


# -- evidence ----------------------------------------------------------------------------------


def test_the_evidence_has_the_rollout_records_shape() -> None:
    observation = observe(
        stage="shadow",
        incumbent_scores=[0.1, 0.4, 0.6],
        candidate_scores=[0.2, 0.5, 0.9],
        incumbent_labels=["0", "0", "1"],
        candidate_labels=["0", "1", "1"],
        errors=1,
        latencies_ms=[12.0, 15.0],
    )
    evidence = observation.to_evidence()
    assert set(evidence) == {
        "rows",
        "incumbent",
        "candidate",
        "agreement",
        "psi",
        "error_rate",
        "p95_ms",
    }
    for side in ("incumbent", "candidate"):
        assert set(evidence[side]) == {"n", "mean", "quantiles", "histogram"}
        assert set(evidence[side]["histogram"]) == {"edges", "counts"}
        assert len(evidence[side]["histogram"]["edges"]) == 11
        assert sum(evidence[side]["histogram"]["counts"]) == 3
        assert len(evidence[side]["quantiles"]) == 5
    assert evidence["agreement"] == pytest.approx(2 / 3)
    assert evidence["error_rate"] == pytest.approx(0.25)
    assert json.loads(json.dumps(evidence, allow_nan=False)) == evidence
    fired = Alarm(metric="changed_labels", threshold=0.1).evaluate(observation, CONTEXT)
    assert fired is not None
    assert fired.to_evidence() == {
        "alarm": "changed_labels",
        "value": pytest.approx(1 / 3),
        "threshold": 0.1,
        **evidence,
    }


def test_no_raw_score_reaches_the_evidence() -> None:
    rng = random.Random(7)
    incumbent = [rng.random() for _ in range(1000)]
    candidate = [rng.random() for _ in range(1000)]
    observation = observe(stage="bake", incumbent_scores=incumbent, candidate_scores=candidate)
    fired = Alarm(metric="psi", threshold=0).evaluate(observation, CONTEXT)
    assert fired is not None
    text = json.dumps(fired.to_evidence())
    leaked = [s for s in (*incumbent, *candidate) if repr(s) in text]
    assert leaked == []
    assert len(text) < 2000  # summaries: a few dozen numbers, not 2,000 scores


def test_to_evidence_is_a_copy() -> None:
    observation = observe(stage="bake", incumbent_scores=None, candidate_scores=[0.5])
    fired = Alarm(metric="error_rate", threshold=0).evaluate(
        _round(error_rate=0.5, candidate=observation.candidate), CONTEXT
    )
    assert fired is not None
    fired.to_evidence()["alarm"] = "changed"
    assert fired.to_evidence()["alarm"] == "error_rate"


def test_the_context_keeps_no_sas_and_takes_any_sequence_of_targets() -> None:
    assert CONTEXT.model == "https://a.blob.core.windows.net/m/v2.ilearner"
    assert CONTEXT.targets == ("classic:w/s/e",)


# -- callable alarms ---------------------------------------------------------------------------


def test_a_quiet_callable_gets_the_round_and_its_context() -> None:
    _alarm_hooks.SEEN.clear()
    observation = _round(psi=0.1)
    assert CallableAlarm(spec=f"{HOOKS}:quiet").evaluate(observation, CONTEXT) is None
    assert len(_alarm_hooks.SEEN) == 1
    assert _alarm_hooks.SEEN[0] == (observation, CONTEXT)
    assert CallableAlarm(spec=f"{HOOKS}:quiet_false").evaluate(observation, CONTEXT) is None


def test_a_callable_fires_with_true_a_reason_or_a_mapping() -> None:
    observation = _round(psi=0.7)
    fired = CallableAlarm(spec=f"{HOOKS}:fires_true").evaluate(observation, CONTEXT)
    assert fired is not None and fired.alarm == f"{HOOKS}:fires_true"
    assert (fired.value, fired.threshold) == (None, None)
    assert fired.evidence["psi"] == 0.7

    fired = CallableAlarm(spec=f"{HOOKS}:fires_reason", name="errors").evaluate(
        observation, CONTEXT
    )
    assert fired is not None and fired.alarm == "errors"
    assert fired.message == "alarm errors: too many errors in bake of run-1"

    fired = CallableAlarm(spec=f"{HOOKS}:fires_mapping", name="conversion").evaluate(
        observation, CONTEXT
    )
    assert fired is not None
    assert (fired.value, fired.threshold) == (0.02, 0.05)
    assert fired.message == "alarm conversion: conversion fell"
    evidence = fired.to_evidence()
    assert (evidence["alarm"], evidence["value"], evidence["threshold"]) == (
        "conversion",
        0.02,
        0.05,
    )
    assert evidence["details"] == {"store": "metrics-db", "token": "REDACTED"}
    assert "s3cr3t" not in json.dumps(evidence)


def test_a_callable_can_read_the_round() -> None:
    alarm = CallableAlarm(spec=f"{HOOKS}:fires_when_psi_high")
    assert alarm.evaluate(_round(psi=0.2), CONTEXT) is None
    fired = alarm.evaluate(_round(psi=0.9), CONTEXT)
    assert fired is not None and fired.message.endswith("psi 0.90")


def test_a_dotted_attribute_after_the_colon_is_found() -> None:
    fired = CallableAlarm(spec=f"{HOOKS}:Monitor.check").evaluate(_round(), CONTEXT)
    assert fired is not None


@pytest.mark.parametrize(
    ("function", "said"),
    [
        ("raises", "RuntimeError: metrics store down: https://m.example.com/q?sig=REDACTED"),
        ("returns_number", "it returned int 1; expected None or False (quiet), True"),
        ("returns_bad_value", "its value is 'high', not a finite number"),
    ],
)
def test_a_callable_that_fails_or_answers_nonsense_fires(function: str, said: str) -> None:
    fired = CallableAlarm(spec=f"{HOOKS}:{function}").evaluate(_round(), CONTEXT)
    assert fired is not None
    assert "the alarm could not be evaluated: " in fired.message
    assert said in fired.message
    assert "s3cr3t" not in fired.message and "s3cr3t" not in json.dumps(fired.to_evidence())


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("tests.unit._alarm_hooks.quiet", 'not "package.module:function" \\(no colon\\)'),
        ("tests.unit._alarm_hooks:", "dotted Python names on each side"),
        (":quiet", "dotted Python names on each side"),
        ("a:b:c", "dotted Python names on each side"),
        ("no_such_monitor_pkg.sub:check", "no module named 'no_such_monitor_pkg'"),
        ("tests.unit._no_such_hooks:check", "no module named 'tests.unit._no_such_hooks'"),
        ("tests.unit._alarm_hooks:nope", "'tests.unit._alarm_hooks' has no attribute 'nope'"),
        (
            "tests.unit._alarm_hooks:Monitor.nope",
            "'tests.unit._alarm_hooks.Monitor' has no attribute 'nope'",
        ),
        ("tests.unit._alarm_hooks:NOT_CALLABLE", "is int 42, not a function"),
    ],
)
def test_a_bad_spec_is_refused_naming_it_and_where(spec: str, said: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        CallableAlarm(spec=spec, where="retrain.toml [[rollout.alarms]] #2")
    message = caught.value.message
    assert message.startswith(f"retrain.toml [[rollout.alarms]] #2: {spec!r}: "), message
    assert caught.match(said)


def test_a_module_that_raises_on_import_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_monitor_for_tests.py").write_text(
        "import missing_dependency_for_tests\n", encoding="utf-8"
    )
    (tmp_path / "raising_monitor_for_tests.py").write_text(
        "raise RuntimeError('no config: AccountKey=c2VjcmV0')\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("broken_monitor_for_tests", "raising_monitor_for_tests"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ConfigurationError, match="importing 'broken_monitor_for_tests' failed: "):
        CallableAlarm(spec="broken_monitor_for_tests:check")
    with pytest.raises(ConfigurationError) as caught:
        CallableAlarm(spec="raising_monitor_for_tests:check")
    assert "RuntimeError: no config: AccountKey=REDACTED" in caught.value.message


def test_a_spec_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(
        ConfigurationError, match=r'#1: must be a "package\.module:function" string'
    ):
        amlretrain._hooks.load_callable(42, where="#1")


# -- from retrain.toml -------------------------------------------------------------------------

WHERE = "retrain.toml [[rollout.alarms]] #2"


def test_alarm_from_mapping_reads_both_forms() -> None:
    assert alarm_from_mapping({"metric": "psi", "threshold": 0.25}, where=WHERE) == Alarm(
        metric="psi", threshold=0.25
    )
    named = alarm_from_mapping({"metric": "p95_ms", "threshold": 800, "name": "slow"}, where=WHERE)
    assert named == Alarm(metric="p95_ms", threshold=800.0, name="slow")
    check = alarm_from_mapping({"check": f"{HOOKS}:fires_true"}, where=WHERE)
    assert isinstance(check, CallableAlarm) and check.name == f"{HOOKS}:fires_true"
    named_check = alarm_from_mapping({"check": f"{HOOKS}:quiet", "name": "store"}, where=WHERE)
    assert isinstance(named_check, CallableAlarm) and named_check.name == "store"


@pytest.mark.parametrize(
    ("table", "said"),
    [
        (
            {"metric": "psi", "threshold": 0.2, "treshold": 1},
            "unknown key treshold \\(a typo\\?\\)",
        ),
        ({"check": f"{HOOKS}:quiet", "when": 1, "why": 2}, "unknown keys when, why"),
        (
            {"metric": "psi", "threshold": 0.2, "check": f"{HOOKS}:quiet"},
            "check, metric, threshold: an alarm is either metric \\+ threshold or check, not both",
        ),
        ({"threshold": 0.2, "check": f"{HOOKS}:quiet"}, "not both"),
        ({}, "an alarm needs metric \\+ threshold .* given: no keys"),
        ({"name": "x"}, "an alarm needs metric \\+ threshold .* given: name"),
        ({"metric": "psi"}, "threshold: required with metric"),
        ({"threshold": 0.2}, "metric: required with threshold"),
        ({"metric": "psi", "threshold": -1}, "psi: threshold: must be a finite number"),
        ({"metric": "latency", "threshold": 1}, "metric: must be one of"),
        ({"check": "tests.unit._alarm_hooks:nope"}, "check: 'tests.unit._alarm_hooks:nope': "),
        ({"check": 3}, 'check: must be a "package.module:function" string'),
    ],
)
def test_alarm_from_mapping_refuses_bad_tables(table: dict[str, Any], said: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        alarm_from_mapping(table, where=WHERE)
    assert caught.value.message.startswith(f"{WHERE}: "), caught.value.message
    assert caught.match(said)


def test_alarm_from_mapping_refuses_what_is_not_a_table() -> None:
    with pytest.raises(ConfigurationError, match=re.escape(f"{WHERE}: must be a table, not list")):
        alarm_from_mapping([1], where=WHERE)  # type: ignore[arg-type]


# -- evaluate ----------------------------------------------------------------------------------


def test_evaluate_runs_every_alarm_in_order() -> None:
    _alarm_hooks.SEEN.clear()
    alarms: list[Alarm | CallableAlarm] = [
        Alarm(metric="psi", threshold=0.25, name="drift"),
        CallableAlarm(spec=f"{HOOKS}:quiet"),
        Alarm(metric="error_rate", threshold=0.01),
        CallableAlarm(spec=f"{HOOKS}:fires_reason", name="store"),
        Alarm(metric="p95_ms", threshold=500),
    ]
    observation = _round(psi=0.4, error_rate=0.02, p95_ms=100.0)
    fired = evaluate(alarms, observation, CONTEXT)
    assert [f.alarm for f in fired] == ["drift", "error_rate", "store"]
    assert all(isinstance(f, Fired) for f in fired)
    assert len(_alarm_hooks.SEEN) == 1  # the quiet callable ran although drift had fired
    assert evaluate([], observation, CONTEXT) == []


def test_a_fired_message_is_redacted() -> None:
    fired = Fired(alarm="a", value=None, threshold=None, message="see ?sv=1&sig=s3cr3t")
    assert fired.message == "see ?sv=1&sig=REDACTED"


def test_the_module_examples_run() -> None:
    for module in (amlretrain.alarms, amlretrain._hooks):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_the_docs_page_examples_run() -> None:
    blocks = python_blocks(REPO / "docs" / "alarms.md")
    assert len(blocks) == 2, "docs/alarms.md has two python examples"
    namespace: dict[str, Any] = {}
    for index, block in enumerate(blocks):
        exec(compile(block, f"docs/alarms.md[{index}]", "exec"), namespace)
