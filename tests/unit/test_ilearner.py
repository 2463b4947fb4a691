"""The rewriter: finding trained models, changing exactly one value, diffs and PATCH bodies."""

from __future__ import annotations

import itertools
import json
import warnings
from datetime import datetime, timedelta, timezone
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amlretrain import ConfigurationError, WebServiceDefinition
from amlretrain.studio.ilearner import SasExpiryWarning, check_model_uri, patch_body
from tests.conftest import MODEL_URI, sample_definition

NEW_URI = "https://acct.blob.core.windows.net/models/v2/census.ilearner"


def _definition(**kw: Any) -> WebServiceDefinition:
    return WebServiceDefinition.from_dict(sample_definition(**kw))


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{prefix}/{k}"))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_leaves(v, f"{prefix}/{i}"))
        return out
    return {prefix: value}


def test_trained_models_are_found_by_name_and_type() -> None:
    models = _definition().trained_models
    assert [(m.asset_id, m.name, m.uri) for m in models] == [
        ("asset1", "Census Model [trained model]", MODEL_URI)
    ]


def test_trained_models_are_found_by_ilearner_extension() -> None:
    doc = sample_definition()
    doc["properties"]["assets"]["asset1"]["name"] = "Some model"
    doc["properties"]["assets"]["asset3"] = {
        "name": "Other [trained model]",
        "type": "Resource",
        "locationInfo": {"uri": "https://a.blob.core.windows.net/c/x.ilearner"},
    }
    ids = [m.asset_id for m in WebServiceDefinition.from_dict(doc).trained_models]
    assert ids == ["asset1", "asset3"]


def test_module_assets_are_not_trained_models() -> None:
    ids = [m.asset_id for m in _definition().trained_models]
    assert "asset2" not in ids


def test_rewrite_changes_only_the_trained_model_uri() -> None:
    d = _definition(pascal=True)
    d2 = d.with_trained_model(NEW_URI)
    before, after = _leaves(d.to_dict()), _leaves(d2.to_dict())
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed == {"/properties/assets/asset1/locationInfo/uri"}
    assert set(before) == set(after)
    assert d.to_dict()["properties"]["assets"]["asset1"]["locationInfo"]["uri"] == MODEL_URI


def test_rewrite_by_asset_name_and_with_credentials() -> None:
    d2 = _definition().with_trained_model(
        NEW_URI, asset="Census Model [trained model]", credentials="cred"
    )
    loc = d2.to_dict()["properties"]["assets"]["asset1"]["locationInfo"]
    assert loc == {"uri": NEW_URI, "credentials": "cred"}


def _two_models() -> WebServiceDefinition:
    doc = sample_definition()
    doc["properties"]["assets"]["asset3"] = {
        "name": "Second [trained model]",
        "type": "Resource",
        "locationInfo": {"uri": "https://a.blob.core.windows.net/c/second.ilearner"},
    }
    return WebServiceDefinition.from_dict(doc)


def test_ambiguous_rewrite_lists_the_candidates() -> None:
    with pytest.raises(ConfigurationError) as info:
        _two_models().with_trained_model(NEW_URI)
    text = str(info.value)
    assert "2 trained models" in text
    assert "asset1" in text and "asset3" in text


def test_rewrite_of_an_unknown_asset_lists_the_candidates() -> None:
    with pytest.raises(ConfigurationError, match=r"no asset .*'nope'.*asset1"):
        _two_models().with_trained_model(NEW_URI, asset="nope")


def test_rewrite_picks_the_named_one_of_several() -> None:
    d2 = _two_models().with_trained_model(NEW_URI, asset="asset3")
    assert d2.assets["asset3"].location_info.uri == NEW_URI  # type: ignore[union-attr]
    assert d2.assets["asset1"].location_info.uri == MODEL_URI  # type: ignore[union-attr]


