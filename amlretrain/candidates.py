"""Shadow candidates: a second copy of a target serving the new model, made for a while.

A guarded rollout scores the same rows on the incumbent (the live target) and on a
*candidate* (the new model), before any live target changes. This module makes and
removes the candidates; the rollout engine scores through them (``candidate.target``).

* Classic: the candidate is an endpoint added to the incumbent's predictive web service
  (the classic retraining docs' own way: add an endpoint, PATCH it to the new model),
  deleted afterwards. It counts against the service's endpoint limit while it lives.
* New (ARM): the candidate is a web service created (PUT) from the incumbent's definition
  with the new model, in the incumbent's resource group, deleted afterwards. A GET omits
  the storage account key and the commitment plan, so both are given
  (``[rollout] arm_storage_key_env`` names the environment variable holding the key,
  ``arm_commitment_plan`` is the plan's ARM id; :func:`arm_candidate_settings`).

One candidate per run, model and incumbent (:func:`candidate_name`: the same name when a
resumed run asks again, so it is reused). Creating one is write-ahead: a
:class:`~amlretrain.records.RolloutEvent` ``stage="candidate", verdict="started"`` is
appended before anything is sent, ``done`` once it is deleted, ``failed`` when making it
failed (``evidence.removed`` tells whether what was made was deleted again). A candidate
``started`` (or ``failed`` and not removed) with no ``done`` after it is a leftover
(:func:`leftover_candidates`): :func:`amlretrain.reconcile` deletes it
(:func:`delete_leftovers`).

See docs/candidates.md for what each costs.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from amlretrain._redact import REDACTED, redact
from amlretrain.azureml.targets import DeploymentView, OnlineEndpointTarget
from amlretrain.blobs import same_blob, strip_sas
from amlretrain.errors import (
    AmlRetrainError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    OperationTimeout,
    VerificationFailed,
)
from amlretrain.locks import TargetLocked
from amlretrain.records import RolloutEvent
from amlretrain.studio.targets import ArmTarget, ClassicTarget

if TYPE_CHECKING:
    from amlretrain.blobs import BlobRef
    from amlretrain.history import History
    from amlretrain.ledger import Ledger
    from amlretrain.studio.definition import WebServiceDefinition
    from amlretrain.studio.management import ClassicClient
    from amlretrain.studio.webservices import WebServicesClient
    from amlretrain.targets import Target, TargetState

__all__ = [
    "ARM_SERVICE",
    "AZUREML_DEPLOYMENT",
    "CLASSIC_ENDPOINT",
    "NAME_PREFIX",
    "Candidate",
    "LeftOver",
    "arm_candidate_settings",
    "candidate_name",
    "create_candidate",
    "delete_candidate",
    "delete_leftovers",
    "leftover_candidates",
]

log = logging.getLogger(__name__)

#: A candidate endpoint on a classic web service (``Candidate.kind``, ``evidence.kind``).
CLASSIC_ENDPOINT = "classic-endpoint"
#: A candidate New (ARM) web service (``Candidate.kind``, ``evidence.kind``).
ARM_SERVICE = "arm-service"
#: The standby deployment of an Azure ML v2 online endpoint, serving the new model at 0%
#: of the live traffic (``Candidate.kind``, ``evidence.kind``): kept for the swap when the
#: rollout's checks pass (recorded ``done``, ``result`` "kept for the swap"), else deleted.
AZUREML_DEPLOYMENT = "azureml-deployment"
#: The kinds of candidate.
KINDS = (CLASSIC_ENDPOINT, ARM_SERVICE, AZUREML_DEPLOYMENT)

#: Every candidate's name starts with it (then hexadecimal digits).
NAME_PREFIX = "cand"
#: A classic endpoint name: 1 to 24 lower-case letters or digits (API-NOTES 3.2).
NAME_LENGTH = 24

#: The configuration keys the rollout reads for a New (ARM) candidate.
STORAGE_KEY_SETTING = "[rollout] arm_storage_key_env"
PLAN_SETTING = "[rollout] arm_commitment_plan"
_PLAN_PATH = "/providers/microsoft.machinelearning/commitmentplans/"

#: What deleting a leftover found (the text of :func:`delete_leftovers`'s pairs).
DELETED = "deleted"
#: A v2 candidate kept: the swap gives it the traffic (``done``'s ``result``).
KEPT = "kept for the swap"
ALREADY_GONE = "already gone"


def candidate_name(run_id: str, model_url: str, *, incumbent: str | None = None) -> str:
    """The candidate's name: ``cand`` and 20 hexadecimal digits (24 characters).

    A digest of the run, the model without its SAS and, when given, the incumbent's
    ledger key: the same name whenever the same run asks again (a resumed run finds its
    candidate), another for another model, run or incumbent (two targets of one service
    given the same model never share, and delete, each other's candidate). It is a valid
    classic endpoint name (at most 24 lower-case letters or digits) and a valid web
    service name.

    Example:
        >>> candidate_name("run-1", "https://a.blob.core.windows.net/c/m.ilearner?sig=x")
        'cand6d49bca63d6305341d63'
    """
    parts = [run_id, strip_sas(model_url) or ""]
    if incumbent is not None:
        parts.append(incumbent)
    digest = hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()
    return NAME_PREFIX + digest[: NAME_LENGTH - len(NAME_PREFIX)]


def arm_candidate_settings(
    section: Mapping[str, Any], *, environ: Mapping[str, str] | None = None
) -> tuple[str | None, str | None]:
    """The storage account key and commitment plan id a ``[rollout]`` section gives.

    ``arm_storage_key_env`` is the NAME of an environment variable holding the storage
    account key (never the key itself); ``arm_commitment_plan`` is the plan's ARM id.
    Either may be absent (None): :func:`create_candidate` refuses a New (ARM) candidate
    then, and a classic one needs neither.

    Raises:
        ConfigurationError: the variable named is not set (or empty), or a value is not
            a string.
    """
    env = os.environ if environ is None else environ
    name = section.get("arm_storage_key_env")
    plan = section.get("arm_commitment_plan")
    if name is not None and (not isinstance(name, str) or not name):
        raise ConfigurationError(
            f"{STORAGE_KEY_SETTING} must be the name of an environment variable"
        )
    if plan is not None and (not isinstance(plan, str) or not plan):
        raise ConfigurationError(f"{PLAN_SETTING} must be the commitment plan's ARM id")
    key = None
    if name is not None:
        key = env.get(name)
        if not key:
            raise ConfigurationError(
                f"{STORAGE_KEY_SETTING} names the environment variable {name!r}, which is not "
                "set: set it to the storage account key of the New web services"
            )
    return key, plan


@attrs.frozen(kw_only=True)
class Candidate:
    """A candidate made for a shadow comparison: score through ``target`` with ``state``.

    Attributes:
        kind: ``classic-endpoint`` or ``arm-service``.
        target: the candidate as a :class:`~amlretrain.targets.Target` (a
            :class:`~amlretrain.studio.targets.ClassicTarget` or
            :class:`~amlretrain.studio.targets.ArmTarget`):
            ``candidate.target.score(sample, candidate.state)``.
        state: what it serves (the new model), as read after it was made.
        where: where it is, JSON-ready, no secret: ``workspace_id``, ``web_service_id``,
            ``endpoint`` (classic) or ``id``, ``resource_group``, ``name`` (ARM).
        incumbent: the ledger key of the target it shadows.
        model: the model it serves (no SAS).
        run_id: the run that made it.
        reused: it existed already (a resumed run) and was reused.
    """

    kind: str
    target: Target = attrs.field(repr=False)
    state: TargetState = attrs.field(repr=False)
    where: dict[str, str]
    incumbent: str
    model: str
    run_id: str
    reused: bool = False

    @property
    def name(self) -> str:
        """The endpoint's or web service's name."""
        return _place_name(self.where)


@attrs.frozen(kw_only=True)
class LeftOver:
    """A candidate the ledger says may still exist (made, never recorded deleted).

    Attributes:
        run_id: the run that made it.
        kind: ``classic-endpoint`` or ``arm-service``.
        where: where it is (as :attr:`Candidate.where`).
        model: the model it was made for (no SAS).
        target: the ledger key of its incumbent (its lease guards the deletion).
        verdict: its last record: ``started`` or ``failed``.
        time: when that was recorded.
    """

    run_id: str | None
    kind: str
    where: dict[str, str]
    model: str | None
    target: str | None = None
    verdict: str = "started"
    time: str = ""

    @property
    def key(self) -> str:
        """Where it is, as one string (``classic:ws/svc/ep``, ``arm:<id>``)."""
        return _where_key(self.kind, self.where) or ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, members named as the attributes."""
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "where": dict(self.where),
            "model": self.model,
            "target": self.target,
            "verdict": self.verdict,
            "time": self.time,
        }


