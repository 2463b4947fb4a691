"""Faults switched on per route and count, and the emulator's lifecycle (nothing left behind).

The crash-consistency faults (``apply_*``, ``stale``, ``lro_hang``, ``kill``) are judged from
the emulator's own state, not only from what the client was answered.
"""

from __future__ import annotations

import copy
import io
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests

from amlretrain.emulator import Emulator, Faults
from amlretrain.emulator._run import run
from amlretrain.emulator._storage import parse_connection_string
from amlretrain.emulator.azurite import Azurite
from amlretrain.emulator.state import Operation
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

API = {"api-version": "2017-01-01"}


def arm_get(emu: Emulator, http: requests.Session) -> requests.Response:
    return http.get(
        emu.info.arm_base_url + str(emu.info.arm_service_id),
        params=API,
        headers={"Authorization": f"Bearer {emu.info.arm_token}"},
    )


def test_a_429_fault_carries_retry_after_and_the_arm_error_body_then_runs_out(
    emulator: Emulator, http: requests.Session, faults: Faults
) -> None:
    faults.add(route="arm.get", kind="status", status=429, retry_after=1, count=1)
    throttled = arm_get(emulator, http)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "1"
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert arm_get(emulator, http).status_code == 200


def test_500_and_503_faults_use_the_runtime_error_shape_on_runtime_routes(
    emulator: Emulator, http: requests.Session, faults: Faults
) -> None:
    faults.add(route="rrs.execute", kind="status", status=500)
    faults.add(route="rrs.execute", kind="status", status=503)
    url = f"{emulator.info.predictive_endpoint_api_location}/execute"
    first = http.post(url, params={"api-version": "2.0"}, json={})
    assert first.status_code == 500
    assert first.json()["error"]["code"] == "InternalError"
    second = http.post(url, params={"api-version": "2.0"}, json={})
    assert second.status_code == 503
    assert second.json()["error"]["code"] == "ServiceUnavailable"


def test_a_drop_fault_closes_the_connection_without_a_response(
    emulator: Emulator, http: requests.Session, faults: Faults
) -> None:
    faults.add(route="arm.*", kind="drop")
    with pytest.raises(requests.ConnectionError):
        arm_get(emulator, http)
    assert arm_get(emulator, http).status_code == 200
    assert (
        "GET",
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/amlretrain-demo/"
        "providers/Microsoft.MachineLearning/webServices/census-predictive",
        0,
    ) in emulator.requests


def test_latency_applies_to_every_matching_request_until_cleared(
    emulator: Emulator, http: requests.Session, faults: Faults
) -> None:
    faults.add(route="*", kind="latency", seconds=0.3, count=None)
    for _ in range(2):
        start = time.monotonic()
        assert arm_get(emulator, http).status_code == 200
        assert time.monotonic() - start >= 0.3
    faults.clear()
    assert faults.take("arm.get", ["latency"]) == []  # nothing left to slow a request down
    assert arm_get(emulator, http).status_code == 200


def test_the_request_log_counts_requests(emulator: Emulator, http: requests.Session) -> None:
    before = len(emulator.requests)
    arm_get(emulator, http)
    arm_get(emulator, http)
    assert len(emulator.requests) == before + 2
    method, path, status = emulator.requests[-1]
    assert (method, status) == ("GET", 200)
    assert path.endswith("/census-predictive")


def test_info_and_credential_keep_secrets_out_of_repr_and_default_dict(emulator: Emulator) -> None:
    info = emulator.info
    text = repr(info) + json.dumps(info.to_dict())
    for secret in (info.arm_token, info.workspace_token, info.training_api_key, "AccountKey="):
        assert secret and secret not in text
    full = info.to_dict(include_secrets=True)
    assert full["arm_token"] == info.arm_token
    token = emulator.credential().get_token("https://management.azure.com/.default")
    assert token.token == info.arm_token
    assert token.expires_on > time.time() + 3600
    assert info.arm_token not in repr(emulator.credential())


