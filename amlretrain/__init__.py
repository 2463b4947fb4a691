"""amlretrain: keep deployed Azure Machine Learning models fresh.

Retrain on new data, evaluate, gate, swap the live service to the new model, verify,
record, roll back. Every public name is importable from here; :data:`_NAMES` is the one
table of them (``__all__`` is derived from it). Each is imported on first use
(``amlretrain.retrain`` loads the workflow then), and no module loads requests, urllib3
or the Azure SDK before a client needs them: ``import amlretrain`` and the CLI stay fast.

Platforms sit in subpackages (:mod:`amlretrain.studio`: Studio (classic)); the loop that
drives them (workflow, targets, ledger, gate) is the package's own.
"""

import importlib as _importlib
import typing as _typing

from amlretrain._version import __version__

if _typing.TYPE_CHECKING:
    from amlretrain.alarms import Alarm as Alarm
    from amlretrain.alarms import CallableAlarm as CallableAlarm
    from amlretrain.alarms import Fired as Fired
    from amlretrain.azureml.endpoints import OnlineEndpointsClient as OnlineEndpointsClient
    from amlretrain.azureml.jobs import CommandJobsClient as CommandJobsClient
    from amlretrain.azureml.models import CommandJob as CommandJob
    from amlretrain.azureml.models import EndpointKeys as EndpointKeys
    from amlretrain.azureml.models import ModelContainer as ModelContainer
    from amlretrain.azureml.models import ModelRef as ModelRef
    from amlretrain.azureml.models import ModelVersion as ModelVersion
    from amlretrain.azureml.models import OnlineDeployment as OnlineDeployment
    from amlretrain.azureml.models import OnlineEndpoint as OnlineEndpoint
    from amlretrain.azureml.operations import AzureMLPoller as AzureMLPoller
    from amlretrain.azureml.registry import ModelsClient as ModelsClient
    from amlretrain.azureml.scoring import OnlineScoringClient as OnlineScoringClient
    from amlretrain.azureml.targets import DeploymentView as DeploymentView
    from amlretrain.azureml.targets import OnlineEndpointTarget as OnlineEndpointTarget
    from amlretrain.azureml.traffic import TrafficMap as TrafficMap
    from amlretrain.azureml.training import CommandJobTraining as CommandJobTraining
    from amlretrain.blobs import BlobRef as BlobRef
    from amlretrain.champion import ChampionGate as ChampionGate
    from amlretrain.credentials import StaticTokenCredential as StaticTokenCredential
    from amlretrain.errors import AlarmFired as AlarmFired
    from amlretrain.errors import AmlRetrainError as AmlRetrainError
    from amlretrain.errors import AuthenticationError as AuthenticationError
    from amlretrain.errors import ConfigurationError as ConfigurationError
    from amlretrain.errors import ConflictError as ConflictError
    from amlretrain.errors import DefinitionError as DefinitionError
    from amlretrain.errors import GateRejected as GateRejected
    from amlretrain.errors import Interrupted as Interrupted
    from amlretrain.errors import LedgerError as LedgerError
    from amlretrain.errors import NotFoundError as NotFoundError
    from amlretrain.errors import OperationStillRunning as OperationStillRunning
    from amlretrain.errors import OperationTimeout as OperationTimeout
    from amlretrain.errors import RunHalted as RunHalted
    from amlretrain.errors import ServiceError as ServiceError
    from amlretrain.errors import TargetsFailed as TargetsFailed
    from amlretrain.errors import ThrottledError as ThrottledError
    from amlretrain.errors import TrainingJobFailed as TrainingJobFailed
    from amlretrain.errors import VerificationFailed as VerificationFailed
    from amlretrain.evaluation import EvaluationMetrics as EvaluationMetrics
    from amlretrain.fleet import FleetGroup as FleetGroup
    from amlretrain.fleet import retrain_fleet as retrain_fleet
    from amlretrain.gate import Gate as Gate
    from amlretrain.gate import GateDecision as GateDecision
    from amlretrain.history import History as History
    from amlretrain.history import RunSummary as RunSummary
    from amlretrain.interrupt import StopSignal as StopSignal
    from amlretrain.ledger import Ledger as Ledger
    from amlretrain.locks import Lease as Lease
    from amlretrain.locks import LockInfo as LockInfo
    from amlretrain.locks import TargetLocks as TargetLocks
    from amlretrain.migrate import InventoryEndpoint as InventoryEndpoint
    from amlretrain.migrate import InventoryService as InventoryService
    from amlretrain.migrate import MetricPoint as MetricPoint
    from amlretrain.migrate import MigrationInventory as MigrationInventory
    from amlretrain.migrate import ModuleMapping as ModuleMapping
    from amlretrain.migrate import ServedModel as ServedModel
    from amlretrain.migrate import check_definition as check_definition
    from amlretrain.migrate import inventory as inventory
    from amlretrain.notify import Delivery as Delivery
    from amlretrain.notify import Notifier as Notifier
    from amlretrain.polling import OperationPolling as OperationPolling
    from amlretrain.polling import Poller as Poller
    from amlretrain.polling import PollPolicy as PollPolicy
    from amlretrain.reconciliation import Reconciled as Reconciled
    from amlretrain.reconciliation import ReconcileReport as ReconcileReport
    from amlretrain.reconciliation import ReconcileStatus as ReconcileStatus
    from amlretrain.reconciliation import reconcile as reconcile
    from amlretrain.records import Intent as Intent
    from amlretrain.records import JobRecord as JobRecord
    from amlretrain.records import LedgerContents as LedgerContents
    from amlretrain.records import LedgerEntry as LedgerEntry
    from amlretrain.records import LedgerProblem as LedgerProblem
    from amlretrain.records import OperationRecord as OperationRecord
    from amlretrain.records import Pending as Pending
    from amlretrain.records import RolloutEvent as RolloutEvent
    from amlretrain.records import RunStart as RunStart
    from amlretrain.report import Report as Report
    from amlretrain.result import RetrainResult as RetrainResult
    from amlretrain.result import StepResult as StepResult
    from amlretrain.result import StepStatus as StepStatus
    from amlretrain.result import TargetOutcome as TargetOutcome
    from amlretrain.result import TargetStatus as TargetStatus
    from amlretrain.rollout import Rollout as Rollout
    from amlretrain.storage import BlobStore as BlobStore
    from amlretrain.studio.batch import BatchClient as BatchClient
    from amlretrain.studio.batch import TrainingJob as TrainingJob
    from amlretrain.studio.definition import AssetItem as AssetItem
    from amlretrain.studio.definition import WebServiceDefinition as WebServiceDefinition
    from amlretrain.studio.definition import WebServiceKeys as WebServiceKeys
    from amlretrain.studio.ilearner import TrainedModel as TrainedModel
    from amlretrain.studio.jobstatus import JobStatus as JobStatus
    from amlretrain.studio.management import ClassicClient as ClassicClient
    from amlretrain.studio.models import ClassicWebService as ClassicWebService
    from amlretrain.studio.models import Endpoint as Endpoint
    from amlretrain.studio.models import EndpointResource as EndpointResource
    from amlretrain.studio.scoring import ScoreResult as ScoreResult
    from amlretrain.studio.scoring import ScoreTable as ScoreTable
    from amlretrain.studio.scoring import ScoringClient as ScoringClient
    from amlretrain.studio.targets import ArmTarget as ArmTarget
    from amlretrain.studio.targets import ClassicTarget as ClassicTarget
    from amlretrain.studio.webservices import WebServicePoller as WebServicePoller
    from amlretrain.studio.webservices import WebServicesClient as WebServicesClient
    from amlretrain.targets import Sample as Sample
    from amlretrain.targets import Target as Target
    from amlretrain.targets import TargetState as TargetState
    from amlretrain.training import Training as Training
    from amlretrain.waves import FailureBudget as FailureBudget
    from amlretrain.waves import Waves as Waves
    from amlretrain.workflow import deploy as deploy
    from amlretrain.workflow import retrain as retrain
    from amlretrain.workflow import rollback as rollback

