"""Every ```python block of README.md runs, in order, in one namespace.

README's retrain example starts its own emulator (Azurite is installed by ``make``), so it
runs with the integration tests; the offline docs' blocks run in tests/unit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.unit.test_docs_examples import python_blocks

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_readme_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(REPO / "README.md")
    assert blocks, "README.md has no python examples"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for index, block in enumerate(blocks):
        try:
            exec(compile(block, f"README.md[{index}]", "exec"), namespace)
        except Exception as err:
            raise AssertionError(f"README.md example {index} failed: {err!r}\n{block}") from err
