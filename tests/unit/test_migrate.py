"""The module mapping of ``amlretrain.migrate`` (V2-NOTES 7) and the migration guide's examples."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from amlretrain import ModuleMapping, WebServiceDefinition, check_definition
from amlretrain.migrate import NONE, NOT_IN_THE_NOTES, REPLACED, SAME, holds_a_learner
from tests.conftest import REPO

DATA = REPO / "amlretrain" / "emulator" / "data"
GUIDE = REPO / "docs" / "migration-v2.md"


def _document(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"{name}_definition.json").read_text())
    return data


def _with_module(name: str, asset: str = "asset2") -> WebServiceDefinition:
    """The training sample with asset ``asset`` renamed to ``name``."""
    doc = copy.deepcopy(_document("training"))
    doc["properties"]["assets"][asset]["name"] = name
    return WebServiceDefinition.from_dict(doc)


def _by_asset(rows: tuple[ModuleMapping, ...]) -> dict[str | None, ModuleMapping]:
    return {r.asset_id: r for r in rows if r.asset_id}


def test_the_training_sample_maps_every_module_and_holds_the_learner() -> None:
    rows = check_definition(WebServiceDefinition.load(DATA / "training_definition.json"))
    assets = _by_asset(rows)
    assert {a: (r.name, r.status, r.v2) for a, r in assets.items()} == {
        "asset1": ("Train Model", SAME, "Train Model"),
        "asset2": ("Two-Class Logistic Regression", SAME, "Two-Class Logistic Regression"),
        "asset3": ("Evaluate Model", SAME, "Evaluate Model"),
        "asset4": ("Split Data", SAME, "Split Data"),
        "asset5": ("Score Model", SAME, "Score Model"),
    }
    # the learner is named in the notes; the train/score/evaluate/split modules by group
    assert assets["asset2"].basis == "name" and assets["asset2"].group == "classification"
    assert assets["asset1"].basis == "group" and assets["asset1"].group == "train"
    assert all(r.section == "V2-NOTES 7.2" for r in rows)
    assert assets["asset2"].nodes == ("node3",)
    ports = [(r.kind, r.name, r.v2) for r in rows if r.asset_id is None]
    assert ports == [
        ("web service input", "input1", "Web Service Input"),
        ("web service output", "output1", "Web Service Output"),
        ("web service output", "output2", "Web Service Output"),
    ]
    assert holds_a_learner(rows)
    assert all(r.has_equivalent for r in rows)


def test_the_predictive_sample_s_trained_model_has_no_v2_equivalent() -> None:
    rows = check_definition(WebServiceDefinition.load(DATA / "predictive_definition.json"))
    model = _by_asset(rows)["asset1"]
    assert (model.kind, model.status, model.v2, model.section) == (
        "trained model",
        NONE,
        None,
        "V2-NOTES 7.3",
    )
    assert ".ilearner cannot be loaded in v2" in model.note
    assert model.module_id == "https://placeholder.blob.core.windows.net/models/initial.ilearner"
    assert [r.name for r in rows if not r.has_equivalent] == ["Census Model [trained model]"]
    assert not holds_a_learner(rows), "the predictive service holds no learner"


@pytest.mark.parametrize(
    "name",
    [
        "Load Trained Model",
        "Two-Class Decision Jungle",
        "Two-Class Bayes Point Machine",
        "Group Categorical Values",
        "Principal Component Analysis",
        "Moving Average Filter",
        "Build Counting Transform",
        "Fisher Linear Discriminant Analysis",
        "Bayesian Linear Regression",
        "Train Matchbox Recommender",
        "Score Matchbox Recommender",
        "Create R Model",
        "Test Hypothesis using t-Test",
        "Named Entity Recognition",
        "Time Series Anomaly Detection",
        "Convert to TSV",
    ],
)
def test_modules_the_notes_list_without_an_equivalent_are_none(name: str) -> None:
    row = _by_asset(check_definition(_with_module(name)))["asset2"]
    assert (row.status, row.v2, row.basis, row.section) == (NONE, None, "name", "V2-NOTES 7.2")
    assert not row.has_equivalent
    assert "no v2 equivalent" in row.note


@pytest.mark.parametrize(
    "name", ["Frobnicate Rows", "Filter Based Feature Selection", "K-Means Clustering", ""]
)
def test_modules_the_notes_do_not_list_are_not_in_the_notes(name: str) -> None:
    # "Filter Based Feature Selection" is not of the Filter group (signal filters)
    row = _by_asset(check_definition(_with_module(name)))["asset2"]
    assert row.status == NOT_IN_THE_NOTES == "not in the notes"
    assert (row.v2, row.group, row.basis) == (None, None, None)
    assert not row.has_equivalent


def test_names_match_in_any_case_and_spacing() -> None:
    row = _by_asset(check_definition(_with_module("  two-class   LOGISTIC regression ")))["asset2"]
    assert (row.status, row.v2) == (SAME, "Two-Class Logistic Regression")


def test_vowpal_wabbit_versions_are_replaced_not_one_to_one() -> None:
    row = _by_asset(check_definition(_with_module("Train Vowpal Wabbit Version 8 Model")))["asset2"]
    assert (row.status, row.v2) == (REPLACED, "Train Vowpal Wabbit Model")
    assert row.has_equivalent and "not one-to-one" in row.note


def test_an_asset_of_another_type_is_not_in_the_notes() -> None:
    doc = copy.deepcopy(_document("training"))
    doc["properties"]["assets"]["asset4"]["type"] = "Script"
    row = _by_asset(check_definition(WebServiceDefinition.from_dict(doc)))["asset4"]
    assert (row.kind, row.status) == ("Script", NOT_IN_THE_NOTES)


def test_a_trained_model_s_sas_is_not_in_its_row() -> None:
    doc = copy.deepcopy(_document("predictive"))
    uri = "https://acct.blob.core.windows.net/m/x.ilearner?sv=2021-08-06&se=2099-01-01&sig=c2VjcmV0"
    doc["properties"]["assets"]["asset1"]["locationInfo"]["uri"] = uri
    row = _by_asset(check_definition(WebServiceDefinition.from_dict(doc)))["asset1"]
    assert row.module_id == "https://acct.blob.core.windows.net/m/x.ilearner"
    assert "sig" not in json.dumps(row.to_dict())


# -- docs/migration-v2.md --------------------------------------------------------------------


def guide_blocks() -> list[str]:
    """The python blocks of docs/migration-v2.md, in order."""
    return re.findall(r"^```python\n(.*?)^```", GUIDE.read_text(encoding="utf-8"), re.S | re.M)


def test_the_guide_s_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the inventory example reads services: tests/integration/test_cli_migrate.py runs it
    blocks = [b for b in guide_blocks() if "check_definition" in b]
    assert blocks, "docs/migration-v2.md lost its check_definition example"
    (tmp_path / "training.json").write_bytes((DATA / "training_definition.json").read_bytes())
    monkeypatch.chdir(tmp_path)
    for index, block in enumerate(blocks):
        exec(compile(block, f"docs/migration-v2.md[{index}]", "exec"), {})


def test_the_guide_s_classic_config_parses() -> None:
    import tomllib

    from amlretrain.config import parse_config

    text = GUIDE.read_text(encoding="utf-8")
    classic = re.search(r"<!-- classic retrain.toml -->\n```toml\n(.*?)^```", text, re.S | re.M)
    assert classic, "docs/migration-v2.md lost its classic retrain.toml"
    environ = {
        "AMLRETRAIN_TRAINING_API_KEY": "k",
        "AMLRETRAIN_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
        "AMLRETRAIN_WORKSPACE_TOKEN": "t",
    }
    config = parse_config(tomllib.loads(classic.group(1)), source="guide", environ=environ)
    assert [type(t).__name__ for t in config.target_configs] == ["ClassicTargetConfig"]


def test_the_guide_s_v2_config_parses() -> None:
    import tomllib

    from amlretrain.config import CommandJobTrainingConfig, parse_config

    text = GUIDE.read_text(encoding="utf-8")
    v2 = re.search(r"<!-- v2 retrain.toml -->\n```toml\n(.*?)^```", text, re.S | re.M)
    assert v2, "docs/migration-v2.md lost its v2 retrain.toml"
    environ = {"AMLRETRAIN_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"}
    config = parse_config(tomllib.loads(v2.group(1)), source="guide", environ=environ)
    assert [type(t).__name__ for t in config.target_configs] == ["OnlineEndpointTargetConfig"]
    (training,) = config.trainings
    assert isinstance(training, CommandJobTrainingConfig)
    assert training.model_output == "model" and training.evaluation_output == "evaluation"
