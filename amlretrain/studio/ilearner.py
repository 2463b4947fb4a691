"""Trained models in a web-service definition: find them, check a new uri, diff, PATCH body.

Retraining a New (ARM) web service means changing one value: the ``locationInfo.uri``
of the asset that holds the trained model. This module finds those assets, checks a new
model's uri, and computes what a change sends: an RFC 6902 JSON Patch (:func:`diff`) for
people and tests, and the minimal ARM PATCH body (:func:`patch_body`) for the service.

It works on plain documents (the JSON mappings of
:meth:`~amlretrain.studio.definition.WebServiceDefinition.document`), so it needs nothing
of the typed models: :mod:`amlretrain.studio.definition` builds on it, never the
reverse. Both :func:`diff` and :func:`patch_body` decide what changed with one JSON
equality, :func:`same`: what one sees as a change, the other does too (the PATCH body
leaves out what a PATCH need not send: read-only members, and members the new document
lacks, since a PATCH merges).
"""

from __future__ import annotations

import copy
import logging
import urllib.parse
import warnings
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, TypeVar

import attrs
import jsonpatch

from amlretrain._redact import redact
from amlretrain._wire import ci_get, find_key
from amlretrain.blobs import is_loopback_host, sas_expiry
from amlretrain.errors import ConfigurationError

__all__ = [
    "READ_ONLY_PROPERTIES",
    "READ_ONLY_RESOURCE_FIELDS",
    "SAS_WARNING_WINDOW",
    "SasExpiryWarning",
    "TrainedModel",
    "check_model_uri",
    "diff",
    "json_patch",
    "merge_patch",
    "patch_body",
    "same",
    "select_trained_model",
    "trained_models",
    "with_trained_model",
]

log = logging.getLogger(__name__)

#: A SAS expiring sooner than this after a rewrite gets a :class:`SasExpiryWarning`.
SAS_WARNING_WINDOW = timedelta(hours=1)
#: Members of the resource that the service sets and a PUT or PATCH must not send.
READ_ONLY_RESOURCE_FIELDS = ("id", "name", "type")
#: Members of ``properties`` that the service sets and a PUT or PATCH must not send.
READ_ONLY_PROPERTIES = ("createdOn", "modifiedOn", "provisioningState", "swaggerLocation")

TRAINED_MODEL_SUFFIX = "[trained model]"


class Definition(Protocol):
    """What this module reads of a definition: its document (a WebServiceDefinition)."""

    def document(self, *, canonical: bool = False) -> Mapping[str, Any]:
        """The JSON document (``canonical``: every known member camelCase)."""
        ...


class _Sendable(Definition, Protocol):
    def validate(self, *, source: str | None = None, full: bool = True) -> Any: ...


_D = TypeVar("_D", bound="_Rewritable")


class _Rewritable(Protocol):
    def with_trained_model(
        self: _D,
        uri: str,
        asset: str | None = None,
        credentials: str | None = None,
        *,
        now: datetime | None = None,
    ) -> _D: ...


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


def _document(source: Definition | Mapping[str, Any]) -> Mapping[str, Any]:
    return source if isinstance(source, Mapping) else source.document()


