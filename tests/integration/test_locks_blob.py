"""Per-target blob leases against Azurite, and the ``locks`` commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from amlretrain.cli import main
from amlretrain.cli._emulator_config import emulator_config, emulator_environment
from amlretrain.config import load_config
from amlretrain.emulator import Emulator
from amlretrain.errors import ConfigurationError
from amlretrain.locks import BlobTargetLocks, FileTargetLocks, TargetLocked, locks_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TARGET = "classic:ws/svc/ep"
OTHER = "arm:/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearning/webServices/w"
HOST = socket.gethostname()
DATA = Path(__file__).resolve().parents[2] / "amlretrain" / "emulator" / "data"

HOLDER = textwrap.dedent(
    """
    import os, sys, time
    from azure.storage.blob import BlobServiceClient
    from amlretrain.locks import BlobTargetLocks
    service = BlobServiceClient.from_connection_string(os.environ["LOCKS_CONNECTION_STRING"])
    container = service.get_container_client(sys.argv[1])
    locks = BlobTargetLocks(container, "team/locks/", renew_seconds=1)
    with locks.hold(sys.argv[2], run_id="child-run"):
        print("held", flush=True)
        time.sleep(120)
    """
)


@pytest.fixture(scope="module")
def connection_string(emulator: Emulator) -> str:
    return emulator.info.storage_connection_string


@pytest.fixture
def container(connection_string: str) -> Iterator[str]:
    """A fresh container name (created by the first hold), deleted after the test."""
    name = f"locks-{uuid.uuid4().hex[:12]}"
    yield name
    service = BlobServiceClient.from_connection_string(connection_string)
    client = service.get_container_client(name)
    if client.exists():
        client.delete_container()  # leased blobs and all


def _locks(connection_string: str, container: str, **kw: Any) -> BlobTargetLocks:
    """A BlobTargetLocks over a client of its own (as another machine would have)."""
    service = BlobServiceClient.from_connection_string(connection_string)
    kw.setdefault("renew_seconds", 1)
    kw.setdefault("poll_seconds", 0.2)
    return BlobTargetLocks(service.get_container_client(container), "team/locks/", **kw)


@pytest.fixture
def child(connection_string: str, container: str) -> Iterator[subprocess.Popen[str]]:
    """Another process holding TARGET's lease (renewed every second; killed at the end)."""
    env = {**os.environ, "LOCKS_CONNECTION_STRING": connection_string}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, container, TARGET],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


def test_conflict_names_the_holder_and_list_shows_it(
    connection_string: str, container: str
) -> None:
    mine, theirs = _locks(connection_string, container), _locks(connection_string, container)
    assert theirs.list() == []  # no container yet
    with mine.hold(TARGET, run_id="run-7") as lease:
        assert lease.info.holder == f"{HOST}:{os.getpid()} run run-7"
        assert lease.info.expires is not None and lease.info.expires > lease.info.since
        assert lease.info.where.endswith(".lock") and "/team/locks/" in lease.info.where
        started = time.monotonic()
        with pytest.raises(TargetLocked) as caught, theirs.hold(TARGET):
            pytest.fail("a second holder got in")
        assert time.monotonic() - started < 3
        err = caught.value
        assert err.code == "TargetLocked"
        assert f"target {TARGET} is being deployed by {HOST}:{os.getpid()} run run-7 since " in str(
            err
        )
        (info,) = theirs.list()
        assert (info.target, info.holder, info.since) == (
            TARGET,
            lease.info.holder,
            lease.info.since,
        )
        assert info.expires is not None
        with theirs.hold(OTHER):  # another target is free
            assert {i.target for i in mine.list()} == {TARGET, OTHER}
    assert theirs.list() == []
    with theirs.hold(TARGET):  # released: free at once
        pass


def test_wait_succeeds_once_released(connection_string: str, container: str) -> None:
    mine, theirs = _locks(connection_string, container), _locks(connection_string, container)
    held = threading.Event()

    def hold() -> None:
        with mine.hold(TARGET):
            held.set()
            time.sleep(1.0)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    with pytest.raises(TargetLocked), theirs.hold(TARGET):
        pass
    with theirs.hold(TARGET, wait=20) as lease:
        assert not lease.lost
    thread.join(10)


def test_another_process_holding_it_excludes_us(
    connection_string: str, container: str, child: subprocess.Popen[str]
) -> None:
    locks = _locks(connection_string, container)
    with pytest.raises(TargetLocked, match=f"{HOST}:{child.pid} run child-run"), locks.hold(TARGET):
        pass
    assert [i.holder for i in locks.list()] == [f"{HOST}:{child.pid} run child-run"]


@pytest.mark.slow
def test_a_sigkilled_holder_frees_the_lease_within_15_seconds(
    connection_string: str, container: str, child: subprocess.Popen[str]
) -> None:
    locks = _locks(connection_string, container)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    killed = time.monotonic()
    with locks.hold(TARGET, wait=30) as lease:
        waited = time.monotonic() - killed
        assert lease.info.holder == f"{HOST}:{os.getpid()}"
    assert waited <= 16.5, f"the crashed holder's lease lasted {waited:.1f} s"


