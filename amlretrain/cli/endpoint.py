"""``amlretrain endpoint list|get|add|patch|refresh|delete``: classic web-service endpoints."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from amlretrain.cli._common import add_group, add_output_flag, emit
from amlretrain.errors import ConfigurationError

if TYPE_CHECKING:
    from amlretrain.blobs import BlobRef
    from amlretrain.studio.models import Endpoint


__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``endpoint`` command group."""
    from amlretrain.cli._settings import add_classic_flags

    commands = add_group(
        subparsers,
        "endpoint",
        help="classic web-service endpoints: list, get, add, patch, refresh, delete",
        description="The classic management API (management.azureml.net). The workspace "
        "token comes from AMLRETRAIN_WORKSPACE_TOKEN or the profile.",
    )

    def command(name: str, help_text: str, *, endpoint: bool = True) -> argparse.ArgumentParser:

        p: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        p.add_argument("web_service", help="web service id")
        if endpoint:
            p.add_argument("endpoint", help="endpoint name")
        add_classic_flags(p)
        add_output_flag(p)
        return p

    command("list", "list the endpoints (Get-AmlWebServiceEndpoint)", endpoint=False).set_defaults(
        handler=_list
    )
    command("get", "show one endpoint (Get-AmlWebServiceEndpoint -EndpointName)").set_defaults(
        handler=_get
    )

    add = command("add", "add an endpoint (Add-AmlWebServiceEndpoint)")
    add.add_argument("--description", help="the endpoint's description")
    add.add_argument(
        "--throttle-level",
        choices=("Low", "High"),
        default="Low",
        help="Low (4 concurrent calls, the default) or High",
    )
    add.add_argument("--max-concurrent-calls", type=int, help="1-200, with --throttle-level High")
    add.add_argument(
        "--prevent-update",
        action="store_true",
        help="the endpoint ignores later updates of the web service (PreventUpdate)",
    )
    add.set_defaults(handler=_add)

    patch = command(
        "patch",
        "swap the trained model (Patch-AmlWebServiceEndpoint) or change settings "
        "(re-sent by PUT; GUESS)",
    )
    patch.add_argument("--resource", help="resource name, e.g. 'Census Model [trained model]'")
    patch.add_argument("--blob-url", help="the .ilearner URL with its SAS (quote it)")
    patch.add_argument("--base-location", help="BaseLocation (instead of --blob-url)")
    patch.add_argument("--relative-location", help="RelativeLocation (instead of --blob-url)")
    patch.add_argument("--sas-token", help="SasBlobToken (instead of --blob-url)")
    patch.add_argument(
        "--verify-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="with --resource: how long to read the endpoint until it shows the new model "
        "(default 120)",
    )
    # Settings go in the documented add-endpoint PUT, with the current values for the rest
    # (ClassicClient.update_endpoint); that body has no DiagnosticsTraceLevel.
    patch.add_argument("--description", help="new description (sent by PUT)")
    patch.add_argument("--throttle-level", choices=("Low", "High"), help="(sent by PUT)")
    patch.add_argument("--max-concurrent-calls", type=int, help="1-200, High only (by PUT)")
    patch.set_defaults(handler=_patch)

    refresh = command(
        "refresh", "copy the default endpoint's graph (Refresh-AmlWebServiceEndpoint)"
    )
    refresh.add_argument(
        "--overwrite-resources",
        action="store_true",
        help="also replace trained models with the experiment's (undoes a retrain)",
    )
    refresh.set_defaults(handler=_refresh)

    delete = command("delete", "delete an endpoint (Remove-AmlWebServiceEndpoint)")
    delete.add_argument("--yes", action="store_true", help="do not ask (required)")
    delete.set_defaults(handler=_delete)


def _data(ep: Endpoint) -> dict[str, Any]:
    import attrs

    data = attrs.asdict(ep, recurse=False)
    for secret in ("primary_key", "secondary_key"):
        data.pop(secret, None)
    data.pop("extra", None)
    data["resources"] = [
        {"name": r.name, "kind": r.kind, "location": r.location.url if r.location else None}
        for r in ep.resources
    ]
    return data


