"""The evidence report of a run: one self-contained HTML file, read from the ledger.

``amlretrain report [RUN_ID] -o report.html`` (or :func:`build_report` and
:meth:`Report.save`) writes what a run did and why, per target:

* its **timeline** in the run: intents, outcomes and rollout steps, in time order, with
  their verdicts;
* its **metric history** across retrains: each recorded metric at each deployment (and
  each challenger the gate refused), this run's ringed;
* the **gate's evidence**: the champion against the challenger on the holdout, and their
  difference with its bootstrap interval against ``min_change``;
* the **shadow comparison**: the incumbent's and the candidate's score distributions
  (the summaries' histograms, else their quantiles), agreement, PSI, error rate,
  latency; the bake's rounds;
* its **alarms and rollbacks**.

The page needs nothing but itself: its charts are inline SVG drawn by matplotlib (the
``report`` extra: ``pip install 'amlretrain[report]'``), its style inline, no script, no
font file, no image and no link to anything. In Jupyter a :class:`Report` shows the same
page (:meth:`Report._repr_html_`). Every value shown is redacted and escaped. A piece of
evidence the ledger lacks (a run without a rollout has no gate or shadow records; an
older writer may leave a member out) is said in words, not drawn.

Pure code: a :class:`~amlretrain.history.History` in, HTML out; the file is written by
:meth:`Report.save` only.
"""

from __future__ import annotations

import html
import itertools
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs

from amlretrain import _charts
from amlretrain._redact import redact
from amlretrain.errors import ConfigurationError
from amlretrain.history import History, RunSummary
from amlretrain.metrics import normalize_metric_name
from amlretrain.records import (
    Intent,
    JobRecord,
    LedgerEntry,
    LedgerProblem,
    OperationRecord,
    Record,
    RolloutEvent,
    RunStart,
)

__all__ = ["Report", "TargetReport", "TimelineRow", "build_report", "report_for"]

#: The metrics charted per target, at most (the first recorded, in the ledger's order).
MAX_METRICS = 6
#: Metrics charted first, in this order (normalised names); others after, as recorded.
_FIRST_METRICS = ("auc", "accuracy", "fscore", "averagelogloss", "precision", "recall")


def _metric_rank(name: str) -> int:
    key = normalize_metric_name(name)
    return _FIRST_METRICS.index(key) if key in _FIRST_METRICS else len(_FIRST_METRICS)


class _HasHistory(Protocol):
    def history(self) -> History: ...


class _HasRunId(Protocol):
    @property
    def run_id(self) -> str | None: ...


@attrs.frozen(kw_only=True)
class TimelineRow:
    """One record of a run, as the report's timeline shows it.

    Attributes:
        time: when it was recorded (UTC, ISO 8601).
        kind: ``run-start``, ``job``, ``intent``, ``outcome`` or ``rollout:<stage>``.
        what: what it is (``deploy``, the job id, the stage's action...).
        verdict: its outcome, status or verdict (may be empty).
        detail: a line for people (models, message, figures).
    """

    time: str
    kind: str
    what: str
    verdict: str
    detail: str


@attrs.frozen(kw_only=True)
class TargetReport:
    """What the report shows of one target (see :mod:`amlretrain.report`).

    Attributes:
        target: the target key.
        timeline: its records in the run, in time order.
        retrains: its deployments and gate refusals with metrics (up to the run's last
            record), oldest first.
        run_entries: the ids of the outcomes of ``retrains`` the run wrote.
        gates: its ``gate`` rollout events in the run.
        shadows: its ``shadow`` rollout events in the run.
        bakes: its ``bake`` rollout events in the run.
        alarms: its ``alarm`` and ``rollback`` rollout events, and the run's rollback and
            restore outcomes, in time order.
    """

    target: str
    timeline: tuple[TimelineRow, ...]
    retrains: tuple[LedgerEntry, ...]
    run_entries: frozenset[str]
    gates: tuple[RolloutEvent, ...]
    shadows: tuple[RolloutEvent, ...]
    bakes: tuple[RolloutEvent, ...]
    alarms: tuple[RolloutEvent | LedgerEntry, ...]


