"""The live emulator for the integration (and conformance) tests: ONE per test session.

``shared_emulator()`` starts a seeded :class:`~amlretrain.emulator.Emulator` the first time
it is entered and stops it when the last user leaves, so the integration and conformance
fixtures share one instance (and one Azurite).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from amlretrain.emulator import Emulator, Faults

_lock = threading.Lock()
_instance: Emulator | None = None
_users = 0

#: Items per ARM list page in the test emulator (small, so paging is exercised).
PAGE_SIZE = 3


@contextmanager
def shared_emulator() -> Iterator[Emulator]:
    """The session's emulator (started on first use, stopped when the last user leaves)."""
    global _instance, _users
    with _lock:
        if _instance is None:
            _instance = Emulator(page_size=PAGE_SIZE, lro_delay=0.2, job_duration=0.3).start()
        _users += 1
        emu = _instance
    try:
        yield emu
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _instance is not None:
                _instance.stop()
                _instance = None


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """The one seeded emulator of this test session."""
    with shared_emulator() as emu:
        yield emu


@pytest.fixture
def faults(emulator: Emulator) -> Iterator[Faults]:
    """The emulator's fault rules, cleared after the test."""
    emulator.faults.clear()
    yield emulator.faults
    emulator.faults.clear()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A plain requests session that never goes through a proxy."""
    with requests.Session() as session:
        session.trust_env = False
        yield session


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)