#: Every public name, with the module that defines it (imported on first use, so
#: ``import amlretrain`` and the CLI load only what they need). ``__all__`` is its keys;
#: a test checks the typing imports above list the same names, and that every type a
#: public name returns is here.
_NAMES: dict[str, str] = {
    # amlretrain.errors
    "AlarmFired": "amlretrain.errors",
    "AmlRetrainError": "amlretrain.errors",
    "AuthenticationError": "amlretrain.errors",
    "ConfigurationError": "amlretrain.errors",
    "ConflictError": "amlretrain.errors",
    "DefinitionError": "amlretrain.errors",
    "GateRejected": "amlretrain.errors",
    "Interrupted": "amlretrain.errors",
    "LedgerError": "amlretrain.errors",
    "NotFoundError": "amlretrain.errors",
    "OperationStillRunning": "amlretrain.errors",
    "OperationTimeout": "amlretrain.errors",
    "RunHalted": "amlretrain.errors",
    "ServiceError": "amlretrain.errors",
    "ThrottledError": "amlretrain.errors",
    "TrainingJobFailed": "amlretrain.errors",
    "VerificationFailed": "amlretrain.errors",
    "TargetsFailed": "amlretrain.errors",
    # amlretrain.azureml (Azure ML v2)
    "CommandJob": "amlretrain.azureml.models",
    "ModelContainer": "amlretrain.azureml.models",
    "ModelRef": "amlretrain.azureml.models",
    "ModelVersion": "amlretrain.azureml.models",
    "OnlineDeployment": "amlretrain.azureml.models",
    "OnlineEndpoint": "amlretrain.azureml.models",
    "TrafficMap": "amlretrain.azureml.traffic",
    "AzureMLPoller": "amlretrain.azureml.operations",
    "EndpointKeys": "amlretrain.azureml.models",
    "OnlineEndpointsClient": "amlretrain.azureml.endpoints",
    "CommandJobsClient": "amlretrain.azureml.jobs",
    "ModelsClient": "amlretrain.azureml.registry",
    "OnlineScoringClient": "amlretrain.azureml.scoring",
    "DeploymentView": "amlretrain.azureml.targets",
    "OnlineEndpointTarget": "amlretrain.azureml.targets",
    "CommandJobTraining": "amlretrain.azureml.training",
    # amlretrain.blobs
    "BlobRef": "amlretrain.blobs",
    # amlretrain.credentials
    "StaticTokenCredential": "amlretrain.credentials",
    # amlretrain.polling
    "OperationPolling": "amlretrain.polling",
    "Poller": "amlretrain.polling",
    "PollPolicy": "amlretrain.polling",
    # amlretrain.evaluation
    "EvaluationMetrics": "amlretrain.evaluation",
    # amlretrain.result
    "RetrainResult": "amlretrain.result",
    "StepResult": "amlretrain.result",
    "StepStatus": "amlretrain.result",
    "TargetOutcome": "amlretrain.result",
    "TargetStatus": "amlretrain.result",
    # amlretrain.studio.jobstatus
    "JobStatus": "amlretrain.studio.jobstatus",
    # amlretrain.studio.definition
    "WebServiceDefinition": "amlretrain.studio.definition",
    "WebServiceKeys": "amlretrain.studio.definition",
    "AssetItem": "amlretrain.studio.definition",
    # amlretrain.studio.ilearner
    "TrainedModel": "amlretrain.studio.ilearner",
    # amlretrain.studio.models
    "ClassicWebService": "amlretrain.studio.models",
    "Endpoint": "amlretrain.studio.models",
    "EndpointResource": "amlretrain.studio.models",
    # amlretrain.studio.webservices
    "WebServicePoller": "amlretrain.studio.webservices",
    "WebServicesClient": "amlretrain.studio.webservices",
    # amlretrain.studio.management
    "ClassicClient": "amlretrain.studio.management",
    # amlretrain.studio.batch
    "BatchClient": "amlretrain.studio.batch",
    "TrainingJob": "amlretrain.studio.batch",
    # amlretrain.studio.scoring
    "ScoreResult": "amlretrain.studio.scoring",
    "ScoreTable": "amlretrain.studio.scoring",
    "ScoringClient": "amlretrain.studio.scoring",
    # amlretrain.storage
    "BlobStore": "amlretrain.storage",
    # amlretrain.targets
    "Sample": "amlretrain.targets",
    "Target": "amlretrain.targets",
    "TargetState": "amlretrain.targets",
    # amlretrain.studio.targets
    "ArmTarget": "amlretrain.studio.targets",
    "ClassicTarget": "amlretrain.studio.targets",
    # amlretrain.gate
    "Gate": "amlretrain.gate",
    # the guarded rollout
    "Rollout": "amlretrain.rollout",
    "Alarm": "amlretrain.alarms",
    "CallableAlarm": "amlretrain.alarms",
    "ChampionGate": "amlretrain.champion",
    "Notifier": "amlretrain.notify",
    "Delivery": "amlretrain.notify",
    "Fired": "amlretrain.alarms",
    "Waves": "amlretrain.waves",
    "FailureBudget": "amlretrain.waves",
    "Report": "amlretrain.report",
    "GateDecision": "amlretrain.gate",
    # amlretrain.interrupt
    "StopSignal": "amlretrain.interrupt",
    # amlretrain.ledger
    "Ledger": "amlretrain.ledger",
    "FleetGroup": "amlretrain.fleet",
    "retrain_fleet": "amlretrain.fleet",
    "History": "amlretrain.history",
    "RunSummary": "amlretrain.history",
    "LedgerEntry": "amlretrain.records",
    "LedgerContents": "amlretrain.records",
    "LedgerProblem": "amlretrain.records",
    "Intent": "amlretrain.records",
    "JobRecord": "amlretrain.records",
    "OperationRecord": "amlretrain.records",
    "Pending": "amlretrain.records",
    "RolloutEvent": "amlretrain.records",
    "RunStart": "amlretrain.records",
    # amlretrain.locks
    "Lease": "amlretrain.locks",
    "LockInfo": "amlretrain.locks",
    "TargetLocks": "amlretrain.locks",
    # amlretrain.migrate (from Studio (classic) to Azure ML v2)
    "InventoryEndpoint": "amlretrain.migrate",
    "InventoryService": "amlretrain.migrate",
    "MetricPoint": "amlretrain.migrate",
    "MigrationInventory": "amlretrain.migrate",
    "ModuleMapping": "amlretrain.migrate",
    "ServedModel": "amlretrain.migrate",
    "check_definition": "amlretrain.migrate",
    "inventory": "amlretrain.migrate",
    # amlretrain.training
    "Training": "amlretrain.training",
    # amlretrain.reconciliation
    "ReconcileReport": "amlretrain.reconciliation",
    "Reconciled": "amlretrain.reconciliation",
    "ReconcileStatus": "amlretrain.reconciliation",
    "reconcile": "amlretrain.reconciliation",
    # amlretrain.workflow
    "deploy": "amlretrain.workflow",
    "retrain": "amlretrain.workflow",
    "rollback": "amlretrain.workflow",
}

__all__ = ["__version__", *sorted(_NAMES)]


def __getattr__(name: str) -> object:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'amlretrain' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