def _text(ep: Endpoint) -> str:
    lines = [
        f"name:          {ep.name}",
        f"api location:  {ep.api_location}",
        f"throttle:      {ep.throttle_level} ({ep.max_concurrent_calls} calls)",
    ]
    for r in ep.resources:
        lines.append(f"resource:      {r.name!r} -> {r.location.url if r.location else None}")
    return "\n".join(lines)


def _list(args: argparse.Namespace) -> int:
    from amlretrain.cli._settings import resolve

    with resolve(args).classic_client() as client:
        endpoints = list(client.list_endpoints(args.web_service))  # read while open
    emit(args, [_data(e) for e in endpoints], "\n".join(e.name for e in endpoints) or "(none)")
    return 0


def _get(args: argparse.Namespace) -> int:
    from amlretrain.cli._settings import resolve

    with resolve(args).classic_client() as client:
        ep = client.get_endpoint(args.web_service, args.endpoint)
    emit(args, _data(ep), _text(ep))
    return 0


def _add(args: argparse.Namespace) -> int:
    from amlretrain.cli._settings import resolve

    with resolve(args).classic_client() as client:
        ep = client.create_endpoint(
            args.web_service,
            args.endpoint,
            description=args.description,
            throttle_level=args.throttle_level,
            max_concurrent_calls=args.max_concurrent_calls,
            prevent_update=args.prevent_update,
        )
    emit(args, _data(ep), "added\n" + _text(ep))
    return 0


def _blob(args: argparse.Namespace) -> BlobRef:
    from amlretrain.blobs import BlobRef

    if args.blob_url:
        if args.base_location or args.relative_location or args.sas_token:
            raise ConfigurationError("give --blob-url or the three location flags, not both")
        return BlobRef.from_url(args.blob_url)
    if not (args.base_location and args.relative_location):
        raise ConfigurationError(
            "--resource needs --blob-url, or --base-location and --relative-location "
            "(and --sas-token)"
        )
    return BlobRef(
        base_location=args.base_location,
        relative_location=args.relative_location,
        sas_token=args.sas_token or "",
    )


def _patch(args: argparse.Namespace) -> int:
    from amlretrain.cli._settings import resolve

    settings_given = any(
        v is not None for v in (args.description, args.throttle_level, args.max_concurrent_calls)
    )
    with resolve(args).classic_client() as client:
        if args.resource:
            if settings_given:
                raise ConfigurationError("swap the model and change settings in two calls")
            ep = client.update_trained_model(
                args.web_service,
                args.endpoint,
                args.resource,
                _blob(args),
                verify_timeout=args.verify_timeout,
            )
            emit(args, _data(ep), "trained model replaced and verified\n" + _text(ep))
            return 0
        if not settings_given:
            raise ConfigurationError("nothing to patch: give --resource or a setting to change")
        ep = client.update_endpoint(
            args.web_service,
            args.endpoint,
            description=args.description,
            throttle_level=args.throttle_level,
            max_concurrent_calls=args.max_concurrent_calls,
        )
    emit(args, _data(ep), "updated\n" + _text(ep))
    return 0


def _refresh(args: argparse.Namespace) -> int:
    from amlretrain.cli._settings import resolve

    with resolve(args).classic_client() as client:
        changed = client.refresh_endpoint(
            args.web_service, args.endpoint, overwrite_resources=args.overwrite_resources
        )
    emit(args, {"changed": changed}, "refreshed" if changed else "no change detected")
    return 0


def _delete(args: argparse.Namespace) -> int:
    from amlretrain.cli._settings import resolve

    if not args.yes:
        raise ConfigurationError(
            "deleting an endpoint cannot be undone (its keys and model go with it): pass --yes"
        )
    with resolve(args).classic_client() as client:
        client.delete_endpoint(args.web_service, args.endpoint)
    emit(args, {"deleted": args.endpoint}, f"deleted {args.endpoint}")
    return 0
