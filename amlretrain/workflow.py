"""``retrain()``: new data -> training job -> evaluation -> gate -> swap -> verify -> record.

The whole loop in one call, for one or many targets, with a dry-run mode, an
append-only ledger and failure safety: a failure before a target changed leaves it
untouched; a failure after it changed puts the previous model back (verified), and
the ledger says which model each target serves.

Example:
    >>> result = retrain(training, [ArmTarget(arm, "rg", "census")],          # doctest: +SKIP
    ...                  gate=Gate(thresholds={"AUC": 0.8}), ledger=Ledger())
    >>> print(result.summary())                                                # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs

from amlretrain._redact import redact
from amlretrain.blobs import BlobRef
from amlretrain.errors import AmlRetrainError, ConfigurationError, OperationTimeout, ServiceError
from amlretrain.gate import Gate
from amlretrain.ledger import Ledger, LedgerEntry, strip_sas
from amlretrain.result import RetrainResult, StepRecorder, TargetOutcome
from amlretrain.targets import Sample, Target, redacted_plan
from amlretrain.training import Training, plan_training, run_training

if TYPE_CHECKING:
    from amlretrain.storage import BlobStore

__all__ = ["deploy", "retrain", "rollback"]

log = logging.getLogger(__name__)

#: Lifetime of the read SAS minted for a model put back after a failed swap.
RESTORE_SAS_LIFETIME = timedelta(days=7)


def _verify_scoring(target: Target, sample: Sample | None) -> list[dict[str, Any]] | None:
    sample = sample or target.sample()
    if sample is None:
        return None
    return target.score(sample).first.records()


@attrs.frozen(kw_only=True)
class _Deployment:
    """What every target of one run shares (metrics, gate, ledger, ...)."""

    metrics: dict[str, float]
    gate: Gate | None
    ledger: Ledger | None
    dry_run: bool
    sample: Sample | None
    job_id: str | None
    store: BlobStore | None
    action: str = "deploy"
    rollback_of: str | None = None


def _deploy_one(
    target: Target, model: BlobRef, previous: str | None, run: _Deployment
) -> TargetOutcome:
    """Gate, swap, verify and record one target; never raises for target failures."""
    started = time.monotonic()
    base = TargetOutcome(
        target=target.label,
        key=target.key,
        status="failed",
        previous_model=strip_sas(previous),
        new_model=model.url,
        serving_model=strip_sas(previous),
    )

    def record(
        outcome: TargetOutcome, entry_action: str, entry_outcome: str, *, swapped: bool = False
    ) -> TargetOutcome:
        if run.ledger is not None and not run.dry_run:  # a dry run changes nothing, the ledger too
            run.ledger.append(
                LedgerEntry.new(
                    target=target.key,
                    action=entry_action,
                    outcome=entry_outcome,
                    previous_model=previous,
                    new_model=model.url,
                    serving_model=outcome.serving_model,
                    metrics=run.metrics,
                    job_id=run.job_id,
                    request_ids=target.request_ids if swapped else (),
                    rollback_of=run.rollback_of,
                    message=outcome.error or outcome.gate_text,
                )
            )
        return attrs.evolve(outcome, seconds=time.monotonic() - started)

    if run.dry_run and not run.metrics and run.gate is not None and not run.gate.is_empty:
        base = attrs.evolve(base, gate_checks=("skip the gate: a dry run trains nothing",))
    elif run.gate is not None and not run.gate.is_empty:
        incumbent = run.ledger.metrics_of(target.key, previous) if run.ledger else None
        decision = run.gate.decide(run.metrics, incumbent=incumbent)
        base = attrs.evolve(base, gate_passed=decision.passed, gate_checks=decision.checks)
        if not decision.passed:
            outcome = attrs.evolve(
                base, status="rejected", error="gate: " + "; ".join(decision.reasons)
            )
            return record(outcome, "gate", "rejected")
    if _same_previous(previous, model):
        outcome = attrs.evolve(base, status="skipped", error="the target already serves this model")
        return attrs.evolve(outcome, seconds=time.monotonic() - started)
    try:
        plan = target.plan(model)
    except AmlRetrainError as err:
        return record(attrs.evolve(base, error=redact(str(err))), run.action, "failed")
    if run.dry_run:
        outcome = attrs.evolve(base, status="dry-run", plan=redacted_plan(plan))
        return attrs.evolve(outcome, seconds=time.monotonic() - started)
    try:
        _check_model(model, run.store)
    except AmlRetrainError as err:
        return record(attrs.evolve(base, error=redact(str(err))), run.action, "failed")
    with _target_lock(target.key):
        try:
            served = _swap(target, model)
            scores = _verify_scoring(target, run.sample)
        except AmlRetrainError as err:
            log.warning("%s: %s; restoring the previous model", target.label, err)
            restored = _restore(target, base, previous, err, run.store)
            return record(restored, run.action, _restored_outcome(restored), swapped=True)
        except KeyboardInterrupt:
            record(_interrupted(target, base), run.action, "failed", swapped=True)
            raise
    outcome = attrs.evolve(
        base,
        status="succeeded",
        serving_model=strip_sas(served),
        scores=scores,
        plan=redacted_plan(plan),
    )
    return record(outcome, run.action, "succeeded", swapped=True)


_target_locks: dict[str, threading.Lock] = {}
_target_locks_guard = threading.Lock()


def _target_lock(key: str) -> threading.Lock:
    """One lock per target in this process: swaps of one target never overlap here.

    The targets pin the model they read (a fresh read right before the write), but two
    swaps that both pass their pin before either write lands would both "succeed". In
    one process they are serialised, so the second one's pin sees the first one's
    model and fails with ConflictError; across processes the pin's window remains.
    """
    with _target_locks_guard:
        return _target_locks.setdefault(key, threading.Lock())


def _interrupted(target: Target, base: TargetOutcome) -> TargetOutcome:
    """After an interrupt in the swap: read what the target serves, say it, record it."""
    try:
        now = strip_sas(target.current_model())
        where = f"it serves {now}"
    except (AmlRetrainError, KeyboardInterrupt):
        now, where = None, "it could not be read"
    message = (
        f"interrupted during the swap; {where} (an operation the service already accepted "
        "may still complete: read the target again)"
    )
    log.warning("%s: %s", target.label, message)
    return attrs.evolve(base, serving_model=now, error=message)


def _swap(target: Target, model: BlobRef) -> str:
    """``target.deploy(model)``; when no answer came back, once more.

    A request that timed out or lost its connection may still land later. A swap sets
    an absolute value and the targets accept "already serves this model" as their pin,
    so sending it again converges: either this attempt or the late one wins, and both
    point at the same model, which the verification then reads.
    """
    try:
        return target.deploy(model)
    except (OperationTimeout, ServiceError) as err:
        if not _unanswered(err):
            raise  # the service answered (an error, a failed operation, a conflict)
        log.warning("%s: no answer to the swap (%s); sending it again", target.label, err)
        return target.deploy(model)


def _unanswered(err: AmlRetrainError) -> bool:
    """True for a timeout or a lost connection: nothing says whether the request landed."""
    if isinstance(err, OperationTimeout):
        return True
    return type(err) is ServiceError and err.status is None and err.code is None


def _check_model(model: BlobRef, store: BlobStore | None) -> None:
    """Refuse a model the service could not read, before the target changes.

    An expired SAS always; a missing blob when ``store`` holds it (a classic endpoint
    also checks with an HTTP HEAD of the SAS URL before its PATCH).
    """
    if model.is_expired():
        raise ConfigurationError(
            f"the SAS of {model.url} expired at {model.expires_on}: mint a new one"
        )
    if store is not None and store.owns(model) and not store.exists(model):
        raise ConfigurationError(f"the model {model.url} does not exist")


def _restored_outcome(outcome: TargetOutcome) -> str:
    return "restored" if outcome.status == "restored" else "failed"


def _same_previous(previous: str | None, model: BlobRef) -> bool:
    return previous is not None and strip_sas(previous) == model.url


def _restore(
    target: Target,
    base: TargetOutcome,
    previous: str | None,
    err: AmlRetrainError,
    store: BlobStore | None,
) -> TargetOutcome:
    """After a failed swap: make sure the target serves a verified model, and say which."""
    message = redact(str(err))
    try:
        now = target.current_model()
    except AmlRetrainError as read_err:
        return attrs.evolve(
            base,
            serving_model=None,
            error=f"{message}; the target could not be read afterwards: {redact(str(read_err))}",
        )
    if previous is None or strip_sas(now) == strip_sas(previous):
        return attrs.evolve(
            base,
            serving_model=strip_sas(now),
            error=f"{message}; the target still serves its previous model",
        )
    if strip_sas(now) != base.new_model:
        # Neither the previous model nor ours: someone else deployed meanwhile (a
        # concurrent retrain). Putting "our" previous model back would undo their work.
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
            # The old SAS may have expired meanwhile. The restored model must stay readable
            # as long as a deployed one: the store's 1-hour default would break the service
            # (and the definition warns about it) an hour later.
            old = store.sas(old, expires_in=RESTORE_SAS_LIFETIME)
        target.deploy(old)
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


def _run_targets(
    targets: Sequence[Target],
    work: Callable[[Target], TargetOutcome],
    concurrency: int,
) -> list[TargetOutcome]:
    if concurrency < 1:
        raise ConfigurationError("concurrency must be at least 1")
    if len(targets) <= 1 or concurrency == 1:
        return [work(t) for t in targets]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(targets))) as pool:
        return list(pool.map(work, targets))


def _deploy_all(
    steps: StepRecorder,
    targets: Sequence[Target],
    model: BlobRef,
    current: Mapping[str, str | None],
    run: _Deployment,
    concurrency: int,
) -> RetrainResult:
    def work(target: Target) -> TargetOutcome:
        return _deploy_one(target, model, current[target.key], run)

    with steps.step("deploy") as info:
        outcomes = _run_targets(targets, work, concurrency)
        info["_text"] = ", ".join(f"{o.target}: {o.status}" for o in outcomes)
    return RetrainResult(
        steps=tuple(steps.steps),
        targets=tuple(outcomes),
        metrics=run.metrics,
        job_id=run.job_id,
        model=model.url,
        dry_run=run.dry_run,
    )


def _check_targets(
    targets: Sequence[Target], steps: StepRecorder, concurrency: int
) -> dict[str, str | None]:
    """Check every target (``concurrency`` at a time); the first refusal is raised."""
    if not targets:
        raise ConfigurationError("retrain needs at least one target")
    keys = [t.key for t in targets]
    if len(set(keys)) != len(keys):
        raise ConfigurationError("the same target is listed twice")
    with steps.step("check targets") as info:
        if concurrency <= 1 or len(targets) == 1:
            served = [t.check() for t in targets]
        else:
            with ThreadPoolExecutor(max_workers=min(concurrency, len(targets))) as pool:
                served = list(pool.map(lambda t: t.check(), targets))
        info["_text"] = f"{len(targets)} target(s) checked"
    return dict(zip(keys, served, strict=True))


def retrain(
    training: Training,
    targets: Sequence[Target],
    *,
    gate: Gate | None = None,
    ledger: Ledger | None = None,
    dry_run: bool = False,
    sample: Sample | None = None,
    concurrency: int = 4,
    progress: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> RetrainResult:
    """Retrain on new data and deploy the new model to ``targets``, gated and verified.

    Steps: check the targets (wrong targets fail here, before anything is trained or
    changed), upload the data, run the training job, read its evaluation, then per
    target (``concurrency`` at a time): gate, swap, verify (a fresh read shows the new
    model and scoring ``sample`` succeeds), record in ``ledger``.

    Args:
        training: the training service, data and storage.
        targets: where to deploy.
        gate: rules the new model must pass (per target: "beat the incumbent" compares
            with the metrics recorded for the model that target serves).
        ledger: where every outcome is recorded.
        dry_run: change nothing: no upload, no training job, no update; the result
            holds each target's exact request for the model the job would write
            (``<output_container>/<run>/model.ilearner``; its SAS is minted after
            training, so the plan shows the URL without one).
        sample: rows for the scoring check (default: each target's exampleRequest).
        concurrency: targets deployed at a time.
        progress: show progress bars (tqdm.auto) for the upload and the job.
        on_step: called with each step's name as it starts.

    Returns:
        The :class:`RetrainResult` (call ``raise_for_status()`` to turn failures into
        exceptions).

    Raises:
        ConfigurationError: a wrong target or input (nothing changed).
        TrainingJobFailed, OperationTimeout: the job failed or timed out (nothing changed).
    """
    steps = StepRecorder(on_step)
    current = _check_targets(targets, steps, concurrency)
    job_id: str | None = None
    metrics: dict[str, float] = {}
    if dry_run:
        model = plan_training(training, steps)
    else:
        job, model, metrics = run_training(training, steps, progress)
        job_id = job.job_id

    return _deploy_all(
        steps,
        targets,
        model,
        current,
        _Deployment(
            metrics=metrics,
            gate=gate,
            ledger=ledger,
            dry_run=dry_run,
            sample=sample,
            job_id=job_id,
            store=training.store,
        ),
        concurrency,
    )


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
) -> RetrainResult:
    """Deploy an already trained model to many targets (bounded, continue-on-error).

    Same per-target steps as :func:`retrain` (gate, swap, verify, record).

    Raises:
        ConfigurationError: a wrong target (nothing changed).
    """
    steps = StepRecorder(None)
    current = _check_targets(targets, steps, concurrency)
    settings = _Deployment(
        metrics=dict(metrics or {}),
        gate=gate,
        ledger=ledger,
        dry_run=dry_run,
        sample=sample,
        job_id=None,
        store=store,
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
) -> TargetOutcome:
    """Put a previous model back on ``target``, verified, and record it.

    Args:
        target: the target.
        ledger: its history.
        store: the storage account of the models (to check the blob and mint a read SAS:
            the ledger keeps no SAS).
        to: a ledger entry id (or unique prefix): restore the model that entry
            deployed. Default: the model the target served before its latest deployment.

    Raises:
        ConfigurationError: nothing to roll back to, or the model blob is gone or
            unreadable (checked before anything changes).
    """
    current = target.check()
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
    model = BlobRef.from_url(wanted)
    if store is not None and store.owns(model):
        if not store.exists(model):
            raise ConfigurationError(
                f"the model {model.url} no longer exists: cannot roll back to it"
            )
        model = store.sas(model, expires_in=sas_lifetime)
    run = _Deployment(
        metrics=dict(ledger.metrics_of(target.key, wanted) or {}),
        gate=None,
        ledger=ledger,
        dry_run=dry_run,
        sample=sample,
        job_id=entry.job_id,
        store=store,
        action="rollback",
        rollback_of=entry.id,
    )
    return _deploy_one(target, model, current, run)
