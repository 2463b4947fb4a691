"""The emulated ARM provider Microsoft.MachineLearning/webServices, driven with plain requests."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
import requests

from amlretrain.emulator import Emulator, Faults
from amlretrain.storage import BlobStore, parse_connection_string
from tests.integration.conftest import PAGE_SIZE, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

API = "2017-01-01"
PROVIDER = "/providers/Microsoft.MachineLearning"


def arm_headers(emu: Emulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.info.arm_token}"}


def rg_url(emu: Emulator, rg: str = "arm-tests") -> str:
    return f"{emu.info.arm_base_url}/subscriptions/{emu.info.subscription_id}/resourceGroups/{rg}"


def ws_url(emu: Emulator, name: str, rg: str = "arm-tests") -> str:
    return f"{rg_url(emu, rg)}{PROVIDER}/webServices/{name}"


def body(title: str = "t", **props: Any) -> dict[str, Any]:
    return {
        "location": "South Central US",
        "tags": {"k": "v"},
        "properties": {
            "title": title,
            "packageType": "Graph",
            "storageAccount": {"name": "acct", "key": "storage-secret"},
            "commitmentPlan": {"id": "/subscriptions/x/commitmentPlans/p"},
            **props,
        },
    }


def wait_operation(
    http: requests.Session, emu: Emulator, resp: requests.Response
) -> dict[str, Any]:
    url = resp.headers["Azure-AsyncOperation"]

    def done() -> dict[str, Any] | None:
        doc: dict[str, Any] = http.get(url, headers=arm_headers(emu)).json()
        return doc if doc["status"] != "Provisioning" else None

    result: dict[str, Any] = wait_for(done)
    return result


def create(http: requests.Session, emu: Emulator, name: str, **props: Any) -> str:
    url = ws_url(emu, name)
    resp = http.put(url, params={"api-version": API}, json=body(**props), headers=arm_headers(emu))
    assert resp.status_code == 201, resp.text
    assert wait_operation(http, emu, resp)["status"] == "Succeeded"
    return url


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_a_missing_or_malformed_bearer_token_is_401_authentication_failed(
    emulator: Emulator, http: requests.Session
) -> None:
    url = ws_url(emulator, "census-predictive", emulator.info.resource_group)
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}):
        resp = http.get(url, params={"api-version": API}, headers=headers)
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "AuthenticationFailed"
    resp = http.get(url, params={"api-version": API}, headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_unknown_or_missing_api_version_is_400(emulator: Emulator, http: requests.Session) -> None:
    url = ws_url(emulator, "census-predictive", emulator.info.resource_group)
    resp = http.get(url, params={"api-version": "2020-01-01"}, headers=arm_headers(emulator))
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "InvalidApiVersionParameter"
    resp = http.get(url, headers=arm_headers(emulator))
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "MissingApiVersionParameter"
    preview = http.get(
        url, params={"api-version": "2016-05-01-preview"}, headers=arm_headers(emulator)
    )
    assert preview.status_code == 200


def test_every_response_carries_a_guid_request_id(
    emulator: Emulator, http: requests.Session
) -> None:
    url = ws_url(emulator, "census-predictive", emulator.info.resource_group)
    for resp in (
        http.get(url, params={"api-version": API}, headers=arm_headers(emulator)),
        http.get(url, params={"api-version": API}),
        http.get(emulator.info.base_url + "/nothing/here"),
    ):
        uuid.UUID(resp.headers["x-ms-request-id"])


def test_get_hides_keys_storage_key_and_commitment_plan(
    emulator: Emulator, http: requests.Session
) -> None:
    url = create(http, emulator, unique("hidden"))
    resp = http.get(url, params={"api-version": API}, headers=arm_headers(emulator))
    props = resp.json()["properties"]
    assert "keys" not in props
    assert "commitmentPlan" not in props
    assert props["storageAccount"] == {"name": "acct"}
    assert props["provisioningState"] == "Succeeded"
    assert "storage-secret" not in resp.text


def test_seeded_service_is_found_by_its_arm_id(emulator: Emulator, http: requests.Session) -> None:
    url = emulator.info.arm_base_url + str(emulator.info.arm_service_id)
    resp = http.get(url, params={"api-version": API}, headers=arm_headers(emulator))
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["name"] == "census-predictive"
    assert doc["type"] == "Microsoft.MachineLearning/webServices"
    uri = doc["properties"]["assets"]["asset1"]["locationInfo"]["uri"]
    assert uri.split("?")[0].endswith("models/initial.ilearner")
    assert "sig=" in uri


def test_put_creates_with_201_then_updates_with_200_as_long_running_operations(
    emulator: Emulator, http: requests.Session
) -> None:
    name = unique("put")
    url = ws_url(emulator, name)
    resp = http.put(url, params={"api-version": API}, json=body(), headers=arm_headers(emulator))
    assert resp.status_code == 201
    assert resp.json() == {  # the live service's small body (API-NOTES 1.3a), no definition
        "id": url.removeprefix(emulator.info.arm_base_url),
        "name": name,
        "type": "Microsoft.MachineLearning/webServices",
        "location": "South Central US",
        "tags": {"k": "v"},
        "properties": {"payloadsInBlobStorage": False, "provisioningState": "Provisioning"},
    }
    assert "Location" not in resp.headers
    op_url = resp.headers["Azure-AsyncOperation"]
    assert op_url.startswith(emulator.info.base_url + "/subscriptions/")
    assert (
        "/providers/Microsoft.MachineLearning/locations/southcentralus/operationsStatus/" in op_url
    )
    assert op_url.endswith("?api-version=2017-01-01")
    first = http.get(op_url, headers=arm_headers(emulator)).json()
    assert first["status"] == "Provisioning"
    assert set(first) >= {"id", "name", "status", "startTime", "percentComplete"}
    during = http.get(url, params={"api-version": API}, headers=arm_headers(emulator)).json()
    assert during["properties"]["provisioningState"] == "Provisioning"
    final = wait_operation(http, emulator, resp)
    assert final["status"] == "Succeeded"
    assert final["percentComplete"] == 1.0
    assert "endTime" in final
    created = http.get(url, params={"api-version": API}, headers=arm_headers(emulator)).json()
    assert created["properties"]["provisioningState"] == "Succeeded"

    update = http.put(
        url, params={"api-version": API}, json=body("second"), headers=arm_headers(emulator)
    )
    assert update.status_code == 200
    assert update.json()["properties"] == {
        "payloadsInBlobStorage": False,
        "provisioningState": "Provisioning",
    }
    wait_operation(http, emulator, update)
    after = http.get(url, params={"api-version": API}, headers=arm_headers(emulator)).json()
    assert after["properties"]["title"] == "second"
    assert after["properties"]["createdOn"] == created["properties"]["createdOn"]


def test_put_needs_package_type_and_location(emulator: Emulator, http: requests.Session) -> None:
    url = ws_url(emulator, unique("bad"))
    no_type = body()
    del no_type["properties"]["packageType"]
    resp = http.put(url, params={"api-version": API}, json=no_type, headers=arm_headers(emulator))
    assert resp.status_code == 400
    no_location = body()
    del no_location["location"]
    resp = http.put(
        url, params={"api-version": API}, json=no_location, headers=arm_headers(emulator)
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "LocationRequired"


def test_patch_merges_recursively_keys_included(emulator: Emulator, http: requests.Session) -> None:
    url = create(
        http,
        emulator,
        unique("patch"),
        description="old",
        keys={"primary": "p1", "secondary": "s1"},
    )
    before = http.get(url, params={"api-version": API}, headers=arm_headers(emulator)).json()
    patch = {"properties": {"packageType": "Graph", "title": "new", "keys": {"primary": "p2"}}}
    resp = http.patch(url, params={"api-version": API}, json=patch, headers=arm_headers(emulator))
    assert resp.status_code == 200
    assert "Azure-AsyncOperation" in resp.headers
    assert wait_operation(http, emulator, resp)["status"] == "Succeeded"
    after = http.get(url, params={"api-version": API}, headers=arm_headers(emulator)).json()
    assert after["properties"]["title"] == "new"
    assert after["properties"]["description"] == "old"
    assert after["properties"]["modifiedOn"] > before["properties"]["modifiedOn"]
    keys = http.get(url + "/listKeys", params={"api-version": API}, headers=arm_headers(emulator))
    assert keys.json() == {"primary": "p2", "secondary": "s1"}


def test_patch_without_package_type_is_400(emulator: Emulator, http: requests.Session) -> None:
    url = ws_url(emulator, "census-predictive", emulator.info.resource_group)
    resp = http.patch(
        url,
        params={"api-version": API},
        json={"properties": {"title": "x"}},
        headers=arm_headers(emulator),
    )
    assert resp.status_code == 400
    assert "packageType" in resp.json()["error"]["message"]


def test_patch_of_a_missing_service_is_404(emulator: Emulator, http: requests.Session) -> None:
    resp = http.patch(
        ws_url(emulator, unique("missing")),
        params={"api-version": API},
        json={"properties": {"packageType": "Graph"}},
        headers=arm_headers(emulator),
    )
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "NotFound"


def test_a_read_only_service_refuses_patch_and_put(
    emulator: Emulator, http: requests.Session
) -> None:
    url = create(http, emulator, unique("ro"), readOnly=True)
    patch = http.patch(
        url,
        params={"api-version": API},
        json={"properties": {"packageType": "Graph", "readOnly": False}},
        headers=arm_headers(emulator),
    )
    assert patch.status_code == 409
    assert "read-only" in patch.json()["error"]["message"]
    put = http.put(url, params={"api-version": API}, json=body(), headers=arm_headers(emulator))
    assert put.status_code == 409
    delete = http.delete(url, params={"api-version": API}, headers=arm_headers(emulator))
    assert delete.status_code == 202


def test_delete_is_202_with_both_headers_and_of_a_missing_service_204_without(
    emulator: Emulator, http: requests.Session
) -> None:
    url = create(http, emulator, unique("del"))
    resp = http.delete(url, params={"api-version": API}, headers=arm_headers(emulator))
    assert resp.status_code == 202
    assert "/operationsStatus/" in resp.headers["Azure-AsyncOperation"]
    location = resp.headers["Location"]
    assert "/operationresults/" in location
    assert wait_operation(http, emulator, resp)["status"] == "Succeeded"
    assert http.get(location, headers=arm_headers(emulator)).status_code == 204
    gone = http.get(url, params={"api-version": API}, headers=arm_headers(emulator))
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "NotFound"
    again = http.delete(url, params={"api-version": API}, headers=arm_headers(emulator))
    assert again.status_code == 204  # the live service (API-NOTES 1.3a); the swagger says 202
    assert again.content == b""
    assert "Azure-AsyncOperation" not in again.headers
    assert "Location" not in again.headers


def test_list_keys_is_a_get_returning_primary_and_secondary(
    emulator: Emulator, http: requests.Session
) -> None:
    url = ws_url(emulator, "census-predictive", emulator.info.resource_group) + "/listKeys"
    resp = http.get(url, params={"api-version": API}, headers=arm_headers(emulator))
    assert resp.status_code == 200
    assert resp.json()["primary"] == emulator.info.arm_api_key
    assert set(resp.json()) == {"primary", "secondary"}
    post = http.post(url, params={"api-version": API}, headers=arm_headers(emulator))
    assert post.status_code == 405


def collect(
    http: requests.Session, emu: Emulator, url: str, pages_seen: list[int] | None = None
) -> list[dict[str, Any]]:
    """Every item of a paged ARM list; ``pages_seen`` gets the number of pages read."""
    items: list[dict[str, Any]] = []
    next_url: str | None = url + "?api-version=" + API
    pages = 0
    while next_url:
        page = http.get(next_url, headers=arm_headers(emu)).json()
        assert len(page["value"]) <= PAGE_SIZE
        items.extend(page["value"])
        next_url = page.get("nextLink")
        if next_url:
            assert next_url.startswith(emu.info.base_url + "/subscriptions/")
        pages += 1
    if pages_seen is not None:
        pages_seen.append(pages)
    return items


def test_lists_are_paged_with_absolute_next_links_and_sparse_items(
    emulator: Emulator, http: requests.Session
) -> None:
    rg = unique("list")
    names = []
    for i in range(PAGE_SIZE + 2):
        name = f"svc{i}"
        url = ws_url(emulator, name, rg)
        resp = http.put(
            url,
            params={"api-version": API},
            json=body(
                assets={"a": {"name": "x", "type": "Module", "locationInfo": {"uri": "aml://m"}}}
            ),
            headers=arm_headers(emulator),
        )
        assert resp.status_code == 201
        names.append(name)
    pages: list[int] = []
    items = collect(http, emulator, f"{rg_url(emulator, rg)}{PROVIDER}/webServices", pages)
    assert [i["name"] for i in items] == names
    assert pages == [2], "PAGE_SIZE + 2 services: a full page, then the rest"
    assert all("assets" not in i["properties"] for i in items)
    assert all("keys" not in i["properties"] for i in items)
    assert all(i["properties"]["packageType"] == "Graph" for i in items)
    sub_items = collect(
        http,
        emulator,
        f"{emulator.info.arm_base_url}/subscriptions/{emulator.info.subscription_id}{PROVIDER}/webServices",
    )
    assert {i["name"] for i in sub_items} >= {*names, "census-predictive"}


def test_regional_get_needs_create_regional_blob_first(
    emulator: Emulator, http: requests.Session
) -> None:
    url = create(http, emulator, unique("region"))
    home = http.get(
        url,
        params={"api-version": API, "region": "South Central US"},
        headers=arm_headers(emulator),
    )
    assert home.status_code == 200
    resp = http.get(
        url, params={"api-version": API, "region": "West Europe"}, headers=arm_headers(emulator)
    )
    assert resp.status_code == 404
    err = resp.json()["error"]
    assert err["code"] == "NotFound"
    assert err["details"][0]["code"] == "PerRegionPayloadNotFound"
    missing = http.post(
        url + "/CreateRegionalBlob", params={"api-version": API}, headers=arm_headers(emulator)
    )
    assert missing.status_code == 400
    post = http.post(
        url + "/CreateRegionalBlob",
        params={"api-version": API, "region": "West Europe"},
        headers=arm_headers(emulator),
    )
    assert post.status_code == 202
    assert wait_operation(http, emulator, post)["status"] == "Succeeded"
    resp = http.get(
        url, params={"api-version": API, "region": "westeurope"}, headers=arm_headers(emulator)
    )
    assert resp.status_code == 200


def test_operations_list(emulator: Emulator, http: requests.Session) -> None:
    resp = http.get(
        f"{emulator.info.arm_base_url}{PROVIDER}/operations",
        params={"api-version": API},
        headers=arm_headers(emulator),
    )
    assert resp.status_code == 200
    assert all("name" in op and "display" in op for op in resp.json()["value"])


def test_a_failed_operation_leaves_the_resource_unchanged(
    emulator: Emulator, http: requests.Session, faults: Faults
) -> None:
    url = create(http, emulator, unique("fail"), title="kept")
    faults.add(route="arm.patch", kind="lro_fail", message="boom")
    resp = http.patch(
        url,
        params={"api-version": API},
        json={"properties": {"packageType": "Graph", "title": "lost"}},
        headers=arm_headers(emulator),
    )
    assert resp.status_code == 200
    final = wait_operation(http, emulator, resp)
    assert final["status"] == "Failed"
    assert final["error"] == {"code": "InternalServerError", "message": "boom"}
    doc = http.get(url, params={"api-version": API}, headers=arm_headers(emulator)).json()
    assert doc["properties"]["title"] == "kept"
    assert doc["properties"]["provisioningState"] == "Succeeded"


def test_a_failed_create_leaves_nothing_behind(
    emulator: Emulator, http: requests.Session, faults: Faults
) -> None:
    faults.add(route="arm.put", kind="lro_fail")
    url = ws_url(emulator, unique("failcreate"))
    resp = http.put(url, params={"api-version": API}, json=body(), headers=arm_headers(emulator))
    assert resp.status_code == 201
    assert wait_operation(http, emulator, resp)["status"] == "Failed"
    assert (
        http.get(url, params={"api-version": API}, headers=arm_headers(emulator)).status_code == 404
    )


def test_paths_are_case_insensitive_like_arm(emulator: Emulator, http: requests.Session) -> None:
    url = ws_url(emulator, "census-predictive", emulator.info.resource_group)
    lowered = url.replace("resourceGroups", "resourcegroups").replace("webServices", "webservices")
    resp = http.get(lowered, params={"api-version": API}, headers=arm_headers(emulator))
    assert resp.status_code == 200


def test_the_seeded_definition_round_trips_through_put(
    emulator: Emulator, http: requests.Session
) -> None:
    seeded = http.get(
        ws_url(emulator, "census-predictive", emulator.info.resource_group),
        params={"api-version": API},
        headers=arm_headers(emulator),
    ).json()
    copy_body = copy.deepcopy(seeded)
    url = create(http, emulator, unique("copy"))
    resp = http.put(url, params={"api-version": API}, json=copy_body, headers=arm_headers(emulator))
    assert resp.status_code == 200
    wait_operation(http, emulator, resp)
    got = http.get(url, params={"api-version": API}, headers=arm_headers(emulator)).json()
    assert got["properties"]["assets"] == seeded["properties"]["assets"]
    assert got["properties"]["package"] == seeded["properties"]["package"]


def test_location_reads_back_as_the_display_name_and_operations_use_the_normalized_one(
    emulator: Emulator, http: requests.Session
) -> None:
    name = unique("loc")
    url = ws_url(emulator, name)
    sent = body()
    sent["location"] = "southcentralus"
    resp = http.put(url, params={"api-version": API}, json=sent, headers=arm_headers(emulator))
    assert resp.status_code == 201
    assert resp.json()["location"] == "South Central US"
    assert "/locations/southcentralus/operationsStatus/" in resp.headers["Azure-AsyncOperation"]
    wait_operation(http, emulator, resp)
    got = http.get(url, params={"api-version": API}, headers=arm_headers(emulator)).json()
    assert got["location"] == "South Central US"
    patch = {"location": "westeurope", "properties": {"packageType": "Graph", "title": "x"}}
    resp = http.patch(url, params={"api-version": API}, json=patch, headers=arm_headers(emulator))
    assert resp.json()["location"] == "South Central US"  # a PATCH does not move a service


def test_a_missing_service_is_404_web_service_not_found(
    emulator: Emulator, http: requests.Session
) -> None:
    name = unique("nowhere")
    expected = {
        "error": {
            "code": "NotFound",
            "message": "The specified resource was not found.",
            "details": [
                {
                    "code": "WebServiceNotFound",
                    "message": f"No Web Service could be found with the provided name: {name}.",
                }
            ],
        }
    }
    url = ws_url(emulator, name)
    for resp in (
        http.get(url, params={"api-version": API}, headers=arm_headers(emulator)),
        http.get(url + "/listKeys", params={"api-version": API}, headers=arm_headers(emulator)),
    ):
        assert resp.status_code == 404
        assert resp.json() == expected


def test_patch_answers_the_small_body_and_drops_empty_members(
    emulator: Emulator, http: requests.Session
) -> None:
    url = create(http, emulator, unique("empty"), parameters={}, description="d")
    before = http.get(url, params={"api-version": API}, headers=arm_headers(emulator)).json()
    assert before["properties"]["parameters"] == {}
    patch = {"properties": {"packageType": "Graph", "diagnostics": {"level": "All"}}}
    resp = http.patch(url, params={"api-version": API}, json=patch, headers=arm_headers(emulator))
    assert resp.status_code == 200
    assert set(resp.json()) == {"id", "name", "type", "location", "tags", "properties"}
    assert resp.json()["properties"] == {"provisioningState": "Provisioning"}
    assert "Location" not in resp.headers
    wait_operation(http, emulator, resp)
    after = http.get(url, params={"api-version": API}, headers=arm_headers(emulator)).json()
    assert "parameters" not in after["properties"]
    assert after["properties"]["diagnostics"] == {"level": "All"}
    assert after["properties"]["description"] == "d"
    assert after["tags"] == {"k": "v"}


def _payloads_blob(emu: Emulator, payloads: dict[str, Any], *, sas: bool = True) -> str:
    store = BlobStore.from_connection_string(emu.info.storage_connection_string)
    ref = store.upload(
        json.dumps(payloads).encode(), container="payloads", blob_name=unique("p") + ".json"
    )
    return store.sas(ref, expires_in=timedelta(hours=1)).sas_url if sas else ref.url


def test_a_put_with_its_graph_in_a_blob_reads_the_blob_and_answers_it_inline(
    emulator: Emulator, http: requests.Session
) -> None:
    graph = {
        "Assets": {"a1": {"Name": "Model [trained model]", "Type": "Resource",
                          "LocationInfo": {"Uri": "https://x.blob.core.windows.net/m/a.ilearner"}}},
        "Package": {"Nodes": {"n1": {"AssetId": "a1", "Parameters": {
                                "k": {"Value": "v", "CertificateThumbprint": ""}}}},
                    "Edges": [{"SourceNodeId": "n0", "TargetNodeId": "n1"}],
                    "GraphParameters": {}},
        "ExampleRequest": {"Inputs": {"input1": [["a"]]}, "GlobalParameters": None},
        "Parameters": {},
    }  # fmt: skip
    url = ws_url(emulator, unique("blob"))
    sent = body()
    sent["properties"]["payloadsInBlobStorage"] = True
    sent["properties"]["PayloadsLocation"] = {"uri": _payloads_blob(emulator, graph)}
    resp = http.put(url, params={"api-version": API}, json=sent, headers=arm_headers(emulator))
    assert resp.status_code == 201, resp.text
    assert resp.json()["properties"]["payloadsInBlobStorage"] is False
    wait_operation(http, emulator, resp)
    props = http.get(url, params={"api-version": API}, headers=arm_headers(emulator)).json()[
        "properties"
    ]
    assert props["payloadsInBlobStorage"] is False
    assert not {k for k in props if k.lower() == "payloadslocation"}
    assert props["assets"] == graph["Assets"]
    assert props["exampleRequest"] == graph["ExampleRequest"]
    assert props["parameters"] == {}
    assert props["package"] == {
        "nodes": {"n1": {"assetId": "a1", "parameters": {
            "k": {"value": "v", "certificateThumbprint": ""}}}},
        "edges": [{"SourceNodeId": "n0", "TargetNodeId": "n1"}],
        "graphParameters": {},
    }  # fmt: skip


def test_a_payloads_blob_that_cannot_be_read_is_400(
    emulator: Emulator, http: requests.Session
) -> None:
    url = ws_url(emulator, unique("noblob"))
    for location in (
        None,
        {"uri": "https://example.invalid/c/p.json?sig=x"},
        {"uri": _payloads_blob(emulator, {"Assets": {}}).replace(".json", "-missing.json")},
        {"uri": _payloads_blob(emulator, {"Assets": {}}, sas=False)},
    ):
        sent = body()
        sent["properties"]["payloadsInBlobStorage"] = True
        if location is not None:
            sent["properties"]["payloadsLocation"] = location
        resp = http.put(url, params={"api-version": API}, json=sent, headers=arm_headers(emulator))
        assert resp.status_code == 400, location
        assert (
            http.get(url, params={"api-version": API}, headers=arm_headers(emulator)).status_code
            == 404
        )


def test_a_payloads_blob_without_a_sas_is_read_with_the_services_storage_key(
    emulator: Emulator, http: requests.Session
) -> None:
    url = ws_url(emulator, unique("keyblob"))
    sent = body()
    account = parse_connection_string(emulator.info.storage_connection_string)
    sent["properties"]["storageAccount"] = {
        "name": emulator.info.storage_account,
        "key": account["AccountKey"],
    }
    sent["properties"]["payloadsInBlobStorage"] = True
    plain = _payloads_blob(emulator, {"Parameters": {"p": {"value": 1}}}, sas=False)
    sent["properties"]["payloadsLocation"] = {"uri": plain}
    resp = http.put(url, params={"api-version": API}, json=sent, headers=arm_headers(emulator))
    assert resp.status_code == 201, resp.text
    wait_operation(http, emulator, resp)
    got = http.get(url, params={"api-version": API}, headers=arm_headers(emulator)).json()
    assert got["properties"]["parameters"] == {"p": {"value": 1}}
