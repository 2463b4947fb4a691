"""``amlretrain --help`` and ``python -c "import amlretrain"`` vs ``import requests``.

Wall time of fresh subprocesses (the venv's interpreter and console script), the three
commands interleaved round-robin, many repetitions, medians.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench import Report, Row, median

NAME = "startup"
TITLE = "CLI and import start-up time"


def _wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def run(quick: bool) -> Report:
    """Run the three commands round-robin and compare medians."""
    python = sys.executable
    script = Path(python).parent / "amlretrain"
    commands = {
        "amlretrain --help": [str(script), "--help"],
        'python -c "import amlretrain"': [python, "-c", "import amlretrain"],
        'python -c "import requests"': [python, "-c", "import requests"],
    }
    reps = 3 if quick else 25
    times: dict[str, list[float]] = {name: [] for name in commands}
    for command in commands.values():  # warm the page cache and .pyc files
        _wall(command)
    for _ in range(reps):
        for name, command in commands.items():
            times[name].append(_wall(command))
    base_name = 'python -c "import requests"'
    base = median(times[base_name])
    report = Report(name=NAME, title=TITLE)
    for name in list(commands)[:2]:
        value = median(times[name])
        report.rows.append(
            Row(
                what=name,
                figure=f"{value * 1000:.0f} ms",
                baseline=f"{base * 1000:.0f} ms",
                ratio=value / base,
                target="<= 1.5x",
                passed=value / base <= 1.5,
            )
        )
    report.notes.append(
        f"medians of {reps} round-robin runs of fresh processes (baseline: {base_name})"
    )
    return report
