"""The ``[training]`` section of ``retrain.toml``: which training retrains which targets.

Two kinds (``kind``, default ``"batch"``):

* ``batch``: a Studio (classic) training web service's batch execution
  (:class:`~amlretrain.training.Training`): it trains the ``classic`` and ``arm``
  targets;
* ``command_job``: an Azure ML v2 command job
  (:class:`~amlretrain.azureml.training.CommandJobTraining`): it trains the
  ``online_endpoint`` targets (a classic ``.ilearner`` cannot be served by v2,
  V2-NOTES 7.3).

``[training]`` is one table; a config with targets of both platforms has
``[[training]]``, an array of tables, one per kind. Two trainings of one kind are
refused when the file is read, a target whose platform has no training by ``retrain``
(:func:`amlretrain.config.check_trained`), naming the file and the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from amlretrain._config_reader import CONTAINER_NAME, Reader
from amlretrain._numbers import CONCURRENCY, DURATION, POLLING_INTERVAL
from amlretrain.errors import ConfigurationError

if TYPE_CHECKING:
    from amlretrain.azureml.jobs import CommandJobsClient
    from amlretrain.azureml.training import CommandJobTraining
    from amlretrain.blobs import BlobRef
    from amlretrain.storage import BlobStore

__all__ = [
    "TRAINED_BY",
    "TRAINING_KINDS",
    "BatchTrainingConfig",
    "CommandJobTrainingConfig",
    "SasDays",
    "TrainingConfig",
    "arm_credential",
    "parse_trainings",
    "training_data",
]

TRAINING_KINDS = ("batch", "command_job")
#: The training kind that trains each target kind.
TRAINED_BY = {"classic": "batch", "arm": "batch", "online_endpoint": "command_job"}


@attrs.frozen(kw_only=True)
class SasDays:
    """How ``model_sas_days`` is read: its default, bounds and the hint of its error."""

    default: float
    bounds: tuple[float, float]
    hint: str = ""


@attrs.frozen(kw_only=True)
class BatchTrainingConfig:
    """``[training]`` of kind ``batch`` (Studio (classic) batch execution)."""

    kind: ClassVar[str] = "batch"

    api_location: str
    api_key: str = attrs.field(repr=False)
    data: str
    input_name: str = "input1"
    model_output: str | None = "output1"
    evaluation_output: str | None = "output2"
    output_container: str = "amlretrain-models"
    global_parameters: Mapping[str, str] = attrs.field(factory=dict)
    timeout: float = 3600.0
    concurrency: int = 4
    model_sas_days: float = 7.0


@attrs.frozen(kw_only=True)
class CommandJobTrainingConfig:
    """``[training]`` of kind ``command_job`` (an Azure ML v2 command job)."""

    kind: ClassVar[str] = "command_job"

    subscription_id: str
    resource_group: str
    workspace: str
    command: str
    environment_id: str
    compute: str
    data: str
    model_output: str = "model"
    evaluation_output: str | None = "evaluation"
    inputs: Mapping[str, str] = attrs.field(factory=dict)
    data_input: str = "data"
    datastore: str = "workspaceblobstore"
    datastore_container: str | None = None
    input_folder: str = "amlretrain-inputs"
    output_folder: str = "amlretrain-models"
    model_file: str = "model.json"
    experiment_name: str = "amlretrain"
    arm_base_url: str = "https://management.azure.com"
    arm_token: str | None = attrs.field(default=None, repr=False)
    polling_interval: float = 5.0
    timeout: float = 3600.0
    concurrency: int = 4
    model_sas_days: float = 7.0

    def jobs_client(self) -> CommandJobsClient:
        """A jobs client of this training's workspace."""
        from amlretrain.azureml.jobs import CommandJobsClient
        from amlretrain.polling import PollPolicy

        return CommandJobsClient(
            arm_credential(self.arm_token),
            self.subscription_id,
            self.resource_group,
            self.workspace,
            base_url=self.arm_base_url,
            polling=PollPolicy.fixed(self.polling_interval),
        )

    def build(
        self, data: Path | BlobRef | str, store: BlobStore, clients: dict[tuple[str, ...], Any]
    ) -> CommandJobTraining:
        """The :class:`~amlretrain.azureml.training.CommandJobTraining` on ``data``
        (``clients``: the workspace clients made so far, shared by the groups)."""
        from datetime import timedelta

        from amlretrain.azureml.training import CommandJobTraining

        key = (
            self.subscription_id,
            self.resource_group,
            self.workspace,
            self.arm_base_url,
            self.arm_token or "",
            str(self.polling_interval),
        )
        if key not in clients:
            clients[key] = self.jobs_client()
        return CommandJobTraining(
            jobs=clients[key],
            data=data,
            store=store,
            command=self.command,
            environment_id=self.environment_id,
            compute=self.compute,
            model_output=self.model_output,
            evaluation_output=self.evaluation_output,
            inputs=self.inputs,
            data_input=self.data_input,
            datastore=self.datastore,
            datastore_container=self.datastore_container,
            input_folder=self.input_folder,
            output_folder=self.output_folder,
            model_file=self.model_file,
            experiment_name=self.experiment_name,
            timeout=self.timeout,
            model_sas_lifetime=timedelta(days=self.model_sas_days),
        )


