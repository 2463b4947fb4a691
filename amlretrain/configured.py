"""Runs built from a ``retrain.toml``: the one way the CLI and the Airflow operators do it.

:func:`find_target` picks a config's target by name; :func:`fleet_of` groups the targets
by the training that serves their platform and data (one job per group: a classic
target is trained by the ``batch`` training, an Azure ML v2 one by the ``command_job``
training); :func:`retrain_configured` runs :func:`~amlretrain.fleet.retrain_fleet` with
the config's gate, ledger, sample, waves, budget and rollout; :func:`deploy_configured` and
:func:`rollback_configured` run :func:`~amlretrain.workflow.deploy` and
:func:`~amlretrain.workflow.rollback` with its ledger, storage, sample, concurrency, SAS
lifetime (``model_sas_days``) and interrupt grace; :func:`reconcile_configured` runs
:func:`~amlretrain.reconciliation.reconcile` with the training services that ran the
open jobs.

Example:
    >>> config = load_config("retrain.toml")                                  # doctest: +SKIP
    >>> result = retrain_configured(config, targets=[find_target(config, "eu")])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlretrain.errors import ConfigurationError

if TYPE_CHECKING:
    from amlretrain.blobs import BlobRef
    from amlretrain.config import RetrainConfig
    from amlretrain.fleet import FleetGroup
    from amlretrain.interrupt import StopSignal
    from amlretrain.ledger import Ledger
    from amlretrain.reconciliation import ReconcileReport
    from amlretrain.result import RetrainResult, TargetOutcome
    from amlretrain.rollout import Rollout
    from amlretrain.targets import DetachableTarget, Target
    from amlretrain.waves import FailureBudget, Waves

__all__ = [
    "config_fingerprint",
    "deploy_configured",
    "detachable_target",
    "find_target",
    "fleet_of",
    "reconcile_configured",
    "retrain_configured",
    "rollback_configured",
]

#: ``rollout=`` of :func:`retrain_configured`: the config's own ``[rollout]``.
CONFIG_ROLLOUT: Any = object()


def find_target(config: RetrainConfig, name: str) -> Target:
    """The config's target called ``name``: its label, its ledger key, a unique part of
    either, or its index in ``[[targets]]``.

    Raises:
        ConfigurationError: no target, or several, match (naming the known ones).
    """
    targets = [t for t, _ in config.targets()]
    if name.isdigit() and int(name) < len(targets):
        return targets[int(name)]
    exact = [t for t in targets if name in (t.label, t.key)]
    matches = exact or [t for t in targets if name in t.label or name in t.key]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(t.label for t in targets)
    if not matches:
        raise ConfigurationError(f"no target {name!r} in {config.source}; targets: {known}")
    raise ConfigurationError(f"{name!r} matches several targets ({known}); be more precise")


def detachable_target(config: RetrainConfig, key: str) -> DetachableTarget:
    """The config's target of ledger key ``key``, one whose swaps detach (its
    :meth:`~amlretrain.targets.DetachableTarget.operation` follows a detached operation).

    Raises:
        ConfigurationError: no such target, or one whose swaps do not detach.
    """
    from amlretrain.targets import DetachableTarget

    target = find_target(config, key)
    if not isinstance(target, DetachableTarget):
        raise ConfigurationError(f"{target.label}: its swaps do not detach")
    return target


def fleet_of(
    config: RetrainConfig,
    *,
    targets: Sequence[Target] | None = None,
    data: str | None = None,
    base: Path | None = None,
) -> tuple[list[FleetGroup], list[Target]]:
    """The groups a retrain of ``targets`` (default: every target) runs, and the
    targets in config order (the order of the waves).

    ``data`` replaces every group's training data (relative to ``base``, default the
    config's folder). Every group's data is checked before the first group runs.

    Raises:
        ConfigurationError: a target that is not the config's, a target whose platform
            has no training, data that names a missing file (nothing sent).
    """
    from amlretrain.config import training_groups
    from amlretrain.fleet import FleetGroup

    pairs = config.targets()
    wanted = {t.key for t, _ in pairs}
    if targets is not None:
        wanted = {t.key for t in targets}
        unknown = wanted - {t.key for t, _ in pairs}
        if unknown:
            raise ConfigurationError(
                f"not a target of {config.source}: {', '.join(sorted(unknown))}"
            )
    clients: dict[tuple[str, ...], Any] = {}
    # training_groups() takes every target of the config (it pairs them with their
    # tables); the chosen ones are kept afterwards, and a group left empty is dropped.
    chosen = [
        (g, tuple(t for t in g.targets if t.key in wanted))
        for g in training_groups(config, pairs, data=data)
    ]
    groups = [
        FleetGroup(
            training=config.trainer(g.kind, g.data, base=base, clients=clients),
            targets=kept,
            name=g.label,
        )
        for g, kept in chosen
        if kept
    ]
    return groups, [t for t, _ in pairs if t.key in wanted]


def config_fingerprint(config: RetrainConfig, data: str | None = None) -> str:
    """The digest of what decides a run: the config's TOML document and a ``data``
    override (a resumed run must have the same)."""
    from amlretrain.config import read_document
    from amlretrain.fleet import fingerprint

    return fingerprint({"config": read_document(config.source), "data": data})


def retrain_configured(
    config: RetrainConfig,
    *,
    targets: Sequence[Target] | None = None,
    data: str | None = None,
    base: Path | None = None,
    run_id: str | None = None,
    resume: str | None = None,
    detach: bool = False,
    rollout: Rollout | None = CONFIG_ROLLOUT,
    waves: Waves | None = None,
    bake: float | None = None,
    max_failures: FailureBudget | None = None,
    rollback_on_halt: bool = False,
    dry_run: bool = False,
    progress: bool = False,
    display: Any = None,
    on_step: Callable[[str], None] | None = None,
    wait_lock: float = 0.0,
    stop: StopSignal | None = None,
) -> RetrainResult:
    """Retrain ``targets`` (default: every target) of ``config``: its trainings, gate,
    ledger, sample, concurrency, waves, bake, budget and ``[rollout]`` (``rollout=None``:
    none; another :class:`~amlretrain.rollout.Rollout`: that one), recorded with the
    config's fingerprint.

    ``run_id`` and ``detach``: as :func:`~amlretrain.fleet.retrain_fleet` (a fixed run
    id resumes its run when the ledger has it; ``detach`` raises
    :class:`~amlretrain.errors.TrainingDetached` once the jobs are submitted).

    Raises:
        ConfigurationError, Interrupted, TrainingDetached: as
            :func:`~amlretrain.fleet.retrain_fleet`.
    """
    from amlretrain.fleet import retrain_fleet

    groups, order = fleet_of(config, targets=targets, data=data, base=base)
    return retrain_fleet(
        groups,
        gate=config.gate,
        ledger=config.ledger(),
        dry_run=dry_run,
        sample=config.sample,
        concurrency=config.concurrency,
        training_concurrency=config.training_concurrency,
        waves=waves or config.waves,
        bake=config.bake if bake is None else bake,
        max_failures=max_failures or config.max_failures,
        rollback_on_halt=rollback_on_halt,
        rollout=config.rollout if rollout is CONFIG_ROLLOUT else rollout,
        resume=resume,
        config_fingerprint=config_fingerprint(config, data),
        order=order,
        progress=progress,
        display=display,
        on_step=on_step,
        wait_lock=wait_lock,
        stop=stop,
        run_id=run_id,
        detach=detach,
    )


def deploy_configured(
    config: RetrainConfig,
    model: BlobRef,
    *,
    targets: Sequence[Target] | None = None,
    rollout: Rollout | None = CONFIG_ROLLOUT,
    dry_run: bool = False,
    wait_lock: float = 0.0,
    stop: StopSignal | None = None,
) -> RetrainResult:
    """Deploy the trained ``model`` to ``targets`` (default: every target) of ``config``
    (no gate: it was trained already), with its ledger, storage, sample, concurrency, SAS
    lifetime and ``[rollout]`` (as :func:`retrain_configured` takes ``rollout``).

    Raises:
        ConfigurationError, Interrupted: as :func:`~amlretrain.workflow.deploy`.
    """
    from amlretrain.workflow import deploy

    return deploy(
        model,
        [t for t, _ in config.targets()] if targets is None else list(targets),
        gate=None,
        ledger=config.ledger(),
        dry_run=dry_run,
        sample=config.sample,
        concurrency=config.concurrency,
        store=config.store(),
        sas_lifetime=config.model_sas_lifetime,
        interrupt_grace=config.interrupt_grace,
        wait_lock=wait_lock,
        stop=stop,
        rollout=config.rollout if rollout is CONFIG_ROLLOUT else rollout,
    )


def rollback_configured(
    config: RetrainConfig,
    target: Target,
    *,
    to: str | None = None,
    dry_run: bool = False,
    wait_lock: float = 0.0,
    stop: StopSignal | None = None,
) -> TargetOutcome:
    """Put ``target``'s previous model (or ``to``) back, with the config's ledger,
    storage, sample, SAS lifetime (``model_sas_days``: the model put back gets a read SAS
    that lasts as long as a deployed one's) and interrupt grace.

    Raises:
        ConfigurationError, Interrupted: as :func:`~amlretrain.workflow.rollback`.
    """
    from amlretrain.workflow import rollback

    return rollback(
        target,
        ledger=config.ledger(),
        store=config.store(),
        to=to,
        sample=config.sample,
        dry_run=dry_run,
        sas_lifetime=config.model_sas_lifetime,
        interrupt_grace=config.interrupt_grace,
        wait_lock=wait_lock,
        stop=stop,
    )


def reconcile_configured(
    config: RetrainConfig,
    targets: Sequence[Target] | None = None,
    *,
    ledger: Ledger | None = None,
    wait_lock: float = 0.0,
) -> ReconcileReport:
    """Settle the open intents and jobs of ``targets`` (default: every target) of
    ``config``, as a run of its own; open jobs are read from the training service that ran
    them (a config without that training lists them as recorded).

    Raises:
        ConfigurationError: as :func:`~amlretrain.reconciliation.reconcile`.
    """
    from amlretrain.reconciliation import reconcile
    from amlretrain.records import new_run_id

    return reconcile(
        [t for t, _ in config.targets()] if targets is None else list(targets),
        ledger=config.ledger() if ledger is None else ledger,
        batch=config.batch() if config.has_batch_training else None,
        command_jobs=[config.command_jobs()] if config.has_command_job_training else [],
        wait_lock=wait_lock,
        run_id=new_run_id(),
    )
