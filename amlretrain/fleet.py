"""``retrain_fleet()``: a model per data file, many targets, one run that survives failures.

The classic docs' scenario: one training service, one predictive service with an
endpoint per customer, each endpoint retrained on its own data. A fleet is a list of
:class:`FleetGroup` (one training data file and the targets retrained on it):

* **Isolation.** Each group is trained, evaluated, gated, deployed and recorded on its
  own; a failed job fails its group's targets (named with the data file and the job)
  and never stops the others. The run ends with one table and a line of counts.
* **Bounds.** ``training_concurrency`` jobs at a time, ``concurrency`` deployments at a
  time (separately).
* **Waves.** Targets are deployed in cumulative waves (:class:`~amlretrain.waves.Waves`),
  in config order; a wave waits for its targets' models, deploys them (each swap
  verified by reads and the scoring check), then ``bake`` seconds pass before the next.
* **A failure budget.** When training, deployment or verification failures (not gate
  rejections) cross ``max_failures``, the run halts within that wave: nothing new starts,
  running jobs are cancelled, later targets are ``halted`` (exit 15); with
  ``rollback_on_halt`` the wave's changed targets are put back (verified, recorded).
* **Resume.** Every run has an id, recorded in the ledger with its config's fingerprint
  and each job with its data file. ``resume=RUN_ID`` continues it: targets with an
  outcome in that run are not touched again (reported as recorded), open intents are
  reconciled, a job still running is waited for and a finished one read, never
  submitted again; only a job recorded as cancelled (or refused) is submitted anew. A
  changed configuration is refused.

The ledger is read once per run (:class:`~amlretrain.history.History`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from amlretrain._fleet_run import FleetRun
from amlretrain._numbers import CONCURRENCY, DURATION, checked, checked_int
from amlretrain._rollout_guard import RolloutGuard
from amlretrain._run import (
    begin,
    check_listed,
    check_targets,
    stopping,
)
from amlretrain.blobs import BlobRef
from amlretrain.errors import ConfigurationError
from amlretrain.gate import Gate
from amlretrain.interrupt import StopSignal
from amlretrain.ledger import Ledger
from amlretrain.result import (
    RetrainResult,
    StepRecorder,
)
from amlretrain.storage import BlobStore
from amlretrain.swap import RESTORE_SAS_LIFETIME
from amlretrain.targets import Sample, Target
from amlretrain.training import Trainer
from amlretrain.waves import FailureBudget, Waves

if TYPE_CHECKING:
    from amlretrain._fleet_progress import FleetProgress
    from amlretrain.history import RunSummary
    from amlretrain.rollout import Rollout

__all__ = ["FleetGroup", "fingerprint", "retrain_fleet", "run_fleet"]

log = logging.getLogger("amlretrain.workflow")

T = TypeVar("T")


def _targets(value: Iterable[Target]) -> tuple[Target, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class FleetGroup:
    """One training data file and the targets retrained on it (one training job).

    Attributes:
        training: the training (a :class:`~amlretrain.training.Training` of a Studio
            (classic) training service, or an Azure ML v2
            :class:`~amlretrain.azureml.training.CommandJobTraining`): its data and storage.
        targets: the targets that get this group's model.
        name: the data as configured (the ledger finds the group's job by it when a
            run is resumed; default: the data itself).
        model: instead of a training, a model already trained (what
            :func:`amlretrain.deploy` gives the engine), with its ``metrics`` and the
            ``store`` that holds it (for the read SAS of a rollback).
    """

    training: Trainer | None = None
    targets: tuple[Target, ...] = attrs.field(converter=_targets)
    name: str = ""
    model: BlobRef | None = None
    metrics: Mapping[str, float] = attrs.field(factory=dict)
    store: BlobStore | None = None

    def __attrs_post_init__(self) -> None:
        if (self.training is None) == (self.model is None):
            raise ConfigurationError("a fleet group has a training or a trained model")

    @property
    def label(self) -> str:
        """The group's name, or its data (or model)."""
        if self.name:
            return self.name
        if self.training is None:
            assert self.model is not None
            return self.model.url
        data = self.training.data
        return data.url if isinstance(data, BlobRef) else str(data)

    @property
    def model_store(self) -> BlobStore | None:
        """The store holding the group's models."""
        return self.training.store if self.training is not None else self.store

    @property
    def sas_lifetime(self) -> timedelta:
        """The lifetime of a read SAS minted for one of its models."""
        if self.training is not None:
            return self.training.model_sas_lifetime
        return RESTORE_SAS_LIFETIME


