"""How every wait of amlretrain spaces its reads: one :class:`PollPolicy`."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import attrs

__all__ = ["PollPolicy"]


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
