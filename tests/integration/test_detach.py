"""A run with a fixed id that detaches from its training job and is resumed later (what a
scheduler's deferrable task does): judged from the emulator's jobs and targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from amlretrain.emulator import Emulator, Faults
from amlretrain.errors import ConfigurationError, TrainingDetached
from amlretrain.fleet import FleetGroup, retrain_fleet
from amlretrain.ledger import Ledger
from amlretrain.studio.targets import ClassicTarget
from amlretrain.training import TERMINAL_JOB_STATUSES, Training
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

DATA = Path(__file__).resolve().parents[2] / "amlretrain" / "emulator" / "data"


def _group(c: dict[str, Any]) -> FleetGroup:
    info = c["info"]
    target = ClassicTarget(c["classic"], info.predictive_service, info.predictive_endpoint)
    training = Training(batch=c["batch"], data=DATA / "census_new.csv", store=c["store"])
    return FleetGroup(training=training, targets=[target])


def _jobs(emulator: Emulator) -> int:
    return sum(1 for r in emulator.requests if r.method == "POST" and r.path.endswith("/jobs"))


def test_a_detached_run_submits_once_and_its_resume_deploys(
    clients: dict[str, Any], emulator: Emulator, faults: Faults, tmp_path: Path
) -> None:
    group = _group(clients)
    (target,) = group.targets
    before = target.current_model()
    ledger = Ledger(tmp_path / "ledger.jsonl")
    faults.add(route="bes.*", kind="job_slow", seconds=2, count=1)
    submits = _jobs(emulator)

    with pytest.raises(TrainingDetached) as detached:
        retrain_fleet([group], ledger=ledger, run_id="af-dag.task:1", detach=True)

    (job,) = detached.value.jobs
    assert detached.value.run_id == "af-dag.task:1"
    assert job.kind == "batch" and job.label == group.label and job.job_id
    assert _jobs(emulator) == submits + 1
    assert target.current_model() == before  # nothing deployed while detached
    training = group.training
    assert training is not None
    assert training.job_status(job.job_id) not in TERMINAL_JOB_STATUSES
    (run,) = ledger.history().runs()
    assert run.run_id == "af-dag.task:1" and [j.job_id for j in run.jobs] == [job.job_id]
    assert ledger.entries(target.key) == []
    wait_for(lambda: training.job_status(job.job_id) == "Finished", timeout=20)

    result = retrain_fleet([group], ledger=ledger, run_id="af-dag.task:1", detach=True)

    assert result.run_id == "af-dag.task:1"
    assert [o.status for o in result.targets] == ["succeeded"], result.targets[0].error
    assert result.targets[0].job_id == job.job_id
    assert _jobs(emulator) == submits + 1  # re-attached: no second job
    assert target.current_model() != before
    again = retrain_fleet([group], ledger=ledger, run_id="af-dag.task:1")
    assert _jobs(emulator) == submits + 1
    assert [e.outcome for e in ledger.entries(target.key)] == ["succeeded"]  # no second swap
    assert [o.status for o in again.targets] == ["succeeded"]


def test_a_bad_run_id_is_refused_before_anything_is_sent(
    clients: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    submits = _jobs(emulator)
    with pytest.raises(ConfigurationError, match="run_id"):
        retrain_fleet([_group(clients)], ledger=Ledger(tmp_path / "l"), run_id="a b")
    with pytest.raises(ConfigurationError, match="ledger"):
        retrain_fleet([_group(clients)], run_id="ok", detach=True)
    assert _jobs(emulator) == submits
