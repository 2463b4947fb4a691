"""Recorded (vcrpy) tests: cassettes in ``cassettes/``, replayed with the network blocked.

Playback is the default: pytest-recording's record mode is ``none`` unless
``--record-mode`` says otherwise, and every recorded test carries the ``block_network``
mark, which blocks sockets whenever the record mode is ``none``. ``record_mode`` is never
set here or in a marker (it would override the command line).

Recording (see cassettes/README.md): ``pytest tests/recorded --record-mode=rewrite``
starts the emulator (or, with ``AMLRETRAIN_RECORD_AGAINST=azure``, uses real Azure
settings from the environment), records, and scrubs every request and response before it
is written: the ``Authorization`` header goes, ``sig=`` becomes ``REDACTED``, secret JSON
members (keys, tokens, connection strings, credentials) are redacted with
:func:`amlretrain._redact.redact_data`, SAS expiry/start times are pinned, and the
emulator's random loopback ports are replaced by fixed ones so playback URLs are stable.
"""

from __future__ import annotations

import copy
import json
import os
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from amlretrain._redact import REDACTED, is_secret_field, redact
from amlretrain.credentials import StaticTokenCredential

REPO = Path(__file__).resolve().parents[2]
CASSETTES = REPO / "cassettes"
TARGET_FILE = CASSETTES / "recorded_target.json"

#: Fixed loopback addresses written into cassettes instead of the emulator's random ports.
SERVICE_HOST = "127.0.0.1:50001"
BLOB_HOST = "127.0.0.1:50002"
#: Pinned SAS times: playback must not see a SAS expire.
PINNED_EXPIRY = "2099-01-01T00%3A00%3A00Z"
PINNED_START = "2000-01-01T00%3A00%3A00Z"
#: Fake secrets used in playback (never sent anywhere: the network is blocked).
FAKE_TOKEN = "playback-token"
FAKE_KEY = "ZmFrZS1wbGF5YmFjay1rZXk="

#: real host:port -> placeholder, filled while recording against the emulator.
_HOSTS: dict[str, str] = {}


def recording(config: pytest.Config) -> bool:
    """True when pytest runs with a record mode other than ``none``."""
    return (config.getoption("--record-mode") or "none") != "none"


# -- scrubbers ----------------------------------------------------------------------------------


def scrub_text(text: str) -> str:
    """Placeholders for hosts, then redaction, then pinned SAS times."""
    for real, placeholder in _HOSTS.items():
        text = text.replace(real, placeholder)
    text = redact(text)
    text = re.sub(r"(?<![A-Za-z0-9])(se=)[^&\s\"'<>]+", r"\g<1>" + PINNED_EXPIRY, text)
    text = re.sub(r"(?<![A-Za-z0-9])(st=)[^&\s\"'<>]+", r"\g<1>" + PINNED_START, text)
    return text