def _assets(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """``properties.assets`` of a document (member names in any case), or empty."""
    props = ci_get(document, "properties")
    assets = ci_get(props, "assets") if isinstance(props, Mapping) else None
    return assets if isinstance(assets, Mapping) else {}


def _text(node: Any, name: str) -> str | None:
    value = ci_get(node, name) if isinstance(node, Mapping) else None
    return value if isinstance(value, str) else None


def _is_trained_model(asset: Mapping[str, Any]) -> bool:
    name = (_text(asset, "name") or "").strip().lower()
    if (_text(asset, "type") or "").lower() == "resource" and name.endswith(TRAINED_MODEL_SUFFIX):
        return True
    uri = _text(ci_get(asset, "locationInfo"), "uri")
    if uri is not None:
        path = urllib.parse.urlsplit(uri).path
        return path.lower().endswith(".ilearner")
    return False


def trained_models(definition: Definition | Mapping[str, Any]) -> tuple[TrainedModel, ...]:
    """The assets holding a trained model, in document order.

    An asset holds one when its type is ``Resource`` and its name ends in
    ``[trained model]``, or when its ``locationInfo.uri`` path ends in ``.ilearner``.

    Args:
        definition: a :class:`~amlretrain.studio.definition.WebServiceDefinition`, or
            its JSON document.
    """
    return tuple(
        TrainedModel(
            asset_id=asset_id,
            name=_text(asset, "name"),
            uri=_text(ci_get(asset, "locationInfo"), "uri"),
        )
        for asset_id, asset in _assets(_document(definition)).items()
        if isinstance(asset, Mapping) and _is_trained_model(asset)
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


def select_trained_model(
    definition: Definition | Mapping[str, Any], asset: str | None = None
) -> str:
    """The id of the asset a rewrite changes: ``asset`` (an id or a name), else the only model.

    Raises:
        ConfigurationError: no such asset, several named ``asset``, or (``asset`` None)
            no trained model or several (the message lists the candidates).
    """
    document = _document(definition)
    models = trained_models(document)
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
    assets = _assets(document)
    if asset in assets:
        return asset
    by_name = [asset_id for asset_id, item in assets.items() if _text(item, "name") == asset]
    if len(by_name) == 1:
        return by_name[0]
    if len(by_name) > 1:
        raise ConfigurationError(
            f"several assets are named {asset!r} ({', '.join(by_name)}); use the asset id"
        )
    raise ConfigurationError(f"no asset has the id or name {asset!r}; trained models: {candidates}")


def with_trained_model(
    definition: _D,
    uri: str,
    *,
    asset: str | None = None,
    credentials: str | None = None,
    now: datetime | None = None,
) -> _D:
    """A new definition in which only the trained model's uri (and credentials) changed.

    The same as
    :meth:`WebServiceDefinition.with_trained_model
    <amlretrain.studio.definition.WebServiceDefinition.with_trained_model>`.

    Raises:
        ConfigurationError: a bad uri (:func:`check_model_uri`), or no / an ambiguous
            asset (:func:`select_trained_model`).
    """
    return definition.with_trained_model(uri, asset=asset, credentials=credentials, now=now)


# -- one JSON equality ------------------------------------------------------------------


def _pairs(src: Mapping[str, Any], dst: Mapping[str, Any]) -> dict[str, str]:
    """The member of ``src`` each member of ``dst`` matches: same name, else the same in any case.

    One to one; a name spelled exactly alike is matched first.
    """
    matched = {key: key for key in dst if key in src}
    if len(matched) == len(src) or len(matched) == len(dst):
        return matched
    unmatched: dict[Any, list[str]] = {}
    for key in src:
        if key not in dst:
            unmatched.setdefault(_folded(key), []).append(key)
    for key in dst:
        if key not in src:
            candidates = unmatched.get(_folded(key))
            if candidates:
                matched[key] = candidates.pop(0)
    return matched


def _folded(key: Any) -> Any:
    return key.lower() if isinstance(key, str) else key


def _is_empty_object(value: Any) -> bool:
    return isinstance(value, Mapping) and not value


def same(a: Any, b: Any) -> bool:
    """True when two JSON values are the same to the service (the equality of this module).

    * Scalars by JSON value and type: ``true`` is not ``1``, ``1`` is not ``1.0``
      (Python's ``==`` says they are); ``NaN`` (read with ``validate=False``) is ``NaN``.
    * Objects member by member, names matched in any case (``Nodes`` is ``nodes``), in
      any order; an empty object is the same as no member (the live service drops empty
      members such as ``parameters: {}``, which an older export still has).
    * Arrays item by item, in order.

    Example:
        >>> same({"Title": "t", "parameters": {}}, {"title": "t"}), same(1, 1.0)
        (True, False)
    """
    if a is b:
        return True
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        pairs = _pairs(a, b)
        if len(pairs) != len(a) or len(pairs) != len(b):
            kept = set(pairs.values())
            if not all(_is_empty_object(v) for k, v in a.items() if k not in kept):
                return False
            if not all(_is_empty_object(v) for k, v in b.items() if k not in pairs):
                return False
        return all(same(a[pairs[k]], v) for k, v in b.items() if k in pairs)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same, a, b))
    if type(a) is not type(b):
        return False
    if type(a) is float and a != a and b != b:
        return True
    return bool(a == b)


