"""The polling machinery: continuation tokens, the one wait loop, the LROPoller surface."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from azure.core.polling import LROPoller

from amlretrain.polling import (
    TOKEN_VERSION,
    OperationPolling,
    Poller,
    PollPolicy,
    checked_core_token,
    decode_token,
    encode_token,
)


def _document(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(token))
    return decoded


# -- tokens ------------------------------------------------------------------------------------


def test_a_token_is_base64_json_with_its_kind_and_version() -> None:
    token = encode_token("bes.job", {"job_id": "j1", "api_location": "https://h/ws/services/s"})
    assert _document(token) == {
        "amlretrain": TOKEN_VERSION,
        "kind": "bes.job",
        "data": {"job_id": "j1", "api_location": "https://h/ws/services/s"},
    }
    assert decode_token(token, "bes.job") == {
        "job_id": "j1",
        "api_location": "https://h/ws/services/s",
    }


@pytest.mark.parametrize(
    "value",
    [
        "https://a.blob.core.windows.net/m/x.ilearner?sv=1&sig=s3cr3t",
        "https://a/m/x.ilearner?sig%3Ds3cr3t",
        "Bearer eyJ0eXAi",
        {"Authorization": "x"},
        ["fine", {"nested": "...&SIG=abc"}],
    ],
)
def test_a_token_refuses_to_hold_a_sas_signature_or_an_authorization(value: Any) -> None:
    with pytest.raises(ValueError, match="no secret"):
        encode_token("arm", {"value": value})


def test_a_token_of_another_kind_is_refused_naming_both() -> None:
    token = encode_token("bes.job", {"job_id": "j1"})
    with pytest.raises(ValueError, match=re.escape("of kind 'bes.job', not 'arm'")):
        decode_token(token, "arm")


def test_a_token_of_another_version_is_refused() -> None:
    raw = json.dumps({"amlretrain": 99, "kind": "arm", "data": {}}).encode()
    with pytest.raises(ValueError, match="version 99"):
        decode_token(base64.urlsafe_b64encode(raw).decode())


@pytest.mark.parametrize("token", ["", "not base64 !", base64.b64encode(b"[1, 2]").decode()])
def test_what_is_not_a_token_is_refused(token: str) -> None:
    with pytest.raises(ValueError, match="not a continuation token"):
        decode_token(token)


# -- the policy ---------------------------------------------------------------------------------


def test_a_fixed_policy_waits_the_same_every_time() -> None:
    delays = PollPolicy.fixed(2.0).delays(lambda: 1000.0)
    assert [next(delays) for _ in range(5)] == [2.0] * 5


# -- the loop and the poller --------------------------------------------------------------------


class Countdown(OperationPolling[str]):
    """Ends after ``reads`` reads; its token holds the reads left."""

    kind = "test.countdown"

    def __init__(self) -> None:
        super().__init__(policy=PollPolicy.fixed(0.0))
        self.left = 0
        self.reads = 0
        self.fail = False

    def _load(self, state: Mapping[str, Any]) -> None:
        self.left = int(state["left"])
        self.fail = bool(state.get("fail"))

    def state(self) -> dict[str, Any]:
        return {"left": self.left, "fail": self.fail}

    def _read(self) -> float | None:
        self.reads += 1
        self.left = max(0, self.left - 1)
        return None

    def finished(self) -> bool:
        return self.left == 0

    def status(self) -> str:
        return "Done" if self.left == 0 else "Running"

    def resource(self) -> str:
        if self.fail:
            raise RuntimeError("it failed")
        return f"after {self.reads} reads"

    def timed_out(self, waited: float) -> BaseException:
        return TimeoutError(f"still running after {waited:.1f} s")


def _countdown(left: int, *, fail: bool = False) -> Poller[str]:
    method = Countdown()
    method.initialize("client", {"left": left, "fail": fail}, None)
    return Poller(method)


def test_result_reads_until_the_end() -> None:
    poller = _countdown(3)
    assert not poller.done() and poller.status() == "Running"
    assert poller.result() == "after 3 reads"
    assert poller.done() and poller.status() == "Done"


def test_result_raises_what_the_operation_says_at_the_timeout_and_wait_does_not() -> None:
    poller = _countdown(10**9)
    poller.wait(timeout=0)
    assert not poller.done()
    with pytest.raises(TimeoutError, match="still running"):
        poller.result(timeout=0)


def test_a_failed_operation_raises_from_wait_and_result() -> None:
    poller = _countdown(1, fail=True)
    with pytest.raises(RuntimeError, match="it failed"):
        poller.wait()
    with pytest.raises(RuntimeError, match="it failed"):
        poller.result()


def test_a_poller_resumed_from_its_token_finishes_the_same_wait() -> None:
    first = _countdown(5)
    first.wait(timeout=0)  # one read
    token = first.continuation_token()
    assert decode_token(token, "test.countdown") == {"left": 4, "fail": False}
    again = Poller.from_continuation_token(Countdown(), token, client="client")
    assert again.result() == "after 4 reads"


def test_resuming_needs_the_client_and_the_right_kind() -> None:
    token = _countdown(2).continuation_token()
    with pytest.raises(ValueError, match="client="):
        Poller.from_continuation_token(Countdown(), token)
    with pytest.raises(ValueError, match=re.escape("not 'test.countdown'")):
        Poller.from_continuation_token(Countdown(), encode_token("arm", {}), client="c")


def test_done_callbacks_run_once_the_operation_ended() -> None:
    poller = _countdown(2)
    seen: list[str] = []
    poller.add_done_callback(lambda method: seen.append(method.status()))
    assert seen == []
    poller.wait()
    assert seen == ["Done"]
    poller.add_done_callback(lambda method: seen.append("late"))
    assert seen == ["Done", "late"]
    with pytest.raises(ValueError):
        poller.remove_done_callback(print)


def test_azure_cores_lropoller_drives_an_operation_polling_too() -> None:
    method = Countdown()
    poller: LROPoller[str] = LROPoller("client", {"left": 3}, lambda r: r, method)  # type: ignore[arg-type]
    assert poller.result(timeout=10) == "after 3 reads"
    token = poller.continuation_token()
    assert decode_token(token, "test.countdown") == {"left": 0, "fail": False}


def test_ctrl_c_reaches_the_operation_then_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    class Interruptible(Countdown):
        interrupted: list[KeyboardInterrupt] = []

        def _interrupted(self, error: KeyboardInterrupt) -> None:
            self.interrupted.append(error)

    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("amlretrain.polling.time.sleep", interrupt)
    method = Interruptible()
    method.initialize("client", {"left": 5}, None)
    with pytest.raises(KeyboardInterrupt):
        Poller(method).result()
    assert len(Interruptible.interrupted) == 1


# -- azure-core's tokens inside ours -------------------------------------------------------


def _core_token(body: Any, headers: Mapping[str, str] | None = None) -> str:
    """A token in azure-core 1.38's JSON format, as an LROBasePolling writes it."""
    state = {
        "request": {
            "method": "PUT",
            "url": "https://management.azure.com/subscriptions/s/x?api-version=2024-04-01",
            "headers": {"x-ms-client-request-id": "c1"},
        },
        "response": {
            "status_code": 201,
            "headers": dict(headers or {"Azure-AsyncOperation": "https://management/ops/1"}),
            "content": base64.b64encode(json.dumps(body).encode()).decode("ascii"),
        },
        "context": {"deserialized_data": None},
    }
    return base64.b64encode(json.dumps({"version": 1, "data": state}).encode()).decode("ascii")


