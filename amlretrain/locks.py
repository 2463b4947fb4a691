"""One deployment per target at a time: a mutual-exclusion lease per target.

Whoever changes a target holds its lease for the whole change; anyone else who asks for
it gets :class:`TargetLocked` (a :class:`~amlretrain.errors.ConflictError`, code
``TargetLocked``) naming the holder, *before* anything is changed. The lease lives beside
the ledger, so every run that shares a ledger shares the locks:

* a local ledger: an OS file lock (``filelock``) per target in a folder
  (:class:`FileTargetLocks`). It excludes threads of one process as well as processes;
  the OS frees it the moment its holder exits, however it exits (even SIGKILL).
* a blob ledger: an Azure Blob lease on a lock blob per target (:class:`BlobTargetLocks`),
  :data:`LEASE_SECONDS` long and renewed every :data:`RENEW_SECONDS` by a daemon thread
  while held, so a holder that crashed frees it within :data:`LEASE_SECONDS`. This one
  excludes machines too.

Each lock records its holder (``host:pid``, and the run id when given) so that the
loser's error, ``amlretrain locks list`` and :meth:`TargetLocks.list` can name it.

A blob lease taken with a run id can be *handed off* (:meth:`Lease.hand_off`: a swap
that does not wait for its long-running operation): on leaving the with-block it becomes
an infinite lease under an id derived from the run id and the target, its holder marked
``(deferred)``; the next :meth:`~TargetLocks.hold` of that target with the same run id
takes it back, in any process, and gives it a fresh id (a second attempt of the run is
refused like anyone else). ``amlretrain locks break`` ends an abandoned one.

Example:
    >>> import tempfile
    >>> locks = FileTargetLocks(Path(tempfile.mkdtemp()))
    >>> with locks.hold("classic:ws/svc/ep", run_id="r1") as lease:
    ...     [info.target for info in locks.list()]
    ['classic:ws/svc/ep']
    >>> locks.list()
    []
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import logging
import os
import posixpath
import re
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from amlretrain._redact import redact
from amlretrain.errors import ConfigurationError, ConflictError

if TYPE_CHECKING:
    from filelock import BaseFileLock

    from amlretrain.storage import BlobStore

__all__ = [
    "LEASE_SECONDS",
    "RENEW_SECONDS",
    "BlobTargetLocks",
    "FileTargetLocks",
    "Lease",
    "LockInfo",
    "TargetLocked",
    "TargetLocks",
    "lock_name",
    "locks_for",
]

log = logging.getLogger(__name__)

#: How long a blob lease lasts unless renewed (Azure allows 15 to 60 seconds).
LEASE_SECONDS = 15
#: How often the holder of a blob lease renews it.
RENEW_SECONDS = 5
#: A lock found held with no live holder recorded is being taken or given up right now:
#: look again for this long before reporting an unknown holder.
_GRACE_SECONDS = 1.0
_HOST = socket.gethostname()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _holder(run_id: str | None) -> str:
    holder = f"{_HOST}:{os.getpid()}"
    return f"{holder} run {redact(run_id)}" if run_id else holder


def lock_name(target: str) -> str:
    """The file or blob name stem of ``target``'s lock: a readable slug and a short hash.

    The slug is the end of the key with everything but letters, digits, ``.``, ``_`` and
    ``-`` turned into ``-``; the 16 hex digits of SHA-256 of the exact key after it keep
    two keys apart even where their slugs agree (truncation, case-insensitive disks).

    Example:
        >>> lock_name("classic:ws/svc/ep")
        'classic-ws-svc-ep-70da6a41bf2f6d65'
    """
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", target).strip("-.")
    readable = readable[-60:].lstrip("-.") or "target"
    digest = hashlib.sha256(target.encode("utf-8")).hexdigest()[:16]
    return f"{readable}-{digest}"


@attrs.frozen
class LockInfo:
    """Who holds the lock of a target.

    Attributes:
        target: the target key (``arm:<resource id>`` or ``classic:<ws>/<svc>/<endpoint>``).
        holder: ``host:pid`` of the holder, then `` run <run id>`` when it gave one.
        since: when it was taken (UTC, ISO 8601).
        expires: for a blob lease, when it lapses unless renewed; None for a file lock
            (held for as long as its process lives).
        where: the lock file's path or the lock blob's URL (never with a SAS).
    """

    target: str
    holder: str
    since: str
    expires: str | None
    where: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``amlretrain locks list --output json``."""
        return {
            "target": self.target,
            "holder": self.holder,
            "since": self.since,
            "expires": self.expires,
            "where": self.where,
        }


