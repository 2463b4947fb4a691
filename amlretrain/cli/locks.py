"""``amlretrain locks list|break``: the per-target deployment locks of a config's ledger."""

from __future__ import annotations

import argparse
from typing import Any

from amlretrain.cli._common import add_group, add_output_flag, emit
from amlretrain.errors import ConfigurationError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``locks`` command group."""
    commands = add_group(
        subparsers,
        "locks",
        help="the per-target deployment locks: list, break",
        description="One run deploys to a target at a time: it holds the target's lock "
        "(an OS file lock beside a local ledger, a blob lease beside a blob ledger) for "
        "the whole change. See docs/locks.md.",
    )

    p = commands.add_parser("list", help="the locks held now, with their holders")
    p.add_argument("--config", "-c", required=True, help="the retrain.toml")
    add_output_flag(p)
    p.set_defaults(handler=_list)

    b = commands.add_parser(
        "break",
        help="break a target's lock (a blob lease; a file lock only needs its holder gone)",
    )
    b.add_argument("target", help="the target: its label, ledger key, or index in the config")
    b.add_argument("--config", "-c", required=True, help="the retrain.toml")
    b.add_argument("--yes", action="store_true", help="do it (required)")
    add_output_flag(b)
    b.set_defaults(handler=_break)


def _list(args: argparse.Namespace) -> int:
    from amlretrain.config import load_config
    from amlretrain.locks import locks_for

    held = locks_for(load_config(args.config)).list()
    lines = []
    for info in held:
        expires = f", expires {info.expires}" if info.expires else ""
        lines.append(f"{info.target}\n    held by {info.holder} since {info.since}{expires}")
        lines.append(f"    {info.where}")
    emit(args, [info.to_dict() for info in held], "\n".join(lines) or "(no target is locked)")
    return 0


def _break(args: argparse.Namespace) -> int:
    from amlretrain.config import load_config
    from amlretrain.configured import find_target
    from amlretrain.locks import locks_for

    if not args.yes:
        raise ConfigurationError(
            "breaking a lock lets another run deploy to the target while its holder may "
            "still be changing it: pass --yes"
        )
    config = load_config(args.config)
    locks = locks_for(config)
    held = locks.list()
    try:
        key = find_target(config, args.target).key
    except ConfigurationError:
        # A target taken out of the config may still be locked: its exact key will do.
        if not any(info.target == args.target for info in held):
            raise
        key = args.target
    before = next((info for info in held if info.target == key), None)
    broken = locks.break_lock(key)
    if broken:
        who = f" (held by {before.holder} since {before.since})" if before else ""
        text = f"broke the lock of {key}{who}"
    else:
        text = f"{key} was not locked; nothing to break"
    data = {"target": key, "broken": broken, "lock": before.to_dict() if before else None}
    emit(args, data, text)
    return 0
