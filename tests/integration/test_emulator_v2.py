"""The emulated Azure ML v2 control plane (V2-NOTES 1-4), driven with plain requests."""

from __future__ import annotations

import pytest
import requests

from amlretrain.emulator import Emulator
from tests.integration.v2support import (
    API,
    dep_url,
    ep_url,
    headers,
    keys,
    make_endpoint,
    put_deployment,
    put_endpoint,
    score,
    set_traffic,
    slow_operations,
    unique,
    wait_location,
    wait_op,
    ws_url,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_api_version_and_bearer_are_checked_as_arm_does(
    emulator: Emulator, http: requests.Session
) -> None:
    url = ep_url(emulator, "census-v2")
    assert http.get(url, headers=headers(emulator)).json()["error"]["code"] == (
        "MissingApiVersionParameter"
    )
    resp = http.get(url, params={"api-version": "2017-01-01"}, headers=headers(emulator))
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "InvalidApiVersionParameter"
    assert http.get(url, params=API).status_code == 401
    resp = http.get(url, params=API, headers={"Authorization": "Bearer nope"})
    assert resp.json()["error"]["code"] == "InvalidAuthenticationToken"
    other = url.replace(str(emulator.info.v2_workspace), "no-such-ws")
    assert http.get(other, params=API, headers=headers(emulator)).status_code == 404


def test_the_seeded_endpoint_serves_blue_with_all_the_traffic(
    emulator: Emulator, http: requests.Session
) -> None:
    ep = http.get(ep_url(emulator, "census-v2"), params=API, headers=headers(emulator)).json()
    props = ep["properties"]
    assert props["provisioningState"] == "Succeeded"
    assert props["authMode"] == "Key" and props["traffic"] == {"blue": 100}
    assert props["scoringUri"].startswith(emulator.info.base_url)
    assert ep["location"] == "eastus" and ep["systemData"]["createdAt"]
    dep = http.get(dep_url(emulator, "census-v2", "blue"), params=API, headers=headers(emulator))
    assert dep.json()["properties"]["provisioningState"] == "Succeeded"
    assert score(http, emulator, "census-v2").status_code == 200


def test_an_endpoint_create_is_a_long_running_operation(
    emulator: Emulator, http: requests.Session
) -> None:
    name = unique()
    with slow_operations(emulator):
        resp = put_endpoint(http, emulator, name)
        assert resp.status_code == 201
        assert resp.json()["properties"]["provisioningState"] == "Creating"
        assert resp.headers["x-ms-async-operation-timeout"]
        extra = resp.json()["properties"]["properties"]
        assert extra["AzureAsyncOperationUri"] == resp.headers["Azure-AsyncOperation"]
        op = http.get(resp.headers["Azure-AsyncOperation"], headers=headers(emulator)).json()
        assert op["status"] == "InProgress"
        got = http.get(ep_url(emulator, name), params=API, headers=headers(emulator)).json()
        assert got["properties"]["provisioningState"] == "Creating"
    assert wait_op(http, emulator, resp)["status"] == "Succeeded"
    got = http.get(ep_url(emulator, name), params=API, headers=headers(emulator)).json()
    assert got["properties"]["provisioningState"] == "Succeeded"
    update = put_endpoint(http, emulator, name, description="again")
    assert update.status_code == 200
    assert update.json()["properties"]["provisioningState"] == "Updating"
    assert wait_op(http, emulator, update)["status"] == "Succeeded"


def test_every_write_is_409_while_the_endpoint_is_updating(
    emulator: Emulator, http: requests.Session
) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    with slow_operations(emulator):
        first = put_endpoint(http, emulator, ep, traffic={"blue": 100})
        assert first.status_code == 200
        again = put_endpoint(http, emulator, ep, traffic={"blue": 100})
        assert again.status_code == 409 and again.json()["error"]["code"] == "Conflict"
        dep = put_deployment(http, emulator, ep, "green")
        assert dep.status_code == 409
        assert "Cannot create a deployment in endpoint" in dep.json()["error"]["message"]
        patch = http.patch(ep_url(emulator, ep), params=API, headers=headers(emulator), json={})
        assert patch.status_code == 409
        assert (
            http.delete(ep_url(emulator, ep), params=API, headers=headers(emulator)).status_code
            == 409
        )
    assert wait_op(http, emulator, first)["status"] == "Succeeded"


def test_a_deployment_that_is_updating_refuses_another_write(
    emulator: Emulator, http: requests.Session
) -> None:
    ep = make_endpoint(http, emulator)
    with slow_operations(emulator):
        assert put_deployment(http, emulator, ep, "blue").status_code == 200
        assert put_deployment(http, emulator, ep, "blue").status_code == 409
        assert put_endpoint(http, emulator, ep).status_code == 409  # 3.4: the whole endpoint
        patch = http.patch(
            dep_url(emulator, ep, "blue"), params=API, headers=headers(emulator), json={"tags": {}}
        )
        assert patch.status_code == 409


def test_lists_page_with_next_link(emulator: Emulator, http: requests.Session) -> None:
    for _ in range(3):  # with the seeded one, more than a page of 3 whatever ran before
        make_endpoint(http, emulator, deployments=())
    url: str | None = ws_url(emulator) + "/onlineEndpoints?api-version=2024-04-01"
    names: list[str] = []
    pages = 0
    while url:
        page = http.get(url, headers=headers(emulator)).json()
        assert len(page["value"]) <= 3
        names += [e["name"] for e in page["value"]]
        url = page["nextLink"]
        pages += 1
    assert pages >= 2 and "census-v2" in names and len(names) == len(set(names))


@pytest.mark.parametrize(
    ("props", "rule"),
    [
        ({"traffic": {"blue": 60}}, "T1"),
        ({"traffic": {"blue": 60, "green": 60}}, "T1"),
        ({"traffic": {"nobody": 100}}, "do not exist"),
        ({"traffic": {"blue": 100}, "mirrorTraffic": {"green": 60}}, "T2"),
        ({"traffic": {"blue": 100}, "mirrorTraffic": {"blue": 10}}, "T4"),
    ],
)
def test_traffic_rules_are_enforced(
    emulator: Emulator, http: requests.Session, props: dict[str, object], rule: str
) -> None:
    ep = make_endpoint(http, emulator, deployments=("blue", "green"))
    resp = put_endpoint(http, emulator, ep, **props)
    assert resp.status_code == 400, resp.text
    assert rule in resp.json()["error"]["message"]


def test_mirror_goes_to_one_deployment_only(emulator: Emulator, http: requests.Session) -> None:
    ep = make_endpoint(http, emulator, deployments=("blue", "green", "red"))
    resp = put_endpoint(
        http, emulator, ep, traffic={"blue": 100}, mirrorTraffic={"green": 10, "red": 10}
    )
    assert resp.status_code == 400 and "T2" in resp.json()["error"]["message"]
    set_traffic(http, emulator, ep, traffic={"blue": 0, "green": 0})  # T1: 0 is allowed


def test_a_put_without_traffic_drops_every_deployment_to_zero(
    emulator: Emulator, http: requests.Session
) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100}, mirrorTraffic={})
    assert score(http, emulator, ep).status_code == 200
    set_traffic(http, emulator, ep)  # F1: no traffic member
    got = http.get(ep_url(emulator, ep), params=API, headers=headers(emulator)).json()
    assert not any(got["properties"]["traffic"].values())
    resp = score(http, emulator, ep)
    assert resp.status_code == 404  # T8
    assert "positive weight" in resp.json()["error"]["message"]
    assert score(http, emulator, ep, deployment="blue").status_code == 200  # T5


