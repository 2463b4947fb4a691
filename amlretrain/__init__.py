"""amlretrain: retrain, gate, swap and verify Azure ML Studio (classic) models.

Every name here imports without loading requests, urllib3 or the Azure SDK: those are
imported when a client first needs them, so ``import amlretrain`` and the CLI stay fast.
"""

from amlretrain._version import __version__
from amlretrain.arm import WebServicesClient
from amlretrain.blobs import BlobRef
from amlretrain.classic import ClassicClient, Endpoint
from amlretrain.credentials import StaticTokenCredential
from amlretrain.definition import WebServiceDefinition
from amlretrain.errors import (
    AmlRetrainError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    DefinitionError,
    GateRejected,
    NotFoundError,
    OperationTimeout,
    ServiceError,
    ThrottledError,
    TrainingJobFailed,
    VerificationFailed,
)
from amlretrain.gate import Gate
from amlretrain.jobs import BatchClient, TrainingJob
from amlretrain.ledger import Ledger
from amlretrain.result import RetrainResult
from amlretrain.scoring import ScoringClient
from amlretrain.storage import BlobStore
from amlretrain.targets import ArmTarget, ClassicTarget, Sample
from amlretrain.workflow import Training, deploy, retrain, rollback

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
    "Ledger",
    "NotFoundError",
    "OperationTimeout",
    "RetrainResult",
    "Sample",
    "ScoringClient",
    "ServiceError",
    "StaticTokenCredential",
    "ThrottledError",
    "Training",
    "TrainingJob",
    "TrainingJobFailed",
    "VerificationFailed",
    "WebServiceDefinition",
    "WebServicesClient",
    "__version__",
    "deploy",
    "retrain",
    "rollback",
]
