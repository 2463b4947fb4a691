"""Bad models on the emulator, through HTTP: trained by faults, served through candidates.

A shuffled-label training job, a model that errors on part of the traffic, one whose
scores drift, one that is slow; served through a classic endpoint created, patched,
scored and deleted with ClassicClient, and through an ARM web service created from a
fetched definition with WebServicesClient (refused without the storage key and the
commitment plan when the emulator is strict).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from importlib import resources
from typing import Any

import attrs
import pytest
import requests

from amlretrain.blobs import BlobRef
from amlretrain.bootstrap import auc
from amlretrain.emulator import Emulator, Faults, learner
from amlretrain.errors import ConflictError, NotFoundError, ServiceError
from amlretrain.storage import BlobStore, parse_connection_string
from amlretrain.studio.batch import BatchClient, PollPolicy
from amlretrain.studio.definition import CommitmentPlan, StorageAccount
from amlretrain.studio.management import ClassicClient
from amlretrain.studio.webservices import WebServicesClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

V = {"api-version": "2.0"}
HELD_OUT = (resources.files("amlretrain.emulator") / "data" / "census_train.csv").read_bytes()
PLAN = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.MachineLearning/commitmentPlans/p"


@pytest.fixture(scope="module")
def store(emulator: Emulator) -> BlobStore:
    return BlobStore.from_connection_string(emulator.info.storage_connection_string)


@pytest.fixture(scope="module")
def bes(emulator: Emulator) -> Iterator[BatchClient]:
    info = emulator.info
    assert info.training_endpoint_api_location and info.training_api_key
    client = BatchClient(
        info.training_endpoint_api_location, info.training_api_key, poll=PollPolicy(initial=0.05)
    )
    yield client
    client.close()


@pytest.fixture
def classic(emulator: Emulator) -> Iterator[ClassicClient]:
    info = emulator.info
    client = ClassicClient(
        info.workspace_id,
        info.workspace_token,
        base_url=info.management_url,
        poll=PollPolicy.fixed(0.1),
    )
    yield client
    client.close()


@pytest.fixture
def arm(emulator: Emulator) -> Iterator[WebServicesClient]:
    client = WebServicesClient(
        emulator.credential(),
        emulator.info.subscription_id,
        base_url=emulator.info.arm_base_url,
        polling_interval=0.05,
    )
    yield client
    client.close()


def _train(bes: BatchClient, store: BlobStore, emulator: Emulator) -> tuple[BlobRef, float]:
    """A training job on the new data: (its model, the AUC of its evaluation output)."""
    job = bes.create_job({"input1": str(emulator.info.new_training_data)}, store=store)
    result = bes.begin_run_job(job).result(timeout=60)
    return result.trained_model, float(result.evaluation()["auc"])


def _holdout_auc(model_bytes: bytes, data: bytes) -> float:
    """The model's AUC on the rows of ``data`` its training job held out."""
    model = learner.Model.from_bytes(model_bytes)
    _, holdout = learner.split_holdout(data)
    lines = holdout.decode().strip().splitlines()
    columns, rows = lines[0].split(","), [line.split(",") for line in lines[1:]]
    labels = [int(r[columns.index(model.label)] == model.classes[1]) for r in rows]
    return auc(labels, [p for _, p in model.predict(columns, rows)])


def _rows() -> tuple[list[str], list[list[str]]]:
    lines = HELD_OUT.decode().strip().splitlines()
    header = lines[0].split(",")
    return header[:-1], [line.split(",")[:-1] for line in lines[1:]]


def _score(http: requests.Session, base: str, key: str, rows: list[list[str]]) -> Any:
    columns, _ = _rows()
    return http.post(
        f"{base}/execute",
        params={**V, "details": "true"},
        json={"Inputs": {"input1": {"ColumnNames": columns, "Values": rows}}},
        headers={"Authorization": f"Bearer {key}"},
    )


def _probabilities(resp: requests.Response) -> list[float]:
    assert resp.status_code == 200, resp.text
    return [float(v[1]) for v in resp.json()["Results"]["output1"]["value"]["Values"]]


