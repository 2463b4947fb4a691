"""Apache Airflow operators for amlretrain (``pip install 'amlretrain[airflow]'``).

The only part of amlretrain that imports Airflow (3.3; ``airflow.sdk``). The public
names are imported on first use, so ``import amlretrain.airflow`` (which Airflow's
providers manager does for :func:`get_provider_info`) loads no Airflow module:

* :class:`AmlRetrainOperator` (:mod:`.operators`): retrain one target or a fleet of a
  retrain.toml; deferrable; idempotent per task instance (its run id).
* :class:`AmlDeployOperator`, :class:`AmlRollbackOperator`, :class:`AmlReconcileOperator`:
  ``amlretrain deploy|rollback|reconcile``.
* :class:`AmlWaitTrigger` (:mod:`.triggers`): the deferred wait for training jobs and
  swaps' long-running operations.
* :class:`AmlRetrainHook` (:mod:`.hooks`): the Airflow connection that supplies the
  config's secrets.

The guide is docs/airflow.md; an example DAG is docs/airflow/example_dag.py.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amlretrain.airflow.hooks import AmlRetrainHook as AmlRetrainHook
    from amlretrain.airflow.operators import AmlDeployOperator as AmlDeployOperator
    from amlretrain.airflow.operators import AmlReconcileOperator as AmlReconcileOperator
    from amlretrain.airflow.operators import AmlRetrainOperator as AmlRetrainOperator
    from amlretrain.airflow.operators import AmlRollbackOperator as AmlRollbackOperator
    from amlretrain.airflow.triggers import AmlWaitTrigger as AmlWaitTrigger

#: Public name -> its module (imported on first use).
_NAMES = {
    "AmlDeployOperator": "amlretrain.airflow.operators",
    "AmlWaitTrigger": "amlretrain.airflow.triggers",
    "AmlReconcileOperator": "amlretrain.airflow.operators",
    "AmlRetrainHook": "amlretrain.airflow.hooks",
    "AmlRetrainOperator": "amlretrain.airflow.operators",
    "AmlRollbackOperator": "amlretrain.airflow.operators",
}

__all__ = ["get_provider_info", *sorted(_NAMES)]


def get_provider_info() -> dict[str, Any]:
    """Airflow's provider metadata: registers the ``amlretrain`` connection type.

    Found through the ``apache_airflow_provider`` entry point
    (``provider_info = amlretrain.airflow:get_provider_info``); imports no Airflow module.
    """
    from amlretrain._version import __version__

    return {
        "package-name": "amlretrain",
        "name": "amlretrain",
        "description": "Retrain, gate and deploy Azure ML models from a retrain.toml.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "amlretrain",
                "hook-class-name": "amlretrain.airflow.hooks.AmlRetrainHook",
                "hook-name": "amlretrain (retrain.toml secrets)",
            }
        ],
        "hooks": [
            {
                "integration-name": "amlretrain",
                "python-modules": ["amlretrain.airflow.hooks"],
            }
        ],
        "operators": [
            {
                "integration-name": "amlretrain",
                "python-modules": ["amlretrain.airflow.operators"],
            }
        ],
        "triggers": [
            {
                "integration-name": "amlretrain",
                "python-modules": ["amlretrain.airflow.triggers"],
            }
        ],
    }


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'amlretrain.airflow' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_NAMES])
