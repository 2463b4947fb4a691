"""The retrain configuration file (``retrain.toml``): parse it, check it, build the run.

A full example, with every key, is in ``docs/config.md``. Secrets are never written in
the file: each is named by the environment variable that holds it (``*_env`` keys).

Errors name the file and the key: ``retrain.toml: targets[2].endpoint: required``.
Every value is checked when the file is read, numbers included (finite, within their
documented range: :mod:`amlretrain._numbers`), so a bad setting is refused before
anything runs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from amlretrain._config_reader import Reader
from amlretrain._config_training import (
    TRAINED_BY,
    BatchTrainingConfig,
    CommandJobTrainingConfig,
    SasDays,
    TrainingConfig,
    arm_credential,
    parse_trainings,
    training_data,
)
from amlretrain._numbers import (
    CONCURRENCY,
    DURATION,
    POLLING_INTERVAL,
    SAS_DAYS_ACCOUNT_KEY,
    SAS_DAYS_USER_DELEGATION,
    checked,
)
from amlretrain.errors import ConfigurationError
from amlretrain.gate import Gate
from amlretrain.targets import Sample
from amlretrain.waves import FailureBudget, Waves

if TYPE_CHECKING:
    from amlretrain.azureml.jobs import CommandJobsClient
    from amlretrain.blobs import BlobRef
    from amlretrain.ledger import Ledger
    from amlretrain.rollout import Rollout
    from amlretrain.storage import BlobStore
    from amlretrain.studio.batch import BatchClient
    from amlretrain.targets import Target
    from amlretrain.training import Trainer, Training

__all__ = [
    "ArmTargetConfig",
    "BatchTrainingConfig",
    "ClassicTargetConfig",
    "CommandJobTrainingConfig",
    "OnlineEndpointTargetConfig",
    "RetrainConfig",
    "TargetConfig",
    "TrainingGroup",
    "check_trained",
    "load_config",
    "training_groups",
]

log = logging.getLogger(__name__)

_TARGET_KINDS = ("arm", "classic", "online_endpoint")
#: Below this many days, the lifetime of the model's read SAS is warned about.
_SAS_DAYS_WARNING = 30


@attrs.frozen(kw_only=True)
class ArmTargetConfig:
    """A New (ARM) web service target."""

    subscription_id: str
    resource_group: str
    name: str
    asset: str | None = None
    arm_base_url: str = "https://management.azure.com"
    scoring_url: str | None = None
    api_version: str = "2017-01-01"
    arm_token: str | None = attrs.field(default=None, repr=False)
    polling_interval: float = 5.0
    operation_timeout: float = 900.0
    verify_timeout: float = 120.0
    include_sas: bool = True
    data: str | None = None


@attrs.frozen(kw_only=True)
class ClassicTargetConfig:
    """A classic endpoint target."""

    workspace_id: str
    web_service_id: str
    endpoint: str
    token: str = attrs.field(repr=False)
    resource_name: str | None = None
    region: str = "South Central US"
    management_url: str | None = None
    verify_timeout: float = 120.0
    data: str | None = None


@attrs.frozen(kw_only=True)
class OnlineEndpointTargetConfig:
    """An Azure ML v2 managed online endpoint target (``kind = "online_endpoint"``)."""

    subscription_id: str
    resource_group: str
    workspace: str
    endpoint: str
    datastore_account_url: str
    datastore: str = "workspaceblobstore"
    datastore_container: str | None = None
    model_name: str | None = None
    deployment_names: tuple[str, str] = ("blue", "green")
    arm_base_url: str = "https://management.azure.com"
    arm_token: str | None = attrs.field(default=None, repr=False)
    polling_interval: float = 5.0
    verify_timeout: float = 600.0
    data: str | None = None
    delete_previous: bool = True


#: Any target of ``[[targets]]``.
TargetConfig = ArmTargetConfig | ClassicTargetConfig | OnlineEndpointTargetConfig


@attrs.frozen(kw_only=True)
class RetrainConfig:
    """A parsed ``retrain.toml``: build the run with its methods."""

    source: str
    training_api_location: str
    training_api_key: str = attrs.field(repr=False)
    data: str
    input_name: str = "input1"
    model_output: str | None = "output1"
    evaluation_output: str | None = "output2"
    output_container: str = "amlretrain-models"
    global_parameters: Mapping[str, str] = attrs.field(factory=dict)
    timeout: float = 3600.0
    interrupt_grace: float = 30.0
    model_sas_days: float = 7.0
    storage_connection_string: str | None = attrs.field(default=None, repr=False)
    storage_account_url: str | None = None
    gate: Gate = attrs.field(factory=Gate)
    ledger_path: str = ".amlretrain/ledger.jsonl"
    ledger_blob: str | None = None
    concurrency: int = 4
    training_concurrency: int = 4
    waves: Waves | None = None
    bake: float = 0.0
    max_failures: FailureBudget | None = None
    sample: Sample | None = None
    #: The guarded rollout of ``[rollout]`` (None: the targets change in the run's waves,
    #: checked by scoring only).
    rollout: Rollout | None = None
    target_configs: tuple[TargetConfig, ...] = ()
    #: Every training of ``[training]`` / ``[[training]]`` (one per kind). The fields
    #: above (``training_api_location`` ... ``global_parameters``) are the ``batch`` one's.
    trainings: tuple[TrainingConfig, ...] = ()

    @property
    def model_sas_lifetime(self) -> timedelta:
        """The lifetime of the read SAS minted for the new model."""
        return timedelta(days=self.model_sas_days)

    def resolve(self, path: str) -> Path:
        """A path of the file, relative to the config file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.source).resolve().parent / p

    def training(self, data: str | None = None, *, base: Path | None = None) -> Training:
        """The classic :class:`~amlretrain.training.Training` of this config (``data``
        overrides).

        See :meth:`training_data` for how ``data`` names a file or a blob.

        Raises:
            ConfigurationError: no ``batch`` training; the data names a missing file or a
                bad blob (before anything is read or sent).
        """
        from amlretrain.training import Training

        self.training_of("batch")
        return Training(
            batch=self.batch(),
            data=self.training_data(data or self.data, base=base),
            store=self.store(),
            input_name=self.input_name,
            model_output=self.model_output,
            evaluation_output=self.evaluation_output,
            output_container=self.output_container,
            global_parameters=self.global_parameters,
            timeout=self.timeout,
            model_sas_lifetime=self.model_sas_lifetime,
        )

    def training_data(
        self, value: str, *, base: Path | None = None, kind: str = "batch"
    ) -> Path | BlobRef | str:
        """What a ``data`` value names: a blob in storage, or a local file (see
        :func:`amlretrain._config_training.training_data`)."""
        return training_data(self.source, value, base=base, kind=kind)

    # -- the trainings ------------------------------------------------------------------------

    def training_of(self, kind: str) -> TrainingConfig:
        """The training of ``kind`` (``batch`` or ``command_job``).

        Raises:
            ConfigurationError: the config has none of that kind.
        """
        for training in self.trainings:
            if training.kind == kind:
                return training
        raise ConfigurationError(f"{self.source}: training: no training of kind {kind!r}")

    @property
    def has_batch_training(self) -> bool:
        """True when a ``batch`` training (Studio (classic)) is configured."""
        return any(t.kind == "batch" for t in self.trainings)

    @property
    def has_command_job_training(self) -> bool:
        """True when a ``command_job`` training (Azure ML v2) is configured."""
        return any(t.kind == "command_job" for t in self.trainings)

    def command_jobs(self) -> CommandJobsClient:
        """A jobs client of the ``command_job`` training's workspace.

        Raises:
            ConfigurationError: the config has no ``command_job`` training.
        """
        config = self.training_of("command_job")
        assert isinstance(config, CommandJobTrainingConfig)
        return config.jobs_client()

    def trainer(
        self,
        kind: str,
        data: str | None = None,
        *,
        base: Path | None = None,
        clients: dict[tuple[str, ...], Any] | None = None,
    ) -> Trainer:
        """The :class:`~amlretrain.training.Trainer` of the training of ``kind`` on ``data``
        (default: that training's own ``data``).

        Raises:
            ConfigurationError: no training of that kind, or data that names a missing
                file or a bad blob (before anything is read or sent).
        """
        config = self.training_of(kind)
        if isinstance(config, BatchTrainingConfig):
            return self.training(data or config.data, base=base)
        value = self.training_data(data or config.data, base=base, kind=kind)
        return config.build(value, self.store(), {} if clients is None else clients)

    def ledger(self) -> Ledger:
        """The ledger: an append blob in the storage account (``[ledger] blob``), or the
        local file (``[ledger] path``, relative to the config file).

        Its per-target leases (:attr:`Ledger.locks`) live beside it: blob leases under
        ``<folder>/locks/`` in the ledger's container, or file locks in a ``locks``
        folder beside the ledger file.
        """
        from amlretrain.ledger import BlobLedgerBackend, Ledger

        if self.ledger_blob:
            from amlretrain.locks import locks_for

            container, _, name = self.ledger_blob.partition("/")
            client = self.store().service.get_container_client(container)
            if not client.exists():
                client.create_container()
            blob = client.get_blob_client(name)
            return Ledger(backend=BlobLedgerBackend(blob, locks=locks_for(self)))
        return Ledger(self.resolve(self.ledger_path))

    def batch(self) -> BatchClient:
        """The training service's batch client.

        Raises:
            ConfigurationError: the config has no ``batch`` training.
        """
        from amlretrain.studio.batch import BatchClient

        self.training_of("batch")

        return BatchClient(self.training_api_location, self.training_api_key)

    def store(self) -> BlobStore:
        """The storage account."""
        from amlretrain.storage import BlobStore

        if self.storage_connection_string:
            return BlobStore.from_connection_string(self.storage_connection_string)
        assert self.storage_account_url is not None  # checked when parsed
        from azure.identity import DefaultAzureCredential

        return BlobStore(self.storage_account_url, DefaultAzureCredential())

    def targets(self) -> list[tuple[Target, str | None]]:
        """The targets, each with its own data file (None: the shared one)."""
        from amlretrain.studio.targets import ArmTarget, ClassicTarget

        out: list[tuple[Target, str | None]] = []
        arm_clients: dict[tuple[str, str, str, str | None, float], Any] = {}
        classic_clients: dict[tuple[str, str, str | None], Any] = {}
        v2_clients: dict[tuple[str, ...], tuple[Any, Any]] = {}
        for config in self.target_configs:
            if isinstance(config, OnlineEndpointTargetConfig):
                out.append((_online_endpoint_target(config, v2_clients), config.data))
            elif isinstance(config, ArmTargetConfig):
                key = (
                    config.subscription_id,
                    config.arm_base_url,
                    config.api_version,
                    config.arm_token,
                    config.polling_interval,
                )
                if key not in arm_clients:
                    arm_clients[key] = _arm_client(config)
                out.append(
                    (
                        ArmTarget(
                            arm_clients[key],
                            config.resource_group,
                            config.name,
                            asset=config.asset,
                            scoring_url=config.scoring_url,
                            include_sas=config.include_sas,
                            operation_timeout=config.operation_timeout,
                            verify_timeout=config.verify_timeout,
                        ),
                        config.data,
                    )
                )
            else:
                ckey = (config.workspace_id, config.token, config.management_url)
                if ckey not in classic_clients:
                    from amlretrain.studio.management import ClassicClient

                    classic_clients[ckey] = ClassicClient(
                        config.workspace_id,
                        config.token,
                        region=config.region,
                        base_url=config.management_url,
                    )
                out.append(
                    (
                        ClassicTarget(
                            classic_clients[ckey],
                            config.web_service_id,
                            config.endpoint,
                            resource_name=config.resource_name,
                            verify_timeout=config.verify_timeout,
                        ),
                        config.data,
                    )
                )
        return out


