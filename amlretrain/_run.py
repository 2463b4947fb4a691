"""What every run of the loop shares: its stop request, its start, its target checks.

:func:`stopping` routes SIGINT/SIGTERM to the run (unless the caller brings its own
request); :func:`begin` gives the run its id, proves the ledger writable (a
``run-start``) and reconciles the targets' open intents; :func:`check_targets` refuses a
wrong target before anything is trained or changed; :func:`job_recorder` writes each
training job's records; :func:`run_targets` runs per-target work a few at a time.
Used by :mod:`amlretrain.workflow` and :mod:`amlretrain.fleet`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from amlretrain._numbers import CONCURRENCY, DURATION, checked, checked_int
from amlretrain.errors import ConfigurationError, LedgerError
from amlretrain.interrupt import StopSignal, handle_signals
from amlretrain.ledger import Ledger
from amlretrain.reconciliation import reconcile
from amlretrain.records import JobRecord, new_run_id
from amlretrain.result import StepRecorder, TargetOutcome
from amlretrain.targets import Target, TargetState

__all__ = [
    "begin",
    "check_listed",
    "check_targets",
    "deploy_status",
    "job_recorder",
    "run_targets",
    "stopping",
]

log = logging.getLogger("amlretrain.workflow")


@contextlib.contextmanager
def stopping(stop: StopSignal | None, grace: float) -> Iterator[StopSignal]:
    """The caller's stop request, or one of our own with SIGINT/SIGTERM routed to it."""
    if stop is not None:
        yield stop
        return
    grace = checked(grace, name="interrupt_grace", low=DURATION[0], high=DURATION[1])
    own = StopSignal(grace)
    with handle_signals(own):
        yield own


def begin(
    ledger: Ledger | None,
    command: str,
    targets: Sequence[Target],
    dry_run: bool,
    wait_lock: float,
    steps: StepRecorder,
    *,
    run_id: str | None = None,
    fingerprint: str | None = None,
    resumed: bool | None = None,
) -> str:
    """A run id; for a real run, the ledger proven writable and open intents settled.

    ``run_id``: resume that run (its ``run-start`` is written again, ``resumed``), or,
    with ``resumed=False``, start a new run of that id; ``fingerprint``: the digest of
    the run's configuration, recorded with it.

    Raises:
        ConfigurationError: the ledger cannot be written (nothing was changed).
        ConflictError: a target with an open intent is leased by another run.
    """
    resumed = run_id is not None if resumed is None else resumed
    run_id = run_id or new_run_id()
    if ledger is None or dry_run:
        return run_id
    keys = [t.key for t in targets]
    ledger.begin_run(
        run_id=run_id, command=command, targets=keys, fingerprint=fingerprint, resumed=resumed
    )
    history = ledger.history()
    # A swap this run detached is finished by the run itself, not reconciled.
    handed = history.detached(run_id) if resumed else {}
    open_keys = {p.target for p in history.pending()} - set(handed)
    todo = [t for t in targets if t.key in open_keys]
    if todo:
        with steps.step("reconcile") as info:
            report = reconcile(todo, ledger=ledger, wait_lock=wait_lock, run_id=run_id)
            info["_text"] = "; ".join(
                f"{t.target}: {t.status} ({t.serving_model or '-'})" for t in report.targets
            )
    return run_id


def job_recorder(
    ledger: Ledger | None, run_id: str, service: str, data: str | None = None
) -> Callable[[str, str], None]:
    """``on_job`` of :func:`~amlretrain.training.run_training`: each job record appended
    (``Submitting``/``Submitted`` write-ahead: their failure stops the submit)."""

    def record(job_id: str, status: str) -> None:
        if ledger is None:
            return
        entry = JobRecord.new(
            run_id=run_id, job_id=job_id, status=status, service=service, data=data
        )
        if status in ("Submitting", "Submitted"):
            # Write-ahead: without this record no job is submitted (Submitting), or the
            # submitted one is cancelled before it starts (Submitted).
            ledger.append(entry)
            return
        try:
            ledger.append(entry)
        except LedgerError as err:
            log.error("the end of job %s (%s) could not be recorded: %s", job_id, status, err)

    return record


def run_targets(
    targets: Sequence[Target],
    work: Callable[[Target], TargetOutcome],
    concurrency: int,
    *,
    workers: int | None = None,
) -> list[TargetOutcome]:
    """``work`` on every target, ``workers`` (default ``concurrency``) at a time."""
    concurrency = checked_int(
        concurrency, name="concurrency", low=CONCURRENCY[0], high=CONCURRENCY[1]
    )
    if len(targets) <= 1 or concurrency == 1:
        return [work(t) for t in targets]
    with ThreadPoolExecutor(max_workers=min(workers or concurrency, len(targets))) as pool:
        return list(pool.map(work, targets))


def deploy_status(statuses: Sequence[str]) -> str:
    """The deploy step's status: ``ok`` only when every target got (or has) the model."""
    if all(s in ("succeeded", "skipped", "dry-run") for s in statuses):
        return "ok"
    if all(s == "rejected" for s in statuses):
        return "rejected"
    return "failed"


def check_targets(
    targets: Sequence[Target], steps: StepRecorder, concurrency: int
) -> dict[str, TargetState]:
    """Check every target (``concurrency`` at a time); the first refusal is raised.

    Returns:
        Each target's state (by key): what it served when checked.
    """
    check_listed(targets)
    concurrency = checked_int(
        concurrency, name="concurrency", low=CONCURRENCY[0], high=CONCURRENCY[1]
    )
    keys = [t.key for t in targets]
    with steps.step("check targets") as info:
        if concurrency <= 1 or len(targets) == 1:
            states = [t.check() for t in targets]
        else:
            with ThreadPoolExecutor(max_workers=min(concurrency, len(targets))) as pool:
                states = list(pool.map(lambda t: t.check(), targets))
        info["_text"] = f"{len(targets)} target(s) checked"
    return dict(zip(keys, states, strict=True))


def check_listed(targets: Sequence[Target]) -> None:
    if not targets:
        raise ConfigurationError("retrain needs at least one target")
    keys = [t.key for t in targets]
    if len(set(keys)) != len(keys):
        raise ConfigurationError("the same target is listed twice")
