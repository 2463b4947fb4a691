"""The emulated Batch Execution Service (api-version 2.0), driven with plain requests."""

from __future__ import annotations

import time
import urllib.parse
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from amlretrain.blobs import sas_expiry
from amlretrain.emulator import Emulator, Faults
from amlretrain.emulator.learner import Model, parse_evaluation_csv
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

V = {"api-version": "2.0"}


def jobs_url(emu: Emulator) -> str:
    return f"{emu.info.training_endpoint_api_location}/jobs"


def key(emu: Emulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.info.training_api_key}"}


def conn_ref(emu: Emulator, relative: str) -> dict[str, str]:
    return {"ConnectionString": emu.info.storage_connection_string, "RelativeLocation": relative}


def train_request(emu: Emulator, **outputs: dict[str, str]) -> dict[str, Any]:
    return {
        "Inputs": {"input1": conn_ref(emu, str(emu.info.new_training_data))},
        "Outputs": outputs,
        "GlobalParameters": {},
    }


def submit(http: requests.Session, emu: Emulator, body: dict[str, Any]) -> requests.Response:
    return http.post(jobs_url(emu), params=V, json=body, headers=key(emu))


def run_job(http: requests.Session, emu: Emulator, body: dict[str, Any]) -> dict[str, Any]:
    resp = submit(http, emu, body)
    assert resp.status_code == 200, resp.text
    job_id = resp.json()
    assert isinstance(job_id, str)
    assert http.post(f"{jobs_url(emu)}/{job_id}/start", params=V, headers=key(emu)).ok
    return wait_terminal(http, emu, job_id)


def wait_terminal(http: requests.Session, emu: Emulator, job_id: str) -> dict[str, Any]:
    def terminal() -> dict[str, Any] | None:
        doc: dict[str, Any] = http.get(
            f"{jobs_url(emu)}/{job_id}", params=V, headers=key(emu)
        ).json()
        return doc if doc["StatusCode"] in ("Finished", "Failed", "Cancelled") else None

    result: dict[str, Any] = wait_for(terminal)
    return result


def blob_url(result: dict[str, str]) -> str:
    return result["BaseLocation"] + result["RelativeLocation"] + result["SasBlobToken"]


def error_detail(resp: requests.Response) -> str:
    err = resp.json()["error"]
    return str(err["details"][0]["code"])


def test_a_training_job_trains_and_writes_the_model_and_evaluation(
    emulator: Emulator, http: requests.Session
) -> None:
    status = run_job(
        http,
        emulator,
        train_request(
            emulator,
            output1=conn_ref(emulator, "bes-tests/model.ilearner"),
            output2=conn_ref(emulator, "bes-tests/evaluation.csv"),
        ),
    )
    assert status["StatusCode"] == "Finished"
    assert status["Details"] is None
    model_ref, eval_ref = status["Results"]["output1"], status["Results"]["output2"]
    assert model_ref["RelativeLocation"] == "bes-tests/model.ilearner"
    assert model_ref["ConnectionString"] is None
    assert model_ref["BaseLocation"] == emulator.info.blob_endpoint + "/"
    sas = urllib.parse.parse_qs(model_ref["SasBlobToken"].lstrip("?"))
    assert sas["sr"] == ["b"]
    assert sas["sp"] == ["r"]
    expiry = sas_expiry(model_ref["SasBlobToken"])
    assert expiry is not None
    now = datetime.now(timezone.utc)
    assert now + timedelta(minutes=55) < expiry <= now + timedelta(minutes=61)
    model = Model.from_bytes(http.get(blob_url(model_ref)).content)
    assert model.label == "income"
    metrics = parse_evaluation_csv(http.get(blob_url(eval_ref)).content)
    assert 0.5 < metrics["AUC"] <= 1.0
    tampered = blob_url(model_ref).replace("sig=", "sig=x")
    assert http.get(tampered).status_code == 403


