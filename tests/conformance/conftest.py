"""Conformance tests share the integration tests' one emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from amlretrain.emulator import Emulator
from tests.integration.conftest import (  # the seed put back after each module, here too
    _seed_restored_after_each_module,  # noqa: F401
    shared_emulator,
)


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """The one seeded emulator of this test session (shared with tests/integration)."""
    with shared_emulator() as emu:
        yield emu


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A plain requests session that never goes through a proxy."""
    with requests.Session() as session:
        session.trust_env = False
        yield session
