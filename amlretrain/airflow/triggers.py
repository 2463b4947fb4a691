"""The wait of a deferred retrain: :class:`AmlWaitTrigger` polls, nothing else.

A deferred :class:`~amlretrain.airflow.operators.AmlRetrainOperator` hands its run's
training jobs, or its swaps' long-running operations, to this trigger, which runs in
Airflow's triggerer: it reads each job's status and follows each operation's poller (the
synchronous clients, through ``asyncio.to_thread``; a poller made from the operation's
continuation token only reads) until every one ended, then fires ONE event; the operator
resumes the run in a worker (evaluation, gate, the swap's verification and record: every
side effect stays in the operator). The trigger's arguments are stored in Airflow's
database and re-create it after a triggerer restart, so they hold only the config's path,
the connection id, the jobs' ids, the operations' target keys and continuation tokens
(ids, names and URLs: no secret) and an absolute deadline: never a key.

The event: ``{"status": "done" | "timeout" | "error", "jobs": [{"job_id", "status"}],
"operations": [{"target", "status"}], "message"?}`` (``status`` of a job: its last status
read, in the ledger's words, or None when it could not be read; of an operation: its
poller's last status).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from amlretrain._redact import redact

__all__ = ["TERMINAL", "AmlWaitTrigger", "Configured", "job_key"]

log = logging.getLogger(__name__)

#: A job's statuses after which it does not change (the ledger's words; as
#: :data:`amlretrain.training.TERMINAL_JOB_STATUSES`).
TERMINAL = ("Finished", "Failed", "Cancelled")
#: Reads of one job that may fail in a row (a network blip) before the trigger gives up.
MAX_READ_FAILURES = 5

#: ``(kind, data) -> trainer``: what reads a job's status (``trainer.job_status(id)``).
TrainerFactory = Callable[[str, str], Any]
#: ``target key -> target``: what follows a swap's operation (``target.operation(token)``).
TargetFactory = Callable[[str], Any]


def job_key(job: Mapping[str, Any]) -> tuple[str, str]:
    """The training a job belongs to: ``(kind, data)``."""
    return str(job["kind"]), str(job["data"])


class Configured:
    """The config's trainers and targets, built on first use, with its secrets from the
    connection.

    Blocking (it reads the connection and the file): make it in a thread. They are built
    inside :func:`~amlretrain.airflow.hooks.azure_environ`, so a service principal of an
    ``azure`` connection reaches ``DefaultAzureCredential``.

    Attributes:
        scrub: redacts a text, the connection's values included
            (:func:`~amlretrain.airflow.hooks.scrubber`).
    """

    def __init__(self, config_path: str, conn_id: str) -> None:
        from amlretrain.airflow.hooks import AmlRetrainHook, azure_environ, scrubber
        from amlretrain.config import load_config

        self._environ = AmlRetrainHook(conn_id).environ()
        self.scrub = scrubber(self._environ)
        with azure_environ(self._environ):
            self._config = load_config(config_path, environ=self._environ)
        self._cache: dict[tuple[str, str], Any] = {}
        self._targets: dict[str, Any] = {}

    def trainer(self, kind: str, data: str) -> Any:
        """The trainer of the training of ``kind`` on ``data``."""
        from amlretrain.airflow.hooks import azure_environ

        if (kind, data) not in self._cache:
            with azure_environ(self._environ):
                self._cache[kind, data] = self._config.trainer(kind, data)
        return self._cache[kind, data]

    def target(self, key: str) -> Any:
        """The config's target of ledger key ``key`` (one whose swaps detach)."""
        from amlretrain.airflow.hooks import azure_environ
        from amlretrain.configured import detachable_target

        if key not in self._targets:
            with azure_environ(self._environ):
                self._targets[key] = detachable_target(self._config, key)
        return self._targets[key]


