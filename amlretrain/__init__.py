"""amlretrain: retrain, gate, swap and verify Azure ML Studio (classic) models.

Every public name is imported on first use (``amlretrain.retrain`` loads the workflow
then), and no module loads requests, urllib3 or the Azure SDK before a client needs
them: ``import amlretrain`` and the CLI stay fast.
"""

import importlib as _importlib
import typing as _typing

from amlretrain._version import __version__

if _typing.TYPE_CHECKING:
    from amlretrain.blobs import BlobRef
    from amlretrain.credentials import StaticTokenCredential
    from amlretrain.errors import (
        AmlRetrainError,
        AuthenticationError,
        ConfigurationError,
        ConflictError,
        DefinitionError,
        GateRejected,
        Interrupted,
        LedgerError,
        NotFoundError,
        OperationStillRunning,
        OperationTimeout,
        ServiceError,
        ThrottledError,
        TrainingJobFailed,
        VerificationFailed,
    )
    from amlretrain.gate import Gate
    from amlretrain.interrupt import StopSignal
    from amlretrain.ledger import Ledger
    from amlretrain.reconciliation import ReconcileReport, reconcile
    from amlretrain.result import RetrainResult
    from amlretrain.storage import BlobStore
    from amlretrain.studio.batch import BatchClient, TrainingJob
    from amlretrain.studio.definition import WebServiceDefinition
    from amlretrain.studio.management import ClassicClient
    from amlretrain.studio.models import Endpoint
    from amlretrain.studio.scoring import ScoringClient
    from amlretrain.studio.targets import ArmTarget, ClassicTarget
    from amlretrain.studio.webservices import WebServicesClient
    from amlretrain.targets import Sample
    from amlretrain.training import Training
    from amlretrain.workflow import deploy, retrain, rollback

__all__ = [
    "AmlRetrainError",
    "ArmTarget",
    "AuthenticationError",
    "BatchClient",
    "BlobRef",
    "BlobStore",
    "ClassicClient",
    "ClassicTarget",
    "ConfigurationError",
    "ConflictError",
    "DefinitionError",
    "Endpoint",
    "Gate",
    "GateRejected",
    "Interrupted",
    "Ledger",
    "LedgerError",
    "NotFoundError",
    "OperationStillRunning",
    "OperationTimeout",
    "ReconcileReport",
    "RetrainResult",
    "Sample",
    "ScoringClient",
    "ServiceError",
    "StaticTokenCredential",
    "StopSignal",
    "ThrottledError",
    "Training",
    "TrainingJob",
    "TrainingJobFailed",
    "VerificationFailed",
    "WebServiceDefinition",
    "WebServicesClient",
    "__version__",
    "deploy",
    "reconcile",
    "retrain",
    "rollback",
]

#: Where each public name lives; imported on first use, so ``import amlretrain``
#: (and the CLI) load only what they need.
_LAZY = {
    "AmlRetrainError": "amlretrain.errors",
    "ArmTarget": "amlretrain.studio.targets",
    "AuthenticationError": "amlretrain.errors",
    "BatchClient": "amlretrain.studio.batch",
    "BlobRef": "amlretrain.blobs",
    "BlobStore": "amlretrain.storage",
    "ClassicClient": "amlretrain.studio.management",
    "ClassicTarget": "amlretrain.studio.targets",
    "ConfigurationError": "amlretrain.errors",
    "ConflictError": "amlretrain.errors",
    "DefinitionError": "amlretrain.errors",
    "Endpoint": "amlretrain.studio.models",
    "Gate": "amlretrain.gate",
    "GateRejected": "amlretrain.errors",
    "Interrupted": "amlretrain.errors",
    "Ledger": "amlretrain.ledger",
    "LedgerError": "amlretrain.errors",
    "NotFoundError": "amlretrain.errors",
    "OperationStillRunning": "amlretrain.errors",
    "OperationTimeout": "amlretrain.errors",
    "ReconcileReport": "amlretrain.reconciliation",
    "RetrainResult": "amlretrain.result",
    "Sample": "amlretrain.targets",
    "ScoringClient": "amlretrain.studio.scoring",
    "ServiceError": "amlretrain.errors",
    "StaticTokenCredential": "amlretrain.credentials",
    "StopSignal": "amlretrain.interrupt",
    "ThrottledError": "amlretrain.errors",
    "Training": "amlretrain.training",
    "TrainingJob": "amlretrain.studio.batch",
    "TrainingJobFailed": "amlretrain.errors",
    "VerificationFailed": "amlretrain.errors",
    "WebServiceDefinition": "amlretrain.studio.definition",
    "WebServicesClient": "amlretrain.studio.webservices",
    "deploy": "amlretrain.workflow",
    "reconcile": "amlretrain.reconciliation",
    "retrain": "amlretrain.workflow",
    "rollback": "amlretrain.workflow",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'amlretrain' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
