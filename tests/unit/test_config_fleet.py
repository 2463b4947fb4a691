"""The fleet settings of retrain.toml: waves, bake, max_failures, [training] concurrency."""

from __future__ import annotations

import pytest

from amlretrain.errors import ConfigurationError
from amlretrain.waves import FailureBudget, Waves
from tests.unit.test_config import SOURCE, _document, _parse, _set


def test_a_config_without_fleet_settings_gets_the_defaults() -> None:
    config = _parse(_document())
    assert config.waves is None and config.max_failures is None
    assert config.bake == 0.0
    assert config.training_concurrency == 4
    assert _parse(_set(_document(), ("concurrency",), 9)).training_concurrency == 4  # separate


def test_waves_read_a_string_or_an_array() -> None:
    assert _parse(_set(_document(), ("waves",), "1,10%,100%")).waves == Waves.parse("1,10%,100%")
    assert str(_parse(_set(_document(), ("waves",), [1, "50%", "100%"])).waves) == "1,50%,100%"


def test_the_budget_reads_a_count_or_a_share() -> None:
    assert _parse(_set(_document(), ("max_failures",), 0)).max_failures == FailureBudget(count=0)
    share = _parse(_set(_document(), ("max_failures",), "10%")).max_failures
    assert share == FailureBudget(percent=10.0)


def test_bake_and_the_training_concurrency_are_read() -> None:
    config = _parse(_set(_set(_document(), ("bake",), 90), ("training", "concurrency"), 2))
    assert config.bake == 90.0 and config.training_concurrency == 2


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("waves",), "1,10%", r"waves: the last wave is 10%, not 100%"),
        (("waves",), [1, True, "100%"], r"waves: True is not a number"),
        (("waves",), 5, r"waves: must be a string or an array, not int"),
        (("max_failures",), -2, r"max_failures: must be 0 or more, not -2"),
        (("max_failures",), "many", r"max_failures: 'many' is not a count"),
        (("max_failures",), 1.5, r"max_failures: must be an integer or a string, not float"),
        (("bake",), -1, r"bake: must be a finite number between 0 and 86400 s, not -1"),
        (("training", "concurrency"), 0, r"training\.concurrency: must be an integer between 1"),
    ],
)
def test_a_bad_fleet_setting_names_the_file_and_key(
    path: tuple[str, ...], value: object, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=f"^{SOURCE}: {message}"):
        _parse(_set(_document(), path, value))
