"""The four recorded live sessions of API-NOTES 1.3a, replayed against the emulator.

Microsoft's own test suites recorded them against the live web-service API (Az PowerShell
``TestCreateGetRemoveWebService`` and ``TestCreateAndGetRegionalProperties``, the .NET SDK's
``CreateAndUpdateOnGraphWebService`` and ``CreateGetRemoveGraphWebServiceWithLargePayload``).
Each test sends the session's requests (bodies abridged: fewer columns and rows, the same
members; secrets replaced) in the session's order and asserts what the live service
answered: the status, the operation headers (``Azure-AsyncOperation``,
``Azure-AsyncOperationPercentComplete``, ``Location``, ``Retry-After``: exactly those it
sent) and the member names of every body, exactly.
"""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
import requests

from amlretrain.emulator import Emulator
from amlretrain.storage import BlobStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

API = {"api-version": "2017-01-01"}
OPERATION_HEADERS = (
    "Azure-AsyncOperation",
    "Azure-AsyncOperationPercentComplete",
    "Location",
    "Retry-After",
)
#: What PUT, PATCH and CreateRegionalBlob answered: the status URL, never a Location.
ASYNC = {"Azure-AsyncOperation", "Azure-AsyncOperationPercentComplete"}
#: What the DELETE of an existing service answered.
ASYNC_AND_LOCATION = ASYNC | {"Location"}
RESOURCE_MEMBERS = {"id", "name", "type", "location", "tags", "properties"}
#: ``properties`` of the GET after the PUT of the recorded graph (both PowerShell sessions
#: and the .NET ones).
GET_PROPERTIES = {
    "payloadsInBlobStorage",
    "provisioningState",
    "createdOn",
    "modifiedOn",
    "title",
    "description",
    "swaggerLocation",
    "readOnly",
    "realtimeConfiguration",
    "diagnostics",
    "storageAccount",
    "machineLearningWorkspace",
    "assets",
    "input",
    "output",
    "packageType",
    "exampleRequest",
    "exposeSampleData",
    "parameters",
    "package",
}
RUNNING_STATUS = {"id", "name", "status", "startTime", "percentComplete"}
ENDED_STATUS = RUNNING_STATUS | {"endTime"}


