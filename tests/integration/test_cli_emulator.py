"""``amlretrain emulator start`` in a subprocess, ``emulator config``, and a clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from amlretrain.emulator import Emulator

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_start_config_retrain_and_stop(tmp_path: Path) -> None:
    info_file = tmp_path / "emulator.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "amlretrain", "emulator", "start", "--output", "json",
         "--info-file", str(info_file)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        printed = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not printed.rstrip().endswith("}"):
            printed += proc.stdout.readline()
        shown = json.loads(printed)
        assert shown["training_service"]
        hidden = {"arm_token", "workspace_token", "storage_connection_string",
                  "training_api_key", "predictive_api_key", "arm_api_key"}  # fmt: skip
        assert not hidden & set(shown), "secrets are not printed without --show-secrets"
        secrets = json.loads(info_file.read_text())
        assert (info_file.stat().st_mode & 0o777) == 0o600
        assert secrets["workspace_token"] and secrets["workspace_token"] not in printed

        env_file = tmp_path / "emulator.env"
        out = subprocess.run(
            [sys.executable, "-m", "amlretrain", "emulator", "config", "--info-file",
             str(info_file), "-o", str(tmp_path / "retrain.toml"), "--env-file", str(env_file),
             "--ledger", str(tmp_path / "ledger.jsonl")],
            cwd=tmp_path, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert secrets["workspace_token"] not in out.stdout
        written = (tmp_path / "retrain.toml").read_bytes()
        again = subprocess.run(
            [sys.executable, "-m", "amlretrain", "emulator", "config", "--info-file",
             str(info_file), "-o", str(tmp_path / "retrain.toml"), "--env-file", str(env_file)],
            cwd=tmp_path, capture_output=True, text=True,
        )  # fmt: skip
        assert again.returncode == 4 and "exists: pass --force" in again.stderr
        assert (tmp_path / "retrain.toml").read_bytes() == written  # left as it was
        forced = subprocess.run(
            [sys.executable, "-m", "amlretrain", "emulator", "config", "--info-file",
             str(info_file), "-o", str(tmp_path / "retrain.toml"), "--env-file", str(env_file),
             "--ledger", str(tmp_path / "ledger.jsonl"), "--force"],
            cwd=tmp_path, capture_output=True, text=True,
        )  # fmt: skip
        assert forced.returncode == 0, forced.stderr
        env = dict(os.environ)
        for line in env_file.read_text().splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = json.loads(value)
        run = subprocess.run(
            [sys.executable, "-m", "amlretrain", "retrain", "--config",
             str(tmp_path / "retrain.toml"), "--output", "json"],
            cwd=tmp_path, capture_output=True, text=True, env=env, timeout=180,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout)
        assert [t["status"] for t in result["targets"]] == ["succeeded", "succeeded"]
        for secret in (
            secrets["workspace_token"],
            secrets["arm_token"],
            secrets["training_api_key"],
        ):
            assert secret not in run.stdout + run.stderr
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert children, "Azurite runs as a child of the emulator"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    time.sleep(0.5)
    assert not [pid for pid in children if _alive(int(pid))]


def test_config_for_airflow_names_a_blob_ledger_and_writes_the_connection_to_import(
    emulator: Emulator, tmp_path: Path
) -> None:
    from amlretrain.cli._emulator_config import emulator_environment
    from amlretrain.config import load_config

    info_file = tmp_path / "emulator.json"
    info_file.write_text(json.dumps(emulator.info.to_dict(include_secrets=True)))
    config, conn = tmp_path / "retrain.toml", tmp_path / "airflow-connection.json"

    def config_cli(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "amlretrain", "emulator", "config", "--info-file",
             str(info_file), "-o", str(config), "--env-file", str(tmp_path / "e.env"), *extra],
            cwd=tmp_path, capture_output=True, text=True,
        )  # fmt: skip

    bad = config_cli("--ledger-blob", "Not_A_Container/ledger.jsonl")
    assert bad.returncode == 4 and "--ledger-blob 'Not_A_Container/ledger.jsonl'" in bad.stderr
    assert not config.exists() and not conn.exists()  # refused before anything was written
    both = config_cli("--ledger", "l.jsonl", "--ledger-blob", "c1/l.jsonl")
    assert both.returncode == 2 and "not allowed with" in both.stderr

    done = config_cli("--ledger-blob", "amlretrain/airflow/ledger.jsonl", "--airflow-connection",
                      str(conn), "--output", "json")  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["airflow_connection"] == str(conn)
    env = emulator_environment(emulator.info)
    assert not [v for v in env.values() if v in done.stdout + done.stderr]
    loaded = load_config(config, environ=env)
    assert loaded.ledger_blob == "amlretrain/airflow/ledger.jsonl"  # what the operators need
    assert (conn.stat().st_mode & 0o777) == 0o600
    assert json.loads(conn.read_text()) == {
        "amlretrain_default": {"conn_type": "amlretrain", "extra": {"env": env}}
    }
