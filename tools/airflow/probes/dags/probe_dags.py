"""The probe DAGs (see tools/airflow/NOTES.md): mapped deferrable tasks, pools, a killable task.

Each DAG is unscheduled (triggered by hand or by ``airflow dags test``). The pool names are
created by the scripts beside this folder; ``PROBE_SECONDS`` sets how long a trigger waits.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task
from probe_lib import DeferringOperator, SlowOperator, record

SECONDS = float(os.environ.get("PROBE_SECONDS", "5"))
START = pendulum.datetime(2026, 1, 1, tz="UTC")

with DAG("probe_mapped_deferrable", schedule=None, start_date=START, catchup=False):

    @task
    def tokens() -> list[str]:
        return ["a", "b", "c"]

    @task
    def collect(results: list[dict[str, object]]) -> int:
        record("collect", results=list(results))
        return len(list(results))

    waited = DeferringOperator.partial(task_id="wait", seconds=SECONDS).expand(token=tokens())
    collect(waited.output)

# probe_pool_deferred is created with --include-deferred, probe_pool_running without.
for pool in ("probe_pool_deferred", "probe_pool_running"):
    with DAG(f"probe_{pool}", schedule=None, start_date=START, catchup=False):
        DeferringOperator.partial(task_id="wait", seconds=SECONDS, pool=pool).expand(
            token=[f"{pool}-{i}" for i in range(3)]
        )

with DAG("probe_kill_retry", schedule=None, start_date=START, catchup=False):
    SlowOperator(task_id="slow", seconds=60, retries=1, retry_delay=timedelta(seconds=1))

with DAG("probe_connection", schedule=None, start_date=START, catchup=False):

    @task
    def read_connection_and_conf() -> dict[str, object]:
        from airflow.sdk import BaseHook, conf, get_current_context

        conn = BaseHook.get_connection("amlretrain_probe")
        ti = get_current_context()["ti"]
        ti.xcom_push(key="small", value={"run_id": "r-1", "outcome": "swapped"})
        facts = {
            "default_deferrable": conf.getboolean("operators", "default_deferrable"),
            "conn_cls": f"{type(conn).__module__}.{type(conn).__name__}",
            "conn_type": conn.conn_type,
            "extra_keys": sorted(conn.extra_dejson),
        }
        record("connection", **facts)
        return facts

    @task
    def pull(facts: dict[str, object]) -> None:
        ti = get_current_context_ti()
        record(
            "xcom_pull",
            small=ti.xcom_pull(task_ids="read_connection_and_conf", key="small"),
            facts=facts,
        )

    pull(read_connection_and_conf()) >> DeferringOperator(
        task_id="trigger_reads_connection", seconds=1, token="conn", conn_id="amlretrain_probe"
    )


def get_current_context_ti() -> object:
    """The running task instance (airflow.sdk.get_current_context()["ti"])."""
    from airflow.sdk import get_current_context

    return get_current_context()["ti"]
