"""A deploy's check may stand as its pin only when no one held the target's lease since."""

from __future__ import annotations

import json
import time
from pathlib import Path

from amlretrain.locks import FileTargetLocks, Lease, LockInfo
from amlretrain.swap import _still_pinned
from amlretrain.targets import TargetState

KEY = "classic:ws/svc/ep"


def _state(read_at: float) -> TargetState:
    return TargetState(target=KEY, model="m", document={"read": True}, read_at=read_at)


def _lease(last_released: float | None) -> Lease:
    info = LockInfo(target=KEY, holder="h", since="now", expires=None, where="here")
    return Lease(KEY, info, last_released)


def test_a_recent_read_after_the_last_release_is_the_pin() -> None:
    now = time.time()
    assert _still_pinned(_state(now - 1), _lease(now - 5), window=30)
    assert _still_pinned(_state(now - 1), _lease(0.0), window=30)  # never held


def test_the_target_is_read_again_when_anything_may_have_changed() -> None:
    now = time.time()
    assert not _still_pinned(_state(now - 5), _lease(now - 1), window=30)  # held since
    assert not _still_pinned(_state(now - 5), _lease(now - 6), window=30)  # within the skew
    assert not _still_pinned(_state(now - 1), _lease(None), window=30)  # not released
    assert not _still_pinned(_state(now - 60), _lease(0.0), window=30)  # too old
    assert not _still_pinned(_state(now - 1), None, window=30)  # no lease (no ledger)
    assert not _still_pinned(_state(now - 1), _lease(0.0), window=0)  # a retrain
    unread = TargetState(target=KEY, model="m", read_at=now)
    assert not _still_pinned(unread, _lease(0.0), window=30)


def test_a_file_lock_records_its_release_for_the_next_holder(tmp_path: Path) -> None:
    locks = FileTargetLocks(tmp_path)
    with locks.hold(KEY) as first:
        assert first.last_released == 0.0  # never held before
    before = time.time()
    with locks.hold(KEY) as second:
        assert second.last_released is not None and second.last_released <= before
    assert locks.list() == []  # a release record is no holder


def test_a_holder_that_did_not_release_leaves_no_release_time(tmp_path: Path) -> None:
    locks = FileTargetLocks(tmp_path)
    with locks.hold(KEY):
        pass
    (record,) = [p for p in tmp_path.rglob("*") if p.is_file() and "released" in p.read_text()]
    record.write_text(json.dumps({"target": KEY, "holder": "crashed", "since": "then",
                                  "where": "x", "host": "elsewhere", "pid": 1}))  # fmt: skip
    with locks.hold(KEY, wait=1) as lease:
        assert lease.last_released is None


def test_a_broken_stale_record_still_tells_the_next_holder_to_read_again(tmp_path: Path) -> None:
    locks = FileTargetLocks(tmp_path)
    with locks.hold(KEY):
        pass
    (record,) = [p for p in tmp_path.rglob("*") if p.is_file() and "released" in p.read_text()]
    record.write_text(json.dumps({"target": KEY, "holder": "gone", "since": "then",
                                  "where": "x", "host": "this", "pid": 1}))  # fmt: skip
    assert locks.break_lock(KEY) is False  # no live holder: the stale record is settled
    with locks.hold(KEY) as lease:
        assert lease.last_released is None  # not "never held": the dead holder may have written
