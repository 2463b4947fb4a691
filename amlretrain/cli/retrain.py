"""``amlretrain retrain|deploy|rollback|reconcile|history``: the loop from a config file.

The commands that change targets route SIGINT and SIGTERM to the run (the first stops it
cleanly, the second exits at once: see :mod:`amlretrain.interrupt`) and exit 130/143
after printing what each target serves.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlretrain.cli._common import (
    add_output_flag,
    add_progress_flag,
    emit,
    wants_json,
    wants_progress,
)
from amlretrain.errors import ConfigurationError, Interrupted

if TYPE_CHECKING:
    from amlretrain.config import RetrainConfig
    from amlretrain.interrupt import StopSignal
    from amlretrain.result import RetrainResult, TargetOutcome
    from amlretrain.rollout import Rollout
    from amlretrain.targets import Target


__all__ = ["register"]


def _add_wait_lock(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait-lock",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="wait up to SECONDS for a target another run is deploying to (default: fail "
        "at once with exit 8)",
    )


def _seconds_of(flag: str) -> Callable[[str], float]:
    """The argparse type of a flag that takes seconds (0 to 24 h), named in its errors."""

    def parse(text: str) -> float:
        from amlretrain._numbers import checked

        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        try:
            return checked(value, name=flag, low=0.0, high=86400.0)
        except ConfigurationError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


_bake = _seconds_of("--bake")
_seconds = _seconds_of("--wait-lock")


def register(subparsers: Any) -> None:
    """Add ``retrain``, ``deploy``, ``rollback``, ``reconcile`` and ``history``."""
    p = subparsers.add_parser(
        "retrain",
        help="train on new data, gate, deploy to the targets, verify, record",
        description="Run the whole retrain loop described by a retrain.toml "
        "(see docs/config.md). Exit 11 when the gate rejects the model.",
    )
    p.add_argument("--config", "-c", required=True, help="the retrain.toml")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check the targets and print the exact requests a run would send; nothing is "
        "uploaded, trained, changed or recorded",
    )
    p.add_argument(
        "--data",
        help="training data for every target (overrides the config): a local .csv/.tsv/.arff "
        "file (relative to the current folder), or a blob as an https URL or "
        "blob:container/path",
    )
    p.add_argument(
        "--waves",
        metavar="STEPS",
        help="deploy in cumulative waves, in config order, e.g. 1,10%%,50%%,100%% (overrides "
        "waves in the config; default: one wave)",
    )
    p.add_argument(
        "--bake",
        type=_bake,
        metavar="SECONDS",
        help="seconds to wait after each wave's scoring checks (overrides bake; default 0)",
    )
    p.add_argument(
        "--max-failures",
        metavar="N|N%%",
        help="the failure budget: halt (exit 15) when more targets fail than this count or "
        "share (overrides max_failures; default: never halt)",
    )
    p.add_argument(
        "--rollback-on-halt",
        action="store_true",
        help="when the failure budget halts the run, put the halted wave's changed targets "
        "back on their previous model (verified, recorded)",
    )
    _add_rollout_flags(p)
    p.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="continue an interrupted or killed run (`amlretrain runs list`): finished "
        "targets are kept, jobs re-attached, never submitted twice; a changed config is "
        "refused (exit 4)",
    )
    add_progress_flag(p)
    _add_wait_lock(p)
    add_output_flag(p)
    p.set_defaults(handler=_retrain)

    d = subparsers.add_parser(
        "deploy",
        help="deploy an existing .ilearner to the targets of a config (no training)",
        description="Point every target of a retrain.toml at one trained model, leased, "
        "verified and recorded like retrain's deploy step (no training, no gate). The "
        "model must exist and be readable with the SAS the services get; a URL without a "
        "SAS (as retrain and history print it) gets one minted from the config's storage "
        "(model_sas_days).",
    )
    d.add_argument("--config", "-c", required=True, help="the retrain.toml")
    d.add_argument(
        "--model",
        required=True,
        help="the model blob URL; without a SAS, one is minted from the config's storage",
    )
    d.add_argument(
        "--dry-run", action="store_true", help="check the model and targets, print the plan"
    )
    _add_rollout_flags(d)
    _add_wait_lock(d)
    add_output_flag(d)
    d.set_defaults(handler=_deploy)

    r = subparsers.add_parser(
        "rollback",
        help="put a previous model back on a target",
        description="Point one target of a retrain.toml back at the model it served before "
        "its latest deployment (or, with --to, at the model a ledger entry deployed), leased, "
        "verified and recorded like a deployment; its open changes are reconciled first. The "
        "model blob is checked readable before anything changes. Exit 4 when there is nothing "
        "to roll back to.",
    )
    r.add_argument("target", help="the target: its label, ledger key, or index in the config")
    r.add_argument("--config", "-c", required=True, help="the retrain.toml")
    r.add_argument(
        "--to", metavar="ENTRY", help="a ledger entry id: restore the model that entry deployed"
    )
    r.add_argument(
        "--dry-run", action="store_true", help="check the model and the target, print the plan"
    )
    _add_wait_lock(r)
    add_output_flag(r)
    r.set_defaults(handler=_rollback)

    c = subparsers.add_parser(
        "reconcile",
        help="read the targets with open or unknown changes and record what they serve",
        description="Settle the ledger after a crash, a second Ctrl-C or an unconfirmed "
        "swap: every target with an intent that has no outcome (or an unknown outcome) is "
        "read, patiently (its verify window), and what it serves is recorded with the "
        "evidence. Training jobs whose end was never recorded are read and listed under "
        "their run (orphans never started; reconcile never starts a job). Exit 12 when a "
        "target could not be read.",
    )
    c.add_argument("target", nargs="?", help="only this target (label, key or index)")
    c.add_argument("--config", "-c", default="retrain.toml", help="the retrain.toml")
    _add_wait_lock(c)
    add_output_flag(c)
    c.set_defaults(handler=_reconcile)

    h = subparsers.add_parser(
        "history",
        help="the ledger of a target",
        description="Print the deployment ledger: every outcome (deploy, rollback, gate, "
        "restore; UNKNOWN when it could not be confirmed) and every OPEN intent (a change "
        "sent or about to be sent with no outcome yet: run `amlretrain reconcile`).",
    )
    h.add_argument("target", nargs="?", help="label or ledger key (part of it); all if omitted")
    group = h.add_mutually_exclusive_group()
    group.add_argument("--config", "-c", help="a retrain.toml (for its ledger path)")
    group.add_argument("--ledger", help="the ledger file (default .amlretrain/ledger.jsonl)")
    add_output_flag(h)
    h.set_defaults(handler=_history)


def _progress(step: str) -> None:
    sys.stderr.write(f"... {step}\n")
    sys.stderr.flush()


def _render(result: RetrainResult) -> str:
    text = result.summary()
    for outcome in result.targets:
        if outcome.plan is not None:
            label = "planned request" if outcome.status == "dry-run" else "applied request"
            import json

            body = outcome.plan.get("jsonPatch") or outcome.plan.get("body")
            text += f"\n\n{label} for {outcome.target}: {outcome.plan.get('method')} "
            text += f"{outcome.plan.get('url')}\n{json.dumps(body, indent=2)}"
    return text


def _finish(args: argparse.Namespace, results: list[RetrainResult]) -> int:
    data: Any = results[0].to_dict() if len(results) == 1 else [r.to_dict() for r in results]
    emit(args, data, "\n\n".join(_render(r) for r in results))
    for result in results:
        result.raise_for_status()
    return 0


@contextlib.contextmanager
def _signals(config: RetrainConfig) -> Iterator[StopSignal]:
    """SIGINT/SIGTERM routed to the run; the second one exits at once."""
    from amlretrain.interrupt import StopSignal, handle_signals

    with handle_signals(StopSignal(config.interrupt_grace), exit_at_once=True) as stop:
        yield stop


def _interrupted(args: argparse.Namespace, err: Interrupted, done: list[RetrainResult]) -> int:
    """Print what the interrupted run did, then exit 128 + the signal."""
    from amlretrain.result import RetrainResult

    results = [*done, err.result] if isinstance(err.result, RetrainResult) else done
    if results:
        data: Any = [r.to_dict() for r in results]
        emit(args, data, "\n\n".join(_render(r) for r in results))
    sys.stderr.write(f"amlretrain: interrupted (signal {err.signum}); exit {err.exit_code}\n")
    return err.exit_code


def _retrain(args: argparse.Namespace) -> int:
    from amlretrain.config import load_config
    from amlretrain.configured import fleet_of, retrain_configured
    from amlretrain.waves import FailureBudget, Waves

    # Flags first: a bad one is refused before the config is read or anything sent.
    waves = Waves.parse(args.waves, where="--waves") if args.waves else None
    budget = (
        FailureBudget.parse(args.max_failures, where="--max-failures")
        if args.max_failures
        else None
    )
    config = load_config(args.config)
    rollout = _rollout_of(args, config)
    # One job per (training, data): the targets of each platform are retrained by its
    # training (a classic .ilearner cannot be served by v2). --data is relative to the
    # current folder, the config's data to the config file's folder.
    base = Path.cwd() if args.data else None
    groups, order = fleet_of(config, data=args.data, base=base)  # every group's data checked
    display = None
    if wants_progress(args) and (len(groups) > 1 or (waves or config.waves) is not None):
        from amlretrain._fleet_progress import FleetProgress

        display = FleetProgress(len(order))
    with _signals(config) as stop:
        try:
            result = retrain_configured(
                config,
                data=args.data,
                base=base,
                resume=args.resume,
                rollout=rollout,
                waves=waves,
                bake=args.bake,
                max_failures=budget,
                rollback_on_halt=args.rollback_on_halt,
                dry_run=args.dry_run,
                progress=wants_progress(args) and display is None,
                display=display,
                on_step=None if wants_json(args) or display is not None else _progress,
                wait_lock=args.wait_lock,
                stop=stop,
            )
        except Interrupted as err:
            return _interrupted(args, err, [])
        finally:
            if display is not None:
                display.close()
    return _finish(args, [result])


def _add_rollout_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--stages",
        metavar="LIST",
        help="the guarded rollout's stages, e.g. smoke,shadow,canary (overrides "
        "rollout.stages; needs a [rollout] table)",
    )
    p.add_argument(
        "--no-rollout",
        action="store_true",
        help="ignore the config's [rollout]: deploy in the run's waves, checked by scoring",
    )


def _rollout_of(args: argparse.Namespace, config: RetrainConfig) -> Rollout | None:
    """The config's [rollout], with --stages or --no-rollout applied."""
    rollout = None if args.no_rollout else config.rollout
    if args.stages is None:
        return rollout
    if rollout is None:
        raise ConfigurationError(
            f"--stages: {args.config} has no [rollout] table (its probe and alarms)"
        )
    import attrs

    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    try:
        return attrs.evolve(rollout, stages=stages)
    except ConfigurationError as err:
        raise ConfigurationError(f"--stages: {err.message}") from None


