"""CommandJobTraining against the strict fake of the v2 ARM API (and a fake blob store)."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from amlretrain.azureml.jobs import CommandJobsClient
from amlretrain.azureml.training import CommandJobTraining, ledger_status
from amlretrain.blobs import BlobRef
from amlretrain.credentials import StaticTokenCredential
from amlretrain.errors import (
    ConfigurationError,
    Interrupted,
    NotFoundError,
    OperationTimeout,
    TrainingJobFailed,
)
from amlretrain.interrupt import StopSignal
from amlretrain.polling import PollPolicy
from amlretrain.result import StepRecorder
from amlretrain.training import job_name
from tests.unit.test_azureml_fake import RG, SUB, WS, W
from tests.unit.test_azureml_fake import fake as fake  # the fixture

ACCOUNT = "https://acct.blob.core.windows.net"
DS = "workspaceblobstore"


class FakeStore:
    """The datastore's account: blobs in a dict, a SAS that is only a marker."""

    account_url = ACCOUNT

    def __init__(self) -> None:
        self.blobs: dict[tuple[str, str], bytes] = {}

    def ref(self, container: str, blob: str) -> BlobRef:
        return BlobRef(base_location=ACCOUNT + "/", relative_location=f"{container}/{blob}")

    def owns(self, blob: BlobRef) -> bool:
        return blob.base_location.rstrip("/") == ACCOUNT

    def upload(self, source: Any, *, container: str, blob_name: str, **_: Any) -> BlobRef:
        self.blobs[(container, blob_name)] = Path(source).read_bytes()
        return self.ref(container, blob_name)

    def download_bytes(self, blob: BlobRef) -> bytes:
        key = (blob.container, blob.blob_name)
        if key not in self.blobs:
            raise NotFoundError(f"no blob {blob.url}", status=404, code="BlobNotFound")
        return self.blobs[key]

    def sas(self, blob: BlobRef, *, expires_in: timedelta) -> BlobRef:
        return attrs.evolve(blob, sas_token="?sv=1&sig=FAKESIG")


@pytest.fixture
def jobs(fake: Any) -> Any:
    with CommandJobsClient(
        StaticTokenCredential("t"), SUB, RG, WS, polling=PollPolicy.fixed(0), verify_timeout=5.0
    ) as client:
        yield client


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


def training_of(jobs: Any, store: FakeStore, data: Any, **kw: Any) -> CommandJobTraining:
    kw.setdefault("inputs", {"label": "income"})
    kw.setdefault("command", "python train.py --data ${{inputs.data}} --model ${{outputs.model}}")
    kw.setdefault("environment_id", "azureml:sklearn:3")
    kw.setdefault("compute", "cpu")
    return CommandJobTraining(jobs=jobs, data=data, store=store, **kw)


def csv(tmp_path: Path) -> Path:
    path = tmp_path / "new.csv"
    path.write_text("age,income\n30,>50K\n")
    return path


def finishes(fake: Any, store: FakeStore, name: str, *statuses: str, metrics: Any = None) -> None:
    """When the job is PUT, it runs through ``statuses`` and writes its outputs."""
    handle = fake._jobs

    def jobs(method: str, rest: list[str], body: Any) -> Any:
        answer = handle(method, rest, body)
        if method == "PUT" and rest == [name]:
            fake.jobs[name]["_script"] = list(statuses)
            path = f"amlretrain-models/{name}"
            store.blobs[(DS, f"{path}/model.json")] = b"{}"
            if metrics is not None:
                store.blobs[(DS, f"{path}/evaluation.json")] = json.dumps(metrics).encode()
        return answer

    fake._jobs = jobs


