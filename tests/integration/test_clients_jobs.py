"""BatchClient, TrainingJob, BlobStore and ScoringClient against the live emulator + Azurite."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from importlib import resources
from pathlib import Path

import pytest

from amlretrain.emulator import Emulator, Faults
from amlretrain.errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    OperationTimeout,
    ServiceError,
    ThrottledError,
    TrainingJobFailed,
)
from amlretrain.storage import BlobStore, parse_connection_string
from amlretrain.studio.batch import BatchClient, JobStatus, PollPolicy
from amlretrain.studio.scoring import ScoringClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FAST = PollPolicy(initial=0.05, factor=1.5, maximum=0.3, jitter=0.1)


@pytest.fixture
def store(emulator: Emulator) -> BlobStore:
    return BlobStore.from_connection_string(emulator.info.storage_connection_string)


@pytest.fixture
def bes(emulator: Emulator) -> BatchClient:
    info = emulator.info
    assert info.training_endpoint_api_location and info.training_api_key
    return BatchClient(info.training_endpoint_api_location, info.training_api_key, poll=FAST)


def test_store_upload_exists_download_sas_delete(store: BlobStore, tmp_path: Path):
    src = tmp_path / "data.csv"
    src.write_bytes(b"a,b\n" + b"1,2\n" * 50_000)
    ref = store.upload(src, container="itest", max_concurrency=2)
    assert store.exists(ref)
    assert store.download_bytes(ref) == src.read_bytes()
    target = store.download(ref, tmp_path / "copy.csv")
    assert target.read_bytes() == src.read_bytes()
    readable = store.sas(ref, expires_in=timedelta(minutes=5))
    assert BlobStore(store.account_url).download_bytes(readable)[:4] == b"a,b\n"
    store.delete(ref)
    store.delete(ref)  # idempotent
    assert not store.exists(ref)
    with pytest.raises(NotFoundError):
        store.download_bytes(ref)


def test_a_tampered_sas_is_refused_by_storage(store: BlobStore):
    ref = store.sas(store.upload(b"x", container="itest", blob_name="t.bin"))
    tampered = ref.with_sas(ref.sas_token.replace("sig=", "sig=AAAA"))
    with pytest.raises(AuthenticationError) as info:
        BlobStore(store.account_url).download_bytes(tampered)
    assert info.value.status == 403
    assert "sig=AAAA" not in str(info.value)


def test_train_on_a_local_file_then_read_model_and_evaluation(
    emulator: Emulator, bes: BatchClient, store: BlobStore, tmp_path: Path
):
    csv = tmp_path / "train.csv"
    csv.write_bytes(store.download_bytes(str(emulator.info.new_training_data)))
    job = bes.submit({"input1": csv}, store=store).start()
    assert job.wait(timeout=60) is job
    assert job.status is JobStatus.FINISHED
    model = job.trained_model
    assert model.relative_location.endswith(".ilearner")
    assert store.exists(model)
    metrics = job.evaluation()
    assert metrics.accuracy is not None and 0 <= metrics.accuracy <= 1
    assert metrics.auc is not None


def test_output_overrides_put_the_model_where_asked(bes: BatchClient, store: BlobStore, emulator):
    name = f"overrides/{uuid.uuid4().hex}.ilearner"
    job = bes.submit(
        {"input1": str(emulator.info.training_data)},
        outputs={"output1": name},
        store=store,
        start=True,
    ).wait(timeout=60)
    assert job.trained_model.relative_location == name


def test_an_output_in_a_container_that_does_not_exist_gets_it_created(
    bes: BatchClient, emulator: Emulator
):
    # A store with an account key and no connection string: outputs go by a minted blob
    # SAS, which cannot create a container (Azurite refuses the write as storage would).
    parts = {k.lower(): v for k, v in parse_connection_string(
        emulator.info.storage_connection_string).items()}  # fmt: skip
    store = BlobStore(
        emulator.info.blob_endpoint,
        {"account_name": parts["accountname"], "account_key": parts["accountkey"]},
    )
    assert store.connection_string is None
    container = f"fresh{uuid.uuid4().hex[:12]}"
    assert not store.service.get_container_client(container).exists()
    job = bes.submit(
        {"input1": str(emulator.info.training_data)},
        outputs={"output1": f"{container}/model.ilearner"},
        store=store,
        start=True,
    ).wait(timeout=60)
    assert job.trained_model.relative_location == f"{container}/model.ilearner"
    assert store.exists(job.trained_model)


def test_a_failing_job_raises_with_its_details(bes: BatchClient, store, emulator, faults: Faults):
    faults.add(route="bes.*", kind="job_fail", message="All rows must have same number")
    job = bes.submit({"input1": str(emulator.info.training_data)}, store=store, start=True)
    with pytest.raises(TrainingJobFailed) as info:
        job.wait(timeout=60)
    assert info.value.status == "Failed"
    assert "same number" in (info.value.details or "")


def test_the_deadline_cancels_the_job(bes: BatchClient, store, emulator, faults: Faults):
    faults.add(route="bes.*", kind="job_slow", seconds=30)
    job = bes.submit({"input1": str(emulator.info.training_data)}, store=store, start=True)
    with pytest.raises(OperationTimeout):
        job.wait(timeout=0.5)
    assert ("DELETE", f"{_path(bes)}/jobs/{job.job_id}") in {
        (r.method, r.path) for r in emulator.requests
    }
    # The emulator keeps a job cancelled while it ran (it forgets one that had ended).
    assert job.refresh().status is JobStatus.CANCELLED


def test_a_throttled_submit_is_retried_only_because_it_was_refused(
    bes: BatchClient, store, emulator, faults: Faults
):
    faults.add(route="bes.submit", kind="status", status=429, retry_after=0, count=1)
    job = bes.submit({"input1": str(emulator.info.training_data)}, store=store)
    assert job.job_id
    faults.add(route="bes.submit", kind="status", status=503, count=None)
    with pytest.raises(ThrottledError):
        bes.submit({"input1": str(emulator.info.training_data)}, store=store)


def test_a_dropped_submit_is_not_resent(bes: BatchClient, store, emulator, faults: Faults):
    emulator.clear_requests()
    faults.add(route="bes.submit", kind="drop", count=1)
    with pytest.raises(ServiceError) as info:
        bes.submit({"input1": str(emulator.info.training_data)}, store=store)
    assert info.value.status is None  # no answer: the connection was dropped
    submits = [r for r in emulator.requests if r.method == "POST" and r.path.endswith("/jobs")]
    assert len(submits) == 1


def test_submit_refuses_bad_extensions_before_any_request(bes: BatchClient, store, emulator):
    emulator.clear_requests()
    with pytest.raises(ConfigurationError):
        bes.submit({"input1": "datasets/census_train.txt"}, store=store)
    assert emulator.requests == []


def test_scoring_both_forms(emulator: Emulator):
    info = emulator.info
    assert info.predictive_endpoint_api_location and info.predictive_api_key
    rows = json.loads(
        resources.files("amlretrain.emulator").joinpath("data/score_rows.json").read_text()
    )
    rrs = ScoringClient(info.predictive_endpoint_api_location, info.predictive_api_key)
    table = rrs.score(rows["ColumnNames"], rows["Values"])
    assert len(table.rows) == len(rows["Values"])
    swagger = rrs.score(rows["ColumnNames"], rows["Values"], swagger=True)
    assert len(swagger.rows) == len(rows["Values"])


def _path(bes: BatchClient) -> str:
    from urllib.parse import urlsplit

    return urlsplit(bes.api_location).path


def test_an_unreachable_storage_account_fails_fast_with_few_retries() -> None:
    import socket

    from amlretrain.errors import ServiceError
    from amlretrain.storage import BlobStore

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = BlobStore(f"http://127.0.0.1:{port}/devstoreaccount1", timeout=(0.5, 0.5), retries=0)
    with pytest.raises(ServiceError, match="could not reach"):
        store.upload(b"x", container="nowhere", blob_name="x.csv")
