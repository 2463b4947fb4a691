"""A wait begun in one process is finished in another, from its continuation token.

For each kind of long-running work (an ARM update and delete, a classic trained-model
update, a training job) a ``begin_*`` call starts it and hands out
``continuation_token()``; a NEW Python process, with fresh clients built from the
connection settings (the secrets in its environment, never in the token), resumes the
wait. What finished is read from the emulator's own state, not from what the SDK says.
Each token is decoded (base64 JSON, and azure-core's ARM token inside it) and searched
for every secret of the emulator, a SAS signature and a bearer value.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from amlretrain.blobs import BlobRef, strip_sas
from amlretrain.emulator import Emulator, Faults
from amlretrain.polling import PollPolicy, decode_token
from amlretrain.storage import BlobStore
from amlretrain.studio.batch import BatchClient
from amlretrain.studio.management import ClassicClient
from amlretrain.studio.webservices import WebServicesClient

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

#: What the new process runs: build a client from the environment, resume, report.
RESUME = textwrap.dedent(
    """
    import json, os, sys
    from amlretrain.credentials import StaticTokenCredential
    from amlretrain.polling import PollPolicy

    env = json.loads(os.environ["AMLRETRAIN_TEST_SETTINGS"])
    kind, token = sys.argv[1], sys.argv[2]
    out = {}
    if kind in ("arm.update", "arm.delete", "arm.begin-update", "arm.begin-delete"):
        from amlretrain.studio.webservices import WebServicesClient

        arm = WebServicesClient(
            StaticTokenCredential(env["arm_token"]), env["subscription_id"],
            base_url=env["arm_base_url"], polling=PollPolicy.fixed(0.1),
        )
        rg, name = env["resource_group"], env["name"]
        if kind == "arm.begin-update":
            current = arm.get(rg, name)
            poller = arm.begin_update(
                rg, name, current.with_trained_model(env["model"]), expected=current
            )
        elif kind == "arm.begin-delete":
            poller = arm.begin_delete(rg, name)
        elif kind == "arm.update":
            poller = arm.begin_update(rg, name, None, continuation_token=token)
        else:
            poller = arm.begin_delete(rg, name, continuation_token=token)
        if kind.startswith("arm.begin"):
            out = {"token": poller.continuation_token(), "done": poller.done()}
            print(json.dumps(out), flush=True)
            os._exit(0)  # at once: azure-core's polling thread must not finish the wait
        result = poller.result(timeout=60)
        out = {
            "status": poller.status(),
            "models": [m.uri.split("?")[0] for m in result.trained_models] if result else None,
        }
    elif kind == "classic":
        from amlretrain.studio.management import ClassicClient

        classic = ClassicClient(
            env["workspace_id"], env["workspace_token"], base_url=env["management_url"],
            poll=PollPolicy.fixed(0.2),
        )
        poller = classic.begin_update_trained_model(continuation_token=token)
        endpoint = poller.result(timeout=60)
        out = {"status": poller.status(), "location": endpoint.resource(env["resource"]).location.url}
    elif kind == "job":
        from amlretrain.studio.batch import BatchClient

        bes = BatchClient(env["api_location"], env["api_key"], poll=PollPolicy(initial=0.1))
        poller = bes.begin_run_job(continuation_token=token)
        job = poller.result(timeout=60)
        out = {"status": poller.status(), "model": job.trained_model.url}
    print(json.dumps(out), flush=True)
    """
)


def in_new_process(emulator: Emulator, kind: str, token: str, **settings: str) -> dict[str, Any]:
    """Run :data:`RESUME` in a new interpreter; its JSON report."""
    info = emulator.info
    env = {
        "arm_token": info.arm_token,
        "subscription_id": info.subscription_id,
        "arm_base_url": info.arm_base_url,
        "resource_group": info.resource_group,
        "workspace_id": info.workspace_id,
        "workspace_token": info.workspace_token,
        "management_url": info.management_url,
        "api_location": info.training_endpoint_api_location,
        "api_key": info.training_api_key,
        **settings,
    }
    proc = subprocess.run(
        [sys.executable, "-c", RESUME, kind, token],
        env={**os.environ, "AMLRETRAIN_TEST_SETTINGS": json.dumps(env)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def secrets_of(emulator: Emulator) -> list[str]:
    info = emulator.info
    values = [
        info.arm_token,
        info.workspace_token,
        info.training_api_key,
        info.predictive_api_key,
        info.arm_api_key,
    ]
    parts = dict(p.split("=", 1) for p in info.storage_connection_string.split(";") if "=" in p)
    values.append(parts.get("AccountKey"))
    return [str(v) for v in values if v]


def assert_holds_no_secret(token: str, emulator: Emulator) -> dict[str, Any]:
    """Decode ``token`` (and an azure-core token inside it); no secret anywhere."""
    texts = [base64.urlsafe_b64decode(token).decode()]
    data = decode_token(token)
    inner = data.get("lro")
    if inner:
        texts.append(base64.b64decode(inner).decode())
    for text in texts:
        for secret in secrets_of(emulator):
            assert secret not in text
        low = text.lower()
        assert "sig=" not in low and "sig%3d" not in low
        assert "bearer" not in low and "authorization" not in low
    return data


@pytest.fixture
def store(emulator: Emulator) -> BlobStore:
    return BlobStore.from_connection_string(emulator.info.storage_connection_string)


@pytest.fixture
def model(emulator: Emulator, store: BlobStore) -> BlobRef:
    """A copy of the initial model under a new name, with a read SAS."""
    initial = store.download_bytes(str(emulator.info.initial_model))
    ref = store.upload(initial, container="models", blob_name=f"pl-{uuid.uuid4().hex[:8]}.ilearner")
    return store.sas(ref, expires_in=timedelta(hours=2))


@pytest.fixture
def slow_operations(emulator: Emulator) -> Iterator[None]:
    """ARM operations stay Provisioning for 3 s, so a token is taken mid-way."""
    assert emulator.state is not None
    before = emulator.state.lro_delay
    emulator.state.lro_delay = 3.0
    yield
    emulator.state.lro_delay = before


@pytest.fixture
def arm(emulator: Emulator) -> Iterator[WebServicesClient]:
    info = emulator.info
    with WebServicesClient(
        emulator.credential(),
        info.subscription_id,
        base_url=info.arm_base_url,
        polling=PollPolicy.fixed(0.05),
    ) as client:
        yield client


@pytest.fixture
def arm_service(emulator: Emulator, arm: WebServicesClient) -> Iterator[str]:
    """A private copy of the seeded New web service (deleted afterwards)."""
    rg = emulator.info.resource_group
    name = "pl-" + uuid.uuid4().hex[:10]
    arm.create_or_update(rg, name, arm.get(rg, str(emulator.info.arm_service_name)),
                         overwrite_fetched=True)  # fmt: skip
    yield name
    arm.delete(rg, name)


def _stored(emulator: Emulator, name: str) -> Any:
    """The emulator's own record of the ARM service ``name`` (None when deleted)."""
    assert emulator.state is not None
    info = emulator.info
    key = (info.subscription_id.lower(), info.resource_group.lower(), name.lower())
    with emulator.state.locked() as state:
        return state.arm.get(key)


