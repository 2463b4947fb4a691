"""Retrain a fleet weekly on Apache Airflow: one mapped task per target of a retrain.toml.

Put this file and its ``retrain.toml`` in the DAGs folder (or set ``AMLRETRAIN_CONFIG``
to the config's absolute path: workers and the triggerer read it there), then once:

    airflow pools set aml_jobs 8 "amlretrain training jobs" --include-deferred
    airflow connections add amlretrain_default --conn-type amlretrain --conn-extra \\
        '{"env": {"AMLRETRAIN_STORAGE_CONNECTION_STRING": "...", "TRAIN_KEY": "..."}}'

* ``.expand(target=...)``: one task instance per target, each its own amlretrain run
  (its run id is keyed by dag_id, task_id, run_id and map_index: a retry resumes it,
  never a second training job or swap). The targets are the config's ``[[targets]]`` by
  index, read from the TOML when the DAG is parsed (no secret is read then).
* ``deferrable=True``: while a training job runs the task waits in the triggerer, not in
  a worker slot. The pool ``aml_jobs`` counts deferred tasks (``--include-deferred``), so
  at most 8 training jobs run at once, whatever the number of workers.
* ``retries=1``: a worker lost mid-wait (or Airflow 3.3.2's deferral race, see
  docs/airflow.md) gets a second attempt, which re-attaches to the same job.
* ``report`` runs after every target (``trigger_rule="all_done"``) and reads each
  task's XCom: a failed target's task pushes its outcome before it fails.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from amlretrain.airflow import AmlRetrainOperator
from amlretrain.config import read_document

CONFIG = os.environ.get("AMLRETRAIN_CONFIG", str(Path(__file__).with_name("retrain.toml")))
#: The config's targets by index ("0", "1", ...): find_target also takes a label or key.
TARGETS = [str(i) for i, _ in enumerate(read_document(CONFIG)["targets"])]

with DAG(
    "amlretrain_fleet",
    schedule="@weekly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["amlretrain"],
) as dag:
    retrain = AmlRetrainOperator.partial(
        task_id="retrain",
        config=CONFIG,
        conn_id="amlretrain_default",
        deferrable=True,
        poll_interval=30,
        timeout=6 * 3600,
        pool="aml_jobs",
    ).expand(target=TARGETS)

    @task(trigger_rule="all_done")
    def report(outcomes: list[dict[str, Any] | None]) -> dict[str, int]:
        """Count the targets per status (a task that failed before its run: ``missing``)."""
        counts: dict[str, int] = {}
        for outcome in outcomes:
            for target in (outcome or {}).get("targets", []) or [{"status": "missing"}]:
                counts[target["status"]] = counts.get(target["status"], 0) + 1
        return counts

    report(retrain.output)
