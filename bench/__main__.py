"""``python -m bench [NAME...] [--quick]``: run benchmarks and print their tables."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence

from bench import Report, benchmarks, render
from bench._probe import settings


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks (all by default); exit 0 even when a target is missed."""
    available = benchmarks()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(available))
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON here")
    parser.add_argument(
        "--stock-emulator",
        action="store_true",
        help="leave Nagle on in the emulator's handler (each response then stalls ~40 ms)",
    )
    parser.add_argument(
        "--fanout-count",
        type=int,
        metavar="N",
        help="endpoints of deploy_fanout's full run (default 1000)",
    )
    args = parser.parse_args(argv)
    if args.fanout_count:
        from bench import deploy_fanout

        deploy_fanout.COUNT = args.fanout_count
    settings["nodelay"] = not args.stock_emulator
    unknown = [n for n in args.names if n not in available]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {list(available)}")
    names = args.names or list(available)
    print(
        f"# amlretrain benchmarks ({'quick' if args.quick else 'full'}): "
        f"nproc {os.cpu_count()}, Python {platform.python_version()}, {platform.platform()}"
        + ("" if settings["nodelay"] else ", stock emulator (Nagle on)"),
        flush=True,
    )
    reports: list[Report] = []
    started = time.monotonic()
    for name in names:
        began = time.monotonic()
        report = available[name](args.quick)
        reports.append(report)
        print("\n" + render(report), flush=True)
        print(f"\n({name}: {time.monotonic() - began:.0f} s)", flush=True)
    misses = [(r.name, row.what) for r in reports for row in r.misses]
    print(f"\n# {len(misses)} missed target(s) in {time.monotonic() - started:.0f} s")
    for name, what in misses:
        print(f"- MISS {name}: {what}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(
                [
                    {
                        "name": r.name,
                        "title": r.title,
                        "rows": [
                            {
                                "what": row.what,
                                "figure": row.figure,
                                "baseline": row.baseline,
                                "ratio": row.ratio,
                                "target": row.target,
                                "result": row.verdict,
                            }
                            for row in r.rows
                        ],
                        "notes": r.notes,
                    }
                    for r in reports
                ],
                handle,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