class TargetLocked(ConflictError):
    """The target's lock is held by another run (code ``TargetLocked``).

    Attributes:
        target: the target key.
        lock: the holder's record, when one could be read (None: not known yet).
    """

    def __init__(
        self,
        target: str,
        lock: LockInfo | None,
        *,
        waited: float = 0.0,
        message: str | None = None,
    ) -> None:
        self.target = target
        self.lock = lock
        if message is None:
            if lock is not None:
                who = f"{lock.holder} since {lock.since}"
            else:
                who = "another run (its holder record is not written yet)"
            waited_text = f" (waited {waited:g} s)" if waited > 0 else ""
            message = (
                f"target {target} is being deployed by {who}{waited_text}; "
                "wait with --wait-lock SECONDS or retry later"
            )
        super().__init__(message, code="TargetLocked")


class Lease:
    """A held lock, as yielded by :meth:`TargetLocks.hold`.

    Attributes:
        target: the target key.
    """

    def __init__(self, target: str, info: LockInfo, last_released: float | None = None) -> None:
        self.target = target
        self._info = info
        self._lost = False
        #: When the lock was last released cleanly (``time.time()``), as its previous
        #: holder recorded it; 0.0 when it was never held; None when the last holder did
        #: not release it (a crash, a lost lease, a hand-off): anything may have happened.
        self.last_released = last_released
        #: True when :meth:`hand_off` is possible (a blob lease taken with a run id).
        self.can_hand_off = False
        self._hand_off = False

    def __repr__(self) -> str:
        state = " lost" if self._lost else ""
        return f"<Lease {self.target!r} held by {self._info.holder!r}{state}>"

    @property
    def info(self) -> LockInfo:
        """The holder's record (for a blob lease, ``expires`` moves on with each renewal)."""
        return self._info

    @property
    def lost(self) -> bool:
        """True once a renewal failed: the blob lease expired or was broken or taken.

        A file lock is never lost while its process lives.
        """
        return self._lost

    @property
    def handed_off(self) -> bool:
        """True once :meth:`hand_off` was asked for."""
        return self._hand_off

    def hand_off(self) -> None:
        """Keep the lock held for this run after the with-block, instead of releasing it.

        A blob lease becomes infinite, under an id derived from the run and the target,
        and its holder record says ``(deferred)``: the next :meth:`TargetLocks.hold` of
        the same target with the same run id takes it back (in any process); every other
        run finds the target locked until then (or until ``amlretrain locks break``).

        Raises:
            ConfigurationError: this lock cannot outlive its holder (a file lock).
        """
        if not self.can_hand_off:
            raise ConfigurationError(
                f"the lock of {self.target} cannot be handed off: only a blob ledger's "
                "leases (taken with a run id) outlive their holder"
            )
        self._hand_off = True


class TargetLocks(Protocol):
    """Per-target mutual exclusion: :class:`FileTargetLocks` or :class:`BlobTargetLocks`."""

    def hold(
        self, target: str, *, wait: float = 0.0, run_id: str | None = None
    ) -> AbstractContextManager[Lease]:
        """Take ``target``'s lock for the with-block; released on leaving it, however.

        Args:
            target: the target key.
            wait: seconds to keep trying while another run holds it (0: try once).
            run_id: recorded in the holder (``host:pid run <run_id>``).

        Raises:
            TargetLocked: another run holds it (still, after ``wait`` seconds).
        """
        ...

    def list(self) -> builtins.list[LockInfo]:
        """The locks held now, by anyone."""
        ...

    def break_lock(self, target: str) -> bool:
        """Break ``target``'s lock; True when it was held and is now broken."""
        ...


