"""Deployment targets: what the retrain loop needs of a service it points at a new model.

:class:`Target` is the protocol the loop drives; each platform's targets implement it
(Studio (classic): :class:`~amlretrain.studio.targets.ArmTarget` and
:class:`~amlretrain.studio.targets.ClassicTarget`). :class:`TargetState` is what one
read of a target found; :class:`Sample` is the rows a deployment is scored with.

Targets refuse a wrong target before any change (:meth:`Target.check`), read the model
they serve now, describe the exact request a swap would send (for dry runs), swap and
verify, and score sample rows through the service's request-response API. They hold no
state between calls: each read returns a :class:`TargetState`, and the calls that act
on what the target serves take one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from amlretrain._redact import redact_data

if TYPE_CHECKING:
    from amlretrain.blobs import BlobRef
    from amlretrain.interrupt import StopSignal
    from amlretrain.studio.definition import WebServiceDefinition
    from amlretrain.studio.scoring import ScoreResult, ScoringClient

__all__ = [
    "DETACH_AFTER",
    "DetachableTarget",
    "OperationProgress",
    "Sample",
    "Target",
    "TargetState",
    "detach_if_running",
    "redacted_plan",
    "swap_token_data",
]

log = logging.getLogger(__name__)


def _columns(value: Sequence[str]) -> tuple[str, ...]:
    return tuple(str(c) for c in value)


def _rows(value: Sequence[Sequence[Any]]) -> tuple[tuple[Any, ...], ...]:
    return tuple(tuple(r) for r in value)


@attrs.frozen(kw_only=True)
class Sample:
    """Rows to score when verifying a deployment.

    Attributes:
        columns: the input column names.
        rows: rows of values (as many as columns).
        input_name: the service's input port.
    """

    columns: tuple[str, ...] = attrs.field(converter=_columns)
    rows: tuple[tuple[Any, ...], ...] = attrs.field(converter=_rows)
    input_name: str = "input1"

    @classmethod
    def from_example_request(cls, definition: WebServiceDefinition) -> Sample | None:
        """The definition's ``exampleRequest`` (first row: column names), if it has one."""
        props = definition.properties
        example = props.example_request if props else None
        if example is None or not example.inputs:
            return None
        for name, table in example.inputs.items():
            if isinstance(table, list) and len(table) >= 2 and isinstance(table[0], list):
                return cls(columns=table[0], rows=table[1:], input_name=name)
        return None


@attrs.frozen(kw_only=True)
class TargetState:
    """What one read of a target found: an immutable value the loop passes back.

    A target keeps nothing between calls: :meth:`Target.check` and :meth:`Target.read`
    return a state, and :meth:`Target.plan`, :meth:`Target.deploy`,
    :meth:`Target.sample` and :meth:`Target.score` work from the state they are given.

    Attributes:
        target: the :attr:`Target.key` of the target that was read (a target refuses the
            state of another).
        model: the model URL it serves (may carry a SAS: a secret, left out of the repr).
        resource: the trained-model asset or resource the model is in, as resolved.
        document: what was read (a web-service definition, an endpoint; may hold keys:
            left out of the repr and of comparisons).
        checked: :meth:`Target.check` accepted the target (carried over by
            :meth:`Target.read`), so a swap need not refuse a wrong one again.
    """

    target: str
    model: str | None = attrs.field(repr=False)
    resource: str | None = None
    document: object = attrs.field(default=None, repr=False, eq=False)
    checked: bool = False
    #: When it was read (``time.time()``): a deploy may take a recent read as its pin.
    read_at: float = attrs.field(factory=time.time, eq=False, repr=False)


