"""Reconcile: read what each target with an open intent really serves, and record it.

An intent without an outcome (a crash, a second Ctrl-C, a lost ledger write) or an
outcome ``unknown`` (a deadline, a read that kept showing another model) leaves the
ledger open. :func:`reconcile` reads each such target under its lease, patiently: a
read that shows the new model settles it at once; one that shows the previous model
settles it only once the target's verify window has passed since the intent (writes
take time to show: about 30 s on classic endpoints). It appends an outcome with the
evidence (``reconciled: true``) that closes every open intent of the target. Training
jobs whose run never recorded their end are read too and reported under their run:
one that never started is an *orphan* (it is never started by reconcile). Shadow
candidates a run made and never recorded deleted (a crash during a guarded rollout) are
deleted (:func:`amlretrain.candidates.delete_leftovers`) with the clients of the targets
given, each under its incumbent's lease, and reported under ``candidates``.

Example:
    >>> report = reconcile(targets, ledger=ledger, batch=batch)   # doctest: +SKIP
    >>> print(report.summary())                                   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import attrs

from amlretrain._enums import StrStatus
from amlretrain._redact import redact
from amlretrain.blobs import strip_sas
from amlretrain.errors import AmlRetrainError
from amlretrain.ledger import Ledger
from amlretrain.records import JobRecord, LedgerEntry, Pending

if TYPE_CHECKING:
    from amlretrain.azureml.jobs import CommandJobsClient
    from amlretrain.studio.batch import BatchClient
    from amlretrain.targets import Target

__all__ = [
    "CandidateCleanup",
    "JobReport",
    "ReconcileReport",
    "ReconcileStatus",
    "Reconciled",
    "reconcile",
    "reconcile_target",
]

log = logging.getLogger(__name__)

#: Seconds between the reads of a target whose write may not show yet.
READ_INTERVAL = 1.0


class ReconcileStatus(StrStatus):
    """What reconciling a target found (a ``str``: ``ReconcileStatus.CLEAN == "clean"``)."""

    #: An outcome was appended (the target was read).
    CONFIRMED = "confirmed"
    #: It could not be read: nothing appended, still open.
    UNKNOWN = "unknown"
    #: Nothing was open.
    CLEAN = "clean"


@attrs.frozen(kw_only=True)
class Reconciled:
    """One target's reconciliation.

    Attributes:
        target: its label; key: its ledger key.
        status: ``confirmed`` (an outcome was appended), ``unknown`` (it could not be
            read: nothing appended, still open), ``clean`` (nothing was open).
        serving_model: what it serves (no SAS), when read.
        entry: the outcome appended, if any.
        message: what was found (redacted).
    """

    target: str
    key: str
    status: ReconcileStatus = attrs.field(converter=ReconcileStatus)
    serving_model: str | None = None
    entry: LedgerEntry | None = None
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, named as the attributes (``entry``: :meth:`LedgerEntry.to_output`)."""
        return {
            "target": self.target,
            "key": self.key,
            "status": self.status,
            "serving_model": self.serving_model,
            "entry": self.entry.to_output() if self.entry else None,
            "message": self.message,
        }