def test_patch_changes_tags_and_identity_only(emulator: Emulator, http: requests.Session) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    url = ep_url(emulator, ep)
    bad = http.patch(
        url, params=API, headers=headers(emulator), json={"properties": {"traffic": {}}}
    )
    assert bad.status_code == 400
    resp = http.patch(url, params=API, headers=headers(emulator), json={"tags": {"a": "b"}})
    assert resp.status_code == 202 and "Location" in resp.headers
    final = wait_location(http, emulator, resp)
    assert final.status_code == 200 and final.json()["tags"] == {"a": "b"}
    assert final.json()["properties"]["traffic"] == {"blue": 100}
    dep = http.patch(
        dep_url(emulator, ep, "blue"),
        params=API,
        headers=headers(emulator),
        json={"sku": {"capacity": 3}},
    )
    assert dep.status_code == 202
    assert wait_location(http, emulator, dep).json()["sku"]["capacity"] == 3
    refused = http.patch(
        dep_url(emulator, ep, "blue"),
        params=API,
        headers=headers(emulator),
        json={"properties": {}},
    )
    assert refused.status_code == 400


def test_a_deployment_with_live_traffic_cannot_be_deleted(
    emulator: Emulator, http: requests.Session
) -> None:
    ep = make_endpoint(http, emulator, deployments=("blue", "green"), traffic={"blue": 100})
    url = dep_url(emulator, ep, "blue")
    resp = http.delete(url, params=API, headers=headers(emulator))
    assert resp.status_code == 409 and "T7" in resp.json()["error"]["message"]
    set_traffic(http, emulator, ep, traffic={"green": 100})
    resp = http.delete(url, params=API, headers=headers(emulator))
    assert resp.status_code == 202
    assert wait_location(http, emulator, resp).status_code == 200
    assert http.get(url, params=API, headers=headers(emulator)).status_code == 404
    assert http.delete(url, params=API, headers=headers(emulator)).status_code == 204


