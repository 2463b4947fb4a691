"""A handwritten ledger for the evidence report's tests: every section of the report.

Two targets over three runs. The older runs deploy (and once refuse) models with their
metrics, so each target has a metric history; the last run is a guarded rollout: a gate,
a smoke test, a shadow comparison (one target's summaries with histograms, the other's
with quantiles only), a wave, bake rounds, an alarm that fired on the second target and
its rollback, and a notification. A third run, a plain deploy without a rollout, is
written after it (its report has a timeline and a metric history only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from amlretrain.ledger import Ledger
from amlretrain.records import Intent, JobRecord, LedgerEntry, RolloutEvent, RunStart

ARM = "arm:/subscriptions/0000/resourceGroups/rg/providers/Microsoft.MachineLearning/webServices/census"
CLASSIC = "classic:ws1/census-svc/default"
MODEL = "https://acct.blob.core.windows.net/models/{}/census.ilearner"

ROLLOUT_RUN = "run-20250302T100000000000Z-abc123"
PLAIN_RUN = "run-20250303T100000000000Z-def456"
OLD_RUNS = ("run-20250101T100000000000Z-000001", "run-20250201T100000000000Z-000002")


class _Clock:
    """Hands out increasing times of one day (the records' ``time``)."""

    def __init__(self, day: str) -> None:
        self.day = day
        self.second = 0

    def __call__(self) -> str:
        self.second += 7
        minutes, seconds = divmod(self.second, 60)
        return f"{self.day}T10:{minutes:02d}:{seconds:02d}.000Z"


def _histogram(shift: float) -> dict[str, Any]:
    edges = [round(i / 10, 1) for i in range(11)]
    base = [2, 5, 11, 19, 26, 24, 17, 10, 5, 1]
    counts = base[-int(shift * 10) :] + base[: -int(shift * 10)] if shift else base
    return {"edges": edges, "counts": counts}


def _summary(mean: float, shift: float = 0.0, *, histogram: bool = True) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "n": 120,
        "mean": mean,
        "quantiles": [mean - 0.3, mean - 0.12, mean, mean + 0.1, mean + 0.28],
    }
    if histogram:
        summary["histogram"] = _histogram(shift)
    return summary


