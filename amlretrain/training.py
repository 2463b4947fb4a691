"""The training half of a retrain: upload the new data, run the job, read its evaluation.

:class:`Trainer` is what the retrain engine asks of a training, whatever its platform:
:class:`Training` (a Studio (classic) batch training web service) and
:class:`~amlretrain.azureml.training.CommandJobTraining` (an Azure ML v2 command job).
For the classic one, :func:`run_training` runs the batch job (cancelling it when the
wait fails) and returns the trained model with a read SAS the predictive services can
use; :func:`plan_training` says what a dry run would do, without doing it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import attrs

from amlretrain._redact import redact
from amlretrain.blobs import BlobRef
from amlretrain.errors import AmlRetrainError, ServiceError
from amlretrain.result import StepRecorder

if TYPE_CHECKING:
    from amlretrain.interrupt import StopSignal
    from amlretrain.storage import BlobStore
    from amlretrain.studio.batch import BatchClient, TrainingJob

__all__ = [
    "TERMINAL_JOB_STATUSES",
    "JobDetached",
    "Trainer",
    "Training",
    "check_data",
    "job_name",
    "plan_training",
    "run_training",
]

log = logging.getLogger(__name__)

#: ``on_job(job_id, status)``: a training's job records (the ledger's write-ahead).
OnJob = Callable[[str, str], None]

#: A job's statuses, in the ledger's words, after which it does not change.
TERMINAL_JOB_STATUSES = ("Finished", "Failed", "Cancelled")


class JobDetached(Exception):
    """A trainer's ``run(detach=True)``: the job was submitted (and recorded) and still
    runs; it was not waited for. The engine turns it into
    :class:`~amlretrain.errors.TrainingDetached`.

    Attributes:
        job_id: the job's id (or name).
    """

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} submitted, not waited for")


class Trainer(Protocol):
    """What the retrain engine (:func:`amlretrain.retrain_fleet`) asks of a training.

    Implemented by :class:`Training` (Studio (classic) batch execution) and
    :class:`~amlretrain.azureml.training.CommandJobTraining` (Azure ML v2). Both are
    attrs classes with a ``data`` field (the rollout's champion holdout replaces it with
    ``attrs.evolve``).

    The write-ahead contract of :meth:`run`'s ``on_job(job_id, status)``: ``("",
    "Submitting")`` before the submit (a failure to record it stops the submit),
    ``(id, "Submitted")`` as soon as the service answered (a failure to record it cancels
    the job), the job's last status when it ended, in the ledger's words (``Finished``,
    ``Failed``, ``Cancelled``), and ``("", "NotSubmitted")`` when the service refused it.
    """

    @property
    def kind(self) -> str:
        """``batch`` (Studio (classic)) or ``command_job`` (Azure ML v2): the
        ``[training] kind`` of retrain.toml."""
        ...

    @property
    def location(self) -> str:
        """Where the jobs run, for the ledger's job records (no secret in it)."""
        ...

    @property
    def data(self) -> Path | BlobRef | str:
        """The training data: a local file (uploaded), a blob, or ``container/blob``."""
        ...

    @property
    def store(self) -> BlobStore:
        """The storage account that holds the data and the trained models."""
        ...

    @property
    def model_sas_lifetime(self) -> timedelta:
        """The lifetime of a read SAS minted for one of its models."""
        ...

    @property
    def names_jobs(self) -> bool:
        """True when the job's name is ours (``run(name=...)``): a submit whose answer was
        lost is sent again under that name (the same job); False when the service
        chooses the id (such a submit is not sent again)."""
        ...

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
        """Upload, train, evaluate (steps ``upload``, ``train``, ``evaluate``).

        Args:
            attach: the id of a job this run submitted before (a resumed run): it is
                waited for and read, never submitted again.
            name: the job's name when the trainer names its jobs (:attr:`names_jobs`).
            detach: do not wait for a job that still runs once it is submitted (and
                recorded ``Submitted``) or re-attached: raise :class:`JobDetached`.

        Returns:
            The job's id, the trained model (with a read SAS when the store holds it) and
            its metrics.
        """
        ...

    def plan(self, steps: StepRecorder, *, name: str | None = None) -> BlobRef:
        """A dry run: say what would run (the same steps, skipped); where the model would land."""
        ...

    def job_status(self, job_id: str) -> str:
        """The job's status now, in the ledger's words (``NotStarted``, ``Running`` or the
        service's in-between words, then one of :data:`TERMINAL_JOB_STATUSES`)."""
        ...

    def cancel_job(self, job_id: str) -> None:
        """Cancel the job unless it ended (best effort: a failure is logged)."""
        ...