# -- identity --------------------------------------------------------------------------


def _where_key(kind: Any, where: Any) -> str | None:
    """One string for a candidate's place (case-insensitive ids), or None if unreadable."""
    if not isinstance(where, Mapping):
        return None
    if kind == CLASSIC_ENDPOINT:
        parts = [where.get(k) for k in ("workspace_id", "web_service_id", "endpoint")]
        if not all(isinstance(p, str) and p for p in parts):
            return None
        return "classic:" + "/".join(str(p).lower() for p in parts)
    if kind == ARM_SERVICE:
        rid = where.get("id")
        return f"arm:{rid.lower()}" if isinstance(rid, str) and rid else None
    if kind == AZUREML_DEPLOYMENT:
        eid, dep = where.get("endpoint_id"), where.get("deployment")
        if not (isinstance(eid, str) and eid and isinstance(dep, str) and dep):
            return None
        return f"azureml:{eid.lower()}/deployments/{dep.lower()}"
    return None


def _classic_where(client: ClassicClient, web_service_id: str, name: str) -> dict[str, str]:
    return {"workspace_id": client.workspace_id, "web_service_id": web_service_id, "endpoint": name}


def _arm_where(client: WebServicesClient, resource_group: str, name: str) -> dict[str, str]:
    return {
        "id": client.resource_id(resource_group, name),
        "resource_group": resource_group,
        "name": name,
    }


