"""The engine of a fleet run (:func:`amlretrain.fleet.retrain_fleet`): its threads and state.

One :class:`FleetRun` per run: the training pool (its jobs stopped by the run's stop
request and by a halt), the waves deployed a few targets at a time, the failure budget
counted as outcomes come in, the halted wave rolled back when asked, and the one result.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs

from amlretrain._numbers import CONCURRENCY, checked_int
from amlretrain._redact import redact
from amlretrain._run import deploy_status, job_recorder
from amlretrain.blobs import BlobRef, strip_sas
from amlretrain.errors import (
    AmlRetrainError,
    ConfigurationError,
    DetachedJob,
    Interrupted,
    LedgerError,
    OperationsDetached,
    TrainingDetached,
)
from amlretrain.gate import Gate
from amlretrain.interrupt import StopSignal
from amlretrain.ledger import Ledger
from amlretrain.records import LedgerEntry
from amlretrain.result import (
    STATUSES,
    RetrainResult,
    StepRecorder,
    StepResult,
    TargetOutcome,
)
from amlretrain.swap import Deployment, check_model, deploy_one, pool_size, service_slots
from amlretrain.targets import Sample, Target, TargetState
from amlretrain.training import JobDetached, Trainer, job_name
from amlretrain.waves import FailureBudget, Waves

if TYPE_CHECKING:
    from amlretrain._fleet_progress import FleetProgress
    from amlretrain._rollout_guard import RolloutGuard
    from amlretrain.alarms import Fired
    from amlretrain.history import History, RunSummary
    from amlretrain.storage import BlobStore

__all__ = ["FAILURES", "FleetRun", "Group"]

log = logging.getLogger("amlretrain.workflow")

T = TypeVar("T")

#: Target statuses that count against the failure budget (gate rejections do not).
FAILURES = frozenset({"failed", "restored", "unknown"})
#: A job recorded with one of these ended without running: a resume submits anew.
_RESUBMIT = frozenset({"Cancelled", "NotSubmitted"})
#: A halt, not a signal: the training stop raised by a halted run.
_HALT = 0


class Group(Protocol):
    """What the engine needs of a group (:class:`amlretrain.fleet.FleetGroup`)."""

    @property
    def training(self) -> Trainer | None: ...

    @property
    def model(self) -> BlobRef | None: ...

    @property
    def metrics(self) -> Mapping[str, float]: ...

    @property
    def model_store(self) -> BlobStore | None: ...

    @property
    def sas_lifetime(self) -> timedelta: ...

    @property
    def targets(self) -> tuple[Target, ...]: ...

    @property
    def label(self) -> str: ...


@attrs.frozen
class _Trained:
    """A group's training, done: its model (or the error that ended it)."""

    job_id: str | None
    model: BlobRef | None
    metrics: Mapping[str, float]
    error: BaseException | None = None


