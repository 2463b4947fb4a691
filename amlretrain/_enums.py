"""The base of every status enum: a ``str`` whose value is the status as written."""

from __future__ import annotations

import enum

__all__ = ["StrStatus"]


class StrStatus(str, enum.Enum):
    """A status that is also its string: ``status == "succeeded"``, JSON, ``f"{status}"``.

    Python 3.10 has no ``enum.StrEnum``; this gives the same behaviour on every supported
    version (``str()`` and ``format()`` give the value, not ``Class.MEMBER``).
    """

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)
