"""The crash-consistency matrix: the real CLI killed, interrupted, starved and raced.

Each case runs ``python -m amlretrain retrain --config F`` as a subprocess against the
emulator of this process (one target: the seeded ARM web service or the classic
endpoint), injects one fault, then runs ``amlretrain reconcile --config F`` (a subprocess
too) and judges ONLY from the emulator's own state (``emu.state``: what each service
really references, each job's status; the request log) and from the ledger file:

* **exit**: the documented exit code (0, 4, 8, 12, 13, 130, 143; ``-9`` for SIGKILL);
* **after run** (signals, stale reads, hung operations): what the ledger says before any
  reconcile: an outcome for a change that finished (no open intent), ``unknown`` for an
  unconfirmed one, the intent left open by a second signal;
* **truth**: after reconcile, the ledger's last outcome names what the emulator serves
  (the model served before the run when there is no outcome);
* **closed**: after reconcile, ``Ledger(path).pending() == []``;
* **jobs**: every training job the case created is ``Finished`` or ``Cancelled`` in the
  emulator's state, or listed by reconcile under its run;
* **once**: no job started twice (one ``bes.start`` per job id), one submit per run, and
  reconcile neither submits, starts nor changes anything;
* **untouched**: when the exit code is 4, no write reached a target, no job was
  submitted, and the emulator serves what it served before;
* **cancelled**: a signal during the job wait left the job ``Cancelled``.

The exchanges of a retrain (``ARM_STEPS``, ``CLASSIC_STEPS``) are each HTTP request of a
clean run, a polling series counting once (its first request); a route that comes back
at another step (``arm.get``: the check, the re-read under the lease, which is the pin,
and the final verify read) is reached with the fault's ``skip``. The ``baseline`` cases check that
list against a clean run.

Run as ``python -m tests.reliability.crash --full --out docs/reliability.md`` (or
``--subset``); ``tests/reliability/test_crash_matrix.py`` runs :data:`SUBSET` through the
same code.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs

from amlretrain.blobs import BlobRef
from amlretrain.cli._emulator_config import emulator_environment
from amlretrain.emulator import Emulator
from amlretrain.emulator._server import LoggedRequest
from amlretrain.emulator.state import ci_get, trained_model_asset
from amlretrain.ledger import Ledger, LedgerEntry, strip_sas
from amlretrain.storage import BlobStore

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "amlretrain" / "emulator" / "data"

#: Timings of the generated retrain.toml (seconds).
POLLING_INTERVAL = 0.05
VERIFY_TIMEOUT = 2.0
INTERRUPT_GRACE = 5.0
TRAINING_TIMEOUT = 60.0
OPERATION_TIMEOUT = 30.0
#: operation_timeout of the never-ending-operation case.
HANG_TIMEOUT = 2.0
#: How long reads stay stale in the stale cases (longer than VERIFY_TIMEOUT).
STALE_SECONDS = VERIFY_TIMEOUT + 2.5
#: A job slowed down so that a signal lands while it runs.
JOB_SLOW = 3.0
#: Latency added to the writes of the two-process cases (so that their leases overlap).
RACE_LATENCY = 1.0
#: Seconds the request log gets after a process ended (its last requests are logged).
SETTLE = 0.2
#: A CLI subprocess running longer than this is killed and its case fails.
CLI_TIMEOUT = 120.0

WRITE_ROUTES = ("arm.patch", "arm.put", "classic.patch_endpoint")
JOB_ENDS = ("Finished", "Cancelled")
PAGE = 4096  # tmpfs allocates whole pages


@attrs.frozen
class Step:
    """One distinct HTTP exchange of a retrain: its route and how many to skip first."""

    name: str
    route: str
    skip: int = 0
    job_wait: bool = False  # the training job runs right after this exchange


def _bes() -> tuple[Step, ...]:
    return (
        Step("data check: rrs.swagger", "rrs.swagger"),
        Step("bes.submit", "bes.submit"),
        Step("bes.start", "bes.start", job_wait=True),
        Step("bes.status (first poll)", "bes.status", job_wait=True),
    )


ARM_STEPS: tuple[Step, ...] = (
    Step("check: arm.get", "arm.get", 0),
    *_bes(),
    Step("lease re-read (the pin): arm.get", "arm.get", 1),
    Step("arm.patch", "arm.patch"),
    Step("arm.operation (first poll)", "arm.operation"),
    Step("verify: arm.get", "arm.get", 2),
    Step("arm.listkeys", "arm.listkeys"),
    Step("rrs.execute", "rrs.execute"),
)
CLASSIC_STEPS: tuple[Step, ...] = (
    Step("check: classic.get_service", "classic.get_service"),
    Step("check: classic.get_endpoint", "classic.get_endpoint", 0),
    *_bes(),
    Step("lease re-read (the pin): classic.get_endpoint", "classic.get_endpoint", 1),
    Step("classic.patch_endpoint", "classic.patch_endpoint"),
    Step("verify: classic.get_endpoint", "classic.get_endpoint", 2),
    Step("rrs.execute", "rrs.execute"),
)
STEPS = {"arm": ARM_STEPS, "classic": CLASSIC_STEPS}
POLLED = ("bes.status", "arm.operation")
WRITE_ROUTE = {"arm": "arm.patch", "classic": "classic.patch_endpoint"}


@attrs.frozen
class Case:
    """One crash case: a group, a target kind and what is injected where."""

    group: str  # baseline kill signal double stale hang race readonly disk torn
    kind: str  # "arm" or "classic"
    step: str = ""
    signal: str = ""
    when: str = ""
    variant: str = ""
    trial: int = 0

    @property
    def name(self) -> str:
        """A unique, readable id (``kill/arm/arm.patch/SIGKILL before``)."""
        fault = " ".join(p for p in (self.signal, self.when) if p)
        parts = [self.group, self.kind, self.step, fault, self.variant]
        if self.group == "race":
            parts.append(f"trial {self.trial + 1}")
        return "/".join(p for p in parts if p)

    @property
    def fault(self) -> str:
        """The fault, as the table shows it."""
        if self.group in ("kill", "signal", "double"):
            text = " ".join(p for p in (self.signal, self.when) if p)
            return text + (f", then {self.variant}" if self.variant else "")
        if self.group == "race":
            return f"two retrains at once{' ' + self.variant if self.variant else ''}"
        return self.variant or self.group


DISK_VARIANTS = ("full before the run", "fills at the job record", "fills at the intent",
                 "fills at the outcome")  # fmt: skip


def full_cases() -> list[Case]:
    """Every case of the crash matrix."""
    cases = [Case("baseline", k) for k in ("arm", "classic")]
    for kind, steps in STEPS.items():
        for step in steps:
            for when in ("before", "after"):
                cases.append(Case("kill", kind, step.name, "SIGKILL", when))
    for kind, steps in STEPS.items():
        for sig in ("SIGINT", "SIGTERM"):
            for step in steps:
                cases.append(Case("signal", kind, step.name, sig, "after"))
    cases += [
        Case("double", "arm", "arm.patch", "SIGINT", "after", "SIGINT at the operation poll"),
        Case(
            "double",
            "classic",
            "classic.patch_endpoint",
            "SIGTERM",
            "after",
            "SIGTERM at the verify read",
        ),
        Case("stale", "arm", "arm.patch", variant=f"stale {STALE_SECONDS:g} s"),
        Case("stale", "classic", "classic.patch_endpoint", variant=f"stale {STALE_SECONDS:g} s"),
        Case("hang", "arm", "arm.patch", variant=f"lro_hang, operation_timeout {HANG_TIMEOUT:g}"),
    ]
    for kind in ("arm", "classic"):
        cases += [Case("race", kind, trial=i) for i in range(5)]
        cases += [Case("race", kind, variant="--wait-lock 30", trial=i) for i in range(2)]
    cases.append(Case("readonly", "arm", variant="read-only ledger folder"))
    cases += [Case("disk", "arm", variant=v) for v in DISK_VARIANTS]
    cases += [Case("torn", k, variant="torn last line") for k in ("arm", "classic")]
    return cases


def find_case(name: str) -> Case:
    for case in full_cases():
        if case.name == name:
            return case
    raise KeyError(name)


#: The cases `make test` runs (tests/reliability/test_crash_matrix.py).
SUBSET_NAMES = [
    "baseline/arm",
    "baseline/classic",
    "kill/arm/arm.patch/SIGKILL before",
    "kill/arm/verify: arm.get/SIGKILL after",
    "kill/classic/bes.start/SIGKILL after",
    "kill/classic/classic.patch_endpoint/SIGKILL after",
    "signal/arm/arm.patch/SIGTERM after",
    "signal/classic/bes.status (first poll)/SIGINT after",
    "stale/classic/classic.patch_endpoint/stale 4.5 s",
    "hang/arm/arm.patch/lro_hang, operation_timeout 2",
    "race/arm/trial 1",
    "readonly/arm/read-only ledger folder",
    "torn/classic/torn last line",
]


def subset_cases() -> list[Case]:
    """The cases of :data:`SUBSET_NAMES`."""
    return [find_case(n) for n in SUBSET_NAMES]


# -- results -------------------------------------------------------------------------------

CHECKS = ("exit", "after run", "truth", "closed", "jobs", "once", "untouched", "cancelled")


@attrs.define
class Row:
    """The judged outcome of one case (a check is None where it does not apply)."""

    case: Case
    exit: str = ""
    expected_exit: str = ""
    checks: dict[str, bool | None] = attrs.field(factory=lambda: dict.fromkeys(CHECKS))
    seconds: float = 0.0
    notes: list[str] = attrs.field(factory=list)

    @property
    def ok(self) -> bool:
        """Every check that applies passed."""
        return all(v is not False for v in self.checks.values())

    def check(self, name: str, ok: bool, note: str = "") -> bool:
        """Record a check (several calls of one check: all must pass)."""
        assert name in self.checks, name
        self.checks[name] = (self.checks[name] is not False) and ok
        if not ok and note:
            self.notes.append(f"{name}: {note}")
        return ok

    def note(self, text: str) -> None:
        """Add a note."""
        self.notes.append(text)

    def summary(self) -> str:
        """One line for a failed assertion."""
        failed = [k for k, v in self.checks.items() if v is False]
        return f"{self.case.name}: failed {failed}; exit {self.exit}; " + "; ".join(self.notes)


@attrs.frozen
class Ran:
    """A finished CLI subprocess: its exit code, output and request-log window."""

    args: tuple[str, ...]
    rc: int
    out: str
    err: str
    seconds: float
    start: int
    end: int

    def json(self) -> Any:
        """Its stdout as JSON (None if it is not)."""
        try:
            return json.loads(self.out)
        except ValueError:
            return None


@attrs.define
class Context:
    """One case's files and the emulator's state before it."""

    workdir: Path
    config: Path
    ledger: Path
    before: str | None
    jobs_before: frozenset[str]
    start: int
    runs: int = 0
    rans: list[Ran] = attrs.field(factory=list)


def _short(url: str | None) -> str:
    """The last two path parts of a model URL (enough to tell models apart)."""
    if not url:
        return str(url)
    return "/".join(url.rstrip("/").split("/")[-2:])


# -- the rig -------------------------------------------------------------------------------

_MOUNT_PROBE: bool | None = None


def can_mount() -> bool:
    """True when ``unshare -m`` may mount here (root with CAP_SYS_ADMIN)."""
    global _MOUNT_PROBE
    if _MOUNT_PROBE is None:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                probe = subprocess.run(
                    ["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$0"', tmp],
                    capture_output=True,
                    timeout=20,
                )
                _MOUNT_PROBE = probe.returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                _MOUNT_PROBE = False
    return _MOUNT_PROBE


#: Installed (as sitecustomize) in CLI subprocesses when mounting is refused: the ledger
#: folder is made read-only, or full, for this process only.
_SITECUSTOMIZE = """
import errno, os
_DIR = os.environ.get("CRASH_LEDGER_DIR", "")
_MODE = os.environ.get("CRASH_LEDGER_FAULT", "")
if _DIR and _MODE:
    _open, _write, _fds = os.open, os.write, {}
    _WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND

    def _inside(path):
        try:
            p = os.path.abspath(os.fsdecode(path))
        except TypeError:
            return False
        return p == _DIR or p.startswith(_DIR + os.sep)

    def open(path, flags, mode=0o777, *, dir_fd=None):
        if dir_fd is None and flags & _WRITING and _inside(path):
            if _MODE == "readonly":
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
            fd = _open(path, flags, mode)
            _fds[fd] = os.fsdecode(path)
            return fd
        return _open(path, flags, mode, dir_fd=dir_fd)

    def write(fd, data):
        if fd in _fds:
            room = int(_MODE.partition(":")[2] or 0) - os.fstat(fd).st_size
            if room <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return _write(fd, bytes(data)[:room])
        return _write(fd, data)

    _close = os.close

    def close(fd):
        _fds.pop(fd, None)
        return _close(fd)

    os.open, os.write, os.close = open, write, close