#: The ARM credential of a target: its configured token, else ``DefaultAzureCredential``.
_arm_credential = arm_credential


def _online_endpoint_target(
    config: OnlineEndpointTargetConfig, clients: dict[tuple[str, ...], tuple[Any, Any]]
) -> Target:
    """An ``OnlineEndpointTarget``, its workspace's clients shared by its targets."""
    from amlretrain.azureml.endpoints import OnlineEndpointsClient
    from amlretrain.azureml.registry import ModelsClient
    from amlretrain.azureml.targets import OnlineEndpointTarget
    from amlretrain.polling import PollPolicy

    key = (
        config.subscription_id,
        config.resource_group,
        config.workspace,
        config.arm_base_url,
        config.arm_token or "",
        str(config.polling_interval),
    )
    if key not in clients:
        credential = _arm_credential(config.arm_token)
        where = (config.subscription_id, config.resource_group, config.workspace)
        polling = PollPolicy.fixed(config.polling_interval)
        clients[key] = (
            OnlineEndpointsClient(
                credential, *where, base_url=config.arm_base_url, polling=polling
            ),
            ModelsClient(credential, *where, base_url=config.arm_base_url, polling=polling),
        )
    endpoints, models = clients[key]
    return OnlineEndpointTarget(
        endpoints,
        models,
        config.endpoint,
        datastore_account_url=config.datastore_account_url,
        model_name=config.model_name,
        deployment_names=config.deployment_names,
        datastore=config.datastore,
        datastore_container=config.datastore_container,
        verify_timeout=config.verify_timeout,
        delete_previous=config.delete_previous,
    )


