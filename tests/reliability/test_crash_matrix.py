"""A representative subset of the crash-consistency matrix, on every ``make test``.

Each case runs the real CLI as a subprocess, kills, interrupts, starves or races it, runs
``amlretrain reconcile`` and judges from the emulator's own state and the ledger file
(see tests/reliability/crash.py). The full matrix is ``make reliability``
(``python -m tests.reliability.crash --full --out docs/reliability.md``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from amlretrain.emulator import Emulator, Faults
from tests.reliability import matrix
from tests.reliability.crash import (
    BEGIN,
    END,
    Case,
    CrashRig,
    Row,
    find_case,
    full_cases,
    render,
    subset_cases,
    write,
)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("case", subset_cases(), ids=lambda c: c.name)
def test_after_a_crash_and_reconcile_the_ledger_names_what_the_emulator_serves(
    crash_rig: CrashRig, faults: Faults, case: Case
) -> None:
    row = crash_rig.run_case(case)
    assert row.ok, row.summary()


@pytest.mark.integration
@pytest.mark.slow
def test_without_mounts_enospc_is_injected_in_the_cli_process_and_refused_alike(
    emulator: Emulator, faults: Faults, tmp_path: Path
) -> None:
    rig = CrashRig(emulator, tmp_path, mounts=False)
    row = rig.run_case(find_case("disk/arm/full before the run"))
    assert row.ok, row.summary()
    assert any("ENOSPC injected" in n for n in row.notes)
    assert row.exit == "4"


def test_every_case_has_a_unique_name_and_the_subset_is_part_of_the_full_matrix() -> None:
    names = [c.name for c in full_cases()]
    assert len(names) == len(set(names))
    assert {c.name for c in subset_cases()} <= set(names)
    groups = {c.group for c in subset_cases()}
    assert {"kill", "signal", "stale", "hang", "race", "readonly", "torn"} <= groups


def test_the_crash_section_is_kept_apart_from_the_fault_matrix_table(tmp_path: Path) -> None:
    doc = tmp_path / "reliability.md"
    doc.write_text("# Reliability\n\nintro\n\n## The fault matrix\n\ntext\n")
    matrix.write(doc, "fault table v1\n")
    rows = [Row(Case("baseline", "arm"), exit="0", expected_exit="0")]
    write(doc, render(rows, mode="subset", seconds=1))
    matrix.write(doc, "fault table v2\n")  # rewrites what follows its own marker only
    write(doc, render(rows, mode="full", seconds=2))
    text = doc.read_text()
    assert text.count(BEGIN) == text.count(END) == 1
    assert text.count("## Crash consistency") == 1
    assert "crash --full" in text and "crash --subset" not in text
    assert "fault table v2" in text and "fault table v1" not in text
    assert text.index(END) < text.index("## The fault matrix") < text.index(matrix.MARKER)
    assert text.startswith("# Reliability\n\nintro\n")
