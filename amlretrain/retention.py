"""Retention: which model blobs the ledger no longer needs, and deleting them.

Every model the ledger knows (an outcome's ``new_model``, ``previous_model`` or
``serving_model``, an open intent's models) is judged per target that used it. A model
is **kept** when, for any one of those targets:

* ``served``: the target serves it, as far as the ledger knows (:meth:`Ledger.serving`,
  and what its latest outcome says it serves);
* ``open``: the target has an open intent or an unknown latest outcome: nothing it ever
  touched is deleted until ``amlretrain reconcile`` settles it;
* ``recent``: it is among the last ``keep`` distinct models the target served (its
  deployments and rollbacks, and what it served before each of them), or it was
  recorded as a new model for the target since the oldest of those began serving (a
  gate-rejected or failed model is part of the target's history: it goes only when it
  is older than the last ``keep`` deployments);
* ``rollback``: it is the previous model of the target's latest deployment, where
  ``amlretrain rollback`` would go, unless ``allow_rollback_loss`` is given.

A target with no deployment yet, or fewer than ``keep``, keeps everything it touched.
Every other model is prunable: it is deleted when the configured storage account owns it
(:meth:`BlobStore.owns`), and reported, never deleted, when it lives elsewhere. Each kept
model carries its reasons, each prunable one its evidence (the targets that used it and
when last). Planning reads the ledger only; nothing is deleted before the whole plan is
made, and :func:`execute` refuses a plan whose ledger changed since. The ledger gets no
new record: the report says what was deleted.

Example:
    >>> import os, tempfile
    >>> from amlretrain.ledger import Ledger, LedgerEntry
    >>> ledger = Ledger(os.path.join(tempfile.mkdtemp(), "ledger.jsonl"))
    >>> for old, new in [("m0", "m1"), ("m1", "m2"), ("m2", "m3")]:
    ...     _ = ledger.append(LedgerEntry.new(target="classic:ws/svc/ep", action="deploy",
    ...         outcome="succeeded", previous_model=f"https://a.blob.core.windows.net/c/{old}",
    ...         new_model=f"https://a.blob.core.windows.net/c/{new}",
    ...         serving_model=f"https://a.blob.core.windows.net/c/{new}"))
    >>> plan = plan_prune(ledger, keep=1)
    >>> [(m.model.rsplit("/", 1)[1], [r.kind for r in m.reasons]) for m in plan.kept]
    [('m2', ['rollback']), ('m3', ['served', 'recent'])]
    >>> [m.model.rsplit("/", 1)[1] for m in plan.delete]
    ['m0', 'm1']
"""

from __future__ import annotations

import hashlib
import logging
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from amlretrain._numbers import checked_int
from amlretrain.blobs import BlobRef, strip_sas
from amlretrain.errors import ConfigurationError, ConflictError

if TYPE_CHECKING:
    from amlretrain.ledger import Ledger
    from amlretrain.records import LedgerEntry, Pending
    from amlretrain.storage import BlobStore

__all__ = [
    "MAX_KEEP",
    "REASONS",
    "KeepReason",
    "KeptModel",
    "ModelUse",
    "PrunableModel",
    "PrunePlan",
    "PruneReport",
    "execute",
    "plan_prune",
    "prune",
]

log = logging.getLogger(__name__)

#: Why a model is kept: what a target serves, a target with open changes, one of a
#: target's last ``keep`` models, the model a target's rollback would restore.
REASONS = ("served", "open", "recent", "rollback")

#: The largest ``keep`` accepted (a bound so that a typo is not taken for "keep all").
MAX_KEEP = 10_000

# A position in a target's history: (index of the ledger entry, order within it).
_Pos = tuple[int, int]
_BEFORE_ALL: _Pos = (-1, 0)
# keep_it(model, kind, target, detail)
_Keeper = Callable[[str | None, str, str, str], None]


