"""amlretrain.airflow without a scheduler: Airflow's own classes, a fake engine and trainer.

Run in .venv-airflow (``.venv-airflow/bin/python -m pytest tests/airflow``). The engine
(``retrain_configured``) and the trainers' status reads are replaced here; the real runs
against the emulator are the DAG tests beside this file. What is checked: the run id, the
trigger's serialisation and its event loop, the connection's variables, the refusal of a
file ledger, deferral (and the 3.3.2 race workaround), the XCom and which statuses fail
the task, and ``on_kill``'s cancel-only-without-retry rule.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("airflow") is None:  # pragma: no cover - the main venv
    why = "no Apache Airflow here: run tools/airflow/env.sh, then .venv-airflow/bin/python -m pytest tests/airflow"
    if os.environ.get("CI") == "true":
        pytest.fail(why, pytrace=False)
    pytest.skip(why, allow_module_level=True)

from airflow.sdk.exceptions import AirflowException, TaskDeferred
from airflow.triggers.base import TriggerEvent

import amlretrain.configured
import amlretrain.targets
from amlretrain.airflow import (
    AmlReconcileOperator,
    AmlRetrainHook,
    AmlRetrainOperator,
    AmlWaitTrigger,
    get_provider_info,
)
from amlretrain.airflow.hooks import azure_environ, environ_of, scrubber
from amlretrain.airflow.operators import run_id_of
from amlretrain.config import RetrainConfig
from amlretrain.errors import (
    ConfigurationError,
    DetachedJob,
    DetachedOperation,
    OperationsDetached,
    TrainingDetached,
)
from amlretrain.result import RetrainResult, TargetOutcome

STORAGE_SECRET = "AccountKey=c2VjcmV0LWtleS1kby1ub3QtbG9n"
TOKEN_SECRET = "ws-token-do-not-log-4711"
API_SECRET = "api-key-do-not-log-0815"
SECRETS = (STORAGE_SECRET, TOKEN_SECRET, API_SECRET, "c2VjcmV0LWtleS1kby1ub3QtbG9n")
ENV = {
    "AMLRETRAIN_STORAGE_CONNECTION_STRING": (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"{STORAGE_SECRET};BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;"
    ),
    "AMLRETRAIN_TRAINING_API_KEY": API_SECRET,
    "WS_TOKEN": TOKEN_SECRET,
}

CONFIG = """
[training]
api_location = "http://127.0.0.1:1/workspaces/ws/services/train"
api_key_env = "AMLRETRAIN_TRAINING_API_KEY"
data = "https://devstoreaccount1.blob.core.windows.net/data/new.csv"

[storage]
connection_string_env = "AMLRETRAIN_STORAGE_CONNECTION_STRING"

[ledger]
{ledger}

[[targets]]
kind = "classic"
workspace_id = "ws"
token_env = "WS_TOKEN"
web_service_id = "churn"
endpoint = "eu"
region = "West Europe"

[[targets]]
kind = "classic"
workspace_id = "ws"
token_env = "WS_TOKEN"
web_service_id = "churn"
endpoint = "us"
region = "West Europe"
"""


def _no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.fixture
def connection(monkeypatch: pytest.MonkeyPatch) -> str:
    """The ``amlretrain_test`` connection (from the environment, as Airflow reads it)."""
    conn = {"conn_type": "amlretrain", "extra": {"env": ENV}}
    monkeypatch.setenv("AIRFLOW_CONN_AMLRETRAIN_TEST", json.dumps(conn))
    return "amlretrain_test"


def _config(tmp_path: Path, ledger: str = 'blob = "amlretrain/ledger.jsonl"') -> str:
    path = tmp_path / "retrain.toml"
    path.write_text(CONFIG.replace("{ledger}", ledger), encoding="utf-8")
    return str(path)


class FakeTI:
    """The attributes of Airflow's RuntimeTaskInstance the operators read, and its XComs."""

    def __init__(self, try_number: int = 1, max_tries: int = 1, map_index: int = -1) -> None:
        self.dag_id, self.task_id, self.run_id = "fleet", "retrain", "manual__2026-12-01"
        self.map_index, self.try_number, self.max_tries = map_index, try_number, max_tries
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)  # XCom must be JSON
        self.pushed[key] = value


