"""``amlretrain migrate inventory|check`` against the emulator, judged from its own state."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from amlretrain.blobs import strip_sas
from amlretrain.cli import main
from amlretrain.cli._emulator_config import emulator_config, emulator_environment
from amlretrain.emulator import Emulator
from amlretrain.emulator.state import trained_model_asset
from amlretrain.ledger import Ledger
from amlretrain.records import LedgerEntry
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DATA = REPO / "amlretrain" / "emulator" / "data"


@pytest.fixture
def config(emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in emulator_environment(emulator.info).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "retrain.toml"
    path.write_text(
        emulator_config(
            emulator.info, data=DATA / "census_new.csv", ledger=tmp_path / "ledger.jsonl"
        )
    )
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _secrets(emulator: Emulator) -> list[str]:
    return [v for v in emulator_environment(emulator.info).values() if v]


def _deployed(ledger: Path, key: str, model: str, metrics: dict[str, float]) -> None:
    Ledger(ledger).append(
        LedgerEntry.new(
            target=key,
            action="deploy",
            outcome="succeeded",
            previous_model=None,
            new_model=model,
            serving_model=model,
            metrics=metrics,
            run_id="migrate-test",
        )
    )


def _state(emulator: Emulator) -> dict[str, Any]:
    """The classic services (their endpoints and models) and the New services' models,
    read from the emulator's own state."""
    info = emulator.info
    with emulator.state.locked() as state:
        ws = state.workspaces[info.workspace_id.lower()]
        classic = {
            sid: {
                name: [
                    r["Location"]["BaseLocation"] + r["Location"]["RelativeLocation"]
                    for r in endpoint.resources
                ]
                for name, endpoint in service.endpoints.items()
            }
            for sid, service in ws.services.items()
        }
        arm = {}
        for (sub, rg, _name), service in state.arm.items():
            if sub == info.subscription_id.lower() and rg == info.resource_group.lower():
                found = trained_model_asset(service.resource["properties"])
                arm[service.name] = [strip_sas(found[1]["locationInfo"]["uri"])] if found else []
        return {"classic": classic, "arm": arm}


