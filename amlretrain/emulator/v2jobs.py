"""Command jobs that really train (V2-NOTES 5): the bundled learner, in a thread per job.

The job's ``command`` is NOT executed: whatever it says, the emulator

1. reads the training CSV of the job's first ``uri_file`` input (an
   ``azureml://datastores/<ds>/paths/<p>`` URI: blob ``<p>`` of Azurite container ``<ds>``);
2. takes the label column from a ``literal`` input named ``label``, ``label_column`` or
   ``target`` (default: the CSV's last column);
3. trains on 75% of the rows and evaluates on the other 25%, as the classic training
   service does (:mod:`amlretrain.emulator.learner`);
4. writes the model (the learner's JSON format) to the output named ``model``, else the
   first output of a model type, else the first output not named ``evaluation``, and,
   when an output named ``evaluation`` is declared, the metrics as a JSON object there.
   An output without ``uri`` gets
   ``azureml://datastores/workspaceblobstore/paths/<job>/<output>/model.json`` (or
   ``evaluation.json``), shown on GET; a URI naming a folder (no file extension) gets that
   file name inside it; ``${{default_datastore}}``, ``${{name}}`` and
   ``${{output_name}}`` are resolved. A job that declares no output for the model gets
   one named ``model`` (``uri_file``).

Status goes ``NotStarted -> Starting -> Preparing -> Queued -> Running -> Finalizing ->
Completed`` (``job_duration`` spread over the steps), or ``Failed`` (the message in
``properties.properties["azureml.error"]``), or on cancel ``CancelRequested -> Canceled``.
The faults ``job_fail``, ``train_shuffled`` and ``train_behaviour`` on route
``v2.job.put`` act as on a classic training job.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from typing import Any

import attrs

from amlretrain.emulator._server import Request
from amlretrain.emulator._storage import BlobAccessError, Storage
from amlretrain.emulator.faults import Fault, Faults
from amlretrain.emulator.state import State
from amlretrain.emulator.v2state import (
    DEFAULT_DATASTORE,
    PROVIDER,
    V2Job,
    V2Workspace,
    datastore_path,
    system_data,
)

__all__ = ["STEPS", "JobRunner"]

log = logging.getLogger(__name__)

STEPS = ("Starting", "Preparing", "Queued", "Running", "Finalizing")
_MODEL_TYPES = ("custom_model", "mlflow_model", "triton_model")
_LABEL_INPUTS = ("label", "label_column", "target")


class _JobError(Exception):
    pass


def _resolve(uri: str, job: str, output: str) -> str:
    return (
        uri.replace("${{default_datastore}}", DEFAULT_DATASTORE)
        .replace("${{name}}", job)
        .replace("${{output_name}}", output)
    )


def _file_in(uri: str, filename: str) -> tuple[str, str]:
    where = datastore_path(uri)
    if where is None:
        raise _JobError(f"output URI {uri!r} is not an azureml://datastores/… URI")
    container, blob = where
    last = blob.rstrip("/").rsplit("/", 1)[-1]
    if blob.endswith("/") or "." not in last:
        blob = f"{blob.rstrip('/')}/{filename}".lstrip("/")
    return container, blob


class JobRunner:
    """Creates v2 command jobs and runs them in threads."""

    def __init__(
        self, *, state: State, storage: Storage, faults: Faults, job_duration: float
    ) -> None:
        self.state = state
        self.storage = storage
        self.faults = faults
        self.job_duration = job_duration
        self._threads: list[threading.Thread] = []

    def stop(self) -> None:
        """Cancel and join every job thread."""
        with self.state.lock:
            for job in self.state.v2.jobs.values():
                job.cancel.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def create(self, req: Request, ws: V2Workspace, name: str, props: dict[str, Any]) -> V2Job:
        """Store the job (``NotStarted``) and start its thread (call under the lock)."""
        props = copy.deepcopy(props)
        given = props.get("outputs")
        outputs: dict[str, Any] = given if isinstance(given, dict) else {}
        outputs = {k: v for k, v in outputs.items() if isinstance(v, dict)}
        model_output = next((k for k, v in outputs.items() if self._is_model(k, v)), None)
        model_output = model_output or next((k for k in outputs if k != "evaluation"), None)
        if model_output is None:
            model_output = "model"
            outputs["model"] = {"jobOutputType": "uri_file", "mode": "ReadWriteMount"}
        for out_name, out in outputs.items():
            filename = "evaluation.json" if out_name == "evaluation" else "model.json"
            default = f"azureml://datastores/{DEFAULT_DATASTORE}/paths/{name}/{out_name}/{filename}"
            out["uri"] = _resolve(str(out.get("uri") or default), name, out_name)
            out.setdefault("mode", "ReadWriteMount")
        props["outputs"] = outputs
        props.update(
            status="NotStarted",
            experimentName=props.get("experimentName") or "Default",
            services={
                "Studio": {
                    "jobServiceType": "Studio",
                    "endpoint": f"{req.base_url}/v2/studio/jobs/{name}",
                    "status": "Running",
                }
            },
            properties={str(k): str(v) for k, v in (props.get("properties") or {}).items()},
        )
        props.setdefault("isArchived", False)
        job = V2Job(
            name=name,
            resource={
                "id": f"{ws.arm_id}/jobs/{name}",
                "name": name,
                "type": f"{PROVIDER}/workspaces/jobs",
                "systemData": system_data(),
                "properties": props,
            },
            history=["NotStarted"],
            model_output=model_output,
            created=self.state.v2.order(),
        )
        key = (*ws.key, name.lower())
        self.state.v2.jobs[key] = job
        route = [req.route]
        failure = self.faults.take_one(route, "job_fail")
        slow = self.faults.take_one(route, "job_slow")
        bad = (
            self.faults.take_one(route, "train_shuffled"),
            self.faults.take_one(route, "train_behaviour"),
        )
        duration = slow.seconds if slow is not None else self.job_duration
        message = (failure.message or "The job failed (injected fault).") if failure else None
        thread = threading.Thread(
            target=self._run, args=(job, duration, message, bad), name=f"v2-job-{name}", daemon=True
        )
        job.thread = thread
        self._threads.append(thread)
        thread.start()
        return job

    @staticmethod
    def _is_model(name: str, out: dict[str, Any]) -> bool:
        return name == "model" or out.get("jobOutputType") in _MODEL_TYPES

    def _set(self, job: V2Job, status: str) -> bool:
        """Move to ``status`` unless canceled; False when the job was canceled."""
        with self.state.lock:
            if job.cancel.is_set():
                return False
            job.resource["properties"]["status"] = status
            job.history.append(status)
            return True

    def _run(
        self,
        job: V2Job,
        duration: float,
        failure: str | None,
        bad: tuple[Fault | None, Fault | None],
    ) -> None:
        step = duration / (len(STEPS) + 1)
        for status in STEPS[:-1]:
            if not self._set(job, status) or job.cancel.wait(step):
                return
        try:
            if failure is not None:
                raise _JobError(failure)
            self._train(job, *bad)
        except _JobError as err:
            self._fail(job, str(err))
            return
        except Exception as err:  # the job fails, the emulator does not
            log.debug("v2 job %s failed", job.name, exc_info=True)
            self._fail(job, f"{type(err).__name__}: {err}")
            return
        if not self._set(job, "Finalizing") or job.cancel.wait(step):
            return
        self._set(job, "Completed")
        with self.state.lock:
            job.resource["properties"]["services"]["Studio"]["status"] = "Completed"

    def _fail(self, job: V2Job, message: str) -> None:
        with self.state.lock:
            job.resource["properties"]["properties"]["azureml.error"] = message[:1000]
        self._set(job, "Failed")

    def _train(self, job: V2Job, shuffled: Fault | None, behaviour: Fault | None) -> None:
        from amlretrain.emulator import learner

        with self.state.lock:
            props = copy.deepcopy(job.resource["properties"])
        given = props.get("inputs")
        inputs: dict[str, Any] = given if isinstance(given, dict) else {}
        data_uri = next(
            (
                str(v.get("uri") or "")
                for v in inputs.values()
                if isinstance(v, dict) and v.get("jobInputType") == "uri_file"
            ),
            None,
        )
        if not data_uri:
            raise _JobError("the job has no uri_file input holding the training CSV")
        where = datastore_path(data_uri)
        if where is None:
            raise _JobError(f"input URI {data_uri!r} is not an azureml://datastores/… URI")
        label = next(
            (
                str(v.get("value"))
                for k, v in inputs.items()
                if k in _LABEL_INPUTS and isinstance(v, dict) and v.get("jobInputType") == "literal"
            ),
            None,
        )
        try:
            data = self.storage.download(*where)
        except BlobAccessError as err:
            raise _JobError(f"cannot read the input {data_uri}: {err}") from err
        try:
            part, holdout = learner.split_holdout(data)
            if shuffled is not None:
                part = learner.shuffled_labels(part, label, seed=shuffled.seed or 1)
            model = learner.train(part, label=label)
            metrics = learner.evaluate(model, holdout)
        except learner.LearnerError as err:
            raise _JobError(f"training failed: {err}") from err
        if behaviour is not None:
            model = attrs.evolve(model, behaviour=behaviour.behaviour())
        outputs = props["outputs"]
        model_uri = outputs[job.model_output]["uri"]
        self.storage.upload(*_file_in(model_uri, "model.json"), model.to_bytes())
        if "evaluation" in outputs:
            where_eval = _file_in(outputs["evaluation"]["uri"], "evaluation.json")
            self.storage.upload(*where_eval, json.dumps(metrics, sort_keys=True).encode())
        log.info("v2 job %s trained a model on %s", job.name, data_uri)