class FleetRun:
    """One fleet run's shared state (its threads read it; the lock guards the counts)."""

    def __init__(
        self,
        *,
        groups: tuple[Group, ...],
        ordered: Sequence[tuple[Target, Group]],
        states: Mapping[str, TargetState],
        gate: Gate | None,
        ledger: Ledger | None,
        history: History | None,
        dry_run: bool,
        sample: Sample | None,
        run_id: str,
        stop: StopSignal,
        wait_lock: float,
        progress: bool,
        display: FleetProgress | None,
        prior: RunSummary | None,
        concurrency: int,
        guard: RolloutGuard | None = None,
        detach: bool = False,
    ) -> None:
        self.groups = groups
        self.ordered = ordered
        self.states = states
        self.gate = gate
        self.ledger = ledger
        self.history = history
        self.dry_run = dry_run
        self.sample = sample
        self.run_id = run_id
        self.stop = stop
        self.wait_lock = wait_lock
        self.progress = progress and len(groups) == 1  # one job's bar; a fleet has a display
        self.display = display
        self.prior = prior
        self.concurrency = concurrency
        self.slots: threading.BoundedSemaphore | None = None
        self.guard = guard
        #: Submit the training jobs and raise TrainingDetached instead of waiting.
        self.detach = detach
        self.done = prior.final() if prior is not None else {}
        #: The swaps this run detached earlier (their operations to finish), by target.
        self.handed = history.detached(run_id) if prior is not None and history is not None else {}
        # Training is stopped by the run's stop request, and by a halt.
        self.training_stop = stop.child()
        self.halted = threading.Event()
        #: Why the run halted, when not its failure budget (a rollout's alarm).
        self.halt_reason: str | None = None
        self._lock = threading.Lock()
        self.failures = 0
        self.group_steps: dict[str, StepRecorder] = {}
        #: Each group's training error, by its label.
        self.errors: dict[str, BaseException] = {}

    # -- the run ----------------------------------------------------------------------------

    def run(
        self,
        steps: StepRecorder,
        plan: Waves | None,
        budget: FailureBudget | None,
        bake: float,
        rollback_on_halt: bool,
        training_concurrency: int,
    ) -> RetrainResult:
        targets = [t for t, _ in self.ordered]
        waves = plan.split(self.ordered) if plan is not None else [list(self.ordered)]
        outcomes: dict[str, TargetOutcome] = {}
        halted_wave: int | None = None
        pool = ThreadPoolExecutor(max_workers=training_concurrency, thread_name_prefix="train")
        try:
            trained = self._train_all(pool, steps)
            if self.detach:
                self._raise_if_detached(trained)
            for number, wave in enumerate(waves, start=1):
                for _, group in wave:  # the wave's models first: the step times the swaps
                    if group.label in trained:
                        _finished(trained[group.label])
                if self.display is not None:
                    self.display.wave(number, len(waves), len(wave))
                if self.guard is not None and not self.dry_run:
                    self._precheck(wave, trained, steps)
                name = "deploy" if len(waves) == 1 else f"deploy wave {number}"
                with steps.step(name) as info:
                    wave_outcomes = self._deploy_wave(
                        wave, trained, budget, len(targets), number=number, bake=bake
                    )
                    shown = list(wave_outcomes.values())
                    info["_text"] = ", ".join(f"{o.target}: {o.status}" for o in shown[:20]) + (
                        f" (and {len(shown) - 20} more)" if len(shown) > 20 else ""
                    )
                    info["_status"] = deploy_status([o.status for o in shown])
                    info["wave"] = number
                outcomes.update(wave_outcomes)
                self._raise_if_swaps_detached(wave_outcomes)
                if self.halted.is_set():
                    halted_wave = number
                    if rollback_on_halt:
                        outcomes.update(self._roll_back(wave, wave_outcomes))
                    break
                self.stop.raise_if_requested(self._result(steps, outcomes, halted_wave))
                if self.guard is not None and self.guard.step_alarms:
                    # An alarm in a v2 endpoint's traffic steps: as a bake's alarm.
                    self._alarmed(number, self.guard.step_alarms[0][1], outcomes, steps)
                    halted_wave = number
                    break
                if self.guard is not None and not self.dry_run:
                    if self._bake(number, wave, wave_outcomes, outcomes, bake, steps):
                        halted_wave = number
                        break
                    continue
                if bake and number < len(waves) and not self.dry_run:
                    with steps.step(f"bake {number}") as info:
                        info["_text"] = f"waited {bake:g} s after wave {number}"
                        if self.stop.wait(bake):
                            info["_status"] = "skipped"
        finally:
            self.training_stop.request(_HALT)  # cancels what still runs (halt or error)
            pool.shutdown(wait=True)
        for target, group in self.ordered:
            if target.key not in outcomes:
                outcomes[target.key] = self._halted(target, group)
        if halted_wave is None and not self.dry_run:
            self._retire(outcomes, steps)
        if self.guard is not None and halted_wave is None and not self.dry_run:
            live = [o for o in outcomes.values() if o.status == "succeeded"]
            if live:
                self.guard.finished([o.key for o in live], [o.new_model or "" for o in live])
        self._record_steps(steps)
        result = self._result(steps, outcomes, halted_wave)
        self.stop.raise_if_requested(result)
        return result

    def _result(
        self, steps: StepRecorder, outcomes: Mapping[str, TargetOutcome], halted: int | None
    ) -> RetrainResult:
        rows = tuple(outcomes[t.key] for t, _ in self.ordered if t.key in outcomes)
        single = self.groups[0] if len(self.groups) == 1 else None
        first = rows[0] if rows and single is not None else None
        return RetrainResult(
            steps=tuple(steps.steps),
            targets=rows,
            metrics=dict(first.metrics) if first is not None else {},
            job_id=first.job_id if first is not None else None,
            model=first.new_model if first is not None else None,
            dry_run=self.dry_run,
            run_id=None if self.dry_run else self.run_id,
            halted_wave=halted,
            key_metrics=_gate_metrics(self.gate),
            halt_reason=self.halt_reason if halted is not None else None,
        )

    def _record_steps(self, steps: StepRecorder) -> None:
        """A fleet's training as one step (one group's steps are the run's own)."""
        if len(self.groups) == 1:
            return
        ended = [s for r in self.group_steps.values() for s in r.steps if s.name == "train"]
        failed = sum(1 for s in ended if s.status == "failed")
        at = next((n for n, st in enumerate(steps.steps) if st.name.startswith("deploy")), None)
        step = StepResult(
            name="train",
            status="failed" if ended and failed == len(ended) else "ok",
            seconds=max((s.seconds for s in ended), default=0.0),
            detail=f"{len(self.group_steps)} data file(s): {len(ended) - failed} job(s) "
            f"finished, {failed} failed",
            data={"jobs": {label: _job_of(r) for label, r in self.group_steps.items()}},
        )
        steps.steps.insert(len(steps.steps) if at is None else at, step)

    # -- training ----------------------------------------------------------------------------

    def _train_all(
        self, pool: ThreadPoolExecutor, steps: StepRecorder
    ) -> dict[str, Future[_Trained]]:
        """Every group that still has work, submitted to the training pool (one group
        records its steps as the run's own; a fleet's groups each their own)."""
        futures: dict[str, Future[_Trained]] = {}
        for group in self.groups:
            if all(t.key in self.done for t in group.targets):
                continue  # resumed: every target of the group has its outcome
            own = steps if len(self.groups) == 1 else StepRecorder(None)
            futures[group.label] = pool.submit(self._train, group, own)
        return futures

    def _train(self, group: Group, steps: StepRecorder) -> _Trained:
        self.group_steps[group.label] = steps
        for target in group.targets:
            self._show(target, "training")
        if self.training_stop.requested:
            return _Trained(None, None, {}, Interrupted(self.training_stop.signum or 2))
        if group.training is None:  # deploy: trained already
            return _Trained(None, group.model, dict(group.metrics))
        training = group.training
        if self.dry_run:
            return _Trained(None, training.plan(steps, name=job_name(self.run_id, group.label)), {})
        attach, name, error = self._job_to_resume(group)
        if error is not None:
            self.errors[group.label] = error
            return _Trained(attach, None, {}, error)
        recorder = job_recorder(self.ledger, self.run_id, training.location, data=group.label)
        job_id: str | None = None
        try:
            if self.guard is not None:
                training = self.guard.prepare(group.label, training)
            job_id, model, metrics = training.run(
                steps,
                self.progress,
                stop=self.training_stop,
                on_job=recorder,
                attach=attach,
                name=name,
                detach=self.detach,
            )
            check_model(model, training.store)
        except JobDetached as detached:
            job = DetachedJob(
                kind=training.kind,
                data=str(group.training.data),
                label=group.label,
                job_id=detached.job_id,
            )
            return _Trained(detached.job_id, None, {}, TrainingDetached(self.run_id, [job]))
        except (AmlRetrainError, Interrupted) as err:
            self.errors[group.label] = err
            return _Trained(job_id or _job_of(steps) or attach, None, {}, err)
        return _Trained(job_id, model, metrics)

    def _raise_if_detached(self, trained: Mapping[str, Future[_Trained]]) -> None:
        """With ``detach``: once every job is submitted, raise TrainingDetached for those
        still running (nothing deployed; the run resumes with its id)."""
        jobs: list[DetachedJob] = []
        for future in trained.values():
            error = _finished(future).error
            if isinstance(error, TrainingDetached):
                jobs.extend(error.jobs)
        if jobs:
            raise TrainingDetached(self.run_id, jobs)

    def _raise_if_swaps_detached(self, outcomes: Mapping[str, TargetOutcome]) -> None:
        """With ``detach``: once a wave's swaps were sent, raise OperationsDetached for
        those whose operation still runs (the run resumes with its id)."""
        operations = [
            op
            for o in outcomes.values()
            if isinstance(o.exception, OperationsDetached)
            for op in o.exception.operations
        ]
        if operations:
            raise OperationsDetached(self.run_id, operations)

    def _job_to_resume(self, group: Group) -> tuple[str | None, str, AmlRetrainError | None]:
        """(job id to re-attach to, or None to submit; the name of a job submitted now;
        an error when it must not run).

        A job's name is the run's and the group's (:func:`~amlretrain.training.job_name`),
        with the count of jobs the run already had on the group (a resubmit after a
        cancel gets a new name). A submit whose answer was lost is sent again under the
        same name when the training names its jobs (a PUT of that name is the same job);
        otherwise it is refused: the service may hold a job nobody knows the id of.
        """
        assert group.training is not None
        if self.prior is None:
            return None, job_name(self.run_id, group.label), None
        ids = {j.job_id for j in self.prior.jobs if j.data == group.label and j.job_id}
        name = job_name(self.run_id, group.label, len(ids) + 1)
        job = self.prior.job_for(group.label)
        if job is None or job.status in _RESUBMIT:
            return None, name, None
        if not job.job_id:
            if group.training.names_jobs:
                return None, name, None
            return (
                None,
                name,
                ConfigurationError(
                    f"run {self.run_id}: the submit of a job on {group.label} got no answer; "
                    "it may exist on the service without its id, so it is not submitted "
                    "again (run `amlretrain reconcile`, or start a new run)"
                ),
            )
        return job.job_id, name, None

    # -- deployment ----------------------------------------------------------------------------

    def _deploy_wave(
        self,
        wave: Sequence[tuple[Target, Group]],
        trained: Mapping[str, Future[_Trained]],
        budget: FailureBudget | None,
        total: int,
        *,
        number: int,
        bake: float,
    ) -> dict[str, TargetOutcome]:
        """Deploy wave ``number`` (``bake``: the run's, which a v2 swap's traffic steps
        bake for under a rollout)."""

        def work(pair: tuple[Target, Group]) -> TargetOutcome:
            target, group = pair
            if target.key in self.done:
                return self._recorded(target, group, self.done[target.key])
            result = _finished(trained[group.label])
            if self.halted.is_set():
                return self._halted(target, group)
            outcome = self._deploy(target, group, result, number, bake)
            with self._lock:
                if outcome.status in FAILURES and not isinstance(
                    outcome.exception, OperationsDetached
                ):
                    self.failures += 1
                    if budget is not None and budget.exceeded(self.failures, total):
                        if not self.halted.is_set():
                            log.warning(
                                "the failures (%d) crossed the failure budget (%s): halting",
                                self.failures,
                                budget,
                            )
                        self.halted.set()
            self._show(target, str(outcome.status), outcome.error)
            return outcome

        concurrency = checked_int(
            self.concurrency, name="concurrency", low=CONCURRENCY[0], high=CONCURRENCY[1]
        )
        self.slots = service_slots(concurrency)
        if concurrency == 1 or len(wave) <= 1:
            results = [work(pair) for pair in wave]
        else:
            with ThreadPoolExecutor(max_workers=min(pool_size(concurrency), len(wave))) as pool:
                results = [_finished(f) for f in [pool.submit(work, pair) for pair in wave]]
        return {o.key: o for o in results}

    def _deploy(
        self, target: Target, group: Group, trained: _Trained, wave: int, bake: float
    ) -> TargetOutcome:
        state = self.states[target.key]
        if trained.error is not None or trained.model is None:
            return self._untrained(target, group, trained, state)
        why = self.guard.verdicts.get(group.label) if self.guard is not None else None
        if why is not None:
            return self._stopped_by_rollout(target, group, trained, state, why)
        self._show(target, "deploying")
        run = Deployment(
            metrics=dict(trained.metrics),
            gate=self.gate,
            ledger=self.ledger,
            dry_run=self.dry_run,
            sample=self.sample,
            job_id=trained.job_id,
            store=group.model_store,
            run_id=self.run_id,
            stop=self.stop,
            wait_lock=self.wait_lock,
            history=self.history,
            slots=self.slots,
            detach=self.detach and self.guard is None,
            detached=self.handed,
        )
        if self.guard is not None and not self.dry_run:
            target = self.guard.staged(target, group.label, trained.model, wave, bake)
        outcome = deploy_one(target, trained.model, state, run)
        return attrs.evolve(
            outcome, data=group.label, job_id=trained.job_id, metrics=dict(trained.metrics)
        )

    def _precheck(
        self,
        wave: Sequence[tuple[Target, Group]],
        trained: Mapping[str, Future[_Trained]],
        steps: StepRecorder,
    ) -> None:
        """The rollout's stages before any live target of a model changes (once a model)."""
        guard = self.guard
        assert guard is not None
        todo: dict[str, tuple[Target, Group, _Trained]] = {}
        for target, group in wave:
            if target.key in self.done or group.label in guard.verdicts or group.label in todo:
                continue
            if group.label not in trained:
                continue
            result = _finished(trained[group.label])
            if result.model is not None and result.error is None:
                todo[group.label] = (target, group, result)
        if not todo:
            return
        with steps.step("rollout checks") as info:
            verdicts = []
            for label, (target, _group, result) in todo.items():
                assert result.model is not None
                self._show(target, "checking")
                why = guard.precheck(label, result.model, target, self.states[target.key])
                verdicts.append(f"{label}: {why or 'passed'}")
            info["_text"] = "; ".join(verdicts)
            if all(guard.verdicts.get(label) for label in todo):
                info["_status"] = "rejected"

    def _bake(
        self,
        number: int,
        wave: Sequence[tuple[Target, Group]],
        wave_outcomes: Mapping[str, TargetOutcome],
        outcomes: dict[str, TargetOutcome],
        bake: float,
        steps: StepRecorder,
    ) -> bool:
        """The wave's bake under the rollout's alarms; True when one fired (everything the
        rollout promoted is then rolled back, and the run halts)."""
        guard = self.guard
        assert guard is not None
        promoted = [
            (target, group.label, wave_outcomes[target.key].new_model)
            for target, group in wave
            if wave_outcomes.get(target.key) is not None
            and wave_outcomes[target.key].status == "succeeded"
        ]
        if promoted:
            guard.promoted(number, [t.key for t, _, _ in promoted], promoted[0][2])
        seconds = guard.rollout.bake_seconds(bake)
        if not promoted:
            return False  # the wave changed nothing: nothing to bake
        with steps.step(f"bake {number}") as info:
            fired = guard.bake(number, promoted, seconds)
            if not fired:
                info["_text"] = f"baked {seconds:g} s after wave {number}: no alarm"
                return False
            info["_status"] = "failed"
            info["_text"] = "; ".join(f.message for f in fired)
        self._alarmed(number, fired, outcomes, steps)
        return True

    def _alarmed(
        self,
        number: int,
        fired: Sequence[Fired],
        outcomes: dict[str, TargetOutcome],
        steps: StepRecorder,
    ) -> None:
        """An alarm fired in wave ``number``: halt, and roll back what the rollout promoted."""
        guard = self.guard
        assert guard is not None
        log.warning("an alarm fired in wave %d: rolling back what the rollout promoted", number)
        self.halt_reason = "an alarm fired: " + "; ".join(f.message for f in fired)
        self.halted.set()
        changed = [(t, g) for t, g in self.ordered if outcomes.get(t.key) is not None]
        why = "an alarm fired: " + "; ".join(f.message for f in fired)
        with steps.step("rollback") as info:
            back = self._roll_back(changed, outcomes, why=why)
            info["_text"] = f"{len(back)} target(s) put back"
            if any(o.status != "restored" for o in back.values()):
                info["_status"] = "failed"
        outcomes.update(back)
        guard.rolled_back(fired, [(k, str(o.status)) for k, o in back.items()])

    def _retire(self, outcomes: Mapping[str, TargetOutcome], steps: StepRecorder) -> None:
        """After the last bake: what each target swapped in this run took the traffic
        from, deleted (:mod:`amlretrain._retire`)."""
        from amlretrain._retire import retire_swapped

        retire_swapped(  # idempotent: a target this run retired before has nothing to retire
            steps,
            [t for t, _ in self.ordered],
            outcomes.values(),
            ledger=self.ledger,
            run_id=self.run_id,
            wait_lock=self.wait_lock,
        )

    def _stopped_by_rollout(
        self, target: Target, group: Group, trained: _Trained, state: TargetState, why: str
    ) -> TargetOutcome:
        """A target whose model the rollout's checks stopped: rejected, recorded."""
        served = strip_sas(state.model)
        self._show(target, "rejected", why)
        if self.ledger is not None:
            try:
                self.ledger.append(
                    LedgerEntry.new(
                        target=target.key,
                        action="gate",
                        outcome="rejected",
                        previous_model=served,
                        new_model=trained.model.url if trained.model is not None else None,
                        serving_model=served,
                        metrics=trained.metrics,
                        job_id=trained.job_id,
                        message=why,
                        run_id=self.run_id,
                    )
                )
            except LedgerError as err:
                log.error("%s: the rejection could not be recorded: %s", target.label, err)
        return TargetOutcome(
            target=target.label,
            key=target.key,
            status="rejected",
            previous_model=served,
            new_model=trained.model.url if trained.model is not None else None,
            serving_model=served,
            gate_passed=False,
            error=redact(why) + "; nothing was sent",
            data=group.label,
            job_id=trained.job_id,
            metrics=dict(trained.metrics),
        )

    def _untrained(
        self, target: Target, group: Group, trained: _Trained, state: TargetState
    ) -> TargetOutcome:
        err = trained.error
        halted = isinstance(err, Interrupted) and (self.halted.is_set() or err.signum == _HALT)
        status = "halted" if halted else "failed"
        where = f"job {trained.job_id} on {group.label}" if trained.job_id else group.label
        why = "not trained: the run halted" if halted else f"training failed ({where}): {err}"
        served = strip_sas(state.model)
        return TargetOutcome(
            target=target.label,
            key=target.key,
            status=status,
            previous_model=served,
            serving_model=served,
            error=redact(why) + "; nothing was sent",
            data=group.label,
            job_id=trained.job_id,
            exception=err if isinstance(err, AmlRetrainError) else None,
        )

    def _halted(self, target: Target, group: Group) -> TargetOutcome:
        served = strip_sas(self.states[target.key].model)
        self._show(target, "halted")
        return TargetOutcome(
            target=target.label,
            key=target.key,
            status="halted",
            previous_model=served,
            serving_model=served,
            error=f"not attempted: the run halted ({self.halt_reason or 'its failure budget'}); "
            "nothing was sent",
            data=group.label,
        )

    def _recorded(self, target: Target, group: Group, entry: Any) -> TargetOutcome:
        """A target the resumed run had finished: its outcome as the ledger has it."""
        status = entry.outcome if entry.outcome in STATUSES else "unknown"  # a foreign line
        self._show(target, status)
        return TargetOutcome(
            target=target.label,
            key=target.key,
            status=status,
            previous_model=entry.previous_model,
            new_model=entry.new_model,
            serving_model=entry.serving_model,
            gate_passed=False if entry.outcome == "rejected" else None,
            error=(f"{entry.message}; " if entry.message else "")
            + f"recorded by this run before it was resumed (ledger entry {entry.id})",
            data=group.label,
            job_id=entry.job_id,
            metrics=dict(entry.metrics),
        )

    def _roll_back(
        self,
        wave: Sequence[tuple[Target, Group]],
        outcomes: Mapping[str, TargetOutcome],
        *,
        why: str = "the run halted",
    ) -> dict[str, TargetOutcome]:
        """Put the changed targets of ``wave`` back on the model they served before."""
        back: dict[str, TargetOutcome] = {}
        for target, group in wave:
            outcome = outcomes.get(target.key)
            if outcome is None or outcome.status != "succeeded" or not outcome.previous_model:
                continue
            model = BlobRef.from_url(outcome.previous_model)
            store = group.model_store
            if store is not None and store.owns(model):
                model = store.sas(model, expires_in=group.sas_lifetime)
            run = Deployment(
                metrics={},
                gate=None,
                ledger=self.ledger,
                dry_run=False,
                sample=self.sample,
                job_id=outcome.job_id,
                store=store,
                action="rollback",
                run_id=self.run_id,
                stop=self.stop,
                wait_lock=self.wait_lock,
            )
            state = target.read(self.states[target.key])
            undone = deploy_one(target, model, state, run)
            status = "restored" if undone.status == "succeeded" else undone.status
            back[target.key] = attrs.evolve(
                outcome,
                status=status,
                serving_model=undone.serving_model,
                error=f"{why}: rolled back to {outcome.previous_model}"
                + (f" ({undone.error})" if undone.error else ""),
            )
            self._show(target, str(status))
        return back

    def _show(self, target: Target, state: str, detail: str | None = None) -> None:
        if self.display is not None:
            self.display.set(target.label, state, detail)


def _finished(future: Future[T]) -> T:
    """``future.result()``, waited for in short slices: a signal's handler (SIGINT,
    SIGTERM) runs in the main thread between two slices, not only when it is done."""
    while True:
        try:
            return future.result(timeout=0.2)
        except FutureTimeout:
            continue


def _gate_metrics(gate: Gate | None) -> tuple[str, ...]:
    """The metrics the gate looks at (the summary's table shows those)."""
    if gate is None:
        return ()
    return tuple(dict.fromkeys([*gate.thresholds, *gate.beat_incumbent]))


def _job_of(steps: StepRecorder) -> str | None:
    for step in steps.steps:
        job = step.data.get("job_id") if step.data else None
        if job:
            return str(job)
    return None
