"""The trained-model rewriter: find ``.ilearner`` assets, repoint one, diff, PATCH body.

Retraining a New (ARM) web service means changing one value: the ``locationInfo.uri``
of the asset that holds the trained model. This module finds those assets, makes a new
definition in which only that value changed, and computes what to send: an RFC 6902
JSON Patch (:func:`diff`) for people and tests, and the minimal ARM PATCH body
(:func:`patch_body`) for the service.
"""

from __future__ import annotations

import copy
import logging
import urllib.parse
import warnings
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import jsonpatch

from amlretrain._redact import redact
from amlretrain._wire import find_key, unstructure
from amlretrain.blobs import is_loopback_host, sas_expiry
from amlretrain.errors import ConfigurationError
from amlretrain.studio.definition import (
    READ_ONLY_PROPERTIES,
    READ_ONLY_RESOURCE_FIELDS,
    AssetItem,
    BlobLocation,
    WebServiceDefinition,
)

__all__ = [
    "SAS_WARNING_WINDOW",
    "SasExpiryWarning",
    "TrainedModel",
    "check_model_uri",
    "diff",
    "patch_body",
    "trained_models",
    "with_trained_model",
]

log = logging.getLogger(__name__)

#: A SAS expiring sooner than this after a rewrite gets a :class:`SasExpiryWarning`.
SAS_WARNING_WINDOW = timedelta(hours=1)

TRAINED_MODEL_SUFFIX = "[trained model]"


class SasExpiryWarning(UserWarning):
    """The SAS of a model URI expires soon: the service may fail to load the model."""


@attrs.frozen(kw_only=True)
class TrainedModel:
    """An asset that holds a trained model.

    Attributes:
        asset_id: the key of the asset in ``properties.assets``.
        name: the asset's name (``"... [trained model]"``).
        uri: its ``locationInfo.uri`` (may carry a SAS: use :attr:`uri_redacted` to show).
    """

    asset_id: str
    name: str | None
    uri: str | None = attrs.field(repr=lambda v: repr(redact(v)) if v else repr(v))

    @property
    def uri_redacted(self) -> str | None:
        """The uri with any SAS signature replaced."""
        return redact(self.uri) if self.uri else self.uri

    @property
    def sas_expires_on(self) -> datetime | None:
        """The ``se=`` expiry of the uri's SAS, when it has one."""
        if not self.uri:
            return None
        query = urllib.parse.urlsplit(self.uri).query
        return sas_expiry(query) if query else None


def _is_trained_model(asset: AssetItem) -> bool:
    name = (asset.name or "").strip().lower()
    if (asset.type or "").lower() == "resource" and name.endswith(TRAINED_MODEL_SUFFIX):
        return True
    uri = asset.location_info.uri if asset.location_info else None
    if isinstance(uri, str):
        path = urllib.parse.urlsplit(uri).path
        return path.lower().endswith(".ilearner")
    return False


def trained_models(definition: WebServiceDefinition) -> tuple[TrainedModel, ...]:
    """The assets holding a trained model, in document order.

    An asset holds one when its type is ``Resource`` and its name ends in
    ``[trained model]``, or when its ``locationInfo.uri`` path ends in ``.ilearner``.
    """
    return tuple(
        TrainedModel(
            asset_id=asset_id,
            name=asset.name,
            uri=asset.location_info.uri if asset.location_info else None,
        )
        for asset_id, asset in definition.assets.items()
        if _is_trained_model(asset)
    )


def check_model_uri(uri: str, *, now: datetime | None = None) -> list[str]:
    """Check a trained-model URI before it goes into a definition.

    Rules: ``https`` (plain ``http`` only for loopback hosts such as the emulator), a
    host, a path ending in ``.ilearner``, and a SAS (``se=``) that has not expired.

    Returns:
        Warnings (a SAS expiring within :data:`SAS_WARNING_WINDOW`); each is also
        issued as a :class:`SasExpiryWarning`.

    Raises:
        ConfigurationError: naming the broken rule.
    """
    shown = redact(uri)
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme == "http":
        if not is_loopback_host(parts.hostname):
            raise ConfigurationError(
                f"model uri {shown!r} uses plain http; use https (http is accepted only "
                "for loopback hosts such as the local emulator)"
            )
    elif parts.scheme != "https":
        raise ConfigurationError(f"model uri {shown!r} is not an https URL")
    if not parts.hostname:
        raise ConfigurationError(f"model uri {shown!r} has no host")
    if not parts.path.lower().endswith(".ilearner"):
        raise ConfigurationError(
            f"model uri {shown!r} does not name an .ilearner blob (the path must end in "
            "'.ilearner', the extension the Batch Execution Service gives trained models)"
        )
    messages: list[str] = []
    expiry = sas_expiry(parts.query) if parts.query else None
    if expiry is not None:
        now = now or datetime.now(timezone.utc)
        if expiry <= now:
            raise ConfigurationError(
                f"the SAS of model uri {shown!r} expired at {expiry.isoformat()}; get a fresh "
                "one (read the training job again, or mint a new SAS for the blob)"
            )
        if expiry <= now + SAS_WARNING_WINDOW:
            message = (
                f"the SAS of model uri {shown!r} expires at {expiry.isoformat()}, in less "
                f"than {SAS_WARNING_WINDOW}; the service may fail to load the model after that"
            )
            warnings.warn(message, SasExpiryWarning, stacklevel=3)
            log.warning("%s", message)
            messages.append(message)
    return messages


