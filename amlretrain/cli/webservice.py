"""``amlretrain webservice get|list|export|import|update|delete|keys``: New (ARM) web services."""

from __future__ import annotations

import argparse
import hashlib
import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlretrain.cli._common import add_group, add_output_flag, emit
from amlretrain.errors import ConfigurationError, NotFoundError

if TYPE_CHECKING:
    from amlretrain.cli._settings import Settings
    from amlretrain.storage import BlobStore
    from amlretrain.studio.definition import WebServiceDefinition
    from amlretrain.studio.webservices import WebServicesClient


__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``webservice`` command group."""
    from amlretrain.cli._settings import add_arm_flags

    commands = add_group(
        subparsers,
        "webservice",
        help="New (ARM) web services: get, list, export, import, update, delete, keys",
        description="Microsoft.MachineLearning/webServices through ARM. Settings: see "
        "'amlretrain webservice get --help' and the profile file.",
    )

    def target(name: str, help_text: str, *, output: bool = True) -> argparse.ArgumentParser:
        from amlretrain.cli._settings import add_arm_flags

        p: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        p.add_argument("name", help="web service name")
        p.add_argument("-g", "--resource-group", help="(AMLRETRAIN_RESOURCE_GROUP)")
        add_arm_flags(p)
        if output:
            add_output_flag(p)
        return p

    get = target("get", "show a web service (Get-AzMlWebService)")
    get.add_argument("--region", help="read the definition valid for this region")
    get.set_defaults(handler=_get)

    lst = commands.add_parser("list", help="list web services (of a resource group)")
    lst.add_argument("-g", "--resource-group", help="(AMLRETRAIN_RESOURCE_GROUP)")
    lst.add_argument("--all", action="store_true", help="the whole subscription")
    add_arm_flags(lst)
    add_output_flag(lst)
    lst.set_defaults(handler=_list)

    export = target("export", "save the definition to a file (Export-AzMlWebService)")
    export.add_argument("-o", "--out", required=True, help="file to write")
    export.add_argument("--force", action="store_true", help="overwrite an existing file")
    export.add_argument(
        "--include-secrets",
        action="store_true",
        help="keep asset credentials and SAS signatures in the file (default: removed)",
    )
    export.set_defaults(handler=_export)

    imp = target("import", "create or OVERWRITE a service from a file (New-AzMlWebService)")
    imp.add_argument("file", help="definition file")
    imp.add_argument("--location", help="Azure region (default: the file's)")
    imp.add_argument("--force", action="store_true", help="overwrite an existing service")
    imp.add_argument(
        "--overwrite-fetched",
        action="store_true",
        help="allow a document read by GET (it lacks keys, storage key, commitment plan)",
    )
    imp.set_defaults(handler=_import)

    update = target("update", "PATCH only what changed, then verify (Update-AzMlWebService)")
    source = update.add_mutually_exclusive_group(required=True)
    source.add_argument("--definition", help="the new definition file")
    source.add_argument("--model-uri", help="point the trained-model asset at this .ilearner")
    update.add_argument("--asset", help="asset id or name (with --model-uri)")
    update.add_argument("--dry-run", action="store_true", help="print the PATCH body only")
    update.add_argument("--timeout", type=float, help="seconds to wait for the operation")
    update.set_defaults(handler=_update)

    delete = target("delete", "delete a web service (Remove-AzMlWebService)")
    delete.add_argument("--yes", action="store_true", help="do not ask (required)")
    delete.set_defaults(handler=_delete)

    keys = target("keys", "key fingerprints; --to-file writes the keys (Get-AzMlWebServiceKey)")
    keys.add_argument("--to-file", help="write {primary, secondary} JSON here (mode 0600)")
    keys.set_defaults(handler=_keys)


def _summary(d: WebServiceDefinition) -> str:
    props = d.properties
    lines = [
        f"name:            {d.name}",
        f"location:        {d.location}",
        f"title:           {props.title if props else None}",
        f"state:           {props.provisioning_state if props else None}",
        f"read only:       {d.is_read_only}",
    ]
    for model in d.trained_models:
        lines.append(f"trained model:   {model.asset_id} {model.name!r} -> {model.uri_redacted}")
    return "\n".join(lines)


def _rg(settings: Settings) -> str:
    return settings.need("resource_group")


def _get(args: argparse.Namespace) -> int:
    from amlretrain.cli._settings import resolve

    settings = resolve(args)
    with settings.arm_client() as arm:
        d = arm.get(_rg(settings), args.name, region=args.region)
    emit(args, d.to_dict(), _summary(d))
    return 0


def _list(args: argparse.Namespace) -> int:
    from amlretrain.cli._settings import resolve

    settings = resolve(args)
    with settings.arm_client() as arm:
        items = list(arm.list(None if args.all else _rg(settings)))  # every page, while open
    emit(
        args,
        [d.to_dict() for d in items],
        "\n".join(f"{d.name}\t{d.location}\t{d.id}" for d in items) or "(none)",
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from amlretrain.cli._settings import resolve

    out = Path(args.out)
    if out.exists() and not args.force:
        raise ConfigurationError(f"{out} exists: pass --force to overwrite it")
    settings = resolve(args)
    with settings.arm_client() as arm:
        d = arm.get(_rg(settings), args.name)
    (d if args.include_secrets else d.without_secrets()).save(out)
    emit(args, {"name": d.name, "file": str(out)}, f"saved {d.name} to {out}")
    return 0


def _import(args: argparse.Namespace) -> int:
    import attrs

    from amlretrain.cli._settings import resolve
    from amlretrain.studio.definition import WebServiceDefinition

    d = WebServiceDefinition.load(args.file)
    d = attrs.evolve(d, location=args.location or d.location)
    settings = resolve(args)
    rg = _rg(settings)
    with settings.arm_client() as arm:
        if not args.force:
            try:
                arm.get(rg, args.name)
            except NotFoundError:
                pass
            else:
                raise ConfigurationError(
                    f"web service {args.name} exists and a PUT overwrites it without recovery: "
                    "pass --force, or use 'webservice update' for a minimal PATCH"
                )
        result = arm.create_or_update(rg, args.name, d, overwrite_fetched=args.overwrite_fetched)
    emit(args, result.to_dict(), "created or replaced\n" + _summary(result))
    return 0


def _update(args: argparse.Namespace) -> int:
    from amlretrain.blobs import BlobRef
    from amlretrain.cli._settings import resolve
    from amlretrain.studio.definition import WebServiceDefinition
    from amlretrain.studio.ilearner import patch_body
    from amlretrain.swap import with_read_sas

    settings = resolve(args)
    rg = _rg(settings)
    with settings.arm_client() as arm:
        current = arm.get(rg, args.name)
        if args.definition:
            new = WebServiceDefinition.load(args.definition)
        else:
            model = with_read_sas(BlobRef.from_url(args.model_uri), settings.store(), _SAS_LIFETIME)
            new = current.with_trained_model(model.sas_url, asset=args.asset)
        _check_new_models(current, new, settings.store())  # before anything is sent
        if args.dry_run:
            body = patch_body(current, new)
            emit(args, body, "PATCH body (not sent):\n" + _json(body))
            return 0
        result = arm.update(rg, args.name, new, expected=current, timeout=args.timeout)
        scored = _scoring_check(arm, rg, args.name, result)
    emit(args, result.to_dict(), f"updated and verified{scored}\n" + _summary(result))
    return 0


#: The lifetime of a read SAS minted for a model URL given without one.
_SAS_LIFETIME = timedelta(days=7)


def _check_new_models(
    current: WebServiceDefinition, new: WebServiceDefinition, store: BlobStore | None
) -> None:
    """Every trained model the update points the service at must be readable by it."""
    from amlretrain.blobs import BlobRef
    from amlretrain.swap import check_model

    before = {m.asset_id: m.uri for m in current.trained_models}
    for model in new.trained_models:
        if model.uri and model.uri != before.get(model.asset_id):
            check_model(BlobRef.from_url(model.uri), store)


def _scoring_check(arm: WebServicesClient, rg: str, name: str, result: WebServiceDefinition) -> str:
    """Score the definition's exampleRequest through the updated service, if it has one.

    Raises:
        VerificationFailed: the service serves the new model but cannot score with it.
    """
    from amlretrain.errors import AmlRetrainError, VerificationFailed
    from amlretrain.studio.targets import ArmTarget
    from amlretrain.targets import Sample

    sample = Sample.from_example_request(result)
    if sample is None:
        return " (no exampleRequest: no scoring check)"
    target = ArmTarget(arm, rg, name)
    try:
        rows = len(target.score(sample).first.records())
    except AmlRetrainError as err:
        raise VerificationFailed(
            f"web service {name} now references the new model, but scoring its "
            f"exampleRequest failed: {err}"
        ) from err
    return f"; the exampleRequest scored ({rows} row(s))"


def _json(data: Any) -> str:
    import json

    from amlretrain._redact import redact_data

    return json.dumps(redact_data(data), indent=2)


def _delete(args: argparse.Namespace) -> int:
    from amlretrain.cli._settings import resolve

    if not args.yes:
        raise ConfigurationError("deleting a web service cannot be undone: pass --yes")
    settings = resolve(args)
    with settings.arm_client() as arm:
        arm.delete(_rg(settings), args.name)
    emit(args, {"deleted": args.name}, f"deleted {args.name}")
    return 0


def _fingerprint(value: str | None) -> str | None:
    if not value:
        return None
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:12]


def _keys(args: argparse.Namespace) -> int:
    from amlretrain.cli._settings import resolve

    settings = resolve(args)
    with settings.arm_client() as arm:
        keys = arm.list_keys(_rg(settings), args.name)
    if args.to_file:
        import json

        path = Path(args.to_file)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"primary": keys.primary, "secondary": keys.secondary}, handle)
    # Named *_fingerprint: members called "primary"/"secondary" are redacted as keys.
    prints = {
        "primary_fingerprint": _fingerprint(keys.primary),
        "secondary_fingerprint": _fingerprint(keys.secondary),
    }
    text = (
        f"primary:   {prints['primary_fingerprint']}\nsecondary: {prints['secondary_fingerprint']}"
    )
    if args.to_file:
        text += f"\nkeys written to {args.to_file} (mode 0600)"
    emit(args, {"fingerprints": prints, "file": args.to_file}, text)
    return 0
