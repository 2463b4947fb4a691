"""The ledger: append-only JSON lines, no secrets, lookups, concurrency, bad lines."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from amlretrain import ConfigurationError
from amlretrain.ledger import BlobLedgerBackend, Ledger, LedgerEntry, strip_sas

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


def test_a_corrupt_line_is_reported_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    Ledger(path).append(_entry())
    with path.open("a") as fh:
        fh.write("{not json\n")
    with pytest.raises(ConfigurationError, match="ledger line 2"):
        Ledger(path).entries()


def test_unknown_action_or_outcome_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="action"):
        _entry(action="explode")
    with pytest.raises(ConfigurationError, match="outcome"):
        _entry(outcome="maybe")


def test_strip_sas() -> None:
    assert strip_sas(NEW + "?sv=1&sig=x") == NEW
    assert strip_sas(None) is None


class _FakeAppendBlob:
    def __init__(self) -> None:
        self.data: bytes | None = None

    def exists(self) -> bool:
        return self.data is not None

    def create_append_blob(self) -> None:
        self.data = b""

    def append_block(self, block: bytes) -> None:
        assert self.data is not None
        self.data += block

    def download_blob(self) -> Any:
        data = self.data

        class _Downloader:
            def readall(self) -> bytes:
                return data or b""

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
