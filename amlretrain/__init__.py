"""amlretrain: retrain, gate, swap and verify Azure ML Studio (classic) models."""

from amlretrain._version import __version__
from amlretrain.blobs import BlobRef
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

__all__ = [
    "AmlRetrainError",
    "AuthenticationError",
    "BlobRef",
    "ConfigurationError",
    "ConflictError",
    "DefinitionError",
    "GateRejected",
    "NotFoundError",
    "OperationTimeout",
    "ServiceError",
    "ThrottledError",
    "TrainingJobFailed",
    "VerificationFailed",
    "WebServiceDefinition",
    "__version__",
]