def _place_name(where: Mapping[str, str]) -> str:
    """A candidate's name in a message: its endpoint, web service or deployment."""
    return where.get("endpoint") or where.get("name") or where.get("deployment") or "?"


def _subscription_of(resource_id: str) -> str | None:
    parts = resource_id.split("/")
    if len(parts) > 2 and parts[1].lower() == "subscriptions":
        return parts[2]
    return None


# -- creating --------------------------------------------------------------------------


def _scrubbed(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, REDACTED)
    return redact(text)


def _error_text(err: BaseException, secret: str | None = None) -> str:
    return _scrubbed(f"{type(err).__name__}: {err}", secret)


def create_candidate(
    incumbent: Target,
    model: BlobRef,
    *,
    run_id: str,
    ledger: Ledger,
    arm_storage_key: str | None = None,
    arm_commitment_plan: str | None = None,
) -> Candidate:
    """Make (or find again) the candidate of ``incumbent`` serving ``model``, verified.

    Reads the incumbent (nothing is written if it cannot be read or the candidate
    cannot be described), appends ``started`` to the ledger (write-ahead: a
    :class:`~amlretrain.errors.LedgerError` means nothing was made), then:

    * classic: adds the endpoint :func:`candidate_name` names to the incumbent's web
      service, with the incumbent endpoint's throttle level, concurrent calls and
      prevent-update setting (the diagnostics level is not part of the documented
      add-endpoint request: the service's default applies), and PATCHes it to ``model``
      (:meth:`ClassicTarget.deploy <amlretrain.studio.targets.ClassicTarget.deploy>`:
      verified by fresh reads);
    * New (ARM): PUTs a web service of that name in the incumbent's resource group: the
      incumbent's definition (GET) with ``model`` as its trained model (as the
      incumbent's own swap would write it), ``arm_storage_key`` for its storage
      account and ``arm_commitment_plan`` as its plan; waits for it and verifies it.

    A candidate of that name that exists already (a resumed run) is reused: PATCHed to
    ``model`` unless it serves it already. When making it fails, what was made is
    deleted (best effort), ``failed`` is recorded with the error (redacted) and the error
    raised.

    Args:
        incumbent: a ClassicTarget or an ArmTarget.
        model: the new model (with the SAS the service is sent).
        run_id: the run (the name's digest, and the ledger records').
        ledger: where ``started``/``failed`` are recorded.
        arm_storage_key: the storage account key of a New service (a secret; never
            recorded, never shown).
        arm_commitment_plan: the ARM id of the commitment plan of a New service.

    Raises:
        ConfigurationError: an ARM incumbent without the storage key or commitment plan,
            a plan id that is not a commitment plan's, an incumbent of another kind
            (before anything is written or sent).
        LedgerError: ``started`` could not be recorded (nothing was made).
        AmlRetrainError: making it failed (``failed`` recorded, what was made deleted).
    """
    if isinstance(incumbent, ClassicTarget):
        return _create_classic(incumbent, model, run_id=run_id, ledger=ledger)
    if isinstance(incumbent, OnlineEndpointTarget):
        return _create_azureml(incumbent, model, run_id=run_id, ledger=ledger)
    if isinstance(incumbent, ArmTarget):
        missing = []
        if not arm_storage_key:
            missing.append(
                f"the storage account key ({STORAGE_KEY_SETTING}: the NAME of an "
                "environment variable holding it)"
            )
        if not arm_commitment_plan:
            missing.append(f"the commitment plan ({PLAN_SETTING}: its ARM id)")
        if missing:
            raise ConfigurationError(
                f"a candidate of New web service {incumbent.label} is a new web service, and "
                "a GET of the incumbent leaves out what creating one needs: give "
                + " and ".join(missing)
            )
        assert arm_storage_key is not None and arm_commitment_plan is not None
        if _PLAN_PATH not in arm_commitment_plan.lower():
            raise ConfigurationError(
                f"{PLAN_SETTING} {arm_commitment_plan!r} is not the ARM id of a "
                "Microsoft.MachineLearning/commitmentPlans resource (/subscriptions/.../"
                "resourceGroups/.../providers/Microsoft.MachineLearning/commitmentPlans/NAME)"
            )
        return _create_arm(
            incumbent,
            model,
            run_id=run_id,
            ledger=ledger,
            storage_key=arm_storage_key,
            plan=arm_commitment_plan,
        )
    raise ConfigurationError(
        f"no shadow candidate can be made for {incumbent!r}: only classic endpoints "
        "(ClassicTarget), New web services (ArmTarget) and v2 online endpoints "
        "(OnlineEndpointTarget) have one"
    )


