"""Shadow candidates against the emulator, judged from the emulator's own state.

A classic candidate endpoint is made on the incumbent's service, serves the new model
(what the emulator's endpoint references, and what its scores show), and is gone after
delete_candidate; one a crash left behind is deleted by reconcile (unless a run holds
its incumbent's lease); the endpoint limit refuses one cleanly, leaving nothing; a
resumed run finds its candidate again. A New (ARM) candidate needs the storage key and
the commitment plan when the emulator is strict: refused without them before anything is
written or sent, created and deleted with them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from amlretrain.blobs import BlobRef
from amlretrain.candidates import (
    ARM_SERVICE,
    CLASSIC_ENDPOINT,
    create_candidate,
    delete_candidate,
    leftover_candidates,
)
from amlretrain.emulator import Emulator, learner
from amlretrain.emulator.state import trained_model_asset
from amlretrain.errors import ConfigurationError, ConflictError, LedgerError
from amlretrain.ledger import Ledger, strip_sas
from amlretrain.reconciliation import reconcile
from amlretrain.records import RolloutEvent
from amlretrain.storage import parse_connection_string
from amlretrain.studio.targets import ArmTarget, ClassicTarget
from amlretrain.targets import Sample

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PLAN = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.MachineLearning/commitmentPlans/p"
HELD_OUT = (resources.files("amlretrain.emulator") / "data" / "census_train.csv").read_bytes()


def _sample(n: int = 20) -> Sample:
    lines = HELD_OUT.decode().strip().splitlines()
    return Sample(
        columns=lines[0].split(",")[:-1], rows=[line.split(",")[:-1] for line in lines[1 : n + 1]]
    )


def _probabilities(result: Any) -> list[float]:
    return [float(r[-1]) for r in result.first.rows]


def _endpoints(emulator: Emulator) -> dict[str, str]:
    """Each endpoint of the predictive service and the blob it references (state)."""
    info = emulator.info
    with emulator.state.locked() as state:
        svc = state.workspaces[info.workspace_id.lower()].services[str(info.predictive_service)]
        out = {}
        for name, ep in svc.endpoints.items():
            loc = ep.resources[0]["Location"]
            out[name] = strip_sas(loc["BaseLocation"].rstrip("/") + "/" + loc["RelativeLocation"])
        return out


def _arm_served(emulator: Emulator, name: str) -> str | None:
    """The model the emulator's ARM service ``name`` references (None: no such service)."""
    info = emulator.info
    key = (info.subscription_id.lower(), info.resource_group.lower(), name.lower())
    with emulator.state.locked() as state:
        svc = state.arm.get(key)
        if svc is None:
            return None
        found = trained_model_asset(svc.properties)
        assert found is not None
        return strip_sas(found[1]["locationInfo"]["uri"])


def _candidate_events(ledger: Ledger) -> list[RolloutEvent]:
    return [e for e in ledger.history().rollout_events() if e.stage == "candidate"]


@pytest.fixture
def new_model(clients: dict[str, Any], emulator: Emulator) -> BlobRef:
    """A model whose scores are the initial model's shifted by 0.25 (tell-tale)."""
    store = clients["store"]
    initial = store.download_bytes(str(emulator.info.initial_model))
    shifted = learner.with_behaviour(initial, score_shift=0.25)
    ref = store.upload(
        shifted, container="models", blob_name=f"cand-{uuid.uuid4().hex[:8]}.ilearner"
    )
    sas: BlobRef = store.sas(ref, expires_in=timedelta(hours=2))
    return sas


@pytest.fixture
def incumbent(clients: dict[str, Any]) -> ClassicTarget:
    info = clients["info"]
    return ClassicTarget(clients["classic"], info.predictive_service, info.predictive_endpoint)


