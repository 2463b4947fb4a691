"""Credentials amlretrain adds to azure-identity's: a fixed bearer token.

For a token obtained elsewhere (``az account get-access-token``, a CI secret) or the
local emulator's ARM token. Everything else uses azure-identity
(``DefaultAzureCredential``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken

__all__ = ["StaticTokenCredential"]


class StaticTokenCredential:
    """An azure-core ``TokenCredential`` that always returns the same token.

    Args:
        token: the bearer token (a secret: never shown).
        expires_on: its expiry as a POSIX timestamp (default: one hour from now).
    """

    def __init__(self, token: str, *, expires_on: int | None = None) -> None:
        if not token:
            from amlretrain.errors import ConfigurationError

            raise ConfigurationError("a bearer token is required")
        self._token = token
        self._expires_on = expires_on or int(time.time()) + 3600

    def __repr__(self) -> str:
        return "StaticTokenCredential(<token hidden>)"

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """The token (scopes are ignored)."""
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, self._expires_on)