def _started(
    ledger: Ledger,
    run_id: str,
    incumbent: Target,
    model: BlobRef,
    kind: str,
    where: dict[str, str],
) -> None:
    ledger.append(
        RolloutEvent.new(
            run_id=run_id,
            stage="candidate",
            verdict="started",
            target=incumbent.key,
            model=model.url,
            message=f"making candidate {kind} {_place_name(where)}",
            evidence={"kind": kind, "where": where},
        )
    )


def _failed(
    ledger: Ledger,
    run_id: str,
    incumbent: str,
    model: str | None,
    kind: str,
    where: dict[str, str],
    error: str,
    *,
    removed: bool,
    step: str,
) -> None:
    """Record a failure (best effort: an error being raised is not hidden by the ledger's)."""
    try:
        ledger.append(
            RolloutEvent.new(
                run_id=run_id,
                stage="candidate",
                verdict="failed",
                target=incumbent,
                model=model,
                message=f"candidate {kind}: {step} failed: {error}",
                evidence={
                    "kind": kind,
                    "where": where,
                    "step": step,
                    "error": error,
                    "removed": removed,
                },
            )
        )
    except AmlRetrainError as err:
        log.error("could not record the failure of candidate %s: %s", where, redact(str(err)))


def _create_classic(
    incumbent: ClassicTarget, model: BlobRef, *, run_id: str, ledger: Ledger
) -> Candidate:
    client = incumbent.client
    service = incumbent.web_service_id
    known = incumbent.read()  # its settings and its resolved resource (reads only)
    from amlretrain.studio.models import Endpoint

    settings = known.document if isinstance(known.document, Endpoint) else None
    name = candidate_name(run_id, model.url, incumbent=incumbent.key)
    where = _classic_where(client, service, name)
    _started(ledger, run_id, incumbent, model, CLASSIC_ENDPOINT, where)
    target = ClassicTarget(
        client,
        service,
        name,
        resource_name=known.resource,
        verify_timeout=incumbent.verify_timeout,
    )
    reused = True
    try:
        try:
            client.get_endpoint(service, name)
        except NotFoundError:
            reused = False
            level, calls, prevent = _endpoint_settings(settings)
            client.create_endpoint(
                service,
                name,
                description=f"amlretrain shadow candidate of {incumbent.endpoint} (run "
                f"{run_id}): deleted after the comparison",
                throttle_level=level,
                max_concurrent_calls=calls,
                prevent_update=prevent,
            )
        state = target.check()  # refuses the default endpoint; reads it
        if not same_blob(state.model, model.url):
            state = target.deploy(model, state, pinned=True)
    except Exception as err:
        removed = _remove_quietly(lambda: client.delete_endpoint(service, name), where)
        _failed(
            ledger,
            run_id,
            incumbent.key,
            model.url,
            CLASSIC_ENDPOINT,
            where,
            _error_text(err),
            removed=removed,
            step="create",
        )
        raise
    log.info("%s: candidate endpoint %s serves %s", incumbent.label, name, model.url)
    return Candidate(
        kind=CLASSIC_ENDPOINT,
        target=target,
        state=state,
        where=where,
        incumbent=incumbent.key,
        model=model.url,
        run_id=run_id,
        reused=reused,
    )


