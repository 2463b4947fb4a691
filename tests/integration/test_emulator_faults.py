"""Faults switched on per route and count, and the emulator's lifecycle (nothing left behind)."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import pytest
import requests

from amlretrain.emulator import Emulator, Faults
from amlretrain.emulator._run import run
from amlretrain.emulator.azurite import Azurite

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
