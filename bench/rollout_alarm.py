"""From an alarm condition to a verified rollback, vs one probe interval plus the swap time.

A canary-only guarded rollout (``deploy(..., rollout=Rollout(stages=("canary",), ...))``)
of a good model to the emulator's classic endpoint, baked with a probe every
``probe_interval`` P. At a scripted moment *during the bake* the model turns bad and
the clock starts (t0); it stops (t1) when the rollback's verifying read has shown the
previous model. Two alarm conditions, each its own repetitions:

* ``drift``: the served ``.ilearner`` blob is overwritten in Azurite with the same
  model plus the emulator's behaviour member ``score_shift`` (learner.with_behaviour):
  the emulator fetches the model on every scoring call, so from t0 every answer of the
  canary is shifted; the alarm is ``psi > 0.25``. Nothing else changes: no errors, no
  latency, so a probe round costs what a clean one does;
* ``errors``: a fault ``status=500`` on ``rrs.execute`` added at t0 (the model crashes
  on every request); the alarm is ``error_rate > 0.05``. The scoring client retries a
  500 three times (0.5 + 1 + 2 s) before the probe counts it as an error.

The emulator adds ``LATENCY`` (100 ms) to every classic management and scoring request,
as a network would (without it a swap takes a few ms and the bound is P alone).

t0 is taken just before the blob upload / fault rule (against amlretrain by the few
ms these take); its phase is drawn (seeded, stratified: one draw in each 1/reps of the
period) uniformly over one probe period P + R from the end of the bake's first round.
The bake's rounds are timed at ``RolloutGuard._round`` (wrapped by the benchmark,
restored afterwards): the firing round is the one that returned alarms, its end the
alarm's moment. The rollback is read from the emulator's request
log (a probe on its dispatch, bench._probe): its PATCH (the body names the previous
model) and t1, the end of the first endpoint GET after that PATCH (the verifying
read). The ledger's last entry (a rollback that succeeded) and the emulator's state
(serving the previous model again) are checked too.

The swap time S is a plain ``deploy()`` of one model to that target (no rollout: check,
lease, intent, PATCH, verifying GET, outcome), timed twice per repetition, interleaved
with the rollouts, median. R is one bake round's duration (median over every clean
round, timed at ``_round``). The bound (PASS/MISS) is P + R + S: one interval, the
round that sees the condition, one swap; the issue's literal P + S (no round counted)
is shown beside it. A bake's rounds start every P; a condition that begins just after a
round sent its requests is seen by the next round: P + R + S at worst (P + 2R + S, the
worst case of a bake that waits P after each round, is reported too).

The client runs in this process with the emulator (they share one interpreter lock;
the emulator's handlers are quick, and the latency is a sleep).
"""

from __future__ import annotations

import csv
import random
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import Report, Row, median
from bench._probe import emulator

NAME = "rollout_alarm"
TITLE = "alarm condition to a verified rollback vs one probe interval plus the swap time"
DATA = Path(__file__).resolve().parents[1] / "amlretrain" / "emulator" / "data"
#: Probe rows per round and rows per scoring request.
PROBE_ROWS = 60
BATCH = 10
#: The drift: added to every scored probability of the bad model; the alarm's threshold.
SHIFT = 0.45
PSI = 0.25
ERROR_RATE = 0.05
SEED = 15
#: Seconds the emulator adds to every management and scoring request (as a network would).
LATENCY = 0.1


def probe_sample(rows: int) -> Any:
    """``rows`` census rows without the label (repeated when the files hold fewer)."""
    from amlretrain.targets import Sample

    columns: list[str] = []
    values: list[list[str]] = []
    for name in ("census_new.csv", "census_train.csv"):
        with (DATA / name).open(newline="") as handle:
            table = list(csv.reader(handle))
        columns = table[0][:-1]
        values += [r[:-1] for r in table[1:] if r]
    picked = [values[i % len(values)] for i in range(rows)]
    return Sample(columns=columns, rows=picked)


class _Rounds:
    """Times every bake round (``RolloutGuard._round``, wrapped here, restored on exit)."""

    def __init__(self, probe: Any) -> None:
        self.probe = probe
        self.rounds: list[tuple[float, float, bool]] = []  # started, ended, fired
        self.connections: list[int] = []  # TCP connections the emulator accepted per round
        self.first = threading.Event()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self.rounds.clear()
            self.connections.clear()
        self.first.clear()

    @contextmanager
    def installed(self) -> Iterator[_Rounds]:
        from amlretrain._rollout_guard import RolloutGuard

        original = RolloutGuard._round
        timer = self

        def timed(guard: Any, number: int, round_: int, promoted: Any, *rest: Any) -> Any:
            started = time.monotonic()
            timer.first.set()
            opened = timer.probe.connections
            fired = original(guard, number, round_, promoted, *rest)
            with timer._lock:
                timer.rounds.append((started, time.monotonic(), bool(fired)))
                timer.connections.append(timer.probe.connections - opened)
            return fired

        RolloutGuard._round = timed  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            RolloutGuard._round = original  # type: ignore[method-assign]


