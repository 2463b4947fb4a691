"""The DAGs of the real-Airflow tests (tests/airflow/): AmlRetrainOperator against the emulator.

Each DAG is unscheduled and takes its retrain.toml and targets from the run's conf
(``airflow dags test DAG -c '{"config": ..., "targets": [...]}'`` or ``airflow dags trigger
--conf``), so one parse serves every test; the fleet is mapped over the targets with
``.expand(target=...)``, as docs/airflow/example_dag.py does.

* ``aml_fleet``: deferrable, no retry (a failed target's task must fail, not be retried).
* ``aml_wait``: one deferrable target, polled every 2 s (a 30 s job waited in the trigger).
* ``aml_kill``: one target waited for in the worker (``deferrable=False``), one retry.
* ``aml_pool``: deferrable, in the pool ``aml_jobs`` (made with ``--include-deferred`` by
  the test), one retry (Airflow 3.3.2's deferral race: tools/airflow/NOTES.md).
* ``aml_bench_deferrable`` / ``aml_bench_blocking``: bench/airflow_deferral.py's pair.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, get_current_context, task

from amlretrain.airflow import AmlRetrainOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")
CONFIG = "{{ dag_run.conf['config'] }}"


@task
def targets() -> list[str]:
    """The targets named by the run's conf."""
    return [str(t) for t in get_current_context()["dag_run"].conf["targets"]]


with DAG("aml_fleet", schedule=None, start_date=START, catchup=False):
    AmlRetrainOperator.partial(
        task_id="retrain", config=CONFIG, deferrable=True, poll_interval=1, retries=0
    ).expand(target=targets())

with DAG("aml_wait", schedule=None, start_date=START, catchup=False):
    AmlRetrainOperator.partial(
        task_id="retrain", config=CONFIG, deferrable=True, poll_interval=2, retries=0
    ).expand(target=targets())

with DAG("aml_kill", schedule=None, start_date=START, catchup=False):
    AmlRetrainOperator.partial(
        task_id="retrain",
        config=CONFIG,
        deferrable=False,
        poll_interval=1,
        retries=1,
        retry_delay=timedelta(seconds=1),
    ).expand(target=targets())

with DAG("aml_pool", schedule=None, start_date=START, catchup=False):
    AmlRetrainOperator.partial(
        task_id="retrain",
        config=CONFIG,
        deferrable=True,
        poll_interval=2,
        pool="aml_jobs",
        retries=1,
        retry_delay=timedelta(seconds=1),
    ).expand(target=targets())

# bench/airflow_deferral.py: the same mapped retrain, waited for in the triggerer or in the
# worker (one retry each: the 3.3.2 deferral race).
for _dag_id, _deferrable in (("aml_bench_deferrable", True), ("aml_bench_blocking", False)):
    with DAG(_dag_id, schedule=None, start_date=START, catchup=False):
        AmlRetrainOperator.partial(
            task_id="retrain",
            config=CONFIG,
            deferrable=_deferrable,
            poll_interval=2,
            retries=1,
            retry_delay=timedelta(seconds=1),
        ).expand(target=targets())
