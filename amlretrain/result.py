"""The outcome of a retrain, deployment or rollback: steps, targets, and a summary.

Plain data for scripts (``to_dict()``, JSON-ready and redacted), a readable text
summary for terminals, and an HTML table for notebooks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import attrs

from amlretrain._enums import StrStatus
from amlretrain._html import table_html
from amlretrain._redact import redact, redact_data
from amlretrain.errors import (
    AmlRetrainError,
    GateRejected,
    OperationTimeout,
    TargetsFailed,
    VerificationFailed,
)

__all__ = [
    "RetrainResult",
    "StepRecorder",
    "StepResult",
    "StepStatus",
    "TargetOutcome",
    "TargetStatus",
]


class TargetStatus(StrStatus):
    """What happened to a target (a ``str``: ``TargetStatus.SUCCEEDED == "succeeded"``)."""

    #: It serves the new model, verified.
    SUCCEEDED = "succeeded"
    #: The gate refused the new model; nothing was changed.
    REJECTED = "rejected"
    #: It failed (see ``serving_model`` for what it serves).
    FAILED = "failed"
    #: The swap failed and the previous model was put back (verified).
    RESTORED = "restored"
    #: The change was sent but what it serves could not be confirmed: run reconcile.
    UNKNOWN = "unknown"
    #: It already served the model; nothing was sent.
    SKIPPED = "skipped"
    #: Planned only (a dry run).
    DRY_RUN = "dry-run"


class StepStatus(StrStatus):
    """How a step of a run ended (a ``str``)."""

    OK = "ok"
    SKIPPED = "skipped"
    FAILED = "failed"


#: Every target status, as strings (``tuple(TargetStatus)``).
STATUSES = tuple(s.value for s in TargetStatus)
_OK = (TargetStatus.SUCCEEDED, TargetStatus.DRY_RUN, TargetStatus.SKIPPED)

#: The members of a plan as printed (the request's own members keep their names).
_PLAN_MEMBERS = {"jsonPatch": "json_patch"}


@attrs.frozen(kw_only=True)
class StepResult:
    """One step of a run: its name, ``ok``/``skipped``/``failed``, duration and detail."""

    name: str
    status: StepStatus = attrs.field(converter=StepStatus)
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
        exception: the error behind ``error``, when there was one (not serialised).
    """

    target: str
    key: str
    status: TargetStatus = attrs.field(converter=TargetStatus)
    previous_model: str | None = None
    new_model: str | None = None
    serving_model: str | None = None
    gate_passed: bool | None = None
    gate_checks: tuple[str, ...] = ()
    scores: list[dict[str, Any]] | None = None
    plan: Mapping[str, Any] | None = None
    error: str | None = None
    seconds: float = 0.0
    exception: BaseException | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def serving_text(self) -> str:
        """What it serves, for people: the model, ``unknown``, or ``-``."""
        if self.serving_model:
            return self.serving_model
        return "unknown" if self.status == "unknown" else "-"

    def raise_for_status(self) -> TargetOutcome:
        """Raise for an outcome that did not succeed (as :meth:`RetrainResult.raise_for_status`)."""
        _raise_for([self], 1, {})
        return self

    @property
    def gate_text(self) -> str | None:
        """The gate checks as one line, if the gate ran."""
        return "; ".join(self.gate_checks) if self.gate_checks else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, redacted; members named as the attributes (snake_case).

        ``key`` is kept as it is (a ledger key names resources, it holds no secret; any
        SAS in it would still be redacted); ``plan`` has ``method``, ``url``, ``body``
        (the service's document, spelled as the service spells it) and for an ARM
        target ``json_patch`` (RFC 6902 operations).
        """
        data: dict[str, Any] = redact_data(
            attrs.asdict(
                self, recurse=True, filter=lambda a, _v: a.name not in ("exception", "key")
            )
        )
        data = {"target": data.pop("target"), "key": redact(self.key), **data}
        data["gate_checks"] = list(self.gate_checks)
        if isinstance(data.get("plan"), dict):
            data["plan"] = {_PLAN_MEMBERS.get(k, k): v for k, v in data["plan"].items()}
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
    def split(self) -> bool:
        """True when some targets serve the new model and others were left on another."""
        statuses = {t.status for t in self.targets}
        return bool(statuses & {"succeeded", "skipped"}) and bool(
            statuses & {"failed", "restored", "unknown"}
        )

    @property
    def succeeded(self) -> bool:
        """True when every target succeeded (or was planned, in a dry run, or skipped)."""
        return all(t.status in _OK for t in self.targets)

    def raise_for_status(self) -> RetrainResult:
        """Raise for what did not succeed; return self otherwise.

        Raises:
            GateRejected: every target that did not succeed was rejected by the gate.
            AmlRetrainError: some target failed, was restored or is unknown. When every
                such target failed with the same kind of error, that error (e.g.
                ``VerificationFailed`` for an unconfirmed swap, ``OperationTimeout``,
                ``ConflictError`` for a target leased by another run); otherwise an
                ``AmlRetrainError`` listing them.
        """
        _raise_for(self.targets, len(self.targets), self.metrics)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, redacted; members named as the attributes (snake_case).

        ``succeeded``, ``split``, ``dry_run``, ``job_id``, ``model``, ``metrics`` (metric
        names as the evaluation spells them), ``steps`` and ``targets``
        (:meth:`TargetOutcome.to_dict`). ``amlretrain retrain --output json`` prints it.
        """
        data: dict[str, Any] = {
            "succeeded": self.succeeded,
            "split": self.split,
            "dry_run": self.dry_run,
            "job_id": self.job_id,
            "model": self.model,
            "metrics": dict(self.metrics),
            "steps": [attrs.asdict(s) for s in self.steps],
            "targets": [t.to_dict() for t in self.targets],
        }
        clean: dict[str, Any] = redact_data(data)
        for outcome, shown in zip(self.targets, clean["targets"], strict=True):
            shown["key"] = redact(outcome.key)  # not a secret: redact_data blanks any "key"
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
            lines.append(f"{t.target:<{width}}  {t.status:<9} {t.serving_text}")
            if t.error:
                lines.append(f"{'':<{width}}  {t.error}")
        counts: dict[str, int] = {}
        for t in self.targets:
            counts[t.status] = counts.get(t.status, 0) + 1
        lines.append(", ".join(f"{n} {status}" for status, n in counts.items()))
        if self.split:
            new = sum(1 for t in self.targets if t.status in ("succeeded", "skipped"))
            lines.append(
                f"SPLIT: {new} of {len(self.targets)} target(s) serve the new model, the "
                "others do not (see above)"
            )
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


def _raise_for(targets: Sequence[TargetOutcome], total: int, metrics: Mapping[str, float]) -> None:
    """Raise the error that best says why some of ``targets`` did not succeed."""
    bad = [t for t in targets if t.status not in _OK]
    if not bad:
        return
    if all(t.status == "rejected" for t in bad):
        reasons = [f"{t.target}: {t.error}" for t in bad]
        raise GateRejected(
            "the new model was not deployed: " + "; ".join(reasons),
            reasons=reasons,
            metrics=metrics,
        )
    lines = [f"{t.target}: {t.status}: {t.error}" for t in bad]
    text = f"{len(bad)} of {total} target(s) did not succeed: " + "; ".join(lines)
    errors = [t.exception for t in bad if t.status != "rejected"]
    unknown = [t for t in bad if t.status == "unknown"]
    if len(unknown) == len(bad):
        # What every one of them serves is unknown: that is the one family (12, or 13
        # for operations past their deadline).
        if all(isinstance(t.exception, OperationTimeout) for t in unknown):
            errors = [t.exception for t in unknown]
        else:
            raise VerificationFailed(text)
    kinds = {type(e) for e in errors}
    if len(errors) == len(bad) and len(kinds) == 1 and isinstance(errors[0], AmlRetrainError):
        # One family of failure: raise that family (its exit code), saying what happened.
        first = errors[0]
        typed = type(first).__new__(type(first))  # its attributes, without its __init__
        typed.__dict__.update(first.__dict__)
        typed.message = text
        typed.args = (text,)
        raise typed from first
    raise TargetsFailed(text, failures=[(t.target, t.status, t.error or "") for t in bad])


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
