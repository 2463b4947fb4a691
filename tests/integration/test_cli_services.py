"""The service commands end to end: ``webservice``, ``endpoint`` and ``job`` against the emulator.

Every command runs through :func:`amlretrain.cli.main` in an empty working directory,
with the connection settings from ``AMLRETRAIN_*`` variables (one test uses a profile
file, one the flags). Every run is checked for what must never happen whatever the
command: a secret of the emulator on stdout or stderr, a traceback without ``--debug``,
a file written to the working directory, and stdout that is not JSON under
``--output json``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from amlretrain.cli import main
from amlretrain.emulator import Emulator, Faults
from amlretrain.storage import BlobStore
from amlretrain.studio.management import ClassicClient
from amlretrain.studio.webservices import WebServicesClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DATA = Path(__file__).resolve().parents[2] / "amlretrain" / "emulator" / "data"
SIG = re.compile(r"(?i)\bsig=([^&\s\"'<>]+)")
MODEL = "Census Model [trained model]"


# -- running the CLI ---------------------------------------------------------------------


@attrs.frozen
class Run:
    """What one command did."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def secrets_of(emulator: Emulator) -> list[str]:
    """Every secret the emulator handed out, and the parts of its connection string."""
    info = emulator.info
    public = info.to_dict()
    found = [
        str(value)
        for name, value in info.to_dict(include_secrets=True).items()
        if name not in public and value
    ]
    conn = dict(
        part.split("=", 1) for part in info.storage_connection_string.split(";") if "=" in part
    )
    found.append(conn["AccountKey"])
    with WebServicesClient(
        emulator.credential(), info.subscription_id, base_url=info.arm_base_url
    ) as arm:
        keys = arm.list_keys(info.resource_group, str(info.arm_service_name))
    found += [k for k in (keys.primary, keys.secondary) if k]
    return found


def environment(emulator: Emulator) -> dict[str, str]:
    """The ``AMLRETRAIN_*`` variables for the emulator (jobs go to the training endpoint)."""
    info = emulator.info.to_dict(include_secrets=True)
    return {
        "AMLRETRAIN_SUBSCRIPTION_ID": info["subscription_id"],
        "AMLRETRAIN_RESOURCE_GROUP": info["resource_group"],
        "AMLRETRAIN_ARM_BASE_URL": info["arm_base_url"],
        "AMLRETRAIN_ARM_TOKEN": info["arm_token"],
        "AMLRETRAIN_WORKSPACE_ID": info["workspace_id"],
        "AMLRETRAIN_WORKSPACE_TOKEN": info["workspace_token"],
        "AMLRETRAIN_MANAGEMENT_URL": info["management_url"],
        "AMLRETRAIN_API_LOCATION": info["training_endpoint_api_location"],
        "AMLRETRAIN_API_KEY": info["training_api_key"],
        "AMLRETRAIN_STORAGE_CONNECTION_STRING": info["storage_connection_string"],
    }