class LedgerSettings(Protocol):
    """What :func:`locks_for` reads of a :class:`~amlretrain.config.RetrainConfig`."""

    @property
    def ledger_path(self) -> str: ...

    @property
    def ledger_blob(self) -> str | None: ...

    def resolve(self, path: str) -> Path: ...

    def store(self) -> BlobStore: ...


def locks_for(config: LedgerSettings) -> TargetLocks:
    """The locks beside a config's ledger (:attr:`amlretrain.ledger.Ledger.locks`).

    A blob ledger (``[ledger] blob = "container/path/ledger.jsonl"``): blob leases in that
    container under ``path/locks/``. A local ledger: file locks in a ``locks`` folder beside
    the ledger file. :meth:`RetrainConfig.ledger` hands these to the ledger it builds.
    """
    if config.ledger_blob:
        container, _, name = config.ledger_blob.partition("/")
        folder = posixpath.dirname(name)
        prefix = f"{folder}/locks/" if folder else "locks/"
        client = config.store().service.get_container_client(container)
        return BlobTargetLocks(client, prefix)
    return FileTargetLocks(config.resolve(config.ledger_path).parent / "locks")


# -- file locks ---------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs (a zombie does not); True if unsure."""
    if sys.platform == "win32":  # pragma: no cover - os.kill would terminate it there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): kill(0) is all we know
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