def _arm_client(config: ArmTargetConfig) -> Any:
    from amlretrain.studio.webservices import WebServicesClient

    credential = _arm_credential(config.arm_token)
    return WebServicesClient(
        credential,
        config.subscription_id,
        base_url=config.arm_base_url,
        api_version=config.api_version,
        polling_interval=config.polling_interval,
    )


def _parse_target(source: str, index: int, table: Any, environ: Mapping[str, str]) -> TargetConfig:
    where = f"targets[{index}]"
    if not isinstance(table, Mapping):
        raise ConfigurationError(f"{source}: {where}: must be a table ([[targets]])")
    r = Reader(source, table, where)
    kind = r.get("kind", str, required=True)
    if kind not in _TARGET_KINDS:
        raise r.fail("kind", f"must be one of {', '.join(_TARGET_KINDS)}, not {kind!r}")
    target: TargetConfig
    if kind == "online_endpoint":
        names = r.get("deployment_names", list, ["blue", "green"])
        if (
            len(names) != 2
            or not all(isinstance(n, str) and n for n in names)
            or (names[0].lower() == names[1].lower())
        ):
            raise r.fail("deployment_names", "must be two different deployment names")
        target = OnlineEndpointTargetConfig(
            subscription_id=r.get("subscription_id", str, required=True),
            resource_group=r.get("resource_group", str, required=True),
            workspace=r.get("workspace", str, required=True),
            endpoint=r.get("endpoint", str, required=True),
            datastore_account_url=r.get("datastore_account_url", str, required=True),
            datastore=r.get("datastore", str, "workspaceblobstore"),
            datastore_container=r.get("datastore_container", str),
            model_name=r.get("model_name", str),
            deployment_names=(names[0], names[1]),
            arm_base_url=r.get("arm_base_url", str, "https://management.azure.com"),
            arm_token=r.secret("arm_token", environ, required=False),
            polling_interval=r.number("polling_interval", 5.0, POLLING_INTERVAL),
            verify_timeout=r.number("verify_timeout", 600.0, DURATION),
            data=r.get("data", str),
            delete_previous=r.get("delete_previous", bool, True),
        )
    elif kind == "arm":
        target = ArmTargetConfig(
            subscription_id=r.get("subscription_id", str, required=True),
            resource_group=r.get("resource_group", str, required=True),
            name=r.get("name", str, required=True),
            asset=r.get("asset", str),
            arm_base_url=r.get("arm_base_url", str, "https://management.azure.com"),
            scoring_url=r.get("scoring_url", str),
            api_version=r.get("api_version", str, "2017-01-01"),
            arm_token=r.secret("arm_token", environ, required=False),
            polling_interval=r.number("polling_interval", 5.0, POLLING_INTERVAL),
            operation_timeout=r.number("operation_timeout", 900.0, DURATION),
            verify_timeout=r.number("verify_timeout", 120.0, DURATION),
            include_sas=r.get("include_sas", bool, True),
            data=r.get("data", str),
        )
    else:
        target = ClassicTargetConfig(
            workspace_id=r.get("workspace_id", str, required=True),
            web_service_id=r.get("web_service_id", str, required=True),
            endpoint=r.get("endpoint", str, required=True),
            token=r.secret("token", environ) or "",
            resource_name=r.get("resource_name", str),
            region=r.get("region", str, "South Central US"),
            management_url=r.get("management_url", str),
            verify_timeout=r.number("verify_timeout", 120.0, DURATION),
            data=r.get("data", str),
        )
    r.finish()
    return target


