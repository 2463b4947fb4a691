"""Every ```python block of docs/clients.md runs, in order, in one namespace, against the emulator.

The page starts its own emulator (``emu = Emulator().start()``) and stops it at the end
(``emu.stop()``). Here both run as written, but against the session's emulator: during
the test ``amlretrain.emulator.Emulator`` is a stand-in whose ``start()`` hands out the
running one and whose ``stop()`` only records the call, so the other tests keep their
emulator. The page swaps the trained model of the classic predictive endpoint and of
the ARM service; both are put back afterwards. Blocks fenced otherwise (```toml) are
shown, not run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import amlretrain.emulator
from amlretrain.emulator import Emulator
from amlretrain.storage import BlobStore
from amlretrain.studio.management import ClassicClient
from amlretrain.studio.webservices import WebServicesClient
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PAGE = REPO / "docs" / "clients.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[str]:
    """The ```python blocks of a Markdown file, in order."""
    return BLOCK.findall(path.read_text(encoding="utf-8"))


class SessionEmulator:
    """What ``Emulator().start()`` gives the page: the running emulator, minus ``stop()``."""

    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator
        self.stopped = False

    def start(self) -> SessionEmulator:
        return self

    def stop(self) -> None:
        self.stopped = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._emulator, name)


@pytest.fixture
def restored(emulator: Emulator) -> Iterator[None]:
    """Put back the trained models the page swaps (classic endpoint, ARM service)."""
    info = emulator.info
    service, endpoint = str(info.predictive_service), str(info.predictive_endpoint)
    resource, rg = str(info.predictive_resource_name), info.resource_group
    arm_name = str(info.arm_service_name)
    store = BlobStore.from_connection_string(info.storage_connection_string)
    classic = ClassicClient(info.workspace_id, info.workspace_token, base_url=info.management_url)
    arm = WebServicesClient(
        emulator.credential(),
        info.subscription_id,
        base_url=info.arm_base_url,
        polling_interval=0.05,
    )
    with classic, arm:
        location = classic.get_endpoint(service, endpoint).resource(resource).location
        assert location is not None
        uri = arm.get(rg, arm_name).trained_models[0].uri
        assert uri is not None
        yield
        now = classic.get_endpoint(service, endpoint).resource(resource).location
        if now is None or now.url != location.url:
            readable = store.sas(location, expires_in=timedelta(days=7))
            classic.update_trained_model(service, endpoint, resource, readable)
        current = arm.get(rg, arm_name)
        if current.trained_models[0].uri != uri:
            arm.update(rg, arm_name, current.with_trained_model(uri), expected=current)
        now = classic.get_endpoint(service, endpoint).resource(resource).location
        assert now is not None and now.url == location.url
        assert arm.get(rg, arm_name).trained_models[0].uri == uri


def test_every_python_block_runs_against_the_emulator(
    emulator: Emulator,
    restored: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocks = python_blocks(PAGE)
    assert len(blocks) == 8, "docs/clients.md gained or lost examples: look at this test"
    assert "Emulator().start()" in blocks[0]
    assert blocks[-1].strip() == "emu.stop()"
    monkeypatch.chdir(tmp_path)
    stand_in = SessionEmulator(emulator)
    monkeypatch.setattr(amlretrain.emulator, "Emulator", lambda **_: stand_in)
    saved_environ = dict(os.environ)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    try:
        for index, block in enumerate(blocks):
            try:
                exec(compile(block, f"docs/clients.md[{index}]", "exec"), namespace)
            except Exception as err:
                raise AssertionError(f"example {index} failed: {err!r}\n{block}") from err
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)
        for client in ("bes", "classic", "rrs", "arm"):
            close = getattr(namespace.get(client), "close", None)
            if close is not None:
                close()
    assert stand_in.stopped, "the last example stops the emulator"
    assert namespace["info"] is emulator.info

    # what the examples claim, checked on what they left in the namespace
    assert str(namespace["job"].status) == "Finished"
    assert namespace["model"].relative_location.endswith(".ilearner")
    assert "sig=" not in str(namespace["ref"])
    swapped = namespace["endpoint"].resource(emulator.info.predictive_resource_name).location
    assert swapped.url == namespace["model"].url
    assert namespace["updated"].trained_models[0].uri.split("?")[0] == namespace["model"].url
    assert len(namespace["result"].rows) == 1