def _create_azureml(
    incumbent: OnlineEndpointTarget, model: BlobRef, *, run_id: str, ledger: Ledger
) -> Candidate:
    """The standby deployment made to serve ``model`` at 0% (T9 steps 4-5)."""
    known = incumbent.check()  # refuses what cannot be swapped, before any record
    standby = incumbent.standby_name(known)
    where = {"endpoint_id": incumbent.endpoint_id, "deployment": standby}
    _started(ledger, run_id, incumbent, model, AZUREML_DEPLOYMENT, where)
    try:
        name, state = incumbent.prepare_standby(model)
    except Exception as err:
        removed = _remove_quietly(lambda: _delete_standby(incumbent, standby), where)
        _failed(
            ledger,
            run_id,
            incumbent.key,
            model.url,
            AZUREML_DEPLOYMENT,
            where,
            _error_text(err),
            removed=removed,
            step="create",
        )
        raise
    view = incumbent.standby_view(name)
    log.info("%s: candidate deployment %s serves %s at 0%%", incumbent.label, name, model.url)
    return Candidate(
        kind=AZUREML_DEPLOYMENT,
        target=view,
        state=view.read(state),
        where=where,
        incumbent=incumbent.key,
        model=model.url,
        run_id=run_id,
    )


def _delete_standby(target: OnlineEndpointTarget, name: str) -> str:
    """Delete deployment ``name`` (not one with live traffic); what was found."""
    return DELETED if target.delete_deployment(name) else ALREADY_GONE


def _endpoint_settings(endpoint: Any) -> tuple[str, int | None, bool]:
    """The incumbent's throttle level, concurrent calls (High only) and prevent-update."""
    level = str(getattr(endpoint, "throttle_level", None) or "Low").capitalize()
    if level not in ("Low", "High"):
        level = "Low"
    calls = getattr(endpoint, "max_concurrent_calls", None)
    if level != "High" or not isinstance(calls, int) or not 1 <= calls <= 200:
        calls = None
    return level, calls, bool(getattr(endpoint, "prevent_update", False))


def _remove_quietly(delete: Any, where: Mapping[str, str]) -> bool:
    """Best effort: True when what a failed create made is gone."""
    try:
        delete()
    except Exception as err:
        log.warning(
            "could not delete candidate %s after a failure: %s", dict(where), redact(str(err))
        )
        return False
    return True


def _candidate_definition(
    incumbent: ArmTarget,
    known: TargetState,
    model: BlobRef,
    *,
    storage_key: str,
    plan: str,
    run_id: str,
) -> WebServiceDefinition:
    """The incumbent's definition with ``model``, the storage key and the plan."""
    from amlretrain.studio.definition import (
        CommitmentPlan,
        StorageAccount,
        WebServiceDefinition,
    )

    current = known.document
    assert isinstance(current, WebServiceDefinition)
    uri = model.sas_url if incumbent.include_sas else model.url
    new = current.with_trained_model(uri, asset=known.resource)
    props = new.properties
    account = props.storage_account.name if props and props.storage_account else None
    if props is None or not account:
        raise ConfigurationError(
            f"web service {incumbent.label} names no storage account (properties."
            "storageAccount.name): a candidate cannot be created from its definition"
        )
    tags = dict(new.tags or {})
    tags.update({"amlretrainCandidateOf": incumbent.name, "amlretrainRun": run_id})
    return attrs.evolve(
        new,
        tags=tags,
        properties=attrs.evolve(
            props,
            storage_account=StorageAccount(name=account, key=storage_key),
            commitment_plan=CommitmentPlan(id=plan),
        ),
    )


