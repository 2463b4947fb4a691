"""The real-Airflow harness without pytest: an Airflow home, the real stack, the emulator's
fleet. Used by tests/airflow/conftest.py (its fixtures) and bench/airflow_deferral.py.

Everything here runs Airflow only through its CLI (``.venv-airflow/bin/airflow``, as
subprocesses) and reads Airflow's SQLite database with the standard library, so it works
from either venv: the tests run in ``.venv-airflow``, the benchmark in ``.venv``.
Adapted from tools/airflow/probes/stack.py (the facts in tools/airflow/NOTES.md).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any

from amlretrain.cli._emulator_config import emulator_config
from amlretrain.emulator import Emulator

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DAGS = HERE / "dags"
DATA = REPO / "amlretrain" / "emulator" / "data"
#: The Airflow CLI of the Airflow test environment (tools/airflow/env.sh).
AIRFLOW = REPO / ".venv-airflow" / "bin" / "airflow"
#: The connection id the test DAGs (and the operators' default) use.
CONN_ID = "amlretrain_default"


class HarnessError(AssertionError):
    """Something the harness waited for did not happen (a test failure, with the reason)."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise HarnessError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


class AirflowHome:
    """An ``AIRFLOW_HOME`` of this session: its environment, CLI and database."""

    def __init__(self, path: Path, airflow: Path, connection: dict[str, Any]) -> None:
        self.path = path
        self.airflow = airflow
        self.db_file = path / "airflow.db"
        self.logs = path / "logs"
        self.outputs = path / "outputs"  # the stdout/stderr of each CLI run, for the scans
        self.outputs.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            {
                "AIRFLOW_HOME": str(path),
                "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db_file}",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                # `dags test` registers the DAGs first: unpaused, so the stack runs them.
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs),
                # Airflow's own keys, made here so none is generated into a log.
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
                "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
                f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(connection),
                # The DAG files import tests.airflow.dags helpers and amlretrain.
                "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(
                    os.pathsep
                ),
            }
        )
        self.env = env
        self._runs = 0
        self.last_output = ""

    def cli(
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``airflow ARGS`` with this home's environment; keep its output for the scans."""
        self._runs += 1
        try:
            done = subprocess.run(
                [str(self.airflow), *args],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise HarnessError(
                f"airflow {' '.join(args[:3])} did not end within {timeout:.0f} s: {e}"
            ) from None
        out = self.outputs / f"{self._runs:03d}-{args[0]}-{'-'.join(args[1:2])}.log"
        out.write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
        if check and done.returncode != 0:
            raise HarnessError(
                f"airflow {' '.join(args)} exited {done.returncode} (output: {out}):\n"
                + done.stderr[-3000:]
            )
        return done

    def dags_test(
        self,
        dag_id: str,
        conf: dict[str, Any],
        timeout: float = 240,
        extra_env: dict[str, str] | None = None,
    ) -> str:
        """``airflow dags test DAG_ID -c CONF``: returns its run id (the test's verdicts come
        from the emulator, the task instances and the logs, not from its exit code). The
        tasks' logs are in its output (``last_output``: `dags test` writes no task log
        file, only the triggers'). ``extra_env``: variables for this run only."""
        saved = self.env
        self.env = {**saved, **(extra_env or {})}
        try:
            done = self.cli(
                "dags", "test", dag_id, "-c", json.dumps(conf), timeout=timeout, check=False
            )
        finally:
            self.env = saved
        self.last_output = done.stdout + done.stderr
        rows = self.query(
            "select run_id from dag_run where dag_id=:d order by id desc limit 1", d=dag_id
        )
        if not rows:
            raise HarnessError(f"airflow dags test {dag_id} made no run:\n{done.stderr[-3000:]}")
        return str(rows[0][0])

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Rows of one SQL query on Airflow's SQLite database (``:name`` parameters)."""
        with closing(sqlite3.connect(self.db_file, timeout=30)) as db:
            return [tuple(r) for r in db.execute(sql, params)]

    def task_states(self, dag_id: str, run_id: str) -> dict[tuple[str, int], tuple[Any, ...]]:
        """(task_id, map_index) -> (state, try_number) of a run's task instances."""
        rows = self.query(
            "select task_id, map_index, state, try_number from task_instance"
            " where dag_id=:d and run_id=:r",
            d=dag_id,
            r=run_id,
        )
        return {(r[0], int(r[1])): (r[2], r[3]) for r in rows}

    def xcoms(self, dag_id: str, run_id: str) -> dict[tuple[str, int, str], Any]:
        """(task_id, map_index, key) -> the JSON value of every XCom of a run."""
        rows = self.query(
            "select task_id, map_index, key, value from xcom where dag_id=:d and run_id=:r",
            d=dag_id,
            r=run_id,
        )
        out: dict[tuple[str, int, str], Any] = {}
        for task_id, map_index, key, value in rows:
            if isinstance(value, bytes):
                value = value.decode()
            if isinstance(value, str):  # JSON text; SQLite may also hand back a number
                value = json.loads(value) if value else None
            out[(task_id, int(map_index), key)] = value
        return out

    def raw_xcom_text(self) -> str:
        """Every XCom value stored, as text (for the secret scan)."""
        rows = self.query("select value from xcom")
        return "\n".join(
            (v.decode(errors="replace") if isinstance(v, bytes) else str(v)) for (v,) in rows
        )

    def task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
        """Every log file of one task instance (all attempts), concatenated."""
        folder = self.logs / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder = folder / f"map_index={map_index}"
        files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
        return "\n".join(p.read_text(errors="replace") for p in files)

    def text_to_scan(self) -> str:
        """Everything Airflow wrote that a user sees: every file under logs/, every CLI
        output of this session and every XCom. (airflow.cfg is Airflow's own key store and
        not scanned; the stack's process logs are under logs/ too.)"""
        parts = [self.raw_xcom_text()]
        for folder in (self.logs, self.outputs):
            parts += [p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()]
        return "\n".join(parts)


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def emulator_secrets(emulator: Emulator) -> list[str]:
    """Every secret the emulator issued (keys, tokens, the storage account key), and the
    ``sig=`` of a SAS: none may appear in a log or an XCom."""
    fields = emulator.info.to_dict(include_secrets=True)
    public = emulator.info.to_dict(include_secrets=False)
    found = {str(v) for k, v in fields.items() if k not in public or public[k] != v}
    conn = str(fields["storage_connection_string"])
    for part in conn.split(";"):
        if part.lower().startswith("accountkey="):
            found.add(part.split("=", 1)[1])
    return sorted(s for s in found if len(s) >= 8)


def find_leaks(text: str, known: Sequence[str]) -> list[str]:
    """What of ``known`` (or any SAS signature) occurs in ``text``: a short description of
    each, never the secret itself."""
    leaks = [f"secret #{i} (len {len(s)})" for i, s in enumerate(known) if s in text]
    leaks += [
        f"a SAS signature at offset {m.start()}"
        for m in re.finditer(r"[?&]sig=[^&\s\"']{10,}", text)
    ]
    return leaks


# -- the fleet: endpoints, data files and a retrain.toml ------------------------------------


@contextmanager
def classic_endpoints(emulator: Emulator, count: int, prefix: str = "af") -> Iterator[list[str]]:
    """``count`` fresh non-default endpoints of the seeded predictive service (deleted after).

    The service's limit of 20 endpoints (Azure ML Studio (classic)'s, which the emulator
    keeps) is lifted meanwhile: a fleet of 20 plus the seeded two would not fit in one
    service (a real fleet that size spans services; the operators do not care).
    """
    from amlretrain.studio.management import ClassicClient

    info = emulator.info
    limit = emulator.max_endpoints
    emulator.max_endpoints = None
    client = ClassicClient(info.workspace_id, info.workspace_token, base_url=info.management_url)
    names = [f"{prefix}{n:02d}{uuid.uuid4().hex[:6]}" for n in range(count)]
    made: list[str] = []
    try:
        for name in names:
            client.create_endpoint(info.predictive_service, name)
            made.append(name)
        yield names
    finally:
        for name in made:
            client.delete_endpoint(info.predictive_service, name)
        client.close()
        emulator.max_endpoints = limit


def bad_data(folder: Path) -> Path:
    """A training file without the label column (``income``): its training job fails."""
    rows = (DATA / "census_new.csv").read_text().splitlines()
    header = rows[0].split(",")
    label = header.index("income")
    path = folder / "no_label.csv"
    path.write_text(
        "\n".join(",".join(c for i, c in enumerate(r.split(",")) if i != label) for r in rows)
        + "\n"
    )
    return path


def fleet_config(
    emulator: Emulator, folder: Path, targets: Sequence[tuple[str, Path | None]]
) -> Path:
    """A retrain.toml with a blob ledger (its own, per call) whose targets are the classic
    endpoints ``targets`` names, each with its own ``data`` file when given."""
    info = emulator.info
    base = emulator_config(info, data=DATA / "census_new.csv", ledger=folder / "unused.jsonl")
    head = base[: base.index("[[targets]]")]
    ledger = f'blob = "ledgers/airflow-{uuid.uuid4().hex[:12]}/ledger.jsonl"'
    head = head.replace(f"path = {json.dumps(str(folder / 'unused.jsonl'))}", ledger)
    assert ledger in head, "emulator_config's [ledger] line changed: adapt fleet_config"
    blocks = []
    for name, data in targets:
        lines = [
            "[[targets]]",
            'kind = "classic"',
            f"workspace_id = {json.dumps(info.workspace_id)}",
            'token_env = "AMLRETRAIN_WORKSPACE_TOKEN"',
            f"management_url = {json.dumps(info.management_url)}",
            f"web_service_id = {json.dumps(info.predictive_service)}",
            f"endpoint = {json.dumps(name)}",
            "verify_timeout = 30",
        ]
        if data is not None:
            lines.append(f"data = {json.dumps(str(data))}")
        blocks.append("\n".join([*lines, ""]))
    path = folder / "retrain.toml"
    path.write_text(head + "\n".join(blocks))
    return path


def endpoint_model(emulator: Emulator, endpoint: str) -> str:
    """The model blob an endpoint of the seeded predictive service references, from the
    emulator's own state."""
    assert emulator.state is not None
    info = emulator.info
    with emulator.state.lock:
        ws = emulator.state.workspaces[info.workspace_id.lower()]
        found = ws.services[str(info.predictive_service)].endpoints[endpoint]
        return str(found.resources[0]["Location"]["RelativeLocation"])


def job_ids(emulator: Emulator) -> set[str]:
    """Every batch job the emulator has, by id (its own state)."""
    assert emulator.state is not None
    with emulator.state.lock:
        return set(emulator.state.jobs)


def running_jobs(emulator: Emulator) -> int:
    """How many batch jobs the emulator is running now."""
    assert emulator.state is not None
    with emulator.state.lock:
        return sum(j.status == "Running" for j in emulator.state.jobs.values())


def endpoint_patches(emulator: Emulator, endpoint: str) -> int:
    """How many PATCH requests (a swap of the trained model) reached ``endpoint``."""
    return sum(
        r.method == "PATCH"
        and r.path.rstrip("/").lower().endswith("/endpoints/" + endpoint.lower())
        for r in emulator.requests
    )


# -- the real stack --------------------------------------------------------------------------


class Stack:
    """Airflow's four processes on an :class:`AirflowHome` (LocalExecutor, SQLite), their
    logs under ``home.logs/stack``. Adapted from tools/airflow/probes/stack.py."""

    COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")

    def __init__(self, home: AirflowHome, parallelism: int = 1) -> None:
        self.home = home
        self.port = free_port()
        self.parallelism = parallelism
        self.env = dict(home.env)
        self.env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(parallelism),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
                "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.port}",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                # A killed triggerer's triggers move to a new one after 10 s (default 30).
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
                # A lost worker is noticed after this (default 300 s), then retried; a live
                # one heartbeats every 2 s (default 5), five times within the timeout.
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "10",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
            }
        )
        self.logdir = home.logs / "stack"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """One ``airflow`` CLI command with the stack's environment (must succeed)."""
        saved = self.home.env
        self.home.env = self.env
        try:
            return self.home.cli(*args, timeout=timeout)
        finally:
            self.home.env = saved

    def start(self, name: str) -> None:
        """Start one component in its own process group, its output in its log file."""
        extra = ["--port", str(self.port), "--workers", "1"] if name == "api-server" else []
        with open(self.logdir / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                [str(self.home.airflow), name, *extra],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop one component (its whole process group): ``sig``, then SIGKILL after 30 s."""
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        except ProcessLookupError:
            pass
        if sig == signal.SIGKILL:  # the group's other members (task processes) too
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    def stop_all(self, grace: float = 5) -> None:
        """Stop every component this stack started, all at once: SIGTERM to each process
        group, then SIGKILL to the groups still there after ``grace`` seconds. (Each exits
        within about 4 s of a SIGTERM, except Airflow 3.3.2's triggerer, which at times
        waits its full 10 s for a trigger runner that has already exited, as at the end of
        this suite: tools/airflow/NOTES.md.)"""
        procs, self.procs = self.procs, {}
        for proc in procs.values():
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs.values():
            with suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            with suppress(ProcessLookupError):  # what is left of the group, if anything
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def health(self) -> dict[str, Any] | None:
        """The api-server's health document, or None when it does not answer."""
        try:
            url = f"http://127.0.0.1:{self.port}/api/v2/monitor/health"
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(url, timeout=2) as r:
                return dict(json.load(r))
        except OSError:
            return None

    def wait_healthy(self, timeout: float = 120) -> None:
        """Until the api-server reports every component healthy (fail if one exits)."""

        def healthy() -> bool:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise HarnessError(
                        f"airflow {name} exited {proc.returncode}: see {self.logdir}"
                    )
            h = self.health() or {}
            return all(
                h.get(k, {}).get("status") == "healthy"
                for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            )

        wait_until(healthy, timeout, "the Airflow stack healthy")

    def wait_parsed(self, dag_id: str, timeout: float = 60) -> None:
        """Until the dag-processor has serialised ``dag_id``."""
        wait_until(
            lambda: self.home.query("select 1 from serialized_dag where dag_id=:d", d=dag_id),
            timeout,
            f"{dag_id} parsed",
        )

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Trigger a run of ``dag_id`` with ``conf``; its run id."""
        run_id = f"t{uuid.uuid4().hex[:10]}"
        self.cli("dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(conf))
        return run_id

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        """The run's state now."""
        rows = self.home.query(
            "select state from dag_run where dag_id=:d and run_id=:r", d=dag_id, r=run_id
        )
        return str(rows[0][0]) if rows else None

    def wait_run(
        self, dag_id: str, run_id: str, timeout: float, each: Callable[[], None] | None = None
    ) -> str:
        """Until the run is success or failed (calling ``each`` every 0.5 s meanwhile)."""

        def done() -> str | None:
            if each is not None:
                each()
            state = self.run_state(dag_id, run_id)
            return state if state in ("success", "failed") else None

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = done()
            if state:
                return state
            time.sleep(0.5)
        raise HarnessError(
            f"{dag_id}/{run_id} not finished within {timeout:.0f} s:"
            f" {self.home.task_states(dag_id, run_id)}"
        )


def v2_config(emulator: Emulator, folder: Path, endpoint: str) -> Path:
    """A retrain.toml with a blob ledger (its own), a command-job training on the
    emulator's v2 workspace and the online endpoint ``endpoint`` as its one target."""
    info = emulator.info
    base = emulator_config(info, data=DATA / "census_new.csv", ledger=folder / "unused.jsonl")
    storage = base[base.index("[storage]") : base.index("[[targets]]")]
    storage = storage[: storage.index("[sample]")] if "[sample]" in storage else storage
    ledger = f'blob = "ledgers/airflow-{uuid.uuid4().hex[:12]}/ledger.jsonl"'
    storage = storage.replace(f"path = {json.dumps(str(folder / 'unused.jsonl'))}", ledger)
    assert ledger in storage, "emulator_config's [ledger] line changed: adapt v2_config"
    q = json.dumps
    from amlretrain.storage import BlobStore

    with BlobStore.from_connection_string(info.storage_connection_string) as store:
        account_url = store.account_url
    training = [
        "[training]",
        'kind = "command_job"',
        f"subscription_id = {q(str(info.v2_subscription_id))}",
        f"resource_group = {q(str(info.v2_resource_group))}",
        f"workspace = {q(str(info.v2_workspace))}",
        'command = "python train.py --data ${{inputs.data}} --model ${{outputs.model}}"',
        'environment_id = "azureml:sklearn:1"',
        'compute = "cpu-cluster"',
        f"data = {q(str(DATA / 'census_new.csv'))}",
        'inputs = { label = "income" }',
        f"arm_base_url = {q(info.arm_base_url)}",
        'arm_token_env = "AMLRETRAIN_ARM_TOKEN"',
        "polling_interval = 0.5",
        "timeout = 300",
        "",
    ]
    target = [
        "[[targets]]",
        'kind = "online_endpoint"',
        f"subscription_id = {q(str(info.v2_subscription_id))}",
        f"resource_group = {q(str(info.v2_resource_group))}",
        f"workspace = {q(str(info.v2_workspace))}",
        f"endpoint = {q(endpoint)}",
        f"datastore_account_url = {q(account_url)}",
        f"arm_base_url = {q(info.arm_base_url)}",
        'arm_token_env = "AMLRETRAIN_ARM_TOKEN"',
        "polling_interval = 0.1",
        "verify_timeout = 30",
        "",
    ]
    path = folder / "retrain.toml"
    path.write_text("\n".join(training) + "\n" + storage + "\n".join(target))
    return path


def deployment_puts(emulator: Emulator, endpoint: str, deployment: str) -> int:
    """The PUTs of an online endpoint's deployment the emulator received (its request log)."""
    end = f"/onlineendpoints/{endpoint}/deployments/{deployment}".lower()
    return sum(1 for r in emulator.requests if r.method == "PUT" and r.path.lower().endswith(end))


def v2_state(emulator: Emulator, endpoint: str) -> tuple[dict[str, int], dict[str, str]]:
    """An online endpoint's live traffic and each deployment's model, from the emulator."""
    assert emulator.state is not None
    with emulator.state.lock:
        ep = emulator.state.v2.endpoint_named(endpoint)
        assert ep is not None
        models = {n: str(d.resource["properties"]["model"]) for n, d in ep.deployments.items()}
        return {k: v for k, v in ep.traffic.items() if v}, models


def v2_jobs(emulator: Emulator) -> dict[str, str]:
    """Every command job the emulator holds: name -> status."""
    assert emulator.state is not None
    with emulator.state.lock:
        return {j.name: str(j.status) for j in emulator.state.v2.jobs.values()}
