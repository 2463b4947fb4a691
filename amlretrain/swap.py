"""One target's deployment: lease, read, gate, intent, swap, verify, outcome.

Write-ahead: the target is leased (one deployment per target at a time, across
processes and machines), read once more, gated, and an *intent* (the exact request,
without secrets) is appended to the ledger before the change is sent; the *outcome* is
appended after it. An outcome the client cannot confirm (an operation past its
deadline, a read that still shows another model at the end of the verify window, a
stop that cut the wait short) is recorded ``unknown``: never a guess. A change that
failed after the service answered puts the previous model back (an intent of its own),
verified.

Detached (``Deployment.detach``, a :class:`~amlretrain.targets.DetachableTarget` leased
with a blob ledger): a swap whose long-running operation still runs soon after it was
accepted does not wait. Its :class:`~amlretrain.records.OperationRecord` (the operation's
continuation token, the intent's id) is appended, the lease is handed to the run
(:meth:`~amlretrain.locks.Lease.hand_off`) and the outcome carries
:class:`~amlretrain.errors.OperationsDetached`; nothing more is recorded. The run resumed
(``Deployment.detached``) takes the lease back, reads the target, finishes the swap from
the token (nothing is sent again) and records the outcome, closing that intent. When the
record cannot be written the swap waits after all.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs

from amlretrain._redact import redact
from amlretrain.blobs import BlobRef, same_blob, strip_sas
from amlretrain.errors import (
    AmlRetrainError,
    ConfigurationError,
    ConflictError,
    DetachedOperation,
    LedgerError,
    OperationDetached,
    OperationsDetached,
    OperationStillRunning,
    OperationTimeout,
    ServiceError,
    VerificationFailed,
)
from amlretrain.gate import Gate
from amlretrain.ledger import Ledger
from amlretrain.records import Intent, LedgerEntry, OperationRecord
from amlretrain.result import TargetOutcome
from amlretrain.targets import DetachableTarget, Sample, Target, TargetState, redacted_plan

if TYPE_CHECKING:
    from amlretrain.history import History
    from amlretrain.interrupt import StopSignal
    from amlretrain.locks import Lease
    from amlretrain.storage import BlobStore

__all__ = [
    "RESTORE_SAS_LIFETIME",
    "Deployment",
    "check_model",
    "deploy_one",
    "pool_size",
    "service_slots",
    "with_read_sas",
]

log = logging.getLogger(__name__)

#: Seconds two machines' clocks may disagree by: a lease released less than this before
#: a target was read may have been released after it.
CLOCK_SKEW = 2.0

#: Lifetime of the read SAS minted for a model put back after a failed swap.
RESTORE_SAS_LIFETIME = timedelta(days=7)


@attrs.frozen(kw_only=True)
class Deployment:
    """What every target of one run shares (metrics, gate, ledger, stop request, ...)."""

    metrics: dict[str, float]
    gate: Gate | None
    ledger: Ledger | None
    dry_run: bool
    sample: Sample | None
    job_id: str | None
    store: BlobStore | None
    action: str = "deploy"
    rollback_of: str | None = None
    run_id: str | None = None
    stop: StopSignal | None = None
    wait_lock: float = 0.0
    #: The ledger as read once at the run's start (a fleet asks it, not the ledger,
    #: for each target's incumbent metrics).
    history: History | None = None
    #: Seconds a check's read may stand as the pin when no one held the target's lease
    #: since (0: always read again under the lease). ``deploy`` uses a few seconds.
    pin_window: float = 0.0
    #: At most this many targets of the run talk to their services at once (the run's
    #: ``concurrency``, :func:`service_slots`); None: as many as call. The other workers
    #: take leases and write ledger lines meanwhile (:func:`pool_size`).
    slots: threading.BoundedSemaphore | None = None
    #: Do not wait for a swap's long-running operation (see the module docstring).
    detach: bool = False
    #: The run's swaps detached earlier, to finish now: by target key.
    detached: Mapping[str, OperationRecord] = attrs.field(factory=dict)


def service_slots(concurrency: int) -> threading.BoundedSemaphore:
    """The slots of a run's ``concurrency``: targets talking to their services at once."""
    return threading.BoundedSemaphore(concurrency)


