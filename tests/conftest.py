"""Shared test helpers: sample definitions and the vendored reference swagger."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: The ARM web-services swagger and its examples, vendored (see its README for the source
#: and licence): ``2017-01-01/webservices.json`` and ``2017-01-01/examples/*.json``.
REFERENCE = REPO / "tests" / "conformance" / "reference" / "arm-webservices"


MODEL_URI = "https://acct.blob.core.windows.net/models/v1/census.ilearner"


def sample_definition(*, pascal: bool = False, preview: bool = False) -> dict[str, Any]:
    """A small but complete predictive definition (camelCase, or PascalCase in package)."""

    def k(name: str) -> str:
        return name[0].upper() + name[1:] if pascal else name

    param: Any = "0.5" if preview else {k("value"): "0.5", k("certificateThumbprint"): ""}
    doc: dict[str, Any] = {
        "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearning/webServices/svc",
        "name": "svc",
        "location": "South Central US",
        "type": "Microsoft.MachineLearning/webServices",
        "tags": {"team": "ml"},
        "properties": {
            "title": "Census predictive",
            "description": "scores adults",
            "createdOn": "2017-01-01T01:01:01Z",
            "modifiedOn": "2017-01-01T02:02:02Z",
            "provisioningState": "Succeeded",
            "readOnly": False,
            "exposeSampleData": True,
            "swaggerLocation": "https://ussouthcentral.services.azureml.net/subscriptions/s/services/x/swagger.json",
            "realtimeConfiguration": {"maxConcurrentCalls": 4},
            "diagnostics": {"level": "None"},
            "storageAccount": {"name": "acct"},
            "machineLearningWorkspace": {"id": "0123456789abcdef0123456789abcdef"},
            "packageType": "Graph",
            "assets": {
                "asset1": {
                    "name": "Census Model [trained model]",
                    "type": "Resource",
                    "locationInfo": {"uri": MODEL_URI},
                    "outputPorts": {"Trained model": {"type": "Dataset"}},
                },
                "asset2": {
                    "name": "Score Model",
                    "type": "Module",
                    "locationInfo": {"uri": "aml://module/score", "credentials": ""},
                    "inputPorts": {"Dataset": {"type": "Dataset"}},
                    "parameters": [
                        {
                            "name": "Append",
                            "parameterType": "Boolean",
                            "modeValuesInfo": {
                                "True": {"interfaceString": "t", "parameters": [{"name": "x"}]}
                            },
                        }
                    ],
                },
            },
            "input": {
                "type": "object",
                "properties": {
                    "input1": {
                        "type": "object",
                        "properties": {"age": {"type": "Integer", "x-ms-isnullable": False}},
                    }
                },
            },
            "package": {
                k("nodes"): {
                    "node1": {k("assetId"): "asset2", k("parameters"): {"Threshold": param}},
                    "node2": {k("assetId"): "asset1"},
                    "node3": {k("inputId"): "input1"},
                    "node4": {k("outputId"): "output1"},
                },
                k("edges"): [
                    {
                        k("sourceNodeId"): "node3",
                        k("targetNodeId"): "node1",
                        k("targetPortId"): "Dataset",
                    },
                    {k("sourceNodeId"): "node2", k("targetNodeId"): "node1"},
                    {k("sourceNodeId"): "node1", k("targetNodeId"): "node4"},
                ],
                k("graphParameters"): {},
            },
            "exampleRequest": {"inputs": {"input1": [["age"], ["39"]]}, "globalParameters": {}},
        },
    }
    return copy.deepcopy(doc)
