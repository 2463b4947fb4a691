"""A ready ``retrain.toml`` (and its environment) for a running emulator."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["emulator_config", "emulator_environment"]


def _fields(info: Any) -> Mapping[str, Any]:
    """An ``EmulatorInfo`` or the mapping of its fields (the emulator's info file)."""
    if isinstance(info, Mapping):
        return info
    fields: Mapping[str, Any] = info.to_dict(include_secrets=True)
    return fields


def emulator_environment(info: Any) -> dict[str, str]:
    """The secrets a config for this emulator names, by environment variable."""
    secrets = _fields(info)
    return {
        "AMLRETRAIN_TRAINING_API_KEY": secrets["training_api_key"],
        "AMLRETRAIN_STORAGE_CONNECTION_STRING": secrets["storage_connection_string"],
        "AMLRETRAIN_WORKSPACE_TOKEN": secrets["workspace_token"],
        "AMLRETRAIN_ARM_TOKEN": secrets["arm_token"],
    }


def _q(value: str) -> str:
    return json.dumps(value)


def emulator_config(
    info: Any, *, data: str | Path, ledger: str | Path, ledger_blob: str | None = None
) -> str:
    """A ``retrain.toml`` that retrains the emulator's seeded services on ``data``.

    Targets: the New (ARM) predictive web service and the classic predictive endpoint.
    ``info`` is an ``EmulatorInfo`` or the mapping of its fields. The ledger is the file
    ``ledger``, or with ``ledger_blob`` (``container/path``) an append blob in the
    emulator's Azurite (what the Airflow operators require).
    """
    info = _Info(_fields(info))
    sample = json.loads(
        (Path(__file__).resolve().parents[1] / "emulator" / "data" / "score_rows.json").read_text()
    )
    rows = ", ".join("[" + ", ".join(_q(str(v)) for v in row) + "]" for row in sample["Values"])
    lines = [
        "# retrain.toml for the local emulator (written by amlretrain)",
        "concurrency = 2",
        "",
        "[training]",
        f"api_location = {_q(info.training_endpoint_api_location)}",
        'api_key_env = "AMLRETRAIN_TRAINING_API_KEY"',
        f"data = {_q(str(data))}",
        'input = "input1"',
        'model_output = "output1"',
        'evaluation_output = "output2"',
        "timeout = 600",
        "",
        "[storage]",
        'connection_string_env = "AMLRETRAIN_STORAGE_CONNECTION_STRING"',
        "",
        "[gate]",
        'thresholds = { AUC = 0.7, "Average Log Loss" = { max = 0.6 } }',
        'beat_incumbent = ["AUC"]',
        "",
        "[ledger]",
        f"blob = {_q(ledger_blob)}" if ledger_blob else f"path = {_q(str(ledger))}",
        "",
        "[sample]",
        "columns = [" + ", ".join(_q(c) for c in sample["ColumnNames"]) + "]",
        f"rows = [{rows}]",
        "",
        "[[targets]]",
        'kind = "arm"',
        f"subscription_id = {_q(info.subscription_id)}",
        f"resource_group = {_q(info.resource_group)}",
        f"name = {_q(info.arm_service_name)}",
        f"arm_base_url = {_q(info.arm_base_url)}",
        'arm_token_env = "AMLRETRAIN_ARM_TOKEN"',
        "polling_interval = 0.2",
        "",
        "[[targets]]",
        'kind = "classic"',
        f"workspace_id = {_q(info.workspace_id)}",
        'token_env = "AMLRETRAIN_WORKSPACE_TOKEN"',
        f"management_url = {_q(info.management_url)}",
        f"web_service_id = {_q(info.predictive_service)}",
        f"endpoint = {_q(info.predictive_endpoint)}",
        f"resource_name = {_q(info.predictive_resource_name)}",
        "",
    ]
    return "\n".join(lines)


class _Info:
    def __init__(self, fields: Mapping[str, Any]) -> None:
        self._fields = fields

    def __getattr__(self, name: str) -> Any:
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(name) from None
