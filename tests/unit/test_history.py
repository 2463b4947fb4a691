"""One read of the ledger answers the loop's questions, by target and by run."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlretrain.errors import ConfigurationError
from amlretrain.history import History
from amlretrain.ledger import Ledger
from amlretrain.records import JobRecord, LedgerEntry

T1, T2 = "classic:w/ws/alpha", "classic:w/ws/beta"
OLD, NEW = "https://a.blob/m/old.ilearner", "https://a.blob/m/new.ilearner"


def _ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.begin_run(run_id="run-a", command="retrain", targets=[T1, T2], fingerprint="f1")
    ledger.append(JobRecord.new(run_id="run-a", job_id="", status="Submitting", data="a.csv"))
    ledger.append(JobRecord.new(run_id="run-a", job_id="j1", status="Submitted", data="a.csv"))
    ledger.append(JobRecord.new(run_id="run-a", job_id="", status="Submitting", data="b.csv"))
    ledger.append(JobRecord.new(run_id="run-a", job_id="j1", status="Finished", data="a.csv"))
    ledger.append(
        LedgerEntry.new(
            target=T1,
            action="deploy",
            outcome="succeeded",
            previous_model=OLD,
            new_model=NEW + "?sig=SECRET",
            serving_model=NEW,
            metrics={"AUC": 0.9},
            run_id="run-a",
        )
    )
    ledger.begin_run(run_id="run-a", command="retrain", targets=[T1, T2], resumed=True)
    ledger.begin_run(run_id="run-b", command="deploy", targets=[T2])
    return ledger


def test_a_run_summary_holds_its_jobs_outcomes_and_attempts(tmp_path: Path) -> None:
    history = _ledger(tmp_path).history()
    run = history.run("run-a")
    assert (run.command, run.fingerprint, run.attempts) == ("retrain", "f1", 2)
    assert [(j.job_id, j.status, j.data) for j in run.jobs] == [
        ("j1", "Finished", "a.csv"),
        ("", "Submitting", "b.csv"),  # a submit whose answer never came stays listed
    ]
    assert run.job_for("a.csv") is not None and run.job_for("a.csv").status == "Finished"
    assert run.job_for("c.csv") is None
    assert list(run.final()) == [T1]
    assert run.to_dict()["outcomes"] == {"succeeded": 1}
    assert [r.run_id for r in history.runs()] == ["run-a", "run-b"]


def test_a_run_is_found_by_a_unique_prefix_only(tmp_path: Path) -> None:
    history = _ledger(tmp_path).history()
    assert history.run("run-b").command == "deploy"
    with pytest.raises(ConfigurationError, match="ambiguous"):
        history.run("run-")
    with pytest.raises(ConfigurationError, match="no run 'run-z'"):
        history.run("run-z")


def test_the_target_questions_agree_with_the_ledger_methods(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    history = History(ledger.read())
    assert history.serving(T1) == ledger.serving(T1)
    assert history.metrics_of(T1, NEW + "?sig=x") == {"AUC": 0.9}
    assert history.last_known(T1) == NEW and history.last_known(T2) is None
    assert [e.id for e in history.deployments(T1)] == [e.id for e in ledger.deployments(T1)]
    assert history.entries(T2) == []
    assert history.open_jobs() == ledger.open_jobs()


def test_the_new_members_are_written_only_when_set(tmp_path: Path) -> None:
    text = _ledger(tmp_path).backend.read_bytes().decode()
    first, *_rest = text.splitlines()
    assert '"fingerprint":"f1"' in first.replace(" ", "")
    assert text.count('"resumed"') == 1
    assert "SECRET" not in text


def test_rollout_events_round_trip_without_secrets(tmp_path: Path) -> None:
    from amlretrain.records import RolloutEvent

    ledger = Ledger(tmp_path / "l.jsonl")
    event = RolloutEvent.new(
        run_id="run-1",
        stage="shadow",
        verdict="passed",
        target="classic:ws/svc/ep",
        model="https://a.blob.core.windows.net/m/x.ilearner?sv=1&sig=SECRET",
        message="apiKey: 'SECRET3'",
        evidence={"agreement": 0.98, "psi": 0.01, "authorization": "Bearer SECRET4"},
    )
    ledger.append(event)
    ledger.append(RolloutEvent.new(run_id="run-2", stage="gate", verdict="failed"))
    text = (tmp_path / "l.jsonl").read_text()
    assert "SECRET" not in text
    history = ledger.history()
    (read,) = history.rollout_events("run-1")
    assert read.stage == "shadow" and read.target == "classic:ws/svc/ep"
    assert read.model == "https://a.blob.core.windows.net/m/x.ilearner"
    assert read.evidence["agreement"] == 0.98
    assert [e.run_id for e in history.rollout_events()] == ["run-1", "run-2"]
    assert history.rollout_events(target="classic:ws/svc/ep") == [read]


def test_rollout_event_refuses_an_unknown_stage() -> None:
    from amlretrain.errors import ConfigurationError
    from amlretrain.records import RolloutEvent

    with pytest.raises(ConfigurationError, match="unknown rollout stage 'canery'"):
        RolloutEvent.new(run_id="r", stage="canery", verdict="passed")