def test_stop_leaves_no_thread_and_no_process(tmp_path: object) -> None:
    threads_before = set(threading.enumerate())
    emu = Emulator(seed=False).start()
    pid = emu._azurite.pid if emu._azurite is not None else None
    assert pid is not None
    with requests.Session() as http:
        http.trust_env = False
        resp = http.get(
            f"{emu.info.management_url}/workspaces/{emu.info.workspace_id}/webservices",
            headers={"Authorization": f"Bearer {emu.info.workspace_token}"},
        )
        assert resp.json() == []
        emu.stop()
        emu.stop()
    assert set(threading.enumerate()) <= threads_before
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_a_given_azurite_is_used_and_left_running() -> None:
    with Azurite() as azurite, Emulator(azurite=azurite) as emu:
        assert emu.info.blob_endpoint == azurite.blob_endpoint
        emu.stop()
        assert azurite.running


def test_the_foreground_runner_prints_the_details_and_stops_on_request(tmp_path: object) -> None:
    assert isinstance(tmp_path, Path)
    out = io.StringIO()
    stop = threading.Event()
    info_file = tmp_path / "info.json"
    faults_file = tmp_path / "faults.json"
    faults_file.write_text(
        json.dumps({"faults": [{"route": "arm.get", "kind": "latency", "seconds": 0.1}]})
    )
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(
            run(
                stream=out,
                seed=False,
                output="json",
                info_file=info_file,
                faults_file=faults_file,
                stop_event=stop,
            )
        )
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    shown = json.loads(out.getvalue())
    assert "arm_token" not in shown
    assert shown["base_url"].startswith("http://127.0.0.1:")
    full = json.loads(info_file.read_text())
    assert full["arm_token"]
    assert oct(info_file.stat().st_mode & 0o777) == "0o600"
    stop.set()
    thread.join(30)
    assert result == [0]


# -- faults for crash-consistency tests: the effect stands, the answer is lost or wrong --------

PROVIDER = "/providers/Microsoft.MachineLearning"
OLD_MODEL = "https://models.example/old.ilearner"
NEW_MODEL = "https://models.example/new.ilearner"


def arm_headers(emu: Emulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.info.arm_token}"}


def ws_headers(emu: Emulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.info.workspace_token}"}


def model_body(uri: str) -> dict[str, Any]:
    asset = {"name": "M [trained model]", "type": "Resource", "locationInfo": {"uri": uri}}
    return {
        "location": "South Central US",
        "properties": {"packageType": "Graph", "title": "faults", "assets": {"m": asset}},
    }


def served_model(doc: dict[str, Any]) -> str:
    uri: str = doc["properties"]["assets"]["m"]["locationInfo"]["uri"]
    return uri


def op_status(http: requests.Session, emu: Emulator, resp: requests.Response) -> str:
    doc = http.get(resp.headers["Azure-AsyncOperation"], headers=arm_headers(emu)).json()
    status: str = doc["status"]
    return status


def wait_succeeded(http: requests.Session, emu: Emulator, resp: requests.Response) -> None:
    assert wait_for(lambda: op_status(http, emu, resp) != "Provisioning")
    assert op_status(http, emu, resp) == "Succeeded"


class ArmService(NamedTuple):
    url: str
    key: tuple[str, str, str]


@pytest.fixture
def arm_service(emulator: Emulator, http: requests.Session) -> Iterator[ArmService]:
    """A fresh New web service serving OLD_MODEL (deleted afterwards)."""
    name = f"faults-{uuid.uuid4().hex[:8]}"
    sub, rg = emulator.info.subscription_id, "fault-tests"
    url = f"{emulator.info.arm_base_url}/subscriptions/{sub}/resourceGroups/{rg}{PROVIDER}"
    url += f"/webServices/{name}"
    resp = http.put(url, params=API, json=model_body(OLD_MODEL), headers=arm_headers(emulator))
    assert resp.status_code == 201, resp.text
    wait_succeeded(http, emulator, resp)
    yield ArmService(url, (sub.lower(), rg, name))
    http.delete(url, params=API, headers=arm_headers(emulator))


