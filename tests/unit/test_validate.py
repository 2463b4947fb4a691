"""Every bad definition gets a DefinitionError naming the JSON path, and files stay as they were."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from amlretrain import DefinitionError, WebServiceDefinition
from tests.conftest import sample_definition


def _drop(*path: str) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return edit


def _set(value: Any, *path: str | int) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        node: Any = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


CASES = [
    ("no properties", _drop("properties"), "", "no 'properties'"),
    ("properties not object", _set([], "properties"), "/properties", "must be an object"),
    ("no packageType", _drop("properties", "packageType"), "/properties/packageType", "missing"),
    (
        "unknown packageType",
        _set("Code", "properties", "packageType"),
        "/properties/packageType",
        "unknown packageType 'Code'",
    ),
    (
        "asset without uri",
        _drop("properties", "assets", "asset1", "locationInfo", "uri"),
        "/properties/assets/asset1/locationInfo/uri",
        "no locationInfo.uri",
    ),
    (
        "asset without locationInfo",
        _drop("properties", "assets", "asset2", "locationInfo"),
        "/properties/assets/asset2/locationInfo",
        "no locationInfo",
    ),
    (
        "node names a missing asset",
        _set("asset9", "properties", "package", "nodes", "node1", "assetId"),
        "/properties/package/nodes/node1/assetId",
        "asset 'asset9'",
    ),
    (
        "edge names a missing node",
        _set("node9", "properties", "package", "edges", 1, "targetNodeId"),
        "/properties/package/edges/1/targetNodeId",
        "node 'node9'",
    ),
    (
        "payloads in blob storage",
        _set(True, "properties", "payloadsInBlobStorage"),
        "/properties/payloadsInBlobStorage",
        "not inline",
    ),
]


@pytest.mark.parametrize(("label", "edit", "path", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_definition_names_path_and_problem(
    label: str, edit: Callable[[dict[str, Any]], None], path: str, message: str
) -> None:
    doc = sample_definition()
    edit(doc)
    with pytest.raises(DefinitionError) as info:
        WebServiceDefinition.from_dict(doc)
    assert info.value.path == path
    assert message in str(info.value)


def test_pascal_case_paths_are_spelled_as_in_the_file() -> None:
    doc = sample_definition(pascal=True)
    doc["properties"]["package"]["Edges"][0]["SourceNodeId"] = "ghost"
    with pytest.raises(DefinitionError) as info:
        WebServiceDefinition.from_dict(doc)
    assert info.value.path == "/properties/package/Edges/0/SourceNodeId"


def test_json_pointer_escapes_slashes_and_tildes() -> None:
    doc = sample_definition()
    doc["properties"]["assets"]["a/b~c"] = {"name": "x", "type": "Module"}
    with pytest.raises(DefinitionError) as info:
        WebServiceDefinition.from_dict(doc)
    assert info.value.path == "/properties/assets/a~1b~0c/locationInfo"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object, not an array"),
        (b'"text"', "not a string"),
        (b"\xff\xfe\x00garbage", "not"),
        (b"", "not valid JSON"),
        (b"[" * 100000, "JSON"),
    ],
)
def test_unreadable_files_get_a_definition_error_and_stay_untouched(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    with pytest.raises(DefinitionError) as info:
        WebServiceDefinition.load(path)
    assert str(path) in str(info.value)
    assert message.split()[-1] in str(info.value) or message in str(info.value)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