def _parse_gate(source: str, table: Any) -> Gate:
    if table is None:
        return Gate()
    if not isinstance(table, Mapping):
        raise ConfigurationError(f"{source}: gate: must be a table")
    r = Reader(source, table, "gate")
    thresholds = r.get("thresholds", dict, {})
    _check_thresholds(source, thresholds)
    beat = r.get("beat_incumbent", (str, list), [])
    if isinstance(beat, list) and not all(isinstance(b, str) for b in beat):
        raise r.fail("beat_incumbent", "must be a metric name or an array of names")
    margin = r.number("margin", 0.0, (0.0, math.inf), unit="")
    require = r.get("require_incumbent", bool, False)
    r.finish()
    try:
        return Gate(
            thresholds=dict(thresholds),
            beat_incumbent=beat,
            margin=margin,
            require_incumbent=require,
        )
    except ConfigurationError as err:
        raise ConfigurationError(f"{source}: gate.thresholds: {err}") from err


def _check_thresholds(source: str, thresholds: Mapping[str, Any]) -> None:
    """Every numeric bound of ``gate.thresholds`` is finite (the shapes are Gate's check)."""
    for metric, rule in thresholds.items():
        name, bound = f"gate.thresholds.{_toml_key(str(metric))}", rule
        if isinstance(rule, Mapping) and len(rule) == 1:
            ((kind, bound),) = rule.items()
            name = f"{name}.{kind}"
        if isinstance(bound, int | float) and not isinstance(bound, bool):
            try:
                checked(bound, name=name, low=-math.inf, high=math.inf, unit="")
            except ConfigurationError as err:
                raise ConfigurationError(f"{source}: {err.message}") from None


