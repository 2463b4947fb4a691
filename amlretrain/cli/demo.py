"""``amlretrain demo``: the whole retrain loop against the local emulator, narrated.

Starts the emulator and Azurite, seeds a training service and two predictive services
(a New/ARM one and a classic endpoint), scores sample rows, retrains on new data, shows
the evaluation, the gate, the applied change and the verification, scores again, shows
the history, rolls back, and scores once more. Leaves no process running.
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


def register(subparsers: Any) -> None:
    """Add the ``demo`` command."""
    p = subparsers.add_parser(
        "demo",
        help="run the whole retrain loop against the local emulator (no Azure needed)",
        description="Start the local emulator and Azurite, then narrate the whole loop: score "
        "sample rows, retrain on new data, evaluate, gate, deploy to a New (ARM) web service "
        "and a classic endpoint, verify, score again, show the history, roll back and score "
        "once more. Stops everything it started. Exit 12 when the scores do not change and "
        "come back as expected.",
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


def run_demo(workdir: Path, *, quiet: bool = False) -> dict[str, Any]:
    """Run the demo in ``workdir``; returns what happened (for tests and --output json).

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
        with tempfile.TemporaryDirectory(prefix="amlretrain-demo-") as tmp:
            summary = run_demo(Path(tmp), quiet=quiet)
    if quiet:
        print_json(summary)
    if not summary["scores_changed"] or not summary["scores_restored"]:
        raise VerificationFailed("the demo's scores did not change and come back as expected")
    return 0
