"""The clients replayed from cassettes (recorded against the emulator; see cassettes/README.md).

Each test has its own cassette, ``cassettes/test_clients_recorded/<test name>.yaml``.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from amlretrain.errors import NotFoundError
from amlretrain.storage import BlobStore
from amlretrain.studio.batch import BatchClient, JobStatus, PollPolicy, TrainingJob
from amlretrain.studio.management import ClassicClient
from amlretrain.studio.scoring import ScoringClient
from amlretrain.studio.webservices import WebServicesClient, split_payloads
from tests.recorded.conftest import Target

pytestmark = [pytest.mark.vcr, pytest.mark.block_network, pytest.mark.timeout(120)]

FAST = PollPolicy(initial=0.05, factor=1.5, maximum=0.5, jitter=0.0)
SCORE_COLUMNS = ["age", "education_num", "hours_per_week", "capital_gain"]
SCORE_ROWS = [["25", "9", "60", "0"], ["52", "14", "45", "15024"]]


def _arm(target: Target, poll_interval: float) -> WebServicesClient:
    return WebServicesClient(
        target.credential(),
        target.subscription_id,
        base_url=target.arm_base_url,
        polling_interval=poll_interval,
    )


def _classic(target: Target) -> ClassicClient:
    client = ClassicClient(
        target.workspace_id, target.workspace_token, base_url=target.management_url
    )
    client.poll = PollPolicy.fixed(0.1)
    return client


def _train(target: Target) -> TrainingJob:
    bes = BatchClient(target.training_api_location, target.training_api_key, poll=FAST)
    store = BlobStore.from_connection_string(target.storage_connection_string)
    job = bes.submit({"input1": target.training_data}, store=store, start=True)
    return job.wait(timeout=60)


def test_arm_reads(target: Target, poll_interval: float):
    arm = _arm(target, poll_interval)
    d = arm.get(target.resource_group, target.arm_service_name)
    assert d.name == target.arm_service_name
    assert d.trained_models
    assert target.arm_service_name in [x.name for x in arm.list(target.resource_group)]
    assert arm.list_keys(target.resource_group, target.arm_service_name).primary
    with pytest.raises(NotFoundError) as info:
        arm.get(target.resource_group, "no-such-service")
    assert info.value.code


def test_classic_reads(target: Target):
    classic = _classic(target)
    services = classic.list_web_services()
    assert target.predictive_service in [s.id for s in services]
    endpoints = classic.list_endpoints(target.predictive_service)
    assert target.predictive_endpoint in [e.name for e in endpoints]
    ep = classic.get_endpoint(target.predictive_service, target.predictive_endpoint)
    assert ep.resource(target.predictive_resource_name)


def test_batch_job_results_and_evaluation(target: Target):
    job = _train(target)
    assert job.status is JobStatus.FINISHED
    assert job.trained_model.relative_location.endswith(".ilearner")
    metrics = job.evaluation()
    assert metrics.accuracy is not None


def test_classic_swap_then_score(target: Target):
    model = _train(target).trained_model
    classic = _classic(target)
    ep = classic.update_trained_model(
        target.predictive_service,
        target.predictive_endpoint,
        target.predictive_resource_name,
        model,
        verify_timeout=30,
    )
    location = ep.resource(target.predictive_resource_name).location
    assert location is not None and location.relative_location == model.relative_location
    result = ScoringClient(target.predictive_api_location, target.predictive_api_key).score(
        SCORE_COLUMNS, SCORE_ROWS
    )
    assert len(result.rows) == len(SCORE_ROWS)


def test_arm_swap_is_verified(target: Target, poll_interval: float):
    model = _train(target).trained_model
    arm = _arm(target, poll_interval)
    current = arm.get(target.resource_group, target.arm_service_name)
    updated = arm.update(
        target.resource_group,
        target.arm_service_name,
        current.with_trained_model(model.sas_url),
        expected=current,
    )
    uri = updated.trained_models[0].uri or ""
    assert uri.split("?")[0] == model.url


def test_arm_regional_properties(target: Target, poll_interval: float):
    arm = _arm(target, poll_interval)
    arm.create_regional_properties(target.resource_group, target.arm_service_name, "Japan East")
    d = arm.get(target.resource_group, target.arm_service_name, region="Japan East")
    assert d.name == target.arm_service_name


def test_arm_large_graph_from_a_blob_then_delete_twice(target: Target, poll_interval: float):
    arm = _arm(target, poll_interval)
    current = arm.get(target.resource_group, target.arm_service_name)
    small, graph = split_payloads(current)
    store = BlobStore.from_connection_string(target.storage_connection_string)
    blob = store.upload(json.dumps(graph).encode(), container="payloads", blob_name="rec.json")
    readable = store.sas(blob, expires_in=timedelta(hours=1))
    name = "recorded-from-blob"
    created = arm.create_from_blob(
        target.resource_group, name, small, readable, overwrite_fetched=True
    )
    assert created.trained_models == current.trained_models
    assert created.properties is not None and created.properties.payloads_in_blob_storage is False
    arm.delete(target.resource_group, name)
    arm.delete(target.resource_group, name)  # the service is gone: 204, nothing to wait for
    with pytest.raises(NotFoundError) as info:
        arm.get(target.resource_group, name)
    assert info.value.code == "NotFound"
