"""The fault matrix: every step of a retrain x every fault, run against the emulator.

Each case switches one fault on, runs :func:`amlretrain.workflow.retrain` against one
target, switches it off and checks what a user must be able to trust:

* the outcome is a success, a documented per-target status (``failed``/``restored``) or a
  typed :class:`~amlretrain.errors.AmlRetrainError` (anything else is a bug);
* the target is consistent: a fresh read shows the model the outcome promises (the new
  one on success, the previous one otherwise), and a scoring call returns exactly what
  that model predicts (the blob is downloaded and scored locally for comparison);
* the ledger tells the truth: its last entry's ``serving_model`` is what the target
  serves (after :func:`~amlretrain.reconcile` when the run left an outcome unknown),
  and no entry claims success for a target that does not serve its model;
* the training job was submitted at most once (``POST .../jobs`` in the request log);
* no blob was lost (the previous model and the new one still exist).

Run as ``python -m tests.reliability.matrix --full --out docs/reliability.md`` (or
``--subset``); the tests run :data:`SUBSET` through the same code.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from amlretrain.blobs import BlobRef
from amlretrain.emulator import Emulator
from amlretrain.errors import AmlRetrainError
from amlretrain.ledger import Ledger, strip_sas
from amlretrain.polling import PollPolicy
from amlretrain.reconciliation import reconcile
from amlretrain.result import STATUSES, RetrainResult
from amlretrain.storage import BlobStore
from amlretrain.studio.batch import BatchClient
from amlretrain.studio.management import ClassicClient
from amlretrain.studio.targets import ArmTarget, ClassicTarget
from amlretrain.studio.webservices import WebServicesClient
from amlretrain.targets import Sample
from amlretrain.training import Training
from amlretrain.workflow import retrain

DATA = Path(__file__).resolve().parents[2] / "amlretrain" / "emulator" / "data"

#: Read timeout of the requests-based clients (BES, classic management) in the matrix.
READ_TIMEOUT = 1.5
#: Latency injected for the "read timeout" fault (longer than READ_TIMEOUT).
LATENCY = 2.0


@attrs.frozen
class Step:
    """One step of a retrain: a name, the emulator route it uses, the target kind."""

    name: str
    route: str | None
    target: str  # "arm" or "classic"
    after_patch: bool = False  # the fault is armed only once the PATCH was sent


@attrs.frozen
class FaultSpec:
    """One fault: a name and the arguments of ``Faults.add`` (``special`` for others)."""

    name: str
    kwargs: dict[str, Any] = attrs.field(factory=dict)
    special: str | None = None


STEPS = {
    s.name: s
    for s in (
        Step("upload", None, "classic"),
        Step("bes.submit", "bes.submit", "classic"),
        Step("bes.start", "bes.start", "classic"),
        Step("bes.status", "bes.status", "classic"),
        Step("arm.get", "arm.get", "arm"),
        Step("arm.patch", "arm.patch", "arm"),
        Step("arm.operation", "arm.operation", "arm"),
        Step("arm.verify-get", "arm.get", "arm", after_patch=True),
        Step("classic.get_endpoint", "classic.get_endpoint", "classic"),
        Step("classic.patch_endpoint", "classic.patch_endpoint", "classic"),
        Step("classic.verify-get", "classic.get_endpoint", "classic", after_patch=True),
        Step("rrs.execute (arm)", "rrs.execute", "arm"),
        Step("rrs.execute (classic)", "rrs.execute", "classic"),
    )
}


def _faults(retry_after: float) -> dict[str, FaultSpec]:
    return {
        f.name: f
        for f in (
            FaultSpec(
                "429+Retry-After", {"kind": "status", "status": 429, "retry_after": retry_after}
            ),
            FaultSpec("500", {"kind": "status", "status": 500}),
            FaultSpec("503", {"kind": "status", "status": 503}),
            FaultSpec("503 persistent", {"kind": "status", "status": 503, "count": None}),
            FaultSpec("drop", {"kind": "drop"}),
            FaultSpec("read timeout", {"kind": "latency", "seconds": LATENCY}),
            FaultSpec("lro_fail", {"kind": "lro_fail"}),
            FaultSpec("job_fail", {"kind": "job_fail", "message": "Out of memory"}),
            FaultSpec("job Cancelled", special="cancel"),
            FaultSpec("deadline", special="deadline"),
            FaultSpec("store unreachable", special="bad-store"),
        )
    }


FAULTS = _faults(1.0)
_GENERIC = ("429+Retry-After", "500", "503", "drop", "read timeout")


def full_cases() -> list[tuple[str, str]]:
    """Every meaningful (step, fault) pair."""
    cases: list[tuple[str, str]] = [("upload", "store unreachable")]
    for step in STEPS.values():
        if step.route is None:
            continue
        cases += [(step.name, f) for f in _GENERIC]
        # azure-core retries ARM calls 10 times with back-off up to 2 minutes: a
        # persistent fault there takes minutes, so it runs on the requests-based routes.
        if not step.route.startswith("arm."):
            cases.append((step.name, "503 persistent"))
    cases += [
        ("arm.patch", "lro_fail"),
        ("bes.start", "job_fail"),
        ("bes.status", "job Cancelled"),
        ("bes.status", "deadline"),
    ]
    return cases


#: Cases that fail a check because of a known, unfixed bug (the reason is shown).
KNOWN_BUGS: dict[tuple[str, str], str] = {}

#: The cases `make test` runs (tests/reliability/test_fault_matrix.py).
SUBSET: list[tuple[str, str]] = [
    ("upload", "store unreachable"),
    ("bes.submit", "drop"),
    ("bes.submit", "503"),
    ("bes.start", "job_fail"),
    ("bes.status", "500"),
    ("bes.status", "job Cancelled"),
    ("arm.patch", "429+Retry-After"),
    ("arm.patch", "lro_fail"),
    ("arm.operation", "500"),
    ("arm.verify-get", "drop"),
    ("classic.patch_endpoint", "drop"),
    ("classic.patch_endpoint", "read timeout"),
    ("classic.verify-get", "503 persistent"),
    ("rrs.execute (classic)", "503 persistent"),
    ("rrs.execute (arm)", "500"),
]


@attrs.frozen
class Row:
    """The checked outcome of one case."""

    step: str
    fault: str
    outcome: str  # "succeeded", "status", "raised", "BUG"
    detail: str  # the typed error or the per-target status
    consistent: bool
    ledger_truthful: bool
    submits: int
    blobs_kept: bool
    cancelled: bool | None  # a job left running was cancelled (None: no job to cancel)
    seconds: float
    notes: str = ""

    @property
    def ok(self) -> bool:
        """Every check passed."""
        return (
            self.outcome != "BUG"
            and self.consistent
            and self.ledger_truthful
            and self.submits <= 1
            and self.blobs_kept
            and self.cancelled is not False
        )


class Rig:
    """Clients for the matrix: short read timeouts and fast polling.

    Args:
        emu: a started, seeded emulator.
    """

    def __init__(self, emu: Emulator) -> None:
        info = emu.info
        self.emu = emu
        self.info = info
        self.arm = WebServicesClient(
            emu.credential(),
            info.subscription_id,
            base_url=info.arm_base_url,
            polling_interval=0.1,
        )
        timeout = (5.0, READ_TIMEOUT)
        self.classic = ClassicClient(
            info.workspace_id, info.workspace_token, base_url=info.management_url, timeout=timeout
        )
        self.classic.poll = PollPolicy.fixed(0.1)
        self.store = BlobStore.from_connection_string(info.storage_connection_string)
        self.poll = PollPolicy(initial=0.1, factor=1.5, maximum=0.4, jitter=0.0)
        self.batch = BatchClient(
            info.training_endpoint_api_location or "",
            info.training_api_key or "",
            timeout=timeout,
            poll=self.poll,
        )
        rows = json.loads((DATA / "score_rows.json").read_text())
        self.sample = Sample(columns=rows["ColumnNames"], rows=rows["Values"])

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every client."""
        self.arm.close()
        self.classic.close()
        self.batch.close()

    def target(self, kind: str) -> ArmTarget | ClassicTarget:
        """A fresh target object (no cached reads) of ``kind`` ``arm`` or ``classic``."""
        info = self.info
        if kind == "arm":
            return ArmTarget(self.arm, info.resource_group, info.arm_service_name or "")
        return ClassicTarget(
            self.classic,
            info.predictive_service or "",
            info.predictive_endpoint or "",
            verify_timeout=10,
        )

    def training(self, *, store: BlobStore | None = None, timeout: float = 60) -> Training:
        """Training on the new census data."""
        return Training(
            batch=self.batch,
            data=DATA / "census_new.csv",
            store=store or self.store,
            timeout=timeout,
        )

    def submits(self) -> int:
        """``POST .../jobs`` requests that created a job (a refused 429/503 created none)."""
        return sum(
            1
            for r in self.emu.requests
            if r.method == "POST" and r.path.endswith("/jobs") and 200 <= r.status < 300
        )

    def scores_confirm(self, target: ArmTarget | ClassicTarget, model: str) -> bool:
        """Scoring through the service gives exactly what ``model`` predicts locally."""
        from amlretrain.emulator.learner import Model

        records = target.score(self.sample).first.records()
        local = Model.from_bytes(self.store.download_bytes(BlobRef.from_url(model))).predict(
            self.sample.columns, self.sample.rows
        )
        served = [float(r["Scored Probabilities"]) for r in records]
        return len(served) == len(local) and all(
            abs(a - b) < 1e-9 for a, (_, b) in zip(served, local, strict=True)
        )


