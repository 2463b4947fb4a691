"""``CommandJobsClient``: a workspace's command jobs (v2, ARM).

The swagger's ``{W}/jobs`` operations for ``jobType: Command`` (V2-NOTES 1.2, 5): a PUT
creates and runs a job (synchronous: the run goes on in ``properties.status``); GET and
list read them; cancel (POST, 202 with ``location``) and DELETE (202 with ``Location``)
are long-running operations followed by an :class:`~amlretrain.azureml.operations.AzureMLPoller`
and verified by a fresh read. :meth:`~CommandJobsClient.wait` reads a job at the client's
:class:`~amlretrain.polling.PollPolicy` until its status is terminal (``Completed``,
``Failed``, ``Canceled``: 5.2).

Example:
    >>> jobs = CommandJobsClient(DefaultAzureCredential(), sub, "rg", "ws")  # doctest: +SKIP
    >>> jobs.create("retrain-42", CommandJob.from_dict(spec))               # doctest: +SKIP
    >>> done = jobs.wait("retrain-42", timeout=3600)                        # doctest: +SKIP
    >>> done.output_uri("model")                                            # doctest: +SKIP
    'azureml://jobs/retrain-42/outputs/model'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from amlretrain._arm import DonePoller, RequestIds
from amlretrain._errormap import translated as _translated
from amlretrain._tracing import traced
from amlretrain.azureml.models import CommandJob
from amlretrain.azureml.operations import (
    AzureMLPoller,
    Finished,
    WorkspaceClient,
    check_segment,
    described,
    failed_as_read,
)
from amlretrain.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    OperationTimeout,
    ServiceError,
    TrainingJobFailed,
    VerificationFailed,
)

if TYPE_CHECKING:
    from azure.core.paging import ItemPaged

__all__ = ["CommandJobsClient"]

log = logging.getLogger(__name__)


class CommandJobsClient(WorkspaceClient):
    """Client of the command jobs of one Azure ML v2 workspace.

    Args: as for :class:`~amlretrain.azureml.endpoints.OnlineEndpointsClient` (no
    ``busy_timeout``).
    """

    def job_id(self, name: str) -> str:
        """The ARM id of a job."""
        check_segment("job name", name)
        return f"{self.workspace_id}/jobs/{name}"

    @traced
    def get(self, name: str) -> CommandJob:
        """GET a job.

        Raises:
            NotFoundError: no such job.
        """
        return CommandJob.from_dict(self._get(f"GET job {name}", self.job_id(name)))

    @traced
    def list(self) -> ItemPaged[CommandJob]:
        """The workspace's jobs, page by page (an azure-core ``ItemPaged``)."""
        return self._pages("list jobs", f"{self.workspace_id}/jobs", CommandJob.from_dict)

    @traced
    def create(self, name: str, job: CommandJob) -> CommandJob:
        """PUT a new command job: it starts running (synchronous; read its status after).

        The body is :meth:`CommandJob.for_put` (no ``status``, ``parameters``...). A job
        that exists is not PUT again (a PUT of an existing job changes only its tags).

        Raises:
            ConfigurationError: not a command job, or no ``command``/``environmentId``
                (before any request).
            ConflictError: a job of that name exists.
        """
        props = job.properties
        if props is None or (props.job_type or "Command") != "Command":
            raise ConfigurationError("create() sends command jobs (jobType Command) only")
        if not props.command or not props.environment_id:
            raise ConfigurationError("a command job needs its command and environmentId")
        body = job.for_put()
        body.setdefault("properties", {}).setdefault("jobType", "Command")
        try:
            existing = self.get(name)
        except NotFoundError:
            existing = None
        if existing is not None:
            raise ConflictError(
                f"job {name} exists (status {existing.status}): a job runs once; give another name",
                code="JobExists",
            )
        rid = self.job_id(name)
        with _translated(f"PUT job {name}"):
            response = self._adapter.send_json("PUT", rid, self._params(), body)
        log.info("created job %s", name)
        return CommandJob.from_dict(response.json())

    @traced
    def wait(
        self, name: str, *, timeout: float | None = None, raise_on_failure: bool = True
    ) -> CommandJob:
        """Read the job at the polling policy until its status is terminal.

        Args:
            timeout: seconds; None waits for as long as it runs.
            raise_on_failure: raise when it ended ``Failed`` or ``Canceled``.

        Raises:
            OperationTimeout: ``timeout`` passed first (the job goes on).
            TrainingJobFailed: it ended Failed or Canceled (with ``raise_on_failure``).
        """
        started = time.monotonic()
        delays = self.polling.delays(lambda: time.monotonic() - started)
        while True:
            job = self.get(name)
            if job.is_terminal:
                break
            left = None if timeout is None else timeout - (time.monotonic() - started)
            if left is not None and left <= 0:
                raise OperationTimeout(
                    f"job {name} is still {job.status} after {timeout:g} s", waited=timeout
                )
            pause = next(delays)
            time.sleep(pause if left is None else max(0.0, min(pause, left)))
        if raise_on_failure and job.status in ("Failed", "Canceled"):
            raise TrainingJobFailed(
                f"job {name} ended {job.status}", job_id=name, status=str(job.status)
            )
        return job

    @traced
    def begin_cancel(
        self, name: str, *, continuation_token: str | None = None
    ) -> AzureMLPoller[CommandJob]:
        """POST ``cancel``; the result is the job read afresh once its status is terminal.

        A job that ended otherwise before the cancel took effect is returned as it ended
        (``Completed``, ``Failed``), the poller's ``discrepancy`` saying so.
        """
        rid = self.job_id(name)
        if continuation_token is not None:
            data = self._token(continuation_token, "POST", rid)
            return self._cancel_poller(name, data, *self._resumed(data, f"cancel job {name}"))
        ids = RequestIds()
        with _translated(f"cancel job {name}", lambda: ids.initial):
            poller = self._adapter.begin_post(f"{rid}/cancel", self._params(), ids)
        state = {"operation": "POST", "resource_id": rid}
        return self._cancel_poller(name, state, poller, ids)

    @traced
    def begin_delete(
        self, name: str, *, continuation_token: str | None = None
    ) -> AzureMLPoller[None]:
        """DELETE a job; one already absent is success. Verified absent afterwards."""
        rid = self.job_id(name)
        if continuation_token is not None:
            data = self._token(continuation_token, "DELETE", rid)
            return self._delete_poller(name, data, *self._resumed(data, f"delete job {name}"))
        ids = RequestIds()
        poller: Any
        try:
            with _translated(f"DELETE job {name}", lambda: ids.initial):
                poller = self._adapter.begin_delete(rid, self.api_version, ids)
        except NotFoundError:
            poller = DonePoller()
        return self._delete_poller(name, {"operation": "DELETE", "resource_id": rid}, poller, ids)

    # -- verification -----------------------------------------------------------------------

    def _read_until(self, name: str, done: Any) -> CommandJob | None:
        deadline = time.monotonic() + self.verify_timeout
        delays = self.polling.delays()

        def read() -> CommandJob | None:
            try:
                return self.get(name)
            except NotFoundError:
                return None

        job = read()
        while not done(job) and self._pause(delays, deadline):
            job = read()
        return job

    def _cancel_poller(
        self, name: str, state: Mapping[str, Any], poller: Any, ids: RequestIds
    ) -> AzureMLPoller[CommandJob]:
        def finish(_final: Any, failure: ServiceError | None) -> Finished[CommandJob]:
            job = self._read_until(name, lambda j: j is None or j.is_terminal)
            if job is None:
                raise NotFoundError(f"cancel job {name}: the job no longer exists")
            if not job.is_terminal:
                found = f"a fresh GET shows job {name} still {job.status}"
                if failure is not None:
                    raise failed_as_read(failure, found)
                raise VerificationFailed(
                    f"cancel job {name}: the operation succeeded but {found}",
                    expected="Canceled",
                    actual=str(job.status),
                )
            notes = []
            if failure is not None:
                notes.append(f"the operation reported {described(failure)}")
            if job.status != "Canceled":
                notes.append(f"the job ended {job.status} before the cancel took effect")
            elif failure is not None:
                notes.append("a fresh GET shows the job Canceled")
            return Finished(job, "; ".join(notes) or None)

        return AzureMLPoller(poller, ids, f"cancel job {name}", finish, dict(state))

    def _delete_poller(
        self, name: str, state: Mapping[str, Any], poller: Any, ids: RequestIds
    ) -> AzureMLPoller[None]:
        def finish(_final: Any, failure: ServiceError | None) -> Finished[None]:
            job = self._read_until(name, lambda j: j is None)
            if job is None:
                note = None
                if failure is not None:
                    note = f"the operation reported {described(failure)}, but job {name} is gone"
                return Finished(None, note)
            found = f"a fresh GET still shows job {name} ({job.status})"
            if failure is not None:
                raise failed_as_read(failure, found)
            raise VerificationFailed(
                f"DELETE job {name}: the operation succeeded but {found}",
                expected="absent",
                actual=str(job.status),
            )

        return AzureMLPoller(poller, ids, f"DELETE job {name}", finish, dict(state))
