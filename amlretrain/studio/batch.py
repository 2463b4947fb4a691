"""Batch Execution Service (BES, api-version 2.0): ``BatchClient`` and ``TrainingJob``.

A job is submitted (created, ``NotStarted``), started, polled until it ends, and its
outputs read as :class:`~amlretrain.blobs.BlobRef` values: the trained model is the
``.ilearner`` output (found by extension, not by assuming ``output1``), the evaluation is
the CSV output parsed into :class:`~amlretrain.evaluation.EvaluationMetrics`.

The wait is a long-running operation: :meth:`BatchClient.begin_run_job` starts a job and
returns a :class:`~amlretrain.polling.Poller` whose result is the Finished job, resumable
in another process from its continuation token; :meth:`TrainingJob.wait` is the same wait.

Example:
    >>> bes = BatchClient(endpoint.api_location, endpoint.primary_key)      # doctest: +SKIP
    >>> job = bes.create_job({"input1": Path("train.csv")}, store=store)    # doctest: +SKIP
    >>> bes.begin_run_job(job).result(timeout=1800).trained_model            # doctest: +SKIP
"""

from __future__ import annotations

import html
import logging
import time  # noqa: F401 - the wait's clock and sleep, patched through this module by tests
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from amlretrain._errormap import parse_retry_after
from amlretrain._http import DEFAULT_TIMEOUT, EndpointClient
from amlretrain._redact import redact
from amlretrain._tracing import traced
from amlretrain._wire import ci_get
from amlretrain.blobs import BlobRef
from amlretrain.errors import (
    ConfigurationError,
    Interrupted,
    NotFoundError,
    OperationTimeout,
    ServiceError,
    ThrottledError,
    TrainingJobFailed,
)
from amlretrain.evaluation import EvaluationMetrics
from amlretrain.polling import OperationPolling, Poller, PollPolicy
from amlretrain.polling import pause_between_reads as _pause  # noqa: F401 - its old home
from amlretrain.studio.jobstatus import JobStatus

if TYPE_CHECKING:
    import requests
    from azure.core.credentials import AzureKeyCredential

    from amlretrain._progress import StatusDisplay
    from amlretrain.interrupt import StopSignal
    from amlretrain.storage import BlobStore

__all__ = ["BatchClient", "JobRun", "JobStatus", "PollPolicy", "TrainingJob"]

log = logging.getLogger(__name__)

API_VERSION = "2.0"
INPUT_EXTENSIONS = (".csv", ".tsv", ".arff")
OUTPUT_EXTENSIONS = (".csv", ".tsv", ".arff", ".ilearner")
#: Largest evaluation file read into memory.
MAX_EVALUATION_BYTES = 10 * 1024 * 1024


def _check_extension(name: str, location: str, allowed: tuple[str, ...], what: str) -> None:
    path = urllib.parse.urlsplit(location).path if "://" in location else location
    if not path.lower().endswith(allowed):
        raise ConfigurationError(
            f"{what} {name!r} ({redact(location)}) must end in one of {', '.join(allowed)}"
        )