@contextmanager
def _armed_after_patch(rig: Rig, step: Step, kwargs: dict[str, Any]) -> Iterator[None]:
    """Add the fault right after the target's PATCH was answered (the verification reads)."""
    emu = rig.emu
    armed: list[bool] = []

    def arm_once() -> None:
        if not armed:
            armed.append(True)
            emu.faults.add(route=step.route or "", **{"count": 1, **kwargs})

    if step.target == "arm":
        adapter = rig.arm._adapter
        original = adapter.begin_patch

        def begin_patch(*args: Any, **kw: Any) -> Any:
            poller = original(*args, **kw)
            arm_once()
            return poller

        adapter.begin_patch = begin_patch  # type: ignore[method-assign]
        try:
            yield
        finally:
            del adapter.begin_patch
    else:
        http = rig.classic._http
        request = http.request

        def patched(method: str, url: str, **kw: Any) -> Any:
            response = request(method, url, **kw)
            if method == "PATCH":
                arm_once()
            return response

        http.request = patched  # type: ignore[method-assign]
        try:
            yield
        finally:
            del http.request


def _cancel_when_started(rig: Rig, baseline: int, stop: threading.Event) -> None:
    """Cancel the job from outside (another client) once it has been started."""
    while not stop.is_set():
        for r in rig.emu.requests[baseline:]:
            if r.method == "POST" and r.path.endswith("/start"):
                job_id = r.path.rstrip("/").split("/")[-2]
                time.sleep(0.2)
                rig.batch.get_job(job_id).cancel()
                return
        time.sleep(0.02)


