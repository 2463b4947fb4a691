"""BES job states (`JobStatus`, read tolerantly) and the polling schedule (`PollPolicy`)."""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Callable, Iterator
from typing import Any

import attrs

__all__ = ["JobStatus", "PollPolicy"]

log = logging.getLogger("amlretrain.jobs")


class JobStatus(enum.Enum):
    """The state of a BES job (``StatusCode``), read tolerantly.

    Names in any case, ``Cancelled`` or ``Canceled``, numbers 0-4 and numeric strings
    are understood; anything else is ``UNKNOWN`` (logged, never a crash).
    """

    NOT_STARTED = 0
    RUNNING = 1
    FAILED = 2
    CANCELLED = 3
    FINISHED = 4
    UNKNOWN = -1

    @classmethod
    def parse(cls, value: Any) -> JobStatus:
        """Read a ``StatusCode`` value (name, number or numeric string)."""
        if isinstance(value, bool):
            return cls.UNKNOWN
        if isinstance(value, int):
            number: int | None = value
        elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
            number = int(value.strip())
        else:
            number = None
        if number is not None:
            for status in cls:
                if status.value == number and status is not cls.UNKNOWN:
                    return status
            log.warning("unknown BES status code %r", value)
            return cls.UNKNOWN
        key = str(value).replace(" ", "").replace("_", "").lower()
        names = {
            "notstarted": cls.NOT_STARTED,
            "running": cls.RUNNING,
            "failed": cls.FAILED,
            "cancelled": cls.CANCELLED,
            "canceled": cls.CANCELLED,
            "finished": cls.FINISHED,
        }
        if key in names:
            return names[key]
        log.warning("unknown BES status %r", value)
        return cls.UNKNOWN

    @property
    def label(self) -> str:
        """The service's spelling: ``NotStarted``, ``Running``, ``Failed``, ``Cancelled``..."""
        return {
            JobStatus.NOT_STARTED: "NotStarted",
            JobStatus.RUNNING: "Running",
            JobStatus.FAILED: "Failed",
            JobStatus.CANCELLED: "Cancelled",
            JobStatus.FINISHED: "Finished",
            JobStatus.UNKNOWN: "Unknown",
        }[self]

    @property
    def is_terminal(self) -> bool:
        """True for Finished, Failed and Cancelled."""
        return self in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED)

    def __str__(self) -> str:
        return self.label


@attrs.frozen(kw_only=True)
class PollPolicy:
    """How :meth:`TrainingJob.wait` spaces its status reads.

    Delays grow exponentially from ``initial`` by ``factor`` up to ``maximum``, and never
    exceed ``fraction`` of the time waited so far (but at least ``initial``): a job that
    has run for 60 s is read again within 6 s, so its end is seen within 10% of its run
    time, with far fewer reads than a fixed one-second loop. Jitter only shortens a delay.

    Attributes:
        initial: first delay in seconds.
        factor: each delay is the previous one times this.
        maximum: delays never exceed this.
        fraction: delays never exceed this fraction of the time waited so far.
        jitter: each delay is shortened by up to this fraction, at random.
    """

    initial: float = 0.1
    factor: float = 1.5
    maximum: float = 10.0
    fraction: float = 0.1
    jitter: float = 0.2

    def delays(self, elapsed: Callable[[], float] | None = None) -> Iterator[float]:
        """Yield the successive delays (an endless iterator).

        Args:
            elapsed: returns the seconds waited so far (caps each delay at
                ``fraction`` of it); None: no such cap.
        """
        delay = self.initial
        while True:
            cap = self.maximum
            if elapsed is not None:
                cap = min(cap, max(self.initial, self.fraction * elapsed()))
            step = min(delay, cap)
            yield max(0.0, step * (1.0 - random.uniform(0.0, self.jitter)))
            delay = min(self.maximum, delay * self.factor)