def write_sample_ledger(path: Path, *, hostile_target: str | None = None) -> Ledger:
    """Write the sample ledger at ``path``; ``hostile_target`` replaces the classic
    target's key (to test escaping)."""
    classic = hostile_target or CLASSIC
    targets = (ARM, classic)
    ledger = Ledger(path)

    def put(record: Any, clock: _Clock) -> Any:
        record = attrs.evolve(record, time=clock())
        ledger.append(record)
        return record

    # the older runs: deployments with metrics (and one refusal by the gate)
    history = {
        OLD_RUNS[0]: ({"AUC": 0.81, "Accuracy": 0.76}, {"AUC": 0.79, "Accuracy": 0.75}, "v1"),
        OLD_RUNS[1]: ({"AUC": 0.84, "Accuracy": 0.78}, {"AUC": 0.77, "Accuracy": 0.74}, "v2"),
    }
    previous = MODEL.format("v0")
    for run_id, (arm_metrics, refused_metrics, version) in history.items():
        clock = _Clock(f"2025-{run_id[8:10]}-01")
        put(RunStart.new(run_id=run_id, command="retrain", targets=targets), clock)
        put(JobRecord.new(run_id=run_id, job_id=f"job-{version}", status="Finished"), clock)
        model = MODEL.format(version)
        for key in targets:
            intent = put(
                Intent.new(run_id=run_id, target=key, action="deploy",
                           previous_model=previous, new_model=model),
                clock,
            )  # fmt: skip
            put(
                LedgerEntry.new(
                    target=key, action="deploy", outcome="succeeded", previous_model=previous,
                    new_model=model, serving_model=model, metrics=arm_metrics, run_id=run_id,
                    intents=[intent.id], job_id=f"job-{version}",
                ),
                clock,
            )  # fmt: skip
        put(
            LedgerEntry.new(
                target=ARM, action="gate", outcome="rejected", new_model=MODEL.format("x"),
                metrics=refused_metrics, run_id=run_id, message="AUC fell by more than 0.01",
            ),
            clock,
        )  # fmt: skip
        previous = model

    # the guarded rollout
    clock = _Clock("2025-03-02")
    run = ROLLOUT_RUN
    candidate = MODEL.format("v3")
    put(RunStart.new(run_id=run, command="retrain", targets=targets), clock)
    put(JobRecord.new(run_id=run, job_id="job-v3", status="Submitted"), clock)
    put(JobRecord.new(run_id=run, job_id="job-v3", status="Finished"), clock)
    metrics = {"AUC": 0.86, "Accuracy": 0.8}
    gates = {
        ARM: {"champion": 0.84, "challenger": 0.86, "difference": 0.02, "lower": 0.006,
              "upper": 0.034},
        # an older writer: no difference, no upper bound (the report computes/omits them)
        classic: {"champion": 0.84, "challenger": 0.86, "lower": 0.004},
    }  # fmt: skip
    for key, figures in gates.items():
        put(
            RolloutEvent.new(
                run_id=run, stage="gate", verdict="passed", target=key, model=candidate,
                message="the challenger beats the champion",
                evidence={"metric": "AUC", "n": 2000, "confidence": 0.95, "resamples": 1000,
                          "seed": 0, "min_change": 0.0, "promoted": True, **figures},
            ),
            clock,
        )  # fmt: skip
    for key in targets:
        put(
            RolloutEvent.new(
                run_id=run, stage="candidate", verdict="started", target=key, model=candidate,
                message="candidate endpoint made for shadow",
            ),
            clock,
        )  # fmt: skip
        put(
            RolloutEvent.new(run_id=run, stage="smoke", verdict="passed", target=key,
                             model=candidate, evidence={"rows": 10, "error_rate": 0.0}),
            clock,
        )  # fmt: skip
    put(
        RolloutEvent.new(
            run_id=run, stage="shadow", verdict="passed", target=ARM, model=candidate,
            evidence={"rows": 120, "incumbent": _summary(0.52), "candidate": _summary(0.58, 0.1),
                      "agreement": 0.93, "psi": 0.041, "error_rate": 0.0, "p95_ms": 212.0},
        ),
        clock,
    )  # fmt: skip
    put(
        RolloutEvent.new(
            run_id=run, stage="shadow", verdict="passed", target=classic, model=candidate,
            evidence={"rows": 120, "incumbent": _summary(0.5, histogram=False),
                      "candidate": _summary(0.55, histogram=False), "agreement": 0.9,
                      "psi": 0.06},
        ),
        clock,
    )  # fmt: skip
    put(
        RolloutEvent.new(run_id=run, stage="wave", verdict="started",
                         evidence={"wave": 1, "targets": list(targets)}),
        clock,
    )  # fmt: skip
    for key in targets:
        intent = put(
            Intent.new(run_id=run, target=key, action="deploy", previous_model=previous,
                       new_model=candidate),
            clock,
        )  # fmt: skip
        put(
            LedgerEntry.new(
                target=key, action="deploy", outcome="succeeded", previous_model=previous,
                new_model=candidate, serving_model=candidate, metrics=metrics, run_id=run,
                intents=[intent.id], job_id="job-v3",
            ),
            clock,
        )  # fmt: skip
    for round_ in (1, 2):
        for key in targets:
            fired = key == classic and round_ == 2
            put(
                RolloutEvent.new(
                    run_id=run, stage="bake", verdict="failed" if fired else "passed",
                    target=key, model=candidate,
                    evidence={"rows": 40, "agreement": 0.95 if not fired else 0.71,
                              "psi": 0.03 if not fired else 0.31, "error_rate": 0.0,
                              "p95_ms": 190.0 + round_},
                ),
                clock,
            )  # fmt: skip
    put(
        RolloutEvent.new(
            run_id=run, stage="alarm", verdict="fired", target=classic, model=candidate,
            message="score drift above its threshold",
            evidence={"alarm": "psi", "value": 0.31, "threshold": 0.2, "rows": 40},
        ),
        clock,
    )  # fmt: skip
    intent = put(
        Intent.new(run_id=run, target=classic, action="rollback", previous_model=candidate,
                   new_model=previous),
        clock,
    )  # fmt: skip
    put(
        LedgerEntry.new(
            target=classic, action="rollback", outcome="succeeded", previous_model=candidate,
            new_model=previous, serving_model=previous, run_id=run, intents=[intent.id],
            message="rolled back after the psi alarm",
        ),
        clock,
    )  # fmt: skip
    put(
        RolloutEvent.new(run_id=run, stage="rollback", verdict="done", target=classic,
                         model=previous, message="the incumbent serves again"),
        clock,
    )  # fmt: skip
    put(
        RolloutEvent.new(run_id=run, stage="promote", verdict="done", target=ARM,
                         model=candidate, message="the candidate serves"),
        clock,
    )  # fmt: skip
    put(
        RolloutEvent.new(run_id=run, stage="notify", verdict="done",
                         message="posted to the hook"),
        clock,
    )  # fmt: skip

    # a plain deploy after it: no rollout events
    clock = _Clock("2025-03-03")
    put(RunStart.new(run_id=PLAIN_RUN, command="deploy", targets=[ARM]), clock)
    intent = put(
        Intent.new(run_id=PLAIN_RUN, target=ARM, action="deploy", previous_model=candidate,
                   new_model=MODEL.format("v4")),
        clock,
    )  # fmt: skip
    put(
        LedgerEntry.new(
            target=ARM, action="deploy", outcome="succeeded", previous_model=candidate,
            new_model=MODEL.format("v4"), serving_model=MODEL.format("v4"),
            metrics={"AUC": 0.87, "Accuracy": 0.81}, run_id=PLAIN_RUN, intents=[intent.id],
        ),
        clock,
    )  # fmt: skip
    return ledger
