"""Measuring probes on the emulator, installed from the benchmark process (no file edits).

The emulator logs ``(method, path, status)`` per request but neither body sizes nor
service times, so :class:`ServerProbe` wraps ``Server.dispatch`` (routing, faults and
the handler: the emulator's own work, without HTTP parsing or socket writes) and the
batch jobs' run, recording what the benchmarks need. Everything is restored on exit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs

__all__ = [
    "Served",
    "ServerProbe",
    "add_endpoints",
    "emulator",
    "intervals_union",
    "settings",
]

#: Process-wide switches set by ``python -m bench`` flags.
settings = {"nodelay": True}


@attrs.frozen(kw_only=True)
class Served:
    """One request as the emulator served it."""

    method: str
    path: str
    route: str
    status: int
    request_bytes: int
    response_bytes: int
    started: float
    ended: float
    thread: int
    body: bytes = b""

    @property
    def seconds(self) -> float:
        """Time spent in the emulator's dispatch."""
        return self.ended - self.started


_MISSING = object()


class ServerProbe:
    """Records every request the emulator serves, and every batch job's run interval."""

    def __init__(self) -> None:
        self.served: list[Served] = []
        self.jobs: dict[str, tuple[float, float | None]] = {}  # id -> (started, ended)
        self.connections = 0
        self._lock = threading.Lock()
        self._saved: list[tuple[Any, str, Any]] = []

    def clear(self) -> None:
        """Forget what was recorded."""
        with self._lock:
            self.served.clear()
            self.jobs.clear()
            self.connections = 0

    def _patch(self, owner: Any, name: str, value: Any) -> None:
        self._saved.append((owner, name, owner.__dict__.get(name, _MISSING)))
        setattr(owner, name, value)

    def install(self) -> None:
        """Wrap the emulator's server and batch classes (process-wide)."""
        from amlretrain.emulator import _server
        from amlretrain.emulator.batch import BatchApi

        probe = self
        dispatch = _server.Server.dispatch
        setup = _server._RequestHandler.setup
        run = BatchApi._run
        end = BatchApi._end

        def timed_dispatch(
            server: Any, method: str, target: str, headers: dict[str, str], body: bytes
        ) -> Any:
            started = time.monotonic()
            response = dispatch(server, method, target, headers, body)
            ended = time.monotonic()
            path = target.split("?", 1)[0]
            found = server.router.match(method, path)
            route = found[0].name if isinstance(found, tuple) else "unknown"
            record = Served(
                method=method,
                path=path,
                route=route,
                status=0 if response.drop else response.status,
                request_bytes=len(body),
                response_bytes=len(response.body),
                started=started,
                ended=ended,
                thread=threading.get_ident(),
                body=body if method != "GET" and len(body) <= 65536 else b"",
            )
            with probe._lock:
                probe.served.append(record)
            return response

        def counted_setup(handler: Any) -> None:
            with probe._lock:
                probe.connections += 1
            setup(handler)

        def timed_run(api: Any, job: Any, *args: Any) -> None:
            with probe._lock:
                probe.jobs[job.id] = (time.monotonic(), None)
            run(api, job, *args)

        def timed_end(api: Any, job: Any, status: str, **kw: Any) -> None:
            end(api, job, status, **kw)
            with probe._lock:
                started = probe.jobs.get(job.id, (time.monotonic(), None))[0]
                probe.jobs[job.id] = (started, time.monotonic())

        if settings["nodelay"]:
            # The emulator writes headers and body in two send()s without TCP_NODELAY, so
            # Nagle + the client's delayed ACK stall every response ~40 ms (measured
            # 44 ms -> 0.8 ms per GET). That is the test server's artefact, not the SDK's:
            # switch it off here (``--stock-emulator`` keeps it) and report it.
            self._patch(_server._RequestHandler, "disable_nagle_algorithm", True)
        self._patch(_server.Server, "dispatch", timed_dispatch)
        self._patch(_server._RequestHandler, "setup", counted_setup)
        self._patch(BatchApi, "_run", timed_run)
        self._patch(BatchApi, "_end", timed_end)

    def uninstall(self) -> None:
        """Put the original methods back."""
        while self._saved:
            owner, name, value = self._saved.pop()
            if value is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, value)

    def between(self, start: float, end: float) -> list[Served]:
        """The requests that started in ``[start, end]``."""
        with self._lock:
            return [s for s in self.served if start <= s.started <= end]


@contextmanager
def emulator(**kwargs: Any) -> Iterator[tuple[Any, ServerProbe]]:
    """A started seeded emulator (quiet logs) with a :class:`ServerProbe` installed."""
    import logging

    from amlretrain.emulator import Emulator

    quiet = ("amlretrain", "urllib3", "azure")
    levels = {name: logging.getLogger(name).level for name in quiet}
    for name in quiet:
        logging.getLogger(name).setLevel(logging.ERROR)
    probe = ServerProbe()
    probe.install()
    try:
        with Emulator(**kwargs) as emu:
            yield emu, probe
    finally:
        probe.uninstall()
        for name, level in levels.items():  # leave the process as it was (tests run this)
            logging.getLogger(name).setLevel(level)


def intervals_union(intervals: list[tuple[float, float]]) -> float:
    """The total length covered by ``intervals`` (overlaps counted once)."""
    total = 0.0
    current: tuple[float, float] | None = None
    for start, end in sorted(intervals):
        if current is None or start > current[1]:
            if current is not None:
                total += current[1] - current[0]
            current = (start, end)
        else:
            current = (current[0], max(current[1], end))
    if current is not None:
        total += current[1] - current[0]
    return total


def add_endpoints(emu: Any, service: str, names: list[str]) -> None:
    """Give the emulator's classic web service ``service`` the endpoints ``names``.

    Written into the emulator's state directly, as its create handler does (each a copy
    of the default endpoint's resources): creating 10,000 endpoints over HTTP would time
    the emulator, not the deployment.
    """
    import copy

    from amlretrain.emulator.state import ClassicEndpoint, new_id

    state = emu.state
    with state.lock:
        ws = state.workspaces[emu.info.workspace_id.lower()]
        svc = ws.services[service.lower()]
        for name in names:
            svc.endpoints[name] = ClassicEndpoint(
                name=name,
                endpoint_id=new_id(),
                version=svc.version,
                resources=copy.deepcopy(svc.default.resources),
            )
