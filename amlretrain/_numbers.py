"""Range checks of numeric settings: a real number (not a boolean), finite, within bounds.

Used where settings come in (``retrain.toml``, the library constructors) so that a bad
value is refused before anything runs. TOML allows ``nan`` and ``inf``: both are refused.

Example:
    >>> checked(5, name="polling_interval", low=0.05, high=300.0)
    5.0
    >>> checked(float("nan"), name="t", low=1, high=60)
    Traceback (most recent call last):
    ...
    amlretrain.errors.ConfigurationError: t: must be a finite number between 1 and 60 s, not nan
"""

from __future__ import annotations

import math
from typing import Final

from amlretrain.errors import ConfigurationError

__all__ = [
    "CONCURRENCY",
    "DURATION",
    "POLLING_INTERVAL",
    "SAS_DAYS_ACCOUNT_KEY",
    "SAS_DAYS_USER_DELEGATION",
    "checked",
    "checked_int",
]

#: Seconds between long-running-operation polls.
POLLING_INTERVAL: Final[tuple[float, float]] = (0.05, 300.0)
#: Seconds of a wait or deadline (timeouts, grace periods): 1 s to 24 h.
DURATION: Final[tuple[float, float]] = (1.0, 86400.0)
#: Targets deployed at a time.
CONCURRENCY: Final[tuple[int, int]] = (1, 256)
#: Days a model's read SAS lives when signed with an account key.
SAS_DAYS_ACCOUNT_KEY: Final[tuple[float, float]] = (1.0, 365.0)
#: Days a model's read SAS lives when signed by user delegation (the key lives 7 days).
SAS_DAYS_USER_DELEGATION: Final[tuple[float, float]] = (1.0, 7.0)

_SHOWN = 40  # characters of a bad value quoted in a message


def checked(value: object, *, name: str, low: float, high: float, unit: str = "s") -> float:
    """``value`` as a float, when it is a finite real number with ``low <= value <= high``.

    Integers are accepted; booleans are not numbers. ``low`` or ``high`` may be infinite
    (no bound on that side); the value itself must always be finite.

    Args:
        value: the setting as given.
        name: the setting's name, first in the message (``"targets[1].polling_interval"``).
        low, high: the inclusive bounds.
        unit: the unit of the bounds in the message (``"s"``, ``"days"``; ``""``: none).

    Raises:
        ConfigurationError: ``"<name>: must be a finite number between <low> and <high>
            <unit>, not <value>"``.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        # float() of a huge int overflows: such an int is out of every finite range anyway
        number = _as_float(value)
        if math.isfinite(number) and low <= number <= high:
            return number
    raise ConfigurationError(
        f"{name}: must be {_wanted('a finite number', low, high, unit)}, not {_shown(value)}"
    )


def checked_int(value: object, *, name: str, low: int, high: int, unit: str = "") -> int:
    """``value`` as an int, when it is an integer (not a boolean) with ``low <= value <= high``.

    A float is refused, even ``4.0``: the setting counts things.

    Raises:
        ConfigurationError: ``"<name>: must be an integer between <low> and <high>, not
            <value>"``.
    """
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return int(value)
    raise ConfigurationError(
        f"{name}: must be {_wanted('an integer', low, high, unit)}, not {_shown(value)}"
    )


def _as_float(value: float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _wanted(kind: str, low: float, high: float, unit: str) -> str:
    suffix = f" {unit}" if unit else ""
    if math.isinf(low) and math.isinf(high):
        return kind
    if math.isinf(high):
        return f"{kind} of at least {_number(low)}{suffix}"
    if math.isinf(low):
        return f"{kind} of at most {_number(high)}{suffix}"
    return f"{kind} between {_number(low)} and {_number(high)}{suffix}"


def _number(bound: float) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int) and value.bit_length() > 128:
        text = f"an integer of {value.bit_length()} bits"  # str() of a huge int may raise
    elif isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, str):
        text = f"the string {value!r}"
    elif value is None:
        text = "None"
    else:
        text = f"{type(value).__name__} {value!r}"
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
