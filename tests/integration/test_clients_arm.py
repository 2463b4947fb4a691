"""WebServicesClient against the live emulator: every operation, and the refusals."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta

import attrs
import pytest

from amlretrain.emulator import Emulator, Faults
from amlretrain.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    OperationTimeout,
    ServiceError,
    VerificationFailed,
)
from amlretrain.storage import BlobStore
from amlretrain.studio.definition import WebServiceDefinition
from amlretrain.studio.webservices import WebServicesClient, split_payloads

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


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


@pytest.fixture
def rg(emulator: Emulator) -> str:
    return emulator.info.resource_group


@pytest.fixture
def service(arm: WebServicesClient, rg: str, emulator: Emulator) -> Iterator[str]:
    """A private copy of the seeded predictive service (deleted afterwards)."""
    seeded = arm.get(rg, str(emulator.info.arm_service_name))
    name = "it-" + uuid.uuid4().hex[:10]
    arm.create_or_update(rg, name, seeded, overwrite_fetched=True)
    yield name
    arm.delete(rg, name)


def _model_ref(emulator: Emulator, name: str) -> str:
    store = BlobStore.from_connection_string(emulator.info.storage_connection_string)
    initial = store.download_bytes(str(emulator.info.initial_model))
    ref = store.upload(initial, container="models", blob_name=f"{name}.ilearner")
    return store.sas(ref, expires_in=timedelta(hours=3)).sas_url


def _writes(emu: Emulator) -> list[str]:
    return [r.method for r in emu.requests if r.method in ("PUT", "PATCH", "POST", "DELETE")]


def test_get_and_list_every_page(arm: WebServicesClient, rg: str, service: str):
    d = arm.get(rg, service)
    assert d.name == service
    assert d.trained_models
    names = [x.name for x in arm.list(rg)]
    assert service in names
    assert service in [x.name for x in arm.list()]


def _list_reads(emu: Emulator) -> int:
    return sum(1 for r in emu.requests if r.method == "GET" and r.path.endswith("/webServices"))


def test_list_reads_each_page_only_when_the_iteration_reaches_it(
    arm: WebServicesClient, rg: str, service: str, emulator: Emulator
):
    assert emulator.state is not None
    page_size, emulator.state.page_size = emulator.state.page_size, 1
    try:
        emulator.clear_requests()
        pager = arm.list(rg)
        assert _list_reads(emulator) == 0, "nothing is read before the iteration"
        items = iter(pager)
        first = next(items)
        assert _list_reads(emulator) == 1, "the first item needs the first page only"
        rest = list(items)
        names = [first.name, *(x.name for x in rest)]
        assert service in names and len(names) >= 2
        assert _list_reads(emulator) == len(names), "one read per page (nextLink)"
        pages = [list(page) for page in arm.list(rg).by_page()]
        assert [len(p) for p in pages] == [1] * len(names)
        assert [x.name for p in pages for x in p] == names
    finally:
        emulator.state.page_size = page_size


def test_a_list_with_a_bad_resource_group_is_refused_at_the_call(arm: WebServicesClient):
    with pytest.raises(ConfigurationError):
        arm.list("bad/group")


def test_get_of_a_missing_service_is_not_found(arm: WebServicesClient, rg: str):
    with pytest.raises(NotFoundError) as info:
        arm.get(rg, "does-not-exist")
    assert info.value.request_id


def test_list_keys_hides_them(arm: WebServicesClient, rg: str, service: str):
    keys = arm.list_keys(rg, service)
    assert keys.primary
    assert keys.primary not in repr(keys)


def test_update_patches_only_the_model_and_verifies(
    arm: WebServicesClient, rg: str, service: str, emulator: Emulator
):
    current = arm.get(rg, service)
    uri = _model_ref(emulator, uuid.uuid4().hex)
    poller = arm.begin_update(rg, service, current.with_trained_model(uri), expected=current)
    assert poller.request_id
    result = poller.result()
    assert result is not None
    assert result.trained_models[0].uri is not None
    assert result.trained_models[0].uri.split("?")[0] == uri.split("?")[0]


def test_an_empty_update_is_refused_before_any_request(
    arm: WebServicesClient, rg: str, service: str, emulator: Emulator
):
    current = arm.get(rg, service)
    emulator.clear_requests()
    with pytest.raises(ConfigurationError, match="changes nothing"):
        arm.update(rg, service, current, expected=current)
    assert emulator.requests == []
    with pytest.raises(ConfigurationError, match="changes nothing"):
        arm.update(rg, service, current)
    assert _writes(emulator) == []


def test_a_read_only_service_is_refused_before_the_patch(
    arm: WebServicesClient, rg: str, emulator: Emulator
):
    seeded = arm.get(rg, str(emulator.info.arm_service_name))
    assert seeded.properties is not None
    locked = attrs.evolve(seeded, properties=attrs.evolve(seeded.properties, read_only=True))
    name = "ro-" + uuid.uuid4().hex[:8]
    arm.create_or_update(rg, name, locked, overwrite_fetched=True)
    try:
        current = arm.get(rg, name)
        emulator.clear_requests()
        with pytest.raises(ConfigurationError, match="read-only"):
            arm.update(rg, name, current.with_trained_model(_model_ref(emulator, name)))
        assert "PATCH" not in _writes(emulator)
    finally:
        arm.delete(rg, name)


def test_a_fetched_document_is_not_put_without_consent(
    arm: WebServicesClient, rg: str, service: str, emulator: Emulator
):
    fetched = arm.get(rg, service)
    emulator.clear_requests()
    with pytest.raises(ConfigurationError, match="overwrite-fetched"):
        arm.begin_create_or_update(rg, service, fetched)
    assert emulator.requests == []


def test_a_changed_service_is_a_conflict(
    arm: WebServicesClient, rg: str, service: str, emulator: Emulator
):
    before = arm.get(rg, service)
    arm.update(rg, service, before.with_trained_model(_model_ref(emulator, "a" + service)))
    stale_change = before.with_trained_model(_model_ref(emulator, "b" + service))
    with pytest.raises(ConflictError):
        arm.update(rg, service, stale_change, expected=before)


def test_a_failed_operation_keeps_the_initial_request_id(
    arm: WebServicesClient, rg: str, service: str, emulator: Emulator, faults: Faults
):
    current = arm.get(rg, service)
    faults.add(route="arm.patch", kind="lro_fail", message="backend exploded")
    poller = arm.begin_update(
        rg, service, current.with_trained_model(_model_ref(emulator, "f" + service))
    )
    initial = poller.request_id
    with pytest.raises(ServiceError) as info:
        poller.result()
    assert initial and info.value.request_id == initial
    assert not isinstance(info.value, VerificationFailed)
    assert arm.get(rg, service).trained_models == current.trained_models


def test_throttled_writes_are_retried_by_azure_core(
    arm: WebServicesClient, rg: str, service: str, emulator: Emulator, faults: Faults
):
    current = arm.get(rg, service)
    faults.add(route="arm.patch", kind="status", status=429, retry_after=0, count=1)
    new = current.with_trained_model(_model_ref(emulator, "t" + service))
    after = arm.update(rg, service, new)
    assert after.trained_models[0].uri == new.trained_models[0].uri
    patches = [r.status for r in emulator.requests if r.method == "PATCH" and service in r.path]
    assert patches[-2:] == [429, 200]  # refused once, then sent again by azure-core


def test_regional_properties_then_regional_get(arm: WebServicesClient, rg: str, service: str):
    with pytest.raises(NotFoundError):
        arm.get(rg, service, region="West Europe")
    arm.create_regional_properties(rg, service, "West Europe")
    assert arm.get(rg, service, region="West Europe").name == service


def test_delete_is_idempotent(arm: WebServicesClient, rg: str, emulator: Emulator):
    seeded = arm.get(rg, str(emulator.info.arm_service_name))
    name = "del-" + uuid.uuid4().hex[:8]
    created = arm.create_or_update(rg, name, seeded, overwrite_fetched=True)
    assert isinstance(created, WebServiceDefinition)
    arm.delete(rg, name)
    arm.delete(rg, name)
    with pytest.raises(NotFoundError):
        arm.get(rg, name)


def test_a_read_that_outlives_the_read_timeout_is_a_typed_error(
    emulator: Emulator, faults: Faults
) -> None:
    info = emulator.info
    slow = WebServicesClient(
        emulator.credential(),
        info.subscription_id,
        base_url=info.arm_base_url,
        timeout=(5.0, 0.5),
    )
    faults.add(route="arm.get", kind="latency", seconds=1.5, count=None)
    with pytest.raises(OperationTimeout, match="read timeout"):
        slow.get(info.resource_group, str(info.arm_service_name))
    faults.clear()
    slow.close()


def _arm_calls(emu: Emulator, own: str) -> list[tuple[str, str, int]]:
    """The emulator's ARM requests (method, path, status), but for web services other than
    ``own`` (a resource id): another module's background poller may still read the seeded
    service in this process (pytest-xdist runs modules in any order on one emulator)."""
    return [
        (r.method, r.path, r.status)
        for r in emu.requests
        if "/subscriptions/" in r.path and ("/webServices/" not in r.path or r.path.startswith(own))
    ]


def test_the_result_of_a_put_is_the_get_after_the_operation_not_the_put_answer(
    arm: WebServicesClient, rg: str, emulator: Emulator
):
    seeded = arm.get(rg, str(emulator.info.arm_service_name))
    name = "res-" + uuid.uuid4().hex[:8]
    emulator.clear_requests()
    created = arm.create_or_update(rg, name, seeded, overwrite_fetched=True)
    try:
        calls = _arm_calls(emulator, arm.resource_id(rg, name))
        assert calls[0][0] == "PUT" and calls[0][2] == 201  # a small body: no definition
        assert "/operationsStatus/" in calls[-2][1]
        assert calls[-1][:2] == ("GET", arm.resource_id(rg, name))
        assert created.properties is not None and seeded.properties is not None
        assert created.properties.provisioning_state == "Succeeded"
        assert created.properties.assets == seeded.properties.assets
    finally:
        arm.delete(rg, name)


def test_the_result_of_a_patch_is_the_get_after_the_operation(
    arm: WebServicesClient, rg: str, service: str, emulator: Emulator
):
    current = arm.get(rg, service)
    emulator.clear_requests()
    updated = arm.update(rg, service, current.with_trained_model(_model_ref(emulator, service)))
    calls = _arm_calls(emulator, arm.resource_id(rg, service))
    patch = [c for c in calls if c[0] == "PATCH"]
    assert patch and patch[0][2] == 200
    assert calls[-1][:2] == ("GET", arm.resource_id(rg, service))
    assert updated.properties is not None and updated.properties.package is not None


def test_a_delete_of_a_service_that_does_not_exist_is_one_204_and_success(
    arm: WebServicesClient, rg: str, emulator: Emulator
):
    emulator.clear_requests()
    name = "never-" + uuid.uuid4().hex[:8]
    poller = arm.begin_delete(rg, name)
    assert poller.done()
    poller.wait()
    calls = _arm_calls(emulator, arm.resource_id(rg, name))
    assert [(m, status) for m, _, status in calls] == [("DELETE", 204)]


def test_a_large_graph_is_created_from_a_blob(arm: WebServicesClient, rg: str, emulator: Emulator):
    seeded = arm.get(rg, str(emulator.info.arm_service_name))
    small, graph = split_payloads(seeded)
    assert set(graph) >= {"assets", "package"}
    assert small.properties is not None and small.properties.assets is None
    store = BlobStore.from_connection_string(emulator.info.storage_connection_string)
    blob = store.upload(json.dumps(graph).encode(), container="payloads", blob_name="it.json")
    name = "blob-" + uuid.uuid4().hex[:8]
    created = arm.create_from_blob(
        rg, name, small, store.sas(blob, expires_in=timedelta(hours=1)), overwrite_fetched=True
    )
    try:
        assert created.properties is not None
        assert created.properties.payloads_in_blob_storage is False
        assert created.properties.payloads_location is None
        assert created.trained_models == seeded.trained_models
        assert seeded.properties is not None
        assert created.properties.package == seeded.properties.package
    finally:
        arm.delete(rg, name)


def test_create_from_blob_refuses_what_the_service_could_not_use_before_any_request(
    arm: WebServicesClient, rg: str, emulator: Emulator
):
    seeded = arm.get(rg, str(emulator.info.arm_service_name))
    small, _ = split_payloads(seeded)
    store = BlobStore.from_connection_string(emulator.info.storage_connection_string)
    blob = store.ref("payloads", "refused.json")
    emulator.clear_requests()
    with pytest.raises(ConfigurationError, match="inline"):
        arm.begin_create_from_blob(rg, "x", seeded, blob.url + "?sig=a", overwrite_fetched=True)
    with pytest.raises(ConfigurationError, match="SAS"):
        arm.begin_create_from_blob(rg, "x", small, blob.url, overwrite_fetched=True)
    expired = blob.url + "?se=2001-01-01T00%3A00%3A00Z&sp=r&sig=a"
    with pytest.raises(ConfigurationError, match="expired"):
        arm.begin_create_from_blob(rg, "x", small, expired, overwrite_fetched=True)
    with pytest.raises(ConfigurationError, match="overwrite"):
        arm.begin_create_from_blob(rg, "x", small, blob.url + "?sig=a")
    assert emulator.requests == []
