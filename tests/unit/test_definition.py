"""WebServiceDefinition: lossless round trips, typed views, files, PUT bodies, secrets."""

from __future__ import annotations

import codecs
import json
import os
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amlretrain import DefinitionError, WebServiceDefinition
from amlretrain.studio.definition import GraphNode, WebServiceParameter
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


def _json_of(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(_member_names(), children, max_size=5)
        ),
        max_leaves=30,
    )


_SAFE = 2**53 - 1
#: Values a valid definition may hold (numbers within what services read exactly).
_json = _json_of(
    st.none()
    | st.booleans()
    | st.integers(min_value=-_SAFE, max_value=_SAFE)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
#: Anything Python's json reads, out-of-range numbers included (validate=False).
_any_json = _json_of(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_member_names(), _any_json, max_size=6), _any_json)
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


# -- files come back as they were: bytes, encodings, newlines, indentation -------------

NEW_URI = MODEL_URI.replace("v1", "v2")
_ENCODINGS = [
    ("utf-8", b""),
    ("utf-8", codecs.BOM_UTF8),
    ("utf-16-le", codecs.BOM_UTF16_LE),
    ("utf-16-be", codecs.BOM_UTF16_BE),
    ("utf-16-le", b""),  # no BOM: told by the zero bytes around the first "{"
]
_LAYOUTS = [
    (2, None),
    (4, None),
    ("\t", None),
    (None, (",", ":")),  # compact, no whitespace at all
    (None, (", ", ": ")),
]


@attrs.frozen
class _Format:
    """How a file is written: what PowerShell, editors and other tools produce."""

    encoding: str
    bom: bytes
    indent: int | str | None
    separators: tuple[str, str] | None
    newline: str
    final_newline: bool
    ensure_ascii: bool

    def render(self, doc: Any) -> bytes:
        text = json.dumps(
            doc, indent=self.indent, separators=self.separators, ensure_ascii=self.ensure_ascii
        )
        text = text.replace("\n", self.newline) + (self.newline if self.final_newline else "")
        return self.bom + text.encode(self.encoding)


_formats = st.builds(
    lambda enc, layout, newline, final, ascii_only: _Format(
        enc[0], enc[1], layout[0], layout[1], newline, final, ascii_only
    ),
    st.sampled_from(_ENCODINGS),
    st.sampled_from(_LAYOUTS),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
    st.booleans(),
)
#: Credentials as a user types them: ASCII, quotes and backslashes included.
_credentials = st.none() | st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12
)


def _with_extras(extra: dict[str, Any], pascal: bool) -> dict[str, Any]:
    doc = sample_definition(pascal=pascal)
    doc["properties"]["description"] = "Übersicht – ünïcödé ✓"
    for key, value in extra.items():
        doc["properties"]["assets"]["asset2"].setdefault(key, value)
        doc.setdefault(key, value)
    return doc


@settings(max_examples=150, deadline=None)
@given(
    fmt=_formats,
    extra=st.dictionaries(st.text(min_size=1), _json, max_size=3),
    pascal=st.booleans(),
)
def test_a_file_loaded_and_saved_unchanged_comes_back_byte_for_byte(
    tmp_path_factory: pytest.TempPathFactory, fmt: _Format, extra: dict[str, Any], pascal: bool
) -> None:
    folder = tmp_path_factory.mktemp("same")
    data = fmt.render(_with_extras(extra, pascal))
    (folder / "in.json").write_bytes(data)
    WebServiceDefinition.load(folder / "in.json").save(folder / "out.json")
    assert (folder / "out.json").read_bytes() == data


@settings(max_examples=150, deadline=None)
@given(
    fmt=_formats,
    extra=st.dictionaries(st.text(min_size=1), _json, max_size=3),
    pascal=st.booleans(),
    credentials=_credentials,
)
def test_a_rewritten_file_keeps_its_format_and_only_the_changed_value_differs(
    tmp_path_factory: pytest.TempPathFactory,
    fmt: _Format,
    extra: dict[str, Any],
    pascal: bool,
    credentials: str | None,
) -> None:
    folder = tmp_path_factory.mktemp("rewritten")
    doc = _with_extras(extra, pascal)
    (folder / "in.json").write_bytes(fmt.render(doc))
    loaded = WebServiceDefinition.load(folder / "in.json")
    loaded.with_trained_model(NEW_URI, credentials=credentials).save(folder / "out.json")
    location = doc["properties"]["assets"]["asset1"]["locationInfo"]
    location["uri"] = NEW_URI
    if credentials is not None:
        location["credentials"] = credentials  # added after the last member
    assert (folder / "out.json").read_bytes() == fmt.render(doc)