#: One training of ``[training]`` / ``[[training]]``.
TrainingConfig = BatchTrainingConfig | CommandJobTrainingConfig


def arm_credential(token: str | None) -> Any:
    """An ARM credential: the configured token, else azure-identity's
    ``DefaultAzureCredential``."""
    if token:
        from amlretrain.credentials import StaticTokenCredential

        return StaticTokenCredential(token)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def parse_trainings(
    source: str, value: Any, environ: Mapping[str, str], sas: SasDays
) -> tuple[TrainingConfig, ...]:
    """``[training]`` (a table) or ``[[training]]`` (tables, one per kind).

    Raises:
        ConfigurationError: naming the file and the key (``training[1].kind``).
    """
    if isinstance(value, Mapping):
        tables: Sequence[Any] = [value]
        names = ["training"]
    elif isinstance(value, list) and value:
        tables = value
        names = [f"training[{i}]" for i in range(len(value))]
    else:
        raise ConfigurationError(
            f"{source}: training: must be a table ([training]) or tables ([[training]], one "
            "per kind)"
        )
    out: list[TrainingConfig] = []
    seen: dict[str, str] = {}
    for where, table in zip(names, tables, strict=True):
        if not isinstance(table, Mapping):
            raise ConfigurationError(f"{source}: {where}: must be a table")
        r = Reader(source, table, where)
        kind = r.get("kind", str, "batch")
        if kind not in TRAINING_KINDS:
            raise r.fail("kind", f"must be one of {', '.join(TRAINING_KINDS)}, not {kind!r}")
        if kind in seen:
            raise r.fail(
                "kind",
                f"a second training of kind {kind!r} (the first is {seen[kind]}): one "
                "training per kind; per-target data goes in the targets' data keys",
            )
        seen[kind] = where
        out.append(_batch(r, environ, sas) if kind == "batch" else _command_job(r, environ, sas))
        r.finish()
    return tuple(out)


def _batch(r: Reader, environ: Mapping[str, str], sas: SasDays) -> BatchTrainingConfig:
    params = r.get("global_parameters", dict, {})
    return BatchTrainingConfig(
        api_location=r.get("api_location", str, required=True),
        api_key=r.secret("api_key", environ) or "",
        data=r.get("data", str, required=True),
        input_name=r.get("input", str, "input1"),
        model_output=r.get("model_output", str, "output1") or None,
        evaluation_output=r.get("evaluation_output", str, "output2") or None,
        output_container=r.container(
            "output_container", r.get("output_container", str, "amlretrain-models")
        ),
        global_parameters={str(k): str(v) for k, v in params.items()},
        timeout=r.number("timeout", 3600.0, DURATION),
        concurrency=r.integer("concurrency", 4, CONCURRENCY),
        model_sas_days=_sas_days(r, sas),
    )


