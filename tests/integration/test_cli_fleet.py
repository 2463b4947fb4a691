"""A fleet from retrain.toml: a model per customer, one bad data file, a budget, a resume.

Every verdict is read from the emulator's own state (what each endpoint serves, the
batch jobs it ran), never from the CLI's report of itself.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from amlretrain.cli import main
from amlretrain.cli._emulator_config import emulator_config, emulator_environment
from amlretrain.emulator import Emulator
from tests.integration.conftest import classic_serves

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

DATA = Path(__file__).resolve().parents[2] / "amlretrain" / "emulator" / "data"


@pytest.fixture
def endpoints(emulator: Emulator) -> Iterator[list[str]]:
    """Four fresh non-default endpoints of the predictive service (deleted afterwards)."""
    from amlretrain.studio.management import ClassicClient

    info = emulator.info
    client = ClassicClient(info.workspace_id, info.workspace_token, base_url=info.management_url)
    names = [f"cust{n}{uuid.uuid4().hex[:6]}" for n in range(4)]
    for name in names:
        client.create_endpoint(info.predictive_service, name)
    yield names
    for name in names:
        client.delete_endpoint(info.predictive_service, name)
    client.close()


def _fleet_config(
    emulator: Emulator, tmp_path: Path, names: list[str], data: list[str], extra: str = ""
) -> Path:
    """A retrain.toml whose targets are ``names``, each trained on its ``data`` file."""
    info = emulator.info
    base = emulator_config(info, data=DATA / "census_new.csv", ledger=tmp_path / "ledger.jsonl")
    head = base[: base.index("[[targets]]")]
    head = head.replace("[training]", f"{extra}\n[training]\nconcurrency = 2", 1)
    blocks = []
    for name, file in zip(names, data, strict=True):
        blocks.append(
            "\n".join(
                [
                    "[[targets]]",
                    'kind = "classic"',
                    f'workspace_id = "{info.workspace_id}"',
                    'token_env = "AMLRETRAIN_WORKSPACE_TOKEN"',
                    f'management_url = "{info.management_url}"',
                    f'web_service_id = "{info.predictive_service}"',
                    f'endpoint = "{name}"',
                    f'data = "{file}"',
                    "verify_timeout = 30",
                    "",
                ]
            )
        )
    path = tmp_path / "retrain.toml"
    path.write_text(head + "\n".join(blocks))
    return path


def _finished_jobs(emulator: Emulator) -> list[str]:
    assert emulator.state is not None
    with emulator.state.lock:
        return [j.id for j in emulator.state.jobs.values() if j.status == "Finished"]


@pytest.fixture
def env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in emulator_environment(emulator.info).items():
        monkeypatch.setenv(name, value)


def _data(tmp_path: Path) -> dict[str, str]:
    """Per-customer files: two good ones and one without the hours_per_week column."""
    good_a = tmp_path / "alpha.csv"
    good_b = tmp_path / "beta.csv"
    shutil.copy(DATA / "census_new.csv", good_a)
    shutil.copy(DATA / "census_train.csv", good_b)
    bad = tmp_path / "broken.csv"
    rows = (DATA / "census_new.csv").read_text().splitlines()
    bad.write_text("\n".join(",".join(r.split(",")[:2] + r.split(",")[3:]) for r in rows) + "\n")
    return {"a": str(good_a), "b": str(good_b), "bad": str(bad)}


def test_one_bad_data_file_fails_its_target_only_and_the_run_ends_with_one_table(
    emulator: Emulator,
    env: None,
    endpoints: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = _data(tmp_path)
    before = {name: classic_serves(emulator, name) for name in endpoints}
    config = _fleet_config(
        emulator, tmp_path, endpoints, [files["a"], files["bad"], files["b"], files["a"]]
    )
    code = main(["retrain", "--config", str(config), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 14, out
    after = {name: classic_serves(emulator, name) for name in endpoints}
    bad = endpoints[1]
    assert after[bad] == before[bad], "the bad file's target was not touched"
    for name in (endpoints[0], endpoints[2], endpoints[3]):
        assert after[name] != before[name], f"{name} serves its new model"
    # the two targets on one file share one model; the other file made another
    assert after[endpoints[0]] == after[endpoints[3]] != after[endpoints[2]]
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("target"))
    assert header.split()[:3] == ["target", "data", "job"]
    bad_row = next(
        line for line in lines if line.split()[:1] == [f"{emulator.info.predictive_service}/{bad}"]
    )
    assert "broken.csv" in bad_row and "failed" in bad_row
    assert "hours_per_week" in out  # the message names the missing column
    assert "3 succeeded, 1 failed (run run-" in out


def test_a_budget_halts_the_run_and_a_resume_finishes_it_without_a_second_job(
    emulator: Emulator,
    env: None,
    endpoints: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = _data(tmp_path)
    before = {name: classic_serves(emulator, name) for name in endpoints}
    jobs_before = set(_finished_jobs(emulator))
    config = _fleet_config(
        emulator,
        tmp_path,
        endpoints,
        [files["bad"], files["a"], files["b"], files["a"]],
        extra='waves = "1,100%"\nmax_failures = 0\n',
    )
    code = main(["retrain", "--config", str(config), "--no-progress", "--output", "json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 15
    assert result["halted_wave"] == 1
    assert [t["status"] for t in result["targets"]] == ["failed", "halted", "halted", "halted"]
    assert {name: classic_serves(emulator, name) for name in endpoints} == before  # nothing changed
    run_id = result["run_id"]

    assert main(["runs", "show", run_id, "--config", str(config), "--output", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["run_id"] == run_id and shown["fingerprint"].startswith("sha256:")

    # The customer's file is fixed (the config is the same): the resume finishes the run.
    shutil.copy(DATA / "census_new.csv", files["bad"])
    code = main(["retrain", "--config", str(config), "--resume", run_id, "--no-progress",
                 "--output", "json"])  # fmt: skip
    resumed = json.loads(capsys.readouterr().out)
    assert code == 0, resumed
    assert resumed["run_id"] == run_id
    assert {name: classic_serves(emulator, name) for name in endpoints} != before
    assert all(classic_serves(emulator, n) != before[n] for n in endpoints)
    # Across both attempts one finished job per data file: a job the halt cancelled was
    # submitted anew, a finished one re-read, none ran twice.
    new_jobs = set(_finished_jobs(emulator)) - jobs_before
    assert len(new_jobs) == 3, new_jobs

    assert main(["runs", "list", "--config", str(config), "--output", "json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    (run,) = [r for r in runs if r["run_id"] == run_id]
    assert run["attempts"] == 2 and run["outcomes"] == {"succeeded": 4}


def test_a_resume_with_a_changed_config_is_refused(
    emulator: Emulator,
    env: None,
    endpoints: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = _data(tmp_path)
    config = _fleet_config(emulator, tmp_path, endpoints[:1], [files["a"]])
    assert main(["retrain", "--config", str(config), "--output", "json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    config.write_text(config.read_text().replace("concurrency = 2", "concurrency = 3", 1))
    assert main(["retrain", "--config", str(config), "--resume", run_id]) == 4
    assert "ran with another configuration" in capsys.readouterr().err
    assert main(["retrain", "--config", str(config), "--resume", "run-nonesuch"]) == 4
    assert "no run 'run-nonesuch'" in capsys.readouterr().err


def _jobs(emulator: Emulator) -> list[tuple[str, str]]:
    assert emulator.state is not None
    with emulator.state.lock:
        return [(j.id, j.status) for j in emulator.state.jobs.values()]


def test_a_killed_run_resumes_by_waiting_for_its_job_never_submitting_it_again(
    emulator: Emulator,
    env: None,
    endpoints: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import os
    import subprocess
    import sys
    import time

    files = _data(tmp_path)
    name = endpoints[0]
    before = classic_serves(emulator, name)
    config = _fleet_config(emulator, tmp_path, [name], [files["b"]])
    jobs_before = {job for job, _ in _jobs(emulator)}
    emulator.faults.add(route="bes.*", kind="job_slow", seconds=4, count=1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "amlretrain", "retrain", "--config", str(config), "--no-progress"],
        env={**os.environ, **emulator_environment(emulator.info)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    emulator.faults.add(route="bes.start", kind="kill", pid=proc.pid, when="after", count=1)
    assert proc.wait(timeout=120) == -9, "killed right after it started its job"
    started = [job for job, _ in _jobs(emulator) if job not in jobs_before]
    assert len(started) == 1 and classic_serves(emulator, name) == before

    assert main(["runs", "list", "--config", str(config), "--output", "json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert run["outcomes"] == {} and run["jobs"][0]["job_id"] == started[0]
    began = time.monotonic()
    code = main(["retrain", "--config", str(config), "--resume", run["run_id"], "--output", "json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert [job for job, _ in _jobs(emulator) if job not in jobs_before] == started  # no 2nd
    assert dict(_jobs(emulator))[started[0]] == "Finished"
    assert result["targets"][0]["job_id"] == started[0]
    assert classic_serves(emulator, name) != before
    assert time.monotonic() - began < 60
