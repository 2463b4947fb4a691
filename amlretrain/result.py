"""The outcome of a retrain, deployment or rollback: steps, targets, and a summary.

Plain data for scripts (``to_dict()``, JSON-ready and redacted), a readable text
summary for terminals, and an HTML table for notebooks.
"""

from __future__ import annotations

import html
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
    RunHalted,
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
    #: Not attempted: the fleet run halted (its failure budget) before this target's wave.
    HALTED = "halted"


class StepStatus(StrStatus):
    """How a step of a run ended (a ``str``)."""

    OK = "ok"
    SKIPPED = "skipped"
    FAILED = "failed"
    #: The deploy step when the gate refused the model for every target.
    REJECTED = "rejected"


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
        data: the training data of this target's model (a fleet trains one per data file).
        job_id: the training job of this target's model.
        metrics: that model's evaluation.
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
    data: str | None = None
    job_id: str | None = None
    metrics: Mapping[str, float] = attrs.field(factory=dict)
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
        data["metrics"] = dict(self.metrics)
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
        run_id: the run's id in the ledger (``amlretrain runs show RUN_ID``).
        halted_wave: the wave (1-based) in which a fleet run halted (its failure budget,
            or a guarded rollout's alarm); None when it did not halt.
        halt_reason: why it halted (None: it did not, or its failure budget).
        key_metrics: the metrics the summary's table shows (the gate's; default: the
            first two of each model's).
    """

    steps: tuple[StepResult, ...]
    targets: tuple[TargetOutcome, ...]
    metrics: Mapping[str, float] = attrs.field(factory=dict)
    job_id: str | None = None
    model: str | None = None
    dry_run: bool = False
    run_id: str | None = None
    halted_wave: int | None = None
    key_metrics: tuple[str, ...] = ()
    halt_reason: str | None = None

    def counts(self) -> dict[str, int]:
        """Targets per status, in :class:`TargetStatus` order (statuses with none left out)."""
        found = {status: 0 for status in TargetStatus}
        for t in self.targets:
            found[t.status] += 1
        return {str(status): n for status, n in found.items() if n}

    def rows(self) -> list[dict[str, Any]]:
        """The per-target table: one JSON-ready, redacted row per target.

        Columns: ``target``, ``data``, ``job_id``, ``metrics`` (the model's evaluation),
        ``gate`` (``passed``/``rejected``/None when no gate ran), ``status``,
        ``serving_model``, ``seconds``, ``error``.
        """
        out = []
        for t in self.targets:
            gate = None if t.gate_passed is None else ("passed" if t.gate_passed else "rejected")
            out.append(
                {
                    "target": t.target,
                    "data": t.data,
                    "job_id": t.job_id or self.job_id,
                    "metrics": dict(t.metrics or self.metrics),
                    "gate": gate,
                    "status": str(t.status),
                    "serving_model": t.serving_model,
                    "seconds": round(t.seconds, 3),
                    "error": t.error,
                }
            )
        rows: list[dict[str, Any]] = redact_data(out)
        return rows

    def to_frame(self) -> Any:
        """The per-target table (:meth:`rows`) as a pandas ``DataFrame``, one row a target.

        The metrics are spread into columns of their own (``metric:AUC``...).

        Raises:
            ImportError: pandas is not installed (``pip install 'amlretrain[pandas]'``).
        """
        import importlib

        try:
            pd: Any = importlib.import_module("pandas")
        except ImportError as err:
            raise ImportError(
                "RetrainResult.to_frame() needs pandas: pip install 'amlretrain[pandas]'"
            ) from err
        records = []
        for row in self.rows():
            metrics = row.pop("metrics")
            row.update({f"metric:{name}": value for name, value in metrics.items()})
            records.append(row)
        return pd.DataFrame.from_records(records)

    def report(self, ledger: Any) -> Any:
        """This run's evidence report (:func:`amlretrain.report.report_for`): each
        target's timeline, metric history, gate evidence, shadow comparison, alarms and
        rollbacks, as one self-contained HTML page (``.save(path)``; Jupyter shows it).

        Args:
            ledger: the run's :class:`~amlretrain.ledger.Ledger` (or its ``History``).

        Raises:
            ImportError: matplotlib is not installed (``pip install 'amlretrain[report]'``).
        """
        from amlretrain.report import report_for

        return report_for(self, ledger)

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
            RunHalted: a fleet run halted on its failure budget or a rollout's alarm
                (:attr:`halted_wave`, :attr:`halt_reason`).
        """
        if self.halted_wave is not None:
            bad = [t for t in self.targets if t.status not in _OK]
            failed = [t for t in bad if t.status != TargetStatus.HALTED]
            why = self.halt_reason or (
                f"{len(failed)} target(s) failed, crossing the failure budget"
            )
            raise RunHalted(
                f"the run halted in wave {self.halted_wave}: {why}; "
                f"{len(bad) - len(failed)} target(s) of later waves were not changed: "
                + "; ".join(f"{t.target}: {t.status}: {t.error}" for t in failed),
                failures=[(t.target, str(t.status), t.error or "") for t in bad],
                wave=self.halted_wave,
            )
        _raise_for(self.targets, len(self.targets), self.metrics)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, redacted; members named as the attributes (snake_case).

        ``succeeded``, ``split``, ``dry_run``, ``job_id``, ``model``, ``metrics`` (metric
        names as the evaluation spells them), ``steps`` and ``targets``
        (:meth:`TargetOutcome.to_dict`). ``amlretrain retrain --output json`` prints it.
        """
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "succeeded": self.succeeded,
            "split": self.split,
            "dry_run": self.dry_run,
            "job_id": self.job_id,
            "model": self.model,
            "metrics": dict(self.metrics),
            "steps": [attrs.asdict(s) for s in self.steps],
            "targets": [t.to_dict() for t in self.targets],
            "counts": self.counts(),
            "halted_wave": self.halted_wave,
            "halt_reason": self.halt_reason,
        }
        clean: dict[str, Any] = redact_data(data)
        for outcome, shown in zip(self.targets, clean["targets"], strict=True):
            shown["key"] = redact(outcome.key)  # not a secret: redact_data blanks any "key"
        return clean

    def summary(self) -> str:
        """A readable multi-line summary: the steps, one table of targets, a line of counts.

        The table has a row per target: ``target``, ``data``, ``job``, ``metrics`` (the
        key ones), ``gate``, ``status``, ``serving``, ``time``; a column no target has a
        value for is left out; a target's error follows on its own line.
        """
        lines = []
        for step in self.steps:
            lines.append(f"{step.status:<8}{step.name:<15}{step.seconds:7.2f}s  {step.detail}")
        models = {t.new_model for t in self.targets if t.new_model}
        if self.metrics and len(models) <= 1:
            lines.append("metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in self.metrics.items()))
        if self.model:
            lines.append(f"model:   {self.model}")
        lines.append("")
        lines += _table(self.rows(), self.key_metrics)
        counts = ", ".join(f"{n} {status}" for status, n in self.counts().items())
        lines.append(counts + (f" (run {self.run_id})" if self.run_id else ""))
        if self.halted_wave is not None:
            lines.append(
                f"HALTED in wave {self.halted_wave}: "
                f"{self.halt_reason or 'the failures crossed the failure budget'}; "
                "the targets of later waves were not changed"
            )
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
        rows = self.rows()
        columns = [
            (title, key)
            for title, key in _COLUMNS
            if key in ("target", "status", "serving_model") or any(r.get(key) for r in rows)
        ]
        targets = table_html(
            [title for title, _ in columns] + ["error"],
            [
                [_cell(r, key, self.key_metrics) for _, key in columns] + [r.get("error")]
                for r in rows
            ],
            caption="targets",
        )
        counts = ", ".join(f"{n} {status}" for status, n in self.counts().items())
        run = f" (run {self.run_id})" if self.run_id else ""
        return steps + targets + f"<p>{html.escape(counts + run)}</p>"


_COLUMNS = (
    ("target", "target"),
    ("data", "data"),
    ("job", "job_id"),
    ("metrics", "metrics"),
    ("gate", "gate"),
    ("status", "status"),
    ("serving", "serving_model"),
    ("time", "seconds"),
)


def _cell(row: Mapping[str, Any], key: str, key_metrics: Sequence[str]) -> str:
    value = row.get(key)
    if key == "metrics":
        value = value or {}
        shown = [m for m in key_metrics if m in value] or list(value)[:2]
        return ", ".join(f"{m} {value[m]:.4g}" for m in shown)
    if key == "job_id" and value:
        return str(value)[:12]
    if key == "seconds":
        return f"{value:.1f}s"
    if key == "serving_model" and not value:
        return "unknown" if row.get("status") == "unknown" else "-"
    return "" if value is None else str(value)


def _table(rows: Sequence[Mapping[str, Any]], key_metrics: Sequence[str]) -> list[str]:
    """The per-target rows as aligned text; empty columns left out, errors below a row."""
    columns = [
        (title, key)
        for title, key in _COLUMNS
        if key in ("target", "status", "serving_model") or any(r.get(key) for r in rows)
    ]
    cells = [[_cell(r, key, key_metrics) for _, key in columns] for r in rows]
    widths = [
        max([len(title)] + [len(c[n]) for c in cells]) for n, (title, _) in enumerate(columns)
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    out = [line([title for title, _ in columns])]
    for row, values in zip(rows, cells, strict=True):
        out.append(line(values))
        if row.get("error"):
            out.append(f"    {row['error']}")
    return out


def _raise_for(targets: Sequence[TargetOutcome], total: int, metrics: Mapping[str, float]) -> None:
    """Raise the error that best says why some of ``targets`` did not succeed.

    When every target of the run failed in one family, that family's error (its exit
    code); when some succeeded and others did not, or they failed for different
    reasons, :class:`TargetsFailed` (exit 14).
    """
    bad = [t for t in targets if t.status not in _OK]
    if not bad:
        return
    every = len(bad) == total
    if every and all(t.status == "rejected" for t in bad):
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
    if every and len(unknown) == len(bad):
        # What every one of them serves is unknown: that is the one family (12, or 13
        # for operations past their deadline).
        if all(isinstance(t.exception, OperationTimeout) for t in unknown):
            errors = [t.exception for t in unknown]
        else:
            raise VerificationFailed(text)
    kinds = {type(e) for e in errors}
    one_family = len(errors) == len(bad) and len(kinds) == 1
    if every and one_family and isinstance(errors[0], AmlRetrainError):
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
            for key in ("_status", "_text"):
                detail.pop(key, None)
            self.steps.append(
                StepResult(
                    name=name,
                    status="failed",
                    seconds=time.monotonic() - started,
                    detail=redact(str(err)),
                    data=detail,  # what it found before it failed (the job id...)
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