def test_a_core_token_without_a_secret_is_kept_as_it_is() -> None:
    token = _core_token({"properties": {"provisioningState": "Creating"}})
    assert checked_core_token(token) == token


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"properties": {"keys": {"primary": "p-secret", "secondary": "s-secret"}}}, None),
        ({"properties": {"storageAccount": {"name": "a", "key": "k-secret"}}}, None),
        ({"uri": "https://a.blob.core.windows.net/c/m?sv=2024&sig=abc%3D"}, None),
        ({"properties": {}}, {"Authorization": "Bearer eyJ0eXAi"}),
    ],
)
def test_a_core_token_carrying_a_secret_is_refused(
    body: Any, headers: Mapping[str, str] | None
) -> None:
    with pytest.raises(ValueError, match="no secret"):
        checked_core_token(_core_token(body, headers))


def test_a_pickled_core_token_of_an_older_azure_core_is_refused() -> None:
    import pickle

    old = base64.b64encode(pickle.dumps({"headers": {"Authorization": "Bearer x"}})).decode()
    with pytest.raises(ValueError, match=r"azure-core 1\.38"):
        checked_core_token(old)


def test_a_swap_detaches_only_with_a_token_without_a_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from amlretrain.errors import OperationDetached
    from amlretrain.targets import detach_if_running

    class Running:
        request_id = "req-1"

        def __init__(self, token: Callable[[], str], ends: bool = False) -> None:
            self.continuation_token, self.ends = token, ends

        def wait_done(self, timeout: float) -> bool:
            return self.ends

    secret = _core_token({"properties": {"keys": {"primary": "p-secret"}}})
    clean = _core_token({"properties": {"provisioningState": "Creating"}})
    what = "the PUT of deployment green"
    detach_if_running(Running(lambda: clean, ends=True), what, "k", {})  # ended: no detach
    detach_if_running(Running(lambda: checked_core_token(secret)), what, "k", {})  # waits
    assert "not detached, waited for" in caplog.text and "p-secret" not in caplog.text
    with pytest.raises(OperationDetached) as caught:
        detach_if_running(Running(lambda: checked_core_token(clean)), what, "k", {"model": "m"})
    assert decode_token(caught.value.token, "k") == {"model": "m", "lro": clean}
    assert caught.value.request_id == "req-1" and caught.value.what == what
