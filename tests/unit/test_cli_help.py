"""Every command and option of the CLI explains itself, and no two options are mixed up."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from amlretrain.cli import build_parser


def parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the CLI, by its command line (``amlretrain job wait`` ...)."""
    todo = [("amlretrain", build_parser())]
    while todo:
        name, parser = todo.pop()
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for command, sub in action.choices.items():
                    todo.append((f"{name} {command}", sub))


def commands() -> Iterator[tuple[str, str | None]]:
    """Every subcommand with the help line its parent lists it with."""
    for name, parser in parsers():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                for command in action.choices:
                    yield f"{name} {command}", helps.get(command)


@pytest.mark.parametrize(("command", "help_line"), list(commands()))
def test_every_command_is_listed_with_a_help_line(command: str, help_line: str | None) -> None:
    assert help_line and help_line.strip(), f"{command} has no help line in its parent's list"


@pytest.mark.parametrize(("command", "parser"), list(parsers()))
def test_every_command_has_a_description(command: str, parser: argparse.ArgumentParser) -> None:
    assert parser.description and parser.description.strip(), f"{command} --help says nothing"


@pytest.mark.parametrize(("command", "parser"), list(parsers()))
def test_every_option_and_argument_has_a_help_text(
    command: str, parser: argparse.ArgumentParser
) -> None:
    missing = [
        "/".join(action.option_strings) or action.dest
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction)
        and not (action.help and action.help.strip())
    ]
    assert not missing, f"{command}: no help for {', '.join(missing)}"


@pytest.mark.parametrize(("command", "parser"), list(parsers()))
def test_no_two_options_differ_only_in_letter_case(
    command: str, parser: argparse.ArgumentParser
) -> None:
    seen: dict[str, str] = {}
    for action in parser._actions:
        for option in action.option_strings:
            other = seen.setdefault(option.lower(), option)
            assert other == option, f"{command}: {other} and {option}"


def test_output_json_has_no_short_form() -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["history", "-O", "json"])
    assert parser.parse_args(["history", "--output", "json"]).output == "json"


def test_dry_run_of_retrain_does_not_claim_to_train() -> None:
    (retrain,) = [p for name, p in parsers() if name == "amlretrain retrain"]
    (dry_run,) = [a for a in retrain._actions if "--dry-run" in a.option_strings]
    assert dry_run.help is not None
    assert "nothing is uploaded, trained" in dry_run.help


def test_emulator_start_help_documents_the_fault_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["emulator", "start", "--help"])
    out = capsys.readouterr().out
    for word in ("[[faults]]", "route", "kind", "count", "skip", "lro_hang", "job_slow"):
        assert word in out


def test_the_fault_files_the_help_and_the_docs_show_are_valid() -> None:
    import json
    import re
    import sys

    from amlretrain.cli.emulator import FAULTS_HELP
    from amlretrain.emulator.faults import Faults
    from tests.conftest import REPO

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    example = FAULTS_HELP.split("example (faults.toml):\n", 1)[1]
    assert Faults.from_data(tomllib.loads(re.sub(r"(?m)^  ", "", example))).rules
    docs = (REPO / "docs" / "retrain.md").read_text(encoding="utf-8")
    section = docs.split("### Faults", 1)[1]
    (toml_text,) = re.findall(r"```toml\n(.*?)```", section, re.S)
    (json_text,) = re.findall(r"```json\n(.*?)```", section, re.S)
    assert len(Faults.from_data(tomllib.loads(toml_text)).rules) == 2
    assert len(Faults.from_data(json.loads(json_text)).rules) == 1
