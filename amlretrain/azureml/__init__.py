"""Azure Machine Learning v2 (``Microsoft.MachineLearningServices``, api-version 2024-04-01).

* :mod:`~amlretrain.azureml.endpoints`: online endpoints and their deployments, traffic
  included (``OnlineEndpointsClient``).
* :mod:`~amlretrain.azureml.registry`: model containers and versions (``ModelsClient``:
  ``register_version``, idempotent).
* :mod:`~amlretrain.azureml.jobs`: command jobs (``CommandJobsClient``).
* :mod:`~amlretrain.azureml.training`: a retrain's training as a command job
  (``CommandJobTraining``: the model and the metrics the loop deploys and gates).
* :mod:`~amlretrain.azureml.scoring`: an online endpoint's scoring URI
  (``OnlineScoringClient``).
* :mod:`~amlretrain.azureml.operations`: what the clients share: ``AzureMLPoller`` (their
  long-running operations, verified by a fresh read) and the ARM adapter.
* :mod:`~amlretrain.azureml.models`: the typed, lossless resources (``OnlineEndpoint``,
  ``OnlineDeployment``, ``ModelVersion``, ``CommandJob``) and ``ModelRef`` (pure code).
* :mod:`~amlretrain.azureml.traffic`: traffic maps checked before anything is sent, and
  the whole endpoint body that carries them (pure code).

The clients go over ARM with azure-identity credentials, like the Studio (classic) New
web services (:mod:`amlretrain.studio.webservices`): azure-mgmt-resource's generic
operations and azure-core's pollers. The loop that drives them (:mod:`amlretrain.workflow`,
:mod:`amlretrain.ledger`, :mod:`amlretrain.gate`) is the package's own; every public name
here is importable from the package root too.
"""

__all__: list[str] = []