def test_deleting_an_endpoint_deletes_its_deployments(
    emulator: Emulator, http: requests.Session
) -> None:
    ep = make_endpoint(http, emulator, deployments=("blue", "green"), traffic={"blue": 100})
    resp = http.delete(ep_url(emulator, ep), params=API, headers=headers(emulator))
    assert resp.status_code == 202
    assert wait_location(http, emulator, resp).status_code == 200
    assert http.get(ep_url(emulator, ep), params=API, headers=headers(emulator)).status_code == 404
    assert emulator.state is not None and emulator.state.v2.endpoint_named(ep) is None


def test_keys_regenerate_and_scoring_follows(emulator: Emulator, http: requests.Session) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})
    old = keys(http, emulator, ep)
    assert score(http, emulator, ep, key=old["secondaryKey"]).status_code == 200
    assert score(http, emulator, ep, key="wrong").status_code == 401
    resp = http.post(
        ep_url(emulator, ep) + "/regenerateKeys",
        params=API,
        headers=headers(emulator),
        json={"keyType": "Primary", "keyValue": old["primaryKey"]},
    )
    assert resp.status_code == 202
    assert "Location" in resp.headers and "Azure-AsyncOperation" in resp.headers
    assert wait_op(http, emulator, resp)["status"] == "Succeeded"
    new = keys(http, emulator, ep)
    assert new["primaryKey"] != old["primaryKey"] and new["secondaryKey"] == old["secondaryKey"]
    assert score(http, emulator, ep, key=old["primaryKey"]).status_code == 401
    assert score(http, emulator, ep, key=new["primaryKey"]).status_code == 200
    token = http.post(ep_url(emulator, ep) + "/token", params=API, headers=headers(emulator))
    assert token.status_code == 400  # tokens are for AMLToken endpoints


def test_an_aml_token_endpoint_scores_with_its_token(
    emulator: Emulator, http: requests.Session
) -> None:
    ep = unique()
    resp = put_endpoint(http, emulator, ep, auth="AMLToken")
    assert wait_op(http, emulator, resp)["status"] == "Succeeded"
    assert wait_op(http, emulator, put_deployment(http, emulator, ep, "blue"))["status"] == (
        "Succeeded"
    )
    resp = http.put(
        ep_url(emulator, ep),
        params=API,
        headers=headers(emulator),
        json={
            "location": "eastus",
            "properties": {"authMode": "AMLToken", "traffic": {"blue": 100}},
        },
    )
    assert wait_op(http, emulator, resp)["status"] == "Succeeded"
    token = http.post(ep_url(emulator, ep) + "/token", params=API, headers=headers(emulator)).json()
    assert token["tokenType"] == "Bearer" and token["expiryTimeUtc"] > token["refreshAfterTimeUtc"]
    assert score(http, emulator, ep, key=token["accessToken"]).status_code == 200
    assert score(http, emulator, ep, key=keys(http, emulator, ep)["primaryKey"]).status_code == 401