def _deletes(rig: Rig, baseline: int) -> int:
    return sum(
        1 for r in rig.emu.requests[baseline:] if r.method == "DELETE" and "/jobs/" in r.path
    )


def run_case(rig: Rig, step_name: str, fault_name: str, workdir: Path) -> Row:
    """Run one retrain with one fault and check the invariants."""
    step = STEPS[step_name]
    fault = FAULTS[fault_name]
    emu = rig.emu
    emu.faults.clear()
    target = rig.target(step.target)
    target.check()
    previous = strip_sas(target.current_model())
    ledger = Ledger(workdir / f"{step.name}-{fault.name}.jsonl".replace(" ", "_"))
    log_start = len(emu.requests)
    submits = rig.submits()
    training = rig.training()
    notes = []
    stop = threading.Event()
    watcher: threading.Thread | None = None
    if fault.special == "bad-store":
        # A wrong account key: Azurite refuses every call (an unreachable host would
        # work too, but azure-storage-blob retries it for about 80 s).
        parts = rig.info.storage_connection_string.split(";")
        wrong = base64.b64encode(b"not the account key" * 3).decode()
        bad = ";".join(f"AccountKey={wrong}" if p.startswith("AccountKey=") else p for p in parts)
        training = rig.training(store=BlobStore.from_connection_string(bad))
    elif fault.special == "cancel":
        emu.faults.add(route="bes.*", kind="job_slow", seconds=3)
        watcher = threading.Thread(target=_cancel_when_started, args=(rig, log_start, stop))
        watcher.start()
    elif fault.special == "deadline":
        emu.faults.add(route="bes.*", kind="job_slow", seconds=5)
        training = rig.training(timeout=1.0)
    elif not step.after_patch:
        emu.faults.add(route=step.route or "", **{"count": 1, **fault.kwargs})
    result: RetrainResult | None = None
    outcome, detail = "BUG", ""
    started = time.monotonic()
    try:
        ctx = _armed_after_patch(rig, step, dict(fault.kwargs)) if step.after_patch else _nothing()
        with ctx:
            result = retrain(training, [target], ledger=ledger, sample=rig.sample)
        status = result.targets[0].status
        if status == "succeeded":
            outcome, detail = "succeeded", "succeeded"
        elif status in STATUSES:
            outcome, detail = "status", status
        else:
            detail = f"undocumented status {status!r}"
    except AmlRetrainError as err:
        outcome, detail = "raised", type(err).__name__
    except Exception as err:  # a bug: only amlretrain errors may come out
        detail = f"{type(err).__name__}: {err}"[:200]
    finally:
        seconds = time.monotonic() - started
        stop.set()
        if watcher is not None:
            watcher.join()
        emu.faults.clear()
    if fault.name == "read timeout":
        # A request the client gave up on still runs on the service when its latency is
        # over: wait for it, so that a late write shows up in this case's checks.
        time.sleep(LATENCY)

    fresh = rig.target(step.target)
    serving = strip_sas(fresh.current_model())
    outcome_obj = result.targets[0] if result is not None else None
    new_model = result.model if result is not None else None
    if outcome == "succeeded":
        expected = new_model
    elif outcome_obj is not None and outcome_obj.status in ("failed", "unknown"):
        expected = outcome_obj.serving_model
    else:
        expected = previous
    # serving_model None means "could not be read" or "not confirmed" (status unknown):
    # only "one of the two" can be checked; reconcile must then record the truth.
    unknown = (
        outcome_obj is not None and outcome_obj.status in ("failed", "unknown") and expected is None
    )
    consistent = (unknown or serving == expected) and serving in (previous, new_model)
    if not consistent:
        notes.append(f"serves {serving}, expected {expected}")
    elif unknown:
        notes.append("the target could not be read at the end: recorded as unknown")
    try:
        if serving is None or not rig.scores_confirm(fresh, serving):
            consistent = False
            notes.append("scoring does not match the served model")
    except AmlRetrainError as err:
        consistent = False
        notes.append(f"scoring failed: {type(err).__name__}")

    if ledger.pending():
        reconcile([rig.target(step.target)], ledger=ledger)
        notes.append("reconciled")
    entries = ledger.entries()
    if entries:
        last = entries[-1]
        said = last.serving_model if last.serving_model is not None or not unknown else serving
        truthful = said == serving and not any(
            e.outcome == "succeeded" and e.new_model != serving for e in entries
        )
    else:
        truthful = result is None and serving == previous
    if not truthful:
        notes.append(f"ledger: {[(e.outcome, e.serving_model) for e in entries]}")

    blobs = [b for b in (previous, new_model) if b]
    blobs_kept = all(rig.store.exists(BlobRef.from_url(b)) for b in blobs)
    job_submitted = rig.submits() - submits
    cancelled: bool | None = None
    started_job = any(
        r.method == "POST" and r.path.endswith("/start") and 200 <= r.status < 300
        for r in emu.requests[log_start:]
    )
    if outcome == "raised" and started_job and detail != "TrainingJobFailed":
        cancelled = _deletes(rig, log_start) > 0  # a job left running must be cancelled
        if not cancelled:
            notes.append("the started job was left running")
    untimed = step.route and (step.route.startswith("arm.") or step.route == "rrs.execute")
    if untimed and fault.name == "read timeout":
        notes.append("latency only: this client's read timeout is not configurable")
    if outcome_obj is not None and outcome_obj.error and outcome != "succeeded":
        notes.append(outcome_obj.error[:160])
    return Row(
        step=step.name,
        fault=fault.name,
        outcome=outcome,
        detail=detail,
        consistent=consistent,
        ledger_truthful=truthful,
        submits=job_submitted,
        blobs_kept=blobs_kept,
        cancelled=cancelled,
        seconds=seconds,
        notes="; ".join(notes),
    )


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def run(
    emu: Emulator, cases: list[tuple[str, str]], progress: Callable[[Row], None] | None = None
) -> list[Row]:
    """Run ``cases`` against ``emu`` and return their rows."""
    rows: list[Row] = []
    with Rig(emu) as rig, tempfile.TemporaryDirectory() as tmp:
        for step, fault in cases:
            row = run_case(rig, step, fault, Path(tmp))
            rows.append(row)
            if progress:
                progress(row)
    return rows


