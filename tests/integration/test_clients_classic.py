"""ClassicClient against the live emulator: endpoints, the model swap, and the refusals."""

from __future__ import annotations

import uuid

import pytest

from amlretrain.blobs import BlobRef
from amlretrain.emulator import Emulator, Faults
from amlretrain.errors import AuthenticationError, ConfigurationError, NotFoundError
from amlretrain.storage import BlobStore
from amlretrain.studio.batch import BatchClient, PollPolicy
from amlretrain.studio.management import ClassicClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def client(emulator: Emulator) -> ClassicClient:
    return ClassicClient(
        emulator.info.workspace_id,
        emulator.info.workspace_token,
        base_url=emulator.info.management_url,
        poll=PollPolicy.fixed(0.1),
    )


@pytest.fixture(scope="module")
def new_model(emulator: Emulator) -> BlobRef:
    info = emulator.info
    store = BlobStore.from_connection_string(info.storage_connection_string)
    assert info.training_endpoint_api_location and info.training_api_key
    bes = BatchClient(
        info.training_endpoint_api_location, info.training_api_key, poll=PollPolicy(initial=0.05)
    )
    job = bes.create_job({"input1": str(info.new_training_data)}, store=store)
    return bes.begin_run_job(job).result(timeout=60).trained_model


def _patches(emu: Emulator) -> list[str]:
    return [r.path for r in emu.requests if r.method == "PATCH"]


def test_web_services_and_endpoints(client: ClassicClient, emulator: Emulator):
    services = {s.id: s for s in client.list_web_services()}
    svc = client.get_web_service(str(emulator.info.predictive_service))
    assert svc.id in services
    assert svc.default_endpoint_name == "default"
    names = [e.name for e in client.list_endpoints(svc.id)]
    assert {"default", str(emulator.info.predictive_endpoint)} <= set(names)
    ep = client.get_endpoint(svc.id, str(emulator.info.predictive_endpoint))
    assert ep.api_location and ep.primary_key
    assert ep.primary_key not in repr(ep)


def test_create_update_refresh_delete_an_endpoint(client: ClassicClient, emulator: Emulator):
    svc = str(emulator.info.predictive_service)
    name = "it" + uuid.uuid4().hex[:10]
    ep = client.create_endpoint(svc, name, description="integration")
    assert ep.name == name and ep.description == "integration"
    emulator.clear_requests()
    ep = client.update_endpoint(svc, name, description="changed", throttle_level="High")
    assert (ep.description, ep.throttle_level, ep.max_concurrent_calls) == ("changed", "High", 20)
    writes = [r.method for r in emulator.requests if r.method != "GET"]
    assert writes == ["PUT"], "settings go in the documented PUT, never a PATCH"
    ep = client.update_endpoint(svc, name, max_concurrent_calls=7)
    assert (ep.description, ep.throttle_level, ep.max_concurrent_calls) == ("changed", "High", 7)
    assert client.refresh_endpoint(svc, name) is False, "a new endpoint has the service's graph"
    client.delete_endpoint(svc, name)
    client.delete_endpoint(svc, name)  # idempotent
    with pytest.raises(NotFoundError):
        client.get_endpoint(svc, name)


def test_bad_endpoint_names_are_refused_before_any_request(client, emulator: Emulator):
    emulator.clear_requests()
    with pytest.raises(ConfigurationError):
        client.create_endpoint(str(emulator.info.predictive_service), "Not_Valid")
    assert emulator.requests == []


def test_update_trained_model_swaps_and_verifies(client, emulator: Emulator, new_model: BlobRef):
    info = emulator.info
    store = BlobStore.from_connection_string(info.storage_connection_string)
    ep = client.update_trained_model(
        str(info.predictive_service),
        str(info.predictive_endpoint),
        str(info.predictive_resource_name),
        new_model,
        verify_timeout=30,
        blob_check=store.exists,
    )
    location = ep.resource(str(info.predictive_resource_name)).location
    assert location is not None
    assert location.relative_location == new_model.relative_location


def test_the_default_endpoint_is_refused(client, emulator: Emulator, new_model: BlobRef):
    emulator.clear_requests()
    with pytest.raises(ConfigurationError, match="default endpoint"):
        client.update_trained_model(
            str(emulator.info.predictive_service),
            "default",
            str(emulator.info.predictive_resource_name),
            new_model,
        )
    assert _patches(emulator) == []


def test_an_unknown_resource_name_is_refused(client, emulator: Emulator, new_model: BlobRef):
    emulator.clear_requests()
    with pytest.raises(ConfigurationError, match="no resource"):
        client.update_trained_model(
            str(emulator.info.predictive_service),
            str(emulator.info.predictive_endpoint),
            "Some Other Model [trained model]",
            new_model,
        )
    assert _patches(emulator) == []


def test_an_endpoint_of_the_training_service_is_refused(client, emulator: Emulator, new_model):
    svc = str(emulator.info.training_service)
    name = "tr" + uuid.uuid4().hex[:10]
    client.create_endpoint(svc, name)
    try:
        emulator.clear_requests()
        with pytest.raises(ConfigurationError, match="no updatable resources"):
            client.update_trained_model(svc, name, "Census Model [trained model]", new_model)
        assert _patches(emulator) == []
    finally:
        client.delete_endpoint(svc, name)


def test_an_expired_sas_is_refused_before_any_request(client, emulator: Emulator, new_model):
    expired = new_model.with_sas("?sv=2020-08-04&sr=b&sp=r&se=2001-01-01T00:00:00Z&sig=x")
    emulator.clear_requests()
    with pytest.raises(ConfigurationError, match="expired"):
        client.update_trained_model(
            str(emulator.info.predictive_service),
            str(emulator.info.predictive_endpoint),
            str(emulator.info.predictive_resource_name),
            expired,
        )
    assert emulator.requests == []


def test_a_missing_blob_is_refused(client, emulator: Emulator, new_model: BlobRef):
    store = BlobStore.from_connection_string(emulator.info.storage_connection_string)
    missing = store.sas(store.ref("models", f"missing-{uuid.uuid4().hex}.ilearner"))
    emulator.clear_requests()
    with pytest.raises(ConfigurationError, match="does not exist"):
        client.update_trained_model(
            str(emulator.info.predictive_service),
            str(emulator.info.predictive_endpoint),
            str(emulator.info.predictive_resource_name),
            missing,
        )
    assert _patches(emulator) == []


def test_a_wrong_token_is_an_authentication_error(emulator: Emulator):
    bad = ClassicClient(
        emulator.info.workspace_id, "wrong-token", base_url=emulator.info.management_url
    )
    with pytest.raises(AuthenticationError) as info:
        list(bad.list_web_services())
    assert "wrong-token" not in str(info.value)


def test_throttled_reads_are_retried(client, emulator: Emulator, faults: Faults):
    faults.add(route="classic.list_services", kind="status", status=503, retry_after=0, count=1)
    assert list(client.list_web_services())