@attrs.frozen(kw_only=True)
class JobReport:
    """A training job whose run did not record its end: its status on the service now.

    Attributes:
        job_id, run_id: the job and its run.
        status: the service's status (``NotStarted``: an orphan; ``Unreadable`` when it
            could not be read; ``Unknown`` when its id was never received).
        orphan: it never started (its submit's answer was lost, ``job_id`` empty then, or
            the run stopped before starting it); reconcile never starts it, and records
            it as ``Orphaned`` so it is reported once.
    """

    job_id: str
    run_id: str | None
    status: str
    orphan: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, members named as the attributes."""
        return {
            "job_id": self.job_id,
            "run_id": self.run_id,
            "status": self.status,
            "orphan": self.orphan,
        }


@attrs.frozen(kw_only=True)
class CandidateCleanup:
    """A leftover shadow candidate (made by a run, never recorded deleted) and its fate.

    Attributes:
        run_id: the run that made it.
        kind: ``classic-endpoint`` or ``arm-service``.
        where: where it is (``workspace_id``, ``web_service_id``, ``endpoint``; or
            ``id``, ``resource_group``, ``name``).
        model: the model it was made for (no SAS).
        target: the ledger key of its incumbent.
        status: ``deleted``, ``already gone`` (``done`` recorded for both), ``failed``
            (it could not be deleted) or ``skipped`` (no client of its workspace or
            subscription among the targets, or its incumbent leased by another run):
            still a leftover.
        message: why it failed or was skipped (redacted).
    """

    run_id: str | None
    kind: str
    where: dict[str, str]
    model: str | None
    target: str | None
    status: str
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, members named as the attributes."""
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "where": dict(self.where),
            "model": self.model,
            "target": self.target,
            "status": self.status,
            "message": self.message,
        }


@attrs.frozen(kw_only=True)
class ReconcileReport:
    """What reconcile found: per target, the jobs left open, the leftover candidates."""

    targets: tuple[Reconciled, ...] = ()
    jobs: tuple[JobReport, ...] = ()
    candidates: tuple[CandidateCleanup, ...] = ()

    @property
    def unresolved(self) -> list[Reconciled]:
        """Targets still open (they could not be read)."""
        return [t for t in self.targets if t.status == "unknown"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``amlretrain reconcile --output json`` adds ``not_in_config``)."""
        return {
            "targets": [t.to_dict() for t in self.targets],
            "jobs": [j.to_dict() for j in self.jobs],
            "candidates": [c.to_dict() for c in self.candidates],
        }

    def summary(self) -> str:
        """A readable summary."""
        lines = []
        for t in self.targets:
            if t.status == "clean":
                lines.append(f"{t.target}: nothing open")
                continue
            lines.append(f"{t.target}: {t.status}; serving {t.serving_model or 'unknown'}")
            if t.message:
                lines.append(f"    {t.message}")
        for j in self.jobs:
            what = "orphan (never started; reconcile does not start it)" if j.orphan else j.status
            name = j.job_id or "(id never received: the submit's answer was lost)"
            lines.append(f"job {name} of {j.run_id or 'an unknown run'}: {what}")
        for c in self.candidates:
            place = c.where.get("endpoint") or c.where.get("name") or "?"
            text = f"candidate {c.kind} {place} of {c.run_id or 'an unknown run'}: {c.status}"
            lines.append(text + (f" ({c.message})" if c.message else ""))
        return redact("\n".join(lines) or "nothing to reconcile")


def _age(time_text: str) -> float:
    """Seconds since an ISO-8601 UTC time (0 when it cannot be read)."""
    try:
        then = datetime.fromisoformat(time_text.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, (datetime.now(timezone.utc) - then).total_seconds())


def _verdict(pending: Pending, served: str | None) -> tuple[str, str, Any, str]:
    """(action, outcome, the intent it settles, message) for what the target serves."""
    intents = pending.intents
    for intent in reversed(intents):
        if intent.new_model and strip_sas(served) == intent.new_model:
            outcome = "restored" if intent.action == "restore" else "succeeded"
            return intent.action, outcome, intent, f"the change of intent {intent.id} is live"
    first = intents[0] if intents else None
    if first is not None and strip_sas(served) == first.previous_model:
        return (
            first.action,
            "failed",
            first,
            "the change did not take effect: it serves the previous model",
        )
    if first is None and pending.unknown is not None:
        entry = pending.unknown
        if strip_sas(served) == entry.new_model:
            return entry.action, "succeeded", None, "the change is live"
        if strip_sas(served) == entry.previous_model:
            return entry.action, "failed", None, "the change did not take effect"
    return (
        first.action if first else "deploy",
        "failed",
        first,
        "it serves a model none of the open changes names (changed outside this ledger?)",
    )


def reconcile_target(
    target: Target,
    pending: Pending,
    *,
    ledger: Ledger,
    run_id: str | None = None,
    interval: float = READ_INTERVAL,
) -> Reconciled:
    """Settle one target's open intents (the caller holds its lease)."""
    latest = pending.latest
    since = latest.time if latest is not None else (pending.unknown.time if pending.unknown else "")
    settle = max(0.0, target.verify_timeout - _age(since))
    deadline = time.monotonic() + settle
    wanted = {i.new_model for i in pending.intents if i.new_model}
    if pending.unknown is not None and pending.unknown.new_model:
        wanted.add(pending.unknown.new_model)
    reads = 0
    started = time.monotonic()
    while True:
        try:
            served = strip_sas(target.read().model)
        except AmlRetrainError as err:
            message = f"could not read it: {redact(str(err))}; still open"
            log.warning("%s: %s", target.label, message)
            return Reconciled(
                target=target.label, key=target.key, status="unknown", message=message
            )
        reads += 1
        if served in wanted or time.monotonic() >= deadline:
            break
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
    action, outcome, intent, message = _verdict(pending, served)
    source = intent if intent is not None else pending.unknown
    entry = LedgerEntry.new(
        target=target.key,
        action=action,
        outcome=outcome,
        previous_model=getattr(source, "previous_model", None),
        new_model=getattr(source, "new_model", None),
        serving_model=served,
        metrics=getattr(source, "metrics", None),
        job_id=getattr(source, "job_id", None),
        rollback_of=getattr(source, "rollback_of", None),
        message=f"reconciled: {message}",
        run_id=run_id,
        intents=[i.id for i in pending.intents],
        reconciled=True,
        evidence={
            "reads": reads,
            "seconds": round(time.monotonic() - started, 3),
            "served": served,
            "secondsSinceIntent": round(_age(since), 3),
            "verifyWindow": target.verify_timeout,
        },
    )
    ledger.append(entry)
    log.info("%s: reconciled: %s", target.label, message)
    return Reconciled(
        target=target.label,
        key=target.key,
        status="confirmed",
        serving_model=served,
        entry=entry,
        message=message,
    )