def job_name(run_id: str, data: str, attempt: int = 1) -> str:
    """The name of a run's job on ``data`` (its ``attempt``-th submit): chosen before the
    submit, so a resumed run finds it, and a submit sent again is the same job.

    Example:
        >>> job_name("run-20260101T000000000000Z-abc123", "new.csv")
        'amlretrain-run-20260101T000000000000Z-abc123-4d4732a2'
    """
    digest = hashlib.sha256(data.encode()).hexdigest()[:8]
    base = re.sub(r"[^A-Za-z0-9_-]", "-", f"amlretrain-{run_id}")[:200]
    return f"{base}-{digest}" + (f"-{attempt}" if attempt > 1 else "")


@attrs.frozen(kw_only=True)
class Training:
    """How to train the new model: the training service's batch endpoint and the data.

    Attributes:
        batch: the training web service's :class:`~amlretrain.studio.batch.BatchClient`.
        data: the new training data: a local file (uploaded), a ``BlobRef`` or a
            ``"container/blob"`` path in ``store``.
        store: the storage account for uploads and outputs (and SAS minting).
        input_name: the training service's input port.
        model_output: the output port of the trained model (its override ends in
            ``.ilearner``); None lets the service name the outputs.
        evaluation_output: the output port of the evaluation CSV, or None.
        output_container: where the overrides write.
        global_parameters: the job's global parameters.
        timeout: seconds to wait for the job (it is cancelled after that).
        model_sas_lifetime: the lifetime of the read SAS minted for the services that
            must read the new model (at most 7 days by user delegation, 365 with an
            account key).
    """

    batch: BatchClient
    data: Path | BlobRef | str
    store: BlobStore
    input_name: str = "input1"
    model_output: str | None = "output1"
    evaluation_output: str | None = "output2"
    output_container: str = "amlretrain-models"
    global_parameters: Mapping[str, str] = attrs.field(factory=dict)
    timeout: float = 3600.0
    model_sas_lifetime: timedelta = timedelta(days=7)

    @property
    def kind(self) -> str:
        """``batch``."""
        return "batch"

    @property
    def location(self) -> str:
        """The training service's batch URL (the ledger's job records name it)."""
        return self.batch.api_location

    @property
    def names_jobs(self) -> bool:
        """False: the batch service chooses the job ids."""
        return False

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
        """:func:`run_training` (``name`` is ignored: the service chooses the id)."""
        job, model, metrics = run_training(
            self, steps, progress, stop=stop, on_job=on_job, attach=attach, detach=detach
        )
        return job.job_id, model, metrics

    def plan(self, steps: StepRecorder, *, name: str | None = None) -> BlobRef:
        """:func:`plan_training`."""
        return plan_training(self, steps)

    def job_status(self, job_id: str) -> str:
        """The BES job's status now (``NotStarted``, ``Running``, ``Finished``...)."""
        return self.batch.get_job(job_id).status.label

    def cancel_job(self, job_id: str) -> None:
        """Cancel the BES job unless it ended (a failure is logged)."""
        try:
            job = self.batch.get_job(job_id)
        except AmlRetrainError as err:
            log.warning("could not read job %s to cancel it: %s", job_id, redact(str(err)))
            return
        if not job.status.is_terminal:
            _cancel_quietly(job)


def run_training(
    training: Training,
    steps: StepRecorder,
    progress: bool,
    *,
    stop: StopSignal | None = None,
    on_job: Callable[[str, str], None] | None = None,
    attach: str | None = None,
    detach: bool = False,
) -> tuple[TrainingJob, BlobRef, dict[str, float]]:
    """Upload the data, run the job, read its evaluation (steps ``upload``, ``train``,
    ``evaluate`` in ``steps``).

    ``attach``: the id of a job this run already submitted (a resumed run): nothing is
    uploaded or submitted; the job is started if it never was, waited for if it still
    runs, and its outputs read.

    ``on_job(job_id, status)`` is called before the submit (``""``, ``Submitting``), as
    soon as it answered (``Submitted``, before the job is started: a ledger records it
    there), and when the job ended (its last status); ``("", "NotSubmitted")`` when the
    service refused the submit. A ``stop`` request cancels the job and raises ``Interrupted``.
    ``detach``: once the job is started (or re-attached) and still runs, raise
    :class:`JobDetached` instead of waiting for it.

    Returns:
        The finished job, the trained model (with a read SAS of
        ``training.model_sas_lifetime`` when the store holds it) and its metrics.

    Raises:
        TrainingJobFailed, OperationTimeout: the job failed, or outlived
            ``training.timeout`` (it is cancelled then, and when the wait fails).
    """
    store = training.store
    if attach is not None:
        job = _attached(training, steps, progress, stop, on_job, attach, detach)
        return _evaluated(training, steps, job)
    check_data(training)
    with steps.step("upload") as info:
        data = training.data
        if isinstance(data, Path):
            ref = store.upload(data, container="amlretrain-inputs", progress=progress)
            info["_text"] = f"uploaded {data.name} to {ref.url}"
            data = ref
        else:
            info["_text"] = "training data already in storage"
            info["_status"] = "skipped"
    outputs = _outputs(training, _run_id())
    with steps.step("train") as info:
        job = _submit(training, data, outputs, stop, on_job)
        info["job_id"] = job.job_id
        _attend(training, job, progress, stop, on_job, submitted=True, detach=detach)
        info["_text"] = f"job {job.job_id} finished"
    return _evaluated(training, steps, job)


