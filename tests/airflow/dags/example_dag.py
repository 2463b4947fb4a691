"""docs/airflow/example_dag.py, run by the tests: its text executed here, so Airflow sees
this file (inside the DAGs folder) as its location, only when ``AMLRETRAIN_CONFIG`` names
a retrain.toml, as the example asks; elsewhere (the other tests' parses) it defines no DAG.

Two changes for the test's clock: the retry delay is 1 s, not the example's minute (the
bad target's task is retried once, as documented, and must fail again without a job),
and the jobs are polled every second, not every 30 s (`dags test` runs the 20 tasks and
their triggers one after the other).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "airflow" / "example_dag.py"

if os.environ.get("AMLRETRAIN_CONFIG"):
    exec(compile(EXAMPLE.read_text(), __file__, "exec"))  # defines the airflow DAG `dag`
    for _task in globals()["dag"].tasks:
        if hasattr(_task, "partial_kwargs"):  # the mapped AmlRetrainOperator
            _task.partial_kwargs["retry_delay"] = timedelta(seconds=1)
            _task.partial_kwargs["poll_interval"] = 1.0
        else:
            _task.retry_delay = timedelta(seconds=1)