@attrs.frozen(kw_only=True)
class KeepReason:
    """Why a model is kept, for one target.

    Attributes:
        kind: one of :data:`REASONS`.
        target: the target's ledger key.
        detail: the reason, for people.
    """

    kind: str
    target: str
    detail: str

    def __str__(self) -> str:
        return f"{self.target}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        """``{kind, target, detail}``."""
        return {"kind": self.kind, "target": self.target, "detail": self.detail}


@attrs.frozen(kw_only=True)
class ModelUse:
    """How one target used a model: the evidence behind a verdict.

    Attributes:
        target: the target's ledger key.
        last_used: the time of the target's latest ledger record naming the model.
        served: True when the target served it (deployed, rolled back to, or served
            before a deployment); False for a model only recorded (gate-rejected, failed).
    """

    target: str
    last_used: str
    served: bool

    def to_dict(self) -> dict[str, Any]:
        """``{target, last_used, served}``."""
        return {"target": self.target, "last_used": self.last_used, "served": self.served}


@attrs.frozen(kw_only=True)
class KeptModel:
    """A model that stays, with every reason it stays.

    Attributes:
        model: its URL (no SAS).
        reasons: why, per target (at least one).
        used_by: the targets that used it.
    """

    model: str
    reasons: tuple[KeepReason, ...]
    used_by: tuple[ModelUse, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``amlretrain prune --output json`` prints (``KeptModel``)."""
        return {
            "model": self.model,
            "reasons": [r.to_dict() for r in self.reasons],
            "used_by": [u.to_dict() for u in self.used_by],
        }


@attrs.frozen(kw_only=True)
class PrunableModel:
    """A model no target needs any more, with the evidence.

    Attributes:
        model: its URL (no SAS).
        used_by: the targets that used it, and when last.
        rollback_lost: targets whose default rollback target it is (it is prunable only
            because ``allow_rollback_loss`` was given).
        owned: True when the configured storage account holds it (it is deleted); False
            for a model elsewhere, or a URL that is not a blob's (reported only).
    """

    model: str
    used_by: tuple[ModelUse, ...]
    rollback_lost: tuple[str, ...] = ()
    owned: bool = True

    @property
    def last_used(self) -> str:
        """The latest time any target's record named it."""
        return max((u.last_used for u in self.used_by), default="")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``amlretrain prune --output json`` prints (``PrunableModel``)."""
        return {
            "model": self.model,
            "last_used": self.last_used,
            "used_by": [u.to_dict() for u in self.used_by],
            "rollback_lost": list(self.rollback_lost),
        }


@attrs.frozen(kw_only=True)
class PrunePlan:
    """What :func:`plan_prune` decided; :func:`execute` carries it out.

    Attributes:
        keep: the number of latest models kept per target.
        allow_rollback_loss: whether a target's rollback target may be deleted.
        kept: the models that stay, by URL.
        prunable: the models no target needs, oldest last use first; those with
            ``owned`` are :attr:`delete`, the others :attr:`foreign`.
        store: the storage account's URL the ownership was judged against (None:
            every blob counted as owned).
        basis: a digest of the ledger records the plan was made from (:func:`execute`
            refuses the plan when the ledger no longer matches it).
    """

    keep: int
    allow_rollback_loss: bool
    kept: tuple[KeptModel, ...]
    prunable: tuple[PrunableModel, ...]
    store: str | None
    basis: str

    @property
    def delete(self) -> tuple[PrunableModel, ...]:
        """The prunable models the configured account owns: those deleted."""
        return tuple(m for m in self.prunable if m.owned)

    @property
    def foreign(self) -> tuple[PrunableModel, ...]:
        """The prunable models on another account (or not blob URLs): never deleted."""
        return tuple(m for m in self.prunable if not m.owned)


@attrs.frozen(kw_only=True)
class PruneReport:
    """What a prune did.

    Attributes:
        plan: the plan carried out.
        dry_run: True when nothing was deleted on purpose.
        deleted: the URLs deleted (a blob already gone counts: deleting is idempotent).
    """

    plan: PrunePlan
    dry_run: bool
    deleted: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON document ``amlretrain prune --output json`` prints."""
        plan = self.plan
        return {
            "dry_run": self.dry_run,
            "keep": plan.keep,
            "allow_rollback_loss": plan.allow_rollback_loss,
            "store": plan.store,
            "kept": [m.to_dict() for m in plan.kept],
            "delete": [m.to_dict() for m in plan.delete],
            "foreign": [m.to_dict() for m in plan.foreign],
            "deleted": list(self.deleted),
        }

    def summary(self) -> str:
        """The report for people: every model with its reasons or its evidence."""
        plan = self.plan
        lines = []
        for kept in plan.kept:
            lines.append(f"keep    {kept.model}")
            lines += [f"          {reason}" for reason in kept.reasons]
        for model in plan.prunable:
            if not model.owned:
                verb = "foreign"
            elif self.dry_run or model.model not in self.deleted:
                verb = "delete"
            else:
                verb = "deleted"
            lines.append(f"{verb:<8}{model.model}")
            for use in model.used_by:
                how = "served by" if use.served else "recorded for"
                lines.append(f"          {how} {use.target}, last {use.last_used}")
            for target in model.rollback_lost:
                lines.append(f"          was the rollback target of {target}")
            if not model.owned:
                where = plan.store or "the configured account"
                lines.append(f"          not in {where}: not deleted")
        done = "dry run: nothing deleted" if self.dry_run else f"{len(self.deleted)} deleted"
        lines.append(
            f"{len(plan.kept)} kept, {len(plan.delete)} prunable, {len(plan.foreign)} on "
            f"other accounts (keep {plan.keep} per target); {done}"
        )
        return "\n".join(lines)