class FileTargetLocks:
    """OS file locks, one per target, in ``folder`` (for a local ledger).

    Each target has a lock file ``<lock_name>.lock`` and, while held, a holder record
    ``<lock_name>.holder.json`` written after the lock was taken and removed before it is
    given back. Every :meth:`hold` opens the lock file anew (a ``filelock.FileLock`` of its
    own, ``thread_local=False``, not a singleton): ``flock`` locks belong to an open file,
    so two holds exclude each other between threads of one process as well as between
    processes. The OS frees the lock when its process exits, however it exits.

    Args:
        folder: where the lock files live (created on first hold).
        poll_seconds: how often a waiting :meth:`hold` tries again.
    """

    def __init__(self, folder: str | os.PathLike[str], *, poll_seconds: float = 0.1) -> None:
        self.folder = Path(folder)
        self.poll_seconds = poll_seconds

    def __repr__(self) -> str:
        return f"FileTargetLocks({str(self.folder)!r})"

    def _paths(self, target: str) -> tuple[Path, Path]:
        stem = lock_name(target)
        return self.folder / f"{stem}.lock", self.folder / f"{stem}.holder.json"

    @staticmethod
    def _try(path: Path) -> BaseFileLock | None:
        """The ``FileLock`` of ``path`` taken without waiting, or None when it is held.

        Raises:
            ConfigurationError: the lock file cannot be opened (permissions, no folder).
        """
        from filelock import FileLock, Timeout

        # A new instance per attempt (not a singleton, the default): its own open file.
        lock = FileLock(path, thread_local=False)
        try:
            lock.acquire(blocking=False)
        except Timeout:
            return None
        except OSError as err:
            raise ConfigurationError(f"cannot open the lock file {path}: {err.strerror}") from err
        return lock

    @staticmethod
    def _read(record: Path) -> tuple[LockInfo, str, int] | None:
        """A holder record: its LockInfo, host and pid (None: absent or unreadable)."""
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
            info = LockInfo(
                target=str(data["target"]),
                holder=str(data["holder"]),
                since=str(data["since"]),
                expires=None,
                where=str(data["where"]),
            )
            return info, str(data["host"]), int(data["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @classmethod
    def _live_holder(cls, record: Path) -> LockInfo | None:
        """The record's holder unless it is a process of this host that is gone."""
        found = cls._read(record)
        if found is None:
            return None
        info, host, pid = found
        if host == _HOST and not _pid_alive(pid):
            return None
        return info

    @contextlib.contextmanager
    def hold(self, target: str, *, wait: float = 0.0, run_id: str | None = None) -> Iterator[Lease]:
        """Take ``target``'s file lock for the with-block (see :meth:`TargetLocks.hold`).

        Raises:
            TargetLocked: another thread or process holds it (still, after ``wait`` s).
            ConfigurationError: the lock folder cannot be created or written.
        """
        path, record = self._paths(target)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigurationError(
                f"cannot create the lock folder {self.folder}: {err.strerror}"
            ) from err
        start = time.monotonic()
        lock = self._try(path)
        while lock is None:
            elapsed = time.monotonic() - start
            holder = self._live_holder(record)
            if elapsed >= wait and (holder is not None or elapsed >= wait + _GRACE_SECONDS):
                raise TargetLocked(target, holder, waited=wait)
            time.sleep(self.poll_seconds)
            lock = self._try(path)
        try:
            released = self._released(record)
            info = LockInfo(
                target=target,
                holder=_holder(run_id),
                since=_iso(_now()),
                expires=None,
                where=str(path),
            )
            self._write(record, info)
            try:
                yield Lease(target, info, released)
            finally:
                # The holder's record becomes a release record while the lock is still
                # ours: the next holder knows no one held it since.
                with contextlib.suppress(ConfigurationError):
                    # Unwritable: the holder record stays, and the next holder reads again.
                    self._write_json(record, {"released": time.time(), "target": target})
        finally:
            lock.release()

    @staticmethod
    def _released(record: Path) -> float | None:
        """The release time the previous holder left (0.0: none ever held the lock;
        None: the last one did not release it cleanly)."""
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return 0.0
        except (OSError, ValueError):
            return None
        value = data.get("released") if isinstance(data, dict) else None
        return float(value) if isinstance(value, int | float) else None

    @classmethod
    def _write(cls, record: Path, info: LockInfo) -> None:
        cls._write_json(record, {**info.to_dict(), "host": _HOST, "pid": os.getpid()})

    @staticmethod
    def _write_json(record: Path, data: dict[str, Any]) -> None:
        tmp = record.with_name(f"{record.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, record)
        except OSError as err:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise ConfigurationError(
                f"cannot write the lock record {record}: {err.strerror}"
            ) from err

    def list(self) -> builtins.list[LockInfo]:
        """The file locks held now, oldest first.

        A record whose process (on this host) is gone is not a lock; for the others the
        lock file is tried without waiting, so only locks really held are reported.
        """
        out = []
        for record in sorted(self.folder.glob("*.holder.json")):
            holder = self._live_holder(record)
            if holder is None:
                continue
            lock = self._try(record.with_name(record.name.removesuffix(".holder.json") + ".lock"))
            if lock is not None:  # the record outlived its holder (e.g. a reused pid)
                lock.release()
                continue
            out.append(holder)
        return sorted(out, key=lambda info: info.since)

    def break_lock(self, target: str) -> bool:
        """Clean up after a holder that is gone; refuse while the holder lives.

        An OS file lock cannot be taken from a live process, and it is freed the moment
        that process exits: so there is never a held file lock to break. A record left by a
        dead holder is replaced by a ``broken`` one (the lock is taken meanwhile, so no new
        holder's record is): the next holder then reads its target again.

        Returns:
            False: the lock was not held (a stale record, if any, is gone).

        Raises:
            TargetLocked: a live process holds it; stop that process instead.
        """
        path, record = self._paths(target)
        if not path.exists():
            return False
        lock = self._try(path)
        if lock is None:
            holder = self._live_holder(record)
            who = holder.holder if holder else "a live process"
            raise TargetLocked(
                target,
                holder,
                message=f"target {target} is locked by {who}, which still runs: a file lock "
                "lasts as long as its process and is freed the moment it exits; stop that "
                "process instead of breaking its lock",
            )
        try:
            if record.exists():
                # Not deleted: the next holder must know its predecessor did not release
                # cleanly (it may have changed the target), so it reads the target again.
                self._write_json(record, {"broken": time.time(), "target": target})
        finally:
            lock.release()
        return False


# -- blob leases --------------------------------------------------------------------------

#: The namespace of the lease ids a hand-off derives from a run id and a target key.
_HANDOFF_NAMESPACE = uuid.UUID("5d0c6a52-8a7e-4b0e-9f1c-2b6f9c1d7a31")


def _handoff_id(target: str, run_id: str) -> str:
    """The lease id of ``target``'s lease handed off to ``run_id`` (the same everywhere)."""
    return str(uuid.uuid5(_HANDOFF_NAMESPACE, f"{run_id}\n{target}"))


_META_KEYS = ("target", "holder", "since", "expires")


def _to_metadata(info: LockInfo) -> dict[str, str]:
    safe = " :/@._-+()"
    values = {"target": info.target, "holder": info.holder, "since": info.since}
    if info.expires:
        values["expires"] = info.expires
    return {k: urllib.parse.quote(v, safe=safe) for k, v in values.items()}


def _from_metadata(metadata: Mapping[str, str] | None, where: str) -> LockInfo | None:
    meta = {k.lower(): urllib.parse.unquote(v) for k, v in (metadata or {}).items()}
    if not meta.get("target") or not meta.get("holder"):
        return None
    return LockInfo(
        target=meta["target"],
        holder=meta["holder"],
        since=meta.get("since", ""),
        expires=meta.get("expires") or None,
        where=where,
    )


def _released_of(metadata: Mapping[str, str] | None) -> float | None:
    """The release time a lock blob's last holder recorded (0.0: no holder ever; None: the
    last one did not release it cleanly: its record is still there)."""
    if not metadata:
        return 0.0
    for key, value in metadata.items():
        if key.lower() == "released":
            try:
                return float(value)
            except ValueError:
                return None
    return None


def _error_code(err: BaseException) -> str:
    code = getattr(err, "error_code", None)
    return str(getattr(code, "value", code) or "")


def _translate(err: BaseException, what: str) -> Exception:
    from amlretrain._errormap import error_from_azure

    return error_from_azure(err, context=what)


class BlobTargetLocks:
    """Azure Blob leases, one lock blob per target (for a blob ledger).

    The lock blob of a target is ``<prefix><lock_name>.lock`` (empty; created when
    missing, the container too). Its holder is in the blob's metadata (``target``,
    ``holder``, ``since``, ``expires``), written with the lease after it was taken. The
    lease lasts ``lease_seconds`` and a daemon thread renews it every ``renew_seconds``
    until the with-block ends; a holder that crashed stops renewing, and its lease lapses
    within ``lease_seconds``.

    Args:
        container_client: an ``azure.storage.blob.ContainerClient``.
        prefix: where the lock blobs live in the container.
        lease_seconds: the lease duration, 15 to 60 (Azure's bounds).
        renew_seconds: how often the holder renews (less than ``lease_seconds``).
        poll_seconds: how often a waiting :meth:`hold` tries again.

    Raises:
        ConfigurationError: durations out of range.
    """

    def __init__(
        self,
        container_client: Any,
        prefix: str = "locks/",
        *,
        lease_seconds: int = LEASE_SECONDS,
        renew_seconds: float = RENEW_SECONDS,
        poll_seconds: float = 1.0,
    ) -> None:
        if not 15 <= lease_seconds <= 60:
            raise ConfigurationError("a blob lease lasts 15 to 60 seconds")
        if not 0 < renew_seconds < lease_seconds:
            raise ConfigurationError("renew_seconds must be more than 0 and under the lease")
        self._container = container_client
        self.prefix = prefix
        self.lease_seconds = int(lease_seconds)
        self.renew_seconds = float(renew_seconds)
        self.poll_seconds = poll_seconds

    def __repr__(self) -> str:
        return f"BlobTargetLocks({self._where(self.prefix)!r})"

    def _where(self, name: str) -> str:
        from amlretrain.blobs import strip_sas

        base = strip_sas(str(self._container.url)) or ""
        return f"{base.rstrip('/')}/{name}"

    def _blob(self, target: str) -> tuple[Any, str]:
        name = f"{self.prefix}{lock_name(target)}.lock"
        return self._container.get_blob_client(name), self._where(name)

    def _create(self, blob: Any, where: str) -> None:
        from azure.core.exceptions import (
            AzureError,
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )

        try:
            try:
                blob.upload_blob(b"", overwrite=False)
            except ResourceNotFoundError:
                with contextlib.suppress(ResourceExistsError):
                    self._container.create_container()
                blob.upload_blob(b"", overwrite=False)
        except (ResourceExistsError, ResourceModifiedError):
            pass  # created meanwhile by another run: as good
        except AzureError as err:
            raise _translate(err, f"creating the lock blob {where}") from err

    def _holder_of(self, blob: Any, where: str) -> LockInfo | None:
        from azure.core.exceptions import AzureError

        try:
            props = blob.get_blob_properties()
        except AzureError:
            return None
        if props.lease.state != "leased":
            return None
        return _from_metadata(props.metadata, where)

    def _try(self, lease: Any, blob: Any, where: str) -> bool:
        """Take the lease (True) or find it taken (False)."""
        from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

        for attempt in range(3):
            try:
                lease.acquire(lease_duration=self.lease_seconds)
                return True
            except ResourceNotFoundError as err:
                if attempt == 2:  # pragma: no cover - deleted again and again
                    raise _translate(err, f"taking the lease of {where}") from err
                self._create(blob, where)
            except HttpResponseError as err:
                if err.status_code == 409 and _error_code(err) == "LeaseAlreadyPresent":
                    return False
                raise _translate(err, f"taking the lease of {where}") from err
            except AzureError as err:
                raise _translate(err, f"taking the lease of {where}") from err
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.contextmanager
    def hold(self, target: str, *, wait: float = 0.0, run_id: str | None = None) -> Iterator[Lease]:
        """Take ``target``'s blob lease for the with-block (see :meth:`TargetLocks.hold`).

        Raises:
            TargetLocked: another run holds it (still, after ``wait`` seconds).
            ServiceError: storage refused the lease or the lock blob.
        """
        from azure.core.exceptions import AzureError
        from azure.storage.blob import BlobLeaseClient

        blob, where = self._blob(target)
        lease = BlobLeaseClient(blob)
        start = time.monotonic()
        while not self._try(lease, blob, where):
            if run_id is not None and (adopted := self._adopt(blob, target, run_id)) is not None:
                lease = adopted  # handed off to this run earlier (Lease.hand_off)
                break
            elapsed = time.monotonic() - start
            holder = self._holder_of(blob, where)
            if elapsed >= wait and (holder is not None or elapsed >= wait + _GRACE_SECONDS):
                raise TargetLocked(target, holder, waited=wait)
            time.sleep(min(self.poll_seconds, max(0.05, wait - elapsed)))
        since = _now()
        info = LockInfo(
            target=target,
            holder=_holder(run_id),
            since=_iso(since),
            expires=_iso(since + timedelta(seconds=self.lease_seconds)),
            where=where,
        )
        try:
            released = _released_of(blob.get_blob_properties(lease=lease).metadata)
            blob.set_blob_metadata(_to_metadata(info), lease=lease)
        except AzureError as err:
            with contextlib.suppress(AzureError):
                lease.release()
            raise _translate(err, f"recording the holder of {where}") from err
        held = Lease(target, info, released)
        held.can_hand_off = run_id is not None
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew,
            args=(held, lease, blob, stop),
            name=f"amlretrain-lease-{lock_name(target)}",
            daemon=True,
        )
        renewer.start()
        try:
            yield held
        finally:
            stop.set()
            renewer.join()
            if held.lost:
                log.warning("the lease of %s was lost while held; not released", target)
            elif held.handed_off and run_id is not None:
                self._hand_off(held, lease, blob, run_id)
            else:
                try:
                    blob.set_blob_metadata({"released": repr(time.time())}, lease=lease)
                    lease.release()
                except AzureError as err:
                    log.warning(
                        "could not release the lease of %s (%s); it lapses within %d s",
                        target,
                        redact(str(getattr(err, "message", None) or err).splitlines()[0]),
                        self.lease_seconds,
                    )

    def _adopt(self, blob: Any, target: str, run_id: str) -> Any | None:
        """The lease handed off to ``run_id`` (:meth:`Lease.hand_off`), taken back under a
        new id of its own (so no other attempt of the run takes it too), or None."""
        from azure.core.exceptions import AzureError
        from azure.storage.blob import BlobLeaseClient

        try:
            props = blob.get_blob_properties()
            meta = {k.lower(): urllib.parse.unquote(v) for k, v in (props.metadata or {}).items()}
            if props.lease.state != "leased" or meta.get("handoff") != run_id:
                return None
            lease = BlobLeaseClient(blob, lease_id=_handoff_id(target, run_id))
            lease.acquire(lease_duration=self.lease_seconds)
            lease.change(str(uuid.uuid4()))
        except AzureError:
            return None  # not (or no longer) ours: the caller reports the holder
        log.info("took back the lease of %s handed off to run %s", target, run_id)
        return lease

    def _hand_off(self, held: Lease, lease: Any, blob: Any, run_id: str) -> None:
        """Make the lease infinite under the run's hand-off id, its holder ``(deferred)``."""
        from azure.core.exceptions import AzureError

        info = attrs.evolve(held.info, holder=f"{held.info.holder} (deferred)", expires=None)
        try:
            metadata = _to_metadata(info)
            metadata["handoff"] = urllib.parse.quote(run_id, safe=" :/@._-+()")
            blob.set_blob_metadata(metadata, lease=lease)
            lease.change(_handoff_id(held.target, run_id))
            lease.acquire(lease_duration=-1)  # the same id: the lease no longer lapses
        except AzureError as err:
            log.warning(
                "could not hand off the lease of %s to run %s (%s); it lapses within %d s",
                held.target,
                run_id,
                redact(str(getattr(err, "message", None) or err).splitlines()[0]),
                self.lease_seconds,
            )
            return
        held._info = info
        log.info("the lease of %s is handed off to run %s (deferred)", held.target, run_id)

    def _renew(self, held: Lease, lease: Any, blob: Any, stop: threading.Event) -> None:
        """Renew every ``renew_seconds`` until ``stop``; on a refusal, mark the lease lost."""
        from azure.core.exceptions import AzureError, HttpResponseError

        last_renewed = time.monotonic()
        while not stop.wait(self.renew_seconds):
            try:
                lease.renew()
            except AzureError as err:
                refused = isinstance(err, HttpResponseError) and err.status_code in (409, 412)
                lapsed = time.monotonic() - last_renewed >= self.lease_seconds
                reason = redact(str(getattr(err, "message", None) or err).splitlines()[0])
                if refused or lapsed:
                    held._lost = True
                    log.warning(
                        "lost the lease of %s: renewal failed (%s); another run may take it",
                        held.target,
                        reason,
                    )
                    return
                log.warning("renewing the lease of %s failed (%s); retrying", held.target, reason)
                continue
            last_renewed = time.monotonic()
            expires = _iso(_now() + timedelta(seconds=self.lease_seconds))
            held._info = attrs.evolve(held._info, expires=expires)
            try:
                blob.set_blob_metadata(_to_metadata(held._info), lease=lease)
            except AzureError:
                log.debug("could not record the new expiry of %s", held.target, exc_info=True)

    def list(self) -> builtins.list[LockInfo]:
        """The lock blobs under the prefix whose lease is held now, oldest first.

        Raises:
            ServiceError: storage refused the listing.
        """
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        out = []
        try:
            for props in self._container.list_blobs(
                name_starts_with=self.prefix, include=["metadata"]
            ):
                if not props.name.endswith(".lock") or props.lease.state != "leased":
                    continue
                where = self._where(props.name)
                info = _from_metadata(props.metadata, where)
                out.append(info or LockInfo(props.name, "unknown", "", None, where))
        except ResourceNotFoundError:
            return []
        except AzureError as err:
            raise _translate(err, f"listing the locks in {self._where(self.prefix)}") from err
        return sorted(out, key=lambda info: info.since)

    def break_lock(self, target: str) -> bool:
        """Break ``target``'s lease at once (its holder finds it lost at its next renewal).

        Returns:
            True when it was held and is now broken; False when it was not held.

        Raises:
            ServiceError: storage refused the break.
        """
        from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
        from azure.storage.blob import BlobLeaseClient

        blob, where = self._blob(target)
        try:
            if blob.get_blob_properties().lease.state != "leased":
                return False
            BlobLeaseClient(blob).break_lease(lease_break_period=0)
        except ResourceNotFoundError:
            return False
        except HttpResponseError as err:
            if err.status_code == 409 and "LeaseNotPresent" in _error_code(err):
                return False  # released meanwhile
            raise _translate(err, f"breaking the lease of {where}") from err
        except AzureError as err:
            raise _translate(err, f"breaking the lease of {where}") from err
        log.warning("broke the lease of %s (%s)", target, where)
        return True
