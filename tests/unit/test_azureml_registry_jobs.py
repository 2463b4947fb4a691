"""ModelsClient and CommandJobsClient against the strict fake; OnlineScoringClient."""

from __future__ import annotations

import json
from typing import Any

import pytest

from amlretrain.azureml.jobs import CommandJobsClient
from amlretrain.azureml.models import CommandJob, ModelContainer, ModelRef
from amlretrain.azureml.registry import ModelsClient
from amlretrain.azureml.scoring import OnlineScoringClient
from amlretrain.credentials import StaticTokenCredential
from amlretrain.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    OperationTimeout,
    ServiceError,
    ThrottledError,
    TrainingJobFailed,
)
from amlretrain.polling import PollPolicy, decode_token
from tests.unit.test_azureml_fake import RG, SUB, WS, W, model_id
from tests.unit.test_azureml_fake import fake as fake  # the fixture

URI = "azureml://jobs/retrain-1/outputs/model/paths/model.pkl"


def _options() -> dict[str, Any]:
    return {"polling": PollPolicy.fixed(0), "verify_timeout": 5.0}


@pytest.fixture
def models(fake: Any) -> Any:
    with ModelsClient(StaticTokenCredential("t"), SUB, RG, WS, **_options()) as client:
        yield client


@pytest.fixture
def jobs(fake: Any) -> Any:
    with CommandJobsClient(StaticTokenCredential("t"), SUB, RG, WS, **_options()) as client:
        yield client


# -- models -----------------------------------------------------------------------------------


def test_register_version_puts_once_and_is_idempotent_for_an_identical_version(models, fake):
    version = models.register_version("census", "4", URI, job_name="retrain-1")
    assert version.model_uri == URI and version.job_name == "retrain-1"
    assert ModelRef.parse(version.id).short == "azureml:census:4"
    (body,) = fake.bodies("PUT", "/models/census/versions/4")
    assert body == {
        "properties": {"modelUri": URI, "modelType": "custom_model", "jobName": "retrain-1"}
    }
    again = models.register_version("census", "4", URI + "/", model_type="CustomModel")
    assert again.id == version.id
    assert len(fake.bodies("PUT", "/models/census/versions/4")) == 1
    assert fake.violations == []


def test_register_version_refuses_a_different_existing_version(models, fake):
    models.register_version("census", "4", URI)
    with pytest.raises(ConflictError, match=r"modelUri is .*versions are immutable"):
        models.register_version("census", "4", "azureml://jobs/other/outputs/model")
    assert len(fake.bodies("PUT", "/models/census/versions/4")) == 1


def test_register_version_refuses_an_ilearner_before_any_request(models, fake):
    with pytest.raises(ConfigurationError, match=r"Studio \(classic\)"):
        models.register_version("census", "5", "https://a.blob.core.windows.net/c/m.ilearner?sig=S")
    assert fake.sent == []


def test_model_reads_and_the_container_put(models, fake):
    container = ModelContainer.from_dict({"properties": {"description": "census"}})
    made = models.create_or_update_container("census", container)
    assert made.name == "census"
    assert [c.name for c in models.list_containers()] == ["census"]
    models.register_version("census", "1", URI)
    assert [v.name for v in models.list_versions("census")] == ["1"]
    assert models.get_version("census", "1").model_uri == URI
    with pytest.raises(NotFoundError):
        models.get_version("census", "9")
    assert fake.violations == []


# -- jobs ---------------------------------------------------------------------------------------


def _job() -> CommandJob:
    return CommandJob.from_dict(
        {
            "properties": {
                "jobType": "Command",
                "command": "python train.py",
                "environmentId": f"{W}/environments/env/versions/1",
                "computeId": f"{W}/computes/cpu",
                "outputs": {"model": {"jobOutputType": "custom_model"}},
                "status": "Completed",  # read-only: never sent
            }
        }
    )


def test_a_job_is_created_by_one_put_without_read_only_members(jobs, fake):
    job = jobs.create("retrain-1", _job())
    assert job.status == "NotStarted"
    (body,) = fake.bodies("PUT", "/jobs/retrain-1")
    assert "status" not in body["properties"] and body["properties"]["jobType"] == "Command"
    assert fake.violations == []
    with pytest.raises(ConflictError, match="exists"):
        jobs.create("retrain-1", _job())
    assert len(fake.bodies("PUT", "/jobs/retrain-1")) == 1


def test_a_job_that_is_not_a_command_job_is_refused(jobs, fake):
    with pytest.raises(ConfigurationError):
        jobs.create("x", CommandJob.from_dict({"properties": {"jobType": "Sweep"}}))
    assert fake.sent == []


