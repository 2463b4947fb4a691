"""``amlretrain prune``: delete the model blobs the ledger's history no longer needs."""

from __future__ import annotations

import argparse
from typing import Any

from amlretrain.cli._common import add_output_flag, emit

__all__ = ["register"]


def _count(text: str) -> int:
    """``--keep``'s value: an integer (its range is checked by the library, naming --keep)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None


def register(subparsers: Any) -> None:
    """Add the ``prune`` command."""
    p = subparsers.add_parser(
        "prune",
        help="delete model blobs no target serves or may roll back to (see docs/retention.md)",
        description="Delete the model blobs the config's ledger knows that no target "
        "serves, that are older than each target's last N models, and that no target's "
        "rollback would restore. A target with an open intent or an unknown outcome keeps "
        "every model it touched. Only blobs of the config's storage account are deleted; "
        "models elsewhere are reported. See docs/retention.md.",
    )
    p.add_argument("--config", "-c", required=True, help="the retrain.toml (its ledger, storage)")
    p.add_argument(
        "--keep",
        type=_count,
        required=True,
        metavar="N",
        help="keep the last N models each target served (N >= 1), and what was recorded since",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan and delete nothing")
    p.add_argument(
        "--allow-rollback-loss",
        action="store_true",
        help="also delete the previous model of a target's latest deployment (where "
        "`amlretrain rollback` would go) when no other rule keeps it",
    )
    add_output_flag(p)
    p.set_defaults(handler=_prune)


def _prune(args: argparse.Namespace) -> int:
    from amlretrain._numbers import checked_int
    from amlretrain.config import load_config
    from amlretrain.retention import MAX_KEEP, prune

    keep = checked_int(args.keep, name="--keep", low=1, high=MAX_KEEP)  # before any read
    config = load_config(args.config)
    with config.store() as store:
        report = prune(
            config.ledger(),
            store,
            keep=keep,
            allow_rollback_loss=args.allow_rollback_loss,
            dry_run=args.dry_run,
        )
    emit(args, report.to_dict(), report.summary())
    return 0