class FakeTrainer:
    """A trainer whose jobs report the given statuses in turn (the last one sticks)."""

    def __init__(self, *statuses: str, fail_reads: int = 0) -> None:
        self.statuses = list(statuses)
        self.fail_reads = fail_reads
        self.reads: list[str] = []
        self.cancelled: list[str] = []

    def job_status(self, job_id: str) -> str:
        self.reads.append(job_id)
        if self.fail_reads:
            self.fail_reads -= 1
            raise ConnectionError(f"connection reset (key {API_SECRET})")
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    def cancel_job(self, job_id: str) -> None:
        self.cancelled.append(job_id)


def _outcome(target: str, status: str, **kw: Any) -> TargetOutcome:
    return TargetOutcome(target=target, key=f"classic/ws/churn/{target}", status=status, **kw)


def _result(*outcomes: TargetOutcome, run_id: str = "r") -> RetrainResult:
    return RetrainResult(steps=[], targets=list(outcomes), run_id=run_id)


class Engine:
    """Stands in for ``retrain_configured``: detaches first (optionally), then returns."""

    def __init__(self, result: RetrainResult, detach: int = 0) -> None:
        self.result, self.detach = result, detach
        self.calls: list[dict[str, Any]] = []

    def __call__(self, config: RetrainConfig, **kw: Any) -> RetrainResult:
        self.calls.append(kw)
        if self.detach:
            self.detach -= 1
            job = DetachedJob(kind="batch", data="new.csv", label="churn", job_id="job-1")
            raise TrainingDetached(kw["run_id"], [job])
        return self.result


@pytest.fixture
def trainer(monkeypatch: pytest.MonkeyPatch) -> FakeTrainer:
    fake = FakeTrainer("Running")
    monkeypatch.setattr(RetrainConfig, "trainer", lambda self, kind, data=None, **kw: fake)
    return fake


def _engine(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> Engine:
    monkeypatch.setattr(amlretrain.configured, "retrain_configured", engine)
    return engine


# -- the run id -------------------------------------------------------------------------------


def test_run_id_is_the_same_for_every_attempt_and_differs_per_task_instance() -> None:
    rid = run_id_of("fleet", "retrain", "manual__2026-12-01T00:00:00+00:00", 3)
    assert rid == run_id_of("fleet", "retrain", "manual__2026-12-01T00:00:00+00:00", 3)
    assert re.fullmatch(r"af-[0-9a-f]{24}", rid)
    others = {
        run_id_of("fleet", "retrain", "manual__2026-12-01T00:00:00+00:00", 4),
        run_id_of("fleet", "retrain2", "manual__2026-12-01T00:00:00+00:00", 3),
        run_id_of("fleet2", "retrain", "manual__2026-12-01T00:00:00+00:00", 3),
        run_id_of("fleet", "retrain", "scheduled__2026-12-02T00:00:00+00:00", 3),
        # the separator keeps ("a", "bc") and ("ab", "c") apart
        run_id_of("fleetr", "etrain", "manual__2026-12-01T00:00:00+00:00", 3),
    }
    assert rid not in others and len(others) == 5


# -- the trigger ------------------------------------------------------------------------------


def test_trigger_serializes_to_ids_only_and_round_trips() -> None:
    jobs = [{"kind": "batch", "data": "new.csv", "job_id": "job-1"}]
    trigger = AmlWaitTrigger("/dags/retrain.toml", "amlretrain_test", jobs, 5, 60)
    path, kwargs = trigger.serialize()
    module, _, name = path.rpartition(".")
    again = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
    assert again.serialize() == (path, kwargs)
    assert set(kwargs) == {
        *("config_path", "conn_id", "jobs", "poll_interval", "timeout", "deadline", "operations")
    }
    # the deadline is absolute: a re-created trigger ends when the first one would have
    assert abs(kwargs["deadline"] - (time.time() + 60)) < 5
    _no_secret(json.dumps(kwargs))


def _events(trigger: AmlWaitTrigger) -> list[TriggerEvent]:
    async def collect() -> list[TriggerEvent]:
        return [e async for e in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), 10))


