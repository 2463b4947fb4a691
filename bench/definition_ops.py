"""Load, rewrite, diff and save of a 3 MB definition vs json.load + hand edit + json.dump.

amlretrain: ``WebServiceDefinition.load``, ``with_trained_model``, ``diff``, ``save``.
Baseline: ``json.load``, set ``properties.assets.asset1.locationInfo.uri`` by hand,
``json.dump``. Times are medians of interleaved runs; peak memory is measured with
tracemalloc in separate passes (tracemalloc slows everything it traces).
"""

from __future__ import annotations

import gc
import json
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from bench import Report, Row, median
from bench.patch_bytes import grown_definition

NAME = "definition_ops"
TITLE = "load, rewrite, diff and save of a 3 MB definition"
DEFINITION = "predictive_definition.json"
NEW_URI = "https://acct.blob.core.windows.net/models/retrained/model.ilearner"


def _ours(source: Path, target: Path) -> None:
    from amlretrain.studio.definition import WebServiceDefinition

    definition = WebServiceDefinition.load(source)
    new = definition.with_trained_model(NEW_URI)
    patch = definition.diff(new)
    if len(list(patch)) != 2:
        raise RuntimeError("the rewrite should be [test, replace]")
    new.save(target)


def _by_hand(source: Path, target: Path) -> None:
    with open(source, encoding="utf-8") as handle:
        doc: Any = json.load(handle)
    doc["properties"]["assets"]["asset1"]["locationInfo"]["uri"] = NEW_URI
    with open(target, "w", encoding="utf-8") as handle:
        json.dump(doc, handle, indent=2)


def _timed(work: Callable[[Path, Path], None], source: Path, target: Path) -> float:
    gc.collect()
    started = time.perf_counter()
    work(source, target)
    return time.perf_counter() - started


def _peak(work: Callable[[Path, Path], None], source: Path, target: Path) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        work(source, target)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run(quick: bool) -> Report:
    """Time and trace both ways on the same file, interleaved."""
    import amlretrain.studio.definition
    import amlretrain.studio.ilearner  # noqa: F401  (import time belongs to benchmark 'startup')

    size = (100 if quick else 3 * 1024) * 1024
    reps = 2 if quick else 7
    report = Report(name=NAME, title=TITLE if not quick else "the same, 100 KB definition")
    raw = (resources.files("amlretrain.emulator") / "data" / DEFINITION).read_text()
    doc = grown_definition(size, json.loads(raw))
    ours: list[float] = []
    hand: list[float] = []
    with tempfile.TemporaryDirectory(prefix="amlretrain-bench-") as tmp:
        source = Path(tmp) / "export.json"
        source.write_text(json.dumps(doc, indent=2), encoding="utf-8")
        file_size = source.stat().st_size
        _ours(source, Path(tmp) / "warm.json")  # warm caches (attrs classes, converters)
        for rep in range(reps):
            pair = [(_ours, ours), (_by_hand, hand)]
            for work, into in pair if rep % 2 == 0 else reversed(pair):
                into.append(_timed(work, source, Path(tmp) / "out.json"))
        peak_ours = median(_peak(_ours, source, Path(tmp) / "out.json") for _ in range(2))
        peak_hand = median(_peak(_by_hand, source, Path(tmp) / "out.json") for _ in range(2))
    t_ours, t_hand = median(ours), median(hand)
    report.rows.append(
        Row(
            what=f"time, {file_size / 1024 / 1024:.2f} MB file",
            figure=f"{t_ours * 1000:.0f} ms",
            baseline=f"{t_hand * 1000:.0f} ms",
            ratio=t_ours / t_hand,
            target="<= 3x",
            passed=t_ours / t_hand <= 3,
        )
    )
    report.rows.append(
        Row(
            what="peak memory (tracemalloc)",
            figure=f"{peak_ours / 1024 / 1024:.1f} MB",
            baseline=f"{peak_hand / 1024 / 1024:.1f} MB",
            ratio=peak_ours / peak_hand,
            target="<= 3x",
            passed=peak_ours / peak_hand <= 3,
        )
    )
    report.notes.append(
        f"medians of {reps} interleaved runs; amlretrain includes diff() (the baseline has "
        "no diff); both write indented JSON"
    )
    return report
