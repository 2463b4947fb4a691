"""retrain.toml: a full example parses; every mistake names the file and the key."""

from __future__ import annotations

import copy
import logging
import math
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from amlretrain import ConfigurationError
from amlretrain.config import (
    ArmTargetConfig,
    ClassicTargetConfig,
    RetrainConfig,
    load_config,
    parse_config,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

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
        (lambda t: t.replace("model_sas_days = 2", "model_sas_days = 400"), "model_sas_days"),
        (lambda t: t.replace('rows = [["39", "40"]]', 'rows = [["39"]]'), "sample.rows"),
        (lambda t: t + "\n[oops\n", "not valid TOML"),
        (
            lambda t: t.replace("concurrency = 3", "concurrency = 0"),
            "concurrency: must be an integer between 1 and 256, not 0",
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


# -- numeric settings: checked when the file is read ---------------------------------------

SOURCE = "retrain.toml"
NAN, INF = math.nan, math.inf


def _document() -> dict[str, Any]:
    return tomllib.loads(FULL)


def _parse(document: dict[str, Any]) -> RetrainConfig:
    return parse_config(document, source=SOURCE, environ=ENV)


def _set(document: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    edited = copy.deepcopy(document)
    table: Any = edited
    for step in path[:-1]:
        table = table[step]
    table[path[-1]] = value
    return edited


def _drop(document: dict[str, Any], path: tuple[str | int, ...]) -> dict[str, Any]:
    edited = copy.deepcopy(document)
    table: Any = edited
    for step in path[:-1]:
        table = table[step]
    table.pop(path[-1], None)
    return edited


def _name(path: tuple[str | int, ...]) -> str:
    name = ""
    for step in path:
        name += f"[{step}]" if isinstance(step, int) else (f".{step}" if name else step)
    return name


#: (key, the lowest and highest values accepted, a value just too large, 0 is valid)
NUMERIC: list[tuple[tuple[str | int, ...], float, float, float | None, bool]] = [
    (("concurrency",), 1, 256, 257, False),
    (("interrupt_grace",), 1, 86400, 86401, False),
    (("training", "timeout"), 1, 86400, 86400.5, False),
    (("training", "model_sas_days"), 1, 365, 366, False),  # account key (connection string)
    (("targets", 0, "polling_interval"), 0.05, 300, 300.01, False),
    (("targets", 0, "operation_timeout"), 1, 86400, 86401, False),
    (("targets", 0, "verify_timeout"), 1, 86400, 86401, False),
    (("targets", 1, "verify_timeout"), 1, 86400, 86401, False),
    (("gate", "margin"), 0, 1e300, None, True),
]

_BAD = [
    pytest.param(-1, id="negative"),
    pytest.param(0, id="zero"),
    pytest.param(NAN, id="nan"),
    pytest.param(INF, id="inf"),
    pytest.param(-INF, id="-inf"),
    pytest.param("too large", id="too-large"),
    pytest.param(True, id="true"),
    pytest.param(False, id="false"),
    pytest.param("5", id="string"),
    pytest.param([5], id="array"),
]


def _bad_cases() -> list[Any]:
    cases = []
    for path, _low, _high, too_large, zero_ok in NUMERIC:
        for bad in _BAD:
            (value,) = bad.values
            if value == "too large":
                if too_large is None:
                    continue
                value = too_large
            if value == 0 and zero_ok and not isinstance(value, bool):
                continue
            cases.append(pytest.param(path, value, id=f"{_name(path)}-{bad.id}"))
    return cases


@pytest.mark.parametrize(("path", "value"), _bad_cases())
def test_every_numeric_key_refuses_bad_values(path: tuple[str | int, ...], value: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        _parse(_set(_document(), path, value))
    message = str(info.value)
    assert message.startswith(f"{SOURCE}: {_name(path)}: must be "), message
    assert "finite number" in message or "an integer" in message


@pytest.mark.parametrize(
    ("path", "low", "high"),
    [pytest.param(p, low, high, id=_name(p)) for p, low, high, _, _ in NUMERIC],
)
def test_the_bounds_themselves_are_accepted(
    path: tuple[str | int, ...], low: float, high: float
) -> None:
    for value in (low, high):
        config = _parse(_set(_document(), path, value))
        assert config is not None


def test_a_message_names_the_value_and_the_range() -> None:
    with pytest.raises(ConfigurationError) as info:
        _parse(_set(_document(), ("targets", 0, "polling_interval"), NAN))
    assert str(info.value) == (
        "retrain.toml: targets[0].polling_interval: must be a finite number between "
        "0.05 and 300 s, not nan"
    )
    with pytest.raises(ConfigurationError) as info:
        _parse(_set(_document(), ("training", "timeout"), True))
    assert "training.timeout: must be a finite number between 1 and 86400 s, not a boolean" in (
        str(info.value)
    )


def test_concurrency_takes_an_integer_only() -> None:
    with pytest.raises(
        ConfigurationError,
        match=re.escape("concurrency: must be an integer between 1 and 256, not 4.0"),
    ):
        _parse(_set(_document(), ("concurrency",), 4.0))


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("polling_interval = nan", "targets[0].polling_interval"),
        ("polling_interval = -1", "targets[0].polling_interval"),
        ("operation_timeout = inf", "targets[0].operation_timeout"),
        ("verify_timeout = -inf", "targets[0].verify_timeout"),
        ("verify_timeout = +nan", "targets[0].verify_timeout"),
    ],
)
def test_toml_nan_and_inf_are_refused_when_the_file_is_read(
    tmp_path: Path, line: str, key: str
) -> None:
    text = FULL.replace('name = "census"\n', f'name = "census"\n{line}\n')
    path = _write(tmp_path, text)
    with pytest.raises(ConfigurationError) as info:
        load_config(path, environ=ENV)
    assert f"{path}: {key}: must be a finite number" in str(info.value)


def test_timeout_nan_and_a_tiny_sas_are_refused(tmp_path: Path) -> None:
    for old, new, key in [
        ("timeout = 1800", "timeout = nan", "training.timeout"),
        ("model_sas_days = 2", "model_sas_days = 0.0005", "training.model_sas_days"),
        ("concurrency = 3", "concurrency = 1000", "concurrency"),
    ]:
        path = _write(tmp_path, FULL.replace(old, new))
        with pytest.raises(ConfigurationError, match=key):
            load_config(path, environ=ENV)


def test_defaults_of_the_numeric_keys() -> None:
    document = _document()
    for path in [
        ("concurrency",),
        ("training", "timeout"),
        ("training", "model_sas_days"),
        ("targets", 1, "verify_timeout"),
        ("gate", "margin"),
    ]:
        document = _drop(document, path)
    config = _parse(document)
    arm, classic = config.target_configs
    assert isinstance(arm, ArmTargetConfig) and isinstance(classic, ClassicTargetConfig)
    assert config.concurrency == 4
    assert config.interrupt_grace == 30.0
    assert config.timeout == 3600.0
    assert config.model_sas_days == 30.0  # an account key (connection string)
    assert arm.polling_interval == 5.0
    assert arm.operation_timeout == 900.0
    assert arm.verify_timeout == 120.0
    assert classic.verify_timeout == 120.0
    assert config.gate.margin == 0.0
    assert (
        ArmTargetConfig(subscription_id="s", resource_group="r", name="n").operation_timeout
        == 900.0
    )


def test_new_keys_are_read() -> None:
    document = _set(_document(), ("interrupt_grace",), 5)
    document = _set(document, ("targets", 0, "operation_timeout"), 1800)
    document = _set(document, ("targets", 0, "verify_timeout"), 60.5)
    config = _parse(document)
    arm = config.target_configs[0]
    assert isinstance(arm, ArmTargetConfig)
    assert config.interrupt_grace == 5.0 and isinstance(config.interrupt_grace, float)
    assert arm.operation_timeout == 1800.0 and isinstance(arm.operation_timeout, float)
    assert arm.verify_timeout == 60.5


def test_operation_timeout_is_an_arm_key_only() -> None:
    with pytest.raises(ConfigurationError, match=r"targets\[1\]\.operation_timeout: unknown key"):
        _parse(_set(_document(), ("targets", 1, "operation_timeout"), 60))


def test_the_targets_get_the_new_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    import amlretrain.studio.targets

    made: list[dict[str, Any]] = []

    class RecordingArmTarget:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made.append(kwargs)

    monkeypatch.setattr(amlretrain.studio.targets, "ArmTarget", RecordingArmTarget)
    document = _set(_document(), ("targets", 0, "operation_timeout"), 600)
    document = _set(document, ("targets", 0, "verify_timeout"), 30)
    document = _set(document, ("targets", 0, "arm_token_env"), "WS_TOKEN")
    targets = _parse(document).targets()
    assert len(targets) == 2
    assert made == [
        {
            "asset": "Census Model [trained model]",
            "scoring_url": None,
            "include_sas": True,
            "operation_timeout": 600.0,
            "verify_timeout": 30.0,
        }
    ]
    assert targets[1][0].verify_timeout == 45.0  # type: ignore[attr-defined]


# -- the model's SAS lifetime ----------------------------------------------------------------

DELEGATION = {"account_url": "https://acct.blob.core.windows.net"}


def test_a_user_delegation_sas_lives_at_most_7_days() -> None:
    document = _set(_document(), ("storage",), dict(DELEGATION))
    assert _parse(_set(document, ("training", "model_sas_days"), 7)).model_sas_days == 7.0
    with pytest.raises(ConfigurationError) as info:
        _parse(_set(document, ("training", "model_sas_days"), 7.5))
    message = str(info.value)
    assert (
        "training.model_sas_days: must be a finite number between 1 and 7 days, not 7.5" in message
    )
    assert "user delegation" in message and "connection_string_env" in message


def test_an_account_key_sas_lives_up_to_365_days() -> None:
    config = _parse(_set(_document(), ("training", "model_sas_days"), 365))
    assert config.model_sas_lifetime.days == 365
    with pytest.raises(ConfigurationError, match=re.escape("between 1 and 365 days, not 365.5")):
        _parse(_set(_document(), ("training", "model_sas_days"), 365.5))


def test_a_sas_below_30_days_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="amlretrain.config"):
        _parse(_document())  # model_sas_days = 2
    (record,) = [r for r in caplog.records if r.name == "amlretrain.config"]
    assert record.levelno == logging.WARNING
    text = record.getMessage()
    assert "training.model_sas_days" in text and "expires after 2 days" in text
    assert "stops scoring unless a newer model is deployed" in text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="amlretrain.config"):
        delegation = _set(_document(), ("storage",), dict(DELEGATION))
        _parse(_drop(delegation, ("training", "model_sas_days")))  # the default, 7 days
    (record,) = [r for r in caplog.records if r.name == "amlretrain.config"]
    assert "expires after 7 days" in record.getMessage()
    assert "user delegation" in record.getMessage()