def shape(value: Any) -> Any:
    """The member names of a JSON value, nested: what the live answers are compared on."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return None


def _column(kind: str) -> dict[str, Any]:
    if kind == "Integer":
        return {"type": "Integer", "format": "Int32", "x-ms-isnullable": True}
    return {"type": "String", "format": "", "x-ms-isnullable": False}


def _table(columns: dict[str, str]) -> dict[str, Any]:
    return {
        "title": "",
        "description": "",
        "type": "object",
        "properties": {name: _column(kind) for name, kind in columns.items()},
    }


def _param(value: str, thumbprint: str = "") -> dict[str, str]:
    return {"value": value, "certificateThumbprint": thumbprint}


#: The graph both Microsoft suites PUT (Import Data joined with itself), abridged.
GRAPH: dict[str, Any] = {
    "package": {
        "nodes": {
            "node1": {
                "assetId": "asset1",
                "parameters": {
                    "Please Specify Data Source": _param("AzureBlobStorage"),
                    "Account Name": _param("bohurp"),
                    "Account Key": _param("ENCRYPTED_VALUE_1", "ENCRYPTED_CERTIFICATETHUMBPRINT_1"),
                    "Path to container or directory or blob": _param("uploadeddata/adult.data"),
                },
            },
            "node2": {
                "assetId": "asset2",
                "parameters": {"Match case": _param("True"), "Join type": _param("Inner Join")},
            },
            "node3": {"inputId": "input1"},
            "node4": {"outputId": "output1"},
        },
        "edges": [
            {
                "sourceNodeId": "node1",
                "sourcePortId": "Results dataset",
                "targetNodeId": "node2",
                "targetPortId": "Dataset1",
            },
            {"sourceNodeId": "node3", "targetNodeId": "node2", "targetPortId": "Dataset2"},
            {"sourceNodeId": "node2", "sourcePortId": "Results dataset", "targetNodeId": "node4"},
        ],
        "graphParameters": {},
    },
    "input": {
        "title": "",
        "description": "",
        "type": "object",
        "properties": {"input1": _table({"39": "Integer", "State-gov": "String"})},
    },
    "output": {
        "title": "",
        "description": "",
        "type": "object",
        "properties": {"output1": _table({"39": "Integer", "State-gov (2)": "String"})},
    },
    "exampleRequest": {"inputs": {"input1": [[50, "Self-emp-not-inc"], [38, "Private"]]}},
    "assets": {
        "asset1": {
            "name": "Import Data",
            "type": "Module",
            "locationInfo": {"uri": "aml://module/import-data.v1-default-1743", "credentials": ""},
        },
        "asset2": {
            "name": "Join Data",
            "type": "Module",
            "locationInfo": {"uri": "aml://module/join-data.v1-default-1712", "credentials": ""},
        },
    },
    "parameters": {},
}


def _service(sub: str, location: str, *, graph: bool = True) -> dict[str, Any]:
    """The PUT body of the sessions (the graph inline unless ``graph=False``)."""
    props: dict[str, Any] = {
        "packageType": "Graph",
        "title": "Some title (new contract)",
        "description": "This is some service description (new contract)",
        "keys": {"primary": "SAMPLE_KEY_1", "secondary": "SAMPLE_KEY_2"},
        "readOnly": False,
        "exposeSampleData": False,
        "realtimeConfiguration": {"maxConcurrentCalls": 20},
        "diagnostics": {"level": "None"},
        "storageAccount": {"name": "amlstor4957", "key": "WEB_SERVICE_KEY_SAMPLE5"},
        "machineLearningWorkspace": {"id": "8b841df9d60a4d54bcebd4948b10a5db"},
        "commitmentPlan": {
            "id": f"/subscriptions/{sub}/resourceGroups/live-sessions/providers/"
            "Microsoft.MachineLearning/commitmentPlans/amlcp7964"
        },
    }
    if graph:
        props.update(copy.deepcopy(GRAPH))
        props["payloadsInBlobStorage"] = False
    return {"properties": props, "location": location, "tags": {}}


class Session:
    """One replayed session: requests to the emulator's ARM provider, answers checked."""

    def __init__(
        self,
        emulator: Emulator,
        http: requests.Session,
        prefix: str,
        region: str = "southcentralus",
    ) -> None:
        self.emu = emulator
        self.region = region  # the normalized region of the operation URLs
        self.http = http
        self.name = f"{prefix}{uuid.uuid4().hex[:6]}"
        self.sub = emulator.info.subscription_id
        self.path = (
            f"/subscriptions/{self.sub}/resourceGroups/live-sessions/providers/"
            f"Microsoft.MachineLearning/webServices/{self.name}"
        )
        self.url = emulator.info.arm_base_url + self.path

    def send(self, method: str, suffix: str = "", **kwargs: Any) -> requests.Response:
        params = {**API, **kwargs.pop("params", {})}
        headers = {"Authorization": f"Bearer {self.emu.info.arm_token}"}
        return self.http.request(
            method, self.url + suffix, params=params, headers=headers, **kwargs
        )

    def answered(
        self, resp: requests.Response, status: int, operation_headers: set[str]
    ) -> requests.Response:
        """Assert the status and exactly which operation headers came (and their form)."""
        assert resp.status_code == status, resp.text
        assert {h for h in OPERATION_HEADERS if h in resp.headers} == operation_headers
        if "Azure-AsyncOperation" in operation_headers:
            op = self._operation_url(resp.headers["Azure-AsyncOperation"], "operationsStatus")
            assert resp.headers["Azure-AsyncOperationPercentComplete"] == "0"
            if "Location" in operation_headers:
                assert self._operation_url(resp.headers["Location"], "operationresults") == op
        return resp

    def _operation_url(self, url: str, kind: str) -> str:
        pattern = (
            re.escape(f"{self.emu.info.arm_base_url}/subscriptions/{self.sub}/providers/")
            + rf"Microsoft\.MachineLearning/locations/(?P<region>[a-z0-9]+)/{kind}/"
            + r"(?P<op>[0-9a-f-]{36})\?api-version=2017-01-01$"
        )
        found = re.match(pattern, url)
        assert found, url
        assert found["region"] == self.region
        return found["op"]

    def succeeded(self, resp: requests.Response) -> None:
        """Poll the operation like the SDKs did: every status document has the live members."""
        url = resp.headers["Azure-AsyncOperation"]
        headers = {"Authorization": f"Bearer {self.emu.info.arm_token}"}
        deadline = time.monotonic() + 10
        while True:
            poll = self.http.get(url, headers=headers)
            assert poll.status_code == 200
            assert {h for h in OPERATION_HEADERS if h in poll.headers} == set()
            doc = poll.json()
            if doc["status"] == "Provisioning":
                assert set(doc) == RUNNING_STATUS
                assert 0 <= doc["percentComplete"] < 1
            else:
                assert set(doc) == ENDED_STATUS
                assert (doc["status"], doc["percentComplete"]) == ("Succeeded", 1.0)
                return
            assert time.monotonic() < deadline
            time.sleep(0.05)

    def small_body(self, resp: requests.Response, location: str, properties: set[str]) -> None:
        body = resp.json()
        assert set(body) == RESOURCE_MEMBERS
        assert body["id"] == self.path
        assert (body["name"], body["type"]) == (self.name, "Microsoft.MachineLearning/webServices")
        assert body["location"] == location
        assert set(body["properties"]) == properties
        assert body["properties"]["provisioningState"] == "Provisioning"
        if "payloadsInBlobStorage" in properties:
            assert body["properties"]["payloadsInBlobStorage"] is False

    def not_found(self, resp: requests.Response) -> None:
        self.answered(resp, 404, set())
        assert resp.json() == {
            "error": {
                "code": "NotFound",
                "message": "The specified resource was not found.",
                "details": [
                    {
                        "code": "WebServiceNotFound",
                        "message": (
                            f"No Web Service could be found with the provided name: {self.name}."
                        ),
                    }
                ],
            }
        }

    def delete(self) -> None:
        resp = self.answered(self.send("DELETE"), 202, ASYNC_AND_LOCATION)
        assert resp.content == b""
        self.succeeded(resp)


