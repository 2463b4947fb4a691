"""Bytes sent to swap the model of a New web service, vs a whole-definition update.

For definitions of 100 KB, 1 MB and 3 MB (the emulator's predictive definition grown
with module assets and graph nodes), an :class:`~amlretrain.studio.targets.ArmTarget` swaps the
trained model; the PATCH body size is read on the emulator side (the probe records the
bytes it received) and checked equal to :func:`amlretrain.studio.ilearner.patch_body`. The
baseline is what ``Update-AzMlWebService -ServiceUpdates`` sends: the whole definition
as Json.NET writes it (camelCase, nulls dropped, no indentation, UTF-8).
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from importlib import resources
from typing import Any

from bench import Report, Row
from bench._probe import emulator

NAME = "patch_bytes"
TITLE = "bytes sent to swap the model of a New web service"
TARGET_BYTES = 2048
SIZES = {"100 KB": 100 * 1024, "1 MB": 1024 * 1024, "3 MB": 3 * 1024 * 1024}


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def jsonnet_bytes(document: dict[str, Any]) -> int:
    """Size of ``document`` as Json.NET serializes it (NullValueHandling.Ignore, compact)."""
    text = json.dumps(_drop_nulls(document), separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8"))


def _module(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    asset = {
        "name": f"Execute Python Script {i}",
        "type": "Module",
        "locationInfo": {"uri": f"aml://module/{i:032x}", "credentials": ""},
        "inputPorts": {"Dataset1": {"type": "Dataset"}, "Dataset2": {"type": "Dataset"}},
        "outputPorts": {"Result Dataset": {"type": "Dataset"}},
        "parameters": [
            {
                "name": "Python script",
                "parameterType": "Script",
                "modeValuesInfo": {},
            },
            {"name": "Python Version", "parameterType": "Enumerated"},
        ],
    }
    script = "def azureml_main(df1=None, df2=None):\n    return df1,\n" + "#" * 200
    node = {
        "assetId": f"bench{i}",
        "parameters": {
            "Python script": {"value": script, "certificateThumbprint": ""},
            "Python Version": {"value": "Anaconda 4.0/Python 3.5", "certificateThumbprint": ""},
        },
    }
    return asset, node


def grown_definition(size: int, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with module assets and nodes added until its Json.NET form is ``size``."""
    doc = copy.deepcopy(base)
    props = doc["properties"]
    one_asset, one_node = _module(0)
    per = len(json.dumps({"bench0": one_asset, "benchnode0": one_node}, separators=(",", ":")))
    count = max(0, (size - jsonnet_bytes(doc)) // per)
    for i in range(count):
        asset, node = _module(i)
        props["assets"][f"bench{i}"] = asset
        props["package"]["nodes"][f"benchnode{i}"] = node
    return doc


def _base_definition(emu: Any, store: Any) -> dict[str, Any]:
    data = resources.files("amlretrain.emulator") / "data"
    raw = (data / "predictive_definition.json").read_text()
    doc: dict[str, Any] = json.loads(raw)
    props = doc["properties"]
    model = store.sas(store.ref("models", "initial.ilearner"))
    props["assets"]["asset1"]["locationInfo"]["uri"] = model.sas_url
    from amlretrain.storage import parse_connection_string

    account = parse_connection_string(emu.info.storage_connection_string)
    props["storageAccount"] = {"name": emu.info.storage_account, "key": account["AccountKey"]}
    props["machineLearningWorkspace"] = {"id": emu.info.workspace_id}
    return doc


def run(quick: bool) -> Report:
    """Swap the model of services of each size; compare the PATCH body with the PUT-like one."""
    from amlretrain.storage import BlobStore
    from amlretrain.studio.definition import WebServiceDefinition
    from amlretrain.studio.targets import ArmTarget
    from amlretrain.studio.webservices import WebServicesClient

    report = Report(name=NAME, title=TITLE)
    sizes = {"100 KB": SIZES["100 KB"]} if quick else SIZES
    with emulator(seed=True, lro_delay=0.0) as (emu, probe):
        info = emu.info
        arm = WebServicesClient(
            emu.credential(), info.subscription_id, base_url=info.arm_base_url,
            polling_interval=0.05,
        )  # fmt: skip
        store = BlobStore.from_connection_string(info.storage_connection_string)
        base = _base_definition(emu, store)
        model_bytes = store.download_bytes(store.ref("models", "initial.ilearner"))
        try:
            for label, size in sizes.items():
                name = f"bench-{size}"
                doc = grown_definition(size, base)
                arm.create_or_update(info.resource_group, name, WebServiceDefinition.from_dict(doc))
                target = ArmTarget(arm, info.resource_group, name)
                state = target.check()
                fetched = state.document
                assert isinstance(fetched, WebServiceDefinition)
                model = store.sas(
                    store.upload(model_bytes, container="models", blob_name=f"{name}/m.ilearner"),
                    expires_in=timedelta(days=1),
                )
                planned = target.plan(model, state)["body"]
                new = fetched.with_trained_model(model.sas_url)
                whole = jsonnet_bytes(new.to_dict(canonical=True))
                probe.clear()
                target.deploy(model, state)
                patches = [s for s in probe.served if s.route == "arm.patch"]
                sent = [s.request_bytes for s in patches]
                received = sum(s.response_bytes for s in probe.served)
                if len(sent) != 1:
                    raise RuntimeError(f"expected one PATCH, saw {len(sent)}")
                body = sent[0]
                if json.loads(patches[0].body) != planned:
                    raise RuntimeError("the PATCH sent differs from patch_body()")
                report.rows.append(
                    Row(
                        what=f"PATCH body, {label} definition ({whole:,} B whole)",
                        figure=f"{body:,} B",
                        baseline=f"{whole:,} B",
                        ratio=body / whole,
                        target=f"<= {TARGET_BYTES:,} B",
                        passed=body <= TARGET_BYTES,
                    )
                )
                report.data[label] = {
                    "patch": body,
                    "whole": whole,
                    "received": received,
                    "planned_bytes": len(json.dumps(planned, separators=(",", ":"))),
                    "requests": [(s.method, s.route) for s in probe.served],
                }
                report.notes.append(
                    f"{label}: the swap made {len(probe.served)} emulator requests "
                    f"({', '.join(s.method + ' ' + s.route for s in probe.served)}) and "
                    f"downloaded {received:,} B of responses "
                    f"({received / max(whole, 1):.1f}x the definition)"
                )
        finally:
            arm.close()
    report.notes.append(
        "PATCH size is the body the emulator received (probe on Server.dispatch); it was "
        "checked equal to ilearner.patch_body() (the dry-run plan). The extra GETs are listed "
        "under the request-count findings (loop_overhead)"
    )
    return report