"""


class CrashRig:
    """Runs crash cases against ``emu`` in folders under ``root``.

    Args:
        emu: a started, seeded emulator (its delays scaled down).
        root: where each case gets its folder.
        mounts: use ``unshare -m`` mounts for the ledger-folder cases (default: when
            they work here); False injects EROFS/ENOSPC in the CLI process instead.
    """

    def __init__(self, emu: Emulator, root: Path, *, mounts: bool | None = None) -> None:
        self.emu = emu
        self.info = emu.info
        self.root = root
        self.mounts = can_mount() if mounts is None else mounts
        self.env = {
            **os.environ,
            **emulator_environment(self.info),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.store = BlobStore.from_connection_string(self.info.storage_connection_string)
        self._count = 0
        self._sizes: dict[str, list[tuple[str, int]]] = {}

    # -- the emulator's own state ---------------------------------------------------------

    def served(self, kind: str) -> str | None:
        """What the emulator's service really references now (its state), without SAS."""
        info = self.info
        state = self.emu.state
        assert state is not None
        with state.locked():
            if kind == "arm":
                key = (
                    info.subscription_id.lower(),
                    info.resource_group.lower(),
                    str(info.arm_service_name).lower(),
                )
                found = trained_model_asset(state.arm[key].properties)
                if found is None:
                    return None
                location = ci_get(found[1], "locationInfo") or {}
                uri = ci_get(location, "uri")
                return strip_sas(str(uri)) if uri else None
            ws = state.workspaces[info.workspace_id.lower()]
            svc = next(
                s for s in ws.services.values() if s.id == str(info.predictive_service).lower()
            )
            ep = next(
                e
                for e in svc.endpoints.values()
                if e.name.lower() == str(info.predictive_endpoint).lower()
            )
            for resource in ep.resources:
                if resource.get("Name") == info.predictive_resource_name:
                    location = resource.get("Location")
                    return BlobRef.from_bes(location).url if location else None
            return None

    def jobs(self) -> dict[str, str]:
        """Every batch job of the emulator and its status."""
        state = self.emu.state
        assert state is not None
        with state.lock:
            return {job_id: job.status for job_id, job in state.jobs.items()}

    def stale_over(self, kind: str, timeout: float = 30.0) -> None:
        """Wait until the emulator's stale view of the target has expired."""
        info = self.info
        state = self.emu.state
        assert state is not None
        if kind == "arm":
            key: tuple[str, ...] = (
                "arm",
                info.subscription_id.lower(),
                info.resource_group.lower(),
                str(info.arm_service_name).lower(),
            )
        else:
            key = (
                "classic",
                info.workspace_id.lower(),
                str(info.predictive_service).lower(),
                str(info.predictive_endpoint),
            )
        deadline = time.monotonic() + timeout
        while state.stale(key) is not None and time.monotonic() < deadline:
            time.sleep(0.05)

    def route(self, request: LoggedRequest) -> str:
        """The route name of a logged request."""
        found = self.emu._server.router.match(request.method, request.path)  # type: ignore[union-attr]
        return found[0].name if isinstance(found, tuple) else "unknown"

    def window(self, start: int, end: int | None = None) -> list[tuple[str, LoggedRequest]]:
        """The (route, request) pairs logged between ``start`` and ``end``."""
        return [(self.route(r), r) for r in self.emu.requests[start:end]]

    # -- files ----------------------------------------------------------------------------

    def config_text(
        self,
        kind: str,
        ledger: Path,
        *,
        operation_timeout: float = OPERATION_TIMEOUT,
        verify_timeout: float = VERIFY_TIMEOUT,
    ) -> str:
        """A retrain.toml for one target of the emulator, with short timings."""
        info = self.info
        rows = json.loads((DATA / "score_rows.json").read_text())
        q = json.dumps
        sample_rows = ", ".join("[" + ", ".join(q(str(v)) for v in r) + "]" for r in rows["Values"])
        lines = [
            "# written by tests/reliability/crash.py",
            f"interrupt_grace = {INTERRUPT_GRACE}",
            "concurrency = 1",
            "",
            "[training]",
            f"api_location = {q(info.training_endpoint_api_location)}",
            'api_key_env = "AMLRETRAIN_TRAINING_API_KEY"',
            f"data = {q(str(DATA / 'census_new.csv'))}",
            'input = "input1"',
            'model_output = "output1"',
            'evaluation_output = "output2"',
            f"timeout = {TRAINING_TIMEOUT}",
            "",
            "[storage]",
            'connection_string_env = "AMLRETRAIN_STORAGE_CONNECTION_STRING"',
            "",
            "[gate]",
            "thresholds = { AUC = 0.7 }",
            "",
            "[ledger]",
            f"path = {q(str(ledger))}",
            "",
            "[sample]",
            "columns = [" + ", ".join(q(c) for c in rows["ColumnNames"]) + "]",
            f"rows = [{sample_rows}]",
            "",
            "[[targets]]",
        ]
        if kind == "arm":
            lines += [
                'kind = "arm"',
                f"subscription_id = {q(info.subscription_id)}",
                f"resource_group = {q(info.resource_group)}",
                f"name = {q(info.arm_service_name)}",
                f"arm_base_url = {q(info.arm_base_url)}",
                'arm_token_env = "AMLRETRAIN_ARM_TOKEN"',
                f"polling_interval = {POLLING_INTERVAL}",
                f"operation_timeout = {operation_timeout}",
                f"verify_timeout = {verify_timeout}",
            ]
        else:
            lines += [
                'kind = "classic"',
                f"workspace_id = {q(info.workspace_id)}",
                'token_env = "AMLRETRAIN_WORKSPACE_TOKEN"',
                f"management_url = {q(info.management_url)}",
                f"web_service_id = {q(info.predictive_service)}",
                f"endpoint = {q(info.predictive_endpoint)}",
                f"resource_name = {q(info.predictive_resource_name)}",
                f"verify_timeout = {verify_timeout}",
            ]
        return "\n".join(lines) + "\n"

    def context(self, case: Case, *, ledger: Path | None = None, **config: Any) -> Context:
        """A fresh folder with a retrain.toml; the emulator's state before the case."""
        self._count += 1
        slug = re.sub(r"[^A-Za-z0-9]+", "-", case.name).strip("-")[:70]
        workdir = self.root / f"{self._count:03d}-{slug}"
        workdir.mkdir(parents=True)
        ledger = ledger or workdir / "ledger.jsonl"
        path = workdir / "retrain.toml"
        path.write_text(self.config_text(case.kind, ledger, **config), encoding="utf-8")
        return Context(
            workdir=workdir,
            config=path,
            ledger=ledger,
            before=self.served(case.kind),
            jobs_before=frozenset(self.jobs()),
            start=len(self.emu.requests),
        )

    # -- subprocesses ---------------------------------------------------------------------

    def spawn(
        self,
        args: Sequence[str],
        *,
        cwd: Path,
        prefix: Sequence[str] = (),
        env: dict[str, str] | None = None,
        gated: bool = False,
    ) -> subprocess.Popen[str]:
        """Start ``python -m amlretrain ARGS`` (after ``prefix``, e.g. ``unshare ...``).

        ``gated``: the process waits for a line on its stdin before it execs Python (its
        pid stays the same), so that faults naming the pid are in place before its first
        request; :meth:`release` lets it go.
        """
        command = [*prefix, sys.executable, "-m", "amlretrain", *args]
        if gated:
            command = ["sh", "-c", 'read _ && exec "$@"', "sh", *command]
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env or self.env,
            stdin=subprocess.PIPE if gated else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @staticmethod
    def release(proc: subprocess.Popen[str]) -> None:
        """Let a gated process go."""
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.close()
        proc.stdin = None  # communicate() must not flush it again

    def finish(self, proc: subprocess.Popen[str], start: int, began: float) -> Ran:
        """Wait for ``proc`` (killing it, by its pid, after :data:`CLI_TIMEOUT`)."""
        try:
            out, err = proc.communicate(timeout=CLI_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err += f"\n[crash matrix: killed after {CLI_TIMEOUT:g} s]"
        # The emulator logs a request when it is done with it: after a SIGKILL fault it
        # waits for the process to be gone first. Let such requests land in this window.
        time.sleep(SETTLE)
        args = proc.args if isinstance(proc.args, list) else [str(proc.args)]
        return Ran(
            args=tuple(str(a) for a in args),
            rc=proc.returncode,
            out=out,
            err=err,
            seconds=time.monotonic() - began,
            start=start,
            end=len(self.emu.requests),
        )

    def cli(self, args: Sequence[str], ctx: Context, **kw: Any) -> Ran:
        """Run ``amlretrain ARGS`` to its end."""
        start, began = len(self.emu.requests), time.monotonic()
        proc = self.spawn(args, cwd=ctx.workdir, **kw)
        if kw.get("gated"):
            self.release(proc)
        return self.keep(ctx, self.finish(proc, start, began))

    @staticmethod
    def keep(ctx: Context, ran: Ran) -> Ran:
        """Save a subprocess's command, exit code and output in the case's folder."""
        done = len(list(ctx.workdir.glob("*.log")))
        command = next((a for a in ran.args if a in _COMMANDS), "cli")
        text = f"$ {' '.join(ran.args)}\nexit {ran.rc} after {ran.seconds:.2f} s\n"
        text += f"--- stdout\n{ran.out}\n--- stderr\n{ran.err}\n"
        (ctx.workdir / f"{done + 1:02d}-{command}.log").write_text(text, encoding="utf-8")
        ctx.rans.append(ran)
        return ran

    def retrain(self, ctx: Context, *extra: str, **kw: Any) -> Ran:
        """``amlretrain retrain --config F`` (counted as one run of the case)."""
        ctx.runs += 1
        return self.cli(["retrain", "--config", str(ctx.config), *extra], ctx, **kw)

    def reconcile(self, ctx: Context, config: Path | None = None) -> Ran:
        """``amlretrain reconcile --config F --output json``."""
        return self.cli(
            ["reconcile", "--config", str(config or ctx.config), "--output", "json"], ctx
        )

    # -- judging ----------------------------------------------------------------------------

    def judge_exit(self, row: Row, ran: Ran, expected: Sequence[int]) -> None:
        row.exit = str(ran.rc) if not row.exit else f"{row.exit}, {ran.rc}"
        row.expected_exit = "/".join(str(e) for e in expected)
        row.check("exit", ran.rc in expected, _tail(ran.err))

    def judge_untouched(self, row: Row, case: Case, ctx: Context, ran: Ran) -> None:
        """Exit 4: nothing reached a target, no job was submitted, nothing changed."""
        routes = [route for route, _ in self.window(ran.start, ran.end)]
        writes = [r for r in routes if r in WRITE_ROUTES]
        submits = routes.count("bes.submit")
        now = self.served(case.kind)
        row.check(
            "untouched",
            not writes and not submits and now == ctx.before,
            f"writes {writes}, submits {submits}, serves {_short(now)} (was {_short(ctx.before)})",
        )

    def judge_after_run(self, row: Row, case: Case, ctx: Context) -> None:
        """The ledger before any reconcile: every change that was sent has its outcome."""
        ledger = Ledger(ctx.ledger)
        pending = ledger.pending()
        entries = ledger.entries()
        now = self.served(case.kind)
        said = entries[-1].serving_model if entries else ctx.before
        row.check(
            "after run",
            not pending and said == now,
            f"open {[(p.target[:12], len(p.intents), bool(p.unknown)) for p in pending]}; "
            f"ledger says {_short(said)}, the emulator serves {_short(now)}",
        )

    def judge_common(
        self, row: Row, case: Case, ctx: Context, reconciled: Ran, *, runs: int | None = None
    ) -> None:
        """After reconcile: truth, closed, jobs, once."""
        row.check(
            "exit", reconciled.rc == 0, f"reconcile exit {reconciled.rc}: {_tail(reconciled.err)}"
        )
        for ran in ctx.rans:  # exit 4 means: nothing was changed
            command = next((a for a in ran.args if a in _COMMANDS), "")
            if ran.rc == 4 and command in ("retrain", "deploy", "rollback"):
                sent = [
                    route
                    for route, _ in self.window(ran.start, ran.end)
                    if route in (*WRITE_ROUTES, "bes.submit")
                ]
                row.check("untouched", not sent, f"{command} exited 4 after sending {sent}")
        ledger = Ledger(ctx.ledger)
        entries = ledger.entries()
        now = self.served(case.kind)
        last = entries[-1] if entries else None
        said = last.serving_model if last is not None else ctx.before
        row.check(
            "truth",
            said == now and (last is None or not last.is_unknown),
            f"the ledger says {_short(said)} ({last.outcome if last else 'no outcome'}), "
            f"the emulator serves {_short(now)}",
        )
        pending = ledger.pending()
        row.check("closed", not pending, f"still open: {[p.target for p in pending]}")
        report = reconciled.json() or {}
        listed = {j.get("job_id") for j in report.get("jobs", []) if j.get("run_id")}
        idless = [j for j in report.get("jobs", []) if not j.get("job_id") and j.get("run_id")]
        jobs = {k: v for k, v in self.jobs().items() if k not in ctx.jobs_before}
        stray = {
            k: v
            for k, v in jobs.items()
            if v not in JOB_ENDS and k not in listed and not (v == "NotStarted" and idless)
        }
        row.check("jobs", not stray, f"not accounted for: {stray}")
        window = self.window(ctx.start, reconciled.end)
        starts = Counter(
            r.path.rstrip("/").split("/")[-2] for route, r in window if route == "bes.start"
        )
        submits = sum(1 for route, _ in window if route == "bes.submit")
        by_reconcile = [
            route
            for route, _ in self.window(reconciled.start, reconciled.end)
            if route in (*WRITE_ROUTES, "bes.submit", "bes.start")
        ]
        twice = {k: v for k, v in starts.items() if v > 1}
        allowed = ctx.runs if runs is None else runs
        row.check(
            "once",
            not twice and submits <= allowed and not by_reconcile,
            f"started twice {twice}; {submits} submits for {allowed} run(s); "
            f"reconcile sent {by_reconcile}",
        )

    # -- the cases ----------------------------------------------------------------------------

    def run_case(self, case: Case) -> Row:
        """Run one case and judge it."""
        self.emu.faults.clear()
        row = Row(case)
        began = time.monotonic()
        try:
            handler = getattr(self, "_" + case.group)
            handler(case, row)
        except Exception as err:  # the harness must report, not stop the matrix
            row.check("exit", False, f"harness error {type(err).__name__}: {err}")
        finally:
            self.emu.faults.clear()
            row.seconds = time.monotonic() - began
        return row

    def _baseline(self, case: Case, row: Row) -> None:
        ctx = self.context(case)
        ran = self.retrain(ctx)
        self.judge_exit(row, ran, [0])
        seen = exchanges(self.window(ran.start, ran.end))
        declared = [s.route for s in STEPS[case.kind]]
        row.check("after run", seen == declared, f"exchanges {seen} != declared {declared}")
        self.judge_after_run(row, case, ctx)
        self.judge_common(row, case, ctx, self.reconcile(ctx))

    def _step(self, case: Case) -> Step:
        return next(s for s in STEPS[case.kind] if s.name == case.step)

    def _kill(self, case: Case, row: Row) -> None:
        self._faulted(case, row)

    def _signal(self, case: Case, row: Row) -> None:
        self._faulted(case, row)

    def _faulted(self, case: Case, row: Row) -> None:
        step = self._step(case)
        ctx = self.context(case)
        signalled = case.signal != "SIGKILL"
        if signalled and step.job_wait:
            self.emu.faults.add(route="bes.start", kind="job_slow", seconds=JOB_SLOW)
        ctx.runs += 1
        start, began = len(self.emu.requests), time.monotonic()
        proc = self.spawn(["retrain", "--config", str(ctx.config)], cwd=ctx.workdir, gated=True)
        fault = self.emu.faults.add(
            route=step.route,
            kind="kill",
            pid=proc.pid,
            signal=case.signal,
            when=case.when,
            skip=step.skip,
        )
        self.release(proc)
        ran = self.keep(ctx, self.finish(proc, start, began))
        self.emu.faults.clear()
        if not fault.fired:
            row.note("the fault never fired")
        expected = {"SIGKILL": -9, "SIGINT": 130, "SIGTERM": 143}[case.signal]
        self.judge_exit(row, ran, [expected])
        row.check("exit", fault.fired > 0, "the fault never fired")
        if signalled:
            self.judge_after_run(row, case, ctx)
            if step.job_wait:
                mine = {k: v for k, v in self.jobs().items() if k not in ctx.jobs_before}
                row.check(
                    "cancelled",
                    bool(mine) and all(v == "Cancelled" for v in mine.values()),
                    f"jobs {mine}",
                )
        self.judge_common(row, case, ctx, self.reconcile(ctx))

    def _double(self, case: Case, row: Row) -> None:
        ctx = self.context(case)
        ctx.runs += 1
        start, began = len(self.emu.requests), time.monotonic()
        proc = self.spawn(["retrain", "--config", str(ctx.config)], cwd=ctx.workdir, gated=True)
        write = WRITE_ROUTE[case.kind]
        first = self.emu.faults.add(
            route=write, kind="kill", pid=proc.pid, signal=case.signal, when="after"
        )
        if case.kind == "arm":
            second = self.emu.faults.add(
                route="arm.operation", kind="kill", pid=proc.pid, signal=case.signal, when="before"
            )
        else:
            second = self.emu.faults.add(
                route="classic.get_endpoint",
                kind="kill",
                pid=proc.pid,
                signal=case.signal,
                when="before",
                skip=2,  # the check, the re-read under the lease (the pin), then the verify
            )
        self.release(proc)
        ran = self.keep(ctx, self.finish(proc, start, began))
        self.emu.faults.clear()
        expected = {"SIGINT": 130, "SIGTERM": 143}[case.signal]
        self.judge_exit(row, ran, [expected])
        row.check("exit", bool(first.fired and second.fired), "a signal was never sent")
        ledger = Ledger(ctx.ledger)
        opened = [p for p in ledger.pending() if p.intents]
        row.check("after run", bool(opened), "the second signal left no open intent")
        self.judge_common(row, case, ctx, self.reconcile(ctx))

    def _stale(self, case: Case, row: Row) -> None:
        ctx = self.context(case)
        self.emu.faults.add(route=WRITE_ROUTE[case.kind], kind="stale", seconds=STALE_SECONDS)
        ran = self.retrain(ctx)
        self.judge_exit(row, ran, [12])
        entries = Ledger(ctx.ledger).entries()
        row.check(
            "after run",
            bool(entries) and entries[-1].is_unknown,
            f"last outcome {entries[-1].outcome if entries else None}, not unknown",
        )
        self.stale_over(case.kind)
        self.judge_common(row, case, ctx, self.reconcile(ctx))
        entries = Ledger(ctx.ledger).entries()
        row.check(
            "truth",
            bool(entries) and entries[-1].reconciled and entries[-1].outcome == "succeeded",
            f"reconcile recorded {entries[-1].outcome if entries else None}",
        )

    def _hang(self, case: Case, row: Row) -> None:
        ctx = self.context(case, operation_timeout=HANG_TIMEOUT)
        self.emu.faults.add(route="arm.patch", kind="lro_hang")
        ran = self.retrain(ctx)
        self.judge_exit(row, ran, [13])
        quick = HANG_TIMEOUT + 15
        row.check("exit", ran.seconds < quick, f"took {ran.seconds:.1f} s (> {quick:g} s)")
        entries = Ledger(ctx.ledger).entries()
        row.check(
            "after run",
            bool(entries) and entries[-1].is_unknown,
            f"last outcome {entries[-1].outcome if entries else None}, not unknown",
        )
        self.judge_common(row, case, ctx, self.reconcile(ctx))
        entries = Ledger(ctx.ledger).entries()
        row.check(
            "truth",
            bool(entries) and entries[-1].serving_model == ctx.before,
            "reconcile did not record the previous model",
        )

    def _race(self, case: Case, row: Row) -> None:
        ctx = self.context(case)
        wait = ["--wait-lock", "30"] if case.variant else []
        self.emu.faults.add(
            route=WRITE_ROUTE[case.kind], kind="latency", seconds=RACE_LATENCY, count=None
        )
        seen: list[str | None] = [ctx.before]
        stop = threading.Event()

        def watch() -> None:  # the sequence of models the emulator served
            while not stop.is_set():
                now = self.served(case.kind)
                if now != seen[-1]:
                    seen.append(now)
                time.sleep(0.005)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        start, began = len(self.emu.requests), time.monotonic()
        args = ["retrain", "--config", str(ctx.config), "--output", "json", *wait]
        procs = [self.spawn(args, cwd=ctx.workdir, gated=True) for _ in range(2)]
        for p in procs:
            self.release(p)
        rans = [self.keep(ctx, self.finish(p, start, began)) for p in procs]
        ctx.runs = 2
        self.emu.faults.clear()
        time.sleep(0.05)
        stop.set()
        watcher.join()
        codes = sorted(r.rc for r in rans)
        row.exit = ", ".join(str(r.rc) for r in rans)
        allowed = [[0, 0]] if wait else [[0, 0], [0, 8]]
        row.expected_exit = " or ".join(", ".join(map(str, a)) for a in allowed)
        row.check("exit", codes in allowed, "; ".join(_tail(r.err) for r in rans if r.rc))
        ledger = Ledger(ctx.ledger)
        entries = ledger.entries()
        intents = ledger.intents()
        successes = [e for e in entries if e.outcome == "succeeded" and e.action == "deploy"]
        pairs = list(itertools.pairwise(seen))
        claimed = [(e.previous_model, e.new_model) for e in successes]
        row.check(
            "truth",
            claimed == pairs,
            f"successes {[(_short(a), _short(b)) for a, b in claimed]}, the emulator went "
            f"{' -> '.join(_short(s) for s in seen)}",
        )
        writes = [route for route, _ in self.window(start) if route in WRITE_ROUTES]
        row.check(
            "untouched",
            len(writes) == len(intents),
            f"{len(writes)} writes, {len(intents)} intents",
        )
        for ran in rans:
            if ran.rc == 8:
                model = (ran.json() or {}).get("model")
                named = [i for i in intents if i.new_model == model]
                row.check(
                    "untouched",
                    bool(model) and model not in seen and not named,
                    f"the loser's model {_short(model)}: served {model in seen}, intents {len(named)}",
                )
        row.note(f"exits {row.exit}; successes {len(successes)}")
        self.judge_after_run(row, case, ctx)
        self.judge_common(row, case, ctx, self.reconcile(ctx), runs=2)

    def _starved(
        self, case: Case, row: Row, mode: str, *, limit: int = 0, reserve: bool = False,
        padding: bytes = b"",
    ) -> tuple[Context, Ran, Path]:  # fmt: skip
        """Run the retrain with its ledger folder read-only or full; returns the ledger copy."""
        folder = self.root / f"ledger-{self._count + 1:03d}"
        folder.mkdir()
        ctx = self.context(case, ledger=folder / "ledger.jsonl")
        copy = ctx.workdir / "ledger.jsonl"
        seed = ctx.workdir / "seed.jsonl"
        seed.write_bytes(padding)
        (folder / "ledger.jsonl").write_bytes(padding)
        args = ["retrain", "--config", str(ctx.config)]
        if self.mounts:
            row.note("unshare -m mounts" if mode == "readonly" else "unshare -m tmpfs")
            if mode == "readonly":
                script = (
                    'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && '
                    'shift 3 && exec "$@"'
                )
            else:
                fill = 'dd if=/dev/zero of="$1/fill" bs=4k 2>/dev/null; '
                keep = 'head -c 4096 /dev/zero > "$1/reserve" && ' if reserve else ""
                script = (
                    'mount -t tmpfs -o size=64k tmpfs "$1" || exit 99; '
                    'cp "$2" "$1/ledger.jsonl" && '
                    f'{keep}{{ {fill}true; }} && rm -f "$1/reserve"; '
                    'd="$1"; c="$3"; shift 3; "$@"; rc=$?; '
                    'cp "$d/ledger.jsonl" "$c" 2>/dev/null; exit $rc'
                )
            prefix = ["unshare", "-m", "sh", "-c", script, "sh", str(folder), str(seed), str(copy)]
            ctx.runs += 1
            ran = self.cli(args, ctx, prefix=prefix)
        else:
            what = "EROFS" if mode == "readonly" else "ENOSPC"
            row.note(f"no mounts: {what} injected in the CLI process (sitecustomize)")
            site = ctx.workdir / "site"
            site.mkdir()
            (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
            env = {
                **self.env,
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(site), self.env.get("PYTHONPATH", "")) if p
                ),
                "CRASH_LEDGER_DIR": str(folder),
                "CRASH_LEDGER_FAULT": "readonly" if mode == "readonly" else f"full:{limit}",
            }
            ctx.runs += 1
            ran = self.cli(args, ctx, env=env)
            if mode != "readonly":
                with contextlib.suppress(FileNotFoundError):
                    copy.write_bytes((folder / "ledger.jsonl").read_bytes())
        if mode == "readonly":
            copy.write_bytes((folder / "ledger.jsonl").read_bytes())
        return ctx, ran, copy

    def _readonly(self, case: Case, row: Row) -> None:
        ctx, ran, copy = self._starved(case, row, "readonly")
        self.judge_exit(row, ran, [4])
        row.check("exit", "cannot write ledger" in ran.err, _tail(ran.err))
        self.judge_untouched(row, case, ctx, ran)
        row.check("untouched", copy.read_bytes() == b"", "the read-only ledger changed")
        self._reconcile_copy(row, case, ctx, copy)

    def _disk(self, case: Case, row: Row) -> None:
        if case.variant == "full before the run":
            ctx, ran, copy = self._starved(case, row, "full", limit=0)
            self.judge_exit(row, ran, [4])
            row.check("exit", "cannot write ledger" in ran.err, _tail(ran.err))
            self.judge_untouched(row, case, ctx, ran)
            self._reconcile_copy(row, case, ctx, copy)
            return
        record = case.variant.removeprefix("fills at the ").replace(" record", "")
        sizes = self.record_sizes(case.kind)
        index = next(i for i, (kind, _) in enumerate(sizes) if kind == record)
        before = sum(size for _, size in sizes[:index])
        boundary = before + sizes[index][1] // 2
        if boundary >= PAGE:
            row.check("exit", False, f"the records before the {record} take {before} bytes")
            return
        padding = b"\n" * (PAGE - boundary)
        held = record in ("intent", "outcome")  # the lease's holder record takes a page
        ctx, ran, copy = self._starved(case, row, "full", limit=PAGE, reserve=held, padding=padding)
        row.note(f"ENOSPC while writing the {record} record")
        changed = any(route in WRITE_ROUTES for route, _ in self.window(ran.start, ran.end))
        if record == "outcome":
            # The change was made and cannot be recorded: the ledger is open; the run must
            # not claim success (exit 0) for a change it could not record.
            self.judge_exit(row, ran, [1, 12])
            row.check("untouched", changed, "no change was sent: the fill came too early")
        elif record == "job":
            self.judge_exit(row, ran, [1, 4])
            self.judge_untouched(row, case, ctx, ran)
        else:
            self.judge_exit(row, ran, [1, 4])
            row.check(
                "untouched",
                not changed and self.served(case.kind) == ctx.before,
                "a change was sent although its intent could not be written",
            )
        self._reconcile_copy(row, case, ctx, copy)

    def _reconcile_copy(self, row: Row, case: Case, ctx: Context, copy: Path) -> None:
        """Reconcile the ledger as the starved run left it, in a writable place."""
        if not copy.exists():
            copy.write_bytes(b"")
        config = ctx.workdir / "reconcile.toml"
        config.write_text(self.config_text(case.kind, copy), encoding="utf-8")
        ctx.ledger = copy
        self.judge_common(row, case, ctx, self.reconcile(ctx, config))

    def record_sizes(self, kind: str) -> list[tuple[str, int]]:
        """The (kind, bytes) of each ledger record of a clean retrain (measured once)."""
        if kind not in self._sizes:
            ctx = self.context(Case("baseline", kind, variant="record sizes"))
            ran = self.retrain(ctx)
            if ran.rc != 0:
                raise RuntimeError(f"the calibration run failed: {_tail(ran.err)}")
            sizes = []
            for line in ctx.ledger.read_bytes().splitlines():
                record = json.loads(line)
                sizes.append((str(record.get("kind")), len(line) + 1))
            self._sizes[kind] = sizes
        return self._sizes[kind]

    def _torn(self, case: Case, row: Row) -> None:
        ctx = self.context(case)
        target = "0"
        codes: list[str] = []

        def step(name: str, ran: Ran, expected: int) -> Ran:
            codes.append(f"{name} {ran.rc}")
            row.check("exit", ran.rc == expected, f"{name} exit {ran.rc}: {_tail(ran.err)}")
            return ran

        step("retrain", self.retrain(ctx), 0)
        # A change the ledger does not know, whose outcome line was torn while written:
        # deployed with another ledger, half of that outcome line appended to ours.
        other = ctx.workdir / "other.toml"
        other.write_text(self.config_text(case.kind, ctx.workdir / "other.jsonl"), encoding="utf-8")
        model = self.copy_of_served(case.kind)
        step("deploy", self.cli(["deploy", "--config", str(other), "--model", model], ctx), 0)
        line = (ctx.workdir / "other.jsonl").read_bytes().splitlines()[-1]
        data = ctx.ledger.read_bytes()
        number = data.count(b"\n") + 1
        ctx.ledger.write_bytes(data + line[: len(line) // 2])
        changed = self.served(case.kind)
        refused = step(
            "rollback", self.cli(["rollback", target, "--config", str(ctx.config)], ctx), 4
        )
        row.check(
            "exit", f"line(s) {number}" in refused.err, f"no line number: {_tail(refused.err)}"
        )
        row.check(
            "untouched",
            self.served(case.kind) == changed
            and not any(r in WRITE_ROUTES for r, _ in self.window(refused.start, refused.end)),
            "the refused rollback changed the target",
        )
        history = step("history", self.cli(["history", "--config", str(ctx.config)], ctx), 0)
        row.check(
            "exit", f"line {number}" in history.err, f"history: no warning: {_tail(history.err)}"
        )
        again = step("retrain", self.retrain(ctx), 0)
        row.check("exit", f"line {number}" in again.err, f"retrain: no warning: {_tail(again.err)}")
        lines = ctx.ledger.read_bytes().split(b"\n")
        torn = lines[number - 1]
        after = lines[number] if len(lines) > number else b""
        own_line = torn == line[: len(line) // 2] and _is_json(after)
        row.check("after run", own_line, f"line {number} is {torn[:40]!r}, then {after[:40]!r}")
        problems = Ledger(ctx.ledger).problems
        row.check(
            "after run",
            [p.line for p in problems] == [number],
            f"unreadable lines {[str(p) for p in problems]}",
        )
        back = step("rollback", self.cli(["rollback", target, "--config", str(ctx.config)], ctx), 0)
        row.check("after run", "succeeded" in back.out, f"rollback: {back.out[-200:]}")
        self.judge_common(row, case, ctx, self.reconcile(ctx))
        row.exit = ", ".join(codes)
        row.expected_exit = "retrain 0, deploy 0, rollback 4, history 0, retrain 0, rollback 0"

    def copy_of_served(self, kind: str) -> str:
        """A new model blob with the served model's bytes, with a read SAS."""
        served = self.served(kind)
        assert served is not None
        data = self.store.download_bytes(BlobRef.from_url(served))
        ref = self.store.upload(
            data,
            container="amlretrain-models",
            blob_name=f"crash/{time.monotonic_ns()}.ilearner",
        )
        return self.store.sas(ref, expires_in=timedelta(days=1)).sas_url


_COMMANDS = ("retrain", "reconcile", "deploy", "rollback", "history")


def _is_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


def _tail(text: str, size: int = 240) -> str:
    lines = [ln for ln in text.strip().splitlines() if not ln.startswith("... ")]
    return " ".join(lines)[-size:]


def exchanges(window: Sequence[tuple[str, LoggedRequest]]) -> list[str]:
    """The routes of a run, each polling series (``bes.status``, ``arm.operation``) once."""
    out: list[str] = []
    for route, _ in window:
        if route in POLLED and out and out[-1] == route:
            continue
        out.append(route)
    return out


def entries_of(ledger: Path) -> list[LedgerEntry]:
    """The outcomes of a ledger file."""
    return Ledger(ledger).entries()


# -- running and writing ---------------------------------------------------------------------


def run(
    emu: Emulator,
    cases: Sequence[Case],
    progress: Callable[[Row], None] | None = None,
    *,
    root: Path | None = None,
    mounts: bool | None = None,
) -> list[Row]:
    """Run ``cases`` against ``emu`` and return their rows."""
    rows = []
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crash-")))
        rig = CrashRig(emu, root, mounts=mounts)
        for case in cases:
            row = rig.run_case(case)
            rows.append(row)
            if progress:
                progress(row)
    return rows


def _mark(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "**NO**")


BEGIN = (
    "<!-- crash matrix: generated by `python -m tests.reliability.crash`; do not edit by hand -->"
)
END = "<!-- crash matrix: end -->"

_INTRO = """\
## Crash consistency

The write-ahead ledger, reconcile, the leases and the signal handling are tested by
killing and interrupting the real CLI. Each case runs `python -m amlretrain retrain
--config F` as a subprocess against the emulator (one target: the seeded ARM web
service or the classic endpoint; `polling_interval` {poll:g} s,
`verify_timeout` {verify:g} s, `interrupt_grace` {grace:g} s, training `timeout` {train:g} s),
injects one fault, runs `amlretrain reconcile --config F`, and judges **only from the
emulator's own state** (what the service really references, each job's status, the
request log) and the ledger file:

- **exit**: the documented exit code (SIGKILL: -9); the fault really fired.
- **after run** (before reconcile): a change that finished has its outcome (no open
  intent) after SIGINT/SIGTERM; `unknown` after a stale read or a hung operation; the
  intent stays open after a second signal; for a torn line, the next record starts on a
  line of its own and only the torn line is unreadable.
- **truth**: after reconcile, the ledger's last outcome names what the emulator serves
  (for two processes: the chain of successes, each `previousModel` the model the emulator
  served right before that swap, as watched every 5 ms).
- **closed**: after reconcile, `Ledger(path).pending() == []`.
- **jobs**: every job the case created is `Finished` or `Cancelled` in the emulator, or
  listed by reconcile under its run.
- **once**: one `bes.start` per job id, one submit per run; reconcile submits, starts and
  changes nothing.
- **untouched**: exit 4 changed nothing (no write, no submit, same model); the loser of
  two processes changed nothing (as many writes as intents; its model never served).
- **cancelled**: a signal during the job wait cancelled the job.

The exchanges of a retrain are every HTTP request of a clean run (a polling series counts
once; a route that comes back at another step, such as `arm.get` for the check, the
re-read under the lease (which is the pin) and the final verify read, is reached with the fault's
`skip`); `baseline` checks that list against a clean run. `kill` sends SIGKILL when the
request arrives (`before`: never applied) or once it is applied (`after`); `signal` sends
SIGINT or SIGTERM once it is applied (the client survives it). Ledger-folder cases run the
CLI inside `unshare -m`: a read-only bind mount, or a 64 KiB tmpfs filled up before the
run or, with the ledger padded to a page boundary, exactly when a given record is written
(where mounting is refused, EROFS/ENOSPC is injected into the CLI process instead, and the
notes say so).

Limits: only the emulator's own routes are faulted (the Azurite exchanges, upload, the
classic blob check and the evaluation download, are not); stale reads are reconciled once
the stale window is over (a service that lags longer than `verify_timeout` while reconcile
reads it is recorded as serving what it showed: the verify window is the bound the
configuration promises); a signal is sent once a request has been applied, so "during the
job wait" means right after the start or the first status poll.
"""


def render(rows: Sequence[Row], *, mode: str, seconds: float) -> str:
    """The crash-consistency section (without its markers)."""
    bad = [r for r in rows if not r.ok]
    groups = Counter(r.case.group for r in rows)
    lines = [
        _INTRO.format(
            poll=POLLING_INTERVAL,
            verify=VERIFY_TIMEOUT,
            grace=INTERRUPT_GRACE,
            train=TRAINING_TIMEOUT,
        ),
        f"Generated by `python -m tests.reliability.crash --{mode}` on "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC: {len(rows)} cases in "
        f"{seconds:.0f} s ({', '.join(f'{g} {n}' for g, n in groups.items())}).",
        "",
        f"Cases failing a check: **{len(bad)}**"
        + (": " + ", ".join(f"`{r.case.name}`" for r in bad) if bad else "."),
        "",
        "| case | target | step | fault | exit (expected) | "
        + " | ".join(CHECKS[1:])
        + " | s | notes |",
        "|---|---|---|---|---|" + "---|" * (len(CHECKS) - 1) + "---|---|",
    ]
    for r in rows:
        c = r.case
        exit_text = r.exit if r.exit == r.expected_exit else f"{r.exit} ({r.expected_exit})"
        if r.checks["exit"] is False:
            exit_text = f"**{exit_text}**"
        notes = "; ".join(r.notes).replace("|", "/").replace("\n", " ")[:300]
        lines.append(
            f"| {c.group} | {c.kind} | {c.step or '-'} | {c.fault} | {exit_text} | "
            + " | ".join(_mark(r.checks[k]) for k in CHECKS[1:])
            + f" | {r.seconds:.1f} | {notes} |"
        )
    return "\n".join(lines) + "\n"


def write(out: Path, generated: str) -> None:
    """Put ``generated`` between the markers in ``out`` (keeping everything else).

    Without markers the section goes before the fault matrix's heading (its generator
    rewrites everything after its own marker), else at the end.
    """
    text = out.read_text(encoding="utf-8") if out.exists() else "# Reliability\n\n"
    block = f"{BEGIN}\n\n{generated}\n{END}\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")
    else:
        anchor = next(
            (a for a in ("## The fault matrix", "<!-- generated below") if a in text), None
        )
        if anchor is None:
            text = text.rstrip("\n") + "\n\n" + block
        else:
            head, tail = text.split(anchor, 1)
            text = head + block + "\n" + anchor + tail
    out.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the crash matrix and write its table; exit 1 when a case fails a check."""
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.crash")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--full", action="store_true", help="every case")
    mode.add_argument("--subset", action="store_true", help="the cases make test runs")
    mode.add_argument("--only", metavar="REGEX", help="the cases whose name matches REGEX")
    mode.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--out", type=Path, help="write the section into this Markdown file")
    parser.add_argument("--keep", type=Path, help="keep every case's folder under this one")
    parser.add_argument(
        "--no-mounts", action="store_true", help="inject EROFS/ENOSPC instead of mounting"
    )
    args = parser.parse_args(argv)
    if args.list:
        for case in full_cases():
            print(case.name)
        return 0
    if args.full:
        cases, label = full_cases(), "full"
    elif args.subset:
        cases, label = subset_cases(), "subset"
    else:
        cases, label = [c for c in full_cases() if re.search(args.only, c.name)], "only"
    started = time.monotonic()

    def show(row: Row) -> None:
        flag = "ok " if row.ok else "BAD"
        print(f"{flag} {row.case.name:<64} exit {row.exit:<8} {row.seconds:5.1f}s "
              f"{'; '.join(row.notes)[:160]}", flush=True)  # fmt: skip

    with Emulator(lro_delay=0.1, job_duration=0.2) as emu:
        root = args.keep
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
            root = Path(tempfile.mkdtemp(prefix="crash-", dir=root))
        rows = run(emu, cases, show, root=root, mounts=False if args.no_mounts else None)
    generated = render(rows, mode=label, seconds=time.monotonic() - started)
    if args.out:
        write(args.out, generated)
    else:
        sys.stdout.write(generated)
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