def test_inventory_lists_the_services_endpoints_models_and_metric_history(
    emulator: Emulator, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    info = emulator.info
    classic_key = (
        f"classic:{info.workspace_id}/{info.predictive_service}/{info.predictive_endpoint}"
    )
    _deployed(
        tmp_path / "ledger.jsonl",
        classic_key,
        "https://acct.blob.core.windows.net/models/m1.ilearner",
        {"AUC": 0.91, "Accuracy": 0.84},
    )
    code, out, err = _run(
        capsys, "migrate", "inventory", "--config", str(config), "--output", "json"
    )
    assert code == 0, err
    found = json.loads(out)
    expected = _state(emulator)

    classic = {s["id"]: s for s in found["services"] if s["kind"] == "classic"}
    assert {
        sid: {e["name"]: [m["uri"] for m in e["models"]] for e in s["endpoints"]}
        for sid, s in classic.items()
    } == expected["classic"]
    arm = {s["name"]: s for s in found["services"] if s["kind"] == "arm"}
    assert {n: [m["uri"] for m in s["endpoints"][0]["models"]] for n, s in arm.items()} == (
        expected["arm"]
    )

    endpoints = {e["key"]: e for s in found["services"] for e in s["endpoints"]}
    target = endpoints[classic_key]
    assert target["configured"] and not target["default"]
    assert [(p["metrics"], p["run_id"]) for p in target["history"]] == [
        ({"AUC": 0.91, "Accuracy": 0.84}, "migrate-test")
    ]
    assert all(m["is_ilearner"] for m in target["models"])
    default = endpoints[
        f"classic:{info.workspace_id}/{info.predictive_service}/{info.predictive_default_endpoint}"
    ]
    assert default["default"] and not default["configured"] and default["history"] == []
    arm_key = f"arm:{info.arm_service_id}"
    assert endpoints[arm_key]["configured"]
    assert found["v2_targets"] == []

    code, out, err = _run(capsys, "migrate", "inventory", "--config", str(config))
    assert code == 0, err
    assert out.splitlines()[0].split() == [
        "KIND", "SERVICE", "ENDPOINT", "MODEL", "DEPLOYS", "LATEST", "METRICS"
    ]  # fmt: skip
    row = next(line for line in out.splitlines() if f"{info.predictive_endpoint} (target)" in line)
    assert "AUC=0.91" in row and "Accuracy=0.84" in row
    assert "Azure ML v2 cannot load them" in out
    for secret in _secrets(emulator):
        assert secret not in out + err
    assert "sig=" not in out.replace("sig=REDACTED", "")


def test_inventory_reads_another_ledger_with_ledger(
    emulator: Emulator, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    info = emulator.info
    key = f"arm:{info.arm_service_id}"
    other = tmp_path / "other.jsonl"
    _deployed(other, key, "https://acct.blob.core.windows.net/models/m2.ilearner", {"AUC": 0.7})
    argv = ["migrate", "inventory", "--config", str(config), "--output", "json"]
    code, out, err = _run(capsys, *argv, "--ledger", str(other))
    assert code == 0, err
    endpoints = {e["key"]: e for s in json.loads(out)["services"] for e in s["endpoints"]}
    assert [p["metrics"] for p in endpoints[key]["history"]] == [{"AUC": 0.7}]
    assert all(e["history"] == [] for k, e in endpoints.items() if k != key)

    code, _, err = _run(capsys, *argv, "--ledger", str(tmp_path / "nonesuch.jsonl"))
    assert code == 4 and "--ledger: no such file" in err


def test_the_guide_s_inventory_example_runs_against_the_emulator(config: Path) -> None:
    guide = (REPO / "docs" / "migration-v2.md").read_text(encoding="utf-8")
    blocks = [
        b for b in re.findall(r"^```python\n(.*?)^```", guide, re.S | re.M) if "inventory(" in b
    ]
    assert len(blocks) == 1, "docs/migration-v2.md lost its inventory example"
    namespace: dict[str, Any] = {}
    exec(compile(blocks[0], "docs/migration-v2.md[inventory]", "exec"), namespace)
    assert namespace["found"].services


def test_check_maps_a_definition_file_and_strict_fails_on_the_ilearner(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    training = str(DATA / "training_definition.json")
    code, out, err = _run(capsys, "migrate", "check", training, "--output", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["without_equivalent"] == 0 and data["holds_learner"] is True
    learner = next(m for m in data["modules"] if m["group"] == "classification")
    assert (learner["name"], learner["status"], learner["section"]) == (
        "Two-Class Logistic Regression",
        "same",
        "V2-NOTES 7.2",
    )

    predictive = str(DATA / "predictive_definition.json")
    code, out, err = _run(capsys, "migrate", "check", predictive)
    assert code == 0, err  # reported, not an error
    assert "Census Model [trained model] [none]" in out and "V2-NOTES 7.3" in out
    assert "check the training web service's definition" in out
    code, out, err = _run(capsys, "migrate", "check", predictive, "--strict")
    assert code == 16
    assert "1 module(s) have no v2 equivalent: 'Census Model [trained model]'" in err


def test_check_reads_an_arm_target_s_service(
    emulator: Emulator, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = str(emulator.info.arm_service_name)
    argv = ["migrate", "check", "--config", str(config), "--output", "json"]
    code, out, err = _run(capsys, *argv, "--target", name)
    assert code == 0, err
    data = json.loads(out)
    assert data["definition"] == f"arm:{emulator.info.arm_service_id}"
    trained = [m for m in data["modules"] if m["kind"] == "trained model"]
    assert [m["status"] for m in trained] == ["none"]
    assert "sig=" not in out.replace("sig=REDACTED", "")

    info = emulator.info
    classic = f"classic:{info.workspace_id}/{info.predictive_service}/{info.predictive_endpoint}"
    code, _, err = _run(capsys, *argv, "--target", classic)
    assert code == 4 and "only an arm target's definition can be read" in err
    code, _, err = _run(capsys, *argv, "--target", "nonesuch")
    assert code == 4 and "--target nonesuch: no such target" in err


def test_check_refuses_a_file_that_is_not_a_definition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "notes.json"
    bad.write_text('{"hello": "world"}')
    code, out, err = _run(capsys, "migrate", "check", str(bad))
    assert code == 3 and out == ""
    assert err.startswith(f"amlretrain: error: {bad}") and "(DefinitionError)" in err
    assert "Traceback" not in err

    code, out, err = _run(capsys, "migrate", "check", str(tmp_path / "missing.json"))
    assert code == 4 and "cannot read" in err
