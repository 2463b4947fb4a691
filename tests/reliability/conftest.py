"""Fixtures of the reliability suite: the session's one emulator, shared with the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from amlretrain.emulator import Emulator, Faults
from tests.integration.conftest import (  # the seed put back after each module, here too
    _seed_restored_after_each_module,  # noqa: F401
    shared_emulator,
)
from tests.reliability.crash import CrashRig
from tests.reliability.matrix import Rig


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """The one seeded emulator of this test session (the integration tests' instance)."""
    with shared_emulator() as emu:
        yield emu


@pytest.fixture
def faults(emulator: Emulator) -> Iterator[Faults]:
    """The emulator's fault rules, cleared before and after the test."""
    emulator.faults.clear()
    yield emulator.faults
    emulator.faults.clear()


@pytest.fixture(scope="module")
def rig(emulator: Emulator) -> Iterator[Rig]:
    """Clients with short timeouts and fast polling, for fault cases."""
    with Rig(emulator) as r:
        yield r


@pytest.fixture(scope="module")
def crash_rig(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> CrashRig:
    """Runs crash-matrix cases (the real CLI as a subprocess) against the session's emulator."""
    return CrashRig(emulator, tmp_path_factory.mktemp("crash"))
