"""User code for tests/unit/test_alarms.py and test_notify.py: alarms and hooks of each kind.

Named in the tests as ``"tests.unit._alarm_hooks:<function>"``, as a user names theirs in
retrain.toml.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: What the notification hooks received: (hook, event, payload).
CALLS: list[tuple[str, str, Any]] = []
#: What the alarms received: (observation, context).
SEEN: list[tuple[Any, Any]] = []

NOT_CALLABLE = 42


def quiet(observation: Any, context: Any) -> None:
    SEEN.append((observation, context))


def quiet_false(observation: Any, context: Any) -> bool:
    return False


def fires_true(observation: Any, context: Any) -> bool:
    return True


def fires_reason(observation: Any, context: Any) -> str:
    return f"too many errors in {context.stage} of {context.run_id}"


def fires_mapping(observation: Any, context: Any) -> Mapping[str, Any]:
    return {
        "reason": "conversion fell",
        "value": 0.02,
        "threshold": 0.05,
        "store": "metrics-db",
        "token": "s3cr3t-token",
    }


def fires_when_psi_high(observation: Any, context: Any) -> str | None:
    psi = observation.psi
    return f"psi {psi:.2f}" if psi is not None and psi > 0.5 else None


def raises(observation: Any, context: Any) -> None:
    raise RuntimeError("metrics store down: https://m.example.com/q?sig=s3cr3t")


def returns_number(observation: Any, context: Any) -> int:
    return 1


def returns_bad_value(observation: Any, context: Any) -> Mapping[str, Any]:
    return {"value": "high"}


class Monitor:
    @staticmethod
    def check(observation: Any, context: Any) -> bool:
        return True


def record(event: str, payload: Any) -> None:
    CALLS.append(("record", event, payload))


def record_again(event: str, payload: Any) -> None:
    CALLS.append(("record_again", event, payload))


def broken(event: str, payload: Any) -> None:
    raise ValueError("chat service refused: Bearer abc.def.ghi")