def fingerprint(document: Any) -> str:
    """A digest of a run's configuration (any JSON-like document; secrets never in it).

    A resumed run must have the same: ``sha256:`` and 16 hex digits.
    """
    text = json.dumps(document, sort_keys=True, default=str, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def retrain_fleet(
    groups: Sequence[FleetGroup],
    *,
    gate: Gate | None = None,
    ledger: Ledger | None = None,
    dry_run: bool = False,
    sample: Sample | None = None,
    concurrency: int = 4,
    training_concurrency: int = 4,
    waves: Waves | str | Sequence[str | int] | None = None,
    bake: float = 0.0,
    max_failures: FailureBudget | int | str | None = None,
    rollback_on_halt: bool = False,
    rollout: Rollout | None = None,
    resume: str | None = None,
    config_fingerprint: str | None = None,
    order: Sequence[Target] | None = None,
    progress: bool = False,
    display: FleetProgress | None = None,
    on_step: Callable[[str], None] | None = None,
    interrupt_grace: float = 30.0,
    wait_lock: float = 0.0,
    stop: StopSignal | None = None,
    run_id: str | None = None,
    detach: bool = False,
) -> RetrainResult:
    """Retrain every group on its data and deploy each model to its group's targets.

    See the module docstring for isolation, bounds, waves, the failure budget and resume.

    Args:
        groups: the data files and their targets (a target in one group only).
        gate, ledger, dry_run, sample, wait_lock, interrupt_grace, stop: as for
            :func:`amlretrain.retrain`.
        concurrency: deployments at a time (1-256).
        training_concurrency: training jobs at a time (1-256).
        waves: cumulative deployment stages (``"1,10%,50%,100%"``); default one wave.
        bake: seconds to wait after a wave before the next (0-86400).
        max_failures: the failure budget (a count or ``"N%"``); default none.
        rollback_on_halt: when the budget halts the run, put the halted wave's changed
            targets back on their previous model.
        rollout: a guarded rollout (:class:`~amlretrain.rollout.Rollout`): each model is
            checked on a candidate first (smoke, champion gate, shadow), the waves bake
            under its alarms, and an alarm rolls back everything it promoted.
        resume: continue this run (its id, from ``amlretrain runs list``).
        config_fingerprint: the configuration's digest (:func:`fingerprint`), recorded
            with the run; a resume with another one is refused.
        order: the targets in config order (the order of the waves); default: the
            groups' targets, group after group.
        progress: show the jobs' progress (tqdm) as :func:`amlretrain.retrain` does.
        display: a live display of the fleet's counts (``FleetProgress``).
        on_step: called with each step's name as it starts.
        run_id: this run's id (1-128 of ``A-Za-z0-9._:-``): a run the ledger has with
            that id is resumed (as ``resume``), else a new run starts with it. A
            scheduler's task derives it from its own identity, so a retried attempt
            resumes its run: never a second training job, never a second swap.
        detach: submit the training jobs (recorded in the ledger) and raise
            :class:`~amlretrain.errors.TrainingDetached` instead of waiting for those
            still running; call again with the same ``run_id`` once they ended. A job
            that ended already is not detached. Then, without a ``rollout``, a swap on
            an Azure ML v2 or New (ARM) target whose long-running operation still runs
            :data:`~amlretrain.targets.DETACH_AFTER` seconds after it was accepted is
            not waited for either: once the wave's swaps were sent,
            :class:`~amlretrain.errors.OperationsDetached` is raised (each operation's
            token in the ledger, each target's lease handed to the run: it needs a blob
            ledger; with a local one the swaps wait). Call again with the same
            ``run_id`` once the operations ended: each swap is finished from its token,
            verified and recorded, and the run goes on.

    Returns:
        One :class:`~amlretrain.result.RetrainResult`: a row per target (its data, job,
        metrics, gate, status, serving model), its ``run_id`` and ``halted_wave``.

    Raises:
        ConfigurationError: a bad setting, a wrong target, a run to resume that the
            ledger does not have or whose configuration changed, an unwritable ledger
            (nothing changed).
        Interrupted: SIGINT or SIGTERM; its ``result`` holds what each target serves.
        TrainingDetached: ``detach``: jobs were submitted and still run (not an error).
        OperationsDetached: ``detach``: swaps were sent and their operations still run
            (not an error).
    """
    result, _errors = run_fleet(
        groups,
        gate=gate,
        ledger=ledger,
        dry_run=dry_run,
        sample=sample,
        concurrency=concurrency,
        training_concurrency=training_concurrency,
        waves=waves,
        bake=bake,
        max_failures=max_failures,
        rollback_on_halt=rollback_on_halt,
        rollout=rollout,
        resume=resume,
        config_fingerprint=config_fingerprint,
        order=order,
        progress=progress,
        display=display,
        on_step=on_step,
        interrupt_grace=interrupt_grace,
        wait_lock=wait_lock,
        stop=stop,
        run_id=run_id,
        detach=detach,
    )
    return result


def run_fleet(
    groups: Sequence[FleetGroup],
    *,
    gate: Gate | None,
    ledger: Ledger | None,
    dry_run: bool,
    sample: Sample | None,
    concurrency: int,
    training_concurrency: int,
    waves: Waves | str | Sequence[str | int] | None,
    bake: float,
    max_failures: FailureBudget | int | str | None,
    rollback_on_halt: bool,
    rollout: Rollout | None,
    resume: str | None,
    config_fingerprint: str | None,
    order: Sequence[Target] | None,
    progress: bool,
    display: FleetProgress | None,
    on_step: Callable[[str], None] | None,
    interrupt_grace: float,
    wait_lock: float,
    stop: StopSignal | None,
    command: str = "retrain",
    run_id: str | None = None,
    detach: bool = False,
) -> tuple[RetrainResult, dict[str, BaseException]]:
    """:func:`retrain_fleet`, and each group's training error by its label (a run of one
    group, :func:`amlretrain.retrain`, raises its group's)."""
    groups = tuple(groups)
    plan = _waves(waves)
    if rollout is not None:
        if not rollout.live:
            raise ConfigurationError(
                "rollout.stages: a rollout of a run that deploys needs canary or linear "
                "(the live stage); for checks only, use a dry run"
            )
        plan = rollout.waves(plan)
        if ledger is None and not dry_run:
            raise ConfigurationError("a guarded rollout needs a ledger (it records every stage)")
    budget = _budget(max_failures)
    training_concurrency = checked_int(
        training_concurrency,
        name="training.concurrency",
        low=CONCURRENCY[0],
        high=CONCURRENCY[1],
    )
    bake = checked(bake, name="bake", low=0.0, high=DURATION[1])
    ordered = _ordered(groups, order)
    if run_id is not None:
        resume = _resume_or_start(ledger, run_id, resume, dry_run)
    if detach and (ledger is None or dry_run):
        raise ConfigurationError("detach needs a ledger (the jobs are found there), not a dry run")
    if resume is not None and (ledger is None or dry_run):
        raise ConfigurationError("a run can be resumed only with its ledger, and not as a dry run")
    with stopping(stop, interrupt_grace) as stopper:
        steps = StepRecorder(on_step)
        states = check_targets([t for t, _ in ordered], steps, concurrency)
        prior = _prior(ledger, resume, config_fingerprint)
        run_id = begin(
            ledger,
            command,
            [t for t, _ in ordered],
            dry_run,
            wait_lock,
            steps,
            run_id=resume or run_id,
            fingerprint=config_fingerprint,
            resumed=resume is not None,
        )
        history = ledger.history() if ledger is not None and not dry_run else None
        if prior is not None and history is not None:
            prior = history.run(run_id)  # with what reconcile just settled
        stopper.raise_if_requested()
        fleet = FleetRun(
            groups=groups,
            ordered=ordered,
            states=states,
            gate=gate,
            ledger=ledger,
            history=history,
            dry_run=dry_run,
            sample=sample,
            run_id=run_id,
            stop=stopper,
            wait_lock=wait_lock,
            progress=progress,
            display=display,
            prior=prior,
            concurrency=concurrency,
            guard=(
                RolloutGuard(
                    rollout,
                    ledger=ledger,
                    run_id=run_id,
                    stop=stopper,
                    wait_lock=wait_lock,
                    sample=sample,
                )
                if rollout is not None
                else None
            ),
            detach=detach,
        )
        result = fleet.run(steps, plan, budget, bake, rollback_on_halt, training_concurrency)
        return result, dict(fleet.errors)


_RUN_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _resume_or_start(
    ledger: Ledger | None, run_id: str, resume: str | None, dry_run: bool
) -> str | None:
    """``run_id``'s run to resume (the ledger has it), or None: a new run of that id."""
    if not _RUN_ID.match(run_id):
        raise ConfigurationError(
            f"run_id {run_id!r}: 1 to 128 letters, digits and . _ : - (no spaces)"
        )
    if resume is not None and resume != run_id:
        raise ConfigurationError(f"run_id {run_id!r} and resume {resume!r} name two runs")
    if ledger is None or dry_run:
        raise ConfigurationError("a run id needs the ledger (a run is found there), not a dry run")
    known = {r.run_id for r in ledger.history().runs()}
    return run_id if run_id in known else None


def _waves(value: Waves | str | Sequence[str | int] | None) -> Waves | None:
    if value is None or isinstance(value, Waves):
        return value
    return Waves.parse(value)


def _budget(value: FailureBudget | int | str | None) -> FailureBudget | None:
    if value is None or isinstance(value, FailureBudget):
        return value
    return FailureBudget.parse(value)


def _ordered(
    groups: Sequence[FleetGroup], order: Sequence[Target] | None
) -> list[tuple[Target, FleetGroup]]:
    """Every target with its group, in deployment (config) order."""
    if not groups:
        raise ConfigurationError("a fleet needs at least one group of targets")
    pairs = [(t, g) for g in groups for t in g.targets]
    check_listed([t for t, _ in pairs])
    if order is None:
        return pairs
    group_of = {t.key: (t, g) for t, g in pairs}
    keys = [t.key for t in order]
    if sorted(keys) != sorted(group_of):
        raise ConfigurationError("order must list every target of the groups, once")
    return [group_of[k] for k in keys]


def _prior(ledger: Ledger | None, resume: str | None, wanted: str | None) -> RunSummary | None:
    """The run to resume, as the ledger has it; refused when its configuration changed."""
    if resume is None or ledger is None:
        return None
    run = ledger.history().run(resume)
    if run.run_id != resume:
        raise ConfigurationError(f"give the whole run id to resume: {run.run_id}")
    if run.command != "retrain":
        raise ConfigurationError(f"run {resume} was a {run.command}, not a retrain")
    if run.fingerprint and wanted and run.fingerprint != wanted:
        raise ConfigurationError(
            f"run {resume} ran with another configuration ({run.fingerprint}, now {wanted}): "
            "a resumed run must use the same retrain.toml; start a new run instead"
        )
    return run