def _select(definition: WebServiceDefinition, asset: str | None) -> str:
    models = trained_models(definition)
    candidates = ", ".join(f"{m.asset_id} ({m.name!r})" for m in models) or "none"
    if asset is None:
        if len(models) == 1:
            return models[0].asset_id
        if not models:
            raise ConfigurationError(
                "the definition has no trained-model asset (a Resource named "
                "'... [trained model]' or a uri ending in .ilearner); name one: the asset "
                "setting (asset of the target in retrain.toml, --asset on the command line)"
            )
        raise ConfigurationError(
            f"the definition has {len(models)} trained models; choose one (an asset id or "
            "name) with the asset setting (asset of the target in retrain.toml, --asset on "
            f"the command line): {candidates}"
        )
    assets = definition.assets
    if asset in assets:
        return asset
    by_name = [asset_id for asset_id, item in assets.items() if item.name == asset]
    if len(by_name) == 1:
        return by_name[0]
    if len(by_name) > 1:
        raise ConfigurationError(
            f"several assets are named {asset!r} ({', '.join(by_name)}); use the asset id"
        )
    raise ConfigurationError(f"no asset has the id or name {asset!r}; trained models: {candidates}")


def with_trained_model(
    definition: WebServiceDefinition,
    uri: str,
    *,
    asset: str | None = None,
    credentials: str | None = None,
    now: datetime | None = None,
) -> WebServiceDefinition:
    """A new definition in which only the trained model's uri (and credentials) changed.

    Args:
        definition: the definition to start from (unchanged).
        uri: the new model's blob URL (``BaseLocation + RelativeLocation``, optionally
            with a SAS), checked with :func:`check_model_uri`.
        asset: the asset id or name; when None, the only trained model.
        credentials: a new ``locationInfo.credentials``, when given.

    Raises:
        ConfigurationError: a bad uri, or no / an ambiguous asset (the message lists the
            candidates).
    """
    check_model_uri(uri, now=now)
    asset_id = _select(definition, asset)
    props = definition.properties
    assert props is not None  # _select found an asset
    assert props.assets is not None
    item = props.assets[asset_id]
    location = item.location_info or BlobLocation()
    location = attrs.evolve(location, uri=uri)
    if credentials is not None:
        location = attrs.evolve(location, credentials=credentials)
    assets = dict(props.assets)
    assets[asset_id] = attrs.evolve(item, location_info=location)
    new = attrs.evolve(definition, properties=attrs.evolve(props, assets=assets))
    _share_document(definition, new, asset_id, location)
    new.keep_format(definition)  # saved, only the changed value differs from the file
    return new


def _share_document(
    old: WebServiceDefinition, new: WebServiceDefinition, asset_id: str, location: BlobLocation
) -> None:
    """Give ``new`` the document of ``old`` with only the asset's locationInfo replaced.

    The document shares every other member with ``old``'s (both are read-only), so a big
    definition is not written out again, and :func:`diff` compares by identity first.
    When a member on the way is missing or oddly shaped, ``new`` computes its own.
    """
    doc = old.document()
    props_key = find_key(doc, "properties")
    props = doc.get(props_key) if props_key else None
    assets_key = find_key(props, "assets") if isinstance(props, Mapping) else None
    assets = props.get(assets_key) if assets_key and isinstance(props, Mapping) else None
    asset = assets.get(asset_id) if isinstance(assets, Mapping) else None
    loc_key = find_key(asset, "locationInfo") if isinstance(asset, Mapping) else None
    if not (props_key and assets_key and loc_key and isinstance(asset, Mapping)):
        return
    assert isinstance(props, Mapping) and isinstance(assets, Mapping)
    new_asset = {**asset, loc_key: unstructure(location)}
    new_doc = {**doc, props_key: {**props, assets_key: {**assets, asset_id: new_asset}}}
    new.share_document(new_doc)