def scrub_data(value: Any) -> Any:
    """Scrub decoded JSON: SAS tokens keep their shape (sig redacted), other secrets go."""
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and key.lower() == "sasblobtoken" and isinstance(item, str):
                out[key] = scrub_text(item)
            elif isinstance(key, str) and is_secret_field(key) and isinstance(item, str) and item:
                out[key] = REDACTED
            else:
                out[key] = scrub_data(item)
        return out
    if isinstance(value, list):
        return [scrub_data(v) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


def _scrub_body(body: Any) -> Any:
    if body is None:
        return None
    raw = body if isinstance(body, bytes) else str(body).encode("utf-8")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return body  # binary content (a model file): no text secrets to find
    try:
        data = json.loads(text)
    except ValueError:
        scrubbed = scrub_text(text)
    else:
        scrubbed = json.dumps(scrub_data(data))
    return scrubbed.encode("utf-8") if isinstance(body, bytes) else scrubbed


def _from_amlretrain(request: Any) -> bool:
    agent = next((str(v) for k, v in request.headers.items() if k.lower() == "user-agent"), "")
    return "amlretrain/" in agent


def scrub_request(request: Any) -> Any:
    """vcrpy ``before_record_request``: URI, headers and JSON body.

    Only amlretrain's own requests are kept (their User-Agent starts ``amlretrain/``): the
    emulator runs in this process while recording, and its calls to Azurite are not ours.
    """
    if not _from_amlretrain(request):
        return None
    request = copy.deepcopy(request)
    request.uri = scrub_text(request.uri)
    for name in list(request.headers):
        if name.lower() in ("authorization", "x-ms-metaanalytics-authorizationtoken"):
            del request.headers[name]
        else:
            request.headers[name] = scrub_text(str(request.headers[name]))
    request.body = _scrub_body(request.body)
    return request


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """vcrpy ``before_record_response``: headers and body."""
    response = copy.deepcopy(response)
    headers = response.get("headers", {})
    for name in list(headers):
        values = headers[name] if isinstance(headers[name], list) else [headers[name]]
        headers[name] = [scrub_text(str(v)) for v in values]
    body = response.get("body", {})
    if "string" in body:
        body["string"] = _scrub_body(body["string"])
    return response


# -- pytest-recording configuration --------------------------------------------------------------


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    """Scrubbers and matching; deliberately no ``record_mode`` (the command line decides)."""
    return {
        "filter_headers": ["authorization", "x-ms-metaanalytics-authorizationtoken"],
        "filter_query_parameters": [("sig", REDACTED)],
        "before_record_request": scrub_request,
        "before_record_response": scrub_response,
        "decode_compressed_response": True,
        "match_on": ("method", "scheme", "host", "port", "path", "query"),
    }


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    """Cassettes live in the repository's top-level cassettes/ folder."""
    return str(CASSETTES / request.module.__name__.rsplit(".", 1)[-1])


# -- the target: live while recording, from recorded_target.json in playback ---------------------


@attrs.frozen(kw_only=True)
class Target:
    """Where the recorded tests point (secrets hidden from repr)."""

    arm_base_url: str
    subscription_id: str
    resource_group: str
    arm_service_name: str
    management_url: str
    workspace_id: str
    training_api_location: str
    predictive_service: str
    predictive_endpoint: str
    predictive_resource_name: str
    predictive_api_location: str
    training_data: str
    arm_token: str = attrs.field(repr=False)
    workspace_token: str = attrs.field(repr=False)
    training_api_key: str = attrs.field(repr=False)
    predictive_api_key: str = attrs.field(repr=False)
    storage_connection_string: str = attrs.field(repr=False)

    SECRETS = (
        "arm_token",
        "workspace_token",
        "training_api_key",
        "predictive_api_key",
        "storage_connection_string",
    )

    def credential(self) -> StaticTokenCredential:
        """An ARM credential for this target."""
        return StaticTokenCredential(self.arm_token)

    def public(self) -> dict[str, str]:
        """The non-secret fields, with hosts replaced by placeholders."""
        data = attrs.asdict(self)
        return {k: scrub_text(str(v)) for k, v in data.items() if k not in self.SECRETS}


def _port(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc


def _playback_target() -> Target:
    if not TARGET_FILE.is_file():
        pytest.fail(f"{TARGET_FILE} is missing: record the cassettes (cassettes/README.md)")
    data = json.loads(TARGET_FILE.read_text(encoding="utf-8"))
    blob = f"http://{BLOB_HOST}/devstoreaccount1"
    return Target(
        **data,
        arm_token=FAKE_TOKEN,
        workspace_token=FAKE_TOKEN,
        training_api_key=FAKE_TOKEN,
        predictive_api_key=FAKE_TOKEN,
        storage_connection_string=(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={FAKE_KEY};BlobEndpoint={blob};"
        ),
    )


def _emulator_target() -> Iterator[Target]:
    from tests.integration.conftest import shared_emulator

    with shared_emulator() as emu:
        info = emu.info
        _HOSTS[_port(info.base_url)] = SERVICE_HOST
        _HOSTS[_port(info.blob_endpoint)] = BLOB_HOST
        yield Target(
            arm_base_url=info.arm_base_url,
            subscription_id=info.subscription_id,
            resource_group=info.resource_group,
            arm_service_name=str(info.arm_service_name),
            management_url=info.management_url,
            workspace_id=info.workspace_id,
            training_api_location=str(info.training_endpoint_api_location),
            predictive_service=str(info.predictive_service),
            predictive_endpoint=str(info.predictive_endpoint),
            predictive_resource_name=str(info.predictive_resource_name),
            predictive_api_location=str(info.predictive_endpoint_api_location),
            training_data=str(info.training_data),
            arm_token=info.arm_token,
            workspace_token=info.workspace_token,
            training_api_key=str(info.training_api_key),
            predictive_api_key=str(info.predictive_api_key),
            storage_connection_string=info.storage_connection_string,
        )


def _azure_target() -> Target:
    """Real Azure, from the environment (see cassettes/README.md for the variables)."""
    env = os.environ
    names = {
        "arm_base_url": "AMLRETRAIN_ARM_BASE_URL",
        "subscription_id": "AMLRETRAIN_SUBSCRIPTION_ID",
        "resource_group": "AMLRETRAIN_RESOURCE_GROUP",
        "arm_service_name": "AMLRETRAIN_RECORD_ARM_SERVICE",
        "management_url": "AMLRETRAIN_MANAGEMENT_URL",
        "workspace_id": "AMLRETRAIN_WORKSPACE_ID",
        "training_api_location": "AMLRETRAIN_RECORD_TRAINING_API_LOCATION",
        "predictive_service": "AMLRETRAIN_RECORD_PREDICTIVE_SERVICE",
        "predictive_endpoint": "AMLRETRAIN_RECORD_PREDICTIVE_ENDPOINT",
        "predictive_resource_name": "AMLRETRAIN_RECORD_RESOURCE_NAME",
        "predictive_api_location": "AMLRETRAIN_RECORD_PREDICTIVE_API_LOCATION",
        "training_data": "AMLRETRAIN_RECORD_TRAINING_DATA",
        "arm_token": "AMLRETRAIN_ARM_TOKEN",
        "workspace_token": "AMLRETRAIN_WORKSPACE_TOKEN",
        "training_api_key": "AMLRETRAIN_RECORD_TRAINING_API_KEY",
        "predictive_api_key": "AMLRETRAIN_RECORD_PREDICTIVE_API_KEY",
        "storage_connection_string": "AMLRETRAIN_STORAGE_CONNECTION_STRING",
    }
    missing = [var for var in names.values() if not env.get(var)]
    if missing:
        pytest.exit("recording against Azure needs: " + ", ".join(missing), returncode=4)
    return Target(**{field: env[var] for field, var in names.items()})


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The live target while recording (its public part saved), the saved one in playback."""
    if not recording(request.config):
        yield _playback_target()
        return
    if os.environ.get("AMLRETRAIN_RECORD_AGAINST", "emulator") == "azure":
        live = _azure_target()
        CASSETTES.mkdir(exist_ok=True)
        TARGET_FILE.write_text(json.dumps(live.public(), indent=2) + "\n", encoding="utf-8")
        yield live
        return
    for live in _emulator_target():
        CASSETTES.mkdir(exist_ok=True)
        TARGET_FILE.write_text(json.dumps(live.public(), indent=2) + "\n", encoding="utf-8")
        yield live


@pytest.fixture
def poll_interval(request: pytest.FixtureRequest) -> float:
    """Short waits in playback and against the emulator; ARM's 5 s against Azure."""
    azure = recording(request.config) and os.environ.get("AMLRETRAIN_RECORD_AGAINST") == "azure"
    return 5.0 if azure else 0.05