def test_no_warning_from_30_days_or_when_no_service_holds_the_sas(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="amlretrain.config"):
        _parse(_set(_document(), ("training", "model_sas_days"), 30))
        arm_only = _document()
        arm_only["targets"] = [dict(arm_only["targets"][0], include_sas=False)]
        _parse(arm_only)
    assert not [r for r in caplog.records if r.name == "amlretrain.config"]


# -- container names ---------------------------------------------------------------------------

GOOD_CONTAINERS = ["abc", "a" * 63, "my-models-2", "0ab", "amlretrain-models"]
BAD_CONTAINERS = [
    "ab",
    "a" * 64,
    "Models",
    "my_models",
    "-models",
    "models-",
    "my--models",
    "my.models",
    "mödels",
    "my models",
]


@pytest.mark.parametrize("name", GOOD_CONTAINERS)
def test_valid_container_names_are_accepted(name: str) -> None:
    config = _parse(_set(_document(), ("training", "output_container"), name))
    assert config.output_container == name
    ledger = _set(_document(), ("ledger",), {"blob": f"{name}/census/ledger.jsonl"})
    assert _parse(ledger).ledger_blob == f"{name}/census/ledger.jsonl"


@pytest.mark.parametrize("name", BAD_CONTAINERS)
def test_invalid_container_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        _parse(_set(_document(), ("training", "output_container"), name))
    message = str(info.value)
    assert message.startswith(f"{SOURCE}: training.output_container: {name!r} is not a valid")
    assert "3 to 63 characters" in message and "lowercase letters" in message

    with pytest.raises(ConfigurationError) as info:
        _parse(_set(_document(), ("ledger",), {"blob": f"{name}/ledger.jsonl"}))
    assert str(info.value).startswith(f"{SOURCE}: ledger.blob: {name!r} is not a valid container")


