"""amlretrain.notify: hooks and a webhook on promote, alarm and rollback; never raises.

The webhook is exercised here through a transport adapter mounted on the session that
:func:`amlretrain._http.new_session` returns (tests/unit opens no socket); against a
real local ``http.server`` in tests/integration/test_notify_webhook.py.
"""

from __future__ import annotations

import doctest
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

import amlretrain._http
import amlretrain.notify
from amlretrain.errors import ConfigurationError
from amlretrain.notify import Delivery, Notifier, webhook_target
from tests.unit import _alarm_hooks

HOOKS = "tests.unit._alarm_hooks"
WEBHOOK = "https://hooks.example.com/rollout?code=abc123&sig=s3cr3t"
PAYLOAD = {
    "run_id": "run-1",
    "targets": ["classic:w/s/e"],
    "model": "https://a.blob.core.windows.net/m/v2.ilearner?sv=1&sig=blobsecret",
    "token": "apitoken",
    "evidence": {"alarm": "psi", "value": 0.4, "threshold": 0.25},
}


class _Transport(BaseAdapter):
    """Answers every request with ``status`` (or raises ``error``); keeps what was sent."""

    def __init__(self, status: int = 200, body: str = "", error: Exception | None = None):
        super().__init__()
        self.status, self.body, self.error = status, body, error
        self.sent: list[requests.PreparedRequest] = []
        self.timeouts: list[Any] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent.append(request)
        self.timeouts.append(kwargs.get("timeout"))
        if self.error is not None:
            raise self.error
        response = requests.Response()
        response.status_code = self.status
        response._content = self.body.encode("utf-8")
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


@pytest.fixture
def transport(monkeypatch: pytest.MonkeyPatch) -> _Transport:
    fake = _Transport()
    real = amlretrain._http.new_session

    def session(**kwargs: Any) -> requests.Session:
        made = real(**kwargs)
        made.mount("https://", fake)
        made.mount("http://", fake)
        return made

    monkeypatch.setattr(amlretrain._http, "new_session", session)
    return fake


@pytest.fixture(autouse=True)
def _calls() -> Iterator[None]:
    _alarm_hooks.CALLS.clear()
    yield
    _alarm_hooks.CALLS.clear()


# -- hooks -------------------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["promote", "alarm", "rollback"])
def test_hooks_are_called_with_the_event_and_the_redacted_payload(event: str) -> None:
    notifier = Notifier(hooks=(f"{HOOKS}:record", f"{HOOKS}:record_again"))
    deliveries = notifier.send(event, PAYLOAD)
    assert deliveries == [
        Delivery(to=f"{HOOKS}:record", ok=True),
        Delivery(to=f"{HOOKS}:record_again", ok=True),
    ]
    assert [(name, got) for name, got, _ in _alarm_hooks.CALLS] == [
        ("record", event),
        ("record_again", event),
    ]
    payload = _alarm_hooks.CALLS[0][2]
    assert payload["event"] == event
    assert payload["run_id"] == "run-1" and payload["evidence"]["value"] == 0.4
    assert payload["token"] == "REDACTED"
    assert "blobsecret" not in json.dumps(payload)


def test_each_hook_gets_its_own_copy() -> None:
    Notifier(hooks=(f"{HOOKS}:record", f"{HOOKS}:record_again")).send("alarm", PAYLOAD)
    first, second = (call[2] for call in _alarm_hooks.CALLS)
    assert first == second and first is not second


def test_a_failing_hook_does_not_stop_the_others() -> None:
    notifier = Notifier(hooks=(f"{HOOKS}:broken", f"{HOOKS}:record"))
    deliveries = notifier.send("rollback", PAYLOAD)
    assert [(d.to, d.ok) for d in deliveries] == [
        (f"{HOOKS}:broken", False),
        (f"{HOOKS}:record", True),
    ]
    assert deliveries[0].error == "ValueError: chat service refused: Bearer REDACTED"
    assert [call[1] for call in _alarm_hooks.CALLS] == ["rollback"]


def test_an_event_member_of_the_payload_does_not_replace_the_event() -> None:
    Notifier(hooks=(f"{HOOKS}:record",)).send("promote", {"event": "rollback", "n": 1})
    assert _alarm_hooks.CALLS[0][2] == {"event": "promote", "n": 1}


def test_an_unknown_event_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="event: must be one of promote, alarm, rollback"):
        Notifier().send("deploy", {})


def test_a_payload_that_is_not_json_is_sent_as_text() -> None:
    Notifier(hooks=(f"{HOOKS}:record",)).send("alarm", {"when": object, "psi": float("nan")})
    payload = _alarm_hooks.CALLS[0][2]
    assert payload["when"] == str(object) and payload["psi"] is None


@pytest.mark.parametrize(
    ("hooks", "said"),
    [
        (("tests.unit._alarm_hooks.record",), "hooks\\[0\\]: 'tests.unit._alarm_hooks.record': "),
        ((f"{HOOKS}:record", f"{HOOKS}:nope"), "hooks\\[1\\]: .* has no attribute 'nope'"),
        (("no_such_notify_pkg:hook",), "hooks\\[0\\]: .*: no module named 'no_such_notify_pkg'"),
        ((f"{HOOKS}:NOT_CALLABLE",), "hooks\\[0\\]: .*: is int 42, not a function"),
    ],
)
def test_a_bad_hook_is_refused_when_the_notifier_is_built(
    hooks: tuple[str, ...], said: str
) -> None:
    with pytest.raises(ConfigurationError, match=f"^retrain.toml \\[rollout.notify\\]: {said}"):
        Notifier(hooks=hooks, where="retrain.toml [rollout.notify]")


# -- the webhook -------------------------------------------------------------------------------