def _time_order(rows: Iterable[TimelineRow]) -> tuple[TimelineRow, ...]:
    return tuple(sorted(rows, key=lambda row: row.time))  # stable: ledger order on ties


def _model(url: str | None) -> str:
    return url or "(none)"


def _row(record: Record) -> TimelineRow:
    if isinstance(record, RunStart):
        detail = f"on {record.host}, {len(record.targets)} target(s)"
        return TimelineRow(
            time=record.time,
            kind="run-start",
            what=record.command,
            verdict="resumed" if record.resumed else "started",
            detail=detail,
        )
    if isinstance(record, JobRecord):
        detail = f"on {record.data}" if record.data else ""
        return TimelineRow(
            time=record.time,
            kind="job",
            what=record.job_id
            or (
                "(its id comes with the submit's answer)"
                if record.status == "Submitting"
                else "(no id: its submit got no answer)"
            ),
            verdict=record.status,
            detail=detail,
        )
    if isinstance(record, Intent):
        return TimelineRow(
            time=record.time,
            kind="intent",
            what=record.action,
            verdict="sending",
            detail=f"{_model(record.previous_model)} -> {_model(record.new_model)}",
        )
    if isinstance(record, LedgerEntry):
        parts = [f"serving {record.serving_model or 'unknown'}"]
        if record.metrics:
            parts.append(", ".join(f"{k} {_fmt(v)}" for k, v in record.metrics.items()))
        if record.message:
            parts.append(record.message)
        return TimelineRow(
            time=record.time,
            kind="outcome",
            what=record.action,
            verdict=record.outcome,
            detail="; ".join(parts),
        )
    if isinstance(record, OperationRecord):
        return TimelineRow(
            time=record.time,
            kind="operation",
            what="detached",
            verdict="waiting",
            detail=record.what,
        )
    parts = [record.message] if record.message else []
    if record.model:
        parts.append(f"model {record.model}")
    return TimelineRow(
        time=record.time,
        kind=f"rollout:{record.stage}",
        what=record.stage,
        verdict=record.verdict,
        detail="; ".join(parts),
    )


def _targets_of(run: RunSummary, records: Sequence[Record]) -> list[str]:
    found = dict.fromkeys(run.targets)
    for record in records:
        target = getattr(record, "target", None)
        if isinstance(target, str) and target:
            found.setdefault(target, None)
    return list(found)


