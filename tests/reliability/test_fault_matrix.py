"""A representative subset of the fault matrix, on every ``make test``.

The full matrix is ``make reliability`` (``python -m tests.reliability.matrix --full``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from amlretrain.emulator import Faults
from tests.reliability.matrix import KNOWN_BUGS, SUBSET, Rig, run_case

pytestmark = pytest.mark.integration


CASES = [
    pytest.param(s, f, id=f"{s}/{f}", marks=pytest.mark.xfail(reason=KNOWN_BUGS[s, f], strict=True))
    if (s, f) in KNOWN_BUGS
    else pytest.param(s, f, id=f"{s}/{f}")
    for s, f in SUBSET
]


@pytest.mark.parametrize(("step", "fault"), CASES)
def test_a_fault_leaves_a_consistent_target_and_a_truthful_ledger(
    rig: Rig, faults: Faults, tmp_path: Path, step: str, fault: str
) -> None:
    row = run_case(rig, step, fault, tmp_path)
    assert row.outcome != "BUG", row.detail
    assert row.consistent, row.notes
    assert row.ledger_truthful, row.notes
    assert row.submits <= 1
    assert row.blobs_kept
    assert row.cancelled is not False, "the job was left running after the deadline"