def _v2_reader(
    service: str | None, command_jobs: Sequence[CommandJobsClient]
) -> CommandJobsClient | None:
    """The v2 jobs client of the workspace a job record names (its ``service``)."""
    where = (service or "").lower()
    for client in command_jobs:
        if where == f"{client.base_url}{client.workspace_id}/jobs".lower():
            return client
    return None


def _jobs(
    ledger: Ledger, batch: BatchClient | None, command_jobs: Sequence[CommandJobsClient] = ()
) -> list[JobReport]:
    """Report every job whose end was never recorded, and record what was found."""
    from amlretrain.azureml.training import ledger_status

    reports = []
    for job in ledger.open_jobs():
        if not job.job_id:  # the submit's answer was lost: its id is not known
            reports.append(JobReport(job_id="", run_id=job.run_id, status="Unknown", orphan=True))
            ledger.append(JobRecord.new(run_id=job.run_id, job_id="", status="Orphaned"))
            continue
        v2 = _v2_reader(job.service, command_jobs)
        if batch is None and v2 is None:
            reports.append(JobReport(job_id=job.job_id, run_id=job.run_id, status=job.status))
            continue
        try:
            if v2 is not None:  # a v2 command job: the service starts it itself
                status = ledger_status(v2.get(job.job_id).status)
            else:
                assert batch is not None
                status = batch.get_job(job.job_id).status.label
        except AmlRetrainError as err:
            log.warning("job %s: %s", job.job_id, redact(str(err)))
            reports.append(JobReport(job_id=job.job_id, run_id=job.run_id, status="Unreadable"))
            continue
        orphan = status == "NotStarted" and v2 is None
        reports.append(
            JobReport(job_id=job.job_id, run_id=job.run_id, status=status, orphan=orphan)
        )
        if orphan or status in ("Finished", "Failed", "Cancelled"):
            ended = "Orphaned" if orphan else status
            ledger.append(JobRecord.new(run_id=job.run_id, job_id=job.job_id, status=ended))
    return reports


