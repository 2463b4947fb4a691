"""The retrain loop end to end on the emulator vs the services' own time; request counts.

One ``retrain()`` to two targets (the New/ARM web service and the classic endpoint),
with a scoring sample, wired like tests/integration/test_workflow.py. Wall time is
compared with the time some service was busy for us: the union of the emulator's
request handling (probe on ``Server.dispatch``), the batch job's run, the ARM
operations' lifetimes and the Azurite calls (timed at the HTTP adapter, so they
include the HTTP client: this flatters the SDK a little). The rest is SDK overhead:
poll sleeps that outlast the service's work, and client CPU/HTTP time.

Also counts the HTTP requests of one retrain, step by step and by route.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import Report, Row, median
from bench._probe import emulator, intervals_union

NAME = "loop_overhead"
TITLE = "retrain loop end to end vs the services' own time"
DATA = Path(__file__).resolve().parents[1] / "amlretrain" / "emulator" / "data"

#: The fewest requests one retrain (ARM + classic target, scoring sample) needs, by step.
MINIMUM = {
    "check targets": (
        3,
        "ARM GET service (read-only flag, trained model); classic GET service (default "
        "endpoint name) and GET endpoint (resource name, current model); the current "
        "models come from those same answers",
    ),
    "upload": (1, "one Put Blob (the container is created once, not per run)"),
    "train": (
        3,
        "submit, start, and one status read after the job ended (more only because the "
        "end time is unknown: polling)",
    ),
    "evaluate": (1, "one GET of the evaluation CSV; the results came with the final status"),
    "deploy": (
        10,
        "ARM: GET (concurrency re-check), PATCH, >=1 operation poll, GET (verify; azure-core's "
        "final GET already is one), listKeys, score = 5+; classic: HEAD model blob, PATCH, GET "
        "endpoint (verify; it also carries ApiLocation and key), score = 4+; the default-"
        "endpoint check and resource name are known from 'check targets'",
    ),
}


class _HttpProbe:
    """Times every HTTP exchange of this process at requests' adapter (all clients)."""

    def __init__(self) -> None:
        # method, netloc, path, t0, t1, made by a client thread (not the emulator's)
        self.calls: list[tuple[str, str, str, float, float, bool]] = []
        self.sleeps: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    @contextmanager
    def installed(self) -> Iterator[_HttpProbe]:
        import requests.adapters

        send = requests.adapters.HTTPAdapter.send
        sleep = time.sleep
        probe = self

        def timed_send(adapter: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return send(adapter, request, *args, **kwargs)
            finally:
                parts = urllib.parse.urlsplit(request.url)
                query = dict(urllib.parse.parse_qsl(parts.query))
                path = parts.path + (f"?comp={query['comp']}" if "comp" in query else "")
                name = threading.current_thread().name
                # the loop's own threads: the main one, its pools (deploy) and "train_N"
                client = name == "MainThread" or name.startswith(("ThreadPoolExecutor", "train"))
                with probe._lock:
                    probe.calls.append(
                        (request.method, parts.netloc, path, started, time.monotonic(), client)
                    )

        def timed_sleep(seconds: float) -> None:
            started = time.monotonic()
            sleep(seconds)
            if threading.current_thread().name.startswith("amlretrain-emulator"):
                return
            with probe._lock:
                probe.sleeps.append((started, time.monotonic()))

        requests.adapters.HTTPAdapter.send = timed_send  # type: ignore[method-assign,assignment]
        time.sleep = timed_sleep  # type: ignore[assignment]
        try:
            yield self
        finally:
            requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign]
            time.sleep = sleep


def _azurite_route(method: str, path: str) -> str:
    if "?comp=" in path:
        return f"{method} blob ?comp={path.split('?comp=')[1]}"
    parts = [p for p in path.split("/") if p]
    return f"{method} {'container' if len(parts) <= 2 else 'blob'}"