def test_the_put_sends_the_command_the_environment_the_compute_inputs_and_outputs(
    jobs: Any, fake: Any, store: FakeStore, tmp_path: Path
) -> None:
    training = training_of(jobs, store, csv(tmp_path))
    finishes(fake, store, "job-1", "Running", "Completed", metrics={"AUC": 0.9})
    job_id, model, metrics = training.run(StepRecorder(None), False, name="job-1")

    (body,) = fake.bodies("PUT", "/jobs/job-1")
    props = body["properties"]
    assert props["jobType"] == "Command" and props["command"].startswith("python train.py")
    assert props["environmentId"] == f"{W}/environments/sklearn/versions/3"
    assert props["computeId"] == f"{W}/computes/cpu"
    assert props["inputs"] == {
        "data": {
            "jobInputType": "uri_file",
            "uri": f"azureml://datastores/{DS}/paths/amlretrain-inputs/job-1/new.csv",
        },
        "label": {"jobInputType": "literal", "value": "income"},
    }
    assert props["outputs"] == {
        "model": {
            "jobOutputType": "uri_file",
            "uri": f"azureml://datastores/{DS}/paths/amlretrain-models/job-1/model.json",
        },
        "evaluation": {
            "jobOutputType": "uri_file",
            "uri": f"azureml://datastores/{DS}/paths/amlretrain-models/job-1/evaluation.json",
        },
    }
    assert props["limits"] == {"jobLimitsType": "Command", "timeout": "PT3600S"}
    assert "status" not in props and "id" not in body and "name" not in body
    assert fake.violations == []
    assert store.blobs[(DS, "amlretrain-inputs/job-1/new.csv")].startswith(b"age,income")
    assert job_id == "job-1" and metrics == {"AUC": 0.9}
    assert model.url == f"{ACCOUNT}/{DS}/amlretrain-models/job-1/model.json"
    assert model.sas_token  # the read SAS the engine checks the model with


def test_the_job_records_are_written_ahead_in_the_ledgers_words(
    jobs: Any, fake: Any, store: FakeStore, tmp_path: Path
) -> None:
    records: list[tuple[str, str]] = []
    puts_seen: list[int] = []

    def on_job(job_id: str, status: str) -> None:
        records.append((job_id, status))
        puts_seen.append(len(fake.bodies("PUT", "/jobs/job-1")))

    finishes(fake, store, "job-1", "Completed", metrics={"AUC": 0.9})
    training_of(jobs, store, csv(tmp_path)).run(
        StepRecorder(None), False, on_job=on_job, name="job-1"
    )
    assert records == [("", "Submitting"), ("job-1", "Submitted"), ("job-1", "Finished")]
    assert puts_seen == [0, 1, 1]  # Submitting before the PUT, Submitted once it answered


def test_a_failed_write_ahead_record_sends_nothing(
    jobs: Any, fake: Any, store: FakeStore, tmp_path: Path
) -> None:
    from amlretrain.errors import LedgerError

    def on_job(job_id: str, status: str) -> None:
        raise LedgerError("the ledger is read-only")

    with pytest.raises(LedgerError):
        training_of(jobs, store, csv(tmp_path)).run(StepRecorder(None), False, on_job=on_job)
    assert [m for m, _ in fake.methods() if m != "GET"] == []


def test_a_resumed_run_attaches_to_its_job_and_puts_nothing(
    jobs: Any, fake: Any, store: FakeStore, tmp_path: Path
) -> None:
    training = training_of(jobs, store, csv(tmp_path))
    finishes(fake, store, "job-1", "Running", metrics={"AUC": 0.8})
    with pytest.raises(OperationTimeout):
        attrs.evolve(training, timeout=0.0).run(StepRecorder(None), False, name="job-1")
    fake.jobs["job-1"]["properties"]["status"] = "Running"  # as if the cancel never took
    fake.jobs["job-1"]["_script"] = ["Running", "Completed"]
    start = len(fake.sent)
    job_id, _, metrics = training.run(StepRecorder(None), False, attach="job-1", name="other")
    assert job_id == "job-1" and metrics == {"AUC": 0.8}
    assert {m for m, _, _ in fake.sent[start:]} == {"GET"}


