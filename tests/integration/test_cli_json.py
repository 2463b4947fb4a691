"""``--output json`` of every command, against docs/cli-json.md and the emulator.

Each command runs once against the emulator; its JSON must be what the page says: every
key of amlretrain's own objects snake_case and documented (a service's document, data
keyed by its own names, are not looked into), and every documented top-level key
present. The page names every command that takes ``--output``, and only those.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from amlretrain.cli import build_parser, main
from amlretrain.cli._emulator_config import emulator_config, emulator_environment
from amlretrain.emulator import Emulator
from tests.conftest import REPO
from tests.integration.test_cli_services import environment, new_model

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DOC = REPO / "docs" / "cli-json.md"
DATA = REPO / "amlretrain" / "emulator" / "data"
SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
ROW = re.compile(r"^\| `([^`]+)` \|([^|]*)\|([^|]*)\|$")
#: Types whose members are not amlretrain's to name (not looked into).
OPAQUE = re.compile(r"(?:document|map|records)\b")

Documented = dict[str, tuple[str, str]]


# -- the page ----------------------------------------------------------------------------


@functools.cache
def page() -> tuple[dict[str, list[tuple[str, str, str]]], dict[str, list[tuple[str, str, str]]]]:
    """(rows per command, rows per object) of docs/cli-json.md."""
    commands: dict[str, list[tuple[str, str, str]]] = {}
    objects: dict[str, list[tuple[str, str, str]]] = {}
    rows: list[tuple[str, str, str]] = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## `"):
            rows = []
            for command in _commands_of(line):
                commands[command] = rows
        elif line.startswith("### `"):
            rows = objects.setdefault(line.split("`")[1], [])
        elif line.startswith("#"):
            rows = []
        elif match := ROW.match(line):
            path, kind, what = match.groups()
            rows.append((path, kind.strip(), what.strip()))
    return commands, objects


def _commands_of(heading: str) -> list[str]:
    """``## `amlretrain webservice get`, `import``` -> both commands' full names."""
    names = re.findall(r"`([^`]+)`", heading)
    first = names[0]
    out = [first]
    for name in names[1:]:
        if name.startswith("amlretrain "):
            out.append(name)
        elif " " in name:
            out.append(f"amlretrain {name}")
        else:
            out.append(first.rsplit(" ", 1)[0] + " " + name)
    return out


def _join(prefix: str, path: str) -> str:
    if path == ".":
        return prefix
    if path.startswith("[]"):
        return prefix + path
    return f"{prefix}.{path}" if prefix else path


def _expand(rows: list[tuple[str, str, str]], prefix: str = "") -> Documented:
    """Rows by full path, the objects they name expanded in place."""
    _, objects = page()
    out: Documented = {}
    for path, kind, what in rows:
        full = _join(prefix, path)
        out[full] = (kind, what)
        inner = full + "[]" if kind.startswith("list of") else full
        for name in re.findall(r"`(\w+)`", kind):
            if name in objects:
                out.update(_expand(objects[name], inner))
    return out


def documented(command: str) -> Documented:
    commands, _ = page()
    assert command in commands, f"docs/cli-json.md has no section for {command}"
    return _expand(commands[command])


# -- the check ---------------------------------------------------------------------------


def problems_of(command: str, data: Any) -> list[str]:
    """What ``data`` (printed by ``command``) does differently from the page."""
    docs = documented(command)
    found: list[str] = []

    def walk(value: Any, path: str) -> None:
        kind = docs.get(path, ("", ""))[0]
        if OPAQUE.match(kind):
            return
        if isinstance(value, dict):
            for key, item in value.items():
                full = f"{path}.{key}" if path else key
                if not SNAKE.fullmatch(str(key)):
                    found.append(f"{command}: {full}: not snake_case")
                if full not in docs:
                    found.append(f"{command}: {full}: not documented")
                    continue
                walk(item, full)
        elif isinstance(value, list):
            for item in value:
                walk(item, path + "[]")

    walk(data, "")
    top = {p: w for p, (_k, w) in docs.items() if re.fullmatch(r"(?:\[\]\.)?\w+", p)}
    required = {p for p, what in top.items() if not re.match(r"(?:when|with)\b", what)}
    if any(p.startswith("[]") for p in docs):
        if not isinstance(data, list):
            return [*found, f"{command}: the page says a list"]
        keys = {f"[].{k}" for item in data if isinstance(item, dict) for k in item}
    else:
        if not isinstance(data, dict):
            return [*found, f"{command}: the page says an object"]
        keys = set(data)
    found += [f"{command}: documented {p} is missing" for p in sorted(required - keys)]
    return found


