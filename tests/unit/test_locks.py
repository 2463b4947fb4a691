"""Per-target file locks: exclusion between threads and processes, holders, SIGKILL, names."""

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
from collections.abc import Iterator
from pathlib import Path

import pytest

from amlretrain.config import RetrainConfig
from amlretrain.errors import ConflictError
from amlretrain.locks import (
    BlobTargetLocks,
    FileTargetLocks,
    Lease,
    TargetLocked,
    lock_name,
    locks_for,
)

TARGET = "arm:/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearning/webServices/w"
OTHER = "classic:ws/svc/ep"
HOST = socket.gethostname()

HOLDER = textwrap.dedent(
    """
    import sys, time
    from amlretrain.locks import FileTargetLocks
    locks = FileTargetLocks(sys.argv[1])
    with locks.hold(sys.argv[2], run_id="child-run"):
        print("held", flush=True)
        time.sleep(120)
    """
)


@pytest.fixture
def locks(tmp_path: Path) -> FileTargetLocks:
    return FileTargetLocks(tmp_path / "locks", poll_seconds=0.02)


@pytest.fixture
def child(locks: FileTargetLocks) -> Iterator[subprocess.Popen[str]]:
    """Another process holding TARGET's lock (killed at the end)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(locks.folder), TARGET],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


def test_hold_and_release(locks: FileTargetLocks) -> None:
    with locks.hold(TARGET, run_id="r1") as lease:
        assert isinstance(lease, Lease)
        assert lease.target == TARGET
        assert lease.info.holder == f"{HOST}:{os.getpid()} run r1"
        assert lease.info.expires is None
        assert lease.info.where.endswith(".lock")
        assert not lease.lost
        assert [i.target for i in locks.list()] == [TARGET]
        assert locks.list()[0] == lease.info
    assert locks.list() == []
    with locks.hold(TARGET):  # free again
        pass


def test_released_on_an_exception(locks: FileTargetLocks) -> None:
    with pytest.raises(RuntimeError), locks.hold(TARGET):
        raise RuntimeError("boom")
    assert locks.list() == []
    with locks.hold(TARGET, wait=0):
        pass


def test_conflict_names_the_target_and_the_holder(locks: FileTargetLocks) -> None:
    held = threading.Event()
    done = threading.Event()

    def hold() -> None:
        with locks.hold(TARGET, run_id="run-42"):
            held.set()
            done.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(5)
        started = time.monotonic()
        with pytest.raises(ConflictError) as caught, locks.hold(TARGET):
            pytest.fail("a second holder got in")
        assert time.monotonic() - started < 0.5, "wait=0 must not wait"
        err = caught.value
        assert isinstance(err, TargetLocked)
        assert err.code == "TargetLocked"
        assert err.lock is not None
        assert (
            f"target {TARGET} is being deployed by {HOST}:{os.getpid()} run run-42 since "
            in str(err)
        )
        assert err.lock.since in str(err)
        assert "--wait-lock SECONDS" in str(err)
        with locks.hold(OTHER):  # another target is not locked
            pass
    finally:
        done.set()
        thread.join(10)


def test_wait_succeeds_once_another_thread_releases(locks: FileTargetLocks) -> None:
    held = threading.Event()

    def hold() -> None:
        with locks.hold(TARGET):
            held.set()
            time.sleep(0.4)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(5)
    started = time.monotonic()
    with locks.hold(TARGET, wait=10) as lease:
        waited = time.monotonic() - started
        assert lease.info.holder == f"{HOST}:{os.getpid()}"
    thread.join(10)
    assert 0.1 < waited < 5


def test_wait_gives_up_after_the_time(locks: FileTargetLocks) -> None:
    with locks.hold(TARGET, run_id="slow"):
        started = time.monotonic()
        with pytest.raises(TargetLocked, match=r"waited 0\.3 s"), locks.hold(TARGET, wait=0.3):
            pass
        assert 0.3 <= time.monotonic() - started < 2


def test_threads_of_one_process_exclude_each_other(locks: FileTargetLocks) -> None:
    inside = 0
    most = 0
    entered = 0
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside, most, entered
        for _ in range(5):
            with locks.hold(TARGET, wait=30):
                with guard:
                    inside += 1
                    entered += 1
                    most = max(most, inside)
                time.sleep(0.005)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert entered == 30
    assert most == 1


def test_two_instances_on_one_folder_exclude_each_other(tmp_path: Path) -> None:
    a, b = FileTargetLocks(tmp_path), FileTargetLocks(tmp_path)
    with a.hold(TARGET), pytest.raises(TargetLocked), b.hold(TARGET):
        pass


def test_another_process_holding_it_excludes_us(
    locks: FileTargetLocks, child: subprocess.Popen[str]
) -> None:
    with pytest.raises(TargetLocked) as caught, locks.hold(TARGET):
        pass
    assert f"{HOST}:{child.pid} run child-run" in str(caught.value)
    (info,) = locks.list()
    assert info.target == TARGET
    assert info.holder == f"{HOST}:{child.pid} run child-run"


def test_a_sigkilled_holder_frees_the_lock_at_once(
    locks: FileTargetLocks, child: subprocess.Popen[str]
) -> None:
    assert [i.holder for i in locks.list()] == [f"{HOST}:{child.pid} run child-run"]
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    assert locks.list() == []  # its record is left behind, but no live process holds it
    started = time.monotonic()
    with locks.hold(TARGET) as lease:
        assert time.monotonic() - started < 0.5
        assert lease.info.holder == f"{HOST}:{os.getpid()}"
        assert [i.holder for i in locks.list()] == [lease.info.holder]


def test_a_zombie_holder_is_not_listed(
    locks: FileTargetLocks, child: subprocess.Popen[str]
) -> None:
    os.kill(child.pid, signal.SIGKILL)
    time.sleep(0.3)  # dead but not reaped yet: kill(pid, 0) still succeeds
    assert locks.list() == []


def test_break_refuses_a_live_holder_and_cleans_up_after_a_dead_one(
    locks: FileTargetLocks, child: subprocess.Popen[str]
) -> None:
    with pytest.raises(TargetLocked, match="stop that process"):
        locks.break_lock(TARGET)
    assert len(locks.list()) == 1, "nothing was broken"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    records = list(locks.folder.glob("*.holder.json"))
    assert len(records) == 1, "a SIGKILLed holder leaves its record"
    assert locks.break_lock(TARGET) is False  # nothing was held
    assert locks.list() == []  # the dead holder's record is settled: no holder shown
    (left,) = locks.folder.glob("*.holder.json")
    assert "broken" in left.read_text()  # kept as broken: the next holder reads again
    assert locks.break_lock(OTHER) is False  # never locked


def test_break_refuses_a_holder_thread_of_this_process(locks: FileTargetLocks) -> None:
    with locks.hold(TARGET), pytest.raises(TargetLocked):
        locks.break_lock(TARGET)


def test_a_stale_record_does_not_block_or_mislead(locks: FileTargetLocks) -> None:
    # A record left by a process that is gone (pid far beyond pid_max).
    with locks.hold(TARGET):
        pass
    _, record = locks._paths(TARGET)
    stale = {"target": TARGET, "holder": f"{HOST}:99999999", "since": "2020-01-01T00:00:00Z"}
    record.write_text(json.dumps({**stale, "where": "x", "host": HOST, "pid": 99999999}))
    assert locks.list() == []
    with locks.hold(TARGET, run_id="new") as lease:
        assert locks.list() == [lease.info]


def test_lock_names_of_different_keys_differ() -> None:
    keys = [
        TARGET,
        TARGET.upper(),  # a case-insensitive disk
        TARGET.replace("/w", ":w"),  # the same slug
        "x" * 200 + "/svc/ep",
        "y" * 200 + "/svc/ep",  # the same truncated tail
        OTHER,
        "classic:ws/svc/ep2",
        "",
    ]
    names = [lock_name(k) for k in keys]
    assert len({n.lower() for n in names}) == len(keys)
    for name in names:
        assert len(name) <= 80
        assert all(c.isalnum() or c in "._-" for c in name), name
    assert lock_name(OTHER) == lock_name(OTHER)
    assert lock_name(OTHER).startswith("classic-ws-svc-ep-")


def test_targets_with_the_same_slug_are_locked_apart(locks: FileTargetLocks) -> None:
    twin = TARGET.replace("/w", ":w")
    with locks.hold(TARGET), locks.hold(twin):
        assert {i.target for i in locks.list()} == {TARGET, twin}


def test_no_secret_in_messages_reprs_or_where(tmp_path: Path) -> None:
    from azure.storage.blob import ContainerClient

    secret = "SECRETSIG"
    client = ContainerClient.from_container_url(
        f"https://acct.blob.core.windows.net/ledger?sv=2022-11-02&sp=racwl&sig={secret}"
    )
    blob_locks = BlobTargetLocks(client, "team/locks/")
    assert secret not in repr(blob_locks)
    assert "https://acct.blob.core.windows.net/ledger/team/locks/" in repr(blob_locks)
    _, where = blob_locks._blob(TARGET)
    assert secret not in where and "?" not in where

    locks = FileTargetLocks(tmp_path)
    with locks.hold(TARGET, run_id=f"https://a/b?sig={secret}") as lease:
        with pytest.raises(TargetLocked) as caught, locks.hold(TARGET):
            pass
        assert secret not in str(caught.value)
        assert secret not in repr(lease)


def test_blob_durations_are_checked() -> None:
    from azure.storage.blob import ContainerClient

    from amlretrain.errors import ConfigurationError

    client = ContainerClient.from_container_url("https://acct.blob.core.windows.net/c")
    with pytest.raises(ConfigurationError, match="15 to 60"):
        BlobTargetLocks(client, lease_seconds=5)
    with pytest.raises(ConfigurationError, match="renew"):
        BlobTargetLocks(client, lease_seconds=15, renew_seconds=15)
    assert BlobTargetLocks(client, lease_seconds=20, renew_seconds=1).lease_seconds == 20


def _config(tmp_path: Path, **kw: object) -> RetrainConfig:
    return RetrainConfig(
        source=str(tmp_path / "retrain.toml"),
        training_api_location="https://example/train",
        training_api_key="k",
        data="d.csv",
        storage_connection_string="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=S2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1",
        **kw,  # type: ignore[arg-type]
    )


def test_locks_for_a_local_ledger(tmp_path: Path) -> None:
    found = locks_for(_config(tmp_path, ledger_path="history/ledger.jsonl"))
    assert isinstance(found, FileTargetLocks)
    assert found.folder == tmp_path / "history" / "locks"


@pytest.mark.parametrize(
    ("blob", "prefix"),
    [("amlretrain-ledger/team/a/ledger.jsonl", "team/a/locks/"), ("c/ledger.jsonl", "locks/")],
)
def test_locks_for_a_blob_ledger(tmp_path: Path, blob: str, prefix: str) -> None:
    found = locks_for(_config(tmp_path, ledger_blob=blob))
    assert isinstance(found, BlobTargetLocks)
    assert found.prefix == prefix
    container = blob.partition("/")[0]
    assert (
        repr(found)
        == f"BlobTargetLocks('http://127.0.0.1:10000/devstoreaccount1/{container}/{prefix}')"
    )
    assert "S2V5" not in repr(found)