def run(quick: bool) -> Report:
    """Run retrain() a few times; split its wall time; count its requests by step."""
    from amlretrain.polling import PollPolicy
    from amlretrain.storage import BlobStore
    from amlretrain.studio.batch import BatchClient
    from amlretrain.studio.management import ClassicClient
    from amlretrain.studio.targets import ArmTarget, ClassicTarget
    from amlretrain.studio.webservices import WebServicesClient
    from amlretrain.targets import Sample, Target
    from amlretrain.training import Training
    from amlretrain.workflow import retrain

    reps = 1 if quick else 5
    report = Report(name=NAME, title=TITLE)
    rows = json.loads((DATA / "score_rows.json").read_text())
    sample = Sample(columns=rows["ColumnNames"], rows=rows["Values"])
    walls: list[float] = []
    busies: list[float] = []
    idle_sleeps: list[float] = []
    by_step: dict[str, Counter[str]] = {}
    with emulator(seed=True) as (emu, probe), _HttpProbe().installed() as http:
        info = emu.info
        azurite = urllib.parse.urlsplit(info.blob_endpoint).netloc
        arm = WebServicesClient(
            emu.credential(), info.subscription_id, base_url=info.arm_base_url,
            polling_interval=0.2,
        )  # fmt: skip
        classic = ClassicClient(info.workspace_id, info.workspace_token, base_url=info.base_url)
        classic.poll = PollPolicy.fixed(0.2)
        store = BlobStore.from_connection_string(info.storage_connection_string)
        batch = BatchClient(info.training_endpoint_api_location, info.training_api_key or "")
        data = ["census_new.csv", "census_train.csv"]
        try:
            for rep in range(reps + 1):  # the first run warms imports and connections
                service, endpoint = info.predictive_service or "", info.predictive_endpoint or ""
                targets: list[Target] = [
                    ArmTarget(arm, info.resource_group, info.arm_service_name or ""),
                    ClassicTarget(classic, service, endpoint),
                ]
                source = DATA / data[rep % 2]
                training = Training(batch=batch, data=source, store=store, timeout=300)
                marks: list[tuple[str, float]] = []

                def mark(name: str, marks: list[tuple[str, float]] = marks) -> None:
                    marks.append((name, time.monotonic()))

                probe.clear()
                http.calls.clear()
                http.sleeps.clear()
                ops_before = set(emu.state.operations) if emu.state else set()
                started = time.monotonic()
                result = retrain(
                    training,
                    targets,
                    sample=sample,
                    on_step=mark,
                )
                ended = time.monotonic()
                result.raise_for_status()
                if rep == 0:
                    continue
                busy: list[tuple[float, float]] = [(s.started, s.ended) for s in probe.served]
                busy += [(a, b) for a, b in probe.jobs.values() if b is not None]
                state = emu.state
                assert state is not None
                busy += [
                    (op.started, op.due)
                    for key, op in state.operations.items()
                    if key not in ops_before
                ]
                busy += [(c[3], c[4]) for c in http.calls if c[1] == azurite]
                busy = [(max(a, started), min(b, ended)) for a, b in busy if b > started]
                wall = ended - started
                covered = intervals_union(busy)
                walls.append(wall)
                busies.append(covered)
                idle_sleeps.append(intervals_union(busy + http.sleeps) - covered)
                if rep == reps:
                    by_step = _count_by_step(marks, ended, probe, http.calls, azurite)
                    deploy_at = dict(marks).get("deploy", ended)
                    ordered = sorted(probe.served, key=lambda s: s.started)
                    report.data["deploy_sequence"] = [
                        f"{s.method} {s.route}" for s in ordered if s.started >= deploy_at
                    ]
        finally:
            arm.close()
            classic.close()
            batch.close()
    wall, busy_t, idle = median(walls), median(busies), median(idle_sleeps)
    overhead = wall - busy_t
    report.rows.append(
        Row(
            what="retrain() wall time vs services busy for it",
            figure=f"{wall:.2f} s",
            baseline=f"{busy_t:.2f} s",
            ratio=overhead / busy_t,
            ratio_label=" overhead",
            target="< 0.1 overhead",
            passed=overhead / busy_t < 0.1,
        )
    )
    report.rows.append(
        Row(
            what="of the overhead: poll sleeps after the service was done",
            figure=f"{idle:.2f} s",
            baseline=f"{overhead:.2f} s",
            ratio=idle / overhead if overhead > 0 else None,
            ratio_label=" of overhead",
        )
    )
    report.rows.append(
        Row(
            what="of the overhead: client CPU and HTTP",
            figure=f"{overhead - idle:.2f} s",
            baseline=f"{overhead:.2f} s",
            ratio=(overhead - idle) / overhead if overhead > 0 else None,
            ratio_label=" of overhead",
        )
    )
    report.rows.append(
        Row(
            what="overhead without the poll sleeps (client CPU and HTTP only)",
            figure=f"{overhead - idle:.2f} s",
            baseline=f"{busy_t:.2f} s",
            ratio=(overhead - idle) / busy_t,
            ratio_label=" overhead",
            target="< 0.1 overhead",
        )
    )
    total = 0
    for step, counts in by_step.items():
        n = sum(counts.values())
        total += n
        minimum, why = MINIMUM.get(step, (0, ""))
        report.rows.append(
            Row(
                what=f"requests in step '{step}'",
                figure=str(n),
                baseline=f"{minimum} (minimum)",
                ratio=n / minimum if minimum else None,
            )
        )
        report.notes.append(
            f"step '{step}': "
            + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()))
            + (f". Minimum {minimum}: {why}" if why else "")
        )
    report.rows.append(
        Row(
            what="requests in one retrain",
            figure=str(total),
            baseline=f"{sum(m for m, _ in MINIMUM.values())} (minimum)",
            ratio=total / sum(m for m, _ in MINIMUM.values()),
        )
    )
    report.notes.insert(
        0,
        f"medians of {reps} runs after a warm-up run; walls "
        + ", ".join(f"{w:.2f}" for w in walls)
        + " s; clients polling every 0.2 s (ARM) and the default PollPolicy (BES)",
    )
    return report


def _count_by_step(
    marks: list[tuple[str, float]],
    ended: float,
    probe: Any,
    calls: list[tuple[str, str, str, float, float, bool]],
    azurite: str,
) -> dict[str, Counter[str]]:
    """Requests by step (from the on_step marks) and route (emulator) or kind (Azurite)."""
    windows = [
        (name, start, marks[i + 1][1] if i + 1 < len(marks) else ended)
        for i, (name, start) in enumerate(marks)
    ]
    out: dict[str, Counter[str]] = {name: Counter() for name, _s, _e in windows}

    def step_of(moment: float) -> str | None:
        for name, start, end in windows:
            if start <= moment <= end:
                return name
        return None

    for served in probe.served:
        step = step_of(served.started)
        if step is not None:
            out[step][f"{served.method} {served.route}"] += 1
    for method, host, path, t0, _t1, client in calls:
        step = step_of(t0)
        if step is not None and host == azurite and client:
            out[step][f"azurite {_azurite_route(method, path)}"] += 1
    return out
