"""retrain.toml's [training] of kind command_job and the mixed [[training]] form."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlretrain import ConfigurationError
from amlretrain.azureml.training import CommandJobTraining
from amlretrain.config import (
    BatchTrainingConfig,
    CommandJobTrainingConfig,
    load_config,
    training_groups,
)
from amlretrain.training import Training

ENV = {
    "TRAIN_KEY": "train-secret",
    "STORAGE": "UseDevelopmentStorage=true",
    "WS_TOKEN": "tok",
    "ARM": "arm-token",
}

BATCH = """
[[training]]
api_location = "https://ussouthcentral.services.azureml.net/workspaces/ws/services/train"
api_key_env = "TRAIN_KEY"
data = "new.csv"
"""

COMMAND_JOB = """
[[training]]
kind = "command_job"
subscription_id = "sub"
resource_group = "rg"
workspace = "census-ws"
command = "python train.py --data ${{inputs.data}} --model ${{outputs.model}}"
environment_id = "azureml:sklearn:3"
compute = "cpu"
data = "new.csv"
inputs = { label = "income", epochs = 3 }
arm_token_env = "ARM"
timeout = 900
concurrency = 6
"""

REST = """
[storage]
connection_string_env = "STORAGE"

[[targets]]
kind = "classic"
workspace_id = "ws"
token_env = "WS_TOKEN"
web_service_id = "svc"
endpoint = "retrain"
data = "europe.csv"

[[targets]]
kind = "online_endpoint"
subscription_id = "sub"
resource_group = "rg"
workspace = "census-ws"
endpoint = "census-v2"
datastore_account_url = "http://127.0.0.1:10000/devstoreaccount1/"

