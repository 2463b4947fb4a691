"""One read of the ledger, indexed by target and by run: what the loop asks of its past.

:class:`History` answers every question the loop asks of the ledger (what a target
serves, the metrics of its incumbent, its deployments, its open intents, the jobs and
outcomes of a run) from one read (:meth:`amlretrain.ledger.Ledger.history`), so a run
over a thousand targets reads the ledger once, not once per target. The
:class:`~amlretrain.ledger.Ledger` methods of the same names read it afresh and ask a
``History``: one way of answering each question.

Pure code: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from amlretrain.blobs import strip_sas
from amlretrain.errors import ConfigurationError
from amlretrain.records import (
    Intent,
    JobRecord,
    LedgerContents,
    LedgerEntry,
    LedgerProblem,
    OperationRecord,
    Pending,
    RolloutEvent,
    RunStart,
)

__all__ = ["History", "RunSummary"]


@attrs.frozen(kw_only=True)
class RunSummary:
    """What the ledger knows of one run.

    Attributes:
        run_id: the run.
        command: ``retrain``, ``deploy``, ``rollback`` or ``reconcile``.
        started: when its first ``run-start`` was written (UTC, ISO 8601).
        host: where it started.
        targets: the target keys it may change.
        fingerprint: the digest of its configuration, when it recorded one.
        attempts: how many times it was started (1, plus one per ``--resume``).
        jobs: the latest record of each of its training jobs, in submit order.
        outcomes: its outcomes, oldest first.
    """

    run_id: str
    command: str
    started: str
    host: str
    targets: tuple[str, ...]
    fingerprint: str | None
    attempts: int
    jobs: tuple[JobRecord, ...]
    outcomes: tuple[LedgerEntry, ...]

    def final(self) -> dict[str, LedgerEntry]:
        """Each target's last outcome in this run (gate refusals included), by key."""
        last: dict[str, LedgerEntry] = {}
        for entry in self.outcomes:
            last[entry.target] = entry
        return last

    def job_for(self, data: str) -> JobRecord | None:
        """The latest job of this run on ``data`` (as configured), if it recorded one."""
        found = None
        for job in self.jobs:
            if job.data == data:
                found = job
        return found

    def counts(self) -> dict[str, int]:
        """Its targets' last outcomes, counted by outcome."""
        counts: dict[str, int] = {}
        for entry in self.final().values():
            counts[entry.outcome] = counts.get(entry.outcome, 0) + 1
        return counts

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (snake_case), for ``amlretrain runs``."""
        counts = self.counts()
        return {
            "run_id": self.run_id,
            "command": self.command,
            "started": self.started,
            "host": self.host,
            "fingerprint": self.fingerprint,
            "attempts": self.attempts,
            "targets": list(self.targets),
            "outcomes": counts,
            "jobs": [
                {"job_id": j.job_id, "status": j.status, "data": j.data, "time": j.time}
                for j in self.jobs
            ],
        }


class History:
    """The ledger's records, read once, indexed by target and by run.

    Args:
        contents: what :meth:`amlretrain.ledger.Ledger.read` returned.
    """

    def __init__(self, contents: LedgerContents) -> None:
        self.contents = contents
        self._entries: dict[str, list[LedgerEntry]] = {}
        self._intents: dict[str, list[Intent]] = {}
        self._all: list[LedgerEntry] = []
        for record in contents.records:
            if isinstance(record, LedgerEntry):
                self._all.append(record)
                self._entries.setdefault(record.target, []).append(record)
            elif isinstance(record, Intent):
                self._intents.setdefault(record.target, []).append(record)

    @property
    def problems(self) -> tuple[LedgerProblem, ...]:
        """The lines that could not be read."""
        return self.contents.problems

    # -- targets --------------------------------------------------------------------------

    def entries(self, target: str | None = None) -> list[LedgerEntry]:
        """Every outcome (of ``target``, when given), oldest first; bad lines skipped."""
        return list(self._all if target is None else self._entries.get(target, ()))

    def intents(self, target: str | None = None) -> list[Intent]:
        """Every intent (of ``target``, when given), oldest first."""
        if target is not None:
            return list(self._intents.get(target, ()))
        return [r for r in self.contents.records if isinstance(r, Intent)]

    def rollout_events(
        self, run_id: str | None = None, *, target: str | None = None
    ) -> list[RolloutEvent]:
        """The guarded rollouts' records (of run ``run_id``, of ``target``), oldest first."""
        return [
            r
            for r in self.contents.records
            if isinstance(r, RolloutEvent)
            and (run_id is None or r.run_id == run_id)
            and (target is None or r.target == target)
        ]

    def pending(self, target: str | None = None) -> list[Pending]:
        """The targets with open intents or an unknown latest outcome."""
        opened: dict[str, list[Intent]] = {}
        closed: set[str] = set()
        latest: dict[str, LedgerEntry] = {}
        for record in self.contents.records:
            if isinstance(record, Intent):
                opened.setdefault(record.target, []).append(record)
            elif isinstance(record, LedgerEntry) and record.action != "gate":
                if not record.is_unknown:  # an unknown outcome leaves its intents open
                    closed.update(record.intents)
                latest[record.target] = record
        out = []
        for key in dict.fromkeys([*opened, *latest]):
            if target is not None and key != target:
                continue
            still = tuple(i for i in opened.get(key, ()) if i.id not in closed)
            last = latest.get(key)
            unknown = last if last is not None and last.is_unknown else None
            if still or unknown:
                out.append(Pending(key, still, unknown))
        return out

    def detached(self, run_id: str) -> dict[str, OperationRecord]:
        """Run ``run_id``'s swaps whose operation it did not wait for and whose intent is
        still open, by target key (the latest record of each)."""
        still = {i.id for p in self.pending() for i in p.intents}
        out: dict[str, OperationRecord] = {}
        for record in self.contents.records:
            if isinstance(record, OperationRecord) and record.run_id == run_id:
                if record.intent in still:
                    out[record.target] = record
                else:
                    out.pop(record.target, None)
        return out

    def get(self, entry_id: str) -> LedgerEntry:
        """The entry with this id (a unique prefix is enough).

        Raises:
            ConfigurationError: no entry, or several, match.
        """
        matches = [e for e in self._all if e.id == entry_id or e.id.startswith(entry_id)]
        exact = [e for e in matches if e.id == entry_id]
        if exact:
            return exact[0]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ConfigurationError(f"no ledger entry {entry_id!r}")
        raise ConfigurationError(
            f"ledger entry id {entry_id!r} is ambiguous ({len(matches)} match)"
        )

    def serving(self, target: str) -> LedgerEntry | None:
        """The latest entry of ``target`` that changed what it serves (verified), or None."""
        for entry in reversed(self._entries.get(target, ())):
            if entry.serving_model and entry.outcome in ("succeeded", "restored"):
                return entry
        return None

    def last_known(self, target: str) -> str | None:
        """What the latest outcome of ``target`` says it serves (None: unknown or none)."""
        for entry in reversed(self._entries.get(target, ())):
            if entry.action == "gate":
                continue
            return None if entry.is_unknown else entry.serving_model
        return None

    def metrics_of(self, target: str, model: str | None) -> Mapping[str, float] | None:
        """The metrics recorded when ``model`` was deployed to ``target``, if any."""
        wanted = strip_sas(model)
        for entry in reversed(self._entries.get(target, ())):
            if entry.new_model == wanted and entry.metrics and entry.action in ("deploy", "gate"):
                return entry.metrics
        return None

    def deployments(self, target: str) -> list[LedgerEntry]:
        """The successful deployments and rollbacks of ``target``, oldest first."""
        return [
            e
            for e in self._entries.get(target, ())
            if e.outcome == "succeeded" and e.action in ("deploy", "rollback")
        ]

    # -- jobs and runs ----------------------------------------------------------------------

    def open_jobs(self) -> list[JobRecord]:
        """Training jobs whose last record says they may still run (or never started).

        A submit whose answer never came (``Submitting`` without a job id after it) is
        listed too, with ``job_id`` empty: the service may hold a job nobody knows the
        id of.
        """
        last: dict[str, JobRecord] = {}
        submitting: dict[str | None, JobRecord] = {}
        for record in self.contents.records:
            if not isinstance(record, JobRecord):
                continue
            if record.job_id:
                last[record.job_id] = record
                submitting.pop(record.run_id, None)
            elif record.status == "Submitting":
                submitting[record.run_id] = record
            else:  # NotSubmitted, or reconcile's Orphaned for an unknown id
                submitting.pop(record.run_id, None)
        return [job for job in last.values() if not job.ended] + list(submitting.values())

    def runs(self) -> list[RunSummary]:
        """Every run the ledger knows, oldest first."""
        starts: dict[str, list[RunStart]] = {}
        # per run: each job's latest record, by job id; a submit not answered (yet) by
        # the data it was for
        jobs: dict[str, dict[str, JobRecord]] = {}
        outcomes: dict[str, list[LedgerEntry]] = {}
        for record in self.contents.records:
            if isinstance(record, RunStart):
                starts.setdefault(record.run_id, []).append(record)
            elif isinstance(record, JobRecord) and record.run_id:
                known = jobs.setdefault(record.run_id, {})
                unanswered = f"submit:{record.data or ''}"
                if record.job_id:
                    known.pop(unanswered, None)
                    known[record.job_id] = record
                elif record.status == "Submitting":
                    known[unanswered] = record
                else:  # NotSubmitted / Orphaned: no job came of that submit
                    known.pop(unanswered, None)
            elif isinstance(record, LedgerEntry) and record.run_id:
                outcomes.setdefault(record.run_id, []).append(record)
        out = []
        for run_id, records in starts.items():
            first = records[0]
            out.append(
                RunSummary(
                    run_id=run_id,
                    command=first.command,
                    started=first.time,
                    host=first.host,
                    targets=first.targets,
                    fingerprint=next((r.fingerprint for r in records if r.fingerprint), None),
                    attempts=len(records),
                    jobs=tuple(jobs.get(run_id, {}).values()),
                    outcomes=tuple(outcomes.get(run_id, ())),
                )
            )
        return out

    def run(self, run_id: str) -> RunSummary:
        """The run with this id (a unique prefix is enough).

        Raises:
            ConfigurationError: no run, or several, match.
        """
        runs = self.runs()
        exact = [r for r in runs if r.run_id == run_id]
        if exact:
            return exact[0]
        matches = [r for r in runs if r.run_id.startswith(run_id)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ConfigurationError(
                f"no run {run_id!r} in the ledger (`amlretrain runs list` lists them)"
            )
        raise ConfigurationError(f"run id {run_id!r} is ambiguous ({len(matches)} match)")
