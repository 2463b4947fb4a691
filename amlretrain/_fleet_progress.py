"""The live display of a fleet run: counts per state, the current wave, the elapsed time.

Where it goes decides what it looks like (as :mod:`amlretrain._progress` for one job):

* a terminal: one line rewritten in place every second,
  ``fleet: wave 2/4  training 3  deploying 2  succeeded 10  failed 1  (16 of 20)  0:42``;
* a notebook, with the ``progress`` extra (tqdm): a tqdm widget with the same text;
* anything else (a pipe, a file, a CI log): plain lines, never a ``\\r``: one when a wave
  starts, one for every target that fails, a line of counts at most every
  :data:`PLAIN_EVERY` seconds while they change, and the final counts.

Only shown when asked for: the library prints nothing by itself. Thread-safe: the fleet
updates it from its worker threads.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from amlretrain._progress import (
    StatusDisplay,
    elapsed_text,
    in_notebook,
    is_terminal,
    status_display,
)

__all__ = ["PLAIN_EVERY", "STATES", "FleetProgress"]

#: The states a target goes through, in display order (the end states last).
STATES = (
    "waiting",
    "training",
    "deploying",
    "baking",
    "succeeded",
    "skipped",
    "rejected",
    "restored",
    "failed",
    "unknown",
    "halted",
)
#: Seconds between two lines of counts in a log (plain lines).
PLAIN_EVERY = 30.0
#: End states worth a line of their own in a log.
_TOLD = frozenset({"failed", "restored", "unknown"})


class FleetProgress:
    """Counts of a fleet's targets per state, shown live (see the module docstring).

    Args:
        total: how many targets the run has.
        stream: where to write (default stderr).
        clock: the time source (tests pass a fake one).
        ticker: run a thread that refreshes the elapsed time every second on a
            terminal or widget (False in tests).
    """

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        ticker: bool = True,
    ) -> None:
        self.total = total
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, str] = {}
        self._wave: tuple[int, int] | None = None
        out = stream if stream is not None else sys.stderr
        live = is_terminal(out) or (stream is None and in_notebook())
        self._display: StatusDisplay | None = (
            status_display("fleet", stream=stream, clock=clock) if live else None
        )
        self._plain = self._display is None
        self._out = out
        self._started = clock()
        self._said = self._started - PLAIN_EVERY
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        if ticker and not self._plain:
            self._thread = threading.Thread(target=self._tick, name="fleet-progress", daemon=True)
            self._thread.start()

    def counts(self) -> dict[str, int]:
        """Targets per state, in :data:`STATES` order (states with none left out)."""
        with self._lock:
            return self._counts()

    def _counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for state in self._states.values():
            found[state] = found.get(state, 0) + 1
        waiting = self.total - len(self._states)
        if waiting > 0:
            found["waiting"] = found.get("waiting", 0) + waiting
        order = {s: n for n, s in enumerate(STATES)}
        return dict(sorted(found.items(), key=lambda kv: order.get(kv[0], len(order))))

    def text(self) -> str:
        """The line shown: the wave, the counts, how many have ended."""
        with self._lock:
            return self._text()

    def _text(self) -> str:
        parts = []
        if self._wave is not None:
            parts.append(f"wave {self._wave[0]}/{self._wave[1]}")
        parts += [f"{state} {n}" for state, n in self._counts().items()]
        ended = sum(1 for s in self._states.values() if s in STATES[4:])
        parts.append(f"({ended} of {self.total} done)")
        return "  ".join(parts)

    def wave(self, number: int, of: int, size: int) -> None:
        """Wave ``number`` of ``of`` starts with ``size`` targets."""
        with self._lock:
            self._wave = (number, of)
            if self._plain:
                self._line(f"wave {number}/{of}: {size} target(s)")
            self._show()

    def set(self, target: str, state: str, detail: str | None = None) -> None:
        """``target`` (its label) is now in ``state``; ``detail`` says why it failed."""
        with self._lock:
            self._states[target] = state
            if self._plain and state in _TOLD:
                self._line(f"{target}: {state}" + (f": {detail}" if detail else ""))
            self._show()

    def close(self) -> None:
        """The run ended: the final counts (a last line), and the display closed."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            if self._display is None:
                self._line(self._text())
            else:
                self._display.update(self._text())
                self._display.close()

    def _show(self) -> None:
        if self._display is not None:
            self._display.update(self._text())
            return
        if self._clock() - self._said >= PLAIN_EVERY:
            self._line(self._text())

    def _line(self, text: str) -> None:
        self._said = self._clock()
        elapsed = elapsed_text(self._said - self._started)
        self._out.write(f"fleet: {text} ({elapsed} elapsed)\n")
        self._out.flush()

    def _tick(self) -> None:
        while not self._closed.wait(1.0):
            with self._lock:
                if self._display is not None:
                    self._display.tick()
