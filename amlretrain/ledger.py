"""The write-ahead history of deployments, without secrets.

One JSON object per line (JSON Lines), appended and never rewritten. Since schema 2 a
run writes, in this order:

* ``run-start``: the run began and the ledger was proven writable (before anything is
  trained or changed);
* ``job``: a training job's id, as soon as the submit answered (before it is started),
  and later its end;
* ``intent``: before each change to a target: the previous and the new model and the
  exact request (method, URL, body with every SAS and key removed);
* ``outcome`` (an :class:`LedgerEntry`): after it, what the target serves. An intent
  with no outcome, or an outcome ``unknown``, is *open*: :func:`amlretrain.reconcile`
  reads the target and appends what it really serves.

Lines of 0.1.0 (schema 1: outcomes only, no ``kind``) read unchanged. A torn last line
(a crash while writing) or a line that is not UTF-8 or not JSON is reported with its
line number (:attr:`LedgerContents.problems`) and skipped; the next append starts on a
line of its own.

A local file by default; an append blob optionally (:class:`BlobLedgerBackend`).

Example:
    >>> import tempfile, os
    >>> ledger = Ledger(os.path.join(tempfile.mkdtemp(), "history.jsonl"))
    >>> entry = ledger.append(LedgerEntry.new(target="arm:/subscriptions/s/.../webServices/w",
    ...     action="deploy", outcome="succeeded", new_model="https://a/c/m.ilearner?sig=x"))
    >>> ledger.entries("arm:/subscriptions/s/.../webServices/w")[0].new_model
    'https://a/c/m.ilearner'
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from amlretrain._redact import redact, redact_data
from amlretrain._wire import REQUIRED, SCALAR, Fields, Lenient, find_key
from amlretrain.blobs import strip_sas  # re-exported for compatibility: it lives in blobs
from amlretrain.errors import ConfigurationError, LedgerError

if TYPE_CHECKING:
    from amlretrain.locks import TargetLocks

__all__ = [
    "ACTIONS",
    "OUTCOMES",
    "SCHEMA",
    "BlobLedgerBackend",
    "FileLedgerBackend",
    "Intent",
    "JobRecord",
    "Ledger",
    "LedgerBackend",
    "LedgerContents",
    "LedgerEntry",
    "LedgerProblem",
    "Pending",
    "RunStart",
    "strip_sas",
]

log = logging.getLogger(__name__)

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
    """

    id: str
    time: str
    run_id: str
    command: str
    host: str
    pid: int
    targets: tuple[str, ...] = ()

    @classmethod
    def new(cls, *, run_id: str, command: str, targets: Sequence[str]) -> RunStart:
        """A new record for this process, stamped now."""
        return cls(
            id=_new_id(),
            time=_now(),
            run_id=run_id,
            command=command,
            host=socket.gethostname(),
            pid=os.getpid(),
            targets=tuple(targets),
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
    """

    id: str
    time: str
    run_id: str | None
    job_id: str
    status: str
    service: str | None = None

    @classmethod
    def new(
        cls, *, run_id: str | None, job_id: str, status: str, service: str | None = None
    ) -> JobRecord:
        """A new record stamped now."""
        return cls(
            id=_new_id(),
            time=_now(),
            run_id=run_id,
            job_id=job_id,
            status=status,
            service=redact(strip_sas(service) or "") or None,
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
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobRecord:
        """Read a job line (see :meth:`LedgerEntry.from_dict`)."""
        return cls(**_JOB_FIELDS.read(data, copy=False))


Record = LedgerEntry | Intent | RunStart | JobRecord


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
)
_JOB_FIELDS = Fields(
    id=_COMMON["id"],
    time=_COMMON["time"],
    run_id=_COMMON["run_id"],
    job_id=("jobId", _text(REQUIRED)),
    status=("status", _text("Submitted")),
    service=("service", _AS_READ),
)

_READERS: dict[str, Any] = {
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


class LedgerBackend(Protocol):
    """Where ledger lines live: read all, append one (never rewriting)."""

    def read_bytes(self) -> bytes:
        """Everything written so far (empty when nothing was)."""
        ...

    def append_line(self, line: str) -> None:
        """Append one whole line (without its newline), on a line of its own."""
        ...


class FileLedgerBackend:
    """A local JSON Lines file: each append is one whole line, locked, checked, fsynced.

    When the file does not end with a newline (its last line was torn by a crash), the
    append starts a new line first, so the torn line is never glued to the next entry.
    """

    _locks: dict[str, threading.Lock] = {}
    _locks_guard = threading.Lock()

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        with self._locks_guard:
            self._lock = self._locks.setdefault(str(self.path.resolve()), threading.Lock())

    def __repr__(self) -> str:
        return f"FileLedgerBackend({str(self.path)!r})"

    def read_bytes(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""
        except OSError as err:
            raise ConfigurationError(f"cannot read ledger {self.path}: {err.strerror}") from err

    def append_line(self, line: str) -> None:
        data = (line + "\n").encode("utf-8")
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            except OSError as err:
                raise LedgerError(f"cannot write ledger {self.path}: {err.strerror}") from err
            try:
                with _file_lock(fd):
                    size = os.fstat(fd).st_size
                    if size and os.pread(fd, 1, size - 1) != b"\n":
                        data = b"\n" + data
                    _write_all(fd, data)
                    os.fsync(fd)
            except OSError as err:
                raise LedgerError(f"cannot write ledger {self.path}: {err.strerror}") from err
            finally:
                os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # pragma: no cover - os.write raises instead on Linux
            raise OSError(28, "No space left on device")
        view = view[written:]


@contextlib.contextmanager
def _file_lock(fd: int) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: O_APPEND writes of one line suffice
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


class BlobLedgerBackend:
    """A ledger in an append blob, through an azure-storage-blob ``BlobClient``.

    Each line is one append block (atomic in Azure Storage).

    Args:
        blob_client: ``azure.storage.blob.BlobClient`` of the ledger blob (created as an
            append blob when missing).
        locks: the per-target leases of the runs sharing this ledger (a
            :class:`~amlretrain.locks.BlobTargetLocks` in the same container); needed
            by runs that change targets.
    """

    def __init__(self, blob_client: Any, *, locks: TargetLocks | None = None) -> None:
        self._blob = blob_client
        self.locks = locks

    def __repr__(self) -> str:
        return f"BlobLedgerBackend({strip_sas(self._blob.url)!r})"

    @property
    def blob_client(self) -> Any:
        """The ledger blob's ``BlobClient``."""
        return self._blob

    def read_bytes(self) -> bytes:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            data: bytes = self._blob.download_blob().readall()
        except ResourceNotFoundError:
            return b""
        return data

    def append_line(self, line: str) -> None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        data = (line + "\n").encode("utf-8")
        try:
            try:
                size = int(self._blob.get_blob_properties().size)
            except ResourceNotFoundError:
                self._blob.create_append_blob()
                size = 0
            if size:
                last = self._blob.download_blob(offset=size - 1, length=1).readall()
                if last != b"\n":
                    data = b"\n" + data
            self._blob.append_block(data)
        except AzureError as err:
            raise LedgerError(f"cannot write ledger blob: {redact(str(err))}") from err


class Ledger:
    """The deployment history.

    Args:
        path: a local JSON Lines file (default ``.amlretrain/ledger.jsonl``), or
        backend: any :class:`LedgerBackend` (e.g. :class:`BlobLedgerBackend`).
    """

    DEFAULT_PATH = Path(".amlretrain") / "ledger.jsonl"

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        backend: LedgerBackend | None = None,
    ) -> None:
        if backend is not None and path is not None:
            raise ConfigurationError("give a ledger path or a backend, not both")
        self.backend: LedgerBackend = backend or FileLedgerBackend(path or self.DEFAULT_PATH)
        self._locks: TargetLocks | None = None
        self._warned: set[tuple[int, str]] = set()

    def __repr__(self) -> str:
        where = getattr(self.backend, "path", None)
        return f"Ledger({str(where)!r})" if where is not None else f"Ledger({self.backend!r})"

    # -- writing -------------------------------------------------------------------------

    def append(self, record: Record) -> Any:
        """Append ``record`` (an outcome, intent, run start or job) and return it.

        Raises:
            LedgerError: the line could not be written.
        """
        self.backend.append_line(json.dumps(record.to_dict(), ensure_ascii=False))
        return record

    def begin_run(self, *, run_id: str, command: str, targets: Sequence[str]) -> RunStart:
        """Prove the ledger writable by appending (and syncing) a ``run-start`` record.

        Raises:
            ConfigurationError: it cannot be written (nothing was changed).
        """
        record = RunStart.new(run_id=run_id, command=command, targets=targets)
        try:
            self.append(record)
        except LedgerError as err:
            raise ConfigurationError(f"{err}; nothing was changed") from err
        return record

    # -- reading -------------------------------------------------------------------------

    def read(self) -> LedgerContents:
        """Every record and every unreadable line (a warning is logged once for each)."""
        if hasattr(self.backend, "read_bytes"):
            raw = self.backend.read_bytes()
        else:  # a backend of 0.1.0's protocol (read_lines)
            lines: list[str] = getattr(self.backend, "read_lines")()  # noqa: B009
            raw = "\n".join(lines).encode("utf-8") + b"\n"
        contents = parse(raw)
        for problem in contents.problems:
            key = (problem.line, problem.reason)
            if key not in self._warned:
                self._warned.add(key)
                log.warning("%s", problem)
        return contents

    @property
    def problems(self) -> tuple[LedgerProblem, ...]:
        """The lines that cannot be read (torn, not UTF-8, not JSON)."""
        return self.read().problems

    def entries(self, target: str | None = None) -> list[LedgerEntry]:
        """Every outcome (of ``target``, when given), oldest first; bad lines skipped."""
        return [
            r
            for r in self.read().records
            if isinstance(r, LedgerEntry) and (target is None or r.target == target)
        ]

    def intents(self, target: str | None = None) -> list[Intent]:
        """Every intent (of ``target``, when given), oldest first."""
        return [
            r
            for r in self.read().records
            if isinstance(r, Intent) and (target is None or r.target == target)
        ]

    def pending(self, target: str | None = None) -> list[Pending]:
        """The targets with open intents or an unknown latest outcome."""
        opened: dict[str, list[Intent]] = {}
        closed: set[str] = set()
        latest: dict[str, LedgerEntry] = {}
        for record in self.read().records:
            if isinstance(record, Intent):
                opened.setdefault(record.target, []).append(record)
            elif isinstance(record, LedgerEntry) and record.action != "gate":
                if not record.is_unknown:  # an unknown outcome leaves its intents open
                    closed.update(record.intents)
                latest[record.target] = record
        out = []
        for key in dict.fromkeys([*opened, *latest]):
            if target is not None and key != target:
                continue
            still = tuple(i for i in opened.get(key, ()) if i.id not in closed)
            last = latest.get(key)
            unknown = last if last is not None and last.is_unknown else None
            if still or unknown:
                out.append(Pending(key, still, unknown))
        return out

    def open_jobs(self) -> list[JobRecord]:
        """Training jobs whose last record says they may still run (or never started).

        A submit whose answer never came (``Submitting`` without a job id after it) is
        listed too, with ``job_id`` empty: the service may hold a job nobody knows the
        id of.
        """
        last: dict[str, JobRecord] = {}
        submitting: dict[str | None, JobRecord] = {}
        for record in self.read().records:
            if not isinstance(record, JobRecord):
                continue
            if record.job_id:
                last[record.job_id] = record
                submitting.pop(record.run_id, None)
            elif record.status == "Submitting":
                submitting[record.run_id] = record
            else:  # NotSubmitted, or reconcile's Orphaned for an unknown id
                submitting.pop(record.run_id, None)
        return [job for job in last.values() if not job.ended] + list(submitting.values())

    def get(self, entry_id: str) -> LedgerEntry:
        """The entry with this id (a unique prefix is enough).

        Raises:
            ConfigurationError: no entry, or several, match.
        """
        matches = [e for e in self.entries() if e.id == entry_id or e.id.startswith(entry_id)]
        exact = [e for e in matches if e.id == entry_id]
        if exact:
            return exact[0]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ConfigurationError(f"no ledger entry {entry_id!r}")
        raise ConfigurationError(
            f"ledger entry id {entry_id!r} is ambiguous ({len(matches)} match)"
        )

    def serving(self, target: str) -> LedgerEntry | None:
        """The latest entry of ``target`` that changed what it serves (verified), or None."""
        for entry in reversed(self.entries(target)):
            if entry.serving_model and entry.outcome in ("succeeded", "restored"):
                return entry
        return None

    def last_known(self, target: str) -> str | None:
        """What the latest outcome of ``target`` says it serves (None: unknown or none)."""
        for entry in reversed(self.entries(target)):
            if entry.action == "gate":
                continue
            return None if entry.is_unknown else entry.serving_model
        return None

    def metrics_of(self, target: str, model: str | None) -> Mapping[str, float] | None:
        """The metrics recorded when ``model`` was deployed to ``target``, if any."""
        wanted = strip_sas(model)
        for entry in reversed(self.entries(target)):
            if entry.new_model == wanted and entry.metrics and entry.action in ("deploy", "gate"):
                return entry.metrics
        return None

    def deployments(self, target: str) -> list[LedgerEntry]:
        """The successful deployments and rollbacks of ``target``, oldest first."""
        return [
            e
            for e in self.entries(target)
            if e.outcome == "succeeded" and e.action in ("deploy", "rollback")
        ]

    # -- leases --------------------------------------------------------------------------

    @property
    def locks(self) -> TargetLocks:
        """The per-target leases beside this ledger (one deployment per target at a time).

        A local file: OS file locks in ``<folder>/locks``. A blob: the backend's
        ``locks`` (blob leases on ``<folder>/locks/*.lock`` in the ledger's container
        when built from a retrain.toml).

        Raises:
            ConfigurationError: a backend without locks.
        """
        if self._locks is None:
            self._locks = _locks_for(self.backend)
        return self._locks


def _locks_for(backend: LedgerBackend) -> TargetLocks:
    from amlretrain.locks import FileTargetLocks

    own: TargetLocks | None = getattr(backend, "locks", None)
    if own is not None:
        return own
    if isinstance(backend, FileLedgerBackend):
        return FileTargetLocks(backend.path.parent / "locks")
    raise ConfigurationError(
        f"the ledger backend {type(backend).__name__} has no per-target locks: give it a "
        "'locks' attribute (a TargetLocks, e.g. amlretrain.locks.BlobTargetLocks)"
    )
