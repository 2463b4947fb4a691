"""Waves cut a fleet into cumulative stages; a failure budget says when a run halts."""

from __future__ import annotations

import pytest

from amlretrain.errors import ConfigurationError
from amlretrain.waves import FailureBudget, Waves


@pytest.mark.parametrize(
    ("spec", "total", "sizes"),
    [
        ("1,10%,50%,100%", 40, [1, 3, 16, 20]),
        ("1,10%,50%,100%", 5, [1, 2, 2]),  # 10% of 5 is 1: no wave of 0 targets
        ("1,10%,50%,100%", 1, [1]),
        ("100%", 7, [7]),
        ("2, 5 ,100%", 20, [2, 3, 15]),
        ("25%,25%,100%", 8, [2, 6]),
        ("50,100%", 10, [10]),  # a count above the fleet is capped
    ],
)
def test_waves_are_cumulative_in_config_order(spec: str, total: int, sizes: list[int]) -> None:
    items = list(range(total))
    waves = Waves.parse(spec).split(items)
    assert [len(w) for w in waves] == sizes
    assert [i for w in waves for i in w] == items  # every target once, in order


def test_waves_read_a_toml_list_of_counts_and_shares() -> None:
    assert str(Waves.parse([1, "10%", "100%"])) == "1,10%,100%"


def test_no_targets_make_no_waves() -> None:
    assert Waves.parse("1,100%").split([]) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", r"waves: no waves given"),
        ("1,10%", r"waves: the last wave is 10%, not 100%"),
        ("1,50%,10%,100%", r"waves\[2\]: 10% is below the wave before it \(50%\)"),
        ("0,100%", r"waves\[0\]: '0': a wave has at least 1 target"),
        ("1,150%", r"waves\[1\]: '150%': a share must be above 0% and at most 100%"),
        ("1,ten%,100%", r"waves\[1\]: 'ten%' is not a share of targets"),
        ("-1,100%", r"waves\[0\]: '-1' is not a number of targets or a share"),
        ("1,,100%", r"waves\[1\]: '' is not a number of targets"),
        ("1,nan%,100%", r"waves\[1\]: 'nan%': a share must be above 0%"),
    ],
)
def test_a_bad_wave_list_is_refused_naming_the_step(spec: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Waves.parse(spec)


def test_a_bad_toml_value_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"waves: True is not a number"):
        Waves.parse([True, "100%"], where="waves")
    with pytest.raises(ConfigurationError, match="must be a list"):
        Waves.parse(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "total", "allowed"),
    [(0, 10, 0), (3, 10, 3), ("3", 10, 3), ("10%", 10, 1), ("10%", 9, 0), ("25%", 10, 2),
     ("100%", 4, 4), ("0%", 50, 0)],
)  # fmt: skip
def test_a_failure_budget_is_a_count_or_a_share_rounded_down(
    value: str | int, total: int, allowed: int
) -> None:
    budget = FailureBudget.parse(value)
    assert budget.allowed(total) == allowed
    assert not budget.exceeded(allowed, total)
    assert budget.exceeded(allowed + 1, total)


@pytest.mark.parametrize(
    ("value", "message"),
    [(-1, "must be 0 or more"), ("ten", "is not a count"), ("120%", "between 0% and 100%"),
     (True, "must be a count"), (1.5, "must be a count")],
)  # fmt: skip
def test_a_bad_failure_budget_is_refused(value: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"max_failures: .*{message}|{message}"):
        FailureBudget.parse(value)  # type: ignore[arg-type]


def test_the_module_examples_run() -> None:
    import doctest

    import amlretrain.waves

    result = doctest.testmod(amlretrain.waves)
    assert result.attempted > 0
    assert result.failed == 0
