"""WebServicesClient logic with the azure-mgmt-resource adapter replaced by a fake.

The real adapter (azure-core pipeline, LRO polling, loopback http) is exercised against
the emulator in tests/integration/test_clients_arm.py and in the recorded tests.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

import amlretrain.studio.webservices as arm_module
from amlretrain.errors import ConfigurationError, ConflictError, VerificationFailed
from amlretrain.studio.definition import WebServiceDefinition
from amlretrain.studio.webservices import WebServicesClient

OLD = "https://acct.blob.core.windows.net/models/old.ilearner"
NEW = "https://acct.blob.core.windows.net/models/new.ilearner"
RID = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.MachineLearning/webServices/svc"


def _doc(uri: str = OLD, *, read_only: bool = False, fetched: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "location": "South Central US",
        "properties": {
            "title": "t",
            "readOnly": read_only,
            "packageType": "Graph",
            "assets": {
                "asset1": {
                    "name": "Census Model [trained model]",
                    "type": "Resource",
                    "locationInfo": {"uri": uri},
                }
            },
        },
    }
    if fetched:
        doc["id"] = RID
        doc["name"] = "svc"
        doc["properties"]["provisioningState"] = "Succeeded"
    return doc


class _Poller:
    def __init__(self, on_result: Any = None) -> None:
        self.on_result = on_result

    def wait(self, timeout: float | None = None) -> None:
        pass

    def done(self) -> bool:
        return True

    def status(self) -> str:
        return "Succeeded"

    def result(self) -> None:
        if self.on_result:
            self.on_result()


class FakeAdapter:
    def __init__(self, *args: Any) -> None:
        self.doc = _doc()
        self.calls: list[tuple[str, Any]] = []
        self.apply_patch = True

    def get(self, resource_id: str, api_version: str, params: dict[str, str]) -> Any:
        self.calls.append(("GET", resource_id))
        return copy.deepcopy(self.doc)

    def begin_patch(self, resource_id: str, body: Any, api_version: str, ids: Any) -> Any:
        self.calls.append(("PATCH", body))
        ids.initial = "patch-request-id"

        def apply() -> None:
            if self.apply_patch:
                assets = body["properties"].get("assets", {})
                self.doc["properties"]["assets"].update(copy.deepcopy(assets))

        return _Poller(apply)

    def begin_put(self, resource_id: str, body: Any, api_version: str, ids: Any) -> Any:
        self.calls.append(("PUT", body))
        self.doc = {**_doc(), **copy.deepcopy(body)}
        return _Poller()

    def close(self) -> None:
        pass


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeAdapter:
    adapter = FakeAdapter()
    monkeypatch.setattr(arm_module, "ResourcesAdapter", lambda *a: adapter)
    return adapter


@pytest.fixture
def client(fake: FakeAdapter) -> WebServicesClient:
    return WebServicesClient(object(), "sub")  # type: ignore[arg-type]


def _methods(fake: FakeAdapter) -> list[str]:
    return [m for m, _ in fake.calls]


def test_update_sends_the_minimal_patch_with_package_type_and_verifies(client, fake):
    current = client.get("rg", "svc")
    result = client.update("rg", "svc", current.with_trained_model(NEW))
    patch = next(body for m, body in fake.calls if m == "PATCH")
    assert set(patch) == {"properties"}
    assert patch["properties"]["packageType"] == "Graph"
    assert patch["properties"]["assets"]["asset1"]["locationInfo"]["uri"] == NEW
    assert "provisioningState" not in patch["properties"]
    assert result.trained_models[0].uri == NEW
    assert _methods(fake) == ["GET", "GET", "PATCH", "GET"]


def test_an_empty_update_with_expected_sends_nothing(client, fake):
    current = WebServiceDefinition.from_dict(_doc())
    with pytest.raises(ConfigurationError, match="changes nothing"):
        client.update("rg", "svc", current, expected=current)
    assert fake.calls == []


def test_an_empty_update_without_expected_stops_before_the_patch(client, fake):
    with pytest.raises(ConfigurationError):
        client.update("rg", "svc", WebServiceDefinition.from_dict(_doc()))
    assert "PATCH" not in _methods(fake)


def test_a_read_only_service_is_refused(client, fake):
    fake.doc = _doc(read_only=True)
    new = WebServiceDefinition.from_dict(_doc(NEW, read_only=True))
    with pytest.raises(ConfigurationError, match="read-only"):
        client.update("rg", "svc", new)
    assert "PATCH" not in _methods(fake)


def test_success_that_still_shows_the_old_model_fails_verification(client, fake):
    fake.apply_patch = False
    current = client.get("rg", "svc")
    with pytest.raises(VerificationFailed) as info:
        client.update("rg", "svc", current.with_trained_model(NEW))
    assert info.value.expected == NEW
    assert info.value.actual == OLD
    assert "patch-request-id" in str(info.value)


def test_a_sas_on_the_uri_is_not_required_to_be_echoed(client, fake):
    current = client.get("rg", "svc")
    new = current.with_trained_model(NEW + "?sv=1&se=2099-01-01T00:00:00Z&sig=abc")
    fake.doc["properties"]["assets"]["asset1"]["locationInfo"]["uri"] = OLD
    fake.apply_patch = True
    result = client.update("rg", "svc", new)
    assert result.trained_models[0].uri is not None


def test_expected_that_no_longer_matches_is_a_conflict(client, fake):
    expected = WebServiceDefinition.from_dict(_doc())
    fake.doc = _doc("https://acct.blob.core.windows.net/models/someone-else.ilearner")
    with pytest.raises(ConflictError):
        client.update("rg", "svc", expected.with_trained_model(NEW), expected=expected)
    assert "PATCH" not in _methods(fake)


def test_put_refuses_a_fetched_document_unless_told(client, fake):
    fetched = WebServiceDefinition.from_dict(_doc())
    with pytest.raises(ConfigurationError, match="overwrite-fetched"):
        client.begin_create_or_update("rg", "svc", fetched)
    assert fake.calls == []
    client.create_or_update("rg", "svc", fetched, overwrite_fetched=True)
    put = next(body for m, body in fake.calls if m == "PUT")
    assert "id" not in put and "provisioningState" not in put["properties"]


def test_put_of_an_exported_document_needs_no_consent(client, fake):
    exported = WebServiceDefinition.from_dict(_doc(fetched=False))
    client.create_or_update("rg", "svc", exported)
    assert "PUT" in _methods(fake)


@pytest.mark.parametrize("bad", ["", "a/b", "x?y"])
def test_names_that_would_break_the_url_are_refused(client, bad):
    with pytest.raises(ConfigurationError):
        client.resource_id("rg", bad)


def test_repr_shows_no_credential(client):
    assert "object" not in repr(client)


# -- the live service's answers (API-NOTES 1.3a) through the real azure-core adapter ----------
#
# ``responses`` answers azure-core's requests transport as the recorded live sessions did: a
# small body for PUT and PATCH, the regional operationsStatus documents, a 204 without
# operation headers for a DELETE of a service that does not exist.

ARM = "https://management.azure.com"
OP = f"{ARM}/subscriptions/sub/providers/Microsoft.MachineLearning/locations/southcentralus"
LRO_HEADERS = {
    "Azure-AsyncOperation": f"{OP}/operationsStatus/op1?api-version=2017-01-01",
    "Azure-AsyncOperationPercentComplete": "0",
    "x-ms-request-id": "initial-request-id",
}


def _small(*, put: bool) -> dict[str, Any]:
    props: dict[str, Any] = {"provisioningState": "Provisioning"}
    if put:
        props = {"payloadsInBlobStorage": False, **props}
    return {
        "id": RID,
        "name": "svc",
        "type": "Microsoft.MachineLearning/webServices",
        "location": "South Central US",
        "tags": {},
        "properties": props,
    }


def _status(status: str) -> dict[str, Any]:
    doc = {"id": "/x/operationsStatus/op1", "name": "op1", "status": status}
    return {**doc, "startTime": "2017-04-26T17:08:46.4482096Z", "percentComplete": 1.0}


@pytest.fixture
def live() -> Any:
    import responses

    from amlretrain.credentials import StaticTokenCredential

    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        client = WebServicesClient(StaticTokenCredential("t"), "sub", polling_interval=0)
        yield mock, client
        client.close()


def _methods_sent(mock: Any) -> list[tuple[str, str]]:
    import urllib.parse

    return [(c.request.method, urllib.parse.urlsplit(c.request.url).path) for c in mock.calls]


def test_a_put_answered_with_the_small_body_returns_the_get_after_the_operation(live):
    mock, client = live
    mock.put(f"{ARM}{RID}", status=201, json=_small(put=True), headers=LRO_HEADERS)
    mock.get(f"{OP}/operationsStatus/op1", json=_status("Provisioning"))
    mock.get(f"{OP}/operationsStatus/op1", json=_status("Succeeded"))
    mock.get(f"{ARM}{RID}", json=_doc())
    poller = client.begin_create_or_update(
        "rg", "svc", WebServiceDefinition.from_dict(_doc(fetched=False))
    )
    result = poller.result()
    assert poller.request_id == "initial-request-id"
    assert result is not None and result.trained_models[0].uri == OLD
    assert result.properties is not None and result.properties.provisioning_state == "Succeeded"
    assert [m for m, _ in _methods_sent(mock)] == ["PUT", "GET", "GET", "GET"]
    assert _methods_sent(mock)[-1] == ("GET", RID)


def test_a_put_whose_answer_ends_the_operation_is_still_read_back_by_a_get(live):
    mock, client = live
    done = _small(put=True)
    done["properties"]["provisioningState"] = "Succeeded"  # no operation headers at all
    mock.put(f"{ARM}{RID}", status=200, json=done)
    mock.get(f"{ARM}{RID}", json=_doc())
    result = client.create_or_update(
        "rg", "svc", WebServiceDefinition.from_dict(_doc(fetched=False))
    )
    assert result.trained_models[0].uri == OLD  # from the GET: the PUT's answer has no assets
    assert [m for m, _ in _methods_sent(mock)] == ["PUT", "GET"]


def test_a_patch_answered_with_the_small_body_is_verified_against_the_get_after_it(live):
    mock, client = live
    mock.get(f"{ARM}{RID}", json=_doc())  # the current definition
    mock.patch(f"{ARM}{RID}", status=200, json=_small(put=False), headers=LRO_HEADERS)
    mock.get(f"{OP}/operationsStatus/op1", json=_status("Succeeded"))
    mock.get(f"{ARM}{RID}", json=_doc(NEW))  # after the operation
    current = WebServiceDefinition.from_dict(_doc())
    result = client.update("rg", "svc", current.with_trained_model(NEW))
    assert result.trained_models[0].uri == NEW
    assert [m for m, _ in _methods_sent(mock)] == ["GET", "PATCH", "GET", "GET"]


def test_a_patch_token_resumes_the_wait_and_the_verification_on_another_client(live):
    import base64

    from amlretrain.credentials import StaticTokenCredential
    from amlretrain.polling import PollPolicy, decode_token

    mock, _ = live
    slow = WebServicesClient(StaticTokenCredential("t"), "sub", polling=PollPolicy.fixed(60))
    mock.patch(f"{ARM}{RID}", status=200, json=_small(put=False), headers=LRO_HEADERS)
    current = WebServiceDefinition.from_dict(_doc())
    poller = slow.begin_update(
        "rg", "svc", current.with_trained_model(NEW + "?sv=1&sig=SECRETSIG"), expected=current,
        expected_is_fresh=True,
    )  # fmt: skip
    token = poller.continuation_token()
    data = decode_token(token, "arm")
    assert data["models"] == {"asset1": NEW} and data["request_id"] == "initial-request-id"
    for text in (base64.urlsafe_b64decode(token), base64.b64decode(data["lro"])):
        assert b"SECRETSIG" not in text and b"sig=" not in text and b"Bearer" not in text

    mock.get(f"{OP}/operationsStatus/op1", json=_status("Succeeded"))
    mock.get(f"{ARM}{RID}", json=_doc(NEW))
    again = WebServicesClient(StaticTokenCredential("t2"), "sub", polling_interval=0)
    resumed = again.begin_update("rg", "svc", None, continuation_token=token)
    assert resumed.request_id == "initial-request-id"
    result = resumed.result()
    assert result is not None and result.trained_models[0].uri == NEW
    sent = [(c.request.method, c.request.headers["Authorization"]) for c in mock.calls]
    assert [m for m, _ in sent].count("PATCH") == 1  # resuming sends no second PATCH
    # the resumed client waited and verified with its own credential: GETs only. (The first
    # poller polls once at once, azure-core's way, in its own thread: on a busy machine that
    # read can come after the resumed client's, so the order of the two is not asserted.)
    assert [m for m, auth in sent if auth == "Bearer t2"].count("GET") >= 2
    assert {m for m, auth in sent if auth == "Bearer t2"} == {"GET"}
    slow.close()
    again.close()


def test_a_token_resumes_only_its_own_operation_on_its_own_service():
    from amlretrain.credentials import StaticTokenCredential
    from amlretrain.polling import encode_token

    client = WebServicesClient(StaticTokenCredential("t"), "sub")
    token = encode_token("arm", {"operation": "PUT", "resource_id": RID, "models": {}})
    with pytest.raises(ConfigurationError, match="resumes a 'PUT', not a DELETE"):
        client.begin_delete("rg", "svc", continuation_token=token)
    with pytest.raises(ConfigurationError, match="not of"):
        client.begin_create_or_update("rg", "other", None, continuation_token=token)
    with pytest.raises(ConfigurationError, match=r"kind 'bes\.job'"):
        client.begin_delete("rg", "svc", continuation_token=encode_token("bes.job", {}))
    client.close()


def test_a_delete_of_a_service_that_does_not_exist_is_204_without_headers_and_success(live):
    mock, client = live
    mock.delete(f"{ARM}{RID}", status=204)
    poller = client.begin_delete("rg", "svc")
    assert poller.done() and poller.status() == "Succeeded"
    assert poller.result() is None
    assert _methods_sent(mock) == [("DELETE", RID)]


def test_the_swagger_form_of_a_delete_202_with_both_headers_is_followed_to_success(live):
    mock, client = live
    headers = {**LRO_HEADERS, "Location": f"{OP}/operationresults/op1?api-version=2017-01-01"}
    mock.delete(f"{ARM}{RID}", status=202, headers=headers)
    mock.get(f"{OP}/operationsStatus/op1", json=_status("Succeeded"))
    client.delete("rg", "svc")
    assert [m for m, _ in _methods_sent(mock)][:2] == ["DELETE", "GET"]


def test_a_delete_answered_404_is_success(live):
    mock, client = live
    error = {"error": {"code": "NotFound", "message": "The specified resource was not found."}}
    mock.delete(f"{ARM}{RID}", status=404, json=error)
    client.delete("rg", "svc")


def test_a_put_from_a_blob_sends_payloads_in_blob_storage_and_the_location_only(client, fake):
    from amlretrain.studio.webservices import split_payloads

    small, graph = split_payloads(WebServiceDefinition.from_dict(_doc(fetched=False)))
    assert set(graph) == {"assets"}
    sas = "https://acct.blob.core.windows.net/payloads/p.json?sv=1&sp=r&sig=abc"
    client.create_from_blob("rg", "svc", small, sas)
    put = next(body for m, body in fake.calls if m == "PUT")
    assert put["properties"]["payloadsInBlobStorage"] is True
    assert put["properties"]["payloadsLocation"] == {"uri": sas}
    assert not {"assets", "package", "input", "output"} & set(put["properties"])


def test_split_payloads_keeps_the_graph_spelled_as_written_and_drops_the_blob_flags():
    from amlretrain.studio.webservices import split_payloads

    doc = _doc(fetched=False)
    doc["properties"]["Package"] = {"Nodes": {}}
    doc["properties"]["payloadsInBlobStorage"] = True
    doc["properties"]["payloadsLocation"] = {"uri": "https://a/b/c"}
    small, graph = split_payloads(WebServiceDefinition.from_dict(doc, validate=False))
    assert set(graph) == {"assets", "Package"} and graph["Package"] == {"Nodes": {}}
    assert set(small.to_dict()["properties"]) == {"title", "readOnly", "packageType"}
