"""The exception tree of amlretrain.

Every error the library raises on purpose is an :class:`AmlRetrainError`::

    AmlRetrainError
    ├── DefinitionError          a web-service definition is invalid (names the JSON path)
    ├── ConfigurationError       bad arguments, settings or targets (before any request)
    ├── ServiceError             a service answered with an error (status, code, request id)
    │   ├── AuthenticationError  401/403: missing, wrong or expired credentials
    │   ├── NotFoundError        404: the resource does not exist
    │   ├── ConflictError        409/412: the resource changed under us, or is in the wrong state
    │   └── ThrottledError       429/503 after the retries ran out (``retry_after`` when known)
    ├── TrainingJobFailed        a batch training job ended Failed or Cancelled
    ├── GateRejected             the new model did not pass the evaluation gate
    ├── VerificationFailed       an update reported success but the service does not show it
    ├── OperationTimeout         a wait passed its deadline
    │   └── OperationStillRunning  an accepted operation still runs at its deadline
    ├── LedgerError              the ledger could not be written after a run began
    ├── TargetsFailed            some targets did not succeed, for different reasons
    ├── AlarmFired               a guarded rollout's alarm stopped a swap in its traffic steps
    └── RunHalted                a fleet run stopped: its failures crossed the failure budget

:class:`Interrupted` (a ``KeyboardInterrupt``) ends a run stopped by SIGINT or SIGTERM
once the truth about its targets was recorded.

Messages never contain secrets: every message that may quote service text or a URL
goes through :func:`amlretrain._redact.redact` first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "AlarmFired",
    "AmlRetrainError",
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "DefinitionError",
    "DetachedJob",
    "DetachedOperation",
    "GateRejected",
    "Interrupted",
    "LedgerError",
    "NotFoundError",
    "OperationDetached",
    "OperationStillRunning",
    "OperationTimeout",
    "OperationsDetached",
    "RunDetached",
    "RunHalted",
    "ServiceError",
    "TargetsFailed",
    "ThrottledError",
    "TrainingDetached",
    "TrainingJobFailed",
    "VerificationFailed",
]


def _clean(text: str) -> str:
    # Imported here: _redact imports this module for nothing, but keep the edge one-way.
    from amlretrain._redact import redact

    return redact(text)


class AmlRetrainError(Exception):
    """The root of every error amlretrain raises on purpose.

    The message is redacted: SAS signatures, keys, tokens and connection strings are
    replaced before the exception is created.
    """

    def __init__(self, message: str) -> None:
        self.message = _clean(str(message))
        super().__init__(self.message)


class DefinitionError(AmlRetrainError):
    """A web-service definition is invalid.

    Attributes:
        path: the JSON Pointer of the offending value (``""`` for the whole document).
        source: the file the definition came from, when known.
    """

    def __init__(self, message: str, *, path: str = "", source: str | None = None) -> None:
        self.path = path
        self.source = source
        where = f"{source}: " if source else ""
        at = f"at {path}: " if path else ""
        super().__init__(f"{where}{at}{message}")
        self.reason = _clean(message)


class ConfigurationError(AmlRetrainError):
    """Bad arguments, settings, credentials or targets, found before any request was sent."""


class ServiceError(AmlRetrainError):
    """A service answered with an error.

    Attributes:
        status: the HTTP status code (``None`` when no response was received).
        code: the service's error code (for example ``"NotFound"``, ``"BlobNotFound"``).
        details: the service's detail entries, as ``(code, message)`` pairs.
        request_id: the ``x-ms-request-id`` of the request that failed; for a long-running
            operation, the id of the *initial* request (service logs are keyed by it).
        method, url: the request, with secrets redacted.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: Sequence[tuple[str, str]] = (),
        request_id: str | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.details = tuple((c, _clean(m)) for c, m in details)
        self.request_id = request_id
        self.method = method
        self.url = _clean(url) if url else None
        parts = []
        if status is not None:
            parts.append(str(status))
        if code:
            parts.append(code)
        head = " ".join(parts)
        text = f"{head}: {message}" if head else message
        for dcode, dmsg in self.details:
            text += f" [{dcode}: {dmsg}]"
        if method and self.url:
            text += f" ({method} {self.url})"
        if request_id:
            text += f" (request id {request_id})"
        super().__init__(text)
        self.service_message = _clean(message)

    @property
    def answered(self) -> bool:
        """False when no answer came back (a timeout, a lost connection): the request
        may or may not have been carried out."""
        return self.status is not None or self.code is not None

    @classmethod
    def from_parts(cls, parts: Mapping[str, Any]) -> ServiceError:
        """Build the error from a mapping of the constructor's keyword arguments."""
        message = str(parts.get("message", "service error"))
        kwargs = {k: v for k, v in parts.items() if k != "message"}
        return cls(message, **kwargs)