class BatchClient(EndpointClient):
    """Client of one endpoint's Batch Execution Service.

    Args:
        api_location: the endpoint's ``ApiLocation`` (``.../workspaces/{ws}/services/{id}``);
            a ``.../jobs?api-version=2.0`` URL is accepted too.
        api_key: the endpoint's API key, a string or an ``AzureKeyCredential`` (read at
            request time, so ``credential.update()`` rotates it; a secret: never shown).
        session: a ``requests.Session`` to use (its adapters then decide retries).
        timeout: ``(connect, read)`` seconds for every call.
        poll: the default :class:`PollPolicy` of :meth:`TrainingJob.wait` and
            :meth:`begin_run_job`.

    Retries: status reads and cancels (GET, DELETE) on connection errors and
    429/500/502/503/504, honouring Retry-After (capped at 60 s). Create and start (POST)
    are retried only on 429/503 with Retry-After, when the service refused them: never
    after a connection error or timeout, because a create is not idempotent.

    Verbs: :meth:`create_job` (BES calls it submit: :meth:`submit` is the same call),
    :meth:`get_job`, :meth:`begin_run_job` (start and wait), :meth:`delete_job` (cancel).
    """

    def __init__(
        self,
        api_location: str,
        api_key: str | AzureKeyCredential,
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        poll: PollPolicy | None = None,
    ) -> None:
        super().__init__(api_location, api_key, session=session, timeout=timeout)
        self.poll = poll or PollPolicy()

    def _jobs_url(self, *segments: str) -> str:
        tail = "".join("/" + urllib.parse.quote(s, safe="") for s in segments)
        return f"{self.api_location}/jobs{tail}"

    _params = {"api-version": API_VERSION}

    @traced
    def swagger(self) -> dict[str, Any] | None:
        """The endpoint's swagger document (``{ApiLocation}/swagger.json``), or None when
        the service has none (404) or it is not a JSON object."""
        try:
            response = self._http.request("GET", f"{self.api_location}/swagger.json")
        except NotFoundError:
            return None
        try:
            doc = response.json()
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    # -- requests --------------------------------------------------------------------------------

    @traced
    def create_job(
        self,
        inputs: Mapping[str, str | Path | BlobRef],
        *,
        outputs: Mapping[str, BlobRef | str] | None = None,
        global_parameters: Mapping[str, str | int | float | bool] | None = None,
        store: BlobStore | None = None,
        upload_container: str = "amlretrain-inputs",
        start: bool = False,
    ) -> TrainingJob:
        """Create (submit) a job, uploading local input files first; it stays NotStarted.

        Args:
            inputs: per input port: a local file (``Path``), a ``BlobRef`` (sent with its
                SAS), a blob URL, or a ``"container/blob"`` path in ``store``'s account.
            outputs: output overrides per port: a ``BlobRef`` or ``"container/blob"``
                (``.csv``, ``.tsv``, ``.arff`` or ``.ilearner``). When the store mints the
                write SAS of one, it creates the container first if it is missing.
            global_parameters: sent as strings.
            store: where local files go and whose credentials name container paths.
            upload_container: container for uploaded files.
            start: start the job right after creating it.

        Returns:
            The job (not started unless ``start``).

        Raises:
            ConfigurationError: a bad input/output (extension, missing store) before any
                request.
            ServiceError: the service refused the job (never retried blindly).
        """
        if not inputs:
            raise ConfigurationError("a training job needs at least one input")
        for name, value in inputs.items():
            location = value.relative_location if isinstance(value, BlobRef) else str(value)
            _check_extension(name, location, INPUT_EXTENSIONS, "input")
        for name, value in (outputs or {}).items():
            location = value.relative_location if isinstance(value, BlobRef) else str(value)
            _check_extension(name, location, OUTPUT_EXTENSIONS, "output")
        body: dict[str, Any] = {
            "Inputs": {
                name: self._reference(value, store, upload_container, write=False)
                for name, value in inputs.items()
            },
            "Outputs": {
                name: self._reference(value, store, upload_container, write=True)
                for name, value in (outputs or {}).items()
            },
            "GlobalParameters": {k: _param(v) for k, v in (global_parameters or {}).items()},
        }
        response = self._http.request("POST", self._jobs_url(), params=self._params, json_body=body)
        job_id = _job_id(response)
        log.info("submitted BES job %s to %s", job_id, self.api_location)
        job = TrainingJob(self, job_id)
        return job.start() if start else job

    @traced
    def submit(
        self,
        inputs: Mapping[str, str | Path | BlobRef],
        *,
        outputs: Mapping[str, BlobRef | str] | None = None,
        global_parameters: Mapping[str, str | int | float | bool] | None = None,
        store: BlobStore | None = None,
        upload_container: str = "amlretrain-inputs",
        start: bool = False,
    ) -> TrainingJob:
        """:meth:`create_job` under the Batch Execution Service's own name (a submit)."""
        return self.create_job(
            inputs,
            outputs=outputs,
            global_parameters=global_parameters,
            store=store,
            upload_container=upload_container,
            start=start,
        )

    @overload
    def begin_run_job(
        self,
        job: str | TrainingJob,
        *,
        start: bool = True,
        poll: PollPolicy | None = None,
        progress: bool = False,
        cancel_on_timeout: bool = True,
        stop: StopSignal | None = None,
    ) -> Poller[TrainingJob]: ...

    @overload
    def begin_run_job(
        self,
        *,
        continuation_token: str,
        poll: PollPolicy | None = None,
        progress: bool = False,
        cancel_on_timeout: bool = True,
        stop: StopSignal | None = None,
    ) -> Poller[TrainingJob]: ...

    @traced
    def begin_run_job(
        self,
        job: str | TrainingJob | None = None,
        *,
        start: bool = True,
        poll: PollPolicy | None = None,
        progress: bool = False,
        cancel_on_timeout: bool = True,
        stop: StopSignal | None = None,
        continuation_token: str | None = None,
    ) -> Poller[TrainingJob]:
        """Start a job (POST .../start) and return a poller that waits until it ends.

        The poller's ``result(timeout)`` is the Finished job; it reads the status as
        :meth:`TrainingJob.wait` does (the same loop and arguments), when it is called.

        Args:
            job: a job (id or :class:`TrainingJob`) made by :meth:`create_job`.
            start: start it first; False for a job already started (nothing is sent).
            poll: overrides the client's :class:`PollPolicy`.
            progress: show the status while waiting (see :meth:`TrainingJob.wait`).
            cancel_on_timeout: cancel the job when ``result(timeout)``'s timeout passes.
            stop: a run's stop request: the job is cancelled and
                :class:`~amlretrain.errors.Interrupted` raised.
            continuation_token: resume the wait of the poller's ``continuation_token()``,
                in any process (it holds the job id and the endpoint's ``ApiLocation``,
                no key: the key is this client's). Nothing is started; give no ``job``.

        Returns:
            A :class:`~amlretrain.polling.Poller` of the :class:`TrainingJob`.

        Raises:
            ConfigurationError: a token of another endpoint, or not of a job.
            ServiceError: the start was refused (e.g. ``CannotStartJob``).
            TrainingJobFailed: (by ``result()``) the job ended Failed or Cancelled.
            OperationTimeout: (by ``result(timeout)``) the timeout passed first.

        Example:
            >>> poller = bes.begin_run_job(bes.create_job(inputs, store=store))  # doctest: +SKIP
            >>> token = poller.continuation_token()                             # doctest: +SKIP
            >>> bes.begin_run_job(continuation_token=token).result(timeout=3600)  # doctest: +SKIP
        """
        method = JobRun(
            poll or self.poll, progress=progress, cancel_on_timeout=cancel_on_timeout, stop=stop
        )
        if continuation_token is not None:
            if job is not None:
                raise ConfigurationError(
                    "resuming from a continuation token takes no job: the token names it"
                )
            try:
                return Poller.from_continuation_token(method, continuation_token, client=self)
            except ValueError as err:
                raise ConfigurationError(str(err)) from err
        if job is None:
            raise ConfigurationError("running a job needs the job (or a continuation token)")
        handle = job if isinstance(job, TrainingJob) else TrainingJob(self, job)
        if start:
            handle.start()
        method.attach(handle)
        return Poller(method)

    @traced
    def delete_job(self, job_id: str) -> None:
        """Cancel and delete a job (DELETE); one that is gone is not an error."""
        TrainingJob(self, job_id).cancel()

    def _reference(
        self,
        value: str | Path | BlobRef,
        store: BlobStore | None,
        container: str,
        *,
        write: bool,
    ) -> dict[str, str]:
        if isinstance(value, Path):
            if store is None:
                raise ConfigurationError(f"uploading {value} needs store= (a BlobStore)")
            value = store.upload(value, container=container)
        if isinstance(value, str):
            if value.startswith(("http://", "https://")):
                value = BlobRef.from_url(value)
            else:
                if store is None:
                    raise ConfigurationError(
                        f"the container path {value!r} needs store= (a BlobStore) for its account"
                    )
                value = store.ref(*value.lstrip("/").split("/", 1))
        if value.sas_token:
            return value.to_bes()
        if store is not None and store.owns(value):
            if store.connection_string:
                return {
                    "ConnectionString": store.connection_string,
                    "RelativeLocation": value.relative_location,
                }
            if write:
                # The service writes through a blob SAS, which cannot create a container.
                store.ensure_container(value.container)
            return store.sas(value, write=write).to_bes()
        raise ConfigurationError(
            f"{value.url} carries no SAS and is not in the store's account: the service "
            "could not read it"
        )

    @traced
    def get_job(self, job_id: str) -> TrainingJob:
        """A handle on an existing job, with its current status read.

        Raises:
            NotFoundError: no such job.
        """
        return TrainingJob(self, job_id).refresh()


