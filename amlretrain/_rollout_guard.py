"""The engine of a guarded rollout (:class:`amlretrain.rollout.Rollout`) inside a run.

One :class:`RolloutGuard` per run. Before a model's first wave, :meth:`RolloutGuard.
precheck` makes its candidate, runs smoke, the champion gate and the shadow on it, and
deletes it; after every wave :meth:`RolloutGuard.bake` probes the wave's targets until
the bake ends or an alarm fires. Every verdict is a ``RolloutEvent`` in the ledger; the
fleet engine (:mod:`amlretrain._fleet_run`) rolls back and halts when told.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import attrs

from amlretrain._redact import redact
from amlretrain.blobs import BlobRef, strip_sas
from amlretrain.errors import AmlRetrainError, ConfigurationError, LedgerError
from amlretrain.records import RolloutEvent
from amlretrain.targets import Sample, Target, TargetState

if TYPE_CHECKING:
    from amlretrain.alarms import Fired, Observation
    from amlretrain.champion import HoldoutRows
    from amlretrain.interrupt import StopSignal
    from amlretrain.ledger import Ledger
    from amlretrain.rollout import Rollout

__all__ = ["Probed", "RolloutGuard"]

log = logging.getLogger("amlretrain.workflow")

#: Scoring requests of one probe round in flight at once (per target).
PROBE_CONCURRENCY = 4


@attrs.frozen
class Probed:
    """Rows scored on one target: a score and a label per row (None: its request failed)."""

    scores: tuple[float | None, ...]
    labels: tuple[str | None, ...]
    requests: int
    errors: int
    latencies_ms: tuple[float, ...]
    first_error: str | None = None

    def ok_scores(self) -> list[float]:
        return [s for s in self.scores if s is not None]


def probe_rows(
    target: Target,
    state: TargetState | None,
    sample: Sample,
    batch: int,
    *,
    retries: int | None = 0,
) -> Probed:
    """Score ``sample``'s rows on ``target``, ``batch`` rows a request, a few at a time.

    One read of the target (when ``state`` is None) and one scoring client for the
    round; by default a failed request is not sent again (the error rate is what a probe
    measures; ``retries=None``: the client's transient retries, as the smoke test uses).
    """
    from amlretrain.champion import scores_from

    chunks = [sample.rows[i : i + batch] for i in range(0, len(sample.rows), batch)]
    try:
        scoring = target.scoring(state, retries=retries)
    except (AmlRetrainError, ConfigurationError) as err:
        return Probed(
            scores=(None,) * len(sample.rows),
            labels=(None,) * len(sample.rows),
            requests=len(chunks),
            errors=len(chunks),
            latencies_ms=(),
            first_error=redact(str(err)),
        )

    def one(
        rows: Sequence[Sequence[Any]],
    ) -> tuple[list[float] | None, list[str] | None, float, str | None]:
        started = time.monotonic()
        try:
            result = scoring.score(sample.columns, rows, input_name=sample.input_name)
            scores = scores_from(result)
            labels = _labels_of(result, len(rows))
        except (AmlRetrainError, ConfigurationError) as err:
            return None, None, (time.monotonic() - started) * 1000, redact(str(err))
        return scores, labels, (time.monotonic() - started) * 1000, None

    with scoring, ThreadPoolExecutor(max_workers=min(PROBE_CONCURRENCY, len(chunks)) or 1) as pool:
        answers = list(pool.map(one, chunks))
    first: str = ""
    scores: list[float | None] = []
    labels: list[str | None] = []
    errors = 0
    for (got, named, _, error), rows in zip(answers, chunks, strict=True):
        if got is None or named is None:
            errors += 1
            first = first or error or "an error"
            scores.extend([None] * len(rows))
            labels.extend([None] * len(rows))
        else:
            scores.extend(got)
            labels.extend(named)
    return Probed(
        scores=tuple(scores),
        labels=tuple(labels),
        requests=len(chunks),
        errors=errors,
        latencies_ms=tuple(a[2] for a in answers),
        first_error=first or None,
    )


def _labels_of(result: Any, count: int) -> list[str]:
    """The "Scored Labels" of a scoring answer (empty when it has none)."""
    columns = list(result.columns)
    if "Scored Labels" not in columns:
        return [""] * count
    at = columns.index("Scored Labels")
    return [str(r[at]) for r in result.rows]


def observe(stage: str, candidate: Probed, incumbent: Probed | None) -> Observation:
    """The figures of one probe round (rows both answered are compared)."""
    from amlretrain.alarms import observe as figures

    pairs = (
        [
            (a, b, la, lb)
            for a, b, la, lb in zip(
                incumbent.scores, candidate.scores, incumbent.labels, candidate.labels, strict=True
            )
            if a is not None and b is not None
        ]
        if incumbent is not None
        else []
    )
    return figures(
        stage=stage,
        incumbent_scores=[p[0] for p in pairs] if incumbent is not None else None,
        candidate_scores=[p[1] for p in pairs] if incumbent is not None else candidate.ok_scores(),
        incumbent_labels=[str(p[2]) for p in pairs] if incumbent is not None else None,
        candidate_labels=[str(p[3]) for p in pairs] if incumbent is not None else None,
        errors=candidate.errors,
        requests=candidate.requests,
        latencies_ms=candidate.latencies_ms,
    )


class RolloutGuard:
    """One run's guarded rollout: prechecks per model, bakes per wave, and the records."""

    def __init__(
        self,
        rollout: Rollout,
        *,
        ledger: Ledger | None,
        run_id: str,
        stop: StopSignal,
        wait_lock: float = 0.0,
        sample: Sample | None = None,
    ) -> None:
        self.rollout = rollout
        self.wait_lock = wait_lock
        self.sample = sample
        self.ledger = ledger
        self.run_id = run_id
        self.stop = stop
        #: Each group's verdict: None passed, else why its model was stopped.
        self.verdicts: dict[str, str | None] = {}
        #: Each group's incumbent scores of the probe rows (the bakes' baseline).
        self.baselines: dict[str, Probed] = {}
        #: Each group's holdout rows held back from its training data.
        self.holdouts: dict[str, HoldoutRows] = {}
        #: The alarms fired in a v2 endpoint's traffic steps (:meth:`staged`), with the
        #: wave: the run halts after that wave as after a bake's alarm.
        self.step_alarms: list[tuple[int, list[Fired]]] = []

    # -- records ---------------------------------------------------------------------------

    def record(self, stage: str, verdict: str, **kw: Any) -> None:
        """A RolloutEvent; a ledger that cannot take it is logged (the run goes on only
        for records of evidence, never for a candidate's intent: see precheck)."""
        if self.ledger is None:
            return
        try:
            self.ledger.append(
                RolloutEvent.new(run_id=self.run_id, stage=stage, verdict=verdict, **kw)
            )
        except LedgerError as err:
            log.error("the rollout's %s record could not be written: %s", stage, err)

    def notify(self, event: str, payload: dict[str, Any]) -> None:
        notifier = self.rollout.notify
        if notifier is None:
            return
        for delivery in notifier.send(event, {"run_id": self.run_id, **payload}):
            self.record(
                "notify",
                "passed" if delivery.ok else "failed",
                message=f"{event} to {delivery.to}"
                + (f": {delivery.error}" if delivery.error else ""),
            )

    # -- before the waves -------------------------------------------------------------------

    def prepare(self, group: str, training: Any) -> Any:
        """``training`` with the champion gate's holdout rows held back, when it asks so."""
        gate = self.rollout.champion
        if gate is None or gate.holdout_fraction is None:
            return training
        trimmed, rows = held_out(training, gate, group)
        self.holdouts[group] = rows
        return trimmed

    def precheck(
        self, group: str, model: BlobRef, incumbent: Target, state: TargetState
    ) -> str | None:
        """Smoke, champion gate and shadow of ``model`` on a candidate next to ``incumbent``.

        Returns:
            None when the model may go live, else why not (the group's targets are
            rejected). Recorded as ``group``'s verdict.
        """
        if group in self.verdicts:
            return self.verdicts[group]
        why = self._precheck(group, model, incumbent, state)
        self.verdicts[group] = why
        return why

    def _precheck(
        self, group: str, model: BlobRef, incumbent: Target, state: TargetState
    ) -> str | None:
        rollout = self.rollout
        if rollout.probe is not None and "shadow" not in rollout.stages:
            # The bakes' baseline: what the incumbent answers to the probe rows now.
            self.baselines[group] = probe_rows(incumbent, state, rollout.probe, rollout.probe_batch)
        if not rollout.needs_candidate:
            return None
        if self.ledger is None:
            raise ConfigurationError(
                "a guarded rollout needs a ledger (its candidates are intents)"
            )
        # The incumbent's lease is held while its candidate exists: a reconcile elsewhere
        # deletes leftover candidates under that lease, never one in use.
        try:
            with self.ledger.locks.hold(incumbent.key, wait=self.wait_lock, run_id=self.run_id):
                return self._with_candidate(group, model, incumbent, state)
        except (AmlRetrainError, ConfigurationError) as err:
            return f"rollout: the candidate could not be made: {redact(str(err))}"

    def _with_candidate(
        self, group: str, model: BlobRef, incumbent: Target, state: TargetState
    ) -> str | None:
        from amlretrain.candidates import create_candidate, delete_candidate

        assert self.ledger is not None
        rollout = self.rollout
        candidate = create_candidate(
            incumbent,
            model,
            run_id=self.run_id,
            ledger=self.ledger,
            arm_storage_key=rollout.storage_key(),
            arm_commitment_plan=rollout.arm_commitment_plan,
        )
        why: str | None = "the rollout's checks did not finish"
        try:
            why = self._on_candidate(
                group, model, incumbent, state, candidate.target, candidate.state
            )
            return why
        finally:
            try:
                # A v2 candidate that passed is the standby the swap gives the traffic.
                delete_candidate(
                    candidate, run_id=self.run_id, ledger=self.ledger, keep=why is None
                )
            except (AmlRetrainError, ConfigurationError) as err:
                log.error(
                    "the candidate of %s could not be deleted (%s): `amlretrain reconcile` "
                    "deletes it",
                    incumbent.label,
                    err,
                )

    def _on_candidate(
        self,
        group: str,
        model: BlobRef,
        incumbent: Target,
        state: TargetState,
        candidate: Target,
        candidate_state: TargetState,
    ) -> str | None:
        rollout = self.rollout
        where = {"target": incumbent.key, "model": model.url}
        if "smoke" in rollout.stages:
            sample = (
                self.sample
                or (  # the run's sample, else a few probe rows
                    Sample(
                        columns=rollout.probe.columns,
                        rows=rollout.probe.rows[:5],
                        input_name=rollout.probe.input_name,
                    )
                    if rollout.probe is not None
                    else incumbent.sample(state)
                )
            )
            if sample is None:
                self.record(
                    "smoke", "skipped", message="no sample and no probe rows to score", **where
                )
            else:
                smoke = probe_rows(
                    candidate, candidate_state, sample, rollout.probe_batch, retries=None
                )
                if smoke.errors:
                    why = f"rollout smoke: the candidate failed to score: {smoke.first_error}"
                    self.record(
                        "smoke",
                        "failed",
                        message=why,
                        evidence={"rows": len(sample.rows), "errors": smoke.errors},
                        **where,
                    )
                    return why
                self.record("smoke", "passed", evidence={"rows": len(sample.rows)}, **where)
        if rollout.champion is not None:
            refused = self._gate(group, incumbent, state, candidate, candidate_state, where)
            if refused is not None:
                return refused
        if "shadow" in rollout.stages and rollout.probe is not None:
            with self._mirrored(incumbent, candidate, model):
                baseline, shadow = self._both(
                    incumbent, state, candidate, candidate_state, rollout.probe
                )
            self.baselines[group] = baseline
            observation = observe("shadow", shadow, baseline)
            fired = self._alarms(observation, "shadow", [incumbent.key], model, None)
            verdict = "failed" if fired else "passed"
            self.record("shadow", verdict, evidence=observation.to_evidence(), **where)
            if fired:
                for alarm in fired:
                    self.record(
                        "alarm",
                        "fired",
                        message=alarm.message,
                        evidence=alarm.to_evidence(),
                        **where,
                    )
                self.notify(
                    "alarm",
                    {"stage": "shadow", "alarms": [f.to_evidence() for f in fired], **where},
                )
                return "rollout shadow: " + "; ".join(f.message for f in fired)
        return None

    @contextlib.contextmanager
    def _mirrored(self, incumbent: Target, candidate: Target, model: BlobRef) -> Iterator[None]:
        """``rollout.mirror`` percent of a v2 endpoint's live calls mirrored to the
        candidate deployment while the shadow runs; back at 0 (verified) afterwards, before
        any live traffic moves (T9 steps 6-7). Other targets: nothing."""
        from amlretrain.azureml.targets import DeploymentView, OnlineEndpointTarget

        percent = self.rollout.mirror
        if (
            not percent
            or not isinstance(incumbent, OnlineEndpointTarget)
            or not isinstance(candidate, DeploymentView)
        ):
            yield
            return
        where = {"target": incumbent.key, "model": model.url}
        evidence = {"deployment": candidate.deployment, "percent": percent}
        incumbent.set_mirror(candidate.deployment, percent, stop=self.stop)
        self.record(
            "mirror",
            "started",
            message=f"{percent}% of the live calls mirrored to {candidate.deployment}",
            evidence=evidence,
            **where,
        )
        try:
            yield
        finally:
            incumbent.set_mirror(None)  # not stopped by a stop request: it must end
            self.record(
                "mirror",
                "done",
                message=f"mirror to {candidate.deployment} back at 0% (verified)",
                evidence={**evidence, "percent": 0},
                **where,
            )

    def _both(
        self,
        incumbent: Target,
        state: TargetState,
        candidate: Target,
        candidate_state: TargetState,
        sample: Sample,
    ) -> tuple[Probed, Probed]:
        """``sample`` scored on incumbent and candidate at once (the shadow's overhead is
        the slower of the two, not their sum)."""
        batch = self.rollout.probe_batch
        with ThreadPoolExecutor(max_workers=2) as pool:
            first = pool.submit(probe_rows, incumbent, state, sample, batch)
            second = pool.submit(probe_rows, candidate, candidate_state, sample, batch)
            return first.result(), second.result()

    def _gate(
        self,
        group: str,
        incumbent: Target,
        state: TargetState,
        candidate: Target,
        candidate_state: TargetState,
        where: dict[str, Any],
    ) -> str | None:
        from amlretrain.champion import HoldoutRows, judge

        gate = self.rollout.champion
        assert gate is not None
        holdout = self.holdouts.get(group)
        if holdout is None and gate.holdout is not None:
            holdout = HoldoutRows.from_csv(gate.holdout, gate.label)
        if holdout is None:
            why = "rollout gate: no holdout rows (champion.holdout, or holdout_fraction)"
            self.record("gate", "failed", message=why, **where)
            return why
        sample = Sample(columns=holdout.columns, rows=holdout.rows, input_name=self._input_name())
        champion, challenger = self._both(incumbent, state, candidate, candidate_state, sample)
        if champion.errors or challenger.errors:
            why = (
                "rollout gate: the holdout could not be scored on "
                + ("the champion" if champion.errors else "the challenger")
                + f": {champion.first_error or challenger.first_error}"
            )
            self.record("gate", "failed", message=why, **where)
            return why
        try:
            evidence = judge(gate, holdout.labels, champion.ok_scores(), challenger.ok_scores())
        except ConfigurationError as err:
            why = f"rollout gate: {err}"
            self.record("gate", "failed", message=why, **where)
            return why
        verdict = "passed" if evidence.promoted else "failed"
        self.record(
            "gate", verdict, message=evidence.reason, evidence=evidence.to_evidence(), **where
        )
        return None if evidence.promoted else f"rollout gate: {evidence.reason}"

    def _input_name(self) -> str:
        probe = self.rollout.probe
        return probe.input_name if probe is not None else "input1"

    def _alarms(
        self,
        observation: Observation,
        stage: str,
        targets: Sequence[str],
        model: BlobRef | str | None,
        wave: int | None,
    ) -> list[Fired]:
        from amlretrain.alarms import AlarmContext, evaluate

        context = AlarmContext(
            run_id=self.run_id,
            stage=stage,
            targets=tuple(targets),
            model=strip_sas(model.url if isinstance(model, BlobRef) else model),
            wave=wave,
        )
        return evaluate(self.rollout.alarms, observation, context)

    # -- the waves --------------------------------------------------------------------------

    def staged(self, target: Target, group: str, model: BlobRef, wave: int, bake: float) -> Target:
        """``target`` as its swap runs in this rollout: a v2 endpoint moves its live
        traffic in ``rollout.traffic_steps``, each step verified and baked (the probe rows
        scored on the new deployment through its header, the alarms evaluated) for the
        rollout's bake; an alarm there stops the swap (its traffic back on the previous
        deployment) and halts the run after the wave. Other targets are swapped whole."""
        from amlretrain.azureml.targets import OnlineEndpointTarget
        from amlretrain.errors import AlarmFired

        steps = self.rollout.traffic_steps
        if not steps or not isinstance(target, OnlineEndpointTarget):
            return target
        seconds = self.rollout.bake_seconds(bake)
        online = target

        def on_step(percent: int, deployment: str) -> None:
            self.record(
                "traffic",
                "done",
                target=online.key,
                model=model.url,
                message=f"{deployment} has {percent}% of the live traffic (verified)",
                evidence={"wave": wave, "deployment": deployment, "percent": percent},
            )
            view = online.standby_view(deployment)
            fired = self.bake(
                wave,
                [(view, group, model.url)],
                seconds,
                keys={view.key: online.key},
                note=f"at {percent}% on {deployment}",
            )
            if fired:
                self.step_alarms.append((wave, fired))
                raise AlarmFired(
                    f"an alarm fired at {percent}% of the live traffic on {deployment}: "
                    + "; ".join(f.message for f in fired),
                    alarms=[f.message for f in fired],
                )

        return target.staged(steps, on_step)

    def bake(
        self,
        number: int,
        promoted: Sequence[tuple[Target, str, str | None]],
        seconds: float,
        *,
        keys: Mapping[str, str] | None = None,
        note: str | None = None,
    ) -> list[Fired]:
        """Probe the wave's promoted targets every ``probe_interval`` for ``seconds`` (one
        round at least); the alarms that fired in the first round that fired any.

        Args:
            promoted: (target, group, model URL) of each target the wave changed.
            keys: the key each target's records are filed under (default its own).
            note: the message of each round's records (a v2 traffic step's share).
        """
        rollout = self.rollout
        if not promoted:
            return []
        if rollout.probe is None:  # no probe, no alarms: the bake is a wait
            if seconds:
                self.stop.wait(seconds)
            return []
        deadline = time.monotonic() + seconds
        rounds = 0
        while True:  # a round starts every probe_interval (not an interval after the last)
            rounds += 1
            started = time.monotonic()
            fired = self._round(number, rounds, promoted, keys or {}, note)
            if fired or self.stop.requested:
                return fired
            now = time.monotonic()
            if now >= deadline:
                return []
            pause = min(max(0.0, started + rollout.probe_interval - now), deadline - now)
            if self.stop.wait(pause):
                return []

    def _round(
        self,
        number: int,
        round_: int,
        promoted: Sequence[tuple[Target, str, str | None]],
        keys: Mapping[str, str],
        note: str | None = None,
    ) -> list[Fired]:
        probe = self.rollout.probe
        assert probe is not None
        with ThreadPoolExecutor(max_workers=min(4, len(promoted))) as pool:
            answers = list(
                pool.map(
                    lambda p: probe_rows(p[0], None, probe, self.rollout.probe_batch), promoted
                )
            )
        fired: list[Fired] = []
        for (target, group, model), probed in zip(promoted, answers, strict=True):
            observation = observe("bake", probed, self.baselines.get(group))
            key = keys.get(target.key, target.key)
            where = {"target": key, "model": model}
            found = self._alarms(observation, "bake", [key], model, number)
            evidence = {**observation.to_evidence(), "wave": number, "round": round_}
            self.record(
                "bake",
                "failed" if found else "passed",
                message=note,
                evidence=evidence,
                **where,
            )
            for alarm in found:
                self.record(
                    "alarm",
                    "fired",
                    message=alarm.message,
                    evidence={**alarm.to_evidence(), "wave": number},
                    **where,
                )
            fired.extend(found)
        if fired:
            self.notify(
                "alarm",
                {"stage": "bake", "wave": number, "alarms": [f.to_evidence() for f in fired]},
            )
        return fired

    def rolled_back(self, fired: Sequence[Fired], targets: Sequence[tuple[str, str]]) -> None:
        """Record and announce the rollback of ``targets`` ((key, status) each)."""
        evidence = {
            "alarms": [f.alarm for f in fired],
            "targets": [{"target": k, "status": s} for k, s in targets],
        }
        ok = all(s == "restored" for _, s in targets)
        self.record(
            "rollback",
            "done" if ok else "failed",
            message="; ".join(f.message for f in fired),
            evidence=evidence,
        )
        self.notify("rollback", evidence)

    def promoted(self, number: int, targets: Sequence[str], model: str | None) -> None:
        """Record a wave promoted."""
        self.record(
            "wave", "done", model=model, evidence={"wave": number, "targets": list(targets)}
        )

    def finished(self, targets: Sequence[str], models: Sequence[str]) -> None:
        """Record and announce the rollout finished."""
        payload = {"targets": list(targets), "models": sorted(set(models))}
        self.record("promote", "done", evidence=payload)
        self.notify("promote", payload)


def held_out(training: Any, gate: Any, group: str) -> tuple[Any, HoldoutRows]:
    """``training`` with ``gate.holdout_fraction`` of its local data file held back.

    Returns:
        The training to run (its data a temporary file without the held-back rows) and
        those rows.

    Raises:
        ConfigurationError: the data is not a local file (a blob is not read back to split
            it), or cannot be split.
    """
    import tempfile
    from pathlib import Path

    from amlretrain.champion import hold_out

    data = training.data
    if not isinstance(data, str | Path) or str(data).startswith(("blob:", "http://", "https://")):
        raise ConfigurationError(
            f"{group}: rollout.champion.holdout_fraction holds rows back from a local data "
            "file before it is uploaded; this data is a blob: give champion.holdout (a file)"
        )
    path = Path(data)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigurationError(f"{group}: cannot read {path}: {err.strerror}") from err
    kept, rows = hold_out(raw, gate.holdout_fraction, gate.seed, gate.label, where=str(path))
    folder = Path(tempfile.mkdtemp(prefix="amlretrain-holdout-"))
    trimmed = folder / path.name  # the same name: the service and the ledger see it
    trimmed.write_bytes(kept)
    return attrs.evolve(training, data=trimmed), rows
