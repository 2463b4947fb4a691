"""Deployment targets: what the retrain loop needs of a service it points at a new model.

:class:`Target` is the protocol the loop drives; each platform's targets implement it
(Studio (classic): :class:`~amlretrain.studio.targets.ArmTarget` and
:class:`~amlretrain.studio.targets.ClassicTarget`). :class:`Sample` is the rows a
deployment is scored with.

Targets refuse a wrong target before any change (:meth:`Target.check`), report the model
they serve now, describe the exact request a swap would send (for dry runs), swap and
verify, and score sample rows through the service's request-response API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from amlretrain._redact import redact_data

if TYPE_CHECKING:
    from amlretrain.blobs import BlobRef
    from amlretrain.interrupt import StopSignal
    from amlretrain.studio.definition import WebServiceDefinition
    from amlretrain.studio.scoring import ScoreResult

__all__ = ["Sample", "Target", "redacted_plan"]


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


class Target(Protocol):
    """What the retrain loop needs of a deployment target."""

    @property
    def key(self) -> str:
        """The ledger key: stable and unique (``arm:<id>``, ``classic:<ws>/<svc>/<ep>``)."""
        ...

    @property
    def label(self) -> str:
        """A short name for people."""
        ...

    def check(self) -> str | None:
        """Refuse a wrong target before anything changes (reads only).

        Returns:
            The model URL the target serves now, as :meth:`current_model` would.
        """
        ...

    def current_model(self) -> str | None:
        """The model URL the target serves now (may carry a SAS: a secret)."""
        ...

    def plan(self, model: BlobRef) -> dict[str, Any]:
        """The exact request a swap to ``model`` would send (secrets included)."""
        ...

    @property
    def verify_timeout(self) -> float:
        """Seconds a write may take to show in reads (the verify window)."""
        ...

    def deploy(
        self, model: BlobRef, *, stop: StopSignal | None = None, pinned: bool = False
    ) -> str:
        """Swap to ``model`` and verify with fresh reads; returns the served URL.

        ``pinned``: the caller has just read the target (:meth:`current_model`) under its
        lease; that read is the pin, and the target is not read again before the write.

        Raises:
            OperationTimeout: the change did not finish in time (or within the grace of
                a ``stop`` request): what the target serves is unknown.
            VerificationFailed: the change was accepted but reads did not show the new
                model within :attr:`verify_timeout`: what it serves is unknown.
        """
        ...

    @property
    def request_ids(self) -> tuple[str, ...]:
        """The ``x-ms-request-id`` of the last swap's changing request, when known."""
        ...

    def sample(self) -> Sample | None:
        """Default rows for the scoring check, if the service documents some."""
        ...

    def score(self, sample: Sample) -> ScoreResult:
        """Score ``sample`` through the service's request-response API."""
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
