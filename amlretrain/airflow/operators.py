"""Airflow operators for the retrain loop of a retrain.toml: retrain, deploy, roll back, reconcile.

* :class:`AmlRetrainOperator` retrains one target (``target=``) or a fleet (``targets=``,
  or every target of the config); with ``deferrable=True`` its training jobs are waited
  for by :class:`~amlretrain.airflow.triggers.AmlWaitTrigger` in the triggerer, not in a
  worker slot, and so are its swaps' long-running operations (v2 and New (ARM) targets).
* :class:`AmlDeployOperator`, :class:`AmlRollbackOperator`, :class:`AmlReconcileOperator`:
  ``amlretrain deploy|rollback|reconcile``. They do not defer: a swap holds its target's
  lease from the intent to the verified read, and is verified in one go (minutes at most);
  handing that wait to a trigger would leave the lease held by no process. A long-running
  operation (LRO) of a swap is not deferred.

Idempotent by construction: the run id of a task attempt is
``"af-" + sha256(dag_id, task_id, run_id, map_index)[:24]`` (:func:`run_id_of`), the same
for every attempt of that task instance, so a retry (or a cleared task) resumes the same
run from the ledger: a recorded training job is re-attached, never submitted twice, and a
target with an outcome is not swapped again. That needs one ledger every worker reaches:
the operators refuse a config whose ledger is a local file (``[ledger] blob`` is required).

What fails the task (after the XCom is pushed, so downstream tasks with
``trigger_rule="all_done"`` can read it): a target ``failed``, ``restored`` (the swap
failed and was undone), ``unknown`` (run ``amlretrain reconcile``) or ``halted``. A gate
rejection (``rejected``) is the gate working: the task succeeds and the outcome is in the
XCom (``fail_on_rejected=True`` fails it instead). ``succeeded``, ``skipped`` (it already
served the model) and ``dry-run`` succeed.

The XCom (the return value) is small and holds no secret: ``{"run_id", "targets":
[{"key", "target", "status", "model", "serving_model", "metrics", "job_id", "error"}],
"halt_reason"}`` (models without SAS; every text redacted).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator, Context, conf
from airflow.sdk.exceptions import AirflowException

from amlretrain._redact import redact, redact_data
from amlretrain.airflow.hooks import AmlRetrainHook, azure_environ, scrubber
from amlretrain.airflow.triggers import TERMINAL, AmlWaitTrigger, job_key
from amlretrain.blobs import strip_sas
from amlretrain.errors import AmlRetrainError, Interrupted, RunDetached

if TYPE_CHECKING:
    from amlretrain.config import RetrainConfig
    from amlretrain.interrupt import StopSignal
    from amlretrain.result import RetrainResult, TargetOutcome
    from amlretrain.targets import Target

__all__ = [
    "FAILING_STATUSES",
    "AmlDeployOperator",
    "AmlReconcileOperator",
    "AmlRetrainOperator",
    "AmlRollbackOperator",
    "run_id_of",
    "xcom_of",
]

log = logging.getLogger(__name__)

#: Target statuses that fail the task (``rejected`` too with ``fail_on_rejected``).
FAILING_STATUSES = ("failed", "restored", "unknown", "halted")
DAY = 24 * 3600.0
#: Seconds a detached operation's poller, just made, is given to read before it is asked
#: whether the operation ended (not deferring when it did).
OPERATION_FIRST_LOOK = 3.0


def run_id_of(dag_id: str, task_id: str, run_id: str, map_index: int) -> str:
    """The amlretrain run id of a task instance: the same for each of its attempts.

    ``"af-"`` + the first 24 hex digits of the sha256 of the four values (joined by an
    ASCII unit separator): short, in the ledger's alphabet, and deterministic, so a retried
    attempt resumes the run of the first.

    Example:
        >>> run_id_of("fleet", "retrain", "manual__2026-12-01", 3)
        'af-...'  # doctest: +SKIP
    """
    text = "\x1f".join((dag_id, task_id, run_id, str(map_index)))
    return "af-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _target_entry(outcome: TargetOutcome) -> dict[str, Any]:
    return {
        "key": outcome.key,
        "target": outcome.target,
        "status": str(outcome.status),
        "model": strip_sas(outcome.new_model),
        "serving_model": strip_sas(outcome.serving_model),
        "metrics": {k: float(v) for k, v in outcome.metrics.items()},
        "job_id": outcome.job_id,
        "error": outcome.error,
    }


def xcom_of(
    run_id: str | None,
    outcomes: Sequence[TargetOutcome],
    halt_reason: str | None = None,
    *,
    scrub: Callable[[str], str] = redact,
) -> dict[str, Any]:
    """The XCom of a run: small, JSON-ready, models without SAS, every text redacted
    (by ``scrub``: the operators pass one that knows the connection's values)."""
    targets = []
    for outcome in outcomes:
        # ``key`` names resources (no secret), but redact_data would blank a member of
        # that name: redacted as a text instead, as TargetOutcome.to_dict does.
        entry = redact_data(_target_entry(outcome))
        entry["key"] = redact(outcome.key)
        targets.append(entry)
    data = {"run_id": run_id, "targets": targets, "halt_reason": halt_reason}
    return _scrubbed(data, scrub)  # type: ignore[no-any-return]


def _scrubbed(data: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(data, str):
        return scrub(data)
    if isinstance(data, Mapping):
        return {k: _scrubbed(v, scrub) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_scrubbed(v, scrub) for v in data]
    return data


class _AmlOperator(BaseOperator):
    """What the four operators share: the config, the connection, the stop, the XCom."""

    template_fields: Sequence[str] = ("config",)
    ui_color = "#cfe8fc"

    def __init__(
        self,
        *,
        config: str,
        conn_id: str = AmlRetrainHook.default_conn_name,
        fail_on_rejected: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.conn_id = conn_id
        self.fail_on_rejected = fail_on_rejected
        self._ti: Any = None
        self._stop: StopSignal | None = None
        self._killed = threading.Event()
        self._scrub: Callable[[str], str] = redact

    def _fail(self, message: str) -> AirflowException:
        """The task's error: redacted, the connection's values included."""
        return AirflowException(self._scrub(message))

    # -- building the run -----------------------------------------------------------------

    def _environ(self) -> dict[str, str]:
        try:
            environ = AmlRetrainHook(self.conn_id).environ()
        except AmlRetrainError as err:
            raise self._fail(err.message) from None
        self._scrub = scrubber(environ)
        return environ

    def _load(self, environ: Mapping[str, str]) -> RetrainConfig:
        """The config, refused (before anything is sent) when its ledger is a local file."""
        from amlretrain.config import load_config

        try:
            config = load_config(self.config, environ=environ)
        except AmlRetrainError as err:
            raise self._fail(err.message) from None
        if not config.ledger_blob:
            raise self._fail(
                f"{self.config}: [ledger] is a local file ({config.ledger_path}): the Airflow "
                'operators need a blob ledger ([ledger] blob = "container/ledger.jsonl"), '
                "which every worker and retry reads and leases; a file lock does not reach "
                "across machines"
            )
        return config

    def _stop_signal(self, config: RetrainConfig) -> StopSignal:
        from amlretrain.interrupt import StopSignal

        if self._stop is None:
            self._stop = StopSignal(config.interrupt_grace)
        if self._killed.is_set():
            self._stop.request(signal.SIGTERM)
        return self._stop

    # -- the result -----------------------------------------------------------------------

    def _failing(self, outcomes: Sequence[TargetOutcome]) -> list[TargetOutcome]:
        bad = FAILING_STATUSES + (("rejected",) if self.fail_on_rejected else ())
        return [t for t in outcomes if str(t.status) in bad]

    def _finish(
        self, context: Context, xcom: dict[str, Any], bad: Sequence[TargetOutcome], what: str
    ) -> dict[str, Any]:
        """Return the XCom; when a target did not succeed, push it and fail the task."""
        for entry in xcom["targets"]:
            log.info("%s: %s: %s", what, entry["target"], entry["status"])
        if not bad:
            return xcom
        context["ti"].xcom_push(key="return_value", value=xcom)
        reasons = "; ".join(f"{t.target}: {t.status}: {t.error or '-'}" for t in bad)
        halt = f" (halted: {xcom['halt_reason']})" if xcom.get("halt_reason") else ""
        raise self._fail(
            f"{what}: {len(bad)} of {len(xcom['targets'])} target(s) did not "
            f"succeed{halt}: {reasons}"
        )

    def _interrupted(self, context: Context, err: Interrupted, what: str) -> AirflowException:
        """The task's error after on_kill stopped the run (what it did so far is pushed)."""
        from amlretrain.result import RetrainResult, TargetOutcome

        result = err.result
        if isinstance(result, RetrainResult):
            xcom = xcom_of(result.run_id, result.targets, result.halt_reason, scrub=self._scrub)
            context["ti"].xcom_push(key="return_value", value=xcom)
        elif isinstance(result, TargetOutcome):
            context["ti"].xcom_push(
                key="return_value", value=xcom_of(None, [result], scrub=self._scrub)
            )
        return self._fail(
            f"{what}: stopped by a kill (signal {err.signum}); what each target "
            "serves is recorded in the ledger"
        )

    @contextlib.contextmanager
    def _configured(self, context: Context, what: str) -> Iterator[RetrainConfig]:
        """The config, read with the connection's secrets (the Azure ones in the
        environment meanwhile); an interrupt or an amlretrain error in the block fails
        the task naming ``what`` (redacted)."""
        self._ti = context["ti"]
        environ = self._environ()
        with azure_environ(environ):
            config = self._load(environ)
            try:
                yield config
            except Interrupted as err:
                raise self._interrupted(context, err, what) from None
            except AmlRetrainError as err:
                raise self._fail(f"{what}: {err.message}") from None

    @staticmethod
    def _chosen(config: RetrainConfig, names: Sequence[str] | None) -> list[Target]:
        """The config's targets of ``names`` (None: every target)."""
        from amlretrain.configured import find_target

        if names is None:
            return [t for t, _ in config.targets()]
        return [find_target(config, n) for n in names]

    # -- kills ------------------------------------------------------------------------------

    @property
    def will_retry(self) -> bool:
        """True when this attempt, failing now, would be retried (``try_number <= max_tries``)."""
        ti = self._ti
        return ti is not None and int(ti.try_number) <= int(ti.max_tries)

    def on_kill(self) -> None:
        """Stop the run: no new work starts, a swap in flight is settled and recorded."""
        self._killed.set()
        if self._stop is not None:
            self._stop.request(signal.SIGTERM)


class AmlRetrainOperator(_AmlOperator):
    """Retrain, gate and deploy the targets of a retrain.toml: one, some or all of them.

    Args:
        config: the retrain.toml (templated); an absolute path that workers and the
            triggerer read (the DAG folder is a good place).
        target: one target (label, ledger key, a unique part of either, or its index):
            the shape for ``.expand(target=[...])``.
        targets: several targets (default: every target of the config).
        data: training data instead of the config's (relative to the config's folder,
            or a blob URL); templated.
        conn_id: the Airflow connection with the config's secrets
            (:class:`~amlretrain.airflow.hooks.AmlRetrainHook`).
        deferrable: wait for the training jobs, and for the swaps' long-running
            operations (Azure ML v2, New (ARM); with a blob ledger, no ``[rollout]``), in
            the triggerer (the worker slot is free meanwhile); default: Airflow's
            ``[operators] default_deferrable``.
        poll_interval: seconds between two reads of the jobs' status.
        timeout: seconds to wait for the jobs, or for the swaps' operations (the jobs
            are not cancelled then; the training's own ``timeout`` in the config cancels
            a job; a swap's target stays leased to the run: a retry goes on with it).
        fail_on_rejected: fail the task when the gate rejects a model (default: succeed,
            the outcome is in the XCom).

    Example:
        >>> AmlRetrainOperator.partial(  # doctest: +SKIP
        ...     task_id="retrain", config="/dags/retrain.toml", deferrable=True, retries=1
        ... ).expand(target=["churn-eu", "churn-us"])
    """

    template_fields: Sequence[str] = ("config", "target", "targets", "data")

    def __init__(
        self,
        *,
        config: str,
        target: str | None = None,
        targets: list[str] | None = None,
        data: str | None = None,
        conn_id: str = AmlRetrainHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 30.0,
        timeout: float = DAY,
        fail_on_rejected: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            config=config, conn_id=conn_id, fail_on_rejected=fail_on_rejected, **kwargs
        )
        if target is not None and targets is not None:
            raise ValueError("AmlRetrainOperator: give target or targets, not both")
        if poll_interval <= 0 or timeout <= 0:
            raise ValueError("AmlRetrainOperator: poll_interval and timeout must be > 0")
        self.target = target
        self.targets = targets
        self.data = data
        self.deferrable = deferrable
        self.poll_interval = float(poll_interval)
        self.timeout = float(timeout)
        self._jobs: list[dict[str, str]] = []
        self._operations: list[dict[str, str]] = []
        self._pollers: dict[str, Any] = {}
        self._trainers: dict[tuple[str, str], Any] = {}
        self._config: RetrainConfig | None = None

    def run_id(self, context: Context) -> str:
        """This task instance's run id (:func:`run_id_of`)."""
        ti = context["ti"]
        map_index = ti.map_index if ti.map_index is not None else -1
        return run_id_of(ti.dag_id, ti.task_id, ti.run_id, int(map_index))

    def execute(self, context: Context) -> dict[str, Any]:
        """Start (or resume) the run; defer while its training jobs run."""
        self._ti = context["ti"]
        return self._run(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume the run after the trigger's event (in a new worker process)."""
        self._ti = context["ti"]
        status = event.get("status")
        waits = [f"job {j.get('job_id')} ({j.get('status')})" for j in event.get("jobs", [])]
        waits += [f"{o.get('target')} ({o.get('status')})" for o in event.get("operations", [])]
        what = ", ".join(waits)
        if status == "timeout":
            raise self._fail(
                f"still running after {self.timeout:g} s: {what}; not cancelled: a retry of "
                "this task re-attaches to them"
            )
        if status != "done":
            raise self._fail(f"waiting for {what}: {event.get('message', status)}")
        return self._run(context)

    def _resolved_targets(self, config: RetrainConfig) -> list[Target] | None:
        from amlretrain.configured import find_target

        names = [self.target] if self.target is not None else self.targets
        if names is None:
            return None
        try:
            return [find_target(config, n) for n in names]
        except AmlRetrainError as err:
            raise self._fail(err.message) from None

    def _run(self, context: Context) -> dict[str, Any]:
        from amlretrain.configured import retrain_configured

        rid = self.run_id(context)
        environ = self._environ()
        with azure_environ(environ):
            config = self._config = self._load(environ)
            targets = self._resolved_targets(config)
            stop = self._stop_signal(config)
            ended_but_detached = 0
            while True:
                if self._killed.is_set():
                    raise self._fail(f"run {rid}: stopped by a kill before it ended")
                try:
                    result = retrain_configured(
                        config,
                        targets=targets,
                        data=self.data,
                        run_id=rid,
                        detach=True,
                        stop=stop,
                    )
                except RunDetached as detached:
                    self._jobs = [j.to_dict() for j in detached.jobs]
                    self._operations = [o.to_dict() for o in detached.operations]
                    # Airflow 3.3.2's deferral race (a trigger firing at once, while the
                    # deferring process is being reported) fails the task: check each job
                    # and operation once, and do not defer when they all ended.
                    if self._all_ended(config):
                        # The engine goes on once what it waits for ended; what it detaches
                        # from again and again is read differently by it and by us.
                        ended_but_detached += 1
                        if ended_but_detached > 3:
                            raise self._fail(
                                f"run {rid}: what it waits for ended but the run still "
                                f"detaches from it ({detached})"
                            ) from None
                        continue
                    if self.deferrable:
                        self.defer(trigger=self._trigger(), method_name="execute_complete")
                    self._wait_in_worker(config, rid)
                    continue
                except Interrupted as err:
                    raise self._interrupted(context, err, f"run {rid}") from None
                except AmlRetrainError as err:
                    raise self._fail(f"run {rid}: {err.message}") from None
                return self._result(context, result)

    def _result(self, context: Context, result: RetrainResult) -> dict[str, Any]:
        xcom = xcom_of(result.run_id, result.targets, result.halt_reason, scrub=self._scrub)
        return self._finish(context, xcom, self._failing(result.targets), f"run {result.run_id}")

    def _trigger(self) -> AmlWaitTrigger:
        return AmlWaitTrigger(
            config_path=os.path.abspath(self.config),
            conn_id=self.conn_id,
            jobs=[{k: j[k] for k in ("kind", "data", "job_id")} for j in self._jobs],
            poll_interval=self.poll_interval,
            timeout=self.timeout,
            operations=[{k: o[k] for k in ("target", "token", "what")} for o in self._operations],
        )

    def _trainer(self, config: RetrainConfig, job: Mapping[str, str]) -> Any:
        key = job_key(job)
        if key not in self._trainers:
            self._trainers[key] = config.trainer(*key)
        return self._trainers[key]

    def _statuses(self, config: RetrainConfig) -> dict[str, str]:
        return {j["job_id"]: self._trainer(config, j).job_status(j["job_id"]) for j in self._jobs}

    def _operations_done(self, config: RetrainConfig) -> dict[str, bool]:
        """Each detached operation's poller (made once: it polls in the background),
        given a moment to read, and whether it has ended."""
        from amlretrain.configured import detachable_target

        done = {}
        for op in self._operations:
            if op["token"] not in self._pollers:
                poller = detachable_target(config, op["target"]).operation(op["token"])
                self._pollers[op["token"]] = poller
                poller.wait_done(OPERATION_FIRST_LOOK)
            done[op["what"]] = bool(self._pollers[op["token"]].done())
        return done

    def _all_ended(self, config: RetrainConfig) -> bool:
        try:
            statuses = self._statuses(config)
            operations = self._operations_done(config)
        except Exception as err:  # a read that failed: wait (the trigger reads again)
            log.warning("status not read: %s", self._scrub(f"{type(err).__name__}: {err}"))
            return False
        if statuses:
            log.info("training job(s): %s", ", ".join(f"{i} {s}" for i, s in statuses.items()))
        for what, ended in operations.items():
            log.info("%s: %s", what, "ended" if ended else "still running")
        return all(s in TERMINAL for s in statuses.values()) and all(operations.values())

    def _wait_in_worker(self, config: RetrainConfig, rid: str) -> None:
        """Wait for the jobs (or operations) here (not deferrable), until they end, the
        timeout or a kill.

        The run detaches even when it does not defer: a wait inside the engine would
        cancel the job on a stop, and a kill of an attempt that will be retried must end
        the wait and leave the job running for the retry to re-attach.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            if self._killed.wait(min(self.poll_interval, max(0.0, deadline - time.monotonic()))):
                raise self._fail(f"run {rid}: killed while it waited ({self._left(rid)})")
            if self._all_ended(config):
                return
            if time.monotonic() >= deadline:
                waits = [f"job {j['job_id']}" for j in self._jobs]
                waits += [o["what"] for o in self._operations]
                raise self._fail(
                    f"run {rid}: {', '.join(waits)} still running after {self.timeout:g} s;"
                    " not cancelled: a retry of this task re-attaches to them"
                )

    def _left(self, rid: str) -> str:
        """What a kill leaves of what the run waited for, in words."""
        parts = []
        if self._jobs:
            parts.append(
                "its training job(s) left running for the retry"
                if self.will_retry
                else "its training job(s) cancelled"
            )
        if self._operations:
            parts.append(
                "its swaps' operations run on and their targets stay leased to run "
                f"{rid}: "
                + (
                    "the retry finishes them"
                    if self.will_retry
                    else "clear this task to finish them (or `amlretrain locks break` and "
                    "`amlretrain reconcile`)"
                )
            )
        return "; ".join(parts) or "nothing was waited for"

    def on_kill(self) -> None:
        """Stop the run; cancel its training jobs only when this attempt will not be retried.

        A retried attempt has the same run id and re-attaches to the jobs: cancelling them
        would throw their work away. Airflow calls ``on_kill`` on SIGTERM to the task;
        it does not end ``execute`` by itself, so the stop makes the wait end.
        """
        retry = self.will_retry
        super().on_kill()
        if retry or not self._jobs or self._config is None:
            log.info("on_kill: training job(s) left running (retry: %s)", retry)
            return
        for job in self._jobs:
            try:
                self._trainer(self._config, job).cancel_job(job["job_id"])
                log.info("on_kill: cancelled training job %s (no retry left)", job["job_id"])
            except Exception as err:  # best effort: the kill must go on
                log.warning("on_kill: job %s: %s", job["job_id"], self._scrub(str(err)))


class AmlDeployOperator(_AmlOperator):
    """Deploy an already trained model to the targets of a retrain.toml (``amlretrain deploy``).

    Args:
        config: the retrain.toml (templated).
        model: the model's blob URL (templated; a URL without SAS gets a read SAS from
            the config's storage), e.g. from an :class:`AmlRetrainOperator`'s XCom.
        target, targets: the targets (default: every target of the config).
        conn_id: the Airflow connection with the config's secrets.
        rollout: use the config's ``[rollout]`` (False: swap in the run's waves, checked by
            scoring only).

    Not deferrable: each swap holds its target's lease until it is verified. A retried
    attempt skips a target that already serves the model (``skipped``).
    """

    template_fields: Sequence[str] = ("config", "model", "target", "targets")

    def __init__(
        self,
        *,
        config: str,
        model: str,
        target: str | None = None,
        targets: list[str] | None = None,
        conn_id: str = AmlRetrainHook.default_conn_name,
        rollout: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(config=config, conn_id=conn_id, **kwargs)
        if target is not None and targets is not None:
            raise ValueError("AmlDeployOperator: give target or targets, not both")
        self.model = model
        self.target = target
        self.targets = targets
        self.rollout = rollout

    def execute(self, context: Context) -> dict[str, Any]:
        """Deploy ``model``; push the XCom; fail when a target did not succeed."""
        from amlretrain.blobs import BlobRef
        from amlretrain.configured import CONFIG_ROLLOUT, deploy_configured

        with self._configured(context, f"deploy {strip_sas(self.model)}") as config:
            names = [self.target] if self.target is not None else self.targets
            result = deploy_configured(
                config,
                BlobRef.from_url(self.model),
                targets=self._chosen(config, names),
                rollout=CONFIG_ROLLOUT if self.rollout else None,
                stop=self._stop_signal(config),
            )
        xcom = xcom_of(result.run_id, result.targets, result.halt_reason, scrub=self._scrub)
        return self._finish(context, xcom, self._failing(result.targets), "deploy")


class AmlRollbackOperator(_AmlOperator):
    """Put a previous model back on one target (``amlretrain rollback``).

    Args:
        config: the retrain.toml (templated).
        target: the target (templated).
        to: a ledger entry id (or unique prefix) whose model to restore (default: the
            model the target served before its latest deployment).
        conn_id: the Airflow connection with the config's secrets.
    """

    template_fields: Sequence[str] = ("config", "target", "to")

    def __init__(
        self,
        *,
        config: str,
        target: str,
        to: str | None = None,
        conn_id: str = AmlRetrainHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(config=config, conn_id=conn_id, **kwargs)
        self.target = target
        self.to = to

    def execute(self, context: Context) -> dict[str, Any]:
        """Roll back; push the XCom; fail when the target did not succeed."""
        from amlretrain.configured import rollback_configured

        with self._configured(context, f"rollback {self.target}") as config:
            (target,) = self._chosen(config, [self.target])
            outcome = rollback_configured(
                config, target, to=self.to, stop=self._stop_signal(config)
            )
        return self._finish(
            context,
            xcom_of(None, [outcome], scrub=self._scrub),
            self._failing([outcome]),
            "rollback",
        )


class AmlReconcileOperator(_AmlOperator):
    """Settle open intents and jobs of the config's targets (``amlretrain reconcile``).

    Args:
        config: the retrain.toml (templated).
        target: one target (default: every target of the config).
        conn_id: the Airflow connection with the config's secrets.

    The XCom is the reconcile report (``targets``, ``jobs``, ``candidates``); the task
    fails when a target is still open (it could not be read).
    """

    template_fields: Sequence[str] = ("config", "target")
    #: The report members kept in the XCom.
    XCOM_MEMBERS: ClassVar[tuple[str, ...]] = ("targets", "jobs", "candidates")

    def __init__(
        self,
        *,
        config: str,
        target: str | None = None,
        conn_id: str = AmlRetrainHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(config=config, conn_id=conn_id, **kwargs)
        self.target = target

    def execute(self, context: Context) -> dict[str, Any]:
        """Reconcile; return the report; fail when a target is still open."""
        from amlretrain.configured import reconcile_configured

        with self._configured(context, "reconcile") as config:
            report = reconcile_configured(
                config, self._chosen(config, [self.target] if self.target else None)
            )
        # Every text redacted (redact_data would blank the targets' ``key`` members).
        xcom: dict[str, Any] = _scrubbed(
            {k: v for k, v in report.to_dict().items() if k in self.XCOM_MEMBERS}, self._scrub
        )
        for entry in report.targets:
            log.info("reconcile: %s: %s", entry.target, entry.status)
        if report.unresolved:
            context["ti"].xcom_push(key="return_value", value=xcom)
            names = ", ".join(t.target for t in report.unresolved)
            raise self._fail(f"reconcile: still open (could not be read): {names}")
        return xcom
