"""_numbers: range checks of numeric settings (finite, not a boolean, within bounds)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from amlretrain._numbers import (
    CONCURRENCY,
    DURATION,
    POLLING_INTERVAL,
    SAS_DAYS_ACCOUNT_KEY,
    SAS_DAYS_USER_DELEGATION,
    checked,
    checked_int,
)
from amlretrain.errors import ConfigurationError


def test_the_ranges() -> None:
    assert POLLING_INTERVAL == (0.05, 300.0)
    assert DURATION == (1.0, 86400.0)
    assert CONCURRENCY == (1, 256)
    assert SAS_DAYS_ACCOUNT_KEY == (1.0, 365.0)
    assert SAS_DAYS_USER_DELEGATION == (1.0, 7.0)


@pytest.mark.parametrize("value", [0.05, 1, 5.0, 300, 300.0])
def test_values_in_range_come_back_as_floats(value: float) -> None:
    result = checked(value, name="polling_interval", low=0.05, high=300.0)
    assert result == value
    assert type(result) is float


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (math.nan, "nan"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        (-1, "-1"),
        (0, "0"),
        (0.049, "0.049"),
        (300.5, "300.5"),
        (True, "a boolean (true)"),
        (False, "a boolean (false)"),
        ("5", "the string '5'"),
        (None, "None"),
        ([5], "list [5]"),
    ],
)
def test_bad_values_are_refused_with_name_value_and_range(value: Any, shown: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        checked(value, name="polling_interval", low=0.05, high=300.0)
    assert str(info.value) == (
        f"polling_interval: must be a finite number between 0.05 and 300 s, not {shown}"
    )


def test_the_unit_and_open_bounds_in_the_message() -> None:
    with pytest.raises(ConfigurationError, match=r"between 1 and 7 days, not 8$"):
        checked(8, name="d", low=1, high=7, unit="days")
    with pytest.raises(ConfigurationError, match=r"^m: must be a finite number of at least 0, "):
        checked(-1, name="m", low=0, high=math.inf, unit="")
    with pytest.raises(ConfigurationError, match=r"^m: must be a finite number of at most 1 s, "):
        checked(2, name="m", low=-math.inf, high=1)
    with pytest.raises(ConfigurationError, match=r"^t: must be a finite number, not nan$"):
        checked(math.nan, name="t", low=-math.inf, high=math.inf)
    # open bounds still refuse infinities
    with pytest.raises(ConfigurationError, match="not inf"):
        checked(math.inf, name="t", low=-math.inf, high=math.inf)
    assert checked(1e300, name="t", low=0, high=math.inf) == 1e300


def test_huge_integers_are_refused_not_crashed_on() -> None:
    with pytest.raises(ConfigurationError, match="an integer of"):
        checked(10**5000, name="t", low=1, high=math.inf)
    with pytest.raises(ConfigurationError, match="an integer of"):
        checked_int(10**5000, name="c", low=1, high=256)
    assert checked(10**20, name="t", low=1, high=math.inf) == 1e20


def test_a_long_value_is_shortened_in_the_message() -> None:
    with pytest.raises(ConfigurationError) as info:
        checked("x" * 500, name="t", low=1, high=2)
    assert len(str(info.value)) < 120
    assert str(info.value).endswith("...")


def test_checked_int() -> None:
    assert checked_int(1, name="concurrency", low=1, high=256) == 1
    assert checked_int(256, name="concurrency", low=1, high=256) == 256
    for bad, shown in [
        (0, "0"),
        (257, "257"),
        (4.0, "4.0"),
        (math.nan, "nan"),
        (True, "a boolean (true)"),
        ("4", "the string '4'"),
    ]:
        with pytest.raises(ConfigurationError) as info:
            checked_int(bad, name="concurrency", low=1, high=256)
        assert str(info.value) == f"concurrency: must be an integer between 1 and 256, not {shown}"


def test_the_module_depends_on_errors_only() -> None:
    import ast
    from pathlib import Path

    import amlretrain._numbers as module

    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert {name for name in imported if name and name.startswith("amlretrain")} == {
        "amlretrain.errors"
    }
