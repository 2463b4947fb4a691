"""The Airflow connection that supplies a retrain.toml's secrets: :class:`AmlRetrainHook`.

A retrain.toml names its secrets by environment variable (``*_env`` keys, e.g.
``storage.connection_string_env = "AMLRETRAIN_STORAGE_CONNECTION_STRING"``); the hook reads
the values from an Airflow connection instead of the worker's environment, so they live in
Airflow's connection store (or its secrets backend), never in the DAG, the trigger's
arguments or XCom. Two kinds of connection are read:

* ``amlretrain`` (or ``generic``: ``airflow connections add --conn-type amlretrain`` stores
  ``generic`` when the type is not registered): its ``extra`` JSON maps variable NAMES to
  values under ``env``::

      {"env": {"AMLRETRAIN_STORAGE_CONNECTION_STRING": "...",
               "AMLRETRAIN_TRAINING_API_KEY": "..."}}

* ``azure`` (the Azure provider's connection): a service principal as login (client id),
  password (client secret) and ``extra`` ``tenantId`` (also ``tenant_id``), turned into
  the ``AZURE_CLIENT_ID`` / ``AZURE_CLIENT_SECRET`` / ``AZURE_TENANT_ID`` variables that
  azure-identity's ``DefaultAzureCredential`` reads; an ``env`` member of its extra is
  added as above. Without login and password, ``DefaultAzureCredential`` finds its own
  identity (a managed identity, workload identity, the Azure CLI's login).

``AZURE_*`` variables are put into ``os.environ`` only while a config's clients are built
(:func:`azure_environ`), because azure-identity reads nothing else; every other value
reaches the config through ``load_config(..., environ=hook.environ())``.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

from airflow.sdk import BaseHook

from amlretrain._redact import REDACTED, redact
from amlretrain.errors import ConfigurationError

__all__ = ["AmlRetrainHook", "azure_environ", "environ_of", "scrubber"]

#: Connection types whose ``extra`` holds ``{"env": {NAME: value}}``.
ENV_CONN_TYPES = ("amlretrain", "generic")
#: The Azure provider's connection type.
AZURE_CONN_TYPE = "azure"
_TENANT_KEYS = ("tenantId", "tenant_id", "extra__azure__tenantId")
_SUBSCRIPTION_KEYS = ("subscriptionId", "subscription_id", "extra__azure__subscriptionId")

# os.environ is process-wide: one lock for every scope that changes it (the triggerer runs
# many triggers' threads in one process).
_ENVIRON_LOCK = threading.RLock()


class AmlRetrainHook(BaseHook):
    """Reads the values of a retrain.toml's secret variables from an Airflow connection.

    Args:
        conn_id: the connection (type ``amlretrain``/``generic`` or ``azure``).

    Example:
        >>> hook = AmlRetrainHook("amlretrain_default")  # doctest: +SKIP
        >>> config = load_config("retrain.toml", environ=hook.environ())  # doctest: +SKIP
    """

    conn_name_attr: ClassVar[str] = "amlretrain_conn_id"
    default_conn_name: ClassVar[str] = "amlretrain_default"
    conn_type: ClassVar[str] = "amlretrain"
    hook_name: ClassVar[str] = "amlretrain (retrain.toml secrets)"

    def __init__(self, conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.conn_id = conn_id

    def __repr__(self) -> str:
        return f"AmlRetrainHook(conn_id={self.conn_id!r})"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form: only ``extra`` (the ``env`` mapping) is used."""
        return {
            "hidden_fields": ["host", "schema", "port", "login", "password"],
            "relabeling": {},
            "placeholders": {
                "extra": json.dumps(
                    {"env": {"AMLRETRAIN_STORAGE_CONNECTION_STRING": "DefaultEndpoints..."}}
                )
            },
        }

    def get_conn(self) -> dict[str, str]:
        """The variables (:meth:`environ`): a hook's ``get_conn`` for Airflow's generic use."""
        return self.environ()

    def environ(self) -> dict[str, str]:
        """The connection's variables: NAME -> value (never log or print them).

        Raises:
            ConfigurationError: the connection is missing or not of a readable shape
                (naming the connection and what is wrong; no value is quoted).
        """
        try:
            conn = self.get_connection(self.conn_id)
        except Exception as err:  # Airflow raises AirflowNotFoundException and others
            raise ConfigurationError(
                f"Airflow connection {self.conn_id!r}: cannot be read: "
                f"{type(err).__name__}: {redact(str(err))}"
            ) from None
        return environ_of(
            self.conn_id,
            conn_type=conn.conn_type or "",
            login=conn.login,
            password=conn.password,
            extra=conn.extra_dejson,
        )


