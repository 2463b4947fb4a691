"""The shadow stage's scoring vs scoring the incumbent alone, for 1,000 probe rows.

1,000 probe rows (the census rows of amlretrain/emulator/data without their label,
repeated: the two files hold 800) are scored on the emulator's classic endpoint, 10
rows a request (``Rollout.probe_batch``'s default), three ways, interleaved in a
rotating order and repeated, medians:

* (a) the incumbent alone: ``probe_rows(incumbent, state, rows, 10)``, the engine's
  probe (4 requests in flight);
* (b) the shadow: the incumbent and a candidate at once, as the stage does
  (``RolloutGuard._both``: the two ``probe_rows`` in two threads);
* (c) the same two one after the other, to show what running them at once saves.

The candidate is a second classic endpoint of the same web service (added to the
emulator's state, bench._probe.add_endpoints) serving a copy of the model under
another blob name: it costs the emulator what the incumbent does, so (b) / (a) is
the shadow's overhead, 1.0 at best. Two network conditions: the emulator adds 20 ms
to every scoring request (``rrs.execute``; a latency fault, a sleep: as on a real
network the client then mostly waits), and none (the emulator's own CPU, in this
process, shares one interpreter lock with the client: a worst case for overlap).
Requests and TCP connections are counted from the emulator's side (a probe on its
dispatch).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from bench import Report, Row, median
from bench._probe import add_endpoints, emulator
from bench.rollout_alarm import probe_sample

NAME = "shadow_overhead"
TITLE = "shadow scoring (incumbent + candidate) vs the incumbent alone, 1,000 probe rows"
ROWS = 1000
BATCH = 10
#: Seconds the emulator adds to every scoring request in the "network" condition.
LATENCY = 0.02


def run(quick: bool, *, reps: int | None = None, rows: int | None = None) -> Report:
    """Time (a) the incumbent alone, (b) the shadow, (c) both in turn; interleaved.

    Args:
        quick: 100 rows, one repetition.
        reps: repetitions of each way per condition (default 1 quick, 5 full).
        rows: probe rows (default 100 quick, :data:`ROWS` full).
    """
    from amlretrain._rollout_guard import RolloutGuard, probe_rows
    from amlretrain.interrupt import StopSignal
    from amlretrain.polling import PollPolicy
    from amlretrain.rollout import Rollout
    from amlretrain.storage import BlobStore
    from amlretrain.studio.management import ClassicClient
    from amlretrain.studio.targets import ClassicTarget

    reps = reps or (1 if quick else 5)
    rows = rows or (100 if quick else ROWS)
    sample = probe_sample(rows)
    report = Report(
        name=NAME,
        title=f"shadow scoring (incumbent + candidate) vs the incumbent alone, {rows:,} probe rows",
    )
    conditions = (f"RRS +{LATENCY * 1000:g} ms", "no added latency")
    ways = ("alone", "shadow", "in turn")
    times: dict[tuple[str, str], list[float]] = {(c, w): [] for c in conditions for w in ways}
    requests: dict[str, list[int]] = {w: [] for w in ways}
    connections: dict[str, list[int]] = {w: [] for w in ways}
    dispatch: list[float] = []  # the emulator's own time per scoring call, no latency
    with emulator(seed=True) as (emu, probe):
        info = emu.info
        service = info.predictive_service
        store = BlobStore.from_connection_string(info.storage_connection_string)
        classic = ClassicClient(
            info.workspace_id, info.workspace_token, base_url=info.management_url
        )
        classic.poll = PollPolicy.fixed(0.1)
        add_endpoints(emu, service, ["shadowcandidate"])
        incumbent = ClassicTarget(classic, service, info.predictive_endpoint)
        candidate = ClassicTarget(classic, service, "shadowcandidate")
        copy = store.upload(
            store.download_bytes(store.ref("models", "initial.ilearner")),
            container="models",
            blob_name="shadow/candidate.ilearner",
        )
        candidate.deploy(store.sas(copy, expires_in=timedelta(days=1)))
        state, candidate_state = incumbent.read(), candidate.read()
        guard = RolloutGuard(
            Rollout(stages=("shadow", "canary"), probe=sample, probe_batch=BATCH),
            ledger=None,
            run_id="bench-shadow",
            stop=StopSignal(),
        )

        def alone() -> Any:
            return probe_rows(incumbent, state, sample, BATCH)

        def shadow() -> Any:
            return guard._both(incumbent, state, candidate, candidate_state, sample)

        def in_turn() -> Any:
            return alone(), probe_rows(candidate, candidate_state, sample, BATCH)

        work = {"alone": alone, "shadow": shadow, "in turn": in_turn}
        try:
            alone()  # a warm-up: imports and first connections are not timed
            turn = 0
            for rep in range(reps):
                for condition in conditions:
                    emu.faults.clear()
                    if condition != "no added latency":
                        emu.faults.add(
                            route="rrs.execute", kind="latency", seconds=LATENCY, count=None
                        )
                    order = ways[turn % 3 :] + ways[: turn % 3]
                    turn += 1
                    for way in order:
                        probe.clear()
                        started = time.monotonic()
                        answer = work[way]()
                        times[(condition, way)].append(time.monotonic() - started)
                        probed = answer if isinstance(answer, tuple) else (answer,)
                        if any(p.errors for p in probed):
                            raise RuntimeError(f"{way}: scoring failed: {probed[0].first_error}")
                        if condition == "no added latency" and way == "alone":
                            dispatch += [
                                s.seconds for s in probe.served if s.route == "rrs.execute"
                            ]
                        if rep == 0 and condition == conditions[0]:
                            requests[way].append(len(probe.served))
                            connections[way].append(probe.connections)
        finally:
            emu.faults.clear()
            classic.close()

    per_round = -(-rows // BATCH)
    for condition in conditions:
        a = median(times[(condition, "alone")])
        b = median(times[(condition, "shadow")])
        c = median(times[(condition, "in turn")])
        report.rows.append(
            Row(
                what=f"shadow vs incumbent alone ({condition})",
                figure=f"{b:.3f} s",
                baseline=f"{a:.3f} s",
                ratio=b / a,
                ratio_label="x",
                target="info (<= 1.5x reasonable; 1.0x ideal)",
            )
        )
        report.rows.append(
            Row(
                what=f"shadow vs the two in turn ({condition})",
                figure=f"{b:.3f} s",
                baseline=f"{c:.3f} s",
                ratio=b / c,
                ratio_label="x",
                target="info (0.5x ideal)",
            )
        )
    floor = per_round * LATENCY / 4  # PROBE_CONCURRENCY requests in flight
    alone_net = median(times[(conditions[0], "alone")])
    report.rows.append(
        Row(
            what=f"incumbent alone ({conditions[0]}) vs its latency floor "
            f"({per_round} requests x {LATENCY * 1000:g} ms / 4 in flight)",
            figure=f"{alone_net:.3f} s",
            baseline=f"{floor:.3f} s",
            ratio=alone_net / floor,
            ratio_label="x",
        )
    )
    report.rows.append(
        Row(
            what="the emulator's own time per scoring call (no added latency), median",
            figure=f"{median(dispatch) * 1000:.1f} ms",
        )
    )
    report.rows.append(
        Row(
            what=f"emulator requests per round: shadow vs alone ({BATCH} rows/request)",
            figure=f"{median(requests['shadow']):g}",
            baseline=f"{median(requests['alone']):g}",
            ratio=median(requests["shadow"]) / median(requests["alone"]),
        )
    )
    report.rows.append(
        Row(
            what="TCP connections per round: shadow vs alone",
            figure=f"{median(connections['shadow']):g}",
            baseline=f"{median(connections['alone']):g}",
            ratio=median(connections["shadow"]) / max(1.0, median(connections["alone"])),
        )
    )
    report.notes.append(
        f"medians of {reps} runs of each way per condition, interleaved in a rotating "
        f"order; {rows:,} rows in {per_round} requests per target, 4 in flight per target "
        "(PROBE_CONCURRENCY)"
    )
    for condition in conditions:
        report.notes.append(
            f"{condition}: "
            + "; ".join(
                f"{way} " + ", ".join(f"{t:.3f}" for t in times[(condition, way)]) + " s"
                for way in ways
            )
        )
    report.notes.append(
        "the candidate is a second classic endpoint of the same service serving a copy of "
        "the model (same cost); the client runs in this process with the emulator, whose "
        "RRS fetches the model from Azurite on every call (its own time per call above): "
        "on 2 cores the emulator's CPU, doubled by the shadow, is likely most of the overhead"
    )
    report.data = {
        "times": {f"{c}/{w}": v for (c, w), v in times.items()},
        "requests": requests,
        "rows": rows,
    }
    return report
