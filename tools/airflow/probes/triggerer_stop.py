"""How long each component of the real stack takes to stop on SIGTERM, and the triggerer
after it ran triggers (evidence for tools/airflow/NOTES.md, "The test suite's time").

Uses the test harness (tests/airflow/harness.py: an Airflow home, the stack, the
emulator's classic endpoints); run from the repository root::

    PYTHONPATH=. .venv-airflow/bin/python tools/airflow/probes/triggerer_stop.py [ROUNDS]

Each round triggers ``aml_wait`` (one deferrable retrain, its job made to last 5 s), waits
for its success, stops the triggerer with SIGTERM (to its process group, as
``Stack.stop`` does, then to its main process only, alternately), prints how long it took
to exit, and starts a new one. Then every component gets SIGTERM at once, and each one's
exit time is printed. Everything started here is stopped before exit, also on error.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path

from amlretrain.cli._emulator_config import emulator_environment
from tests.airflow.harness import AirflowHome, Stack, classic_endpoints, fleet_config
from tests.integration.conftest import shared_emulator


def stop_triggerer(stack: Stack, to_group: bool) -> float:
    proc = stack.procs.pop("triggerer")
    t0 = time.monotonic()
    if to_group:
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    took = time.monotonic() - t0
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything left of its group
    return took


def main(rounds: int) -> None:
    with shared_emulator() as emu, tempfile.TemporaryDirectory() as tmp:
        env = emulator_environment(emu.info)
        airflow = Path(sys.executable).with_name("airflow")
        home = AirflowHome(Path(tmp), airflow, {"conn_type": "amlretrain", "extra": {"env": env}})
        home.cli("db", "migrate", timeout=180)
        stack = Stack(home)
        try:
            for name in Stack.COMPONENTS:
                stack.start(name)
            stack.wait_healthy()
            stack.wait_parsed("aml_wait")
            emu.faults.add("bes.submit", "job_slow", seconds=5, count=None)
            with classic_endpoints(emu, 1, prefix="ts") as (endpoint,):
                config = fleet_config(emu, Path(tmp), [(endpoint, None)])
                for i in range(rounds):
                    conf = {"config": str(config), "targets": [endpoint]}
                    run_id = stack.trigger("aml_wait", conf)
                    state = stack.wait_run("aml_wait", run_id, 120)
                    to_group = i % 2 == 0
                    took = stop_triggerer(stack, to_group)
                    fact = {"round": i, "run": state, "sigterm_to": "group" if to_group else "main"}
                    print(json.dumps({**fact, "triggerer_exit_s": round(took, 1)}), flush=True)
                    stack.start("triggerer")
                    stack.wait_healthy()
            procs, stack.procs = stack.procs, {}
            t0 = time.monotonic()
            for proc in procs.values():
                os.killpg(proc.pid, signal.SIGTERM)
            exits: dict[str, float] = {}
            while len(exits) < len(procs) and time.monotonic() - t0 < 60:
                for name, proc in procs.items():
                    if name not in exits and proc.poll() is not None:
                        exits[name] = round(time.monotonic() - t0, 1)
                time.sleep(0.1)
            for proc in procs.values():
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # anything left of its group
            print(json.dumps({"all_at_once_exit_s": exits}), flush=True)
        finally:
            stack.stop_all()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
