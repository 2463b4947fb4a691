"""Probe trigger and operators for the Airflow 3.3.2 fact-finding in tools/airflow/NOTES.md.

Evidence, not product code: every event is appended as one JSON line to the file named by
``$PROBE_LOG`` (default ``/tmp/airflow-probe.jsonl``), with the process id and a wall-clock
time, so the shell scripts beside this file can tell which process ran what, and when.
The module must be importable by the worker and the triggerer under the same dotted path
(``probe_lib``): the scripts put this folder on ``PYTHONPATH``.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.triggers.base import BaseTrigger, TriggerEvent


def record(what: str, /, **fields: Any) -> None:
    """Append one JSON line (``what``, pid, time and ``fields``) to ``$PROBE_LOG``."""
    line = {"what": what, "pid": os.getpid(), "t": round(time.time(), 3), **fields}
    path = os.environ.get("PROBE_LOG", "/tmp/airflow-probe.jsonl")
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line, default=str) + "\n")


class SleepTrigger(BaseTrigger):
    """Wait until an absolute ``deadline`` (epoch seconds), in a thread, then fire once.

    The deadline is absolute so that a trigger re-created from its serialized kwargs after a
    triggerer restart finishes at the original time, not ``seconds`` after the restart.
    """

    def __init__(
        self, deadline: float, token: str, poll: float = 0.5, conn_id: str | None = None
    ) -> None:
        super().__init__()
        self.deadline = deadline
        self.token = token
        self.poll = poll
        self.conn_id = conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the kwargs that re-create this trigger."""
        return (
            "probe_lib.SleepTrigger",
            {
                "deadline": self.deadline,
                "token": self.token,
                "poll": self.poll,
                "conn_id": self.conn_id,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll a blocking check through ``asyncio.to_thread`` until the deadline passes."""
        record("trigger_run_start", token=self.token, deadline=self.deadline)
        if self.conn_id:
            await self._probe_connection()
        polls = 0
        while not await asyncio.to_thread(self._blocking_check):
            polls += 1
            await asyncio.sleep(self.poll)
        record("trigger_fire", token=self.token, polls=polls)
        yield TriggerEvent({"token": self.token, "status": "done", "polls": polls})

    async def _probe_connection(self) -> None:
        # Can a trigger read an Airflow connection, directly and through a thread?
        from airflow.sdk import BaseHook

        for how in ("direct", "to_thread"):
            try:
                if how == "direct":
                    conn = BaseHook.get_connection(self.conn_id or "")
                else:
                    conn = await asyncio.to_thread(BaseHook.get_connection, self.conn_id or "")
                record(
                    "trigger_conn",
                    how=how,
                    ok=True,
                    conn_type=conn.conn_type,
                    cls=type(conn).__module__,
                )
            except Exception as e:  # the evidence is the exception
                record("trigger_conn", how=how, ok=False, error=f"{type(e).__name__}: {e}"[:300])

    def _blocking_check(self) -> bool:
        # Stands in for a synchronous SDK call (a job's status read).
        time.sleep(0.05)
        return time.time() >= self.deadline


class DeferringOperator(BaseOperator):
    """Defer to a :class:`SleepTrigger` for ``seconds``, then return the event as XCom."""

    def __init__(
        self, *, seconds: float = 5.0, token: str = "t", conn_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.seconds = seconds
        self.token = token
        self.conn_id = conn_id

    def execute(self, context: Context) -> None:
        """Record the attempt and defer."""
        ti = context["ti"]
        record(
            "execute",
            task_id=ti.task_id,
            map_index=ti.map_index,
            try_number=ti.try_number,
            max_tries=ti.max_tries,
            retries=self.retries,
            token=self.token,
        )
        self.defer(
            trigger=SleepTrigger(
                deadline=time.time() + self.seconds, token=self.token, conn_id=self.conn_id
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Record the resume (in a worker again) and push the event as the return value."""
        ti = context["ti"]
        record(
            "execute_complete",
            task_id=ti.task_id,
            map_index=ti.map_index,
            try_number=ti.try_number,
            event=event,
        )
        return event


class SlowOperator(BaseOperator):
    """Wait ``seconds`` in ``execute`` (holding the worker), recording retry facts and kills.

    ``on_kill`` sets an event that ``execute`` waits on, so a kill ends ``execute`` with an
    error, as an operator's on_kill that cancels its job would: Airflow 3.3.2's SIGTERM
    handler in the task process only calls ``on_kill``; it does not interrupt ``execute``.
    """

    def __init__(self, *, seconds: float = 60.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seconds = seconds
        self._ti: Any = None
        self._killed = threading.Event()

    def execute(self, context: Context) -> str:
        """Record try_number/max_tries/retries, then wait (until killed or ``seconds``)."""
        ti = context["ti"]
        self._ti = ti
        record(
            "slow_execute",
            task_id=ti.task_id,
            try_number=ti.try_number,
            max_tries=ti.max_tries,
            retries=self.retries,
            will_retry_if_failed_now=ti.try_number <= ti.max_tries,
            supervisor_pid=os.getppid(),
        )
        if self._killed.wait(self.seconds):
            record("slow_execute_ends_after_kill", try_number=ti.try_number)
            raise RuntimeError("killed: on_kill ran")
        return "slept"

    def on_kill(self) -> None:
        """Record what the operator can see when it is killed, and end ``execute``."""
        ti = self._ti
        record(
            "on_kill",
            try_number=getattr(ti, "try_number", None),
            max_tries=getattr(ti, "max_tries", None),
            retries=self.retries,
            will_retry=(ti is not None and ti.try_number <= ti.max_tries),
        )
        self._killed.set()
