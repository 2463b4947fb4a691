"""``amlretrain demo``: the whole retrain loop against the local emulator, narrated.

Starts the emulator and Azurite, seeds a training service and two predictive services
(a New/ARM one and a classic endpoint), scores sample rows, retrains on new data, shows
the evaluation, the gate, the applied change and the verification, scores again, shows
the history, rolls back, and scores once more.

Then the guarded rollout (``[rollout]`` in a second retrain.toml, run as ``amlretrain
retrain`` runs it): a good model through smoke, shadow and a two-wave canary baked under
alarms; a model whose scores drift (the emulator's ``train_behaviour`` fault) stopped by
the shadow's alarm before any live target changes; the same kind of model rolled out
canary-only (``--stages canary``), its first wave rolled back by the bake's alarm, checked
in the emulator's state; and the evidence report of that run (``report-RUN_ID.html``).
Then the Azure ML v2 loop on the seeded online endpoint (:mod:`amlretrain.cli._demo_v2`).
Leaves no process running.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from amlretrain.cli._common import add_output_flag

__all__ = ["register", "run_demo"]

#: Where the demo keeps its evidence report without --workdir (under the current folder).
_REPORTS = Path(".amlretrain") / "demo"


def register(subparsers: Any) -> None:
    """Add the ``demo`` command."""
    p = subparsers.add_parser(
        "demo",
        help="run the whole retrain loop against the local emulator (no Azure needed)",
        description="Start the local emulator and Azurite, then narrate the whole loop: score "
        "sample rows, retrain on new data, evaluate, gate, deploy to a New (ARM) web service "
        "and a classic endpoint, verify, score again, show the history, roll back and score "
        "once more; then a guarded rollout that passes, a bad model stopped by the shadow "
        "and one rolled back by the canary's bake alarm, and the evidence report of that run "
        "(in --workdir, else in .amlretrain/demo/); then the same loop on an Azure ML v2 "
        "online endpoint: a command job, a blue/green rollout, a model stopped at 10% of "
        "the traffic. Stops everything it started. Exit 0 "
        "although three rollouts are stopped (that is what it shows); 12 when the scores do "
        "not change and come back, or the rollouts do not end, as expected.",
    )
    p.add_argument("--workdir", help="keep the config, ledger and data here (default: a temp dir)")
    add_output_flag(p)
    p.set_defaults(handler=_demo)


def _probabilities(records: Sequence[dict[str, Any]] | None) -> list[float]:
    return [round(float(r.get("Scored Probabilities", "nan")), 4) for r in records or []]


class _Narrator:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.number = 0

    def section(self, title: str) -> None:
        self.number += 1
        self.say(f"\n== {self.number}. {title}")

    def say(self, text: str = "") -> None:
        if not self.quiet:
            from amlretrain._redact import redact

            sys.stdout.write(redact(text) + "\n")
            sys.stdout.flush()


def run_demo(
    workdir: Path, *, quiet: bool = False, report_dir: Path | None = None
) -> dict[str, Any]:
    """Run the demo in ``workdir``; returns what happened (for tests and --output json).

    The evidence report of the rolled-back run is written in ``report_dir`` (default:
    ``workdir``).

    Raises:
        AmlRetrainError: a step failed (the emulator is stopped all the same).
    """
    from amlretrain.cli._emulator_config import emulator_config, emulator_environment
    from amlretrain.config import load_config
    from amlretrain.emulator import Emulator
    from amlretrain.ledger import Ledger
    from amlretrain.workflow import retrain, rollback

    say = _Narrator(quiet)
    data_dir = Path(__file__).resolve().parents[1] / "emulator" / "data"
    new_data = data_dir / "census_new.csv"
    say.section("Start the local emulator (ARM, classic management, batch, scoring) and Azurite")
    with Emulator(seed=True) as emu:
        info = emu.info
        say.say(f"emulator at {info.base_url}; storage (Azurite) at {info.blob_endpoint}")
        say.say(f"training web service:   {info.training_service} (classic, batch endpoint)")
        say.say(f"predictive, New (ARM):  {info.arm_service_id}")
        say.say(f"predictive, classic:    {info.predictive_service}/{info.predictive_endpoint}")

        config_path = workdir / "retrain.toml"
        ledger_path = workdir / "ledger.jsonl"
        config_path.write_text(emulator_config(info, data=new_data, ledger=ledger_path))
        environ = dict(os.environ, **emulator_environment(info))
        config = load_config(config_path, environ=environ)
        say.say(f"wrote {config_path} (secrets come from environment variables, not the file)")
        targets = [t for t, _ in config.targets()]
        sample = config.sample
        assert sample is not None

        say.section("Score sample rows with the models deployed now")
        before = {t.label: _probabilities(t.score(sample).first.records()) for t in targets}
        for label, probs in before.items():
            say.say(f"{label}: {probs}")

        say.section(f"Retrain on new data ({new_data.name}), gate, deploy to both, verify")
        training = config.training()
        ledger = Ledger(ledger_path)
        result = retrain(
            training,
            targets,
            gate=config.gate,
            ledger=ledger,
            sample=sample,
            concurrency=config.concurrency,
            progress=not quiet,
            on_step=lambda step: say.say(f"... {step}"),
        )
        say.say(result.summary())
        say.say("\ngate:")
        for outcome in result.targets:
            for check in outcome.gate_checks:
                say.say(f"  {outcome.target}: {check}")
        for outcome in result.targets:
            if outcome.plan:
                body = outcome.plan.get("jsonPatch") or outcome.plan.get("body")
                say.say(f"\napplied to {outcome.target}: {outcome.plan.get('method')}")
                say.say(json.dumps(body, indent=2))
        result.raise_for_status()

        say.section("Verify: each service references the new model; scores changed")
        after = {}
        for target in targets:
            served = target.current_model()
            say.say(f"{target.label} serves {served.split('?')[0] if served else '-'}")
            after[target.label] = _probabilities(target.score(sample).first.records())
            say.say(f"{target.label}: {after[target.label]}")
        changed = all(after[k] != before[k] for k in before)
        say.say("scores changed on every target" if changed else "WARNING: scores did not change")

        say.section("History")
        for entry in ledger.entries():
            say.say(f"{entry.id} {entry.action} {entry.outcome} {entry.target}")
            say.say(f"    {entry.previous_model} -> {entry.new_model}")

        say.section("Roll back to the previous models")
        rolled = []
        for target in targets:
            outcome = rollback(target, ledger=ledger, store=training.store, sample=sample)
            rolled.append(outcome)
            say.say(f"{outcome.target}: {outcome.status}; serving {outcome.serving_model}")
        restored = {t.label: _probabilities(t.score(sample).first.records()) for t in targets}
        for label, probs in restored.items():
            say.say(f"{label}: {probs}")
        back = restored == before
        say.say(
            "scores are back to what they were" if back else "WARNING: scores differ after rollback"
        )
        guarded = _guarded_rollouts(
            emu, say, workdir, config_path.read_text(), environ, report_dir or workdir
        )
        from amlretrain.cli._demo_v2 import v2_sections

        v2 = v2_sections(emu, say, workdir, ledger_path, report_dir or workdir, _write_probe)
        say.section("Stop the emulator and Azurite")
    say.say("done: no process left running")
    return {
        "retrain": result.to_dict(),
        "scores_before": before,
        "scores_after": after,
        "scores_after_rollback": restored,
        "scores_changed": changed,
        "rolled_back": [o.to_dict() for o in rolled],
        "scores_restored": back,
        "ledger": [e.to_output() for e in Ledger(ledger_path).entries()],
        **guarded,
        "v2": v2,
    }


def _demo(args: argparse.Namespace) -> int:
    from amlretrain.cli._common import print_json
    from amlretrain.errors import VerificationFailed

    quiet = args.output == "json"
    if args.workdir:
        workdir = Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        summary = run_demo(workdir, quiet=quiet)
    else:
        # The files go with the temporary folder, but the report is kept to be opened.
        with tempfile.TemporaryDirectory(prefix="amlretrain-demo-") as tmp:
            summary = run_demo(Path(tmp), quiet=quiet, report_dir=_REPORTS)
    if quiet:
        print_json(summary)
    if not summary["scores_changed"] or not summary["scores_restored"]:
        raise VerificationFailed("the demo's scores did not change and come back as expected")
    if not summary["rollout_ok"]:
        raise VerificationFailed(
            "the demo's guarded rollouts did not end as expected (the good model serving, "
            "the bad one stopped and rolled back)"
        )
    if not summary["v2"]["ok"]:
        raise VerificationFailed(
            "the demo's Azure ML v2 runs did not end as expected (the new deployment alone "
            "at 100%, the bad model's traffic put back on it)"
        )
    return 0


# -- the guarded rollout ----------------------------------------------------------------------

#: The PSI of the scores above which the demo's alarm fires. On the 60 probe rows, the
#: model retrained on new data moves its scores from the seeded model's by a PSI of about
#: 1.5 (under it); a model whose scores drift by +0.45 far more.
_PSI_ALARM = 2.5
_PROBE_ROWS = 60
_KEY_ENV = "AMLRETRAIN_STORAGE_ACCOUNT_KEY"


def _rollout_config(base: str, info: Any, probe: Path) -> str:
    """The demo's retrain.toml with waves and a ``[rollout]`` table.

    The gate keeps its thresholds but not ``beat_incumbent``: the demo retrains on the
    same data again, and an equal AUC does not beat the incumbent's.
    """
    text = base.replace('beat_incumbent = ["AUC"]\n', "", 1)
    plan = (
        f"/subscriptions/{info.subscription_id}/resourceGroups/{info.resource_group}"
        "/providers/Microsoft.MachineLearning/commitmentPlans/amlretrain-demo-plan"
    )
    return "\n".join(
        [
            "# the canary: one target first, baked, then the rest",
            'waves = "1,100%"',
            "",
            text.rstrip("\n"),
            "",
            "[rollout]",
            'stages = ["smoke", "shadow", "canary"]',
            f"probe = {json.dumps(str(probe))}",
            "probe_interval = 0.5",
            "bake = 1.0",
            "# a candidate New (ARM) web service is created with these (a GET omits them)",
            f'arm_storage_key_env = "{_KEY_ENV}"',
            f"arm_commitment_plan = {json.dumps(plan)}",
            "",
            "[[rollout.alarms]]",
            'metric = "error_rate"',
            "threshold = 0.05",
            "",
            "[[rollout.alarms]]",
            'metric = "psi"',
            f"threshold = {_PSI_ALARM}",
            "",
        ]
    )


def _write_probe(path: Path, source: Path, rows: int = _PROBE_ROWS) -> Path:
    """The first ``rows`` rows of ``source`` without its label: what live traffic sends."""
    import csv

    with source.open(newline="") as f:
        table = list(csv.reader(f))
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([r[:-1] for r in table[: rows + 1]])
    return path


class _Environment:
    """``environ`` set in ``os.environ`` for a while (what a shell's exports do for the CLI)."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.environ = environ
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        for name, value in self.environ.items():
            self.saved[name] = os.environ.get(name)
            os.environ[name] = value

    def __exit__(self, *exc: object) -> None:
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _retrain_as_cli(config_path: Path, *, stages: tuple[str, ...] | None, quiet: bool) -> Any:
    """What ``amlretrain retrain --config CONFIG [--stages ...]`` runs (its Python API)."""
    import attrs

    from amlretrain.cli.retrain import _progress
    from amlretrain.config import group_by_data, load_config
    from amlretrain.fleet import FleetGroup, retrain_fleet

    config = load_config(config_path)
    rollout = config.rollout
    if stages is not None and rollout is not None:
        rollout = attrs.evolve(rollout, stages=stages)
    pairs = config.targets()
    fleet = [
        FleetGroup(training=config.training(data), targets=targets, name=data)
        for data, targets in group_by_data(config, pairs).items()
    ]
    return retrain_fleet(
        fleet,
        gate=config.gate,
        ledger=config.ledger(),
        sample=config.sample,
        concurrency=config.concurrency,
        training_concurrency=config.training_concurrency,
        waves=config.waves,
        bake=config.bake,
        max_failures=config.max_failures,
        rollout=rollout,
        order=[t for t, _ in pairs],
        on_step=None if quiet else _progress,
    )


def _emulator_serves(emu: Any) -> dict[str, str | None]:
    """What each predictive service references, read from the emulator's own state."""
    from amlretrain.blobs import strip_sas
    from amlretrain.emulator.state import trained_model_asset

    info = emu.info
    served: dict[str, str | None] = {}
    with emu.state.locked() as state:
        name = str(info.arm_service_name).lower()
        svc = state.arm.get((info.subscription_id.lower(), info.resource_group.lower(), name))
        found = trained_model_asset(svc.properties) if svc is not None else None
        served[f"{info.resource_group}/{info.arm_service_name}"] = (
            strip_sas(found[1]["locationInfo"]["uri"]) if found else None
        )
        ws = state.workspaces[info.workspace_id.lower()]
        endpoint = ws.services[str(info.predictive_service)].endpoints[info.predictive_endpoint]
        location = endpoint.resources[0]["Location"]
        served[f"{info.predictive_service}/{info.predictive_endpoint}"] = str(
            location["BaseLocation"]
        ) + str(location["RelativeLocation"])
    return served


def _short(url: str | None) -> str:
    """A model URL without its host: the blob's path."""
    if not url:
        return "-"
    path = url.split("?")[0]
    return path.split("/devstoreaccount1/", 1)[-1]


def _event_line(event: Any) -> str:
    target = (event.target or "").split("/")[-1]
    figures = event.evidence or {}
    shown = []
    if event.stage in ("shadow", "bake"):
        if "wave" in figures:
            shown.append(f"wave {figures['wave']} round {figures.get('round')}")
        for name in ("rows", "psi", "error_rate", "agreement"):
            value = figures.get(name)
            if isinstance(value, float):
                shown.append(f"{name} {value:.3g}")
            elif value is not None:
                shown.append(f"{name} {value}")
    elif event.stage == "wave":
        shown.append(
            f"wave {figures.get('wave')}: "
            + ", ".join(str(t).split("/")[-1] for t in figures.get("targets", []))
        )
    elif event.stage == "rollback":
        shown += [f"{str(t['target']).split('/')[-1]} {t['status']}" for t in figures["targets"]]
    text = "; ".join(shown)
    if event.message and event.stage in ("alarm", "gate", "smoke", "rollback"):
        text = f"{text}; {event.message}" if text else event.message
    return f"  {event.stage:<9} {event.verdict:<7} {target:<18} {text}".rstrip()


def _show_run(say: _Narrator, result: Any, ledger: Any) -> dict[str, Any]:
    from amlretrain.cli._common import exit_code_for
    from amlretrain.errors import AmlRetrainError

    say.say(result.summary())
    events = ledger.history().rollout_events(result.run_id)
    say.say("\nthe rollout's records in the ledger (RolloutEvent: stage, verdict, target):")
    for event in events:
        say.say(_event_line(event))
    try:
        result.raise_for_status()
        code = 0
    except AmlRetrainError as err:  # what the CLI would exit with
        code = exit_code_for(err)
        say.say(f"`amlretrain retrain` would exit {code}: {type(err).__name__}")
    return {
        "run_id": result.run_id,
        "statuses": {o.target: o.status for o in result.targets},
        "halted_wave": result.halted_wave,
        "exit_code": code,
        "stages": [{"stage": e.stage, "verdict": e.verdict, "target": e.target} for e in events],
    }


def _guarded_rollouts(
    emu: Any,
    say: _Narrator,
    workdir: Path,
    base_config: str,
    environ: dict[str, str],
    report_dir: Path,
) -> dict[str, Any]:
    """A guarded rollout that passes, then a drifting model stopped by the shadow, and
    the same kind of model rolled out canary-only and rolled back by the bake's alarm.

    Returns the ``rollouts`` and ``report`` members of the demo's summary.
    """
    from amlretrain.config import load_config
    from amlretrain.storage import parse_connection_string

    info = emu.info
    data_dir = Path(__file__).resolve().parents[1] / "emulator" / "data"
    probe = _write_probe(workdir / "probe.csv", data_dir / "census_new.csv")
    config_path = workdir / "rollout.toml"
    config_path.write_text(_rollout_config(base_config, info, probe))
    key = parse_connection_string(environ["AMLRETRAIN_STORAGE_CONNECTION_STRING"])["AccountKey"]
    environment = _Environment({**environ, _KEY_ENV: key})
    runs: dict[str, dict[str, Any]] = {}

    say.section("A guarded rollout of a good model: smoke, shadow, canary (baked under alarms)")
    say.say(f"wrote {config_path}: the same targets, waves 1,100% and this [rollout]:")
    table = config_path.read_text()
    say.say(table[table.index("[rollout]") :].rstrip())
    say.say(
        f"the probe: {probe.name}, {_PROBE_ROWS} rows of live-like traffic; the candidate "
        "(a copy of the first target serving the new model) scores them next to the "
        "target, then is deleted"
    )
    say.say(f"$ amlretrain retrain --config {config_path.name}")
    with environment:
        ledger = load_config(config_path).ledger()
        good = _retrain_as_cli(config_path, stages=None, quiet=say.quiet)
        runs["good"] = _show_run(say, good, ledger)
    serves_good = _emulator_serves(emu)
    say.say("the emulator's state: " + _served_text(serves_good))

    say.section("A bad model (its scores drift by +0.45): the shadow's alarm stops it")
    say.say(
        "the emulator trains the next model to misbehave when it serves "
        '(fault: kind = "train_behaviour", score_shift = 0.45); its evaluation looks fine'
    )
    emu.faults.add(route="bes.start", kind="train_behaviour", score_shift=0.45, seed=1)
    say.say(f"$ amlretrain retrain --config {config_path.name}")
    with environment:
        shadowed = _retrain_as_cli(config_path, stages=None, quiet=say.quiet)
        runs["shadow"] = _show_run(say, shadowed, ledger)
    after_shadow = _emulator_serves(emu)
    say.say("the emulator's state: " + _served_text(after_shadow))
    unchanged = after_shadow == serves_good
    say.say(
        "no live target changed: both still serve the good model"
        if unchanged
        else "WARNING: a live target changed"
    )

    say.section("The same kind of model without the shadow: the canary's bake rolls it back")
    emu.faults.add(route="bes.start", kind="train_behaviour", score_shift=0.45, seed=1)
    say.say(f"$ amlretrain retrain --config {config_path.name} --stages canary")
    with environment:
        baked = _retrain_as_cli(config_path, stages=("canary",), quiet=say.quiet)
        runs["bake"] = _show_run(say, baked, ledger)
    after_bake = _emulator_serves(emu)
    say.say("the emulator's state: " + _served_text(after_bake))
    restored = after_bake == serves_good
    say.say(
        "rolled back automatically and verified: every target serves the previous (good) "
        "model again; wave 2 was never changed"
        if restored
        else "WARNING: the targets do not all serve the previous model"
    )

    say.section("The evidence report of the rolled-back run")
    report = _write_report(say, ledger, baked.run_id, report_dir, config_path)
    say.say(
        "(the demo deliberately showed two stopped rollouts: it exits 0 all the same; "
        "`amlretrain retrain` itself exits with the codes shown above)"
    )
    promoted = all(s == "succeeded" for s in runs["good"]["statuses"].values()) and all(
        m == good.model for m in serves_good.values()
    )
    return {
        "rollouts": runs,
        "serving": {"good": serves_good, "shadow": after_shadow, "bake": after_bake},
        "rollout_ok": promoted and unchanged and restored,
        "report": str(report) if report else None,
    }


def _served_text(served: dict[str, str | None]) -> str:
    return "; ".join(f"{label} serves {_short(model)}" for label, model in served.items())


def _write_report(
    say: _Narrator, ledger: Any, run_id: str | None, folder: Path, config: Path
) -> Path | None:
    """``amlretrain report RUN_ID``: the run's evidence report (None: no matplotlib)."""
    try:
        from amlretrain._charts import require_matplotlib

        require_matplotlib()
    except ImportError:
        say.say(
            "the report's charts need matplotlib: pip install 'amlretrain[report]', then "
            f"amlretrain report {run_id} --config {config}"
        )
        return None
    from amlretrain.report import build_report

    report = build_report(ledger.history(), run_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = report.save(folder / f"report-{report.run.run_id}.html").resolve()
    say.say(f"$ amlretrain report {report.run.run_id} --config {config.name} -o {path}")
    say.say(f"wrote {path}")
    say.say("open it in a browser: the timeline, the shadow and bake comparisons, the alarm")
    return path