def environ_of(
    conn_id: str,
    *,
    conn_type: str,
    login: str | None = None,
    password: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """The variables of a connection's fields (see the module docstring).

    Raises:
        ConfigurationError: an unknown connection type, or an ``env`` that is not a
            mapping of variable names to strings.
    """
    extra = extra or {}
    if not isinstance(extra, Mapping):
        raise ConfigurationError(f"Airflow connection {conn_id!r}: extra must be a JSON object")
    found: dict[str, str] = {}
    if conn_type == AZURE_CONN_TYPE:
        tenant = _first(extra, _TENANT_KEYS)
        if login:
            found["AZURE_CLIENT_ID"] = login
        if password:
            if not (login and tenant):
                raise ConfigurationError(
                    f"Airflow connection {conn_id!r} (azure): a client secret needs the "
                    "client id (login) and the tenant (extra tenantId)"
                )
            found["AZURE_CLIENT_SECRET"] = password
        if tenant:
            found["AZURE_TENANT_ID"] = tenant
        subscription = _first(extra, _SUBSCRIPTION_KEYS)
        if subscription:
            found["AZURE_SUBSCRIPTION_ID"] = subscription
    elif conn_type not in ENV_CONN_TYPES:
        raise ConfigurationError(
            f"Airflow connection {conn_id!r}: type {conn_type!r} is not read by amlretrain "
            f'(use {", ".join(ENV_CONN_TYPES)} with extra {{"env": {{NAME: value}}}}, '
            f"or {AZURE_CONN_TYPE})"
        )
    env = extra.get("env", {})
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise ConfigurationError(
            f"Airflow connection {conn_id!r}: extra.env must map variable names to strings"
        )
    if conn_type in ENV_CONN_TYPES and not env:
        raise ConfigurationError(
            f"Airflow connection {conn_id!r}: extra has no env (a JSON object of the "
            "retrain.toml's *_env variable names and their values)"
        )
    found.update(env)
    return found


def _first(extra: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = extra.get(key)
        if isinstance(value, str) and value:
            return value
    return None


#: Values shorter than this are not scrubbed from text (they would match ordinary words).
MIN_SCRUBBED = 8


def scrubber(environ: Mapping[str, str]) -> Callable[[str], str]:
    """A function that redacts a text (:func:`amlretrain._redact.redact`) and replaces every
    value of ``environ`` (of :data:`MIN_SCRUBBED` characters or more) in it.

    The connection's values are known: whatever a service or a library puts in an error
    message, they never reach a log, an exception or an XCom.
    """
    values = sorted({v for v in environ.values() if len(v) >= MIN_SCRUBBED}, key=len, reverse=True)

    def scrub(text: str) -> str:
        for value in values:
            text = text.replace(value, REDACTED)
        return redact(text)

    return scrub


@contextlib.contextmanager
def azure_environ(environ: Mapping[str, str]) -> Iterator[None]:
    """Put ``environ``'s ``AZURE_*`` variables into ``os.environ`` while the block runs.

    azure-identity's ``DefaultAzureCredential`` reads its service principal from the
    process environment when it is created: build the config's clients inside the block.
    The previous values come back after it; blocks are serialised by one lock (the
    triggerer runs many triggers in one process).
    """
    names = [n for n in environ if n.startswith("AZURE_")]
    with _ENVIRON_LOCK:
        previous = {n: os.environ.get(n) for n in names}
        try:
            for name in names:
                os.environ[name] = environ[name]
            yield
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
