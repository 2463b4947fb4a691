"""Fault injection for the emulator: latency, errors, lost answers, stale reads, kills.

Faults are rules matched against *route names* (``arm.get``, ``arm.patch``, ``bes.submit``,
``rrs.execute``, ``classic.patch_endpoint`` ... or a glob such as ``classic.*`` or ``*``).
Each rule fires at most ``count`` times (``None`` = forever), after letting ``skip``
matching requests pass untouched (``skip=2`` on ``arm.get``: the third GET is the first
to meet it; a request another rule answered counts as matching too).

Kinds that act on the HTTP exchange (``latency`` rules all fire; of the others only the
first matching rule fires on a request):

* ``latency``: ``seconds`` added to every matching request;
* ``status``: answer ``status`` (429 with ``Retry-After``, 500, 503 ...) with the error body
  of the route's family, without running the handler;
* ``drop``: close the connection without a response, without running the handler;
* ``apply_drop``: run the handler (its effect is applied: the PATCH, PUT or job start
  really happened), then close the connection without a response;
* ``apply_status``: run the handler and apply it, then answer ``status`` (default 500)
  with the route family's error body instead of the real answer;
* ``kill``: send ``signal`` (default ``SIGKILL``; a number or a name such as
  ``"SIGTERM"``) to the client process ``pid``. ``when="before"`` (the default) sends it
  when the request arrives, before the handler; ``when="after"`` once the handler has run
  and its effect is applied. After a ``SIGKILL`` the emulator waits (at most 5 s) until
  the process is gone (or a zombie), then drops the connection: ``before`` means the
  request was never applied while the client lived. With any other signal the request
  is handled and answered normally (the client's signal handler decides what happens).
  ``pid`` <= 1 and the emulator's own pid are refused.

``apply_*`` and ``kill`` faults replace whatever the handler answered (an error too).

Kinds consumed by a handler when it starts a change:

* ``lro_fail``: the next long-running ARM operation started on a matching route ends
  ``Failed`` (the resource is left unchanged);
* ``lro_hang``: the next long-running ARM operation started on a matching route
  (``arm.put``, ``arm.patch``, ``arm.delete``, ``arm.regional``) never completes: its
  operationsStatus stays ``Provisioning`` (this provider's in-progress status) and its
  change is never applied. The resource keeps its previous definition and shows
  ``provisioningState: "Provisioning"`` meanwhile (a hung create stays ``Provisioning``).
  A later PUT, PATCH or DELETE of the same resource supersedes it: the hung operation
  ends ``Canceled`` (with an ``OperationCanceled`` error), the resource gets back its
  previous provisioningState and the new write proceeds normally;
* ``lro_slow``: the next long-running operation started on a matching route takes
  ``seconds`` (> 0, required) to finish instead of the emulator's ``lro_delay``: ARM
  (``arm.put``, ``arm.patch``, ``arm.delete``, ``arm.regional``) and Azure ML v2 (the
  ``v2.*`` writes below, ``v2.job.cancel``, ``v2.job.delete``) alike. Meanwhile the
  resource shows what it shows during any operation (``Provisioning`` on ARM;
  ``Creating``, ``Updating``, ``Scaling`` or ``Deleting`` on v2) and the operation reads
  ``Provisioning`` / ``InProgress``. It composes with the failure kinds (``lro_fail``,
  ``v2_lro_fail``, ``v2_canceled`` ...): the operation then ends so after ``seconds``;
  with ``lro_hang`` it still never completes. A later write of the same ARM web service
  completes it at once, as it does any running operation (on v2 such a write is a 409);
* ``stale``: stale reads (the real classic service takes about 30 s to serve a patched
  model, API-NOTES 3.2). For ``seconds`` after a write on a matching route (``arm.put``,
  ``arm.patch``, ``classic.patch_endpoint``), reads of *that* resource (``arm.get`` and
  ``arm.list`` of that web service; ``classic.get_endpoint`` and
  ``classic.list_endpoints`` for that endpoint) answer it as it was right before the
  write (a resource the write created reads as not found). The write itself is applied
  at once, and an ARM operation completes and reports ``Succeeded`` as usual: only the
  HTTP reads are stale, the emulator's state holds the truth. ``count`` = how many
  writes it applies to; a later write does not end a window already open;
* ``job_fail``: the next batch job started on a matching route ends ``Failed`` with
  ``Details``;
* ``job_slow``: the next batch job takes ``seconds`` to run;
* ``train_shuffled``: the next training job started on a matching route (``bes.submit``,
  ``bes.start``) trains on its data with the label column shuffled (``seed``, default 1)
  and evaluates on the untouched holdout: it finishes normally, with a model that learnt
  noise (on the bundled census data, a holdout AUC of about 0.4 against 0.9; how bad a
  given seed is depends on the data, see
  :func:`~amlretrain.emulator.learner.shuffled_labels`);
* ``train_behaviour``: the next training job started on a matching route writes a model
  that misbehaves when it serves (its ``.ilearner`` carries the ``"emulator"`` member,
  :class:`~amlretrain.emulator.learner.Behaviour`): ``error_rate`` (0 to 1) of the
  scoring requests answered ``status`` (500, the default, or 503), ``score_shift``
  (-1 to 1) added to every Scored Probability, ``seconds`` (at most 300) added to every
  request-response scoring, ``seed`` picking which requests fail. At least one of
  ``error_rate``, ``score_shift`` and ``seconds`` must be non-zero. Both kinds may meet
  the same job (a shuffled, misbehaving model). A scoring job with them is unaffected.

Kinds of the Azure ML v2 service (V2-NOTES 8; routes ``v2.*``, see
:mod:`amlretrain.emulator.v2`), consumed when a write starts:

* ``v2_stale_traffic`` (F2): for ``seconds`` after an endpoint PUT's operation succeeds,
  GET and list of that endpoint show the traffic and mirror traffic it had before (the
  state and the scoring already use the new split);
* ``v2_busy`` (F3): the write is refused at once with 409 ``Conflict``: "Cannot create a
  deployment in endpoint {e} because it is in Updating provisioning state.";
* ``v2_canceled`` (F4): the operation ends ``Canceled`` / ``OperationCanceled`` and its
  change is not applied;
* ``v2_lro_fail`` (F5): the operation ends ``Failed`` / ``ResourceNotReady`` (a deployment
  whose scoring script's ``init()`` crashed; ``message`` replaces the text); the resource
  shows ``provisioningState: Failed``;
* ``v2_internal_error`` (F6): a deployment operation ends ``Failed`` /
  ``InternalServerError`` and getLogs has nothing useful;
* ``v2_out_of_quota`` (F7): a deployment operation ends ``Failed`` / ``OutOfQuota`` (the
  instances plus the 20% upgrade surplus exceed the quota);
* ``v2_name_taken`` (F8): an endpoint create is refused: 409 ``EndpointAlreadyExists``,
  "Endpoint name needs to be unique within a region" (the status and code are GUESSes);
* ``v2_k8s_not_found`` (F9): 404 ``NotFound`` with detail ``InferencingClientCallFailed``
  and ``additionalInfo`` ``ComponentName``;
* ``v2_reported_failed`` (F12): the operation document ends ``Failed`` while the change is
  applied and the resource reads ``Succeeded`` (a GUESS of V2-NOTES).

``lro_slow`` (above) stretches the operations of these routes too: a deployment PUT
(``v2.deployment.put``) stays ``Creating``/``Updating``, a traffic change (an endpoint PUT,
``v2.endpoint.put``) keeps the endpoint ``Updating`` for ``seconds``.

F1 (a PUT without ``traffic`` sets every deployment to 0%) and F10 (a PUT without
``mirrorTraffic`` turns mirroring off) are how the service always behaves, not faults. F11
(scoring 408, 424 with ``ms-azureml-model-error-*`` headers, 429) is a ``status`` rule on
route ``v2.score``. ``job_fail``, ``train_shuffled`` and ``train_behaviour`` also act on
``v2.job.put`` (a command job).

Example::

    emu.faults.add(route="arm.patch", kind="status", status=429, retry_after=1, count=1)
    emu.faults.add(route="bes.*", kind="job_fail", message="Out of memory")
    emu.faults.add(route="classic.patch_endpoint", kind="stale", seconds=30)
    emu.faults.add(route="bes.*", kind="train_shuffled", seed=1)
    emu.faults.add(route="bes.*", kind="train_behaviour", error_rate=0.3, score_shift=0.2)
    emu.faults.add(route="arm.patch", kind="kill", pid=client.pid, when="after")
    emu.faults.add(route="arm.get", kind="drop", skip=3)   # the 4th GET of the web service
    emu.faults.add(route="v2.deployment.put", kind="lro_slow", seconds=90)

A config file (JSON or TOML) holds a list of rules under ``faults``::

    [[faults]]
    route = "arm.patch"
    kind = "status"
    status = 503
    count = 2
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import signal as signals
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from amlretrain.emulator.learner import Behaviour

__all__ = ["KINDS", "Fault", "Faults", "kill_client"]

log = logging.getLogger(__name__)

#: The kinds of fault a rule can inject.
KINDS = (
    "latency",
    "status",
    "drop",
    "apply_drop",
    "apply_status",
    "kill",
    "lro_fail",
    "lro_hang",
    "lro_slow",
    "stale",
    "job_fail",
    "job_slow",
    "train_shuffled",
    "train_behaviour",
    *("v2_stale_traffic", "v2_busy", "v2_canceled", "v2_lro_fail", "v2_internal_error"),
    *("v2_out_of_quota", "v2_name_taken", "v2_k8s_not_found", "v2_reported_failed"),
)

#: Kinds that act on the HTTP exchange itself (taken by the server on every request).
REQUEST_KINDS = ("latency", "status", "drop", "apply_drop", "apply_status", "kill")

#: The write routes a ``stale`` rule can name, and the routes that start an ARM operation.
STALE_ROUTES = ("arm.put", "arm.patch", "classic.patch_endpoint")
LRO_ROUTES = ("arm.put", "arm.patch", "arm.delete", "arm.regional")
#: The routes on which a batch job starts (where ``train_*`` rules are consumed).
JOB_ROUTES = ("bes.submit", "bes.start", "v2.job.put")
#: The Azure ML v2 routes that start a long-running operation (``v2_*`` LRO faults).
V2_LRO_ROUTES = (
    *("v2.endpoint.put", "v2.endpoint.patch", "v2.endpoint.delete", "v2.endpoint.regeneratekeys"),
    *("v2.deployment.put", "v2.deployment.patch", "v2.deployment.delete"),
)
#: Every route that starts a long-running operation (where ``lro_slow`` is consumed).
SLOW_ROUTES = (*LRO_ROUTES, *V2_LRO_ROUTES, "v2.job.cancel", "v2.job.delete")
#: The v2 faults consumed where a write starts, and the routes each may name.
V2_ROUTES = {
    "v2_stale_traffic": ("v2.endpoint.put",),
    "v2_busy": ("v2.deployment.put", "v2.endpoint.put", "v2.deployment.delete"),
    "v2_canceled": V2_LRO_ROUTES,
    "v2_lro_fail": V2_LRO_ROUTES,
    "v2_internal_error": ("v2.deployment.put", "v2.deployment.patch"),
    "v2_out_of_quota": ("v2.deployment.put", "v2.deployment.patch"),
    "v2_name_taken": ("v2.endpoint.put",),
    "v2_k8s_not_found": ("v2.endpoint.put", "v2.deployment.put"),
    "v2_reported_failed": V2_LRO_ROUTES,
}
#: The members only ``train_behaviour`` (and, for ``seed``, ``train_shuffled``) take.
_TRAIN_FIELDS = ("error_rate", "score_shift", "seed")

_STATUS_KINDS = ("status", "apply_status")
_KILL_WAIT = 5.0


def _signal_of(value: int | str) -> signals.Signals:
    if isinstance(value, bool):
        raise ValueError(f"not a signal: {value!r}")
    if isinstance(value, int):
        try:
            return signals.Signals(value)
        except ValueError:
            raise ValueError(f"{value} is not a signal number") from None
    name = value.strip().upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return signals.Signals[name]
    except KeyError:
        raise ValueError(f"unknown signal {value!r} (use e.g. SIGKILL, SIGTERM, SIGINT)") from None


def _check_pid(pid: int) -> None:
    if pid <= 1:
        raise ValueError(f"a kill fault never signals pid {pid} (it must be > 1)")
    if pid == os.getpid():
        raise ValueError(f"a kill fault never signals the emulator's own process ({pid})")


@attrs.define(kw_only=True)
class Fault:
    """One fault rule.

    Attributes:
        route: route name or glob (``"arm.patch"``, ``"classic.*"``, ``"*"``).
        kind: one of :data:`KINDS`.
        status: HTTP status of ``status`` faults (default 503) and ``apply_status`` faults
            (default 500).
        retry_after: seconds for the ``Retry-After`` header (429 and 503 faults; 429
            defaults to 1).
        seconds: added latency (``latency``), job duration (``job_slow``), operation
            duration (``lro_slow``, > 0) or how long reads stay stale (``stale``, > 0).
        message: error text for ``status``, ``apply_status``, ``lro_fail`` and ``job_fail``.
        pid: the process a ``kill`` fault signals (required there, refused elsewhere).
        signal: the signal of a ``kill`` fault, a number or a name (default ``SIGKILL``);
            stored as a :class:`signal.Signals`.
        when: ``"before"`` (default) or ``"after"`` the handler, for ``kill`` faults.
        error_rate: ``train_behaviour``: share of scoring requests the model fails (0-1).
        score_shift: ``train_behaviour``: added to every scored probability (-1 to 1).
        seed: ``train_shuffled``: the shuffle's seed (default 1); ``train_behaviour``:
            which requests fail (default 0). An int.
        count: how many more times the rule fires; ``None`` = forever.
        skip: how many more matching requests (or, for the kinds a handler consumes,
            matching writes or job starts) pass before the rule fires for the first time.
        fired: how many times it has fired.
    """

    route: str = "*"
    kind: str
    status: int | None = None
    retry_after: float | None = None
    seconds: float = 0.0
    message: str | None = None
    pid: int | None = None
    signal: int | str | None = None
    when: str | None = None
    error_rate: float | None = None
    score_shift: float | None = None
    seed: int | None = None
    count: int | None = 1
    skip: int = 0
    fired: int = 0

    def __attrs_post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {KINDS}")
        if self.kind in _STATUS_KINDS:
            if self.status is None:
                self.status = 503 if self.kind == "status" else 500
            if not 400 <= self.status <= 599:
                raise ValueError(f"a {self.kind} fault needs a 4xx/5xx status, not {self.status}")
            if self.status == 429 and self.retry_after is None:
                self.retry_after = 1
        if self.count is not None and self.count < 0:
            raise ValueError("count must be >= 0 or None")
        if isinstance(self.skip, bool) or not isinstance(self.skip, int) or self.skip < 0:
            raise ValueError(f"skip must be an int >= 0, not {self.skip!r}")
        if self.seconds < 0:
            raise ValueError("seconds must be >= 0")
        if self.kind == "kill":
            self._check_kill()
        else:
            given = [n for n in ("pid", "signal", "when") if getattr(self, n) is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: only for kill faults, not {self.kind}")
        if self.kind == "stale":
            if self.seconds <= 0:
                raise ValueError("a stale fault needs seconds > 0 (how long reads stay stale)")
            self._check_route(STALE_ROUTES)
        if self.kind == "lro_hang":
            self._check_route(LRO_ROUTES)
        if self.kind == "lro_slow":
            if self.seconds <= 0:
                raise ValueError(
                    "an lro_slow fault needs seconds > 0 (how long the operation runs)"
                )
            self._check_route(SLOW_ROUTES)
        if self.kind in V2_ROUTES:
            self._check_route(V2_ROUTES[self.kind])
            if self.kind == "v2_stale_traffic" and self.seconds <= 0:
                raise ValueError("a v2_stale_traffic fault needs seconds > 0")
        self._check_train()

    def _check_train(self) -> None:
        allowed = {"train_behaviour": _TRAIN_FIELDS, "train_shuffled": ("seed",)}
        given = [n for n in _TRAIN_FIELDS if getattr(self, n) is not None]
        refused = [n for n in given if n not in allowed.get(self.kind, ())]
        if refused:
            where = (
                "train_shuffled and train_behaviour" if refused == ["seed"] else "train_behaviour"
            )
            raise ValueError(f"{', '.join(refused)}: only for {where} faults, not {self.kind}")
        if self.kind not in allowed:
            return
        self._check_route(JOB_ROUTES)
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise ValueError(f"seed must be an int, not {self.seed!r}")
        if self.kind == "train_behaviour":
            if self.status is not None and self.status not in (500, 503):
                raise ValueError(
                    f"a train_behaviour fault's status is 500 or 503, not {self.status}"
                )
            try:
                behaviour = self.behaviour()
            except ValueError as err:  # LearnerError: the model's own check, reworded
                text = str(err).replace("'latency'", "'seconds' (the latency)")
                raise ValueError(text.replace("behaviour ", "train_behaviour ", 1)) from None
            if behaviour.inert:
                raise ValueError(
                    "a train_behaviour fault needs error_rate, score_shift or seconds "
                    "(the latency) other than 0"
                )

    def behaviour(self) -> Behaviour:
        """The model behaviour a ``train_behaviour`` fault gives the model it trains.

        Raises:
            LearnerError: a value out of range (as the ``.ilearner`` member would be).
        """
        from amlretrain.emulator.learner import Behaviour

        return Behaviour(
            error_rate=0.0 if self.error_rate is None else self.error_rate,
            score_shift=0.0 if self.score_shift is None else self.score_shift,
            latency=self.seconds,
            seed=0 if self.seed is None else self.seed,
            error_status=500 if self.status is None else self.status,
        )

    def _check_kill(self) -> None:
        if self.pid is None:
            raise ValueError("a kill fault needs pid (the client process to signal)")
        if isinstance(self.pid, bool) or not isinstance(self.pid, int):
            raise ValueError(f"pid must be an int, not {self.pid!r}")
        _check_pid(self.pid)
        self.signal = _signal_of(signals.SIGKILL if self.signal is None else self.signal)
        if self.when is None:
            self.when = "before"
        if self.when not in ("before", "after"):
            raise ValueError(f"when must be 'before' or 'after', not {self.when!r}")

    def _check_route(self, routes: tuple[str, ...]) -> None:
        if not any(fnmatch.fnmatchcase(r, self.route) for r in routes):
            raise ValueError(
                f"a {self.kind} fault acts on {', '.join(routes)}; "
                f"route {self.route!r} matches none of them"
            )

    @property
    def after_handler(self) -> bool:
        """True when the fault acts once the handler has run (``apply_*``, ``kill`` after)."""
        return self.kind in ("apply_drop", "apply_status") or (
            self.kind == "kill" and self.when == "after"
        )

    def matches(self, route: str) -> bool:
        """True when this rule applies to ``route`` and has firings left."""
        if self.count is not None and self.count <= 0:
            return False
        return fnmatch.fnmatchcase(route, self.route)

    @property
    def exhausted(self) -> bool:
        """True when the rule will not fire again."""
        return self.count is not None and self.count <= 0


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rpartition(")")[2].split()
    return bool(fields) and fields[0] in ("Z", "X")


def kill_client(fault: Fault) -> bool:
    """Send the signal of a ``kill`` fault; True when it was ``SIGKILL`` (drop the request).

    After ``SIGKILL`` this waits (at most 5 s) until the process is gone or a zombie.

    Raises:
        ValueError: the fault is not a kill fault, or its pid is <= 1 or the emulator's.
        PermissionError: the process may not be signalled.
    """
    if fault.kind != "kill" or fault.pid is None or fault.signal is None:
        raise ValueError(f"not a kill fault: {fault!r}")
    pid, sig = fault.pid, _signal_of(fault.signal)
    _check_pid(pid)
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        log.warning("kill fault: process %d is already gone", pid)
    else:
        log.info("kill fault: sent %s to process %d", sig.name, pid)
    if sig != signals.SIGKILL:
        return False
    deadline = time.monotonic() + _KILL_WAIT
    while not _gone(pid):
        if time.monotonic() > deadline:
            log.warning("kill fault: process %d still alive %.0f s after SIGKILL", pid, _KILL_WAIT)
            break
        time.sleep(0.005)
    return True


class Faults:
    """The thread-safe set of fault rules an emulator consults on every request.

    Example:
        >>> faults = Faults()
        >>> _ = faults.add(route="arm.get", kind="status", status=500)
        >>> [f.kind for f in faults.rules]
        ['status']
    """

    def __init__(self, rules: Iterable[Fault] = ()) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = list(rules)

    # -- building ----------------------------------------------------------------------

    def add(
        self,
        route: str = "*",
        kind: str = "status",
        *,
        status: int | None = None,
        retry_after: float | None = None,
        seconds: float = 0.0,
        message: str | None = None,
        pid: int | None = None,
        signal: int | str | None = None,
        when: str | None = None,
        error_rate: float | None = None,
        score_shift: float | None = None,
        seed: int | None = None,
        count: int | None = 1,
        skip: int = 0,
    ) -> Fault:
        """Add a rule and return it.

        Args:
            route: route name or glob (see the module docstring).
            kind: one of :data:`KINDS` (see the module docstring).
            status: HTTP status of a ``status`` (default 503) or ``apply_status`` (default
                500) fault.
            retry_after: ``Retry-After`` seconds (429 defaults to 1).
            seconds: latency to add, the duration of a ``job_slow`` job or of an
                ``lro_slow`` operation, or how long reads stay stale after a write
                (``stale``).
            message: error text for the injected failure.
            pid: the client process a ``kill`` fault signals (required there).
            signal: the signal of a ``kill`` fault: a number or a name (default SIGKILL).
            when: ``"before"`` (default) or ``"after"`` the handler, for ``kill`` faults.
            error_rate: ``train_behaviour``: share of scoring requests that fail (0-1).
            score_shift: ``train_behaviour``: added to every scored probability.
            seed: ``train_shuffled``/``train_behaviour``: the shuffle's seed or which
                requests fail.
            count: how many times it fires; ``None`` = forever.
            skip: how many matching requests pass untouched before it first fires.

        Raises:
            ValueError: an unknown kind or an impossible value.
        """
        fault = Fault(
            route=route,
            kind=kind,
            status=status,
            retry_after=retry_after,
            seconds=seconds,
            message=message,
            pid=pid,
            signal=signal,
            when=when,
            error_rate=error_rate,
            score_shift=score_shift,
            seed=seed,
            count=count,
            skip=skip,
        )
        with self._lock:
            self._rules.append(fault)
        return fault

    def extend(self, other: Faults) -> None:
        """Add every rule of ``other``."""
        with self._lock:
            self._rules.extend(other.rules)

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[Fault]:
        """A snapshot of the rules."""
        with self._lock:
            return list(self._rules)

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | list[Any]) -> Faults:
        """Build from parsed config data: ``{"faults": [rule, ...]}`` or a bare list.

        Raises:
            ValueError: the data does not describe fault rules.
        """
        items = data.get("faults", []) if isinstance(data, Mapping) else data
        if not isinstance(items, list):
            raise ValueError("'faults' must be a list of rules")
        faults = cls()
        allowed = {"route", "kind", "status", "retry_after", "seconds", "message", "count"}
        allowed |= {"pid", "signal", "when", "skip", *_TRAIN_FIELDS}
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise ValueError(f"fault #{i} is not a table/object")
            unknown = set(item) - allowed
            if unknown:
                raise ValueError(f"fault #{i} has unknown keys: {', '.join(sorted(unknown))}")
            kwargs = dict(item)
            if kwargs.get("count", 1) == "forever":
                kwargs["count"] = None
            try:
                faults.add(**kwargs)
            except ValueError as err:
                raise ValueError(f"fault #{i}: {err}") from err
        return faults

    @classmethod
    def load(cls, path: str | Path) -> Faults:
        """Read rules from a JSON (``.json``) or TOML (anything else) file.

        Raises:
            ValueError: the file does not describe fault rules.
            OSError: the file cannot be read.
        """
        p = Path(path)
        text = p.read_text(encoding="utf-8")
        if p.suffix.lower() == ".json":
            data: Any = json.loads(text)
        else:
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - exercised on 3.10 only
                import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]
            data = tomllib.loads(text)
        return cls.from_data(data)

    # -- consulting --------------------------------------------------------------------

    def take(self, route: str, kinds: Iterable[str]) -> list[Fault]:
        """Consume and return the matching rules of the given kinds (one firing each).

        ``latency`` rules all fire; of the other kinds only the first match fires (so one
        request meets at most one of ``status``, ``drop``, ``apply_drop``,
        ``apply_status`` and ``kill``). A rule still skipping counts the request down
        (its ``skip``) and neither fires nor keeps another rule from firing.
        """
        wanted = tuple(kinds)
        out: list[Fault] = []
        with self._lock:
            decisive_taken = False
            for rule in self._rules:
                if rule.kind not in wanted or not rule.matches(route):
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    continue
                if rule.kind != "latency":
                    if decisive_taken:
                        continue
                    decisive_taken = True
                if rule.count is not None:
                    rule.count -= 1
                rule.fired += 1
                out.append(rule)
        return out

    def take_one(self, routes: Iterable[str], kind: str) -> Fault | None:
        """Consume the first rule of ``kind`` that matches any of ``routes``.

        Rules still skipping count this occasion down (their ``skip``) and pass it on.
        """
        names = tuple(routes)
        with self._lock:
            for rule in self._rules:
                if rule.kind == kind and any(rule.matches(r) for r in names):
                    if rule.skip > 0:
                        rule.skip -= 1
                        continue
                    if rule.count is not None:
                        rule.count -= 1
                    rule.fired += 1
                    return rule
        return None

    def __repr__(self) -> str:
        return f"Faults({self.rules!r})"
