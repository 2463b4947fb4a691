"""Every ```python block of the offline docs runs (in order, per file).

README.md's blocks start an emulator (and Azurite): they run in
tests/integration/test_docs_readme_examples.py, as tests/unit opens no sockets.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO

SAMPLE = REPO / "amlretrain" / "emulator" / "data" / "predictive_definition.json"
OFFLINE_DOCS = ["docs/definitions.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path: Path) -> list[str]:
    """The python code blocks of a Markdown file, in order."""
    return BLOCK.findall(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", OFFLINE_DOCS)
def test_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(REPO / name)
    assert blocks, f"{name} has no python examples"
    sample = tmp_path / "export.json"
    shutil.copy(SAMPLE, sample)
    monkeypatch.chdir(tmp_path)
    namespace = {
        "sample_path": str(sample),
        "out_path": str(tmp_path / "new.json"),
        "data_dir": str(SAMPLE.parent),
        "ledger_path": str(tmp_path / "ledger.jsonl"),
    }
    for index, block in enumerate(blocks):
        try:
            exec(compile(block, f"{name}[{index}]", "exec"), namespace)
        except Exception as err:
            raise AssertionError(f"{name} example {index} failed: {err!r}\n{block}") from err