def test_definition_without_trained_model_says_so() -> None:
    doc = sample_definition()
    del doc["properties"]["assets"]["asset1"]
    doc["properties"]["package"]["nodes"].pop("node2")
    doc["properties"]["package"]["edges"].pop(1)
    with pytest.raises(ConfigurationError, match="no trained-model asset"):
        WebServiceDefinition.from_dict(doc).with_trained_model(NEW_URI)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("http://acct.blob.core.windows.net/c/m.ilearner", "plain http"),
        ("ftp://acct/c/m.ilearner", "not an https URL"),
        ("https://acct.blob.core.windows.net/c/m.csv", "does not name an .ilearner"),
        ("https:///c/m.ilearner", "no host"),
        ("https://a.blob.core.windows.net/c/m.ilearner?se=2001-01-01T00:00:00Z&sig=x", "expired"),
    ],
)
def test_bad_model_uris_are_refused(uri: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _definition().with_trained_model(uri)


def test_loopback_http_is_accepted_for_the_emulator() -> None:
    uri = "http://127.0.0.1:10000/devstoreaccount1/models/m.ilearner"
    assert _definition().with_trained_model(uri).trained_models[0].uri == uri


def test_expired_sas_error_never_shows_the_signature() -> None:
    uri = "https://a.blob.core.windows.net/c/m.ilearner?se=2001-01-01T00:00:00Z&sig=TOPSECRET"
    with pytest.raises(ConfigurationError) as info:
        check_model_uri(uri)
    assert "TOPSECRET" not in str(info.value)


def test_sas_expiring_within_an_hour_warns() -> None:
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    soon = (now + timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (now + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    base = "https://a.blob.core.windows.net/c/m.ilearner?sig=s&se="
    with pytest.warns(SasExpiryWarning, match="expires"):
        assert check_model_uri(base + soon, now=now)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_model_uri(base + later, now=now) == []


def test_diff_of_a_rewrite_is_test_then_replace() -> None:
    d = _definition()
    patch = d.diff(d.with_trained_model(NEW_URI))
    path = "/properties/assets/asset1/locationInfo/uri"
    assert list(patch) == [
        {"op": "test", "path": path, "value": MODEL_URI},
        {"op": "replace", "path": path, "value": NEW_URI},
    ]


def test_diff_applies_to_the_old_document_and_fails_on_a_changed_one() -> None:
    d = _definition(pascal=True)
    d2 = d.with_trained_model(NEW_URI)
    patch = d.diff(d2)
    assert patch.apply(d.to_dict()) == d2.to_dict()
    changed = d.to_dict()
    changed["properties"]["assets"]["asset1"]["locationInfo"]["uri"] = "https://x/other.ilearner"
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        patch.apply(changed)


def test_diff_of_identical_definitions_is_empty() -> None:
    assert list(_definition().diff(_definition())) == []


@settings(max_examples=60, deadline=None)
@given(
    path=st.lists(
        st.text("abcdefghijklmnopqrstuvwxyz0123456789-_ ~/", min_size=1, max_size=12),
        min_size=1,
        max_size=3,
    ),
    pascal=st.booleans(),
)
def test_any_rewrite_changes_exactly_one_value(path: list[str], pascal: bool) -> None:
    import urllib.parse

    uri = (
        "https://acct.blob.core.windows.net/"
        + "/".join(urllib.parse.quote(p) for p in path)
        + ".ilearner"
    )
    d = _definition(pascal=pascal)
    d2 = d.with_trained_model(uri)
    ops = [op for op in d.diff(d2) if op["op"] != "test"]
    assert ops == [
        {"op": "replace", "path": "/properties/assets/asset1/locationInfo/uri", "value": uri}
    ]


def test_patch_body_holds_only_the_changed_asset_and_package_type() -> None:
    d = _definition(pascal=True)
    body = patch_body(d, d.with_trained_model(NEW_URI))
    assert body == {
        "properties": {
            "assets": {
                "asset1": {
                    "name": "Census Model [trained model]",
                    "type": "Resource",
                    "locationInfo": {"uri": NEW_URI},
                    "outputPorts": {"Trained model": {"type": "Dataset"}},
                }
            },
            "packageType": "Graph",
        }
    }


def test_patch_body_of_no_change_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="changes nothing"):
        patch_body(_definition(), _definition())


def test_patch_body_leaves_members_the_new_definition_lacks() -> None:
    old = _definition()
    doc = sample_definition()
    del doc["properties"]["description"]
    doc["properties"]["title"] = "changed"
    body = patch_body(old, WebServiceDefinition.from_dict(doc))
    assert body == {"properties": {"title": "changed", "packageType": "Graph"}}


def test_patch_body_never_sends_read_only_members() -> None:
    doc = sample_definition()
    doc["properties"]["modifiedOn"] = "2030-01-01T00:00:00Z"
    doc["properties"]["provisioningState"] = "Provisioning"
    doc["id"] = "/subscriptions/other/.../webServices/other"
    with pytest.raises(ConfigurationError, match="changes nothing"):
        patch_body(_definition(), WebServiceDefinition.from_dict(doc))


def test_an_export_without_secrets_changes_only_what_was_edited() -> None:
    doc = sample_definition()
    sas = "?sv=2020&se=2099-01-01T00:00:00Z&sig=SECRET"
    doc["properties"]["assets"]["asset1"]["locationInfo"]["uri"] = MODEL_URI + sas
    doc["properties"]["assets"]["asset2"]["locationInfo"]["credentials"] = "cred"
    live = WebServiceDefinition.from_dict(doc)
    exported = live.without_secrets()
    assert "SECRET" not in exported.to_json()
    with pytest.raises(ConfigurationError, match="changes nothing"):
        patch_body(live, exported)
    edited = exported.with_trained_model(NEW_URI)
    shared = [json.dumps(d.document(canonical=True)) for d in (live, edited)]
    body = patch_body(live, edited)
    # patch_body works on views of the shared documents: it must leave them as they were
    assert [json.dumps(d.document(canonical=True)) for d in (live, edited)] == shared
    assert "SECRET" not in json.dumps(edited.document())
    assert list(body["properties"]["assets"]) == ["asset1"]
    assert body["properties"]["assets"]["asset1"]["locationInfo"] == {"uri": NEW_URI}


def test_patch_body_of_a_title_change() -> None:
    doc = sample_definition()
    doc["properties"]["title"] = "New title"
    body = patch_body(_definition(), WebServiceDefinition.from_dict(doc))
    assert body == {"properties": {"title": "New title", "packageType": "Graph"}}


# -- member names in any case ----------------------------------------------------------


def _flip_case(value: Any, *, keys: bool = True) -> Any:
    """Every member name camelCase <-> PascalCase (map keys such as asset ids too)."""
    if isinstance(value, dict):
        return {
            (k[:1].swapcase() + k[1:] if keys else k): _flip_case(v, keys=keys)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_flip_case(v, keys=keys) for v in value]
    return value


@pytest.mark.parametrize("pascal", [False, True])
def test_camel_and_pascal_spellings_of_one_document_have_no_difference(pascal: bool) -> None:
    camel = _definition()
    for other in (
        _definition(pascal=True),
        WebServiceDefinition.from_dict(
            _flip_case(sample_definition(pascal=pascal)), validate=False
        ),
    ):
        assert list(camel.diff(other)) == []
        assert list(other.diff(camel)) == []
        with pytest.raises(ConfigurationError, match="changes nothing"):
            patch_body(camel, other)


def test_a_change_between_spellings_is_reported_alone_in_the_old_spelling() -> None:
    camel = _definition()
    pascal_doc = _flip_case(sample_definition())
    pascal_doc["Properties"]["Assets"]["Asset1"]["LocationInfo"]["Uri"] = NEW_URI
    pascal_doc["Properties"]["Package"]["Edges"][0]["TargetPortId"] = "Other"
    pascal = WebServiceDefinition.from_dict(pascal_doc, validate=False)
    ops = list(camel.diff(pascal))
    assert [(op["op"], op["path"]) for op in ops] == [
        ("test", "/properties/assets/asset1/locationInfo/uri"),
        ("replace", "/properties/assets/asset1/locationInfo/uri"),
        ("test", "/properties/package/edges"),
        ("replace", "/properties/package/edges"),
    ]
    applied = jsonpatch.JsonPatch(ops).apply(camel.to_dict())
    assert list(WebServiceDefinition.from_dict(applied, validate=False).diff(pascal)) == []
    body = patch_body(camel, pascal)
    assert set(body["properties"]) == {"assets", "package", "packageType"}
    assert set(body["properties"]["assets"]) == {"asset1"}  # the service's spelling


@settings(max_examples=100, deadline=None)
@given(flips=st.lists(st.booleans(), min_size=1, max_size=64), pascal=st.booleans())
def test_member_names_match_in_any_case(flips: list[bool], pascal: bool) -> None:
    names = itertools.cycle(flips)

    def respell(value: Any) -> Any:
        if isinstance(value, dict):
            return {(k.upper() if next(names) else k.lower()): respell(v) for k, v in value.items()}
        if isinstance(value, list):
            return [respell(v) for v in value]
        return value

    original = _definition(pascal=pascal)
    respelled = WebServiceDefinition.from_dict(respell(sample_definition()), validate=False)
    assert list(original.diff(respelled)) == []
    changed = respelled.to_dict()
    changed["newMember"] = 1
    assert [
        op["op"] for op in original.diff(WebServiceDefinition.from_dict(changed, validate=False))
    ] == ["add"]


def test_values_still_differ_by_case() -> None:
    d = _definition()
    doc = sample_definition()
    doc["properties"]["title"] = "CENSUS PREDICTIVE"
    ops = list(d.diff(WebServiceDefinition.from_dict(doc)))
    assert [op["path"] for op in ops] == ["/properties/title"] * 2


def test_an_empty_member_the_service_dropped_is_not_a_change() -> None:
    served = sample_definition()
    served["properties"].pop("parameters", None)  # the live service drops empty members
    exported = sample_definition()
    exported["properties"]["parameters"] = {}  # an older export still has it
    current = WebServiceDefinition.from_dict(served)
    new = WebServiceDefinition.from_dict(exported).with_trained_model(NEW_URI)
    body = patch_body(current, new)
    assert set(body["properties"]) == {"assets", "packageType"}
    exported["properties"]["parameters"] = {"Split": "0.7"}  # a real one is sent
    changed = WebServiceDefinition.from_dict(exported).with_trained_model(NEW_URI)
    assert patch_body(current, changed)["properties"]["parameters"] == {"Split": "0.7"}


# -- one JSON equality for diff and patch_body --------------------------------------------

SAS = "?sv=2020&se=2099-01-01T00:00:00Z&sig=SECRET"


def _with_sas(doc: dict[str, Any]) -> dict[str, Any]:
    doc["properties"]["assets"]["asset1"]["locationInfo"]["uri"] = MODEL_URI + SAS
    return doc


def _edit(doc: dict[str, Any], edit: str) -> None:
    props = doc["properties"]
    if edit == "sas withheld":  # an export without secrets: the same model
        props["assets"]["asset1"]["locationInfo"]["uri"] = MODEL_URI
    elif edit == "empty object added":  # the live service drops empty members
        props["parameters"] = {}
    elif edit == "member respelled":
        props["Title"] = props.pop("title")
    elif edit == "asset members respelled":
        props["assets"]["asset1"] = _flip_case(props["assets"]["asset1"])
    elif edit == "integer as float":
        props["realtimeConfiguration"]["maxConcurrentCalls"] = 4.0
    elif edit == "boolean as integer":
        props["exposeSampleData"] = 1
    elif edit == "title changed":
        props["title"] = "Census, retitled"
    elif edit == "uri changed":
        props["assets"]["asset1"]["locationInfo"]["uri"] = NEW_URI
    elif edit == "member added":
        props["diagnostics"]["expiry"] = "2030-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("edit", "changed"),
    [
        ("sas withheld", False),
        ("empty object added", False),
        ("member respelled", False),
        ("asset members respelled", False),
        ("integer as float", True),
        ("boolean as integer", True),
        ("title changed", True),
        ("uri changed", True),
        ("member added", True),
    ],
)
def test_diff_and_patch_body_agree_on_what_changed(edit: str, changed: bool) -> None:
    # Before 0.2.0 they did not: diff() reported a replace of a uri that only lost its
    # SAS, and an add of an empty object, where patch_body() said "changes nothing".
    old = WebServiceDefinition.from_dict(_with_sas(sample_definition()))
    doc = _with_sas(sample_definition())
    _edit(doc, edit)
    new = WebServiceDefinition.from_dict(doc, validate=False)
    ops = list(old.diff(new))
    if changed:
        assert ops
        assert patch_body(old, new)
    else:
        assert ops == []
        with pytest.raises(ConfigurationError, match="changes nothing"):
            patch_body(old, new)


def test_same_is_json_equality_as_the_service_reads_it() -> None:
    from amlretrain.studio.ilearner import same

    assert same({"Nodes": [1, {"A": "x"}]}, {"nodes": [1, {"a": "x"}]})
    assert same({"a": 1, "b": {}}, {"a": 1})  # an empty object is no member
    assert same(float("nan"), float("nan"))
    assert not same(1, 1.0)
    assert not same(True, 1)
    assert not same({"a": [1]}, {"a": [True]})
    assert not same({"a": 1, "b": {"c": 1}}, {"a": 1})
    assert not same("Value", "value")  # values still differ by case


def test_diff_and_patch_body_work_on_plain_documents() -> None:
    from amlretrain.studio.ilearner import json_patch, merge_patch, trained_models

    old = sample_definition()
    new = sample_definition()
    new["properties"]["assets"]["asset1"]["locationInfo"]["uri"] = NEW_URI
    path = "/properties/assets/asset1/locationInfo/uri"
    assert [op["op"] for op in json_patch(old, new)] == ["test", "replace"]
    assert json_patch(old, new)[1] == {"op": "replace", "path": path, "value": NEW_URI}
    body = merge_patch(old, new)
    assert body["properties"]["assets"]["asset1"]["locationInfo"] == {"uri": NEW_URI}
    assert [m.asset_id for m in trained_models(new)] == ["asset1"]