def test_without_overrides_outputs_get_generated_names_in_experimentoutput(
    emulator: Emulator, http: requests.Session
) -> None:
    status = run_job(http, emulator, train_request(emulator))
    assert status["StatusCode"] == "Finished"
    assert status["Results"]["output1"]["RelativeLocation"].startswith("experimentoutput/")
    assert status["Results"]["output1"]["RelativeLocation"].endswith(".ilearner")
    assert status["Results"]["output2"]["RelativeLocation"].endswith(".csv")
    assert http.get(blob_url(status["Results"]["output2"])).status_code == 200


def test_inputs_by_sas_and_legacy_single_input_with_leading_slash(
    emulator: Emulator, http: requests.Session
) -> None:
    first = run_job(http, emulator, train_request(emulator))
    data = first["Results"]["output2"]
    # a CSV readable only through its SAS, as BaseLocation + RelativeLocation + SasBlobToken
    body = {
        "Input": {
            "BaseLocation": emulator.info.blob_endpoint + "/",
            "RelativeLocation": "/" + str(emulator.info.training_data),
            "SasBlobToken": "",
        }
    }
    refused = submit(http, emulator, body)
    assert refused.status_code == 400
    assert error_detail(refused) == "BlobNotFound"
    body["Input"] = conn_ref(emulator, "/" + str(emulator.info.training_data))
    assert run_job(http, emulator, body)["StatusCode"] == "Finished"
    assert data["RelativeLocation"].endswith(".csv")


@pytest.mark.parametrize(
    ("mutate", "detail"),
    [
        (
            lambda b, e: b["Inputs"]["input1"].update(RelativeLocation="datasets/x.json"),
            "InvalidBlobExtension",
        ),
        (
            lambda b, e: b["Outputs"].update(output1=conn_ref(e, "out/m.csv")),
            "InvalidBlobExtension",
        ),
        (
            lambda b, e: b["Outputs"].update(output2=conn_ref(e, "out/e.ilearner")),
            "InvalidBlobExtension",
        ),
        (lambda b, e: b.update(Inputs={"Input1": b["Inputs"]["input1"]}), "InvalidInputNames"),
        (
            lambda b, e: b["Outputs"].update(Output1=conn_ref(e, "out/m.ilearner")),
            "InvalidOutputOverrideName",
        ),
        (lambda b, e: b.update(Input=b["Inputs"]["input1"]), "DuplicateInputInBatchCall"),
        (
            lambda b, e: b["Inputs"]["input1"].update(RelativeLocation="datasets/none.csv"),
            "BlobNotFound",
        ),
        (lambda b, e: b.update(Inputs={}), "BatchJobInputsNotSpecified"),
        (lambda b, e: b.pop("Inputs"), "BatchJobInputsNotSpecified"),
        (
            lambda b, e: b["Inputs"]["input1"].update(ConnectionString="garbage"),
            "InvalidBlobConnectionString",
        ),
        (lambda b, e: b["Inputs"]["input1"].pop("ConnectionString"), "MissingInputBlobInformation"),
    ],
)
def test_submit_validates_like_the_real_service(
    emulator: Emulator, http: requests.Session, mutate: Any, detail: str
) -> None:
    body = train_request(emulator)
    mutate(body, emulator)
    resp = submit(http, emulator, body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "BadArgument"
    assert error_detail(resp) == detail


def test_a_job_waits_in_not_started_and_cannot_start_twice(
    emulator: Emulator, http: requests.Session
) -> None:
    job_id = submit(http, emulator, train_request(emulator)).json()
    status = http.get(f"{jobs_url(emulator)}/{job_id}", params=V, headers=key(emulator)).json()
    assert status == {"StatusCode": "NotStarted", "Results": None, "Details": None}
    assert http.post(f"{jobs_url(emulator)}/{job_id}/start", params=V, headers=key(emulator)).ok
    again = http.post(f"{jobs_url(emulator)}/{job_id}/start", params=V, headers=key(emulator))
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "InvalidOperation"
    assert error_detail(again) == "CannotStartJob"
    assert "Running" in again.json()["error"]["details"][0]["message"]
    wait_terminal(http, emulator, job_id)


def test_delete_cancels_a_job(emulator: Emulator, http: requests.Session) -> None:
    job_id = submit(http, emulator, train_request(emulator)).json()
    http.post(f"{jobs_url(emulator)}/{job_id}/start", params=V, headers=key(emulator))
    assert http.delete(f"{jobs_url(emulator)}/{job_id}", params=V, headers=key(emulator)).ok
    status = http.get(f"{jobs_url(emulator)}/{job_id}", params=V, headers=key(emulator)).json()
    assert status["StatusCode"] == "Cancelled"
    assert status["Results"] is None


def test_missing_job_id_and_unknown_job(emulator: Emulator, http: requests.Session) -> None:
    resp = http.post(f"{jobs_url(emulator)}//start", params=V, headers=key(emulator))
    assert resp.status_code == 400
    assert error_detail(resp) == "MissingJobId"
    resp = http.get(f"{jobs_url(emulator)}/", params=V, headers=key(emulator))
    assert error_detail(resp) == "MissingJobId"
    assert (
        http.get(f"{jobs_url(emulator)}/{'0' * 32}", params=V, headers=key(emulator)).status_code
        == 404
    )


def test_wrong_key_is_401_and_wrong_version_is_400(
    emulator: Emulator, http: requests.Session
) -> None:
    body = train_request(emulator)
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {emulator.info.workspace_token}"},
    ):
        resp = http.post(jobs_url(emulator), params=V, json=body, headers=headers)
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "Unauthorized"
        assert error_detail(resp) == "ScoreRequestUnauthorized"
    resp = http.post(
        jobs_url(emulator), params={"api-version": "1.0"}, json=body, headers=key(emulator)
    )
    assert resp.status_code == 400
    assert error_detail(resp) == "BadVersionCall"