def _deploy(args: argparse.Namespace) -> int:
    from amlretrain.blobs import BlobRef
    from amlretrain.config import load_config
    from amlretrain.configured import deploy_configured

    config = load_config(args.config)
    rollout = _rollout_of(args, config)
    with _signals(config) as stop:
        try:
            result = deploy_configured(
                config,
                BlobRef.from_url(args.model),
                rollout=rollout,
                dry_run=args.dry_run,
                wait_lock=args.wait_lock,
                stop=stop,
            )
        except Interrupted as err:
            return _interrupted(args, err, [])
    return _finish(args, [result])


def _rollback(args: argparse.Namespace) -> int:
    from amlretrain.config import load_config
    from amlretrain.configured import rollback_configured

    config = load_config(args.config)
    target = _find_target(config, args.target)
    with _signals(config) as stop:
        try:
            outcome = rollback_configured(
                config,
                target,
                to=args.to,
                dry_run=args.dry_run,
                wait_lock=args.wait_lock,
                stop=stop,
            )
        except Interrupted as err:
            from amlretrain.result import TargetOutcome

            if isinstance(err.result, TargetOutcome):
                emit(args, err.result.to_dict(), _outcome_text(err.result))
            return _interrupted(args, err, [])
    emit(args, outcome.to_dict(), _outcome_text(outcome))
    outcome.raise_for_status()
    return 0