def _trigger(
    fake: FakeTrainer, *, timeout: float = 30, ids: tuple[str, ...] = ("job-1",)
) -> AmlWaitTrigger:
    jobs = [{"kind": "batch", "data": "new.csv", "job_id": i} for i in ids]
    trigger = AmlWaitTrigger("/nowhere/retrain.toml", "amlretrain_test", jobs, 0.01, timeout)
    trigger.trainers = lambda kind, data: fake
    return trigger


def test_trigger_polls_until_every_job_ended_then_fires_once() -> None:
    fake = FakeTrainer("NotStarted", "Running", "Running", "Finished")
    [event] = _events(_trigger(fake))
    assert event.payload == {
        "status": "done",
        "jobs": [{"job_id": "job-1", "status": "Finished"}],
        "operations": [],
    }
    assert fake.reads == ["job-1"] * 4  # an ended job is not read again


def test_trigger_reports_a_failed_job_as_done_the_operator_judges_it() -> None:
    [event] = _events(_trigger(FakeTrainer("Running", "Failed"), ids=("a", "b")))
    assert event.payload["status"] == "done"
    assert {j["status"] for j in event.payload["jobs"]} <= {"Failed"}


def test_trigger_times_out_at_its_deadline() -> None:
    started = time.monotonic()
    [event] = _events(_trigger(FakeTrainer("Running"), timeout=0.2))
    assert 0.15 < time.monotonic() - started < 5
    assert event.payload["status"] == "timeout"
    assert event.payload["jobs"] == [{"job_id": "job-1", "status": "Running"}]
    assert "job-1" in event.payload["message"]


def test_trigger_bears_a_blip_and_gives_up_redacted_after_reads_fail_in_a_row() -> None:
    [event] = _events(_trigger(FakeTrainer("Finished", fail_reads=2)))
    assert event.payload["status"] == "done"
    trigger = _trigger(FakeTrainer("Finished", fail_reads=99))
    trigger.scrub = scrubber(ENV)  # what Configured gives the trigger: the connection's values
    [event] = _events(trigger)
    assert event.payload["status"] == "error"
    assert "5 reads in a row" in event.payload["message"]
    _no_secret(json.dumps(event.payload))


def test_trigger_without_its_connection_fires_an_error_naming_it(tmp_path: Path) -> None:
    jobs = [{"kind": "batch", "data": "new.csv", "job_id": "job-1"}]
    trigger = AmlWaitTrigger(_config(tmp_path), "no_such_connection", jobs, 0.01, 5)
    [event] = _events(trigger)
    assert event.payload["status"] == "error"
    assert "no_such_connection" in event.payload["message"]


def test_trigger_builds_the_trainers_from_the_config_and_the_connection(
    tmp_path: Path, connection: str, trainer: FakeTrainer
) -> None:
    trainer.statuses = ["Finished"]
    trigger = AmlWaitTrigger(
        _config(tmp_path), connection, [{"kind": "batch", "data": "d", "job_id": "j"}], 0.01, 5
    )
    [event] = _events(trigger)
    assert event.payload["status"] == "done" and trainer.reads == ["j"]


class FakeOperation:
    """A detached operation's poller: ``done()`` after ``reads`` reads of it."""

    def __init__(self, reads: int) -> None:
        self.left = reads
        self.asked = 0

    def done(self) -> bool:
        self.asked += 1
        self.left -= 1
        return self.left <= 0

    def status(self) -> str:
        return "Succeeded" if self.left <= 0 else "InProgress"

    def wait_done(self, timeout: float) -> bool:
        return self.done()


class FakeTarget:
    def __init__(self, operation: FakeOperation, fail: int = 0) -> None:
        self.made: list[str] = []
        self._operation, self._fail = operation, fail

    def operation(self, token: str) -> FakeOperation:
        if self._fail:
            self._fail -= 1
            raise ConnectionError(f"no answer ({TOKEN_SECRET})")
        self.made.append(token)
        return self._operation


