"""Every ```python block of docs/retrain.md runs, in order, against the live emulator.

The blocks share one namespace in which the session's running emulator is ``emu``.
Blocks fenced otherwise are shown, not run: ```py (starting and stopping an emulator,
which the session already did), ```python-azure (real Azure), ```console and ```text.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from amlretrain import (
    ArmTarget,
    BlobRef,
    ClassicClient,
    ClassicTarget,
    PollPolicy,
    WebServicesClient,
)
from amlretrain.emulator import Emulator
from amlretrain.ledger import strip_sas
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOCS = ["docs/retrain.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[str]:
    """The ```python blocks of a Markdown file, in order."""
    return BLOCK.findall(path.read_text(encoding="utf-8"))


def _seeded_targets(emulator: Emulator) -> list[Any]:
    """The seeded ARM service and classic endpoint (the ones the docs retrain)."""
    info = emulator.info
    arm = WebServicesClient(
        emulator.credential(), info.subscription_id, base_url=info.arm_base_url,
        polling_interval=0.1,
    )  # fmt: skip
    classic = ClassicClient(
        info.workspace_id, info.workspace_token, base_url=info.management_url,
        poll=PollPolicy.fixed(0.1),
    )  # fmt: skip
    return [
        ArmTarget(arm, info.resource_group, str(info.arm_service_name)),
        ClassicTarget(classic, str(info.predictive_service), str(info.predictive_endpoint)),
    ]


@contextmanager
def models_put_back(emulator: Emulator) -> Iterator[None]:
    """The session's emulator is shared: leave its seeded services on the models they had."""
    targets = _seeded_targets(emulator)
    served = [t.current_model() for t in targets]
    try:
        yield
    finally:
        for target, model in zip(targets, served, strict=True):
            if model and strip_sas(target.current_model()) != strip_sas(model):
                target.deploy(BlobRef.from_url(model))


@pytest.mark.parametrize("name", DOCS)
def test_examples_run_against_the_emulator(
    name: str, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = python_blocks(REPO / name)
    assert len(blocks) >= 10, f"{name} lost its examples"
    monkeypatch.chdir(tmp_path)
    saved_environ = dict(os.environ)  # the CLI example exports secrets for its config
    namespace: dict[str, object] = {"emu": emulator, "__name__": "__docs__"}
    try:
        with models_put_back(emulator):
            for index, block in enumerate(blocks):
                try:
                    exec(compile(block, f"{name}[{index}]", "exec"), namespace)
                except Exception as err:
                    raise AssertionError(
                        f"{name} example {index} failed: {err!r}\n{block}"
                    ) from err
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)
        emulator.faults.clear()


def test_the_fleet_guide_runs_against_the_emulator(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = python_blocks(REPO / "docs/fleet.md")
    assert len(blocks) == 2, "docs/fleet.md lost its examples"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"emu": emulator, "__name__": "__docs__"}
    for index, block in enumerate(blocks):
        exec(compile(block, f"docs/fleet.md[{index}]", "exec"), namespace)
    assert (tmp_path / "fleet-ledger.jsonl").is_file()


def test_the_rollout_guide_runs_against_the_emulator(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = python_blocks(REPO / "docs/rollout.md")
    assert len(blocks) == 2, "docs/rollout.md lost an example (the v2 Rollout, the run)"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"emu": emulator, "__name__": "__docs__"}
    for index, block in enumerate(blocks):
        exec(compile(block, f"docs/rollout.md[{index}]", "exec"), namespace)
    assert (tmp_path / "rollout-ledger.jsonl").is_file()


def test_the_rollout_guide_s_config_parses_with_every_key(tmp_path: Path) -> None:
    import re as regex

    from amlretrain.rollout import Rollout

    text = (REPO / "docs/rollout.md").read_text(encoding="utf-8")
    toml = regex.search(r"```toml\n(.*?)```", text, regex.S)
    assert toml is not None
    import tomllib

    document = tomllib.loads(toml.group(1))["rollout"]
    (tmp_path / "probe.csv").write_text("age,hours\n30,40\n")
    (tmp_path / "mymonitors.py").write_text(
        "def latency_slo(observation, context):\n    return None\n"
    )
    (tmp_path / "mynotify.py").write_text("def post(event, payload):\n    return None\n")
    sys.path.insert(0, str(tmp_path))
    try:
        rollout = Rollout.from_mapping(document, base=tmp_path)
    finally:
        sys.path.remove(str(tmp_path))
    assert rollout.stages == ("smoke", "shadow", "canary")
    assert len(rollout.alarms) == 2 and rollout.champion is not None
    assert rollout.notify is not None and rollout.arm_commitment_plan
    assert rollout.mirror == 20 and rollout.traffic_steps == (10, 50)


def test_azure_examples_are_fenced_so_they_do_not_run() -> None:
    text = (REPO / "docs/retrain.md").read_text(encoding="utf-8")
    for block in python_blocks(REPO / "docs/retrain.md"):
        assert "DefaultAzureCredential" not in block
    assert "```python-azure" in text


def test_the_full_config_example_parses_with_every_key() -> None:
    from amlretrain.config import ArmTargetConfig, ClassicTargetConfig, parse_config

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]
    text = (REPO / "docs/config.md").read_text(encoding="utf-8")
    example = re.search(r"^```toml\n(.*?)^```", text, re.S | re.M)
    assert example is not None
    environ = {
        "AML_TRAINING_API_KEY": "k",
        "AML_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=eA==",
        "AML_ARM_TOKEN": "t",
        "AML_WORKSPACE_TOKEN": "w",
    }
    config = parse_config(tomllib.loads(example.group(1)), source="config.md", environ=environ)
    arm, classic, customer = config.target_configs
    assert isinstance(arm, ArmTargetConfig) and arm.asset == "asset3"
    assert isinstance(classic, ClassicTargetConfig) and classic.data is None
    assert isinstance(customer, ClassicTargetConfig) and customer.data == "data/contoso.csv"
    assert config.gate.beat_incumbent == ("AUC",)
    assert config.sample is not None and len(config.sample.rows) == 2
    # every key of every table is documented in the tables of the page
    for key in re.findall(r"^(\w+) = ", example.group(1), re.M):
        assert f"| `{key}` |" in text, key
