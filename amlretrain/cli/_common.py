"""Shared pieces of the CLI: the ``--output`` flag, printing, and exit codes.

Every command prints through :func:`emit` (text or JSON, always redacted) and raises
amlretrain errors; :func:`amlretrain.cli.main` turns them into one line on stderr and
the exit code of their family (:data:`EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from typing import Any

from amlretrain._redact import redact, redact_data
from amlretrain.errors import (
    AmlRetrainError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    DefinitionError,
    GateRejected,
    NotFoundError,
    OperationTimeout,
    RunHalted,
    ServiceError,
    TargetsFailed,
    ThrottledError,
    TrainingJobFailed,
    VerificationFailed,
)

__all__ = [
    "EXIT_CODES",
    "add_group",
    "add_output_flag",
    "add_progress_flag",
    "emit",
    "exit_code_for",
    "print_json",
    "wants_json",
    "wants_progress",
]

#: Exit codes per error family, most specific first (documented in the README).
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (DefinitionError, 3),
    (ConfigurationError, 4),
    (AuthenticationError, 6),
    (NotFoundError, 7),
    (ConflictError, 8),
    (ThrottledError, 9),
    (ServiceError, 5),
    (TrainingJobFailed, 10),
    (GateRejected, 11),
    (VerificationFailed, 12),
    (OperationTimeout, 13),
    (TargetsFailed, 14),
    (RunHalted, 15),
    (AmlRetrainError, 1),
)


def exit_code_for(error: BaseException) -> int:
    """The documented exit code for ``error`` (1 for anything unexpected)."""
    for cls, code in EXIT_CODES:
        if isinstance(error, cls):
            return code
    return 1


def add_group(subparsers: Any, name: str, *, help: str, description: str | None = None) -> Any:
    """Add a command group (``amlretrain NAME COMMAND``); returns its subparsers.

    The group alone (no COMMAND) prints its help and exits 2.
    """
    group: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=description or help
    )
    commands = group.add_subparsers(dest=f"{name}_command", metavar="COMMAND")

    def usage(_args: argparse.Namespace) -> int:
        group.print_help()
        return 2

    group.set_defaults(handler=usage)
    return commands


def add_output_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--output text|json`` to a command that prints data.

    No short form: ``-o`` names an output file in the commands that write one, and two
    options that differ only in case are easy to mix up.
    """
    parser.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="print text for people (default) or JSON for scripts (snake_case keys; "
        "see docs/cli-json.md)",
    )


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--progress/--no-progress`` to a command that waits for a training job."""
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show the job's status and elapsed time on stderr while it runs: a live line "
        "on a terminal, a plain line per status change otherwise (and upload bars on a "
        "terminal, with the progress extra). Default: on, except with --output json when "
        "stderr is not a terminal",
    )


def wants_progress(args: argparse.Namespace) -> bool:
    """True when the command should show a job's progress (see :func:`add_progress_flag`)."""
    chosen: bool | None = getattr(args, "progress", None)
    if chosen is not None:
        return chosen
    return _stderr_is_terminal() or not wants_json(args)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


def wants_json(args: argparse.Namespace) -> bool:
    """True when the command was asked for ``--output json``."""
    return getattr(args, "output", "text") == "json"


#: A target's ledger key (``arm:/subscriptions/...``, ``classic:<ws>/<svc>/<endpoint>``,
#: ``azureml:/subscriptions/...``): built from resource names, never a secret, though a
#: member named ``key`` usually is.
_TARGET_KEY = re.compile(r"(?:(?:arm|azureml):/subscriptions/|classic:[^/\s]+/[^/\s]+/)[^\s?#&]+")


def _is_target_key(value: Any) -> bool:
    return isinstance(value, str) and bool(_TARGET_KEY.fullmatch(value)) and redact(value) == value


def _keep_target_keys(original: Any, redacted: Any) -> Any:
    """``redacted`` with the ``key`` members that hold a target key restored."""
    if isinstance(original, Mapping) and isinstance(redacted, dict):
        for name, value in original.items():
            if name not in redacted:
                continue
            if name == "key" and _is_target_key(value):
                redacted[name] = value
            else:
                redacted[name] = _keep_target_keys(value, redacted[name])
    elif isinstance(original, list | tuple) and isinstance(redacted, list):
        return [_keep_target_keys(o, r) for o, r in zip(original, redacted, strict=False)]
    return redacted


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON, secrets redacted.

    A member named ``key`` is a secret (an API or account key) unless it holds a target's
    ledger key (``arm:...``/``classic:...``/``azureml:...``), which is kept: scripts
    select targets by it.
    """
    clean = _keep_target_keys(data, redact_data(data))
    sys.stdout.write(json.dumps(clean, indent=2, ensure_ascii=False, default=str))
    sys.stdout.write("\n")


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print ``data`` as JSON (``--output json``) or ``text``; both redacted."""
    if wants_json(args):
        print_json(data)
    else:
        sys.stdout.write(redact(text))
        if text and not text.endswith("\n"):
            sys.stdout.write("\n")
