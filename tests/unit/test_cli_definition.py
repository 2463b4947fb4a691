"""The offline CLI: show, validate, rewrite, diff; exit codes; no traceback; files untouched."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from amlretrain.cli import main
from tests.conftest import MODEL_URI, sample_definition

NEW_URI = "https://acct.blob.core.windows.net/models/v2/census.ilearner"
SAS = "?sv=2020-01-01&se=2099-01-01T00:00:00Z&sig=CLISECRET"


@pytest.fixture
def definition_file(tmp_path: Path) -> Path:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(sample_definition(pascal=True), indent=2))
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_show_prints_trained_models(
    definition_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["definition", "show", str(definition_file)]) == 0
    out = capsys.readouterr().out
    assert "Census predictive" in out
    assert "asset1: Census Model [trained model] -> " + MODEL_URI in out
    assert "api shape:     2017-01-01" in out


def test_show_json(definition_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["definition", "show", str(definition_file), "--output", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["trained_models"][0]["asset_id"] == "asset1"
    assert data["package_type"] == "Graph"


def test_validate_ok_and_bad(
    definition_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["definition", "validate", str(definition_file)]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text('{"properties": {"packageType": "Code"}}')
    assert main(["definition", "validate", str(bad)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "/properties/packageType" in err and "Traceback" not in err


def test_missing_file_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["definition", "show", "/nonexistent/x.json"]) == 4
    assert "cannot read /nonexistent/x.json" in capsys.readouterr().err


def test_rewrite_to_stdout_leaves_the_file_alone(
    definition_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _digest(definition_file)
    assert main(["definition", "rewrite", str(definition_file), "--uri", NEW_URI]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["properties"]["assets"]["asset1"]["locationInfo"]["uri"] == NEW_URI
    assert _digest(definition_file) == before


def test_rewrite_to_a_file_with_diff(
    definition_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "new.json"
    code = main(
        ["definition", "rewrite", str(definition_file), "--uri", NEW_URI + SAS,
         "-o", str(out_file), "--diff"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "replace /properties/assets/asset1/locationInfo/uri" in printed
    assert "CLISECRET" not in printed
    written = json.loads(out_file.read_text())
    assert written["properties"]["assets"]["asset1"]["locationInfo"]["uri"] == NEW_URI + SAS
    assert written["properties"]["package"]["Nodes"]  # casing as read


def test_rewrite_in_place_only_when_named(definition_file: Path) -> None:
    assert main(["definition", "rewrite", str(definition_file), "--uri", NEW_URI,
                 "-o", str(definition_file)]) == 0  # fmt: skip
    assert NEW_URI in definition_file.read_text()


def test_bad_rewrite_leaves_the_file_alone(
    definition_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _digest(definition_file)
    code = main(["definition", "rewrite", str(definition_file), "--uri",
                 "https://a/b.csv", "-o", str(definition_file)])  # fmt: skip
    assert code == 4
    assert "does not name an .ilearner" in capsys.readouterr().err
    assert _digest(definition_file) == before


def test_diff_prints_the_patch(
    definition_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = tmp_path / "new.json"
    main(["definition", "rewrite", str(definition_file), "--uri", NEW_URI, "-o", str(new)])
    capsys.readouterr()
    assert main(["definition", "diff", str(definition_file), str(new), "--output", "json"]) == 0
    ops = json.loads(capsys.readouterr().out)
    assert [op["op"] for op in ops] == ["test", "replace"]


def test_debug_shows_a_redacted_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert main(["--debug", "definition", "validate", str(bad)]) == 3
    assert "Traceback" in capsys.readouterr().err


def test_version_and_help_run_as_a_program() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "amlretrain", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("amlretrain ")
    helped = subprocess.run(
        [sys.executable, "-m", "amlretrain", "--help"], capture_output=True, text=True, check=True
    )
    assert "exit codes:" in helped.stdout


def test_main_leaves_the_root_logger_as_it_was(definition_file: Path) -> None:
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    for _ in range(3):
        main(["--verbose", "definition", "validate", str(definition_file)])
    assert root.handlers == handlers
    assert root.level == level


def test_diff_of_the_camel_and_pascal_spellings_reports_no_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    camel, pascal = tmp_path / "camel.json", tmp_path / "pascal.json"
    camel.write_text(json.dumps(sample_definition()))
    pascal.write_text(json.dumps(sample_definition(pascal=True), indent=4))
    assert main(["definition", "diff", str(camel), str(pascal)]) == 0
    assert capsys.readouterr().out == "(no differences)\n"
    assert main(["definition", "diff", str(pascal), str(camel), "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (('"name": "svc",', '"name": "svc", "name": "other",'), "/name"),
        (('"maxConcurrentCalls": 4', '"maxConcurrentCalls": NaN'), "/properties/realtimeConfiguration/maxConcurrentCalls"),
        (('"maxConcurrentCalls": 4', '"maxConcurrentCalls": 18446744073709551616'), "/properties/realtimeConfiguration/maxConcurrentCalls"),
    ],
)  # fmt: skip
def test_validate_refuses_what_json_leaves_open_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: tuple[str, str], path: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(sample_definition()).replace(*edit))
    assert main(["definition", "validate", str(bad)]) == 3
    err = capsys.readouterr().err
    assert f"at {path}:" in err and err.count("\n") == 1


def test_rewrite_in_place_keeps_the_files_format(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    text = json.dumps(sample_definition(pascal=True), indent="\t").replace("\n", "\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert main(["definition", "rewrite", str(path), "--uri", NEW_URI, "-o", str(path)]) == 0
    assert path.read_bytes() == b"\xef\xbb\xbf" + text.replace(MODEL_URI, NEW_URI).encode()


USER_SECRET = "User-Supplied-Cred-9f3a7c"


@pytest.mark.parametrize(
    "extra",
    [["--diff"], ["--diff", "--output", "json"], ["-o", "{out}", "--diff"], ["-o", "{out}", "--output", "json"], []],
    ids=["diff", "diff-json", "file-diff", "file-json", "stdout"],
)  # fmt: skip
def test_credentials_given_to_rewrite_are_never_printed(
    definition_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    out = tmp_path / "new.json"
    argv = ["--debug", "--verbose", "definition", "rewrite", str(definition_file), "--uri", NEW_URI]
    argv += ["--credentials", USER_SECRET] + [a.format(out=out) for a in extra]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert USER_SECRET not in printed.out + printed.err
    if "--diff" in extra:
        assert "locationInfo/credentials" in printed.out and "REDACTED" in printed.out
    if "-o" in extra:
        assert USER_SECRET in out.read_text()  # the file holds it; only the output hides it


def test_diff_of_files_with_secrets_never_prints_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = sample_definition(), sample_definition()
    secrets = {
        "credentials": "Made-Up-Cred-1234",
        "connection": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=TWFkZVVwS2V5;",
        "key": "Made-Up-Storage-Key-5678",
        "primary": "Made-Up-Api-Key-0001",
    }
    location = new["properties"]["assets"]["asset2"]["locationInfo"]
    location["credentials"] = secrets["credentials"]
    location["ConnectionString"] = secrets["connection"]
    new["properties"]["storageAccount"]["key"] = secrets["key"]
    new["properties"]["keys"] = {"primary": secrets["primary"]}
    old["properties"]["storageAccount"]["Key"] = "Old-Storage-Key-9999"
    files = []
    for name, doc in (("old.json", old), ("new.json", new)):
        files.append(tmp_path / name)
        files[-1].write_text(json.dumps(doc))
    for output in ("text", "json"):
        for pair in (files, files[::-1]):
            assert main(["--debug", "definition", "diff", *map(str, pair), "--output", output]) == 0
            printed = capsys.readouterr()
            for secret in [*secrets.values(), "TWFkZVVwS2V5", "Old-Storage-Key-9999"]:
                assert secret not in printed.out + printed.err, (output, secret)
            assert "storageAccount" in printed.out