def _norm(url: str) -> str:
    """A model's identity: no SAS, scheme and host in lowercase (as ``same_blob``)."""
    parts = urllib.parse.urlsplit(strip_sas(url) or "")
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, "", ""))


class _Target:
    """One target's history, as the planner needs it."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.touched: dict[str, str] = {}  # model -> time of the latest record naming it
        self.recorded: list[tuple[_Pos, str]] = []  # (position, new model) of each outcome
        self.served: list[tuple[_Pos, str]] = []  # the models it served, in order

    def touch(self, model: str | None, time: str) -> None:
        if model:
            key = _norm(model)
            self.touched[key] = max(self.touched.get(key, ""), time)


def _basis(entries: list[LedgerEntry], pending: list[Pending]) -> str:
    digest = hashlib.sha256()
    for entry in entries:
        digest.update(entry.id.encode() + b"\n")
    for item in pending:
        digest.update(f"{item.target}:{[i.id for i in item.intents]}:".encode())
        digest.update((item.unknown.id if item.unknown else "").encode() + b"\n")
    return digest.hexdigest()


def plan_prune(
    ledger: Ledger,
    *,
    keep: int,
    allow_rollback_loss: bool = False,
    store: BlobStore | None = None,
) -> PrunePlan:
    """Decide which model blobs the ledger's history still needs (reads the ledger only).

    Args:
        ledger: the deployment history.
        keep: how many of each target's latest models stay (at least 1).
        allow_rollback_loss: let the previous model of a target's latest deployment (the
            model ``rollback`` restores) be pruned like any other.
        store: the storage account; a prunable model it does not own is reported as
            foreign and never deleted. None: every model counts as owned.

    Returns:
        The plan: every model the ledger knows, kept (with reasons) or prunable (with
        the evidence).

    Raises:
        ConfigurationError: ``keep`` is not an integer of at least 1, or the ledger has
            unreadable lines (they may name models still needed).

    Example:
        >>> plan = plan_prune(config.ledger(), keep=3, store=config.store())  # doctest: +SKIP
        >>> [m.model for m in plan.delete]                                     # doctest: +SKIP
    """
    keep = checked_int(keep, name="keep", low=1, high=MAX_KEEP)
    history = ledger.history()  # one read of the ledger answers every question below
    problems = history.problems
    if problems:
        lines = ", ".join(str(p.line) for p in problems)
        raise ConfigurationError(
            f"the ledger has unreadable line(s) {lines}: they may name models still in use; "
            "repair the ledger before pruning (nothing was deleted)"
        )
    entries = history.entries()
    pending = history.pending()
    position = {entry.id: index for index, entry in enumerate(entries)}
    names: dict[str, str] = {}  # identity -> the URL as first recorded
    targets: dict[str, _Target] = {}

    def known(model: str | None) -> None:
        if model:
            names.setdefault(_norm(model), strip_sas(model) or model)

    for index, entry in enumerate(entries):
        target = targets.setdefault(entry.target, _Target(entry.target))
        for model in (entry.previous_model, entry.new_model, entry.serving_model):
            known(model)
            target.touch(model, entry.time)
        if entry.new_model:
            target.recorded.append(((index, 1), _norm(entry.new_model)))
    opened: dict[str, Pending] = {}
    for item in pending:
        opened[item.target] = item
        target = targets.setdefault(item.target, _Target(item.target))
        for intent in item.intents:
            for model in (intent.previous_model, intent.new_model):
                known(model)
                target.touch(model, intent.time)

    reasons: dict[str, list[KeepReason]] = {}
    rollback_lost: dict[str, list[str]] = {}

    def keep_it(model: str | None, kind: str, target: str, detail: str) -> None:
        if not model:
            return
        found = reasons.setdefault(_norm(model), [])
        reason = KeepReason(kind=kind, target=target, detail=detail)
        if reason not in found:
            found.append(reason)

    for key, target in targets.items():
        if key in opened:
            item = opened[key]
            why = (
                "its latest outcome is unknown"
                if item.unknown is not None
                else f"{len(item.intents)} open intent(s)"
            )
            for model in target.touched:
                keep_it(model, "open", key, f"{why}: run `amlretrain reconcile` first")
        serving = history.serving(key)
        if serving is not None:
            keep_it(serving.serving_model, "served", key, "serves it (its last verified change)")
        last = history.last_known(key)
        if last and (serving is None or _norm(last) != _norm(serving.serving_model or "")):
            keep_it(last, "served", key, "serves it (its latest outcome says so)")
        deployments = history.deployments(key)
        _served_history(target, deployments, position, len(entries))
        _keep_recent(target, keep, keep_it)
        if deployments and deployments[-1].previous_model:
            previous = deployments[-1].previous_model
            if allow_rollback_loss:
                rollback_lost.setdefault(_norm(previous), []).append(key)
            else:
                keep_it(previous, "rollback", key, "`amlretrain rollback` would restore it")

    kept: list[KeptModel] = []
    prunable: list[PrunableModel] = []
    for ident in sorted(names):
        uses = tuple(
            ModelUse(
                target=key,
                last_used=target.touched[ident],
                served=any(model == ident for _, model in target.served),
            )
            for key, target in targets.items()
            if ident in target.touched
        )
        if ident in reasons:
            ordered = sorted(reasons[ident], key=lambda r: (REASONS.index(r.kind), r.target))
            kept.append(KeptModel(model=names[ident], reasons=tuple(ordered), used_by=uses))
        else:
            prunable.append(
                PrunableModel(
                    model=names[ident],
                    used_by=uses,
                    rollback_lost=tuple(rollback_lost.get(ident, ())),
                    owned=_owned(names[ident], store),
                )
            )
    prunable.sort(key=lambda m: (m.last_used, m.model))
    return PrunePlan(
        keep=keep,
        allow_rollback_loss=allow_rollback_loss,
        kept=tuple(kept),
        prunable=tuple(prunable),
        store=store.account_url if store is not None else None,
        basis=_basis(entries, pending),
    )


def _served_history(
    target: _Target, deployments: list[LedgerEntry], position: dict[str, int], end: int
) -> None:
    """Fill ``target.served``: what it served before each deployment, then what it deployed."""
    after_previous: _Pos = _BEFORE_ALL
    for entry in deployments:
        # an entry newer than the snapshot sorts last; execute() refuses the plan then
        index = position.get(entry.id, end)
        previous = _norm(entry.previous_model) if entry.previous_model else None
        if previous and (not target.served or target.served[-1][1] != previous):
            # served from before the ledger knew it (or a change made elsewhere): it began
            # no later than just after the target's previous deployment
            target.served.append((after_previous, previous))
        if entry.new_model:
            target.served.append(((index, 1), _norm(entry.new_model)))
        after_previous = (index, 2)


def _keep_recent(target: _Target, keep: int, keep_it: _Keeper) -> None:
    """Keep the target's last ``keep`` served models and what was recorded since."""
    recent: list[str] = []
    start: _Pos | None = None
    for pos, model in reversed(target.served):
        if model in recent:
            continue
        recent.append(model)
        if len(recent) == keep:
            start = pos
            break
    what = f"one of the last {keep} model(s) it served"
    if start is None:  # fewer than ``keep`` models served: its whole history stays
        for model in target.touched:
            keep_it(model, "recent", target.key, f"{what} (its history is shorter)")
        return
    for model in recent:
        keep_it(model, "recent", target.key, what)
    for pos, model in target.recorded:
        if pos >= start and model not in recent:
            keep_it(model, "recent", target.key, f"recorded since its last {keep} deployment(s)")


