"""``Emulator``: start and stop the loopback services (and Azurite) as one object.

Example:
    >>> from amlretrain.emulator import Emulator
    >>> with Emulator() as emu:                                  # doctest: +SKIP
    ...     print(emu.info.arm_base_url, emu.info.training_service)
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import Any

import attrs

from amlretrain.blobs import is_loopback_host
from amlretrain.emulator._server import LoggedRequest, Server
from amlretrain.emulator._storage import Storage
from amlretrain.emulator.arm import ArmApi
from amlretrain.emulator.batch import BatchApi
from amlretrain.emulator.classic import ClassicApi
from amlretrain.emulator.faults import Faults
from amlretrain.emulator.rrs import RrsApi
from amlretrain.emulator.state import State, Workspace, new_id, new_key
from amlretrain.emulator.v2jobs import JobRunner
from amlretrain.errors import ConfigurationError

__all__ = ["Emulator", "EmulatorCredential", "EmulatorInfo"]

log = logging.getLogger(__name__)

_SECRET = {"secret": True}


def _secret(**kwargs: Any) -> Any:
    return attrs.field(repr=False, metadata=_SECRET, **kwargs)


@attrs.frozen(kw_only=True)
class EmulatorInfo:
    """Everything a client needs to talk to a running emulator.

    Secrets (``arm_token``, ``workspace_token``, ``storage_connection_string``, API keys)
    are hidden from ``repr`` and from :meth:`to_dict` unless asked for. Seeded fields are
    None when the emulator was started with ``seed=False``.
    """

    base_url: str
    arm_base_url: str
    management_url: str
    subscription_id: str
    resource_group: str
    arm_token: str = _secret()
    workspace_id: str
    workspace_token: str = _secret()
    storage_connection_string: str = _secret()
    blob_endpoint: str
    storage_account: str
    training_service: str | None = None
    training_endpoint: str | None = None
    training_endpoint_api_location: str | None = None
    training_api_key: str | None = _secret(default=None)
    predictive_service: str | None = None
    predictive_default_endpoint: str | None = None
    predictive_endpoint: str | None = None
    predictive_endpoint_api_location: str | None = None
    predictive_api_key: str | None = _secret(default=None)
    predictive_resource_name: str | None = None
    arm_service_name: str | None = None
    arm_service_id: str | None = None
    arm_api_location: str | None = None
    arm_api_key: str | None = _secret(default=None)
    training_data: str | None = None
    new_training_data: str | None = None
    initial_model: str | None = None
    v2_subscription_id: str | None = None
    v2_resource_group: str | None = None
    v2_workspace: str | None = None
    v2_endpoint: str | None = None
    v2_deployment: str | None = None
    v2_model_name: str | None = None
    v2_model_version: str | None = None
    v2_training_data: str | None = None
    v2_new_training_data: str | None = None

    def to_dict(self, *, include_secrets: bool = False) -> dict[str, Any]:
        """The fields as a dict; secrets only with ``include_secrets=True``."""
        return attrs.asdict(
            self,
            filter=lambda a, _v: include_secrets or not a.metadata.get("secret", False),
        )


class EmulatorCredential:
    """An azure-core ``TokenCredential`` that hands out the emulator's ARM token.

    Example:
        >>> cred = EmulatorCredential("t0ken")
        >>> cred.get_token("https://management.azure.com/.default").token
        't0ken'
    """

    _LIFETIME = 10 * 365 * 24 * 3600

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "EmulatorCredential(<token redacted>)"

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> Any:
        """An ``AccessToken`` for any scope, valid for ten years."""
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + self._LIFETIME)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        """An ``AccessTokenInfo`` for any scope (the newer azure-core protocol)."""
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._token, int(time.time()) + self._LIFETIME)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> EmulatorCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Emulator:
    """The local emulator: ARM, classic management, BES and RRS on one loopback port.

    Args:
        seed: create the ready scenario (see :mod:`amlretrain.emulator.seed`).
        host: loopback address to bind (anything else is refused).
        port: port to bind; 0 picks a free one.
        faults: fault rules (a new, empty set by default); also ``emu.faults``.
        lro_delay: seconds an ARM long-running operation stays ``Provisioning``.
        job_duration: seconds a batch job runs at least.
        azurite: an already started Azurite to use (it is not stopped by :meth:`stop`);
            None starts one.
        page_size: items per page of the ARM list operations.
        max_endpoints: endpoints a classic web service may hold, its default one
            included; None = no limit (default 20, a GUESS; 3 is a free workspace's
            documented limit). Also settable on a running emulator.
        strict_arm_create: refuse an ARM PUT that creates a web service without the
            storage account key and the commitment plan id, as a definition read by GET
            lacks them (see :mod:`amlretrain.emulator.arm`). Also settable while running.

    Raises:
        ConfigurationError: ``host`` is not a loopback address.

    Example:
        >>> with Emulator() as emu:                             # doctest: +SKIP
        ...     emu.faults.add(route="arm.patch", kind="status", status=429, count=1)
    """

    def __init__(
        self,
        *,
        seed: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        lro_delay: float = 0.2,
        job_duration: float = 0.5,
        azurite: Any | None = None,
        page_size: int = 10,
        max_endpoints: int | None = 20,
        strict_arm_create: bool = False,
    ) -> None:
        if not is_loopback_host(host):
            raise ConfigurationError(f"the emulator serves loopback only, not {host!r}")
        self._seed = seed
        self._host = host
        self._port = port
        self.faults = faults if faults is not None else Faults()
        self.lro_delay = lro_delay
        self.job_duration = job_duration
        self.page_size = page_size
        self._max_endpoints = max_endpoints
        self._strict_arm_create = strict_arm_create
        self._arm: ArmApi | None = None
        self._classic: ClassicApi | None = None
        self._azurite = azurite
        self._own_azurite = azurite is None
        self._server: Server | None = None
        self._storage: Storage | None = None
        self._batch: BatchApi | None = None
        self._v2_jobs: JobRunner | None = None
        self._info: EmulatorInfo | None = None
        self._arm_token = new_key()
        self.state: State | None = None

    @property
    def info(self) -> EmulatorInfo:
        """What clients need (raises RuntimeError before :meth:`start`)."""
        if self._info is None:
            raise RuntimeError("the emulator is not running")
        return self._info

    @property
    def max_endpoints(self) -> int | None:
        """Endpoints a classic web service may hold (default one included); None = no limit."""
        return self._max_endpoints

    @max_endpoints.setter
    def max_endpoints(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or value < 1):
            raise ValueError(f"max_endpoints must be an int >= 1 or None, not {value!r}")
        self._max_endpoints = value
        if self._classic is not None:
            self._classic.max_endpoints = value

    @property
    def strict_arm_create(self) -> bool:
        """Whether an ARM create needs the storage key and the commitment plan id."""
        return self._strict_arm_create

    @strict_arm_create.setter
    def strict_arm_create(self, value: bool) -> None:
        self._strict_arm_create = bool(value)
        if self._arm is not None:
            self._arm.require_create_secrets = bool(value)

    @property
    def requests(self) -> list[LoggedRequest]:
        """The ``(method, path, status)`` of every request served so far."""
        return self._server.requests if self._server is not None else []

    def clear_requests(self) -> None:
        """Forget the request log."""
        if self._server is not None:
            self._server.clear_log()

    def credential(self) -> EmulatorCredential:
        """A ``TokenCredential`` for the ARM API of this emulator."""
        return EmulatorCredential(self._arm_token)

    def start(self) -> Emulator:
        """Start Azurite (unless given), the HTTP server, and seed. Returns self."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if self._azurite is None:
            from amlretrain.emulator.azurite import Azurite

            self._azurite = Azurite(host="127.0.0.1")
            self._azurite.start()
        az = self._azurite
        storage = Storage(
            blob_endpoint=az.blob_endpoint, account_name=az.account_name, account_key=az.account_key
        )
        self._storage = storage
        state = State(lro_delay=self.lro_delay, page_size=self.page_size)
        self.state = state
        workspace = Workspace(id=new_id(), token=new_key())
        state.workspaces[workspace.id] = workspace
        server = Server(host=self._host, port=self._port, faults=self.faults)
        arm = ArmApi(
            state=state,
            faults=self.faults,
            arm_token=self._arm_token,
            require_create_secrets=self._strict_arm_create,
        )
        arm.register(server.router)
        self._arm = arm
        self._classic = ClassicApi(
            state=state, storage=storage, faults=self.faults, max_endpoints=self._max_endpoints
        )
        self._classic.register(server.router)
        self._batch = BatchApi(
            state=state, storage=storage, faults=self.faults, job_duration=self.job_duration
        )
        self._batch.register(server.router)
        RrsApi(state=state, storage=storage).register(server.router)
        self._register_v2(state, storage, server)
        self._server = server
        server.start()
        base = server.base_url
        seeded: dict[str, Any] = {}
        if self._seed:
            from amlretrain.emulator.seed import seed

            seeded = attrs.asdict(
                seed(state=state, storage=storage, arm=arm, workspace=workspace, base_url=base)
            )
        from amlretrain.emulator.seed import RESOURCE_GROUP, SUBSCRIPTION_ID
        from amlretrain.emulator.v2seed import register_workspace, seed_v2

        v2_ws = register_workspace(state, SUBSCRIPTION_ID)
        if self._seed:
            seeded.update(
                attrs.asdict(
                    seed_v2(
                        state=state,
                        storage=storage,
                        workspace=v2_ws,
                        base_url=base,
                        arm_token=self._arm_token,
                    )
                )
            )

        self._info = EmulatorInfo(
            base_url=base,
            arm_base_url=base,
            management_url=base,
            subscription_id=SUBSCRIPTION_ID,
            resource_group=RESOURCE_GROUP,
            arm_token=self._arm_token,
            workspace_id=workspace.id,
            workspace_token=workspace.token,
            storage_connection_string=storage.connection_string,
            blob_endpoint=storage.blob_endpoint,
            storage_account=storage.account_name,
            v2_subscription_id=v2_ws.subscription_id,
            v2_resource_group=v2_ws.resource_group,
            v2_workspace=v2_ws.name,
            **seeded,
        )
        log.info("emulator ready at %s (blob endpoint %s)", base, storage.blob_endpoint)

    def _register_v2(self, state: State, storage: Storage, server: Server) -> None:
        """The Azure ML v2 services (:mod:`amlretrain.emulator.v2`) on the same server."""
        from amlretrain.emulator.v2 import V2Api
        from amlretrain.emulator.v2assets import V2AssetsApi
        from amlretrain.emulator.v2jobs import JobRunner
        from amlretrain.emulator.v2score import V2ScoreApi

        token = self._arm_token
        V2Api(state=state, faults=self.faults, arm_token=token, storage=storage).register(
            server.router
        )
        self._v2_jobs = JobRunner(
            state=state, storage=storage, faults=self.faults, job_duration=self.job_duration
        )
        V2AssetsApi(
            state=state, faults=self.faults, arm_token=token, runner=self._v2_jobs
        ).register(server.router)
        V2ScoreApi(state=state, arm_token=token).register(server.router)

    def stop(self) -> None:
        """Stop jobs, the server and (when it started it) Azurite. Safe to call twice."""
        if self._v2_jobs is not None:
            self._v2_jobs.stop()
            self._v2_jobs = None
        if self._batch is not None:
            self._batch.stop()
            self._batch = None
        if self._server is not None:
            self._server.stop()
        if self._storage is not None:
            self._storage.close()
            self._storage = None
        if self._own_azurite and self._azurite is not None:
            self._azurite.stop()
            self._azurite = None
        self._info = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self._info.base_url if self._info is not None else "stopped"
        return f"Emulator({where})"