def _operation_polls(emulator: Emulator, since: int) -> int:
    return sum(1 for r in emulator.requests[since:] if "operationsStatus" in r.path)


def test_an_arm_update_begun_in_one_process_is_finished_and_verified_in_another(
    emulator: Emulator, arm_service: str, model: BlobRef, slow_operations: None
) -> None:
    started = in_new_process(
        emulator, "arm.begin-update", "", name=arm_service, model=model.sas_url
    )
    assert started["done"] is False  # the operation was running when the token was taken
    token = started["token"]
    data = assert_holds_no_secret(token, emulator)
    assert data["operation"] == "PATCH" and data["resource_id"].endswith("/" + arm_service)
    assert list(data["models"].values()) == [model.url]  # what to verify, without its SAS
    assert _stored(emulator, arm_service).pending is not None

    mark = len(emulator.requests)
    finished = in_new_process(emulator, "arm.update", token, name=arm_service)

    assert _operation_polls(emulator, mark) >= 1  # the new process polled the operation
    stored = _stored(emulator, arm_service)
    assert stored.pending is None
    assets = stored.properties["assets"]
    uris = [strip_sas(a["locationInfo"]["uri"]) for a in assets.values()]
    assert model.url in uris  # the emulator serves the new model
    assert finished["status"] == "Succeeded" and finished["models"] == [model.url]


def test_an_arm_delete_begun_in_one_process_is_finished_in_another(
    emulator: Emulator, arm: WebServicesClient, slow_operations: None
) -> None:
    rg = emulator.info.resource_group
    name = "pl-" + uuid.uuid4().hex[:10]
    arm.create_or_update(rg, name, arm.get(rg, str(emulator.info.arm_service_name)),
                         overwrite_fetched=True)  # fmt: skip
    started = in_new_process(emulator, "arm.begin-delete", "", name=name)
    assert started["done"] is False
    data = assert_holds_no_secret(started["token"], emulator)
    assert data["operation"] == "DELETE" and data["models"] is None
    assert _stored(emulator, name) is not None  # still there: the operation runs

    mark = len(emulator.requests)
    finished = in_new_process(emulator, "arm.delete", started["token"], name=name)

    assert _operation_polls(emulator, mark) >= 1
    assert _stored(emulator, name) is None  # gone from the emulator's state
    assert finished["status"] == "Succeeded"


