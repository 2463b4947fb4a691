"""The retrain loop against the live emulator: swap, gate, dry run, rollback, failure safety."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from amlretrain import ConfigurationError, GateRejected
from amlretrain.blobs import BlobRef
from amlretrain.emulator import Emulator, Faults
from amlretrain.gate import Gate
from amlretrain.ledger import Ledger, strip_sas
from amlretrain.studio.management import ClassicClient
from amlretrain.studio.targets import ArmTarget, ClassicTarget
from amlretrain.targets import Sample
from amlretrain.training import Training
from amlretrain.workflow import deploy, retrain, rollback

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "amlretrain" / "emulator" / "data"


@pytest.fixture
def sample() -> Sample:
    rows = json.loads((DATA / "score_rows.json").read_text())
    return Sample(columns=rows["ColumnNames"], rows=rows["Values"])


def _targets(c: dict[str, Any]) -> list[Any]:
    info = c["info"]
    return [
        ArmTarget(c["arm"], info.resource_group, info.arm_service_name),
        ClassicTarget(c["classic"], info.predictive_service, info.predictive_endpoint),
    ]


def _training(c: dict[str, Any], data: str = "census_new.csv") -> Training:
    return Training(batch=c["batch"], data=DATA / data, store=c["store"], timeout=120)


def _probabilities(target: Any, sample: Sample) -> list[str]:
    return [r["Scored Probabilities"] for r in target.score(sample).first.records()]


def _submits(emulator: Emulator) -> int:
    return sum(1 for r in emulator.requests if r.method == "POST" and r.path.endswith("/jobs"))


def test_retrain_swaps_every_target_and_the_scores_change(
    clients: dict[str, Any], sample: Sample, tmp_path: Path
) -> None:
    targets = _targets(clients)
    for target in targets:  # start from the other data set so the scores must change
        target.check()
    first = retrain(_training(clients, "census_train.csv"), targets, ledger=Ledger(tmp_path / "l"))
    before = [_probabilities(t, sample) for t in targets]
    ledger = Ledger(tmp_path / "ledger.jsonl")
    result = retrain(_training(clients), targets, ledger=ledger, sample=sample)
    result.raise_for_status()
    assert [o.status for o in result.targets] == ["succeeded", "succeeded"]
    assert result.model != first.model
    for target, old in zip(targets, before, strict=True):
        assert strip_sas(target.current_model()) == result.model
        assert _probabilities(target, sample) != old
    entries = ledger.entries()
    assert {e.target for e in entries} == {t.key for t in targets}
    assert all(e.serving_model == result.model for e in entries)
    assert all(e.previous_model == first.model for e in entries)
    assert all("sig=" not in json.dumps(e.to_dict()) for e in entries)
    assert [s.name for s in result.steps] == [
        "check targets",
        "upload",
        "train",
        "evaluate",
        "deploy",
    ]
    arm_plan = result.targets[0].plan
    assert arm_plan is not None
    assert [op["op"] for op in arm_plan["jsonPatch"]] == ["test", "replace"]


def test_gate_rejection_deploys_nothing(clients: dict[str, Any], tmp_path: Path) -> None:
    targets = _targets(clients)
    for t in targets:
        t.check()
    before = [t.current_model() for t in targets]
    ledger = Ledger(tmp_path / "ledger.jsonl")
    result = retrain(
        _training(clients), targets, gate=Gate(thresholds={"AUC": 0.999}), ledger=ledger
    )
    assert [o.status for o in result.targets] == ["rejected", "rejected"]
    assert all("AUC" in (o.error or "") for o in result.targets)
    assert [t.current_model() for t in targets] == before
    assert [e.outcome for e in ledger.entries()] == ["rejected", "rejected"]
    with pytest.raises(GateRejected, match="AUC"):
        result.raise_for_status()


def test_must_beat_the_incumbent(clients: dict[str, Any], tmp_path: Path) -> None:
    targets = _targets(clients)[1:]
    ledger = Ledger(tmp_path / "ledger.jsonl")
    gate = Gate(beat_incumbent="AUC", margin=0.01)
    first = retrain(_training(clients, "census_train.csv"), targets, gate=gate, ledger=ledger)
    assert first.targets[0].status == "succeeded"  # no incumbent recorded: comparison skipped
    assert any(c.startswith("skip") for c in first.targets[0].gate_checks)
    again = retrain(_training(clients, "census_train.csv"), targets, gate=gate, ledger=ledger)
    assert again.targets[0].status == "rejected"
    assert "does not beat the incumbent" in (again.targets[0].error or "")


def test_dry_run_plans_without_changing_anything(
    clients: dict[str, Any], tmp_path: Path, emulator: Emulator
) -> None:
    targets = _targets(clients)
    for t in targets:
        t.check()
    before = [t.current_model() for t in targets]
    patches_before = sum(1 for r in emulator.requests if r.method == "PATCH")
    submits = _submits(emulator)
    gate = Gate(thresholds={"AUC": 0.99})
    result = retrain(
        _training(clients), targets, dry_run=True, gate=gate, ledger=Ledger(tmp_path / "l")
    )
    assert [o.status for o in result.targets] == ["dry-run", "dry-run"]
    assert _submits(emulator) == submits  # no training job, no upload
    assert [s.status for s in result.steps[1:4]] == ["skipped"] * 3
    assert result.targets[0].gate_checks == ("skip the gate: a dry run trains nothing",)
    assert [t.current_model() for t in targets] == before
    assert sum(1 for r in emulator.requests if r.method == "PATCH") == patches_before
    text = json.dumps(result.to_dict())
    assert "sig=REDACTED" in text or "REDACTED" in text
    assert "PATCH" in text
    arm_body = result.targets[0].plan["body"]  # type: ignore[index]
    assert set(arm_body["properties"]) == {"assets", "packageType"}


def test_default_endpoint_is_refused_before_any_training(
    clients: dict[str, Any], emulator: Emulator
) -> None:
    info = clients["info"]
    bad = ClassicTarget(
        clients["classic"], info.predictive_service, info.predictive_default_endpoint
    )
    submits = _submits(emulator)
    with pytest.raises(ConfigurationError, match="default endpoint"):
        retrain(_training(clients), [bad])
    assert _submits(emulator) == submits


def test_training_service_endpoint_is_refused(clients: dict[str, Any]) -> None:
    info = clients["info"]
    endpoint = clients["classic"].create_endpoint(info.training_service, "trainingextra")
    try:
        bad = ClassicTarget(clients["classic"], info.training_service, endpoint.name)
        with pytest.raises(ConfigurationError, match="no updatable resources"):
            bad.check()
    finally:
        clients["classic"].delete_endpoint(info.training_service, endpoint.name)


def test_rollback_puts_the_previous_model_back_and_records_it(
    clients: dict[str, Any], sample: Sample, tmp_path: Path
) -> None:
    target = _targets(clients)[0]
    ledger = Ledger(tmp_path / "ledger.jsonl")
    target.check()
    previous = strip_sas(target.current_model())
    scores_before = _probabilities(target, sample)
    result = retrain(_training(clients, "census_train.csv"), [target], ledger=ledger)
    if result.targets[0].status == "skipped":  # already served: deploy the other data's model
        result = retrain(_training(clients), [target], ledger=ledger)
        previous = result.targets[0].previous_model
    assert result.targets[0].status == "succeeded"
    outcome = rollback(target, ledger=ledger, store=clients["store"], sample=sample)
    assert outcome.status == "succeeded"
    assert strip_sas(target.current_model()) == previous
    last = ledger.entries()[-1]
    assert last.action == "rollback"
    assert last.serving_model == previous
    if previous == strip_sas(clients["info"].initial_model or ""):
        assert _probabilities(target, sample) == scores_before


def test_rollback_refuses_a_model_that_is_gone(clients: dict[str, Any], tmp_path: Path) -> None:
    target = _targets(clients)[1]
    store = clients["store"]
    ledger = Ledger(tmp_path / "ledger.jsonl")
    doomed = store.upload(
        b"not really a model", container="amlretrain-models", blob_name="gone/m.ilearner"
    )
    first = deploy(store.sas(doomed), [target], ledger=ledger)  # emulator only checks it exists
    assert first.targets[0].status == "succeeded", first.targets[0].error
    second = retrain(_training(clients), [target], ledger=ledger)
    assert second.targets[0].status == "succeeded", second.targets[0].error
    assert ledger.deployments(target.key)[-1].previous_model == doomed.url
    store.delete(doomed)
    before = target.current_model()
    with pytest.raises(ConfigurationError, match=r"cannot roll back to .* does not exist"):
        rollback(target, ledger=ledger, store=store)
    assert target.current_model() == before


def test_scoring_failure_after_the_swap_restores_the_previous_model(
    clients: dict[str, Any], faults: Faults, sample: Sample, tmp_path: Path
) -> None:
    target = _targets(clients)[1]
    target.check()
    previous = target.current_model()
    model = retrain(_training(clients, "census_train.csv"), [target], dry_run=True).model
    other = "census_new.csv" if strip_sas(previous) == model else "census_train.csv"
    ledger = Ledger(tmp_path / "ledger.jsonl")
    faults.add(route="rrs.execute", kind="status", status=500, count=None)
    result = retrain(_training(clients, other), [target], ledger=ledger, sample=sample)
    outcome = result.targets[0]
    assert outcome.status == "restored", outcome.error
    assert strip_sas(target.current_model()) == strip_sas(previous)
    entry = ledger.entries()[-1]
    assert entry.outcome == "restored"
    assert entry.serving_model == strip_sas(previous)
    with pytest.raises(Exception, match="restored"):
        result.raise_for_status()


def test_failed_long_running_operation_leaves_the_old_model(
    clients: dict[str, Any], faults: Faults, tmp_path: Path
) -> None:
    target = _targets(clients)[0]
    target.check()
    previous = target.current_model()
    ledger = Ledger(tmp_path / "ledger.jsonl")
    faults.add(route="arm.patch", kind="lro_fail", count=1)
    model = retrain(_training(clients, "census_train.csv"), [target], dry_run=True).model
    other = "census_new.csv" if strip_sas(previous) == model else "census_train.csv"
    result = retrain(_training(clients, other), [target], ledger=ledger)
    outcome = result.targets[0]
    assert outcome.status == "failed"
    assert "still serves its previous model" in (outcome.error or "")
    assert target.current_model() == previous
    assert ledger.entries()[-1].serving_model == strip_sas(previous)


def test_one_model_to_many_endpoints(clients: dict[str, Any], tmp_path: Path) -> None:
    info = clients["info"]
    classic: ClassicClient = clients["classic"]
    names = [f"fan{i}" for i in range(4)]
    for name in names:
        classic.create_endpoint(info.predictive_service, name)
    try:
        targets = [ClassicTarget(classic, info.predictive_service, n) for n in names]
        trained = retrain(_training(clients), targets[:1], ledger=Ledger(tmp_path / "a"))
        model = BlobRef.from_url(trained.model or "")
        model = clients["store"].sas(model)
        result = deploy(model, targets, ledger=Ledger(tmp_path / "b"), concurrency=3)
        statuses = {o.target: o.status for o in result.targets}
        assert statuses[targets[0].label] == "skipped"
        assert all(s == "succeeded" for label, s in statuses.items() if label != targets[0].label)
        assert "3 succeeded" in result.summary()
    finally:
        for name in names:
            classic.delete_endpoint(info.predictive_service, name)


def test_a_missing_model_is_refused_before_the_target_changes(
    clients: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    store = clients["store"]
    ghost = store.sas(
        store.ref("amlretrain-models", "ghost/never-written.ilearner"), expires_in=timedelta(days=1)
    )
    targets = _targets(clients)
    patches = sum(1 for r in emulator.requests if r.method == "PATCH")
    ledger = Ledger(tmp_path / "ledger.jsonl")
    with pytest.raises(ConfigurationError, match=r"ghost/never-written\.ilearner does not exist"):
        deploy(ghost, targets, ledger=ledger, store=store)
    assert sum(1 for r in emulator.requests if r.method == "PATCH") == patches
    assert not (tmp_path / "ledger.jsonl").exists()  # refused before the ledger was touched


def test_a_bare_model_url_gets_a_read_sas_and_a_dry_run_predicts_the_run(
    clients: dict[str, Any], emulator: Emulator, tmp_path: Path
) -> None:
    store = clients["store"]
    targets = _targets(clients)
    for target in targets:
        target.check()
    served = strip_sas(targets[1].current_model())
    assert served is not None
    copy = store.upload(
        store.download_bytes(BlobRef.from_url(served)),
        container="amlretrain-models",
        blob_name=f"bare/{tmp_path.name}.ilearner",
    )
    assert copy.sas_token == ""  # the URL retrain and history print
    plan = deploy(copy, targets, store=store, dry_run=True)
    assert [o.status for o in plan.targets] == ["dry-run", "dry-run"]
    assert "sig=REDACTED" in json.dumps(plan.targets[0].plan)  # the ARM target gets a SAS
    result = deploy(copy, targets, ledger=Ledger(tmp_path / "l.jsonl"), store=store)
    assert [o.status for o in result.targets] == ["succeeded", "succeeded"], [
        o.error for o in result.targets
    ]


def test_a_model_url_without_a_sas_and_no_store_is_refused(
    clients: dict[str, Any], emulator: Emulator
) -> None:
    store = clients["store"]
    ref = store.upload(b"x", container="amlretrain-models", blob_name="private/m.ilearner")
    with pytest.raises(ConfigurationError, match="storage refused a request without a SAS"):
        deploy(ref, _targets(clients)[:1], dry_run=True)


def test_arm_deployments_record_the_request_id(clients: dict[str, Any], tmp_path: Path) -> None:
    target = _targets(clients)[0]
    ledger = Ledger(tmp_path / "ledger.jsonl")
    result = retrain(_training(clients), [target], ledger=ledger)
    assert result.targets[0].status == "succeeded"
    (entry,) = ledger.entries()
    assert len(entry.request_ids) == 1
    assert len(entry.request_ids[0]) >= 32


def test_a_dry_run_writes_nothing_to_the_ledger(clients: dict[str, Any], tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    retrain(_training(clients), _targets(clients), dry_run=True, ledger=ledger)
    assert ledger.entries() == []


def test_one_transient_scoring_error_does_not_roll_a_target_back(
    clients: dict[str, Any], emulator: Emulator, faults: Faults, sample: Sample, tmp_path: Path
) -> None:
    targets = _targets(clients)
    for target in targets:
        target.check()
    faults.add(route="rrs.execute", kind="status", status=500, count=1)
    result = retrain(_training(clients), targets, ledger=Ledger(tmp_path / "l"), sample=sample)
    assert [o.status for o in result.targets] == ["succeeded", "succeeded"], [
        o.error for o in result.targets
    ]
    assert not result.split
    assert faults.rules[0].fired == 1


def test_a_run_that_ends_split_says_so(
    clients: dict[str, Any], emulator: Emulator, faults: Faults, sample: Sample, tmp_path: Path
) -> None:
    arm, classic = _targets(clients)
    for target in (arm, classic):
        target.check()
    # every scoring call of the classic endpoint fails: only it is restored
    endpoint = clients["classic"].get_endpoint(
        clients["info"].predictive_service, clients["info"].predictive_endpoint
    )
    assert endpoint.api_location
    faults.add(route="rrs.execute", kind="status", status=500, count=None)
    result = retrain(_training(clients), [classic], ledger=Ledger(tmp_path / "l"), sample=sample)
    faults.clear()
    assert result.targets[0].status == "restored"
    from amlretrain.result import RetrainResult

    mixed = RetrainResult(steps=(), targets=(result.targets[0], attrs_evolve_succeeded(result)))
    assert mixed.split and "SPLIT: 1 of 2 target(s) serve the new model" in mixed.summary()
    assert mixed.to_dict()["split"] is True


def attrs_evolve_succeeded(result: Any) -> Any:
    import attrs

    return attrs.evolve(result.targets[0], target="other", key="k", status="succeeded")


def test_targets_keep_no_state_between_calls(
    clients: dict[str, Any], sample: Sample, tmp_path: Path
) -> None:
    targets = _targets(clients)
    before = [dict(vars(t)) for t in targets]
    states = [t.check() for t in targets]
    result = retrain(_training(clients), targets, ledger=Ledger(tmp_path / "l"), sample=sample)
    result.raise_for_status()
    for target in targets:
        _probabilities(target, sample)
    assert [dict(vars(t)) for t in targets] == before  # no attribute written, none added
    # A state is a value: what the target served when it was read, not what it serves now.
    assert all(strip_sas(s.model) != result.model for s in states)
    assert all(strip_sas(t.current_model()) == result.model for t in targets)
    assert all("sig=" not in repr(s) for s in states)
