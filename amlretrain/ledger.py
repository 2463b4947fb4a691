"""An append-only history of deployments, without secrets.

One JSON object per line (JSON Lines), appended and never rewritten: every deployment,
rejection, failure and rollback of a target, with the previous and new model references
(SAS stripped), the metrics, the times and the request ids. A local file by default;
a blob (append blob) optionally, by passing any object with the three methods of
:class:`LedgerBackend`.

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
import os
import secrets
import threading
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import attrs

from amlretrain._redact import redact, redact_data
from amlretrain.errors import ConfigurationError

__all__ = [
    "ACTIONS",
    "OUTCOMES",
    "BlobLedgerBackend",
    "FileLedgerBackend",
    "Ledger",
    "LedgerBackend",
    "LedgerEntry",
    "strip_sas",
]

#: What happened: a new model deployed, a model put back, a model refused by the gate.
ACTIONS = ("deploy", "rollback", "gate")
#: How it ended. ``restored``: the change failed and the previous model was put back.
OUTCOMES = ("succeeded", "failed", "rejected", "restored", "dry-run")


def strip_sas(uri: str | None) -> str | None:
    """A blob URL without its query string (the SAS), or None."""
    if not uri:
        return uri
    parts = urllib.parse.urlsplit(uri)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@attrs.frozen(kw_only=True)
class LedgerEntry:
    """One line of the ledger.

    Attributes:
        id: unique id of the entry (sortable by time).
        time: when it was recorded (UTC, ISO 8601).
        target: the target key (``arm:<resource id>`` or ``classic:<ws>/<svc>/<endpoint>``).
        action: ``deploy``, ``rollback`` or ``gate``.
        outcome: ``succeeded``, ``failed``, ``rejected``, ``restored`` or ``dry-run``.
        previous_model, new_model: model URLs without SAS.
        serving_model: the model the target serves after this entry, as verified
            (None when unknown, e.g. after a failure that could not be verified).
        metrics: the new model's evaluation metrics.
        job_id: the training job, when there was one.
        request_ids: ``x-ms-request-id`` of the changing requests.
        rollback_of: for a rollback, the id of the entry whose previous model was restored.
        message: a short human explanation (redacted).
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
    ) -> LedgerEntry:
        """A new entry stamped now, with SAS stripped and text redacted.

        Raises:
            ConfigurationError: an unknown action or outcome.
        """
        if action not in ACTIONS:
            raise ConfigurationError(f"unknown ledger action {action!r}; one of {ACTIONS}")
        if outcome not in OUTCOMES:
            raise ConfigurationError(f"unknown ledger outcome {outcome!r}; one of {OUTCOMES}")
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        return cls(
            id=f"{stamp}-{secrets.token_hex(3)}",
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
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to the ledger (camelCase members)."""
        data = {
            "id": self.id,
            "time": self.time,
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
        }
        clean: dict[str, Any] = redact_data(data)
        return clean

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerEntry:
        """Read a ledger line (tolerant of unknown members)."""
        return cls(
            id=str(data["id"]),
            time=str(data.get("time", "")),
            target=str(data["target"]),
            action=str(data.get("action", "deploy")),
            outcome=str(data.get("outcome", "succeeded")),
            previous_model=data.get("previousModel"),
            new_model=data.get("newModel"),
            serving_model=data.get("servingModel"),
            metrics={str(k): float(v) for k, v in (data.get("metrics") or {}).items()},
            job_id=data.get("jobId"),
            request_ids=tuple(data.get("requestIds") or ()),
            rollback_of=data.get("rollbackOf"),
            message=data.get("message"),
        )


class LedgerBackend(Protocol):
    """Where ledger lines live: read all, append one (atomically, never rewriting)."""

    def read_lines(self) -> list[str]:
        """Every line written so far, oldest first."""
        ...

    def append_line(self, line: str) -> None:
        """Append one line (without its newline)."""
        ...


class FileLedgerBackend:
    """A local JSON Lines file; appends are locked, flushed and fsynced."""

    _locks: dict[str, threading.Lock] = {}
    _locks_guard = threading.Lock()

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        with self._locks_guard:
            self._lock = self._locks.setdefault(str(self.path.resolve()), threading.Lock())

    def read_lines(self) -> list[str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as err:
            raise ConfigurationError(f"cannot read ledger {self.path}: {err.strerror}") from err
        return [line for line in text.splitlines() if line.strip()]

    def append_line(self, line: str) -> None:
        data = (line + "\n").encode("utf-8")
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            except OSError as err:
                raise ConfigurationError(
                    f"cannot write ledger {self.path}: {err.strerror}"
                ) from err
            try:
                with _file_lock(fd):
                    os.write(fd, data)
                    os.fsync(fd)
            finally:
                os.close(fd)


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

    Args:
        blob_client: ``azure.storage.blob.BlobClient`` of the ledger blob (created as an
            append blob when missing).
    """

    def __init__(self, blob_client: Any) -> None:
        self._blob = blob_client

    def read_lines(self) -> list[str]:
        if not self._blob.exists():
            return []
        text = self._blob.download_blob().readall().decode("utf-8")
        return [line for line in text.splitlines() if line.strip()]

    def append_line(self, line: str) -> None:
        if not self._blob.exists():
            self._blob.create_append_blob()
        self._blob.append_block((line + "\n").encode("utf-8"))


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

    def __repr__(self) -> str:
        where = getattr(self.backend, "path", type(self.backend).__name__)
        return f"Ledger({str(where)!r})"

    def append(self, entry: LedgerEntry) -> LedgerEntry:
        """Append ``entry`` and return it."""
        self.backend.append_line(json.dumps(entry.to_dict(), ensure_ascii=False))
        return entry

    def entries(self, target: str | None = None) -> list[LedgerEntry]:
        """Every entry (of ``target``, when given), oldest first.

        Raises:
            ConfigurationError: a line is not a ledger entry (names the line number).
        """
        out = []
        for number, line in enumerate(self.backend.read_lines(), start=1):
            try:
                entry = LedgerEntry.from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError) as err:
                raise ConfigurationError(
                    f"ledger line {number} is not a ledger entry: {err}"
                ) from err
            if target is None or entry.target == target:
                out.append(entry)
        return out

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