def _create_arm(
    incumbent: ArmTarget,
    model: BlobRef,
    *,
    run_id: str,
    ledger: Ledger,
    storage_key: str,
    plan: str,
) -> Candidate:
    client = incumbent.client
    group = incumbent.resource_group
    known = incumbent.read()
    definition = _candidate_definition(
        incumbent, known, model, storage_key=storage_key, plan=plan, run_id=run_id
    )
    name = candidate_name(run_id, model.url, incumbent=incumbent.key)
    where = _arm_where(client, group, name)
    target = ArmTarget(
        client,
        group,
        name,
        asset=known.resource,
        include_sas=incumbent.include_sas,
        operation_timeout=incumbent.operation_timeout,
        verify_timeout=incumbent.verify_timeout,
        verify_interval=incumbent.verify_interval,
    )
    definition.for_put()  # an invalid definition is refused before anything is recorded
    _started(ledger, run_id, incumbent, model, ARM_SERVICE, where)
    reused = True
    try:
        try:
            existing = client.get(group, name)
        except NotFoundError:
            existing = None
        if existing is None:
            reused = False
            poller = client.begin_create_or_update(group, name, definition, overwrite_fetched=True)
            # reads can lag behind the operation: a VerificationFailed is settled below
            with contextlib.suppress(VerificationFailed):
                poller.result(incumbent.operation_timeout)
        else:
            _provisioned(target, existing)
        state = _settle(target, model)
        if not same_blob(state.model, model.url):
            state = target.deploy(model, state, pinned=True)
    except Exception as err:
        timeout = incumbent.operation_timeout
        removed = _remove_quietly(lambda: client.begin_delete(group, name).wait(timeout), where)
        _failed(
            ledger,
            run_id,
            incumbent.key,
            model.url,
            ARM_SERVICE,
            where,
            _error_text(err, storage_key),
            removed=removed,
            step="create",
        )
        raise
    log.info("%s: candidate web service %s serves %s", incumbent.label, name, model.url)
    return Candidate(
        kind=ARM_SERVICE,
        target=target,
        state=state,
        where=where,
        incumbent=incumbent.key,
        model=model.url,
        run_id=run_id,
        reused=reused,
    )


def _provisioned(target: ArmTarget, found: WebServiceDefinition) -> None:
    """Wait until a service found already (a resumed run's) is no longer provisioning."""
    deadline = time.monotonic() + target.operation_timeout
    definition = found
    while True:
        props = definition.properties
        status = (props.provisioning_state if props else None) or "Succeeded"
        if status.lower() == "succeeded":
            return
        if status.lower() in ("failed", "canceled", "cancelled"):
            raise ConflictError(
                f"candidate web service {target.label} was found {status}: it is deleted, "
                "ask again to create it anew",
                code="CandidateFailed",
            )
        if time.monotonic() >= deadline:
            raise OperationTimeout(
                f"candidate web service {target.label} is still {status} after "
                f"{target.operation_timeout:g} s",
                waited=target.operation_timeout,
            )
        time.sleep(target.verify_interval)
        definition = target.client.get(target.resource_group, target.name)


def _settle(target: ArmTarget, model: BlobRef) -> TargetState:
    """Read the new service until it shows ``model`` or its verify window ends."""
    deadline = time.monotonic() + target.verify_timeout
    while True:
        state = target.read()
        if same_blob(state.model, model.url) or time.monotonic() >= deadline:
            return state
        time.sleep(target.verify_interval)


# -- deleting --------------------------------------------------------------------------


def _gone_or_delete_classic(client: ClassicClient, where: Mapping[str, str]) -> str:
    service, name = where["web_service_id"], where["endpoint"]
    try:
        client.get_endpoint(service, name)
    except NotFoundError:
        return ALREADY_GONE
    client.delete_endpoint(service, name)  # a 404 by now counts as deleted
    return DELETED


def _gone_or_delete_arm(
    client: WebServicesClient, where: Mapping[str, str], timeout: float | None
) -> str:
    group, name = _arm_place(where)
    try:
        client.get(group, name)
    except NotFoundError:
        return ALREADY_GONE
    client.begin_delete(group, name).wait(timeout)  # a 404 or 204 counts as deleted
    return DELETED


