"""One redaction function for every secret amlretrain may meet.

It replaces, wherever they appear in a text:

* SAS signatures: the value of ``sig=`` in a query string (``sig=REDACTED``);
* storage account keys in connection strings: ``AccountKey=REDACTED``;
* shared access signatures in connection strings: ``SharedAccessSignature=REDACTED``;
* bearer tokens and API keys in ``Authorization`` values: ``Bearer REDACTED``;
* JSON/dict members whose name says they hold a secret (``primary``, ``secondary``,
  ``PrimaryKey``, ``SecondaryKey``, ``key``, ``apiKey``, ``token``, ``password``,
  ``credentials``, ``AccountKey``, ``ConnectionString``, ``SasBlobToken`` ...);
* the ``value`` of a JSON Patch operation whose ``path`` names such a member
  (``{"op": "add", "path": "/properties/assets/a1/locationInfo/credentials", "value":
  ...}``), in data and in the text form ``add /.../credentials "..."``.

Anything that prints, logs, records or raises text passes it through :func:`redact`
(and structured data through :func:`redact_data`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "REDACTED",
    "SECRET_FIELD_NAMES",
    "is_secret_field",
    "is_secret_pointer",
    "redact",
    "redact_data",
]

REDACTED = "REDACTED"

#: Field names (compared case-insensitively) whose values are secrets.
SECRET_FIELD_NAMES = frozenset(
    name.lower()
    for name in (
        "primary",
        "secondary",
        "primaryKey",
        "secondaryKey",
        "key",
        "apiKey",
        "api_key",
        "token",
        "accessToken",
        "access_token",
        "authorizationToken",
        "password",
        "secret",
        "clientSecret",
        "client_secret",
        "credentials",
        "accountKey",
        "connectionString",
        "connection_string",
        "sasBlobToken",
        "sas_token",
        "sig",
        "authorization",
        "servicePrincipalKey",
    )
)

_NAMES = "|".join(sorted((re.escape(n) for n in SECRET_FIELD_NAMES), key=len, reverse=True))

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # sig=... in any URL or query string (stop at &, quote, whitespace).
    (re.compile(r"(?i)(\bsig=)[^&\s\"'<>]+"), r"\1" + REDACTED),
    # AccountKey=... / SharedAccessSignature=... in connection strings (stop at ;, quote, ws).
    (re.compile(r"(?i)(\bAccountKey=)[^;\s\"'<>]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)(\bSharedAccessSignature=)[^;\s\"'<>]+"), r"\1" + REDACTED),
    # Authorization: Bearer <token>
    (re.compile(r"(?i)(\bBearer\s+)(?!REDACTED)[A-Za-z0-9\-._~+/=]+"), r"\1" + REDACTED),
    # "primaryKey": "value" / 'primary': 'value' / ConnectionString='value' in JSON-ish text.
    (
        re.compile(rf"(?i)([\"']?(?:{_NAMES})[\"']?\s*[:=]\s*[\"'])(?!REDACTED)([^\"']+)([\"'])"),
        r"\1" + REDACTED + r"\3",
    ),
    # A JSON Pointer ending in a secret member, then its JSON string value (a patch line):
    # "add     /properties/assets/a1/locationInfo/credentials "value"".
    (
        re.compile(rf'(?i)(/(?:{_NAMES})\s+")(?!REDACTED")((?:[^"\\]|\\.)+)(")'),
        r"\1" + REDACTED + r"\3",
    ),
)


#: For an ASCII text (lower-cased), whether each of :data:`_PATTERNS` could match it:
#: what every match of the pattern must contain (ASCII case folding is exact there).
_ASCII_TRIGGERS: tuple[Callable[[str], bool], ...] = (
    lambda low: "sig=" in low,
    lambda low: "accountkey=" in low,
    lambda low: "sharedaccesssignature=" in low,
    lambda low: "bearer" in low,
    lambda low: ("=" in low or ":" in low) and ('"' in low or "'" in low),
    lambda low: "/" in low and '"' in low,
)


def redact(text: str) -> str:
    """Return ``text`` with every secret replaced by ``REDACTED``.

    >>> redact("https://a.blob.core.windows.net/c/m.ilearner?sv=2020&sig=abc%2Fdef&se=2030")
    'https://a.blob.core.windows.net/c/m.ilearner?sv=2020&sig=REDACTED&se=2030'
    >>> redact("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0==;")
    'DefaultEndpointsProtocol=https;AccountName=a;AccountKey=REDACTED;'
    """
    if text.isascii():  # the common case: skip the patterns that cannot match
        low = text.lower()
        for (pattern, repl), could_match in zip(_PATTERNS, _ASCII_TRIGGERS, strict=True):
            if could_match(low):
                text = pattern.sub(repl, text)
        return text
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def is_secret_field(name: str) -> bool:
    """True when a member of this name holds a secret (case-insensitive)."""
    return name.lower() in SECRET_FIELD_NAMES


def is_secret_pointer(path: str) -> bool:
    """True when the JSON Pointer ``path`` passes through a secret member (any case)."""
    return any(
        is_secret_field(part.replace("~1", "/").replace("~0", "~")) for part in path.split("/")[1:]
    )


def _redact_all(value: Any) -> Any:
    # Everything under a secret: every non-empty string is one.
    if isinstance(value, Mapping):
        return {k: _redact_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_all(v) for v in value]
    if isinstance(value, str) and value:
        return REDACTED
    return value


def redact_data(value: Any) -> Any:
    """Return a deep copy of JSON-like ``value`` with secrets replaced.

    Members whose name is a secret field get ``"REDACTED"`` (when they hold a non-empty
    string); so does the ``value`` of a JSON Patch operation whose ``path`` passes
    through one (every string in it, when it is an object or array); every other string
    goes through :func:`redact`.

    >>> redact_data({"op": "add", "path": "/a/locationInfo/credentials", "value": "pw"})
    {'op': 'add', 'path': '/a/locationInfo/credentials', 'value': 'REDACTED'}
    """
    if isinstance(value, Mapping):
        path = value.get("path")
        secret_value = isinstance(path, str) and is_secret_pointer(path)
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if isinstance(k, str) and is_secret_field(k) and isinstance(v, str) and v:
                out[k] = REDACTED
            elif secret_value and k == "value":
                out[k] = _redact_all(v)
            else:
                out[k] = redact_data(v)
        return out
    if isinstance(value, list | tuple):
        return [redact_data(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value