def test_job_fail_and_job_slow_faults(
    emulator: Emulator, http: requests.Session, faults: Faults
) -> None:
    faults.add(route="bes.start", kind="job_fail", message="Error 0000: out of memory")
    failed = run_job(http, emulator, train_request(emulator))
    assert failed["StatusCode"] == "Failed"
    assert failed["Details"] == "Error 0000: out of memory"
    assert failed["Results"] is None
    faults.add(route="bes.*", kind="job_slow", seconds=1.0)
    job_id = submit(http, emulator, train_request(emulator)).json()
    http.post(f"{jobs_url(emulator)}/{job_id}/start", params=V, headers=key(emulator))
    time.sleep(0.6)
    running = http.get(f"{jobs_url(emulator)}/{job_id}", params=V, headers=key(emulator)).json()
    assert running["StatusCode"] == "Running"
    assert wait_terminal(http, emulator, job_id)["StatusCode"] == "Finished"


def test_a_job_on_a_csv_it_cannot_train_on_fails_with_details(
    emulator: Emulator, http: requests.Session
) -> None:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(emulator.info.storage_connection_string)
    with service:
        container = service.get_container_client("bes-tests")
        if not container.exists():
            container.create_container()
        container.upload_blob("bad.csv", b"age,income\nold,>50K\nyoung,<=50K\n", overwrite=True)
    status = run_job(
        http, emulator, {"Inputs": {"input1": conn_ref(emulator, "bes-tests/bad.csv")}}
    )
    assert status["StatusCode"] == "Failed"
    assert status["Results"] is None
    assert "Error" in status["Details"]


def test_a_predictive_new_service_scores_a_csv_in_batch(
    emulator: Emulator, http: requests.Session
) -> None:
    base = str(emulator.info.arm_api_location)
    headers = {"Authorization": f"Bearer {emulator.info.arm_api_key}"}
    body = {
        "Inputs": {"input1": conn_ref(emulator, str(emulator.info.training_data))},
        "Outputs": {"output1": conn_ref(emulator, "bes-tests/scored.csv")},
    }
    job_id = http.post(f"{base}/jobs", params=V, json=body, headers=headers).json()
    http.post(f"{base}/jobs/{job_id}/start", params=V, headers=headers)

    def finished() -> dict[str, Any] | None:
        doc: dict[str, Any] = http.get(f"{base}/jobs/{job_id}", params=V, headers=headers).json()
        return doc if doc["StatusCode"] == "Finished" else None

    status = wait_for(finished)
    text = http.get(blob_url(status["Results"]["output1"])).text
    assert text.splitlines()[0].endswith("Scored Labels,Scored Probabilities")
