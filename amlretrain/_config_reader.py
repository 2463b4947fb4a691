"""Typed reads of a ``retrain.toml`` table, with errors that name the file and the key.

:class:`Reader` is what :mod:`amlretrain.config` and :mod:`amlretrain._config_training`
read their tables with: ``retrain.toml: targets[2].endpoint: required``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from amlretrain._numbers import checked, checked_int
from amlretrain.errors import ConfigurationError

__all__ = ["CONTAINER_NAME", "CONTAINER_RULE", "Reader"]

#: An Azure blob container name: 3-63 characters, lowercase letters, digits and single
#: hyphens, starting and ending with a letter or a digit.
CONTAINER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
CONTAINER_RULE = (
    "a container name is 3 to 63 characters: lowercase letters, digits and single "
    "hyphens, starting and ending with a letter or a digit"
)


class Reader:
    """Typed access to a TOML table, with errors that name the file and key."""

    def __init__(self, source: str, table: Mapping[str, Any], where: str) -> None:
        self.source = source
        self.table = table
        self.where = where
        self.used: set[str] = set()

    def name(self, key: str) -> str:
        """The key's full name (``targets[1].polling_interval``)."""
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, message: str) -> ConfigurationError:
        return ConfigurationError(f"{self.source}: {self.name(key)}: {message}")

    def number(
        self,
        key: str,
        default: float,
        bounds: tuple[float, float],
        *,
        unit: str = "s",
        hint: str = "",
    ) -> float:
        """A finite number within ``bounds`` (inclusive); ``default`` when absent."""
        self.used.add(key)
        if key not in self.table:
            return default
        low, high = bounds
        try:
            return checked(self.table[key], name=self.name(key), low=low, high=high, unit=unit)
        except ConfigurationError as err:
            raise ConfigurationError(f"{self.source}: {err.message}{hint}") from None

    def integer(self, key: str, default: int, bounds: tuple[int, int]) -> int:
        """An integer within ``bounds`` (inclusive); ``default`` when absent."""
        self.used.add(key)
        if key not in self.table:
            return default
        low, high = bounds
        try:
            return checked_int(self.table[key], name=self.name(key), low=low, high=high)
        except ConfigurationError as err:
            raise ConfigurationError(f"{self.source}: {err.message}") from None

    def container(self, key: str, name: str) -> str:
        """``name``, when it is a valid blob container name."""
        if not CONTAINER_NAME.fullmatch(name):
            raise self.fail(key, f"{name!r} is not a valid container name: {CONTAINER_RULE}")
        return name

    def get(
        self,
        key: str,
        kind: type | tuple[type, ...],
        default: Any = None,
        *,
        required: bool = False,
    ) -> Any:
        self.used.add(key)
        if key not in self.table:
            if required:
                raise self.fail(key, "required")
            return default
        value = self.table[key]
        if (
            isinstance(value, bool)
            and kind is not bool
            and not (isinstance(kind, tuple) and bool in kind)
        ):
            raise self.fail(key, f"must be {_kind_name(kind)}, not a boolean")
        if not isinstance(value, kind):
            raise self.fail(key, f"must be {_kind_name(kind)}, not {type(value).__name__}")
        return value

    def secret(self, key: str, environ: Mapping[str, str], *, required: bool = True) -> str | None:
        """A secret named by ``<key>_env`` (an environment variable)."""
        if key in self.table:
            raise self.fail(
                key,
                "secrets are not written in the file: name the environment variable "
                f"with {key}_env",
            )
        env = self.get(f"{key}_env", str)
        if env is None:
            if required:
                raise self.fail(f"{key}_env", "required (the environment variable holding it)")
            return None
        value = environ.get(env)
        if not value:
            raise self.fail(f"{key}_env", f"the environment variable {env} is not set")
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.fail(unknown[0], "unknown key (a typo?)")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "an array",
        dict: "a table",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)