def test_a_job_made_by_a_put_whose_answer_was_lost_is_attached_not_put_again(
    jobs: Any, fake: Any, store: FakeStore, tmp_path: Path
) -> None:
    training = training_of(jobs, store, csv(tmp_path))
    finishes(fake, store, "job-1", "Completed", metrics={"AUC": 0.7})
    body = training.job_body("job-1", "azureml://datastores/workspaceblobstore/paths/x.csv")
    fake.jobs["job-1"] = {"id": f"{W}/jobs/job-1", "name": "job-1", **body}
    fake.jobs["job-1"]["properties"]["status"] = "Running"
    fake.jobs["job-1"]["_script"] = ["Completed"]
    store.blobs[(DS, "amlretrain-models/job-1/model.json")] = b"{}"
    store.blobs[(DS, "amlretrain-models/job-1/evaluation.json")] = b'{"AUC": 0.7}'
    job_id, _, metrics = training.run(StepRecorder(None), False, name="job-1")
    assert job_id == "job-1" and metrics == {"AUC": 0.7}
    assert fake.bodies("PUT", "/jobs/job-1") == []


def test_a_stop_request_cancels_the_job(
    jobs: Any, fake: Any, store: FakeStore, tmp_path: Path
) -> None:
    stop = StopSignal()
    records: list[tuple[str, str]] = []
    finishes(fake, store, "job-1", "Running")  # and Running until cancelled
    jobs.polling = PollPolicy.fixed(0.01)
    timer = threading.Timer(0.2, stop.request)
    timer.start()
    with pytest.raises(Interrupted):
        training_of(jobs, store, csv(tmp_path)).run(
            StepRecorder(None),
            False,
            stop=stop,
            on_job=lambda j, s: records.append((j, s)),
            name="job-1",
        )
    name = "job-1"
    assert ("POST", f"{W}/jobs/{name}/cancel") in fake.methods()
    assert fake.jobs[name]["properties"]["status"] == "Canceled"
    assert records[-1] == (name, "Cancelled")


def test_a_failed_job_raises_with_the_services_message_redacted(
    jobs: Any, fake: Any, store: FakeStore, tmp_path: Path
) -> None:
    records: list[tuple[str, str]] = []
    finishes(fake, store, "job-1", "Running", "Failed")
    handle = fake._jobs

    def failing(method: str, rest: list[str], body: Any) -> Any:
        answer = handle(method, rest, body)
        if method == "PUT":
            fake.jobs["job-1"]["properties"]["properties"] = {
                "azureml.error": "cannot read https://a.blob.core.windows.net/c/x.csv?sig=SECRET1"
            }
        return answer

    fake._jobs = failing
    with pytest.raises(TrainingJobFailed) as info:
        training_of(jobs, store, csv(tmp_path)).run(
            StepRecorder(None), False, name="job-1", on_job=lambda j, s: records.append((j, s))
        )
    assert info.value.status == "Failed" and info.value.job_id == "job-1"
    assert "cannot read" in str(info.value) and "SECRET1" not in str(info.value)
    assert records[-1] == ("job-1", "Failed")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "does not exist"),
        (b"not json", "not JSON"),
        (b"[0.9]", "not an object"),
        (b'{"AUC": "high", "ok": true}', "no numeric metric"),
    ],
)
def test_an_evaluation_output_without_numeric_metrics_is_refused(
    jobs: Any, fake: Any, store: FakeStore, tmp_path: Path, content: bytes | None, match: str
) -> None:
    finishes(fake, store, "job-1", "Completed")
    if content is not None:
        store.blobs[(DS, "amlretrain-models/job-1/evaluation.json")] = content
    with pytest.raises(ConfigurationError, match=match):
        training_of(jobs, store, csv(tmp_path)).run(StepRecorder(None), False, name="job-1")


def test_non_numeric_members_are_left_out_of_the_metrics(
    jobs: Any, fake: Any, store: FakeStore, tmp_path: Path
) -> None:
    finishes(fake, store, "job-1", "Completed", metrics={"AUC": 0.9, "note": "x", "n": 3})
    _, _, metrics = training_of(jobs, store, csv(tmp_path)).run(
        StepRecorder(None), False, name="job-1"
    )
    assert metrics == {"AUC": 0.9, "n": 3.0}