@pytest.mark.slow
def test_renewal_keeps_the_lease_past_its_duration(connection_string: str, container: str) -> None:
    mine, theirs = _locks(connection_string, container), _locks(connection_string, container)
    with mine.hold(TARGET) as lease:
        first_expiry = lease.info.expires
        time.sleep(17)  # longer than the 15 s lease
        assert not lease.lost
        assert lease.info.expires is not None and first_expiry is not None
        assert lease.info.expires > first_expiry
        with pytest.raises(TargetLocked), theirs.hold(TARGET):
            pass
        assert [i.target for i in theirs.list()] == [TARGET]
    with theirs.hold(TARGET):
        pass


def test_break_frees_it_and_the_holder_finds_it_lost(
    connection_string: str, container: str
) -> None:
    mine, theirs = _locks(connection_string, container), _locks(connection_string, container)
    assert theirs.break_lock(TARGET) is False  # nothing there at all
    with mine.hold(TARGET) as lease:
        assert theirs.break_lock(TARGET) is True
        deadline = time.monotonic() + 10
        while not lease.lost and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lease.lost, "the broken holder's next renewal failed"
        with theirs.hold(TARGET) as second:  # free at once, while the old holder still runs
            assert not second.lost
    assert theirs.list() == []
    assert theirs.break_lock(TARGET) is False  # released: not held


def test_a_broken_holder_leaving_does_not_free_the_new_holder(
    connection_string: str, container: str
) -> None:
    mine, theirs = _locks(connection_string, container), _locks(connection_string, container)
    old = mine.hold(TARGET)
    old.__enter__()
    assert theirs.break_lock(TARGET) is True
    with theirs.hold(TARGET, run_id="new"):
        old.__exit__(None, None, None)  # leaves before its renewal noticed the break
        (info,) = mine.list()
        assert info.holder.endswith("run new")
        with pytest.raises(TargetLocked, match="run new"), mine.hold(TARGET):
            pass


def test_list_ignores_other_blobs_and_unleased_locks(
    connection_string: str, container: str
) -> None:
    locks = _locks(connection_string, container)
    with locks.hold(TARGET):
        pass
    service = BlobServiceClient.from_connection_string(connection_string)
    service.get_container_client(container).upload_blob("team/locks/notes.txt", b"x")
    assert locks.list() == []
    with locks.hold(OTHER) as lease:
        assert locks.list() == [lease.info]


def test_no_secret_in_what_the_locks_show(connection_string: str, container: str) -> None:
    from amlretrain.storage import parse_connection_string

    key = parse_connection_string(connection_string)["AccountKey"]
    locks = _locks(connection_string, container)
    with locks.hold(TARGET) as lease:
        shown = [repr(locks), repr(lease), str(lease.info), json.dumps(locks.list()[0].to_dict())]
        with pytest.raises(TargetLocked) as caught, locks.hold(TARGET):
            pass
        shown.append(str(caught.value))
    for text in shown:
        assert key not in text


# -- the CLI --------------------------------------------------------------------------------


@pytest.fixture
def config(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, container: str
) -> Path:
    """A retrain.toml for the emulator whose ledger is a blob (so its locks are leases)."""
    for name, value in emulator_environment(emulator.info).items():
        monkeypatch.setenv(name, value)
    text = emulator_config(emulator.info, data=DATA / "census_new.csv", ledger=tmp_path / "l.jsonl")
    start = text.index("[ledger]")
    end = text.index("\n\n", start)
    path = tmp_path / "retrain.toml"
    path.write_text(text[:start] + f'[ledger]\nblob = "{container}/team/ledger.jsonl"' + text[end:])
    return path