def _op_trigger(target: FakeTarget, *, timeout: float = 30) -> AmlWaitTrigger:
    ops = [{"target": "azureml:ep", "token": "tok-1", "what": "the PUT of deployment green"}]
    trigger = AmlWaitTrigger("/nowhere/retrain.toml", "c", (), 0.01, timeout, operations=ops)
    trigger.targets = lambda key: target
    trigger.scrub = scrubber(ENV)
    return trigger


def test_trigger_follows_an_operation_with_one_poller_until_it_ended_then_fires_once() -> None:
    operation = FakeOperation(reads=3)
    target = FakeTarget(operation)
    [event] = _events(_op_trigger(target))
    assert event.payload == {
        "status": "done",
        "jobs": [],
        "operations": [{"target": "azureml:ep", "status": "Succeeded"}],
    }
    assert target.made == ["tok-1"] and operation.asked == 3  # one poller, read 3 times


def test_trigger_serializes_operations_as_target_keys_and_tokens_only() -> None:
    ops = [{"target": "azureml:ep", "token": "tok-1", "what": "the traffic PUT of ep"}]
    trigger = AmlWaitTrigger("/dags/retrain.toml", "c", (), 5, 60, operations=ops)
    path, kwargs = trigger.serialize()
    assert kwargs["operations"] == ops and kwargs["jobs"] == []
    module, _, name = path.rpartition(".")
    again = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
    assert again.serialize() == (path, kwargs)


def test_trigger_times_out_naming_the_operation_and_bears_a_failed_read() -> None:
    [event] = _events(_op_trigger(FakeTarget(FakeOperation(reads=10**6)), timeout=0.2))
    assert event.payload["status"] == "timeout"
    assert "the PUT of deployment green" in event.payload["message"]
    [event] = _events(_op_trigger(FakeTarget(FakeOperation(reads=1), fail=2)))
    assert event.payload["status"] == "done"  # two failed reads, then the poller was made
    [event] = _events(_op_trigger(FakeTarget(FakeOperation(reads=1), fail=99)))
    assert event.payload["status"] == "error" and "5 reads in a row" in event.payload["message"]
    _no_secret(json.dumps(event.payload))


# -- the connection ---------------------------------------------------------------------------


def test_hook_reads_the_variables_of_an_amlretrain_connection(connection: str) -> None:
    hook = AmlRetrainHook(connection)
    assert hook.environ() == ENV
    _no_secret(repr(hook))


def test_a_generic_connection_is_read_like_an_amlretrain_one() -> None:
    assert environ_of("c", conn_type="generic", extra={"env": {"A": "1"}}) == {"A": "1"}