def _param(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _job_id(response: requests.Response) -> str:
    try:
        data: Any = response.json()
    except ValueError:
        data = response.text
    if isinstance(data, Mapping):
        data = ci_get(data, "jobId") or ci_get(data, "id")
    job_id = str(data or "").strip().strip('"')
    if not job_id:
        raise ServiceError("the service accepted the job but returned no job id")
    return job_id


class TrainingJob:
    """One BES job: refresh, start, wait, cancel, and its outputs.

    Attributes:
        job_id: the service's job id.
        client: the :class:`BatchClient` it runs on.
    """

    def __init__(self, client: BatchClient, job_id: str) -> None:
        if not job_id or "/" in job_id:
            raise ConfigurationError(f"{job_id!r} is not a job id")
        self.client = client
        self.job_id = job_id
        self._status = JobStatus.NOT_STARTED
        self._document: Mapping[str, Any] = {}
        self._retry_after: float | None = None

    def __repr__(self) -> str:
        return f"TrainingJob(job_id={self.job_id!r}, status={self._status.label})"

    # -- state -------------------------------------------------------------------------------

    @property
    def status(self) -> JobStatus:
        """The status as last read (``refresh()`` reads it again)."""
        return self._status

    @property
    def details(self) -> str | None:
        """The service's ``Details`` text (redacted), when it gave one."""
        value = ci_get(self._document, "details")
        return redact(str(value)) if value else None

    @property
    def document(self) -> dict[str, Any]:
        """The last status document, with secrets redacted (for display or logs)."""
        from amlretrain._redact import redact_data

        return dict(redact_data(dict(self._document)))

    @traced
    def refresh(self) -> TrainingJob:
        """Read the job's status and results again (also renews the results' SAS tokens).

        Raises:
            NotFoundError: the job no longer exists.
        """
        response = self.client._http.request(
            "GET", self.client._jobs_url(self.job_id), params=self.client._params
        )
        self._retry_after = parse_retry_after(response.headers.get("Retry-After"))
        data = response.json()
        if not isinstance(data, Mapping):
            raise ServiceError(f"job {self.job_id}: the status is not a JSON object")
        self._document = data
        self._status = JobStatus.parse(ci_get(data, "statusCode"))
        return self

    @traced
    def start(self) -> TrainingJob:
        """Start the job (POST .../start); returns self.

        Raises:
            ServiceError: e.g. ``CannotStartJob`` when it is not NotStarted.
        """
        self.client._http.request(
            "POST", self.client._jobs_url(self.job_id, "start"), params=self.client._params
        )
        self._status = JobStatus.RUNNING
        log.info("started BES job %s", self.job_id)
        return self

    @traced
    def cancel(self) -> None:
        """Cancel (DELETE) the job; cancelling a job that is gone is not an error."""
        try:
            self.client._http.request(
                "DELETE", self.client._jobs_url(self.job_id), params=self.client._params
            )
        except NotFoundError:
            log.debug("job %s was already gone", self.job_id)
        log.info("cancelled BES job %s", self.job_id)
        if not self._status.is_terminal:
            self._status = JobStatus.CANCELLED

    @traced
    def wait(
        self,
        timeout: float | None = 3600.0,
        *,
        progress: bool = False,
        poll: PollPolicy | None = None,
        cancel_on_timeout: bool = True,
        stop: StopSignal | None = None,
    ) -> TrainingJob:
        """Poll until the job ends; return self when it Finished.

        The wait of :meth:`BatchClient.begin_run_job` (``begin_run_job(job,
        start=False).result(timeout)``), on this handle. Delays grow exponentially with
        jitter (:class:`PollPolicy`); a ``Retry-After`` from the service is honoured. On
        the deadline, and on ``KeyboardInterrupt``, the job is cancelled (DELETE) first.

        Args:
            timeout: overall seconds to wait (None: no deadline).
            progress: show the status and the elapsed time on stderr while it runs: a
                live line on a terminal, a tqdm widget in a notebook (with the
                ``progress`` extra), a plain line per status change elsewhere (see
                :mod:`amlretrain._progress`).
            poll: overrides the client's :class:`PollPolicy`.
            cancel_on_timeout: cancel the job when the deadline passes.
            stop: a run's stop request (SIGINT/SIGTERM): the job is cancelled and
                :class:`~amlretrain.errors.Interrupted` raised.

        Raises:
            Interrupted: ``stop`` was requested (the job was cancelled).
            TrainingJobFailed: the job ended Failed or Cancelled (with its Details).
            OperationTimeout: the deadline passed (the job was cancelled).
        """
        method = JobRun(
            poll or self.client.poll,
            progress=progress,
            cancel_on_timeout=cancel_on_timeout,
            stop=stop,
        )
        method.attach(self)
        return Poller(method).result(timeout)

    # -- outputs -------------------------------------------------------------------------------

    @property
    def results(self) -> dict[str, BlobRef]:
        """The outputs by port name; a SAS that has expired is renewed by reading the job.

        Raises:
            ConfigurationError: the job has not Finished.
            ServiceError: an output entry has no usable location.
        """
        if self._status is not JobStatus.FINISHED:
            self.refresh()
        if self._status is not JobStatus.FINISHED:
            raise ConfigurationError(
                f"job {self.job_id} is {self._status.label}: results exist once it Finished"
            )
        refs = self._results()
        if any(ref.is_expired() for ref in refs.values()):
            log.info("job %s: result SAS expired; reading the job again", self.job_id)
            self.refresh()
            refs = self._results()
        return refs

    def _results(self) -> dict[str, BlobRef]:
        raw = ci_get(self._document, "results") or {}
        refs: dict[str, BlobRef] = {}
        if not isinstance(raw, Mapping):
            return refs
        for name, entry in raw.items():
            if not isinstance(entry, Mapping):
                continue
            refs[str(name)] = _result_ref(str(name), entry)
        return refs

    @property
    def trained_model(self) -> BlobRef:
        """The one output whose blob ends in ``.ilearner``.

        Raises:
            ConfigurationError: no ``.ilearner`` output (the wrong web service?) or several
                (pick one from :attr:`results`).
        """
        return self._one_output(".ilearner", "trained model")

    @traced
    def evaluation(self, output: str | None = None) -> EvaluationMetrics:
        """Download and parse the evaluation output (the one CSV output, or ``output``).

        Raises:
            ConfigurationError: no, or more than one, CSV output and no ``output`` given;
                the file holds no metrics.
            ServiceError: the download failed.
        """
        if output is not None:
            refs = self.results
            if output not in refs:
                raise ConfigurationError(
                    f"job {self.job_id} has no output {output!r}; it has {sorted(refs)}"
                )
            ref = refs[output]
        else:
            ref = self._one_output(".csv", "evaluation")
        response = self.client._http.request("GET", ref.sas_url, authenticated=False, stream=True)
        try:
            content = response.raw.read(MAX_EVALUATION_BYTES + 1, decode_content=True)
        finally:
            response.close()
        if len(content) > MAX_EVALUATION_BYTES:
            raise ConfigurationError(f"{ref.url} is larger than an evaluation output can be")
        return EvaluationMetrics.from_csv(content)

    def _one_output(self, extension: str, what: str) -> BlobRef:
        refs = self.results
        found = {n: r for n, r in refs.items() if r.relative_location.lower().endswith(extension)}
        if len(found) == 1:
            return next(iter(found.values()))
        if not found:
            raise ConfigurationError(
                f"job {self.job_id} has no {extension} output ({what}); outputs: "
                + (", ".join(f"{n}={r.url}" for n, r in refs.items()) or "none")
                + " (is this the training web service?)"
            )
        raise ConfigurationError(
            f"job {self.job_id} has several {extension} outputs ({', '.join(sorted(found))}): "
            f"pick the {what} from job.results"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(ref.url)}</td></tr>"
            for name, ref in (self._results() if self._status is JobStatus.FINISHED else {}).items()
        )
        details = f"<p>{html.escape(self.details)}</p>" if self.details else ""
        outputs = f"<table><tr><th>output</th><th>blob</th></tr>{rows}</table>" if rows else ""
        return (
            f"<div><b>TrainingJob</b> <code>{html.escape(self.job_id)}</code>: "
            f"{html.escape(self._status.label)}{details}{outputs}</div>"
        )


