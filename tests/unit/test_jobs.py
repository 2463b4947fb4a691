"""BatchClient and TrainingJob: submit bodies, status parsing, waiting, outputs, evaluation."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import responses
from hypothesis import given
from hypothesis import strategies as st
from responses import matchers

import amlretrain.studio.batch as jobs_module
from amlretrain.blobs import BlobRef
from amlretrain.errors import (
    ConfigurationError,
    OperationTimeout,
    ServiceError,
    TrainingJobFailed,
)
from amlretrain.polling import decode_token
from amlretrain.studio.batch import BatchClient, JobStatus, PollPolicy, TrainingJob

API = "https://ussouthcentral.services.azureml.net/workspaces/ws/services/svc"
JOBS = f"{API}/jobs"
STORAGE = "https://acct.blob.core.windows.net/"
CONN = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=QUNDT1VOVEtFWQ==;"


def _sas(hours: float) -> str:
    expiry = (datetime.now(timezone.utc) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"?sv=2020-08-04&sr=b&sp=r&se={expiry}&sig=RESULTSIG"


def _status(code: Any, results: dict | None = None, details: str | None = None) -> dict:
    return {"StatusCode": code, "Results": results, "Details": details}


def _result(rel: str, hours: float = 1) -> dict:
    return {
        "ConnectionString": None,
        "RelativeLocation": rel,
        "BaseLocation": STORAGE,
        "SasBlobToken": _sas(hours),
    }


FINISHED = _status(
    "Finished",
    {"output1": _result("out/evaluation.csv"), "output2": _result("out/model.ilearner")},
)


class FakeStore:
    """Just enough of BlobStore for submit()."""

    account_url = "https://acct.blob.core.windows.net"
    connection_string = CONN

    def __init__(self) -> None:
        self.uploaded: list[Path] = []

    def upload(self, path: Path, *, container: str) -> BlobRef:
        self.uploaded.append(path)
        return self.ref(container, f"u/{path.name}")

    def ref(self, container: str, blob: str) -> BlobRef:
        return BlobRef(base_location=STORAGE, relative_location=f"{container}/{blob}")

    def owns(self, blob: BlobRef) -> bool:
        return blob.base_location == STORAGE


@pytest.fixture
def bes() -> BatchClient:
    return BatchClient(API + "/jobs?api-version=2.0", "APIKEYVALUE", poll=PollPolicy(jitter=0))


@pytest.fixture
def no_sleep(monkeypatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(jobs_module.time, "sleep", slept.append)
    return slept


# -- status ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("NotStarted", JobStatus.NOT_STARTED),
        ("Not Started", JobStatus.NOT_STARTED),
        ("running", JobStatus.RUNNING),
        ("FAILED", JobStatus.FAILED),
        ("Cancelled", JobStatus.CANCELLED),
        ("Canceled", JobStatus.CANCELLED),
        ("Finished", JobStatus.FINISHED),
        (0, JobStatus.NOT_STARTED),
        (3, JobStatus.CANCELLED),
        ("4", JobStatus.FINISHED),
        (7, JobStatus.UNKNOWN),
        ("Exploded", JobStatus.UNKNOWN),
        (None, JobStatus.UNKNOWN),
    ],
)
def test_status_is_parsed_tolerantly(raw, status):
    assert JobStatus.parse(raw) is status


@given(st.sampled_from(["notstarted", "running", "failed", "cancelled", "finished"]), st.data())
def test_status_names_parse_in_any_case(name, data):
    mixed = "".join(c.upper() if data.draw(st.booleans()) else c for c in name)
    assert JobStatus.parse(mixed) is JobStatus.parse(name)
    assert JobStatus.parse(mixed) is not JobStatus.UNKNOWN


def test_poll_policy_grows_and_caps():
    delays = PollPolicy(initial=0.5, factor=1.5, maximum=10, jitter=0).delays()
    got = [next(delays) for _ in range(12)]
    assert got[:3] == [0.5, 0.75, 1.125]
    assert max(got) == 10


# -- submit -------------------------------------------------------------------------------------


@responses.activate
def test_submit_sends_the_documented_body_and_reads_the_quoted_job_id(bes, tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("a,b\n1,2\n")
    input_sas = BlobRef(base_location=STORAGE, relative_location="data/more.csv", sas_token=_sas(1))
    responses.post(
        JOBS,
        json="abc123",
        match=[
            matchers.query_param_matcher({"api-version": "2.0"}),
            matchers.header_matcher({"Authorization": "Bearer APIKEYVALUE"}),
            matchers.json_params_matcher(
                {
                    "Inputs": {
                        "input1": {"ConnectionString": CONN, "RelativeLocation": "in/u/train.csv"},
                        "input2": input_sas.to_bes(),
                    },
                    "Outputs": {
                        "output1": {
                            "ConnectionString": CONN,
                            "RelativeLocation": "models/next.ilearner",
                        }
                    },
                    "GlobalParameters": {"epochs": "3", "flag": "True"},
                }
            ),
        ],
    )
    store = FakeStore()
    job = bes.submit(
        {"input1": train, "input2": input_sas},
        outputs={"output1": "models/next.ilearner"},
        global_parameters={"epochs": 3, "flag": True},
        store=store,
        upload_container="in",
    )
    assert job.job_id == "abc123"
    assert job.status is JobStatus.NOT_STARTED
    assert store.uploaded == [train]


@pytest.mark.parametrize(
    ("inputs", "outputs"),
    [
        ({"input1": "data/train.txt"}, {}),
        ({"input1": "data/train.csv"}, {"output1": "models/model.bin"}),
        ({}, {}),
    ],
)
@responses.activate
def test_bad_extensions_are_refused_before_any_request(bes, inputs, outputs):
    with pytest.raises(ConfigurationError):
        bes.submit(inputs, outputs=outputs, store=FakeStore())
    assert len(responses.calls) == 0


@responses.activate
def test_local_files_need_a_store(bes, tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("a\n1\n")
    with pytest.raises(ConfigurationError, match="store"):
        bes.submit({"input1": f})
    assert len(responses.calls) == 0


class SasStore(FakeStore):
    """A store without a connection string: it mints SAS tokens (and records the calls)."""

    connection_string = None

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, bool]] = []

    def ensure_container(self, container: str) -> None:
        self.calls.append(("ensure_container", container, True))

    def sas(self, blob: BlobRef, *, write: bool = False) -> BlobRef:
        self.calls.append(("sas", blob.relative_location, write))
        return blob.with_sas(f"?sp={'rcw' if write else 'r'}&sig=S")


@responses.activate
def test_an_output_sas_is_minted_only_after_its_container_is_ensured(bes):
    responses.post(JOBS, json="abc123")
    store = SasStore()
    bes.submit(
        {"input1": "data/train.csv"}, outputs={"output1": "fresh/model.ilearner"}, store=store
    )
    assert store.calls == [
        ("sas", "data/train.csv", False),  # an input is read: its container must exist
        ("ensure_container", "fresh", True),
        ("sas", "fresh/model.ilearner", True),
    ]


@responses.activate
def test_a_failed_submit_is_not_retried(bes):
    responses.post(JOBS, status=500, json={"error": {"code": "InternalError", "message": "x"}})
    with pytest.raises(ServiceError):
        bes.submit({"input1": "data/train.csv"}, store=FakeStore())
    assert len(responses.calls) == 1


@responses.activate
def test_start_posts_to_the_start_url(bes):
    responses.post(f"{JOBS}/j1/start", match=[matchers.query_param_matcher({"api-version": "2.0"})])
    job = TrainingJob(bes, "j1").start()
    assert job.status is JobStatus.RUNNING


# -- wait ----------------------------------------------------------------------------------------


@responses.activate
def test_wait_polls_until_finished_and_a_young_job_is_read_often(bes, no_sleep):
    for code in ("NotStarted", "Running", 1):
        responses.get(f"{JOBS}/j1", json=_status(code))
    responses.get(f"{JOBS}/j1", json=FINISHED)
    job = TrainingJob(bes, "j1").wait(timeout=60)
    assert job.status is JobStatus.FINISHED
    # no time passes under no_sleep: the delays stay at the initial one (10% of ~0 s)
    assert no_sleep == [0.1, 0.1, 0.1]


@responses.activate
def test_wait_honours_retry_after(bes, no_sleep):
    responses.get(f"{JOBS}/j1", json=_status("Running"), headers={"Retry-After": "7"})
    responses.get(f"{JOBS}/j1", json=FINISHED)
    TrainingJob(bes, "j1").wait(timeout=60)
    assert no_sleep == [7.0]


@responses.activate
def test_a_failed_job_raises_with_its_details(bes, no_sleep):
    responses.get(f"{JOBS}/j1", json=_status(2, details="Module error: bad rows ?sig=XYZ"))
    with pytest.raises(TrainingJobFailed) as info:
        TrainingJob(bes, "j1").wait(timeout=60)
    assert info.value.status == "Failed"
    assert "bad rows" in (info.value.details or "")
    assert "XYZ" not in str(info.value)


@responses.activate
def test_a_cancelled_job_raises(bes, no_sleep):
    responses.get(f"{JOBS}/j1", json=_status("Canceled"))
    with pytest.raises(TrainingJobFailed) as info:
        TrainingJob(bes, "j1").wait()
    assert info.value.status == "Cancelled"


@responses.activate
def test_the_deadline_cancels_the_job_then_raises(bes, no_sleep):
    responses.get(f"{JOBS}/j1", json=_status("Running"))
    responses.delete(f"{JOBS}/j1", status=200)
    with pytest.raises(OperationTimeout):
        TrainingJob(bes, "j1").wait(timeout=0)
    assert [c.request.method for c in responses.calls] == ["GET", "DELETE"]


@responses.activate
def test_ctrl_c_cancels_the_job_and_reraises(bes, monkeypatch):
    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(jobs_module.time, "sleep", interrupt)
    responses.get(f"{JOBS}/j1", json=_status("Running"))
    responses.delete(f"{JOBS}/j1", status=204)
    with pytest.raises(KeyboardInterrupt):
        TrainingJob(bes, "j1").wait(timeout=60)
    assert responses.calls[-1].request.method == "DELETE"


@responses.activate
def test_a_stop_during_a_pause_cancels_the_job_and_raises_interrupted(bes):
    from amlretrain.errors import Interrupted
    from amlretrain.interrupt import StopSignal

    responses.get(f"{JOBS}/j1", json=_status("Running"))
    responses.delete(f"{JOBS}/j1", status=204)
    stop = StopSignal(grace=5)
    stop.request()
    with pytest.raises(Interrupted):
        TrainingJob(bes, "j1").wait(timeout=60, stop=stop)
    assert [c.request.method for c in responses.calls] == ["GET", "DELETE"]


# -- begin_run_job: the wait as a poller, resumable --------------------------------------------


@responses.activate
def test_create_job_and_submit_are_one_call(bes):
    responses.post(JOBS, json="job-a")
    responses.post(JOBS, json="job-b")
    data = "https://acct.blob.core.windows.net/d/t.csv?sig=X"
    assert bes.create_job({"input1": data}).job_id == "job-a"
    assert bes.submit({"input1": data}).job_id == "job-b"
    first, second = (json.loads(c.request.body) for c in responses.calls)
    assert first == second


@responses.activate
def test_begin_run_job_starts_then_its_result_is_the_finished_job(bes, no_sleep):
    responses.post(f"{JOBS}/j1/start")
    responses.get(f"{JOBS}/j1", json=_status("Running"))
    responses.get(f"{JOBS}/j1", json=FINISHED)
    poller = bes.begin_run_job("j1")
    assert [c.request.method for c in responses.calls] == ["POST"]  # started, not yet read
    assert poller.status() == "Running" and not poller.done()
    job = poller.result(timeout=60)
    assert poller.done() and job.status is JobStatus.FINISHED
    assert job.trained_model.relative_location == "out/model.ilearner"


@responses.activate
def test_a_job_token_holds_the_job_and_endpoint_but_no_key(bes, no_sleep):
    token = bes.begin_run_job("j1", start=False).continuation_token()
    text = base64.urlsafe_b64decode(token).decode()
    assert "APIKEYVALUE" not in text and "Bearer" not in text
    assert decode_token(token, "bes.job") == {"api_location": API, "job_id": "j1"}
    responses.get(f"{JOBS}/j1", json=FINISHED)
    other = BatchClient(API, "OTHERKEY", poll=PollPolicy(jitter=0))
    job = other.begin_run_job(continuation_token=token).result()
    assert job.job_id == "j1" and job.status is JobStatus.FINISHED
    assert responses.calls[0].request.headers["Authorization"] == "Bearer OTHERKEY"


@responses.activate
def test_a_resumed_failed_job_raises_as_wait_does(bes, no_sleep):
    token = bes.begin_run_job("j1", start=False).continuation_token()
    responses.get(f"{JOBS}/j1", json=_status("Failed", details="bad rows"))
    with pytest.raises(TrainingJobFailed, match="bad rows"):
        bes.begin_run_job(continuation_token=token).result()


def test_a_job_token_of_another_endpoint_is_refused(bes):
    other = BatchClient(API.replace("/svc", "/other"), "APIKEYVALUE")
    token = other.begin_run_job("j1", start=False).continuation_token()
    with pytest.raises(ConfigurationError, match="not of this client's"):
        bes.begin_run_job(continuation_token=token)
    with pytest.raises(ConfigurationError, match="takes no job"):
        bes.begin_run_job("j1", continuation_token=token)  # type: ignore[call-overload]


@responses.activate
def test_a_poller_timeout_cancels_the_job_unless_asked_not_to(bes, no_sleep):
    responses.get(f"{JOBS}/j1", json=_status("Running"))
    responses.delete(f"{JOBS}/j1", status=204)
    with pytest.raises(OperationTimeout, match="it was cancelled"):
        bes.begin_run_job("j1", start=False).result(timeout=0)
    assert [c.request.method for c in responses.calls] == ["GET", "DELETE"]
    with pytest.raises(OperationTimeout) as info:
        bes.begin_run_job("j1", start=False, cancel_on_timeout=False).result(timeout=0)
    assert "cancelled" not in str(info.value)
    assert [c.request.method for c in responses.calls][2:] == ["GET"]


@responses.activate
def test_delete_job_cancels_and_a_gone_job_is_not_an_error(bes):
    responses.delete(f"{JOBS}/j1", status=404)
    bes.delete_job("j1")
    assert [c.request.method for c in responses.calls] == ["DELETE"]


@responses.activate
def test_cancel_of_a_vanished_job_is_not_an_error(bes):
    responses.delete(f"{JOBS}/j1", status=404, json={"error": {"code": "NotFound"}})
    TrainingJob(bes, "j1").cancel()


# -- outputs -------------------------------------------------------------------------------------


@responses.activate
def test_trained_model_is_found_by_extension_not_by_port_name(bes):
    responses.get(f"{JOBS}/j1", json=FINISHED)
    job = bes.get_job("j1")
    assert job.trained_model.relative_location == "out/model.ilearner"
    assert set(job.results) == {"output1", "output2"}


@responses.activate
def test_two_ilearner_outputs_are_ambiguous(bes):
    responses.get(
        f"{JOBS}/j1",
        json=_status("Finished", {"a": _result("x/a.ilearner"), "b": _result("x/b.ilearner")}),
    )
    with pytest.raises(ConfigurationError, match="several"):
        _ = bes.get_job("j1").trained_model


@responses.activate
def test_no_ilearner_output_points_at_the_wrong_service(bes):
    responses.get(f"{JOBS}/j1", json=_status("Finished", {"output1": _result("x/s.csv")}))
    with pytest.raises(ConfigurationError, match="training web service"):
        _ = bes.get_job("j1").trained_model


@responses.activate
def test_an_expired_result_sas_is_renewed_by_reading_the_job_again(bes):
    responses.get(
        f"{JOBS}/j1", json=_status("Finished", {"output1": _result("x/m.ilearner", hours=-1)})
    )
    responses.get(f"{JOBS}/j1", json=_status("Finished", {"output1": _result("x/m.ilearner")}))
    job = bes.get_job("j1")
    assert not job.trained_model.is_expired()
    assert len(responses.calls) == 2


@responses.activate
def test_results_before_the_end_are_refused(bes):
    responses.get(f"{JOBS}/j1", json=_status("Running"))
    with pytest.raises(ConfigurationError, match="Running"):
        _ = bes.get_job("j1").results


@responses.activate
def test_results_in_connection_string_form_are_understood(bes):
    entry = {"ConnectionString": CONN, "RelativeLocation": "models/m.ilearner"}
    responses.get(f"{JOBS}/j1", json=_status("Finished", {"output1": entry}))
    ref = bes.get_job("j1").trained_model
    assert ref.url == "https://acct.blob.core.windows.net/models/m.ilearner"


@responses.activate
def test_evaluation_downloads_the_csv_with_its_sas_and_no_api_key(bes):
    responses.get(f"{JOBS}/j1", json=FINISHED)
    responses.get(
        f"{STORAGE}out/evaluation.csv",
        body="True Positive,False Negative,Accuracy,Precision,Recall,F-Score,AUC\n"
        "10,2,0.84,0.8,0.7,0.75,0.9\n",
    )
    metrics = bes.get_job("j1").evaluation()
    assert metrics.accuracy == 0.84
    assert metrics["F-Score"] == 0.75
    download = responses.calls[-1].request
    assert "Authorization" not in download.headers
    assert "sig=RESULTSIG" in download.url


@responses.activate
def test_repr_and_html_hold_no_secret(bes):
    responses.get(f"{JOBS}/j1", json=FINISHED)
    job = bes.get_job("j1")
    text = repr(job) + job._repr_html_() + repr(bes) + str(job.document)
    assert "RESULTSIG" not in text
    assert "APIKEYVALUE" not in text
    assert "model.ilearner" in job._repr_html_()


def test_delays_never_exceed_a_tenth_of_the_time_waited() -> None:
    waited = [0.0]
    policy = PollPolicy(initial=0.25, factor=1.5, maximum=10, fraction=0.1, jitter=0.2)
    delays = policy.delays(lambda: waited[0])
    reads = 0
    while waited[0] < 60:
        pause = next(delays)
        assert pause <= max(0.25, 0.1 * waited[0]) + 1e-9
        waited[0] += pause
        reads += 1
    assert reads < 61  # fewer reads than a fixed one-second loop over the same minute


@responses.activate
def test_a_key_credential_is_read_at_each_request():
    from azure.core.credentials import AzureKeyCredential

    responses.delete(f"{JOBS}/j1", status=204)
    credential = AzureKeyCredential("FIRSTKEY")
    client = BatchClient(API, credential)
    job = TrainingJob(client, "j1")
    job.cancel()
    credential.update("SECONDKEY")
    job.cancel()
    sent = [call.request.headers["Authorization"] for call in responses.calls]
    assert sent == ["Bearer FIRSTKEY", "Bearer SECONDKEY"]
    assert "KEY" not in repr(client)
