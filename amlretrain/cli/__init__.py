"""The ``amlretrain`` command line: a thin layer over the library.

Parsing, settings and rendering only; the work is done by the library. Errors print one
line on stderr and exit with the code of their family (see ``amlretrain --help``); a
traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import TextIO

from amlretrain._redact import redact
from amlretrain._version import __version__
from amlretrain.cli._common import EXIT_CODES, exit_code_for
from amlretrain.errors import Interrupted

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]

#: Command modules, each with ``register(subparsers)``; optional ones may be absent.
_COMMAND_MODULES = (
    "amlretrain.cli.definition",
    "amlretrain.cli.webservice",
    "amlretrain.cli.endpoint",
    "amlretrain.cli.job",
    "amlretrain.cli.retrain",
    "amlretrain.cli.blob",
    "amlretrain.cli.locks",
    "amlretrain.cli.prune",
    "amlretrain.cli.runs",
    "amlretrain.cli.report",
    "amlretrain.cli.migrate",
    "amlretrain.cli.emulator",
    "amlretrain.cli.demo",
)


def _epilog() -> str:
    names = {
        1: "any other amlretrain error",
        2: "bad command-line usage",
        16: "migrate check --strict: a module without a v2 equivalent",
        130: "interrupted (SIGINT)",
        143: "terminated (SIGTERM)",
    }
    lines = ["exit codes:", "  0  success"]
    for cls, code in sorted(EXIT_CODES, key=lambda item: item[1]):
        names.setdefault(code, cls.__name__)
    for code in sorted(names):
        lines.append(f"  {code:<4}{names[code]}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available command registered."""
    parser = argparse.ArgumentParser(
        prog="amlretrain",
        description="Retrain, gate, swap and verify Azure ML Studio (classic) models.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"amlretrain {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug logs (redacted)"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="show progress logs on stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:
                continue  # an optional command group that is not installed
            raise
        module.register(subparsers)
    _describe(parser)
    return parser


def _describe(parser: argparse.ArgumentParser) -> None:
    """Give every command without a description of its own its help line as one."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description and helps.get(name):
                    text = str(helps[name])
                    sub.description = text[0].upper() + text[1:] + "."
                _describe(sub)


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _Messages:
    """What this run printed on stderr as warnings: each Python warning once, as a message.

    The library issues some warnings both ways (``warnings.warn`` for Python callers, a
    log record for log files): the CLI prints the first it meets and drops the other.
    """

    def __init__(self) -> None:
        self.warned: set[str] = set()
        self.logged: set[str] = set()

    def show_warning(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        """A ``warnings.showwarning``: ``amlretrain: warning: <message>``, no source line."""
        text = str(message)
        if text in self.warned or text in self.logged:
            return
        self.warned.add(text)
        sys.stderr.write(f"amlretrain: warning: {redact(text)}\n")

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop a log record that repeats a warning already shown."""
        if record.levelno < logging.WARNING:
            return True
        text = record.getMessage()
        if text in self.warned:
            return False
        self.logged.add(text)
        return True


def _configure_logging(
    debug: bool, verbose: bool, messages: _Messages | None = None
) -> tuple[logging.Handler, int]:
    """Log to stderr (redacted) for this run; returns what :func:`main` undoes after it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    if messages is not None:
        handler.addFilter(messages.filter)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)
    return handler, previous


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    messages = _Messages()
    log_handler, log_level = _configure_logging(args.debug, args.verbose, messages)
    # Python warnings become "amlretrain: warning:" lines for this run only (the filters
    # and showwarning are restored on the way out, as the logging set-up is).
    restore = contextlib.ExitStack()
    restore.enter_context(warnings.catch_warnings())
    warnings.showwarning = messages.show_warning
    try:
        return handler(args)
    except Interrupted as err:
        sys.stderr.write(f"amlretrain: interrupted (signal {err.signum})\n")
        return err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("amlretrain: interrupted\n")
        return 130
    except Exception as err:
        if args.debug:
            import traceback

            sys.stderr.write(redact(traceback.format_exc()))
        kind = type(err).__name__
        sys.stderr.write(f"amlretrain: error: {redact(str(err))} ({kind})\n")
        return exit_code_for(err)
    finally:
        # Embedded callers (tests, notebooks, other tools) call main() many times: leave
        # the root logger and the warnings machinery as they were.
        restore.close()
        logging.getLogger().removeHandler(log_handler)
        logging.getLogger().setLevel(log_level)