def arm_patch(http: requests.Session, emu: Emulator, svc: ArmService) -> requests.Response:
    patch = model_body(NEW_MODEL)
    del patch["location"]
    return http.patch(svc.url, params=API, json=patch, headers=arm_headers(emu))


def arm_read(http: requests.Session, emu: Emulator, svc: ArmService) -> dict[str, Any]:
    resp = http.get(svc.url, params=API, headers=arm_headers(emu))
    assert resp.status_code == 200, resp.text
    doc: dict[str, Any] = resp.json()
    return doc


def arm_truth(emu: Emulator, svc: ArmService) -> dict[str, Any]:
    """The emulator's own record of the service (completing due operations first)."""
    assert emu.state is not None
    with emu.state.locked() as state:
        return copy.deepcopy(state.arm[svc.key].resource)


class ClassicEndpoint(NamedTuple):
    url: str
    resource: str
    old: str  # RelativeLocation of the model it serves
    new_location: dict[str, str]  # a readable .ilearner blob to patch it with


@pytest.fixture
def classic_endpoint(emulator: Emulator, http: requests.Session) -> Iterator[ClassicEndpoint]:
    """A fresh non-default endpoint of the predictive service, and a blob to patch it with."""
    from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

    info = emulator.info
    name = f"flt{uuid.uuid4().hex[:12]}"
    url = f"{info.management_url}/workspaces/{info.workspace_id}/webservices"
    url += f"/{info.predictive_service}/endpoints/{name}"
    resp = http.put(url, json={"Description": "faults"}, headers=ws_headers(emulator))
    assert resp.status_code == 201, resp.text
    resource = resp.json()["Resources"][0]
    blob = f"faults-{uuid.uuid4().hex[:8]}.ilearner"
    with BlobServiceClient.from_connection_string(info.storage_connection_string) as blobs:
        blobs.get_blob_client("models", blob).upload_blob(b"model bytes", overwrite=True)
        sas = generate_blob_sas(
            info.storage_account,
            "models",
            blob,
            account_key=parse_connection_string(info.storage_connection_string)["AccountKey"],
            permission=BlobSasPermissions(read=True),
            expiry=datetime.now(timezone.utc) + timedelta(hours=1),
        )
    location = {
        **resource["Location"],
        "RelativeLocation": f"models/{blob}",
        "SasBlobToken": "?" + sas,
    }
    yield ClassicEndpoint(url, resource["Name"], resource["Location"]["RelativeLocation"], location)
    http.delete(url, headers=ws_headers(emulator))


def classic_patch(http: requests.Session, emu: Emulator, ep: ClassicEndpoint) -> requests.Response:
    body = {"Resources": [{"Name": ep.resource, "Location": ep.new_location}]}
    return http.patch(ep.url, json=body, headers=ws_headers(emu))


def classic_read(http: requests.Session, emu: Emulator, ep: ClassicEndpoint) -> str:
    resp = http.get(ep.url, headers=ws_headers(emu))
    assert resp.status_code == 200, resp.text
    location: str = resp.json()["Resources"][0]["Location"]["RelativeLocation"]
    return location


def classic_truth(emu: Emulator, ep: ClassicEndpoint) -> str:
    assert emu.state is not None
    name = ep.url.rsplit("/", 1)[1]
    with emu.state.lock:
        ws = emu.state.workspaces[emu.info.workspace_id.lower()]
        endpoint = ws.services[str(emu.info.predictive_service)].endpoints[name]
        location: str = endpoint.resources[0]["Location"]["RelativeLocation"]
        return location


@pytest.mark.parametrize("kind", ["apply_drop", "apply_status"])
def test_apply_faults_on_arm_patch_lose_the_answer_but_the_patch_lands(
    emulator: Emulator,
    http: requests.Session,
    faults: Faults,
    arm_service: ArmService,
    kind: str,
) -> None:
    faults.add(route="arm.patch", kind=kind)
    if kind == "apply_drop":
        with pytest.raises(requests.ConnectionError):
            arm_patch(http, emulator, arm_service)
    else:
        resp = arm_patch(http, emulator, arm_service)
        assert resp.status_code == 500
        assert resp.json()["error"]["code"] == "InternalServerError"
        assert "Azure-AsyncOperation" not in resp.headers
    assert wait_for(lambda: served_model(arm_truth(emulator, arm_service)) == NEW_MODEL)
    assert arm_truth(emulator, arm_service)["properties"]["provisioningState"] == "Succeeded"
    assert served_model(arm_read(http, emulator, arm_service)) == NEW_MODEL
    assert faults.rules[0].exhausted