def _candidates(
    targets: Sequence[Target], ledger: Ledger, wait_lock: float, run_id: str | None
) -> list[CandidateCleanup]:
    """Delete the leftover candidates the targets' clients reach; report each."""
    from amlretrain.azureml.targets import OnlineEndpointTarget
    from amlretrain.candidates import delete_leftovers, leftover_candidates
    from amlretrain.studio.targets import ArmTarget, ClassicTarget

    history = ledger.history()
    if not leftover_candidates(history):
        return []
    classic: dict[int, Any] = {}
    arm: dict[int, Any] = {}
    timeout = 900.0
    for target in targets:
        if isinstance(target, ClassicTarget):
            classic.setdefault(id(target.client), target.client)
        elif isinstance(target, ArmTarget):
            arm.setdefault(id(target.client), target.client)
            timeout = max(timeout, target.operation_timeout)
    done = delete_leftovers(
        history,
        ledger=ledger,
        classic=list(classic.values()),
        arm=list(arm.values()),
        wait_lock=wait_lock,
        run_id=run_id,
        timeout=timeout,
        online=[t for t in targets if isinstance(t, OnlineEndpointTarget)],
    )
    out = []
    for left, result in done:
        status, _, message = result.partition(": ")
        out.append(
            CandidateCleanup(
                run_id=left.run_id,
                kind=left.kind,
                where=left.where,
                model=left.model,
                target=left.target,
                status=status,
                message=message,
            )
        )
    return out


def reconcile(
    targets: Sequence[Target],
    *,
    ledger: Ledger,
    batch: BatchClient | None = None,
    wait_lock: float = 0.0,
    run_id: str | None = None,
    candidates: bool = True,
    command_jobs: Sequence[CommandJobsClient] = (),
) -> ReconcileReport:
    """Read every target of ``targets`` with an open intent or unknown outcome; record it.

    Each target is read under its lease (so a deployment in flight elsewhere is never
    "settled" under it), patiently (see the module docstring). Training jobs whose end
    was never recorded are read with ``batch`` and reported (orphans: never started).
    Leftover shadow candidates (recorded made, never recorded deleted) are deleted with
    the clients of ``targets``: a classic one by the client of a
    :class:`~amlretrain.studio.targets.ClassicTarget` of its workspace, a New one by the
    client of an :class:`~amlretrain.studio.targets.ArmTarget` of its subscription; one
    no target's client reaches, or whose incumbent another run holds the lease of, is
    reported ``skipped`` (see docs/candidates.md).

    Args:
        targets: the targets to look at (those without anything open are ``clean``).
        ledger: the ledger.
        batch: the training service's client, to read open jobs (None: listed as recorded).
        command_jobs: Azure ML v2 jobs clients: an open command job is read with the one
            of the workspace its record names (a job of no given workspace is listed as
            recorded).
        wait_lock: seconds to wait for a target's lease held by another run.
        candidates: delete leftover candidates (False: leave them, report none).

    Raises:
        ConflictError: a target is leased by another run (after ``wait_lock``).
    """
    pending = {p.target: p for p in ledger.pending()}
    out = []
    for target in targets:
        open_ = pending.get(target.key)
        if open_ is None:
            out.append(Reconciled(target=target.label, key=target.key, status="clean"))
            continue
        with ledger.locks.hold(target.key, wait=wait_lock, run_id=run_id):
            fresh = {p.target: p for p in ledger.pending(target.key)}.get(target.key)
            if fresh is None:  # settled by another run while we waited for the lease
                out.append(Reconciled(target=target.label, key=target.key, status="clean"))
                continue
            out.append(reconcile_target(target, fresh, ledger=ledger, run_id=run_id))
    jobs = tuple(_jobs(ledger, batch, command_jobs))
    cleanups = tuple(_candidates(targets, ledger, wait_lock, run_id)) if candidates else ()
    return ReconcileReport(targets=tuple(out), jobs=jobs, candidates=cleanups)