@attrs.frozen(kw_only=True)
class Report:
    """The evidence report of one run (build it with :func:`build_report`).

    Attributes:
        run: the run (:meth:`amlretrain.history.History.run`).
        run_timeline: the run's own records: its starts, its training jobs and the
            rollout's steps that concern no one target (waves, promotion, notifications).
        targets: one :class:`TargetReport` per target the run may change or recorded.
        problems: the ledger lines that could not be read.
    """

    run: RunSummary
    run_timeline: tuple[TimelineRow, ...]
    targets: tuple[TargetReport, ...]
    problems: tuple[LedgerProblem, ...] = ()

    def html(self) -> str:
        """The report as one self-contained HTML document (charts inline, no URL).

        Raises:
            ImportError: matplotlib is not installed (``pip install 'amlretrain[report]'``).
        """
        title = _text(f"amlretrain report: run {self.run.run_id}")
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            # no favicon request: the page loads nothing but itself
            '<link rel="icon" href="data:,">'
            f"<title>{title}</title></head>\n<body>\n{self.fragment()}\n</body></html>\n"
        )

    def fragment(self) -> str:
        """The report as an HTML fragment (its style included) to embed in a page.

        Raises:
            ImportError: matplotlib is not installed.
        """
        _charts.require_matplotlib()
        return _Renderer(self).render()

    def _repr_html_(self) -> str:
        """Jupyter's view: the same page, charts and all."""
        return self.fragment()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`html` to ``path`` (UTF-8); returns the path written.

        Raises:
            ImportError: matplotlib is not installed.
        """
        out = Path(path)
        out.write_text(self.html(), encoding="utf-8")
        return out


def build_report(history: History, run_id: str | None = None) -> Report:
    """The evidence report of run ``run_id`` (a unique prefix is enough; None: the latest).

    Raises:
        ConfigurationError: no such run (or an ambiguous prefix), or a ledger without runs.
    """
    if run_id is None:
        runs = history.runs()
        if not runs:
            raise ConfigurationError("the ledger records no run: nothing to report")
        run = runs[-1]
    else:
        run = history.run(run_id)
    records = [r for r in history.contents.records if getattr(r, "run_id", None) == run.run_id]
    position = {id(r): i for i, r in enumerate(history.contents.records)}
    last = max((position[id(r)] for r in records), default=-1)
    run_rows = [
        _row(r)
        for r in records
        if isinstance(r, RunStart | JobRecord) or (isinstance(r, RolloutEvent) and not r.target)
    ]
    targets = []
    for key in _targets_of(run, records):
        mine = [r for r in records if getattr(r, "target", None) == key]
        events = [r for r in mine if isinstance(r, RolloutEvent)]
        retrains = tuple(
            e
            for e in history.entries(key)
            if position[id(e)] <= last
            and e.metrics
            and (
                (e.action == "deploy" and e.outcome == "succeeded")
                or (e.action == "gate" and e.outcome == "rejected")
            )
        )
        alarms = [
            r
            for r in mine
            if (isinstance(r, RolloutEvent) and r.stage in ("alarm", "rollback"))
            or (
                isinstance(r, LedgerEntry)
                and (r.action in ("rollback", "restore") or r.outcome == "restored")
            )
        ]
        targets.append(
            TargetReport(
                target=key,
                timeline=_time_order(_row(r) for r in mine),
                retrains=retrains,
                run_entries=frozenset(e.id for e in retrains if e.run_id == run.run_id),
                gates=tuple(e for e in events if e.stage == "gate"),
                shadows=tuple(e for e in events if e.stage == "shadow"),
                bakes=tuple(e for e in events if e.stage == "bake"),
                alarms=tuple(sorted(alarms, key=lambda r: r.time)),
            )
        )
    return Report(
        run=run,
        run_timeline=_time_order(run_rows),
        targets=tuple(targets),
        problems=history.problems,
    )


def report_for(result: _HasRunId, ledger: _HasHistory | History) -> Report:
    """The evidence report of a :class:`~amlretrain.result.RetrainResult`'s run.

    Args:
        result: the run's result (its ``run_id`` names the run).
        ledger: the run's :class:`~amlretrain.ledger.Ledger` (read now), or a
            :class:`~amlretrain.history.History` already read.

    Raises:
        ConfigurationError: the result has no run id (a run that recorded nothing), or
            the ledger does not know its run.
    """
    if not result.run_id:
        raise ConfigurationError("this result has no run id: its run recorded nothing")
    history = ledger if isinstance(ledger, History) else ledger.history()
    return build_report(history, result.run_id)


# -- rendering --------------------------------------------------------------------------


def _text(value: Any) -> str:
    """``value`` as page text: redacted, then escaped."""
    return html.escape(redact("" if value is None else str(value)))


def _num(value: Any) -> float | None:
    """A finite number, else None (a member missing, null, text or a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _fmt(value: Any) -> str:
    number = _num(value)
    if number is None:
        return "" if value is None else str(value)
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else f"{number:.4g}"


def _summary(value: Any) -> dict[str, Any] | None:
    """A score summary fit to draw: its histogram or its quantiles, checked; else None."""
    if not isinstance(value, Mapping):
        return None
    out: dict[str, Any] = {"n": _num(value.get("n")), "mean": _num(value.get("mean"))}
    histogram = value.get("histogram")
    if isinstance(histogram, Mapping):
        edges = _numbers(histogram.get("edges"))
        counts = _numbers(histogram.get("counts"))
        if (
            edges is not None
            and counts
            and len(edges) == len(counts) + 1
            and all(a < b for a, b in itertools.pairwise(edges))
            and all(c >= 0 for c in counts)
        ):
            out["histogram"] = {"edges": edges, "counts": counts}
    quantiles = _numbers(value.get("quantiles"))
    if quantiles is not None and len(quantiles) == 5:
        out["quantiles"] = quantiles
    return out if "histogram" in out or "quantiles" in out else None


def _numbers(value: Any) -> list[float] | None:
    """A list of finite numbers, else None."""
    if not isinstance(value, list | tuple):
        return None
    numbers = [_num(v) for v in value]
    return [n for n in numbers if n is not None] if None not in numbers else None


_STYLE = """
.amlr-report{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 color:#1b1f24;max-width:1040px;margin:0 auto;padding:16px;line-height:1.4}
.amlr-report h1{font-size:1.45em;margin:.2em 0 .4em}
.amlr-report h2{font-size:1.2em;margin:1.6em 0 .4em;padding-top:.6em;border-top:2px solid #d0d7de;
 word-break:break-all}
.amlr-report h3{font-size:1.02em;margin:1.1em 0 .3em}
.amlr-report table{border-collapse:collapse;margin:.3em 0 .8em;font-size:.86em}
.amlr-report th,.amlr-report td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;
 vertical-align:top}
.amlr-report th{background:#f3f5f7}
.amlr-report td.time{white-space:nowrap}
.amlr-report td.detail{word-break:break-all;max-width:520px}
.amlr-report .none{color:#57606a;font-style:italic}
.amlr-report figure.chart{margin:.4em 0 1em;padding:0;background:#fff}
.amlr-report figure.chart svg{max-width:100%;height:auto;display:block}
.amlr-report .v-passed,.amlr-report .v-succeeded,.amlr-report .v-done{color:#116329}
.amlr-report .v-failed,.amlr-report .v-fired,.amlr-report .v-rejected,
.amlr-report .v-restored,.amlr-report .v-unknown{color:#a40e26;font-weight:600}
.amlr-report .legend span{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 .8em;
 vertical-align:middle}
"""


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, verdict: int = -1) -> str:
    """An HTML table; every cell redacted and escaped (column ``verdict`` coloured).

    No ``headers``: a table of facts, its first column the names.
    """
    head = "".join(f"<th>{_text(h)}</th>" for h in headers)
    thead = f"<thead><tr>{head}</tr></thead>" if headers else ""
    timed = bool(headers) and headers[0] == "time"
    body = []
    for row in rows:
        cells = []
        for index, value in enumerate(row):
            text = _text(value)
            if index == verdict and text:
                cells.append(f'<td class="v-{_css(text)}">{text}</td>')
            elif index == 0 and timed:
                cells.append(f'<td class="time">{text}</td>')
            elif not headers and index == 0:
                cells.append(f"<th>{text}</th>")
            elif index == len(row) - 1:
                cells.append(f'<td class="detail">{text}</td>')
            else:
                cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>{thead}<tbody>{''.join(body)}</tbody></table>"


