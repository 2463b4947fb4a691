"""retrain.toml: a full example parses; every mistake names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlretrain import ConfigurationError
from amlretrain.config import ArmTargetConfig, ClassicTargetConfig, load_config

ENV = {"TRAIN_KEY": "train-secret", "STORAGE": "UseDevelopmentStorage=true", "WS_TOKEN": "tok"}

FULL = """
concurrency = 3

[training]
api_location = "https://ussouthcentral.services.azureml.net/workspaces/ws/services/train"
api_key_env = "TRAIN_KEY"
data = "new.csv"
input = "input1"
model_output = "output1"
evaluation_output = "output2"
timeout = 1800
model_sas_days = 2
global_parameters = { "Split fraction" = 0.75 }

[storage]
connection_string_env = "STORAGE"

[gate]
thresholds = { AUC = 0.8, "Average Log Loss" = { max = 0.5 } }
beat_incumbent = ["AUC"]
margin = 0.005

[ledger]
path = "history/ledger.jsonl"

[sample]
columns = ["age", "hours"]
rows = [["39", "40"]]

[[targets]]
kind = "arm"
subscription_id = "sub"
resource_group = "rg"
name = "census"
asset = "Census Model [trained model]"

[[targets]]
kind = "classic"
workspace_id = "ws"
token_env = "WS_TOKEN"
web_service_id = "svc"
endpoint = "retrain"
region = "West Europe"
verify_timeout = 45
data = "europe.csv"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "retrain.toml"
    path.write_text(text)
    return path


def test_full_example_parses(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, FULL), environ=ENV)
    assert config.training_api_key == "train-secret"
    assert config.concurrency == 3
    assert config.global_parameters == {"Split fraction": "0.75"}
    assert config.model_sas_lifetime.days == 2
    assert config.gate.beat_incumbent == ("AUC",)
    assert config.sample is not None and config.sample.rows == (("39", "40"),)
    arm, classic = config.target_configs
    assert isinstance(arm, ArmTargetConfig) and arm.asset == "Census Model [trained model]"
    assert isinstance(classic, ClassicTargetConfig) and classic.data == "europe.csv"
    assert classic.verify_timeout == 45
    assert arm.include_sas is True
    assert config.ledger_blob is None
    assert config.resolve(config.ledger_path) == tmp_path.resolve() / "history" / "ledger.jsonl"
    assert "train-secret" not in repr(config) and "tok" not in repr(classic)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('endpoint = "retrain"\n', ""), "targets[1].endpoint: required"),
        (lambda t: t.replace('kind = "arm"', 'kind = "azure"'), "targets[0].kind: must be one of"),
        (lambda t: t.replace("timeout = 1800", 'timeout = "long"'), "training.timeout: must be"),
        (lambda t: t.replace("concurrency = 3", "concurency = 3"), "concurency: unknown key"),
        (
            lambda t: t.replace('api_key_env = "TRAIN_KEY"', 'api_key = "x"'),
            "training.api_key: secrets are not written",
        ),
        (lambda t: t.replace('"TRAIN_KEY"', '"MISSING_VAR"'), "MISSING_VAR is not set"),
        (lambda t: t.replace("AUC = 0.8,", 'AUC = "high",'), "gate.thresholds"),
        (lambda t: t.replace("model_sas_days = 2", "model_sas_days = 30"), "model_sas_days"),
        (lambda t: t.replace('rows = [["39", "40"]]', 'rows = [["39"]]'), "sample.rows"),
        (lambda t: t + "\n[oops\n", "not valid TOML"),
        (
            lambda t: t.replace("concurrency = 3", "concurrency = 0"),
            "concurrency: must be at least 1",
        ),
    ],
)
def test_mistakes_name_file_and_key(tmp_path: Path, edit: object, message: str) -> None:
    path = _write(tmp_path, edit(FULL))  # type: ignore[operator]
    with pytest.raises(ConfigurationError) as info:
        load_config(path, environ=ENV)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_config(tmp_path / "nope.toml")
