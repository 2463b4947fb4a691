"""Time from a batch job finishing to ``TrainingJob.wait()`` returning, vs a 1 s loop.

Jobs of 2 s, 10 s and 60 s (the emulator's ``job_slow`` fault) run side by side: for
each duration one job is awaited by :meth:`TrainingJob.wait` (default poll policy) and
one by a fixed 1 s polling loop (the portal's sample), all concurrently so the 60 s
jobs set the wall time. The moment a job finishes is read on the emulator side (the
probe wraps the job's end); status requests are counted from the request log.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from bench import Report, Row, median
from bench._probe import emulator

NAME = "job_wait"
TITLE = "detection latency of a finished batch job"
DURATIONS = (2.0, 10.0, 60.0)


def _fixed_loop(url: str, key: str) -> None:
    """The portal's sample: GET the status every second until it is terminal."""
    import requests

    with requests.Session() as http:
        http.trust_env = False
        while True:
            status = http.get(
                url, params={"api-version": "2.0"}, headers={"Authorization": f"Bearer {key}"}
            ).json()["StatusCode"]
            if status in ("Finished", "Failed", "Cancelled", 2, 3, 4):
                return
            time.sleep(1.0)


def run(quick: bool) -> Report:
    """Start every job, wait for each with its method in its own thread, compare."""
    from amlretrain.storage import BlobStore
    from amlretrain.studio.batch import BatchClient, TrainingJob

    durations = (2.0,) if quick else DURATIONS
    reps = 1 if quick else 3
    report = Report(name=NAME, title=TITLE)
    returned: dict[str, float] = {}
    errors: list[BaseException] = []
    plan: list[tuple[float, str, str]] = []  # (duration, method, job id)
    with emulator(seed=True, job_duration=0.5) as (emu, probe):
        info = emu.info
        store = BlobStore.from_connection_string(info.storage_connection_string)
        batch = BatchClient(info.training_endpoint_api_location, info.training_api_key or "")
        data = store.sas(store.ref("datasets", "census_train.csv"), expires_in=timedelta(days=1))
        threads: list[threading.Thread] = []

        def waiter(method: str, job: TrainingJob) -> None:
            try:
                if method == "amlretrain":
                    job.wait(timeout=600)
                else:
                    _fixed_loop(batch._jobs_url(job.job_id), info.training_api_key or "")
                returned[job.job_id] = time.monotonic()
            except BaseException as err:  # reported after the join
                errors.append(err)

        for _rep in range(reps):
            for duration in durations:
                for method in ("amlretrain", "fixed 1 s loop"):
                    job = batch.submit(
                        {"input1": data},
                        outputs={"output1": "benchout/m.ilearner", "output2": "benchout/e.csv"},
                        store=store,
                    )
                    emu.faults.add(route="bes.*", kind="job_slow", seconds=duration, count=1)
                    job.start()
                    plan.append((duration, method, job.job_id))
                    thread = threading.Thread(target=waiter, args=(method, job))
                    thread.start()
                    threads.append(thread)
            time.sleep(0.3)  # stagger the repetitions' finishing moments
        for thread in threads:
            thread.join()
        batch.close()
        if errors:
            raise errors[0]
        served = list(probe.served)
        ended = {job_id: end for job_id, (_start, end) in probe.jobs.items() if end is not None}
    for duration in durations:
        allowed = max(1.0, 0.1 * duration)
        figures: dict[str, tuple[float, float]] = {}
        for method in ("amlretrain", "fixed 1 s loop"):
            ids = [j for d, m, j in plan if d == duration and m == method]
            latency = median(returned[j] - ended[j] for j in ids)
            polls = median(
                sum(1 for s in served if s.route == "bes.status" and s.path.endswith(j))
                for j in ids
            )
            figures[method] = (latency, polls)
        (ours_lat, ours_polls), (loop_lat, loop_polls) = figures.values()
        report.rows.append(
            Row(
                what=f"{duration:g} s job: finish -> wait() returns",
                figure=f"{ours_lat:.2f} s",
                baseline=f"{loop_lat:.2f} s",
                ratio=ours_lat / loop_lat if loop_lat else None,
                target=f"<= {allowed:g} s",
                passed=ours_lat <= allowed,
            )
        )
        report.rows.append(
            Row(
                what=f"{duration:g} s job: status requests",
                figure=f"{ours_polls:g}",
                baseline=f"{loop_polls:g}",
                ratio=ours_polls / loop_polls if loop_polls else None,
                target="fewer than the loop" if duration > 10 else "-",
                passed=(ours_polls < loop_polls) if duration > 10 else None,
            )
        )
    report.notes.append(
        f"medians of {reps} job(s) per duration and method, all running concurrently; "
        "the finish moment is when the emulator's job thread set the terminal status"
    )
    from amlretrain.polling import PollPolicy

    report.notes.append(f"amlretrain polls with the default {PollPolicy()!r}")
    report.data = {"plan": plan, "returned": returned, "ended": ended}
    return report
