"""Retention: what ``prune`` keeps (and why), what it deletes (and on what evidence)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from amlretrain.blobs import BlobRef
from amlretrain.cli import main
from amlretrain.errors import ConfigurationError, ConflictError
from amlretrain.ledger import Intent, Ledger, LedgerEntry
from amlretrain.retention import PrunePlan, execute, plan_prune, prune
from amlretrain.storage import BlobStore
from tests.conftest import REPO

ACCOUNT = "https://acct.blob.core.windows.net"
A = "arm:/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearning/webServices/a"
B = "classic:ws/svc/b"


def m(name: str, account: str = ACCOUNT) -> str:
    return f"{account}/amlretrain-models/{name}/model.ilearner"


class RecordingStore(BlobStore):
    """A BlobStore of ``ACCOUNT`` whose deletes are recorded, not sent."""

    def __init__(self) -> None:
        super().__init__(ACCOUNT)
        self.deleted: list[str] = []

    def delete(self, blob: BlobRef | str) -> None:
        self.deleted.append(blob.url if isinstance(blob, BlobRef) else blob)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.jsonl")


def deploy(ledger: Ledger, target: str, old: str | None, new: str, **kw: Any) -> LedgerEntry:
    entry: LedgerEntry = ledger.append(
        LedgerEntry.new(
            target=target,
            action=kw.pop("action", "deploy"),
            outcome=kw.pop("outcome", "succeeded"),
            previous_model=old,
            new_model=new,
            serving_model=kw.pop("serving", new),
            **kw,
        )
    )
    return entry


def reject(ledger: Ledger, target: str, serving: str, new: str) -> None:
    deploy(ledger, target, serving, new, action="gate", outcome="rejected", serving=serving)


def history(ledger: Ledger, target: str, *names: str) -> None:
    """Deploy ``names[1:]`` in turn to a target serving ``names[0]``."""
    for old, new in itertools.pairwise(names):
        deploy(ledger, target, m(old), m(new))


def kinds(plan: PrunePlan) -> dict[str, list[str]]:
    """model name -> the kinds of its reasons."""
    return {k.model.split("/")[-2]: [r.kind for r in k.reasons] for k in plan.kept}


def deleted(plan: PrunePlan) -> list[str]:
    """The names of the models the plan deletes, sorted (their order is by last use)."""
    return sorted(p.model.split("/")[-2] for p in plan.delete)


def test_the_served_model_its_last_n_and_the_rollback_target_are_kept(ledger: Ledger) -> None:
    history(ledger, A, "m0", "m1", "m2", "m3", "m4")
    plan = plan_prune(ledger, keep=2, store=RecordingStore())
    assert kinds(plan) == {"m3": ["recent", "rollback"], "m4": ["served", "recent"]}
    assert deleted(plan) == ["m0", "m1", "m2"]
    assert plan.foreign == ()


def test_keep_one_keeps_the_rollback_target_by_its_own_rule(ledger: Ledger) -> None:
    history(ledger, A, "m0", "m1", "m2")
    plan = plan_prune(ledger, keep=1)
    assert kinds(plan) == {"m1": ["rollback"], "m2": ["served", "recent"]}
    (reason,) = plan.kept[0].reasons
    assert reason.target == A and "rollback" in reason.detail
    assert deleted(plan) == ["m0"]


def test_the_rollback_target_goes_only_when_allowed(ledger: Ledger) -> None:
    history(ledger, A, "m0", "m1", "m2")
    plan = plan_prune(ledger, keep=1, allow_rollback_loss=True)
    assert kinds(plan) == {"m2": ["served", "recent"]}
    assert deleted(plan) == ["m0", "m1"]
    lost = {p.model.split("/")[-2]: p.rollback_lost for p in plan.delete}
    assert lost == {"m0": (), "m1": (A,)}


def test_after_a_rollback_the_model_rolled_away_from_is_the_rollback_target(
    ledger: Ledger,
) -> None:
    history(ledger, A, "m0", "m1", "m2")
    deploy(ledger, A, m("m2"), m("m1"), action="rollback")
    plan = plan_prune(ledger, keep=1)
    assert kinds(plan) == {"m1": ["served", "recent"], "m2": ["rollback"]}
    assert deleted(plan) == ["m0"]


def test_a_target_with_an_open_intent_keeps_every_model_it_touched(ledger: Ledger) -> None:
    history(ledger, A, "m0", "m1", "m2", "m3")
    ledger.append(
        Intent.new(run_id="r", target=A, action="deploy", previous_model=m("m3"), new_model=m("m4"))
    )
    plan = plan_prune(ledger, keep=1)
    assert deleted(plan) == []
    assert all("open" in k for k in kinds(plan).values())
    assert set(kinds(plan)) == {"m0", "m1", "m2", "m3", "m4"}
    assert "reconcile" in plan.kept[0].reasons[0].detail


def test_a_target_whose_latest_outcome_is_unknown_keeps_everything(ledger: Ledger) -> None:
    history(ledger, A, "m0", "m1", "m2", "m3")
    deploy(ledger, A, m("m3"), m("m4"), outcome="unknown", serving=None)
    history(ledger, B, "b0", "b1", "b2")
    plan = plan_prune(ledger, keep=1)
    assert set(kinds(plan)) == {"m0", "m1", "m2", "m3", "m4", "b1", "b2"}
    assert deleted(plan) == ["b0"]  # the other target is judged on its own


def test_a_shared_model_stays_while_either_target_needs_it(ledger: Ledger) -> None:
    history(ledger, A, "m0", "m1", "m2", "m3")
    deploy(ledger, B, m("b0"), m("m1"))  # B serves A's old model
    plan = plan_prune(ledger, keep=1)
    assert kinds(plan)["m1"] == ["served", "recent"]
    assert [r.target for r in plan.kept[1].reasons] == [B, B]
    assert {u.target for u in plan.kept[1].used_by} == {A, B}

    history(ledger, B, "m1", "b2", "b3")  # now neither needs it
    plan = plan_prune(ledger, keep=1)
    assert "m1" in deleted(plan)
    (shared,) = [p for p in plan.delete if p.model == m("m1")]
    assert {u.target for u in shared.used_by} == {A, B}
    assert all(u.served and u.last_used for u in shared.used_by)


def test_never_deployed_models_count_as_the_targets_history(ledger: Ledger) -> None:
    history(ledger, A, "m0", "m1")
    reject(ledger, A, m("m1"), m("old-reject"))
    history(ledger, A, "m1", "m2", "m3")
    reject(ledger, A, m("m3"), m("new-reject"))
    deploy(ledger, A, m("m3"), m("failed"), outcome="failed", serving=m("m3"))
    plan = plan_prune(ledger, keep=1)
    assert kinds(plan) == {
        "failed": ["recent"],
        "m2": ["rollback"],
        "m3": ["served", "recent"],
        "new-reject": ["recent"],
    }
    assert deleted(plan) == ["m0", "m1", "old-reject"]
    (old,) = [p for p in plan.delete if "old-reject" in p.model]
    assert old.used_by[0].served is False


def test_a_target_never_deployed_to_keeps_everything(ledger: Ledger) -> None:
    reject(ledger, A, m("m0"), m("r1"))
    reject(ledger, A, m("m0"), m("r2"))
    plan = plan_prune(ledger, keep=1)
    assert set(kinds(plan)) == {"m0", "r1", "r2"} and deleted(plan) == []


def test_a_history_shorter_than_keep_keeps_everything(ledger: Ledger) -> None:
    history(ledger, A, "m0", "m1", "m2")
    assert deleted(plan_prune(ledger, keep=3)) == []
    assert deleted(plan_prune(ledger, keep=2)) == ["m0"]


def test_models_on_another_account_are_reported_not_deleted(ledger: Ledger) -> None:
    other = "https://other.blob.core.windows.net"
    deploy(ledger, A, m("f0", other), m("f1", other))
    deploy(ledger, A, m("f1", other), m("m2"))
    history(ledger, A, "m2", "m3", "m4")
    store = RecordingStore()
    plan = plan_prune(ledger, keep=1, store=store)
    assert {p.model for p in plan.foreign} == {m("f0", other), m("f1", other)}
    assert deleted(plan) == ["m2"]
    report = execute(plan, store, ledger=ledger)
    assert store.deleted == [m("m2")] and report.deleted == (m("m2"),)
    assert "not deleted" in report.summary()
    assert {p["model"] for p in report.to_dict()["foreign"]} == {m("f0", other), m("f1", other)}


@pytest.mark.parametrize("keep", [0, -1, True, 1.5, "2"])
def test_keep_below_one_or_not_an_integer_is_refused(ledger: Ledger, keep: Any) -> None:
    history(ledger, A, "m0", "m1", "m2")
    store = RecordingStore()
    with pytest.raises(ConfigurationError, match=r"^keep: must be an integer"):
        prune(ledger, store, keep=keep)
    assert store.deleted == []


def test_an_unreadable_ledger_is_refused_before_anything_is_deleted(
    ledger: Ledger, tmp_path: Path
) -> None:
    history(ledger, A, "m0", "m1", "m2")
    path = tmp_path / "ledger.jsonl"
    path.write_text(path.read_text() + "{not json\n")
    store = RecordingStore()
    with pytest.raises(ConfigurationError, match="unreadable line"):
        prune(ledger, store, keep=1)
    assert store.deleted == []


def test_a_dry_run_deletes_nothing_and_says_so(ledger: Ledger) -> None:
    history(ledger, A, "m0", "m1", "m2")
    store = RecordingStore()
    report = prune(ledger, store, keep=1, dry_run=True)
    assert store.deleted == [] and report.dry_run and report.deleted == ()
    assert [p["model"] for p in report.to_dict()["delete"]] == [m("m0")]
    assert "nothing deleted" in report.summary()
    report = prune(ledger, store, keep=1)
    assert store.deleted == [m("m0")] and report.deleted == (m("m0"),)


def test_a_plan_is_refused_when_the_ledger_changed_since(ledger: Ledger) -> None:
    history(ledger, A, "m0", "m1", "m2")
    store = RecordingStore()
    plan = plan_prune(ledger, keep=1, store=store)
    history(ledger, A, "m2", "m0")  # another run deploys the model planned for deletion
    with pytest.raises(ConflictError, match="ledger changed"):
        execute(plan, store, ledger=ledger)
    assert store.deleted == []


def test_a_plan_made_for_another_store_is_refused(ledger: Ledger) -> None:
    history(ledger, A, "m0", "m1", "m2")
    plan = plan_prune(ledger, keep=1)  # without a store: ownership never judged
    store = RecordingStore()
    with pytest.raises(ConfigurationError, match="plan again"):
        execute(plan, store)
    assert store.deleted == []


def test_urls_differing_only_in_host_case_are_one_model(ledger: Ledger) -> None:
    history(ledger, A, "m0", "m1", "m2")
    deploy(ledger, B, m("b0"), m("m0").replace("acct.blob", "ACCT.blob"))
    plan = plan_prune(ledger, keep=1, allow_rollback_loss=True)
    assert kinds(plan)["m0"] == ["served", "recent"]
    assert deleted(plan) == ["b0", "m1"]


def test_cli_refuses_keep_below_one_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "absent.toml"  # refused before the config is read
    assert main(["prune", "--config", str(config), "--keep", "0"]) == 4
    assert "--keep: must be an integer between 1 and" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["prune", "--config", str(config), "--keep", "two"])
    assert exc.value.code == 2
    assert "--keep" in capsys.readouterr().err


def test_the_guide_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"^```python\n(.*?)^```", (REPO / "docs" / "retention.md").read_text(),
                        re.S | re.M)  # fmt: skip
    assert blocks, "docs/retention.md has a python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    for index, block in enumerate(blocks):
        exec(compile(block, f"docs/retention.md[{index}]", "exec"), namespace)


def test_the_module_example_runs() -> None:
    import doctest

    import amlretrain.retention

    result = doctest.testmod(amlretrain.retention)
    assert result.attempted > 0
    assert result.failed == 0
