"""WebServiceDefinition: lossless round trips, typed views, files, PUT bodies, secrets."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amlretrain import DefinitionError, WebServiceDefinition
from amlretrain.definition import GraphNode, WebServiceParameter
from tests.conftest import MODEL_URI, REFERENCE, sample_definition


def test_round_trip_keeps_values_order_and_casing() -> None:
    doc = sample_definition(pascal=True)
    out = WebServiceDefinition.from_dict(doc).to_dict()
    assert out == doc
    assert json.dumps(out) == json.dumps(doc)  # key order too


def test_members_are_read_case_insensitively() -> None:
    d = WebServiceDefinition.from_dict(sample_definition(pascal=True))
    assert d.properties is not None and d.properties.package is not None
    nodes = d.properties.package.nodes
    assert nodes is not None
    assert nodes["node1"].asset_id == "asset2"
    param = nodes["node1"].parameters["Threshold"]  # type: ignore[index]
    assert isinstance(param, WebServiceParameter)
    assert param.value == "0.5"


def test_preview_node_parameters_stay_plain_strings() -> None:
    doc = sample_definition(preview=True)
    d = WebServiceDefinition.from_dict(doc)
    node = d.properties.package.nodes["node1"]  # type: ignore[union-attr,index]
    assert isinstance(node, GraphNode)
    assert node.parameters == {"Threshold": "0.5"}
    assert d.api_shape == "2016-05-01-preview"
    assert WebServiceDefinition.from_dict(sample_definition()).api_shape == "2017-01-01"
    assert d.to_dict() == doc


def test_unknown_members_and_wrongly_typed_values_survive() -> None:
    doc = sample_definition()
    doc["newTopLevel"] = {"a": [1, 2]}
    doc["properties"]["assets"]["asset1"]["futureField"] = "x"
    doc["properties"]["realtimeConfiguration"] = "not-an-object"
    doc["properties"]["assets"]["asset2"]["parameters"] = {"oddly": "a map"}
    d = WebServiceDefinition.from_dict(doc)
    assert d.properties is not None
    assert d.properties.realtime_configuration is None
    assert d.to_dict() == doc


def test_new_members_written_by_the_library_are_camel_case() -> None:
    doc = sample_definition(pascal=True)
    del doc["properties"]["assets"]["asset1"]["locationInfo"]["uri"]
    doc["properties"]["assets"]["asset1"]["locationInfo"]["URI"] = MODEL_URI
    d = WebServiceDefinition.from_dict(doc)
    d2 = d.with_trained_model(MODEL_URI.replace("v1", "v2"), credentials="c")
    loc = d2.to_dict()["properties"]["assets"]["asset1"]["locationInfo"]
    assert list(loc) == ["URI", "credentials"]  # the read casing kept, the new member camelCase


def test_canonical_form_writes_known_members_in_camel_case() -> None:
    d = WebServiceDefinition.from_dict(sample_definition(pascal=True))
    package = d.to_dict(canonical=True)["properties"]["package"]
    assert set(package) == {"nodes", "edges", "graphParameters"}
    assert package["nodes"]["node1"]["parameters"]["Threshold"] == {
        "value": "0.5",
        "certificateThumbprint": "",
    }


def test_for_put_drops_read_only_members() -> None:
    body = WebServiceDefinition.from_dict(sample_definition()).for_put()
    assert "id" not in body and "name" not in body and "type" not in body
    for key in ("createdOn", "modifiedOn", "provisioningState", "swaggerLocation"):
        assert key not in body["properties"]
    assert body["properties"]["packageType"] == "Graph"
    assert body["location"] == "South Central US"


def test_without_secrets_drops_keys_storage_key_and_credentials() -> None:
    doc = sample_definition()
    doc["properties"]["keys"] = {"primary": "pk-secret", "secondary": "sk-secret"}
    doc["properties"]["storageAccount"]["key"] = "storage-secret"
    doc["properties"]["assets"]["asset2"]["locationInfo"]["credentials"] = "cred-secret"
    doc["properties"]["assets"]["asset1"]["locationInfo"]["uri"] = (
        MODEL_URI + "?se=2099&sig=SIGSECRET"
    )
    shared = WebServiceDefinition.from_dict(doc).without_secrets()
    text = shared.to_json()
    for secret in ("pk-secret", "sk-secret", "storage-secret", "cred-secret", "SIGSECRET"):
        assert secret not in text
    assert '"keys"' not in text and '"key"' not in text and ": null" not in text
    assert shared.trained_models[0].uri == MODEL_URI
    assert shared.to_dict()["properties"]["storageAccount"] == {"name": "acct"}


def test_repr_shows_no_keys_or_sas_signature() -> None:
    doc = sample_definition()
    doc["properties"]["keys"] = {"primary": "pk-secret", "secondary": "sk-secret"}
    sas_uri = MODEL_URI + "?sv=2020-01-01&se=2099-01-01T00:00:00Z&sig=SIGSECRET"
    doc["properties"]["assets"]["asset1"]["locationInfo"]["uri"] = sas_uri
    d = WebServiceDefinition.from_dict(doc)
    for text in (repr(d), repr(d.properties), d._repr_html_(), repr(d.trained_models)):
        assert "pk-secret" not in text
        assert "SIGSECRET" not in text
    assert "census.ilearner" in repr(d)


def test_save_is_atomic_and_load_reads_it_back(tmp_path: Path) -> None:
    d = WebServiceDefinition.from_dict(sample_definition(pascal=True))
    target = tmp_path / "export.json"
    target.write_text("old content")
    os.chmod(target, 0o600)
    d.save(target)
    assert WebServiceDefinition.load(target) == d
    assert (target.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["export.json"]  # no temp file left
    assert target.read_text(encoding="utf-8").startswith('{\n  "id"')  # indented like Export


def test_save_failure_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "export.json"
    target.write_text("precious")
    d = WebServiceDefinition.from_dict(sample_definition())

    def boom(*_: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(Exception, match="No space left"):
        d.save(target)
    assert target.read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["export.json"]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-8"])
def test_load_reads_powershell_encodings(tmp_path: Path, encoding: str) -> None:
    doc = sample_definition()
    doc["properties"]["description"] = "Übersicht – ünïcödé"
    path = tmp_path / "d.json"
    path.write_bytes(json.dumps(doc, indent=2, ensure_ascii=False).encode(encoding))
    assert WebServiceDefinition.load(path).to_dict() == doc


def test_every_reference_example_round_trips() -> None:
    seen = 0
    for path in sorted((REFERENCE / "2017-01-01" / "examples").glob("*.json")):
        example = json.loads(path.read_text())
        bodies = [v for v in example["parameters"].values() if isinstance(v, dict)]
        bodies += [r.get("body") for r in example["responses"].values()]
        for body in bodies:
            if isinstance(body, dict) and "properties" in body:
                d = WebServiceDefinition.from_dict(body, validate=False)
                assert d.to_dict() == body, path.name
                assert json.dumps(d.to_dict()) == json.dumps(body), path.name
                seen += 1
            for item in (body or {}).get("value", []) if isinstance(body, dict) else []:
                assert WebServiceDefinition.from_dict(item, validate=False).to_dict() == item
                seen += 1
    assert seen == 10  # the bodies of the vendored examples (putWebService.json has 3)


# -- property-based: any document, any casing, survives -------------------------------

_KNOWN = [
    "title", "description", "readOnly", "packageType", "assets", "package", "nodes", "edges",
    "assetId", "inputId", "parameters", "value", "locationInfo", "uri", "keys", "primary",
    "storageAccount", "name", "type", "graphParameters", "links", "nodeId", "exampleRequest",
]  # fmt: skip


@st.composite
def _member_names(draw: st.DrawFn) -> str:
    base = draw(st.sampled_from(_KNOWN) | st.text(min_size=1, max_size=8))
    style = draw(st.sampled_from(["keep", "upper-first", "upper", "lower"]))
    if style == "upper-first":
        return base[:1].upper() + base[1:]
    if style == "upper":
        return base.upper()
    if style == "lower":
        return base.lower()
    return base


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_member_names(), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_member_names(), _json, max_size=6), _json)
def test_any_document_round_trips_losslessly(doc: dict[str, Any], props: Any) -> None:
    doc = dict(doc)
    doc["properties"] = props
    d = WebServiceDefinition.from_dict(doc, validate=False)
    out = d.to_dict()
    assert out == doc
    assert list(out) == list(doc)


@settings(max_examples=100, deadline=None)
@given(
    extra=st.dictionaries(st.text(min_size=1), _json, max_size=4),
    pascal=st.booleans(),
    preview=st.booleans(),
)
def test_valid_documents_with_extra_members_round_trip(
    extra: dict[str, Any], pascal: bool, preview: bool
) -> None:
    doc = sample_definition(pascal=pascal, preview=preview)
    for key, value in extra.items():
        doc["properties"]["assets"]["asset1"].setdefault(key, value)
        doc["properties"]["package"].setdefault(key, value)
    assert WebServiceDefinition.from_dict(doc).to_dict() == doc


def test_invalid_document_error_names_the_path() -> None:
    doc = sample_definition()
    doc["properties"]["assets"]["asset1"]["locationInfo"] = {}
    with pytest.raises(DefinitionError) as info:
        WebServiceDefinition.from_dict(doc)
    assert info.value.path == "/properties/assets/asset1/locationInfo/uri"


@settings(max_examples=100, deadline=None)
@given(
    extra=st.dictionaries(st.text(min_size=1), _json, max_size=4),
    pascal=st.booleans(),
    preview=st.booleans(),
    credentials=st.none() | st.text(max_size=5),
)
def test_shared_documents_equal_what_the_model_writes(
    extra: dict[str, Any], pascal: bool, preview: bool, credentials: str | None
) -> None:
    # document() is shared (read from the file, or derived by the rewriter) rather than
    # recomputed: it must be exactly what unstructure() writes, order included.
    from amlretrain._wire import unstructure

    doc = sample_definition(pascal=pascal, preview=preview)
    for key, value in extra.items():
        doc["properties"]["assets"]["asset1"]["locationInfo"].setdefault(key, value)
        doc.setdefault(key, value)
    loaded = WebServiceDefinition.from_json(json.dumps(doc))
    assert json.dumps(loaded.document()) == json.dumps(unstructure(loaded))
    new = loaded.with_trained_model(MODEL_URI.replace("v1", "v9"), credentials=credentials)
    assert json.dumps(new.document()) == json.dumps(unstructure(new))
    assert json.dumps(loaded.document()) == json.dumps(doc)  # the original is untouched
