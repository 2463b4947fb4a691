"""Pure parts of the emulator: faults, the ARM merge and views, routing, operations, info."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from amlretrain.emulator import Emulator, EmulatorCredential, EmulatorInfo, Faults
from amlretrain.emulator._server import Router, arm_error, runtime_error
from amlretrain.emulator.arm import list_view, merge, service_view
from amlretrain.emulator.state import State, normalize_region, trained_model_asset
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
