"""``amlretrain definition show|validate|rewrite|diff``: offline work on definition files."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from amlretrain._redact import redact, redact_data
from amlretrain.cli._common import add_group, add_output_flag, emit

if TYPE_CHECKING:
    from amlretrain.studio.definition import WebServiceDefinition


__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``definition`` command group."""
    commands = add_group(
        subparsers,
        "definition",
        help="inspect, validate, rewrite and diff web-service definition files (offline)",
        description="Work on definition files as Export-AzMlWebService writes them. "
        "Input files are never modified unless -o names them.",
    )

    show = commands.add_parser("show", help="title, package type, assets, trained models")
    show.add_argument("file", help="definition file (JSON)")
    add_output_flag(show)
    show.set_defaults(handler=_show)

    validate = commands.add_parser("validate", help="check a definition; exit 3 if invalid")
    validate.add_argument("file", help="definition file (JSON)")
    add_output_flag(validate)
    validate.set_defaults(handler=_validate)

    rewrite = commands.add_parser(
        "rewrite", help="point the trained-model asset at a new .ilearner"
    )
    rewrite.add_argument("file", help="definition file (JSON)")
    rewrite.add_argument("--uri", required=True, help="the new model's blob URL (.ilearner)")
    rewrite.add_argument("--asset", help="asset id or name (default: the only trained model)")
    rewrite.add_argument("--credentials", help="new locationInfo.credentials for the asset")
    rewrite.add_argument("-o", "--out", help="write the new definition here (may be FILE itself)")
    rewrite.add_argument("--diff", action="store_true", help="print the JSON Patch")
    add_output_flag(rewrite)
    rewrite.set_defaults(handler=_rewrite)

    diff = commands.add_parser("diff", help="print the JSON Patch (RFC 6902) from OLD to NEW")
    diff.add_argument("old", help="the definition file before (JSON)")
    diff.add_argument("new", help="the definition file after (JSON)")
    add_output_flag(diff)
    diff.set_defaults(handler=_diff)


def summary(definition: WebServiceDefinition) -> dict[str, Any]:
    """The data ``definition show`` prints."""
    props = definition.properties
    models = []
    for model in definition.trained_models:
        expiry = model.sas_expires_on
        models.append(
            {
                "asset_id": model.asset_id,
                "name": model.name,
                "uri": model.uri_redacted,
                "sas_expires_on": expiry.isoformat() if expiry else None,
            }
        )
    return {
        "name": definition.name,
        "title": props.title if props else None,
        "package_type": definition.package_type,
        "api_shape": definition.api_shape,
        "read_only": definition.is_read_only,
        "assets": [
            {
                "asset_id": asset_id,
                "name": asset.name,
                "type": asset.type,
                "uri": redact(asset.location_info.uri or "") if asset.location_info else None,
            }
            for asset_id, asset in definition.assets.items()
        ],
        "trained_models": models,
    }


def _show(args: argparse.Namespace) -> int:
    from amlretrain.studio.definition import WebServiceDefinition

    definition = WebServiceDefinition.load(args.file)
    data = summary(definition)
    lines = [
        f"title:         {data['title'] or '-'}",
        f"name:          {data['name'] or '-'}",
        f"package type:  {data['package_type']}",
        f"api shape:     {data['api_shape']}",
        f"read-only:     {'yes' if data['read_only'] else 'no'}",
        f"assets ({len(data['assets'])}):",
    ]
    for asset in data["assets"]:
        lines.append(f"  {asset['asset_id']}: {asset['name']} [{asset['type']}] {asset['uri']}")
    lines.append(f"trained models ({len(data['trained_models'])}):")
    for model in data["trained_models"]:
        expiry = model["sas_expires_on"] or "no SAS expiry"
        lines.append(f"  {model['asset_id']}: {model['name']} -> {model['uri']} ({expiry})")
    emit(args, data, "\n".join(lines))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from amlretrain.studio.definition import WebServiceDefinition

    definition = WebServiceDefinition.load(args.file)
    data = {"file": args.file, "valid": True, "trained_models": len(definition.trained_models)}
    emit(args, data, f"{args.file}: valid ({len(definition.trained_models)} trained model(s))")
    return 0


def _patch_lines(ops: list[dict[str, Any]]) -> str:
    # Redacted as data first: a value under a secret member (``--credentials``) is
    # found by its path, which the text form no longer pairs with a member name.
    lines = []
    for op in redact_data(ops):
        value = json.dumps(op.get("value"), ensure_ascii=False) if "value" in op else ""
        lines.append(f"{op['op']:<8}{op['path']} {value}".rstrip())
    return "\n".join(lines) or "(no differences)"


def _rewrite(args: argparse.Namespace) -> int:
    from amlretrain.studio.definition import WebServiceDefinition

    definition = WebServiceDefinition.load(args.file)
    new = definition.with_trained_model(args.uri, asset=args.asset, credentials=args.credentials)
    ops = list(definition.diff(new))
    if args.out:
        new.save(args.out)
        data: dict[str, Any] = {"written": args.out, "patch": ops}
        text = f"wrote {args.out}"
        if args.diff:
            text += "\n" + _patch_lines(ops)
        emit(args, data, text)
        return 0
    if args.diff:
        emit(args, ops, _patch_lines(ops))
        return 0
    emit(args, new.to_dict(), new.to_json())
    return 0


def _diff(args: argparse.Namespace) -> int:
    from amlretrain.studio.definition import WebServiceDefinition

    old = WebServiceDefinition.load(args.old, validate=False)
    new = WebServiceDefinition.load(args.new, validate=False)
    ops = list(old.diff(new))
    emit(args, ops, _patch_lines(ops))
    return 0
