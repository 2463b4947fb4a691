"""Guarded rollouts against the emulator, judged from the emulator's own state.

A good model passes every stage and serves; a model that errors on part of its traffic
is stopped by the shadow's alarm before any live target changes; a model whose scores
drift passes a canary-only rollout's first wave and is rolled back by the bake's alarm;
a model trained on shuffled labels is refused by the champion gate. The candidate
endpoint made for the checks is gone from the emulator afterwards, and the ledger holds
every stage's record.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from amlretrain.alarms import Alarm
from amlretrain.champion import ChampionGate
from amlretrain.emulator import Emulator
from amlretrain.ledger import Ledger
from amlretrain.rollout import Rollout, read_probe
from amlretrain.studio.targets import ClassicTarget
from amlretrain.training import Training
from amlretrain.workflow import retrain
from tests.integration.conftest import Faults, classic_serves

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "amlretrain" / "emulator" / "data"


def _endpoints(emulator: Emulator) -> set[str]:
    assert emulator.state is not None
    with emulator.state.lock:
        ws = emulator.state.workspaces[emulator.info.workspace_id.lower()]
        return set(ws.services[str(emulator.info.predictive_service)].endpoints)


def _probe(tmp_path: Path, rows: int = 60) -> Path:
    """The first rows of the census data, without the label: what live traffic sends."""
    with (DATA / "census_new.csv").open(newline="") as f:
        table = list(csv.reader(f))
    path = tmp_path / "probe.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([r[:-1] for r in table[: rows + 1]])
    return path


def _target(clients: dict[str, Any]) -> ClassicTarget:
    info = clients["info"]
    return ClassicTarget(clients["classic"], info.predictive_service, info.predictive_endpoint)


def _training(clients: dict[str, Any], data: str = "census_new.csv") -> Training:
    return Training(batch=clients["batch"], data=DATA / data, store=clients["store"], timeout=120)


def _stages(ledger: Ledger, run_id: str | None) -> list[tuple[str, str]]:
    return [(e.stage, e.verdict) for e in ledger.history().rollout_events(run_id)]


def test_a_good_model_passes_every_stage_andclassic_serves(
    clients: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    target = _target(clients)
    endpoints = _endpoints(emulator)
    ledger = Ledger(tmp_path / "ledger.jsonl")
    rollout = Rollout(
        stages=("smoke", "shadow", "canary"),
        probe=read_probe(_probe(tmp_path)),
        probe_interval=0.2,
        bake=0.5,
        alarms=(
            Alarm(metric="error_rate", threshold=0.05),
            Alarm(metric="psi", threshold=5.0),
        ),
    )
    result = retrain(_training(clients), [target], ledger=ledger, rollout=rollout)
    assert [o.status for o in result.targets] == ["succeeded"], result.targets[0].error
    assert result.model is not None
    assert result.model.endswith(classic_serves(emulator, target.endpoint))
    assert _endpoints(emulator) == endpoints  # the candidate endpoint was deleted
    stages = _stages(ledger, result.run_id)
    assert stages[:4] == [
        ("candidate", "started"),
        ("smoke", "passed"),
        ("shadow", "passed"),
        ("candidate", "done"),
    ]
    assert ("wave", "done") in stages and ("bake", "passed") in stages
    assert stages[-1] == ("promote", "done")
    shadow = next(e for e in ledger.history().rollout_events(result.run_id) if e.stage == "shadow")
    assert shadow.evidence["rows"] == 60
    assert 0.0 <= shadow.evidence["agreement"] <= 1.0
    assert "histogram" in shadow.evidence["candidate"]


def test_a_model_that_errors_on_part_of_its_traffic_is_stopped_by_the_shadow(
    clients: dict[str, Any], emulator: Emulator, faults: Faults, tmp_path: Path
) -> None:
    target = _target(clients)
    before = classic_serves(emulator, target.endpoint)
    endpoints = _endpoints(emulator)
    ledger = Ledger(tmp_path / "ledger.jsonl")
    faults.add(route="bes.start", kind="train_behaviour", error_rate=0.4, seed=3)
    rollout = Rollout(
        stages=("shadow", "canary"),
        probe=read_probe(_probe(tmp_path)),
        probe_batch=3,
        alarms=(Alarm(metric="error_rate", threshold=0.05),),
    )
    result = retrain(_training(clients), [target], ledger=ledger, rollout=rollout)
    (outcome,) = result.targets
    assert outcome.status == "rejected"
    assert "rollout shadow" in (outcome.error or "") and "error_rate" in (outcome.error or "")
    assert classic_serves(emulator, target.endpoint) == before  # no live target changed
    assert _endpoints(emulator) == endpoints
    stages = _stages(ledger, result.run_id)
    assert ("shadow", "failed") in stages and ("alarm", "fired") in stages
    alarm = next(e for e in ledger.history().rollout_events(result.run_id) if e.stage == "alarm")
    assert alarm.evidence["alarm"] == "error_rate" and alarm.evidence["value"] > 0.05
    assert [e.outcome for e in ledger.entries(target.key)][-1] == "rejected"


def test_a_drifting_model_is_rolled_back_by_the_bake_alarm(
    clients: dict[str, Any], emulator: Emulator, faults: Faults, tmp_path: Path
) -> None:
    target = _target(clients)
    ledger = Ledger(tmp_path / "ledger.jsonl")
    first = retrain(_training(clients), [target], ledger=ledger)  # a baseline model
    assert first.targets[0].status == "succeeded"
    before = classic_serves(emulator, target.endpoint)
    faults.add(route="bes.start", kind="train_behaviour", score_shift=0.45, seed=1)
    canary_only = Rollout(
        stages=("canary",),
        probe=read_probe(_probe(tmp_path)),
        probe_interval=0.2,
        bake=0.5,
        alarms=(Alarm(metric="psi", threshold=0.25),),
    )
    result = retrain(_training(clients), [target], ledger=ledger, rollout=canary_only)
    (outcome,) = result.targets
    assert outcome.status == "restored", outcome.error
    assert "an alarm fired" in (outcome.error or "")
    assert result.halted_wave == 1
    assert classic_serves(emulator, target.endpoint) == before  # put back, in the emulator
    stages = _stages(ledger, result.run_id)
    assert ("wave", "done") in stages
    assert ("alarm", "fired") in stages and stages[-1] == ("rollback", "done")
    entries = ledger.entries(target.key)
    assert [e.action for e in entries[-2:]] == ["deploy", "rollback"]


def test_a_model_trained_on_shuffled_labels_is_refused_by_the_champion_gate(
    clients: dict[str, Any], emulator: Emulator, faults: Faults, tmp_path: Path
) -> None:
    target = _target(clients)
    ledger = Ledger(tmp_path / "ledger.jsonl")
    data = tmp_path / "census.csv"
    data.write_bytes((DATA / "census_new.csv").read_bytes())
    first = retrain(_training(clients), [target], ledger=ledger)
    assert first.targets[0].status == "succeeded"
    before = classic_serves(emulator, target.endpoint)
    faults.add(route="bes.*", kind="train_shuffled")
    rollout = Rollout(
        stages=("canary",),
        champion=ChampionGate(label="income", holdout_fraction=0.25, resamples=300, seed=2),
    )
    training = Training(batch=clients["batch"], data=data, store=clients["store"], timeout=120)
    result = retrain(training, [target], ledger=ledger, rollout=rollout)
    (outcome,) = result.targets
    assert outcome.status == "rejected", outcome.error
    assert "rollout gate" in (outcome.error or "")
    assert classic_serves(emulator, target.endpoint) == before
    gate = next(e for e in ledger.history().rollout_events(result.run_id) if e.stage == "gate")
    assert gate.verdict == "failed"
    assert gate.evidence["n"] > 0 and gate.evidence["difference"] < 0
    assert gate.evidence["lower"] <= gate.evidence["difference"]


def test_deploy_with_a_rollout_checks_the_model_on_a_candidate_first(
    clients: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    from amlretrain.workflow import deploy

    target = _target(clients)
    ledger = Ledger(tmp_path / "ledger.jsonl")
    trained = retrain(_training(clients, "census_train.csv"), [target], ledger=ledger)
    model = trained.targets[0].serving_model
    assert model is not None
    retrain(_training(clients), [target], ledger=ledger)  # serves another model now
    endpoints = _endpoints(emulator)
    rollout = Rollout(stages=("smoke", "canary"), probe=read_probe(_probe(tmp_path)))
    from amlretrain.blobs import BlobRef

    result = deploy(
        BlobRef.from_url(model), [target], ledger=ledger, store=clients["store"], rollout=rollout
    )
    assert [o.status for o in result.targets] == ["succeeded"], result.targets[0].error
    assert model.endswith(classic_serves(emulator, target.endpoint))
    assert _endpoints(emulator) == endpoints
    stages = _stages(ledger, result.run_id)
    assert stages[:3] == [("candidate", "started"), ("smoke", "passed"), ("candidate", "done")]
    assert stages[-1] == ("promote", "done")
    run = ledger.history().run(str(result.run_id))
    assert run.command == "deploy"


def test_the_cli_runs_the_config_s_rollout_and_refuses_a_bad_stages_flag(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from amlretrain.cli import main
    from amlretrain.cli._emulator_config import emulator_config, emulator_environment

    for name, value in emulator_environment(emulator.info).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ROLLOUT_STORAGE_KEY", "a2V5")  # the emulator's storage takes any
    probe = _probe(tmp_path)
    text = emulator_config(
        emulator.info, data=DATA / "census_new.csv", ledger=tmp_path / "ledger.jsonl"
    )
    rollout = (
        "[rollout]\n"
        'stages = ["smoke", "shadow", "canary"]\n'
        f'probe = "{probe.name}"\n'
        "probe_interval = 0.2\nbake = 0.4\n"
        'arm_storage_key_env = "ROLLOUT_STORAGE_KEY"\n'
        f'arm_commitment_plan = "/subscriptions/{emulator.info.subscription_id}/resourceGroups/'
        f'{emulator.info.resource_group}/providers/Microsoft.MachineLearning/commitmentPlans/p"\n\n'
        '[[rollout.alarms]]\nmetric = "error_rate"\nthreshold = 0.05\n\n'
    )
    config = tmp_path / "retrain.toml"
    config.write_text(text.replace("[[targets]]", rollout + "[[targets]]", 1))
    requests_before = len(emulator.requests)
    code = main(["retrain", "--config", str(config), "--stages", "canery,canary"])
    err = capsys.readouterr().err
    assert code == 4, err
    assert "--stages" in err and "canery" in err
    assert len(emulator.requests) == requests_before  # refused before anything was sent
    code = main(["retrain", "--config", str(config), "--no-progress", "--output", "json"])
    out = capsys.readouterr().out
    assert code == 0, out
    document = json.loads(out)
    ledger = Ledger(tmp_path / "ledger.jsonl")
    stages = _stages(ledger, document["run_id"])
    assert ("shadow", "passed") in stages and stages[-1] == ("promote", "done")
    assert all(t["status"] == "succeeded" for t in document["targets"])