# -- running the commands ----------------------------------------------------------------


@pytest.fixture
def cli(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Callable[..., Any]:
    """``cli(*argv, ok=(0,))``: run a command with ``--output json``, return its JSON."""
    monkeypatch.chdir(tmp_path)
    for name, value in {**environment(emulator), **emulator_environment(emulator.info)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AMLRETRAIN_PROFILES", str(tmp_path / "no-profiles.toml"))

    def run(*argv: str, ok: tuple[int, ...] = (0,)) -> Any:
        capsys.readouterr()
        code = main([*argv, "--output", "json"])
        captured = capsys.readouterr()
        assert code in ok, (argv, code, captured.err)
        return json.loads(captured.out)

    return run


def _config(emulator: Emulator, folder: Path) -> Path:
    path = folder / "retrain.toml"
    path.write_text(
        emulator_config(emulator.info, data=DATA / "census_new.csv", ledger=folder / "ledger.jsonl")
    )
    return path


def test_every_command_prints_the_json_its_section_documents(
    emulator: Emulator, cli: Callable[..., Any], tmp_path: Path
) -> None:
    from amlretrain.config import load_config
    from amlretrain.emulator._run import render
    from amlretrain.ledger import Intent, JobRecord
    from amlretrain.locks import locks_for
    from amlretrain.storage import BlobStore

    info = emulator.info
    store = BlobStore.from_connection_string(info.storage_connection_string)
    printed: list[tuple[str, Any]] = []

    def record(command: str, *argv: str, ok: tuple[int, ...] = (0,)) -> Any:
        data = cli(*command.split()[1:], *argv, ok=ok)
        printed.append((command, data))
        return data

    # definitions, offline
    definition = DATA / "predictive_definition.json"
    rewritten = tmp_path / "rewritten.json"
    uri = "https://acct.blob.core.windows.net/models/v2/census.ilearner"
    record("amlretrain definition show", str(definition))
    record("amlretrain definition validate", str(definition))
    record("amlretrain definition rewrite", str(definition), "--uri", uri, "-o", str(rewritten))
    record("amlretrain definition diff", str(definition), str(rewritten))

    # New (ARM) web services: the seeded one, and a copy made, updated and deleted
    name = str(info.arm_service_name)
    copy = "json-" + uuid.uuid4().hex[:10]
    seeded = tmp_path / "seeded.json"
    record("amlretrain webservice get", name)
    record("amlretrain webservice list")
    record("amlretrain webservice keys", name)
    record("amlretrain webservice export", name, "-o", str(seeded), "--include-secrets")
    record("amlretrain webservice import", copy, str(seeded), "--overwrite-fetched")
    model = new_model(emulator, store)
    record("amlretrain webservice update", copy, "--model-uri", model, "--dry-run")
    record("amlretrain webservice update", copy, "--model-uri", model)
    record("amlretrain webservice delete", copy, "--yes")

    # classic endpoints: the seeded ones, and one added, patched, refreshed and deleted
    service = str(info.predictive_service)
    added = "json" + uuid.uuid4().hex[:10]
    record("amlretrain endpoint list", service)
    record("amlretrain endpoint get", service, str(info.predictive_endpoint))
    record("amlretrain endpoint add", service, added)
    record("amlretrain endpoint patch", service, added, "--description", "json")
    record("amlretrain endpoint refresh", service, added)
    record("amlretrain endpoint delete", service, added, "--yes")

    # batch jobs
    job = record("amlretrain job submit", "--input", f"input1={DATA / 'census_new.csv'}")
    record("amlretrain job wait", job["job_id"], "--timeout", "60")
    record("amlretrain job status", job["job_id"])
    record("amlretrain job results", job["job_id"], "--evaluation")
    record("amlretrain job cancel", job["job_id"])

    # the retrain loop from a config, with an open intent and a lost submit to reconcile
    config = _config(emulator, tmp_path)
    result = record("amlretrain retrain", "--config", str(config))
    record("amlretrain rollback", "0", "--config", str(config), "--dry-run")
    record("amlretrain deploy", "--config", str(config), "--model", result["model"], "--dry-run")
    loaded = load_config(config)
    arm = loaded.targets()[0][0]
    served = arm.current_model()
    ledger = loaded.ledger()
    ledger.append(
        Intent.new(
            run_id="json-run",
            target=arm.key,
            action="deploy",
            previous_model=served,
            new_model=served,
            request={"method": "PATCH", "url": "https://a.example/ws", "body": {}},
        )
    )
    ledger.append(JobRecord.new(run_id="json-run", job_id="", status="Submitting"))
    record("amlretrain history", "--config", str(config))
    record("amlretrain runs list", "--config", str(config))
    record("amlretrain runs show", result["run_id"], "--config", str(config))
    record("amlretrain reconcile", "--config", str(config))
    with locks_for(loaded).hold(arm.key, run_id="json-run"):
        record("amlretrain locks list", "--config", str(config))
    record("amlretrain locks break", "1", "--config", str(config), "--yes")
    pruning = ("--keep", "1", "--dry-run", "--allow-rollback-loss")
    record("amlretrain prune", "--config", str(config), *pruning)
    record("amlretrain migrate inventory", "--config", str(config))
    record("amlretrain migrate check", str(DATA / "training_definition.json"))

    # the emulator: `emulator start` prints render(); `config` writes a retrain.toml for it
    info_file = tmp_path / "emulator.json"
    info_file.write_text(json.dumps(info.to_dict(include_secrets=True)))
    printed.append(("amlretrain emulator start", json.loads(render(info, output="json"))))
    record(
        "amlretrain emulator config",
        "--info-file", str(info_file),
        "-o", str(tmp_path / "emulator.toml"),
        "--env-file", str(tmp_path / "emulator.env"),
    )  # fmt: skip

    problems = [p for command, data in printed for p in problems_of(command, data)]
    assert not problems, "\n".join(problems)
    ran = {command for command, _ in printed}
    assert ran >= set(page()[0]) - {"amlretrain blob sas", "amlretrain demo"}, "not run"

    # the target keys are printed as they are, not redacted as secrets
    keys = [t["key"] for t in result["targets"]]
    assert keys[0].startswith("arm:/subscriptions/") and keys[1].startswith("classic:")
    reconciled = next(data for command, data in printed if command == "amlretrain reconcile")
    assert [t["key"] for t in reconciled["targets"]] == keys
    assert reconciled["targets"][0]["entry"]["evidence"]["verify_window"] > 0
    assert reconciled["jobs"][0]["orphan"] is True


@pytest.mark.slow
def test_demo_prints_the_json_its_section_documents(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    data = cli("demo", "--workdir", str(tmp_path / "demo"))
    assert data["scores_changed"] and data["scores_restored"]
    problems = problems_of("amlretrain demo", data)
    assert not problems, "\n".join(problems)


def _commands_with_json() -> set[str]:
    found = set()
    todo = [("amlretrain", build_parser())]
    while todo:
        name, parser = todo.pop()
        for action in parser._actions:
            if "--output" in action.option_strings:
                found.add(name)
            if isinstance(action, argparse._SubParsersAction):
                todo += [(f"{name} {c}", p) for c, p in action.choices.items()]
    return found


def test_the_page_documents_every_command_that_prints_json_and_no_other() -> None:
    documented_commands = set(page()[0]) - {"amlretrain blob sas"}
    assert documented_commands == _commands_with_json()


def test_the_page_names_only_objects_it_defines() -> None:
    commands, objects = page()
    for rows in [*commands.values(), *objects.values()]:
        for path, kind, _ in rows:
            for name in re.findall(r"`(\w+)`", kind):
                assert name in objects, f"{path}: no section for object {name}"