def _css(text: str) -> str:
    return "".join(c if c.isalnum() or c == "-" else "_" for c in text)


def _none(text: str) -> str:
    return f'<p class="none">{_text(text)}</p>'


def _figure(chart_id: str, kind: str, svg: str, caption: str) -> str:
    return (
        f'<figure class="chart" id="{chart_id}" data-chart="{kind}">{svg}'
        f"<figcaption>{_text(caption)}</figcaption></figure>"
    )


class _Renderer:
    """Draws one :class:`Report` (chart ids numbered in page order)."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.charts = 0

    def _id(self, kind: str) -> str:
        self.charts += 1
        return f"chart-{self.charts}-{kind}"

    def render(self) -> str:
        run = self.report.run
        parts = [f"<style>{_STYLE}</style>", '<div class="amlr-report">']
        parts.append(f"<h1>Run {_text(run.run_id)}</h1>")
        counts = run.counts()
        said = ", ".join(f"{n} {k}" for k, n in counts.items()) if counts else "no outcome"
        facts = [
            ("command", run.command),
            ("started", run.started),
            ("host", run.host),
            ("attempts", run.attempts),
            ("targets", len(run.targets)),
            ("outcomes", said),
            ("configuration", run.fingerprint or "not recorded"),
        ]
        parts.append(_table((), facts))
        parts.append(
            '<p class="legend">Charts: <span style="background:'
            f'{_charts.INCUMBENT}"></span>incumbent / champion'
            f'<span style="background:{_charts.CANDIDATE}"></span>candidate / challenger</p>'
        )
        if self.report.problems:
            parts.append(
                _none(
                    f"{len(self.report.problems)} ledger line(s) could not be read and are "
                    "left out: " + "; ".join(str(p) for p in self.report.problems[:5])
                )
            )
        parts.append("<h2>The run</h2>")
        parts.append(self._timeline(self.report.run_timeline))
        if not self.report.targets:
            parts.append(_none("The run names no target."))
        for index, target in enumerate(self.report.targets, 1):
            parts.append(self._target(index, target))
        parts.append("</div>")
        return "\n".join(parts)

    def _timeline(self, rows: Sequence[TimelineRow]) -> str:
        if not rows:
            return _none("No record of this run.")
        return _table(
            ("time", "record", "what", "verdict", "detail"),
            ((r.time, r.kind, r.what, r.verdict, r.detail) for r in rows),
            verdict=3,
        )

    def _target(self, index: int, target: TargetReport) -> str:
        parts = [f'<section class="target" id="target-{index}">']
        parts.append(f"<h2>Target {_text(target.target)}</h2>")
        parts.append("<h3>Timeline of the run</h3>")
        parts.append(self._timeline(target.timeline))
        parts.append("<h3>Metric history across retrains</h3>")
        parts.append(self._metrics(target))
        parts.append("<h3>Gate evidence</h3>")
        parts.append(self._gates(target.gates))
        parts.append("<h3>Shadow comparison</h3>")
        parts.append(self._shadows(target.shadows, target.bakes))
        parts.append("<h3>Alarms and rollbacks</h3>")
        parts.append(self._alarms(target.alarms))
        parts.append("</section>")
        return "\n".join(parts)

    def _metrics(self, target: TargetReport) -> str:
        retrains = target.retrains
        if not retrains:
            return _none("No metrics recorded for this target's deployments.")
        names: list[str] = []
        for entry in retrains:
            names.extend(n for n in entry.metrics if n not in names)
        shown = [n for n in names if any(_num(e.metrics.get(n)) is not None for e in retrains)]
        # The metrics a gate reads first (AUC, accuracy, F1, log loss), counts last.
        shown.sort(key=_metric_rank)
        shown = shown[:MAX_METRICS]
        if not shown:
            return _none("No numeric metric recorded for this target's deployments.")
        labels = [e.time[:16].replace("T", " ") or f"#{i}" for i, e in enumerate(retrains, 1)]
        chart_id = self._id("metrics")
        svg = _charts.metric_history_chart(
            [redact(x) for x in labels],
            {redact(n): [_num(e.metrics.get(n)) for e in retrains] for n in shown},
            deployed=[e.action == "deploy" for e in retrains],
            in_run=[e.id in target.run_entries for e in retrains],
            salt=chart_id,
        )
        deployed = sum(1 for e in retrains if e.action == "deploy")
        caption = (
            f"{', '.join(shown)} at {deployed} deployment(s) and "
            f"{len(retrains) - deployed} gate refusal(s), oldest first"
        )
        more = len(names) - len(shown)
        extra = _none(f"{more} more metric(s) not charted.") if more > 0 else ""
        rows = [
            (e.time, e.action, e.outcome, *(_fmt(e.metrics.get(n)) for n in shown), e.new_model)
            for e in retrains
        ]
        table = _table(("time", "action", "outcome", *shown, "model"), rows, verdict=2)
        return _figure(chart_id, "metric-history", svg, caption) + extra + table

    def _gates(self, gates: Sequence[RolloutEvent]) -> str:
        if not gates:
            return _none("No gate evidence recorded in this run (no guarded rollout).")
        parts = []
        for event in gates:
            ev = event.evidence
            metric = str(ev.get("metric") or "metric")
            figures = {
                k: _num(ev.get(k))
                for k in ("champion", "challenger", "difference", "lower", "upper", "min_change")
            }
            if figures["difference"] is None and None not in (
                figures["champion"],
                figures["challenger"],
            ):
                figures["difference"] = figures["challenger"] - figures["champion"]  # type: ignore[operator]
            confidence = _num(ev.get("confidence"))
            verdict = f"verdict {event.verdict or 'not recorded'}"
            if any(figures[k] is not None for k in ("champion", "challenger", "difference")):
                chart_id = self._id("gate")
                svg = _charts.gate_chart(
                    metric=redact(metric),
                    confidence=confidence,
                    salt=chart_id,
                    **figures,
                )
                parts.append(_figure(chart_id, "gate", svg, f"{metric}: {verdict}"))
            else:
                parts.append(_none(f"The gate recorded no figures to chart ({verdict})."))
            names = ("metric", "n", "champion", "challenger", "difference", "lower", "upper",
                     "confidence", "resamples", "seed", "min_change", "promoted")  # fmt: skip
            rows = [(n, _fmt(ev[n])) for n in names if n in ev]
            rows += [("verdict", event.verdict), ("time", event.time)]
            if event.message:
                rows.append(("message", event.message))
            parts.append(_table(("figure", "value"), rows))
        return "\n".join(parts)

    def _shadows(self, shadows: Sequence[RolloutEvent], bakes: Sequence[RolloutEvent]) -> str:
        parts = []
        if not shadows:
            parts.append(_none("No shadow comparison recorded in this run (no guarded rollout)."))
        for event in shadows:
            ev = event.evidence
            incumbent, candidate = _summary(ev.get("incumbent")), _summary(ev.get("candidate"))
            drawable = [s for s in (incumbent, candidate) if s]
            if drawable and not (
                all("histogram" in s for s in drawable) or all("quantiles" in s for s in drawable)
            ):
                # one has only a histogram, the other only quantiles: draw what both have
                incumbent, candidate = (
                    s if s and "quantiles" in s else None for s in (incumbent, candidate)
                )
            if incumbent or candidate:
                chart_id = self._id("shadow")
                svg = _charts.shadow_chart(incumbent, candidate, salt=chart_id)
                caption = f"score distributions on {_fmt(ev.get('rows')) or '?'} probe rows"
                parts.append(_figure(chart_id, "shadow", svg, caption))
            else:
                parts.append(_none("The shadow run recorded no score distribution to chart."))
            rows: list[tuple[str, str, str]] = []
            for name in ("rows", "agreement", "psi", "error_rate", "p95_ms"):
                if name in ev:
                    rows.append((name, _fmt(ev[name]), ""))
            for side in ("incumbent", "candidate"):
                summary = ev.get(side)
                if isinstance(summary, Mapping):
                    quantiles = summary.get("quantiles")
                    said = (
                        ", ".join(_fmt(q) for q in quantiles) if isinstance(quantiles, list) else ""
                    )
                    rows.append(
                        (f"{side} scores", f"n {_fmt(summary.get('n'))}, mean "
                         f"{_fmt(summary.get('mean'))}", f"5/25/50/75/95th: {said}")
                    )  # fmt: skip
            rows.append(("verdict", event.verdict, event.message or ""))
            parts.append(_table(("figure", "value", "detail"), rows))
        if bakes:
            parts.append("<h3>Bake rounds</h3>")
            names = ("rows", "agreement", "psi", "error_rate", "p95_ms")
            parts.append(
                _table(
                    ("time", "verdict", *names, "message"),
                    (
                        (b.time, b.verdict, *(_fmt(b.evidence.get(n)) for n in names), b.message)
                        for b in bakes
                    ),
                    verdict=1,
                )
            )
        return "\n".join(parts)

    def _alarms(self, alarms: Sequence[RolloutEvent | LedgerEntry]) -> str:
        if not alarms:
            return _none("No alarm fired and nothing was rolled back in this run.")
        rows = []
        for record in alarms:
            if isinstance(record, LedgerEntry):
                rows.append(
                    (
                        record.time,
                        f"outcome: {record.action}",
                        record.outcome,
                        "",
                        f"serving {record.serving_model or 'unknown'}"
                        + (f"; {record.message}" if record.message else ""),
                    )
                )
                continue
            ev = record.evidence
            if record.stage == "alarm":
                what = f"alarm {ev.get('alarm') or '(unnamed)'}"
                figures = f"{_fmt(ev.get('value'))} against threshold {_fmt(ev.get('threshold'))}"
            else:
                what = "rollback"
                figures = ""
            rows.append((record.time, what, record.verdict, figures, record.message or ""))
        return _table(("time", "what", "verdict", "value", "detail"), rows, verdict=2)
