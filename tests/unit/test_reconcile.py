"""Reconcile's verdicts, from what a (fake) target serves; the ledger it writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from amlretrain.errors import ServiceError
from amlretrain.ledger import Intent, JobRecord, Ledger, LedgerEntry
from amlretrain.reconciliation import reconcile
from amlretrain.targets import TargetState

OLD = "https://a.blob.core.windows.net/m/old.ilearner"
NEW = "https://a.blob.core.windows.net/m/new.ilearner"
OTHER = "https://a.blob.core.windows.net/m/other.ilearner"


class FakeTarget:
    key = "classic:ws/svc/ep"
    label = "svc/ep"

    def __init__(self, serves: list[str | Exception | None], verify_timeout: float = 1.0) -> None:
        self.serves = serves
        self.verify_timeout = verify_timeout
        self.reads = 0

    def read(self, known: TargetState | None = None) -> TargetState:
        value = self.serves[min(self.reads, len(self.serves) - 1)]
        self.reads += 1
        if isinstance(value, Exception):
            raise value
        model = None if value is None else value + "?sv=1&sig=SECRET"
        return TargetState(target=self.key, model=model)


def _ledger(tmp_path: Path, *, action: str = "deploy") -> tuple[Ledger, Intent]:
    ledger = Ledger(tmp_path / "l.jsonl")
    intent = Intent.new(
        run_id="run-1",
        target=FakeTarget.key,
        action=action,
        previous_model=OLD,
        new_model=NEW,
        metrics={"AUC": 0.8},
        job_id="job-1",
    )
    ledger.append(intent)
    return ledger, intent


def test_the_new_model_showing_settles_it_at_once(tmp_path: Path) -> None:
    ledger, intent = _ledger(tmp_path)
    target = FakeTarget([NEW], verify_timeout=60)
    report = reconcile([target], ledger=ledger)  # type: ignore[list-item]
    assert [t.status for t in report.targets] == ["confirmed"]
    assert target.reads == 1
    entry = ledger.entries()[-1]
    assert (entry.outcome, entry.serving_model, entry.intents) == ("succeeded", NEW, (intent.id,))
    assert entry.reconciled and entry.metrics == {"AUC": 0.8} and entry.job_id == "job-1"
    assert entry.evidence["reads"] == 1
    assert "SECRET" not in (tmp_path / "l.jsonl").read_text()
    assert ledger.pending() == []
    assert ledger.deployments(FakeTarget.key)[-1].new_model == NEW  # rollback sees it


def test_the_previous_model_counts_only_after_the_verify_window(tmp_path: Path) -> None:
    ledger, _ = _ledger(tmp_path)
    target = FakeTarget([OLD, OLD, NEW], verify_timeout=5)
    reconcile([target], ledger=ledger)  # type: ignore[list-item]
    assert target.reads == 3  # it kept reading: the write was still propagating
    assert ledger.entries()[-1].outcome == "succeeded"


def test_the_previous_model_after_the_window_is_a_failed_change(tmp_path: Path) -> None:
    ledger, _ = _ledger(tmp_path)
    target = FakeTarget([OLD], verify_timeout=1)
    reconcile([target], ledger=ledger)  # type: ignore[list-item]
    entry = ledger.entries()[-1]
    assert (entry.outcome, entry.serving_model) == ("failed", OLD)
    assert entry.evidence["reads"] >= 2


def test_a_restore_that_landed_is_restored(tmp_path: Path) -> None:
    ledger, _ = _ledger(tmp_path)
    ledger.append(
        Intent.new(
            run_id="run-1",
            target=FakeTarget.key,
            action="restore",
            previous_model=NEW,
            new_model=OLD,
        )
    )
    reconcile([FakeTarget([OLD], verify_timeout=1)], ledger=ledger)  # type: ignore[list-item]
    entry = ledger.entries()[-1]
    assert (entry.action, entry.outcome, entry.serving_model) == ("restore", "restored", OLD)
    assert len(entry.intents) == 2 and ledger.pending() == []


def test_another_model_is_recorded_as_it_is(tmp_path: Path) -> None:
    ledger, _ = _ledger(tmp_path)
    reconcile([FakeTarget([OTHER], verify_timeout=1)], ledger=ledger)  # type: ignore[list-item]
    entry = ledger.entries()[-1]
    assert (entry.outcome, entry.serving_model) == ("failed", OTHER)
    assert "none of the open changes" in (entry.message or "")


def test_an_unreadable_target_stays_open(tmp_path: Path) -> None:
    ledger, _ = _ledger(tmp_path)
    report = reconcile(
        [FakeTarget([ServiceError("boom", status=503)])],  # type: ignore[list-item]
        ledger=ledger,
    )
    assert [t.status for t in report.targets] == ["unknown"]
    assert report.unresolved and len(ledger.pending()) == 1


def test_an_unknown_outcome_keeps_its_intent_open(tmp_path: Path) -> None:
    ledger, intent = _ledger(tmp_path)
    ledger.append(
        LedgerEntry.new(
            target=FakeTarget.key, action="deploy", outcome="unknown", intents=[intent.id]
        )
    )
    reconcile([FakeTarget([NEW])], ledger=ledger)  # type: ignore[list-item]
    assert ledger.entries()[-1].outcome == "succeeded" and ledger.pending() == []


def test_a_clean_target_is_not_read(tmp_path: Path) -> None:
    target = FakeTarget([NEW])
    report = reconcile([target], ledger=Ledger(tmp_path / "l.jsonl"))  # type: ignore[list-item]
    assert [t.status for t in report.targets] == ["clean"] and target.reads == 0


class FakeBatch:
    def __init__(self, statuses: dict[str, str]) -> None:
        self.statuses = statuses

    def get_job(self, job_id: str) -> Any:
        from amlretrain.studio.jobstatus import JobStatus

        status = JobStatus.parse(self.statuses[job_id])
        return type("Job", (), {"status": status})()


def test_jobs_without_an_end_are_read_and_orphans_listed(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    for job, status in (("j-orphan", "Submitted"), ("j-done", "Submitted"), ("j-ok", "Finished")):
        ledger.append(JobRecord.new(run_id="run-9", job_id=job, status=status))
    batch = FakeBatch({"j-orphan": "NotStarted", "j-done": "Finished"})
    report = reconcile([], ledger=ledger, batch=batch)  # type: ignore[arg-type]
    jobs = {j.job_id: (j.status, j.orphan, j.run_id) for j in report.jobs}
    assert jobs == {
        "j-orphan": ("NotStarted", True, "run-9"),
        "j-done": ("Finished", False, "run-9"),
    }
    assert ledger.open_jobs() == []  # recorded (Orphaned, Finished): reported once
    assert "orphan" in report.summary()
    assert reconcile([], ledger=ledger, batch=batch).jobs == ()  # type: ignore[arg-type]


def test_a_submit_whose_answer_was_lost_is_an_orphan_of_its_run(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    ledger.append(JobRecord.new(run_id="run-lost", job_id="", status="Submitting"))
    ledger.append(JobRecord.new(run_id="run-ok", job_id="", status="Submitting"))
    ledger.append(JobRecord.new(run_id="run-ok", job_id="j1", status="Submitted"))
    ledger.append(JobRecord.new(run_id="run-ok", job_id="j1", status="Finished"))
    ledger.append(JobRecord.new(run_id="run-refused", job_id="", status="Submitting"))
    ledger.append(JobRecord.new(run_id="run-refused", job_id="", status="NotSubmitted"))
    report = reconcile([], ledger=ledger)
    assert [(j.run_id, j.job_id, j.orphan) for j in report.jobs] == [("run-lost", "", True)]
    assert "id never received" in report.summary()
    assert ledger.open_jobs() == []


@pytest.mark.parametrize("with_batch", [False, True])
def test_no_job_is_started_by_reconcile(tmp_path: Path, with_batch: bool) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    ledger.append(JobRecord.new(run_id="r", job_id="j", status="Submitted"))
    batch = FakeBatch({"j": "NotStarted"}) if with_batch else None
    report = reconcile([], ledger=ledger, batch=batch)  # type: ignore[arg-type]
    assert [j.job_id for j in report.jobs] == ["j"]
