"""Bad input: everything that parses outside input refuses it with amlretrain's own errors.

Property-based (hypothesis) fuzzing of definition files, ARM responses, classic endpoints,
batch job status documents, evaluation CSVs, retrain.toml and CLI arguments; plus
oversized and hostile input (a 50 MB definition, 100k-deep JSON, a 10 MB error body, a
Retry-After of a year).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amlretrain import WebServiceDefinition
from amlretrain._errormap import MAX_BODY_IN_MESSAGE, error_from_response
from amlretrain._http import _make_retry
from amlretrain.cli import main
from amlretrain.config import parse_config
from amlretrain.errors import AmlRetrainError, DefinitionError, ServiceError
from amlretrain.evaluation import EvaluationMetrics
from amlretrain.studio.jobstatus import JobStatus
from amlretrain.studio.models import Endpoint

FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=30,
)

#: Keys a definition, endpoint or config really uses, so the fuzzer gets past the first level.
_KEYS = st.sampled_from(
    [
        "properties", "packageType", "package", "assets", "locationInfo", "uri", "type",
        "nodes", "edges", "graphParameters", "name", "location", "Resources", "Name",
        "Location", "BaseLocation", "RelativeLocation", "SasBlobToken", "PrimaryKey",
        "ApiLocation", "training", "targets", "kind", "gate", "thresholds", "data",
        "storage", "ledger", "api_key", "web_service", "endpoint", "resource_group",
        "input", "output", "credentials", "readOnly", "exampleRequest", "inputs",
    ]
)  # fmt: skip
shaped = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=6),
    max_leaves=40,
)


def _only_ours(call: Any, *args: Any) -> None:
    """Call; an amlretrain error (with a message) is fine, anything else fails the test."""
    try:
        call(*args)
    except AmlRetrainError as err:
        message = str(err)
    else:
        return
    assert message, "an error without a message"


@FAST
@given(st.binary(max_size=400))
def test_definition_from_random_bytes(data: bytes) -> None:
    _only_ours(WebServiceDefinition.from_json, data)


@FAST
@given(shaped)
def test_definition_from_random_json(value: Any) -> None:
    _only_ours(WebServiceDefinition.from_json, json.dumps(value))
    if isinstance(value, dict):
        _only_ours(WebServiceDefinition.from_dict, value)


@FAST
@given(st.dictionaries(_KEYS, shaped, max_size=6))
def test_arm_response_with_random_properties(props: dict[str, Any]) -> None:
    doc = {"id": "/subscriptions/s/resourceGroups/g/providers/x/webServices/n", "name": "n",
           "location": "westus", "properties": props}  # fmt: skip
    _only_ours(WebServiceDefinition.from_dict, doc)


@FAST
@given(st.dictionaries(_KEYS, shaped, max_size=6))
def test_classic_endpoint_from_random_json(value: Any) -> None:
    # Only objects: the client refuses a body that is not one before from_dict.
    _only_ours(Endpoint.from_dict, value)


def test_classic_endpoint_with_a_number_for_resources_is_read_tolerantly() -> None:
    endpoint = Endpoint.from_dict({"Name": "e", "Resources": 1})
    assert endpoint.name == "e"
    assert endpoint.resources == ()


@FAST
@given(json_values | st.sampled_from(["Running", "Finished", "Canceled", "7", "-1", "", "nan"]))
def test_job_status_from_anything(value: Any) -> None:
    _only_ours(JobStatus.parse, value)


@FAST
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_evaluation_csv_from_random_input(data: bytes | str) -> None:
    _only_ours(EvaluationMetrics.from_csv, data)


def test_evaluation_csv_with_a_carriage_return_in_a_field_is_a_typed_error() -> None:
    with pytest.raises(AmlRetrainError, match="not CSV"):
        EvaluationMetrics.from_csv(b"\r\x00")


@FAST
@given(st.lists(st.lists(st.sampled_from(["AUC", "Accuracy", "0.9", "x", "", "1e999", "-"]),
                         max_size=4), max_size=4))  # fmt: skip
def test_evaluation_csv_from_csv_like_rows(rows: list[list[str]]) -> None:
    _only_ours(EvaluationMetrics.from_csv, "\n".join(",".join(r) for r in rows))


@FAST
@given(st.dictionaries(_KEYS, shaped, max_size=6))
def test_retrain_toml_from_random_tables(data: dict[str, Any]) -> None:
    _only_ours(lambda: parse_config(data, source="retrain.toml", environ={}))


_WORDS = st.sampled_from(
    [
        "retrain", "deploy", "rollback", "history", "definition", "show", "validate",
        "rewrite", "diff", "webservice", "get", "list", "export", "endpoint", "job",
        "--config", "--output", "json", "--dry-run", "--data", "-g", "--model-uri",
        "--debug", "--verbose", "{file}", "{missing}", "--", "-", "x" * 300, "\u00e9\u00df",
    ]
)  # fmt: skip
#: Exit codes the CLI documents (amlretrain --help) plus 2 for usage errors.
DOCUMENTED = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 130}


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(argv=st.lists(_WORDS | st.text(max_size=15), max_size=6))
def test_cli_with_random_arguments(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("AMLRETRAIN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AMLRETRAIN_PROFILES", str(tmp_path / "none.toml"))
    monkeypatch.chdir(tmp_path)
    inputs = tmp_path / "input.json"
    inputs.write_text('{"properties": {"packageType": "Graph"}}')
    digest = hashlib.sha256(inputs.read_bytes()).hexdigest()
    argv = [a.replace("{file}", str(inputs)).replace("{missing}", "nope.toml") for a in argv]
    argv = [a for a in argv if a != "--debug" and a not in ("demo", "emulator")]
    if "demo" in argv or "emulator" in argv or (argv and argv[0] in ("demo", "emulator")):
        return
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse: usage errors and --help/--version
                code = exit_.code if isinstance(exit_.code, int) else 2
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert code in DOCUMENTED, (argv, code, err.getvalue()[-500:])
    assert "Traceback" not in err.getvalue(), (argv, err.getvalue()[-2000:])
    assert hashlib.sha256(inputs.read_bytes()).hexdigest() == digest, "an input file changed"


# -- oversized and hostile input ----------------------------------------------------------


@pytest.mark.slow
def test_a_50_mb_definition_is_read_or_refused_with_a_definition_error() -> None:
    big = {"name": "n", "location": "westus", "properties": {
        "packageType": "Graph", "description": "x" * (50 * 1024 * 1024)}}  # fmt: skip
    text = json.dumps(big)
    _only_ours(WebServiceDefinition.from_json, text)


def test_json_nested_100k_levels_is_refused_with_a_definition_error() -> None:
    deep = '{"properties": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(DefinitionError, match="nested"):
        WebServiceDefinition.from_json(deep)


def test_a_10_mb_error_body_gives_a_short_message() -> None:
    body = json.dumps({"error": {"code": "Boom", "message": "m" * (10 * 1024 * 1024)}}).encode()
    err = error_from_response(500, body=body, method="GET", url="http://x/y")
    assert isinstance(err, ServiceError)
    assert len(str(err)) < MAX_BODY_IN_MESSAGE * 3
    raw = error_from_response(500, body=b"<html>" + b"z" * (10 * 1024 * 1024))
    assert len(str(raw)) < MAX_BODY_IN_MESSAGE * 3


def test_a_retry_after_of_a_year_is_capped_and_said(caplog: pytest.LogCaptureFixture) -> None:
    retry = _make_retry(3, 0.5, 60.0)
    with caplog.at_level(logging.INFO, logger="amlretrain._http"):
        assert retry.parse_retry_after(str(365 * 24 * 3600)) == 60.0
    assert any("capped" in r.getMessage() for r in caplog.records)
