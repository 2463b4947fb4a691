"""``amlretrain migrate inventory|check``: the way over from Studio (classic) to Azure ML v2.

``inventory`` lists what a ``retrain.toml`` reaches (classic services and endpoints, New
web services, the models they serve, their metric history from the ledger); ``check``
maps a definition's modules to their v2 equivalents (V2-NOTES 7). Both only read. See
docs/migration-v2.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlretrain._redact import redact
from amlretrain.cli._common import add_group, add_output_flag, emit
from amlretrain.errors import ConfigurationError

if TYPE_CHECKING:
    from amlretrain.migrate import MigrationInventory, ModuleMapping
    from amlretrain.studio.definition import WebServiceDefinition

__all__ = ["EXIT_STRICT", "register"]

#: ``migrate check --strict``: a module has no v2 equivalent, or is not in the notes.
EXIT_STRICT = 16


def register(subparsers: Any) -> None:
    """Add the ``migrate`` command group."""
    commands = add_group(
        subparsers,
        "migrate",
        help="the way over to Azure ML v2: what there is, and what maps to what (reads only)",
        description="Studio (classic) is retired: its experiments are rebuilt in Azure ML "
        "v2, not imported, and an .ilearner cannot be loaded there (retrain from the same "
        "data). These commands only read. See docs/migration-v2.md.",
    )

    inv = commands.add_parser(
        "inventory",
        help="the classic services, endpoints, models served and their metric history",
        description="List every classic web service (and its endpoints) of the workspaces "
        "the config's classic targets reach, every New web service of its arm targets' "
        "resource groups, the trained models each serves, and each endpoint's deployments "
        "and metrics from the ledger. Targets already on v2 (online_endpoint) are listed "
        "by key.",
    )
    inv.add_argument("--config", "-c", required=True, help="a retrain.toml (its targets' clients)")
    inv.add_argument("--ledger", help="read the metric history from this ledger file instead")
    add_output_flag(inv)
    inv.set_defaults(handler=_inventory)

    check = commands.add_parser(
        "check",
        help="map a definition's modules to their v2 equivalents (V2-NOTES 7)",
        description="Map each module of a web-service definition to its Azure ML v2 "
        "(designer) equivalent as the v2 notes list it (V2-NOTES 7.2): 'same', "
        "'replaced', 'none' (the notes list no equivalent) or 'not in the notes'. A trained "
        "model (.ilearner) is 'none': v2 cannot load it (V2-NOTES 7.3). Check the training "
        "web service's definition: it holds the learner. Modules without an equivalent "
        f"are reported, not an error (exit 0); with --strict the exit code is {EXIT_STRICT}. "
        "A file that is not a definition exits 3, one that cannot be read 4.",
    )
    check.add_argument(
        "definition",
        metavar="DEFINITION",
        nargs="?",
        help="a definition file (JSON), as `amlretrain definition` commands take",
    )
    check.add_argument(
        "--config", "-c", help="with --target: read the definition of a config's arm target"
    )
    check.add_argument(
        "--target", help="with --config: the arm target (its name or key) whose service to read"
    )
    check.add_argument(
        "--strict",
        action="store_true",
        help=f"exit {EXIT_STRICT} when a module has no v2 equivalent or is not in the notes",
    )
    add_output_flag(check)
    check.set_defaults(handler=_check)


# -- inventory ----------------------------------------------------------------------------


def _metrics_text(metrics: Mapping[str, float]) -> str:
    return ", ".join(f"{name}={value:.4g}" for name, value in metrics.items()) or "-"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def inventory_text(found: MigrationInventory) -> str:
    """The table ``migrate inventory`` prints."""
    rows = [("KIND", "SERVICE", "ENDPOINT", "MODEL", "DEPLOYS", "LATEST METRICS")]
    for service, endpoint in found.endpoints():
        flags = [
            f for f, on in (("default", endpoint.default), ("target", endpoint.configured)) if on
        ]
        name = endpoint.name + (f" ({', '.join(flags)})" if flags else "")
        models = [m.uri or m.name or "?" for m in endpoint.models] or ["-"]
        latest = endpoint.history[-1].metrics if endpoint.history else {}
        rows.append(
            (
                service.kind,
                service.name or service.id,
                name,
                models[0] + (f" (+{len(models) - 1})" if len(models) > 1 else ""),
                str(len(endpoint.history)),
                _metrics_text(latest),
            )
        )
    lines = _table(rows) if len(rows) > 1 else ["(no web services)"]
    for key in found.v2_targets:
        lines.append(f"already on Azure ML v2: {key}")
    ilearners = sum(1 for _, e in found.endpoints() for m in e.models if m.is_ilearner)
    if ilearners:
        lines.append(
            f"{ilearners} model(s) are .ilearner files: Azure ML v2 cannot load them; "
            "retrain from the same data (docs/migration-v2.md)"
        )
    return "\n".join(lines)


def _inventory(args: argparse.Namespace) -> int:
    from amlretrain.config import load_config
    from amlretrain.ledger import Ledger
    from amlretrain.migrate import inventory

    config = load_config(args.config)
    if args.ledger:
        path = Path(args.ledger)
        if not path.is_file():
            raise ConfigurationError(f"--ledger: no such file {path}")
        history = Ledger(path).history()
    else:
        history = config.ledger().history()
    found = inventory([target for target, _ in config.targets()], history=history)
    emit(args, found.to_dict(), inventory_text(found))
    return 0


# -- check ----------------------------------------------------------------------------------


def check_text(source: str, rows: Sequence[ModuleMapping], *, learner: bool) -> str:
    """The table ``migrate check`` prints."""
    table = [("ASSET", "MODULE", "KIND", "STATUS", "V2 EQUIVALENT", "SECTION")]
    for row in rows:
        table.append(
            (
                row.asset_id or ",".join(row.nodes),
                row.name or "-",
                row.kind,
                row.status + (" (by group)" if row.basis == "group" else ""),
                row.v2 or "-",
                row.section or "-",
            )
        )
    lines = [f"{source}:", *_table(table)]
    without = [r for r in rows if not r.has_equivalent]
    if without:
        lines.append(f"{len(without)} without a v2 equivalent:")
        lines += [f"  {r.name or r.asset_id} [{r.status}]: {r.note}" for r in without]
    else:
        lines.append("every module has a v2 equivalent")
    if not learner:
        lines.append(
            "no learner module here: check the training web service's definition, "
            "which holds the learner"
        )
    return "\n".join(lines)


def _definition(args: argparse.Namespace) -> tuple[str, WebServiceDefinition]:
    from amlretrain.studio.definition import WebServiceDefinition

    if args.definition and (args.config or args.target):
        raise ConfigurationError("give DEFINITION, or --config with --target, not both")
    if args.definition:
        return args.definition, WebServiceDefinition.load(args.definition)
    if not (args.config and args.target):
        raise ConfigurationError("give a DEFINITION file, or --config and --target")
    from amlretrain.config import load_config
    from amlretrain.studio.targets import ArmTarget

    targets = [t for t, _ in load_config(args.config).targets()]
    for target in targets:
        if args.target in (target.key, getattr(target, "name", None)):
            if not isinstance(target, ArmTarget):
                raise ConfigurationError(
                    f"--target {args.target}: only an arm target's definition can be read "
                    "(export a classic experiment's web service as a New one, or pass its "
                    "definition file)"
                )
            return target.key, target.client.get(target.resource_group, target.name)
    names = ", ".join(repr(getattr(t, "name", t.key)) for t in targets)
    raise ConfigurationError(f"--target {args.target}: no such target in {args.config} ({names})")


def _check(args: argparse.Namespace) -> int:
    from amlretrain.migrate import check_definition, holds_a_learner

    source, definition = _definition(args)
    rows = check_definition(definition)
    learner = holds_a_learner(rows)
    without = [r for r in rows if not r.has_equivalent]
    data = {
        "definition": source,
        "modules": [r.to_dict() for r in rows],
        "without_equivalent": len(without),
        "holds_learner": learner,
        "strict": args.strict,
    }
    emit(args, data, check_text(source, rows, learner=learner))
    if args.strict and without:
        names = ", ".join(repr(r.name or r.asset_id) for r in without)
        sys.stderr.write(
            redact(
                f"amlretrain: error: {len(without)} module(s) have no v2 equivalent: {names} "
                f"(--strict: exit {EXIT_STRICT})\n"
            )
        )
        return EXIT_STRICT
    return 0
