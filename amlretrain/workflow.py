"""``retrain()``: new data -> training job -> evaluation -> gate -> swap -> verify -> record.

The whole loop in one call, for one or many targets, with a dry-run mode and a
write-ahead ledger: the ledger is proven writable before anything is trained or
changed, the targets' open intents are reconciled first, each training job is recorded
as soon as it is submitted, and each swap is leased, announced (an intent) and recorded
(its outcome; ``unknown`` when it cannot be confirmed). A failure before a target
changed leaves it untouched; a failure after it changed puts the previous model back
(verified). SIGINT and SIGTERM stop the run cleanly (:mod:`amlretrain.interrupt`).

Example:
    >>> result = retrain(training, [ArmTarget(arm, "rg", "census")],          # doctest: +SKIP
    ...                  gate=Gate(thresholds={"AUC": 0.8}), ledger=Ledger())
    >>> print(result.summary())                                                # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

import attrs

from amlretrain._retire import retire_swapped
from amlretrain._run import (
    begin,
    check_targets,
    deploy_status,
    run_targets,
    stopping,
)
from amlretrain.blobs import BlobRef, strip_sas
from amlretrain.errors import AmlRetrainError, ConfigurationError
from amlretrain.fleet import FleetGroup, run_fleet
from amlretrain.gate import Gate
from amlretrain.interrupt import StopSignal
from amlretrain.ledger import Ledger
from amlretrain.records import LedgerEntry
from amlretrain.result import RetrainResult, StepRecorder, TargetOutcome
from amlretrain.swap import (
    RESTORE_SAS_LIFETIME,
    Deployment,
    check_model,
    deploy_one,
    pool_size,
    service_slots,
    with_read_sas,
)
from amlretrain.targets import Sample, Target, TargetState
from amlretrain.training import Trainer

if TYPE_CHECKING:
    from amlretrain.rollout import Rollout
    from amlretrain.storage import BlobStore

__all__ = ["RESTORE_SAS_LIFETIME", "deploy", "retrain", "rollback"]

log = logging.getLogger(__name__)

#: Seconds a target's check may stand as the pin of its swap in :func:`deploy` when no
#: one held its lease since the check (else, and in a retrain, it is read again under
#: the lease). Bounds how long a change made outside amlretrain could go unseen.
PIN_WINDOW = 30.0


def _deploy_all(
    steps: StepRecorder,
    targets: Sequence[Target],
    model: BlobRef,
    current: Mapping[str, TargetState],
    run: Deployment,
    concurrency: int,
) -> RetrainResult:
    run = attrs.evolve(run, slots=service_slots(concurrency))

    def work(target: Target) -> TargetOutcome:
        return deploy_one(target, model, current[target.key], run)

    with steps.step("deploy") as info:
        outcomes = run_targets(targets, work, concurrency, workers=pool_size(concurrency))
        info["_text"] = ", ".join(f"{o.target}: {o.status}" for o in outcomes)
        info["_status"] = deploy_status([o.status for o in outcomes])
    if not run.dry_run:
        retire_swapped(
            steps, targets, outcomes, ledger=run.ledger, run_id=run.run_id, wait_lock=run.wait_lock
        )
    result = RetrainResult(
        steps=tuple(steps.steps),
        targets=tuple(outcomes),
        metrics=run.metrics,
        job_id=run.job_id,
        model=model.url,
        dry_run=run.dry_run,
        run_id=None if run.dry_run else run.run_id,
    )
    if run.stop is not None:
        run.stop.raise_if_requested(result)
    return result


def _one_group(
    group: FleetGroup,
    *,
    gate: Gate | None,
    ledger: Ledger | None,
    dry_run: bool,
    sample: Sample | None,
    concurrency: int,
    rollout: Rollout | None,
    progress: bool,
    on_step: Callable[[str], None] | None,
    interrupt_grace: float,
    wait_lock: float,
    stop: StopSignal | None,
    command: str,
) -> tuple[RetrainResult, dict[str, BaseException]]:
    """A run of one group through the fleet engine (one wave, no budget, no resume)."""
    return run_fleet(
        [group],
        gate=gate,
        ledger=ledger,
        dry_run=dry_run,
        sample=sample,
        concurrency=concurrency,
        training_concurrency=1,
        waves=None,
        bake=0.0,
        max_failures=None,
        rollback_on_halt=False,
        rollout=rollout,
        resume=None,
        config_fingerprint=None,
        order=None,
        progress=progress,
        display=None,
        on_step=on_step,
        interrupt_grace=interrupt_grace,
        wait_lock=wait_lock,
        stop=stop,
        command=command,
    )


def retrain(
    training: Trainer,
    targets: Sequence[Target],
    *,
    gate: Gate | None = None,
    ledger: Ledger | None = None,
    dry_run: bool = False,
    sample: Sample | None = None,
    concurrency: int = 4,
    progress: bool = False,
    on_step: Callable[[str], None] | None = None,
    interrupt_grace: float = 30.0,
    wait_lock: float = 0.0,
    stop: StopSignal | None = None,
    rollout: Rollout | None = None,
) -> RetrainResult:
    """Retrain on new data and deploy the new model to ``targets``, gated and verified.

    Steps: check the targets (wrong targets fail here, before anything is trained or
    changed), prove the ledger writable (a ``run-start`` record) and reconcile the
    targets' open intents, upload the data, run the training job (recorded as soon as
    it is submitted), read its evaluation, then per target (``concurrency`` at a time):
    lease it, read it again, gate, record the intent, swap, verify (reads show the new
    model and scoring ``sample`` succeeds), record the outcome.

    Args:
        training: the training (a Studio (classic) :class:`~amlretrain.training.Training`
            or an Azure ML v2 :class:`~amlretrain.azureml.training.CommandJobTraining`),
            its data and storage.
        targets: where to deploy.
        gate: rules the new model must pass (per target: "beat the incumbent" compares
            with the metrics recorded for the model that target serves).
        ledger: where every intent and outcome is recorded (and whose leases keep one
            deployment per target at a time).
        dry_run: change nothing: no upload, no training job, no update, no ledger line;
            the result holds each target's exact request for the model the job would
            write (``<output_container>/<run>/model.ilearner``; its SAS is minted after
            training, so the plan shows the URL without one).
        sample: rows for the scoring check (default: each target's exampleRequest).
        concurrency: targets deployed at a time (1-256).
        progress: show progress bars (tqdm.auto) for the upload and the job.
        on_step: called with each step's name as it starts.
        interrupt_grace: seconds the first SIGINT/SIGTERM lets a swap in flight finish.
        wait_lock: seconds to wait for a target leased by another run.
        stop: a stop request the caller routes signals to (then no handlers are
            installed here).
        rollout: a guarded rollout (:class:`~amlretrain.rollout.Rollout`): the model is
            checked on a candidate first (smoke, champion gate, shadow), the targets
            change in its waves, each baked under its alarms; an alarm rolls back
            everything it promoted and halts the run (``halted_wave``).

    Returns:
        The :class:`RetrainResult` (call ``raise_for_status()`` to turn failures into
        exceptions).

    Raises:
        ConfigurationError: a wrong target or input, or a ledger that cannot be written
            (nothing changed).
        ConflictError: a target with an open intent is leased by another run.
        TrainingJobFailed, OperationTimeout: the job failed or timed out (nothing changed).
        Interrupted: SIGINT or SIGTERM; its ``result`` holds what each target serves.
    """
    result, errors = _one_group(
        FleetGroup(training=training, targets=targets),
        gate=gate,
        ledger=ledger,
        dry_run=dry_run,
        sample=sample,
        concurrency=concurrency,
        rollout=rollout,
        progress=progress,
        on_step=on_step,
        interrupt_grace=interrupt_grace,
        wait_lock=wait_lock,
        stop=stop,
        command="retrain",
    )
    for error in errors.values():
        if isinstance(error, AmlRetrainError):
            raise error  # the job failed, or its data was refused: nothing changed
    return result


def deploy(
    model: BlobRef,
    targets: Sequence[Target],
    *,
    metrics: Mapping[str, float] | None = None,
    gate: Gate | None = None,
    ledger: Ledger | None = None,
    dry_run: bool = False,
    sample: Sample | None = None,
    concurrency: int = 8,
    store: BlobStore | None = None,
    sas_lifetime: timedelta = timedelta(days=7),
    interrupt_grace: float = 30.0,
    wait_lock: float = 0.0,
    stop: StopSignal | None = None,
    rollout: Rollout | None = None,
) -> RetrainResult:
    """Deploy an already trained model to many targets (bounded, continue-on-error).

    Same per-target steps as :func:`retrain` (lease, gate, intent, swap, verify, record),
    after the same ledger probe and reconciliation. A model URL without a SAS (as
    ``retrain`` and ``history`` print it) gets a read SAS of ``sas_lifetime`` when
    ``store`` holds it. The model must exist and be readable with the SAS the services
    get (checked in a dry run too).

    With a ``rollout`` (:class:`~amlretrain.rollout.Rollout`) the model goes live as in
    :func:`retrain`'s guarded rollout: checked on a candidate first, then the targets in
    its waves, each baked under its alarms.

    Raises:
        ConfigurationError: a wrong target, a model the services could not read, or a
            ledger that cannot be written (nothing changed).
        Interrupted: SIGINT or SIGTERM; its ``result`` holds what each target serves.
    """
    if rollout is not None:
        model = with_read_sas(model, store, sas_lifetime)
        check_model(model, store)
        result, _ = _one_group(
            FleetGroup(model=model, metrics=dict(metrics or {}), store=store, targets=targets),
            gate=gate,
            ledger=ledger,
            dry_run=dry_run,
            sample=sample,
            concurrency=concurrency,
            rollout=rollout,
            progress=False,
            on_step=None,
            interrupt_grace=interrupt_grace,
            wait_lock=wait_lock,
            stop=stop,
            command="deploy",
        )
        return result
    with stopping(stop, interrupt_grace) as stopper:
        steps = StepRecorder(None)
        current = check_targets(targets, steps, concurrency)
        model = with_read_sas(model, store, sas_lifetime)
        check_model(model, store)
        run_id = begin(ledger, "deploy", targets, dry_run, wait_lock, steps)
        settings = Deployment(
            metrics=dict(metrics or {}),
            gate=gate,
            ledger=ledger,
            dry_run=dry_run,
            sample=sample,
            job_id=None,
            store=store,
            run_id=run_id,
            stop=stopper,
            wait_lock=wait_lock,
            pin_window=PIN_WINDOW,
        )
        return _deploy_all(steps, targets, model, current, settings, concurrency)


def rollback(
    target: Target,
    *,
    ledger: Ledger,
    store: BlobStore | None = None,
    to: str | None = None,
    sample: Sample | None = None,
    dry_run: bool = False,
    sas_lifetime: timedelta = timedelta(days=7),
    interrupt_grace: float = 30.0,
    wait_lock: float = 0.0,
    stop: StopSignal | None = None,
) -> TargetOutcome:
    """Put a previous model back on ``target``, verified, and record it.

    Its open intents are reconciled first. When the ledger has lines that cannot be
    read (they may have been this target's), the model is chosen only if the target
    serves what the readable ledger says it serves.

    Args:
        target: the target.
        ledger: its history.
        store: the storage account of the models (to check the blob and mint a read SAS:
            the ledger keeps no SAS).
        to: a ledger entry id (or unique prefix): restore the model that entry
            deployed. Default: the model the target served before its latest deployment.

    Raises:
        ConfigurationError: nothing to roll back to, an unreadable ledger that disagrees
            with the service, or the model blob is gone or unreadable (checked before
            anything changes).
        Interrupted: SIGINT or SIGTERM; its ``result`` is the target's outcome.
    """
    with stopping(stop, interrupt_grace) as stopper:
        state = target.check()
        run_id = begin(ledger, "rollback", [target], dry_run, wait_lock, StepRecorder(None))
        if not dry_run:
            state = target.read(state)  # reconcile may have settled a newer state
        entry, wanted = _rollback_choice(target, ledger, to, state.model)
        model = with_read_sas(BlobRef.from_url(wanted), store, sas_lifetime)
        try:
            check_model(model, store)
        except ConfigurationError as err:
            raise ConfigurationError(f"cannot roll back to {model.url}: {err}") from err
        run = Deployment(
            metrics=dict(ledger.metrics_of(target.key, wanted) or {}),
            gate=None,
            ledger=ledger,
            dry_run=dry_run,
            sample=sample,
            job_id=entry.job_id,
            store=store,
            action="rollback",
            rollback_of=entry.id,
            run_id=run_id,
            stop=stopper,
            wait_lock=wait_lock,
        )
        outcome = deploy_one(target, model, state, run)
        stopper.raise_if_requested(outcome)
        return outcome


def _rollback_choice(
    target: Target, ledger: Ledger, to: str | None, current: str | None
) -> tuple[LedgerEntry, str]:
    """The entry rolled back and the model it names (no SAS).

    Raises:
        ConfigurationError: the ledger has unreadable lines and the service does not
            serve what its readable lines say (an unreadable line may have been this
            target's latest change).
    """
    problems = ledger.problems
    if problems:
        known = ledger.last_known(target.key)
        if known is None or strip_sas(current) != known:
            lines = ", ".join(str(p.line) for p in problems)
            raise ConfigurationError(
                f"the ledger has unreadable line(s) {lines} and {target.label} serves "
                f"{strip_sas(current) or 'no model'}, not what the readable lines say "
                f"({known or 'nothing known'}): not choosing a model to roll back to; "
                "repair the ledger, or run `amlretrain reconcile` and retry"
            )
        log.warning(
            "%s: the ledger has %d unreadable line(s); the service agrees with the rest",
            target.label,
            len(problems),
        )
    if to is not None:
        entry = ledger.get(to)
        if entry.target != target.key:
            raise ConfigurationError(
                f"ledger entry {entry.id} is for {entry.target}, not {target.key}"
            )
        wanted = entry.new_model
    else:
        deployments = ledger.deployments(target.key)
        if not deployments:
            raise ConfigurationError(f"the ledger has no deployment of {target.label} to roll back")
        entry = deployments[-1]
        wanted = entry.previous_model
    if not wanted:
        raise ConfigurationError(f"ledger entry {entry.id} names no model to restore")
    return entry, wanted