#: Seconds to wait before submitting again a job the service refused with 429 (too many
#: requests) without saying how long; it doubles each time.
THROTTLE_BACKOFF = 2.0
#: How many times a throttled submit is sent again before the job is given up.
THROTTLE_RETRIES = 3


def _submit(
    training: Training,
    data: BlobRef | str,
    outputs: Mapping[str, BlobRef | str],
    stop: StopSignal | None,
    on_job: Callable[[str, str], None] | None,
) -> TrainingJob:
    """Create the job; a submit the service throttled (nothing was created: a 429, or a
    503 with a Retry-After) is sent again after its Retry-After, or after a growing pause
    for a 429 that gave none, up to ``THROTTLE_RETRIES`` times. A 503 without Retry-After
    (the service is down, not busy) is not waited out here.

    Many jobs at once (a fleet's ``[training] concurrency``) meet the service's limits;
    the HTTP layer already honours a short Retry-After once per request.
    """
    from amlretrain.errors import ThrottledError

    pause = THROTTLE_BACKOFF
    for attempt in range(THROTTLE_RETRIES + 1):
        if on_job is not None:
            on_job("", "Submitting")  # a submit whose answer is lost leaves a job behind
        try:
            return training.batch.create_job(
                {training.input_name: data},
                outputs=outputs,
                global_parameters=training.global_parameters,
                store=training.store,
            )
        except AmlRetrainError as err:
            if on_job is not None and not (isinstance(err, ServiceError) and not err.answered):
                on_job("", "NotSubmitted")  # the service refused it: no job was created
            if not isinstance(err, ThrottledError) or attempt == THROTTLE_RETRIES:
                raise
            if err.status != 429 and err.retry_after is None:
                raise  # a 503 without Retry-After: down, not busy
            wait = max(err.retry_after or 0.0, pause)
            pause *= 2
            log.warning(
                "the training service throttled the submit; submitting again in %.0f s", wait
            )
            if stop is not None and stop.wait(wait):
                stop.raise_if_requested()
            elif stop is None:
                time.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _attached(
    training: Training,
    steps: StepRecorder,
    progress: bool,
    stop: StopSignal | None,
    on_job: Callable[[str, str], None] | None,
    job_id: str,
    detach: bool = False,
) -> TrainingJob:
    """The job a resumed run submitted before: started if it never was, waited for."""
    with steps.step("upload") as info:
        info["_status"] = "skipped"
        info["_text"] = f"resumed: job {job_id} was submitted by this run before"
    with steps.step("train") as info:
        info["job_id"] = job_id
        job = training.batch.get_job(job_id)
        _attend(training, job, progress, stop, on_job, detach=detach)
        info["_text"] = f"job {job.job_id} finished (re-attached)"
    return job