# PowerShell 5.1's ConvertTo-Json: two spaces after the colon, odd indentation, CRLF,
# and number spellings Python would not write back (1.50, 1E+3, 0.0, -0).
POWERSHELL_EXPORT = (
    "{\r\n"
    '    "name":  "svc",\r\n'
    '    "location":  "South Central US",\r\n'
    '    "properties":  {\r\n'
    '                       "title":  "Census \\u00e9 predictive",\r\n'
    '                       "realtimeConfiguration":  { "maxConcurrentCalls":  4 },\r\n'
    '                       "exampleRequest":  { "globalParameters":  { "t":  1.50, "n":  1E+3, '
    '"z":  0.0, "m":  -0 } },\r\n'
    '                       "packageType":  "Graph",\r\n'
    '                       "assets":  {\r\n'
    '                                      "asset1":  {\r\n'
    '                                                     "name":  "M [trained model]",\r\n'
    '                                                     "type":  "Resource",\r\n'
    '                                                     "locationInfo":  {\r\n'
    f'                                                                          "uri":  "{MODEL_URI}"\r\n'
    "                                                                      }\r\n"
    "                                                 }\r\n"
    "                                  }\r\n"
    "                   }\r\n"
    "}"
)


@pytest.mark.parametrize("bom", [b"", codecs.BOM_UTF8])
def test_a_powershell_export_is_rewritten_in_place(tmp_path: Path, bom: bytes) -> None:
    path = tmp_path / "export.json"
    path.write_bytes(bom + POWERSHELL_EXPORT.encode("utf-8"))
    d = WebServiceDefinition.load(path)
    d.save(tmp_path / "same.json")
    assert (tmp_path / "same.json").read_bytes() == path.read_bytes()
    d.with_trained_model(NEW_URI).save(path)
    assert path.read_bytes() == bom + POWERSHELL_EXPORT.replace(MODEL_URI, NEW_URI).encode()


def test_an_added_member_follows_the_layout_of_its_object(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_bytes(POWERSHELL_EXPORT.encode("utf-16-le"))  # no BOM
    WebServiceDefinition.load(path).with_trained_model(NEW_URI, credentials="c").save(path)
    expected = POWERSHELL_EXPORT.replace(
        f'"uri":  "{MODEL_URI}"',
        f'"uri":  "{NEW_URI}",\r\n' + " " * 74 + '"credentials":  "c"',
    )
    assert path.read_bytes() == expected.encode("utf-16-le")


def test_a_change_that_cannot_be_spliced_keeps_encoding_newlines_and_indentation(
    tmp_path: Path,
) -> None:
    doc = sample_definition()
    doc["properties"]["assets"]["asset2"]["locationInfo"]["credentials"] = "cred-secret"
    fmt = _Format("utf-16-be", codecs.BOM_UTF16_BE, "\t", None, "\r\n", True, False)
    path = tmp_path / "export.json"
    path.write_bytes(fmt.render(doc))
    WebServiceDefinition.load(path).without_secrets().save(tmp_path / "shared.json")
    del doc["properties"]["assets"]["asset2"]["locationInfo"]["credentials"]  # a removal
    assert (tmp_path / "shared.json").read_bytes() == fmt.render(doc)


def test_a_file_with_duplicate_members_read_without_validation_saves_unchanged(
    tmp_path: Path,
) -> None:
    text = json.dumps(sample_definition(), indent=2).replace(
        '"title": "Census predictive",', '"title": "a",\n    "title": "Census predictive",'
    )
    path = tmp_path / "dup.json"
    path.write_text(text)
    d = WebServiceDefinition.load(path, validate=False)
    d.save(tmp_path / "same.json")
    assert (tmp_path / "same.json").read_text() == text
    d.with_trained_model(NEW_URI).save(tmp_path / "new.json")  # re-written: one title left
    written = (tmp_path / "new.json").read_text()
    assert written.count('"title"') == 1 and NEW_URI in written


def test_a_definition_built_in_code_is_saved_like_export(tmp_path: Path) -> None:
    d = WebServiceDefinition.from_dict(sample_definition())
    d.save(tmp_path / "d.json")
    assert (tmp_path / "d.json").read_bytes() == (d.to_json() + "\n").encode("utf-8")
