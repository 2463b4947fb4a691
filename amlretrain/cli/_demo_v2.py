"""``amlretrain demo``'s Azure ML v2 sections: the same loop on an online endpoint.

Against the emulator's seeded v2 workspace (``census-ws``; endpoint ``census-v2`` whose
deployment ``blue`` serves ``census:1``):

1. a retrain whose training is a v2 command job (:class:`CommandJobTraining`: the
   emulator really trains the bundled learner) and whose target is the endpoint
   (:class:`OnlineEndpointTarget`), rolled out blue/green: smoke and shadow on the standby
   deployment at 0% (the shadow mirroring 20% of the live calls to it), the live traffic
   moved 10%, 50%, 100%, each step baked under an alarm, the previous deployment deleted;
2. a second retrain whose model answers half of its scoring calls with errors (the
   emulator's ``train_behaviour`` fault on ``v2.job.put``), rolled out canary-only in one
   10% step: the bake's alarm puts the traffic back and halts the run;
3. ``amlretrain history`` of the endpoint, and the evidence report of the first run.

What it prints about the endpoint (traffic, deployments, the model each serves, the
states the traffic went through) is read from the emulator's own state, not from the
SDK's report; the stages come from the ledger.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from amlretrain.azureml.targets import OnlineEndpointTarget
    from amlretrain.azureml.training import CommandJobTraining
    from amlretrain.ledger import Ledger
    from amlretrain.result import RetrainResult
    from amlretrain.rollout import Rollout
    from amlretrain.targets import Sample

__all__ = ["v2_sections"]

#: The demo's probe rows for the v2 runs (scored each round, ``_PROBE_BATCH`` a call).
_PROBE_ROWS = 30
_PROBE_BATCH = 5
#: The share of its calls the misbehaving model answers with an error.
_BAD_ERROR_RATE = 0.5
#: Seconds between two probe rounds, and each traffic step's bake.
_PROBE_INTERVAL = 0.2
_BAKE = 0.5
_DATA = Path(__file__).resolve().parents[1] / "emulator" / "data" / "census_new.csv"

Traffic = tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]]


class _Say(Protocol):
    """The demo's narrator (``demo._Narrator``)."""

    quiet: bool

    def section(self, title: str) -> None: ...

    def say(self, text: str = "") -> None: ...


# -- the emulator's own state -----------------------------------------------------------------


def _positive(mapping: Any) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((str(k), int(v)) for k, v in dict(mapping or {}).items() if int(v)))


def _endpoint_state(emu: Any, endpoint: str) -> dict[str, Any]:
    """The endpoint as the emulator holds it: its live and mirror traffic, each
    deployment's model reference and the blob that reference resolves to."""
    info = emu.info
    with emu.state.lock:
        v2 = emu.state.v2
        ep = v2.endpoint_named(endpoint)
        if ep is None:
            raise LookupError(f"the emulator has no endpoint {endpoint!r}")
        deployments: dict[str, dict[str, Any]] = {}
        for dep in ep.deployments.values():
            ref = str(dep.resource["properties"].get("model") or "")
            version = _version_of(ref)
            uri = None
            if version is not None:
                found = v2.model_version(ep.workspace, *version)
                uri = (found or {}).get("properties", {}).get("modelUri")
            deployments[dep.name] = {
                "model_ref": ref,
                "model_version": ":".join(version) if version else None,
                "model_uri": uri,
                "calls": dep.calls,
                "mirrored": dep.mirrored,
            }
        return {
            "endpoint": f"{info.v2_workspace}/{ep.name}",
            "traffic": dict(_positive(ep.traffic)),
            "mirror": dict(_positive(ep.mirror_traffic)),
            "deployments": deployments,
            "mirrored_calls": ep.mirrored,
        }


def _version_of(ref: str) -> tuple[str, str] | None:
    """``(name, version)`` of ``azureml:NAME:VERSION`` or ``.../models/NAME/versions/V``."""
    parts = ref.split("/")
    if "models" in parts and "versions" in parts:
        i, j = parts.index("models"), parts.index("versions")
        if j == i + 2 and j + 1 < len(parts):
            return parts[i + 1], parts[j + 1]
    if ref.startswith("azureml:") and "/" not in ref and ref.count(":") == 2:
        _, name, version = ref.split(":")
        return name, version
    return None


