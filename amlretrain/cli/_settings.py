"""Connection settings for the service commands: flags, environment, profile file.

Each setting is taken from the first of: its command-line flag, its environment variable,
the profile named by ``--profile`` (or ``AMLRETRAIN_PROFILE``, default ``default``) in
``~/.config/amlretrain/profiles.toml`` (``$XDG_CONFIG_HOME`` honoured;
``AMLRETRAIN_PROFILES`` names another file). Secrets are best kept in the environment or
the profile file (mode 0600) rather than on the command line.

| setting | flag | environment | profile key |
|---|---|---|---|
| subscription | ``--subscription-id`` | ``AMLRETRAIN_SUBSCRIPTION_ID`` | ``subscription_id`` |
| resource group | ``--resource-group`` | ``AMLRETRAIN_RESOURCE_GROUP`` | ``resource_group`` |
| ARM endpoint | ``--arm-base-url`` | ``AMLRETRAIN_ARM_BASE_URL`` | ``arm_base_url`` |
| ARM bearer token | – | ``AMLRETRAIN_ARM_TOKEN`` | ``arm_token`` |
| workspace | ``--workspace-id`` | ``AMLRETRAIN_WORKSPACE_ID`` | ``workspace_id`` |
| workspace token | – | ``AMLRETRAIN_WORKSPACE_TOKEN`` | ``workspace_token`` |
| region | ``--region`` | ``AMLRETRAIN_REGION`` | ``region`` |
| management API | ``--management-url`` | ``AMLRETRAIN_MANAGEMENT_URL`` | ``management_url`` |
| endpoint ApiLocation | ``--api-location`` | ``AMLRETRAIN_API_LOCATION`` | ``api_location`` |
| endpoint API key | – | ``AMLRETRAIN_API_KEY`` | ``api_key`` |
| storage | – | ``AMLRETRAIN_STORAGE_CONNECTION_STRING`` | ``storage_connection_string`` |

Without ``AMLRETRAIN_ARM_TOKEN``, ARM calls use azure-identity's ``DefaultAzureCredential``.
"""

from __future__ import annotations

import argparse
import logging
import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from amlretrain.errors import ConfigurationError

if TYPE_CHECKING:
    from amlretrain.storage import BlobStore
    from amlretrain.studio.batch import BatchClient
    from amlretrain.studio.management import ClassicClient
    from amlretrain.studio.webservices import WebServicesClient

__all__ = ["Settings", "add_arm_flags", "add_bes_flags", "add_classic_flags", "resolve"]

log = logging.getLogger(__name__)

#: setting name -> (flag attribute or None, environment variable)
_SOURCES: dict[str, tuple[str | None, str]] = {
    "subscription_id": ("subscription_id", "AMLRETRAIN_SUBSCRIPTION_ID"),
    "resource_group": ("resource_group", "AMLRETRAIN_RESOURCE_GROUP"),
    "arm_base_url": ("arm_base_url", "AMLRETRAIN_ARM_BASE_URL"),
    "arm_token": (None, "AMLRETRAIN_ARM_TOKEN"),
    "workspace_id": ("workspace_id", "AMLRETRAIN_WORKSPACE_ID"),
    "workspace_token": (None, "AMLRETRAIN_WORKSPACE_TOKEN"),
    "region": ("region", "AMLRETRAIN_REGION"),
    "management_url": ("management_url", "AMLRETRAIN_MANAGEMENT_URL"),
    "api_location": ("api_location", "AMLRETRAIN_API_LOCATION"),
    "api_key": (None, "AMLRETRAIN_API_KEY"),
    "storage_connection_string": (None, "AMLRETRAIN_STORAGE_CONNECTION_STRING"),
}


