"""``amlretrain runs list|show``: the runs a ledger knows, and what one of them did."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlretrain.cli._common import add_group, add_output_flag, emit

if TYPE_CHECKING:
    from amlretrain.history import History

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``runs`` command group."""
    commands = add_group(
        subparsers,
        "runs",
        help="the runs of a ledger: list them, show one (to resume it)",
        description="Every retrain, deploy, rollback and reconcile is a run with an id, "
        "recorded in the ledger with its training jobs and outcomes. `amlretrain retrain "
        "--resume RUN_ID` continues one that was interrupted or killed.",
    )
    p = commands.add_parser("list", help="every run, oldest first")
    _add_source(p)
    add_output_flag(p)
    p.set_defaults(handler=_list)

    s = commands.add_parser("show", help="one run: its jobs and each target's outcome")
    s.add_argument("run_id", metavar="RUN_ID", help="the run id (a unique prefix is enough)")
    _add_source(s)
    add_output_flag(s)
    s.set_defaults(handler=_show)


def _add_source(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--config", "-c", help="a retrain.toml (for its ledger)")
    group.add_argument("--ledger", help="the ledger file (default .amlretrain/ledger.jsonl)")


def _history(args: argparse.Namespace) -> History:
    from amlretrain.config import load_config
    from amlretrain.ledger import Ledger

    if args.config:
        return load_config(args.config).ledger().history()
    return Ledger(Path(args.ledger) if args.ledger else None).history()


def _list(args: argparse.Namespace) -> int:
    runs = _history(args).runs()
    lines = []
    for run in runs:
        counts = run.counts()
        said = ", ".join(f"{n} {k}" for k, n in counts.items()) if counts else "no outcome"
        again = f", resumed {run.attempts - 1}x" if run.attempts > 1 else ""
        lines.append(
            f"{run.run_id}  {run.started}  {run.command:<9} {len(run.targets)} target(s), "
            f"{len(run.jobs)} job(s): {said}{again}"
        )
    emit(args, [r.to_dict() for r in runs], "\n".join(lines) or "(no runs)")
    return 0


def _show(args: argparse.Namespace) -> int:
    run = _history(args).run(args.run_id)
    lines = [
        f"run {run.run_id}: {run.command} on {run.host}, started {run.started}"
        + (f", {run.attempts} attempts" if run.attempts > 1 else ""),
        f"config {run.fingerprint}" if run.fingerprint else "config: not recorded",
    ]
    for job in run.jobs:
        lines.append(f"job {job.job_id or '(no id: its submit got no answer)'}  {job.status}"
                     + (f"  on {job.data}" if job.data else ""))  # fmt: skip
    final = run.final()
    for key in run.targets:
        entry = final.get(key)
        if entry is None:
            lines.append(f"{key}: no outcome (not reached, or still open: resume the run)")
        else:
            lines.append(f"{key}: {entry.outcome}, serving {entry.serving_model or 'unknown'}")
    data = run.to_dict()
    data["targets"] = [
        {
            "target": key,
            "outcome": final[key].outcome if key in final else None,
            "serving_model": final[key].serving_model if key in final else None,
            "entry": final[key].id if key in final else None,
        }
        for key in run.targets
    ]
    emit(args, data, "\n".join(lines))
    return 0
