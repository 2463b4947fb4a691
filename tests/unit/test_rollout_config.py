"""The guarded rollout's settings: the Rollout class, [rollout] in retrain.toml, --stages."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlretrain.alarms import Alarm, CallableAlarm
from amlretrain.champion import ChampionGate
from amlretrain.errors import ConfigurationError
from amlretrain.rollout import Rollout, read_probe


def _probe(tmp_path: Path) -> Path:
    path = tmp_path / "probe.csv"
    path.write_text("age,hours\n30,40\n50,20\n")
    return path


def test_stages_run_in_their_order_and_each_once() -> None:
    assert Rollout(stages=("canary",)).stages == ("canary",)
    with pytest.raises(ConfigurationError, match="unknown stage 'canery'"):
        Rollout(stages=("canery",))
    with pytest.raises(ConfigurationError, match="canary or linear, not both"):
        Rollout(stages=("canary", "linear"))
    with pytest.raises(ConfigurationError, match="in the order"):
        Rollout(stages=("canary", "smoke"))
    with pytest.raises(ConfigurationError, match="given twice"):
        Rollout(stages=("canary", "canary"))


def test_a_shadow_or_an_alarm_needs_probe_rows(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="shadow stage scores the probe rows"):
        Rollout(stages=("shadow", "canary"))
    with pytest.raises(ConfigurationError, match="alarms are evaluated on probe rounds"):
        Rollout(stages=("canary",), alarms=(Alarm(metric="psi", threshold=0.2),))
    rollout = Rollout(stages=("shadow", "canary"), probe=read_probe(_probe(tmp_path)))
    assert rollout.needs_candidate and rollout.live


def test_linear_waves_are_equal_steps() -> None:
    waves = Rollout(stages=("linear",), linear_steps=4).waves(None)
    assert waves is not None
    assert [len(w) for w in waves.split(list(range(8)))] == [2, 2, 2, 2]


def test_the_probe_file_is_checked_naming_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3\n")
    with pytest.raises(ConfigurationError, match="line 3: 1 values for 2 columns"):
        read_probe(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("a,b\n")
    with pytest.raises(ConfigurationError, match="no rows"):
        read_probe(empty)
    with pytest.raises(ConfigurationError, match="cannot read"):
        read_probe(tmp_path / "missing.csv")


def test_from_mapping_reads_every_key(tmp_path: Path) -> None:
    _probe(tmp_path)
    rollout = Rollout.from_mapping(
        {
            "stages": ["smoke", "shadow", "linear"],
            "probe": "probe.csv",
            "probe_interval": 5,
            "probe_batch": 2,
            "bake": 60,
            "linear_steps": 3,
            "alarms": [
                {"metric": "error_rate", "threshold": 0.1},
                {"check": "tests.unit._alarm_hooks:quiet", "name": "mine"},
            ],
            "champion": {"label": "income", "holdout_fraction": 0.2},
            "notify": {"hooks": ["tests.unit._alarm_hooks:quiet"]},
        },
        base=tmp_path,
    )
    assert rollout.stages == ("smoke", "shadow", "linear")
    assert rollout.probe is not None and len(rollout.probe.rows) == 2
    assert (rollout.probe_interval, rollout.probe_batch, rollout.bake) == (5.0, 2, 60.0)
    assert isinstance(rollout.alarms[0], Alarm) and isinstance(rollout.alarms[1], CallableAlarm)
    assert rollout.champion == ChampionGate(label="income", holdout_fraction=0.2)
    assert rollout.notify is not None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"stage": ["canary"]}, "unknown key 'stage'"),
        ({"stages": "canary"}, "stages: 'canary' is not of the right type"),
        ({"stages": ["canary"], "bake": True}, "bake: True is not of the right type"),
        ({"stages": ["canary"], "probe_interval": 0}, "probe_interval"),
        ({"stages": ["canary"], "alarms": ["x"]}, "alarms #1: must be a table"),
    ],
)
def test_from_mapping_names_what_is_wrong(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        Rollout.from_mapping(table, where="r.toml: [rollout]")
    assert "r.toml" in str(caught.value)


def test_retrain_toml_reads_rollout_relative_to_its_folder(tmp_path: Path) -> None:
    from amlretrain.config import parse_config

    _probe(tmp_path)
    document = {
        "training": {
            "api_location": "https://bes.example/jobs",
            "api_key_env": "K",
            "data": "d.csv",
        },
        "storage": {"account_url": "https://acct.blob.core.windows.net"},
        "targets": [
            {
                "kind": "classic",
                "workspace_id": "w",
                "token_env": "T",
                "web_service_id": "s",
                "endpoint": "e",
            }
        ],
        "rollout": {
            "stages": ["shadow", "canary"],
            "probe": "probe.csv",
            "champion": {"label": "income", "holdout": "holdout.csv"},
        },
    }
    source = str(tmp_path / "retrain.toml")
    try:
        config = parse_config(document, source=source, environ={"K": "k", "T": "t"})
    except ConfigurationError as err:  # a target key this test does not know: show it
        pytest.fail(str(err))
    assert config.rollout is not None and config.rollout.probe is not None
    assert config.rollout.champion is not None
    assert config.rollout.champion.holdout == tmp_path / "holdout.csv"


def test_recorded_requests_are_replayed_as_probe_rows(tmp_path: Path) -> None:
    import json

    path = tmp_path / "recorded.jsonl"
    body = {"Inputs": {"input1": {"ColumnNames": ["age", "hours"], "Values": [["30", "40"]]}}}
    again = {"Inputs": {"input1": {"ColumnNames": ["age", "hours"], "Values": [["50", "20"]]}}}
    path.write_text(json.dumps(body) + "\n\n" + json.dumps(again) + "\n")
    probe = read_probe(path)
    assert probe.columns == ("age", "hours")
    assert probe.rows == (("30", "40"), ("50", "20"))
    other = {"Inputs": {"input1": {"ColumnNames": ["age"], "Values": [["1"]]}}}
    path.write_text(json.dumps(body) + "\n" + json.dumps(other) + "\n")
    with pytest.raises(ConfigurationError, match="line 2: columns"):
        read_probe(path)
    path.write_text('{"Inputs": {}}\n')
    with pytest.raises(ConfigurationError, match="line 1: not a recorded request"):
        read_probe(path)