@pytest.mark.parametrize("kind", ["apply_drop", "apply_status"])
def test_apply_faults_on_classic_patch_lose_the_answer_but_the_patch_lands(
    emulator: Emulator,
    http: requests.Session,
    faults: Faults,
    classic_endpoint: ClassicEndpoint,
    kind: str,
) -> None:
    faults.add(route="classic.patch_endpoint", kind=kind, status=503)
    if kind == "apply_drop":
        with pytest.raises(requests.ConnectionError):
            classic_patch(http, emulator, classic_endpoint)
    else:
        resp = classic_patch(http, emulator, classic_endpoint)
        assert resp.status_code == 503
        assert resp.json()["error"]["code"] == "ServiceUnavailable"
    new = classic_endpoint.new_location["RelativeLocation"]
    assert classic_truth(emulator, classic_endpoint) == new
    assert classic_read(http, emulator, classic_endpoint) == new


def test_stale_reads_after_an_arm_patch_show_the_old_model_for_the_window(
    emulator: Emulator, http: requests.Session, faults: Faults, arm_service: ArmService
) -> None:
    faults.add(route="arm.patch", kind="stale", seconds=1.5)
    written = time.monotonic()
    resp = arm_patch(http, emulator, arm_service)
    assert resp.status_code == 200
    wait_succeeded(http, emulator, resp)  # the operation completes as usual
    assert served_model(arm_truth(emulator, arm_service)) == NEW_MODEL  # the truth, at once
    stale = arm_read(http, emulator, arm_service)  # azure-core's final GET would see this
    assert served_model(stale) == OLD_MODEL
    assert stale["properties"]["provisioningState"] == "Succeeded"
    assert time.monotonic() - written < 1.2  # still inside the window
    assert wait_for(lambda: served_model(arm_read(http, emulator, arm_service)) == NEW_MODEL)
    assert time.monotonic() - written >= 1.5
    assert served_model(arm_read(http, emulator, arm_service)) == NEW_MODEL


def test_a_stale_create_reads_as_not_found_for_the_window(
    emulator: Emulator, http: requests.Session, faults: Faults
) -> None:
    faults.add(route="arm.put", kind="stale", seconds=1.0)
    sub = emulator.info.subscription_id
    name = f"stale-{uuid.uuid4().hex[:8]}"
    url = f"{emulator.info.arm_base_url}/subscriptions/{sub}/resourceGroups/fault-tests{PROVIDER}"
    url += f"/webServices/{name}"
    resp = http.put(url, params=API, json=model_body(OLD_MODEL), headers=arm_headers(emulator))
    assert resp.status_code == 201
    wait_succeeded(http, emulator, resp)
    assert emulator.state is not None
    assert (sub.lower(), "fault-tests", name) in emulator.state.arm
    assert http.get(url, params=API, headers=arm_headers(emulator)).status_code == 404
    assert wait_for(
        lambda: http.get(url, params=API, headers=arm_headers(emulator)).status_code == 200
    )
    http.delete(url, params=API, headers=arm_headers(emulator))


def test_stale_reads_after_a_classic_patch_show_the_old_model_for_the_window(
    emulator: Emulator, http: requests.Session, faults: Faults, classic_endpoint: ClassicEndpoint
) -> None:
    faults.add(route="classic.*", kind="stale", seconds=1.5)
    new = classic_endpoint.new_location["RelativeLocation"]
    written = time.monotonic()
    assert classic_patch(http, emulator, classic_endpoint).status_code == 200
    assert classic_truth(emulator, classic_endpoint) == new
    assert classic_read(http, emulator, classic_endpoint) == classic_endpoint.old
    listed = http.get(classic_endpoint.url.rsplit("/", 1)[0], headers=ws_headers(emulator))
    mine = [e for e in listed.json() if classic_endpoint.url.endswith("/" + e["Name"])]
    assert mine[0]["Resources"][0]["Location"]["RelativeLocation"] == classic_endpoint.old
    assert time.monotonic() - written < 1.2
    assert wait_for(lambda: classic_read(http, emulator, classic_endpoint) == new)
    assert time.monotonic() - written >= 1.5