class Target(Protocol):
    """What the retrain loop needs of a deployment target.

    A target is configuration: it holds no state between calls. Every read returns a
    :class:`TargetState`; the calls that need what the target serves take one.

    Example:
        >>> state = target.check()                                    # doctest: +SKIP
        >>> target.plan(model, state)["method"]                       # doctest: +SKIP
        'PATCH'
        >>> after = target.deploy(model, state)                       # doctest: +SKIP
        >>> target.score(sample, after).first.records()               # doctest: +SKIP
    """

    @property
    def key(self) -> str:
        """The ledger key: stable and unique (``arm:<id>``, ``classic:<ws>/<svc>/<ep>``)."""
        ...

    @property
    def label(self) -> str:
        """A short name for people."""
        ...

    @property
    def verify_timeout(self) -> float:
        """Seconds a write may take to show in reads (the verify window)."""
        ...

    def check(self) -> TargetState:
        """Refuse a wrong target before anything changes (reads only).

        Returns:
            What the target serves now (``checked`` set).

        Raises:
            ConfigurationError: a target that cannot be swapped (read-only, a default
                endpoint, no or an ambiguous trained model).
        """
        ...

    def read(self, known: TargetState | None = None) -> TargetState:
        """Read what the target serves now.

        Args:
            known: an earlier state of this target (from :meth:`check`): what it
                established carries over (the resolved resource, ``checked``).
        """
        ...

    def current_model(self) -> str | None:
        """The model URL the target serves now: ``read().model`` (may carry a SAS)."""
        ...

    def plan(self, model: BlobRef, state: TargetState) -> dict[str, Any]:
        """The exact request a swap from ``state`` to ``model`` would send (secrets
        included: print it through :func:`redacted_plan`)."""
        ...

    def deploy(
        self,
        model: BlobRef,
        state: TargetState | None = None,
        *,
        stop: StopSignal | None = None,
        pinned: bool = False,
        on_request: Callable[[str], None] | None = None,
    ) -> TargetState:
        """Swap from ``state`` to ``model`` and verify with fresh reads.

        Args:
            model: the new model (with the SAS the service is sent).
            state: what the target served before. ``pinned``: it was read just now,
                under the target's lease, and is the pin: the target is not read again
                before the write. Not pinned: it is the expected state, and a fresh read
                must still show its model (or already ``model``). None: the target is
                read first and that read is the pin.
            stop: a run's stop request: waits end at its grace deadline.
            on_request: called with the ``x-ms-request-id`` of each changing request
                the service accepted, as soon as it is known (also when the swap then
                fails: the ledger records it).

        Returns:
            The state after the swap (serving ``model``).

        Raises:
            ConflictError: the target no longer serves what ``state`` says (nothing sent).
            OperationTimeout: the change did not finish in time (or within the grace of
                a ``stop`` request): what the target serves is unknown.
            VerificationFailed: the change was accepted but reads did not show the new
                model within :attr:`verify_timeout`: what it serves is unknown.
        """
        ...

    def sample(self, state: TargetState | None = None) -> Sample | None:
        """Default rows for the scoring check, if the service as read in ``state``
        documents some (None: the target is read)."""
        ...

    def score(self, sample: Sample, state: TargetState | None = None) -> ScoreResult:
        """Score ``sample`` through the request-response API of the service as read in
        ``state`` (its address and key; None: the target is read)."""
        ...

    def scoring(
        self, state: TargetState | None = None, *, retries: int | None = None
    ) -> ScoringClient:
        """A scoring client of the service as read in ``state`` (None: the target is
        read), to score many requests on one connection: the guarded rollout's probe
        (``retries=0``: an error is what the probe measures). Close it (a with-block)."""
        ...


#: Seconds a detaching swap waits for an accepted operation before it detaches from it
#: (an operation that ends sooner is finished inline: no deferral for a short wait).
DETACH_AFTER = 2.0


