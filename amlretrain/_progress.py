"""The status display of a long wait (a training job): status and elapsed time on stderr.

Where it goes decides what it looks like:

* a terminal: one line rewritten in place (``\\r``) every second:
  ``job 0123456789ab: Running  2:05``, ended by a newline when the wait ends;
* a notebook, with the ``progress`` extra (tqdm): a tqdm widget;
* anything else (a pipe, a file, a CI log): plain lines, never a ``\\r``: one per status
  change and one a minute while the status stays the same
  (``job 0123456789ab: Running (1:00 elapsed)``).

Only shown when asked for (``progress=True``): the library prints nothing by itself.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

__all__ = ["StatusDisplay", "elapsed_text", "in_notebook", "is_terminal", "status_display"]

#: Seconds between two plain lines that repeat the same status.
HEARTBEAT = 60.0


class StatusDisplay(Protocol):
    """What a wait shows its progress through."""

    #: Seconds between two calls of :meth:`tick` the display wants (at most).
    interval: float

    def update(self, status: str) -> None:
        """The status was read again (it may be the same)."""

    def tick(self) -> None:
        """Time passed (show the new elapsed time, if this display does)."""

    def close(self) -> None:
        """The wait ended (or failed)."""


def elapsed_text(seconds: float) -> str:
    """``0:05``, ``12:03``, ``1:02:03``."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def is_terminal(stream: Any) -> bool:
    """True when ``stream`` is an interactive terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def in_notebook() -> bool:
    """True inside a running Jupyter kernel (its output is not a terminal, but renders
    widgets); a process that merely imported ipykernel is not one."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def status_display(
    label: str, *, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic
) -> StatusDisplay:
    """The display for ``label`` (``job 0123456789ab``) on ``stream`` (default stderr)."""
    out = stream if stream is not None else sys.stderr
    if is_terminal(out):
        return _LiveLine(label, out, clock)
    if stream is None and in_notebook():
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            return _Widget(label, tqdm)
    return _PlainLines(label, out, clock)


class _LiveLine:
    interval = 1.0

    def __init__(self, label: str, stream: TextIO, clock: Callable[[], float]) -> None:
        self._label, self._stream, self._clock = label, stream, clock
        self._started = clock()
        self._status = "..."
        self._width = 0

    def update(self, status: str) -> None:
        self._status = status
        self._draw()

    def tick(self) -> None:
        self._draw()

    def close(self) -> None:
        if self._width:
            self._stream.write("\n")
            self._stream.flush()

    def _draw(self) -> None:
        text = f"{self._label}: {self._status}  {elapsed_text(self._clock() - self._started)}"
        # Pad over what the last line left (no terminal escape codes needed).
        self._stream.write("\r" + text.ljust(self._width))
        self._stream.flush()
        self._width = len(text)


class _PlainLines:
    interval = HEARTBEAT

    def __init__(self, label: str, stream: TextIO, clock: Callable[[], float]) -> None:
        self._label, self._stream, self._clock = label, stream, clock
        self._started = clock()
        self._status: str | None = None
        self._said = self._started

    def update(self, status: str) -> None:
        if status != self._status:
            self._status = status
            self._line(status)

    def tick(self) -> None:
        if self._status is not None and self._clock() - self._said >= HEARTBEAT:
            self._line(f"still {self._status}")

    def close(self) -> None:
        pass

    def _line(self, what: str) -> None:
        self._said = self._clock()
        elapsed = elapsed_text(self._said - self._started)
        self._stream.write(f"{self._label}: {what} ({elapsed} elapsed)\n")
        self._stream.flush()


class _Widget:
    interval = 1.0

    def __init__(self, label: str, tqdm: Any) -> None:
        self._label = label
        self._bar = tqdm(total=None, desc=label, bar_format="{desc} ({elapsed})")

    def update(self, status: str) -> None:
        self._bar.set_description_str(f"{self._label}: {status}")

    def tick(self) -> None:
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()