def test_cli_locks_list_and_break(
    config: Path, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    loaded = load_config(config)
    locks = locks_for(loaded)
    assert isinstance(locks, BlobTargetLocks) and locks.prefix == "team/locks/"
    target = next(t for t, _ in loaded.targets() if t.key.startswith("classic:"))

    assert main(["locks", "list", "--config", str(config)]) == 0
    assert "(no target is locked)" in capsys.readouterr().out

    with locks.hold(target.key, run_id="cli-run") as lease:
        assert main(["locks", "list", "--config", str(config), "--output", "json"]) == 0
        (shown,) = json.loads(capsys.readouterr().out)
        assert shown == lease.info.to_dict()
        assert main(["locks", "list", "--config", str(config)]) == 0
        out = capsys.readouterr().out
        assert target.key in out and "run cli-run" in out

        assert main(["locks", "break", target.label, "--config", str(config)]) == 4
        assert "pass --yes" in capsys.readouterr().err
        assert len(locks.list()) == 1, "nothing was broken without --yes"

        assert main(["locks", "break", target.label, "--config", str(config), "--yes"]) == 0
        out = capsys.readouterr().out
        assert f"broke the lock of {target.key}" in out and "run cli-run" in out
        assert locks.list() == []

    assert main(["locks", "break", target.label, "--config", str(config), "--yes"]) == 0
    assert "was not locked" in capsys.readouterr().out
    assert main(["locks", "break", "nonesuch", "--config", str(config), "--yes"]) == 4
    captured = capsys.readouterr()
    for secret in emulator_environment(emulator.info).values():
        assert secret not in captured.out + captured.err


def test_cli_refuses_to_break_a_live_file_lock(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = config.read_text()
    start = text.index("[ledger]")
    end = text.index("\n\n", start)
    config.write_text(text[:start] + f'[ledger]\npath = "{tmp_path / "l.jsonl"}"' + text[end:])
    loaded = load_config(config)
    locks = locks_for(loaded)
    assert isinstance(locks, FileTargetLocks) and locks.folder == tmp_path / "locks"
    key = next(t for t, _ in loaded.targets()).key
    with locks.hold(key):
        assert main(["locks", "list", "--config", str(config)]) == 0
        assert key in capsys.readouterr().out
        assert main(["locks", "break", key, "--config", str(config), "--yes"]) == 8
        assert "stop that process" in capsys.readouterr().err
    assert main(["locks", "break", key, "--config", str(config), "--yes"]) == 0
    assert "was not locked" in capsys.readouterr().out


def test_a_blob_lease_records_its_release_for_the_next_holder(
    connection_string: str, container: str
) -> None:
    locks = _locks(connection_string, container)
    target = "classic:ws/svc/released"
    with locks.hold(target) as first:
        assert first.last_released == 0.0  # the lock blob was new
    before = time.time()
    with locks.hold(target) as second:
        assert second.last_released is not None and 0 < second.last_released <= before
    assert [i for i in locks.list() if i.target == target] == []


ADOPTER = textwrap.dedent(
    """
    import os, sys
    from azure.storage.blob import BlobServiceClient
    from amlretrain.locks import BlobTargetLocks
    service = BlobServiceClient.from_connection_string(os.environ["LOCKS_CONNECTION_STRING"])
    container = service.get_container_client(sys.argv[1])
    locks = BlobTargetLocks(container, "team/locks/", renew_seconds=1)
    with locks.hold(sys.argv[2], run_id=sys.argv[3]) as lease:
        print("adopted", lease.last_released, flush=True)
    """
)


def _lock_blob(connection_string: str, container: str, target: str) -> Any:
    from amlretrain.locks import lock_name

    service = BlobServiceClient.from_connection_string(connection_string)
    return service.get_blob_client(container, f"team/locks/{lock_name(target)}.lock")


def test_a_handed_off_lease_outlives_its_holder_and_only_its_run_takes_it_back(
    connection_string: str, container: str
) -> None:
    locks, other = _locks(connection_string, container), _locks(connection_string, container)
    with locks.hold(TARGET, run_id="run-d") as lease:
        assert lease.can_hand_off
        lease.hand_off()
    props = _lock_blob(connection_string, container, TARGET).get_blob_properties()
    assert (props.lease.state, props.lease.duration) == ("leased", "infinite")  # Azurite's
    (info,) = other.list()
    assert info.holder.endswith("run run-d (deferred)") and info.expires is None
    with pytest.raises(TargetLocked, match=r"run-d \(deferred\)"), other.hold(TARGET, run_id="x"):
        pytest.fail("another run took a handed-off lease")
    # the run takes it back in another process (another machine), under a new lease id
    env = {**os.environ, "LOCKS_CONNECTION_STRING": connection_string}
    done = subprocess.run(
        [sys.executable, "-c", ADOPTER, container, TARGET, "run-d"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["adopted", "None"]  # a hand-off is no clean release
    props = _lock_blob(connection_string, container, TARGET).get_blob_properties()
    assert props.lease.state == "available"  # it released it at the end
    with other.hold(TARGET, run_id="x"):  # free for anyone now
        pass


def test_a_run_takes_a_handed_off_lease_back_once_and_it_can_be_broken(
    connection_string: str, container: str
) -> None:
    locks = _locks(connection_string, container)
    with locks.hold(TARGET, run_id="run-e") as lease:
        lease.hand_off()
    again = _locks(connection_string, container)
    # a second attempt of the same run (a zombie) does not get it as well
    with again.hold(TARGET, run_id="run-e"), pytest.raises(TargetLocked):  # noqa: SIM117
        with locks.hold(TARGET, run_id="run-e"):
            pytest.fail("two attempts of one run held the lease")
    with locks.hold(TARGET, run_id="run-f") as lease:
        lease.hand_off()
    assert locks.break_lock(TARGET) is True  # a deferred lease abandoned: broken by hand
    with again.hold(TARGET, run_id="x"):
        pass


def test_a_file_lock_cannot_be_handed_off(tmp_path: Path) -> None:
    locks = FileTargetLocks(tmp_path)
    with locks.hold(TARGET, run_id="r") as lease:
        assert not lease.can_hand_off
        with pytest.raises(ConfigurationError, match="blob ledger"):
            lease.hand_off()