def _owned(model: str, store: BlobStore | None) -> bool:
    try:
        ref = BlobRef.from_url(model)
    except ConfigurationError:
        return False  # not a blob URL: nothing to delete
    return store is None or store.owns(ref)


def execute(plan: PrunePlan, store: BlobStore, *, ledger: Ledger | None = None) -> PruneReport:
    """Delete the plan's owned prunable models (:attr:`PrunePlan.delete`); idempotent.

    Args:
        plan: from :func:`plan_prune`, with the same ``store``.
        store: the storage account; models it does not own are never deleted.
        ledger: when given, the plan is refused (nothing deleted) if the ledger gained
            records since it was made (another run changed a target meanwhile).

    Returns:
        What was deleted.

    Raises:
        ConfigurationError: the plan was made for another storage account (or none).
        ConflictError: the ledger changed since the plan was made; nothing was deleted.
        ServiceError: storage refused a delete (the blobs before it are gone; run again).
    """
    if plan.store is None or plan.store.lower() != store.account_url.lower():
        made_for = plan.store or "no storage account"
        raise ConfigurationError(
            f"the plan was made for {made_for}, not {store.account_url}: plan again with "
            "this store (nothing was deleted)"
        )
    now = ledger.history() if ledger is not None else None
    if now is not None and _basis(now.entries(), now.pending()) != plan.basis:
        raise ConflictError(
            "the ledger changed since the plan was made (another run recorded a change): "
            "nothing was deleted; plan again"
        )
    deleted: list[str] = []
    for model in plan.delete:
        store.delete(BlobRef.from_url(model.model))
        log.info("deleted %s (last used %s)", model.model, model.last_used)
        deleted.append(model.model)
    return PruneReport(plan=plan, dry_run=False, deleted=tuple(deleted))


def prune(
    ledger: Ledger,
    store: BlobStore,
    *,
    keep: int,
    allow_rollback_loss: bool = False,
    dry_run: bool = False,
) -> PruneReport:
    """Plan (:func:`plan_prune`) and, unless ``dry_run``, delete (:func:`execute`).

    Raises:
        ConfigurationError: a bad ``keep`` or an unreadable ledger (nothing deleted).
        ConflictError: the ledger changed while planning (nothing deleted).
        ServiceError: storage refused a delete.

    Example:
        >>> report = prune(config.ledger(), config.store(), keep=3, dry_run=True)  # doctest: +SKIP
        >>> print(report.summary())                                                # doctest: +SKIP
    """
    plan = plan_prune(ledger, keep=keep, allow_rollback_loss=allow_rollback_loss, store=store)
    if dry_run:
        return PruneReport(plan=plan, dry_run=True)
    return execute(plan, store, ledger=ledger)
