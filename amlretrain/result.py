"""The outcome of a retrain, deployment or rollback: steps, targets, and a summary.

Plain data for scripts (``to_dict()``, JSON-ready and redacted), a readable text
summary for terminals, and an HTML table for notebooks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs

from amlretrain._html import table_html
from amlretrain._redact import redact, redact_data
from amlretrain.errors import AmlRetrainError, GateRejected

__all__ = ["RetrainResult", "StepRecorder", "StepResult", "TargetOutcome"]

#: Target statuses: ``succeeded``, ``rejected`` (by the gate), ``failed`` (target left on
#: its previous model or unknown, see ``serving_model``), ``restored`` (the swap failed
#: and the previous model was put back), ``skipped`` (already serves the model),
#: ``dry-run`` (planned only).
STATUSES = ("succeeded", "rejected", "failed", "restored", "skipped", "dry-run")


@attrs.frozen(kw_only=True)
class StepResult:
    """One step of a run: its name, ``ok``/``skipped``/``failed``, duration and detail."""

    name: str
    status: str
    seconds: float
    detail: str = ""
    data: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class TargetOutcome:
    """What happened to one target.

    Attributes:
        target: its label; key: its ledger key.
        status: one of ``succeeded``, ``rejected``, ``failed``, ``restored``, ``skipped``,
            ``dry-run``.
        previous_model, new_model: model URLs (without SAS).
        serving_model: the model the target serves at the end, as verified (None when it
            could not be read).
        gate_passed, gate_checks: the gate's verdict for this target.
        scores: the scoring check's records (after the swap).
        plan: the exact request sent, or for a dry run planned (redacted).
        error: why it did not succeed (redacted).
        seconds: time spent on this target.
    """

    target: str
    key: str
    status: str
    previous_model: str | None = None
    new_model: str | None = None
    serving_model: str | None = None
    gate_passed: bool | None = None
    gate_checks: tuple[str, ...] = ()
    scores: list[dict[str, Any]] | None = None
    plan: Mapping[str, Any] | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def gate_text(self) -> str | None:
        """The gate checks as one line, if the gate ran."""
        return "; ".join(self.gate_checks) if self.gate_checks else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, redacted."""
        data: dict[str, Any] = redact_data(attrs.asdict(self, recurse=True))
        data["gate_checks"] = list(self.gate_checks)
        return data


@attrs.frozen(kw_only=True)
class RetrainResult:
    """Every step's outcome, timings, metrics, and old and new model references.

    Attributes:
        steps: the timed steps (check targets, upload, train, evaluate, deploy).
        targets: one :class:`TargetOutcome` per target.
        metrics: the new model's evaluation.
        job_id: the training job (None for a plain deployment).
        model: the new model's URL (without SAS).
        dry_run: nothing was changed.
    """

    steps: tuple[StepResult, ...]
    targets: tuple[TargetOutcome, ...]
    metrics: Mapping[str, float] = attrs.field(factory=dict)
    job_id: str | None = None
    model: str | None = None
    dry_run: bool = False

    @property
    def succeeded(self) -> bool:
        """True when every target succeeded (or was planned, in a dry run, or skipped)."""
        return all(t.status in ("succeeded", "dry-run", "skipped") for t in self.targets)

    def raise_for_status(self) -> RetrainResult:
        """Raise for what did not succeed; return self otherwise.

        Raises:
            GateRejected: every target that did not succeed was rejected by the gate.
            AmlRetrainError: some target failed or was restored (the message lists them).
        """
        bad = [t for t in self.targets if t.status not in ("succeeded", "dry-run", "skipped")]
        if not bad:
            return self
        if all(t.status == "rejected" for t in bad):
            reasons = [f"{t.target}: {t.error}" for t in bad]
            raise GateRejected(
                "the new model was not deployed: " + "; ".join(reasons),
                reasons=reasons,
                metrics=self.metrics,
            )
        lines = [f"{t.target}: {t.status}: {t.error}" for t in bad]
        raise AmlRetrainError(
            f"{len(bad)} of {len(self.targets)} target(s) failed: " + "; ".join(lines)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, redacted."""
        data: dict[str, Any] = {
            "succeeded": self.succeeded,
            "dryRun": self.dry_run,
            "jobId": self.job_id,
            "model": self.model,
            "metrics": dict(self.metrics),
            "steps": [attrs.asdict(s) for s in self.steps],
            "targets": [t.to_dict() for t in self.targets],
        }
        clean: dict[str, Any] = redact_data(data)
        return clean

    def summary(self) -> str:
        """A readable multi-line summary (steps, metrics, a table of targets)."""
        lines = []
        for step in self.steps:
            lines.append(f"{step.status:<8}{step.name:<15}{step.seconds:7.2f}s  {step.detail}")
        if self.metrics:
            lines.append("metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in self.metrics.items()))
        if self.model:
            lines.append(f"model:   {self.model}")
        width = max([len(t.target) for t in self.targets] + [6])
        lines.append("")
        lines.append(f"{'target':<{width}}  {'status':<9} serving")
        for t in self.targets:
            lines.append(f"{t.target:<{width}}  {t.status:<9} {t.serving_model or '-'}")
            if t.error:
                lines.append(f"{'':<{width}}  {t.error}")
        counts: dict[str, int] = {}
        for t in self.targets:
            counts[t.status] = counts.get(t.status, 0) + 1
        lines.append(", ".join(f"{n} {status}" for status, n in counts.items()))
        return redact("\n".join(lines))

    def _repr_html_(self) -> str:
        steps = table_html(
            ("step", "status", "seconds", "detail"),
            [(s.name, s.status, f"{s.seconds:.2f}", s.detail) for s in self.steps],
            caption="steps",
        )
        targets = table_html(
            ("target", "status", "serving model", "error"),
            [(t.target, t.status, t.serving_model, t.error) for t in self.targets],
            caption="targets",
        )
        return steps + targets


class StepRecorder:
    """Collects the timed :class:`StepResult` of a run (``with recorder.step(name):``).

    The block may set ``"_status"`` (default ``ok``) and ``"_text"`` in the dict it gets;
    other members become the step's ``data``. An exception marks the step ``failed``.
    """

    def __init__(self, progress: Callable[[str], None] | None) -> None:
        self.steps: list[StepResult] = []
        self._progress = progress

    @contextmanager
    def step(self, name: str) -> Iterator[dict[str, Any]]:
        detail: dict[str, Any] = {}
        started = time.monotonic()
        if self._progress:
            self._progress(name)
        try:
            yield detail
        except BaseException as err:
            self.steps.append(
                StepResult(
                    name=name,
                    status="failed",
                    seconds=time.monotonic() - started,
                    detail=redact(str(err)),
                )
            )
            raise
        self.steps.append(
            StepResult(
                name=name,
                status=detail.pop("_status", "ok"),
                seconds=time.monotonic() - started,
                detail=redact(str(detail.pop("_text", ""))),
                data=detail,
            )
        )