def _toml_key(key: str) -> str:
    """``key`` as written in TOML: bare when it can be, else quoted."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _parse_sample(source: str, table: Any) -> Sample | None:
    if table is None:
        return None
    if not isinstance(table, Mapping):
        raise ConfigurationError(f"{source}: sample: must be a table")
    r = Reader(source, table, "sample")
    columns = r.get("columns", list, required=True)
    rows = r.get("rows", list, required=True)
    input_name = r.get("input", str, "input1")
    r.finish()
    if not rows or not all(isinstance(row, list) and len(row) == len(columns) for row in rows):
        raise r.fail("rows", f"must be arrays of {len(columns)} values (one per column)")
    return Sample(columns=columns, rows=rows, input_name=input_name)


def parse_config(
    data: Mapping[str, Any], *, source: str, environ: Mapping[str, str] | None = None
) -> RetrainConfig:
    """Build a :class:`RetrainConfig` from a parsed TOML document.

    Raises:
        ConfigurationError: naming the file and the key.
    """
    environ = os.environ if environ is None else environ
    top = Reader(source, data, "")
    training = top.get("training", (dict, list), required=True)
    storage = top.get("storage", dict, required=True)
    targets = top.get("targets", list, required=True)
    gate = _parse_gate(source, top.get("gate", dict))
    ledger = top.get("ledger", dict, {})
    sample = _parse_sample(source, top.get("sample", dict))
    concurrency = top.integer("concurrency", 4, CONCURRENCY)
    interrupt_grace = top.number("interrupt_grace", 30.0, DURATION)
    waves = _parse_waves(top)
    bake = top.number("bake", 0.0, (0.0, DURATION[1]))
    max_failures = _parse_budget(top)
    rollout = _parse_rollout(source, top.get("rollout", dict))
    top.finish()

    s = Reader(source, storage, "storage")
    connection_string = s.secret("connection_string", environ, required=False)
    account_url = s.get("account_url", str)
    s.finish()
    if not connection_string and not account_url:
        raise s.fail("connection_string_env", "give connection_string_env or account_url")
    lg = Reader(source, ledger, "ledger")
    ledger_path = lg.get("path", str, ".amlretrain/ledger.jsonl")
    ledger_blob = lg.get("blob", str)
    if ledger_blob is not None:
        container, _, name = ledger_blob.partition("/")
        if not container or not name:
            raise lg.fail("blob", "must be 'container/path/to/ledger.jsonl'")
        lg.container("blob", container)
    lg.finish()
    if not targets:
        raise top.fail("targets", "at least one [[targets]] table is required")
    # The default lifetime: long enough not to warn with an account key; the most a
    # user-delegation key allows otherwise.
    sas_default = 30.0 if connection_string else SAS_DAYS_USER_DELEGATION[1]
    if connection_string:
        sas_days, sas_hint = SAS_DAYS_ACCOUNT_KEY, ""
        sas_advice = f" (with an account key it may live up to {SAS_DAYS_ACCOUNT_KEY[1]:g} days)"
    else:
        sas_days = SAS_DAYS_USER_DELEGATION
        sas_hint = (
            " (with storage.account_url the SAS is signed by user delegation, whose key "
            "lives 7 days at most; an account key, storage.connection_string_env, allows "
            f"up to {SAS_DAYS_ACCOUNT_KEY[1]:g} days)"
        )
        sas_advice = sas_hint
    trainings = parse_trainings(
        source, training, environ, SasDays(default=sas_default, bounds=sas_days, hint=sas_hint)
    )
    config = RetrainConfig(
        source=source,
        **_batch_fields(trainings),
        interrupt_grace=interrupt_grace,
        storage_connection_string=connection_string,
        storage_account_url=account_url,
        gate=gate,
        ledger_path=ledger_path,
        ledger_blob=ledger_blob,
        concurrency=concurrency,
        training_concurrency=max(t.concurrency for t in trainings),
        waves=waves,
        bake=bake,
        max_failures=max_failures,
        sample=sample,
        rollout=rollout,
        target_configs=tuple(
            _parse_target(source, i, table, environ) for i, table in enumerate(targets)
        ),
        trainings=trainings,
    )
    if config.model_sas_days < _SAS_DAYS_WARNING and _holds_sas(config):
        log.warning(
            "%s: training.model_sas_days: the read SAS the services hold expires after %g "
            "days: a service then stops scoring unless a newer model is deployed before that%s",
            source,
            config.model_sas_days,
            sas_advice,
        )
    return config


def _batch_fields(trainings: Sequence[TrainingConfig]) -> dict[str, Any]:
    """The :class:`RetrainConfig` fields of the ``batch`` training (the first training's
    data, timeout and SAS lifetime when there is none)."""
    batch = next((t for t in trainings if isinstance(t, BatchTrainingConfig)), None)
    first = batch or trainings[0]
    fields: dict[str, Any] = {
        "data": first.data,
        "timeout": first.timeout,
        "model_sas_days": first.model_sas_days,
        "training_api_location": "",
        "training_api_key": "",
    }
    if batch is not None:
        fields.update(
            training_api_location=batch.api_location,
            training_api_key=batch.api_key,
            input_name=batch.input_name,
            model_output=batch.model_output,
            evaluation_output=batch.evaluation_output,
            output_container=batch.output_container,
            global_parameters=batch.global_parameters,
        )
    return fields


def target_kind(config: TargetConfig) -> str:
    """A target's ``kind`` in ``retrain.toml``."""
    if isinstance(config, OnlineEndpointTargetConfig):
        return "online_endpoint"
    return "arm" if isinstance(config, ArmTargetConfig) else "classic"


