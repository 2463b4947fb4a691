"""amlretrain.notify's webhook against a local http.server (tests/unit opens no sockets).

The server, on 127.0.0.1 in a thread, keeps every request and answers with a status the
test chooses: the JSON body arrives with the payload's secrets redacted, an error answer
or a port nobody listens on is a failed delivery (redacted, no query string) and never
an exception.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from amlretrain.notify import Delivery, Notifier

pytestmark = [pytest.mark.integration]

HOOKS = "tests.unit._alarm_hooks"


class _Server(http.server.ThreadingHTTPServer):
    status = 200
    answer = b""
    received: list[dict[str, Any]]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.received.append(
            {
                "path": self.path,
                "headers": dict(self.headers.items()),
                "body": self.rfile.read(length),
            }
        )
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(self.server.answer)))
        self.end_headers()
        self.wfile.write(self.server.answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.received = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _url(server: _Server, query: str = "?code=abc123&sig=s3cr3t") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/hooks/rollout{query}"


def test_the_webhook_receives_the_event_and_the_redacted_payload(server: _Server) -> None:
    notifier = Notifier(hooks=(f"{HOOKS}:record",), webhook=_url(server), timeout=5)
    payload = {
        "run_id": "run-1",
        "targets": ["classic:w/s/e"],
        "model": "https://a.blob.core.windows.net/m/v2.ilearner?sv=1&sig=blobsecret",
        "password": "hunter2",
        "message": "rolled back: Bearer abc.def",
    }
    deliveries = notifier.send("rollback", payload)
    target = _url(server, query="")
    assert deliveries == [Delivery(to=f"{HOOKS}:record", ok=True), Delivery(to=target, ok=True)]
    (request,) = server.received
    assert request["path"] == "/hooks/rollout?code=abc123&sig=s3cr3t"  # sent to the hook
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["User-Agent"].startswith("amlretrain/")
    body = json.loads(request["body"])
    assert body == {
        "event": "rollback",
        "run_id": "run-1",
        "targets": ["classic:w/s/e"],
        "model": "https://a.blob.core.windows.net/m/v2.ilearner?sv=1&sig=REDACTED",
        "password": "REDACTED",
        "message": "rolled back: Bearer REDACTED",
    }


def test_a_webhook_answering_500_is_a_failed_delivery(server: _Server) -> None:
    server.status, server.answer = 500, b"internal error for token abc123"
    deliveries = Notifier(webhook=_url(server)).send("alarm", {"run_id": "r"})
    (delivery,) = deliveries
    assert (delivery.to, delivery.ok) == (_url(server, query=""), False)
    assert delivery.error is not None and delivery.error.startswith("HTTP 500: internal error")
    assert "abc123" not in delivery.error and "s3cr3t" not in repr(deliveries)
    assert len(server.received) == 1  # a POST is not retried on a 500


def test_a_webhook_nobody_listens_on_is_a_failed_delivery() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hook?code=abc123&sig=s3cr3t"
    (delivery,) = Notifier(webhook=url).send("promote", {"run_id": "r"})
    assert (delivery.to, delivery.ok) == (f"http://127.0.0.1:{port}/hook", False)
    assert delivery.error is not None and delivery.error.startswith("ConnectionError: ")
    assert "abc123" not in delivery.error and "s3cr3t" not in delivery.error
    assert "/hook" in delivery.error