@pytest.fixture
def candidate(classic: ClassicClient, emulator: Emulator) -> Iterator[str]:
    """A candidate endpoint created with ClassicClient.create_endpoint (deleted after)."""
    svc = str(emulator.info.predictive_service)
    name = "cand" + uuid.uuid4().hex[:10]
    ep = classic.create_endpoint(svc, name, description="candidate")
    assert ep.name == name and ep.api_location and ep.primary_key
    yield name
    classic.delete_endpoint(svc, name)


def _deploy(classic: ClassicClient, emulator: Emulator, endpoint: str, model: BlobRef) -> Any:
    svc = str(emulator.info.predictive_service)
    resource = str(emulator.info.predictive_resource_name)
    return classic.update_trained_model(svc, endpoint, resource, model)


def test_a_shuffled_label_job_trains_a_clearly_worse_model(
    emulator: Emulator, faults: Faults, bes: BatchClient, store: BlobStore
) -> None:
    normal, normal_eval = _train(bes, store, emulator)
    faults.add(route="bes.*", kind="train_shuffled")
    shuffled, shuffled_eval = _train(bes, store, emulator)
    assert faults.rules[0].fired == 1
    data = store.download_bytes(str(emulator.info.new_training_data))
    normal_auc = _holdout_auc(store.download_bytes(normal), data)
    shuffled_auc = _holdout_auc(store.download_bytes(shuffled), data)
    assert normal_auc > 0.85
    assert shuffled_auc < normal_auc - 0.3
    assert shuffled_eval < normal_eval - 0.3  # the job's own evaluation output shows it
    again, _ = _train(bes, store, emulator)  # count=1: the next job is normal again
    assert store.download_bytes(again) == store.download_bytes(normal)


def test_a_behaviour_model_errors_on_its_share_of_requests_through_a_candidate_endpoint(
    emulator: Emulator,
    faults: Faults,
    bes: BatchClient,
    store: BlobStore,
    classic: ClassicClient,
    candidate: str,
    http: requests.Session,
) -> None:
    good, _ = _train(bes, store, emulator)
    faults.add(route="bes.start", kind="train_behaviour", error_rate=0.3, seed=5)
    bad, _ = _train(bes, store, emulator)
    member = json.loads(store.download_bytes(bad))["emulator"]
    assert member == {
        "error_rate": 0.3,
        "score_shift": 0.0,
        "latency": 0.0,
        "seed": 5,
        "error_status": 500,
    }
    ep = _deploy(classic, emulator, candidate, store.sas(bad, expires_in=timedelta(hours=1)))
    _, rows = _rows()
    batches = [rows[i : i + 4] for i in range(0, len(rows), 4)]  # 100 distinct requests
    answers = [_score(http, str(ep.api_location), str(ep.primary_key), b) for b in batches]
    failed = [a for a in answers if a.status_code != 200]
    assert 0.15 <= len(failed) / len(answers) <= 0.45, len(failed)
    assert {a.status_code for a in failed} == {500}
    error = failed[0].json()["error"]
    assert error["code"] == "InternalError"
    assert error["details"][0]["code"] == "ModelExecutionFailed"
    replay = [_score(http, str(ep.api_location), str(ep.primary_key), b) for b in batches]
    assert [a.status_code for a in replay] == [a.status_code for a in answers]  # seeded
    ep = _deploy(classic, emulator, candidate, store.sas(good, expires_in=timedelta(hours=1)))
    after = [_score(http, str(ep.api_location), str(ep.primary_key), b) for b in batches]
    assert {a.status_code for a in after} == {200}  # rolled back: the behaviour is gone


def test_a_drifting_and_slow_model_shifts_scores_and_adds_latency(
    emulator: Emulator,
    store: BlobStore,
    classic: ClassicClient,
    candidate: str,
    http: requests.Session,
) -> None:
    info = emulator.info
    initial = store.download_bytes(str(info.initial_model))
    drifting = learner.with_behaviour(initial, score_shift=0.25, latency=0.3)
    ref = store.upload(drifting, container="models", blob_name=f"drift-{candidate}.ilearner")
    ep = _deploy(classic, emulator, candidate, store.sas(ref, expires_in=timedelta(hours=1)))
    _, rows = _rows()
    live = _probabilities(
        _score(http, str(info.predictive_endpoint_api_location), str(info.predictive_api_key),
               rows[:50])
    )  # fmt: skip
    started = time.monotonic()
    shadow = _probabilities(_score(http, str(ep.api_location), str(ep.primary_key), rows[:50]))
    assert time.monotonic() - started >= 0.3
    for p, q in zip(live, shadow, strict=True):
        assert q == pytest.approx(min(1.0, p + 0.25))
    assert sum(shadow) / len(shadow) > sum(live) / len(live) + 0.15


