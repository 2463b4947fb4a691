"""The ledger's records and how a line is read: outcome, intent, run-start, job,
rollout, operation.

One JSON object per line. Each record type writes exactly its documented members
(camelCase) and reads tolerantly through :mod:`amlretrain._wire` (any member casing,
missing members defaulted, a line of 0.1.0 read unchanged); :func:`parse` splits the
bytes of a ledger into records and reports the lines that cannot be read. No I/O here:
:mod:`amlretrain.ledger` stores the lines, :mod:`amlretrain.history` answers questions
about them.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs

from amlretrain._redact import redact, redact_data
from amlretrain._wire import REQUIRED, SCALAR, Fields, Lenient, find_key
from amlretrain.blobs import strip_sas
from amlretrain.errors import ConfigurationError

__all__ = [
    "ACTIONS",
    "OUTCOMES",
    "ROLLOUT_STAGES",
    "SCHEMA",
    "Intent",
    "JobRecord",
    "LedgerContents",
    "LedgerEntry",
    "LedgerProblem",
    "OperationRecord",
    "Pending",
    "Record",
    "RolloutEvent",
    "RunStart",
    "new_run_id",
    "parse",
]

log = logging.getLogger("amlretrain.ledger")

#: The schema version written on every record (0.1.0's lines, without one, are 1).
SCHEMA = 2

#: What happened: a new model deployed, a model put back, a model refused by the gate,
#: the previous model put back after a failed swap.
ACTIONS = ("deploy", "rollback", "gate", "restore")
#: How it ended. ``restored``: the change failed and the previous model was put back;
#: ``unknown``: the client could not confirm what the target serves (reconcile it).
OUTCOMES = ("succeeded", "failed", "rejected", "restored", "dry-run", "unknown")

#: Job statuses after which a training job will not change again (``Orphaned``: reported
#: by reconcile as never started; ``NotSubmitted``: the service refused the submit).
_JOB_ENDS = ("Finished", "Failed", "Cancelled", "Orphaned", "NotSubmitted")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _new_id() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def new_run_id() -> str:
    """A new run id (sortable by time, unique)."""
    return "run-" + _new_id()


def _clean_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """Redacted, with the query string (the SAS) of every blob URL removed."""

    def strip(value: Any) -> Any:
        if isinstance(value, str) and value.startswith(("http://", "https://")) and "?" in value:
            return strip_sas(value)
        if isinstance(value, Mapping):
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [strip(v) for v in value]
        return value

    clean: dict[str, Any] = redact_data(strip(dict(data)))
    return clean


@attrs.frozen(kw_only=True)
class LedgerEntry:
    """An outcome: what a change (or a refusal) did to one target.

    Attributes:
        id: unique id of the entry (sortable by time).
        time: when it was recorded (UTC, ISO 8601).
        target: the target key (``arm:<resource id>`` or ``classic:<ws>/<svc>/<endpoint>``).
        action: ``deploy``, ``rollback``, ``gate`` or ``restore``.
        outcome: ``succeeded``, ``failed``, ``rejected``, ``restored``, ``dry-run`` or
            ``unknown``.
        previous_model, new_model: model URLs without SAS.
        serving_model: the model the target serves after this entry, as verified
            (None when unknown).
        metrics: the new model's evaluation metrics.
        job_id: the training job, when there was one.
        request_ids: ``x-ms-request-id`` of the changing requests.
        rollback_of: for a rollback, the id of the entry whose previous model was restored.
        message: a short human explanation (redacted).
        run_id: the run that wrote it (None before schema 2).
        intents: the ids of the intents this outcome closes.
        reconciled: written by reconcile, from a read of the target.
        evidence: what the outcome is based on (reads made, what they showed).
        schema: 1 for a line of 0.1.0, else :data:`SCHEMA`.
    """

    id: str
    time: str
    target: str
    action: str
    outcome: str
    previous_model: str | None = None
    new_model: str | None = None
    serving_model: str | None = None
    metrics: Mapping[str, float] = attrs.field(factory=dict)
    job_id: str | None = None
    request_ids: tuple[str, ...] = ()
    rollback_of: str | None = None
    message: str | None = None
    run_id: str | None = None
    intents: tuple[str, ...] = ()
    reconciled: bool = False
    evidence: Mapping[str, Any] = attrs.field(factory=dict)
    schema: int = SCHEMA

    @classmethod
    def new(
        cls,
        *,
        target: str,
        action: str,
        outcome: str,
        previous_model: str | None = None,
        new_model: str | None = None,
        serving_model: str | None = None,
        metrics: Mapping[str, float] | None = None,
        job_id: str | None = None,
        request_ids: Sequence[str] = (),
        rollback_of: str | None = None,
        message: str | None = None,
        run_id: str | None = None,
        intents: Sequence[str] = (),
        reconciled: bool = False,
        evidence: Mapping[str, Any] | None = None,
    ) -> LedgerEntry:
        """A new entry stamped now, with SAS stripped and text redacted.

        Raises:
            ConfigurationError: an unknown action or outcome.
        """
        _check_action(action)
        if outcome not in OUTCOMES:
            raise ConfigurationError(f"unknown ledger outcome {outcome!r}; one of {OUTCOMES}")
        return cls(
            id=_new_id(),
            time=_now(),
            target=target,
            action=action,
            outcome=outcome,
            previous_model=strip_sas(previous_model),
            new_model=strip_sas(new_model),
            serving_model=strip_sas(serving_model),
            metrics={k: float(v) for k, v in (metrics or {}).items()},
            job_id=job_id,
            request_ids=tuple(r for r in request_ids if r),
            rollback_of=rollback_of,
            message=redact(message) if message else None,
            run_id=run_id,
            intents=tuple(intents),
            reconciled=reconciled,
            evidence=_clean_data(evidence or {}),
        )

    @property
    def is_unknown(self) -> bool:
        """True when the client could not confirm what the target serves."""
        return self.outcome == "unknown"

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to the ledger (camelCase members)."""
        data: dict[str, Any] = {
            "kind": "outcome",
            "schema": self.schema,
            "id": self.id,
            "time": self.time,
            "runId": self.run_id,
            "target": self.target,
            "action": self.action,
            "outcome": self.outcome,
            "previousModel": self.previous_model,
            "newModel": self.new_model,
            "servingModel": self.serving_model,
            "metrics": dict(self.metrics),
            "jobId": self.job_id,
            "requestIds": list(self.request_ids),
            "rollbackOf": self.rollback_of,
            "message": self.message,
            "intents": list(self.intents),
        }
        if self.reconciled:
            data["reconciled"] = True
        if self.evidence:
            data["evidence"] = dict(self.evidence)
        if self.schema < 2:  # written as read: a 0.1.0 line has no kind or schema
            for name in ("kind", "schema", "runId", "intents"):
                data.pop(name)
        return _clean_data(data)

    def to_output(self) -> dict[str, Any]:
        """The JSON object ``amlretrain history --output json`` prints (snake_case).

        Every attribute under its own name, after ``kind`` (``outcome``); the members of
        ``evidence`` in snake_case too. The ledger file keeps :meth:`to_dict`'s camelCase.
        """
        data: dict[str, Any] = {"kind": "outcome"}
        data.update(attrs.asdict(self, recurse=False))
        data["metrics"] = dict(self.metrics)
        data["request_ids"] = list(self.request_ids)
        data["intents"] = list(self.intents)
        data["evidence"] = {_snake_case(k): v for k, v in self.evidence.items()}
        return _clean_data(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerEntry:
        """Read an outcome line (tolerant of unknown members; 0.1.0 lines too).

        Raises:
            KeyError: no ``id`` or ``target``.
            ValueError, TypeError: a member that cannot be read (metrics not numbers).
        """
        return cls(**_OUTCOME_FIELDS.read(data, copy=False))


def _snake_case(name: str) -> str:
    """``secondsSinceIntent`` -> ``seconds_since_intent`` (for printed output)."""
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def _check_action(action: str) -> None:
    if action not in ACTIONS:
        raise ConfigurationError(f"unknown ledger action {action!r}; one of {ACTIONS}")


@attrs.frozen(kw_only=True)
class Intent:
    """A change about to be sent to a target (written before the request).

    Attributes:
        id, time: the record's id and time.
        run_id: the run that sends it.
        target: the target key.
        action: ``deploy``, ``rollback`` or ``restore``.
        previous_model: what the target served when it was last read (no SAS).
        new_model: what the change points it at (no SAS).
        request: ``method``, ``url`` and ``body`` of the change, every SAS and key removed.
        metrics, job_id, rollback_of: carried to the outcome reconcile writes.
    """

    id: str
    time: str
    run_id: str | None
    target: str
    action: str
    previous_model: str | None = None
    new_model: str | None = None
    request: Mapping[str, Any] = attrs.field(factory=dict)
    metrics: Mapping[str, float] = attrs.field(factory=dict)
    job_id: str | None = None
    rollback_of: str | None = None

    @classmethod
    def new(
        cls,
        *,
        run_id: str | None,
        target: str,
        action: str,
        previous_model: str | None,
        new_model: str | None,
        request: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        job_id: str | None = None,
        rollback_of: str | None = None,
    ) -> Intent:
        """A new intent stamped now (SAS and keys removed)."""
        _check_action(action)
        return cls(
            id=_new_id(),
            time=_now(),
            run_id=run_id,
            target=target,
            action=action,
            previous_model=strip_sas(previous_model),
            new_model=strip_sas(new_model),
            request=_clean_data(request or {}),
            metrics={k: float(v) for k, v in (metrics or {}).items()},
            job_id=job_id,
            rollback_of=rollback_of,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to the ledger."""
        return _clean_data(
            {
                "kind": "intent",
                "schema": SCHEMA,
                "id": self.id,
                "time": self.time,
                "runId": self.run_id,
                "target": self.target,
                "action": self.action,
                "previousModel": self.previous_model,
                "newModel": self.new_model,
                "request": dict(self.request),
                "metrics": dict(self.metrics),
                "jobId": self.job_id,
                "rollbackOf": self.rollback_of,
            }
        )

    def to_output(self) -> dict[str, Any]:
        """The JSON object ``amlretrain history --output json`` prints for an open intent.

        Every attribute under its own name (snake_case), after ``kind`` (``intent``);
        ``request`` has ``method``, ``url``, ``body`` (the service's document as sent)
        and for an ARM target ``json_patch``. The ledger file keeps :meth:`to_dict`'s.
        """
        data: dict[str, Any] = {"kind": "intent"}
        data.update(attrs.asdict(self, recurse=False))
        data["request"] = {_snake_case(k): v for k, v in self.request.items()}
        data["metrics"] = dict(self.metrics)
        return _clean_data(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Intent:
        """Read an intent line (see :meth:`LedgerEntry.from_dict`)."""
        return cls(**_INTENT_FIELDS.read(data, copy=False))


@attrs.frozen(kw_only=True)
class RunStart:
    """A run began (written first: it proves the ledger writable).

    Attributes:
        id, time: the record's id and time.
        run_id: the run.
        command: ``retrain``, ``deploy``, ``rollback`` or ``reconcile``.
        host, pid: where it runs.
        targets: the target keys it may change.
        fingerprint: a digest of the run's configuration (a resumed run must match it).
        resumed: True for a record written when the run was resumed.
    """

    id: str
    time: str
    run_id: str
    command: str
    host: str
    pid: int
    targets: tuple[str, ...] = ()
    fingerprint: str | None = None
    resumed: bool = False

    @classmethod
    def new(
        cls,
        *,
        run_id: str,
        command: str,
        targets: Sequence[str],
        fingerprint: str | None = None,
        resumed: bool = False,
    ) -> RunStart:
        """A new record for this process, stamped now."""
        return cls(
            id=_new_id(),
            time=_now(),
            run_id=run_id,
            command=command,
            host=socket.gethostname(),
            pid=os.getpid(),
            targets=tuple(targets),
            fingerprint=fingerprint,
            resumed=resumed,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to the ledger."""
        return {
            "kind": "run-start",
            "schema": SCHEMA,
            "id": self.id,
            "time": self.time,
            "runId": self.run_id,
            "command": self.command,
            "host": self.host,
            "pid": self.pid,
            "targets": list(self.targets),
            **({"fingerprint": self.fingerprint} if self.fingerprint else {}),
            **({"resumed": True} if self.resumed else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunStart:
        """Read a run-start line (see :meth:`LedgerEntry.from_dict`)."""
        return cls(**_RUN_START_FIELDS.read(data, copy=False))


@attrs.frozen(kw_only=True)
class JobRecord:
    """A training job of a run: ``Submitted`` as soon as the submit answered, then its end.

    Attributes:
        id, time: the record's id and time.
        run_id: the run.
        job_id: the BES job id.
        status: ``Submitted``, ``Started``, or the job's last status (``Finished``,
            ``Failed``, ``Cancelled``).
        service: the training service's batch URL (no key).
        data: the training data the job ran on, as configured (a fleet runs a job per
            data file; a resumed run finds each file's job by it).
    """

    id: str
    time: str
    run_id: str | None
    job_id: str
    status: str
    service: str | None = None
    data: str | None = None

    @classmethod
    def new(
        cls,
        *,
        run_id: str | None,
        job_id: str,
        status: str,
        service: str | None = None,
        data: str | None = None,
    ) -> JobRecord:
        """A new record stamped now."""
        return cls(
            id=_new_id(),
            time=_now(),
            run_id=run_id,
            job_id=job_id,
            status=status,
            service=redact(strip_sas(service) or "") or None,
            data=redact(strip_sas(data) or "") or None,
        )

    @property
    def ended(self) -> bool:
        """True when the job will not change again."""
        return self.status in _JOB_ENDS

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to the ledger."""
        return {
            "kind": "job",
            "schema": SCHEMA,
            "id": self.id,
            "time": self.time,
            "runId": self.run_id,
            "jobId": self.job_id,
            "status": self.status,
            "service": self.service,
            **({"data": self.data} if self.data else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobRecord:
        """Read a job line (see :meth:`LedgerEntry.from_dict`)."""
        return cls(**_JOB_FIELDS.read(data, copy=False))


@attrs.frozen(kw_only=True)
class OperationRecord:
    """A swap's long-running operation its run did not wait for (``detach``).

    Written under the target's lease after the change was sent, before the lease is
    handed to the run; the swap's intent stays open until the resumed run records the
    outcome (listing ``intent`` among its intents).

    Attributes:
        id, time: the record's id and time.
        run_id: the run.
        target: the target key.
        intent: the id of the swap's intent.
        token: the operation's continuation token (no secret).
        what: the operation, in words.
        request_ids: the ids of the swap's changing requests so far (the resumed run
            records them with its outcome).
    """

    id: str
    time: str
    run_id: str
    target: str
    intent: str
    token: str
    what: str = ""
    request_ids: tuple[str, ...] = ()

    @classmethod
    def new(
        cls,
        *,
        run_id: str,
        target: str,
        intent: str,
        token: str,
        what: str,
        request_ids: Sequence[str] = (),
    ) -> OperationRecord:
        """A new record stamped now."""
        return cls(
            id=_new_id(),
            time=_now(),
            run_id=run_id,
            target=target,
            intent=intent,
            token=token,
            what=redact(what),
            request_ids=tuple(request_ids),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to the ledger."""
        return {
            "kind": "operation",
            "schema": SCHEMA,
            "id": self.id,
            "time": self.time,
            "runId": self.run_id,
            "target": self.target,
            "intent": self.intent,
            "token": self.token,
            "what": self.what,
            "requestIds": list(self.request_ids),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OperationRecord:
        """Read an operation line (see :meth:`LedgerEntry.from_dict`)."""
        return cls(**_OPERATION_FIELDS.read(data, copy=False))


#: The stages and events a :class:`RolloutEvent` records.
ROLLOUT_STAGES = (
    "gate",  # the champion/challenger comparison on the holdout
    "smoke",  # the sample scored on the candidate only
    "shadow",  # the probe rows scored on incumbent and candidate, compared
    "candidate",  # a candidate endpoint or service made for shadow, or deleted after it
    "wave",  # a wave of live targets promoted
    "bake",  # a bake's probe round (alarms evaluated)
    "alarm",  # an alarm fired
    "promote",  # the rollout finished: the candidate serves everywhere
    "rollback",  # what the rollout promoted was put back
    "notify",  # a notification hook was called (or failed)
    "mirror",  # v2: mirror traffic to the candidate deployment set (started) or ended (done)
    "traffic",  # v2: a traffic step of a swap (percent of the live traffic, verified)
    "retire",  # v2: the previous deployment deleted after the bake (started, done, failed)
)


@attrs.frozen(kw_only=True)
class RolloutEvent:
    """One step of a guarded rollout and its evidence (summaries, never raw scores).

    Attributes:
        id, time: the record's id and time.
        run_id: the run.
        stage: one of :data:`ROLLOUT_STAGES`.
        verdict: ``passed``, ``failed``, ``fired``, ``started``, ``done`` or ``skipped``.
        target: the target key it concerns (None: the whole rollout).
        model: the candidate model (no SAS).
        message: a line for people (redacted).
        evidence: JSON-ready figures (redacted), by stage: ``gate``: ``metric``, ``n``,
            ``champion``, ``challenger``, ``difference``, ``lower``, ``confidence``,
            ``resamples``, ``seed``, ``min_change``; ``shadow`` and ``bake``: ``rows``,
            ``incumbent`` and ``candidate`` (each a score summary: ``n``, ``mean``,
            ``quantiles``, and ``histogram``: ``edges``, ``counts``), ``agreement``,
            ``psi``, ``error_rate``, ``p95_ms``; ``alarm``: ``alarm``, ``value``,
            ``threshold`` and the round's figures; ``wave``: ``wave``, ``targets``.
    """

    id: str
    time: str
    run_id: str | None
    stage: str
    verdict: str
    target: str | None = None
    model: str | None = None
    message: str | None = None
    evidence: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def new(
        cls,
        *,
        run_id: str | None,
        stage: str,
        verdict: str,
        target: str | None = None,
        model: str | None = None,
        message: str | None = None,
        evidence: Mapping[str, Any] | None = None,
    ) -> RolloutEvent:
        """A new record stamped now.

        Raises:
            ConfigurationError: an unknown stage.
        """
        if stage not in ROLLOUT_STAGES:
            raise ConfigurationError(f"unknown rollout stage {stage!r}; one of {ROLLOUT_STAGES}")
        return cls(
            id=_new_id(),
            time=_now(),
            run_id=run_id,
            stage=stage,
            verdict=verdict,
            target=target,
            model=strip_sas(model),
            message=redact(message) if message else None,
            evidence=_clean_data(evidence or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to the ledger."""
        return _clean_data(
            {
                "kind": "rollout",
                "schema": SCHEMA,
                "id": self.id,
                "time": self.time,
                "runId": self.run_id,
                "stage": self.stage,
                "verdict": self.verdict,
                "target": self.target,
                "model": self.model,
                "message": self.message,
                "evidence": dict(self.evidence),
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutEvent:
        """Read a rollout line (see :meth:`LedgerEntry.from_dict`)."""
        return cls(**_ROLLOUT_FIELDS.read(data, copy=False))


#: Any record of the ledger (one line).
Record = LedgerEntry | Intent | RunStart | JobRecord | RolloutEvent | OperationRecord


# -- reading: each record's members through the one tolerant reader (amlretrain._wire) --


def _metrics(value: Any) -> dict[str, float]:
    if value is not None and not isinstance(value, Mapping):
        raise TypeError("metrics is not an object")
    return {str(k): float(v) for k, v in (value or {}).items()}


def _texts(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value or ())


def _text(default: Any) -> Lenient:
    """A text member: its ``str`` (as written), ``default`` when absent."""
    return Lenient(str, missing=default)


_AS_READ = SCALAR  # kept as written (a model URL, an id, a message, or null)
_RUN_ID = Lenient(lambda v: v, missing=None)  # null or absent before schema 2
_COMMON = {
    "id": ("id", _text(REQUIRED)),
    "time": ("time", _text("")),
    "target": ("target", _text(REQUIRED)),
    "action": ("action", _text("deploy")),
    "previous_model": ("previousModel", _AS_READ),
    "new_model": ("newModel", _AS_READ),
    "metrics": ("metrics", Lenient(_metrics)),
    "job_id": ("jobId", _AS_READ),
    "rollback_of": ("rollbackOf", _AS_READ),
    "run_id": ("runId", _RUN_ID),
}
_OUTCOME_FIELDS = Fields(
    **_COMMON,
    outcome=("outcome", _text("succeeded")),
    serving_model=("servingModel", _AS_READ),
    request_ids=("requestIds", Lenient(lambda v: tuple(v or ()))),
    message=("message", _AS_READ),
    intents=("intents", Lenient(_texts)),
    reconciled=("reconciled", Lenient(bool)),
    evidence=("evidence", Lenient(lambda v: dict(v or {}))),
    schema=("schema", Lenient(int, missing=1)),  # a line of 0.1.0 has none
)
_INTENT_FIELDS = Fields(**_COMMON, request=("request", Lenient(lambda v: dict(v or {}))))
_RUN_START_FIELDS = Fields(
    id=_COMMON["id"],
    time=_COMMON["time"],
    run_id=("runId", _text(REQUIRED)),
    command=("command", _text("")),
    host=("host", _text("")),
    pid=("pid", Lenient(int, missing=0)),
    targets=("targets", Lenient(_texts)),
    fingerprint=("fingerprint", _AS_READ),
    resumed=("resumed", Lenient(bool, missing=False)),
)
_JOB_FIELDS = Fields(
    id=_COMMON["id"],
    time=_COMMON["time"],
    run_id=_COMMON["run_id"],
    job_id=("jobId", _text(REQUIRED)),
    status=("status", _text("Submitted")),
    service=("service", _AS_READ),
    data=("data", _AS_READ),
)

_ROLLOUT_FIELDS = Fields(
    id=_COMMON["id"],
    time=_COMMON["time"],
    run_id=_COMMON["run_id"],
    stage=("stage", _text(REQUIRED)),
    verdict=("verdict", _text("")),
    target=("target", _AS_READ),
    model=("model", _AS_READ),
    message=("message", _AS_READ),
    evidence=("evidence", Lenient(lambda v: dict(v or {}))),
)

_OPERATION_FIELDS = Fields(
    id=_COMMON["id"],
    time=_COMMON["time"],
    run_id=("runId", _text(REQUIRED)),
    target=_COMMON["target"],
    intent=("intent", _text(REQUIRED)),
    token=("token", _text(REQUIRED)),
    what=("what", _text("")),
    request_ids=("requestIds", Lenient(_texts)),
)

_READERS: dict[str, Any] = {
    "operation": OperationRecord.from_dict,
    "rollout": RolloutEvent.from_dict,
    "outcome": LedgerEntry.from_dict,
    "intent": Intent.from_dict,
    "run-start": RunStart.from_dict,
    "job": JobRecord.from_dict,
}


@attrs.frozen
class LedgerProblem:
    """A line that could not be read: its number (1-based) and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"ledger line {self.line} {self.reason}: skipped"


@attrs.frozen
class LedgerContents:
    """Everything read from the ledger: the records (oldest first) and the bad lines."""

    records: tuple[Record, ...]
    problems: tuple[LedgerProblem, ...] = ()


def parse(data: bytes) -> LedgerContents:
    """Split ledger bytes into records; report torn, non-UTF-8 and non-JSON lines."""
    records: list[Record] = []
    problems: list[LedgerProblem] = []
    lines = data.split(b"\n")
    torn_last = bool(lines and lines[-1].strip())
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        if torn_last and number == len(lines):
            problems.append(LedgerProblem(number, "is torn (a crash while it was written?)"))
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(LedgerProblem(number, "is not UTF-8"))
            continue
        try:
            obj = json.loads(text)
        except ValueError:
            problems.append(LedgerProblem(number, "is not JSON"))
            continue
        try:
            if not isinstance(obj, Mapping):
                raise TypeError("not an object")
            kind = find_key(obj, "kind")
            reader = _READERS.get(str(obj[kind]) if kind is not None else "outcome")
            if reader is None:
                continue  # a record kind of a later version: not ours to judge
            records.append(reader(obj))
        except (ValueError, KeyError, TypeError) as err:
            problems.append(LedgerProblem(number, f"is not a ledger record ({err})"))
    return LedgerContents(tuple(records), tuple(problems))


@attrs.frozen
class Pending:
    """A target whose ledger is open: intents without an outcome, or an unknown outcome.

    Attributes:
        target: the target key.
        intents: the open intents, oldest first.
        unknown: the latest outcome, when it is ``unknown``.
    """

    target: str
    intents: tuple[Intent, ...] = ()
    unknown: LedgerEntry | None = None

    @property
    def latest(self) -> Intent | None:
        """The latest open intent (the change most likely to have landed)."""
        return self.intents[-1] if self.intents else None
