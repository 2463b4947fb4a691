"""Run a real Airflow 3.3.2 stack (api-server, scheduler with LocalExecutor, dag-processor,
triggerer) and one probe scenario against it, printing measured facts as JSON lines.

Evidence for tools/airflow/NOTES.md, run with the Airflow venv's Python after
``source tools/airflow/probes/env.sh`` (which sets AIRFLOW_HOME, the DAGs folder and
PYTHONPATH)::

    .venv-airflow/bin/python tools/airflow/probes/stack.py mapped   [--db sqlite|postgres]
    .venv-airflow/bin/python tools/airflow/probes/stack.py pools    [--db ...]
    .venv-airflow/bin/python tools/airflow/probes/stack.py restart  [--db ...]
    .venv-airflow/bin/python tools/airflow/probes/stack.py killretry [--db ...]
    .venv-airflow/bin/python tools/airflow/probes/stack.py connection [--db ...]
        (with AIRFLOW_CONN_AMLRETRAIN_PROBE set, as f_imports.sh does)

``--db postgres`` starts a throw-away PostgreSQL cluster (Debian's postgresql-15, as the
``postgres`` user when run as root) under $PROBE_DIR and stops it at the end. Every process
started here is stopped before exit, also on error.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

AF = str(Path(sys.executable).with_name("airflow"))
PROBE_DIR = Path(os.environ["PROBE_DIR"])
PROBE_LOG = Path(os.environ["PROBE_LOG"])
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def emit(fact: str, **fields: Any) -> None:
    """Print one measured fact as a JSON line."""
    print(json.dumps({"fact": fact, **fields}, default=str), flush=True)


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def probe_events() -> list[dict[str, Any]]:
    """Read the probe log written by probe_lib.record."""
    if not PROBE_LOG.exists():
        return []
    return [json.loads(line) for line in PROBE_LOG.read_text().splitlines() if line.strip()]


class Postgres:
    """A throw-away PostgreSQL cluster under PROBE_DIR (as user postgres when root)."""

    def __init__(self) -> None:
        self.dir = PROBE_DIR / "pg"
        self.port = free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def run(self, *cmd: str) -> None:
        subprocess.run([*self.as_user, *cmd], check=True, capture_output=True, text=True)

    def start(self) -> str:
        t0 = time.monotonic()
        self.dir.mkdir(parents=True)
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self.run(str(PG_BIN / "initdb"), "-D", str(self.dir), "-A", "trust", "-U", "airflow")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self.run(str(PG_BIN / "pg_ctl"), "-D", str(self.dir), "-o", opts, "-w", "start")
        self.run(
            str(PG_BIN / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "airflow",
            "airflow",
        )
        emit("postgres_started", seconds=round(time.monotonic() - t0, 1), port=self.port)
        return f"postgresql+psycopg2://airflow@127.0.0.1:{self.port}/airflow"

    def stop(self) -> None:
        if (self.dir / "postmaster.pid").exists():
            self.run(str(PG_BIN / "pg_ctl"), "-D", str(self.dir), "-m", "fast", "-w", "stop")


class Stack:
    """The Airflow processes, their environment and their logs."""

    COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")

    def __init__(self, db_url: str) -> None:
        self.port = free_port()
        self.env = dict(os.environ)
        self.env.update(
            {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "8",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
                "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.port}",
                # Generated per run and never printed: the processes must share it.
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
                # No login on this loopback stack, so no generated admin password is
                # printed into api-server.log (the default SimpleAuthManager does that).
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                # A lost worker is noticed after this (default 300 s), then retried.
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            }
        )
        os.environ.update(self.env)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.engine = sa.create_engine(db_url)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run one airflow CLI command with the stack's environment."""
        return subprocess.run(
            [AF, *args], env=self.env, capture_output=True, text=True, check=check
        )

    def start(self, name: str) -> None:
        args = [name] + (
            ["--port", str(self.port), "--workers", "1"] if name == "api-server" else []
        )
        log = open(PROBE_DIR / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs[name] = subprocess.Popen(
            [AF, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def health(self) -> dict[str, Any] | None:
        try:
            url = f"http://127.0.0.1:{self.port}/api/v2/monitor/health"
            with urllib.request.urlopen(url, timeout=2) as r:
                return dict(json.load(r))
        except OSError:
            return None

    def wait_healthy(self, timeout: float = 120) -> float:
        """Wait until the api-server reports scheduler, triggerer and dag-processor healthy."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            h = self.health()
            if h and all(
                h.get(k, {}).get("status") == "healthy"
                for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            ):
                return time.monotonic() - t0
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited {proc.returncode}: see {PROBE_DIR / (name + '.log')}"
                    )
            time.sleep(0.5)
        raise TimeoutError(f"stack not healthy after {timeout}s: {self.health()}")

    def wait_dag_parsed(self, dag_id: str, timeout: float = 60) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            with self.engine.connect() as c:
                if c.execute(
                    sa.text("select 1 from serialized_dag where dag_id=:d"), {"d": dag_id}
                ).first():
                    return
            time.sleep(0.5)
        raise TimeoutError(f"{dag_id} not serialized after {timeout}s")

    def trigger(self, dag_id: str) -> str:
        run_id = f"probe_{int(time.time() * 1000)}"
        self.cli("dags", "trigger", dag_id, "--run-id", run_id)
        return run_id

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        with self.engine.connect() as c:
            row = c.execute(
                sa.text("select state from dag_run where dag_id=:d and run_id=:r"),
                {"d": dag_id, "r": run_id},
            ).first()
        return None if row is None else str(row[0])

    def ti_states(self, dag_id: str, run_id: str) -> list[tuple[Any, ...]]:
        with self.engine.connect() as c:
            return [
                tuple(r)
                for r in c.execute(
                    sa.text(
                        "select task_id, map_index, state, try_number, max_tries, pool"
                        " from task_instance where dag_id=:d and run_id=:r"
                        " order by task_id, map_index"
                    ),
                    {"d": dag_id, "r": run_id},
                )
            ]

    def wait_run(self, dag_id: str, run_id: str, timeout: float, sample: dict[str, float]) -> str:
        """Wait for a terminal run state, sampling the stack's memory into ``sample``."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            self.sample_memory(sample)
            state = self.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                return state
            time.sleep(0.5)
        raise TimeoutError(
            f"{dag_id}/{run_id} not finished after {timeout}s: {self.ti_states(dag_id, run_id)}"
        )

    def sample_memory(self, sample: dict[str, float]) -> None:
        """Keep the peak PSS (MiB: shared pages split between sharers, so forks are not
        counted twice) of each component's process tree, and of their sum."""
        total = 0.0
        for name, proc in self.procs.items():
            try:
                p = psutil.Process(proc.pid)
                rss = (
                    sum(q.memory_full_info().pss for q in [p, *p.children(recursive=True)]) / 2**20
                )
            except psutil.Error:
                continue
            total += rss
            sample[name] = max(sample.get(name, 0.0), round(rss, 1))
        sample["total"] = max(sample.get("total", 0.0), round(total, 1))


def intervals(events: list[dict[str, Any]], prefix: str) -> list[tuple[float, float]]:
    """(start, end) of each trigger whose token starts with ``prefix``, by the probe log."""
    starts = {
        e["token"]: e["t"]
        for e in events
        if e["what"] == "trigger_run_start" and e["token"].startswith(prefix)
    }
    ends = {
        e["token"]: e["t"]
        for e in events
        if e["what"] == "trigger_fire" and e["token"].startswith(prefix)
    }
    return [(starts[k], ends[k]) for k in starts if k in ends]


def max_overlap(spans: list[tuple[float, float]]) -> int:
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = cur = 0
    for _, d in points:
        cur += d
        best = max(best, cur)
    return best


def scenario_mapped(stack: Stack, mem: dict[str, float]) -> None:
    stack.wait_dag_parsed("probe_mapped_deferrable")
    t0 = time.monotonic()
    run_id = stack.trigger("probe_mapped_deferrable")
    t1 = time.monotonic()
    state = stack.wait_run("probe_mapped_deferrable", run_id, 120, mem)
    t2 = time.monotonic()
    ev = probe_events()
    spans = intervals(ev, "")
    emit(
        "mapped_run",
        state=state,
        cli_trigger_seconds=round(t1 - t0, 1),
        trigger_to_terminal_seconds=round(t2 - t1, 1),
        concurrent_triggers=max_overlap(spans),
        trigger_pids=sorted({e["pid"] for e in ev if e["what"].startswith("trigger")}),
        worker_pids=sorted({e["pid"] for e in ev if e["what"].startswith("execute")}),
        tis=stack.ti_states("probe_mapped_deferrable", run_id),
    )


def scenario_pools(stack: Stack, mem: dict[str, float]) -> None:
    for dag_id in ("probe_probe_pool_deferred", "probe_probe_pool_running"):
        stack.wait_dag_parsed(dag_id)
    for dag_id in ("probe_probe_pool_deferred", "probe_probe_pool_running"):
        run_id = stack.trigger(dag_id)
        t1 = time.monotonic()
        state = stack.wait_run(dag_id, run_id, 120, mem)
        spans = intervals(probe_events(), dag_id.removeprefix("probe_"))
        emit(
            "pool_run",
            dag_id=dag_id,
            state=state,
            seconds=round(time.monotonic() - t1, 1),
            max_concurrent_deferred=max_overlap(spans),
            tis=stack.ti_states(dag_id, run_id),
        )


def scenario_restart(stack: Stack, mem: dict[str, float]) -> None:
    dag_id = "probe_mapped_deferrable"
    stack.wait_dag_parsed(dag_id)
    run_id = stack.trigger(dag_id)
    t0 = time.monotonic()
    while sum(e["what"] == "trigger_run_start" for e in probe_events()) < 3:
        if time.monotonic() - t0 > 60:
            raise TimeoutError("3 triggers never started")
        time.sleep(0.2)
    time.sleep(2)
    old = stack.procs["triggerer"].pid
    sig = signal.Signals["SIG" + os.environ.get("PROBE_KILL_SIGNAL", "KILL")]
    stack.stop("triggerer", sig)
    killed_at = time.time()
    emit("triggerer_stopped", signal=sig.name, pid=old, states=stack.ti_states(dag_id, run_id))
    time.sleep(3)
    stack.start("triggerer")
    restarted_at = time.time()
    state = stack.wait_run(dag_id, run_id, 180, mem)
    ev = probe_events()
    before = {e["pid"] for e in ev if e["what"] == "trigger_run_start" and e["t"] < killed_at}
    again = [e["t"] for e in ev if e["what"] == "trigger_run_start" and e["pid"] not in before]
    emit(
        "restart_run",
        state=state,
        killed_at=killed_at,
        resumed_seconds_after_stop=round(min(again) - killed_at, 1) if again else None,
        resumed_seconds_after_new_triggerer=round(min(again) - restarted_at, 1) if again else None,
        trigger_events=[
            {k: e[k] for k in ("what", "pid", "t", "token", "deadline") if k in e}
            for e in ev
            if e["what"].startswith("trigger")
        ],
        executes=sum(e["what"] == "execute" for e in ev),
        tis=stack.ti_states(dag_id, run_id),
    )


def scenario_killretry(stack: Stack, mem: dict[str, float]) -> None:
    """Attempt 1: SIGKILL the worker (supervisor and task process: a lost machine); attempt 2:
    SIGTERM the supervisor (a graceful worker shutdown). Records what on_kill saw and when
    the scheduler started the retry (task_instance_heartbeat_timeout is 20 s here)."""
    dag_id = "probe_kill_retry"
    stack.wait_dag_parsed(dag_id)
    run_id = stack.trigger(dag_id)
    killed = 0.0
    for attempt, how in ((1, "sigkill_worker"), (2, "sigterm_supervisor")):
        t0 = time.monotonic()
        while True:
            slow = [e for e in probe_events() if e["what"] == "slow_execute"]
            if len(slow) >= attempt:
                break
            if time.monotonic() - t0 > 120:
                raise TimeoutError(
                    f"attempt {attempt} never started: {stack.ti_states(dag_id, run_id)}"
                )
            time.sleep(0.3)
        if attempt == 2:
            emit("retry_started", seconds_after_kill=round(time.monotonic() - killed, 1))
        time.sleep(2)
        task_pid, sup_pid = slow[attempt - 1]["pid"], slow[attempt - 1]["supervisor_pid"]
        if how == "sigkill_worker":
            for pid in (sup_pid, task_pid):
                os.kill(pid, signal.SIGKILL)
        else:
            os.kill(sup_pid, signal.SIGTERM)
        killed = time.monotonic()
        emit("task_killed", attempt=attempt, how=how, task_pid=task_pid, supervisor_pid=sup_pid)
        time.sleep(3)
        emit("after_kill", attempt=attempt, tis=stack.ti_states(dag_id, run_id))
    state = stack.wait_run(dag_id, run_id, 120, mem)
    emit(
        "killretry_run",
        state=state,
        events=[
            e
            for e in probe_events()
            if e["what"] in ("slow_execute", "on_kill", "slow_execute_ends_after_kill")
        ],
        tis=stack.ti_states(dag_id, run_id),
    )


def scenario_connection(stack: Stack, mem: dict[str, float]) -> None:
    """probe_connection on the real stack: a task and a trigger (in the triggerer) read a
    connection of type "amlretrain" given in AIRFLOW_CONN_AMLRETRAIN_PROBE."""
    dag_id = "probe_connection"
    stack.wait_dag_parsed(dag_id)
    run_id = stack.trigger(dag_id)
    state = stack.wait_run(dag_id, run_id, 120, mem)
    emit(
        "connection_run",
        state=state,
        events=[
            e for e in probe_events() if e["what"] in ("connection", "trigger_conn", "xcom_pull")
        ],
        tis=stack.ti_states(dag_id, run_id),
    )


SCENARIOS = {
    "mapped": scenario_mapped,
    "pools": scenario_pools,
    "restart": scenario_restart,
    "killretry": scenario_killretry,
    "connection": scenario_connection,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    args = ap.parse_args()
    pg = Postgres() if args.db == "postgres" else None
    db_url = pg.start() if pg else f"sqlite:///{PROBE_DIR / 'airflow.db'}"
    stack = Stack(db_url)
    mem: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        stack.cli("db", "migrate")
        emit("db_migrate", seconds=round(time.monotonic() - t0, 1), db=args.db)
        if args.scenario == "pools":
            out = stack.cli(
                "pools", "set", "probe_pool_deferred", "2", "counts deferred", "--include-deferred"
            )
            stack.cli("pools", "set", "probe_pool_running", "2", "ignores deferred")
            emit(
                "pools_set",
                stdout=out.stdout.strip()[-400:],
                listing=stack.cli("pools", "list").stdout,
            )
        t1 = time.monotonic()
        for name in Stack.COMPONENTS:
            stack.start(name)
        healthy = stack.wait_healthy()
        stack.sample_memory(mem)
        emit(
            "stack_healthy",
            seconds=round(time.monotonic() - t1, 1),
            health_wait=round(healthy, 1),
            idle_pss_mib=dict(mem),
        )
        SCENARIOS[args.scenario](stack, mem)
        emit("peak_pss_mib", **mem)
        return 0
    except subprocess.CalledProcessError as e:
        emit("cli_failed", cmd=e.cmd[1:], rc=e.returncode, stderr=e.stderr[-3000:])
        return 1
    finally:
        stack.stop_all()
        if pg:
            pg.stop()


if __name__ == "__main__":
    sys.exit(main())