def check_trained(config: RetrainConfig) -> None:
    """Every target's platform has its training: what ``retrain`` checks before anything
    is sent (``deploy``, ``rollback`` and the reads train nothing: they need none).

    Raises:
        ConfigurationError: naming the file and the target's key.
    """
    kinds = {t.kind for t in config.trainings}
    for index, target in enumerate(config.target_configs):
        kind = target_kind(target)
        needed = TRAINED_BY[kind]
        if needed not in kinds:
            raise ConfigurationError(
                f"{config.source}: targets[{index}].kind: a {kind!r} target is retrained by "
                f"a training of kind {needed!r}, and the config has none (add one: "
                f'[[training]] with kind = "{needed}")'
            )
    used = {TRAINED_BY[target_kind(t)] for t in config.target_configs}
    for training in config.trainings:
        if training.kind not in used:
            log.warning(
                "%s: the %s training retrains no target (no target of its platform)",
                config.source,
                training.kind,
            )


def _parse_rollout(source: str, table: Mapping[str, Any] | None) -> Rollout | None:
    """``[rollout]``: its files (the probe, a holdout) relative to the config's folder."""
    if table is None:
        return None
    from amlretrain.rollout import Rollout

    base = Path(source).resolve().parent
    champion = table.get("champion")
    if isinstance(champion, Mapping) and isinstance(champion.get("holdout"), str):
        holdout = Path(champion["holdout"]).expanduser()
        table = {**table, "champion": {**champion, "holdout": str(base / holdout)}}
    return Rollout.from_mapping(table, where=f"{source}: [rollout]", base=base)