def _outcome_text(outcome: TargetOutcome) -> str:
    text = f"{outcome.target}: {outcome.status}; serving {outcome.serving_text}"
    return f"{text}\n{outcome.error}" if outcome.error else text


def _reconcile(args: argparse.Namespace) -> int:
    from amlretrain.config import load_config
    from amlretrain.configured import reconcile_configured
    from amlretrain.errors import VerificationFailed

    config = load_config(args.config)
    targets = (
        [_find_target(config, args.target)] if args.target else [t for t, _ in config.targets()]
    )
    ledger = config.ledger()
    known = {t.key for t in targets}
    strays = sorted({p.target for p in ledger.pending()} - known if args.target is None else set())
    report = reconcile_configured(config, targets, ledger=ledger, wait_lock=args.wait_lock)
    text = report.summary()
    for key in strays:
        text += f"\n{key}: open, but not a target of {config.source}: not read"
    data = report.to_dict()
    data["not_in_config"] = strays
    emit(args, data, text)
    if report.unresolved or strays:
        names = [t.target for t in report.unresolved] + strays
        raise VerificationFailed("still open (could not be read): " + ", ".join(names))
    return 0


def _history(args: argparse.Namespace) -> int:
    from amlretrain._wire import ci_get
    from amlretrain.config import load_config
    from amlretrain.ledger import Ledger

    if args.config:
        config = load_config(args.config)
        ledger = config.ledger()
    else:
        ledger = Ledger(Path(args.ledger) if args.ledger else None)
    entries = [e for e in ledger.entries() if args.target is None or args.target in e.target]
    lines = []
    for problem in ledger.problems:
        sys.stderr.write(f"amlretrain: warning: {problem}\n")
    for e in entries:
        metric = ""
        if e.metrics:
            auc = ci_get(e.metrics, "AUC")
            metric = f" AUC {auc:.4g}" if auc is not None else ""
        outcome = "UNKNOWN" if e.is_unknown else e.outcome
        lines.append(
            f"{e.id}  {e.time}  {e.action:<8} {outcome:<9} {e.target}"
            + ("  (reconciled)" if e.reconciled else "")
            + f"\n    {e.previous_model or '-'} -> {e.new_model or '-'}"
            f" (serving {e.serving_model or 'unknown'}){metric}"
            + (f"  job {e.job_id}" if e.job_id else "")
        )
        if e.message:
            lines.append(f"    {e.message}")
    opened = [p for p in ledger.pending() if args.target is None or args.target in p.target]
    for p in opened:
        for intent in p.intents:
            lines.append(
                f"OPEN {intent.id}  {intent.time}  {intent.action:<8} {p.target}\n"
                f"    {intent.previous_model or '-'} -> {intent.new_model or '-'} "
                "(no confirmed outcome: run `amlretrain reconcile`)"
            )
    data = [e.to_output() for e in entries]
    data += [i.to_output() for p in opened for i in p.intents]
    emit(args, data, "\n".join(lines) or "(no entries)")
    return 0


def _find_target(config: RetrainConfig, name: str) -> Target:
    from amlretrain.configured import find_target

    return find_target(config, name)
