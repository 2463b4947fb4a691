"""Deploying one model to 100 classic endpoints, the emulator adding 100 ms per request.

``amlretrain.workflow.deploy(..., concurrency=16)`` against two baselines measured in
the same run, interleaved: the lower bound (requests per target, counted from the
emulator's log, x latency x targets / concurrency) and a sequential loop like the
documented PowerShell one (per endpoint: GET the web service, GET the endpoint, PATCH,
one after the other: what ``Patch-AmlWebServiceEndpoint`` does).
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from typing import Any

from bench import Report, Row, median
from bench._probe import emulator

NAME = "deploy_fanout"
TITLE = "one model to 100 classic endpoints, 100 ms per request"
LATENCY = 0.1
CONCURRENCY = 16


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


def run(quick: bool) -> Report:
    """Deploy with amlretrain and with the sequential loop, interleaved; compare."""
    from amlretrain.polling import PollPolicy
    from amlretrain.storage import BlobStore
    from amlretrain.studio.management import ClassicClient
    from amlretrain.studio.targets import ClassicTarget
    from amlretrain.workflow import deploy

    count = 10 if quick else 100
    reps = 1 if quick else 3
    report = Report(name=NAME, title=f"one model to {count} classic endpoints, 100 ms/request")
    ours: list[float] = []
    checks: list[float] = []
    seq: list[float] = []
    per_target: list[float] = []
    in_check: list[float] = []
    routes: Counter[str] = Counter()
    connections: list[int] = []
    with emulator(seed=True) as (emu, probe):
        info = emu.info
        classic = ClassicClient(info.workspace_id, info.workspace_token, base_url=info.base_url)
        classic.poll = PollPolicy.fixed(0.1)
        store = BlobStore.from_connection_string(info.storage_connection_string)
        names = [f"fan{i}" for i in range(count)]
        for name in names:
            classic.create_endpoint(info.predictive_service, name)
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
                targets = [ClassicTarget(classic, info.predictive_service, n) for n in names]
                probe.clear()
                started = time.monotonic()
                result = deploy(models[2 * rep], targets, concurrency=CONCURRENCY, store=store)
                ours.append(time.monotonic() - started)
                statuses = Counter(o.status for o in result.targets)
                if statuses != Counter({"succeeded": count}):
                    raise RuntimeError(f"deploy did not succeed everywhere: {statuses}")
                checks.append(next(s.seconds for s in result.steps if s.name == "check targets"))
                served = [s for s in probe.served if s.route.startswith("classic.")]
                per_target.append(len(served) / count)
                in_check.append(sum(1 for x in served if x.started < started + checks[-1]) / count)
                routes = Counter(f"{s.method} {s.route}" for s in served)
                connections.append(probe.connections)
                seq.append(_sequential_loop(info, names, models[2 * rep + 1]))
        finally:
            emu.faults.clear()
            classic.close()
    requests_per_target = median(per_target)
    bound = requests_per_target * LATENCY * count / CONCURRENCY
    t_ours, t_seq, t_check = median(ours), median(seq), median(checks)
    report.rows.append(
        Row(
            what=f"deploy(concurrency={CONCURRENCY}) vs lower bound "
            f"({requests_per_target:g} req/target)",
            figure=f"{t_ours:.2f} s",
            baseline=f"{bound:.2f} s",
            ratio=bound / t_ours,
            ratio_label=" of bound speed",
            target=">= 0.8 of bound speed",
            passed=bound / t_ours >= 0.8,
        )
    )
    report.rows.append(
        Row(
            what="deploy vs sequential GET/GET/PATCH loop",
            figure=f"{t_ours:.2f} s",
            baseline=f"{t_seq:.2f} s",
            ratio=t_seq / t_ours,
            ratio_label="x faster",
            target=">= 12x faster",
            passed=t_seq / t_ours >= 12,
        )
    )
    minimum = 3 * LATENCY * count / CONCURRENCY + LATENCY
    report.rows.append(
        Row(
            what="protocol-minimum bound (1 shared GET service; GET, PATCH, GET per target)",
            figure=f"{t_ours:.2f} s",
            baseline=f"{minimum:.2f} s",
            ratio=minimum / t_ours,
            ratio_label=" of bound speed",
        )
    )
    parallel_bound = (requests_per_target - median(in_check)) * LATENCY * count / CONCURRENCY
    report.rows.append(
        Row(
            what="the concurrent part alone (after 'check targets') vs its bound",
            figure=f"{t_ours - t_check:.2f} s",
            baseline=f"{parallel_bound:.2f} s",
            ratio=parallel_bound / max(t_ours - t_check, 1e-9),
            ratio_label=" of bound speed",
        )
    )
    report.rows.append(
        Row(
            what="of which the 'check targets' step (sequential)",
            figure=f"{t_check:.2f} s",
            baseline=f"{t_ours:.2f} s",
            ratio=t_check / t_ours,
            ratio_label=" of total",
        )
    )
    report.notes.append(
        f"medians of {reps} interleaved runs; amlretrain runs {', '.join(f'{t:.1f}' for t in ours)}"
        f" s; loop runs {', '.join(f'{t:.1f}' for t in seq)} s"
    )
    report.notes.append(
        "emulator requests per deploy: "
        + ", ".join(f"{k} x{v}" for k, v in sorted(routes.items()))
        + f"; TCP connections opened: {connections[-1]}"
    )
    report.notes.append(
        "the emulator is a ThreadingHTTPServer (one thread per connection) and the latency "
        "fault sleeps in that thread, so concurrent requests overlap"
    )
    report.data = {"ours": ours, "seq": seq, "checks": checks, "routes": dict(routes)}
    return report
