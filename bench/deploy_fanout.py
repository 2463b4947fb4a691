"""Deploying one model to 1,000 classic endpoints, the emulator adding 100 ms per request.

``amlretrain.workflow.deploy(..., concurrency=16)`` with a local ledger (a file lock per
target as its lease, an intent and an outcome per target) against two baselines
measured in the same run, interleaved:

* the protocol lower bound: the fewest emulator requests per target a verified swap
  needs (GET the endpoint: its resource and the model it serves; PATCH; GET it again to
  see the new model) x latency x targets / concurrency, plus the one shared read of the
  web service (its default endpoint's name);
* a sequential loop like the documented PowerShell one (per endpoint: GET the web
  service, GET the endpoint, PATCH, one after the other: what
  ``Patch-AmlWebServiceEndpoint`` does). At 1,000 endpoints it would take 300 s a run,
  so it is timed over its first ``LOOP_COUNT`` endpoints and scaled (it is sequential:
  its time per endpoint does not depend on the count; the scaled figure is labelled).

amlretrain runs in a client process of its own (``python -m bench._deploy_client``), as
a user's does: the emulator, in this process, would otherwise compete with it for one
interpreter lock on a 2-core machine, which no deployment to Azure has to share.
The requests per target are counted from the emulator's log (probe on its dispatch);
the lease and ledger cost no emulator request (a local ledger) and Azurite's (the model
blob HEADs) are counted apart at the HTTP adapter.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import Report, Row, median
from bench._probe import add_endpoints, emulator

NAME = "deploy_fanout"
TITLE = "one model to 1,000 classic endpoints, 100 ms per request"
LATENCY = 0.1
CONCURRENCY = 16
#: Endpoints of the full run; ``run(count=...)`` takes another.
COUNT = 1000
#: Endpoints the sequential loop is timed over (scaled to the count), full run.
LOOP_COUNT = 100
#: The fewest emulator requests per target of a verified swap (GET, PATCH, GET).
MINIMUM_PER_TARGET = 3


def _sequential_loop(info: Any, names: list[str], model: Any) -> float:
    """The PowerShell-style loop: GET service, GET endpoint, PATCH, per endpoint."""
    import requests

    base = f"{info.management_url}/workspaces/{info.workspace_id}/webservices/"
    base += info.predictive_service
    headers = {"Authorization": f"Bearer {info.workspace_token}"}
    started = time.monotonic()
    with requests.Session() as http:
        http.trust_env = False
        for name in names:
            http.get(base, headers=headers, timeout=30).raise_for_status()
            endpoint = http.get(f"{base}/endpoints/{name}", headers=headers, timeout=30)
            endpoint.raise_for_status()
            resource = endpoint.json()["Resources"][0]["Name"]
            body = {"Resources": [{"Name": resource, "Location": model.to_bes()}]}
            http.patch(
                f"{base}/endpoints/{name}", json=body, headers=headers, timeout=30
            ).raise_for_status()
    return time.monotonic() - started


def run(quick: bool, *, count: int | None = None, reps: int | None = None) -> Report:
    """Deploy with amlretrain and with the sequential loop, interleaved; compare.

    Args:
        quick: 10 endpoints, one repetition.
        count: endpoints (default 10 quick, :data:`COUNT` full).
        reps: repetitions (default 1 quick, 2 full).
    """
    from amlretrain.storage import BlobStore
    from bench.fleet_memory import _client

    count = count or (10 if quick else COUNT)
    reps = reps or (1 if quick else 2)
    loop_count = min(count, 10 if quick else LOOP_COUNT)
    report = Report(
        name=NAME, title=f"one model to {count:,} classic endpoints, 100 ms per request"
    )
    ours: list[float] = []
    checks: list[float] = []
    cpu: list[float] = []
    warm: list[float] = []
    served_times: list[float] = []
    seq: list[float] = []
    per_target: list[float] = []
    check_per_target: list[float] = []
    routes: Counter[str] = Counter()
    storage: Counter[str] = Counter()
    connections: list[int] = []
    folder = tempfile.TemporaryDirectory(prefix="bench-fanout-")

    with emulator(seed=True) as (emu, probe), folder:
        info = emu.info
        store = BlobStore.from_connection_string(info.storage_connection_string)
        names = [f"fan{i}" for i in range(count)]
        add_endpoints(emu, info.predictive_service, names)
        data = store.download_bytes(store.ref("models", "initial.ilearner"))
        models = [
            store.sas(
                store.upload(data, container="models", blob_name=f"fan/{i}.ilearner"),
                expires_in=timedelta(days=1),
            )
            for i in range(2 * reps)
        ]
        emu.faults.add(route="classic.*", kind="latency", seconds=LATENCY, count=None)
        try:
            for rep in range(reps):
                probe.clear()
                # The client in a process of its own, as a user's: the emulator (this
                # process) does not compete with it for one interpreter's lock.
                figures = _client(
                    {
                        "info": info.to_dict(include_secrets=True),
                        "model": models[2 * rep].sas_url,
                        "prefix": "fan",
                        "count": count,
                        "concurrency": CONCURRENCY,
                        "ledger": str(Path(folder.name) / "ledger.jsonl"),
                        "poll": 0.1,
                    }
                )
                if figures["statuses"] != {"succeeded": count}:
                    raise RuntimeError(
                        f"deploy did not succeed everywhere: {figures['statuses']} "
                        f"{figures['errors']}"
                    )
                ours.append(figures["seconds"])
                checks.append(figures["steps"]["check targets"])
                cpu.append(figures["cpu_seconds"])
                warm.append(figures["warm_up_seconds"])
                served = [s for s in probe.served if s.route.startswith("classic.")]
                per_target.append(
                    sum(1 for s in served if s.route != "classic.get_service") / count
                )
                first = min(s.started for s in served)
                check_end = first + checks[-1]
                check_per_target.append(
                    sum(
                        1
                        for s in served
                        if s.started < check_end and s.route != "classic.get_service"
                    )
                    / count
                )
                served_times.extend(s.seconds for s in served)
                routes = Counter(f"{s.method} {s.route}" for s in served)
                storage = Counter(figures["storage"])
                connections.append(probe.connections)
                seq.append(_sequential_loop(info, names[:loop_count], models[2 * rep + 1]))
        finally:
            emu.faults.clear()
    made = median(per_target)
    shared = LATENCY  # the one read of the web service, before the fan-out
    bound = MINIMUM_PER_TARGET * LATENCY * count / CONCURRENCY + shared
    bound_made = made * LATENCY * count / CONCURRENCY + shared
    t_ours, t_check = median(ours), median(checks)
    t_seq = median(seq) * count / loop_count
    scaled = "" if loop_count == count else f", timed over {loop_count} and scaled"
    report.rows.append(
        Row(
            what=f"deploy(concurrency={CONCURRENCY}) vs the protocol lower bound "
            f"({MINIMUM_PER_TARGET} req/target + 1 shared)",
            figure=f"{t_ours:.2f} s",
            baseline=f"{bound:.2f} s",
            ratio=bound / t_ours,
            ratio_label=" of bound speed",
            target=">= 0.9 of bound speed",
            passed=bound / t_ours >= 0.9,
        )
    )
    report.rows.append(
        Row(
            what=f"deploy vs sequential GET/GET/PATCH loop{scaled}",
            figure=f"{t_ours:.2f} s",
            baseline=f"{t_seq:.2f} s",
            ratio=t_seq / t_ours,
            ratio_label="x faster",
            target=">= 12x faster",
            passed=t_seq / t_ours >= 12,
        )
    )
    report.rows.append(
        Row(
            what=f"emulator requests per target (the bound counts {MINIMUM_PER_TARGET})",
            figure=f"{made:g}",
            baseline=str(MINIMUM_PER_TARGET),
            ratio=made / MINIMUM_PER_TARGET,
        )
    )
    report.rows.append(
        Row(
            what=f"deploy vs the bound of the requests it made ({made:g} req/target + 1 shared)",
            figure=f"{t_ours:.2f} s",
            baseline=f"{bound_made:.2f} s",
            ratio=bound_made / t_ours,
            ratio_label=" of bound speed",
        )
    )
    service = median(served_times) if served_times else LATENCY
    bound_service = made * service * count / CONCURRENCY + service
    report.rows.append(
        Row(
            what="the emulator's own time per request, median (the fault's 100 ms included)",
            figure=f"{service * 1000:.1f} ms",
            baseline=f"{LATENCY * 1000:.0f} ms",
            ratio=service / LATENCY,
        )
    )
    report.rows.append(
        Row(
            what="deploy vs the bound at the emulator's own time per request",
            figure=f"{t_ours:.2f} s",
            baseline=f"{bound_service:.2f} s",
            ratio=bound_service / t_ours,
            ratio_label=" of bound speed",
        )
    )
    report.rows.append(
        Row(
            what=f"of which the 'check targets' step ({median(check_per_target):g} req/target)",
            figure=f"{t_check:.2f} s",
            baseline=f"{t_ours:.2f} s",
            ratio=t_check / t_ours,
            ratio_label=" of total",
        )
    )
    report.notes.append(
        f"medians of {reps} interleaved runs; amlretrain runs {', '.join(f'{t:.1f}' for t in ours)}"
        f" s; loop runs over {loop_count} endpoints {', '.join(f'{t:.1f}' for t in seq)} s"
        + (f" (x {count / loop_count:g} for {count:,})" if loop_count != count else "")
    )
    report.notes.append(
        "emulator requests per deploy: "
        + ", ".join(f"{k} x{v}" for k, v in sorted(routes.items()))
        + f"; TCP connections opened per run: {', '.join(str(c) for c in connections)}"
    )
    report.notes.append(
        "amlretrain runs in a client process of its own (python -m bench._deploy_client), "
        "the emulator in this one, as a user's process and the services are; its CPU in "
        f"the deploy: {', '.join(f'{c:.1f}' for c in cpu)} s (of {median(ours):.1f} s wall); "
        "its storage client was made (azure-storage-blob imported) before the clock started, "
        f"a once-a-process cost: {', '.join(f'{w:.2f}' for w in warm)} s; "
        "the sequential loop runs in this process"
    )
    report.notes.append(
        "lease and ledger: a local ledger (a file lock per target, an intent and an outcome "
        "line per target): no emulator request; Azurite (no latency fault): "
        + (", ".join(f"{k} x{v}" for k, v in sorted(storage.items())) or "none")
    )
    report.notes.append(
        "the emulator is a ThreadingHTTPServer (one thread per connection) and the latency "
        "fault sleeps in that thread, so concurrent requests overlap; endpoints are added "
        "to the emulator's state directly (bench._probe.add_endpoints)"
    )
    report.data = {
        "ours": ours,
        "seq": seq,
        "checks": checks,
        "cpu": cpu,
        "routes": dict(routes),
        "per_target": made,
        "count": count,
    }
    return report
