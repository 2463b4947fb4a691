"""Azure Machine Learning Studio (classic): its services' clients, models and targets.

* :mod:`~amlretrain.studio.webservices`: New (ARM) web services (``WebServicesClient``).
* :mod:`~amlretrain.studio.management`: classic web services and endpoints
  (``ClassicClient``).
* :mod:`~amlretrain.studio.batch`: training jobs on the batch execution service
  (``BatchClient``, ``TrainingJob``).
* :mod:`~amlretrain.studio.scoring`: the request-response scoring API (``ScoringClient``).
* :mod:`~amlretrain.studio.definition`, :mod:`~amlretrain.studio.ilearner`: web service
  definitions and their trained models (pure code).
* :mod:`~amlretrain.studio.schema`: training data columns against a BES swagger.
* :mod:`~amlretrain.studio.targets`: ``ArmTarget`` and ``ClassicTarget``, the loop's
  targets on these services.

The loop that drives them (:mod:`amlretrain.workflow`, :mod:`amlretrain.ledger`,
:mod:`amlretrain.gate`) is the package's own; every public name here is importable from
the package root too.
"""

__all__: list[str] = []
