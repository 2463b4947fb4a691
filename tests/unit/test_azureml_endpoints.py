"""OnlineEndpointsClient through the real azure-core adapter against the strict fake.

What each call sends (method, path, api-version, body), the LRO flows (201 with
Azure-AsyncOperation then a GET of the original URI; 202 with Location), the busy
endpoint waited out, F2 and F12 reported truthfully, continuation tokens without secrets.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from amlretrain.azureml.endpoints import OnlineEndpointsClient
from amlretrain.azureml.models import OnlineEndpoint
from amlretrain.azureml.traffic import TrafficMap, endpoint_put_body
from amlretrain.credentials import StaticTokenCredential
from amlretrain.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    ServiceError,
    VerificationFailed,
)
from amlretrain.polling import PollPolicy, decode_token
from tests.unit.test_azureml_fake import (
    RG,
    SUB,
    WS,
    W,
    deployment_doc,
    endpoint_doc,
    model_id,
)
from tests.unit.test_azureml_fake import fake as fake

EP = f"{W}/onlineEndpoints/ep"


def _client(token: str = "t", **kw: Any) -> OnlineEndpointsClient:
    options = {"polling": PollPolicy.fixed(0), "busy_timeout": 30.0, "verify_timeout": 5.0, **kw}
    return OnlineEndpointsClient(StaticTokenCredential(token), SUB, RG, WS, **options)


@pytest.fixture
def client(fake: Any) -> Any:
    with _client() as c:
        yield c


def _with_green(fake: Any, traffic: dict[str, int] | None = None) -> None:
    fake.deployments[("ep", "green")] = deployment_doc("green", model_id("census", "2"))
    if traffic is not None:
        fake.endpoints["ep"]["properties"]["traffic"] = traffic


# -- traffic ------------------------------------------------------------------------------------


def test_set_traffic_puts_the_whole_endpoint_as_read_with_the_whole_traffic(client, fake):
    _with_green(fake)
    before = OnlineEndpoint.from_dict(endpoint_doc())
    result = client.begin_set_traffic("ep", {"blue": 90, "green": 10}).result()
    assert result.traffic == {"blue": 90, "green": 10}
    assert fake.violations == []
    (put,) = fake.bodies("PUT", "/onlineEndpoints/ep")
    assert put == endpoint_put_body(
        before, TrafficMap({"blue": 90, "green": 10}), ["blue", "green"]
    )
    assert put["properties"]["futureMember"] == {"kept": True}  # unknown members as read
    assert put["properties"]["mirrorTraffic"] == {}  # the mirror kept as read
    assert put["tags"] == {"team": "ml"} and put["identity"] == {"type": "SystemAssigned"}
    methods = fake.methods()
    assert methods[:3] == [
        ("GET", EP),
        ("GET", f"{EP}/deployments"),
        ("PUT", EP),
    ]
    assert methods[-1] == ("GET", EP)  # verified by a fresh read


def test_a_mirror_kept_as_read_that_would_receive_live_traffic_is_refused_before_the_put(
    client, fake
):
    _with_green(fake)
    fake.endpoints["ep"]["properties"]["mirrorTraffic"] = {"green": 10}
    with pytest.raises(ConfigurationError, match=r"\(T4\).*mirror=\{\}"):
        client.begin_set_traffic("ep", {"green": 100})
    assert "PUT" not in [m for m, _ in fake.methods()]
    result = client.begin_set_traffic("ep", {"green": 100}, mirror={}).result()
    assert result.traffic == {"green": 100} and result.mirror_traffic == {}


@pytest.mark.parametrize(
    ("traffic", "says"),
    [({"blue": 90}, r"\(T1\)"), ({"blue": 50, "red": 50}, "'red', which is no deployment")],
)
def test_bad_traffic_sends_no_put(client, fake, traffic, says):
    with pytest.raises(ConfigurationError, match=says):
        client.begin_set_traffic("ep", traffic)
    assert [m for m, _ in fake.methods()] == ["GET", "GET"]


def test_a_busy_endpoint_and_a_409_are_waited_out_and_nothing_is_written_while_updating(
    client, fake
):
    _with_green(fake)
    fake.busy_reads = 2  # the endpoint reads Updating twice
    fake.conflicts = 1  # then the first PUT is answered 409
    result = client.begin_set_traffic("ep", {"green": 100}).result()
    assert result.traffic == {"green": 100}
    assert fake.violations == []
    assert len(fake.bodies("PUT", "/onlineEndpoints/ep")) == 2  # the 409 one, and again
    gets_before_put = [m for m in fake.methods()[: fake.methods().index(("PUT", EP))]]
    assert gets_before_put.count(("GET", EP)) == 3


def test_the_request_id_is_that_of_the_write_answered_not_of_the_409(client, fake):
    fake.conflicts = 1
    poller = client.begin_set_traffic("ep", {"blue": 100})
    answered = [i for i, (m, p, _) in enumerate(fake.sent) if m == "PUT"][-1]
    assert poller.request_id == f"req-{answered + 1}"


def test_a_patch_whose_location_answers_an_error_but_scaled_is_reported_as_such_f12(client, fake):
    fake.outcome = "Failed"  # the Location poll answers 400 ResourceNotReady
    poller = client.begin_update_deployment("ep", "blue", capacity=2)
    assert poller.result().capacity == 2
    assert "ResourceNotReady" in poller.discrepancy and "capacity 2" in poller.discrepancy
    fake.apply = False
    with pytest.raises(ServiceError) as info:
        client.begin_update_deployment("ep", "blue", capacity=5).result()
    assert info.value.status == 400 and "capacity 2" in str(info.value)


def test_an_endpoint_that_stays_busy_is_a_conflict_and_nothing_is_sent(fake):
    fake.endpoints["ep"]["properties"]["provisioningState"] = "Updating"
    with _client(busy_timeout=0) as client, pytest.raises(ConflictError) as info:
        client.begin_set_traffic("ep", {"blue": 100})
    assert "stayed busy" in str(info.value) and "Updating" in str(info.value)
    assert [m for m, _ in fake.methods()] == ["GET"]
    assert fake.violations == []


def test_409s_until_the_deadline_are_a_conflict_saying_what_the_service_said(fake):
    fake.conflicts = 100
    with _client(busy_timeout=0) as client, pytest.raises(ConflictError) as info:
        client.begin_set_traffic("ep", {"blue": 100})
    assert "Another operation is in progress" in str(info.value)


def test_traffic_not_yet_shown_after_the_operation_is_read_again_f2(client, fake):
    _with_green(fake)
    fake.stale_reads = 2
    result = client.begin_set_traffic("ep", {"green": 100}).result()
    assert result.traffic == {"green": 100}


def test_traffic_never_shown_fails_verification(fake):
    _with_green(fake)
    fake.stale_reads = 10_000
    with _client(verify_timeout=0) as client, pytest.raises(VerificationFailed) as info:
        client.begin_set_traffic("ep", {"green": 100}).result()
    assert "the operation succeeded but" in str(info.value)
    assert "'blue': 100" in str(info.value)


def test_an_operation_reported_failed_whose_traffic_was_set_is_reported_as_such_f12(client, fake):
    _with_green(fake)
    fake.outcome = "Failed"
    poller = client.begin_set_traffic("ep", {"green": 100})
    result = poller.result()
    assert result.traffic == {"green": 100}
    assert poller.operation_error is not None and poller.operation_error.code == "ResourceNotReady"
    assert "reported ResourceNotReady" in poller.discrepancy
    assert "provisioningState Succeeded" in poller.discrepancy
    assert "traffic {'green': 100}" in poller.discrepancy


def test_an_operation_reported_failed_that_changed_nothing_raises_what_was_found(fake):
    _with_green(fake)
    fake.outcome, fake.apply = "Failed", False
    # no verify window: the fresh read that shows nothing changed is the first one
    with _client(verify_timeout=0) as client, pytest.raises(ServiceError) as info:
        client.begin_set_traffic("ep", {"green": 100}).result()
    assert not isinstance(info.value, VerificationFailed)
    assert info.value.code == "ResourceNotReady"
    assert "a fresh GET shows" in str(info.value) and "'blue': 100" in str(info.value)


# -- deployments ----------------------------------------------------------------------------------


def test_a_deployment_put_is_201_with_azure_asyncoperation_then_a_get_of_the_resource(client, fake):
    fake.polls = 1  # one InProgress answer first
    blue = client.get_deployment("ep", "blue")
    green = blue.copy_as("green", model="azureml:census:2")
    poller = client.begin_create_or_update_deployment("ep", "green", green)
    result = poller.result()
    assert result.model == model_id("census", "2") and result.provisioning_state == "Succeeded"
    assert poller.discrepancy is None and poller.request_id is not None
    assert fake.violations == []
    (body,) = fake.bodies("PUT", "/deployments/green")
    assert body["properties"]["model"] == model_id("census", "2")
    assert body["properties"]["instanceType"] == "Standard_DS3_v2"
    assert "provisioningState" not in body["properties"] and "principalId" not in body["identity"]
    paths = [p for _, p in fake.methods()]
    put_at = paths.index(f"{EP}/deployments/green")
    assert [m for m, _ in fake.methods()[put_at:]][:1] == ["PUT"]
    ops = [p for p in paths[put_at + 1 :] if "mfeOperationsStatus" in p]
    assert len(ops) == 2  # InProgress, then Succeeded
    assert fake.methods()[-1] == ("GET", f"{EP}/deployments/green")  # the original URI
    # the deployment PUT did not touch traffic
    assert fake.endpoints["ep"]["properties"]["traffic"] == {"blue": 100}


def test_a_deployment_put_waits_for_the_endpoint_f3(client, fake):
    blue = client.get_deployment("ep", "blue")
    fake.busy_reads = 1
    fake.conflicts = 1  # "Cannot create a deployment ... because it is in Updating ..."
    client.begin_create_or_update_deployment("ep", "green", blue.copy_as("green")).result()
    assert fake.violations == []
    assert len(fake.bodies("PUT", "/deployments/green")) == 2


def test_a_deployment_operation_reported_failed_but_succeeded_is_reported_as_such_f12(client, fake):
    fake.outcome = "Failed"
    blue = client.get_deployment("ep", "blue")
    poller = client.begin_create_or_update_deployment(
        "ep", "green", blue.copy_as("green", model="azureml:census:2")
    )
    result = poller.result()
    assert result.provisioning_state == "Succeeded" and result.model == model_id("census", "2")
    assert poller.discrepancy is not None
    assert "the operation reported ResourceNotReady: init() crashed" in poller.discrepancy
    assert f"model {model_id('census', '2')}" in poller.discrepancy


def test_a_failed_deployment_that_does_not_exist_raises_the_operation_error(client, fake):
    fake.outcome, fake.apply = "Failed", False
    blue = client.get_deployment("ep", "blue")
    with pytest.raises(ServiceError) as info:
        client.begin_create_or_update_deployment("ep", "green", blue.copy_as("green")).result()
    assert info.value.code == "ResourceNotReady" and "does not exist" in str(info.value)


def test_a_succeeded_operation_that_left_the_old_model_fails_verification(fake):
    blue_doc = fake.deployments[("ep", "blue")]
    fake.apply = False
    with _client(verify_timeout=0) as client:
        poller = client.begin_create_or_update_deployment(
            "ep", "blue", client.get_deployment("ep", "blue").with_model("azureml:census:9")
        )
        with pytest.raises(VerificationFailed) as info:
            poller.result()
    assert blue_doc["properties"]["model"] in str(info.value)


def test_an_ilearner_model_is_refused_before_any_request(client, fake):
    blue = client.get_deployment("ep", "blue")
    sent = len(fake.sent)
    doc = blue.copy_as("green").to_dict()
    doc["properties"]["model"] = "https://a.blob.core.windows.net/c/m.ilearner"
    bad = type(blue).from_dict(doc)
    with pytest.raises(ConfigurationError, match="Studio \\(classic\\)"):
        client.begin_create_or_update_deployment("ep", "green", bad)
    assert len(fake.sent) == sent


def test_a_patch_sends_only_the_sku_capacity_and_follows_location(client, fake):
    fake.polls = 1
    result = client.begin_update_deployment("ep", "blue", capacity=3).result()
    assert result.capacity == 3
    assert fake.bodies("PATCH", "/deployments/blue") == [{"sku": {"capacity": 3}}]
    locations = [p for _, p in fake.methods() if "mfeOperationsResults" in p]
    assert len(locations) == 2  # 202 while running, then 200
    assert fake.methods()[-1] == ("GET", f"{EP}/deployments/blue")
    assert fake.violations == []
    with pytest.raises(ConfigurationError):
        client.begin_update_deployment("ep", "blue")
    with pytest.raises(ConfigurationError):
        client.begin_update_deployment("ep", "blue", capacity=0)


def test_a_deployment_with_traffic_is_not_deleted_t7(client, fake):
    with pytest.raises(ConflictError, match=r"100% of the live traffic.*\(T7\)"):
        client.begin_delete_deployment("ep", "blue")
    fake.endpoints["ep"]["properties"]["mirrorTraffic"] = {"green": 10}
    _with_green(fake)
    with pytest.raises(ConflictError, match="mirror traffic"):
        client.begin_delete_deployment("ep", "green")
    assert "DELETE" not in [m for m, _ in fake.methods()]


def test_a_delete_follows_location_and_is_verified_absent(client, fake):
    _with_green(fake)
    assert client.begin_delete_deployment("ep", "green").result() is None
    assert ("ep", "green") not in fake.deployments
    assert ("DELETE", f"{EP}/deployments/green") in fake.methods()
    assert fake.violations == []
    # one already absent is success, without an operation
    poller = client.begin_delete_deployment("ep", "green")
    assert poller.done() and poller.result() is None


# -- continuation tokens ------------------------------------------------------------------------


def test_a_token_holds_no_secret_and_resumes_on_another_client_without_resending(client, fake):
    blue = client.get_deployment("ep", "blue")
    poller = client.begin_create_or_update_deployment(
        "ep", "green", blue.copy_as("green", model="azureml:census:2")
    )
    assert poller.wait_done(30)
    token = poller.continuation_token()
    data = decode_token(token, "azureml.arm")
    assert data["operation"] == "PUT" and data["resource_id"].endswith("/deployments/green")
    assert data["wanted"]["model"] == model_id("census", "2")
    lro = json.loads(base64.b64decode(data["lro"]))
    for text in (base64.urlsafe_b64decode(token).decode(), json.dumps(lro)):
        assert "Bearer" not in text and "Authorization" not in text and "authorization" not in text
    with _client("t2") as other:
        resumed = other.begin_create_or_update_deployment(
            "ep", "green", None, continuation_token=token
        )
        assert resumed.request_id == poller.request_id
        assert resumed.result().model == model_id("census", "2")
    assert len(fake.bodies("PUT", "/deployments/green")) == 1  # nothing sent again


def test_a_token_resumes_only_its_own_operation_on_its_own_resource(client, fake):
    _with_green(fake)
    token = client.begin_delete_deployment("ep", "green").continuation_token()
    with pytest.raises(ConfigurationError, match="resumes a 'DELETE', not a PUT"):
        client.begin_create_or_update_deployment("ep", "green", None, continuation_token=token)
    with pytest.raises(ConfigurationError, match="not of"):
        client.begin_delete_deployment("ep", "blue", continuation_token=token)
    with pytest.raises(ConfigurationError, match="not a continuation token"):
        client.begin_set_traffic("ep", None, continuation_token="garbage")


def test_a_traffic_token_resumes_the_verification(client, fake):
    _with_green(fake)
    poller = client.begin_set_traffic("ep", {"green": 100})
    assert poller.wait_done(30)
    token = poller.continuation_token()
    resumed = client.begin_set_traffic("ep", None, continuation_token=token)
    assert resumed.result().traffic == {"green": 100}
    assert len(fake.bodies("PUT", "/onlineEndpoints/ep")) == 1


# -- reads ----------------------------------------------------------------------------------------


def test_reads_keys_and_logs(client, fake):
    assert [e.name for e in client.list_endpoints()] == ["ep"]
    _with_green(fake)
    assert [d.name for d in client.list_deployments("ep")] == ["blue", "green"]
    keys = client.list_keys("ep")
    assert keys.primary_key == "PRIMARY-SECRET" and "PRIMARY-SECRET" not in repr(keys)
    assert client.get_logs("ep", "blue", tail=10) == "line 1\nline 2"
    assert fake.bodies("POST", "/getLogs") == [{"tail": 10}]
    assert ("POST", f"{EP}/listKeys") in fake.methods()
    with pytest.raises(NotFoundError):
        client.get_endpoint("nope")
    assert fake.violations == []


@pytest.mark.parametrize("bad", ["", "a/b", "x?y"])
def test_names_that_would_break_the_url_are_refused(client, bad):
    with pytest.raises(ConfigurationError):
        client.deployment_id("ep", bad)


def test_repr_shows_no_credential(client):
    assert "StaticTokenCredential" not in repr(client) and "ws" in repr(client)


def test_a_delete_reported_failed_of_a_deployment_that_is_gone_is_reported_as_such_f12(
    client, fake
):
    _with_green(fake)
    fake.outcome = "Failed"
    poller = client.begin_delete_deployment("ep", "green")
    assert poller.result() is None
    assert "finds no deployment green of ep: it was deleted" in poller.discrepancy
    _with_green(fake)
    fake.apply = False
    with pytest.raises(ServiceError, match="still shows deployment green"):
        client.begin_delete_deployment("ep", "green").result()