def _command_job(r: Reader, environ: Mapping[str, str], sas: SasDays) -> CommandJobTrainingConfig:
    inputs = r.get("inputs", dict, {})
    for name, value in inputs.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise r.fail(f"inputs.{name}", "must be a string or a number (a literal input)")
    data_input = r.get("data_input", str, "data")
    if data_input in inputs:
        raise r.fail(f"inputs.{data_input}", "is the data's input (data_input): rename it")
    model_output = r.get("model_output", str, "model")
    evaluation = r.get("evaluation_output", str, "evaluation") or None
    if evaluation == model_output:
        raise r.fail("evaluation_output", f"is model_output too ({model_output!r})")
    for key in ("command", "environment_id", "compute"):
        if key in r.table and not str(r.table[key]).strip():
            raise r.fail(key, "must not be empty")
    return CommandJobTrainingConfig(
        subscription_id=r.get("subscription_id", str, required=True),
        resource_group=r.get("resource_group", str, required=True),
        workspace=r.get("workspace", str, required=True),
        command=r.get("command", str, required=True),
        environment_id=r.get("environment_id", str, required=True),
        compute=r.get("compute", str, required=True),
        data=r.get("data", str, required=True),
        model_output=model_output,
        evaluation_output=evaluation,
        inputs={str(k): str(v) for k, v in inputs.items()},
        data_input=data_input,
        datastore=r.get("datastore", str, "workspaceblobstore"),
        datastore_container=r.get("datastore_container", str),
        input_folder=r.get("input_folder", str, "amlretrain-inputs").strip("/"),
        output_folder=r.get("output_folder", str, "amlretrain-models").strip("/"),
        model_file=r.get("model_file", str, "model.json"),
        experiment_name=r.get("experiment_name", str, "amlretrain"),
        arm_base_url=r.get("arm_base_url", str, "https://management.azure.com"),
        arm_token=r.secret("arm_token", environ, required=False),
        polling_interval=r.number("polling_interval", 5.0, POLLING_INTERVAL),
        timeout=r.number("timeout", 3600.0, DURATION),
        concurrency=r.integer("concurrency", 4, CONCURRENCY),
        model_sas_days=_sas_days(r, sas),
    )


def _sas_days(r: Reader, sas: SasDays) -> float:
    return r.number("model_sas_days", sas.default, sas.bounds, unit="days", hint=sas.hint)


def training_data(
    source: str, value: str, *, base: Path | None = None, kind: str = "batch"
) -> Path | BlobRef | str:
    """What a ``data`` value names: a blob in storage, or a local file.

    A blob is named explicitly: an ``https://`` (or ``http://``) URL, or
    ``blob:container/path``. Anything else is a local path, relative to ``base``
    (default: the config file's folder), which must exist. For a ``batch`` training,
    either must end in ``.csv``, ``.tsv`` or ``.arff`` (what the service reads); a
    command job reads what its command reads.

    Raises:
        ConfigurationError: a missing file (with a ``blob:`` hint when the value looks
            like ``container/path``), a bad extension or a bad container name.
    """
    from amlretrain.blobs import BlobRef
    from amlretrain.studio.batch import INPUT_EXTENSIONS

    where = f"{source}: training data {value!r}"
    if kind == "batch" and not value.lower().endswith(INPUT_EXTENSIONS):
        raise ConfigurationError(
            f"{where}: must end in {', '.join(INPUT_EXTENSIONS)} (what the training service reads)"
        )
    if value.startswith(("https://", "http://")):
        return BlobRef.from_url(value)
    if value.startswith("blob:"):
        container, _, name = value[len("blob:") :].partition("/")
        if not CONTAINER_NAME.fullmatch(container) or not name:
            raise ConfigurationError(
                f"{where}: a blob is 'blob:container/path/to/file.csv' with a valid "
                "container name (3-63 lowercase letters, digits and single hyphens)"
            )
        return f"{container}/{name}"
    folder = base or Path(source).resolve().parent
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = folder / path
    if path.is_file():
        return path
    hint = ""
    first = value.split("/", 1)[0]
    if "/" in value and CONTAINER_NAME.fullmatch(first) and not (folder / first).exists():
        hint = f"; did you mean the blob 'blob:{value}'?"
    raise ConfigurationError(f"{where}: no such file {path}{hint}")
