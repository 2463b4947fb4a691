"""Every bad definition gets a DefinitionError naming the JSON path, and files stay as they were."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from amlretrain import DefinitionError, WebServiceDefinition
from amlretrain.studio.ilearner import patch_body
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


# -- what JSON leaves open: duplicate members, NaN/Infinity, numbers out of range -----

_BASE = json.dumps(sample_definition(), indent=2)
_TITLE = '"title": "Census predictive",'
_CONCURRENCY = '"maxConcurrentCalls": 4'

JSON_CASES = [
    (
        "duplicate member",
        _TITLE,
        '"title": "a", "title": "Census predictive",',
        "/properties/title",
        "appears more than once",
    ),
    (
        "duplicate member deep down",
        '"uri": "aml://module/score"',
        '"uri": "aml://module/score", "uri": "aml://module/other"',
        "/properties/assets/asset2/locationInfo/uri",
        "'uri' appears more than once",
    ),
    ("NaN", _CONCURRENCY, '"maxConcurrentCalls": NaN', "/properties/realtimeConfiguration/maxConcurrentCalls", "NaN"),
    ("Infinity", _CONCURRENCY, '"maxConcurrentCalls": Infinity', "/properties/realtimeConfiguration/maxConcurrentCalls", "Infinity"),
    ("-Infinity", '"team": "ml"', '"team": [1, -Infinity]', "/tags/team/1", "-Infinity"),
    ("beyond a double", _CONCURRENCY, '"maxConcurrentCalls": 1e400', "/properties/realtimeConfiguration/maxConcurrentCalls", "1.8e308"),
    ("integer beyond 2**53 - 1", _CONCURRENCY, f'"maxConcurrentCalls": {2**53}', "/properties/realtimeConfiguration/maxConcurrentCalls", "9007199254740992 is out of range"),
    ("negative integer", _CONCURRENCY, f'"maxConcurrentCalls": -{2**64}', "/properties/realtimeConfiguration/maxConcurrentCalls", "out of range"),
    ("more digits than Python reads", _CONCURRENCY, '"maxConcurrentCalls": ' + "9" * 5000, "/properties/realtimeConfiguration/maxConcurrentCalls", "beyond"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "old", "new", "path", "message"), JSON_CASES, ids=[c[0] for c in JSON_CASES]
)
def test_what_json_leaves_open_is_refused_with_its_path(
    tmp_path: Path, label: str, old: str, new: str, path: str, message: str
) -> None:
    assert old in _BASE
    file = tmp_path / "export.json"
    file.write_text(_BASE.replace(old, new, 1))
    with pytest.raises(DefinitionError) as info:
        WebServiceDefinition.load(file)
    assert info.value.path == path
    assert message in str(info.value) and str(file) in str(info.value)
    # Read without validation, it is still refused by validate() and never sent.
    loose = WebServiceDefinition.load(file, validate=False)
    for check in (loose.validate, loose.for_put, lambda: patch_body(loose, loose)):
        with pytest.raises(DefinitionError) as again:
            check()
        assert again.value.path == path


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (float("nan"), "/properties/realtimeConfiguration/maxConcurrentCalls"),
        (float("-inf"), "/properties/realtimeConfiguration/maxConcurrentCalls"),
        (-(2**53), "/properties/realtimeConfiguration/maxConcurrentCalls"),
    ],
)
def test_documents_built_in_code_are_checked_too(value: Any, path: str) -> None:
    doc = sample_definition()
    doc["properties"]["realtimeConfiguration"]["maxConcurrentCalls"] = value
    with pytest.raises(DefinitionError) as info:
        WebServiceDefinition.from_dict(doc)
    assert info.value.path == path


@pytest.mark.parametrize("value", ["9007199254740991", "-9007199254740991", "1.7976931348623157e308", "1e-400", "1.5E+300", "-0", "true"])  # fmt: skip
def test_numbers_within_range_are_fine(value: str) -> None:
    WebServiceDefinition.from_json(_BASE.replace(_CONCURRENCY, f'"maxConcurrentCalls": {value}'))


def test_the_first_problem_in_document_order_is_named() -> None:
    text = _BASE.replace('"team": "ml"', '"team": NaN').replace(_CONCURRENCY, '"x": 1, "x": 2')
    with pytest.raises(DefinitionError) as info:
        WebServiceDefinition.from_json(text)
    assert info.value.path == "/properties/realtimeConfiguration/x"  # duplicates first
    with pytest.raises(DefinitionError) as info:
        WebServiceDefinition.from_json(_BASE.replace('"team": "ml"', '"team": NaN, "b": NaN'))
    assert info.value.path == "/tags/team"


class _Adapter:
    """The ARM resource operations, recording what would be sent."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.sent: list[str] = []

    def get(self, resource_id: str, api_version: str, params: dict[str, str]) -> Any:
        return json.loads(json.dumps(self.doc))

    def begin_patch(self, *args: Any) -> Any:
        self.sent.append("PATCH")
        raise AssertionError("an invalid definition was sent")

    def begin_put(self, *args: Any) -> Any:
        self.sent.append("PUT")
        raise AssertionError("an invalid definition was sent")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("case", JSON_CASES[:4], ids=[c[0] for c in JSON_CASES[:4]])
def test_the_arm_client_never_sends_such_a_definition(
    monkeypatch: pytest.MonkeyPatch, case: tuple[str, str, str, str, str]
) -> None:
    import amlretrain.studio.webservices as arm_module
    from amlretrain.studio.webservices import WebServicesClient

    current = sample_definition()
    current["properties"]["provisioningState"] = "Succeeded"
    adapter = _Adapter(current)
    monkeypatch.setattr(arm_module, "ResourcesAdapter", lambda *a: adapter)
    client = WebServicesClient(object(), "sub")  # type: ignore[arg-type]
    _, old, new, path, _ = case
    bad = WebServiceDefinition.from_json(_BASE.replace(old, new, 1), validate=False)
    bad = bad.with_trained_model("https://acct.blob.core.windows.net/models/v2/m.ilearner")
    for send in (
        lambda: client.update("rg", "svc", bad),
        lambda: client.update("rg", "svc", bad, expected=WebServiceDefinition.from_dict(current)),
        lambda: client.create_or_update("rg", "svc", bad, overwrite_fetched=True),
    ):
        with pytest.raises(DefinitionError) as info:
            send()
        assert info.value.path == path
    assert adapter.sent == []