def test_get_logs_tails_the_deployment_log(emulator: Emulator, http: requests.Session) -> None:
    url = dep_url(emulator, "census-v2", "blue") + "/getLogs"
    resp = http.post(url, params=API, headers=headers(emulator), json={"tail": 1})
    assert resp.status_code == 200 and len(resp.json()["content"].splitlines()) == 1


def test_model_versions_are_immutable_and_containers_count_them(
    emulator: Emulator, http: requests.Session
) -> None:
    name = unique("model")
    base = f"{ws_url(emulator)}/models/{name}"
    body = {
        "properties": {"modelUri": "azureml://datastores/workspaceblobstore/paths/a/model.json"}
    }
    assert (
        http.put(base + "/versions/1", params=API, headers=headers(emulator), json=body).status_code
        == 201
    )
    again = http.put(base + "/versions/1", params=API, headers=headers(emulator), json=body)
    assert again.status_code == 200
    other = {
        "properties": {"modelUri": "azureml://datastores/workspaceblobstore/paths/b/model.json"}
    }
    refused = http.put(base + "/versions/1", params=API, headers=headers(emulator), json=other)
    assert refused.status_code == 409
    assert (
        http.put(
            base + "/versions/2", params=API, headers=headers(emulator), json=other
        ).status_code
        == 201
    )
    container = http.get(base, params=API, headers=headers(emulator)).json()["properties"]
    assert container["latestVersion"] == "2" and container["nextVersion"] == "3"
    listed = http.get(base + "/versions", params=API, headers=headers(emulator)).json()
    assert [v["name"] for v in listed["value"]] == ["2", "1"]
    assert (
        http.delete(base + "/versions/1", params=API, headers=headers(emulator)).status_code == 200
    )
    assert http.delete(base, params=API, headers=headers(emulator)).status_code == 200
    assert http.get(base, params=API, headers=headers(emulator)).status_code == 404
    put = http.put(
        base, params=API, headers=headers(emulator), json={"properties": {"description": "d"}}
    )
    assert put.status_code == 201 and put.json()["properties"]["nextVersion"] == "1"


def test_the_documented_blue_green_sequence_t9(emulator: Emulator, http: requests.Session) -> None:
    ep = make_endpoint(http, emulator, traffic={"blue": 100})  # 1, 2
    with slow_operations(emulator):
        scale = http.patch(
            dep_url(emulator, ep, "blue"),
            params=API,
            headers=headers(emulator),
            json={"sku": {"capacity": 2}},
        )  # 3
        assert scale.status_code == 202
        got = http.get(dep_url(emulator, ep, "blue"), params=API, headers=headers(emulator))
        assert got.json()["properties"]["provisioningState"] == "Scaling"
    assert wait_location(http, emulator, scale).json()["sku"]["capacity"] == 2
    resp = put_deployment(http, emulator, ep, "green")  # 4
    assert wait_op(http, emulator, resp)["status"] == "Succeeded"
    assert score(http, emulator, ep, deployment="green").status_code == 200  # 5
    set_traffic(http, emulator, ep, traffic={"blue": 100}, mirrorTraffic={"green": 10})  # 6
    set_traffic(http, emulator, ep, traffic={"blue": 100}, mirrorTraffic={"green": 0})  # 7
    set_traffic(http, emulator, ep, traffic={"blue": 90, "green": 10})  # 8
    set_traffic(http, emulator, ep, traffic={"green": 100})
    resp = http.delete(dep_url(emulator, ep, "blue"), params=API, headers=headers(emulator))  # 9
    assert resp.status_code == 202 and wait_location(http, emulator, resp).status_code == 200
    got = http.get(ep_url(emulator, ep), params=API, headers=headers(emulator)).json()
    assert got["properties"]["traffic"] == {"green": 100}
    assert score(http, emulator, ep).headers["azureml-model-deployment"] == "green"