@attrs.frozen(kw_only=True)
class Settings:
    """Resolved connection settings (secrets never in ``repr``)."""

    subscription_id: str | None = None
    resource_group: str | None = None
    arm_base_url: str | None = None
    arm_token: str | None = attrs.field(default=None, repr=False)
    workspace_id: str | None = None
    workspace_token: str | None = attrs.field(default=None, repr=False)
    region: str | None = None
    management_url: str | None = None
    api_location: str | None = None
    api_key: str | None = attrs.field(default=None, repr=False)
    storage_connection_string: str | None = attrs.field(default=None, repr=False)

    def need(self, name: str) -> str:
        """The setting ``name``, or a ConfigurationError saying where to set it."""
        value = getattr(self, name)
        if not value:
            flag, env = _SOURCES[name]
            where = f"--{flag.replace('_', '-')}, " if flag else ""
            raise ConfigurationError(
                f"{name.replace('_', ' ')} is not set: use {where}{env} or the profile key {name}"
            )
        return str(value)

    # -- clients --------------------------------------------------------------------------

    def arm_client(self, *, polling_interval: float = 5) -> WebServicesClient:
        """A WebServicesClient for these settings."""
        from amlretrain.studio.webservices import WebServicesClient

        if self.arm_token:
            from amlretrain.credentials import StaticTokenCredential

            credential: Any = StaticTokenCredential(self.arm_token)
        else:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        kwargs: dict[str, Any] = {"polling_interval": polling_interval}
        if self.arm_base_url:
            kwargs["base_url"] = self.arm_base_url
            import urllib.parse

            from amlretrain.blobs import is_loopback_host

            if is_loopback_host(urllib.parse.urlsplit(self.arm_base_url).hostname):
                kwargs["polling_interval"] = min(polling_interval, 0.5)  # the emulator is fast
        return WebServicesClient(credential, self.need("subscription_id"), **kwargs)

    def classic_client(self) -> ClassicClient:
        """A ClassicClient for these settings."""
        from amlretrain.studio.management import ClassicClient

        return ClassicClient(
            self.need("workspace_id"),
            self.need("workspace_token"),
            region=self.region or "South Central US",
            base_url=self.management_url,
        )

    def batch_client(self) -> BatchClient:
        """A BatchClient for the endpoint named by ``api_location`` and ``api_key``."""
        from amlretrain.studio.batch import BatchClient

        return BatchClient(self.need("api_location"), self.need("api_key"))

    def store(self) -> BlobStore | None:
        """The BlobStore of ``storage_connection_string``, when set."""
        if not self.storage_connection_string:
            return None
        from amlretrain.storage import BlobStore

        return BlobStore.from_connection_string(self.storage_connection_string)


def _profile_path() -> Path:
    explicit = os.environ.get("AMLRETRAIN_PROFILES")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "amlretrain" / "profiles.toml"


def _load_profile(name: str | None) -> dict[str, Any]:
    path = _profile_path()
    if not path.is_file():
        if name:
            raise ConfigurationError(f"profile {name!r} asked for, but {path} does not exist")
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigurationError(f"cannot read {path}: {err}") from err
    if os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s is readable by other users; it may hold secrets: chmod 600 it", path)
    wanted = name or "default"
    profile = data.get(wanted)
    if profile is None:
        if name:
            raise ConfigurationError(f"{path} has no profile [{name}]")
        return {}
    if not isinstance(profile, dict):
        raise ConfigurationError(f"[{wanted}] in {path} is not a table")
    unknown = set(profile) - set(_SOURCES)
    if unknown:
        raise ConfigurationError(
            f"[{wanted}] in {path} has unknown keys: {', '.join(sorted(unknown))}"
        )
    return profile


def resolve(args: argparse.Namespace) -> Settings:
    """Settings from the flags in ``args``, then the environment, then the profile."""
    profile = _load_profile(getattr(args, "profile", None) or os.environ.get("AMLRETRAIN_PROFILE"))
    values: dict[str, Any] = {}
    for name, (flag, env) in _SOURCES.items():
        value = getattr(args, flag, None) if flag else None
        if not value:
            value = os.environ.get(env) or None
        if not value:
            value = profile.get(name)
        values[name] = str(value) if value is not None else None
    return Settings(**values)


def _common(parser: argparse.ArgumentParser) -> None:
    if not any(a.dest == "profile" for a in parser._actions):
        parser.add_argument("--profile", help="profile in ~/.config/amlretrain/profiles.toml")


def add_arm_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of the ARM commands (secrets come from the environment or the profile)."""
    _common(parser)
    parser.add_argument("--subscription-id", help="(AMLRETRAIN_SUBSCRIPTION_ID)")
    parser.add_argument("--arm-base-url", help="ARM endpoint (AMLRETRAIN_ARM_BASE_URL)")


def add_classic_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of the classic management commands."""
    _common(parser)
    parser.add_argument("--workspace-id", help="(AMLRETRAIN_WORKSPACE_ID)")
    parser.add_argument("--region", help="workspace region (AMLRETRAIN_REGION)")
    parser.add_argument("--management-url", help="management API URL (AMLRETRAIN_MANAGEMENT_URL)")


def add_bes_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of the batch job commands."""
    _common(parser)
    parser.add_argument(
        "--api-location", help="the endpoint's ApiLocation (AMLRETRAIN_API_LOCATION)"
    )
