"""A fleet retrain on the emulator: 100 endpoints, each retrained on its own data file.

``retrain_fleet()`` with 100 groups (one distinct data file and one classic endpoint
each; a local ledger), ``training_concurrency`` jobs at a time, every job made to run
``JOB_SECONDS`` (the emulator's ``job_slow`` fault). The baseline is what the services
need at that concurrency: the sum of the jobs' busy time (each job's run, from its start
to its terminal status, recorded by the probe on the emulator's job thread) divided by
the job concurrency. What the wall time adds to that is the client's overhead: uploads,
submits, polling after a job ended, evaluation reads, deployments not hidden behind
other jobs.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench import Report, Row
from bench._probe import add_endpoints, emulator, intervals_union

NAME = "fleet_retrain"
TITLE = "100 endpoints retrained on 100 data files vs the jobs' busy time"
DATA = Path(__file__).resolve().parents[1] / "amlretrain" / "emulator" / "data"
#: Groups (data files and endpoints) of the full run.
COUNT = 100
#: Training jobs at a time, deployments at a time.
TRAINING_CONCURRENCY = 8
CONCURRENCY = 16
#: How long every job runs (``job_slow``).
JOB_SECONDS = 3.0


def _data_files(folder: Path, count: int) -> list[Path]:
    """``count`` distinct training files: 300 of the 800 seeded rows each, by seed."""
    header, *rows = (DATA / "census_train.csv").read_text().splitlines()
    rows += (DATA / "census_new.csv").read_text().splitlines()[1:]
    paths = []
    for i in range(count):
        chosen = random.Random(i).sample(rows, 300)
        path = folder / f"customer{i}.csv"
        path.write_text("\n".join([header, *chosen]) + "\n")
        paths.append(path)
    return paths


def run(quick: bool, *, count: int | None = None) -> Report:
    """Retrain the fleet once; compare its wall time with the jobs' busy time."""
    from amlretrain.fleet import FleetGroup, retrain_fleet
    from amlretrain.ledger import Ledger
    from amlretrain.storage import BlobStore
    from amlretrain.studio.batch import BatchClient
    from amlretrain.studio.management import ClassicClient
    from amlretrain.studio.targets import ClassicTarget
    from amlretrain.training import Training

    count = count or (4 if quick else COUNT)
    job_seconds = 0.5 if quick else JOB_SECONDS
    report = Report(
        name=NAME, title=f"{count} endpoints retrained on {count} data files vs the jobs' time"
    )
    with emulator(seed=True) as (emu, probe), tempfile.TemporaryDirectory() as folder:
        info = emu.info
        service = info.predictive_service or ""
        classic = ClassicClient(info.workspace_id, info.workspace_token, base_url=info.base_url)
        store = BlobStore.from_connection_string(info.storage_connection_string)
        batch = BatchClient(info.training_endpoint_api_location, info.training_api_key or "")
        names = [f"cust{i}" for i in range(count)]
        add_endpoints(emu, service, names)
        groups = [
            FleetGroup(
                training=Training(batch=batch, data=path, store=store, timeout=600),
                targets=[ClassicTarget(classic, service, name)],
                name=path.name,
            )
            for path, name in zip(_data_files(Path(folder), count), names, strict=True)
        ]
        ledger = Ledger(Path(folder) / "ledger.jsonl")
        emu.faults.add(route="bes.*", kind="job_slow", seconds=job_seconds, count=None)
        try:
            probe.clear()
            started = time.monotonic()
            result = retrain_fleet(
                groups,
                ledger=ledger,
                training_concurrency=TRAINING_CONCURRENCY,
                concurrency=CONCURRENCY,
            )
            wall = time.monotonic() - started
            ended = time.monotonic()
        finally:
            emu.faults.clear()
            classic.close()
            batch.close()
    statuses = Counter(o.status for o in result.targets)
    if statuses != Counter({"succeeded": count}):
        raise RuntimeError(f"the fleet did not succeed everywhere: {statuses}")
    jobs = [(a, b) for a, b in probe.jobs.values() if b is not None]
    if len(jobs) != count:
        raise RuntimeError(f"{len(jobs)} jobs ran, not {count}")
    busy = sum(b - a for a, b in jobs)
    at_once = min(TRAINING_CONCURRENCY, count)
    bound = busy / at_once
    overhead = wall - bound
    report.rows.append(
        Row(
            what=f"retrain_fleet wall time vs the jobs' busy time / {at_once} (jobs at a time)",
            figure=f"{wall:.1f} s",
            baseline=f"{bound:.1f} s",
            ratio=bound / wall,
            ratio_label=" of bound speed",
        )
    )
    report.rows.append(
        Row(
            what="the client's overhead over that bound",
            figure=f"{overhead:.1f} s",
            baseline=f"{bound:.1f} s",
            ratio=overhead / bound,
            ratio_label=" overhead",
        )
    )
    requests = [(s.started, s.ended) for s in probe.served]
    covered = intervals_union([(max(a, started), min(b, ended)) for a, b in jobs + requests])
    report.rows.append(
        Row(
            what="time some service was busy (jobs and requests, overlaps once) vs wall",
            figure=f"{covered:.1f} s",
            baseline=f"{wall:.1f} s",
            ratio=covered / wall,
            ratio_label=" of wall",
        )
    )
    routes = Counter(f"{s.method} {s.route}" for s in probe.served)
    report.notes.append(
        f"{count} groups (one data file of 300 census rows and one classic endpoint each), "
        f"training_concurrency={TRAINING_CONCURRENCY}, concurrency={CONCURRENCY}, every job "
        f"held {job_seconds:g} s by job_slow; jobs' busy time summed: {busy:.1f} s "
        f"(mean {busy / count:.2f} s a job); a local ledger"
    )
    report.notes.append(
        "emulator requests: " + ", ".join(f"{k} x{v}" for k, v in sorted(routes.items()))
    )
    report.data = {"wall": wall, "busy": busy, "bound": bound, "routes": dict(routes)}
    return report
