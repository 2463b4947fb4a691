"""Shared pieces of the CLI: the ``--output`` flag, printing, and exit codes.

Every command prints through :func:`emit` (text or JSON, always redacted) and raises
amlretrain errors; :func:`amlretrain.cli.main` turns them into one line on stderr and
the exit code of their family (:data:`EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import json
import sys
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
    "emit",
    "exit_code_for",
    "print_json",
    "wants_json",
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
    """Add ``--output text|json`` to a command that prints data."""
    parser.add_argument(
        "--output",
        "-O",
        choices=("text", "json"),
        default="text",
        help="print text for people (default) or JSON for scripts",
    )


def wants_json(args: argparse.Namespace) -> bool:
    """True when the command was asked for ``--output json``."""
    return getattr(args, "output", "text") == "json"


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON, secrets redacted."""
    sys.stdout.write(json.dumps(redact_data(data), indent=2, ensure_ascii=False, default=str))
    sys.stdout.write("\n")


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print ``data`` as JSON (``--output json``) or ``text``; both redacted."""
    if wants_json(args):
        print_json(data)
    else:
        sys.stdout.write(redact(text))
        if text and not text.endswith("\n"):
            sys.stdout.write("\n")