def diff(old: WebServiceDefinition, new: WebServiceDefinition) -> jsonpatch.JsonPatch:
    """The minimal RFC 6902 JSON Patch that turns ``old`` into ``new``.

    Objects are compared member by member; a changed value (or array) is replaced whole.
    Member names match in any case, as the service reads them: ``Nodes`` in one and
    ``nodes`` in the other are the same member (a member spelled the same in both is
    matched first), so the camelCase and PascalCase spellings of one document have no
    difference. Paths name members as ``old`` spells them (``add`` as ``new`` does).
    Every ``replace`` and ``remove`` is preceded by a ``test`` op pinning the value it
    expects, so applying the patch to a document that changed meanwhile fails instead of
    overwriting someone else's change. A trained-model rewrite gives exactly
    ``[test, replace]`` on ``/properties/assets/<id>/locationInfo/uri``.
    """
    ops: list[dict[str, Any]] = []
    _diff_into(ops, old.document(), new.document(), "")
    return jsonpatch.JsonPatch(ops)


def _pairs(src: Mapping[str, Any], dst: Mapping[str, Any]) -> dict[str, str]:
    """The member of ``src`` each member of ``dst`` matches: same name, else the same in any case.

    One to one; a name spelled exactly alike is matched first.
    """
    matched = {key: key for key in dst if key in src}
    if len(matched) == len(src) or len(matched) == len(dst):
        return matched
    unmatched: dict[str, list[str]] = {}
    for key in src:
        if key not in dst:
            unmatched.setdefault(_lower(key), []).append(key)
    for key in dst:
        if key not in src:
            candidates = unmatched.get(_lower(key))
            if candidates:
                matched[key] = candidates.pop(0)
    return matched


def _lower(key: Any) -> Any:
    return key.lower() if isinstance(key, str) else key


def _diff_into(ops: list[dict[str, Any]], src: Any, dst: Any, path: str) -> None:
    if src is dst:
        return  # shared (see _share_document): equal by construction
    if isinstance(src, Mapping) and isinstance(dst, Mapping):
        pairs = _pairs(src, dst)
        kept = set(pairs.values())
        for key, value in src.items():
            if key not in kept:
                where = f"{path}/{_escape(key)}"
                ops.append({"op": "test", "path": where, "value": copy.deepcopy(value)})
                ops.append({"op": "remove", "path": where})
        for key, value in dst.items():
            if key not in pairs:
                ops.append(
                    {"op": "add", "path": f"{path}/{_escape(key)}", "value": copy.deepcopy(value)}
                )
                continue
            before = src[pairs[key]]
            if before is value or (_same(before, value) and not _mixed_types(before, value)):
                continue
            _diff_into(ops, before, value, f"{path}/{_escape(pairs[key])}")
        return
    if _equivalent(src, dst):
        return
    ops.append({"op": "test", "path": path, "value": copy.deepcopy(src)})
    ops.append({"op": "replace", "path": path, "value": copy.deepcopy(dst)})


def _same(a: Any, b: Any) -> bool:
    # JSON equality: true is not 1, 1 is not 1.0 as a type (Python's == says they are).
    if type(a) is not type(b):
        return False
    return bool(a == b)


def _equivalent(a: Any, b: Any) -> bool:
    """JSON equality with member names matched in any case (see :func:`_pairs`)."""
    if a is b:
        return True
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        if len(a) != len(b):
            return False
        pairs = _pairs(a, b)
        return len(pairs) == len(b) and all(_equivalent(a[pairs[k]], v) for k, v in b.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_equivalent, a, b))
    if type(a) is float and type(b) is float and a != a and b != b:
        return True  # NaN (read with validate=False) is the same NaN
    return _same(a, b)


