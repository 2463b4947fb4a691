"""SIGINT and SIGTERM during a run: stop starting work, bound the swap in flight, tell.

The first signal sets the run's :class:`StopSignal`: no new work starts (no training job,
no next target), a running training job is cancelled, and a swap already sent may finish
for at most ``grace`` seconds so that its outcome is recorded. A second signal exits at
once (the CLI) or raises ``KeyboardInterrupt`` (a notebook or script); the change it
interrupts stays an open intent in the ledger, for ``amlretrain reconcile``.

Example:
    >>> stop = StopSignal(grace=30)
    >>> stop.requested
    False
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

from amlretrain.errors import Interrupted

__all__ = ["StopSignal", "handle_signals"]

_NAMES: dict[int, str] = {int(signal.SIGINT): "SIGINT", int(signal.SIGTERM): "SIGTERM"}


class StopSignal:
    """The stop request of one run, shared by its threads.

    Args:
        grace: seconds a swap already sent may still take after the request.
    """

    def __init__(self, grace: float = 30.0) -> None:
        self.grace = float(grace)
        self._event = threading.Event()
        self.signum: int | None = None
        self._at: float | None = None
        self._children: list[StopSignal] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StopSignal(grace={self.grace}, requested={self.requested})"

    @property
    def requested(self) -> bool:
        """True once a stop was requested."""
        return self._event.is_set()

    def request(self, signum: int = signal.SIGINT) -> None:
        """Ask the run to stop (what the first signal does); its children stop too."""
        with self._lock:
            if not self._event.is_set():
                self.signum, self._at = int(signum), time.monotonic()
                self._event.set()
            children = list(self._children)
        for child in children:
            child.request(signum)

    def child(self) -> StopSignal:
        """The stop request of a part of the run: requested with this one, or alone (a
        fleet stops its training jobs so when its failure budget halts it)."""
        child = StopSignal(self.grace)
        with self._lock:
            self._children.append(child)
            signum = self.signum if self._event.is_set() else None
        if signum is not None:
            child.request(signum)
        return child

    def deadline(self) -> float | None:
        """The ``time.monotonic()`` by which a swap in flight must be settled, if stopping."""
        return None if self._at is None else self._at + self.grace

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True (at once) when a stop is requested."""
        return self._event.wait(max(0.0, seconds))

    def raise_if_requested(self, result: Any = None) -> None:
        """Raise :class:`~amlretrain.errors.Interrupted` when a stop was requested."""
        if self.signum is not None:
            raise Interrupted(self.signum, result)


def _name(signum: int) -> str:
    return _NAMES.get(signum, f"signal {signum}")


@contextlib.contextmanager
def handle_signals(stop: StopSignal, *, exit_at_once: bool = False) -> Iterator[StopSignal]:
    """Route SIGINT and SIGTERM to ``stop`` while the block runs (main thread only).

    Args:
        stop: the run's stop request.
        exit_at_once: the second signal ends the process (``os._exit(128 + signum)``)
            instead of raising ``KeyboardInterrupt`` in the main thread.

    Off the main thread (where Python cannot install handlers) the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        if not stop.requested:
            stop.request(signum)
            _say(
                f"amlretrain: {_name(signum)}: stopping; a swap already sent may finish "
                f"(at most {stop.grace:g} s) and is recorded; signal again to exit at once "
                "(then run `amlretrain reconcile`)"
            )
            return
        _say(
            f"amlretrain: {_name(signum)} again: exiting now; an open change is left for "
            "`amlretrain reconcile`"
        )
        if exit_at_once:
            os._exit(128 + signum)
        raise KeyboardInterrupt

    previous = {s: signal.getsignal(s) for s in _NAMES}
    for s in _NAMES:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


def _say(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