def _parse_waves(top: Reader) -> Waves | None:
    """``waves``: ``"1,10%,50%,100%"`` or ``[1, "10%", "50%", "100%"]``."""
    value = top.get("waves", (str, list))
    if value is None:
        return None
    try:
        return Waves.parse(value, where=top.name("waves"))
    except ConfigurationError as err:
        raise ConfigurationError(f"{top.source}: {err.message}") from None


def _parse_budget(top: Reader) -> FailureBudget | None:
    """``max_failures``: a count (``3``) or a share of the targets (``"10%"``)."""
    value = top.get("max_failures", (int, str))
    if value is None:
        return None
    try:
        return FailureBudget.parse(value, where=top.name("max_failures"))
    except ConfigurationError as err:
        raise ConfigurationError(f"{top.source}: {err.message}") from None


def _holds_sas(config: RetrainConfig) -> bool:
    """True when some target is handed the model's read SAS (classic, or ARM with it)."""
    return any(
        isinstance(target, ClassicTargetConfig)
        or (isinstance(target, ArmTargetConfig) and target.include_sas)
        for target in config.target_configs
    )


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> RetrainConfig:
    """Read and check a ``retrain.toml``.

    Raises:
        ConfigurationError: the file cannot be read, is not TOML (line and column), or a
            key is missing, unknown or of the wrong type (named).
    """
    source = os.fspath(path)
    return parse_config(read_document(source), source=source, environ=environ)


def read_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The TOML document of a ``retrain.toml``, unchecked (:func:`load_config` checks it).

    Raises:
        ConfigurationError: the file cannot be read or is not TOML (line and column).
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

    source = os.fspath(path)
    try:
        raw = Path(source).read_bytes()
    except OSError as err:
        raise ConfigurationError(f"cannot read {source}: {err.strerror}") from err
    try:
        document: dict[str, Any] = tomllib.loads(raw.decode("utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigurationError(f"{source}: not valid TOML: {err}") from err
    return document


def group_by_data(
    config: RetrainConfig, targets: Sequence[tuple[Target, str | None]]
) -> dict[str, list[Target]]:
    """Targets grouped by the training data each needs (one training job per group).

    For a config with one training; :func:`training_groups` groups by training too.
    """
    groups: dict[str, list[Target]] = {}
    for target, data in targets:
        groups.setdefault(data or config.data, []).append(target)
    return groups


@attrs.frozen(kw_only=True)
class TrainingGroup:
    """The targets one training job retrains: its training's kind, its data, its name."""

    kind: str
    data: str
    targets: tuple[Target, ...]

    @property
    def label(self) -> str:
        """The group's name in the ledger (a ``batch`` group's is its data, unchanged)."""
        return self.data if self.kind == "batch" else f"{self.kind}:{self.data}"


def training_groups(
    config: RetrainConfig,
    targets: Sequence[tuple[Target, str | None]],
    *,
    data: str | None = None,
) -> list[TrainingGroup]:
    """Targets grouped by training (their platform's) and data: one job per group.

    Args:
        targets: :meth:`RetrainConfig.targets` (in config order).
        data: one data for every group (``retrain --data``), instead of each target's
            ``data`` or its training's.

    Raises:
        ConfigurationError: a target whose platform has no training (:func:`check_trained`).
    """
    if len(targets) != len(config.target_configs):
        raise ConfigurationError("training_groups() takes the config's own targets()")
    check_trained(config)
    groups: dict[tuple[str, str], list[Target]] = {}
    for (target, own), target_config in zip(targets, config.target_configs, strict=True):
        kind = TRAINED_BY[target_kind(target_config)]
        value = data or own or config.training_of(kind).data
        groups.setdefault((kind, value), []).append(target)
    return [TrainingGroup(kind=k, data=d, targets=tuple(t)) for (k, d), t in groups.items()]