@pytest.fixture(scope="module")
def secrets(emulator: Emulator) -> list[str]:
    return secrets_of(emulator)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, and no profile file of the user's."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    for name in list(os.environ):
        if name.startswith("AMLRETRAIN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AMLRETRAIN_PROFILES", str(tmp_path / "no-profiles.toml"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return cwd


@pytest.fixture
def run(
    workdir: Path, secrets: list[str], capsys: pytest.CaptureFixture[str]
) -> Callable[..., Run]:
    """``run(*argv)``: the command's exit code and output, checked for what must not happen."""

    def _run(*argv: str) -> Run:
        before = sorted(p.name for p in workdir.iterdir())
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        result = Run(code, captured.out, captured.err)
        shown = result.out + result.err
        for secret in secrets:
            assert secret not in shown, f"a secret is printed by {argv}"
        for sig in SIG.findall(shown):
            assert sig == "REDACTED", f"a SAS signature is printed by {argv}"
        assert "Traceback" not in result.err, result.err
        assert sorted(p.name for p in workdir.iterdir()) == before, f"{argv} wrote a file"
        if code == 0 and "json" in argv:
            result.json()  # raises when stdout is not one JSON document
        if code != 0:
            errors = [x for x in result.err.splitlines() if x.startswith("amlretrain: error:")]
            assert len(errors) == 1, result.err
        return result

    return _run


@pytest.fixture
def env(emulator: Emulator, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The ``AMLRETRAIN_*`` variables set for the emulator."""
    for name, value in environment(emulator).items():
        monkeypatch.setenv(name, value)
    return emulator


@pytest.fixture
def store(emulator: Emulator) -> BlobStore:
    return BlobStore.from_connection_string(emulator.info.storage_connection_string)


def new_model(emulator: Emulator, store: BlobStore) -> str:
    """The SAS URL of a fresh copy of the seeded model."""
    initial = store.download_bytes(str(emulator.info.initial_model))
    ref = store.upload(initial, container="models", blob_name=f"cli-{uuid.uuid4().hex}.ilearner")
    return store.sas(ref, expires_in=timedelta(hours=3)).sas_url


@pytest.fixture
def copy_name(emulator: Emulator) -> Iterator[str]:
    """A name for a private copy of the ARM service; the copy is deleted afterwards."""
    name = "cli-" + uuid.uuid4().hex[:10]
    yield name
    info = emulator.info
    with WebServicesClient(
        emulator.credential(),
        info.subscription_id,
        base_url=info.arm_base_url,
        polling_interval=0.05,
    ) as arm:
        arm.delete(info.resource_group, name)


@pytest.fixture
def endpoint_name(emulator: Emulator) -> Iterator[str]:
    """A name for a new endpoint of the predictive service; it is deleted afterwards."""
    name = "cli" + uuid.uuid4().hex[:10]
    yield name
    info = emulator.info
    with ClassicClient(
        info.workspace_id, info.workspace_token, base_url=info.management_url
    ) as client:
        client.delete_endpoint(str(info.predictive_service), name)


def uri_of(document: dict[str, Any], asset: str = "asset1") -> str:
    return str(document["properties"]["assets"][asset]["locationInfo"]["uri"])


def without_query(url: str) -> str:
    return url.split("?")[0]


def with_uri(document: dict[str, Any], uri: str, asset: str = "asset1") -> dict[str, Any]:
    """``document`` with the asset's URI rewritten (as someone editing an export would)."""
    document["properties"]["assets"][asset]["locationInfo"]["uri"] = uri
    return document


# -- webservice --------------------------------------------------------------------------


def test_webservice_get_and_list_print_the_service_as_text_and_json(
    env: Emulator, run: Callable[..., Run]
) -> None:
    name = str(env.info.arm_service_name)
    text = run("webservice", "get", name)
    assert text.code == 0
    assert f"name:            {name}" in text.out
    assert "trained model:   asset1" in text.out

    got = run("webservice", "get", name, "--output", "json")
    assert got.code == 0
    assert got.json()["name"] == name
    assert "sig=REDACTED" in uri_of(got.json())

    listed = run("webservice", "list", "--output", "json")
    assert listed.code == 0
    assert name in [d["name"] for d in listed.json()]
    everywhere = run("webservice", "list", "--all", "--output", "json")
    assert everywhere.code == 0
    assert name in [d["name"] for d in everywhere.json()]
    assert name in run("webservice", "list").out


def test_webservice_commands_on_a_missing_service_exit_7(
    env: Emulator, run: Callable[..., Run], tmp_path: Path
) -> None:
    missing = "no-such-service"
    for argv in (
        ("webservice", "get", missing),
        ("webservice", "get", missing, "--output", "json"),
        ("webservice", "keys", missing),
        ("webservice", "update", missing, "--model-uri", "https://a.example/m.ilearner"),
        ("webservice", "export", missing, "-o", str(tmp_path / "missing.json")),
    ):
        result = run(*argv)
        assert result.code == 7, (argv, result.err)
        assert "NotFoundError" in result.err
        assert result.out == ""
    assert not (tmp_path / "missing.json").exists()


def test_webservice_keys_prints_fingerprints_and_writes_the_keys_only_to_a_private_file(
    env: Emulator, run: Callable[..., Run], tmp_path: Path
) -> None:
    name = str(env.info.arm_service_name)
    shown = run("webservice", "keys", name)
    assert shown.code == 0
    assert re.fullmatch(
        r"primary:   sha256:[0-9a-f]{12}\nsecondary: sha256:[0-9a-f]{12}\n", shown.out
    )

    target = tmp_path / "keys.json"
    written = run("webservice", "keys", name, "--to-file", str(target))
    assert written.code == 0
    assert "mode 0600" in written.out
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    keys = json.loads(target.read_text())
    assert keys["primary"] and keys["secondary"]
    assert keys["primary"] not in written.out


def test_webservice_keys_json_shows_the_fingerprints(
    env: Emulator, run: Callable[..., Run]
) -> None:
    shown = run("webservice", "keys", str(env.info.arm_service_name), "--output", "json")
    assert shown.code == 0
    assert shown.json()["file"] is None
    assert shown.json()["fingerprints"]["primary_fingerprint"].startswith("sha256:")


def test_webservice_export_writes_the_definition_without_secrets_unless_asked(
    env: Emulator, run: Callable[..., Run], tmp_path: Path
) -> None:
    name = str(env.info.arm_service_name)
    out = tmp_path / "service.json"
    result = run("webservice", "export", name, "-o", str(out), "--output", "json")
    assert result.code == 0
    assert result.json() == {"name": name, "file": str(out)}
    text = out.read_text()
    props = json.loads(text)["properties"]
    assert "keys" not in props
    assert "key" not in props["storageAccount"]
    assert all("credentials" not in a["locationInfo"] for a in props["assets"].values())
    assert "sig=" not in text
    assert "?" not in uri_of(json.loads(text))
    assert uri_of(json.loads(text)).endswith(".ilearner")

    again = run("webservice", "export", name, "-o", str(out))
    assert again.code == 4, "an existing file is not overwritten without --force"
    assert "--force" in again.err
    assert out.read_text() == text

    kept = run("webservice", "export", name, "-o", str(out), "--force", "--include-secrets")
    assert kept.code == 0
    assert [sig for sig in SIG.findall(out.read_text()) if sig != "REDACTED"], "SAS kept"


def test_webservice_import_update_and_delete_a_copy_of_the_service(
    env: Emulator,
    run: Callable[..., Run],
    tmp_path: Path,
    store: BlobStore,
    copy_name: str,
) -> None:
    seeded = tmp_path / "seeded.json"
    name = str(env.info.arm_service_name)
    assert run("webservice", "export", name, "-o", str(seeded), "--include-secrets").code == 0

    refused = run("webservice", "import", copy_name, str(seeded))
    assert refused.code == 4, "a document read by GET is not PUT without --overwrite-fetched"
    created = run(
        "webservice", "import", copy_name, str(seeded), "--overwrite-fetched", "--output", "json"
    )
    assert created.code == 0, created.err
    assert created.json()["name"] == copy_name
    exists = run("webservice", "import", copy_name, str(seeded), "--overwrite-fetched")
    assert exists.code == 4, "an existing service is not overwritten without --force"
    assert "--force" in exists.err

    exported = tmp_path / "copy.json"
    assert (
        run("webservice", "export", copy_name, "-o", str(exported), "--include-secrets").code == 0
    )

    # an update that changes nothing is refused before any request
    env.clear_requests()
    empty = run("webservice", "update", copy_name, "--definition", str(exported))
    assert empty.code == 4
    assert "changes nothing" in empty.err
    assert [r.method for r in env.requests if r.method != "GET"] == []

    # the rewritten definition: only the trained model's URI changes
    uri = new_model(env, store)
    rewritten = tmp_path / "rewritten.json"
    rewritten.write_text(json.dumps(with_uri(json.loads(exported.read_text()), uri)))

    plan = run(
        "webservice",
        "update",
        copy_name,
        "--definition",
        str(rewritten),
        "--dry-run",
        "--output",
        "json",
    )
    assert plan.code == 0, plan.err
    body = plan.json()
    assert set(body) == {"properties"}
    assert set(body["properties"]) == {"packageType", "assets"}
    assert set(body["properties"]["assets"]) == {"asset1"}
    assert without_query(uri_of(body)) == without_query(uri)

    env.clear_requests()
    updated = run(
        "webservice", "update", copy_name, "--definition", str(rewritten), "--output", "json"
    )
    assert updated.code == 0, updated.err
    writes = [(r.method, r.path) for r in env.requests if r.method != "GET"]
    # one PATCH, then the exampleRequest scored through the service (the model works)
    assert [m for m, _ in writes] == ["PATCH", "POST"], writes
    assert writes[0][1].endswith(f"/webServices/{copy_name}")
    assert writes[1][1].endswith("/execute")

    served = run("webservice", "get", copy_name, "--output", "json")
    assert without_query(uri_of(served.json())) == without_query(uri)

    # --model-uri rewrites the trained-model asset itself
    other = new_model(env, store)
    assert run("webservice", "update", copy_name, "--model-uri", other).code == 0
    served = run("webservice", "get", copy_name, "--output", "json")
    assert without_query(uri_of(served.json())) == without_query(other)

    assert run("webservice", "delete", copy_name).code == 4, "delete needs --yes"
    deleted = run("webservice", "delete", copy_name, "--yes", "--output", "json")
    assert deleted.code == 0
    assert deleted.json() == {"deleted": copy_name}
    assert run("webservice", "get", copy_name).code == 7


@pytest.fixture
def service_copy(
    emulator: Emulator, env: Emulator, run: Callable[..., Run], tmp_path: Path, copy_name: str
) -> str:
    """A private copy of the seeded ARM service, made with ``webservice import``."""
    seeded = tmp_path / "seeded.json"
    name = str(emulator.info.arm_service_name)
    assert run("webservice", "export", name, "-o", str(seeded), "--include-secrets").code == 0
    assert run("webservice", "import", copy_name, str(seeded), "--overwrite-fetched").code == 0
    return copy_name


def test_webservice_update_accepts_an_export_without_secrets(
    env: Emulator,
    run: Callable[..., Run],
    tmp_path: Path,
    store: BlobStore,
    service_copy: str,
) -> None:
    exported = tmp_path / "shared.json"
    assert run("webservice", "export", service_copy, "-o", str(exported)).code == 0
    uri = new_model(env, store)
    exported.write_text(json.dumps(with_uri(json.loads(exported.read_text()), uri)))
    updated = run("webservice", "update", service_copy, "--definition", str(exported))
    assert updated.code == 0, updated.err
    served = run("webservice", "get", service_copy, "--output", "json")
    assert without_query(uri_of(served.json())) == without_query(uri)


def test_webservice_update_of_an_older_export_patches_only_the_model(
    env: Emulator,
    run: Callable[..., Run],
    tmp_path: Path,
    store: BlobStore,
    service_copy: str,
) -> None:
    exported = tmp_path / "older.json"
    assert (
        run("webservice", "export", service_copy, "-o", str(exported), "--include-secrets").code
        == 0
    )
    assert run("webservice", "update", service_copy, "--model-uri", new_model(env, store)).code == 0
    uri = new_model(env, store)
    exported.write_text(json.dumps(with_uri(json.loads(exported.read_text()), uri)))
    plan = run(
        "webservice",
        "update",
        service_copy,
        "--definition",
        str(exported),
        "--dry-run",
        "--output",
        "json",
    )
    assert plan.code == 0, plan.err
    assert set(plan.json()) == {"properties"}
    assert set(plan.json()["properties"]) == {"packageType", "assets"}


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("{not json", id="not-json"),
        pytest.param(json.dumps({"location": "x", "properties": {"title": "t"}}), id="no-package"),
    ],
)
def test_webservice_import_and_update_of_a_bad_definition_file_exit_3(
    env: Emulator, run: Callable[..., Run], tmp_path: Path, content: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    env.clear_requests()
    imported = run("webservice", "import", "cli-never-created", str(bad))
    assert imported.code == 3, imported.err
    assert "DefinitionError" in imported.err
    updated = run("webservice", "update", str(env.info.arm_service_name), "--definition", str(bad))
    assert updated.code == 3, updated.err
    assert [r.method for r in env.requests if r.method != "GET"] == []


def test_webservice_import_of_a_missing_file_exits_4(
    env: Emulator, run: Callable[..., Run], tmp_path: Path
) -> None:
    result = run("webservice", "import", "cli-never-created", str(tmp_path / "absent.json"))
    assert result.code == 4
    assert "ConfigurationError" in result.err


# -- settings: profile file, flags, missing ----------------------------------------------


def test_a_profile_file_gives_every_setting(
    emulator: Emulator, run: Callable[..., Run], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = emulator.info
    profile = tmp_path / "profiles.toml"
    settings = {
        name.removeprefix("AMLRETRAIN_").lower(): value
        for name, value in environment(emulator).items()
    }
    lines = ["[emu]"] + [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    settings["resource_group"] = "wrong-group"
    lines += ["[default]"] + [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    profile.write_text("\n".join(lines) + "\n")
    profile.chmod(0o600)
    monkeypatch.setenv("AMLRETRAIN_PROFILES", str(profile))

    got = run(
        "webservice", "get", str(info.arm_service_name), "--profile", "emu", "--output", "json"
    )
    assert got.code == 0, got.err
    assert got.json()["name"] == info.arm_service_name
    listed = run(
        "endpoint", "list", str(info.predictive_service), "--profile", "emu", "--output", "json"
    )
    assert listed.code == 0, listed.err
    assert info.predictive_endpoint in [e["name"] for e in listed.json()]

    monkeypatch.setenv("AMLRETRAIN_PROFILE", "emu")
    assert run("webservice", "list").code == 0

    assert run("webservice", "list", "--profile", "nope").code == 4
    monkeypatch.delenv("AMLRETRAIN_PROFILE")
    wrong = run("webservice", "get", str(info.arm_service_name))  # [default]: wrong group
    assert wrong.code == 7
    assert "wrong-group" in wrong.err


def test_main_called_twice_in_one_process_logs_each_warning_once(
    env: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    profile = tmp_path / "profiles.toml"
    profile.write_text(f"[default]\nresource_group = {json.dumps(env.info.resource_group)}\n")
    profile.chmod(0o644)  # readable by others: resolve() warns
    monkeypatch.setenv("AMLRETRAIN_PROFILES", str(profile))
    handlers = logging.getLogger().handlers[:]
    warnings = []
    for _ in range(2):
        capsys.readouterr()
        assert main(["webservice", "list"]) == 0
        warnings.append(capsys.readouterr().err.count("readable by other users"))
    assert warnings == [1, 1]
    assert logging.getLogger().handlers == handlers


def test_flags_give_the_settings_that_are_not_secrets(
    emulator: Emulator, run: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    info = emulator.info
    secret = environment(emulator)
    for name in ("AMLRETRAIN_ARM_TOKEN", "AMLRETRAIN_WORKSPACE_TOKEN", "AMLRETRAIN_API_KEY"):
        monkeypatch.setenv(name, secret[name])

    got = run(
        "webservice", "get", str(info.arm_service_name),
        "--subscription-id", info.subscription_id,
        "-g", info.resource_group,
        "--arm-base-url", info.arm_base_url,
        "--output", "json",
    )  # fmt: skip
    assert got.code == 0, got.err
    assert got.json()["name"] == info.arm_service_name
    endpoint = run(
        "endpoint", "get", str(info.predictive_service), str(info.predictive_endpoint),
        "--workspace-id", info.workspace_id,
        "--management-url", info.management_url,
        "--region", "West Europe",
    )  # fmt: skip
    assert endpoint.code == 0, endpoint.err
    assert f"name:          {info.predictive_endpoint}" in endpoint.out
    missing_job = run(
        "job", "status", "0" * 32, "--api-location", str(info.training_endpoint_api_location)
    )
    assert missing_job.code == 7, missing_job.err


def test_a_missing_setting_exits_4_and_names_where_to_set_it(
    emulator: Emulator, run: Callable[..., Run]
) -> None:
    result = run("webservice", "list")
    assert result.code == 4
    assert "AMLRETRAIN_SUBSCRIPTION_ID" in result.err
    result = run("endpoint", "list", str(emulator.info.predictive_service))
    assert result.code == 4
    assert "AMLRETRAIN_WORKSPACE_ID" in result.err
    result = run("job", "status", "0" * 32)
    assert result.code == 4
    assert "AMLRETRAIN_API_LOCATION" in result.err


# -- endpoint ----------------------------------------------------------------------------


def test_endpoint_list_and_get(env: Emulator, run: Callable[..., Run]) -> None:
    info = env.info
    service = str(info.predictive_service)
    listed = run("endpoint", "list", service, "--output", "json")
    assert listed.code == 0
    assert {info.predictive_default_endpoint, info.predictive_endpoint} <= {
        e["name"] for e in listed.json()
    }
    assert all("primary_key" not in e for e in listed.json())
    assert str(info.predictive_endpoint) in run("endpoint", "list", service).out

    got = run("endpoint", "get", service, str(info.predictive_endpoint), "--output", "json")
    assert got.code == 0
    assert [r["name"] for r in got.json()["resources"]] == [MODEL]
    assert got.json()["api_location"] == info.predictive_endpoint_api_location


def test_endpoint_commands_on_a_missing_endpoint_or_service_exit_7(
    env: Emulator, run: Callable[..., Run]
) -> None:
    service = str(env.info.predictive_service)
    for argv in (
        ("endpoint", "get", service, "nosuchendpoint"),
        ("endpoint", "get", "0" * 32, "default"),
        ("endpoint", "list", "0" * 32),
        ("endpoint", "patch", service, "nosuchendpoint", "--description", "x"),
    ):
        result = run(*argv)
        assert result.code == 7, (argv, result.err)
        assert "NotFoundError" in result.err


def test_endpoint_add_patch_refresh_delete(
    env: Emulator,
    run: Callable[..., Run],
    store: BlobStore,
    endpoint_name: str,
) -> None:
    service = str(env.info.predictive_service)
    added = run(
        "endpoint",
        "add",
        service,
        endpoint_name,
        "--description",
        "from the CLI test",
        "--output",
        "json",
    )
    assert added.code == 0, added.err
    assert added.json()["name"] == endpoint_name
    assert added.json()["description"] == "from the CLI test"
    assert [r["name"] for r in added.json()["resources"]] == [MODEL]

    settings = run(
        "endpoint", "patch", service, endpoint_name,
        "--throttle-level", "High", "--max-concurrent-calls", "10", "--output", "json",
    )  # fmt: skip
    assert settings.code == 0, settings.err
    assert settings.json()["throttle_level"] == "High"
    assert settings.json()["max_concurrent_calls"] == 10
    assert settings.json()["description"] == "from the CLI test", "kept by the PUT"

    model = new_model(env, store)
    swapped = run(
        "endpoint", "patch", service, endpoint_name,
        "--resource", MODEL, "--blob-url", model, "--output", "json",
    )  # fmt: skip
    assert swapped.code == 0, swapped.err
    (resource,) = swapped.json()["resources"]
    assert without_query(resource["location"]) == without_query(model)

    refreshed = run("endpoint", "refresh", service, endpoint_name, "--output", "json")
    assert refreshed.code == 0, refreshed.err
    assert refreshed.json() == {"changed": False}, "a refresh keeps the retrained model"
    overwritten = run(
        "endpoint", "refresh", service, endpoint_name, "--overwrite-resources", "--output", "json"
    )
    assert overwritten.code == 0, overwritten.err
    assert overwritten.json() == {"changed": True}
    got = run("endpoint", "get", service, endpoint_name, "--output", "json")
    assert without_query(got.json()["resources"][0]["location"]) != without_query(model)

    refused = run("endpoint", "delete", service, endpoint_name)
    assert refused.code == 4, "a delete needs --yes"
    deleted = run("endpoint", "delete", service, endpoint_name, "--yes", "--output", "json")
    assert deleted.code == 0
    assert deleted.json() == {"deleted": endpoint_name}
    assert run("endpoint", "get", service, endpoint_name).code == 7
    again = run("endpoint", "delete", service, endpoint_name, "--yes")
    assert again.code == 0, "deleting a missing endpoint is not an error"


def test_endpoint_refusals_exit_4_before_any_write(
    env: Emulator, run: Callable[..., Run], store: BlobStore
) -> None:
    info = env.info
    service = str(info.predictive_service)
    default = str(info.predictive_default_endpoint)
    model = new_model(env, store)
    env.clear_requests()
    for argv in (
        ("endpoint", "patch", service, default, "--resource", MODEL, "--blob-url", model),
        ("endpoint", "refresh", service, default),
        ("endpoint", "add", service, "Bad_Name"),
        ("endpoint", "add", service, "x" * 25),
        ("endpoint", "add", service, "okname", "--max-concurrent-calls", "10"),
        ("endpoint", "patch", service, str(info.predictive_endpoint)),
        (
            "endpoint", "patch", service, str(info.predictive_endpoint),
            "--resource", MODEL, "--blob-url", model, "--description", "both",
        ),
        (
            "endpoint", "patch", service, str(info.predictive_endpoint),
            "--resource", "No Such Model", "--blob-url", model,
        ),
        (
            "endpoint", "patch", service, str(info.predictive_endpoint),
            "--resource", MODEL, "--blob-url", without_query(model),
        ),
    ):  # fmt: skip
        result = run(*argv)
        assert result.code == 4, (argv, result.err)
        assert "ConfigurationError" in result.err
    assert [r.method for r in env.requests if r.method not in ("GET", "HEAD")] == []


# -- job ---------------------------------------------------------------------------------


def test_job_submit_wait_status_results(env: Emulator, run: Callable[..., Run]) -> None:
    submitted = run(
        "job", "submit", "--input", f"input1={DATA / 'census_new.csv'}", "--output", "json"
    )
    assert submitted.code == 0, submitted.err
    job_id = submitted.json()["job_id"]
    assert submitted.json()["status"] == "Running"  # started, not waited for

    waited = run("job", "wait", job_id, "--timeout", "60", "--output", "json")
    assert waited.code == 0, waited.err
    assert waited.json() == {"job_id": job_id, "status": "Finished", "details": None}

    status = run("job", "status", job_id, "--output", "json")
    assert status.code == 0
    assert status.json()["status"] == "Finished"
    outputs = status.json()["document"]["Results"].values()
    assert {output["SasBlobToken"] for output in outputs} == {"REDACTED"}

    results = run("job", "results", job_id, "--evaluation", "--output", "json")
    assert results.code == 0, results.err
    data = results.json()
    model = data["trained_model"]
    assert without_query(data["outputs"][model]).endswith(".ilearner")
    assert 0.5 < data["evaluation"]["AUC"] <= 1  # tolerant of the metric layout below
    text = run("job", "results", job_id)
    assert f"trained model: {model}" in text.out


def test_job_commands_on_a_missing_job_exit_7_but_cancel_is_idempotent(
    env: Emulator, run: Callable[..., Run]
) -> None:
    for command in ("status", "wait", "results"):
        result = run("job", command, "0" * 32)
        assert result.code == 7, (command, result.err)
        assert "NotFoundError" in result.err
    assert run("job", "cancel", "0" * 32).code == 0, "TrainingJob.cancel: a gone job is no error"


def test_job_cancel_of_a_running_job(
    env: Emulator, run: Callable[..., Run], faults: Faults
) -> None:
    faults.add(route="bes.*", kind="job_slow", seconds=5)
    submitted = run(
        "job", "submit", "--input", "input1=" + str(env.info.training_data), "--output", "json"
    )
    assert submitted.code == 0, submitted.err
    job_id = submitted.json()["job_id"]
    assert run("job", "status", job_id, "--output", "json").json()["status"] == "Running"

    cancelled = run("job", "cancel", job_id, "--output", "json")
    assert cancelled.code == 0, cancelled.err
    assert cancelled.json() == {"job_id": job_id, "cancelled": True}
    assert run("job", "status", job_id, "--output", "json").json()["status"] == "Cancelled"
    waited = run("job", "wait", job_id, "--timeout", "10")
    assert waited.code == 10, "waiting on a cancelled job is a TrainingJobFailed"


def test_job_submit_refuses_bad_pairs_and_outputs_before_any_request(
    env: Emulator, run: Callable[..., Run]
) -> None:
    env.clear_requests()
    for argv in (
        ("job", "submit", "--input", "no-equals-sign"),
        ("job", "submit", "--input", "input1=datasets/x.csv", "--output-blob", "output1=c/m.txt"),
    ):
        result = run(*argv)
        assert result.code == 4, (argv, result.err)
    assert [r.method for r in env.requests if r.method == "POST"] == []


def test_webservice_update_refuses_a_model_the_service_could_not_read(
    env: Emulator, run: Callable[..., Run], store: BlobStore, service_copy: str
) -> None:
    missing = store.sas(
        store.ref("models", f"missing-{uuid.uuid4().hex}.ilearner"), expires_in=timedelta(hours=1)
    )
    env.clear_requests()
    refused = run("webservice", "update", service_copy, "--model-uri", missing.sas_url)
    assert refused.code == 4, refused.err
    assert "does not exist" in refused.err
    assert [r.method for r in env.requests if r.method != "GET"] == []  # nothing sent
    bad_sas = new_model(env, store).replace("sig=", "sig=AAAA")
    tampered = run("webservice", "update", service_copy, "--model-uri", bad_sas)
    assert tampered.code == 4 and "storage refused its SAS" in tampered.err
    dry = run("webservice", "update", service_copy, "--model-uri", missing.sas_url, "--dry-run")
    assert dry.code == 4  # a dry run predicts the refusal


def test_webservice_update_scores_the_example_request_after_the_swap(
    env: Emulator, run: Callable[..., Run], store: BlobStore, service_copy: str
) -> None:
    updated = run("webservice", "update", service_copy, "--model-uri", new_model(env, store))
    assert updated.code == 0, updated.err
    assert "updated and verified; the exampleRequest scored (" in updated.out