class _Trigger(threading.Thread):
    """Waits for the bake's first round, then makes the model bad at t0 (recorded)."""

    def __init__(self, rounds: _Rounds, delay: float, act: Any, timeout: float) -> None:
        super().__init__(name="bench-trigger", daemon=True)
        self.rounds, self.delay, self.act, self.timeout = rounds, delay, act, timeout
        self.t0: float | None = None
        self.cancel = threading.Event()

    def run(self) -> None:
        if not self.rounds.first.wait(self.timeout) or self.cancel.is_set():
            return
        first = time.monotonic()
        if self.cancel.wait(max(0.0, first + self.delay - time.monotonic())):
            return
        self.t0 = time.monotonic()
        self.act()


def run(
    quick: bool,
    *,
    reps: int | None = None,
    interval: float | None = None,
    latency: float = LATENCY,
) -> Report:
    """Time alarm condition -> verified rollback, beside plain swaps, interleaved.

    Args:
        quick: P = 0.3 s, one repetition per condition.
        reps: repetitions per alarm condition (default 1 quick, 3 full).
        interval: the probe interval P (default 0.3 s quick, 1 s full).
        latency: seconds the emulator adds to every classic and scoring request.
    """
    from amlretrain._rollout_guard import probe_rows
    from amlretrain.alarms import Alarm
    from amlretrain.blobs import strip_sas
    from amlretrain.emulator.learner import with_behaviour
    from amlretrain.ledger import Ledger
    from amlretrain.polling import PollPolicy
    from amlretrain.rollout import Rollout
    from amlretrain.storage import BlobStore
    from amlretrain.studio.management import ClassicClient
    from amlretrain.studio.targets import ClassicTarget
    from amlretrain.workflow import deploy

    reps = reps or (1 if quick else 3)
    period = interval or (0.3 if quick else 1.0)
    bake = 6 * period + 8.0  # the alarm ends it long before (the errors path takes ~4 s)
    rng = random.Random(SEED)
    # t0's phase in its period, stratified: one draw in each 1/reps of it, shuffled
    fractions: dict[str, list[float]] = {}
    report = Report(name=NAME, title=TITLE)
    sample = probe_sample(PROBE_ROWS)
    conditions = ("drift", "errors")
    for condition in conditions:
        fractions[condition] = [(k + rng.random()) / reps for k in range(reps)]
        rng.shuffle(fractions[condition])
    totals: dict[str, list[float]] = {c: [] for c in conditions}
    detections: dict[str, list[float]] = {c: [] for c in conditions}
    rollbacks: dict[str, list[float]] = {c: [] for c in conditions}
    rollback_swaps: list[float] = []
    round_times: list[float] = []
    firing_rounds: dict[str, list[float]] = {c: [] for c in conditions}
    per_round: list[int] = []
    connections: list[int] = []
    swaps: list[float] = []
    phases: list[float] = []
    folder = tempfile.TemporaryDirectory(prefix="bench-alarm-")

    with emulator(seed=True) as (emu, probe), folder, _Rounds(probe).installed() as timer:
        info = emu.info
        store = BlobStore.from_connection_string(info.storage_connection_string)
        classic = ClassicClient(
            info.workspace_id, info.workspace_token, base_url=info.management_url
        )
        classic.poll = PollPolicy.fixed(0.1)
        target = ClassicTarget(classic, info.predictive_service, info.predictive_endpoint)
        ledger = Ledger(Path(folder.name) / "ledger.jsonl")
        served_first = strip_sas(target.read().model)
        good = store.download_bytes(store.ref("models", "initial.ilearner"))
        bad = with_behaviour(good, score_shift=SHIFT)
        initial = store.sas(store.ref("models", "initial.ilearner"), expires_in=timedelta(days=1))

        def upload(name: str, data: bytes) -> Any:
            ref = store.upload(data, container="models", blob_name=name)
            return store.sas(ref, expires_in=timedelta(days=1))

        def swap(model: Any) -> float:
            started = time.monotonic()
            result = deploy(model, [target], ledger=ledger, store=store)
            took = time.monotonic() - started
            if [o.status for o in result.targets] != ["succeeded"]:
                raise RuntimeError(f"a plain deploy failed: {result.targets[0].error}")
            return took

        def network() -> None:
            emu.faults.clear()
            for route in ("classic.*", "rrs.*"):
                emu.faults.add(route=route, kind="latency", seconds=latency, count=None)

        network()
        # R's first guess: the trigger's phase is drawn over one period, P + R
        began = time.monotonic()
        probe_rows(target, None, sample, BATCH)
        r_guess = time.monotonic() - began
        try:
            for rep in range(reps):
                for condition in conditions:
                    # the swap time, side by side: there and back (serves `initial` again)
                    swaps.append(swap(upload(f"alarm/{condition}-{rep}-s.ilearner", good)))
                    swaps.append(swap(initial))
                    name = f"alarm/{condition}-{rep}.ilearner"
                    model = upload(name, good)
                    if condition == "drift":
                        alarm = Alarm(metric="psi", threshold=PSI)

                        def act(name: str = name) -> None:
                            store.upload(bad, container="models", blob_name=name)

                    else:
                        alarm = Alarm(metric="error_rate", threshold=ERROR_RATE)

                        def act(name: str = name) -> None:
                            emu.faults.add(
                                route="rrs.execute", kind="status", status=500, count=None
                            )

                    rollout = Rollout(
                        stages=("canary",),
                        probe=sample,
                        probe_interval=period,
                        probe_batch=BATCH,
                        bake=bake,
                        alarms=(alarm,),
                    )
                    # after the first round has ended, at a phase uniform over one period
                    phase = r_guess + fractions[condition][rep] * (period + r_guess)
                    phases.append(phase)
                    timer.clear()
                    since = time.monotonic()
                    trigger = _Trigger(timer, phase, act, bake + 60)
                    trigger.start()
                    try:
                        result = deploy(
                            model, [target], ledger=ledger, store=store, rollout=rollout
                        )
                    finally:
                        trigger.cancel.set()
                        trigger.join()
                        network()  # the status rule off, the latency kept
                    ended = time.monotonic()
                    (outcome,) = result.targets
                    t0 = trigger.t0
                    if outcome.status != "restored" or t0 is None:
                        raise RuntimeError(
                            f"{condition}: expected a rollback after the scripted fault, got "
                            f"{outcome.status}: {outcome.error}"
                        )
                    served = probe.between(since, ended)
                    patch = next(
                        s
                        for s in served
                        if s.route == "classic.patch_endpoint"
                        and s.started > t0
                        and b"initial.ilearner" in s.body
                    )
                    verify = next(
                        s
                        for s in served
                        if s.route == "classic.get_endpoint" and s.started >= patch.ended
                    )
                    rounds = list(timer.rounds)
                    fired = [r for r in rounds if r[2]]
                    if len(fired) != 1 or rounds[-1] != fired[0] or fired[0][1] < t0:
                        raise RuntimeError(f"{condition}: unexpected rounds {rounds} (t0 {t0})")
                    alarm_at = fired[0][1]
                    totals[condition].append(verify.ended - t0)
                    detections[condition].append(alarm_at - t0)
                    rollbacks[condition].append(verify.ended - alarm_at)
                    rollback_swaps.append(verify.ended - patch.started)
                    firing_rounds[condition].append(fired[0][1] - fired[0][0])
                    clean = rounds[:-1] if condition == "errors" else rounds
                    connections += timer.connections[: len(clean)]
                    for start, end, _ in clean:
                        round_times.append(end - start)
                        per_round.append(sum(1 for s in served if start <= s.started <= end))
                    entries = ledger.entries(target.key)
                    if entries[-1].action != "rollback" or entries[-1].outcome != "succeeded":
                        raise RuntimeError(f"{condition}: the ledger shows no verified rollback")
                    if strip_sas(target.read().model) != served_first:
                        raise RuntimeError(f"{condition}: the emulator does not serve the model")
        finally:
            emu.faults.clear()
            classic.close()

    s_time, r_time = median(swaps), median(round_times)
    literal = period + s_time
    bound = period + r_time + s_time
    worst_bound = period + 2 * r_time + s_time
    n = reps
    for condition, what in (
        ("drift", f"drift (psi > {PSI}): condition -> verified rollback"),
        ("errors", "errors (RRS 500, retried): condition -> verified rollback"),
    ):
        total = median(totals[condition])
        report.rows.append(
            Row(
                what=f"{what}, median of {n}, vs P + R + S",
                figure=f"{total:.2f} s",
                baseline=f"{bound:.2f} s",
                ratio=total / bound,
                ratio_label=" of bound",
                target="<= 1.0 of bound",
                passed=total / bound <= 1.0,
            )
        )
        report.rows.append(
            Row(
                what=f"{condition}: the same vs the issue's P + S (no probe round counted)",
                figure=f"{total:.2f} s",
                baseline=f"{literal:.2f} s",
                ratio=total / literal,
                ratio_label=" of bound",
            )
        )
        worst = max(totals[condition])
        report.rows.append(
            Row(
                what=f"{condition}: worst of {n} vs P + 2R + S (a bake waiting P after each round)",
                figure=f"{worst:.2f} s",
                baseline=f"{worst_bound:.2f} s",
                ratio=worst / worst_bound,
                ratio_label=" of bound",
            )
        )
        report.rows.append(
            Row(
                what=f"{condition}: of which detection (t0 -> the firing round's last answer)",
                figure=f"{median(detections[condition]):.2f} s",
                baseline=f"{period + 2 * r_time:.2f} s",
                ratio=median(detections[condition]) / (period + 2 * r_time),
                ratio_label=" of P + 2R",
            )
        )
        report.rows.append(
            Row(
                what=f"{condition}: of which the firing round itself",
                figure=f"{median(firing_rounds[condition]):.2f} s",
                baseline=f"{r_time:.2f} s",
                ratio=median(firing_rounds[condition]) / r_time,
                ratio_label="x R",
            )
        )
        report.rows.append(
            Row(
                what=f"{condition}: of which rollback (alarm -> verifying GET answered)",
                figure=f"{median(rollbacks[condition]):.3f} s",
                baseline=f"{s_time:.3f} s",
                ratio=median(rollbacks[condition]) / s_time,
                ratio_label="x S",
            )
        )
    report.rows += [
        Row(what="P: the probe interval (rollout.probe_interval)", figure=f"{period:g} s"),
        Row(
            what=f"R: one probe round ({PROBE_ROWS} rows, {BATCH}/request), median",
            figure=f"{r_time:.3f} s",
        ),
        Row(what="S: a plain deploy() of one target, median", figure=f"{s_time:.3f} s"),
        Row(
            what="the rollback's own swap (its PATCH -> verifying GET answered)",
            figure=f"{median(rollback_swaps):.3f} s",
            baseline=f"{s_time:.3f} s",
            ratio=median(rollback_swaps) / s_time,
            ratio_label="x S",
        ),
        Row(
            what="emulator requests per probe round (endpoint GETs + scoring POSTs)",
            figure=f"{median(per_round):g}",
            baseline=f"{-(-PROBE_ROWS // BATCH)} (POSTs only)",
            ratio=median(per_round) / -(-PROBE_ROWS // BATCH),
        ),
        Row(
            what="TCP connections the emulator accepted per probe round",
            figure=f"{median(connections):g}",
            baseline=f"{-(-PROBE_ROWS // BATCH)} (requests)",
            ratio=median(connections) / -(-PROBE_ROWS // BATCH),
        ),
    ]
    report.notes.append(
        f"{n} repetition(s) per condition, interleaved with {len(swaps)} plain swaps (there "
        f"and back); t0 phases after the first round's start: "
        + ", ".join(f"{p:.2f}" for p in phases)
        + f" s (seed {SEED}); bake {bake:g} s (ended by the alarm); the emulator adds "
        + f"{latency * 1000:g} ms to every classic.* and rrs.* request"
    )
    for condition in conditions:
        report.notes.append(
            f"{condition}: condition -> verified rollback "
            + ", ".join(f"{t:.2f}" for t in totals[condition])
            + " s; detection "
            + ", ".join(f"{t:.2f}" for t in detections[condition])
            + " s"
        )
    report.notes.append(
        f"swaps (plain deploy) {', '.join(f'{t:.3f}' for t in swaps)} s; rounds "
        f"{len(round_times)}, {min(round_times):.3f}-{max(round_times):.3f} s"
    )
    report.notes.append(
        "the bound P + R + S counts the probe round that sees the condition (the issue's "
        "P + S counts none: it holds only when R is negligible against P); a bake's rounds "
        "start every P, so a condition that begins just after a round's requests left is "
        "seen by the next round: worst case P + R + S (P + 2R + S shown for a bake that "
        "waits P after each round)"
    )
    report.data = {
        "totals": totals,
        "detections": detections,
        "swaps": swaps,
        "rounds": round_times,
        "period": period,
    }
    return report