def _the_graph_reads_back_as_sent(got: dict[str, Any]) -> None:
    for member in ("package", "input", "output", "exampleRequest", "assets", "parameters"):
        assert shape(got["properties"][member]) == shape(GRAPH[member]), member


def test_create_get_remove_web_service_powershell(
    emulator: Emulator, http: requests.Session
) -> None:
    s = Session(emulator, http, "onesdk")
    resp = s.answered(s.send("PUT", json=_service(s.sub, "South Central US")), 201, ASYNC)
    s.small_body(resp, "South Central US", {"payloadsInBlobStorage", "provisioningState"})
    s.succeeded(resp)
    got = s.answered(s.send("GET"), 200, set()).json()
    assert set(got) == RESOURCE_MEMBERS
    assert set(got["properties"]) == GET_PROPERTIES
    assert got["properties"]["storageAccount"] == {"name": "amlstor4957"}
    _the_graph_reads_back_as_sent(got)
    keys = s.answered(s.send("GET", "/listKeys"), 200, set()).json()
    assert keys == {"primary": "SAMPLE_KEY_1", "secondary": "SAMPLE_KEY_2"}
    s.delete()
    s.not_found(s.send("GET"))


def test_create_and_get_regional_properties_powershell(
    emulator: Emulator, http: requests.Session
) -> None:
    s = Session(emulator, http, "onesdk")
    resp = s.answered(s.send("PUT", json=_service(s.sub, "southcentralus")), 201, ASYNC)
    s.small_body(resp, "South Central US", {"payloadsInBlobStorage", "provisioningState"})
    s.succeeded(resp)
    before = s.answered(s.send("GET", params={"region": "westcentralus"}), 404, set())
    assert before.json() == {
        "error": {
            "code": "NotFound",
            "message": "The specified resource was not found.",
            "details": [
                {
                    "code": "PerRegionPayloadNotFound",
                    "message": (
                        "Web Service Definition for region westcentralus was not found. Please "
                        "use the same URL making a POST call and wait for it succeeded, then "
                        "try GET again."
                    ),
                }
            ],
        }
    }
    post = s.send("POST", "/CreateRegionalBlob", params={"region": "westcentralus"})
    s.answered(post, 202, ASYNC)
    assert post.json() == {
        "id": s.name,
        "name": s.name,
        "type": "Microsoft.MachineLearning/webServices",
        "location": "South Central US",
        "properties": {"payloadsInBlobStorage": False, "provisioningState": "Provisioning"},
    }
    s.succeeded(post)
    regional = s.answered(s.send("GET", params={"region": "westcentralus"}), 200, set()).json()
    assert set(regional["properties"]) == GET_PROPERTIES
    s.delete()


def test_create_and_update_on_graph_web_service_dotnet(
    emulator: Emulator, http: requests.Session
) -> None:
    s = Session(emulator, http, "amlws", region="westcentralus")
    resp = s.answered(s.send("PUT", json=_service(s.sub, "West Central US")), 201, ASYNC)
    s.small_body(resp, "West Central US", {"payloadsInBlobStorage", "provisioningState"})
    s.succeeded(resp)
    created = s.answered(s.send("GET"), 200, set()).json()
    assert set(created["properties"]) == GET_PROPERTIES
    update = {
        "properties": {
            "packageType": "Graph",
            "description": "description was updated!",
            "keys": {"primary": "f6ae3d003c63457ab4c5997effb5e4dc"},
            "diagnostics": {"level": "All"},
        }
    }
    resp = s.answered(s.send("PATCH", json=update), 200, ASYNC)
    s.small_body(resp, "West Central US", {"provisioningState"})
    s.succeeded(resp)
    updated = s.answered(s.send("GET"), 200, set()).json()
    assert set(updated["properties"]) == GET_PROPERTIES - {"parameters"}  # was {}: dropped
    assert updated["properties"]["description"] == "description was updated!"
    assert updated["properties"]["diagnostics"] == {"level": "All"}
    assert updated["properties"]["modifiedOn"] > created["properties"]["modifiedOn"]
    keys = s.answered(s.send("GET", "/listKeys"), 200, set()).json()
    assert keys == {"primary": "f6ae3d003c63457ab4c5997effb5e4dc", "secondary": "SAMPLE_KEY_2"}
    s.delete()


