"""The ledger: append-only JSON lines, no secrets, lookups, concurrency, bad lines."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from amlretrain import ConfigurationError
from amlretrain.errors import LedgerError
from amlretrain.ledger import BlobLedgerBackend, Intent, JobRecord, Ledger, LedgerEntry, strip_sas

TARGET = "classic:ws/svc/ep"
OLD = "https://a.blob.core.windows.net/m/old.ilearner"
NEW = "https://a.blob.core.windows.net/m/new.ilearner"


def _entry(**kw: Any) -> LedgerEntry:
    args: dict[str, Any] = {"target": TARGET, "action": "deploy", "outcome": "succeeded"}
    args.update(kw)
    return LedgerEntry.new(**args)


def test_entries_round_trip_without_sas(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    ledger.append(
        _entry(
            previous_model=OLD + "?sv=1&sig=OLDSIG",
            new_model=NEW + "?sig=NEWSIG&se=2030",
            serving_model=NEW + "?sig=NEWSIG",
            metrics={"AUC": 0.9},
            request_ids=["r1", ""],
            message="deployed with key AccountKey=abc123;",
        )
    )
    text = (tmp_path / "l.jsonl").read_text()
    assert "SIG" not in text and "abc123" not in text
    (entry,) = ledger.entries()
    assert (entry.previous_model, entry.new_model, entry.serving_model) == (OLD, NEW, NEW)
    assert entry.metrics == {"AUC": 0.9}
    assert entry.request_ids == ("r1",)


def test_appends_never_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    ledger = Ledger(path)
    ledger.append(_entry(new_model=OLD))
    first = path.read_bytes()
    ledger.append(_entry(new_model=NEW))
    assert path.read_bytes().startswith(first)
    assert [e.new_model for e in ledger.entries()] == [OLD, NEW]


def test_concurrent_appends_keep_every_line(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    threads = [
        threading.Thread(target=lambda: [ledger.append(_entry()) for _ in range(20)])
        for _ in range(5)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ledger.entries()) == 100
    assert len({e.id for e in ledger.entries()}) == 100


def test_lookups(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    a = ledger.append(
        _entry(previous_model=OLD, new_model=NEW, serving_model=NEW, metrics={"AUC": 0.8})
    )
    ledger.append(_entry(action="gate", outcome="rejected", new_model=OLD, metrics={"AUC": 0.1}))
    ledger.append(_entry(target="other", new_model=OLD, serving_model=OLD))
    assert ledger.serving(TARGET) == a
    assert ledger.metrics_of(TARGET, NEW + "?sig=x") == {"AUC": 0.8}
    assert ledger.metrics_of(TARGET, "https://nope/x.ilearner") is None
    assert ledger.deployments(TARGET) == [a]
    assert ledger.get(a.id) == a
    assert ledger.get(a.id[:22]) == a
    with pytest.raises(ConfigurationError, match="no ledger entry"):
        ledger.get("nope")


def test_a_corrupt_line_is_reported_with_its_number_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "l.jsonl"
    Ledger(path).append(_entry(new_model=OLD))
    with path.open("ab") as fh:
        fh.write(b"{not json\n\xff\xfe not utf-8\n")
    Ledger(path).append(_entry(new_model=NEW))
    ledger = Ledger(path)
    assert [e.new_model for e in ledger.entries()] == [OLD, NEW]
    assert [(p.line, p.reason) for p in ledger.problems] == [
        (2, "is not JSON"),
        (3, "is not UTF-8"),
    ]
    assert "ledger line 2 is not JSON: skipped" in caplog.text


def test_a_torn_last_line_is_reported_and_never_glued_to_the_next_entry(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    ledger = Ledger(path)
    ledger.append(_entry(new_model=OLD))
    whole = path.read_bytes()
    torn = json.dumps(_entry(new_model=NEW).to_dict()).encode()[:40]
    path.write_bytes(whole + torn)  # a crash in the middle of a write
    assert [(p.line, p.reason) for p in Ledger(path).problems] == [
        (2, "is torn (a crash while it was written?)")
    ]
    ledger.append(_entry(new_model=NEW))
    data = path.read_bytes()
    assert data.startswith(whole + torn + b"\n")  # the torn bytes stay, on a line of their own
    assert data.endswith(b"\n")
    fresh = Ledger(path)
    assert [e.new_model for e in fresh.entries()] == [OLD, NEW]
    assert [(p.line, p.reason) for p in fresh.problems] == [(2, "is not JSON")]


def test_lines_of_0_1_0_read_unchanged(tmp_path: Path) -> None:
    old_line = {
        "id": "20240101T000000000000Z-abcdef",
        "time": "2024-01-01T00:00:00.000Z",
        "target": TARGET,
        "action": "deploy",
        "outcome": "succeeded",
        "previousModel": OLD,
        "newModel": NEW,
        "servingModel": NEW,
        "metrics": {"AUC": 0.8},
        "jobId": "j1",
        "requestIds": [],
        "rollbackOf": None,
        "message": None,
    }
    path = tmp_path / "l.jsonl"
    path.write_text(json.dumps(old_line) + "\n")
    (entry,) = Ledger(path).entries()
    assert entry.schema == 1 and entry.serving_model == NEW
    assert entry.to_dict() == old_line  # written as read
    assert Ledger(path).pending() == []


def test_records_of_a_run_and_what_stays_open(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    start = ledger.begin_run(run_id="run-1", command="retrain", targets=[TARGET])
    ledger.append(JobRecord.new(run_id="run-1", job_id="job-1", status="Submitted"))
    intent = ledger.append(
        Intent.new(
            run_id="run-1",
            target=TARGET,
            action="deploy",
            previous_model=OLD,
            new_model=NEW + "?sv=1&sig=SECRET",
            request={"method": "PATCH", "url": "https://x", "body": {"uri": NEW + "?sig=S2"}},
        )
    )
    text = (tmp_path / "l.jsonl").read_text()
    assert "SECRET" not in text and "S2" not in text and "sig=" not in text
    assert [p.target for p in ledger.pending()] == [TARGET]
    assert ledger.pending()[0].latest == intent
    assert [j.job_id for j in ledger.open_jobs()] == ["job-1"]
    ledger.append(JobRecord.new(run_id="run-1", job_id="job-1", status="Finished"))
    assert ledger.open_jobs() == []
    # an unknown outcome leaves it open; a confirmed one closes it
    ledger.append(_entry(outcome="unknown", intents=[intent.id], new_model=NEW))
    assert ledger.pending()[0].unknown is not None
    ledger.append(_entry(outcome="succeeded", intents=[intent.id], serving_model=NEW))
    assert ledger.pending() == []
    assert ledger.last_known(TARGET) == NEW
    kinds = [json.loads(line)["kind"] for line in text.splitlines()]
    assert kinds == ["run-start", "job", "intent"]
    assert all(json.loads(line)["schema"] == 2 for line in text.splitlines())
    assert start.run_id == "run-1"


def test_an_unwritable_ledger_is_refused_by_begin_run(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    ledger = Ledger(tmp_path / "dir")  # a folder where the file should be
    with pytest.raises(ConfigurationError, match=r"cannot write ledger.*nothing was changed"):
        ledger.begin_run(run_id="r", command="retrain", targets=[TARGET])
    with pytest.raises(LedgerError, match="cannot write ledger"):
        ledger.append(_entry())


def test_a_short_write_is_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    real = os.write

    def short(fd: int, data: Any) -> int:
        return real(fd, bytes(data)[:7])  # the kernel may write less than asked

    monkeypatch.setattr(os, "write", short)
    ledger = Ledger(tmp_path / "l.jsonl")
    ledger.append(_entry(new_model=NEW))
    monkeypatch.undo()
    assert [e.new_model for e in ledger.entries()] == [NEW]


def test_a_full_disk_is_a_ledger_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    ledger = Ledger(tmp_path / "l.jsonl")
    monkeypatch.setattr(os, "write", full)
    with pytest.raises(LedgerError, match="No space left"):
        ledger.append(_entry())


def test_unknown_action_or_outcome_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="action"):
        _entry(action="explode")
    with pytest.raises(ConfigurationError, match="outcome"):
        _entry(outcome="maybe")


def test_strip_sas() -> None:
    assert strip_sas(NEW + "?sv=1&sig=x") == NEW
    assert strip_sas(None) is None


class _FakeAppendBlob:
    url = "https://acct.blob.core.windows.net/ledgers/l.jsonl"

    def __init__(self) -> None:
        self.data: bytes | None = None

    def get_blob_properties(self) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        if self.data is None:
            raise ResourceNotFoundError("The specified blob does not exist.")
        return type("Props", (), {"size": len(self.data)})()

    def create_append_blob(self) -> None:
        self.data = b""

    def append_block(self, block: bytes) -> None:
        assert self.data is not None
        self.data += block

    def download_blob(self, offset: int = 0, length: int | None = None) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        if self.data is None:
            raise ResourceNotFoundError("The specified blob does not exist.")
        data = self.data[offset : None if length is None else offset + length]

        class _Downloader:
            def readall(self) -> bytes:
                return data

        return _Downloader()


def test_blob_backend_appends_lines() -> None:
    blob = _FakeAppendBlob()
    ledger = Ledger(backend=BlobLedgerBackend(blob))
    assert ledger.entries() == []
    ledger.append(_entry(new_model=OLD))
    ledger.append(_entry(new_model=NEW))
    assert [e.new_model for e in ledger.entries()] == [OLD, NEW]
    assert blob.data is not None and blob.data.count(b"\n") == 2
    assert all(json.loads(line)["target"] == TARGET for line in blob.data.splitlines())
    blob.data += b'{"torn'
    ledger.append(_entry(new_model=OLD))
    assert [e.new_model for e in ledger.entries()] == [OLD, NEW, OLD]


def test_every_record_kind_reads_back_what_it_wrote() -> None:
    from amlretrain.ledger import RunStart

    records = [
        _entry(new_model=NEW, metrics={"AUC": 0.9}, intents=["i1"], evidence={"reads": 2}),
        Intent.new(
            run_id="run-1", target=TARGET, action="deploy", previous_model=OLD, new_model=NEW
        ),
        RunStart.new(run_id="run-1", command="retrain", targets=[TARGET]),
        JobRecord.new(run_id="run-1", job_id="job-1", status="Finished"),
    ]
    for record in records:
        line = json.dumps(record.to_dict())
        again = type(record).from_dict(json.loads(line))
        assert again == record
        assert json.dumps(again.to_dict()) == line  # byte for byte


def test_a_line_is_read_tolerantly_and_refused_only_without_its_identity(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    lines = [
        # any member casing, numbers as text, an unknown member
        {"ID": "e1", "Target": TARGET, "NewModel": NEW, "Metrics": {"AUC": "0.7"}, "x": 1},
        {"kind": "outcome", "target": TARGET},  # no id
        {"kind": "job", "id": "j", "runId": None},  # no jobId
        {"kind": "outcome", "id": "e2", "target": TARGET, "metrics": ["not", "an", "object"]},
        {"kind": "a kind of a later version", "id": "z"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    ledger = Ledger(path)
    (entry,) = ledger.entries()
    assert (entry.id, entry.new_model, entry.metrics, entry.schema) == ("e1", NEW, {"AUC": 0.7}, 1)
    assert [(p.line, p.reason) for p in ledger.problems] == [
        (2, "is not a ledger record ('id')"),
        (3, "is not a ledger record ('jobId')"),
        (4, "is not a ledger record (metrics is not an object)"),
    ]


def test_concurrent_appends_are_group_committed_whole_and_all_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    ledger.append(LedgerEntry.new(target="t-first", action="deploy", outcome="succeeded"))
    syncs: list[int] = []
    real_fsync = os.fsync
    gate = threading.Event()

    def slow_fsync(fd: int) -> None:
        syncs.append(fd)
        gate.wait(0.05)  # a slow disk: others queue behind the pen meanwhile
        real_fsync(fd)

    monkeypatch.setattr("amlretrain.ledger.os.fsync", slow_fsync)
    count = 64

    def one(i: int) -> None:
        ledger.append(LedgerEntry.new(target=f"t{i}", action="deploy", outcome="succeeded"))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = path.read_bytes().decode().splitlines()
    assert len(lines) == count + 1
    assert sorted(json.loads(line)["target"] for line in lines[1:]) == sorted(
        f"t{i}" for i in range(count)
    )
    assert len(syncs) < count  # some appends shared a write and a sync


def test_a_failed_group_write_fails_every_append_of_the_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from amlretrain import ledger as ledger_module

    ledger = Ledger(tmp_path / "ledger.jsonl")
    started, release = threading.Event(), threading.Event()
    real_write = ledger_module._write_all
    calls: list[bytes] = []

    def failing_write(fd: int, data: bytes) -> None:
        calls.append(data)
        if len(calls) == 1:  # the first writer holds the pen until the others queued
            started.set()
            release.wait(5)
            real_write(fd, data)
            return
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ledger_module, "_write_all", failing_write)
    errors: list[str] = []

    def one(i: int) -> None:
        try:
            ledger.append(LedgerEntry.new(target=f"t{i}", action="deploy", outcome="succeeded"))
        except LedgerError as err:
            errors.append(str(err))

    first = threading.Thread(target=one, args=(0,))
    first.start()
    assert started.wait(5)
    others = [threading.Thread(target=one, args=(i,)) for i in range(1, 6)]
    for t in others:
        t.start()
    while (
        len(
            ledger_module.FileLedgerBackend._groups[
                str((tmp_path / "ledger.jsonl").resolve())
            ]._queue
        )
        < 5
    ):
        threading.Event().wait(0.01)
    release.set()
    for t in [first, *others]:
        t.join()
    assert len(calls) == 2  # the five queued appends were one write
    assert calls[1].count(b"\n") == 5
    assert len(errors) == 5 and all("No space left on device" in e for e in errors)
    assert [
        json.loads(x)["target"] for x in (tmp_path / "ledger.jsonl").read_text().splitlines()
    ] == ["t0"]