def _job_state(emu: Any, name: str) -> dict[str, Any]:
    """A v2 job as the emulator holds it: the statuses it went through, its outputs."""
    with emu.state.lock:
        for job in emu.state.v2.jobs.values():
            if job.name == name:
                outputs = job.resource["properties"].get("outputs") or {}
                return {
                    "history": list(job.history),
                    "outputs": {k: str(v.get("uri")) for k, v in outputs.items()},
                }
    raise LookupError(f"the emulator has no v2 job {name!r}")


class _TrafficWatch:
    """The endpoint's (live, mirror) traffic as the emulator holds it, sampled every
    5 ms while a run goes on: each distinct state in the order seen."""

    def __init__(self, emu: Any, endpoint: str) -> None:
        self.emu, self.endpoint = emu, endpoint
        self.seen: list[Traffic] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-v2-watch", daemon=True)

    def _now(self) -> Traffic:
        with self.emu.state.lock:
            ep = self.emu.state.v2.endpoint_named(self.endpoint)
            if ep is None:
                return ((), ())
            return _positive(ep.traffic), _positive(ep.mirror_traffic)

    def _run(self) -> None:
        while True:
            now = self._now()
            if not self.seen or self.seen[-1] != now:
                self.seen.append(now)
            if self._stop.wait(0.005):
                return

    def __enter__(self) -> _TrafficWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        now = self._now()  # the state the run left, even if it came after the last sample
        if not self.seen or self.seen[-1] != now:
            self.seen.append(now)

    def as_lists(self) -> list[dict[str, dict[str, int]]]:
        """The states seen, JSON-ready: ``{"traffic": {...}, "mirror": {...}}`` each."""
        return [{"traffic": dict(live), "mirror": dict(mirror)} for live, mirror in self.seen]


def _traffic_text(traffic: dict[str, int], mirror: dict[str, int] | None = None) -> str:
    text = ", ".join(f"{k} {v}%" for k, v in traffic.items()) or "none"
    if mirror:
        text += " (mirror: " + ", ".join(f"{k} {v}%" for k, v in mirror.items()) + ")"
    return text


def _show_endpoint(say: _Say, state: dict[str, Any]) -> None:
    say.say(f"  {state['endpoint']}: live traffic {_traffic_text(state['traffic'])}")
    for name, dep in state["deployments"].items():
        say.say(
            f"  deployment {name}: model {dep['model_version'] or dep['model_ref']}"
            f" at {dep['model_uri'] or '-'}"
        )


def _show_watch(say: _Say, watch: _TrafficWatch) -> None:
    seen = [_traffic_text(s["traffic"], s["mirror"]) for s in watch.as_lists()]
    say.say("the endpoint's traffic as the emulator held it during the run, in order:")
    say.say("  " + "\n  ".join(seen))


# -- the ledger's records ---------------------------------------------------------------------


