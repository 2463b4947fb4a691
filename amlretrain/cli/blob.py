"""``amlretrain blob sas``: mint a read SAS for a model blob, for scripts.

The one documented exception to "no secret in CLI output": the SAS URL is printed on
stdout, and only there (never on stderr, never in a log line).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from amlretrain.cli._common import add_group
from amlretrain.errors import ConfigurationError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``blob`` command group."""
    commands = add_group(
        subparsers,
        "blob",
        help="blobs of the config's storage account: sas",
        description="Work with the blobs of a retrain.toml's storage account.",
    )
    sas = commands.add_parser(
        "sas",
        help="print a read SAS URL for a blob (the only command that prints a secret)",
        description="Mint a read-only SAS for one blob of the config's storage account and "
        "print the SAS URL on stdout (only there: never on stderr or in a log). For scripts "
        "that need the URL a service can read, e.g. `amlretrain deploy --model "
        '"$(amlretrain blob sas URL -c retrain.toml)"` (deploy also mints one itself).',
    )
    sas.add_argument("url", help="the blob URL (a SAS it carries is ignored)")
    sas.add_argument("--config", "-c", required=True, help="the retrain.toml (its [storage])")
    sas.add_argument(
        "--days",
        type=float,
        help="lifetime in days (default: the config's model_sas_days; at most 365 with an "
        "account key, 7 by user delegation)",
    )
    sas.set_defaults(handler=_sas)


def _sas(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from amlretrain._numbers import SAS_DAYS_ACCOUNT_KEY, checked
    from amlretrain.blobs import BlobRef
    from amlretrain.config import load_config

    config = load_config(args.config)
    days = config.model_sas_days
    if args.days is not None:
        low, high = SAS_DAYS_ACCOUNT_KEY
        days = checked(args.days, name="--days", low=low, high=high, unit="days")
    store = config.store()
    ref = BlobRef.from_url(args.url)
    if not store.owns(ref):
        raise ConfigurationError(
            f"{ref.url} is not in the storage account of {config.source} ({store.account_url})"
        )
    if not store.exists(ref):
        raise ConfigurationError(f"{ref.url} does not exist")
    minted = store.sas(ref, expires_in=timedelta(days=days))
    sys.stdout.write(minted.sas_url + "\n")  # the documented exception: stdout only
    return 0
