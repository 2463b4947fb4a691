"""A run's per-target table: rows, counts, the text summary, a DataFrame, a halted run."""

from __future__ import annotations

import sys

import pytest

from amlretrain.cli._common import exit_code_for
from amlretrain.errors import RunHalted
from amlretrain.result import RetrainResult, TargetOutcome

SAS = "?sv=2020&sig=SECRETSIG"


def _fleet(halted: int | None = None) -> RetrainResult:
    ok = TargetOutcome(
        target="ws/alpha",
        key="classic:w/ws/alpha",
        status="succeeded",
        data="data/alpha.csv",
        job_id="0123456789abcdef",
        metrics={"AUC": 0.91234, "Accuracy": 0.8, "F1": 0.7},
        gate_passed=True,
        serving_model="https://a.blob/models/alpha.ilearner",
        new_model="https://a.blob/models/alpha.ilearner",
        seconds=2.04,
    )
    bad = TargetOutcome(
        target="ws/beta",
        key="classic:w/ws/beta",
        status="failed",
        data="data/beta.csv",
        error=f"job 42 ended Failed: column Age is missing (https://a.blob/in/beta.csv{SAS})",
        serving_model="https://a.blob/models/old.ilearner",
    )
    late = TargetOutcome(target="ws/gamma", key="classic:w/ws/gamma", status="halted")
    return RetrainResult(
        steps=(),
        targets=(ok, bad, late),
        run_id="run-1",
        halted_wave=halted,
        key_metrics=("AUC",),
    )


def test_rows_hold_the_per_target_table_redacted() -> None:
    rows = _fleet().rows()
    assert [r["target"] for r in rows] == ["ws/alpha", "ws/beta", "ws/gamma"]
    assert rows[0]["data"] == "data/alpha.csv"
    assert rows[0]["job_id"] == "0123456789abcdef"
    assert rows[0]["gate"] == "passed" and rows[1]["gate"] is None
    assert rows[1]["status"] == "failed"
    assert "SECRETSIG" not in str(rows)


def test_counts_follow_the_status_order() -> None:
    counts = _fleet().counts()
    assert counts == {"succeeded": 1, "failed": 1, "halted": 1}
    assert list(counts) == ["succeeded", "failed", "halted"]


def test_the_summary_is_one_table_and_a_line_of_counts() -> None:
    text = _fleet(halted=1).summary()
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("target"))
    assert header.split() == [
        "target",
        "data",
        "job",
        "metrics",
        "gate",
        "status",
        "serving",
        "time",
    ]
    alpha = next(line for line in lines if line.startswith("ws/alpha"))
    assert "data/alpha.csv" in alpha and "0123456789ab " in alpha and "AUC 0.9123" in alpha
    assert "Accuracy" not in alpha  # the key metrics only
    assert "    job 42 ended Failed: column Age is missing" in text
    assert "1 succeeded, 1 failed, 1 halted (run run-1)" in lines
    assert "HALTED in wave 1" in text
    assert "SECRETSIG" not in text


def test_a_single_target_run_leaves_empty_columns_out() -> None:
    result = RetrainResult(
        steps=(),
        targets=(TargetOutcome(target="rg/svc", key="arm:x", status="skipped", seconds=1.5),),
    )
    header = next(line for line in result.summary().splitlines() if line.startswith("target"))
    assert header.split() == ["target", "status", "serving", "time"]


def test_a_halted_run_raises_run_halted_with_exit_15() -> None:
    with pytest.raises(RunHalted, match="halted in wave 2: 1 target") as caught:
        _fleet(halted=2).raise_for_status()
    assert caught.value.wave == 2
    assert [f[0] for f in caught.value.failures] == ["ws/beta", "ws/gamma"]
    assert exit_code_for(caught.value) == 15


def test_the_json_document_has_the_run_id_counts_and_per_target_columns() -> None:
    data = _fleet(halted=1).to_dict()
    assert data["run_id"] == "run-1" and data["halted_wave"] == 1
    assert data["counts"] == {"succeeded": 1, "failed": 1, "halted": 1}
    assert data["targets"][0]["data"] == "data/alpha.csv"
    assert data["targets"][0]["metrics"]["AUC"] == pytest.approx(0.91234)


def test_to_frame_gives_a_dataframe_a_row_a_target() -> None:
    pd = pytest.importorskip("pandas")
    frame = _fleet().to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["target"]) == ["ws/alpha", "ws/beta", "ws/gamma"]
    assert frame.loc[0, "metric:AUC"] == pytest.approx(0.91234)
    assert frame.loc[1, "status"] == "failed"


def test_to_frame_without_pandas_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'amlretrain\[pandas\]'"):
        _fleet().to_frame()


def test_the_notebook_view_shows_the_table_and_the_counts() -> None:
    page = _fleet(halted=1)._repr_html_()
    assert "<th>data</th>" in page and "<td>data/alpha.csv</td>" in page
    assert "1 succeeded, 1 failed, 1 halted (run run-1)" in page
    assert "SECRETSIG" not in page
