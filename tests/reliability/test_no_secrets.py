"""No secret the emulator issued shows up anywhere amlretrain writes, logs or returns.

The demo, a fault-matrix subset and the CLI run at DEBUG (a handler on the root logger
collects every record); stdout, stderr, exception text, reprs, ledgers, exported
definitions and cassettes/ are searched for every API key, token, storage key and
connection string the emulators issued, and for any SAS ``sig=`` that is not REDACTED.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import amlretrain.emulator
from amlretrain.cli import main
from amlretrain.cli._emulator_config import emulator_config, emulator_environment
from amlretrain.emulator import Emulator, Faults
from amlretrain.errors import AmlRetrainError
from amlretrain.ledger import Ledger
from amlretrain.workflow import retrain
from tests.reliability.matrix import DATA, Rig, run_case

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
_SIG = re.compile(r"sig(?:=|%3D)([^&\s\"'<>\\`;,)\]]+)", re.IGNORECASE)
#: Field names that hold secrets in the emulator's state (``key`` alone is a lookup key).
_SECRET_NAMES = re.compile(
    r"^(api_keys?|primary(_key)?|secondary(_key)?|token|\w+_token|\w*account_key|storage_key"
    r"|keys|connection_string)$",
    re.IGNORECASE,
)


def _walk(value: Any, name: str, out: set[str], depth: int = 0) -> None:
    if depth > 8:
        return
    if isinstance(value, str):
        if _SECRET_NAMES.search(name) and len(value) >= 16:
            out.add(value)
        return
    if attrs.has(type(value)):
        for a in attrs.fields(type(value)):
            _walk(getattr(value, a.name), a.name, out, depth + 1)
    elif isinstance(value, dict):
        for k, v in value.items():
            _walk(v, str(k) if isinstance(k, str) else name, out, depth + 1)
    elif isinstance(value, list | tuple | set):
        for v in value:
            _walk(v, name, out, depth + 1)


def emulator_secrets(emu: Emulator) -> set[str]:
    """Every secret ``emu`` issued: tokens, keys of every endpoint and service, storage."""
    found: set[str] = set()
    full = emu.info.to_dict(include_secrets=True)
    public = emu.info.to_dict()
    found |= {str(v) for k, v in full.items() if k not in public and v}
    for part in str(full["storage_connection_string"]).split(";"):
        if part.startswith("AccountKey="):
            found.add(part.split("=", 1)[1])
    state = emu.state
    if state is not None:
        for attr in vars(state):
            _walk(getattr(state, attr), attr, found)
    return found


def _variants(secret: str) -> set[str]:
    return {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.texts.append(record.getMessage())
        except Exception:  # a record that cannot format is collected raw
            self.texts.append(f"{record.msg!r} {record.args!r}")
        if record.exc_info:
            self.texts.append("".join(traceback.format_exception(*record.exc_info)))


@pytest.fixture
def collected() -> Iterator[list[str]]:
    """Every log record (DEBUG and up, every logger) while the test runs."""
    root = logging.getLogger()
    handler = _Collector()
    level, handlers = root.level, list(root.handlers)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler.texts
    finally:
        root.handlers[:] = handlers  # the CLI adds its own stderr handler each run
        root.setLevel(level)


def _assert_clean(texts: list[str], secrets: set[str]) -> None:
    assert len(secrets) >= 6, "the secret collection found too little to be meaningful"
    blob = "\n".join(texts)
    hits = [s[:6] + "..." for s in secrets for v in _variants(s) if v in blob]
    assert not hits, f"{len(hits)} secret(s) leaked: {hits}"
    sigs = {m.group(1) for m in _SIG.finditer(blob)}
    leaked = sorted(s for s in sigs if s.upper() != "REDACTED" and not s.startswith("<"))
    assert not leaked, f"SAS signatures leaked: {[s[:6] for s in leaked]}"


def _cli_environment(emulator: Emulator) -> dict[str, str]:
    """Every ``AMLRETRAIN_*`` setting the CLI needs for the emulator (ARM ones included)."""
    info = emulator.info.to_dict(include_secrets=True)
    return {
        **emulator_environment(emulator.info),
        "AMLRETRAIN_SUBSCRIPTION_ID": info["subscription_id"],
        "AMLRETRAIN_RESOURCE_GROUP": info["resource_group"],
        "AMLRETRAIN_ARM_BASE_URL": info["arm_base_url"],
    }


def _files(*folders: Path) -> list[str]:
    texts = []
    for folder in folders:
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    texts.append(path.read_text(encoding="utf-8", errors="replace"))
    return texts


@pytest.mark.slow
def test_the_demo_shows_no_secret(
    collected: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from amlretrain.cli.demo import run_demo

    seen: list[set[str]] = []

    class Recording(Emulator):
        def stop(self) -> None:
            if self._info is not None:
                seen.append(emulator_secrets(self))
            super().stop()

    monkeypatch.setattr(amlretrain.emulator, "Emulator", Recording)
    result = run_demo(tmp_path)
    out = capsys.readouterr()
    assert seen, "the demo's emulator was not observed"
    texts = [*collected, out.out, out.err, json.dumps(result), repr(result), *_files(tmp_path)]
    _assert_clean(texts, set().union(*seen))


def test_faults_and_their_errors_show_no_secret(
    emulator: Emulator,
    rig: Rig,
    faults: Faults,
    collected: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    texts: list[str] = []
    for step, fault in [
        ("arm.patch", "lro_fail"),
        ("rrs.execute (classic)", "503 persistent"),
        ("classic.patch_endpoint", "drop"),
        ("bes.start", "job_fail"),
    ]:
        texts.append(repr(run_case(rig, step, fault, tmp_path)))
    for route, kind in [("bes.submit", "status"), ("arm.get", "drop")]:
        faults.add(route=route, kind=kind, status=503 if kind == "status" else None, count=None)
        try:
            result = retrain(rig.training(), [rig.target("arm")], ledger=Ledger(tmp_path / "x"))
            texts += [repr(result), result.summary(), json.dumps(result.to_dict())]
        except AmlRetrainError as err:
            texts += [str(err), repr(err), "".join(traceback.format_exception(err))]
        faults.clear()
    result = retrain(rig.training(), [rig.target("classic")], sample=rig.sample)
    texts += [repr(result), result.summary(), json.dumps(result.to_dict()), result._repr_html_()]
    texts += [repr(rig.arm), repr(rig.classic), repr(rig.batch), repr(rig.store)]
    out = capsys.readouterr()
    _assert_clean(
        [*collected, *texts, out.out, out.err, *_files(tmp_path)], emulator_secrets(emulator)
    )


def test_the_cli_at_debug_shows_no_secret(
    emulator: Emulator,
    faults: Faults,
    collected: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    info = emulator.info
    for name, value in _cli_environment(emulator).items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "retrain.toml"
    config.write_text(
        emulator_config(info, data=DATA / "census_new.csv", ledger=tmp_path / "ledger.jsonl")
    )
    export = tmp_path / "export.json"
    runs: list[list[str]] = [
        ["retrain", "--config", str(config)],
        ["retrain", "--config", str(config), "--dry-run", "--output", "json"],
        ["history", "--config", str(config), "--output", "json"],
        [
            "webservice",
            "export",
            info.arm_service_name or "",
            "-g",
            info.resource_group,
            "-o",
            str(export),
        ],
        [
            "webservice",
            "get",
            info.arm_service_name or "",
            "-g",
            info.resource_group,
            "--output",
            "json",
        ],
    ]
    codes = []
    for argv in runs:
        codes.append(main(["--debug", "--verbose", *argv]))
    faults.add(route="bes.submit", kind="status", status=503, count=None)
    failing = main(["--debug", "--verbose", "retrain", "--config", str(config)])
    faults.clear()
    out = capsys.readouterr()
    assert codes[:3] == [0, 0, 0] or 11 in codes, (codes, out.err[-2000:])
    assert codes[3:] == [0, 0], ("webservice export/get", codes, out.err[-2000:])
    assert failing != 0
    assert "Traceback" in out.err  # --debug shows it (redacted)
    texts = [*collected, out.out, out.err, *_files(tmp_path), *_files(REPO / "cassettes")]
    _assert_clean(texts, emulator_secrets(emulator))


#: Secrets a user types or keeps in a file (not issued by any emulator): asset credentials,
#: a connection string with an account key, a storage key, an API key, a SAS signature.
USER_SECRETS = {
    "credentials": "User-Cred-7hQ2-not-from-the-emulator",
    "connection": "DefaultEndpointsProtocol=https;AccountName=u;AccountKey=VXNlcktleTEyMzQ1Njc4OTA=;",
    "account_key": "VXNlcktleTEyMzQ1Njc4OTA=",
    "storage_key": "User-Storage-Key-K9x4-not-from-the-emulator",
    "api_key": "User-Api-Key-Zr81-not-from-the-emulator",
    "sig": "UserSig0123456789abcdef%3D",
}  # fmt: skip


def _with_user_secrets(doc: dict[str, Any]) -> dict[str, Any]:
    props = doc["properties"]
    for asset in props["assets"].values():
        asset["locationInfo"]["credentials"] = USER_SECRETS["credentials"]
        asset["locationInfo"]["ConnectionString"] = USER_SECRETS["connection"]
    props.setdefault("storageAccount", {})["key"] = USER_SECRETS["storage_key"]
    props["keys"] = {"primary": USER_SECRETS["api_key"], "secondary": USER_SECRETS["api_key"]}
    return doc


def test_secrets_a_user_supplies_never_show_in_diffs_plans_or_errors(
    emulator: Emulator,
    collected: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    info = emulator.info
    for name, value in _cli_environment(emulator).items():
        monkeypatch.setenv(name, value)
    service = info.arm_service_name or ""
    export, edited = tmp_path / "export.json", tmp_path / "edited.json"
    assert (
        main(
            [
                "webservice",
                "export",
                service,
                "-g",
                info.resource_group,
                "-o",
                str(export),
                "--include-secrets",
            ]
        )
        == 0
    )
    edited.write_text(json.dumps(_with_user_secrets(json.loads(export.read_text())), indent=2))
    new_uri = "https://acct.blob.core.windows.net/models/v2/census.ilearner"
    sas_uri = f"{new_uri}?sv=2020-01-01&se=2099-01-01T00:00:00Z&sig={USER_SECRETS['sig']}"
    bad = tmp_path / "bad.json"
    bad.write_text(edited.read_text().replace('"credentials"', '"title": NaN, "credentials"', 1))
    offline: list[list[str]] = [
        ["definition", "rewrite", str(export), "--uri", sas_uri, "--credentials", USER_SECRETS["credentials"], "--diff"],
        ["definition", "rewrite", str(export), "--uri", sas_uri, "--credentials", USER_SECRETS["credentials"], "--diff", "--output", "json"],
        ["definition", "rewrite", str(export), "--uri", sas_uri, "--credentials", USER_SECRETS["credentials"], "-o", str(tmp_path / "out" / "x.json")],
        ["definition", "rewrite", str(edited), "--uri", sas_uri],
        ["definition", "rewrite", str(edited), "--uri", new_uri.replace(".ilearner", ".csv") + "?sig=" + USER_SECRETS["sig"], "--credentials", USER_SECRETS["credentials"]],
        ["definition", "diff", str(export), str(edited)],
        ["definition", "diff", str(edited), str(export), "--output", "json"],
        ["definition", "show", str(edited), "--output", "json"],
        ["definition", "validate", str(bad)],
    ]  # fmt: skip
    online: list[list[str]] = [
        ["webservice", "update", service, "-g", info.resource_group, "--definition", str(edited), "--dry-run"],
        ["webservice", "update", service, "-g", info.resource_group, "--definition", str(edited), "--dry-run", "--output", "json"],
        ["webservice", "update", service, "-g", info.resource_group, "--definition", str(bad)],
    ]  # fmt: skip
    capsys.readouterr()
    codes = [main(["--debug", "--verbose", *argv]) for argv in [*offline, *online]]
    out = capsys.readouterr()
    assert codes == [0, 0, 4, 0, 4, 0, 0, 0, 3, 0, 0, 3], (codes, out.err[-3000:])
    assert "REDACTED" in out.out and "locationInfo/credentials" in out.out  # the diffs ran
    assert "PATCH body (not sent)" in out.out
    texts = [*collected, out.out, out.err]
    _assert_clean(texts, set(USER_SECRETS.values()) | emulator_secrets(emulator))
