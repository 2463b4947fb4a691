"""Every ARM response body the emulator sends validates against the 2017-01-01 swagger, and
every x-ms-examples request in the reference is accepted.

The swagger's ``#/definitions/...`` refs are resolved by jsonschema against the swagger
definitions; the ``packageType`` discriminator is handled by validating ``properties``
against ``WebServicePropertiesForGraph`` (the only package type); a bare ``type: object``
means "any value" and optional members may be null, as in every Azure swagger (the spec's
own examples rely on both).
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest
import requests

from amlretrain.emulator import Emulator
from tests.conftest import REFERENCE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SPEC_DIR = REFERENCE / "2017-01-01"  # vendored: see tests/conformance/reference/README.md
API = {"api-version": "2017-01-01"}


def _spec() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((SPEC_DIR / "webservices.json").read_text())
    return doc


def _loosen(node: Any) -> Any:
    """Azure swagger semantics: a bare ``type: object`` (no members) means "any JSON value",
    and an optional member may be ``null`` (the spec's own examples send both)."""
    if isinstance(node, dict):
        out = {k: _loosen(v) for k, v in node.items()}
        props = out.get("properties")
        if isinstance(props, dict) and all(isinstance(v, dict) for v in props.values()):
            required = set(out.get("required", []))
            out["properties"] = {
                name: sub if name in required else {"anyOf": [{"type": "null"}, sub]}
                for name, sub in props.items()
            }
        members = ("properties", "additionalProperties", "allOf", "$ref")
        if out.get("type") == "object" and not any(m in out for m in members):
            del out["type"]
        return out
    if isinstance(node, list):
        return [_loosen(v) for v in node]
    return node


def validator(definition: str) -> Any:
    """A jsonschema validator for one swagger definition."""
    import jsonschema

    spec = copy.deepcopy(_spec())
    defs = _loosen(spec["definitions"])
    # Discriminator: a WebService's properties are the Graph flavour.
    defs["WebService"]["properties"]["properties"] = {
        "$ref": "#/definitions/WebServicePropertiesForGraph"
    }
    root = {"definitions": defs, "$ref": f"#/definitions/{definition}"}
    cls = jsonschema.validators.validator_for({}, default=jsonschema.Draft4Validator)
    return cls(root)


def check(definition: str, body: Any) -> None:
    errors = sorted(validator(definition).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def headers(emu: Emulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.info.arm_token}"}


def example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((SPEC_DIR / "examples" / name).read_text())
    return doc


def wait(http: requests.Session, emu: Emulator, resp: requests.Response) -> dict[str, Any]:
    url = resp.headers["Azure-AsyncOperation"]
    deadline = time.monotonic() + 10
    while True:
        doc: dict[str, Any] = http.get(url, headers=headers(emu)).json()
        check("AsyncOperationStatus", doc)
        if doc["status"] != "Provisioning" or time.monotonic() > deadline:
            return doc
        time.sleep(0.05)


def url_for(emu: Emulator, params: dict[str, Any], suffix: str = "") -> str:
    base = (
        f"{emu.info.arm_base_url}/subscriptions/{params['subscriptionId']}"
        f"/resourceGroups/{params['resourceGroupName']}/providers/Microsoft.MachineLearning"
        "/webServices"
    )
    if "webServiceName" in params:
        base += "/" + params["webServiceName"]
    return base + suffix


def test_the_seeded_service_validates_as_a_web_service(
    emulator: Emulator, http: requests.Session
) -> None:
    resp = http.get(
        emulator.info.arm_base_url + str(emulator.info.arm_service_id),
        params=API,
        headers=headers(emulator),
    )
    check("WebService", resp.json())


def test_a_validator_that_can_fail(emulator: Emulator) -> None:
    with pytest.raises(AssertionError):
        check("WebService", {"properties": {"title": 3}})
    with pytest.raises(AssertionError):
        check("WebServiceKeys", {"primary": 1})


def test_every_example_request_is_accepted_and_every_response_validates(
    emulator: Emulator, http: requests.Session
) -> None:
    put = example("putWebService.json")["parameters"]
    name = put["webServiceName"]
    resp = http.put(
        url_for(emulator, put),
        params=API,
        json=put["createOrUpdatePayload"],
        headers=headers(emulator),
    )
    assert resp.status_code == 201, resp.text
    check("WebService", resp.json())
    assert wait(http, emulator, resp)["status"] == "Succeeded"
    again = http.put(
        url_for(emulator, put),
        params=API,
        json=put["createOrUpdatePayload"],
        headers=headers(emulator),
    )
    assert again.status_code == 200
    check("WebService", again.json())
    wait(http, emulator, again)

    get = example("getWebService.json")["parameters"]
    resp = http.get(
        url_for(emulator, {**get, "webServiceName": name}), params=API, headers=headers(emulator)
    )
    assert resp.status_code == 200
    check("WebService", resp.json())

    patch = example("patchWebService.json")["parameters"]
    resp = http.patch(
        url_for(emulator, {**patch, "webServiceName": name}),
        params=API,
        json=patch["patchPayload"],
        headers=headers(emulator),
    )
    assert resp.status_code == 200, resp.text
    check("WebService", resp.json())
    assert wait(http, emulator, resp)["status"] == "Succeeded"
    after = http.get(url_for(emulator, put), params=API, headers=headers(emulator)).json()
    assert after["properties"]["title"] == patch["patchPayload"]["properties"]["title"]

    keys = example("getWebServiceKeys.json")["parameters"]
    resp = http.get(
        url_for(emulator, {**keys, "webServiceName": name}, "/listKeys"),
        params=API,
        headers=headers(emulator),
    )
    assert resp.status_code == 200
    check("WebServiceKeys", resp.json())

    by_rg = example("getWebServicesByResourceGroup.json")["parameters"]
    next_url: str | None = url_for(emulator, by_rg) + "?api-version=" + by_rg["api-version"]
    while next_url:
        page = http.get(next_url, headers=headers(emulator))
        assert page.status_code == 200
        check("PaginatedWebServicesList", page.json())
        next_url = page.json().get("nextLink")

    by_sub = example("getWebServicesBySubscriptionId.json")["parameters"]
    next_url = (
        f"{emulator.info.arm_base_url}/subscriptions/{by_sub['subscriptionId']}"
        f"/providers/Microsoft.MachineLearning/webServices?api-version={by_sub['api-version']}"
    )
    while next_url:
        page = http.get(next_url, headers=headers(emulator))
        assert page.status_code == 200
        check("PaginatedWebServicesList", page.json())
        next_url = page.json().get("nextLink")

    regional = example("createRegionalProperties.json")["parameters"]
    resp = http.post(
        url_for(emulator, {**regional, "webServiceName": name}, "/CreateRegionalBlob"),
        params={**API, "region": regional["region"]},
        headers=headers(emulator),
    )
    assert resp.status_code == 202
    assert wait(http, emulator, resp)["status"] == "Succeeded"
    resp = http.get(
        url_for(emulator, put),
        params={**API, "region": regional["region"]},
        headers=headers(emulator),
    )
    assert resp.status_code == 200
    check("WebService", resp.json())

    delete = example("deleteWebService.json")["parameters"]
    resp = http.delete(
        url_for(emulator, {**delete, "webServiceName": name}), params=API, headers=headers(emulator)
    )
    assert resp.status_code == 202  # the swagger allows 202 or 204; the emulator answers 202
    assert wait(http, emulator, resp)["status"] == "Succeeded"


def test_the_operations_list_validates(emulator: Emulator, http: requests.Session) -> None:
    resp = http.get(
        f"{emulator.info.arm_base_url}/providers/Microsoft.MachineLearning/operations",
        params=API,
        headers=headers(emulator),
    )
    check("OperationEntityListResult", resp.json())


def test_a_failed_operation_status_validates(emulator: Emulator, http: requests.Session) -> None:
    emulator.faults.add(route="arm.patch", kind="lro_fail")
    try:
        resp = http.patch(
            emulator.info.arm_base_url + str(emulator.info.arm_service_id),
            params=API,
            json={"properties": {"packageType": "Graph", "title": "x"}},
            headers=headers(emulator),
        )
        check("WebService", resp.json())
        assert wait(http, emulator, resp)["status"] == "Failed"
    finally:
        emulator.faults.clear()