def _attend(
    training: Training,
    job: TrainingJob,
    progress: bool,
    stop: StopSignal | None,
    on_job: Callable[[str, str], None] | None,
    *,
    submitted: bool = False,
    detach: bool = False,
) -> None:
    """Start the job if it never was, wait for its end, record that end (``detach``:
    once started, raise :class:`JobDetached` if it still runs, without waiting).

    ``submitted``: the job was just created: ``Submitted`` is recorded first, before the
    start (write-ahead: when that record fails, the job is cancelled, never started).

    Raises:
        TrainingJobFailed, OperationTimeout, Interrupted: as ``TrainingJob.wait`` (the job
            is cancelled first when it may still run).
    """
    from amlretrain.studio.jobstatus import JobStatus

    try:
        if submitted and on_job is not None:
            on_job(job.job_id, "Submitted")
        if job.status is JobStatus.NOT_STARTED:
            if stop is not None:
                stop.raise_if_requested()
            job.start()
        if detach and not training.batch.get_job(job.job_id).status.is_terminal:
            raise JobDetached(job.job_id)  # not an AmlRetrainError: the job is not cancelled
        # A job that ended already is read once more: a failed one raises, as a wait.
        job.wait(timeout=training.timeout, progress=progress, stop=stop)
    except (AmlRetrainError, KeyboardInterrupt):
        # wait() cancels on its deadline and on an interrupt; a start that timed out or
        # lost its connection may still have started the job: cancel it too.
        if not job.status.is_terminal:
            _cancel_quietly(job)
        if on_job is not None:
            on_job(job.job_id, _ended_as(job))
        raise
    if on_job is not None:
        on_job(job.job_id, job.status.label)


def _evaluated(
    training: Training, steps: StepRecorder, job: TrainingJob
) -> tuple[TrainingJob, BlobRef, dict[str, float]]:
    """The finished job's model (with a read SAS when the store holds it) and metrics."""
    store = training.store
    with steps.step("evaluate") as info:
        model = job.trained_model
        metrics = job.evaluation(training.evaluation_output).as_dict()
        info["metrics"] = metrics
        info["_text"] = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
    if store.owns(model):
        model = store.sas(model, expires_in=training.model_sas_lifetime)
    return job, model, metrics


def _run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{time.monotonic_ns() % 100000:05d}"


def _outputs(training: Training, run: str) -> dict[str, BlobRef | str]:
    """The output overrides of a run: ``<container>/<run>/model.ilearner`` and the CSV."""
    outputs: dict[str, BlobRef | str] = {}
    if training.model_output:
        outputs[training.model_output] = f"{training.output_container}/{run}/model.ilearner"
    if training.evaluation_output:
        outputs[training.evaluation_output] = f"{training.output_container}/{run}/evaluation.csv"
    return outputs


def check_data(training: Training) -> None:
    """Refuse local training data that lacks a column the training service expects.

    The expected columns come from the service's swagger document (a GUESS at its
    shape, :mod:`amlretrain.studio.schema`); when it names none, or the data is already in
    storage, a warning says the columns were not checked.

    Raises:
        ConfigurationError: a missing column (nothing was uploaded).
    """
    from amlretrain.studio.schema import check_columns, data_columns, expected_columns

    data = training.data
    if not isinstance(data, Path):
        log.info("the training data is in storage: its columns are not checked")
        return
    try:
        doc = training.batch.swagger()
    except AmlRetrainError as err:
        log.warning("could not read the training service's swagger (%s): columns not checked", err)
        return
    expected = expected_columns(doc, training.input_name) if doc else None
    if not expected:
        log.warning(
            "the training service documents no columns for %s: the data's columns are not checked",
            training.input_name,
        )
        return
    for warning in check_columns(expected, data_columns(data), source=str(data)):
        log.warning("%s", warning)


def plan_training(training: Training, steps: StepRecorder) -> BlobRef:
    """A dry run trains nothing: say what would run, and where the model would land."""
    check_data(training)
    run = _run_id()
    outputs = _outputs(training, run)
    data = training.data
    with steps.step("upload") as info:
        info["_status"] = "skipped"
        info["_text"] = (
            f"dry run: would upload {data.name}" if isinstance(data, Path) else "dry run"
        )
    with steps.step("train") as info:
        info["_status"] = "skipped"
        info["_text"] = (
            f"dry run: would submit a job to {training.batch.api_location} with "
            f"{training.input_name}={data.name if isinstance(data, Path) else data}, outputs "
            + ", ".join(f"{k}={v}" for k, v in outputs.items())
        )
    with steps.step("evaluate") as info:
        info["_status"] = "skipped"
        info["_text"] = "dry run: nothing to evaluate"
    # The SAS is minted after training; the plan shows where the model will be.
    return training.store.ref(training.output_container, f"{run}/model.ilearner")


def _ended_as(job: TrainingJob) -> str:
    """The job's status after a failed wait (``Cancelled`` once a cancel was sent)."""
    status = job.status
    if status.is_terminal:
        return status.label
    return "Unknown"


def _cancel_quietly(job: TrainingJob) -> None:
    try:
        job.cancel()
    except AmlRetrainError as err:
        log.warning("could not cancel job %s: %s", job.job_id, redact(str(err)))