def _arm_place(where: Mapping[str, str]) -> tuple[str, str]:
    """(resource group, name) of an ARM candidate (from its id when the members lack)."""
    group, name = where.get("resource_group"), where.get("name")
    if group and name:
        return group, name
    parts = str(where.get("id", "")).split("/")
    lowered = [p.lower() for p in parts]
    try:
        return parts[lowered.index("resourcegroups") + 1], parts[-1]
    except (ValueError, IndexError) as err:
        raise ConfigurationError(f"not the ARM id of a web service: {where.get('id')!r}") from err


def _done(
    ledger: Ledger,
    *,
    run_id: str | None,
    incumbent: str | None,
    model: str | None,
    kind: str,
    where: Mapping[str, str],
    result: str,
    extra: Mapping[str, Any] | None = None,
) -> None:
    ledger.append(
        RolloutEvent.new(
            run_id=run_id,
            stage="candidate",
            verdict="done",
            target=incumbent,
            model=model,
            message=f"candidate {kind} {_place_name(where)}: {result}",
            evidence={"kind": kind, "where": dict(where), "result": result, **(extra or {})},
        )
    )


def delete_candidate(
    candidate: Candidate, *, run_id: str, ledger: Ledger, keep: bool = False
) -> None:
    """Delete the candidate (one already gone counts as deleted); record ``done``.

    ``keep``: the rollout's checks passed: a v2 candidate (the standby deployment) is
    kept for the swap, which gives it the traffic (recorded ``done``, :data:`KEPT`);
    other kinds are deleted all the same.

    Raises:
        AmlRetrainError: it could not be deleted (``failed`` recorded: it stays a
            leftover, for :func:`amlretrain.reconcile`).
        LedgerError: ``done`` could not be recorded (it was deleted; reconcile records
            it as gone later).
    """
    target = candidate.target
    try:
        if candidate.kind == AZUREML_DEPLOYMENT:
            assert isinstance(target, DeploymentView)
            deployment = candidate.where["deployment"]
            result = KEPT if keep else _delete_standby(target.target, deployment)
        elif candidate.kind == CLASSIC_ENDPOINT:
            assert isinstance(target, ClassicTarget)
            result = _gone_or_delete_classic(target.client, candidate.where)
        else:
            assert isinstance(target, ArmTarget)
            result = _gone_or_delete_arm(target.client, candidate.where, target.operation_timeout)
    except Exception as err:
        _failed(
            ledger,
            run_id,
            candidate.incumbent,
            candidate.model,
            candidate.kind,
            dict(candidate.where),
            _error_text(err),
            removed=False,
            step="delete",
        )
        raise
    _done(
        ledger,
        run_id=run_id,
        incumbent=candidate.incumbent,
        model=candidate.model,
        kind=candidate.kind,
        where=candidate.where,
        result=result,
    )
    log.info("candidate %s: %s", candidate.name, result)


# -- leftovers -------------------------------------------------------------------------


def leftover_candidates(history: History) -> list[LeftOver]:
    """Candidates the ledger says may still exist, oldest first.

    For each place (``where``), its last ``candidate`` record decides: ``started``, or
    ``failed`` without ``evidence.removed`` true, is a leftover; ``done`` (or a failure
    whose mess was removed) is not. Records whose evidence cannot be read are skipped.
    """
    last: dict[str, RolloutEvent] = {}
    for event in history.rollout_events():
        if event.stage != "candidate" or event.verdict not in ("started", "failed", "done"):
            continue
        evidence = event.evidence if isinstance(event.evidence, Mapping) else {}
        key = _where_key(evidence.get("kind"), evidence.get("where"))
        if key is None:
            continue
        last.pop(key, None)  # keep the order of the latest record
        last[key] = event
    out = []
    for event in last.values():
        evidence = event.evidence
        if event.verdict == "done" or (event.verdict == "failed" and evidence.get("removed")):
            continue
        where = {str(k): str(v) for k, v in evidence["where"].items()}
        out.append(
            LeftOver(
                run_id=event.run_id,
                kind=str(evidence["kind"]),
                where=where,
                model=event.model,
                target=event.target,
                verdict=event.verdict,
                time=event.time,
            )
        )
    return out


def _as_list(clients: Any) -> list[Any]:
    """One client, several (an iterable) or None, as a list."""
    if clients is None:
        return []
    if hasattr(clients, "workspace_id") or hasattr(clients, "subscription_id"):
        return [clients]
    return list(clients) if isinstance(clients, Iterable) else [clients]


