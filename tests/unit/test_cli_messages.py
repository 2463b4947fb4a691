"""What the CLI says on stderr: warnings once as messages, and no Python API in the words."""

from __future__ import annotations

import copy
import json
import logging
import re
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import pytest

from amlretrain.cli import main
from tests.conftest import sample_definition

#: What a message written for Python callers looks like: ``asset=``, ``update()``,
#: ``TrainingJob.refresh``, ``(add_endpoint)``, ``include_secrets``.
PYTHON_API = re.compile(r"\b\w+=(?=[\s)\"':,]|$)|\b\w+\(\)|\b[A-Z]\w+\.[a-z_]+\b|\(\w+_\w+\)")
NAMES = ("asset=", "include_secrets", "TrainingJob.refresh", "add_endpoint", "resource_name=")


def assert_no_python_api(err: str) -> None:
    for line in err.splitlines():
        assert not PYTHON_API.search(line), line
        assert not any(name in line for name in NAMES), line


def _short_sas_uri() -> str:
    expiry = (datetime.now(timezone.utc) + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"https://acct.blob.core.windows.net/models/v2/m.ilearner?se={quote(expiry)}&sig=SECRET"


@pytest.fixture
def definition_file(tmp_path: Path) -> Path:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(sample_definition(), indent=2))
    return path


def test_a_python_warning_is_printed_once_as_a_message_without_a_source_line(
    definition_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["definition", "rewrite", str(definition_file), "--uri", _short_sas_uri()]
    assert main([*argv, "-o", str(tmp_path / "new.json")]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line]
    assert len(lines) == 1, err  # not also as a log line, nor a Python warning
    assert lines[0].startswith("amlretrain: warning: the SAS of model uri ")
    assert "expires at" in lines[0] and "sig=REDACTED" in lines[0]
    assert "SasExpiryWarning" not in err and ".py:" not in err and "SECRET" not in err


def test_main_leaves_the_warnings_machinery_and_the_root_logger_as_they_were(
    definition_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (warnings.showwarning, list(warnings.filters), list(logging.getLogger().handlers))
    for run in range(2):
        argv = ["definition", "rewrite", str(definition_file), "--uri", _short_sas_uri()]
        assert main([*argv, "-o", str(tmp_path / f"new{run}.json")]) == 0
    after = (warnings.showwarning, list(warnings.filters), list(logging.getLogger().handlers))
    assert after == before
    assert capsys.readouterr().err.count("amlretrain: warning:") == 2  # once in each run


def test_two_trained_models_and_no_asset_name_the_option_not_the_keyword(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = sample_definition()
    assets = doc["properties"]["assets"]
    assets["asset9"] = copy.deepcopy(assets["asset1"])
    assets["asset9"]["name"] = "Other Model [trained model]"
    path = tmp_path / "two.json"
    path.write_text(json.dumps(doc))
    new = "https://acct.blob.core.windows.net/models/v2/m.ilearner"
    assert main(["definition", "rewrite", str(path), "--uri", new]) == 4
    err = capsys.readouterr().err
    assert "--asset" in err and "2 trained models" in err
    assert_no_python_api(err)


def test_the_pattern_finds_what_python_callers_are_told() -> None:
    for text in (
        "name one with asset=",
        "pass overwrite_fetched=True if that is intended, or use update() for a minimal PATCH",
        "get the job again (TrainingJob.refresh) or mint a new one (BlobStore.sas)",
        "add an endpoint (add_endpoint) and use that",
        "(secrets hidden; use the info file or include_secrets to see them)",
    ):
        with pytest.raises(AssertionError):
            assert_no_python_api(text)
