"""``amlretrain report [RUN_ID]``: a run's evidence report, one self-contained HTML file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from amlretrain.errors import ConfigurationError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``report`` command."""
    p = subparsers.add_parser(
        "report",
        help="write a run's evidence report: one HTML file, viewable offline",
        description="Write the evidence report of a run, read from the ledger: per target, "
        "its timeline in the run, its metric history across retrains, the gate's evidence, "
        "the shadow comparison, alarms and rollbacks. One self-contained HTML file (charts "
        "inline, nothing loaded from anywhere); needs matplotlib (pip install "
        "'amlretrain[report]'). Prints the path written. See docs/report.md.",
    )
    p.add_argument(
        "run_id",
        metavar="RUN_ID",
        nargs="?",
        help="the run (a unique prefix is enough; default: the ledger's latest run)",
    )
    p.add_argument(
        "-o",
        "--out",
        help="the file to write (default: report-RUN_ID.html in the current folder)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--config", "-c", help="a retrain.toml (for its ledger)")
    group.add_argument("--ledger", help="the ledger file (default .amlretrain/ledger.jsonl)")
    p.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from amlretrain.cli.runs import _history
    from amlretrain.report import build_report

    report = build_report(_history(args), args.run_id)
    out = Path(args.out) if args.out else Path(f"report-{report.run.run_id}.html")
    if out.exists() and not args.force:
        raise ConfigurationError(f"{out} exists: pass --force to overwrite it")
    if out.parent != Path() and not out.parent.is_dir():
        raise ConfigurationError(f"{out.parent} is not a folder: cannot write {out}")
    report.save(out)
    sys.stdout.write(f"{out}\n")
    return 0
