"""Azurite, Microsoft's blob emulator, started and stopped by amlretrain.emulator.azurite."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

from amlretrain.emulator.azurite import (
    WELL_KNOWN_ACCOUNT,
    WELL_KNOWN_KEY,
    Azurite,
    AzuriteError,
    AzuriteNotFound,
    find_azurite,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    with Azurite() as running:
        yield running


@pytest.fixture(scope="module")
def service(azurite: Azurite) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(azurite.connection_string)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie still answers kill(0); only a reaped process is really gone
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" in status.read_text()


def port_closed(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), 1).close()
    except OSError:
        return True
    return False


def test_blobs_round_trip_through_azure_storage_blob(service: BlobServiceClient) -> None:
    container = service.create_container("roundtrip")
    container.upload_blob("models/initial.ilearner", b'{"format": "x"}')
    assert container.download_blob("models/initial.ilearner").readall() == b'{"format": "x"}'
    assert [b.name for b in container.list_blobs()] == ["models/initial.ilearner"]


def test_endpoint_and_connection_string_name_the_well_known_account(azurite: Azurite) -> None:
    assert azurite.blob_endpoint == f"http://127.0.0.1:{azurite.port}/devstoreaccount1"
    assert azurite.port != 0
    assert azurite.account_name == WELL_KNOWN_ACCOUNT
    assert azurite.account_key == WELL_KNOWN_KEY
    assert azurite.connection_string == (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={WELL_KNOWN_KEY};BlobEndpoint={azurite.blob_endpoint};"
    )


def test_repr_does_not_show_the_key(azurite: Azurite) -> None:
    text = repr(azurite)
    assert azurite.blob_endpoint in text
    assert f"pid={azurite.pid}" in text
    assert WELL_KNOWN_KEY not in text
    assert WELL_KNOWN_KEY[:12] not in text


def test_azurite_runs_in_its_own_process_group(azurite: Azurite) -> None:
    assert azurite.pid is not None
    assert os.getpgid(azurite.pid) == azurite.pid != os.getpgid(0)


def test_azurite_enforces_sas_signatures(service: BlobServiceClient, azurite: Azurite) -> None:
    service.create_container("sas").upload_blob("data.csv", b"a,b\n1,2\n")
    expiry = datetime.now(timezone.utc) + timedelta(hours=1)
    token = generate_blob_sas(
        WELL_KNOWN_ACCOUNT,
        "sas",
        "data.csv",
        account_key=WELL_KNOWN_KEY,
        permission=BlobSasPermissions(read=True),
        expiry=expiry,
    )
    url = f"{azurite.blob_endpoint}/sas/data.csv"
    assert requests.get(f"{url}?{token}", timeout=10).content == b"a,b\n1,2\n"

    sig = dict(part.split("=", 1) for part in token.split("&"))["sig"]
    tampered = token.replace(f"sig={sig}", f"sig={'A' if sig[0] != 'A' else 'B'}{sig[1:]}")
    assert tampered != token
    assert requests.get(f"{url}?{tampered}", timeout=10).status_code == 403
    anonymous = requests.get(url, timeout=10)  # no credentials at all
    assert anonymous.status_code == 403
    assert "<Code>AuthorizationFailure</Code>" in anonymous.text


def test_azurite_rejects_an_expired_sas(service: BlobServiceClient, azurite: Azurite) -> None:
    service.create_container("expired").upload_blob("m.ilearner", b"x")
    token = generate_blob_sas(
        WELL_KNOWN_ACCOUNT,
        "expired",
        "m.ilearner",
        account_key=WELL_KNOWN_KEY,
        permission=BlobSasPermissions(read=True),
        expiry=datetime.now(timezone.utc) - timedelta(minutes=5),
    )
    url = f"{azurite.blob_endpoint}/expired/m.ilearner?{token}"
    assert requests.get(url, timeout=10).status_code == 403


def test_stop_leaves_no_process_port_or_temp_folder() -> None:
    azurite = Azurite().start()
    pid, port = azurite.pid, azurite.port
    assert pid is not None
    assert not gone(pid)
    workdir = Path(azurite._tmp or "")
    assert workdir.is_dir()

    azurite.stop()

    assert gone(pid)
    assert port_closed("127.0.0.1", port)
    assert not workdir.exists()
    assert not azurite.running
    assert azurite.pid is None
    azurite.stop()  # idempotent


def test_a_given_workdir_and_port_are_used_and_kept(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Azurite(port=port, workdir=str(tmp_path)) as azurite:
        assert azurite.blob_endpoint == f"http://127.0.0.1:{port}/devstoreaccount1"
        client = BlobServiceClient.from_connection_string(azurite.connection_string)
        client.create_container("kept").upload_blob("b.txt", b"kept")
    assert any(tmp_path.iterdir())
    with Azurite(port=port, workdir=str(tmp_path)) as again:
        client = BlobServiceClient.from_connection_string(again.connection_string)
        assert client.get_blob_client("kept", "b.txt").download_blob().readall() == b"kept"


def test_interpreter_exit_stops_a_started_azurite() -> None:
    script = textwrap.dedent(
        """
        from amlretrain.emulator.azurite import Azurite
        azurite = Azurite().start()
        print(azurite.pid, azurite.port, flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    pid, port = map(int, done.stdout.split())
    assert gone(pid)
    assert port_closed("127.0.0.1", port)


def test_a_failing_azurite_reports_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "azurite-blob"
    fake.write_text("#!/bin/sh\necho 'Error: something specific went wrong' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("AMLRETRAIN_AZURITE", str(fake))
    azurite = Azurite()
    with pytest.raises(AzuriteError, match="exited with code 3") as info:
        azurite.start(timeout=10)
    assert "something specific went wrong" in str(info.value)
    assert not azurite.running


def test_a_silent_azurite_times_out_and_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "azurite-blob"
    fake.write_text("#!/bin/sh\necho listening soon\nexec sleep 60\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("AMLRETRAIN_AZURITE", str(fake))
    azurite = Azurite()
    with pytest.raises(AzuriteError, match="did not answer") as info:
        azurite.start(timeout=0.5)
    assert "listening soon" in str(info.value)
    assert azurite.pid is None


def test_find_azurite_prefers_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "azurite-blob"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("AMLRETRAIN_AZURITE", str(fake))
    assert find_azurite() == str(fake)


def test_find_azurite_explains_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMLRETRAIN_AZURITE", str(tmp_path / "missing"))
    with pytest.raises(AzuriteNotFound, match=r"npm install --prefix \.tools azurite@3\.37\.0"):
        find_azurite()
    assert issubclass(AzuriteNotFound, RuntimeError)


def test_find_azurite_uses_the_repository_tools_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMLRETRAIN_AZURITE", raising=False)
    found = Path(find_azurite())
    assert found.name == "azurite-blob"
    assert found.parent == Path(__file__).resolve().parents[2] / ".tools/node_modules/.bin"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_killed_parent_takes_azurite_with_it() -> None:
    code = (
        "import os\n"
        "from amlretrain.emulator.azurite import Azurite\n"
        "print(Azurite().start().pid, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"  # no atexit, no stop(): only the death signal is left
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return  # gone and reaped
        if "\nState:\tZ" in state:
            return  # dead, waiting for init to reap it
        time.sleep(0.1)
    os.kill(pid, 9)
    pytest.fail(f"Azurite {pid} outlived the process that started it")