@pytest.mark.parametrize("blob", ["ledger.jsonl", "/c/ledger.jsonl", "ledger/", ""])
def test_a_ledger_blob_needs_a_container_and_a_name(blob: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape("ledger.blob: must be 'container/path")):
        _parse(_set(_document(), ("ledger",), {"blob": blob}))


# -- gate numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("thresholds", "key"),
    [
        ({"AUC": NAN}, "gate.thresholds.AUC"),
        ({"AUC": INF}, "gate.thresholds.AUC"),
        ({"Average Log Loss": {"max": NAN}}, 'gate.thresholds."Average Log Loss".max'),
        ({"AUC": {"min": -INF}}, "gate.thresholds.AUC.min"),
    ],
)
def test_gate_thresholds_must_be_finite(thresholds: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        _parse(_set(_document(), ("gate", "thresholds"), thresholds))
    assert str(info.value).startswith(f"{SOURCE}: {key}: must be a finite number, not ")


def _data_config(tmp_path: Path) -> RetrainConfig:
    path = tmp_path / "retrain.toml"
    path.write_text(FULL)
    return load_config(path, environ=ENV)


def test_training_data_is_a_local_file_or_an_explicit_blob(tmp_path: Path) -> None:
    from amlretrain.blobs import BlobRef

    config = _data_config(tmp_path)
    (tmp_path / "new.csv").write_text("a,b\n1,2\n")
    assert config.training_data("new.csv") == tmp_path / "new.csv"
    assert config.training_data("blob:inputs/2024/new.csv") == "inputs/2024/new.csv"
    url = "https://acct.blob.core.windows.net/inputs/new.csv"
    assert config.training_data(url) == BlobRef.from_url(url)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    (elsewhere / "other.tsv").write_text("a\tb\n")
    assert config.training_data("other.tsv", base=elsewhere) == elsewhere / "other.tsv"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "does_not_exist.csv",
            r"training data 'does_not_exist.csv': no such file .*does_not_exist",
        ),
        ("inputs/new.csv", r"no such file .*did you mean the blob 'blob:inputs/new.csv'\?"),
        ("data.json", r"'data.json': must end in \.csv, \.tsv, \.arff"),
        ("blob:inputs/new.json", r"must end in"),
        ("blob:Bad_Container/new.csv", r"valid container name"),
        ("blob:inputs", r"must end in"),
        ("blob:inputs/", r"must end in"),
        ("https://acct.blob.core.windows.net/inputs/model.ilearner", r"must end in"),
    ],
)
def test_bad_training_data_is_refused_naming_it(tmp_path: Path, value: str, message: str) -> None:
    config = _data_config(tmp_path)
    with pytest.raises(ConfigurationError, match=message) as caught:
        config.training_data(value)
    assert str(tmp_path / "retrain.toml") in str(caught.value)


def test_a_missing_folder_of_the_same_name_is_not_a_blob_hint(tmp_path: Path) -> None:
    config = _data_config(tmp_path)
    (tmp_path / "inputs").mkdir()
    with pytest.raises(ConfigurationError) as caught:
        config.training_data("inputs/missing.csv", base=tmp_path)
    assert "did you mean" not in str(caught.value)