def delete_leftovers(
    history: History,
    *,
    ledger: Ledger,
    classic: ClassicClient | Iterable[ClassicClient] | None,
    arm: WebServicesClient | Iterable[WebServicesClient] | None,
    wait_lock: float = 0.0,
    run_id: str | None = None,
    timeout: float | None = 900.0,
    online: Iterable[OnlineEndpointTarget] = (),
) -> list[tuple[LeftOver, str]]:
    """Delete every leftover candidate a client of its workspace/subscription can reach.

    Each is deleted under its incumbent's lease (a run still shadowing with it holds
    that lease: the candidate is then skipped, not deleted under it). ``done`` is
    recorded (under the run that made it; ``evidence.reconciledBy``: ``run_id``) for
    each one deleted or found gone.

    Args:
        classic: the classic client(s): a leftover is deleted by the one of its workspace.
        arm: the ARM client(s): a leftover is deleted by the one of its subscription.
        online: v2 online endpoint targets: a leftover standby deployment is deleted by
            the target of its endpoint (not one with live traffic: a swap made it live).
        wait_lock: seconds to wait for an incumbent's lease held by another run.
        run_id: the run doing this (recorded as ``reconciledBy``).
        timeout: seconds an ARM delete may take.

    Returns:
        Each leftover with what happened: ``deleted``, ``already gone``,
        ``failed: <error>`` or ``skipped: <why>`` (no client of its workspace or
        subscription; its incumbent leased by another run).
    """
    classics = _as_list(classic)
    arms = _as_list(arm)
    endpoints = {t.endpoint_id.lower(): t for t in online}
    out: list[tuple[LeftOver, str]] = []
    for left in leftover_candidates(history):
        out.append(
            (
                left,
                _delete_leftover(
                    left, ledger, classics, arms, endpoints, wait_lock, run_id, timeout
                ),
            )
        )
    return out


def _delete_leftover(
    left: LeftOver,
    ledger: Ledger,
    classics: list[ClassicClient],
    arms: list[WebServicesClient],
    endpoints: Mapping[str, OnlineEndpointTarget],
    wait_lock: float,
    run_id: str | None,
    timeout: float | None,
) -> str:
    delete: Callable[[], str]
    if left.kind == AZUREML_DEPLOYMENT:
        online = endpoints.get(left.where.get("endpoint_id", "").lower())
        if online is None:
            return f"skipped: no target of online endpoint {left.where.get('endpoint_id')}"
        found_target, name = online, left.where.get("deployment", "")

        def delete() -> str:
            return _delete_standby(found_target, name)

    elif left.kind == CLASSIC_ENDPOINT:
        ws = left.where.get("workspace_id", "").lower()
        client = next((c for c in classics if c.workspace_id.lower() == ws), None)
        if client is None:
            return f"skipped: no classic client of workspace {left.where.get('workspace_id')}"
        classic_client = client

        def delete() -> str:
            return _gone_or_delete_classic(classic_client, left.where)

    else:
        sub = (_subscription_of(left.where.get("id", "")) or "").lower()
        found = next((c for c in arms if c.subscription_id.lower() == sub), None)
        if found is None:
            return f"skipped: no ARM client of subscription {sub or '(unknown)'}"
        arm_client = found

        def delete() -> str:
            return _gone_or_delete_arm(arm_client, left.where, timeout)

    try:
        with contextlib.ExitStack() as stack:
            if left.target:
                stack.enter_context(ledger.locks.hold(left.target, wait=wait_lock, run_id=run_id))
            result = delete()
    except TargetLocked as err:
        holder = err.lock.holder if err.lock is not None else "another run"
        return (
            f"skipped: its incumbent {left.target} is leased by {redact(holder)}: that run "
            "may still use the candidate"
        )
    except AmlRetrainError as err:
        log.warning("leftover candidate %s: %s", left.key, redact(str(err)))
        return f"failed: {_error_text(err)}"
    _done(
        ledger,
        run_id=left.run_id,
        incumbent=left.target,
        model=left.model,
        kind=left.kind,
        where=left.where,
        result=result,
        extra={"reconciled": True, "reconciledBy": run_id},
    )
    log.info("leftover candidate %s: %s", left.key, result)
    return result
