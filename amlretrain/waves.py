"""Waves and a failure budget: how a fleet's deployments are staged, and when they halt.

A fleet is deployed in cumulative waves, in the order its targets are configured:
``1,10%,50%,100%`` deploys 1 target, then up to 10% of them, then half, then all. A wave
ends with the scoring check of every target in it (and an optional bake time) before the
next starts. A :class:`FailureBudget` (``max_failures``: a count, or a share of the
targets) halts the run within the wave whose failures cross it.

Pure code: no requests, no clocks.

Example:
    >>> waves = Waves.parse("1,10%,50%,100%")
    >>> [len(w) for w in waves.split(list(range(40)))]
    [1, 3, 16, 20]
    >>> FailureBudget.parse("5%").allowed(40)
    2
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TypeVar

import attrs

from amlretrain.errors import ConfigurationError

__all__ = ["FailureBudget", "Step", "Waves"]

T = TypeVar("T")

_SHOWN = 40  # characters of a bad value quoted in a message


@attrs.frozen
class Step:
    """One cumulative stage: ``count`` targets, or ``percent`` of them (0 < p <= 100)."""

    count: int | None = None
    percent: float | None = None

    def reach(self, total: int) -> int:
        """How many targets of ``total`` are deployed once this stage is done.

        A share is rounded up (10% of 5 targets is 1 target, never 0) and a count is
        capped at ``total``.
        """
        if self.count is not None:
            return min(self.count, total)
        assert self.percent is not None
        return min(total, math.ceil(total * self.percent / 100 - 1e-9))

    def __str__(self) -> str:
        return f"{self.count}" if self.count is not None else f"{self.percent:g}%"


def _step(text: str, where: str) -> Step:
    value = text.strip()
    shown = value[:_SHOWN]
    if value.endswith("%"):
        try:
            percent = float(value[:-1])
        except ValueError:
            raise ConfigurationError(
                f"{where}: {shown!r} is not a share of targets (e.g. 10%)"
            ) from None
        if not (math.isfinite(percent) and 0 < percent <= 100):
            raise ConfigurationError(
                f"{where}: {shown!r}: a share must be above 0% and at most 100%"
            )
        return Step(percent=percent)
    if not value.isdigit():
        raise ConfigurationError(
            f"{where}: {shown!r} is not a number of targets or a share (e.g. 1 or 10%)"
        )
    count = int(value)
    if count < 1:
        raise ConfigurationError(f"{where}: {shown!r}: a wave has at least 1 target")
    return Step(count=count)


@attrs.frozen
class Waves:
    """Cumulative deployment stages (``--waves 1,10%,50%,100%``, ``waves`` in retrain.toml).

    Attributes:
        steps: the stages, in order; each reaches at least as far as the one before, and
            the last is ``100%``.
    """

    steps: tuple[Step, ...]

    @classmethod
    def parse(cls, value: str | Sequence[str | int], *, where: str = "waves") -> Waves:
        """Read ``"1,10%,50%,100%"`` (or a list of counts and ``"N%"`` strings).

        Raises:
            ConfigurationError: an empty list, a step that is neither a positive count nor
                a share in (0%, 100%], a share that goes back, or a last step that is not
                ``100%`` (the message names ``where`` and the step).
        """
        if isinstance(value, str):
            items: list[str] = value.split(",")
        elif isinstance(value, Sequence) and not isinstance(value, bytes):
            items = []
            for item in value:
                if isinstance(item, bool) or not isinstance(item, int | str):
                    raise ConfigurationError(
                        f"{where}: {item!r} is not a number of targets or a share (e.g. 10%)"
                    )
                items.append(str(item))
        else:
            raise ConfigurationError(f"{where}: must be a list such as 1,10%,50%,100%")
        if not items or all(not i.strip() for i in items):
            raise ConfigurationError(f"{where}: no waves given (e.g. 1,10%,50%,100%)")
        steps = tuple(_step(item, f"{where}[{n}]") for n, item in enumerate(items))
        for n, (before, after) in enumerate(itertools.pairwise(steps), start=1):
            if (
                before.percent is not None
                and after.percent is not None
                and after.percent < before.percent
            ):
                raise ConfigurationError(
                    f"{where}[{n}]: {after} is below the wave before it ({before}): waves "
                    "are cumulative"
                )
        if steps[-1].percent != 100:
            raise ConfigurationError(
                f"{where}: the last wave is {steps[-1]}, not 100%: end the list with 100% so "
                "every target is deployed"
            )
        return cls(steps)

    def split(self, items: Sequence[T]) -> list[list[T]]:
        """``items`` (in config order) cut into the waves; a wave that adds none is dropped."""
        total = len(items)
        out: list[list[T]] = []
        done = 0
        for step in self.steps:
            reach = max(done, step.reach(total))
            if reach > done:
                out.append(list(items[done:reach]))
                done = reach
        return out

    def __str__(self) -> str:
        return ",".join(str(s) for s in self.steps)


@attrs.frozen
class FailureBudget:
    """How many targets may fail before a run halts (``max_failures``).

    Training, deployment and verification failures count; gate rejections do not. The run
    halts within the wave in which the failures exceed :meth:`allowed`.

    Attributes:
        count: at most this many failures, or
        percent: at most this share of the run's targets (rounded down).
    """

    count: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, value: str | int, *, where: str = "max_failures") -> FailureBudget:
        """Read ``3`` (a count, 0 allowed: halt on the first failure) or ``"10%"``.

        Raises:
            ConfigurationError: a negative count, a share outside [0%, 100%], or anything
                else (the message names ``where``).
        """
        if isinstance(value, bool):
            raise ConfigurationError(f"{where}: must be a count (e.g. 3) or a share (e.g. 10%)")
        if isinstance(value, int):
            if value < 0:
                raise ConfigurationError(f"{where}: must be 0 or more, not {value}")
            return cls(count=value)
        if not isinstance(value, str):
            raise ConfigurationError(f"{where}: must be a count (e.g. 3) or a share (e.g. 10%)")
        text = value.strip()
        shown = text[:_SHOWN]
        if text.endswith("%"):
            try:
                percent = float(text[:-1])
            except ValueError:
                raise ConfigurationError(f"{where}: {shown!r} is not a share (e.g. 10%)") from None
            if not (math.isfinite(percent) and 0 <= percent <= 100):
                raise ConfigurationError(f"{where}: {shown!r}: a share is between 0% and 100%")
            return cls(percent=percent)
        if text.isdigit():
            return cls(count=int(text))
        raise ConfigurationError(
            f"{where}: {shown!r} is not a count (e.g. 3) or a share (e.g. 10%)"
        )

    def allowed(self, total: int) -> int:
        """How many of ``total`` targets may fail without halting the run."""
        if self.count is not None:
            return self.count
        assert self.percent is not None
        return math.floor(total * self.percent / 100 + 1e-9)

    def exceeded(self, failures: int, total: int) -> bool:
        """True when ``failures`` among ``total`` targets cross the budget."""
        return failures > self.allowed(total)

    def __str__(self) -> str:
        return f"{self.count}" if self.count is not None else f"{self.percent:g}%"