@pytest.fixture
def arm_incumbent(clients: dict[str, Any]) -> ArmTarget:
    info = clients["info"]
    return ArmTarget(
        clients["arm"], info.resource_group, info.arm_service_name, verify_interval=0.1
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.jsonl")


@pytest.fixture
def strict(emulator: Emulator) -> Iterator[None]:
    emulator.strict_arm_create = True
    try:
        yield
    finally:
        emulator.strict_arm_create = False


def test_a_classic_candidate_serves_the_new_model_scores_and_is_deleted(
    emulator: Emulator, incumbent: ClassicTarget, new_model: BlobRef, ledger: Ledger
) -> None:
    before = _endpoints(emulator)
    run = "run-" + uuid.uuid4().hex[:8]
    candidate = create_candidate(incumbent, new_model, run_id=run, ledger=ledger)
    try:
        assert candidate.kind == CLASSIC_ENDPOINT and not candidate.reused
        assert candidate.name not in before
        now = _endpoints(emulator)
        assert now[candidate.name] == new_model.url  # the emulator's own endpoint
        assert (
            now[str(emulator.info.predictive_endpoint)]
            == before[str(emulator.info.predictive_endpoint)]
        )  # the incumbent did not change
        assert candidate.where == {
            "workspace_id": emulator.info.workspace_id,
            "web_service_id": str(emulator.info.predictive_service),
            "endpoint": candidate.name,
        }
        sample = _sample()
        live = _probabilities(incumbent.score(sample))
        shadow = _probabilities(candidate.target.score(sample, candidate.state))
        for p, q in zip(live, shadow, strict=True):
            assert q == pytest.approx(min(1.0, p + 0.25))
    finally:
        delete_candidate(candidate, run_id=run, ledger=ledger)
    assert _endpoints(emulator) == before  # gone from the emulator
    events = _candidate_events(ledger)
    assert [e.verdict for e in events] == ["started", "done"]
    assert all(e.evidence["where"] == candidate.where for e in events)
    assert events[0].target == incumbent.key and events[0].model == new_model.url
    assert "sig=" not in ledger.backend.read_bytes().decode()
    assert leftover_candidates(ledger.history()) == []


def test_a_candidate_a_crash_left_behind_is_deleted_by_reconcile(
    emulator: Emulator, incumbent: ClassicTarget, new_model: BlobRef, ledger: Ledger
) -> None:
    before = _endpoints(emulator)
    run = "run-" + uuid.uuid4().hex[:8]
    candidate = create_candidate(incumbent, new_model, run_id=run, ledger=ledger)
    # the run "crashes": the candidate is never deleted
    assert candidate.name in _endpoints(emulator)
    [left] = leftover_candidates(ledger.history())
    assert left.where == candidate.where and left.run_id == run

    with ledger.locks.hold(incumbent.key, run_id=run):  # the run still holds its lease
        report = reconcile([incumbent], ledger=ledger, run_id="run-reconcile")
    [held] = report.candidates
    assert held.status == "skipped" and "leased" in held.message
    assert candidate.name in _endpoints(emulator)  # not deleted under a live run

    report = reconcile([incumbent], ledger=ledger, run_id="run-reconcile")
    [cleaned] = report.candidates
    assert cleaned.status == "deleted" and cleaned.where == candidate.where
    assert report.to_dict()["candidates"][0]["status"] == "deleted"
    assert "candidate classic-endpoint" in report.summary()
    assert _endpoints(emulator) == before  # gone from the emulator's state
    last = _candidate_events(ledger)[-1]
    assert last.verdict == "done" and last.run_id == run
    assert last.evidence["reconciled"] is True and last.evidence["reconciledBy"] == "run-reconcile"
    assert leftover_candidates(ledger.history()) == []
    assert reconcile([incumbent], ledger=ledger).candidates == ()  # nothing left


def test_the_endpoint_limit_refuses_a_candidate_and_leaves_nothing(
    emulator: Emulator, incumbent: ClassicTarget, new_model: BlobRef, ledger: Ledger
) -> None:
    before = _endpoints(emulator)
    limit = emulator.max_endpoints
    emulator.max_endpoints = len(before)
    try:
        with pytest.raises(ConflictError) as caught:
            create_candidate(incumbent, new_model, run_id="run-full", ledger=ledger)
    finally:
        emulator.max_endpoints = limit
    assert caught.value.status == 409 and "EndpointLimitReached" in str(caught.value)
    assert _endpoints(emulator) == before
    events = _candidate_events(ledger)
    assert [e.verdict for e in events] == ["started", "failed"]
    assert events[1].evidence["removed"] is True
    assert "EndpointLimitReached" in events[1].evidence["error"]
    assert leftover_candidates(ledger.history()) == []


def test_a_resumed_run_reuses_its_candidate_and_points_it_at_the_model_again(
    emulator: Emulator,
    clients: dict[str, Any],
    incumbent: ClassicTarget,
    new_model: BlobRef,
    ledger: Ledger,
) -> None:
    before = _endpoints(emulator)
    run = "run-" + uuid.uuid4().hex[:8]
    first = create_candidate(incumbent, new_model, run_id=run, ledger=ledger)
    try:
        again = create_candidate(incumbent, new_model, run_id=run, ledger=ledger)
        assert again.reused and again.name == first.name
        assert len(_endpoints(emulator)) == len(before) + 1  # one candidate, not two
        # something pointed it elsewhere meanwhile: the resumed run PATCHes it back
        initial = clients["store"].sas(
            str(emulator.info.initial_model), expires_in=timedelta(hours=1)
        )
        svc = str(emulator.info.predictive_service)
        clients["classic"].update_trained_model(
            svc, first.name, str(emulator.info.predictive_resource_name), initial
        )
        assert _endpoints(emulator)[first.name] == initial.url
        third = create_candidate(incumbent, new_model, run_id=run, ledger=ledger)
        assert third.reused and _endpoints(emulator)[first.name] == new_model.url
        other = create_candidate(incumbent, new_model, run_id=run + "x", ledger=ledger)
        assert other.name != first.name  # another run: another candidate
        delete_candidate(other, run_id=run + "x", ledger=ledger)
    finally:
        delete_candidate(first, run_id=run, ledger=ledger)
    assert _endpoints(emulator) == before
    assert leftover_candidates(ledger.history()) == []


def test_an_arm_candidate_is_refused_without_the_storage_key_and_plan_before_anything(
    emulator: Emulator, arm_incumbent: ArmTarget, new_model: BlobRef, ledger: Ledger, strict: None
) -> None:
    emulator.clear_requests()
    for key, plan in ((None, None), ("k", None), (None, PLAN)):
        with pytest.raises(ConfigurationError) as caught:
            create_candidate(
                arm_incumbent,
                new_model,
                run_id="run-arm",
                ledger=ledger,
                arm_storage_key=key,
                arm_commitment_plan=plan,
            )
        text = str(caught.value)
        assert ("arm_storage_key_env" in text) == (key is None)
        assert ("arm_commitment_plan" in text) == (plan is None)
    with pytest.raises(ConfigurationError, match="commitmentPlans"):
        create_candidate(
            arm_incumbent,
            new_model,
            run_id="run-arm",
            ledger=ledger,
            arm_storage_key="k",
            arm_commitment_plan="not-a-plan",
        )
    assert emulator.requests == []  # nothing sent
    assert ledger.backend.read_bytes() == b""  # nothing written


def test_an_arm_candidate_is_created_with_the_storage_key_and_plan_and_deleted(
    emulator: Emulator,
    clients: dict[str, Any],
    arm_incumbent: ArmTarget,
    new_model: BlobRef,
    ledger: Ledger,
    strict: None,
) -> None:
    info = emulator.info
    key = parse_connection_string(info.storage_connection_string)["AccountKey"]
    incumbent_model = _arm_served(emulator, str(info.arm_service_name))
    run = "run-" + uuid.uuid4().hex[:8]
    candidate = create_candidate(
        arm_incumbent,
        new_model,
        run_id=run,
        ledger=ledger,
        arm_storage_key=key,
        arm_commitment_plan=PLAN,
    )
    try:
        assert candidate.kind == ARM_SERVICE
        assert _arm_served(emulator, candidate.name) == new_model.url
        assert _arm_served(emulator, str(info.arm_service_name)) == incumbent_model
        assert candidate.where["id"] == clients["arm"].resource_id(
            info.resource_group, candidate.name
        )
        sample = _sample()
        live = _probabilities(arm_incumbent.score(sample))
        shadow = _probabilities(candidate.target.score(sample, candidate.state))
        for p, q in zip(live, shadow, strict=True):
            assert q == pytest.approx(min(1.0, p + 0.25))
        again = create_candidate(
            arm_incumbent,
            new_model,
            run_id=run,
            ledger=ledger,
            arm_storage_key=key,
            arm_commitment_plan=PLAN,
        )
        assert again.reused and again.name == candidate.name
    finally:
        delete_candidate(candidate, run_id=run, ledger=ledger)
    assert _arm_served(emulator, candidate.name) is None  # gone from the emulator
    text = ledger.backend.read_bytes().decode()
    assert key not in text and "sig=" not in text
    assert [e.verdict for e in _candidate_events(ledger)] == ["started", "started", "done"]
    assert leftover_candidates(ledger.history()) == []


def test_an_arm_candidate_left_behind_is_deleted_by_reconcile(
    emulator: Emulator, arm_incumbent: ArmTarget, new_model: BlobRef, ledger: Ledger, strict: None
) -> None:
    info = emulator.info
    key = parse_connection_string(info.storage_connection_string)["AccountKey"]
    run = "run-" + uuid.uuid4().hex[:8]
    candidate = create_candidate(
        arm_incumbent,
        new_model,
        run_id=run,
        ledger=ledger,
        arm_storage_key=key,
        arm_commitment_plan=PLAN,
    )
    assert _arm_served(emulator, candidate.name) == new_model.url
    report = reconcile([arm_incumbent], ledger=ledger)
    assert [(c.kind, c.status) for c in report.candidates] == [(ARM_SERVICE, "deleted")]
    assert _arm_served(emulator, candidate.name) is None
    assert leftover_candidates(ledger.history()) == []


def test_a_ledger_that_cannot_be_written_stops_the_candidate_before_it_is_made(
    emulator: Emulator, incumbent: ClassicTarget, new_model: BlobRef, tmp_path: Path
) -> None:
    (tmp_path / "ledger.jsonl").mkdir()  # cannot be opened as a file
    before = _endpoints(emulator)
    emulator.clear_requests()
    with pytest.raises(LedgerError):
        create_candidate(
            incumbent, new_model, run_id="run-x", ledger=Ledger(tmp_path / "ledger.jsonl")
        )
    assert _endpoints(emulator) == before
    assert [r.method for r in emulator.requests if r.method != "GET"] == []  # reads only