def pool_size(concurrency: int) -> int:
    """Workers for ``concurrency`` service slots: a few more, so that a free slot never
    waits for a target's lease or ledger lines (local work, not the service's)."""
    return concurrency + max(1, concurrency // 2)


_UNCONFIRMED = (VerificationFailed, OperationTimeout)


def _unanswered(err: BaseException) -> bool:
    """True for a timeout or a lost connection: nothing says whether the request landed."""
    if isinstance(err, OperationTimeout):
        return True
    return type(err) is ServiceError and not err.answered


class _Run:
    """One target's deployment in one run (the steps share the target, model and ledger)."""

    def __init__(self, target: Target, model: BlobRef, run: Deployment) -> None:
        self.target = target
        self.model = model
        self.run = run
        self.started = time.monotonic()
        self.intents: list[str] = []
        self.request_ids: list[str] = []
        self.lease: Lease | None = None
        #: False once the swap must wait here (its detached operation was not recorded).
        self.may_detach = True

    # -- the ledger ----------------------------------------------------------------------

    def intend(self, action: str, previous: str | None, new: BlobRef, plan: dict[str, Any]) -> None:
        """Append the intent of a change (before it is sent)."""
        if self.run.ledger is None:
            return
        intent = Intent.new(
            run_id=self.run.run_id,
            target=self.target.key,
            action=action,
            previous_model=previous,
            new_model=new.url,
            request=redacted_plan(plan),
            metrics=self.run.metrics if action != "restore" else None,
            job_id=self.run.job_id,
            rollback_of=self.run.rollback_of,
        )
        self.run.ledger.append(intent)
        self.intents.append(intent.id)

    def record(
        self, outcome: TargetOutcome, entry_action: str, entry_outcome: str, previous: str | None
    ) -> TargetOutcome:
        """Append the outcome (not for dry runs) and stamp the time spent."""
        if self.run.ledger is not None and not self.run.dry_run:
            entry = LedgerEntry.new(
                target=self.target.key,
                action=entry_action,
                outcome=entry_outcome,
                previous_model=previous,
                new_model=self.model.url,
                serving_model=outcome.serving_model,
                metrics=self.run.metrics,
                job_id=self.run.job_id,
                request_ids=self.request_ids,
                rollback_of=self.run.rollback_of,
                message=outcome.error or outcome.gate_text,
                run_id=self.run.run_id,
                intents=self.intents,
            )
            try:
                self.run.ledger.append(entry)
            except LedgerError as err:
                # The ledger keeps the intent open: until reconcile reads the target, what
                # it serves is unknown to everyone who reads the ledger.
                note = (
                    f"{err}: this outcome ({outcome.status}) is not recorded; run "
                    "`amlretrain reconcile`"
                )
                log.error("%s: %s", self.target.label, note)
                outcome = attrs.evolve(
                    outcome,
                    status="unknown" if self.intents else outcome.status,
                    error=f"{outcome.error}; {note}" if outcome.error else note,
                    exception=err,
                )
        return attrs.evolve(outcome, seconds=time.monotonic() - self.started)

    # -- the change ----------------------------------------------------------------------

    @contextlib.contextmanager
    def talking(self) -> Iterator[None]:
        """Hold one of the run's service slots (when it has them) for the with-block."""
        if self.run.slots is None:
            yield
            return
        with self.run.slots:
            yield

    def send(self, model: BlobRef, state: TargetState) -> TargetState:
        """``target.deploy(model, state)``; once more when no answer came back.

        ``state`` was read just now, under the lease: it is the pin. A request that lost
        its connection may still land later. A swap sets an absolute value and the
        targets accept "already serves this model" as their pin, so sending it again
        (with ``state`` as the expected one: the target reads again) converges. An
        operation the service accepted and that is still running at its deadline is not
        sent again (its outcome is unknown until reconciled).

        Returns:
            The state after the swap.
        """
        try:
            return self._deploy(model, state, pinned=True)
        except (ServiceError, OperationTimeout) as err:
            if isinstance(err, OperationStillRunning) or not _unanswered(err):
                raise  # answered (an error, a failed operation), or accepted and running
            if self.run.stop is not None and self.run.stop.requested:
                raise
            log.warning("%s: no answer to the swap (%s); sending it again", self.target.label, err)
            return self._deploy(model, state, pinned=False)  # read again: it may have landed

    def _deploy(self, model: BlobRef, state: TargetState, *, pinned: bool) -> TargetState:
        if self.detaches and isinstance(self.target, DetachableTarget):
            return self.target.deploy(
                model,
                state,
                stop=self.run.stop,
                pinned=pinned,
                on_request=self._accepted,
                detach=True,
            )
        return self.target.deploy(
            model, state, stop=self.run.stop, pinned=pinned, on_request=self._accepted
        )

    @property
    def detaches(self) -> bool:
        """True when the swap may stop waiting for its operation (see the module docstring)."""
        return (
            self.run.detach
            and self.may_detach
            and self.run.run_id is not None
            and self.lease is not None
            and self.lease.can_hand_off
            and isinstance(self.target, DetachableTarget)
        )

    def resume(self, token: str, state: TargetState) -> TargetState:
        """Go on with the swap from its detached operation's ``token``."""
        if not isinstance(self.target, DetachableTarget):
            raise ConfigurationError(f"{self.target.label}: its swaps do not detach")
        return self.target.resume(
            self.model,
            state,
            token,
            stop=self.run.stop,
            on_request=self._accepted,
            detach=self.detaches,
        )

    def hand_off(self, detached: OperationDetached) -> OperationsDetached | None:
        """Record the detached operation and hand the lease to the run; None when the
        record could not be written (the swap then waits)."""
        assert self.run.ledger is not None and self.run.run_id is not None
        assert self.lease is not None and self.intents
        record = OperationRecord.new(
            run_id=self.run.run_id,
            target=self.target.key,
            intent=self.intents[0],
            token=detached.token,
            what=detached.what,
            request_ids=self.request_ids,
        )
        try:
            self.run.ledger.append(record)
        except LedgerError as err:
            log.warning("%s: %s; waiting for the operation here", self.target.label, err)
            return None
        self.lease.hand_off()
        log.info(
            "%s: %s: run %s waits for it (deferred)", self.target.label, detached, record.run_id
        )
        return _detached(self.target, record.run_id, detached.token, detached.what)

    def _accepted(self, request_id: str) -> None:
        """A changing request's id, recorded with the outcome (also when the swap fails)."""
        if request_id:
            self.request_ids.append(request_id)


def deploy_one(
    target: Target, model: BlobRef, state: TargetState, run: Deployment
) -> TargetOutcome:
    """Gate, swap, verify and record one target; never raises for target failures.

    Args:
        state: the target as the run checked it (:meth:`Target.check`); a real run reads
            it again under the lease before the swap, and that read is the pin. A dry run
            plans from ``state``.
    """
    work = _Run(target, model, run)
    previous = state.model
    base = TargetOutcome(
        target=target.label,
        key=target.key,
        status="failed",
        previous_model=strip_sas(previous),
        new_model=model.url,
        serving_model=strip_sas(previous),
    )
    if run.stop is not None and run.stop.requested:
        return attrs.evolve(base, error="not started: the run is stopping; nothing was sent")
    try:
        with _held(target, run) as lease:
            work.lease = lease
            handed = run.detached.get(target.key)
            if handed is not None and not run.dry_run:
                return _resumed(work, base, state, handed)
            if not run.dry_run and not _still_pinned(state, lease, run.pin_window):
                with work.talking():
                    state = target.read(state)  # the last read before the swap: the pin
                base = attrs.evolve(
                    base,
                    previous_model=strip_sas(state.model),
                    serving_model=strip_sas(state.model),
                )
            return _locked(work, base, state)
    except (ConflictError, LedgerError, ConfigurationError, ServiceError) as err:
        # The lease is held by another run, the intent could not be written, or the
        # last read failed: nothing was sent.
        return attrs.evolve(
            base,
            error=f"{redact(str(err))}; nothing was sent",
            exception=err,
            seconds=time.monotonic() - work.started,
        )


@contextlib.contextmanager
def _held(target: Target, run: Deployment) -> Iterator[Lease | None]:
    """This process's lock of the target and, for a real run, the ledger's lease."""
    with _process_lock(target.key):
        if run.dry_run or run.ledger is None:
            yield None
            return
        with run.ledger.locks.hold(target.key, wait=run.wait_lock, run_id=run.run_id) as lease:
            yield lease


def _still_pinned(state: TargetState, lease: Lease | None, window: float) -> bool:
    """True when ``state``, read before the lease was taken, can stand as the pin.

    Only when it was read within ``window`` seconds and no one held the lease since it
    was read: the lease's previous holder released it cleanly before the read (or no
    one ever held it). Any other writer of amlretrain takes the lease to write, so
    nothing it did can have happened after that read. The release time was stamped by
    its holder's clock, maybe another machine's: it must be :data:`CLOCK_SKEW` seconds
    before the read. Otherwise the target is read again.
    """
    if window <= 0 or lease is None or lease.last_released is None or state.document is None:
        return False
    released_before = lease.last_released + CLOCK_SKEW < state.read_at
    return released_before and time.time() - state.read_at <= window


def _locked(work: _Run, base: TargetOutcome, state: TargetState) -> TargetOutcome:
    target, model, run = work.target, work.model, work.run
    previous = state.model
    if run.dry_run and not run.metrics and run.gate is not None and not run.gate.is_empty:
        base = attrs.evolve(base, gate_checks=("skip the gate: a dry run trains nothing",))
    elif run.gate is not None and not run.gate.is_empty:
        incumbent = _incumbent_metrics(run, target, previous)
        decision = run.gate.decide(run.metrics, incumbent=incumbent)
        base = attrs.evolve(base, gate_passed=decision.passed, gate_checks=decision.checks)
        if not decision.passed:
            outcome = attrs.evolve(
                base, status="rejected", error="gate: " + "; ".join(decision.reasons)
            )
            return work.record(outcome, "gate", "rejected", previous)
    if same_blob(previous, model.url):
        outcome = attrs.evolve(base, status="skipped", error="the target already serves this model")
        return attrs.evolve(outcome, seconds=time.monotonic() - work.started)
    try:
        plan = target.plan(model, state)
    except AmlRetrainError as err:
        failed = attrs.evolve(base, error=redact(str(err)), exception=err)
        return work.record(failed, run.action, "failed", previous)
    if run.dry_run:
        outcome = attrs.evolve(base, status="dry-run", plan=redacted_plan(plan))
        return attrs.evolve(outcome, seconds=time.monotonic() - work.started)
    if run.stop is not None and run.stop.requested:  # the last moment before a change
        return attrs.evolve(base, error="not started: the run is stopping; nothing was sent")
    work.intend(run.action, previous, model, plan)  # LedgerError: nothing was sent
    return _sent(work, base, state, plan, previous)


def _sent(
    work: _Run,
    base: TargetOutcome,
    state: TargetState,
    plan: Mapping[str, Any],
    previous: str | None,
    token: str | None = None,
) -> TargetOutcome:
    """The swap (or, with ``token``, its rest), recorded; or handed off, detached."""
    with work.talking():
        try:
            outcome, entry_outcome = _swap(work, base, state, plan, token)
        except OperationDetached as detached:
            handed = work.hand_off(detached)
            if handed is not None:
                return attrs.evolve(
                    base,
                    status="unknown",
                    serving_model=None,
                    error=f"{detached}: the run waits for it (detached)",
                    exception=handed,
                    seconds=time.monotonic() - work.started,
                )
            work.may_detach = False
            outcome, entry_outcome = _swap(work, base, state, plan, detached.token)
    return work.record(outcome, work.run.action, entry_outcome, previous)


def _resumed(
    work: _Run, base: TargetOutcome, state: TargetState, handed: OperationRecord
) -> TargetOutcome:
    """A swap its run detached earlier (lease taken back): read the target, finish the
    swap from the operation's token, record the outcome (closing its intent)."""
    target, run = work.target, work.run
    history = run.history or (run.ledger.history() if run.ledger is not None else None)
    intents = history.intents(target.key) if history is not None else []
    intent = next((i for i in intents if i.id == handed.intent), None)
    if intent is None or not same_blob(intent.new_model, work.model.url):
        why = (
            "its intent is not in the ledger"
            if intent is None
            else f"it was a swap to {intent.new_model}, not {work.model.url}"
        )
        return attrs.evolve(
            base,
            status="unknown",
            serving_model=None,
            error=f"the detached swap cannot be resumed: {why} (run `amlretrain reconcile`)",
        )
    work.intents.append(intent.id)
    work.request_ids.extend(handed.request_ids)  # the requests the detached attempt sent
    try:
        with work.talking():
            state = target.read(state)  # under the lease the swap handed off: the pin
    except AmlRetrainError as err:
        # The operation's outcome is still to be read: the run keeps the target.
        assert work.lease is not None
        work.lease.hand_off()
        return attrs.evolve(
            base,
            status="unknown",
            serving_model=None,
            error=f"{redact(str(err))}: the detached swap is resumed later (still the run's)",
            exception=_detached(target, handed.run_id, handed.token, handed.what),
        )
    gated = run.gate is not None and not run.gate.is_empty
    base = attrs.evolve(
        base,
        previous_model=strip_sas(intent.previous_model),
        serving_model=None,
        gate_passed=True if gated else None,  # its intent was written after the gate passed
    )
    log.info("%s: resuming the swap from %s", target.label, handed.what)
    return _sent(work, base, state, intent.request, intent.previous_model, handed.token)


def _detached(target: Target, run_id: str, token: str, what: str) -> OperationsDetached:
    """What a swap handed off tells its run (the fleet raises it once the wave was sent)."""
    operation = DetachedOperation(target=target.key, label=target.label, token=token, what=what)
    return OperationsDetached(run_id, [operation])


def _swap(
    work: _Run,
    base: TargetOutcome,
    state: TargetState,
    plan: Mapping[str, Any],
    token: str | None = None,
) -> tuple[TargetOutcome, str]:
    """Send (or go on from ``token``), verify (and score), or put back: the outcome and its
    ledger outcome. :class:`OperationDetached` passes through."""
    target, model, run = work.target, work.model, work.run
    try:
        after = work.send(model, state) if token is None else work.resume(token, state)
    except _UNCONFIRMED as err:
        return _unconfirmed(target, base, err), "unknown"
    except AmlRetrainError as err:
        if _unanswered(err):
            return _unconfirmed(target, base, err), "unknown"
        log.warning("%s: %s; restoring the previous model", target.label, err)
        restored = _restore(work, base, state, err)
        return restored, _entry_outcome(restored)
    try:
        scores = _verify_scoring(target, run.sample, after)
    except AmlRetrainError as err:
        log.warning("%s: %s; restoring the previous model", target.label, err)
        restored = _restore(work, base, state, err)
        return restored, _entry_outcome(restored)
    outcome = attrs.evolve(
        base,
        status="succeeded",
        serving_model=strip_sas(after.model),
        scores=scores,
        plan=redacted_plan(dict(plan)),
    )
    return outcome, "succeeded"


def _incumbent_metrics(
    run: Deployment, target: Target, previous: str | None
) -> Mapping[str, float] | None:
    """The metrics recorded for the model ``target`` serves: from the run's one read of
    the ledger while it still says the target serves that model, else read afresh."""
    if run.ledger is None:
        return None
    if run.history is not None and run.history.last_known(target.key) == strip_sas(previous):
        return run.history.metrics_of(target.key, previous)
    return run.ledger.metrics_of(target.key, previous)


def _entry_outcome(outcome: TargetOutcome) -> str:
    return {"restored": "restored", "unknown": "unknown"}.get(outcome.status, "failed")


def _unconfirmed(target: Target, base: TargetOutcome, err: AmlRetrainError) -> TargetOutcome:
    """The change was sent but what the target serves cannot be confirmed."""
    message = (
        f"{redact(str(err))}; the change was sent but what {target.label} serves could not be "
        "confirmed: recorded as unknown (run `amlretrain reconcile`)"
    )
    log.warning("%s: %s", target.label, message)
    return attrs.evolve(base, status="unknown", serving_model=None, error=message, exception=err)


def _verify_scoring(
    target: Target, sample: Sample | None, state: TargetState
) -> list[dict[str, Any]] | None:
    """Score ``sample`` (default: the target's own) through the service as swapped."""
    sample = sample or target.sample(state)
    if sample is None:
        return None
    return target.score(sample, state).first.records()


_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


@contextlib.contextmanager
def _process_lock(key: str) -> Iterator[None]:
    """One lock per target in this process (dry runs and ledger-less runs too)."""
    with _process_locks_guard:
        lock = _process_locks.setdefault(key, threading.Lock())
    with lock:
        yield


def check_model(model: BlobRef, store: BlobStore | None) -> None:
    """Refuse a model the services could not read, before anything changes: it must
    exist and be readable with the SAS they will be sent (read anonymously with it).

    Raises:
        ConfigurationError: an expired or refused SAS, or a missing blob.
    """
    if store is not None and store.owns(model):
        store.check_readable(model)
    else:
        from amlretrain.storage import check_readable

        check_readable(model)


def with_read_sas(model: BlobRef, store: BlobStore | None, lifetime: timedelta) -> BlobRef:
    """``model`` as the services get it: a read SAS is minted when it has none and
    ``store`` holds it (the URLs ``retrain`` and ``history`` print carry no SAS)."""
    if store is not None and not model.sas_token and store.owns(model):
        return store.sas(model, expires_in=lifetime)
    return model


def _restore(
    work: _Run, base: TargetOutcome, known: TargetState, err: AmlRetrainError
) -> TargetOutcome:
    """After a failed swap: make sure the target serves a verified model, and say which.

    Args:
        known: the target as read under the lease before the swap.
    """
    target, store = work.target, work.run.store
    work.may_detach = False  # a restore is waited for
    previous = known.model
    message = redact(str(err))
    base = attrs.evolve(base, exception=err)
    try:
        state = target.read(known)
        now = state.model
    except AmlRetrainError as read_err:
        return attrs.evolve(
            base,
            status="unknown",
            serving_model=None,
            error=f"{message}; the target could not be read afterwards: {redact(str(read_err))}",
        )
    if previous is None or same_blob(now, previous):
        return attrs.evolve(
            base,
            serving_model=strip_sas(now),
            error=f"{message}; the target still serves its previous model",
        )
    if strip_sas(now) != base.new_model:
        # Neither the previous model nor ours: someone else deployed meanwhile. Putting
        # "our" previous model back would undo their work.
        return attrs.evolve(
            base,
            serving_model=strip_sas(now),
            error=(
                f"{message}; the target was changed concurrently and now serves another "
                "model: left as it is"
            ),
        )
    try:
        old = BlobRef.from_url(previous)
        if store is not None and store.owns(old):
            # The old SAS may have expired meanwhile; the restored model must stay
            # readable as long as a deployed one.
            old = store.sas(old, expires_in=RESTORE_SAS_LIFETIME)
        work.intend("restore", now, old, target.plan(old, state))
        work.send(old, state)  # the read just now, under the lease, is the pin
    except _UNCONFIRMED as restore_err:
        return attrs.evolve(
            base,
            status="unknown",
            serving_model=None,
            error=f"{message}; restoring the previous model was not confirmed: "
            f"{redact(str(restore_err))} (run `amlretrain reconcile`)",
        )
    except AmlRetrainError as restore_err:
        return attrs.evolve(
            base,
            serving_model=strip_sas(now),
            error=f"{message}; restoring the previous model failed too: {redact(str(restore_err))}",
        )
    return attrs.evolve(
        base,
        status="restored",
        serving_model=strip_sas(previous),
        error=f"{message}; the previous model was put back and verified",
    )
