"""User code named ``"package.module:function"``: loaded once, its failures described safely.

The guarded rollout calls the user's own Python in two places: callable alarms
(:class:`amlretrain.alarms.CallableAlarm`) and notification hooks
(:class:`amlretrain.notify.Notifier`). Both name the function the same way, load it with
:func:`load_callable` when the settings are read (a typo is refused before anything is
deployed) and describe what it raised with :func:`describe_error` (redacted, one line).

Example:
    >>> load_callable("json:dumps", where="retrain.toml [rollout.notify]")([1])
    '[1]'
    >>> load_callable("json", where="retrain.toml [rollout.notify]")
    Traceback (most recent call last):
    ...
    amlretrain.errors.ConfigurationError: retrain.toml [rollout.notify]: 'json': not \
"package.module:function" (no colon)
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from amlretrain._redact import REDACTED, redact
from amlretrain.errors import ConfigurationError

__all__ = ["describe_error", "json_ready", "load_callable", "scrub"]

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_SHOWN = 300  # characters of an error's text kept in a description


def load_callable(spec: object, *, where: str) -> Callable[..., Any]:
    """The function named by ``spec`` (``"package.module:function"``), imported now.

    The part after the colon may be a dotted path (``"pkg.mod:Monitor.check"``).

    Args:
        spec: the name as given (from retrain.toml or a constructor).
        where: what the setting is, first in every message (``"retrain.toml
            [[rollout.alarms]] #2"``).

    Raises:
        ConfigurationError: not a string of that form, the module cannot be imported
            (missing, or it raised), it has no such attribute, or the attribute is not
            callable; the message names ``where`` and ``spec``.
    """
    if not isinstance(spec, str):
        raise ConfigurationError(
            f'{where}: must be a "package.module:function" string, not {type(spec).__name__}'
        )
    shown = redact(spec)
    if ":" not in spec:
        raise ConfigurationError(f'{where}: {shown!r}: not "package.module:function" (no colon)')
    module_name, _, attribute = spec.strip().partition(":")
    if not _DOTTED.match(module_name) or not _DOTTED.match(attribute):
        raise ConfigurationError(
            f'{where}: {shown!r}: not "package.module:function" (dotted Python names on '
            "each side of one colon)"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = err.name or module_name
        if module_name == missing or module_name.startswith(f"{missing}."):
            raise ConfigurationError(
                f"{where}: {shown!r}: no module named {missing!r} (is it installed, or on "
                "PYTHONPATH?)"
            ) from None
        raise ConfigurationError(
            f"{where}: {shown!r}: importing {module_name!r} failed: {describe_error(err)}"
        ) from None
    except Exception as err:  # the user's module raised while being imported
        raise ConfigurationError(
            f"{where}: {shown!r}: importing {module_name!r} failed: {describe_error(err)}"
        ) from None
    found: Any = module
    for depth, part in enumerate(attribute.split(".")):
        if not hasattr(found, part):
            owner = ".".join([module_name, *attribute.split(".")[:depth]])
            raise ConfigurationError(f"{where}: {shown!r}: {owner!r} has no attribute {part!r}")
        found = getattr(found, part)
    if not callable(found):
        raise ConfigurationError(
            f"{where}: {shown!r}: is {type(found).__name__} {_short(repr(found))}, not a function"
        )
    function: Callable[..., Any] = found
    return function


def describe_error(
    err: BaseException, *, hide: Sequence[str] = (), mask: Sequence[str] = ()
) -> str:
    """``"<ExceptionType>: <text>"``, redacted and at most a few hundred characters.

    Args:
        err: the exception.
        hide: texts removed before redaction (a webhook's query string, say).
        mask: texts replaced by ``REDACTED`` (the values of that query string).
    """
    text = str(err).strip()
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return scrub(text, hide=hide, mask=mask)


def scrub(text: str, *, hide: Sequence[str] = (), mask: Sequence[str] = ()) -> str:
    """``text`` on one line, without each of ``hide``, each of ``mask`` replaced by
    ``REDACTED`` (longest first), redacted, at most a few hundred characters."""
    for secret in sorted((h for h in hide if h), key=len, reverse=True):
        text = text.replace(secret, "")
    for secret in sorted((m for m in mask if m), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _short(redact(text))


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def json_ready(value: Any) -> Any:
    """``value`` as JSON data (what a hook may return or be given): mappings and
    sequences copied, keys as strings, non-finite floats as None, other objects as
    their ``str``."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_ready(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)
