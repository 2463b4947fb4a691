"""``amlretrain prune`` end to end: retrains build a history, prune deletes what it no longer needs.

What was deleted is read from Azurite (every blob of the account, listed before and
after), never from the command's own report.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from amlretrain.blobs import BlobRef
from amlretrain.cli import main
from amlretrain.cli._emulator_config import emulator_config, emulator_environment
from amlretrain.emulator import Emulator
from amlretrain.storage import BlobStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DATA = Path(__file__).resolve().parents[2] / "amlretrain" / "emulator" / "data"


@pytest.fixture
def config(emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in emulator_environment(emulator.info).items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "retrain.toml"
    path.write_text(
        emulator_config(
            emulator.info, data=DATA / "census_new.csv", ledger=tmp_path / "ledger.jsonl"
        )
    )
    return path


@pytest.fixture
def store(emulator: Emulator) -> Iterator[BlobStore]:
    with BlobStore.from_connection_string(emulator.info.storage_connection_string) as store:
        yield store


@pytest.fixture
def initial(emulator: Emulator, store: BlobStore) -> Iterator[BlobRef]:
    """The seeded model both targets serve at first: prune deletes it, so it is put back."""
    seeded = str(emulator.info.initial_model)
    ref = store.ref(*seeded.split("/", 1))
    saved = store.download_bytes(ref)
    yield ref
    store.upload(saved, container=ref.container, blob_name=ref.blob_name)


def blobs(store: BlobStore) -> set[str]:
    """Every blob of the account, as Azurite lists it."""
    found = set()
    for container in store.service.list_containers():
        client = store.service.get_container_client(container.name)
        found |= {store.ref(container.name, blob.name).url for blob in client.list_blobs()}
    return found


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    capsys.readouterr()
    code = main([*argv, "--output", "json"])
    captured = capsys.readouterr()
    assert code == 0, (argv, captured.err)
    data: dict[str, object] = json.loads(captured.out)
    return data


@pytest.mark.slow
def test_prune_deletes_exactly_the_models_no_target_needs(
    config: Path, store: BlobStore, initial: BlobRef, capsys: pytest.CaptureFixture[str]
) -> None:
    models = [str(run(capsys, "retrain", "--config", str(config))["model"]) for _ in range(3)]
    first, rollback_target, served = models
    before = blobs(store)
    assert {initial.url, *models} <= before

    plan = run(capsys, "prune", "--config", str(config), "--keep", "1", "--dry-run")
    assert blobs(store) == before, "a dry run deletes nothing"
    assert plan["dry_run"] is True and plan["deleted"] == []
    assert {p["model"] for p in plan["delete"]} == {initial.url, first}  # type: ignore[attr-defined]

    report = run(capsys, "prune", "--config", str(config), "--keep", "1")
    after = blobs(store)
    assert before - after == {initial.url, first}
    assert after - before == set()
    assert {served, rollback_target} <= after
    # only model blobs go: the runs' evaluations stay
    assert first.rsplit("/", 1)[0] + "/evaluation.csv" in after
    assert set(report["deleted"]) == {initial.url, first}  # type: ignore[arg-type]
    kept = {k["model"]: {r["kind"] for r in k["reasons"]} for k in report["kept"]}  # type: ignore[attr-defined]
    assert kept == {served: {"served", "recent"}, rollback_target: {"rollback"}}

    # idempotent: the blobs already gone are fine
    run(capsys, "prune", "--config", str(config), "--keep", "1")
    assert blobs(store) == after

    # the rollback target really is there to roll back to
    outcome = run(capsys, "rollback", "0", "--config", str(config))
    assert outcome["status"] == "succeeded" and outcome["serving_model"] == rollback_target


def test_prune_refuses_keep_zero_and_deletes_nothing(
    config: Path, store: BlobStore, capsys: pytest.CaptureFixture[str]
) -> None:
    before = blobs(store)
    assert main(["prune", "--config", str(config), "--keep", "0"]) == 4
    assert "--keep: must be an integer between 1 and" in capsys.readouterr().err
    assert blobs(store) == before
