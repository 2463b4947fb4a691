"""The real-Airflow harness: Apache Airflow 3.3.2 in ``.venv-airflow`` against the emulator.

Run with the Airflow venv's Python (``make test`` does, after the main run, which does not
collect this folder: ``--ignore=tests/airflow`` in pyproject's addopts)::

    .venv-airflow/bin/python -m pytest tests/airflow

That runs in two pytest-xdist worker processes (``pytest_cmdline_main`` below, unless the
command line says ``-n``, ``--dist``, ``--tx``, ``-p no:xdist`` or ``--pdb``): one runs
tests/airflow/test_stack.py on the real stack, the other every other test (``dags test``,
the unit tests) meanwhile. Most of each is waiting (jobs of 15-30 s, heartbeats, the
scheduler's loop), so two processes on two cores take about half the time of one
(tools/airflow/NOTES.md, "The test suite's time"). ``-n 0`` runs everything in this process.

What is here, all session-scoped (built once per process, stopped at the end, also on
failure; each worker has its own):

* ``emulator``: the same seeded emulator and Azurite as tests/integration (its
  ``shared_emulator``), in this process, on free ports; Airflow's processes reach it over
  loopback.
* ``airflow_home``: an :class:`AirflowHome`: ``AIRFLOW_HOME`` in a temp folder, SQLite,
  ``tests/airflow/dags`` as the DAGs folder, no example DAGs, no login
  (``SIMPLE_AUTH_MANAGER_ALL_ADMINS``: no generated admin password in any log), the
  ``amlretrain_default`` connection (the emulator's secrets, by the config's variable
  names) in the environment of the Airflow processes only, ``airflow db migrate`` once.
* ``stack``: a :class:`Stack` on that home (api-server, scheduler with LocalExecutor and
  ``parallelism`` 1, dag-processor, triggerer), started only when a test asks for it.

Without Airflow (this file run by a Python that has none) every test here skips, saying
how to make the environment, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from amlretrain.cli._emulator_config import emulator_environment
from amlretrain.emulator import Emulator
from tests.airflow.harness import AirflowHome, Stack
from tests.integration.conftest import restore_seeded_models, shared_emulator


def _airflow_bin() -> Path:
    """The ``airflow`` executable beside this Python, or skip (fail under CI=true)."""
    import importlib.util

    if importlib.util.find_spec("airflow") is None:  # not imported here: it sets up logging
        why = (
            f"no Apache Airflow in {sys.executable}: run tools/airflow/env.sh (or make"
            " airflow-env), then .venv-airflow/bin/python -m pytest tests/airflow"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    path = Path(sys.executable).with_name("airflow")
    if not path.exists():
        pytest.fail(f"airflow imports but {path} is missing: rebuild with tools/airflow/env.sh")
    return path


#: The worker processes of a default run (pytest-xdist), each with its own session fixtures.
WORKERS = 2
#: The tests that use the ``stack`` fixture: one file, so one worker and one stack (a test
#: elsewhere that asks for ``stack`` would start a second one, in the other worker).
STACK_TESTS = "tests/airflow/test_stack.py"
_BY_STACK = pytest.StashKey[bool]()


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Two workers, the stack's tests apart, unless the command line says how to run
    (``-n``, ``--dist``, ``--tx``, ``-p no:xdist``, ``--pdb``); never in a worker."""
    option = config.option
    if (
        config.pluginmanager.hasplugin("xdist")
        and not hasattr(config, "workerinput")
        and getattr(option, "numprocesses", None) is None
        and getattr(option, "dist", "no") == "no"
        and not getattr(option, "tx", None)
        and not getattr(option, "distload", False)
        and not config.getoption("usepdb", False)
    ):
        option.numprocesses = WORKERS
        option.dist = "loadscope"
        config.stash[_BY_STACK] = True


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With the default above: two scopes, :data:`STACK_TESTS` and every other test, each
    sent whole to one worker. Not xdist's own modes: ``loadfile`` gives a worker a second
    file while it has at most two tests pending, so test_dags_test.py's two and
    test_stack.py's two went to one worker (267 s); ``loadgroup`` marks a group in
    ``item._nodeid``, which pytest 9.2's node ids no longer read (xdist 3.8.0), so every
    test was its own scope and the stack's worker got a `dags test` test too."""
    if not config.stash.get(_BY_STACK, False):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByStack(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "stack" if nodeid.split("::", 1)[0] == STACK_TESTS else "no-stack"

    return ByStack(config, log)


@pytest.fixture(scope="session")
def airflow_bin() -> Path:
    """The Airflow CLI of this venv (skips, or fails under CI=true, when there is none)."""
    return _airflow_bin()


@pytest.fixture(scope="session")
def emulator(airflow_bin: Path) -> Iterator[Emulator]:
    """The seeded emulator of this session (tests/integration's), restored at the end."""
    with shared_emulator() as emu:
        try:
            yield emu
        finally:
            restore_seeded_models(emu)


@pytest.fixture(scope="session")
def airflow_home(
    airflow_bin: Path, emulator: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> AirflowHome:
    """This session's AIRFLOW_HOME, migrated, with the ``amlretrain_default`` connection."""
    connection = {"conn_type": "amlretrain", "extra": {"env": emulator_environment(emulator.info)}}
    home = AirflowHome(tmp_path_factory.mktemp("airflow-home"), airflow_bin, connection)
    home.cli("db", "migrate", timeout=180)
    return home


@pytest.fixture(autouse=True)
def _no_leftover_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fault rules a test adds to the session's emulator end with it."""
    yield
    if "emulator" in request.fixturenames:
        request.getfixturevalue("emulator").faults.clear()


@pytest.fixture(scope="session")
def stack(airflow_home: AirflowHome) -> Iterator[Stack]:
    """The session's real stack (LocalExecutor, parallelism 1, a triggerer), healthy, with
    every test DAG parsed; stopped at the end, also when a test or the start fails."""
    st = Stack(airflow_home, parallelism=1)
    try:
        for name in Stack.COMPONENTS:
            st.start(name)
        st.wait_healthy()
        yield st
    finally:
        st.stop_all()
