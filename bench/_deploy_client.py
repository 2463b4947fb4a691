"""The client process of ``bench.fleet_memory`` and ``bench.deploy_fanout``: deploy one
model to N classic endpoints, as a user's process would (the emulator in another one).

Run as ``python -m bench._deploy_client`` with a JSON request on stdin (the emulator's
info with its secrets, the model's SAS URL, the endpoint names' prefix and count, the
concurrency, a ledger path, optionally ``poll`` seconds for the classic client); prints
one JSON line: the outcomes counted by status, the wall time, the seconds of each step,
this process's CPU seconds in the deploy, its Azurite requests (method and route, from
requests' adapter) and its peak RSS (``VmHWM`` of /proc/self/status, KB) before the
targets were made and at the end. Not ``ru_maxrss``: Linux keeps that one across
``exec``, so it starts at the size of the process that spawned this one.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
from collections import Counter


def _peak_rss_kb() -> int:
    """This process's peak resident set size so far, in KB (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> int:
    """Read the request, deploy, print the figures."""
    request = json.load(sys.stdin)
    from amlretrain.blobs import BlobRef
    from amlretrain.ledger import Ledger
    from amlretrain.polling import PollPolicy
    from amlretrain.storage import BlobStore
    from amlretrain.studio.management import ClassicClient
    from amlretrain.studio.targets import ClassicTarget
    from amlretrain.workflow import deploy
    from bench.loop_overhead import _azurite_route, _HttpProbe

    info = request["info"]
    classic = ClassicClient(
        info["workspace_id"], info["workspace_token"], base_url=info["base_url"]
    )
    if request.get("poll"):
        classic.poll = PollPolicy.fixed(float(request["poll"]))
    azurite = urllib.parse.urlsplit(info["blob_endpoint"]).netloc
    store = BlobStore.from_connection_string(info["storage_connection_string"])
    # The storage client made (and azure-storage-blob imported) before the clock starts:
    # a once-a-process cost, not a deployment's (timed apart, reported as "warm-up").
    warm = time.monotonic()
    _ = store.service
    warm = time.monotonic() - warm
    model = BlobRef.from_url(request["model"])
    ledger = Ledger(request["ledger"])
    before = _peak_rss_kb()
    service = info["predictive_service"]
    targets = [
        ClassicTarget(classic, service, f"{request['prefix']}{i}") for i in range(request["count"])
    ]
    with _HttpProbe().installed() as http:
        cpu, started = time.process_time(), time.monotonic()
        result = deploy(
            model, targets, concurrency=request["concurrency"], store=store, ledger=ledger
        )
        wall, cpu = time.monotonic() - started, time.process_time() - cpu
    classic.close()
    storage = Counter(
        f"azurite {_azurite_route(c[0], c[2])}" for c in http.calls if c[1] == azurite
    )
    print(
        json.dumps(
            {
                "statuses": dict(Counter(o.status for o in result.targets)),
                "errors": sorted({str(o.error) for o in result.targets if o.error})[:5],
                "seconds": wall,
                "cpu_seconds": cpu,
                "warm_up_seconds": warm,
                "steps": {step.name: step.seconds for step in result.steps},
                "storage": dict(storage),
                "rss_before_kb": before,
                "peak_rss_kb": _peak_rss_kb(),
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