[[targets]]
kind = "online_endpoint"
subscription_id = "sub"
resource_group = "rg"
workspace = "census-ws"
endpoint = "census-eu"
datastore_account_url = "http://127.0.0.1:10000/devstoreaccount1/"
data = "europe.csv"
"""


def write(tmp_path: Path, text: str) -> Path:
    for name in ("new.csv", "europe.csv"):
        (tmp_path / name).write_text("age,income\n30,>50K\n")
    path = tmp_path / "retrain.toml"
    path.write_text(text)
    return path


def test_a_mixed_config_has_one_training_per_kind_and_a_job_per_platform_and_data(
    tmp_path: Path,
) -> None:
    config = load_config(write(tmp_path, BATCH + COMMAND_JOB + REST), environ=ENV)
    batch, job = config.trainings
    assert isinstance(batch, BatchTrainingConfig) and isinstance(job, CommandJobTrainingConfig)
    assert job.inputs == {"label": "income", "epochs": "3"} and job.timeout == 900
    assert "arm-token" not in repr(job)
    assert config.training_api_location == batch.api_location  # the classic fields
    assert config.training_concurrency == 6

    groups = training_groups(config, config.targets())
    assert [(g.kind, g.data, g.label, len(g.targets)) for g in groups] == [
        ("batch", "europe.csv", "europe.csv", 1),
        ("command_job", "new.csv", "command_job:new.csv", 1),
        ("command_job", "europe.csv", "command_job:europe.csv", 1),
    ]
    one = training_groups(config, config.targets(), data="other.csv")
    assert [(g.kind, g.data, len(g.targets)) for g in one] == [
        ("batch", "other.csv", 1),
        ("command_job", "other.csv", 2),
    ]


def test_the_trainer_of_a_command_job_is_built_from_the_table(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BATCH + COMMAND_JOB + REST), environ=ENV)
    trainer = config.trainer("command_job", "europe.csv")
    assert isinstance(trainer, CommandJobTraining)
    assert trainer.data == tmp_path / "europe.csv"
    assert trainer.inputs == {"label": "income", "epochs": "3"}
    body = trainer.job_body("job-1", "azureml://datastores/workspaceblobstore/paths/x.csv")
    assert body["properties"]["environmentId"].endswith(
        "/workspaces/census-ws/environments/sklearn/versions/3"
    )
    assert body["properties"]["computeId"].endswith("/workspaces/census-ws/computes/cpu")
    assert trainer.location.endswith("/workspaces/census-ws/jobs")
    assert isinstance(config.trainer("batch"), Training)


def test_a_single_command_job_table_needs_no_classic_keys(tmp_path: Path) -> None:
    text = COMMAND_JOB.replace("[[training]]", "[training]") + REST.split("[[targets]]", 2)[0]
    text += "[[targets]]" + REST.split("[[targets]]")[2]
    config = load_config(write(tmp_path, text), environ=ENV)
    assert not config.has_batch_training
    with pytest.raises(ConfigurationError, match="no training of kind 'batch'"):
        config.batch()
    assert [g.kind for g in training_groups(config, config.targets())] == ["command_job"]


def test_a_target_whose_platform_has_no_training_is_refused_by_retrain(tmp_path: Path) -> None:
    path = write(tmp_path, BATCH + REST)
    config = load_config(path, environ=ENV)  # deploy, rollback and the reads need none
    with pytest.raises(ConfigurationError) as info:
        training_groups(config, config.targets())
    message = str(info.value)
    assert message.startswith(f"{path}: targets[1].kind:")
    assert "'command_job'" in message


def test_two_trainings_of_one_kind_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, BATCH + COMMAND_JOB + COMMAND_JOB + REST)
    with pytest.raises(ConfigurationError, match=r"training\[2\]\.kind: a second training"):
        load_config(path, environ=ENV)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (('compute = "cpu"\n', ""), r"training\[1\]\.compute: required"),
        (("timeout = 900", "timeout = 900\ncomand = 'x'"), r"training\[1\]\.comand: unknown key"),
        (("inputs = {", "inputs = { data = 'x',"), r"training\[1\]\.inputs\.data"),
        (("inputs = {", "inputs = { flag = true,"), r"training\[1\]\.inputs\.flag"),
        (('kind = "command_job"', 'kind = "pipeline"'), r"training\[1\]\.kind: must be one of"),
        (('arm_token_env = "ARM"', 'arm_token = "x"'), r"training\[1\]\.arm_token: secrets"),
    ],
)
def test_a_bad_command_job_table_names_the_key(
    tmp_path: Path, change: tuple[str, str], match: str
) -> None:
    text = BATCH + COMMAND_JOB.replace(*change) + REST
    with pytest.raises(ConfigurationError, match=match):
        load_config(write(tmp_path, text), environ=ENV)


def test_the_mixed_example_of_docs_config_parses_and_its_keys_are_documented() -> None:
    import re

    import tomllib

    from amlretrain.config import parse_config

    text = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text()
    section = text[text.index("## Classic and v2 targets in one run") :]
    block = re.search(r"^```toml\n(.*?)^```", section, re.S | re.M)
    assert block is not None
    environ = {
        "AML_TRAINING_API_KEY": "k",
        "AML_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
        "AML_ARM_TOKEN": "t",
        "AML_WORKSPACE_TOKEN": "w",
    }
    config = parse_config(tomllib.loads(block.group(1)), source="config.md", environ=environ)
    assert [t.kind for t in config.trainings] == ["batch", "command_job"]
    groups = training_groups(config, config.targets())
    assert [(g.kind, len(g.targets)) for g in groups] == [("batch", 1), ("command_job", 1)]
    training = text[text.index("### `[training]`") : text.index("### `[storage]`")]
    for key in re.findall(r"^(\w+) = ", block.group(1).split("[storage]")[0], re.M):
        assert f"`{key}`" in training, key


def test_an_online_endpoint_target_keeps_or_retires_its_previous_deployment(
    tmp_path: Path,
) -> None:
    config = load_config(write(tmp_path, BATCH + COMMAND_JOB + REST), environ=ENV)
    from amlretrain.azureml.targets import OnlineEndpointTarget

    online = [t for t, _ in config.targets() if isinstance(t, OnlineEndpointTarget)]
    assert [t.delete_previous for t in online] == [True, True]  # the default
    kept = REST.replace(
        'endpoint = "census-v2"\n', 'endpoint = "census-v2"\ndelete_previous = false\n'
    )
    config = load_config(write(tmp_path, BATCH + COMMAND_JOB + kept), environ=ENV)
    online = [t for t, _ in config.targets() if isinstance(t, OnlineEndpointTarget)]
    assert [t.delete_previous for t in online] == [False, True]
    wrong = REST.replace(
        'endpoint = "census-v2"\n', 'endpoint = "census-v2"\ndelete_previous = 1\n'
    )
    with pytest.raises(ConfigurationError, match=r"targets\[1\]\.delete_previous"):
        load_config(write(tmp_path, BATCH + COMMAND_JOB + wrong), environ=ENV)
