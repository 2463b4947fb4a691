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
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from amlretrain._redact import redact
from amlretrain.blobs import strip_sas  # re-exported for compatibility: it lives in blobs
from amlretrain.errors import ConfigurationError, LedgerError

# The records are defined in amlretrain.records; imported from here too (as in 0.1.0).
from amlretrain.records import ACTIONS as ACTIONS
from amlretrain.records import OUTCOMES as OUTCOMES
from amlretrain.records import SCHEMA as SCHEMA
from amlretrain.records import Intent as Intent
from amlretrain.records import JobRecord as JobRecord
from amlretrain.records import LedgerContents as LedgerContents
from amlretrain.records import LedgerEntry as LedgerEntry
from amlretrain.records import LedgerProblem as LedgerProblem
from amlretrain.records import Pending as Pending
from amlretrain.records import Record as Record
from amlretrain.records import RunStart as RunStart
from amlretrain.records import new_run_id as new_run_id
from amlretrain.records import parse as parse

if TYPE_CHECKING:
    from amlretrain.history import History
    from amlretrain.locks import TargetLocks

__all__ = ["BlobLedgerBackend", "FileLedgerBackend", "Ledger", "LedgerBackend", "strip_sas"]

log = logging.getLogger(__name__)


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

    Appends from threads of one process that arrive while another is being written are
    written together (group commit): one ``write`` and one ``fsync`` for all of them,
    each line still whole and on its own line, and no append returns before its line was
    synced (or raises :class:`~amlretrain.errors.LedgerError` when the write of its
    group failed). Across processes the file is locked (``flock``) for each write.
    """

    _groups: dict[str, _GroupCommit] = {}
    _groups_guard = threading.Lock()

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        with self._groups_guard:
            self._group = self._groups.setdefault(str(self.path.resolve()), _GroupCommit())

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
        self._group.append((line + "\n").encode("utf-8"), self._write)

    def _write(self, data: bytes) -> None:
        """Append ``data`` (whole lines) to the file and sync it; raise LedgerError."""
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


class _GroupCommit:
    """Appends of one file in one process, written in groups by whoever holds the pen.

    An appender queues its bytes, then takes the pen: if a writer before it already
    wrote them (with its own), it returns (or raises that write's error); otherwise it
    writes everything queued so far in one call.
    """

    def __init__(self) -> None:
        self._pen = threading.Lock()
        self._queue_guard = threading.Lock()
        self._queue: list[_Queued] = []

    def append(self, data: bytes, write: Callable[[bytes], None]) -> None:
        mine = _Queued(data)
        with self._queue_guard:
            self._queue.append(mine)
        with self._pen:
            if not mine.done:
                with self._queue_guard:
                    group, self._queue = self._queue, []
                error: LedgerError | None = LedgerError("the ledger write was interrupted")
                try:
                    write(b"".join(q.data for q in group))
                    error = None
                except LedgerError as err:
                    error = err
                finally:  # an interrupted write fails every line of its group
                    for queued in group:
                        queued.error, queued.done = error, True
        if mine.error is not None:
            raise LedgerError(str(mine.error)) from mine.error


class _Queued:
    __slots__ = ("data", "done", "error")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.done = False
        self.error: LedgerError | None = None


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

    def begin_run(
        self,
        *,
        run_id: str,
        command: str,
        targets: Sequence[str],
        fingerprint: str | None = None,
        resumed: bool = False,
    ) -> RunStart:
        """Prove the ledger writable by appending (and syncing) a ``run-start`` record.

        Raises:
            ConfigurationError: it cannot be written (nothing was changed).
        """
        record = RunStart.new(
            run_id=run_id,
            command=command,
            targets=targets,
            fingerprint=fingerprint,
            resumed=resumed,
        )
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

    def history(self) -> History:
        """One read of the ledger, indexed by target and by run (:mod:`amlretrain.history`).

        A run asks its questions of one ``History`` instead of reading the ledger for
        each target; the methods below read afresh and ask one.
        """
        from amlretrain.history import History

        return History(self.read())

    def entries(self, target: str | None = None) -> list[LedgerEntry]:
        """Every outcome (of ``target``, when given), oldest first; bad lines skipped."""
        return self.history().entries(target)

    def intents(self, target: str | None = None) -> list[Intent]:
        """Every intent (of ``target``, when given), oldest first."""
        return self.history().intents(target)

    def pending(self, target: str | None = None) -> list[Pending]:
        """The targets with open intents or an unknown latest outcome."""
        return self.history().pending(target)

    def open_jobs(self) -> list[JobRecord]:
        """Training jobs whose last record says they may still run (or never started);
        see :meth:`amlretrain.history.History.open_jobs`."""
        return self.history().open_jobs()

    def get(self, entry_id: str) -> LedgerEntry:
        """The entry with this id (a unique prefix is enough).

        Raises:
            ConfigurationError: no entry, or several, match.
        """
        return self.history().get(entry_id)

    def serving(self, target: str) -> LedgerEntry | None:
        """The latest entry of ``target`` that changed what it serves (verified), or None."""
        return self.history().serving(target)

    def last_known(self, target: str) -> str | None:
        """What the latest outcome of ``target`` says it serves (None: unknown or none)."""
        return self.history().last_known(target)

    def metrics_of(self, target: str, model: str | None) -> Mapping[str, float] | None:
        """The metrics recorded when ``model`` was deployed to ``target``, if any."""
        return self.history().metrics_of(target, model)

    def deployments(self, target: str) -> list[LedgerEntry]:
        """The successful deployments and rollbacks of ``target``, oldest first."""
        return self.history().deployments(target)

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