class OperationProgress(Protocol):
    """A detached operation's poller, as :meth:`DetachableTarget.operation` returns it
    (reads only: it polls the operation in the background)."""

    def done(self) -> bool:
        """True when the operation has ended (its outcome is for the swap to verify)."""
        ...

    def status(self) -> str:
        """Its last known status (``InProgress``, ``Succeeded``, ``Failed``...)."""
        ...

    def wait_done(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for it to end; True when it has."""
        ...


class _Detaching(Protocol):
    """What :func:`detach_if_running` needs of a poller."""

    @property
    def request_id(self) -> str | None: ...

    def wait_done(self, timeout: float) -> bool: ...

    def continuation_token(self) -> str: ...


def detach_if_running(poller: _Detaching, what: str, kind: str, data: Mapping[str, Any]) -> None:
    """A detaching swap's one way to stop waiting: when ``poller``'s operation still runs
    :data:`DETACH_AFTER` seconds on, raise :class:`~amlretrain.errors.OperationDetached`
    with a token of ``kind`` (``data`` and the poller's own token as ``lro``). Returns
    when it ended, or when no token without a secret can be made (with a warning): the
    swap then waits for it.
    """
    from amlretrain.errors import OperationDetached
    from amlretrain.polling import encode_token

    if poller.wait_done(DETACH_AFTER):
        return
    try:
        lro = poller.continuation_token()
    except ValueError as err:
        log.warning("%s: not detached, waited for: %s", what, err)
        return
    token = encode_token(kind, {**data, "lro": lro})
    raise OperationDetached(token, what, poller.request_id)


def swap_token_data(token: str, kind: str, model: BlobRef, label: str) -> dict[str, Any]:
    """The data of a detached swap's ``token`` of ``kind``, checked to be a swap to
    ``model``.

    Raises:
        ConfigurationError: not such a token, or one of a swap to another model.
    """
    from amlretrain.blobs import same_blob
    from amlretrain.errors import ConfigurationError
    from amlretrain.polling import decode_token

    try:
        data = decode_token(token, kind)
    except ValueError as err:
        raise ConfigurationError(f"{label}: {err}") from None
    if not same_blob(str(data.get("model")), model.url):
        raise ConfigurationError(
            f"{label}: the detached swap was of {data.get('model')}, not {model.url}"
        )
    return data


@runtime_checkable
class DetachableTarget(Target, Protocol):
    """A target whose swap can stop waiting for its long-running operation (``detach``)
    and be resumed from a continuation token in another process: Azure ML v2 online
    endpoints and New (ARM) web services. A classic endpoint's change is one PATCH with
    no operation to wait for: it is not one.
    """

    def deploy(
        self,
        model: BlobRef,
        state: TargetState | None = None,
        *,
        stop: StopSignal | None = None,
        pinned: bool = False,
        on_request: Callable[[str], None] | None = None,
        detach: bool = False,
    ) -> TargetState:
        """As :meth:`Target.deploy`; ``detach``: an operation still running
        :data:`DETACH_AFTER` seconds after it was accepted raises
        :class:`~amlretrain.errors.OperationDetached` (its token) instead of waiting."""
        ...

    def operation(self, token: str) -> OperationProgress:
        """The detached operation of ``token``, to poll (nothing is sent)."""
        ...

    def resume(
        self,
        model: BlobRef,
        state: TargetState,
        token: str,
        *,
        stop: StopSignal | None = None,
        on_request: Callable[[str], None] | None = None,
        detach: bool = False,
    ) -> TargetState:
        """Go on with the swap to ``model`` from ``token``: wait for its operation (nothing
        is sent again), then the rest of the swap, verified as :meth:`deploy` does.

        Args:
            state: the target read just now, under the lease the swap handed off.
        """
        ...


def redacted_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """A plan safe to print (SAS signatures and keys replaced)."""
    clean: dict[str, Any] = redact_data(plan)
    return clean


def __getattr__(name: str) -> object:
    # Deprecated since 0.2.0 (removed in 0.3.0): the Studio targets moved.
    if name in ("ArmTarget", "ClassicTarget"):
        from amlretrain._deprecated import moved_name

        return moved_name(__name__, name, "amlretrain.studio.targets")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