def test_a_resumed_arm_token_must_name_the_same_service_and_operation(
    emulator: Emulator, arm: WebServicesClient, arm_service: str
) -> None:
    from amlretrain.errors import ConfigurationError

    rg = emulator.info.resource_group
    absent = "pl-absent-" + uuid.uuid4().hex[:6]
    token = arm.begin_delete(rg, absent).continuation_token()  # done at once: nothing there
    with pytest.raises(ConfigurationError, match="not of"):
        arm.begin_delete(rg, arm_service, continuation_token=token)
    with pytest.raises(ConfigurationError, match="resumes a 'DELETE', not a PATCH"):
        arm.begin_update(rg, absent, None, continuation_token=token)
    assert arm.begin_delete(rg, absent, continuation_token=token).result() is None


@pytest.fixture
def classic(emulator: Emulator) -> Iterator[ClassicClient]:
    info = emulator.info
    with ClassicClient(
        info.workspace_id,
        info.workspace_token,
        base_url=info.management_url,
        poll=PollPolicy.fixed(0.2),
    ) as client:
        yield client


@pytest.fixture
def endpoint(emulator: Emulator, classic: ClassicClient) -> Iterator[str]:
    """A private endpoint of the predictive service (deleted afterwards)."""
    service = str(emulator.info.predictive_service)
    name = "pl" + uuid.uuid4().hex[:10]
    classic.create_endpoint(service, name)
    yield name
    classic.delete_endpoint(service, name)


def _stored_location(emulator: Emulator, endpoint: str) -> str:
    """The location the emulator's state holds for the endpoint's trained model."""
    assert emulator.state is not None
    info = emulator.info
    with emulator.state.locked() as state:
        ws = state.workspaces[info.workspace_id.lower()]
        svc = next(s for s in ws.services.values() if s.id == info.predictive_service)
        (resource,) = [
            r
            for r in svc.endpoints[endpoint].resources
            if r.get("Name") == info.predictive_resource_name
        ]
        location = resource["Location"]
        return str(location["BaseLocation"]).rstrip("/") + "/" + location["RelativeLocation"]


def test_a_classic_update_begun_here_is_verified_in_a_new_process(
    emulator: Emulator, classic: ClassicClient, endpoint: str, model: BlobRef, faults: Faults
) -> None:
    info = emulator.info
    # reads lag 4 s: longer than the new process takes to start on a busy machine (2 s was
    # not, under pytest-xdist), so its first read is stale
    faults.add(route="classic.patch_endpoint", kind="stale", seconds=4)
    poller = classic.begin_update_trained_model(
        str(info.predictive_service), endpoint, str(info.predictive_resource_name), model
    )
    assert not poller.done()  # nothing read since the PATCH
    token = poller.continuation_token()
    data = assert_holds_no_secret(token, emulator)
    assert data["endpoint"] == endpoint and data["model"] == model.url

    mark = len(emulator.requests)
    finished = in_new_process(
        emulator, "classic", token, resource=str(info.predictive_resource_name)
    )

    reads = [r for r in emulator.requests[mark:] if r.method == "GET" and endpoint in r.path]
    assert len(reads) >= 2  # a stale read, then the one that saw the new model
    assert [r for r in emulator.requests[mark:] if r.method == "PATCH"] == []  # not re-sent
    assert _stored_location(emulator, endpoint) == model.url
    assert finished == {"status": "Succeeded", "location": model.url}


def test_a_training_job_started_here_is_waited_for_in_a_new_process(
    emulator: Emulator, store: BlobStore, faults: Faults
) -> None:
    info = emulator.info
    assert info.training_endpoint_api_location and info.training_api_key
    faults.add(route="bes.*", kind="job_slow", seconds=2)
    with BatchClient(info.training_endpoint_api_location, info.training_api_key) as bes:
        job = bes.create_job({"input1": str(info.training_data)}, store=store)
        poller = bes.begin_run_job(job)
        token = poller.continuation_token()
    data = assert_holds_no_secret(token, emulator)
    assert data == {"api_location": info.training_endpoint_api_location, "job_id": job.job_id}
    assert emulator.state is not None
    assert emulator.state.jobs[job.job_id].status == "Running"

    finished = in_new_process(emulator, "job", token)

    stored = emulator.state.jobs[job.job_id]
    assert stored.status == "Finished"  # the emulator's record, not the SDK's report
    assert finished["status"] == "Finished"
    assert finished["model"].endswith(".ilearner")
