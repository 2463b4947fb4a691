"""BES job states (`JobStatus`), read tolerantly."""

from __future__ import annotations

import enum
import logging
from typing import Any

__all__ = ["JobStatus"]

log = logging.getLogger("amlretrain.studio.batch")


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