def _yn(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "**NO**")


def render(rows: list[Row], *, mode: str, seconds: float) -> str:
    """The generated part of docs/reliability.md: summary and table."""
    counts = Counter(r.outcome for r in rows)
    details = Counter(f"{r.outcome}: {r.detail}" for r in rows)
    bad = [r for r in rows if not r.ok]
    lines = [
        f"Generated by `python -m tests.reliability.matrix --{mode}` on "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC: {len(rows)} cases "
        f"in {seconds:.0f} s.",
        "",
        "| outcome | cases |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in sorted(counts.items())),
        "",
        "| outcome: typed error or status | cases |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in sorted(details.items())),
        "",
        f"Cases failing a check: **{len(bad)}**"
        + (": " + ", ".join(f"{r.step} / {r.fault}" for r in bad) if bad else "."),
        "",
        "| step | fault | outcome | typed error or status | consistent | ledger truthful "
        "| submits | blobs kept | job cancelled | s | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        notes = r.notes.replace("|", "/").replace("\n", " ")
        lines.append(
            f"| {r.step} | {r.fault} | {r.outcome} | {r.detail} | {_yn(r.consistent)} "
            f"| {_yn(r.ledger_truthful)} | {r.submits} | {_yn(r.blobs_kept)} "
            f"| {_yn(r.cancelled)} | {r.seconds:.1f} | {notes} |"
        )
    return "\n".join(lines) + "\n"


MARKER = "<!-- generated below: do not edit by hand -->"


def write(out: Path, generated: str) -> None:
    """Replace the generated part of ``out`` (keeping the hand-written intro above MARKER)."""
    intro = "# Reliability\n\n"
    if out.exists():
        text = out.read_text(encoding="utf-8")
        intro = text.split(MARKER, 1)[0] if MARKER in text else text.rstrip("\n") + "\n\n"
    out.write_text(intro + MARKER + "\n\n" + generated, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Run the matrix and write the table; exit 1 when a case fails a check."""
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.matrix")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--full", action="store_true", help="every step x every fault")
    mode.add_argument("--subset", action="store_true", help="the cases make test runs")
    parser.add_argument("--out", type=Path, help="write the table into this Markdown file")
    args = parser.parse_args(argv)
    cases = full_cases() if args.full else SUBSET
    from tests.integration.conftest import shared_emulator

    started = time.monotonic()

    def show(row: Row) -> None:
        flag = "ok " if row.ok else "BAD"
        print(f"{flag} {row.step:<24} {row.fault:<18} {row.outcome:<9} {row.detail:<20} "
              f"{row.seconds:5.1f}s {row.notes[:80]}", flush=True)  # fmt: skip

    with shared_emulator() as emu:
        rows = run(emu, cases, show)
    generated = render(
        rows, mode="full" if args.full else "subset", seconds=time.monotonic() - started
    )
    if args.out:
        write(args.out, generated)
    else:
        sys.stdout.write(generated)
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
