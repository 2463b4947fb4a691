"""Which web service a BES/RRS URL addresses, and what it needs to run (keys, ports, model).

Classic endpoints live at ``/workspaces/{ws}/services/{endpointId}`` (their ApiLocation);
New (ARM) services at ``/subscriptions/{subNoDashes}/services/{serviceId}`` (the base of
their swaggerLocation). Both resolve to a :class:`~amlretrain.emulator.state.Runtime`
snapshot taken at call time, so scoring uses whatever model is referenced *now*.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from amlretrain.blobs import BlobRef
from amlretrain.emulator._server import Reply, Request, runtime_error
from amlretrain.emulator.state import Runtime, State, ci_get, trained_model_asset
from amlretrain.errors import ConfigurationError

__all__ = ["CLASSIC_BASE", "NEW_BASE", "authorize", "check_version", "resolve"]

CLASSIC_BASE = "/workspaces/{ws}/services/{ep}"
NEW_BASE = "/subscriptions/{sub}/services/{svc}"


def _port_names(spec: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(spec, Mapping):
        props = ci_get(spec, "properties")
        if isinstance(props, Mapping) and props:
            return tuple(str(k) for k in props)
    return default


def _asset_url(asset: Mapping[str, Any]) -> str | None:
    loc = ci_get(asset, "locationInfo")
    if not isinstance(loc, Mapping):
        return None
    uri = ci_get(loc, "uri")
    if not uri:
        return None
    url = str(uri)
    credentials = str(ci_get(loc, "credentials") or "")
    if "?" not in url and ("sig=" in credentials or credentials.startswith("?")):
        url += credentials if credentials.startswith("?") else "?" + credentials
    return url


def _resolve_arm(state: State, sub: str, service_id: str) -> Runtime | None:
    svc = state.arm_by_runtime(sub, service_id)
    if svc is None:
        return None
    with state.lock:
        props = svc.properties
        asset = trained_model_asset(props)
        inputs = _port_names(ci_get(props, "input"), ("input1",))
        outputs = _port_names(
            ci_get(props, "output"), ("output1",) if asset else ("output1", "output2")
        )
        keys = tuple(k for k in svc.keys.values() if k)
        storage = ci_get(props, "storageAccount")
        storage_key = ci_get(storage, "key") if isinstance(storage, Mapping) else None
        if asset is not None:
            return Runtime(
                key=f"arm/{sub.lower()}/{svc.service_id}",
                kind="predictive",
                api_keys=keys,
                inputs=inputs,
                outputs={name: "dataset" for name in outputs},
                model_url=_asset_url(asset[1]),
                storage_key=str(storage_key) if storage_key else None,
            )
        kinds = {name: ("model" if i == 0 else "dataset") for i, name in enumerate(outputs)}
        return Runtime(
            key=f"arm/{sub.lower()}/{svc.service_id}",
            kind="training",
            api_keys=keys,
            inputs=inputs,
            outputs=kinds,
        )


def _resolve_classic(state: State, ws: str, endpoint_id: str) -> Runtime | None:
    with state.lock:
        found = state.classic_by_endpoint_id(ws, endpoint_id)
        if found is None:
            return None
        svc, ep = found
        keys = (ep.primary_key, ep.secondary_key)
        key = f"classic/{ws.lower()}/{ep.endpoint_id}"
        if svc.kind == "training":
            return Runtime(
                key=key,
                kind="training",
                api_keys=keys,
                inputs=("input1",),
                outputs={"output1": "model", "output2": "dataset"},
                label=svc.label,
                columns=svc.columns,
            )
        model_url = None
        if ep.resources:
            location = ep.resources[0].get("Location")
            if isinstance(location, Mapping):
                try:
                    model_url = BlobRef.from_bes(location).sas_url
                except ConfigurationError:
                    model_url = None
        return Runtime(
            key=key,
            kind="predictive",
            api_keys=keys,
            inputs=("input1",),
            outputs={"output1": "dataset"},
            model_url=model_url,
        )


def resolve(state: State, req: Request) -> Runtime:
    """The runtime a BES/RRS request addresses.

    Raises:
        Reply: 404 ``NotFound`` / ``WebServiceNotFound`` when nothing lives there.
    """
    params = req.params
    if "ws" in params:
        runtime = _resolve_classic(state, params["ws"], params["ep"])
    else:
        runtime = _resolve_arm(state, params["sub"], params["svc"])
    if runtime is None:
        raise Reply(
            runtime_error(
                404,
                "NotFound",
                "The web service was not found.",
                "WebServiceNotFound",
                "No web service is published at this address.",
            )
        )
    return runtime


def authorize(req: Request, runtime: Runtime) -> None:
    """Require ``Authorization: Bearer <an API key of this endpoint>``.

    Raises:
        Reply: 401 ``Unauthorized`` / ``ScoreRequestUnauthorized``.
    """
    token = req.bearer()
    if token is None or token not in runtime.api_keys:
        raise Reply(
            runtime_error(
                401,
                "Unauthorized",
                "Invalid credentials provided.",
                "ScoreRequestUnauthorized",
                "Invalid credentials provided.",
            )
        )


def check_version(req: Request) -> None:
    """Require ``api-version=2.0``.

    Raises:
        Reply: 400 ``BadArgument`` / ``BadVersionCall``.
    """
    version = req.arg("api-version")
    if version != "2.0":
        raise Reply(
            runtime_error(
                400,
                "BadArgument",
                "Invalid argument provided.",
                "BadVersionCall",
                f"The api-version {version!r} is not supported; use api-version=2.0.",
            )
        )
