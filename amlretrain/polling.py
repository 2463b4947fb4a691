"""How amlretrain waits: one :class:`PollPolicy`, one wait loop, continuation tokens.

* :class:`PollPolicy` spaces the reads of every wait: an ARM operation's polls, the
  verification reads after a classic trained-model update, a training job's status
  reads.
* :class:`OperationPolling` is the base of amlretrain's own long-running operations (the
  classic trained-model update, a training job): one read at a time, and
  :meth:`~OperationPolling.run_until`, the one wait loop. It has the interface of
  azure-core's ``PollingMethod`` (``initialize``, ``run``, ``status``, ``finished``,
  ``resource``, ``get_continuation_token``, ``from_continuation_token``), so azure-core's
  ``LROPoller`` can drive one too.
* :class:`Poller` has the surface of azure-core's ``LROPoller`` (``result(timeout)``,
  ``wait(timeout)``, ``done()``, ``status()``, ``continuation_token()``,
  ``from_continuation_token()``) and reads in the caller's thread, so a progress display,
  Ctrl-C and a stop request act where the caller waits.
* :func:`encode_token` / :func:`decode_token`: a continuation token is the base64 of a
  JSON object ``{"amlretrain": 1, "kind": ..., "data": {...}}``. It never holds a secret:
  the data names the operation (ids, names, blob URLs without their SAS); the key or
  token comes from the client that resumes it. :func:`encode_token` refuses a value
  that carries a SAS signature or an ``Authorization`` value.

This module imports nothing else of amlretrain but :mod:`amlretrain._progress` (for
types) and :mod:`amlretrain._redact`, nor azure-core: the errors a wait raises come from
the operations built on it. :func:`checked_core_token` reads azure-core's tokens as data.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

import attrs

from amlretrain._redact import redact, redact_data

if TYPE_CHECKING:
    from amlretrain._progress import StatusDisplay

__all__ = [
    "TOKEN_VERSION",
    "OperationPolling",
    "PollPolicy",
    "Poller",
    "checked_core_token",
    "decode_token",
    "encode_token",
]

T = TypeVar("T")

#: The version of the continuation-token format :func:`encode_token` writes.
TOKEN_VERSION = 1


@attrs.frozen(kw_only=True)
class PollPolicy:
    """How every wait of amlretrain spaces its reads (the one polling policy type).

    Delays grow exponentially from ``initial`` by ``factor`` up to ``maximum``, and never
    exceed ``fraction`` of the time waited so far (but at least ``initial``): a job that
    has run for 60 s is read again within 6 s, so its end is seen within 10% of its run
    time, with far fewer reads than a fixed one-second loop. Jitter only shortens a delay.
    :meth:`fixed` makes a constant interval.

    Used by :meth:`TrainingJob.wait <amlretrain.studio.batch.TrainingJob.wait>` and
    ``BatchClient.begin_run_job`` (``poll=``), ``ClassicClient`` (``poll=``: the reads
    that verify a trained-model update) and ``WebServicesClient`` (``polling=``: the
    ARM operation polls, at ``initial`` seconds, as azure-core polls at a fixed interval
    unless the service sends ``Retry-After``).

    Attributes:
        initial: first delay in seconds.
        factor: each delay is the previous one times this.
        maximum: delays never exceed this.
        fraction: delays never exceed this fraction of the time waited so far.
        jitter: each delay is shortened by up to this fraction, at random.

    Example:
        >>> [round(d, 2) for d, _ in zip(PollPolicy(jitter=0).delays(), range(4))]
        [0.1, 0.15, 0.23, 0.34]
        >>> PollPolicy.fixed(2.0)
        PollPolicy(initial=2.0, factor=1.0, maximum=2.0, fraction=0.1, jitter=0.0)
    """

    initial: float = 0.1
    factor: float = 1.5
    maximum: float = 10.0
    fraction: float = 0.1
    jitter: float = 0.2

    @classmethod
    def fixed(cls, seconds: float) -> PollPolicy:
        """A constant interval of ``seconds``, without jitter."""
        return cls(initial=seconds, factor=1.0, maximum=seconds, jitter=0.0)

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


# -- continuation tokens ------------------------------------------------------------------

#: Substrings no token may hold: a SAS signature, an Authorization value.
_SECRET_MARKS = ("sig=", "sig%3d", "bearer ", "authorization")


def _check_no_secret(value: Any, path: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_no_secret(str(key), path)
            _check_no_secret(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_no_secret(item, f"{path}[{i}]")
    elif isinstance(value, str):
        low = value.lower()
        for mark in _SECRET_MARKS:
            if mark in low:
                raise ValueError(f"a continuation token may hold no secret ({path} has one)")


def checked_core_token(token: str) -> str:
    """``token``, an azure-core LRO poller's continuation token, once checked to hold no
    secret, to be embedded in one of ours.

    azure-core 1.38 and later write JSON: the request's method, URL and client request id,
    the first answer's status, headers and body. Earlier versions pickled the request,
    its ``Authorization`` header too: such a token is refused, as is one whose first
    answer carries a secret (a key member, a SAS, a connection string).

    Raises:
        ValueError: not azure-core's JSON format, or a secret in it.
    """
    try:
        document = json.loads(base64.b64decode(token, validate=True))
        state = document["data"]
        content = base64.b64decode(state["response"].get("content") or "").decode("utf-8")
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error) as err:
        raise ValueError(
            "azure-core's continuation token is not the JSON of azure-core 1.38 or later (an "
            "older one pickles the request, its Authorization header too): upgrade azure-core"
        ) from err
    _check_no_secret(state.get("request"), "azure-core.request")
    _check_no_secret(state["response"].get("headers"), "azure-core.response.headers")
    try:
        body: Any = json.loads(content) if content.strip() else None
    except ValueError:
        body = content
    if redact_data(body) != body or redact(content) != content:
        raise ValueError(
            "a continuation token may hold no secret (the operation's first answer has one)"
        )
    return token


def encode_token(kind: str, data: Mapping[str, Any]) -> str:
    """The continuation token of an operation of ``kind`` described by ``data``.

    Args:
        kind: what the token resumes (``"arm"``, ``"classic.trained_model"``, ``"bes.job"``).
        data: JSON values naming the operation; never a secret.

    Raises:
        ValueError: ``data`` holds a SAS signature or an Authorization value.
        TypeError: ``data`` is not JSON.

    Example:
        >>> token = encode_token("bes.job", {"job_id": "j1"})
        >>> decode_token(token, "bes.job")
        {'job_id': 'j1'}
    """
    _check_no_secret(dict(data), kind)
    document = {"amlretrain": TOKEN_VERSION, "kind": kind, "data": dict(data)}
    raw = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_token(token: str, kind: str | None = None) -> dict[str, Any]:
    """The data of a token made by :func:`encode_token` (checked to be of ``kind``).

    Raises:
        ValueError: not such a token, of another version, or of another kind (the
            message says which).
    """
    try:
        document = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError):
        raise ValueError("this is not a continuation token of amlretrain") from None
    if not isinstance(document, dict) or "amlretrain" not in document:
        raise ValueError("this is not a continuation token of amlretrain")
    if document["amlretrain"] != TOKEN_VERSION:
        raise ValueError(
            f"this continuation token is of version {document['amlretrain']!r}; this "
            f"amlretrain reads version {TOKEN_VERSION}"
        )
    if kind is not None and document.get("kind") != kind:
        raise ValueError(
            f"this continuation token resumes an operation of kind {document.get('kind')!r}, "
            f"not {kind!r}"
        )
    data = document.get("data")
    if not isinstance(data, dict):
        raise ValueError("this continuation token holds no operation")
    return data


# -- the wait loop ----------------------------------------------------------------------------


class StopRequest(Protocol):
    """What a wait needs of a run's stop request (:class:`amlretrain.interrupt.StopSignal`)."""

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True when a stop was requested."""
        ...  # pragma: no cover

    def deadline(self) -> float | None:
        """The ``time.monotonic()`` grace deadline of a stop requested, else None."""
        ...  # pragma: no cover


class OperationPolling(Generic[T]):
    """Base of amlretrain's own long-running operations: one read at a time, one loop.

    A subclass names its ``kind`` and implements :meth:`_read` (one read of the
    service), :meth:`finished`, :meth:`status`, :meth:`resource` (the result, or the
    operation's failure raised), :meth:`state` (what its continuation token holds),
    :meth:`_load` (the reverse) and :meth:`timed_out`; optionally :meth:`_cutoff` (its own
    deadline) and the hooks of a stop request and Ctrl-C.

    Args:
        policy: spaces the reads.
        display: shows the status while :meth:`run_until` runs (closed when it returns).
        wake: a stop request that ends a pause between two reads early
            (:meth:`_stopped` then decides what happens).
    """

    #: The kind of its continuation tokens.
    kind: ClassVar[str] = ""

    def __init__(
        self,
        *,
        policy: PollPolicy,
        display: Callable[[], StatusDisplay | None] | None = None,
        wake: StopRequest | None = None,
    ) -> None:
        self.policy = policy
        self._display_factory = display
        self._wake = wake
        self._client: Any = None
        self._started: float | None = None
        self._delays: Iterator[float] | None = None
        self._callback: Callable[[Any], Any] | None = None

    # -- azure-core's PollingMethod interface ------------------------------------------------

    def initialize(self, client: Any, initial_response: Any, deserialization_callback: Any) -> None:
        """Bind the client and the operation (``initial_response`` is a token's data)."""
        self._client = client
        self._callback = deserialization_callback
        self._load(dict(initial_response))

    def run(self) -> None:
        """Read until the operation ends; raise its failure (azure-core's ``run``)."""
        self.run_until(None)
        self.resource()

    def get_continuation_token(self) -> str:
        """The continuation token: :func:`encode_token` of :meth:`state`."""
        return encode_token(self.kind, self.state())

    @classmethod
    def from_continuation_token(
        cls, continuation_token: str, **kwargs: Any
    ) -> tuple[Any, Any, Any]:
        """``(client, data, deserialization_callback)`` from a token, as azure-core asks.

        Raises:
            ValueError: not a token of this kind, or no ``client=`` given.
        """
        if "client" not in kwargs:
            raise ValueError("resuming from a continuation token needs client=")
        data = decode_token(continuation_token, cls.kind)
        return kwargs["client"], data, kwargs.get("deserialization_callback")

    def status(self) -> str:
        """The last status read."""
        raise NotImplementedError

    def finished(self) -> bool:
        """True once a read saw the operation end (whatever its outcome)."""
        raise NotImplementedError

    def resource(self) -> T:
        """The result of an operation that ended; its failure raised."""
        raise NotImplementedError

    # -- what a subclass provides ------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What the continuation token holds: JSON values, never a secret."""
        raise NotImplementedError

    def _load(self, state: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _read(self) -> float | None:
        """One read of the service; returns the least pause it asked for (or None)."""
        raise NotImplementedError

    def timed_out(self, waited: float) -> BaseException:
        """What :meth:`Poller.result` raises when its ``timeout`` passed first."""
        raise NotImplementedError

    def _cutoff(self) -> float | None:
        """The operation's own deadline (``time.monotonic()``), or None."""
        return None

    def _expired(self) -> BaseException:
        """What is raised when :meth:`_cutoff` passed before the end."""
        raise NotImplementedError

    def _stopped(self) -> None:
        """A stop was requested during a pause (``wake``): raise, or return to go on."""

    def _interrupted(self, error: KeyboardInterrupt) -> None:
        """Ctrl-C (or a stop raised) while waiting; ``error`` is re-raised afterwards."""

    # -- the loop ---------------------------------------------------------------------------

    def elapsed(self) -> float:
        """Seconds since this operation's first wait began (0 before)."""
        return 0.0 if self._started is None else time.monotonic() - self._started

    def run_until(self, deadline: float | None) -> bool:
        """Read until the operation ends (True) or ``deadline`` passes (False).

        The one wait loop of amlretrain's own operations: read; show the status; stop at
        the end; else pause for the policy's next delay (at least what the service
        asked for, at most until the nearer of ``deadline`` and the operation's own
        cutoff), then read again.

        Args:
            deadline: a ``time.monotonic()`` value; None: no deadline.

        Raises:
            Exception: what :meth:`_expired` makes when the operation's own cutoff
                passes first; what a read raises; what :meth:`_stopped` raises.
            KeyboardInterrupt: Ctrl-C, after :meth:`_interrupted` saw it.
        """
        if self._started is None:
            self._started = time.monotonic()
        if self._delays is None:
            self._delays = self.policy.delays(self.elapsed)
        delays = self._delays
        display = self._display_factory() if self._display_factory is not None else None
        try:
            while True:
                least = self._read()
                pause = next(delays)
                if least is not None:
                    pause = max(pause, least)
                if display is not None:
                    display.update(self.status())
                if self.finished():
                    return True
                cut = self._cutoff()
                limits = [x for x in (cut, deadline) if x is not None]
                if limits:
                    now = time.monotonic()
                    if cut is not None and cut - now <= 0:
                        raise self._expired()
                    if deadline is not None and deadline - now <= 0:
                        return False
                    pause = min(pause, min(limits) - now)
                if pause_between_reads(pause, self._wake, display):
                    self._stopped()
        except KeyboardInterrupt as error:
            self._interrupted(error)
            raise
        finally:
            if display is not None:
                display.close()


def pause_between_reads(
    seconds: float, stop: StopRequest | None, display: StatusDisplay | None
) -> bool:
    """Wait ``seconds`` between two reads; True when ``stop`` was requested meanwhile.

    A display gets a tick every ``display.interval`` seconds (its elapsed time moves on
    between two reads of the status, which may be a minute apart).
    """
    if display is None:
        if stop is None:
            time.sleep(seconds)
            return False
        return stop.wait(seconds)
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        step = min(left, display.interval)
        if stop is None:
            time.sleep(step)
        elif stop.wait(step):
            return True
        display.tick()
    return False


class Poller(Generic[T]):
    """A long-running operation of amlretrain's own, with azure-core ``LROPoller``'s surface.

    Unlike ``LROPoller`` it has no thread of its own: it reads while :meth:`result` or
    :meth:`wait` runs, in the caller's thread (so Ctrl-C, a stop request and a progress
    display act there), and :meth:`done` reads nothing. Resume one, in this process or
    another, from :meth:`continuation_token` with the ``continuation_token=`` of the
    ``begin_*`` method that made it.

    Example:
        >>> poller = classic.begin_update_trained_model(ws, "ep", name, model)  # doctest: +SKIP
        >>> token = poller.continuation_token()  # no secret: store it anywhere  # doctest: +SKIP
        >>> classic.begin_update_trained_model(continuation_token=token).result()  # doctest: +SKIP
    """

    def __init__(self, polling_method: OperationPolling[T]) -> None:
        self._method = polling_method
        self._callbacks: list[Callable[[OperationPolling[T]], object]] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self._method.kind!r}, status={self.status()!r})"

    @classmethod
    def from_continuation_token(
        cls, polling_method: OperationPolling[T], continuation_token: str, **kwargs: Any
    ) -> Poller[T]:
        """A poller resuming the operation of ``continuation_token`` (``client=`` required).

        Raises:
            ValueError: not a token of ``polling_method``'s kind.
        """
        client, data, callback = polling_method.from_continuation_token(
            continuation_token, **kwargs
        )
        polling_method.initialize(client, data, callback)
        return cls(polling_method)

    def polling_method(self) -> OperationPolling[T]:
        """The operation's polling method."""
        return self._method

    def continuation_token(self) -> str:
        """A token that resumes this wait later, in any process; it holds no secret."""
        return self._method.get_continuation_token()

    def status(self) -> str:
        """The operation's status as last read."""
        return self._method.status()

    def done(self) -> bool:
        """True once a read saw the operation end (this reads nothing)."""
        return self._method.finished()

    def wait(self, timeout: float | None = None) -> None:
        """Read until the operation ends or ``timeout`` seconds pass (:meth:`done` tells).

        Raises:
            Exception: the operation's failure, when it ended failed.
        """
        if not self._method.finished():
            deadline = None if timeout is None else time.monotonic() + timeout
            self._method.run_until(deadline)
        if self._method.finished():
            callbacks, self._callbacks = self._callbacks, []
            for callback in callbacks:
                callback(self._method)
            self._method.resource()

    def result(self, timeout: float | None = None) -> T:
        """Wait for the end (at most ``timeout`` seconds) and return the result.

        Raises:
            OperationTimeout: ``timeout`` passed first (the operation decides what else
                happens: a training job is cancelled).
            Exception: the operation's failure.
        """
        self.wait(timeout)
        if not self._method.finished():
            raise self._method.timed_out(self._method.elapsed())
        return self._method.resource()

    def add_done_callback(self, func: Callable[[OperationPolling[T]], object]) -> None:
        """Call ``func(polling_method)`` once the operation has ended (now, if it has)."""
        if self._method.finished():
            func(self._method)
        else:
            self._callbacks.append(func)

    def remove_done_callback(self, func: Callable[[OperationPolling[T]], object]) -> None:
        """Forget a callback of :meth:`add_done_callback`.

        Raises:
            ValueError: the operation has ended already.
        """
        if self._method.finished():
            raise ValueError("the operation has ended")
        self._callbacks = [c for c in self._callbacks if c is not func]