def _withheld_sas_kept(old: Mapping[str, Any], new: Mapping[str, Any]) -> Mapping[str, Any]:
    """``new`` with each asset URI that only lost its SAS given back the one of ``old``.

    An export without secrets (:meth:`WebServiceDefinition.without_secrets`) holds the
    same models as the service: that is no change. Copy-on-write: ``new`` and what it
    holds are never modified.
    """
    old_assets = _assets(old)
    props_key = find_key(new, "properties")
    props = new.get(props_key) if props_key else None
    assets_key = find_key(props, "assets") if isinstance(props, Mapping) else None
    if not (old_assets and props_key and assets_key and isinstance(props, Mapping)):
        return new
    assets = props[assets_key]
    if not isinstance(assets, Mapping):
        return new
    kept: dict[str, Any] | None = None
    for asset_id, asset in assets.items():
        old_id = asset_id if asset_id in old_assets else find_key(old_assets, asset_id)
        before = old_assets.get(old_id) if old_id is not None else None
        loc_key = find_key(asset, "locationInfo") if isinstance(asset, Mapping) else None
        loc = asset.get(loc_key) if loc_key else None
        uri_key = find_key(loc, "uri") if isinstance(loc, Mapping) else None
        if not (uri_key and isinstance(loc, Mapping) and isinstance(asset, Mapping)):
            continue
        uri, old_uri = loc[uri_key], _text(ci_get(before, "locationInfo"), "uri")
        withheld = (
            isinstance(uri, str)
            and old_uri is not None
            and "?" not in uri
            and old_uri.split("?", 1)[0] == uri
            and old_uri != uri
        )
        if withheld:
            kept = dict(assets) if kept is None else kept
            kept[asset_id] = {**asset, loc_key: {**loc, uri_key: old_uri}}
    if kept is None:
        return new
    return {**new, props_key: {**props, assets_key: kept}}


# -- the JSON Patch -----------------------------------------------------------------------