class JobRun(OperationPolling[TrainingJob]):
    """The wait of a training job until it ends: the polling of :meth:`TrainingJob.wait`.

    Its continuation token (kind ``bes.job``) holds the job id and the endpoint's
    ``ApiLocation``, never the API key: :meth:`BatchClient.begin_run_job` with
    ``continuation_token=`` resumes it with the key of that client.
    """

    kind = "bes.job"

    def __init__(
        self,
        policy: PollPolicy,
        *,
        progress: bool = False,
        cancel_on_timeout: bool = True,
        stop: StopSignal | None = None,
    ) -> None:
        super().__init__(
            policy=policy, display=lambda: _status_bar(progress, self.job.job_id), wake=stop
        )
        self._cancel_on_timeout = cancel_on_timeout
        self._stop = stop
        self._job: TrainingJob | None = None

    @property
    def job(self) -> TrainingJob:
        """The job waited for."""
        if self._job is None:
            raise ConfigurationError("this wait names no job yet")
        return self._job

    def attach(self, job: TrainingJob) -> None:
        """Wait for ``job`` (a handle of the caller's: its status is updated)."""
        self._client = job.client
        self._job = job

    def _load(self, state: Mapping[str, Any]) -> None:
        client: BatchClient = self._client
        job_id, location = state.get("job_id"), state.get("api_location")
        if not isinstance(job_id, str) or not isinstance(location, str):
            raise ValueError("the continuation token names no training job")
        if location.rstrip("/").lower() != client.api_location.rstrip("/").lower():
            raise ValueError(
                f"the continuation token is of the endpoint {redact(location)}, not of this "
                "client's"
            )
        self._job = TrainingJob(client, job_id)

    def state(self) -> dict[str, Any]:
        return {"api_location": self.job.client.api_location, "job_id": self.job.job_id}

    def _read(self) -> float | None:
        job = self.job
        try:
            job.refresh()
        except ThrottledError as err:
            log.info("job %s: status read throttled (Retry-After %s)", job.job_id, err.retry_after)
            return err.retry_after or 0.0
        return job._retry_after

    def finished(self) -> bool:
        return self._job is not None and self._job.status.is_terminal

    def status(self) -> str:
        return self.job.status.label

    def resource(self) -> TrainingJob:
        job = self.job
        if job.status is not JobStatus.FINISHED:
            raise TrainingJobFailed(
                f"job {job.job_id} ended {job.status.label}"
                + (f": {job.details}" if job.details else ""),
                job_id=job.job_id,
                status=job.status.label,
                details=job.details,
            )
        return job

    def timed_out(self, waited: float) -> BaseException:
        job = self.job
        if self._cancel_on_timeout:
            job.cancel()
        return OperationTimeout(
            f"job {job.job_id} still {job.status.label} after {waited:.0f} s"
            + ("; it was cancelled" if self._cancel_on_timeout else ""),
            waited=waited,
        )

    def _stopped(self) -> None:
        if self._stop is not None:
            log.warning("stopping: cancelling job %s", self.job.job_id)
            self.job.cancel()
            self._stop.raise_if_requested()

    def _interrupted(self, error: KeyboardInterrupt) -> None:
        if isinstance(error, Interrupted):
            return  # cancelled already
        log.warning("interrupted: cancelling job %s", self.job.job_id)
        self.job.cancel()


def _result_ref(name: str, entry: Mapping[str, Any]) -> BlobRef:
    """A BES ``Results`` entry as a BlobRef (SAS form, or connection-string form)."""
    if ci_get(entry, "BaseLocation"):
        try:
            return BlobRef.from_bes(entry)
        except ConfigurationError as err:
            raise ServiceError(f"output {name!r}: {err.message}") from err
    conn = ci_get(entry, "ConnectionString")
    rel = ci_get(entry, "RelativeLocation")
    if conn and rel:
        from amlretrain.storage import account_url_from_connection_string

        base = account_url_from_connection_string(str(conn)) + "/"
        return BlobRef(base_location=base, relative_location=str(rel))
    raise ServiceError(f"output {name!r} names no blob location")


def _status_bar(enabled: bool, job_id: str) -> StatusDisplay | None:
    if not enabled:
        return None
    from amlretrain._progress import status_display

    return status_display(f"job {job_id[:12]}")