def test_a_hung_arm_operation_never_completes_until_a_later_patch_supersedes_it(
    emulator: Emulator, http: requests.Session, faults: Faults, arm_service: ArmService
) -> None:
    faults.add(route="arm.patch", kind="lro_hang")
    hung = arm_patch(http, emulator, arm_service)
    assert hung.status_code == 200
    for _ in range(5):  # ~1 s: five times the emulator's operation delay
        assert op_status(http, emulator, hung) == "Provisioning"
        assert served_model(arm_truth(emulator, arm_service)) == OLD_MODEL
        time.sleep(0.2)
    doc = arm_read(http, emulator, arm_service)
    assert served_model(doc) == OLD_MODEL
    assert doc["properties"]["provisioningState"] == "Provisioning"
    later = arm_patch(http, emulator, arm_service)
    assert later.status_code == 200
    wait_succeeded(http, emulator, later)
    assert op_status(http, emulator, hung) == "Canceled"
    truth = arm_truth(emulator, arm_service)
    assert served_model(truth) == NEW_MODEL
    assert truth["properties"]["provisioningState"] == "Succeeded"


class Poll(NamedTuple):
    sent: float  # monotonic, as the request left
    answered: float  # monotonic, once its answer was read
    status: str  # the operation's status
    state: str  # the web service's provisioningState (an HTTP read)
    model: str  # the model the emulator's state serves


def poll_until_done(
    http: requests.Session, emu: Emulator, svc: ArmService, resp: requests.Response
) -> list[Poll]:
    """Poll the operation (and the service) every 50 ms until it is no longer Provisioning."""
    polls: list[Poll] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sent = time.monotonic()
        status = op_status(http, emu, resp)
        state = arm_read(http, emu, svc)["properties"]["provisioningState"]
        model = served_model(arm_truth(emu, svc))
        polls.append(Poll(sent, time.monotonic(), status, state, model))
        if status != "Provisioning":
            return polls
        time.sleep(0.05)
    raise AssertionError(f"the operation still runs after 10 s: {polls[-1]}")


def operation_of(emu: Emulator, resp: requests.Response) -> Operation:
    """The emulator's own record of the operation ``resp`` started."""
    assert emu.state is not None
    op_id = resp.headers["Azure-AsyncOperation"].split("?")[0].rsplit("/", 1)[1]
    with emu.state.lock:
        return emu.state.operations[op_id]


def check_slow(polls: list[Poll], start: float, answered: float, seconds: float) -> Poll:
    """Polls answered before ``start + seconds`` saw the operation running; those sent
    ``seconds`` after the write was answered saw it done; the last one is the end."""
    running = [p for p in polls if p.answered - start < seconds]
    assert len(running) >= 3, polls  # seen running longer than the emulator's 0.2 s lro_delay
    for p in running:
        assert (p.status, p.state, p.model) == ("Provisioning", "Provisioning", OLD_MODEL), p
    for p in polls:
        if p.sent - answered >= seconds:
            assert p.status != "Provisioning", p
    last = polls[-1]
    assert last.answered - start >= seconds  # ended no sooner than the fault said
    assert last.sent - answered < seconds + 1.0  # and not much later
    return last


