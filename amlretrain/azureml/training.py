"""``CommandJobTraining``: the training half of a retrain as an Azure ML v2 command job.

A Studio (classic) ``.ilearner`` cannot be served by v2 (V2-NOTES 7.3), so the targets
of kind ``online_endpoint`` are retrained by a v2 command job (V2-NOTES 5): the
:class:`~amlretrain.training.Trainer` of the retrain engine, like the classic
:class:`~amlretrain.training.Training`.

A run is

1. **upload**: local data goes to the datastore's container
   (``<input_folder>/<job name>/<file name>``: one blob per job, so a resumed run
   uploads the same one); a blob already there is used as it is;
2. **train**: one ``PUT {W}/jobs/<name>`` (synchronous: the job runs from then on,
   V2-NOTES 1.2) with the ``command``, ``environmentId``, ``computeId``, the data as a
   ``uri_file`` input, the literal ``inputs`` (a label column, ...) and two ``uri_file``
   outputs at datastore paths of our choosing (the model, the evaluation JSON); then
   the job read until ``Completed``, ``Failed`` or ``Canceled`` (5.2);
3. **evaluate**: the evaluation output's JSON object, its numeric members the metrics
   the gate reads; the model output's blob is the model (a
   :class:`~amlretrain.blobs.BlobRef` with a read SAS when the store holds it), which an
   :class:`~amlretrain.azureml.targets.OnlineEndpointTarget` registers as a version.

The job's name is chosen by the caller before the PUT (the engine derives it from the
run: :func:`~amlretrain.training.job_name`), so a resumed run re-attaches to it and a
PUT whose answer was lost is sent again under the same name: a PUT of an existing job
changes only its tags (V2-NOTES 5.1, "for update case"), and the client reads the job
first (``JobExists``), so the job runs once. A stop request or the ``timeout`` cancels
the job (``POST .../cancel``); a failed job raises
:class:`~amlretrain.errors.TrainingJobFailed` with the service's message (redacted; where
the service puts it is a GUESS: ``properties.properties["azureml.error"]``, the
emulator's place, or an ``error`` member).

Example:
    >>> jobs = CommandJobsClient(DefaultAzureCredential(), sub, "rg", "ws")   # doctest: +SKIP
    >>> training = CommandJobTraining(
    ...     jobs=jobs, data=Path("new.csv"), store=store,
    ...     command="python train.py --data ${{inputs.data}} --model ${{outputs.model}}",
    ...     environment_id="azureml:sklearn-env:3", compute="cpu-cluster",
    ...     inputs={"label": "income"})                                        # doctest: +SKIP
    >>> job_id, model, metrics = training.run(StepRecorder(None), False,
    ...                                       name="retrain-42")               # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from amlretrain._redact import redact
from amlretrain.azureml.models import CommandJob
from amlretrain.azureml.targets import blob_of_datastore_uri, datastore_uri
from amlretrain.blobs import BlobRef, same_blob
from amlretrain.errors import (
    AmlRetrainError,
    ConfigurationError,
    ConflictError,
    OperationTimeout,
    ServiceError,
    ThrottledError,
    TrainingJobFailed,
)
from amlretrain.result import StepRecorder
from amlretrain.training import THROTTLE_BACKOFF, THROTTLE_RETRIES, JobDetached

if TYPE_CHECKING:
    from amlretrain.azureml.jobs import CommandJobsClient
    from amlretrain.interrupt import StopSignal
    from amlretrain.storage import BlobStore

__all__ = ["MAX_EVALUATION_BYTES", "CommandJobTraining", "ledger_status"]

log = logging.getLogger(__name__)

#: The largest evaluation output read (a JSON object of metrics is far smaller).
MAX_EVALUATION_BYTES = 1024 * 1024
#: How many times a create whose answer was lost (a dropped connection, a timeout) is
#: sent again, under the same name, before the train step fails.
LOST_ANSWER_RETRIES = 2
#: The v2 job statuses in the ledger's words (the classic batch service's, which the
#: ledger, ``history`` and a resume read): the others are recorded as they are.
_LEDGER_STATUS = {"Completed": "Finished", "Canceled": "Cancelled", "Failed": "Failed"}
_TERMINAL = ("Completed", "Failed", "Canceled")

OnJob = Callable[[str, str], None]


def ledger_status(status: str | None) -> str:
    """A v2 job status as the ledger's job records spell it.

    Example:
        >>> ledger_status("Completed"), ledger_status("Canceled"), ledger_status("Running")
        ('Finished', 'Cancelled', 'Running')
    """
    return _LEDGER_STATUS.get(status or "", status or "Unknown")


def _literal_inputs(value: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(value).items()}


@attrs.frozen(kw_only=True)
class CommandJobTraining:
    """How to train the new model as an Azure ML v2 command job (module docstring).

    Attributes:
        jobs: the workspace's :class:`~amlretrain.azureml.jobs.CommandJobsClient`.
        data: the new training data: a local file (uploaded to the datastore), a
            ``BlobRef`` in the datastore's container, or a ``"container/blob"`` path of
            ``store`` (that container must be the datastore's).
        store: the datastore's storage account (uploads, outputs, SAS minting).
        command: the job's command line (``${{inputs.data}}``, ``${{outputs.model}}``
            ... are resolved by the service).
        environment_id: the environment version: an ARM id, an
            ``azureml://registries/...`` id, or ``azureml:<name>:<version>`` (expanded to
            the workspace's ARM id).
        compute: the compute's name in the workspace, or its ARM id.
        model_output: the output the job writes the model file to.
        evaluation_output: the output the job writes the evaluation JSON (an object of
            metrics) to; None: the job has no metrics (a gate with thresholds rejects it).
        inputs: literal inputs (``{"label": "income"}``), sent as ``literal`` job inputs.
        data_input: the name of the ``uri_file`` input that carries the data.
        datastore: the datastore of the inputs and outputs.
        datastore_container: its container (default: the datastore's name).
        input_folder: the datastore folder uploads go to.
        output_folder: the datastore folder of the outputs (``<folder>/<job>/...``).
        model_file: the model output's file name (a ``uri_file`` output).
        experiment_name: the job's experiment.
        timeout: seconds to wait for the job (it is cancelled after that); also sent as
            the job's ``limits.timeout``.
        model_sas_lifetime: the lifetime of the model's read SAS.

    Raises:
        ConfigurationError: an empty command, environment or compute, an output named
            twice, or an input named like the data input.
    """

    jobs: CommandJobsClient
    data: Path | BlobRef | str
    store: BlobStore
    command: str
    environment_id: str
    compute: str
    model_output: str = "model"
    evaluation_output: str | None = "evaluation"
    inputs: Mapping[str, str] = attrs.field(factory=dict, converter=_literal_inputs)
    data_input: str = "data"
    datastore: str = "workspaceblobstore"
    datastore_container: str | None = None
    input_folder: str = "amlretrain-inputs"
    output_folder: str = "amlretrain-models"
    model_file: str = "model.json"
    experiment_name: str = "amlretrain"
    timeout: float = 3600.0
    model_sas_lifetime: timedelta = timedelta(days=7)

    def __attrs_post_init__(self) -> None:
        for key in ("command", "environment_id", "compute", "model_output", "data_input"):
            if not str(getattr(self, key) or "").strip():
                raise ConfigurationError(f"a command-job training needs its {key}")
        if self.evaluation_output == self.model_output:
            raise ConfigurationError(
                f"model_output and evaluation_output are both {self.model_output!r}: "
                "give two outputs"
            )
        if self.data_input in self.inputs:
            raise ConfigurationError(
                f"inputs.{self.data_input}: that input carries the training data "
                "(data_input); give the literal another name"
            )

    # -- the Trainer protocol -----------------------------------------------------------------

    @property
    def kind(self) -> str:
        """``command_job``."""
        return "command_job"

    @property
    def location(self) -> str:
        """The workspace's jobs URL (the ledger's job records name it)."""
        return f"{self.jobs.base_url}{self.jobs.workspace_id}/jobs"

    @property
    def names_jobs(self) -> bool:
        """True: the job's name is chosen before its PUT."""
        return True

    @property
    def container(self) -> str:
        """The datastore's container."""
        return self.datastore_container or self.datastore

    def run(
        self,
        steps: StepRecorder,
        progress: bool,
        *,
        stop: StopSignal | None = None,
        on_job: OnJob | None = None,
        attach: str | None = None,
        name: str | None = None,
        detach: bool = False,
    ) -> tuple[str, BlobRef, dict[str, float]]:
        """Upload the data, run the job, read its outputs (steps ``upload``, ``train``,
        ``evaluate``; see :class:`~amlretrain.training.Trainer` for ``on_job`` and
        ``detach``).

        Args:
            progress: unused (the job's statuses are logged).
            attach: a job this run created before (a resumed run): read and waited for,
                never created again.
            name: the job's name (default: ``amlretrain-<time>``).

        Returns:
            The job's name, the model blob (with a read SAS of ``model_sas_lifetime``
            when ``store`` holds it) and the metrics.

        Raises:
            ConfigurationError: the data is not in the datastore, the evaluation output
                is missing or holds no numeric metric (nothing is deployed).
            TrainingJobFailed: the job ended Failed or Canceled.
            OperationTimeout: it outlived ``timeout`` (it is cancelled).
            Interrupted: ``stop`` was requested (the job is cancelled).
        """
        if attach is not None:
            with steps.step("upload") as info:
                info["_status"] = "skipped"
                info["_text"] = f"resumed: job {attach} was created by this run before"
            with steps.step("train") as info:
                info["job_id"] = attach
                job = self._attend(attach, stop, on_job, detach=detach)
                info["_text"] = f"job {attach} completed (re-attached)"
            return attach, *self._evaluated(steps, job)
        name = name or "amlretrain-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        data_uri = self._data_uri(self.data)  # refused before anything is uploaded or sent
        with steps.step("upload") as info:
            data = self.data
            if isinstance(data, Path):
                ref = self.store.upload(
                    data,
                    container=self.container,
                    blob_name=f"{self.input_folder}/{name}/{data.name}",
                    progress=progress,
                )
                info["_text"] = f"uploaded {data.name} to {ref.url}"
                data_uri = self._data_uri(ref)
            else:
                info["_status"] = "skipped"
                info["_text"] = "training data already in the datastore"
        with steps.step("train") as info:
            info["job_id"] = name
            self._submit(name, data_uri, stop, on_job)
            job = self._attend(name, stop, on_job, submitted=True, detach=detach)
            info["_text"] = f"job {name} completed"
        return name, *self._evaluated(steps, job)

    def plan(self, steps: StepRecorder, *, name: str | None = None) -> BlobRef:
        """A dry run trains nothing: say what would be sent, and where the model would be."""
        name = name or "amlretrain-<time>"
        data = self.data
        if isinstance(data, Path):
            data_uri = datastore_uri(
                self.store.ref(self.container, f"{self.input_folder}/{name}/{data.name}"),
                datastore=self.datastore,
                container=self.container,
            )
        else:
            data_uri = self._data_uri(data)
        body = self.job_body(name, data_uri)
        with steps.step("upload") as info:
            info["_status"] = "skipped"
            info["_text"] = (
                f"dry run: would upload {data.name} to datastore {self.datastore}"
                if isinstance(data, Path)
                else "dry run"
            )
        with steps.step("train") as info:
            info["_status"] = "skipped"
            info["_text"] = (
                f"dry run: would PUT {self.jobs.base_url}{self.jobs.job_id(name)} with "
                + json.dumps(body, sort_keys=True)
            )
        with steps.step("evaluate") as info:
            info["_status"] = "skipped"
            info["_text"] = "dry run: nothing to evaluate"
        return self.store.ref(self.container, self._output_path(name, self.model_file))

    # -- the job body ----------------------------------------------------------------------------

    def job_body(self, name: str, data_uri: str) -> dict[str, Any]:
        """The ``PUT {W}/jobs/<name>`` body (V2-NOTES 5.1): no read-only member in it."""
        inputs: dict[str, Any] = {self.data_input: {"jobInputType": "uri_file", "uri": data_uri}}
        for key, value in self.inputs.items():
            inputs[key] = {"jobInputType": "literal", "value": value}
        outputs: dict[str, Any] = {
            self.model_output: {
                "jobOutputType": "uri_file",
                "uri": self._output_uri(name, self.model_file),
            }
        }
        if self.evaluation_output:
            outputs[self.evaluation_output] = {
                "jobOutputType": "uri_file",
                "uri": self._output_uri(name, "evaluation.json"),
            }
        return {
            "properties": {
                "jobType": "Command",
                "displayName": name,
                "experimentName": self.experiment_name,
                "command": self.command,
                "environmentId": self._environment_id(),
                "computeId": self._compute_id(),
                "inputs": inputs,
                "outputs": outputs,
                "limits": {"jobLimitsType": "Command", "timeout": f"PT{math.ceil(self.timeout)}S"},
                "tags": {"amlretrain": "retrain"},
            }
        }

    def _environment_id(self) -> str:
        env = self.environment_id.strip()
        if env.startswith("azureml:") and not env.startswith("azureml://"):
            env_name, _, version = env[len("azureml:") :].partition(":")
            if not env_name or not version or ":" in version:
                raise ConfigurationError(
                    f"environment_id {env!r}: give azureml:<name>:<version> or an ARM id"
                )
            return f"{self.jobs.workspace_id}/environments/{env_name}/versions/{version}"
        return env

    def _compute_id(self) -> str:
        compute = self.compute.strip()
        if compute.lower().startswith("/subscriptions/"):
            return compute
        if "/" in compute:
            raise ConfigurationError(f"compute {compute!r}: give its name or its ARM id")
        return f"{self.jobs.workspace_id}/computes/{compute}"

    def _output_path(self, name: str, filename: str) -> str:
        return f"{self.output_folder.strip('/')}/{name}/{filename}"

    def _output_uri(self, name: str, filename: str) -> str:
        return f"azureml://datastores/{self.datastore}/paths/{self._output_path(name, filename)}"

    def _data_uri(self, data: Path | BlobRef | str) -> str:
        """The data's ``azureml://datastores/...`` URI (a local file: a placeholder)."""
        if isinstance(data, Path):
            if not data.is_file():
                raise ConfigurationError(f"training data {data}: no such file")
            return ""
        ref = data if isinstance(data, BlobRef) else None
        if ref is None:
            container, _, blob = str(data).partition("/")
            if not blob:
                raise ConfigurationError(
                    f"training data {data!r}: give a local file, a blob URL or container/blob"
                )
            ref = self.store.ref(container, blob)
        if not same_blob(ref.base_location, self.store.account_url + "/"):
            raise ConfigurationError(
                f"training data {ref.url} is not in the datastore's storage account "
                f"({self.store.account_url}): a command job reads its input from the datastore"
            )
        return datastore_uri(ref, datastore=self.datastore, container=self.container)

    # -- submit and wait -------------------------------------------------------------------------

    def _submit(
        self, name: str, data_uri: str, stop: StopSignal | None, on_job: OnJob | None
    ) -> None:
        """PUT the job under ``name``: sent again when its answer was lost (the same
        name: the same job), after a pause when it was throttled (nothing was created)."""
        job = CommandJob.from_dict(self.job_body(name, data_uri))
        pause = THROTTLE_BACKOFF
        lost = 0
        throttled = 0
        while True:
            if on_job is not None:
                on_job("", "Submitting")  # write-ahead: a lost answer may leave a job
            try:
                self.jobs.create(name, job)
                return
            except ConflictError as err:
                if err.code == "JobExists":
                    # The name is this run's: an earlier PUT (whose answer was lost) made it.
                    log.info("job %s exists already (an earlier submit): attaching", name)
                    return
                self._refused(on_job)
                raise
            except ServiceError as err:
                if not err.answered and lost < LOST_ANSWER_RETRIES:
                    lost += 1
                    log.warning("the PUT of job %s got no answer: sending it again", name)
                    continue
                if err.answered:
                    self._refused(on_job)
                if not isinstance(err, ThrottledError) or throttled == THROTTLE_RETRIES:
                    raise
                throttled += 1
                wait = max(err.retry_after or 0.0, pause)
                pause *= 2
                log.warning("the workspace throttled the job PUT; sending it in %.0f s", wait)
                if stop is not None and stop.wait(wait):
                    stop.raise_if_requested()
                elif stop is None:
                    time.sleep(wait)
            except AmlRetrainError:
                self._refused(on_job)
                raise

    @staticmethod
    def _refused(on_job: OnJob | None) -> None:
        if on_job is not None:
            on_job("", "NotSubmitted")  # the service refused it: no job was created

    def _attend(
        self,
        name: str,
        stop: StopSignal | None,
        on_job: OnJob | None,
        *,
        submitted: bool = False,
        detach: bool = False,
    ) -> CommandJob:
        """Wait for the job's end; record it; cancel the job when the wait fails.

        ``submitted``: just created: ``Submitted`` is recorded first (write-ahead: when
        that record fails, the job is cancelled). ``detach``: a job that still runs is
        not waited for (:class:`~amlretrain.training.JobDetached`; not cancelled).
        """
        job: CommandJob | None = None
        try:
            if submitted and on_job is not None:
                on_job(name, "Submitted")
            if detach and self.jobs.get(name).status not in _TERMINAL:
                raise JobDetached(name)
            job = self._wait(name, stop)
        except (AmlRetrainError, KeyboardInterrupt):
            status = self._cancel_quietly(name)
            if on_job is not None:
                on_job(name, ledger_status(status))
            raise
        if on_job is not None:
            on_job(name, ledger_status(job.status))
        if job.status != "Completed":
            raise TrainingJobFailed(
                f"job {name} ended {job.status}" + _why(job),
                job_id=name,
                status=str(job.status),
                details=_error_of(job),
            )
        return job

    def _wait(self, name: str, stop: StopSignal | None) -> CommandJob:
        """Read the job at the client's polling policy until it is terminal."""
        started = time.monotonic()
        delays = self.jobs.polling.delays(lambda: time.monotonic() - started)
        last = None
        while True:
            job = self.jobs.get(name)
            if job.status != last:
                log.info("job %s: %s", name, job.status)
                last = job.status
            if job.status in _TERMINAL:
                return job
            if stop is not None:
                stop.raise_if_requested()
            left = self.timeout - (time.monotonic() - started)
            if left <= 0:
                raise OperationTimeout(
                    f"job {name} is still {job.status} after {self.timeout:g} s: cancelled",
                    waited=self.timeout,
                )
            pause = max(0.0, min(next(delays), left))
            if stop is not None:
                if stop.wait(pause):
                    stop.raise_if_requested()
            else:
                time.sleep(pause)

    def job_status(self, job_id: str) -> str:
        """The command job's status now, in the ledger's words (``Completed`` is
        ``Finished``, ``Canceled`` ``Cancelled``; the others as the service says)."""
        return ledger_status(self.jobs.get(job_id).status)

    def cancel_job(self, job_id: str) -> None:
        """Cancel the command job unless it ended (a failure is logged)."""
        self._cancel_quietly(job_id)

    def _cancel_quietly(self, name: str) -> str | None:
        """Cancel the job unless it ended; its status after (None: unknown)."""
        try:
            job = self.jobs.get(name)
            if job.status in _TERMINAL:
                return job.status
            done = self.jobs.begin_cancel(name).result()
            return done.status
        except AmlRetrainError as err:
            log.warning("could not cancel job %s: %s", name, redact(str(err)))
            return None

    # -- the outputs -----------------------------------------------------------------------------

    def _output_blob(self, job: CommandJob, output: str, filename: str) -> BlobRef:
        """The blob of a ``uri_file`` output (as the job shows it; else as it was sent)."""
        assert job.name is not None
        shown = job.outputs.get(output)
        uri = shown.get("uri") if isinstance(shown, Mapping) else None
        uri = str(uri) if uri else self._output_uri(job.name, filename)
        blob = blob_of_datastore_uri(
            uri, self.store.account_url, datastore=self.datastore, container=self.container
        )
        last = blob.blob_name.rstrip("/").rsplit("/", 1)[-1]
        if uri.endswith("/") or "." not in last:  # shown as a folder: the file in it
            blob = self.store.ref(self.container, f"{blob.blob_name.rstrip('/')}/{filename}")
        return blob

    def _evaluated(self, steps: StepRecorder, job: CommandJob) -> tuple[BlobRef, dict[str, float]]:
        with steps.step("evaluate") as info:
            model = self._output_blob(job, self.model_output, self.model_file)
            metrics: dict[str, float] = {}
            if self.evaluation_output:
                evaluation = self._output_blob(job, self.evaluation_output, "evaluation.json")
                metrics = self._metrics(evaluation)
                info["_text"] = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
            else:
                info["_status"] = "skipped"
                info["_text"] = "the job has no evaluation output"
            info["metrics"] = metrics
        if self.store.owns(model):
            model = self.store.sas(model, expires_in=self.model_sas_lifetime)
        return model, metrics

    def _metrics(self, blob: BlobRef) -> dict[str, float]:
        """The numeric members of the evaluation output's JSON object.

        Raises:
            ConfigurationError: missing, too large, not a JSON object, or no finite
                numeric member in it.
        """
        from amlretrain.errors import NotFoundError

        try:
            raw = self.store.download_bytes(blob)
        except NotFoundError as err:
            raise ConfigurationError(
                f"the evaluation output {blob.url} does not exist: the job's command must "
                f"write a JSON object of metrics to its {self.evaluation_output!r} output"
            ) from err
        if len(raw) > MAX_EVALUATION_BYTES:
            raise ConfigurationError(f"{blob.url} is larger than an evaluation output can be")
        try:
            doc = json.loads(raw.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError) as err:
            raise ConfigurationError(
                f"the evaluation output {blob.url} is not JSON ({err}): write an object of "
                'metrics, e.g. {"AUC": 0.91}'
            ) from None
        if not isinstance(doc, Mapping):
            raise ConfigurationError(
                f"the evaluation output {blob.url} is a JSON {type(doc).__name__}, not an "
                'object of metrics (e.g. {"AUC": 0.91})'
            )
        metrics: dict[str, float] = {}
        skipped: list[str] = []
        for key, value in doc.items():
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric and math.isfinite(value):
                metrics[str(key)] = float(value)
            else:
                skipped.append(str(key))
        if skipped:
            log.warning(
                "the evaluation output %s: not numeric (ignored): %s",
                blob.url,
                ", ".join(skipped[:10]),
            )
        if not metrics:
            raise ConfigurationError(
                f"the evaluation output {blob.url} has no numeric metric (members: "
                f"{', '.join(skipped[:10]) or 'none'})"
            )
        return metrics


def _error_of(job: CommandJob) -> str | None:
    """The service's message of a failed job, where it may be (tolerant reading: GUESS)."""
    props = job.properties
    inner = props.properties if props is not None else None
    if isinstance(inner, Mapping) and inner.get("azureml.error"):
        return str(inner["azureml.error"])
    error = job.extra.get("error")
    if isinstance(error, Mapping) and error.get("message"):
        return str(error["message"])
    return None


def _why(job: CommandJob) -> str:
    message = _error_of(job)
    return f": {redact(message)}" if message else ""
