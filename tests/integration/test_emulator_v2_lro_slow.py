"""The ``lro_slow`` fault on the Azure ML v2 routes: a deployment PUT or a traffic change
(an endpoint PUT) runs its ``seconds``, showing what any running operation shows, then
ends as it would have (or as a failure kind says), judged from the emulator's state and
its HTTP answers. The ARM web-service cases are in test_emulator_faults.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
import requests

from amlretrain.emulator import Emulator, Faults
from amlretrain.emulator.state import Operation
from tests.integration.v2support import (
    API,
    dep_url,
    ep_url,
    headers,
    make_endpoint,
    put_deployment,
    put_endpoint,
    wait_op,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class Poll(NamedTuple):
    sent: float  # monotonic, as the request left
    answered: float  # monotonic, once its answer was read
    status: str  # the operation document's status
    state: str  # the resource's provisioningState (an HTTP read)
    seen: Any  # what ``look`` read of the resource


def poll_until_done(
    http: requests.Session,
    emu: Emulator,
    resp: requests.Response,
    url: str,
    look: Callable[[dict[str, Any]], Any] = lambda _: None,
) -> list[Poll]:
    """Poll the operation ``resp`` started and the resource at ``url`` every 50 ms until
    the operation is no longer InProgress."""
    polls: list[Poll] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sent = time.monotonic()
        doc = http.get(resp.headers["Azure-AsyncOperation"], headers=headers(emu)).json()
        got = http.get(url, params=API, headers=headers(emu)).json()
        state = got["properties"]["provisioningState"]
        polls.append(Poll(sent, time.monotonic(), doc["status"], state, look(got)))
        if doc["status"] != "InProgress":
            return polls
        time.sleep(0.05)
    raise AssertionError(f"the operation still runs after 10 s: {polls[-1]}")


def check_slow(
    polls: list[Poll], start: float, answered: float, seconds: float, running: tuple[str, Any]
) -> Poll:
    """Polls answered before ``start + seconds`` saw the operation InProgress and the
    resource as ``running`` (provisioningState, what ``look`` read); polls sent ``seconds``
    after the write was answered saw it done. The last poll (the end) is returned."""
    early = [p for p in polls if p.answered - start < seconds]
    assert len(early) >= 3, polls  # seen running longer than the emulator's 0.2 s lro_delay
    for p in early:
        assert (p.status, p.state, p.seen) == ("InProgress", *running), p
    for p in polls:
        if p.sent - answered >= seconds:
            assert p.status != "InProgress", p
    last = polls[-1]
    assert last.answered - start >= seconds  # ended no sooner than the fault said
    assert last.sent - answered < seconds + 1.0  # and not much later
    return last


def operation_of(emu: Emulator, resp: requests.Response) -> Operation:
    """The emulator's own record of the operation ``resp`` started."""
    assert emu.state is not None
    op_id = resp.headers["Azure-AsyncOperation"].split("?")[0].rsplit("/", 1)[1]
    with emu.state.lock:
        return emu.state.operations[op_id]


def duration(emu: Emulator, resp: requests.Response) -> float:
    op = operation_of(emu, resp)
    return op.due - op.started


def test_an_lro_slow_deployment_put_stays_in_progress_for_its_seconds_then_succeeds(
    emulator: Emulator, http: requests.Session, faults: Faults
) -> None:
    ep = make_endpoint(http, emulator, deployments=("blue",))
    rule = faults.add(route="v2.deployment.put", kind="lro_slow", seconds=1.5)  # count=1
    start = time.monotonic()
    resp = put_deployment(http, emulator, ep, "green")
    answered = time.monotonic()
    assert resp.status_code == 201, resp.text
    assert resp.json()["properties"]["provisioningState"] == "Creating"
    assert rule.exhausted and duration(emulator, resp) == pytest.approx(1.5)
    # count=1: the next deployment operation (blue's update, meanwhile) is quick again
    other = put_deployment(http, emulator, ep, "blue")
    assert other.status_code == 200, other.text
    assert duration(emulator, other) == pytest.approx(0.2)  # the test emulator's lro_delay
    assert wait_op(http, emulator, other)["status"] == "Succeeded"
    assert time.monotonic() - answered < 1.0
    polls = poll_until_done(http, emulator, resp, dep_url(emulator, ep, "green"))
    last = check_slow(polls, start, answered, 1.5, ("Creating", None))
    assert (last.status, last.state) == ("Succeeded", "Succeeded")
    assert emulator.state is not None
    with emulator.state.locked() as state:
        endpoint = state.v2.endpoint_named(ep)
        green = endpoint.deployment("green") if endpoint is not None else None
        assert green is not None and green.state == "Succeeded" and green.model is not None


def test_an_lro_slow_traffic_change_keeps_the_endpoint_updating_with_its_old_split(
    emulator: Emulator, http: requests.Session, faults: Faults
) -> None:
    ep = make_endpoint(http, emulator, deployments=("blue", "green"), traffic={"blue": 100})
    faults.add(route="v2.endpoint.put", kind="lro_slow", seconds=0.8)
    start = time.monotonic()
    resp = put_endpoint(http, emulator, ep, traffic={"green": 100})
    answered = time.monotonic()
    assert resp.status_code == 200, resp.text
    busy = put_deployment(http, emulator, ep, "blue")  # what any running operation does
    assert busy.status_code == 409 and "Updating" in busy.json()["error"]["message"]

    def traffic(doc: dict[str, Any]) -> Any:
        return doc["properties"]["traffic"]

    polls = poll_until_done(http, emulator, resp, ep_url(emulator, ep), traffic)
    last = check_slow(polls, start, answered, 0.8, ("Updating", {"blue": 100}))
    assert (last.status, last.state, last.seen) == ("Succeeded", "Succeeded", {"green": 100})


def test_lro_slow_with_count_none_stretches_every_matching_operation(
    emulator: Emulator, http: requests.Session, faults: Faults
) -> None:
    ep = make_endpoint(http, emulator, deployments=())
    rule = faults.add(route="v2.deployment.*", kind="lro_slow", seconds=0.5, count=None)
    green = put_deployment(http, emulator, ep, "green")
    red = put_deployment(http, emulator, ep, "red")
    assert duration(emulator, green) == pytest.approx(0.5)
    assert duration(emulator, red) == pytest.approx(0.5)
    assert rule.fired == 2 and not rule.exhausted
    assert wait_op(http, emulator, green)["status"] == "Succeeded"
    assert wait_op(http, emulator, red)["status"] == "Succeeded"


def test_lro_slow_with_v2_lro_fail_ends_failed_after_its_seconds(
    emulator: Emulator, http: requests.Session, faults: Faults
) -> None:
    ep = make_endpoint(http, emulator, deployments=("blue",))
    faults.add(route="v2.deployment.put", kind="lro_slow", seconds=0.8)
    faults.add(route="v2.deployment.put", kind="v2_lro_fail")
    start = time.monotonic()
    resp = put_deployment(http, emulator, ep, "blue")
    answered = time.monotonic()
    assert resp.status_code == 200, resp.text
    polls = poll_until_done(http, emulator, resp, dep_url(emulator, ep, "blue"))
    last = check_slow(polls, start, answered, 0.8, ("Updating", None))
    assert (last.status, last.state) == ("Failed", "Failed")
    doc = http.get(resp.headers["Azure-AsyncOperation"], headers=headers(emulator)).json()
    assert doc["error"]["code"] == "ResourceNotReady"
    assert all(rule.exhausted for rule in faults.rules)