def test_data_outside_the_datastore_is_refused_before_any_request(
    jobs: Any, fake: Any, store: FakeStore
) -> None:
    for data in (
        "other-container/new.csv",
        BlobRef.from_url("https://elsewhere.blob.core.windows.net/workspaceblobstore/n.csv"),
        Path("/no/such/file.csv"),
    ):
        with pytest.raises(ConfigurationError):
            training_of(jobs, store, data).run(StepRecorder(None), False)
    assert fake.sent == []


def test_a_blob_in_the_datastore_is_the_input_as_it_is(
    jobs: Any, fake: Any, store: FakeStore
) -> None:
    finishes(fake, store, "job-1", "Completed", metrics={"AUC": 0.9})
    training_of(jobs, store, f"{DS}/data/new.csv").run(StepRecorder(None), False, name="job-1")
    (body,) = fake.bodies("PUT", "/jobs/job-1")
    uri = body["properties"]["inputs"]["data"]["uri"]
    assert uri == f"azureml://datastores/{DS}/paths/data/new.csv"
    assert not [k for k in store.blobs if k[1].startswith("amlretrain-inputs")]  # no upload


def test_bad_settings_are_refused_when_the_training_is_made(jobs: Any, store: FakeStore) -> None:
    with pytest.raises(ConfigurationError, match="command"):
        training_of(jobs, store, "x/y.csv", command=" ")
    with pytest.raises(ConfigurationError, match="two outputs"):
        training_of(jobs, store, "x/y.csv", evaluation_output="model")
    with pytest.raises(ConfigurationError, match="data_input"):
        training_of(jobs, store, "x/y.csv", inputs={"data": "x"})


def test_the_plan_sends_nothing_and_says_where_the_model_lands(
    jobs: Any, fake: Any, store: FakeStore, tmp_path: Path
) -> None:
    steps = StepRecorder(None)
    model = training_of(jobs, store, csv(tmp_path)).plan(steps, name="job-1")
    assert fake.sent == [] and store.blobs == {}
    assert model.url == f"{ACCOUNT}/{DS}/amlretrain-models/job-1/model.json"
    train = next(s for s in steps.steps if s.name == "train")
    assert train.status == "skipped" and f"{W}/jobs/job-1" in train.detail


def test_job_names_are_stable_per_run_data_and_attempt() -> None:
    name = job_name("run-20260101T000000000000Z-abc123", "new.csv")
    assert name == job_name("run-20260101T000000000000Z-abc123", "new.csv")
    assert name != job_name("run-20260101T000000000000Z-abc123", "other.csv")
    assert job_name("run-1", "new.csv", 2) == job_name("run-1", "new.csv") + "-2"
    assert ledger_status("Completed") == "Finished" and ledger_status("Canceled") == "Cancelled"


def test_a_detached_run_submits_records_and_returns_without_waiting_or_cancelling(
    jobs: Any, fake: Any, store: FakeStore, tmp_path: Path
) -> None:
    from amlretrain.training import JobDetached

    records: list[tuple[str, str]] = []
    finishes(fake, store, "job-1", "Running", "Running", "Completed", metrics={"AUC": 0.8})
    training = training_of(jobs, store, csv(tmp_path))
    with pytest.raises(JobDetached) as detached:
        training.run(
            StepRecorder(None),
            False,
            on_job=lambda j, s: records.append((j, s)),
            name="job-1",
            detach=True,
        )
    assert detached.value.job_id == "job-1"
    assert records == [("", "Submitting"), ("job-1", "Submitted")]
    assert not any(m == "POST" and path.endswith("/cancel") for m, path in fake.methods())
    assert training.job_status("job-1") == "Running"
    fake.jobs["job-1"]["_script"] = ["Completed"]
    assert training.job_status("job-1") == "Finished"
    # re-attached once it ended: evaluated, not detached again
    job_id, _, metrics = training.run(StepRecorder(None), False, attach="job-1", detach=True)
    assert job_id == "job-1" and metrics == {"AUC": 0.8}