#: The payloads blob, spelled as the .NET SDK serializes its models (PascalCase). GUESS: the
#: blob itself was not recorded; the GET after the PUT was (LARGE_GET_SHAPES).
BLOB = {
    "Assets": {
        asset_id: {
            "Name": asset["name"],
            "Type": asset["type"],
            "LocationInfo": {"Uri": asset["locationInfo"]["uri"], "Credentials": ""},
        }
        for asset_id, asset in GRAPH["assets"].items()
    },
    "Input": {
        "Title": "",
        "Description": "",
        "Type": "object",
        "Properties": {
            "input1": {
                "Title": "",
                "Description": "",
                "Type": "object",
                "Properties": {
                    "39": {"Type": "Integer", "Format": "Int32", "x-ms-isnullable": True}
                },
            }
        },
    },
    "ExampleRequest": {"Inputs": {"input1": [[50, "Self-emp-not-inc"]]}, "GlobalParameters": None},
    "Parameters": {},
    "Package": {
        "Edges": [
            {
                "SourceNodeId": "node1",
                "SourcePortId": "Results dataset",
                "TargetNodeId": "node2",
                "TargetPortId": "Dataset1",
            }
        ],
        "GraphParameters": {},
        "Nodes": {
            "node1": {
                "AssetId": "asset1",
                "Parameters": {
                    "Account Key": {"Value": "ENCRYPTED_VALUE_11", "CertificateThumbprint": "T"}
                },
            },
            "node3": {"InputId": "input1"},
        },
    },
}

#: The member names of the live GET after the large-payload PUT: the blob's spelling kept
#: except the package's own members and each node's, which are camelCase.
LARGE_GET_SHAPES = {
    "assets": {
        "asset1": {"Name": None, "Type": None, "LocationInfo": {"Uri": None, "Credentials": None}},
        "asset2": {"Name": None, "Type": None, "LocationInfo": {"Uri": None, "Credentials": None}},
    },
    "input": {
        "Title": None,
        "Description": None,
        "Type": None,
        "Properties": {
            "input1": {
                "Title": None,
                "Description": None,
                "Type": None,
                "Properties": {"39": {"Type": None, "Format": None, "x-ms-isnullable": None}},
            }
        },
    },
    "exampleRequest": {"Inputs": {"input1": [[None, None]]}, "GlobalParameters": None},
    "parameters": {},
    "package": {
        "edges": [
            {"SourceNodeId": None, "SourcePortId": None, "TargetNodeId": None, "TargetPortId": None}
        ],
        "graphParameters": {},
        "nodes": {
            "node1": {
                "assetId": None,
                "parameters": {"Account Key": {"value": None, "certificateThumbprint": None}},
            },
            "node3": {"inputId": None},
        },
    },
}


def test_create_get_remove_graph_web_service_with_large_payload_dotnet(
    emulator: Emulator, http: requests.Session
) -> None:
    s = Session(emulator, http, "amlws", region="westcentralus")
    absent = s.answered(s.send("DELETE"), 204, set())  # "expected NO-OP behavior"
    assert absent.content == b""
    store = BlobStore.from_connection_string(emulator.info.storage_connection_string)
    blob = store.upload(
        json.dumps(BLOB).encode(), container="uploadeddata", blob_name=f"{s.name}/payload.json"
    )
    sas = store.sas(blob, expires_in=timedelta(hours=1)).sas_url
    body = _service(s.sub, "West Central US", graph=False)
    body["properties"]["title"] = "Some title (new contract large payload)"
    body["properties"]["payloadsInBlobStorage"] = True
    body["properties"]["PayloadsLocation"] = {"uri": sas, "credentials": ""}  # as .NET sent it
    resp = s.answered(s.send("PUT", json=body), 201, ASYNC)
    s.small_body(resp, "West Central US", {"payloadsInBlobStorage", "provisioningState"})
    s.succeeded(resp)
    got = s.answered(s.send("GET"), 200, set()).json()
    assert set(got) == RESOURCE_MEMBERS
    assert set(got["properties"]) == GET_PROPERTIES - {"output"}  # this blob has no Output
    assert got["properties"]["payloadsInBlobStorage"] is False
    assert shape({k: got["properties"][k] for k in LARGE_GET_SHAPES}) == LARGE_GET_SHAPES
    keys = s.answered(s.send("GET", "/listKeys"), 200, set()).json()
    assert keys == {"primary": "SAMPLE_KEY_1", "secondary": "SAMPLE_KEY_2"}
    s.delete()
    s.not_found(s.send("GET"))