def _mixed_types(a: Any, b: Any) -> bool:
    """True when equal containers hold scalars that differ only in JSON type (1 vs true)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return any(_mixed_types(a[k], b[k]) for k in a if k in b)
    if isinstance(a, list) and isinstance(b, list):
        return any(_mixed_types(x, y) for x, y in zip(a, b, strict=False))
    return type(a) is not type(b)


def _escape(key: str) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _merge_diff(old: Any, new: Any) -> Any:
    """The members of ``new`` that differ from ``old`` (recursively for objects).

    Members of ``old`` missing from ``new`` are not in the result: a PATCH merges, so an
    absent member means "unchanged" (definitions exported without secrets lack keys and
    credentials that the service still holds); an empty object ``new`` adds is not one
    either. Member names match in any case, as in
    :func:`diff`; a matched member is spelled as in ``old`` (the member the service has),
    a new one as in ``new``.
    """
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        return copy.deepcopy(new)
    pairs = _pairs(old, new)
    out: dict[str, Any] = {}
    for key, value in new.items():
        if key not in pairs:
            # An empty object the service lacks is no change: the live service drops empty
            # members such as ``parameters: {}`` (API-NOTES 1.3a), so an older export
            # still has them.
            if not (isinstance(value, Mapping) and not value):
                out[key] = copy.deepcopy(value)
            continue
        before = old[pairs[key]]
        if before is value or _equivalent(before, value):
            continue
        changed = _merge_diff(before, value)
        # {} from two objects: they differed only in members ``new`` lacks
        if changed != {} or not isinstance(before, Mapping):
            out[pairs[key]] = changed
    return out


def _writable_view(definition: WebServiceDefinition) -> dict[str, Any]:
    """The canonical document without read-only members, sharing everything else.

    A view over :meth:`WebServiceDefinition.document` (no deep copy of a big
    definition): only the top level and ``properties`` are new dicts; never mutate
    deeper than that.
    """
    doc = {
        k: v
        for k, v in definition.document(canonical=True).items()
        if k not in READ_ONLY_RESOURCE_FIELDS
    }
    props = doc.get("properties")
    if isinstance(props, Mapping):
        doc["properties"] = {k: v for k, v in props.items() if k not in READ_ONLY_PROPERTIES}
    return doc


def _keep_withheld_sas(old: Mapping[str, Any], new: dict[str, Any]) -> None:
    """An asset URI that only lost its SAS (an export without secrets) is unchanged.

    Changes ``new`` copy-on-write: the assets it touches are replaced, not modified.
    """
    old_assets = (old.get("properties") or {}).get("assets") or {}
    props = new.get("properties")
    assets = props.get("assets") if isinstance(props, dict) else None
    if not isinstance(assets, Mapping):
        return
    kept = dict(assets)
    for asset_id, asset in assets.items():
        before = old_assets.get(asset_id)
        if not (isinstance(asset, Mapping) and isinstance(before, Mapping)):
            continue
        loc, old_loc = asset.get("locationInfo"), before.get("locationInfo")
        if not (isinstance(loc, Mapping) and isinstance(old_loc, Mapping)):
            continue
        uri, old_uri = loc.get("uri"), old_loc.get("uri")
        withheld = (
            isinstance(uri, str)
            and isinstance(old_uri, str)
            and "?" not in uri
            and old_uri.split("?", 1)[0] == uri
        )
        if withheld:
            kept[asset_id] = {**asset, "locationInfo": {**loc, "uri": old_uri}}
    assert isinstance(props, dict)
    props["assets"] = kept


def patch_body(old: WebServiceDefinition, new: WebServiceDefinition) -> dict[str, Any]:
    """The minimal ARM PATCH body from ``old`` to ``new``.

    Only the members that changed, nested as in the resource, written in the service's
    camelCase, plus the required discriminator ``properties.packageType``. Read-only
    members (``id``, ``name``, ``createdOn``, ``modifiedOn``, ``provisioningState``,
    ``swaggerLocation`` ...) are never sent; members ``new`` lacks are left as they are
    (a PATCH merges); an asset URI that only lost its SAS (a definition exported without
    secrets) is not a change. An asset that changed is sent whole (``name``, ``type``,
    ``locationInfo``, ...): the swagger marks those members required, and whether the
    service merges a partial asset is not documented, so the body never relies on it.

    ``new`` is checked first (:meth:`WebServiceDefinition.validate` with ``full=False``):
    a definition with a member name twice, ``NaN``/``Infinity`` or a number out of range
    is never sent.

    Raises:
        DefinitionError: ``new`` has one of those.
        ConfigurationError: nothing changed (an empty update would "succeed" and keep
            the old model).
    """
    new.validate(full=False)
    before, after = _writable_view(old), _writable_view(new)
    _keep_withheld_sas(before, after)
    body: dict[str, Any] = _merge_diff(before, after)
    if not body:
        raise ConfigurationError(
            "the update changes nothing: the new definition equals the current one "
            "(did the rewrite point at the model that is already deployed?)"
        )
    props = body.setdefault("properties", {})
    if not isinstance(props, dict):
        raise ConfigurationError("'properties' must be an object in a PATCH body")
    changed_assets = props.get("assets")
    if isinstance(changed_assets, dict):
        full: dict[str, Any] = after["properties"]["assets"]
        props["assets"] = {
            asset_id: copy.deepcopy(full[find_key(full, asset_id) or asset_id])
            for asset_id in changed_assets
        }
    props.setdefault("packageType", new.package_type or old.package_type or "Graph")
    return body