class AuthenticationError(ServiceError):
    """The service refused the credentials (HTTP 401 or 403)."""


class NotFoundError(ServiceError):
    """The resource does not exist (HTTP 404)."""


class ConflictError(ServiceError):
    """The resource changed under us or is in a state that forbids the call (409, 412)."""


class ThrottledError(ServiceError):
    """The service kept throttling (429 or 503) after the retries ran out.

    Attributes:
        retry_after: the last Retry-After the service sent, in seconds, when known.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class TrainingJobFailed(AmlRetrainError):
    """A batch training job ended Failed or Cancelled.

    Attributes:
        job_id: the BES job id.
        status: the terminal status name (``"Failed"`` or ``"Cancelled"``).
        details: the job's ``Details`` text (redacted).
    """

    def __init__(self, message: str, *, job_id: str, status: str, details: str | None = None):
        self.job_id = job_id
        self.status = status
        self.details = _clean(details) if details else None
        super().__init__(message)


class GateRejected(AmlRetrainError):
    """The new model did not pass the evaluation gate; nothing was deployed.

    Attributes:
        reasons: one line per failed condition.
        metrics: the new model's metrics.
    """

    def __init__(
        self, message: str, *, reasons: Sequence[str] = (), metrics: Mapping[str, float] = {}
    ) -> None:
        self.reasons = tuple(reasons)
        self.metrics = dict(metrics)
        super().__init__(message)


class VerificationFailed(AmlRetrainError):
    """An update reported success but a fresh read of the service does not show it.

    Attributes:
        expected: what the service should now reference (redacted).
        actual: what it references (redacted).
    """

    def __init__(
        self, message: str, *, expected: str | None = None, actual: str | None = None
    ) -> None:
        self.expected = _clean(expected) if expected else None
        self.actual = _clean(actual) if actual else None
        super().__init__(message)


class OperationTimeout(AmlRetrainError):
    """A wait (job, long-running operation, verification) passed its deadline.

    Attributes:
        waited: seconds waited.
    """

    def __init__(self, message: str, *, waited: float | None = None) -> None:
        self.waited = waited
        super().__init__(message)


class OperationStillRunning(OperationTimeout):
    """A long-running operation the service accepted was still running at its deadline
    (``operation_timeout``, or the grace of a stop request): it may still complete, so
    what the target serves is unknown until it is reconciled. Never sent again."""


class TargetsFailed(AmlRetrainError):
    """Some targets of a run did not succeed, and not all for one kind of reason (when
    they all failed in one family, that family's error is raised instead).

    Attributes:
        failures: ``(target, status, error)`` of each target that did not succeed.
    """

    def __init__(self, message: str, *, failures: Sequence[tuple[str, str, str]] = ()) -> None:
        self.failures = tuple(failures)
        super().__init__(message)


class RunHalted(AmlRetrainError):
    """A fleet run halted: its failures crossed the failure budget (``max_failures``).

    The targets of the waves after the one that crossed it were not changed (status
    ``halted``); with ``rollback_on_halt`` that wave's changed targets were put back.

    Attributes:
        failures: ``(target, status, error)`` of each target that did not succeed.
        wave: the wave (1-based) in which the run halted.
    """

    def __init__(
        self, message: str, *, failures: Sequence[tuple[str, str, str]] = (), wave: int = 0
    ) -> None:
        self.failures = tuple(failures)
        self.wave = wave
        super().__init__(message)


class AlarmFired(AmlRetrainError):
    """A guarded rollout's alarm fired while a swap moved its live traffic in steps.

    The swap stopped there and its traffic went back to the previous deployment (the
    target's error says whether that was verified); the run halts as on a bake's alarm.

    Attributes:
        alarms: the messages of the alarms that fired.
    """

    def __init__(self, message: str, *, alarms: Sequence[str] = ()) -> None:
        self.alarms = tuple(alarms)
        super().__init__(_clean(message))


class LedgerError(AmlRetrainError):
    """The ledger could not be written after the run had proved it writable.

    A change it was meant to record may have happened: ``amlretrain reconcile`` reads
    the targets and records what they serve.
    """


class DetachedJob:
    """A training job a run submitted and did not wait for (:class:`TrainingDetached`).

    Attributes:
        kind: the training's kind: ``batch`` (Studio (classic)) or ``command_job`` (v2).
        data: the group's training data, as configured (the run finds its job by it).
        label: the group's label (ledger and output).
        job_id: the job's id (BES) or name (v2).
    """

    __slots__ = ("data", "job_id", "kind", "label")

    def __init__(self, *, kind: str, data: str, label: str, job_id: str) -> None:
        self.kind, self.data, self.label, self.job_id = kind, data, label, job_id

    def __repr__(self) -> str:
        return f"DetachedJob({self.kind!r}, {self.label!r}, {self.job_id!r})"

    def to_dict(self) -> dict[str, str]:
        """JSON-ready (no secret: ids and names)."""
        return {"kind": self.kind, "data": self.data, "label": self.label, "job_id": self.job_id}


class DetachedOperation:
    """A swap's long-running operation a run started and did not wait for
    (:class:`OperationsDetached`).

    Attributes:
        target: the target's key (the ledger's; ``azureml:...`` or ``arm:...``).
        label: the target's label.
        token: the operation's continuation token (no secret: ids, names and URLs;
            :func:`amlretrain.polling.encode_token`).
        what: the operation, in words (``the PUT of deployment green of ...``).
    """

    __slots__ = ("label", "target", "token", "what")

    def __init__(self, *, target: str, label: str, token: str, what: str) -> None:
        self.target, self.label, self.token, self.what = target, label, token, what

    def __repr__(self) -> str:
        return f"DetachedOperation({self.label!r}, {self.what!r})"

    def to_dict(self) -> dict[str, str]:
        """JSON-ready (no secret)."""
        return {"target": self.target, "label": self.label, "token": self.token, "what": self.what}


class RunDetached(Exception):
    """A run stopped waiting (``detach=True``): what it waits for is recorded in the ledger.

    Not an :class:`AmlRetrainError`: nothing failed. Run the same run again (its
    ``run_id``) once what it waits for ended: it re-attaches (never a second job, never a
    second swap) and goes on. A scheduler waits meanwhile without holding a worker
    (:mod:`amlretrain.airflow`). :class:`TrainingDetached` and :class:`OperationsDetached`
    say which.

    Attributes:
        run_id: the run.
        jobs: the training jobs it submitted and did not wait for.
        operations: the swaps' long-running operations it did not wait for.
    """

    def __init__(
        self,
        run_id: str,
        message: str,
        *,
        jobs: Sequence[DetachedJob] = (),
        operations: Sequence[DetachedOperation] = (),
    ) -> None:
        self.run_id = run_id
        self.jobs = tuple(jobs)
        self.operations = tuple(operations)
        super().__init__(message)


class TrainingDetached(RunDetached):
    """A run's training jobs were submitted and recorded, not waited for (``detach=True``).

    Run the same run again (its ``run_id``) once the jobs ended: it re-attaches to them
    (never a second job), evaluates, gates and deploys.
    """

    def __init__(self, run_id: str, jobs: Sequence[DetachedJob]) -> None:
        names = ", ".join(j.job_id for j in jobs)
        super().__init__(
            run_id, f"run {run_id}: training job(s) {names} submitted, not waited for", jobs=jobs
        )


class OperationsDetached(RunDetached):
    """A run's swaps sent their change and did not wait for its long-running operation
    (``detach=True``, Azure ML v2 and New (ARM) targets).

    Each target's intent and the operation's continuation token are in the ledger, and
    its lease is handed to the run (it stays leased: no other run changes it meanwhile;
    ``amlretrain locks list`` shows it, deferred). Run the same run again once the
    operations ended: it takes the leases back, finishes each swap from its token
    (nothing is sent again), verifies, scores and records it, then goes on.
    """

    def __init__(self, run_id: str, operations: Sequence[DetachedOperation]) -> None:
        names = "; ".join(o.what for o in operations)
        super().__init__(run_id, f"run {run_id}: not waited for: {names}", operations=operations)


class OperationDetached(Exception):
    """A target's swap sent its change and did not wait for the operation (``detach``).

    Raised by a target's ``deploy(detach=True)`` (not an :class:`AmlRetrainError`: nothing
    failed); the swap records the token and hands the target's lease to its run.

    Attributes:
        token: the target's continuation token of the swap (no secret).
        what: the operation, in words.
        request_id: the operation's initial request id, when known.
    """

    def __init__(self, token: str, what: str, request_id: str | None = None) -> None:
        self.token, self.what, self.request_id = token, what, request_id
        super().__init__(f"{what}: still running, not waited for")


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM, after it recorded what its targets serve.

    Attributes:
        signum: the signal (``signal.SIGINT`` or ``signal.SIGTERM``).
        result: the run's result so far (a ``RetrainResult`` or ``TargetOutcome``), when
            one was built.
    """

    def __init__(self, signum: int, result: Any = None) -> None:
        self.signum = signum
        self.result = result
        super().__init__(f"interrupted by signal {signum}")

    @property
    def exit_code(self) -> int:
        """128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + int(self.signum)
