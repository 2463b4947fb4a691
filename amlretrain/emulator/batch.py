"""The emulated Batch Execution Service, api-version 2.0 (API-NOTES 2.2-2.6).

``POST {base}/jobs`` submits (the job id comes back as a JSON string), ``POST
{base}/jobs/{id}/start`` starts, ``GET {base}/jobs/{id}`` reports ``StatusCode``,
``Results`` (fresh read-only SAS on every call) and ``Details``, ``DELETE`` cancels.
Jobs run on background threads: a training service reads its input CSV from Azurite,
trains with :mod:`amlretrain.emulator.learner` and writes the ``.ilearner`` (``output1``)
and the evaluation CSV (``output2``); a predictive service scores the CSV.

A ``train_shuffled`` fault taken at the start of a training job makes it train on its
data with the label shuffled (the holdout stays untouched, so the evaluation output shows
the bad model); a ``train_behaviour`` fault gives the model it writes the ``"emulator"``
behaviour member (see :mod:`amlretrain.emulator.faults`).
"""

from __future__ import annotations

import csv
import io
import logging
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from amlretrain._redact import redact
from amlretrain.emulator._runtime import CLASSIC_BASE, NEW_BASE, authorize, check_version, resolve
from amlretrain.emulator._server import (
    Reply,
    Request,
    Response,
    Router,
    json_response,
    runtime_error,
)
from amlretrain.emulator._storage import BlobAccessError, Storage
from amlretrain.emulator.faults import Fault, Faults
from amlretrain.emulator.state import Job, Runtime, State, ci_get, new_id

__all__ = ["DATASET_EXTENSIONS", "MODEL_EXTENSIONS", "BatchApi"]

log = logging.getLogger(__name__)

DATASET_EXTENSIONS = (".csv", ".tsv", ".arff")
MODEL_EXTENSIONS = (".ilearner",)
OUTPUT_CONTAINER = "experimentoutput"
TERMINAL = ("Finished", "Failed", "Cancelled")


def _bad(detail: str, message: str) -> Reply:
    return Reply(runtime_error(400, "BadArgument", "Invalid argument provided.", detail, message))


def _extension(relative: str) -> str:
    name = relative.rsplit("/", 1)[-1].lower()
    return "." + name.rsplit(".", 1)[-1] if "." in name else ""