def test_an_azure_connection_becomes_the_variables_of_default_azure_credential() -> None:
    env = environ_of(
        "azure_default",
        conn_type="azure",
        login="client-id",
        password="client-secret",
        extra={"tenantId": "tenant", "env": {"WS_TOKEN": "t"}},
    )
    assert env == {
        "AZURE_CLIENT_ID": "client-id",
        "AZURE_CLIENT_SECRET": "client-secret",
        "AZURE_TENANT_ID": "tenant",
        "WS_TOKEN": "t",
    }
    # a managed identity: nothing to set
    assert environ_of("azure_default", conn_type="azure") == {}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"conn_type": "http"}, "type 'http' is not read"),
        ({"conn_type": "amlretrain", "extra": {}}, "extra has no env"),
        ({"conn_type": "amlretrain", "extra": {"env": {"A": 1}}}, "must map variable names"),
        ({"conn_type": "azure", "password": "s3cr3t"}, "needs the client id"),
    ],
)
def test_a_connection_of_the_wrong_shape_is_refused_naming_it(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as err:
        environ_of("mine", **fields)
    assert "'mine'" in str(err.value) and "s3cr3t" not in str(err.value)


def test_azure_variables_are_set_only_inside_the_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", "before")
    monkeypatch.delenv("AZURE_CLIENT_ID", raising=False)
    with azure_environ({"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c", "WS_TOKEN": "x"}):
        assert os.environ["AZURE_TENANT_ID"] == "t" and os.environ["AZURE_CLIENT_ID"] == "c"
        assert "WS_TOKEN" not in os.environ or os.environ["WS_TOKEN"] != "x"
    assert os.environ["AZURE_TENANT_ID"] == "before" and "AZURE_CLIENT_ID" not in os.environ


def test_provider_info_registers_the_connection_type() -> None:
    import airflow
    import jsonschema

    info = get_provider_info()
    schema = Path(airflow.__file__).with_name("provider_info.schema.json")
    jsonschema.validate(info, json.loads(schema.read_text(encoding="utf-8")))
    # Airflow refuses a provider whose package-name is not its distribution's name
    assert info["package-name"] == "amlretrain"
    [kind] = info["connection-types"]
    assert kind["connection-type"] == AmlRetrainHook.conn_type
    module, _, name = kind["hook-class-name"].rpartition(".")
    assert getattr(importlib.import_module(module), name) is AmlRetrainHook


# -- the retrain operator ---------------------------------------------------------------------


def _op(config: str, conn: str, **kw: Any) -> AmlRetrainOperator:
    return AmlRetrainOperator(task_id="retrain", config=config, conn_id=conn, **kw)


def test_a_file_ledger_is_refused_before_anything_is_sent(
    tmp_path: Path, connection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(monkeypatch, Engine(_result()))
    op = _op(_config(tmp_path, ledger='path = "ledger.jsonl"'), connection)
    with pytest.raises(AirflowException, match=r"need a blob ledger") as err:
        op.execute({"ti": FakeTI()})
    assert engine.calls == []
    _no_secret(str(err.value))


def test_the_xcom_is_small_and_a_rejection_is_a_success(
    tmp_path: Path, connection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = "https://acct.blob.core.windows.net/models/m.ilearner"
    result = _result(
        _outcome(
            "eu",
            "succeeded",
            new_model=f"{model}?sv=1&sig=abc",
            serving_model=f"{model}?sig=abc",
            metrics={"AUC": 0.91},
            job_id="job-1",
        ),
        _outcome("us", "rejected", new_model=model, error="AUC 0.7 < 0.8", job_id="job-1"),
        run_id="af-x",
    )
    engine = _engine(monkeypatch, Engine(result))
    ti = FakeTI()
    xcom = _op(_config(tmp_path), connection, target="eu").execute({"ti": ti})
    assert xcom == {
        "run_id": "af-x",
        "targets": [
            {
                "key": "classic/ws/churn/eu",
                "target": "eu",
                "status": "succeeded",
                "model": model,
                "serving_model": model,
                "metrics": {"AUC": 0.91},
                "job_id": "job-1",
                "error": None,
            },
            {
                "key": "classic/ws/churn/us",
                "target": "us",
                "status": "rejected",
                "model": model,
                "serving_model": None,
                "metrics": {},
                "job_id": "job-1",
                "error": "AUC 0.7 < 0.8",
            },
        ],
        "halt_reason": None,
    }
    assert "sig=" not in json.dumps(xcom)
    [call] = engine.calls
    assert call["run_id"] == run_id_of("fleet", "retrain", "manual__2026-12-01", -1)
    assert [t.label for t in call["targets"]] == ["eu"] or len(call["targets"]) == 1


def test_a_rejection_fails_the_task_when_asked(
    tmp_path: Path, connection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _engine(monkeypatch, Engine(_result(_outcome("us", "rejected", error="AUC too low"))))
    with pytest.raises(AirflowException, match="us: rejected: AUC too low"):
        _op(_config(tmp_path), connection, fail_on_rejected=True).execute({"ti": FakeTI()})


@pytest.mark.parametrize("status", ["failed", "restored", "unknown", "halted"])
def test_a_target_that_did_not_succeed_fails_the_task_after_the_xcom_is_pushed(
    tmp_path: Path,
    connection: str,
    monkeypatch: pytest.MonkeyPatch,
    status: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO")
    error = f"swap refused: {ENV['AMLRETRAIN_STORAGE_CONNECTION_STRING']}"
    _engine(
        monkeypatch,
        Engine(_result(_outcome("eu", "succeeded"), _outcome("us", status, error=error))),
    )
    ti = FakeTI()
    with pytest.raises(
        AirflowException, match=f"1 of 2 target.* us: {status}: swap refused"
    ) as err:
        _op(_config(tmp_path), connection).execute({"ti": ti})
    pushed = ti.pushed["return_value"]
    assert [t["status"] for t in pushed["targets"]] == ["succeeded", status]
    assert "REDACTED" in pushed["targets"][1]["error"]
    _no_secret(caplog.text)
    _no_secret(str(err.value))
    _no_secret(json.dumps(pushed))


def test_running_jobs_defer_to_the_trigger_with_ids_only(
    tmp_path: Path, connection: str, monkeypatch: pytest.MonkeyPatch, trainer: FakeTrainer
) -> None:
    engine = _engine(monkeypatch, Engine(_result(_outcome("eu", "succeeded")), detach=1))
    op = _op(_config(tmp_path), connection, deferrable=True, poll_interval=7, timeout=99)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": FakeTI()})
    assert deferred.value.method_name == "execute_complete"
    path, kwargs = deferred.value.trigger.serialize()
    assert path == "amlretrain.airflow.triggers.AmlWaitTrigger"
    assert kwargs["jobs"] == [{"kind": "batch", "data": "new.csv", "job_id": "job-1"}]
    assert (kwargs["conn_id"], kwargs["poll_interval"], kwargs["timeout"]) == (connection, 7, 99)
    assert os.path.isabs(kwargs["config_path"])
    _no_secret(json.dumps(kwargs))
    assert trainer.reads == ["job-1"]  # checked once before deferring
    assert engine.calls[0]["detach"] is True
    # the resumed attempt (a new process: a new operator) resumes the same run
    event = {"status": "done", "jobs": [{"job_id": "job-1", "status": "Finished"}]}
    again = _op(_config(tmp_path), connection, deferrable=True)
    xcom = again.execute_complete({"ti": FakeTI()}, event)
    assert xcom["targets"][0]["status"] == "succeeded"
    assert engine.calls[1]["run_id"] == engine.calls[0]["run_id"]


def test_jobs_that_already_ended_are_not_deferred_the_race_workaround(
    tmp_path: Path, connection: str, monkeypatch: pytest.MonkeyPatch, trainer: FakeTrainer
) -> None:
    trainer.statuses = ["Finished"]
    engine = _engine(monkeypatch, Engine(_result(_outcome("eu", "succeeded")), detach=1))
    xcom = _op(_config(tmp_path), connection, deferrable=True).execute({"ti": FakeTI()})
    assert xcom["targets"][0]["status"] == "succeeded" and len(engine.calls) == 2


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            {"status": "timeout", "jobs": [{"job_id": "job-1", "status": "Running"}]},
            "job-1 \\(Running\\).*not cancelled",
        ),
        ({"status": "error", "jobs": [], "message": "boom"}, "boom"),
    ],
)
def test_a_trigger_timeout_or_error_fails_the_task_without_running_anything(
    tmp_path: Path,
    connection: str,
    monkeypatch: pytest.MonkeyPatch,
    event: dict[str, Any],
    message: str,
) -> None:
    engine = _engine(monkeypatch, Engine(_result()))
    with pytest.raises(AirflowException, match=message):
        _op(_config(tmp_path), connection, deferrable=True).execute_complete(
            {"ti": FakeTI()}, event
        )
    assert engine.calls == []


def test_a_non_deferrable_task_waits_in_the_worker_then_resumes(
    tmp_path: Path, connection: str, monkeypatch: pytest.MonkeyPatch, trainer: FakeTrainer
) -> None:
    trainer.statuses = ["Running", "Running", "Finished"]
    engine = _engine(monkeypatch, Engine(_result(_outcome("eu", "succeeded")), detach=1))
    xcom = _op(_config(tmp_path), connection, deferrable=False, poll_interval=0.01).execute(
        {"ti": FakeTI()}
    )
    assert xcom["targets"][0]["status"] == "succeeded"
    assert trainer.reads == ["job-1"] * 3 and len(engine.calls) == 2


class SwapEngine:
    """``retrain_configured`` whose swap detaches from its operation once, then returns."""

    def __init__(self, result: RetrainResult) -> None:
        self.result = result
        self.calls: list[dict[str, Any]] = []
        self.detach = 1

    def __call__(self, config: RetrainConfig, **kw: Any) -> RetrainResult:
        self.calls.append(kw)
        if self.detach:
            self.detach -= 1
            op = DetachedOperation(
                target="azureml:ep", label="ep", token="tok-1", what="the PUT of deployment green"
            )
            raise OperationsDetached(kw["run_id"], [op])
        return self.result


@pytest.fixture
def swap_target(monkeypatch: pytest.MonkeyPatch) -> FakeTarget:
    """What find_target gives for the detached operation's key (a DetachableTarget)."""
    target = FakeTarget(FakeOperation(reads=3))
    monkeypatch.setattr(amlretrain.configured, "find_target", lambda config, key: target)
    monkeypatch.setattr(amlretrain.targets, "DetachableTarget", FakeTarget)
    return target


def test_a_detached_swap_defers_with_its_target_key_and_token_only(
    tmp_path: Path, connection: str, monkeypatch: pytest.MonkeyPatch, swap_target: FakeTarget
) -> None:
    engine = SwapEngine(_result(_outcome("ep", "succeeded")))
    monkeypatch.setattr(amlretrain.configured, "retrain_configured", engine)
    op = _op(_config(tmp_path), connection, deferrable=True, poll_interval=7)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": FakeTI()})
    _path, kwargs = deferred.value.trigger.serialize()
    assert kwargs["jobs"] == []
    assert kwargs["operations"] == [
        {"target": "azureml:ep", "token": "tok-1", "what": "the PUT of deployment green"}
    ]
    _no_secret(json.dumps(kwargs))
    assert swap_target.made == ["tok-1"]  # looked at once before deferring
    event = {"status": "done", "jobs": [], "operations": [{"target": "azureml:ep"}]}
    xcom = _op(_config(tmp_path), connection, deferrable=True).execute_complete(
        {"ti": FakeTI()}, event
    )
    assert xcom["targets"][0]["status"] == "succeeded"
    assert engine.calls[1]["run_id"] == engine.calls[0]["run_id"]


def test_a_non_deferrable_task_waits_for_a_detached_swap_in_the_worker(
    tmp_path: Path, connection: str, monkeypatch: pytest.MonkeyPatch, swap_target: FakeTarget
) -> None:
    engine = SwapEngine(_result(_outcome("ep", "succeeded")))
    monkeypatch.setattr(amlretrain.configured, "retrain_configured", engine)
    xcom = _op(_config(tmp_path), connection, deferrable=False, poll_interval=0.01).execute(
        {"ti": FakeTI()}
    )
    assert xcom["targets"][0]["status"] == "succeeded" and len(engine.calls) == 2
    assert swap_target.made == ["tok-1"]  # one poller for the whole wait


def _killed_mid_wait(op: Any, try_number: int, waiting: Callable[[], bool]) -> BaseException:
    """Run ``op`` (a worker's wait) in a thread, kill it (``on_kill``) once ``waiting()``,
    and return what ``execute`` raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            op.execute({"ti": FakeTI(try_number=try_number, max_tries=1)})
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 5
    while not waiting() and time.monotonic() < deadline:
        time.sleep(0.01)
    op.on_kill()
    thread.join(5)
    assert not thread.is_alive(), "on_kill did not end execute"
    [err] = errors
    return err


@pytest.mark.parametrize(("try_number", "cancelled"), [(1, []), (2, ["job-1"])])
def test_on_kill_ends_the_wait_and_cancels_the_job_only_without_a_retry(
    tmp_path: Path,
    connection: str,
    monkeypatch: pytest.MonkeyPatch,
    trainer: FakeTrainer,
    try_number: int,
    cancelled: list[str],
) -> None:
    _engine(monkeypatch, Engine(_result(), detach=1))
    op = _op(_config(tmp_path), connection, deferrable=False, poll_interval=0.05)
    err = _killed_mid_wait(op, try_number, lambda: len(trainer.reads) >= 2)
    assert isinstance(err, AirflowException) and "killed" in str(err)
    assert trainer.cancelled == cancelled
    said = "cancelled" if cancelled else "left running for the retry"
    assert f"its training job(s) {said}" in str(err)


@pytest.mark.parametrize(("try_number", "said"), [(1, "the retry finishes"), (2, "clear this")])
def test_a_kill_while_a_detached_swap_is_waited_for_says_the_target_stays_leased(
    tmp_path: Path,
    connection: str,
    monkeypatch: pytest.MonkeyPatch,
    swap_target: FakeTarget,
    try_number: int,
    said: str,
) -> None:
    swap_target._operation.left = 10**6  # never ends
    monkeypatch.setattr(amlretrain.configured, "retrain_configured", SwapEngine(_result()))
    op = _op(_config(tmp_path), connection, deferrable=False, poll_interval=0.05)
    err = _killed_mid_wait(op, try_number, lambda: swap_target._operation.asked >= 2)
    assert "targets stay leased to run af-" in str(err) and said in str(err)


def test_the_reconcile_operator_refuses_a_file_ledger_too(tmp_path: Path, connection: str) -> None:
    op = AmlReconcileOperator(
        task_id="reconcile", config=_config(tmp_path, 'path = "l.jsonl"'), conn_id=connection
    )
    with pytest.raises(AirflowException, match="need a blob ledger"):
        op.execute({"ti": FakeTI()})


def test_templated_fields() -> None:
    assert set(AmlRetrainOperator.template_fields) == {"config", "target", "targets", "data"}


def test_the_example_dag_maps_the_configs_targets_deferrable_in_the_jobs_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runpy

    from airflow.sdk import DAG

    monkeypatch.setenv("AMLRETRAIN_CONFIG", _config(tmp_path))
    example = Path(__file__).resolve().parents[2] / "docs" / "airflow" / "example_dag.py"
    dag = runpy.run_path(str(example))["dag"]
    assert isinstance(dag, DAG)
    retrain = dag.task_dict["retrain"]
    assert retrain.expand_input.value == {"target": ["0", "1"]}  # the config's two targets
    kwargs = retrain.partial_kwargs
    assert (kwargs["deferrable"], kwargs["pool"], kwargs["retries"]) == (True, "aml_jobs", 1)
    assert kwargs["config"] == _config(tmp_path)
    assert dag.task_dict["report"].trigger_rule == "all_done"


GUIDE = Path(__file__).resolve().parents[2] / "docs" / "airflow.md"


def test_the_guides_dag_example_runs() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    [block] = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/airflow.md", "exec"), namespace)
    retrain = namespace["dag"].task_dict["retrain"]
    assert retrain.expand_input.value == {"target": ["churn/eu", "churn/us", "2"]}
    assert retrain.partial_kwargs["deferrable"] is True


def test_the_guides_xcom_example_has_the_members_the_operators_push() -> None:
    from amlretrain.airflow.operators import xcom_of

    text = GUIDE.read_text(encoding="utf-8")
    [block] = re.findall(r"^```json\n(.*?)^```", text, re.S | re.M)
    example = json.loads(block)
    pushed = xcom_of("r", [_outcome("eu", "succeeded")])
    assert set(example) == set(pushed)
    assert set(example["targets"][0]) == set(pushed["targets"][0])


def test_one_targets_run_trains_that_target_only(tmp_path: Path) -> None:
    # What a mapped task passes to retrain_configured: find_target's target, one of two.
    from amlretrain.config import load_config
    from amlretrain.configured import find_target, fleet_of

    config = load_config(_config(tmp_path), environ=ENV)
    groups, order = fleet_of(config, targets=[find_target(config, "churn/us")])
    assert [t.label for t in order] == ["churn/us"]
    assert [[t.label for t in g.targets] for g in groups] == [["churn/us"]]
