"""The guard of tests/unit/conftest.py: an IPv4/IPv6 socket cannot connect or bind here."""

from __future__ import annotations

import socket

import pytest
import requests

from tests.unit.conftest import NetworkInUnitTest


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_a_network_socket_cannot_connect_or_bind(family: socket.AddressFamily) -> None:
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        with pytest.raises(NetworkInUnitTest):
            sock.connect((host, 9))
        with pytest.raises(NetworkInUnitTest):
            sock.connect_ex((host, 9))
        with pytest.raises(NetworkInUnitTest):
            sock.bind((host, 0))


def test_an_http_call_to_loopback_fails_in_a_unit_test() -> None:
    with pytest.raises(NetworkInUnitTest):
        requests.get("http://127.0.0.1:9/", timeout=1)


def test_unix_sockets_stay_allowed() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        left.sendall(b"ok")
        assert right.recv(2) == b"ok"
