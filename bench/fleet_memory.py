"""Peak memory of the client deploying one model to 1,000 and to 10,000 classic endpoints.

The emulator (and Azurite) run in this process and in Azurite's; each deployment runs
in a fresh client process (``python -m bench._deploy_client``: ``workflow.deploy`` with
a local ledger, ``concurrency=16``), whose peak RSS (``VmHWM``) it reports itself,
so only the client is measured. The two sizes run in the same benchmark run, one after
the other; the growth per target is the difference of the peaks over the difference of
the counts (what a process with no targets costs cancels out). No latency fault: the
emulator answers as fast as it can.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import Report, Row
from bench._probe import add_endpoints, emulator

NAME = "fleet_memory"
TITLE = "peak RSS of the client deploying to 1,000 and 10,000 endpoints"
CONCURRENCY = 16
#: The two fleet sizes of the full run.
SIZES = (1000, 10000)
#: The issue's bound on the growth of the client's peak RSS per target.
MAX_KB_PER_TARGET = 50.0
ROOT = Path(__file__).resolve().parents[1]


def _client(request: dict[str, Any]) -> dict[str, Any]:
    """Run one deployment in a fresh client process and return what it printed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "bench._deploy_client"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the client failed ({done.returncode}): {done.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def run(quick: bool, *, sizes: tuple[int, int] | None = None) -> Report:
    """Deploy to both fleet sizes in client processes; compare their peak RSS."""
    from amlretrain.storage import BlobStore

    small, large = sizes or ((10, 50) if quick else SIZES)
    report = Report(
        name=NAME, title=f"peak RSS of the client deploying to {small:,} and {large:,} endpoints"
    )
    figures: dict[int, dict[str, Any]] = {}
    with emulator(seed=True) as (emu, _probe), tempfile.TemporaryDirectory() as folder:
        info = emu.info
        store = BlobStore.from_connection_string(info.storage_connection_string)
        data = store.download_bytes(store.ref("models", "initial.ilearner"))
        for n in (small, large):
            prefix = f"m{n}x"
            add_endpoints(emu, info.predictive_service, [f"{prefix}{i}" for i in range(n)])
            model = store.sas(
                store.upload(data, container="models", blob_name=f"mem/{n}.ilearner"),
                expires_in=timedelta(days=1),
            )
            figures[n] = _client(
                {
                    "info": info.to_dict(include_secrets=True),
                    "model": model.sas_url,
                    "prefix": prefix,
                    "count": n,
                    "concurrency": CONCURRENCY,
                    "ledger": str(Path(folder) / f"ledger-{n}.jsonl"),
                }
            )
    for n in (small, large):
        f = figures[n]
        report.rows.append(
            Row(
                what=f"peak RSS of the client, deploy to {n:,} targets",
                figure=f"{f['peak_rss_kb'] / 1024:.1f} MB",
                baseline=f"{f['rss_before_kb'] / 1024:.1f} MB",
                ratio=f["peak_rss_kb"] / f["rss_before_kb"],
                ratio_label="x its size before the targets",
            )
        )
    grown = (figures[large]["peak_rss_kb"] - figures[small]["peak_rss_kb"]) / (large - small)
    report.rows.append(
        Row(
            what=f"growth of the peak per target ({small:,} -> {large:,})",
            figure=f"{grown:.1f} KB",
            baseline=f"{MAX_KB_PER_TARGET:g} KB",
            ratio=grown / MAX_KB_PER_TARGET,
            ratio_label=" of the bound",
            target=f"<= {MAX_KB_PER_TARGET:g} KB per target",
            passed=grown <= MAX_KB_PER_TARGET,
        )
    )
    for n in (small, large):
        failed = n - figures[n]["statuses"].get("succeeded", 0)
        if failed:
            # Not fatal: the memory figure stands; a failed target is a finding of its own.
            report.rows.append(
                Row(
                    what=f"targets of the {n:,} deploy that did not succeed",
                    figure=str(failed),
                    baseline=str(n),
                    ratio=failed / n,
                )
            )
            report.notes.append(
                f"deploy to {n:,}: {figures[n]['statuses']}: {figures[n]['errors']}"
            )
    report.notes.append(
        "deploy wall times (no latency fault): "
        + ", ".join(f"{n:,} targets {figures[n]['seconds']:.1f} s" for n in (small, large))
        + f"; concurrency {CONCURRENCY}; a local ledger (file locks, intent and outcome lines)"
    )
    report.notes.append(
        "baseline column: the client's peak RSS after its imports and clients, before the "
        "targets were made; the emulator runs in the benchmark process, Azurite in its own"
    )
    report.data = {"figures": {str(k): v for k, v in figures.items()}, "kb_per_target": grown}
    return report
