"""After a run's last bake: delete what a swap took the traffic from, recorded.

A v2 online endpoint (:class:`~amlretrain.azureml.targets.OnlineEndpointTarget`) keeps the
deployment its swap took the live traffic from, at 0%, until the run's last bake passed;
then, by default (``delete_previous``), that deployment is deleted, so an endpoint holds
one deployment between runs and two during one (V2-NOTES T9 step 9, 3.5's 20 per
endpoint). Write-ahead, under the target's lease: a :class:`~amlretrain.records.RolloutEvent`
``stage="retire"`` ``started`` (the deployment, its instance type and count, the model it
served) before the DELETE, ``done`` or ``failed`` after. A rollback later recreates it:
the ledger's deployment record names the model it served, and the swap PUTs the standby
as a copy of the live deployment's settings with that model.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any, TypeGuard

from amlretrain._redact import redact
from amlretrain.errors import AmlRetrainError, LedgerError
from amlretrain.locks import TargetLocked
from amlretrain.records import RolloutEvent

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from amlretrain.azureml.targets import OnlineEndpointTarget
    from amlretrain.ledger import Ledger
    from amlretrain.result import StepRecorder, TargetOutcome
    from amlretrain.targets import Target

__all__ = ["retire_previous", "retire_swapped"]

log = logging.getLogger("amlretrain.workflow")


def _record(ledger: Ledger | None, run_id: str | None, verdict: str, **kw: Any) -> None:
    if ledger is None:
        return
    ledger.append(RolloutEvent.new(run_id=run_id, stage="retire", verdict=verdict, **kw))


def _retires(target: Target) -> TypeGuard[OnlineEndpointTarget]:
    """True for a target that keeps its previous deployment until it is retired: a v2
    online endpoint with ``delete_previous``."""
    from amlretrain.azureml.targets import OnlineEndpointTarget

    return isinstance(target, OnlineEndpointTarget) and target.delete_previous


def retire_previous(
    target: Target, *, ledger: Ledger | None, run_id: str | None, wait_lock: float
) -> str:
    """Delete ``target``'s previous deployment (see the module docstring).

    Returns:
        One line saying what happened: ``<label>: deleted deployment NAME``, ``<label>:
        nothing to retire``, ``skipped: ...`` (leased by another run) or ``failed: ...``
        (it stays, at 0%: the next swap replaces it).
    """
    if not _retires(target):
        return f"{target.label}: nothing to retire"
    try:
        with contextlib.ExitStack() as stack:
            if ledger is not None:
                stack.enter_context(ledger.locks.hold(target.key, wait=wait_lock, run_id=run_id))
            state = target.read()
            previous = target.previous_deployment(state)
            if previous is None or not previous.name:
                return f"{target.label}: nothing to retire"
            model = target.model_of(state, previous.name)
            evidence = {
                "deployment": previous.name,
                "instance_type": previous.instance_type,
                "instance_count": previous.sku.capacity if previous.sku else None,
                "model_ref": previous.model,
            }
            where = {"target": target.key, "model": model}
            _record(
                ledger,
                run_id,
                "started",
                message=f"deleting deployment {previous.name} (no traffic since the swap)",
                evidence=evidence,
                **where,
            )
            try:
                target.retire(state)
            except AmlRetrainError as err:
                _record(
                    ledger,
                    run_id,
                    "failed",
                    message=redact(str(err)),
                    evidence=evidence,
                    **where,
                )
                raise
            _record(
                ledger,
                run_id,
                "done",
                message=f"deleted deployment {previous.name}",
                evidence=evidence,
                **where,
            )
    except TargetLocked as err:
        holder = err.lock.holder if err.lock is not None else "another run"
        return f"skipped: {target.label} is leased by {redact(holder)}"
    except LedgerError as err:
        return f"failed: {target.label}: the ledger: {redact(str(err))}"
    except AmlRetrainError as err:
        log.warning("%s: the previous deployment was not deleted: %s", target.label, err)
        return f"failed: {target.label}: {redact(str(err))} (it stays at 0%)"
    log.info("%s: deleted deployment %s", target.label, previous.name)
    return f"{target.label}: deleted deployment {previous.name}"


def retire_swapped(
    steps: StepRecorder,
    targets: Sequence[Target],
    outcomes: Iterable[TargetOutcome],
    *,
    ledger: Ledger | None,
    run_id: str | None,
    wait_lock: float,
) -> None:
    """:func:`retire_previous` for each target of ``targets`` whose outcome is
    ``succeeded`` and that retires (a v2 endpoint with ``delete_previous``), as the step
    ``retire`` (no step when none does)."""
    swapped = {o.key for o in outcomes if o.status == "succeeded"}
    retiring = [t for t in targets if t.key in swapped and _retires(t)]
    if not retiring:
        return
    with steps.step("retire") as info:
        results = [
            retire_previous(t, ledger=ledger, run_id=run_id, wait_lock=wait_lock) for t in retiring
        ]
        info["_text"] = "; ".join(results)
        if any(r.startswith("failed") for r in results):
            info["_status"] = "failed"