class AmlWaitTrigger(BaseTrigger):
    """Wait for a run's training jobs, or its swaps' operations, to end (reads only).

    Args:
        config_path: the retrain.toml (an absolute path the triggerer can read).
        conn_id: the Airflow connection with the config's secrets
            (:class:`~amlretrain.airflow.hooks.AmlRetrainHook`).
        jobs: ``{"kind", "data", "job_id"}`` per job (the run's
            :class:`~amlretrain.errors.DetachedJob` s).
        poll_interval: seconds between two rounds of reads.
        timeout: seconds to wait at most, from when the trigger is first made.
        deadline: the absolute end (epoch seconds); set by the first construction and
            kept by :meth:`serialize`, so a restarted triggerer ends at the same time.
        operations: ``{"target", "token", "what"}`` per operation (the run's
            :class:`~amlretrain.errors.DetachedOperation` s; the target's ledger key).
    """

    def __init__(
        self,
        config_path: str,
        conn_id: str,
        jobs: Sequence[Mapping[str, Any]] = (),
        poll_interval: float = 30.0,
        timeout: float = 24 * 3600.0,
        deadline: float | None = None,
        operations: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.config_path = config_path
        self.conn_id = conn_id
        self.jobs = [
            {"kind": str(j["kind"]), "data": str(j["data"]), "job_id": str(j["job_id"])}
            for j in jobs
        ]
        self.operations = [
            {"target": str(o["target"]), "token": str(o["token"]), "what": str(o.get("what", ""))}
            for o in operations
        ]
        self.poll_interval = float(poll_interval)
        self.timeout = float(timeout)
        self.deadline = float(deadline) if deadline is not None else time.time() + self.timeout
        #: Builds the trainers (tests pass a fake; not serialised).
        self.trainers: TrainerFactory | None = None
        #: Builds the targets (tests pass a fake; not serialised).
        self.targets: TargetFactory | None = None
        #: Redacts a text (tests may pass one with the fake's secrets; not serialised).
        self.scrub: Callable[[str], str] = redact

    def __repr__(self) -> str:
        waits = [j["job_id"] for j in self.jobs] + [o["what"] for o in self.operations]
        return f"AmlWaitTrigger(config_path={self.config_path!r}, waits=[{', '.join(waits)}])"

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the kwargs that re-create this trigger (no secret)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "config_path": self.config_path,
                "conn_id": self.conn_id,
                "jobs": [dict(j) for j in self.jobs],
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "deadline": self.deadline,
                "operations": [dict(o) for o in self.operations],
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll every job and operation until all ended or the deadline passed; yield one
        event."""
        statuses: dict[str, str | None] = {j["job_id"]: None for j in self.jobs}
        progress: dict[str, str | None] = {o["target"]: None for o in self.operations}
        ended: set[str] = set()
        failures: dict[str, int] = {}

        def event(status: str, message: str | None = None) -> TriggerEvent:
            payload: dict[str, Any] = {
                "status": status,
                "jobs": [{"job_id": i, "status": s} for i, s in statuses.items()],
                "operations": [{"target": t, "status": s} for t, s in progress.items()],
            }
            if message is not None:
                payload["message"] = scrub(message)
            return TriggerEvent(payload)  # type: ignore[no-untyped-call]

        scrub = self.scrub
        trainers, targets = self.trainers, self.targets
        try:
            if (trainers is None and self.jobs) or (targets is None and self.operations):
                built = await asyncio.to_thread(Configured, self.config_path, self.conn_id)
                trainers = trainers or built.trainer
                targets = targets or built.target
                scrub = built.scrub
        except Exception as err:
            yield event("error", f"{self.config_path}: {type(err).__name__}: {err}")
            return
        pollers: dict[str, Any] = {}  # one per operation: it polls in the background

        def failed(key: str, text: str) -> bool:
            failures[key] = failures.get(key, 0) + 1
            log.warning("%s", scrub(text))
            return failures[key] >= MAX_READ_FAILURES

        while True:
            for job in self.jobs:
                job_id = job["job_id"]
                if statuses[job_id] in TERMINAL:
                    continue
                try:
                    assert trainers is not None
                    trainer = await asyncio.to_thread(trainers, *job_key(job))
                    statuses[job_id] = await asyncio.to_thread(trainer.job_status, job_id)
                    failures.pop(job_id, None)
                except Exception as err:
                    text = f"job {job_id}: status not read: {type(err).__name__}: {err}"
                    if failed(job_id, text):
                        yield event("error", f"{text} ({failures[job_id]} reads in a row)")
                        return
            for op in self.operations:
                key = op["target"]
                if key in ended:
                    continue
                try:
                    if key not in pollers:
                        assert targets is not None
                        target = await asyncio.to_thread(targets, key)
                        pollers[key] = await asyncio.to_thread(target.operation, op["token"])
                    poller = pollers[key]
                    if await asyncio.to_thread(poller.done):
                        ended.add(key)
                    progress[key] = str(await asyncio.to_thread(poller.status))
                    failures.pop(key, None)
                except Exception as err:
                    pollers.pop(key, None)
                    text = f"{op['what'] or key}: not read: {type(err).__name__}: {err}"
                    if failed(key, text):
                        yield event("error", f"{text} ({failures[key]} reads in a row)")
                        return
            if all(s in TERMINAL for s in statuses.values()) and len(ended) == len(progress):
                yield event("done")
                return
            left = self.deadline - time.time()
            if left <= 0:
                running = [i for i, s in statuses.items() if s not in TERMINAL]
                running += [
                    o["what"] or o["target"] for o in self.operations if o["target"] not in ended
                ]
                yield event("timeout", f"still running at the deadline: {', '.join(running)}")
                return
            await asyncio.sleep(min(self.poll_interval, left))
