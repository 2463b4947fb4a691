"""Pure parts of the emulator: faults, the ARM merge and views, routing, operations, info."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from amlretrain.emulator import Emulator, EmulatorCredential, EmulatorInfo, Faults
from amlretrain.emulator import faults as faults_module
from amlretrain.emulator._server import Router, arm_error, runtime_error
from amlretrain.emulator.arm import list_view, merge, service_view
from amlretrain.emulator.faults import REQUEST_KINDS, kill_client
from amlretrain.emulator.state import (
    ArmService,
    Operation,
    State,
    normalize_region,
    trained_model_asset,
)
from amlretrain.errors import ConfigurationError


def test_a_fault_fires_count_times_and_none_means_forever() -> None:
    faults = Faults()
    faults.add(route="arm.patch", kind="status", status=429, count=2)
    faults.add(route="classic.*", kind="drop", count=None)
    assert [f.status for f in faults.take("arm.patch", ["status"])] == [429]
    assert faults.take("arm.get", ["status"]) == []
    assert len(faults.take("arm.patch", ["status"])) == 1
    assert faults.take("arm.patch", ["status"]) == []
    for _ in range(5):
        assert faults.take("classic.patch_endpoint", ["drop"])[0].kind == "drop"
    faults.clear()
    assert faults.rules == []


def test_429_defaults_retry_after_and_bad_rules_are_refused() -> None:
    assert Faults().add(kind="status", status=429).retry_after == 1
    assert Faults().add(kind="status").status == 503
    with pytest.raises(ValueError, match="unknown fault kind"):
        Faults().add(kind="explode")
    with pytest.raises(ValueError, match="4xx/5xx"):
        Faults().add(kind="status", status=200)


def test_latency_rules_all_fire_but_only_one_decisive_rule_does() -> None:
    faults = Faults()
    faults.add(kind="latency", seconds=0.1, count=None)
    faults.add(kind="latency", seconds=0.2, count=None)
    faults.add(kind="status", status=500)
    faults.add(kind="status", status=503)
    taken = faults.take("rrs.execute", ["latency", "status", "drop"])
    assert [f.kind for f in taken] == ["latency", "latency", "status"]
    assert taken[2].status == 500


def test_faults_load_from_json_and_toml(tmp_path: Path) -> None:
    json_file = tmp_path / "f.json"
    json_file.write_text(json.dumps({"faults": [{"route": "bes.*", "kind": "job_fail"}]}))
    assert [f.kind for f in Faults.load(json_file).rules] == ["job_fail"]
    toml_file = tmp_path / "f.toml"
    toml_file.write_text(
        '[[faults]]\nroute = "arm.patch"\nkind = "status"\nstatus = 429\nretry_after = 2\n'
        'count = "forever"\n'
    )
    rule = Faults.load(toml_file).rules[0]
    assert (rule.route, rule.status, rule.retry_after, rule.count) == ("arm.patch", 429, 2, None)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"faults": [{"kind": "drop", "colour": "red"}]}))
    with pytest.raises(ValueError, match="unknown keys: colour"):
        Faults.load(bad)


def test_take_one_consumes_job_and_lro_faults_by_route() -> None:
    faults = Faults()
    faults.add(route="bes.start", kind="job_slow", seconds=3)
    assert faults.take_one(["arm.put"], "job_slow") is None
    rule = faults.take_one(["bes.start", "bes.submit"], "job_slow")
    assert rule is not None
    assert rule.seconds == 3
    assert faults.take_one(["bes.start"], "job_slow") is None


def test_skip_lets_that_many_matching_requests_pass_before_a_rule_fires() -> None:
    faults = Faults()
    third = faults.add(route="arm.get", kind="kill", pid=4242, when="after", skip=2)
    assert third.skip == 2
    assert faults.take("arm.patch", REQUEST_KINDS) == []  # another route: not counted
    assert faults.take("arm.get", REQUEST_KINDS) == []
    assert faults.take("arm.get", REQUEST_KINDS) == []
    assert faults.take("arm.get", REQUEST_KINDS) == [third]  # the third GET meets it
    assert faults.take("arm.get", REQUEST_KINDS) == []  # count=1: spent
    assert (third.skip, third.count, third.fired) == (0, 0, 1)


def test_a_skipping_rule_does_not_shadow_another_and_counts_requests_it_matched() -> None:
    faults = Faults()
    later = faults.add(route="classic.*", kind="drop", skip=1)
    now = faults.add(route="classic.get_endpoint", kind="status", status=500)
    # The first request: `later` counts it down and passes it on, `now` answers it.
    assert faults.take("classic.get_endpoint", REQUEST_KINDS) == [now]
    assert faults.take("classic.get_endpoint", REQUEST_KINDS) == [later]
    slow = faults.add(kind="latency", seconds=0.1, skip=1, count=None)
    assert faults.take("rrs.execute", REQUEST_KINDS) == []
    assert faults.take("rrs.execute", REQUEST_KINDS) == [slow]


def test_skip_applies_to_the_kinds_a_handler_consumes_and_loads_from_config() -> None:
    faults = Faults.from_data([{"route": "bes.start", "kind": "job_fail", "skip": 1}])
    assert faults.take_one(["bes.start"], "job_fail") is None  # the first start passes
    rule = faults.take_one(["bes.start"], "job_fail")
    assert rule is not None
    assert rule.fired == 1
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="skip must be an int >= 0"):
            Faults().add(kind="drop", skip=bad)  # type: ignore[arg-type]


def test_merge_is_recursive_case_insensitive_and_null_removes() -> None:
    target = {"properties": {"keys": {"primary": "a", "secondary": "b"}, "title": "t", "x": 1}}
    merge(target, {"Properties": {"keys": {"primary": "c"}, "x": None, "assets": {"a": 1}}})
    assert target == {
        "properties": {"keys": {"primary": "c", "secondary": "b"}, "title": "t", "assets": {"a": 1}}
    }


def test_service_view_hides_secrets_and_list_view_is_sparse() -> None:
    resource = {
        "id": "/x",
        "name": "n",
        "type": "Microsoft.MachineLearning/webServices",
        "location": "West US",
        "tags": {},
        "properties": {
            "packageType": "Graph",
            "keys": {"primary": "k"},
            "commitmentPlan": {"id": "p"},
            "storageAccount": {"name": "acct", "key": "secret"},
            "assets": {"a": {}},
            "title": "t",
        },
    }
    view = service_view(resource)
    assert view["properties"]["storageAccount"] == {"name": "acct"}
    assert "keys" not in view["properties"]
    assert "commitmentPlan" not in view["properties"]
    assert resource["properties"]["keys"] == {"primary": "k"}  # the stored copy keeps them
    sparse = list_view(resource)
    assert set(sparse["properties"]) == {"packageType", "storageAccount", "title"}


def test_router_matches_placeholders_methods_and_case() -> None:
    router = Router()
    router.add("GET", "/a/{x}/b", "r.get", lambda r: arm_error(200, "x", "y"), ignore_case=True)
    found = router.match("GET", "/A/one%20two/B")
    assert not isinstance(found, str) and found is not None
    assert found[0].name == "r.get"
    assert found[1] == {"x": "one two"}
    assert router.match("POST", "/a/1/b") == "method"
    assert router.match("GET", "/a/1/c") is None


def test_error_bodies_have_the_documented_shapes() -> None:
    arm = json.loads(arm_error(404, "NotFound", "gone").body)
    assert arm == {"error": {"code": "NotFound", "message": "gone"}}
    rt = json.loads(runtime_error(400, "BadArgument", "bad", "BlobNotFound", "no blob").body)
    assert rt == {
        "error": {
            "code": "BadArgument",
            "message": "bad",
            "details": [{"code": "BlobNotFound", "message": "no blob"}],
        }
    }


def test_an_operation_moves_from_provisioning_to_succeeded_after_the_delay() -> None:
    state = State(lro_delay=0.1)
    applied: list[bool] = []
    op = state.start_operation(
        subscription_id="s",
        region="South Central US",
        api_version="2017-01-01",
        on_success=lambda: applied.append(True),
    )
    doc = op.document()
    assert doc["status"] == "Provisioning"
    assert "endTime" not in doc
    assert 0 <= doc["percentComplete"] < 1
    assert op.region == "southcentralus"
    time.sleep(0.15)
    with state.locked():
        pass
    assert op.document()["status"] == "Succeeded"
    assert applied == [True]


def test_a_failing_operation_rolls_back() -> None:
    state = State(lro_delay=0)
    undone: list[bool] = []
    op = state.start_operation(
        subscription_id="s",
        region="westus",
        api_version="2017-01-01",
        on_success=lambda: pytest.fail("must not apply"),
        on_failure=lambda: undone.append(True),
        fail_message="nope",
    )
    assert op.document()["error"] == {"code": "InternalServerError", "message": "nope"}
    assert undone == [True]


def test_an_operation_given_a_delay_runs_that_long_instead_of_lro_delay() -> None:
    def start(state: State, delay: float | None, fail: str | None = None) -> Operation:
        return state.start_operation(
            subscription_id="s",
            region="westus",
            api_version="2017-01-01",
            fail_message=fail,
            delay=delay,
        )

    state = State(lro_delay=0)
    slow = start(state, 0.2)
    quick = start(state, None)  # None: lro_delay (0: done at once)
    assert quick.done and slow.due - slow.started == pytest.approx(0.2)
    with state.locked():
        assert slow.document()["status"] == "Provisioning"
    time.sleep(0.25)
    with state.locked():
        assert slow.document()["status"] == "Succeeded"
    failing = start(State(lro_delay=5), 0, fail="nope")
    assert failing.document()["status"] == "Failed"  # delay 0: ends at once, as it says


def test_trained_model_asset_by_name_then_by_extension() -> None:
    by_name = {"assets": {"a1": {"name": "M [trained model]", "locationInfo": {"uri": "x"}}}}
    assert trained_model_asset(by_name) == ("a1", by_name["assets"]["a1"])
    by_ext = {"assets": {"a2": {"name": "m", "locationInfo": {"uri": "https://h/c/m.ilearner?s"}}}}
    found = trained_model_asset(by_ext)
    assert found is not None and found[0] == "a2"
    assert trained_model_asset({"assets": {}}) is None
    assert normalize_region("West Central US") == "westcentralus"


def test_the_emulator_refuses_non_loopback_hosts() -> None:
    with pytest.raises(ConfigurationError, match="loopback"):
        Emulator(host="0.0.0.0")
    with pytest.raises(ConfigurationError):
        Emulator(host="example.com")
    Emulator(host="localhost")


def test_info_hides_secrets_and_the_credential_serves_the_token() -> None:
    info = EmulatorInfo(
        base_url="http://127.0.0.1:1",
        arm_base_url="http://127.0.0.1:1",
        management_url="http://127.0.0.1:1",
        subscription_id="s",
        resource_group="rg",
        arm_token="ARMSECRET",
        workspace_id="w",
        workspace_token="WSSECRET",
        storage_connection_string="AccountKey=KEYSECRET",
        blob_endpoint="http://b",
        storage_account="a",
        training_api_key="APIKEYSECRET",
    )
    shown = repr(info) + json.dumps(info.to_dict())
    assert not any(s in shown for s in ("ARMSECRET", "WSSECRET", "KEYSECRET", "APIKEYSECRET"))
    assert info.to_dict(include_secrets=True)["workspace_token"] == "WSSECRET"
    cred = EmulatorCredential("ARMSECRET")
    assert cred.get_token("scope").token == "ARMSECRET"
    assert cred.get_token_info("scope").token == "ARMSECRET"
    assert "ARMSECRET" not in repr(cred)


def test_apply_status_defaults_to_500_and_checks_its_status_like_status() -> None:
    rule = Faults().add(route="arm.patch", kind="apply_status")
    assert (rule.status, rule.after_handler) == (500, True)
    assert Faults().add(kind="apply_status", status=429).retry_after == 1
    with pytest.raises(ValueError, match="apply_status fault needs a 4xx/5xx"):
        Faults().add(kind="apply_status", status=204)
    assert Faults().add(kind="apply_drop").after_handler
    assert not Faults().add(kind="drop").after_handler


def test_a_kill_fault_needs_a_safe_pid_and_normalizes_signal_and_when() -> None:
    rule = Faults().add(route="arm.patch", kind="kill", pid=4242)
    assert (rule.signal, rule.when, rule.after_handler) == (signal.SIGKILL, "before", False)
    term = Faults().add(kind="kill", pid=4242, signal="sigterm", when="after")
    assert (term.signal, term.after_handler) == (signal.SIGTERM, True)
    assert Faults().add(kind="kill", pid=4242, signal="INT").signal == signal.SIGINT
    assert Faults().add(kind="kill", pid=4242, signal=15).signal == signal.SIGTERM
    for bad, match in [
        ({}, "needs pid"),
        ({"pid": 1}, "> 1"),
        ({"pid": 0}, "> 1"),
        ({"pid": -5}, "> 1"),
        ({"pid": os.getpid()}, "own process"),
        ({"pid": "4242"}, "must be an int"),
        ({"pid": True}, "must be an int"),
        ({"pid": 4242, "signal": "SIGNOPE"}, "unknown signal"),
        ({"pid": 4242, "signal": 0}, "not a signal number"),
        ({"pid": 4242, "when": "during"}, "'before' or 'after'"),
    ]:
        with pytest.raises(ValueError, match=match):
            Faults().add(kind="kill", **bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pid, when: only for kill faults"):
        Faults().add(kind="drop", pid=4242, when="after")


def test_stale_and_lro_hang_faults_must_name_routes_they_act_on() -> None:
    assert Faults().add(route="classic.*", kind="stale", seconds=2).seconds == 2
    Faults().add(route="*", kind="stale", seconds=1)
    with pytest.raises(ValueError, match="needs seconds > 0"):
        Faults().add(route="arm.patch", kind="stale")
    with pytest.raises(ValueError, match=r"route 'arm\.get' matches none"):
        Faults().add(route="arm.get", kind="stale", seconds=1)
    Faults().add(route="arm.delete", kind="lro_hang")
    with pytest.raises(ValueError, match=r"lro_hang fault acts on arm\.put"):
        Faults().add(route="classic.patch_endpoint", kind="lro_hang")


def test_lro_slow_needs_seconds_and_a_route_that_starts_an_operation() -> None:
    for route in ("arm.patch", "arm.*", "v2.deployment.put", "v2.endpoint.put", "v2.job.cancel"):
        assert Faults().add(route=route, kind="lro_slow", seconds=1.5).seconds == 1.5
    assert Faults().add(kind="lro_slow", seconds=2, count=None).count is None  # route "*"
    for seconds in (0, 0.0):
        with pytest.raises(ValueError, match=r"lro_slow fault needs seconds > 0"):
            Faults().add(route="arm.patch", kind="lro_slow", seconds=seconds)
    with pytest.raises(ValueError, match="seconds must be >= 0"):
        Faults().add(route="arm.patch", kind="lro_slow", seconds=-1)
    for route in ("arm.get", "classic.patch_endpoint", "v2.score", "v2.endpoint.get"):
        with pytest.raises(ValueError, match=r"lro_slow fault acts on arm\.put"):
            Faults().add(route=route, kind="lro_slow", seconds=1)
    with pytest.raises(ValueError, match=r"fault #0: an lro_slow fault needs seconds > 0"):
        Faults.from_data({"faults": [{"route": "v2.deployment.put", "kind": "lro_slow"}]})


def test_the_new_request_kinds_are_decisive_like_status_and_drop() -> None:
    faults = Faults()
    faults.add(kind="latency", seconds=0.1, count=None)
    faults.add(route="arm.patch", kind="apply_drop")
    faults.add(route="arm.*", kind="kill", pid=4242)
    faults.add(route="arm.*", kind="stale", seconds=1)  # not a request kind: untouched
    first = faults.take("arm.patch", REQUEST_KINDS)
    assert [f.kind for f in first] == ["latency", "apply_drop"]
    assert [f.kind for f in faults.take("arm.patch", REQUEST_KINDS)] == ["latency", "kill"]
    assert [f.kind for f in faults.take("arm.patch", REQUEST_KINDS)] == ["latency"]
    assert faults.take_one(["arm.put"], "stale") is not None


def test_the_new_fields_load_from_config_data_and_errors_name_the_rule() -> None:
    faults = Faults.from_data(
        {
            "faults": [
                {"route": "arm.patch", "kind": "kill", "pid": 4242, "signal": "SIGTERM"},
                {"route": "arm.put", "kind": "stale", "seconds": 1.5, "count": "forever"},
                {"route": "bes.start", "kind": "apply_status", "status": 503},
            ]
        }
    )
    kill, stale, status = faults.rules
    assert (kill.pid, kill.signal, kill.when) == (4242, signal.SIGTERM, "before")
    assert (stale.seconds, stale.count) == (1.5, None)
    assert status.status == 503
    with pytest.raises(ValueError, match=r"fault #1: a kill fault needs pid"):
        Faults.from_data([{"kind": "drop"}, {"kind": "kill"}])


def test_kill_client_waits_until_the_process_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    checks: list[bool] = []
    real_gone = faults_module._gone

    def gone(pid: int) -> bool:
        checks.append(real_gone(pid))
        return checks[-1]

    monkeypatch.setattr(faults_module, "_gone", gone)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as child:
        assert kill_client(Faults().add(kind="kill", pid=child.pid)) is True
        assert checks and checks[-1] is True  # waited until it was a zombie or gone
        assert child.wait(5) == -signal.SIGKILL


def test_kill_client_gives_up_waiting_and_refuses_unsafe_pids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(faults_module, "_gone", lambda pid: False)
    monkeypatch.setattr(faults_module, "_KILL_WAIT", 0.1)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as child:
        start = time.monotonic()
        assert kill_client(Faults().add(kind="kill", pid=child.pid)) is True
        assert 0.1 <= time.monotonic() - start < 2
        child.wait(5)
    rule = Faults().add(kind="kill", pid=4242)
    rule.pid = os.getpid()  # rules are mutable: checked again when they fire
    with pytest.raises(ValueError, match="own process"):
        kill_client(rule)
    with pytest.raises(ValueError, match="not a kill fault"):
        kill_client(Faults().add(kind="drop"))


def test_a_hung_operation_stays_provisioning_and_a_later_write_cancels_it() -> None:
    state = State(lro_delay=0)
    events: list[str] = []
    state.arm[("s", "rg", "n")] = ArmService(
        subscription_id="s",
        resource_group="rg",
        name="n",
        service_id="id",
        resource={"properties": {}},
        region="westus",
    )
    op = state.start_operation(
        subscription_id="s",
        region="westus",
        api_version="2017-01-01",
        on_success=lambda: events.append("applied"),
        on_failure=lambda: events.append("rolled back"),
        resource_key=("s", "rg", "n"),
        hang=True,
    )
    with state.locked():
        pass
    assert op.document()["status"] == "Provisioning"
    assert events == []
    state.finish_pending(state.arm[("s", "rg", "n")])
    doc = op.document()
    assert (doc["status"], doc["error"]["code"]) == ("Canceled", "OperationCanceled")
    assert "endTime" in doc
    assert events == ["rolled back"]
    assert state.arm[("s", "rg", "n")].pending is None


def test_a_stale_view_lasts_its_seconds_then_reads_see_the_state() -> None:
    state = State()
    state.hold_stale(("arm", "s", "rg", "n"), {"old": True}, 0.1)
    view = state.stale(("arm", "s", "rg", "n"))
    assert view is not None and view.before == {"old": True}
    assert state.stale(("arm", "s", "rg", "other")) is None
    time.sleep(0.12)
    assert state.stale(("arm", "s", "rg", "n")) is None
