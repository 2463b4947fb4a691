"""The live emulator for the integration (and conformance) tests: ONE per test session.

``shared_emulator()`` starts a seeded :class:`~amlretrain.emulator.Emulator` the first time
it is entered and stops it when the last user leaves, so the integration and conformance
fixtures share one instance (and one Azurite). Under pytest-xdist that is one per worker
process (each on free ports, in its own temp folder): nothing here is shared between workers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from amlretrain.emulator import Emulator, Faults

_lock = threading.Lock()
_instance: Emulator | None = None
_users = 0

#: Items per ARM list page in the test emulator (small, so paging is exercised).
PAGE_SIZE = 3


@contextmanager
def shared_emulator() -> Iterator[Emulator]:
    """The session's emulator (started on first use, stopped when the last user leaves)."""
    global _instance, _users
    with _lock:
        if _instance is None:
            _instance = Emulator(page_size=PAGE_SIZE, lro_delay=0.2, job_duration=0.3).start()
        _users += 1
        emu = _instance
    try:
        yield emu
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _instance is not None:
                _instance.stop()
                _instance = None


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """The one seeded emulator of this test session."""
    with shared_emulator() as emu:
        yield emu


@pytest.fixture
def faults(emulator: Emulator) -> Iterator[Faults]:
    """The emulator's fault rules, cleared after the test."""
    emulator.faults.clear()
    yield emulator.faults
    emulator.faults.clear()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A plain requests session that never goes through a proxy."""
    with requests.Session() as session:
        session.trust_env = False
        yield session


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)


def classic_serves(emulator: Emulator, endpoint: str) -> str:
    """The model blob (its container/path) an endpoint of the seeded predictive service
    references, read from the emulator's own state (not through a client)."""
    assert emulator.state is not None
    with emulator.state.lock:
        ws = emulator.state.workspaces[emulator.info.workspace_id.lower()]
        found = ws.services[str(emulator.info.predictive_service)].endpoints[endpoint]
        return str(found.resources[0]["Location"]["RelativeLocation"])


def restore_seeded_models(emu: Emulator) -> None:
    """Point the seeded New service and classic endpoint back at the initial model.

    Tests retrain the seeded services; the emulator's own tests expect the seed. Run
    after every test module (below), so modules do not depend on their order.
    """
    from datetime import timedelta

    from amlretrain.ledger import strip_sas
    from amlretrain.storage import BlobStore
    from amlretrain.studio.management import ClassicClient
    from amlretrain.studio.webservices import WebServicesClient

    info = emu.info
    if not (info.initial_model and info.arm_service_name and info.predictive_service):
        return
    store = BlobStore.from_connection_string(info.storage_connection_string)
    initial = store.sas(info.initial_model, expires_in=timedelta(days=7))
    with WebServicesClient(
        emu.credential(), info.subscription_id, base_url=info.arm_base_url, polling_interval=0.05
    ) as arm:
        current = arm.get(info.resource_group, info.arm_service_name)
        if strip_sas(current.trained_models[0].uri) != initial.url:
            arm.update(
                info.resource_group,
                info.arm_service_name,
                current.with_trained_model(initial.sas_url),
                expected=current,
            )
    with ClassicClient(
        info.workspace_id, info.workspace_token, base_url=info.management_url
    ) as classic:
        endpoint = classic.get_endpoint(info.predictive_service, str(info.predictive_endpoint))
        resource = endpoint.resource(str(info.predictive_resource_name))
        if resource.location is None or resource.location.url != initial.url:
            classic.update_trained_model(
                info.predictive_service,
                str(info.predictive_endpoint),
                resource.name,
                initial,
                endpoint=endpoint,
            )


@pytest.fixture(scope="module", autouse=True)
def _seed_restored_after_each_module() -> Iterator[None]:
    """After each module, the seeded models back (see :func:`restore_seeded_models`).

    Also imported by the reliability and conformance conftests: under pytest-xdist a
    worker runs modules of every folder in any order on its one emulator, so a module of
    any folder that retrains the seed must put it back.
    """
    yield
    if _instance is not None:
        restore_seeded_models(_instance)


@pytest.fixture(scope="module")
def clients(emulator: Emulator) -> Iterator[dict[str, Any]]:
    """The emulator's ARM, classic, storage and batch clients, polling fast."""
    from amlretrain.polling import PollPolicy
    from amlretrain.storage import BlobStore
    from amlretrain.studio.batch import BatchClient
    from amlretrain.studio.management import ClassicClient
    from amlretrain.studio.webservices import WebServicesClient

    info = emulator.info
    arm = WebServicesClient(
        emulator.credential(), info.subscription_id, base_url=info.arm_base_url,
        polling_interval=0.05,
    )  # fmt: skip
    classic = ClassicClient(info.workspace_id, info.workspace_token, base_url=info.management_url)
    classic.poll = PollPolicy.fixed(0.1)
    store = BlobStore.from_connection_string(info.storage_connection_string)
    batch = BatchClient(info.training_endpoint_api_location, info.training_api_key)
    yield {"arm": arm, "classic": classic, "store": store, "batch": batch, "info": info}
    arm.close()
    classic.close()
    batch.close()
