"""ClassicClient: URLs, bodies, tolerant models, refusals before any request, verification."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
import responses
from responses import matchers

from amlretrain.blobs import BlobRef
from amlretrain.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    ServiceError,
    VerificationFailed,
)
from amlretrain.polling import PollPolicy, decode_token
from amlretrain.studio.management import ClassicClient, management_url
from amlretrain.studio.models import ClassicWebService, Endpoint, EndpointResource

BASE = "https://management.azureml.net"
WS = f"{BASE}/workspaces/ws1"
SVC = f"{WS}/webservices/svc1"
RESOURCE = "Census Model [trained model]"
STORAGE = "https://acct.blob.core.windows.net/"


def _sas(hours: float) -> str:
    expiry = (datetime.now(timezone.utc) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"?sv=2020-08-04&sr=b&sp=r&se={expiry}&sig=SIGNATURE"


NEW_MODEL = BlobRef(
    base_location=STORAGE, relative_location="models/new.ilearner", sas_token=_sas(1)
)


def _endpoint(name: str = "retrained", relative: str = "models/old.ilearner") -> dict:
    return {
        "Name": name,
        "WebServiceId": "svc1",
        "WorkspaceId": "ws1",
        "ApiLocation": "https://ussouthcentral.services.azureml.net/workspaces/ws1/services/e1",
        "PrimaryKey": "PRIMARYKEYVALUE",
        "SecondaryKey": "SECONDARYKEYVALUE",
        "ThrottleLevel": "Low",
        "MaxConcurrentCalls": 4,
        "PreventUpdate": False,
        "Resources": [
            {
                "Name": RESOURCE,
                "Kind": "Resource",
                "Location": {
                    "BaseLocation": STORAGE,
                    "RelativeLocation": relative,
                    "SasBlobToken": _sas(1),
                },
            }
        ],
        "SomethingNew": {"x": 1},
    }


SERVICE = {"Id": "svc1", "Name": "census", "DefaultEndpointName": "default", "EndpointCount": 2}


@pytest.fixture
def client() -> ClassicClient:
    return ClassicClient("ws1", "WORKSPACETOKEN", poll=PollPolicy.fixed(0))


def test_regional_hosts_follow_the_management_api_notes():
    assert management_url("South Central US") == "https://management.azureml.net"
    assert management_url("westeurope") == "https://europewest.management.azureml.net"
    assert management_url("Germany Central") == "https://germanycentral.management.azureml.de"
    with pytest.raises(ConfigurationError):
        management_url("Mars North")
    assert ClassicClient("w", "t", region="Japan East").base_url.startswith("https://japaneast.")


def test_endpoint_is_read_in_any_key_casing_and_keeps_unknown_members():
    data = {k.lower(): v for k, v in _endpoint().items()}
    ep = Endpoint.from_dict(data)
    assert ep.name == "retrained"
    assert ep.resources[0].location is not None
    assert ep.resources[0].location.relative_location == "models/old.ilearner"
    assert ep.extra == {"somethingnew": {"x": 1}}
    assert ep.max_concurrent_calls == 4


def test_models_read_values_leniently_as_the_service_spells_them():
    ep = Endpoint.from_dict(
        {"NAME": "e", "MaxConcurrentCalls": "8", "PreventUpdate": "True", "Resources": "odd"}
    )
    assert (ep.name, ep.max_concurrent_calls, ep.prevent_update) == ("e", 8, True)
    assert ep.resources == ()  # a malformed member is tolerated
    assert ep.extra == {}
    service = ClassicWebService.from_dict({"endpointCount": "two", "Id": None, "Tier": "x"})
    assert (service.id, service.endpoint_count, service.extra) == ("", None, {"Tier": "x"})
    assert EndpointResource.from_dict({"Kind": 1}) == EndpointResource(name="", kind="1")


def test_keys_and_sas_never_appear_in_reprs():
    ep = Endpoint.from_dict(_endpoint())
    text = repr(ep) + repr(ep.resources) + repr(ClassicClient("ws1", "WORKSPACETOKEN"))
    for secret in ("PRIMARYKEYVALUE", "SECONDARYKEYVALUE", "SIGNATURE", "WORKSPACETOKEN"):
        assert secret not in text


def test_a_resource_without_location_is_tolerated():
    res = EndpointResource.from_dict({"name": RESOURCE, "location": {"BaseLocation": None}})
    assert res.location is None


@responses.activate
def test_list_web_services_sends_the_workspace_token():
    responses.get(
        f"{WS}/webservices",
        json=[SERVICE],
        match=[matchers.header_matcher({"Authorization": "Bearer WORKSPACETOKEN"})],
    )
    services = list(ClassicClient("ws1", "WORKSPACETOKEN").list_web_services())
    assert services == [ClassicWebService.from_dict(SERVICE)]
    assert services[0].default_endpoint_name == "default"
    assert "api-version" not in responses.calls[0].request.url


@responses.activate
def test_list_and_get_endpoints(client):
    responses.get(f"{SVC}/endpoints", json=[_endpoint("default"), _endpoint()])
    responses.get(f"{SVC}/endpoints/retrained", json=_endpoint())
    assert [e.name for e in client.list_endpoints("svc1")] == ["default", "retrained"]
    assert client.get_endpoint("svc1", "retrained").api_location.endswith("/services/e1")


@responses.activate
def test_lists_are_item_pagers_read_when_iterated(client):
    from azure.core.paging import ItemPaged

    responses.get(f"{SVC}/endpoints", json=[_endpoint("default"), _endpoint()])
    responses.get(f"{WS}/webservices", json={"value": [SERVICE]})  # OData form tolerated
    endpoints = client.list_endpoints("svc1")
    services = client.list_web_services()
    assert isinstance(endpoints, ItemPaged) and isinstance(services, ItemPaged)
    assert len(responses.calls) == 0, "nothing is read before the iteration"
    pages = [[e.name for e in page] for page in endpoints.by_page()]
    assert pages == [["default", "retrained"]]  # the management API answers one page
    assert [s.id for s in services] == ["svc1"]
    assert len(responses.calls) == 2
    with pytest.raises(ConfigurationError):
        client.list_endpoints("")  # refused at the call, before any request


@responses.activate
def test_errors_carry_code_details_and_request_id(client):
    responses.get(
        f"{SVC}/endpoints",
        status=401,
        headers={"x-ms-request-id": "req-7"},
        json={
            "error": {
                "code": "Unauthorized",
                "message": "Authorization failed.",
                "details": [{"code": "ManagementRequestUnauthorized", "message": "no"}],
            }
        },
    )
    with pytest.raises(AuthenticationError) as info:
        list(client.list_endpoints("svc1"))
    assert info.value.code == "Unauthorized"
    assert info.value.request_id == "req-7"
    assert "WORKSPACETOKEN" not in str(info.value)


@pytest.mark.parametrize("name", ["Retrained", "a" * 25, "with-dash", "", "ümlaut"])
@responses.activate
def test_create_endpoint_refuses_bad_names_before_any_request(client, name):
    with pytest.raises(ConfigurationError):
        client.create_endpoint("svc1", name)
    assert len(responses.calls) == 0


@responses.activate
def test_create_endpoint_puts_the_documented_body_and_reads_back(client):
    responses.put(
        f"{SVC}/endpoints/retrained",
        match=[
            matchers.json_params_matcher(
                {
                    "WebServiceId": "svc1",
                    "EndpointName": "retrained",
                    "ThrottleLevel": "High",
                    "PreventUpdate": False,
                    "Description": "for retraining",
                    "MaxConcurrentCalls": 20,
                }
            )
        ],
    )
    responses.get(f"{SVC}/endpoints/retrained", json=_endpoint())
    ep = client.create_endpoint(
        "svc1",
        "retrained",
        description="for retraining",
        throttle_level="high",
        max_concurrent_calls=20,
    )
    assert ep.name == "retrained"


@responses.activate
def test_add_endpoint_is_a_deprecated_alias_of_create_endpoint(client):
    responses.put(f"{SVC}/endpoints/retrained")
    responses.get(f"{SVC}/endpoints/retrained", json=_endpoint())
    with pytest.warns(DeprecationWarning, match="use ClassicClient.create_endpoint") as seen:
        ep = client.add_endpoint("svc1", "retrained", description="old name")
    assert seen[0].filename == __file__  # the warning points at the caller
    assert ep.name == "retrained"
    assert json.loads(responses.calls[0].request.body)["Description"] == "old name"


def test_verify_interval_is_a_deprecated_alias_of_a_fixed_poll_policy():
    client = ClassicClient("ws1", "WORKSPACETOKEN")
    assert client.poll == PollPolicy.fixed(2.0)  # the 0.1.0 default: every 2 s
    with pytest.warns(DeprecationWarning, match="verify_interval is deprecated"):
        client.verify_interval = 0.5
    assert client.poll == PollPolicy.fixed(0.5)
    with pytest.warns(DeprecationWarning, match="verify_interval"):
        assert client.verify_interval == 0.5


@responses.activate
def test_create_endpoint_refuses_max_calls_with_low_throttle(client):
    with pytest.raises(ConfigurationError):
        client.create_endpoint("svc1", "retrained", max_concurrent_calls=10)
    assert len(responses.calls) == 0


def _high(calls: int = 30, description: str = "current") -> dict:
    return {**_endpoint(), "ThrottleLevel": "High", "MaxConcurrentCalls": calls,
            "Description": description, "PreventUpdate": True}  # fmt: skip


@responses.activate
def test_update_endpoint_puts_the_add_body_with_the_current_values_and_sends_no_patch(client):
    responses.get(f"{SVC}/endpoints/retrained", json=_high())
    put = responses.put(
        f"{SVC}/endpoints/retrained",
        match=[
            matchers.json_params_matcher(
                {
                    "WebServiceId": "svc1",
                    "EndpointName": "retrained",
                    "Description": "new",
                    "ThrottleLevel": "High",
                    "MaxConcurrentCalls": 30,
                    "PreventUpdate": True,
                }
            )
        ],
    )
    ep = client.update_endpoint("svc1", "retrained", description="new")
    assert ep.name == "retrained"
    assert put.call_count == 1
    assert [c.request.method for c in responses.calls] == ["GET", "PUT", "GET"]


@responses.activate
def test_update_endpoint_to_low_drops_the_call_count(client):
    responses.get(f"{SVC}/endpoints/retrained", json=_high())
    responses.put(
        f"{SVC}/endpoints/retrained",
        match=[
            matchers.json_params_matcher(
                {
                    "WebServiceId": "svc1",
                    "EndpointName": "retrained",
                    "Description": "current",
                    "ThrottleLevel": "Low",
                    "PreventUpdate": True,
                }
            )
        ],
    )
    client.update_endpoint("svc1", "retrained", throttle_level="low")
    assert [c.request.method for c in responses.calls] == ["GET", "PUT", "GET"]


@responses.activate
def test_update_endpoint_refuses_nothing_and_bad_values_before_any_request(client):
    with pytest.raises(ConfigurationError, match="nothing to change"):
        client.update_endpoint("svc1", "retrained")
    with pytest.raises(ConfigurationError, match="between 1 and 200"):
        client.update_endpoint("svc1", "retrained", max_concurrent_calls=201)
    with pytest.raises(ConfigurationError, match="'Low' or 'High'"):
        client.update_endpoint("svc1", "retrained", throttle_level="Medium")
    assert len(responses.calls) == 0


@responses.activate
def test_update_endpoint_refuses_calls_on_a_low_endpoint_before_the_put(client):
    responses.get(f"{SVC}/endpoints/retrained", json=_endpoint())  # Low
    with pytest.raises(ConfigurationError, match="'High' only"):
        client.update_endpoint("svc1", "retrained", max_concurrent_calls=10)
    assert [c.request.method for c in responses.calls] == ["GET"]


@responses.activate
def test_update_endpoint_of_a_missing_endpoint_puts_nothing(client):
    responses.get(
        f"{SVC}/endpoints/nosuch",
        status=404,
        json={"error": {"code": "NotFound", "message": "no such endpoint"}},
    )
    with pytest.raises(NotFoundError):
        client.update_endpoint("svc1", "nosuch", description="x")
    assert [c.request.method for c in responses.calls] == ["GET"]


@responses.activate
def test_refresh_reports_304_as_no_change(client):
    responses.get(SVC, json=SERVICE)
    responses.post(
        f"{SVC}/endpoints/retrained/refresh",
        status=304,
        match=[matchers.json_params_matcher({"OverwriteResources": "False"})],
    )
    assert client.refresh_endpoint("svc1", "retrained") is False


@responses.activate
def test_refresh_with_overwrite_sends_the_bool_as_a_string_and_warns(client, caplog):
    responses.get(SVC, json=SERVICE)
    responses.post(
        f"{SVC}/endpoints/retrained/refresh",
        status=200,
        match=[matchers.json_params_matcher({"OverwriteResources": "True"})],
    )
    assert client.refresh_endpoint("svc1", "retrained", overwrite_resources=True) is True
    assert "undone" in caplog.text


@responses.activate
def test_refresh_refuses_the_default_endpoint(client):
    responses.get(SVC, json=SERVICE)
    with pytest.raises(ConfigurationError, match="default endpoint"):
        client.refresh_endpoint("svc1", "default")
    assert [c.request.method for c in responses.calls] == ["GET"]


@responses.activate
def test_delete_endpoint_is_idempotent(client):
    responses.delete(f"{SVC}/endpoints/gone", status=404, json={"error": {"code": "NotFound"}})
    client.delete_endpoint("svc1", "gone")


@responses.activate
def test_delete_endpoint_surfaces_conflicts(client):
    responses.delete(f"{SVC}/endpoints/default", status=409, json={"error": {"code": "Conflict"}})
    with pytest.raises(ConflictError):
        client.delete_endpoint("svc1", "default")


# -- update_trained_model ----------------------------------------------------------------------


def _methods() -> list[str]:
    return [c.request.method for c in responses.calls]


@responses.activate
def test_update_trained_model_patches_then_verifies(client):
    responses.get(SVC, json=SERVICE)
    responses.get(f"{SVC}/endpoints/retrained", json=_endpoint())
    responses.head(NEW_MODEL.url, status=200)
    responses.patch(
        f"{SVC}/endpoints/retrained",
        match=[
            matchers.json_params_matcher(
                {
                    "Resources": [
                        {
                            "Name": RESOURCE,
                            "Location": {
                                "BaseLocation": STORAGE,
                                "RelativeLocation": "models/new.ilearner",
                                "SasBlobToken": NEW_MODEL.sas_token,
                            },
                        }
                    ]
                }
            )
        ],
    )
    # first read after the PATCH still shows the old model, the second the new one
    responses.get(f"{SVC}/endpoints/retrained", json=_endpoint())
    responses.get(f"{SVC}/endpoints/retrained", json=_endpoint(relative="models/new.ilearner"))
    ep = client.update_trained_model("svc1", "retrained", RESOURCE, NEW_MODEL)
    loc = ep.resource(RESOURCE).location
    assert loc is not None
    assert loc.relative_location == "models/new.ilearner"
    assert _methods() == ["GET", "GET", "HEAD", "PATCH", "GET", "GET"]
    head = responses.calls[2].request
    assert "Authorization" not in head.headers
    assert "sig=SIGNATURE" in head.url


@responses.activate
def test_begin_update_trained_model_patches_and_its_poller_verifies(client):
    responses.get(SVC, json=SERVICE)
    responses.get(f"{SVC}/endpoints/retrained", json=_endpoint())
    responses.head(NEW_MODEL.url, status=200)
    responses.patch(f"{SVC}/endpoints/retrained")
    responses.get(f"{SVC}/endpoints/retrained", json=_endpoint())
    responses.get(f"{SVC}/endpoints/retrained", json=_endpoint(relative="models/new.ilearner"))
    poller = client.begin_update_trained_model("svc1", "retrained", RESOURCE, NEW_MODEL)
    assert _methods() == ["GET", "GET", "HEAD", "PATCH"]  # no read before it is waited on
    assert not poller.done() and poller.status() == "InProgress"
    poller.wait(timeout=0)  # one read: still the old model
    assert not poller.done()
    ep = poller.result()
    assert poller.done() and poller.status() == "Succeeded"
    assert ep.resource(RESOURCE).location.relative_location == "models/new.ilearner"
    assert _methods() == ["GET", "GET", "HEAD", "PATCH", "GET", "GET"]


@responses.activate
def test_a_classic_token_resumes_the_reads_with_no_secret_and_sends_nothing_again(client):
    responses.get(SVC, json=SERVICE)
    responses.get(f"{SVC}/endpoints/retrained", json=_endpoint())
    responses.head(NEW_MODEL.url, status=200)
    responses.patch(f"{SVC}/endpoints/retrained")
    token = client.begin_update_trained_model(
        "svc1", "retrained", RESOURCE, NEW_MODEL, verify_timeout=60
    ).continuation_token()
    for secret in ("SIGNATURE", "sig=", "WORKSPACETOKEN", "PRIMARYKEYVALUE"):
        assert secret not in base64.urlsafe_b64decode(token).decode()
    data = decode_token(token, "classic.trained_model")
    assert data["model"] == NEW_MODEL.url and data["timeout"] == 60

    responses.get(f"{SVC}/endpoints/retrained", json=_endpoint(relative="models/new.ilearner"))
    other = ClassicClient("ws1", "ANOTHERTOKEN", poll=PollPolicy.fixed(0))
    ep = other.begin_update_trained_model(continuation_token=token).result()
    assert ep.resource(RESOURCE).location.relative_location == "models/new.ilearner"
    assert _methods() == ["GET", "GET", "HEAD", "PATCH", "GET"]
    assert responses.calls[-1].request.headers["Authorization"] == "Bearer ANOTHERTOKEN"


def test_a_classic_token_of_another_workspace_or_with_a_target_is_refused(client):
    from amlretrain.polling import encode_token

    token = encode_token(
        "classic.trained_model",
        {"workspace_id": "ws2", "web_service_id": "s", "endpoint": "e", "resource": "r",
         "model": "https://a/m.ilearner", "timeout": 1, "deadline": 0},
    )  # fmt: skip
    with pytest.raises(ConfigurationError, match="workspace ws2"):
        client.begin_update_trained_model(continuation_token=token)
    with pytest.raises(ConfigurationError, match="takes no other target"):
        client.begin_update_trained_model("svc1", continuation_token=token)  # type: ignore[call-overload]


@responses.activate
def test_update_trained_model_refuses_the_default_endpoint_before_the_patch(client):
    responses.get(SVC, json=SERVICE)
    with pytest.raises(ConfigurationError, match="default endpoint"):
        client.update_trained_model("svc1", "DEFAULT", RESOURCE, NEW_MODEL)
    assert "PATCH" not in _methods()


@responses.activate
def test_update_trained_model_refuses_an_unknown_resource_name(client):
    responses.get(SVC, json=SERVICE)
    responses.get(f"{SVC}/endpoints/retrained", json=_endpoint())
    with pytest.raises(ConfigurationError, match="case-sensitive"):
        client.update_trained_model("svc1", "retrained", RESOURCE.lower(), NEW_MODEL)
    assert "PATCH" not in _methods()


@responses.activate
def test_update_trained_model_refuses_an_endpoint_without_resources(client):
    responses.get(SVC, json=SERVICE)
    responses.get(f"{SVC}/endpoints/retrained", json={**_endpoint(), "Resources": []})
    with pytest.raises(ConfigurationError, match="training web service"):
        client.update_trained_model("svc1", "retrained", RESOURCE, NEW_MODEL)


@responses.activate
def test_update_trained_model_refuses_an_expired_sas_before_any_request(client):
    expired = NEW_MODEL.with_sas("?sv=2020&se=2001-01-01T00:00:00Z&sig=OLD")
    with pytest.raises(ConfigurationError, match="expired"):
        client.update_trained_model("svc1", "retrained", RESOURCE, expired)
    assert len(responses.calls) == 0


@responses.activate
def test_update_trained_model_refuses_a_blob_that_does_not_exist(client):
    responses.get(SVC, json=SERVICE)
    responses.get(f"{SVC}/endpoints/retrained", json=_endpoint())
    responses.head(NEW_MODEL.url, status=404)
    with pytest.raises(ConfigurationError, match="does not exist"):
        client.update_trained_model("svc1", "retrained", RESOURCE, NEW_MODEL)
    assert "PATCH" not in _methods()


@responses.activate
def test_update_trained_model_uses_the_given_blob_check(client):
    responses.get(SVC, json=SERVICE)
    responses.get(f"{SVC}/endpoints/retrained", json=_endpoint())
    with pytest.raises(ConfigurationError, match="does not exist"):
        client.update_trained_model(
            "svc1", "retrained", RESOURCE, NEW_MODEL, blob_check=lambda ref: False
        )
    assert "HEAD" not in _methods()


@responses.activate
def test_update_trained_model_refuses_a_blob_that_is_not_an_ilearner(client):
    csv = BlobRef(base_location=STORAGE, relative_location="out/scores.csv", sas_token=_sas(1))
    with pytest.raises(ConfigurationError, match="ilearner"):
        client.update_trained_model("svc1", "retrained", RESOURCE, csv)
    assert len(responses.calls) == 0


@responses.activate
def test_update_that_never_shows_the_new_location_fails_verification(client):
    responses.get(SVC, json=SERVICE)
    responses.get(f"{SVC}/endpoints/retrained", json=_endpoint())
    responses.head(NEW_MODEL.url, status=200)
    responses.patch(f"{SVC}/endpoints/retrained")
    with pytest.raises(VerificationFailed) as info:
        client.update_trained_model(
            "svc1", "retrained", RESOURCE, NEW_MODEL, verify_timeout=0, blob_check=None
        )
    assert info.value.expected == NEW_MODEL.url
    assert "SIGNATURE" not in str(info.value)


@responses.activate
def test_patch_errors_are_mapped_with_the_request_id(client):
    responses.get(SVC, json=SERVICE)
    responses.get(f"{SVC}/endpoints/retrained", json=_endpoint())
    responses.head(NEW_MODEL.url, status=200)
    responses.patch(
        f"{SVC}/endpoints/retrained",
        status=500,
        headers={"x-ms-request-id": "patch-rid"},
        body=json.dumps({"error": {"code": "InternalError", "message": "boom"}}),
    )
    with pytest.raises(ServiceError) as info:
        client.update_trained_model("svc1", "retrained", RESOURCE, NEW_MODEL)
    assert (info.value.status, info.value.code) == (500, "InternalError")
    assert info.value.request_id == "patch-rid"


@responses.activate
def test_delete_web_service_is_idempotent(client):
    responses.delete(SVC, status=404, json={"error": {"code": "WebServiceNotFound"}})
    client.delete_web_service("svc1")
    assert responses.calls[0].request.method == "DELETE"


@responses.activate
def test_a_recent_read_of_a_web_service_serves_many_endpoints(client):
    responses.get(f"{WS}/webservices/svc", json={"Id": "svc", "DefaultEndpointName": "default"})
    for _ in range(3):
        assert client.get_web_service("svc", max_age=60).default_endpoint_name == "default"
    assert len(responses.calls) == 1
    client.get_web_service("svc")
    assert len(responses.calls) == 2  # max_age 0 (the default) always reads


@responses.activate
def test_the_workspace_token_may_be_a_key_credential_read_at_request_time():
    from azure.core.credentials import AzureKeyCredential

    responses.get(f"{WS}/webservices", json=[])
    credential = AzureKeyCredential("WORKSPACETOKEN")
    client = ClassicClient("ws1", credential)
    list(client.list_web_services())
    credential.update("ROTATEDTOKEN")
    list(client.list_web_services())
    sent = [call.request.headers["Authorization"] for call in responses.calls]
    assert sent == ["Bearer WORKSPACETOKEN", "Bearer ROTATEDTOKEN"]
    assert "TOKEN" not in repr(client)
    with pytest.raises(ConfigurationError, match="workspace authorization token is required"):
        ClassicClient("ws1", "")