def test_an_lro_slow_arm_patch_stays_provisioning_for_its_seconds_then_succeeds(
    emulator: Emulator, http: requests.Session, faults: Faults, arm_service: ArmService
) -> None:
    rule = faults.add(route="arm.patch", kind="lro_slow", seconds=1.5)
    start = time.monotonic()
    resp = arm_patch(http, emulator, arm_service)
    answered = time.monotonic()
    assert resp.status_code == 200, resp.text
    assert rule.exhausted and rule.fired == 1
    op = operation_of(emulator, resp)
    assert op.due - op.started == pytest.approx(1.5)
    last = check_slow(poll_until_done(http, emulator, arm_service, resp), start, answered, 1.5)
    assert (last.status, last.state, last.model) == ("Succeeded", "Succeeded", NEW_MODEL)
    # count=1: the next PATCH's operation takes the emulator's usual 0.2 s again
    resp = arm_patch(http, emulator, arm_service)
    op = operation_of(emulator, resp)
    assert op.due - op.started == pytest.approx(0.2)  # the test emulator's lro_delay
    quick = time.monotonic()
    wait_succeeded(http, emulator, resp)
    assert time.monotonic() - quick < 1.0


def test_an_lro_slow_arm_patch_with_lro_fail_ends_failed_after_its_seconds(
    emulator: Emulator, http: requests.Session, faults: Faults, arm_service: ArmService
) -> None:
    faults.add(route="arm.patch", kind="lro_slow", seconds=0.8)
    faults.add(route="arm.patch", kind="lro_fail", message="slow, then broken")
    start = time.monotonic()
    resp = arm_patch(http, emulator, arm_service)
    answered = time.monotonic()
    assert resp.status_code == 200, resp.text
    last = check_slow(poll_until_done(http, emulator, arm_service, resp), start, answered, 0.8)
    assert (last.status, last.state, last.model) == ("Failed", "Succeeded", OLD_MODEL)
    doc = http.get(resp.headers["Azure-AsyncOperation"], headers=arm_headers(emulator)).json()
    assert doc["error"]["message"] == "slow, then broken"
    assert all(rule.exhausted for rule in faults.rules)


SLEEPER = "import time; time.sleep(60)"
TERM_HANDLER = """
import pathlib, signal, sys, time
def on_term(signum, frame):
    pathlib.Path(sys.argv[1]).write_text(signal.Signals(signum).name)
    sys.exit(3)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def child() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start client stand-in processes; any still running at the end is killed."""
    started: list[subprocess.Popen[str]] = []

    def spawn(code: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True
        )
        started.append(proc)
        return proc

    yield spawn
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_sigkill_fault_kills_the_client_and_applies_the_patch_only_after(
    emulator: Emulator,
    http: requests.Session,
    faults: Faults,
    arm_service: ArmService,
    child: Callable[..., subprocess.Popen[str]],
    when: str,
) -> None:
    client = child(SLEEPER)
    faults.add(route="arm.patch", kind="kill", pid=client.pid, when=when)
    with pytest.raises(requests.ConnectionError):
        arm_patch(http, emulator, arm_service)
    assert client.poll() == -signal.SIGKILL  # already dead when the connection dropped
    if when == "after":
        assert wait_for(lambda: served_model(arm_truth(emulator, arm_service)) == NEW_MODEL)
    else:
        time.sleep(0.4)  # twice the operation delay: a started patch would have landed
        truth = arm_truth(emulator, arm_service)
        assert served_model(truth) == OLD_MODEL
        assert truth["properties"]["provisioningState"] == "Succeeded"


def test_a_sigterm_fault_after_the_handler_signals_the_client_and_answers_normally(
    emulator: Emulator,
    http: requests.Session,
    faults: Faults,
    classic_endpoint: ClassicEndpoint,
    child: Callable[..., subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    marker = tmp_path / "signalled"
    client = child(TERM_HANDLER, str(marker))
    assert client.stdout is not None and client.stdout.readline().strip() == "ready"
    faults.add(
        route="classic.patch_endpoint", kind="kill", pid=client.pid, signal="SIGTERM", when="after"
    )
    resp = classic_patch(http, emulator, classic_endpoint)
    assert resp.status_code == 200  # answered as if nothing happened
    assert (
        classic_truth(emulator, classic_endpoint)
        == (classic_endpoint.new_location["RelativeLocation"])
    )
    assert client.wait(5) == 3  # its SIGTERM handler ran
    assert marker.read_text() == "SIGTERM"
