"""Unit tests are pure: no test here opens a network socket, not even to loopback.

An autouse guard makes ``connect``/``connect_ex``/``bind`` of every IPv4/IPv6 socket raise,
so a test that needs Azurite or the emulator fails here and belongs in tests/integration.
Unix sockets stay allowed (asyncio's self-pipe, for one), and so do subprocesses: a child
process (``python -m amlretrain --help``, the bench smoke runs) is not patched.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

_NETWORK = (socket.AF_INET, socket.AF_INET6)


class NetworkInUnitTest(AssertionError):
    """A unit test tried to use the network."""


def _guarded(name: str) -> Any:
    original = getattr(socket.socket, name)

    def guard(self: socket.socket, address: Any, *args: Any) -> Any:
        if self.family in _NETWORK:
            raise NetworkInUnitTest(
                f"socket.{name}({address!r}) in a unit test: tests/unit makes no network "
                "calls (move a test that needs Azurite or the emulator to tests/integration)"
            )
        return original(self, address, *args)

    return guard


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, name, _guarded(name))
