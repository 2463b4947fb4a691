"""BES job states (`JobStatus`), read tolerantly."""

from __future__ import annotations

import logging
from typing import Any

from amlretrain._enums import StrStatus

__all__ = ["JobStatus"]

log = logging.getLogger("amlretrain.studio.batch")


class JobStatus(StrStatus):
    """The state of a BES job (``StatusCode``), read tolerantly.

    A ``str``: its value is the service's spelling (``"NotStarted"``, ``"Running"``,
    ``"Failed"``, ``"Cancelled"``, ``"Finished"``; ``"Unknown"`` for anything else).
    Names in any case, ``Cancelled`` or ``Canceled``, numbers 0-4 and numeric strings
    are understood; anything else is ``UNKNOWN`` (logged, never a crash).
    """

    NOT_STARTED = "NotStarted"
    RUNNING = "Running"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    FINISHED = "Finished"
    UNKNOWN = "Unknown"

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
            if number in _BY_NUMBER:
                return _BY_NUMBER[number]
            log.warning("unknown BES status code %r", value)
            return cls.UNKNOWN
        key = str(value).replace(" ", "").replace("_", "").lower()
        if key == "canceled":
            return cls.CANCELLED
        for status in cls:
            if status is not cls.UNKNOWN and status.value.lower() == key:
                return status
        log.warning("unknown BES status %r", value)
        return cls.UNKNOWN

    @property
    def label(self) -> str:
        """The service's spelling: ``NotStarted``, ``Running``, ``Failed``, ``Cancelled``..."""
        return str(self.value)

    @property
    def is_terminal(self) -> bool:
        """True for Finished, Failed and Cancelled."""
        return self in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED)


#: The numeric ``StatusCode`` values the BES API documents (0-4).
_BY_NUMBER = {
    0: JobStatus.NOT_STARTED,
    1: JobStatus.RUNNING,
    2: JobStatus.FAILED,
    3: JobStatus.CANCELLED,
    4: JobStatus.FINISHED,
}
