"""``amlretrain retrain|deploy|rollback|history``: the retrain loop from a config file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlretrain.cli._common import add_output_flag, emit, wants_json
from amlretrain.errors import ConfigurationError

if TYPE_CHECKING:
    from amlretrain.config import RetrainConfig
    from amlretrain.result import RetrainResult
    from amlretrain.targets import Target


__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``retrain``, ``deploy``, ``rollback`` and ``history``."""
    p = subparsers.add_parser(
        "retrain",
        help="train on new data, gate, deploy to the targets, verify, record",
        description="Run the whole retrain loop described by a retrain.toml "
        "(see docs/config.md). Exit 11 when the gate rejects the model.",
    )
    p.add_argument("--config", "-c", required=True, help="the retrain.toml")
    p.add_argument("--dry-run", action="store_true", help="train and plan; change nothing")
    p.add_argument("--data", help="training data file (overrides [training].data)")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    add_output_flag(p)
    p.set_defaults(handler=_retrain)

    d = subparsers.add_parser(
        "deploy", help="deploy an existing .ilearner to the targets of a config (no training)"
    )
    d.add_argument("--config", "-c", required=True)
    d.add_argument("--model", required=True, help="the model blob URL (with a SAS if needed)")
    d.add_argument("--dry-run", action="store_true")
    add_output_flag(d)
    d.set_defaults(handler=_deploy)

    r = subparsers.add_parser("rollback", help="put a previous model back on a target")
    r.add_argument("target", help="the target: its label, ledger key, or index in the config")
    r.add_argument("--config", "-c", required=True)
    r.add_argument("--to", help="a ledger entry id: restore the model that entry deployed")
    r.add_argument("--dry-run", action="store_true")
    add_output_flag(r)
    r.set_defaults(handler=_rollback)

    h = subparsers.add_parser("history", help="the ledger of a target")
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


def _retrain(args: argparse.Namespace) -> int:
    from amlretrain.config import group_by_data, load_config
    from amlretrain.workflow import retrain

    config = load_config(args.config)
    groups = group_by_data(config, config.targets())
    if args.data:
        groups = {args.data: [t for targets in groups.values() for t in targets]}
    ledger = config.ledger()
    results = []
    for data, targets in groups.items():
        training = config.training(data)
        results.append(
            retrain(
                training,
                targets,
                gate=config.gate,
                ledger=ledger,
                dry_run=args.dry_run,
                sample=config.sample,
                concurrency=config.concurrency,
                progress=args.progress,
                on_step=None if wants_json(args) else _progress,
            )
        )
    return _finish(args, results)


def _deploy(args: argparse.Namespace) -> int:
    from amlretrain.blobs import BlobRef
    from amlretrain.config import load_config
    from amlretrain.workflow import deploy

    config = load_config(args.config)
    targets = [t for t, _ in config.targets()]
    result = deploy(
        BlobRef.from_url(args.model),
        targets,
        gate=None,
        ledger=config.ledger(),
        dry_run=args.dry_run,
        sample=config.sample,
        concurrency=config.concurrency,
        store=config.store(),
    )
    return _finish(args, [result])


def find_target(config: RetrainConfig, name: str) -> Target:
    """The config's target called ``name`` (label, ledger key, part of either, or index)."""
    targets = [t for t, _ in config.targets()]
    if name.isdigit() and int(name) < len(targets):
        return targets[int(name)]
    exact = [t for t in targets if name in (t.label, t.key)]
    matches = exact or [t for t in targets if name in t.label or name in t.key]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(t.label for t in targets)
    if not matches:
        raise ConfigurationError(f"no target {name!r} in {config.source}; targets: {known}")
    raise ConfigurationError(f"{name!r} matches several targets ({known}); be more precise")


def _rollback(args: argparse.Namespace) -> int:
    from amlretrain.config import load_config
    from amlretrain.workflow import rollback

    config = load_config(args.config)
    target = find_target(config, args.target)
    outcome = rollback(
        target,
        ledger=config.ledger(),
        store=config.store(),
        to=args.to,
        sample=config.sample,
        dry_run=args.dry_run,
    )
    text = f"{outcome.target}: {outcome.status}; serving {outcome.serving_model or '-'}"
    if outcome.error:
        text += f"\n{outcome.error}"
    emit(args, outcome.to_dict(), text)
    if outcome.status not in ("succeeded", "dry-run", "skipped"):
        raise ConfigurationError(f"rollback of {outcome.target} did not succeed: {outcome.error}")
    return 0


def _history(args: argparse.Namespace) -> int:
    from amlretrain.config import load_config
    from amlretrain.ledger import Ledger

    if args.config:
        config = load_config(args.config)
        ledger = config.ledger()
    else:
        ledger = Ledger(Path(args.ledger) if args.ledger else None)
    entries = [e for e in ledger.entries() if args.target is None or args.target in e.target]
    lines = []
    for e in entries:
        metric = ""
        if e.metrics:
            auc = next((v for k, v in e.metrics.items() if k.lower() == "auc"), None)
            metric = f" AUC {auc:.4g}" if auc is not None else ""
        lines.append(
            f"{e.id}  {e.time}  {e.action:<8} {e.outcome:<9} {e.target}\n"
            f"    {e.previous_model or '-'} -> {e.new_model or '-'}"
            f" (serving {e.serving_model or 'unknown'}){metric}"
        )
        if e.message:
            lines.append(f"    {e.message}")
    emit(args, [e.to_dict() for e in entries], "\n".join(lines) or "(no entries)")
    return 0
