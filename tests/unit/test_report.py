"""The evidence report (amlretrain.report, ``amlretrain report``) from a handwritten ledger.

What a browser makes of the page (no console error, every chart drawn) is
tests/browser/test_report_browser.py; here: what the page says, per target and section,
that it escapes what it shows and names no URL, that missing evidence is said in words,
and the command's exit codes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from amlretrain.cli import main
from amlretrain.errors import ConfigurationError
from amlretrain.history import History
from amlretrain.ledger import Ledger
from amlretrain.records import LedgerContents, RolloutEvent, RunStart
from amlretrain.report import Report, build_report, report_for
from tests.browser.sample_ledger import (
    ARM,
    CLASSIC,
    OLD_RUNS,
    PLAIN_RUN,
    ROLLOUT_RUN,
    write_sample_ledger,
)

try:
    import matplotlib  # noqa: F401
except ImportError:  # the dev extra has it; under CI a missing one fails the run
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("the report extra: pip install -e '.[dev]'", allow_module_level=True)

SECTIONS = (
    "Timeline of the run",
    "Metric history across retrains",
    "Gate evidence",
    "Shadow comparison",
    "Alarms and rollbacks",
)
#: A URL in an attribute: a resource the page would load, or a link.
RESOURCE = re.compile(
    r"""\b(?:src|href|action|data|poster)\s*=\s*(?:["'](?!#|data:)|(?!["'#]|data:))"""
)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    return write_sample_ledger(tmp_path_factory.mktemp("report") / "ledger.jsonl")


@pytest.fixture(scope="module")
def page(ledger: Ledger) -> str:
    return build_report(ledger.history(), ROLLOUT_RUN).html()


def sections(page: str) -> dict[str, str]:
    """Each target's section of the page, by its key (as shown, escaped)."""
    found = re.findall(r'<section class="target" id="target-\d+">(.*?)</section>', page, re.S)
    out = {}
    for body in found:
        key = re.search(r"<h2>Target (.*?)</h2>", body)
        assert key is not None
        out[key.group(1)] = body
    return out


def test_every_target_has_every_section_with_its_evidence(page: str) -> None:
    by_target = sections(page)
    assert list(by_target) == [ARM, CLASSIC]
    for body in by_target.values():
        positions = [body.index(f"<h3>{name}</h3>") for name in SECTIONS]
        assert positions == sorted(positions)
        for kind in ("metric-history", "gate", "shadow"):
            assert f'data-chart="{kind}"' in body
        assert "<svg" in body
    arm, classic = by_target[ARM], by_target[CLASSIC]
    assert "No alarm fired" in arm
    # the classic target's alarm and rollback, with their figures
    alarms = classic[classic.index("<h3>Alarms and rollbacks</h3>") :]
    assert "alarm psi" in alarms and "0.31 against threshold 0.2" in alarms
    assert "outcome: rollback" in alarms and "the incumbent serves again" in alarms
    # the gate's figures and the shadow's
    for name, value in [("lower", "0.006"), ("upper", "0.034"), ("min_change", "0"),
                        ("agreement", "0.93"), ("psi", "0.041"), ("p95_ms", "212")]:  # fmt: skip
        assert re.search(rf"<td>{name}</td><td[^>]*>{value}</td>", arm), name
    assert "Bake rounds" in classic and 'class="v-failed">failed' in classic


def test_the_run_timeline_and_the_target_timelines_are_in_time_order(page: str) -> None:
    for body in [page, *sections(page).values()]:
        times = re.findall(r'<td class="time">([^<]*)</td>', body.split("<h3>Metric")[0])
        assert times, "a timeline with no rows"
        if body is page:  # the run's own table comes first on the page
            times = times[: times.index(min(times)) + 5]
        assert times == sorted(times)
    run_part = page[page.index("<h2>The run</h2>") : page.index('<section class="target"')]
    for kind in ("run-start", "job", "rollout:wave", "rollout:notify"):
        assert f"<td>{kind}</td>" in run_part


def test_the_metric_history_covers_the_retrains_up_to_the_run(ledger: Ledger) -> None:
    report = build_report(ledger.history(), ROLLOUT_RUN)
    arm = next(t for t in report.targets if t.target == ARM)
    assert [(e.action, e.metrics["AUC"]) for e in arm.retrains] == [
        ("deploy", 0.81),
        ("gate", 0.79),
        ("deploy", 0.84),
        ("gate", 0.77),
        ("deploy", 0.86),
    ]  # the plain deploy after the run (0.87) is not in it
    assert len(arm.run_entries) == 1
    later = build_report(ledger.history(), PLAIN_RUN).targets[0]
    assert later.retrains[-1].metrics["AUC"] == 0.87


def test_a_run_without_a_rollout_shows_its_timeline_and_metrics_and_says_the_rest(
    ledger: Ledger,
) -> None:
    report = build_report(ledger.history())  # the latest run: the plain deploy
    assert report.run.run_id == PLAIN_RUN
    page = report.html()
    (body,) = sections(page).values()
    assert 'data-chart="metric-history"' in body
    assert 'data-chart="gate"' not in body and 'data-chart="shadow"' not in body
    assert "No gate evidence recorded in this run" in body
    assert "No shadow comparison recorded in this run" in body
    assert "No alarm fired" in body


def test_missing_or_malformed_evidence_is_said_not_crashed_on(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    run = "run-x"
    ledger.append(RunStart.new(run_id=run, command="retrain", targets=["t"]))
    for stage, evidence in [
        ("gate", {}),
        ("gate", {"champion": "high", "lower": None}),
        ("shadow", {"incumbent": {"histogram": {"edges": [0, 1], "counts": [1, 2]}}}),
        ("shadow", {"incumbent": {"quantiles": [1, 2]}, "candidate": "no"}),
        ("shadow", {"incumbent": {"quantiles": [0.1, 0.2, 0.3, 0.4, 0.5]},
                    "candidate": {"histogram": {"edges": [0, 0.5, 1], "counts": [3, 4]}}}),
        ("bake", {"psi": float("nan")}),
        ("alarm", {}),
    ]:  # fmt: skip
        ledger.append(RolloutEvent.new(run_id=run, stage=stage, verdict="", target="t",
                                       evidence=evidence))  # fmt: skip
    page = build_report(ledger.history(), run).html()
    assert page.count("The gate recorded no figures to chart") == 2
    assert page.count("recorded no score distribution to chart") == 2
    # one side with quantiles only, the other a histogram only: drawn from what both have
    assert page.count('data-chart="shadow"') == 1
    assert "No metrics recorded" in page
    assert "alarm (unnamed)" in page


def test_a_hostile_target_name_is_escaped(tmp_path: Path) -> None:
    hostile = "classic:ws/<script>alert(1)</script>/\"onload='x'&"
    ledger = write_sample_ledger(tmp_path / "ledger.jsonl", hostile_target=hostile)
    page = build_report(ledger.history(), ROLLOUT_RUN).html()
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "onload='x'" not in page and "onload=&#x27;x&#x27;" in page


def test_secrets_in_messages_are_redacted(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.append(RunStart.new(run_id="run-s", command="retrain", targets=["t"]))
    # a record written by another tool, past the records' own redaction
    secret = "AccountKey=" + "c2VjcmV0" * 7  # fake, built here so no file holds a key
    event = RolloutEvent(id="e1", time="2025-01-01T00:00:00.000Z", run_id="run-s",
                         stage="notify", verdict="failed", target="t", message=secret)  # fmt: skip
    history = ledger.history()
    contents = LedgerContents(records=(*history.contents.records, event))
    page = build_report(History(contents), "run-s").html()
    assert "c2VjcmV0c2Vj" not in page


def test_the_page_names_no_url_outside_its_text(page: str) -> None:
    assert "<script" not in page
    assert "@import" not in page
    assert re.findall(r"url\((?!#)", page) == []  # clip paths name their own ids only
    refs = [m.group(0) for m in RESOURCE.finditer(page)]
    assert refs == [], f"a resource or link attribute: {refs[:5]}"
    # the only http(s) text is the models' blob URLs, shown as text
    tags = re.findall(r"<[^>]*https?://[^>]*>", page)
    assert tags == []
    assert "xmlns" not in page and "<?xml" not in page and "DOCTYPE svg" not in page
    # the check itself can fail
    assert RESOURCE.search('<img src="https://cdn.example/x.png">')
    assert RESOURCE.search("<link href=http://x/y.css>")
    assert RESOURCE.search('<image xlink:href="http://x/y.png"/>')
    assert not RESOURCE.search('<link rel="icon" href="data:,">')
    assert not RESOURCE.search('<use xlink:href="#m1"/>')


def test_each_chart_has_a_unique_id_and_the_same_report_draws_the_same_page(
    ledger: Ledger, page: str
) -> None:
    ids = re.findall(r'<figure class="chart" id="([^"]+)"', page)
    assert len(ids) == 6 and len(set(ids)) == 6
    svg_ids = re.findall(r'<[^>]*\bid="([^"]+)"', page)
    assert len(svg_ids) > 100 and len(svg_ids) == len(set(svg_ids)), "an id used twice"
    referenced = set(re.findall(r'(?:url\(|href=")#([^")]+)', page))
    assert referenced and referenced <= set(svg_ids), "a reference to no id"
    assert build_report(ledger.history(), ROLLOUT_RUN).html() == page


def test_jupyter_shows_the_same_charts(ledger: Ledger, page: str) -> None:
    report = build_report(ledger.history(), ROLLOUT_RUN)
    fragment = report._repr_html_()
    assert fragment in page
    assert "<html" not in fragment and fragment.count("<svg") == page.count("<svg") == 6


def test_an_unknown_or_ambiguous_run_is_a_configuration_error(ledger: Ledger) -> None:
    with pytest.raises(ConfigurationError, match="no run 'run-nope'"):
        build_report(ledger.history(), "run-nope")
    with pytest.raises(ConfigurationError, match="ambiguous"):
        build_report(ledger.history(), "run-2025")
    assert build_report(ledger.history(), OLD_RUNS[0][:12]).run.run_id == OLD_RUNS[0]
    with pytest.raises(ConfigurationError, match="no run"):
        build_report(History(LedgerContents(records=())))


def test_report_for_a_result(ledger: Ledger) -> None:
    report = report_for(SimpleNamespace(run_id=ROLLOUT_RUN), ledger)
    assert isinstance(report, Report) and report.run.run_id == ROLLOUT_RUN
    assert report_for(SimpleNamespace(run_id=ROLLOUT_RUN), ledger.history()) == report
    with pytest.raises(ConfigurationError, match="no run id"):
        report_for(SimpleNamespace(run_id=None), ledger)


def test_save_writes_the_page(ledger: Ledger, page: str, tmp_path: Path) -> None:
    out = build_report(ledger.history(), ROLLOUT_RUN).save(tmp_path / "r.html")
    assert out.read_text(encoding="utf-8") == page


def test_without_matplotlib_the_error_names_the_extra(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = build_report(ledger.history(), ROLLOUT_RUN)  # building needs no matplotlib
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=re.escape("pip install 'amlretrain[report]'")):
        report.html()


def test_importing_the_package_and_the_cli_does_not_import_matplotlib() -> None:
    code = (
        "import sys, amlretrain, amlretrain.report, amlretrain.cli\n"
        "amlretrain.cli.build_parser()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# -- the command ------------------------------------------------------------------------


def test_the_command_writes_the_latest_run_by_default(
    ledger: Ledger,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--ledger", ledger_path(ledger)]) == 0
    expected = f"report-{PLAIN_RUN}.html"
    assert capsys.readouterr().out == f"{expected}\n"
    assert "<svg" in (tmp_path / expected).read_text(encoding="utf-8")


def test_the_command_writes_a_run_to_the_file_asked(
    ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    assert main(["report", ROLLOUT_RUN[:14], "-o", str(out), "--ledger", ledger_path(ledger)]) == 0
    assert capsys.readouterr().out == f"{out}\n"
    assert f"Run {ROLLOUT_RUN}" in out.read_text(encoding="utf-8")
    # an existing file is kept, unless --force
    out.write_text("mine", encoding="utf-8")
    assert main(["report", ROLLOUT_RUN, "-o", str(out), "--ledger", ledger_path(ledger)]) == 4
    assert "exists: pass --force" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == "mine"
    args = ["report", ROLLOUT_RUN, "-o", str(out), "--force", "--ledger", ledger_path(ledger)]
    assert main(args) == 0
    assert "<svg" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("run_id", "message"),
    [("run-nope", "no run 'run-nope' in the ledger"), ("run-2025", "is ambiguous")],
)
def test_the_command_exits_4_for_an_unknown_run(
    ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str], run_id: str, message: str
) -> None:
    out = tmp_path / "r.html"
    assert main(["report", run_id, "-o", str(out), "--ledger", ledger_path(ledger)]) == 4
    err = capsys.readouterr().err
    assert message in err and "(ConfigurationError)" in err
    assert not out.exists()


def test_the_command_exits_4_for_a_ledger_without_runs_or_a_missing_folder(
    ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = str(tmp_path / "empty.jsonl")
    assert main(["report", "-o", str(tmp_path / "r.html"), "--ledger", empty]) == 4
    assert "records no run" in capsys.readouterr().err
    out = tmp_path / "no" / "such" / "r.html"
    assert main(["report", "-o", str(out), "--ledger", ledger_path(ledger)]) == 4
    assert "is not a folder" in capsys.readouterr().err


def test_the_command_exits_2_for_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--ledger", "a", "--config", "b"])
    assert exit_.value.code == 2
    capsys.readouterr()


def ledger_path(ledger: Ledger) -> str:
    return str(ledger.backend.path)  # type: ignore[attr-defined]


def test_the_guide_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import REPO

    text = (REPO / "docs" / "report.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    assert len(blocks) == 2, "docs/report.md has two python examples"
    monkeypatch.chdir(tmp_path)
    ledger = write_sample_ledger(tmp_path / ".amlretrain" / "ledger.jsonl")
    namespace: dict[str, object] = {}
    for index, block in enumerate(blocks):
        exec(compile(block, f"docs/report.md[{index}]", "exec"), namespace)
    assert (tmp_path / "report.html").read_text(encoding="utf-8") == namespace["page"]
    assert f"Run {PLAIN_RUN}" in str(namespace["page"])
    save_report = namespace["save_report"]
    assert callable(save_report)
    written = save_report(SimpleNamespace(run_id=ROLLOUT_RUN), ledger)
    assert written == Path(f"report-{ROLLOUT_RUN}.html") and written.is_file()


def test_the_metric_history_charts_the_gate_s_metrics_before_the_counts() -> None:
    from amlretrain.report import _metric_rank

    names = ["True Positive", "False Negative", "Average Log Loss", "Area Under Curve", "F1"]
    assert sorted(names, key=_metric_rank)[:3] == ["Area Under Curve", "F1", "Average Log Loss"]


def test_a_job_being_submitted_is_not_called_unanswered() -> None:
    from amlretrain.records import JobRecord
    from amlretrain.report import _row

    submitting = _row(JobRecord.new(run_id="r", job_id="", status="Submitting"))
    lost = _row(JobRecord.new(run_id="r", job_id="", status="Orphaned"))
    named = _row(JobRecord.new(run_id="r", job_id="job-1", status="Submitted"))
    assert "comes with the submit's answer" in submitting.what
    assert "got no answer" in lost.what
    assert named.what == "job-1"
