"""Airflow deferral: N mapped retrains on 30 s jobs with P worker slots, deferrable vs not.

One real Apache Airflow 3.3.2 stack (api-server, scheduler with LocalExecutor at
``parallelism`` P, dag-processor, triggerer; SQLite; from ``.venv-airflow``, made by
``tools/airflow/env.sh``) runs the same DAG shape twice against one emulator: N mapped
``AmlRetrainOperator`` tasks, one classic endpoint each, every batch job made to last 30 s
(the emulator's ``job_slow`` fault). ``aml_bench_deferrable`` waits for the jobs in the
triggerer (``deferrable=True``), ``aml_bench_blocking`` in the worker (``deferrable=False``).
The two runs alternate (blocking first, then deferrable), once each: a run is minutes
(``reps`` in :func:`run` repeats them, medians reported).

Measured from outside Airflow: the wall time from ``airflow dags trigger`` to the run's
``success`` (throughput = N / wall), and, sampled every 0.5 s from Airflow's database and
the emulator's state, the task instances ``running`` (holding a worker slot) and
``deferred`` (holding none), and the jobs the emulator is running. The ratios are printed
side by side, never asserted: they depend on the machine and on N/P.

Not in the benchmark smoke test (tests/integration/test_bench_smoke.py): it needs
``.venv-airflow`` and a real stack (about 20 s to start, then at least two 30 s job
waves), far beyond the smoke test's seconds; ``--quick`` runs it smaller (4 tasks, 10 s
jobs) for a look by hand.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench import Report, Row, median
from bench._probe import emulator

NAME = "airflow_deferral"
TITLE = "Airflow: N mapped retrains on 30 s jobs with P worker slots, deferrable vs not"


def _one_run(stack: Any, emu: Any, folder: Path, dag_id: str, count: int) -> dict[str, Any]:
    """Trigger ``dag_id`` over ``count`` fresh endpoints; its wall time and samples."""
    from tests.airflow.harness import classic_endpoints, fleet_config, running_jobs

    with classic_endpoints(emu, count, prefix="bn") as names:
        config = fleet_config(emu, folder, [(n, None) for n in names])
        samples: list[tuple[float, int, int, int]] = []
        t0 = time.monotonic()
        run_id = stack.trigger(dag_id, {"config": str(config), "targets": names})

        def sample() -> None:
            rows = stack.home.query(
                "select state, count(*) from task_instance where dag_id=:d and run_id=:r"
                " and task_id='retrain' group by state",
                d=dag_id,
                r=run_id,
            )
            counts = {str(s): int(c) for s, c in rows}
            samples.append(
                (
                    time.monotonic() - t0,
                    counts.get("running", 0),
                    counts.get("deferred", 0),
                    running_jobs(emu),
                )
            )

        state = stack.wait_run(dag_id, run_id, 30 * 60, each=sample)
        wall = time.monotonic() - t0
        failed = [k for k, v in stack.home.task_states(dag_id, run_id).items() if v[0] != "success"]
    busy = [s for s in samples if s[3] > 0]  # while at least one job runs
    return {
        "state": state,
        "wall": wall,
        "failed": failed,
        "max_running": max((s[1] for s in samples), default=0),
        "max_deferred": max((s[2] for s in samples), default=0),
        "max_jobs": max((s[3] for s in samples), default=0),
        "slots_while_jobs": (sum(s[1] for s in busy) / len(busy)) if busy else 0.0,
        "jobs_while_jobs": (sum(s[3] for s in busy) / len(busy)) if busy else 0.0,
    }


def run(quick: bool) -> Report:
    """Start the stack once, run the blocking and the deferrable DAG alternately."""
    from amlretrain.cli._emulator_config import emulator_environment
    from tests.airflow.harness import AIRFLOW, AirflowHome, Stack

    count, slots, seconds, reps = (4, 1, 10.0, 1) if quick else (8, 2, 30.0, 1)
    report = Report(name=NAME, title=TITLE)
    if not AIRFLOW.exists():
        report.rows.append(Row(what="not run", figure=f"no {AIRFLOW}: run tools/airflow/env.sh"))
        return report
    results: dict[str, list[dict[str, Any]]] = {
        "aml_bench_blocking": [],
        "aml_bench_deferrable": [],
    }
    with (
        tempfile.TemporaryDirectory(prefix="amlretrain-bench-airflow-") as tmp,
        emulator(seed=True, job_duration=0.5) as (emu, _probe),
    ):
        connection = {"conn_type": "amlretrain", "extra": {"env": emulator_environment(emu.info)}}
        home = AirflowHome(Path(tmp) / "home", AIRFLOW, connection)
        home.cli("db", "migrate", timeout=300)
        stack = Stack(home, parallelism=slots)
        emu.faults.add("bes.submit", "job_slow", seconds=seconds, count=None)
        try:
            for name in Stack.COMPONENTS:
                stack.start(name)
            stack.wait_healthy()
            for dag_id in results:
                stack.wait_parsed(dag_id)
            for rep in range(reps):
                for dag_id in results:
                    folder = Path(tmp) / f"{dag_id}-{rep}"
                    folder.mkdir()
                    results[dag_id].append(_one_run(stack, emu, folder, dag_id, count))
        finally:
            stack.stop_all()
    blocking, deferrable = results["aml_bench_blocking"], results["aml_bench_deferrable"]
    wall_b = median(r["wall"] for r in blocking)
    wall_d = median(r["wall"] for r in deferrable)
    job = f"{seconds:g} s jobs"
    report.rows += [
        Row(
            what=f"wall time, {count} retrains, {job}, {slots} slot(s)",
            figure=f"{wall_d:.1f} s deferrable",
            baseline=f"{wall_b:.1f} s in the worker",
            ratio=wall_b / wall_d,
            ratio_label="x faster",
        ),
        Row(
            what="throughput",
            figure=f"{count / wall_d * 60:.1f} retrains/min",
            baseline=f"{count / wall_b * 60:.1f} retrains/min",
            ratio=wall_b / wall_d,
        ),
        Row(
            what="most jobs running at once (emulator)",
            figure=str(max(r["max_jobs"] for r in deferrable)),
            baseline=str(max(r["max_jobs"] for r in blocking)),
        ),
        Row(
            what="most tasks deferred at once (no slot held)",
            figure=str(max(r["max_deferred"] for r in deferrable)),
            baseline=str(max(r["max_deferred"] for r in blocking)),
        ),
        Row(
            what="worker slots held while jobs run (mean)",
            figure=f"{median(r['slots_while_jobs'] for r in deferrable):.2f} of {slots}",
            baseline=f"{median(r['slots_while_jobs'] for r in blocking):.2f} of {slots}",
        ),
        Row(
            what="jobs running while any runs (mean)",
            figure=f"{median(r['jobs_while_jobs'] for r in deferrable):.2f}",
            baseline=f"{median(r['jobs_while_jobs'] for r in blocking):.2f}",
        ),
    ]
    bad = [(d, r["state"], r["failed"]) for d, rs in results.items() for r in rs if r["failed"]]
    report.notes += [
        f"{reps} run(s) of each, alternating (blocking first); medians. One stack: "
        f"LocalExecutor parallelism {slots}, SQLite, a triggerer; the jobs are the "
        f"emulator's BES jobs made to last {seconds:g} s; the tasks poll every 2 s.",
        "Slots and deferred counts are task instances sampled every 0.5 s from Airflow's "
        "database; jobs from the emulator's state.",
    ]
    if bad:
        report.notes.append(f"runs with failed tasks (not counted out): {bad}")
    report.data = {"count": count, "slots": slots, "seconds": seconds, "results": results}
    return report