def json_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The RFC 6902 operations that turn the document ``old`` into ``new`` (see :func:`diff`)."""
    ops: list[dict[str, Any]] = []
    _diff_into(ops, old, _withheld_sas_kept(old, new), "")
    return ops


def diff(old: Definition, new: Definition) -> jsonpatch.JsonPatch:
    """The minimal RFC 6902 JSON Patch that turns ``old`` into ``new``.

    Objects are compared member by member; a changed value (or array) is replaced whole.
    What is a change is decided by :func:`same`, as in :func:`patch_body`: member names
    match in any case, as the service reads them (``Nodes`` in one and ``nodes`` in the
    other are the same member; a member spelled the same in both is matched first), so
    the camelCase and PascalCase spellings of one document have no difference; an empty
    object one of them lacks, and an asset URI that only lost its SAS (an export without
    secrets), are no difference either. Paths name members as ``old`` spells them
    (``add`` as ``new`` does). Every ``replace`` and ``remove`` is preceded by a ``test``
    op pinning the value it expects, so applying the patch to a document that changed
    meanwhile fails instead of overwriting someone else's change. A trained-model rewrite
    gives exactly ``[test, replace]`` on ``/properties/assets/<id>/locationInfo/uri``.
    """
    return jsonpatch.JsonPatch(json_patch(old.document(), new.document()))


def _diff_into(ops: list[dict[str, Any]], src: Any, dst: Any, path: str) -> None:
    if src is dst:
        return  # shared (see WebServiceDefinition.with_trained_model): equal by construction
    if isinstance(src, Mapping) and isinstance(dst, Mapping):
        pairs = _pairs(src, dst)
        kept = set(pairs.values())
        for key, value in src.items():
            if key not in kept and not _is_empty_object(value):
                where = f"{path}/{_escape(key)}"
                ops.append({"op": "test", "path": where, "value": copy.deepcopy(value)})
                ops.append({"op": "remove", "path": where})
        for key, value in dst.items():
            if key not in pairs:
                if not _is_empty_object(value):
                    where = f"{path}/{_escape(key)}"
                    ops.append({"op": "add", "path": where, "value": copy.deepcopy(value)})
                continue
            before = src[pairs[key]]
            if not same(before, value):
                _diff_into(ops, before, value, f"{path}/{_escape(pairs[key])}")
        return
    if same(src, dst):
        return
    ops.append({"op": "test", "path": path, "value": copy.deepcopy(src)})
    ops.append({"op": "replace", "path": path, "value": copy.deepcopy(dst)})


def _escape(key: str) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


# -- the PATCH body -----------------------------------------------------------------------


def _merge_diff(old: Any, new: Any) -> Any:
    """The members of ``new`` that differ from ``old`` (recursively for objects).

    Members of ``old`` missing from ``new`` are not in the result: a PATCH merges, so an
    absent member means "unchanged" (definitions exported without secrets lack keys and
    credentials that the service still holds). What differs is decided by :func:`same`,
    as in :func:`diff`; a matched member is spelled as in ``old`` (the member the service
    has), a new one as in ``new``.
    """
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        return copy.deepcopy(new)
    pairs = _pairs(old, new)
    out: dict[str, Any] = {}
    for key, value in new.items():
        if key not in pairs:
            if not _is_empty_object(value):  # no member and {} are the same (see same())
                out[key] = copy.deepcopy(value)
            continue
        before = old[pairs[key]]
        if same(before, value):
            continue
        changed = _merge_diff(before, value)
        # {} from two objects: they differed only in members ``new`` lacks
        if changed != {} or not isinstance(before, Mapping):
            out[pairs[key]] = changed
    return out


def _writable_view(document: Mapping[str, Any]) -> dict[str, Any]:
    """A canonical document without read-only members, sharing everything else.

    No deep copy of a big definition: only the top level and ``properties`` are new
    dicts; never mutate deeper than that.
    """
    doc = {k: v for k, v in document.items() if k not in READ_ONLY_RESOURCE_FIELDS}
    props = doc.get("properties")
    if isinstance(props, Mapping):
        doc["properties"] = {k: v for k, v in props.items() if k not in READ_ONLY_PROPERTIES}
    return doc


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The minimal ARM PATCH body from the canonical document ``old`` to ``new``.

    See :func:`patch_body`, which calls it with the definitions' canonical documents
    (``document(canonical=True)``); neither document is modified.

    Raises:
        ConfigurationError: nothing changed.
    """
    before, after = _writable_view(old), _writable_view(_withheld_sas_kept(old, new))
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
    package_type = _text(after.get("properties"), "packageType")
    package_type = package_type or _text(before.get("properties"), "packageType")
    props.setdefault("packageType", package_type or "Graph")
    return body


def patch_body(old: Definition, new: _Sendable) -> dict[str, Any]:
    """The minimal ARM PATCH body from ``old`` to ``new``.

    Only the members that changed (:func:`same` decides, as for :func:`diff`), nested as
    in the resource, written in the service's camelCase, plus the required discriminator
    ``properties.packageType``. Read-only members (``id``, ``name``, ``createdOn``,
    ``modifiedOn``, ``provisioningState``, ``swaggerLocation`` ...) are never sent;
    members ``new`` lacks are left as they are (a PATCH merges); an asset URI that only
    lost its SAS (a definition exported without secrets) is not a change. An asset that
    changed is sent whole (``name``, ``type``, ``locationInfo``, ...): the swagger marks
    those members required, and whether the service merges a partial asset is not
    documented, so the body never relies on it.

    ``new`` is checked first (:meth:`WebServiceDefinition.validate` with ``full=False``):
    a definition with a member name twice, ``NaN``/``Infinity`` or a number out of range
    is never sent.

    Raises:
        DefinitionError: ``new`` has one of those.
        ConfigurationError: nothing changed (an empty update would "succeed" and keep
            the old model).
    """
    new.validate(full=False)
    return merge_patch(old.document(canonical=True), new.document(canonical=True))
