"""The HTTP layer against a local server: which calls retry, timeouts, user agent.

Retries live in urllib3 below requests, so they are exercised against a tiny local
http.server on 127.0.0.1 that plays a script of answers (including dropped connections
and slow answers). Moved from tests/unit, which opens no sockets.
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3.util.retry

from amlretrain._http import HttpClient, new_session, user_agent
from amlretrain.errors import OperationTimeout, ServiceError, ThrottledError

pytestmark = [pytest.mark.integration]


# -- a scripted local server -------------------------------------------------------------------


class _Script:
    def __init__(self) -> None:
        self.answers: list[dict[str, Any]] = []
        self.seen: list[tuple[str, str, dict[str, str]]] = []

    def next(self) -> dict[str, Any]:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class _Handler(http.server.BaseHTTPRequestHandler):
    script: _Script

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.script.seen.append((self.command, self.path, dict(self.headers)))
        answer = self.script.next()
        if answer.get("drop"):
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if answer.get("delay"):
            time.sleep(answer["delay"])
        body = answer.get("body", b"")
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(answer.get("status", 200))
        for name, value in answer.get("headers", {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer


@pytest.fixture
def server() -> Iterator[tuple[str, _Script]]:
    script = _Script()
    handler = type("H", (_Handler,), {"script": script})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def client() -> HttpClient:
    return HttpClient(session=new_session(retries=2, backoff_factor=0), auth="Bearer s3cr3t")


# -- retries ----------------------------------------------------------------------------------------


def test_get_is_retried_after_503_and_succeeds(server, client):
    url, script = server
    script.answers = [{"status": 503, "headers": {"Retry-After": "0"}}, {"status": 200}]
    assert client.request("GET", url + "/x").status_code == 200
    assert [m for m, _, _ in script.seen] == ["GET", "GET"]


def test_get_is_retried_after_a_dropped_connection(server, client):
    url, script = server
    script.answers = [{"drop": True}, {"status": 200}]
    assert client.request("GET", url + "/x").status_code == 200
    assert len(script.seen) == 2


@pytest.mark.parametrize("status", [500, 502, 504])
def test_put_and_delete_are_retried_on_5xx(server, client, status):
    url, script = server
    for method in ("PUT", "DELETE"):
        script.seen.clear()
        script.answers = [{"status": status}, {"status": 200}]
        assert client.request(method, url + "/x").status_code == 200
        assert len(script.seen) == 2


def test_post_is_not_retried_after_a_dropped_connection(server, client):
    url, script = server
    script.answers = [{"drop": True}, {"status": 200}]
    with pytest.raises(ServiceError) as info:
        client.request("POST", url + "/jobs", json_body={"Inputs": {}})
    assert info.value.status is None
    assert len(script.seen) == 1


@pytest.mark.parametrize("status", [500, 502, 504])
def test_post_and_patch_are_not_retried_on_5xx(server, client, status):
    url, script = server
    for method in ("POST", "PATCH"):
        script.seen.clear()
        script.answers = [{"status": status, "headers": {"Retry-After": "0"}}, {"status": 200}]
        with pytest.raises(ServiceError) as info:
            client.request(method, url + "/x", json_body={})
        assert info.value.status == status
        assert len(script.seen) == 1


def test_post_is_retried_on_429_with_retry_after_because_it_was_refused(server, client):
    url, script = server
    script.answers = [{"status": 429, "headers": {"Retry-After": "0"}}, {"status": 200}]
    assert client.request("POST", url + "/jobs", json_body={}).status_code == 200
    assert len(script.seen) == 2


def test_post_503_without_retry_after_is_not_retried(server, client):
    url, script = server
    script.answers = [{"status": 503}, {"status": 200}]
    with pytest.raises(ThrottledError):
        client.request("POST", url + "/jobs", json_body={})
    assert len(script.seen) == 1


def test_throttling_that_outlasts_the_retries_raises_throttled_with_retry_after(server, client):
    url, script = server
    script.answers = [{"status": 429, "headers": {"Retry-After": "0"}}]
    with pytest.raises(ThrottledError) as info:
        client.request("GET", url + "/x")
    assert info.value.retry_after == 0
    assert len(script.seen) == 3  # the call and its two retries


def test_a_long_retry_after_is_capped_and_the_cap_is_logged(server, monkeypatch, caplog):
    url, script = server
    slept: list[float] = []
    monkeypatch.setattr(urllib3.util.retry.time, "sleep", slept.append)
    client = HttpClient(session=new_session(retries=1, backoff_factor=0, max_retry_after=5))
    script.answers = [{"status": 503, "headers": {"Retry-After": "3600"}}, {"status": 200}]
    with caplog.at_level(logging.INFO, logger="amlretrain._http"):
        client.request("GET", url + "/x")
    assert slept == [5]
    assert "capped" in caplog.text


def test_post_read_timeout_is_an_operation_timeout_and_not_resent(server):
    url, script = server
    client = HttpClient(session=new_session(retries=2, backoff_factor=0), timeout=(2, 0.2))
    script.answers = [{"delay": 0.6}]
    with pytest.raises(OperationTimeout):
        client.request("POST", url + "/jobs", json_body={})
    assert len(script.seen) == 1


def test_every_call_carries_the_timeouts_and_the_user_agent(server, monkeypatch):
    url, script = server
    script.answers = [{"status": 200}]
    client = HttpClient(timeout=(3.0, 7.0))
    seen: dict[str, Any] = {}
    original = client.session.request

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(client.session, "request", spy)
    client.request("GET", url + "/x")
    assert seen["timeout"] == (3.0, 7.0)
    assert script.seen[0][2]["User-Agent"].startswith("amlretrain/")
    assert "python-requests/" in user_agent()


def test_unauthenticated_calls_send_no_authorization(server, client):
    url, script = server
    script.answers = [{"status": 200}]
    client.request("HEAD", url + "/blob?sig=x", authenticated=False)
    client.request("GET", url + "/x")
    assert "Authorization" not in script.seen[0][2]
    assert script.seen[1][2]["Authorization"] == "Bearer s3cr3t"


def test_debug_log_redacts_sas_signatures(server, client, caplog):
    url, script = server
    script.answers = [{"status": 200}]
    with caplog.at_level(logging.DEBUG):
        client.request("GET", url + "/c/b.csv?se=2030-01-01&sig=TOPSECRETSIG", authenticated=False)
    assert "TOPSECRETSIG" not in caplog.text
    assert "sig=REDACTED" in caplog.text