class BatchApi:
    """The BES routes for classic endpoints and New web services.

    Args:
        state: the shared state.
        storage: the Azurite account.
        faults: fault rules (``job_fail``, ``job_slow`` and, for training jobs,
            ``train_shuffled``/``train_behaviour`` are consumed at start).
        job_duration: seconds a job takes before it finishes (at least).
    """

    def __init__(
        self, *, state: State, storage: Storage, faults: Faults, job_duration: float
    ) -> None:
        self.state = state
        self.storage = storage
        self.faults = faults
        self.job_duration = job_duration
        self._threads: list[threading.Thread] = []

    def register(self, router: Router) -> None:
        """Add the BES routes under both base paths."""
        for base in (CLASSIC_BASE, NEW_BASE):
            router.add("POST", base + "/jobs", "bes.submit", self.submit)
            router.add("GET", base + "/jobs", "bes.list", self.list_jobs)
            router.add("POST", base + "/jobs/{job}/start", "bes.start", self.start)
            router.add("GET", base + "/jobs/{job}", "bes.status", self.status)
            router.add("DELETE", base + "/jobs/{job}", "bes.delete", self.delete)

    def stop(self) -> None:
        """Cancel every running job and join its thread."""
        with self.state.lock:
            for job in self.state.jobs.values():
                job.cancel.set()
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join()

    # -- helpers -----------------------------------------------------------------------

    def _enter(self, req: Request) -> Runtime:
        runtime = resolve(self.state, req)
        authorize(req, runtime)
        check_version(req)
        return runtime

    def _job(self, req: Request, runtime: Runtime) -> Job:
        job_id = req.params.get("job", "")
        if not job_id:
            raise _bad("MissingJobId", "The job id is missing from the request URL.")
        job = self.state.jobs.get(job_id.lower())
        if job is None or job.runtime_key != runtime.key:
            raise Reply(
                runtime_error(
                    404, "NotFound", "The job was not found.", "JobNotFound", f"No job {job_id}."
                )
            )
        return job

    def _check_ref(self, name: str, ref: Any, extensions: tuple[str, ...], *, kind: str) -> None:
        if not isinstance(ref, Mapping):
            raise _bad(
                "MissingInputBlobInformation"
                if kind == "input"
                else "MissingOutputOverrideSpecification",
                f"The {kind} '{name}' must be an object with the blob's location.",
            )
        rel = str(ci_get(ref, "RelativeLocation") or "")
        if not rel.strip("/") or "/" not in rel.strip("/"):
            raise _bad(
                "InputBlobRelativeLocationInvalid",
                f"The RelativeLocation of {kind} '{name}' must be 'container/blob'.",
            )
        if _extension(rel) not in extensions:
            raise _bad(
                "InvalidBlobExtension",
                f"The blob extension of {kind} '{name}' ('{_extension(rel) or 'none'}') is not "
                f"valid; expected one of {', '.join(extensions)}.",
            )
        try:
            self.storage.client_for(ref)
        except ValueError as err:
            code, _, text = str(err).partition(": ")
            if not text:
                code, text = "InvalidBlobConnectionString", str(err)
            raise _bad(code, f"{kind} '{name}': {redact(text)}") from err

    # -- handlers ----------------------------------------------------------------------

    def submit(self, req: Request) -> Response:
        """Validate a BatchExecutionRequest and create a NotStarted job."""
        runtime = self._enter(req)
        body = req.json(
            error=lambda m: runtime_error(
                400, "BadArgument", "Invalid argument provided.", "RequestBodyInvalid", m
            )
        )
        if not isinstance(body, dict):
            raise _bad("RequestBodyInvalid", "The request body must be a JSON object.")
        single, multiple = ci_get(body, "Input"), ci_get(body, "Inputs")
        if single is not None and multiple is not None:
            raise _bad(
                "DuplicateInputInBatchCall",
                "Cannot specify both single and multiple input at the same time.",
            )
        inputs: Any = {runtime.inputs[0]: single} if single is not None else multiple
        if not inputs:
            raise _bad("BatchJobInputsNotSpecified", "The batch job inputs are not specified.")
        if not isinstance(inputs, Mapping):
            raise _bad("RequestBodyInvalid", "Inputs must map input names to blob references.")
        unknown = [n for n in inputs if n not in runtime.inputs]
        if unknown:
            raise _bad(
                "InvalidInputNames",
                f"Input name(s) {', '.join(map(repr, unknown))} are not valid; the web service "
                f"expects {', '.join(map(repr, runtime.inputs))}.",
            )
        missing = [n for n in runtime.inputs if n not in inputs]
        if missing:
            raise _bad(
                "BatchJobInputsNotSpecified",
                f"The batch job input(s) {', '.join(map(repr, missing))} are not specified.",
            )
        outputs = ci_get(body, "Outputs") or {}
        if not isinstance(outputs, Mapping):
            raise _bad("RequestBodyInvalid", "Outputs must map output names to blob references.")
        for name, ref in inputs.items():
            self._check_ref(name, ref, DATASET_EXTENSIONS, kind="input")
        for name, ref in outputs.items():
            if name not in runtime.outputs:
                raise _bad(
                    "InvalidOutputOverrideName",
                    f"Invalid output override name '{name}'; the web service's outputs are "
                    f"{', '.join(map(repr, runtime.outputs))} (names are case-sensitive).",
                )
            exts = MODEL_EXTENSIONS if runtime.outputs[name] == "model" else DATASET_EXTENSIONS
            self._check_ref(name, ref, exts, kind="output")
        for name, ref in inputs.items():
            if not self.storage.ref_exists(ref):
                raise _bad(
                    "BlobNotFound",
                    f"The blob of input '{name}' ({ci_get(ref, 'RelativeLocation')!s}) was "
                    "not found or cannot be read with the given credentials.",
                )
        job = Job(
            id=new_id(),
            runtime_key=runtime.key,
            request={"Inputs": dict(inputs), "Outputs": dict(outputs)},
        )
        with self.state.lock:
            self.state.jobs[job.id] = job
        log.info("BES job %s submitted on %s", job.id, runtime.key)
        return json_response(200, job.id)

    def list_jobs(self, req: Request) -> Response:
        """Not a documented operation: answered like the real service's unknown calls."""
        self._enter(req)
        raise _bad("MissingJobId", "The job id is missing from the request URL.")

    def start(self, req: Request) -> Response:
        """Start a NotStarted job on a background thread."""
        runtime = self._enter(req)
        with self.state.lock:
            job = self._job(req, runtime)
            if job.status != "NotStarted":
                raise Reply(
                    runtime_error(
                        400,
                        "InvalidOperation",
                        "The requested operation is not valid.",
                        "CannotStartJob",
                        f"The job cannot be started because it is in {job.status} state.",
                    )
                )
            routes = (req.route, "bes.submit")
            fail = self.faults.take_one(routes, "job_fail")
            slow = self.faults.take_one(routes, "job_slow")
            duration = slow.seconds if slow is not None else self.job_duration
            failure = None
            if fail is not None:
                failure = fail.message or "Module execution encountered an internal error."
            bad: tuple[Fault | None, Fault | None] = (None, None)
            if runtime.kind == "training":
                bad = (
                    self.faults.take_one(routes, "train_shuffled"),
                    self.faults.take_one(routes, "train_behaviour"),
                )
            job.status = "Running"
            thread = threading.Thread(
                target=self._run,
                args=(job, runtime, duration, failure, bad),
                name=f"amlretrain-emulator-job-{job.id[:8]}",
            )
            job.thread = thread
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
            thread.start()
        return Response(status=200)

    def status(self, req: Request) -> Response:
        """BatchScoreStatus with fresh read-only SAS tokens on the results."""
        runtime = self._enter(req)
        with self.state.lock:
            job = self._job(req, runtime)
            status, results, details = job.status, job.results, job.details
        body: dict[str, Any] = {"StatusCode": status, "Results": None, "Details": details}
        if status == "Finished" and results is not None:
            body["Results"] = {
                name: {
                    "ConnectionString": None,
                    "RelativeLocation": f"{container}/{blob}",
                    "BaseLocation": self.storage.base_location,
                    "SasBlobToken": self.storage.read_sas(container, blob),
                }
                for name, (container, blob) in results.items()
            }
        return json_response(200, body)

    def delete(self, req: Request) -> Response:
        """Cancel a job that has not ended; forget one that has."""
        runtime = self._enter(req)
        with self.state.lock:
            job = self._job(req, runtime)
            if job.status in TERMINAL:
                del self.state.jobs[job.id]
            else:
                job.status = "Cancelled"
                job.cancel.set()
        return Response(status=200)

    # -- the job itself ----------------------------------------------------------------

    def _run(
        self,
        job: Job,
        runtime: Runtime,
        duration: float,
        failure: str | None,
        bad: tuple[Fault | None, Fault | None] = (None, None),
    ) -> None:
        if job.cancel.wait(duration):
            return
        try:
            if failure is not None:
                raise _JobError(failure)
            if runtime.kind == "training":
                results = self._train(job, runtime, *bad)
            else:
                results = self._score(job, runtime)
        except _JobError as err:
            self._end(job, "Failed", details=str(err))
        except Exception as err:  # the job fails, the emulator does not
            log.debug("BES job %s failed", job.id, exc_info=True)
            self._end(job, "Failed", details=f"Error: {redact(str(err))}")
        else:
            self._end(job, "Finished", results=results)

    def _end(
        self,
        job: Job,
        status: str,
        *,
        details: str | None = None,
        results: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        with self.state.lock:
            if job.status == "Cancelled":
                return
            job.status, job.details, job.results = status, details, results
        log.info("BES job %s %s", job.id, status)

    def _read_input(self, job: Job) -> bytes:
        name, ref = next(iter(job.request["Inputs"].items()))
        try:
            return self.storage.read_ref(ref)
        except (BlobAccessError, ValueError) as err:
            raise _JobError(f"Error 0030: cannot read input '{name}': {err}") from err

    def _write(self, job: Job, name: str, data: bytes, extension: str) -> tuple[str, str]:
        ref = job.request["Outputs"].get(name)
        if ref is None:
            ref = {
                "ConnectionString": self.storage.connection_string,
                "RelativeLocation": f"{OUTPUT_CONTAINER}/{job.id}/{uuid.uuid4().hex}{extension}",
            }
        try:
            return self.storage.write_ref(ref, data)
        except (BlobAccessError, ValueError) as err:
            raise _JobError(f"Error 0030: cannot write output '{name}': {err}") from err

    def _train(
        self,
        job: Job,
        runtime: Runtime,
        shuffled: Fault | None = None,
        behaviour: Fault | None = None,
    ) -> dict[str, tuple[str, str]]:
        import attrs

        from amlretrain.emulator import learner

        data = self._read_input(job)
        try:
            part, holdout = learner.split_holdout(data)
            if shuffled is not None:
                seed = 1 if shuffled.seed is None else shuffled.seed
                part = learner.shuffled_labels(part, runtime.label, seed=seed)
                log.info("BES job %s trains on shuffled labels (seed %d)", job.id, seed)
            model = learner.train(part, label=runtime.label)
            metrics = learner.evaluate(model, holdout)
        except learner.LearnerError as err:
            raise _JobError(f"Error 0000: Train Model: {err}") from err
        if behaviour is not None:
            model = attrs.evolve(model, behaviour=behaviour.behaviour())
            log.info("BES job %s writes a model with behaviour %s", job.id, model.behaviour)
        results: dict[str, tuple[str, str]] = {}
        for name, kind in runtime.outputs.items():
            if kind == "model":
                results[name] = self._write(job, name, model.to_bytes(), ".ilearner")
            else:
                results[name] = self._write(job, name, learner.evaluation_csv(metrics), ".csv")
        return results

    def _score(self, job: Job, runtime: Runtime) -> dict[str, tuple[str, str]]:
        from amlretrain.emulator import learner
        from amlretrain.emulator.rrs import load_model

        data = self._read_input(job)
        model = load_model(self.storage, runtime)
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        if not rows:
            raise _JobError("Error 0000: the input dataset is empty.")
        try:
            scored = model.predict(rows[0], rows[1:])
        except learner.LearnerError as err:
            raise _JobError(f"Error 0000: Score Model: {err}") from err
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*rows[0], "Scored Labels", "Scored Probabilities"])
        for row, (label, p) in zip(rows[1:], scored, strict=True):
            writer.writerow([*row, label, repr(p)])
        name = next(iter(runtime.outputs))
        return {name: self._write(job, name, out.getvalue().encode("utf-8"), ".csv")}


class _JobError(Exception):
    """A job failure whose text becomes ``Details``."""
