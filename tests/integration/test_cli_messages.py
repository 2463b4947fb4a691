"""What the CLI says on stderr against the emulator: refusals in the CLI's words, warnings
once, and a training job's progress as plain lines when stderr is not a terminal."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from amlretrain.cli import main
from amlretrain.cli._emulator_config import emulator_config, emulator_environment
from amlretrain.emulator import Emulator
from amlretrain.storage import BlobStore
from tests.integration.test_cli_services import MODEL, environment, new_model
from tests.unit.test_cli_messages import assert_no_python_api

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

DATA = Path(__file__).resolve().parents[2] / "amlretrain" / "emulator" / "data"
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Run:
    """``run(*argv)``: (exit code, stdout, stderr) of one command."""
    monkeypatch.chdir(tmp_path)
    for name, value in {**environment(emulator), **emulator_environment(emulator.info)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AMLRETRAIN_PROFILES", str(tmp_path / "no-profiles.toml"))

    def _run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return _run


@pytest.fixture
def store(emulator: Emulator) -> BlobStore:
    return BlobStore.from_connection_string(emulator.info.storage_connection_string)


def _error(err: str) -> str:
    (line,) = [x for x in err.splitlines() if x.startswith("amlretrain: error:")]
    return line


def test_refusals_name_the_options_not_the_python_api(
    emulator: Emulator, run: Run, store: BlobStore, tmp_path: Path
) -> None:
    info = emulator.info
    service, default = str(info.predictive_service), str(info.predictive_default_endpoint)
    model = new_model(emulator, store)
    expired = re.sub(r"se=[^&]+", "se=2020-01-01T00%3A00%3A00Z", model)
    exported = tmp_path / "fetched.json"
    assert run("webservice", "export", str(info.arm_service_name), "-o", str(exported))[0] == 0
    copy = "msg-" + uuid.uuid4().hex[:10]
    cases: list[tuple[tuple[str, ...], str]] = [
        (("webservice", "import", copy, str(exported)), "--overwrite-fetched"),
        (("endpoint", "patch", service, default, "--resource", MODEL, "--blob-url", model),
         "add another endpoint"),
        (("endpoint", "add", service, "msgname", "--max-concurrent-calls", "10"),
         "throttle level 'High'"),
        (("endpoint", "patch", service, str(info.predictive_endpoint),
          "--resource", MODEL, "--blob-url", expired), "mint a new SAS for the blob"),
    ]  # fmt: skip
    for argv, words in cases:
        code, _out, err = run(*argv)
        assert code == 4, (argv, err)
        line = _error(err)
        assert words in line, line
        assert_no_python_api(err)


def test_a_short_sas_is_warned_about_once_as_a_message(
    emulator: Emulator, run: Run, store: BlobStore
) -> None:
    initial = store.download_bytes(str(emulator.info.initial_model))
    ref = store.upload(initial, container="models", blob_name=f"msg-{uuid.uuid4().hex}.ilearner")
    short = store.sas(ref, expires_in=timedelta(minutes=30)).sas_url
    name = str(emulator.info.arm_service_name)
    code, _out, err = run("webservice", "update", name, "--model-uri", short, "--dry-run")
    assert code == 0, err
    warned = [line for line in err.splitlines() if "expires at" in line]
    assert len(warned) == 1, err
    assert warned[0].startswith("amlretrain: warning: the SAS of model uri")
    assert "SasExpiryWarning" not in err and "warnings.warn" not in err


def test_a_job_wait_off_a_terminal_prints_plain_lines_with_the_elapsed_time(
    run: Run,
) -> None:
    code, out, _ = run(
        "job", "submit", "--input", f"input1={DATA / 'census_new.csv'}", "--output", "json"
    )
    assert code == 0
    job_id = json.loads(out)["job_id"]
    code, out, err = run("job", "wait", job_id, "--timeout", "60")
    assert code == 0, err
    assert "\r" not in err
    assert re.search(rf"^job {job_id[:12]}: Finished \(\d+:\d\d elapsed\)$", err, re.M), err

    quiet = run("job", "wait", job_id, "--output", "json")
    assert quiet[0] == 0 and quiet[2] == "", "JSON off a terminal: no progress by default"
    asked = run("job", "wait", job_id, "--output", "json", "--progress")
    assert f"job {job_id[:12]}: Finished" in asked[2]
    assert run("job", "wait", job_id, "--no-progress")[2] == ""


def test_retrain_shows_the_job_s_progress_between_its_steps(
    emulator: Emulator, run: Run, tmp_path: Path
) -> None:
    config = tmp_path / "retrain.toml"
    config.write_text(
        emulator_config(
            emulator.info, data=DATA / "census_new.csv", ledger=tmp_path / "ledger.jsonl"
        )
    )
    code, _out, err = run("retrain", "--config", str(config))
    assert code in (0, 11), err
    lines = err.splitlines()
    during = lines[lines.index("... train") + 1 : lines.index("... evaluate")]
    job = [line for line in during if line.startswith("job ")]
    assert job, err
    assert all(re.fullmatch(r"job \w{12}: \w+ \(\d+:\d\d elapsed\)", line) for line in job), err
    assert job[-1].split(": ")[1].startswith("Finished ")
    assert "\r" not in err
