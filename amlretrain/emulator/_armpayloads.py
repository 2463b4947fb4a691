"""The graph of a PUT whose ``payloadsInBlobStorage`` is true: read from its blob, made inline.

The live service (API-NOTES 1.3a) reads the blob ``payloadsLocation`` names and answers the
graph inline afterwards, ``payloadsInBlobStorage: false``, without ``payloadsLocation``.
"""

from __future__ import annotations

import copy
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from amlretrain.blobs import is_loopback_host
from amlretrain.emulator._armviews import ci_key, ci_pop
from amlretrain.emulator._server import Reply, Response, arm_error
from amlretrain.emulator.state import ci_get

__all__ = ["PAYLOAD_MEMBERS", "inline_payloads", "read_payloads"]

#: The members of ``properties`` a PUT may leave in a blob (``payloadsInBlobStorage``).
PAYLOAD_MEMBERS = ("assets", "input", "output", "package", "parameters", "exampleRequest")


def _respelled(data: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """``data`` with the members named in ``names`` (any casing) spelled as in ``names``."""
    canonical = {name.lower(): name for name in names}
    return {(canonical.get(k.lower(), k) if isinstance(k, str) else k): v for k, v in data.items()}


def _typed_package(package: Any) -> Any:
    """A package read from a payloads blob, spelled as the service answers it.

    The live GET (API-NOTES 1.3a) spells the package's own members and each node's
    members camelCase (``nodes``, ``edges``, ``graphParameters``, ``assetId``,
    ``parameters``, ``value``, ``certificateThumbprint``) and keeps everything else
    (edge members, assets, input, output, exampleRequest) as the blob spelled it.
    """
    if not isinstance(package, Mapping):
        return package
    out = _respelled(package, ("nodes", "edges", "graphParameters"))
    nodes = out.get("nodes")
    if isinstance(nodes, Mapping):
        typed: dict[str, Any] = {}
        for node_id, node in nodes.items():
            if isinstance(node, Mapping):
                node = _respelled(node, ("assetId", "inputId", "outputId", "parameters"))
                params = node.get("parameters")
                if isinstance(params, Mapping):
                    node["parameters"] = {
                        name: (
                            _respelled(value, ("value", "certificateThumbprint"))
                            if isinstance(value, Mapping)
                            else value
                        )
                        for name, value in params.items()
                    }
            typed[node_id] = node
        out["nodes"] = typed
    return out


def inline_payloads(properties: Mapping[str, Any], payloads: Mapping[str, Any]) -> dict[str, Any]:
    """``properties`` of a PUT with ``payloadsInBlobStorage``, the blob's graph made inline.

    The blob's members (matched case-insensitively) replace the inline ones under their
    camelCase names; ``payloadsLocation`` goes and ``payloadsInBlobStorage`` becomes
    false, as the live service answers (API-NOTES 1.3a).
    """
    out = {
        k: copy.deepcopy(v)
        for k, v in properties.items()
        if k.lower() not in ("payloadsinblobstorage", "payloadslocation")
    }
    for name in PAYLOAD_MEMBERS:
        key = ci_key(payloads, name)
        if key is None:
            continue
        ci_pop(out, name)
        value = copy.deepcopy(payloads[key])
        out[name] = _typed_package(value) if name == "package" else value
    out["payloadsInBlobStorage"] = False
    return out


def read_payloads(location: Mapping[str, Any], storage: Mapping[str, Any] | None) -> Any:
    """The JSON object in the blob a ``payloadsLocation`` names (answers 400 when unusable).

    Read with the SAS of its ``uri`` (or one in ``credentials``); a blob without a SAS is
    read with the service's storage account key when it is in that account. Only loopback
    storage (Azurite) is read: the emulator never reaches out to the internet. The error
    codes are the emulator's own (GUESS: the live service's were not recorded).
    """
    import requests

    uri = str(ci_get(location, "uri") or "")
    credentials = str(ci_get(location, "credentials") or "")
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https") or not is_loopback_host(parts.hostname):
        raise Reply(
            arm_error(
                400,
                "InvalidPayloadsLocation",
                "properties.payloadsLocation.uri must be an http(s) blob URL; the emulator "
                "reads payloads from its loopback storage (Azurite) only.",
            )
        )
    url = uri
    if not parts.query and (credentials.startswith("?") or "sig=" in credentials):
        url += credentials if credentials.startswith("?") else "?" + credentials
    with requests.Session() as http:
        http.trust_env = False  # loopback: never through a proxy
        try:
            resp = http.get(url, timeout=30)
        except requests.RequestException as err:
            raise Reply(_payloads_error(f"cannot reach the blob: {type(err).__name__}")) from err
    data = resp.content if resp.status_code == 200 else None
    if data is None and resp.status_code in (401, 403, 404):
        data = _read_with_account_key(uri, storage)
    if data is None:
        raise Reply(_payloads_error(f"reading the blob answered {resp.status_code}"))
    try:
        payloads = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as err:
        raise Reply(_payloads_error("the blob does not hold JSON")) from err
    if not isinstance(payloads, dict):
        raise Reply(_payloads_error("the blob does not hold a JSON object"))
    return payloads


def _read_with_account_key(uri: str, storage: Mapping[str, Any] | None) -> bytes | None:
    """The blob read with the PUT's ``storageAccount`` name and key, or None."""
    if storage is None or not ci_get(storage, "name") or not ci_get(storage, "key"):
        return None
    from azure.core.exceptions import AzureError
    from azure.storage.blob import BlobClient

    try:
        client = BlobClient.from_blob_url(
            uri.split("?", 1)[0],
            credential={
                "account_name": str(ci_get(storage, "name")),
                "account_key": str(ci_get(storage, "key")),
            },
        )
        if client.account_name != str(ci_get(storage, "name")):
            return None
        return bytes(client.download_blob().readall())
    except (AzureError, ValueError):
        return None


def _payloads_error(reason: str) -> Response:
    return arm_error(
        400,
        "InvalidPayloadsLocation",
        f"The payloads blob of properties.payloadsLocation could not be used: {reason}.",
    )
