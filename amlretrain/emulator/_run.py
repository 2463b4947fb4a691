"""Run the emulator in the foreground (``amlretrain emulator start``) until interrupted.

The CLI calls :func:`run`; it writes what a client needs to ``stream`` (text, or JSON with
``output="json"``) and, when ``info_file`` is given, the full details *with* secrets to
that file (mode 0600), then serves until SIGINT/SIGTERM and stops everything.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any, TextIO

from amlretrain.emulator._emulator import Emulator, EmulatorInfo
from amlretrain.emulator.faults import Faults

__all__ = ["render", "run"]

log = logging.getLogger(__name__)


def render(info: EmulatorInfo, *, output: str = "text", include_secrets: bool = False) -> str:
    """The emulator's details as text lines (``name: value``) or JSON."""
    data = info.to_dict(include_secrets=include_secrets)
    if output == "json":
        return json.dumps(data, indent=2) + "\n"
    width = max(len(k) for k in data)
    lines = [f"{k.ljust(width)}  {v}" for k, v in data.items() if v is not None]
    if not include_secrets:
        lines.append("(secrets hidden: they are in the info file, or shown with --show-secrets)")
    return "\n".join(lines) + "\n"


def _write_info_file(path: Path, info: EmulatorInfo) -> None:
    data = json.dumps(info.to_dict(include_secrets=True), indent=2) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(data)


def run(
    *,
    stream: TextIO,
    seed: bool = True,
    host: str = "127.0.0.1",
    port: int = 0,
    output: str = "text",
    include_secrets: bool = False,
    info_file: str | Path | None = None,
    faults_file: str | Path | None = None,
    lro_delay: float = 0.2,
    job_duration: float = 0.5,
    stop_event: threading.Event | None = None,
) -> int:
    """Start the emulator, describe it on ``stream``, serve until a signal; return 0.

    Args:
        stream: where the description goes (the CLI passes stdout).
        seed, host, port, lro_delay, job_duration: as for :class:`Emulator`.
        output: ``text`` or ``json``.
        include_secrets: put tokens, keys and the connection string in the description.
        info_file: also write the full description (with secrets) there, mode 0600.
        faults_file: a JSON/TOML fault configuration (see :mod:`.faults`).
        stop_event: stop when set (tests); SIGINT/SIGTERM always stop.
    """
    faults = Faults.load(faults_file) if faults_file else Faults()
    stop = stop_event or threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda _s, _f: stop.set())
    try:
        with Emulator(
            seed=seed,
            host=host,
            port=port,
            faults=faults,
            lro_delay=lro_delay,
            job_duration=job_duration,
        ) as emu:
            if info_file:
                _write_info_file(Path(info_file), emu.info)
            stream.write(render(emu.info, output=output, include_secrets=include_secrets))
            stream.flush()
            while not stop.wait(0.5):
                pass
            log.info("emulator stopping")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