def test_wait_reads_until_a_terminal_status(jobs, fake):
    jobs.create("retrain-1", _job())
    fake.jobs["retrain-1"]["_script"] = ["Queued", "Running", "Finalizing", "Completed"]
    done = jobs.wait("retrain-1")
    assert done.status == "Completed" and done.is_terminal
    assert done.output_uri("model", "model.pkl") == URI


def test_wait_raises_for_a_failed_job_and_times_out(jobs, fake):
    jobs.create("retrain-1", _job())
    fake.jobs["retrain-1"]["_script"] = ["Running", "Failed"]
    with pytest.raises(TrainingJobFailed) as info:
        jobs.wait("retrain-1")
    assert info.value.status == "Failed" and info.value.job_id == "retrain-1"
    fake.jobs["retrain-1"]["_script"] = ["Running"] * 5
    with pytest.raises(OperationTimeout):
        jobs.wait("retrain-1", timeout=0)


def test_cancel_is_a_post_followed_by_location_and_verified(jobs, fake):
    jobs.create("retrain-1", _job())
    fake.polls = 1
    poller = jobs.begin_cancel("retrain-1")
    assert poller.result().status == "Canceled"
    assert poller.discrepancy is None
    assert ("POST", f"{W}/jobs/retrain-1/cancel") in fake.methods()
    assert len([p for _, p in fake.methods() if "mfeOperationsResults" in p]) == 2
    token = decode_token(poller.continuation_token(), "azureml.arm")
    assert token["operation"] == "POST" and "Bearer" not in json.dumps(token)


def test_delete_follows_location_and_is_verified_absent(jobs, fake):
    jobs.create("retrain-1", _job())
    assert jobs.begin_delete("retrain-1").result() is None
    assert "retrain-1" not in fake.jobs
    assert jobs.begin_delete("retrain-1").result() is None  # already absent: success
    assert [j.name for j in jobs.list()] == []


# -- scoring ------------------------------------------------------------------------------------

SCORE = "https://ep.westeurope.inference.ml.azure.com/score"


@pytest.fixture
def mock() -> Any:
    import responses

    with responses.RequestsMock(assert_all_requests_are_fired=True) as m:
        yield m


def test_score_sends_the_body_the_key_and_the_deployment_header(mock):
    mock.post(SCORE, json=[0.9, 0.1])
    with OnlineScoringClient(SCORE, "KEY-SECRET") as client:
        assert client.score({"data": [[1, 2]]}, deployment="green") == [0.9, 0.1]
        assert "KEY-SECRET" not in repr(client)
    request = mock.calls[0].request
    assert request.headers["Authorization"] == "Bearer KEY-SECRET"
    assert request.headers["azureml-model-deployment"] == "green"
    assert json.loads(request.body) == {"data": [[1, 2]]}


def test_score_without_a_deployment_sends_no_header(mock):
    mock.post(SCORE, body="plain text")
    with OnlineScoringClient(SCORE, "k") as client:
        assert client.score([1]) == "plain text"
    assert "azureml-model-deployment" not in mock.calls[0].request.headers


def test_transient_failures_are_sent_again(mock, monkeypatch):

    monkeypatch.setattr("amlretrain._http.time.sleep", lambda _s: None)
    import requests

    mock.post(SCORE, status=502, json={"error": {"code": "BadGateway", "message": "x"}})
    mock.post(SCORE, json={"ok": True})
    session = requests.Session()  # no urllib3 retries: the client's own are tested
    with OnlineScoringClient(SCORE, "k", session=session) as client:
        assert client.score({}) == {"ok": True}
    assert len(mock.calls) == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthenticationError), (404, NotFoundError), (408, ServiceError), (429, ThrottledError)],
)
def test_refusals_are_mapped_and_not_retried_unless_transient(mock, monkeypatch, status, error):
    import requests

    monkeypatch.setattr("amlretrain._http.time.sleep", lambda _s: None)
    for _ in range(3 if status == 429 else 1):
        mock.post(SCORE, status=status, json={"error": {"code": "E", "message": "no"}})
    client = OnlineScoringClient(SCORE, "k", session=requests.Session(), transient_retries=2)
    with client, pytest.raises(error) as info:
        client.score({})
    assert info.value.status == status


def test_a_424_names_the_model_containers_own_answer(mock):
    import requests

    headers = {
        "ms-azureml-model-error-statuscode": "500",
        "ms-azureml-model-error-reason": "model raised",
    }
    mock.post(SCORE, status=424, body="upstream failed", headers=headers)
    client = OnlineScoringClient(SCORE, "k", session=requests.Session())
    with client, pytest.raises(ServiceError) as info:
        client.score({})
    assert info.value.status == 424
    assert "model container answered 500 (model raised)" in str(info.value)


def test_arm_ids_of_registered_models_parse_back():
    assert ModelRef.parse(model_id("census", "4")).arm_id(SUB, RG, WS) == model_id("census", "4")