def _figure(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _event_line(event: Any, rounds: int = 1) -> str:
    ev = event.evidence or {}
    shown: list[str] = []
    if event.stage in ("mirror", "traffic"):
        shown.append(f"{ev.get('deployment')} at {ev.get('percent')}%")
    elif event.stage == "retire":
        version = _version_of(str(ev.get("model_ref") or ""))
        shown.append(f"deployment {ev.get('deployment')} (model {':'.join(version or ('-',))})")
    elif event.stage == "candidate" and ev.get("result"):
        shown.append(str(ev["result"]))
    elif event.stage in ("shadow", "bake"):
        if "wave" in ev:
            shown.append(f"wave {ev['wave']}, {rounds} round{'s' if rounds > 1 else ''}")
        for name in ("rows", "error_rate", "psi", "agreement"):
            if ev.get(name) is not None:
                shown.append(f"{name} {_figure(ev[name])}")
    elif event.stage == "alarm":
        value, threshold = _figure(ev.get("value")), _figure(ev.get("threshold"))
        shown.append(f"{ev.get('alarm')} {value} > threshold {threshold}")
    elif event.stage == "wave":
        shown.append(f"wave {ev.get('wave')}")
    elif event.stage == "rollback" and event.message:
        shown.append(event.message)
    return f"  {event.stage:<9} {event.verdict:<7} {'; '.join(shown)}".rstrip()


def _show_stages(say: _Say, events: Sequence[Any]) -> None:
    """The run's records, one line each (a bake's rounds of one verdict in one line)."""
    say.say("the rollout's records in the ledger (stage, verdict, evidence):")
    i = 0
    while i < len(events):
        event, j = events[i], i + 1
        if event.stage == "bake":
            while (
                j < len(events)
                and (events[j].stage, events[j].verdict) == ("bake", event.verdict)
                and (events[j].evidence or {}).get("round", 0) > 1
            ):
                j += 1
            event = events[j - 1]  # the last round's figures
        say.say(_event_line(event, rounds=j - i))
        i = j


# -- the sections -----------------------------------------------------------------------------


@contextlib.contextmanager
def _clients(emu: Any) -> Iterator[tuple[Any, Any, Any, Any]]:
    """The v2 workspace's jobs, endpoints and models clients, and the datastore's account."""
    from amlretrain.azureml.endpoints import OnlineEndpointsClient
    from amlretrain.azureml.jobs import CommandJobsClient
    from amlretrain.azureml.registry import ModelsClient
    from amlretrain.polling import PollPolicy
    from amlretrain.storage import BlobStore

    info = emu.info
    where = (info.v2_subscription_id, info.v2_resource_group, info.v2_workspace)
    options: dict[str, Any] = {
        "base_url": info.arm_base_url,
        "polling": PollPolicy.fixed(0.05),
        "verify_timeout": 20.0,
    }
    with (
        CommandJobsClient(emu.credential(), *where, **options) as jobs,
        OnlineEndpointsClient(emu.credential(), *where, busy_timeout=30.0, **options) as eps,
        ModelsClient(emu.credential(), *where, **options) as models,
        BlobStore.from_connection_string(info.storage_connection_string) as store,
    ):
        yield jobs, eps, models, store


def _rollout(
    stages: tuple[str, ...], probe: Sample, *, mirror: int, steps: tuple[int, ...]
) -> Rollout:
    """The demo's v2 rollout: short probe rounds and bakes, an error_rate alarm."""
    from amlretrain.alarms import Alarm
    from amlretrain.rollout import Rollout

    return Rollout(
        stages=stages,
        probe=probe,
        probe_batch=_PROBE_BATCH,
        probe_interval=_PROBE_INTERVAL,
        bake=_BAKE,
        mirror=mirror,
        # Rollout's converter=tuple types this parameter as a bare Iterable[_T_co]
        traffic_steps=steps,
        alarms=(Alarm(metric="error_rate", threshold=0.05),),
    )


def _retrain(
    say: _Say,
    training: CommandJobTraining,
    target: OnlineEndpointTarget,
    ledger: Ledger,
    rollout: Rollout,
) -> RetrainResult:
    """``retrain(training, [target], ...)`` with the demo's gate, narrated."""
    from amlretrain.gate import Gate
    from amlretrain.workflow import retrain

    return retrain(
        # retrain() is annotated with the classic Training; its engine takes any Trainer
        training,
        [target],
        gate=Gate(thresholds={"AUC": 0.7}),
        ledger=ledger,
        rollout=rollout,
        on_step=None if say.quiet else (lambda step: say.say(f"... {step}")),
    )


def _score(target: OnlineEndpointTarget, sample: Sample) -> list[float]:
    return [round(float(row[1]), 4) for row in target.score(sample).rows]


def v2_sections(
    emu: Any,
    say: _Say,
    workdir: Path,
    ledger_path: Path,
    report_dir: Path,
    write_probe: Callable[[Path, Path, int], Path],
) -> dict[str, Any]:
    """Run the demo's v2 sections on the running, seeded ``emu``; the ``v2`` member of
    the demo's summary (``ok``: both runs ended as the emulator's state should show).
    ``write_probe(path, source, rows)`` writes the probe CSV (the demo's own).

    The runs are recorded in the ledger at ``ledger_path`` (the demo's); the evidence
    report of the first run is written in ``report_dir`` (unless matplotlib is missing).
    """
    from amlretrain.azureml.targets import OnlineEndpointTarget
    from amlretrain.azureml.training import CommandJobTraining
    from amlretrain.ledger import Ledger
    from amlretrain.rollout import read_probe
    from amlretrain.targets import Sample

    info = emu.info
    endpoint = str(info.v2_endpoint)
    probe = read_probe(write_probe(workdir / "probe-v2.csv", _DATA, _PROBE_ROWS))
    ledger = Ledger(ledger_path)
    out: dict[str, Any] = {}

    with _clients(emu) as (jobs, endpoints, models, store):

        def target(sample: Sample | None) -> OnlineEndpointTarget:
            return OnlineEndpointTarget(
                endpoints,
                models,
                endpoint,
                datastore_account_url=store.account_url,
                sample=sample,
                verify_timeout=20.0,
                verify_interval=0.05,
            )

        training = CommandJobTraining(
            jobs=jobs,
            data=_DATA,
            store=store,
            command="python train.py --data ${{inputs.data}} --label ${{inputs.label}} "
            "--model ${{outputs.model}} --evaluation ${{outputs.evaluation}}",
            environment_id="azureml:amlretrain-sklearn:1",
            compute="cpu-cluster",
            inputs={"label": "income"},
            timeout=120.0,
        )
        smoke_rows = Sample(columns=probe.columns, rows=probe.rows[:4])
        good_target = target(smoke_rows)

        say.section("Azure ML v2: retrain with a command job, then a guarded blue/green rollout")
        say.say(
            f"workspace {info.v2_workspace} ({info.v2_resource_group}); endpoint {endpoint}; "
            "as the emulator holds it now:"
        )
        before_state = _endpoint_state(emu, endpoint)
        _show_endpoint(say, before_state)
        before = _score(good_target, probe)
        say.say(f"scores of the first probe rows now: {before[:6]}")
        say.say(
            "training: CommandJobTraining (a v2 command job; the emulator trains the bundled "
            f"learner on {_DATA.name}); target: OnlineEndpointTarget({endpoint!r}); rollout: "
            "smoke, shadow mirroring 20% of the live calls, traffic 10%, 50%, 100%, each "
            f"step baked {_BAKE} s under an error_rate alarm, the previous deployment deleted"
        )
        rollout = _rollout(("smoke", "shadow", "canary"), probe, mirror=20, steps=(10, 50))
        with _TrafficWatch(emu, endpoint) as watch:
            good = _retrain(say, training, good_target, ledger, rollout)
        say.say(good.summary())
        job = _job_state(emu, str(good.job_id))
        say.say(
            f"the job {good.job_id} in the emulator: {' -> '.join(job['history'])}; "
            f"model output {job['outputs'].get('model')}"
        )
        _show_watch(say, watch)
        after_state = _endpoint_state(emu, endpoint)
        say.say("the endpoint now, as the emulator holds it:")
        _show_endpoint(say, after_state)
        after = _score(good_target, probe)
        say.say(f"scores of the first probe rows now: {after[:6]}")
        changed = after != before
        say.say("the predictions changed" if changed else "WARNING: the predictions did not change")
        good_events = ledger.history().rollout_events(good.run_id)
        _show_stages(say, good_events)
        live = next(iter(after_state["traffic"]), "-")
        live_dep = after_state["deployments"].get(live, {})
        good_ok = (
            [o.status for o in good.targets] == ["succeeded"]
            and after_state["traffic"] == {live: 100}
            and set(after_state["deployments"]) == {live}
            and live not in before_state["deployments"]
            and live_dep.get("model_uri") == job["outputs"].get("model")
            and changed
        )
        out["good"] = {
            "run_id": good.run_id,
            "job_id": good.job_id,
            "statuses": {o.target: o.status for o in good.targets},
            "before": before_state,
            "after": after_state,
            "traffic_seen": watch.as_lists(),
            "scores_changed": changed,
            "stages": [{"stage": e.stage, "verdict": e.verdict} for e in good_events],
        }

        say.section("A v2 model that errors on part of its traffic: stopped at 10% and put back")
        say.say(
            "the emulator trains the next model to fail half of its scoring calls "
            f'(fault: route = "v2.job.put", kind = "train_behaviour", error_rate = '
            f"{_BAD_ERROR_RATE}); its evaluation looks fine, and this target has no smoke "
            "sample: only the bake at 10% can catch it"
        )
        emu.faults.add(
            route="v2.job.put", kind="train_behaviour", error_rate=_BAD_ERROR_RATE, seed=2
        )
        canary = _rollout(("canary",), probe, mirror=0, steps=(10,))
        with _TrafficWatch(emu, endpoint) as bad_watch:
            bad = _retrain(say, training, target(None), ledger, canary)
        say.say(bad.summary())
        say.say(f"halted_wave {bad.halted_wave}; halt_reason: {bad.halt_reason}")
        _show_watch(say, bad_watch)
        bad_state = _endpoint_state(emu, endpoint)
        say.say("the endpoint now, as the emulator holds it:")
        _show_endpoint(say, bad_state)
        bad_events = ledger.history().rollout_events(bad.run_id)
        _show_stages(say, bad_events)
        fired = [e for e in bad_events if e.stage == "alarm" and e.verdict == "fired"]
        if fired:
            ev = fired[0].evidence
            say.say(
                f"the alarm's evidence: {ev.get('alarm')} {_figure(ev.get('value'))} against "
                f"threshold {_figure(ev.get('threshold'))} ({ev.get('rows')} probe rows, wave "
                f"{ev.get('wave')})"
            )
        bad_ok = (
            [o.status for o in bad.targets] == ["failed"]
            and bad.halted_wave == 1
            and bad_state["traffic"] == after_state["traffic"]
            and any(s["traffic"].get(live) == 90 for s in bad_watch.as_lists())
            and bool(fired)
        )
        out["bad"] = {
            "run_id": bad.run_id,
            "statuses": {o.target: o.status for o in bad.targets},
            "halted_wave": bad.halted_wave,
            "halt_reason": bad.halt_reason,
            "after": bad_state,
            "traffic_seen": bad_watch.as_lists(),
            "alarm": dict(fired[0].evidence) if fired else None,
            "stages": [{"stage": e.stage, "verdict": e.verdict} for e in bad_events],
        }

    say.section("The v2 endpoint in the history and in the evidence report")
    history = _history_text(ledger_path, endpoint)
    entries: list[list[str]] = []
    for line in history.splitlines():
        if not line.startswith(" ") or not entries:  # an entry's first line is not indented
            entries.append([])
        entries[-1].append(line)
    say.say(f"$ amlretrain history --ledger {ledger_path.name} {endpoint}")
    for line in entries[0] if entries else ["(no entries)"]:
        say.say(line)
    if len(entries) > 1:
        say.say(f"... and {len(entries) - 1} more (the stopped run's among them)")
    out["report"] = _v2_report(say, ledger, good.run_id, report_dir)
    out["ok"] = good_ok and bad_ok
    return out


def _history_text(ledger_path: Path, endpoint: str) -> str:
    """What ``amlretrain history --ledger LEDGER ENDPOINT`` prints."""
    from amlretrain.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        main(["history", "--ledger", str(ledger_path), endpoint])
    return buffer.getvalue().rstrip("\n")


def _v2_report(say: _Say, ledger: Ledger, run_id: str | None, folder: Path) -> str | None:
    """The first v2 run's evidence report; None without matplotlib."""
    try:
        from amlretrain._charts import require_matplotlib

        require_matplotlib()
    except ImportError:
        say.say(f"(no report: matplotlib is not installed; amlretrain report {run_id})")
        return None
    from amlretrain.report import build_report

    started = time.monotonic()
    report = build_report(ledger.history(), run_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = report.save(folder / f"report-{report.run.run_id}.html").resolve()
    rows = [row for t in report.targets for row in t.timeline if row.kind.startswith("rollout:")]
    kinds = list(dict.fromkeys(row.what for row in rows))
    say.say(f"$ amlretrain report {report.run.run_id} -o {path}")
    say.say(
        f"wrote {path} ({time.monotonic() - started:.1f} s); its timeline of the endpoint "
        f"holds the stages {', '.join(kinds)}"
    )
    return str(path)