def test_the_webhook_gets_the_event_and_the_redacted_payload(transport: _Transport) -> None:
    notifier = Notifier(hooks=(f"{HOOKS}:record",), webhook=WEBHOOK, timeout=3)
    deliveries = notifier.send("alarm", PAYLOAD)
    assert deliveries == [
        Delivery(to=f"{HOOKS}:record", ok=True),
        Delivery(to="https://hooks.example.com/rollout", ok=True),
    ]
    (request,) = transport.sent
    assert request.method == "POST" and request.url == WEBHOOK  # the secret is sent, to it
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("amlretrain/")
    assert transport.timeouts == [3.0]
    assert isinstance(request.body, bytes)
    body = json.loads(request.body)
    assert next(iter(body)) == "event"
    assert body == {
        "event": "alarm",
        "run_id": "run-1",
        "targets": ["classic:w/s/e"],
        "model": "https://a.blob.core.windows.net/m/v2.ilearner?sv=1&sig=REDACTED",
        "token": "REDACTED",
        "evidence": {"alarm": "psi", "value": 0.4, "threshold": 0.25},
    }


@pytest.mark.parametrize(
    ("transport_kwargs", "said"),
    [
        ({"status": 500, "body": "boom: Bearer tok.en"}, "HTTP 500: boom: Bearer REDACTED"),
        ({"status": 404}, "HTTP 404"),
        ({"status": 403, "body": "bad code abc123"}, "HTTP 403: bad code REDACTED"),
        (
            {"error": requests.ConnectionError(f"cannot reach {WEBHOOK}: refused")},
            "ConnectionError: cannot reach https://hooks.example.com/rollout: refused",
        ),
        ({"error": requests.Timeout("read timed out")}, "Timeout: read timed out"),
        ({"error": RuntimeError("anything else")}, "RuntimeError: anything else"),
    ],
)
def test_a_failing_webhook_is_a_failed_delivery_not_an_exception(
    transport: _Transport, transport_kwargs: dict[str, Any], said: str
) -> None:
    for key, value in transport_kwargs.items():
        setattr(transport, key, value)
    deliveries = Notifier(webhook=WEBHOOK, hooks=(f"{HOOKS}:record",)).send("rollback", PAYLOAD)
    assert deliveries[0].ok
    last = deliveries[-1]
    assert (last.to, last.ok, last.error) == ("https://hooks.example.com/rollout", False, said)
    assert "s3cr3t" not in repr(deliveries) and "abc123" not in repr(deliveries)


def test_the_webhooks_secret_is_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier(webhook="https://user:pw@hooks.example.com:8443/x?token=abc123")
    assert "abc123" not in repr(notifier) and "pw" not in repr(notifier)
    assert notifier.webhook_target == "https://hooks.example.com:8443/x"
    assert webhook_target("http://[::1]:9/a?sig=x") == "http://[::1]:9/a"


@pytest.mark.parametrize(
    "url",
    ["ftp://hooks.example.com/x", "hooks.example.com/x", "https://", "https://h:99999/x", 7],
)
def test_a_webhook_must_be_an_http_url(url: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"^\[rollout.notify\]: webhook: must be an http"):
        Notifier(webhook=url, where="[rollout.notify]")


def test_a_bad_webhook_url_is_shown_without_its_query() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Notifier(webhook="ftp://h/x?sig=s3cr3t&code=abc123")
    assert "abc123" not in caught.value.message and "s3cr3t" not in caught.value.message


@pytest.mark.parametrize("timeout", [0, -1, 301, float("nan"), True, "10"])
def test_the_timeout_is_checked(timeout: Any) -> None:
    with pytest.raises(ConfigurationError, match="timeout: must be a finite number between"):
        Notifier(timeout=timeout)


# -- from retrain.toml -------------------------------------------------------------------------

WHERE = "retrain.toml [rollout.notify]"


def test_from_mapping_reads_the_table() -> None:
    notifier = Notifier.from_mapping(
        {"hooks": [f"{HOOKS}:record"], "webhook": WEBHOOK, "timeout": 5}, where=WHERE
    )
    assert notifier == Notifier(hooks=(f"{HOOKS}:record",), webhook=WEBHOOK, timeout=5.0)
    assert notifier.timeout == 5
    empty = Notifier.from_mapping({}, where=WHERE)
    assert (empty.hooks, empty.webhook, empty.timeout) == ((), None, 10.0)
    assert empty.send("promote", {"run_id": "r"}) == []


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ({"hook": [f"{HOOKS}:record"]}, "unknown key hook \\(a typo\\?\\); the keys are hooks"),
        ({"url": "x", "retries": 2}, "unknown keys retries, url"),
        ({"hooks": f"{HOOKS}:record"}, 'hooks: must be a list of "package.module:function"'),
        ({"hooks": [1]}, "hooks: must be a list"),
        ({"hooks": [f"{HOOKS}:nope"]}, "hooks\\[0\\]: 'tests.unit._alarm_hooks:nope': "),
        ({"webhook": "mailto:me@example.com"}, "webhook: must be an http\\(s\\) URL"),
        ({"timeout": 0}, "timeout: must be a finite number between 0.1 and 300 s, not 0"),
    ],
)
def test_from_mapping_refuses_bad_tables(table: dict[str, Any], said: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^{re.escape(WHERE)}: {said}"):
        Notifier.from_mapping(table, where=WHERE)


def test_from_mapping_refuses_what_is_not_a_table() -> None:
    with pytest.raises(ConfigurationError, match="must be a table, not str"):
        Notifier.from_mapping("hooks", where=WHERE)  # type: ignore[arg-type]


def test_the_module_examples_run() -> None:
    result = doctest.testmod(amlretrain.notify)
    assert result.attempted > 0 and result.failed == 0
