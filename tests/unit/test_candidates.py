"""Shadow candidates without a service: names, leftovers read from handwritten ledgers,
the ARM settings, refusals before anything is written or sent, leftover deletion with
stand-in clients."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from amlretrain.blobs import BlobRef
from amlretrain.candidates import (
    ALREADY_GONE,
    ARM_SERVICE,
    CLASSIC_ENDPOINT,
    DELETED,
    arm_candidate_settings,
    candidate_name,
    create_candidate,
    delete_leftovers,
    leftover_candidates,
)
from amlretrain.errors import ConfigurationError, NotFoundError, ServiceError
from amlretrain.ledger import Ledger
from amlretrain.studio.targets import ArmTarget

MODEL = "https://acct.blob.core.windows.net/models/m.ilearner"
WS = "8a1f2c3d4e5f4a5b8c9d0e1f2a3b4c5d"
SVC = "0123456789abcdef0123456789abcdef"
ARM_ID = (
    "/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.MachineLearning/"
    "webServices/cand0123"
)
PLAN = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearning/commitmentPlans/p"


# -- names -----------------------------------------------------------------------------


def test_a_name_is_24_lower_case_letters_or_digits_and_starts_with_cand() -> None:
    for run in ("run-1", "run-20261201T000000000000Z-abcdef", "", "R" * 500, "ü"):
        name = candidate_name(run, MODEL)
        assert re.fullmatch(r"[a-z0-9]{1,24}", name), name
        assert len(name) == 24 and name.startswith("cand")


def test_a_name_is_the_same_when_asked_again_and_ignores_the_sas() -> None:
    assert candidate_name("run-1", MODEL) == candidate_name("run-1", MODEL)
    assert candidate_name("run-1", MODEL) == candidate_name("run-1", MODEL + "?sv=1&sig=abc")
    key = "classic:ws/svc/ep"
    assert candidate_name("run-1", MODEL, incumbent=key) == candidate_name(
        "run-1", MODEL + "?sig=x", incumbent=key
    )


def test_a_name_differs_per_model_run_and_incumbent() -> None:
    names = {
        candidate_name("run-1", MODEL),
        candidate_name("run-2", MODEL),
        candidate_name("run-1", MODEL.replace("m.ilearner", "n.ilearner")),
        candidate_name("run-1", MODEL, incumbent="classic:ws/svc/a"),
        candidate_name("run-1", MODEL, incumbent="classic:ws/svc/b"),
    }
    assert len(names) == 5
    many = {candidate_name(f"run-{i}", MODEL) for i in range(2000)}
    assert len(many) == 2000


# -- the ARM settings ------------------------------------------------------------------


def test_the_storage_key_comes_from_the_variable_the_setting_names() -> None:
    section = {"arm_storage_key_env": "MY_KEY", "arm_commitment_plan": PLAN}
    assert arm_candidate_settings(section, environ={"MY_KEY": "secret"}) == ("secret", PLAN)
    assert arm_candidate_settings({}, environ={}) == (None, None)
    with pytest.raises(ConfigurationError, match="MY_KEY") as caught:
        arm_candidate_settings(section, environ={})
    assert "arm_storage_key_env" in str(caught.value)
    with pytest.raises(ConfigurationError, match="arm_commitment_plan"):
        arm_candidate_settings({"arm_commitment_plan": 3}, environ={})


class _Exploding:
    """A client that fails the test if anything is asked of it."""

    subscription_id = "sub-1"
    workspace_id = WS

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"nothing may be sent: {name} was called")


def test_an_arm_candidate_without_key_or_plan_is_refused_before_anything(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    target = ArmTarget(_Exploding(), "rg", "svc")  # type: ignore[arg-type]
    model = BlobRef.from_url(MODEL)
    cases = [
        ({}, ("arm_storage_key_env", "arm_commitment_plan")),
        ({"arm_storage_key": "k"}, ("arm_commitment_plan",)),
        ({"arm_commitment_plan": PLAN}, ("arm_storage_key_env",)),
        ({"arm_storage_key": "k", "arm_commitment_plan": "plan-1"}, ("commitmentPlans",)),
    ]
    for kwargs, named in cases:
        with pytest.raises(ConfigurationError) as caught:
            create_candidate(target, model, run_id="r", ledger=ledger, **kwargs)
        for word in named:
            assert word in str(caught.value)
    assert not (tmp_path / "ledger.jsonl").exists()


def test_a_target_of_another_kind_is_refused(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    with pytest.raises(ConfigurationError, match="ClassicTarget"):
        create_candidate(object(), BlobRef.from_url(MODEL), run_id="r", ledger=ledger)  # type: ignore[arg-type]
    assert not (tmp_path / "ledger.jsonl").exists()


# -- leftovers from handwritten ledgers ------------------------------------------------


def _line(verdict: str, where: dict[str, str], *, kind: str = CLASSIC_ENDPOINT,
          run: str = "run-a", n: int = 0, **evidence: Any) -> str:  # fmt: skip
    return json.dumps(
        {
            "kind": "rollout",
            "schema": 2,
            "id": f"20261201T0000000000{n:02d}Z-abcdef",
            "time": f"2026-12-01T00:00:{n:02d}.000Z",
            "runId": run,
            "stage": "candidate",
            "verdict": verdict,
            "target": "classic:ws/svc/live",
            "model": MODEL,
            "message": None,
            "evidence": {"kind": kind, "where": where, **evidence},
        }
    )


def _ledger(tmp_path: Path, *lines: str) -> Ledger:
    path = tmp_path / "ledger.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return Ledger(path)


CLASSIC_A = {"workspace_id": WS, "web_service_id": SVC, "endpoint": "cand000a"}
CLASSIC_B = {"workspace_id": WS, "web_service_id": SVC, "endpoint": "cand000b"}
ARM_A = {"id": ARM_ID, "resource_group": "rg", "name": "cand0123"}


def test_started_without_done_is_a_leftover_and_done_closes_it(tmp_path: Path) -> None:
    ledger = _ledger(
        tmp_path,
        _line("started", CLASSIC_A, n=1),
        _line("started", CLASSIC_B, n=2),
        _line("done", CLASSIC_A, n=3),
        _line("started", ARM_A, kind=ARM_SERVICE, run="run-b", n=4),
    )
    found = leftover_candidates(ledger.history())
    assert [(f.kind, f.where, f.run_id) for f in found] == [
        (CLASSIC_ENDPOINT, CLASSIC_B, "run-a"),
        (ARM_SERVICE, ARM_A, "run-b"),
    ]
    assert found[0].model == MODEL and found[0].target == "classic:ws/svc/live"
    assert found[1].key == "arm:" + ARM_ID.lower()


def test_a_failure_is_a_leftover_unless_what_it_made_was_removed(tmp_path: Path) -> None:
    ledger = _ledger(
        tmp_path,
        _line("started", CLASSIC_A, n=1),
        _line("failed", CLASSIC_A, n=2, removed=True, error="409"),
        _line("started", CLASSIC_B, n=3),
        _line("failed", CLASSIC_B, n=4, removed=False, error="timeout"),
    )
    found = leftover_candidates(ledger.history())
    assert [(f.where["endpoint"], f.verdict) for f in found] == [("cand000b", "failed")]


def test_a_resumed_run_that_starts_again_after_done_is_open_again(tmp_path: Path) -> None:
    ledger = _ledger(
        tmp_path,
        _line("started", CLASSIC_A, n=1),
        _line("done", CLASSIC_A, n=2),
        _line("started", CLASSIC_A, n=3),
    )
    assert [f.where for f in leftover_candidates(ledger.history())] == [CLASSIC_A]


def test_ids_are_compared_without_case_and_unreadable_records_are_skipped(tmp_path: Path) -> None:
    upper = {**CLASSIC_A, "workspace_id": WS.upper()}
    ledger = _ledger(
        tmp_path,
        _line("started", CLASSIC_A, n=1),
        _line("done", upper, n=2),
        _line("started", {"endpoint": "x"}, n=3),  # no workspace: unreadable
        _line("started", CLASSIC_B, kind="something-else", n=4),
        _line("passed", CLASSIC_B, n=5),  # not a candidate verdict
        "{not json",
    )
    assert leftover_candidates(ledger.history()) == []


# -- deleting leftovers with stand-in clients ----------------------------------------


class _Classic:
    def __init__(self, workspace_id: str, existing: set[str], fail: bool = False) -> None:
        self.workspace_id = workspace_id
        self.existing = existing
        self.fail = fail
        self.deleted: list[str] = []

    def get_endpoint(self, service: str, name: str) -> object:
        if self.fail:
            raise ServiceError("the service is down", status=503)
        if name not in self.existing:
            raise NotFoundError("no such endpoint", status=404)
        return object()

    def delete_endpoint(self, service: str, name: str) -> None:
        self.existing.discard(name)
        self.deleted.append(name)


def test_leftovers_are_deleted_by_the_client_of_their_workspace(tmp_path: Path) -> None:
    other = {**CLASSIC_A, "workspace_id": "another-workspace", "endpoint": "cand000c"}
    ledger = _ledger(
        tmp_path,
        _line("started", CLASSIC_A, n=1),
        _line("started", CLASSIC_B, n=2),
        _line("started", other, n=3),
        _line("started", ARM_A, kind=ARM_SERVICE, n=4),
    )
    client = _Classic(WS.upper(), {"cand000a"})
    results = delete_leftovers(
        ledger.history(), ledger=ledger, classic=client, arm=None, run_id="run-r"
    )
    assert [(left.where.get("endpoint") or left.where["name"], r) for left, r in results] == [
        ("cand000a", DELETED),
        ("cand000b", ALREADY_GONE),
        ("cand000c", "skipped: no classic client of workspace another-workspace"),
        ("cand0123", "skipped: no ARM client of subscription sub-1"),
    ]
    assert client.deleted == ["cand000a"]
    left = leftover_candidates(ledger.history())
    assert [x.where.get("endpoint") or x.where["name"] for x in left] == ["cand000c", "cand0123"]
    done = [e for e in ledger.history().rollout_events() if e.verdict == "done"]
    assert [e.evidence["result"] for e in done] == [DELETED, ALREADY_GONE]
    assert {e.run_id for e in done} == {"run-a"}  # recorded under the run that made it
    assert all(e.evidence["reconciledBy"] == "run-r" for e in done)


def test_a_leftover_that_cannot_be_read_stays_a_leftover(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, _line("started", CLASSIC_A, n=1))
    results = delete_leftovers(
        ledger.history(), ledger=ledger, classic=[_Classic(WS, set(), fail=True)], arm=[]
    )
    [(_, result)] = results
    assert result.startswith("failed: ") and "503" in result
    assert len(leftover_candidates(ledger.history())) == 1