def test_classic_candidate_endpoints_are_limited_per_service(
    emulator: Emulator, classic: ClassicClient
) -> None:
    svc = str(emulator.info.predictive_service)
    count = len(list(classic.list_endpoints(svc)))
    name = "lim" + uuid.uuid4().hex[:10]
    before = emulator.max_endpoints
    emulator.max_endpoints = count + 1
    try:
        classic.create_endpoint(svc, name)
        with pytest.raises(ConflictError) as caught:
            classic.create_endpoint(svc, name + "b")
        assert "EndpointLimitReached" in str(caught.value) or caught.value.status == 409
        classic.update_endpoint(svc, name, description="an update is no new endpoint")
    finally:
        emulator.max_endpoints = before
        classic.delete_endpoint(svc, name)
    with pytest.raises(NotFoundError):
        classic.get_endpoint(svc, name)
    with pytest.raises(ValueError):
        emulator.max_endpoints = 0


@pytest.fixture
def strict(emulator: Emulator) -> Iterator[None]:
    emulator.strict_arm_create = True
    try:
        yield
    finally:
        emulator.strict_arm_create = False


def test_an_arm_candidate_needs_the_storage_key_and_commitment_plan_when_strict(
    emulator: Emulator, arm: WebServicesClient, http: requests.Session, strict: None
) -> None:
    info = emulator.info
    rg = info.resource_group
    fetched = arm.get(rg, str(info.arm_service_name))
    name = "cand-" + uuid.uuid4().hex[:8]
    with pytest.raises(ServiceError) as caught:
        arm.begin_create_or_update(rg, name, fetched, overwrite_fetched=True)
    assert caught.value.status == 400
    url = f"{info.arm_base_url}{arm.resource_id(rg, name)}"
    headers = {"Authorization": f"Bearer {info.arm_token}"}
    raw = http.put(url, params={"api-version": "2017-01-01"}, json=fetched.for_put(),
                   headers=headers)  # fmt: skip
    assert raw.status_code == 400
    error = raw.json()["error"]
    assert error["code"] == "BadRequest"
    assert [d["code"] for d in error["details"]] == [
        "MissingStorageAccountKey",
        "MissingCommitmentPlan",
    ]
    with pytest.raises(NotFoundError):
        arm.get(rg, name)

    assert fetched.properties is not None
    account = parse_connection_string(info.storage_connection_string)
    complete = attrs.evolve(
        fetched,
        properties=attrs.evolve(
            fetched.properties,
            storage_account=StorageAccount(name=info.storage_account, key=account["AccountKey"]),
            commitment_plan=CommitmentPlan(id="not-a-plan-id"),
        ),
    )
    with pytest.raises(ServiceError, match=r"InvalidCommitmentPlanId|commitmentPlans"):
        arm.begin_create_or_update(rg, name, complete, overwrite_fetched=True)
    complete = attrs.evolve(
        complete,
        properties=attrs.evolve(complete.properties, commitment_plan=CommitmentPlan(id=PLAN)),
    )
    created = arm.begin_create_or_update(rg, name, complete, overwrite_fetched=True).result(30)
    try:
        assert created is not None and created.properties is not None
        assert created.properties.commitment_plan is None  # a GET never shows it
        swagger = str(created.properties.swagger_location)
        key = arm.list_keys(rg, name).primary
        _, rows = _rows()
        scores = _probabilities(_score(http, swagger.rsplit("/", 1)[0], str(key), rows[:10]))
        live = _probabilities(
            _score(http, str(info.arm_api_location), str(info.arm_api_key), rows[:10])
        )
        assert scores == live  # the same model as the service it was copied from
        # an update of an existing service is not checked (its plan is immutable)
        arm.begin_create_or_update(rg, name, arm.get(rg, name), overwrite_fetched=True).wait(30)
    finally:
        arm.begin_delete(rg, name).wait(30)
    with pytest.raises(NotFoundError):
        arm.get(rg, name)
    arm.begin_delete(rg, name).wait(30)  # deleting it again is success
