"""The champion/challenger gate: its settings, the holdout split, the scores, the decision."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest

from amlretrain.champion import ChampionGate, HoldoutRows, hold_out, judge, scores_from
from amlretrain.errors import ConfigurationError
from amlretrain.studio.scoring import ScoreResult, ScoreTable
from tests.conftest import REPO
from tests.unit.test_docs_examples import python_blocks

WHERE = "retrain.toml [rollout.champion]"


def _gate(**changes: Any) -> ChampionGate:
    settings: dict[str, Any] = {"label": "y", "holdout_fraction": 0.2, "resamples": 200}
    settings.update(changes)
    return ChampionGate(**settings)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("label", "", "label: must be the label column's name, not ''"),
        ("metric", "f1", "metric: must be one of auc, accuracy, log_loss, not 'f1'"),
        ("min_change", -0.01, "min_change: must be a finite number of at least 0, not -0.01"),
        ("min_change", math.inf, "min_change: .* not inf"),
        ("min_change", True, "min_change: .* not True"),
        ("confidence", 1.0, "confidence: must be a number between 0.5 and 1 .* not 1.0"),
        ("confidence", 0.5, "confidence: .* not 0.5"),
        ("resamples", 99, "resamples: must be an integer of at least 100, not 99"),
        ("resamples", 1000.0, "resamples: .* not 1000.0"),
        ("seed", "7", "seed: must be an integer, not '7'"),
        ("holdout", 3, "holdout: must be the path of a CSV file, not 3"),
        ("holdout_fraction", 0.5, "holdout_fraction: must be .* not 0.5"),
        ("holdout_fraction", 0, "holdout_fraction: must be .* not 0"),
    ],
)
def test_each_bad_setting_is_refused_naming_its_key_and_value(
    key: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _gate(**{key: value})


def test_a_holdout_is_either_a_file_or_a_fraction() -> None:
    with pytest.raises(ConfigurationError, match=r"holdout, holdout_fraction: give one of them"):
        _gate(holdout="holdout.csv")
    with pytest.raises(ConfigurationError, match=r"holdout, holdout_fraction: one is required"):
        ChampionGate(label="y")
    gate = ChampionGate(label="y", holdout="data/holdout.csv")
    assert gate.holdout == Path("data/holdout.csv") and gate.holdout_fraction is None
    assert (gate.metric, gate.min_change, gate.confidence, gate.resamples, gate.seed) == (
        "auc",
        0.0,
        0.95,
        1000,
        0,
    )


def test_a_toml_table_is_read_and_unknown_keys_are_named_with_where() -> None:
    table = {"label": "y", "holdout": "hold.csv", "metric": "log_loss", "min_change": 0.01}
    gate = ChampionGate.from_mapping(table, where=WHERE, base=Path("/etc/retrain"))
    assert gate.holdout == Path("/etc/retrain/hold.csv") and gate.metric == "log_loss"
    with pytest.raises(ConfigurationError) as caught:
        ChampionGate.from_mapping({**table, "min_chnage": 0.1, "alpha": 1}, where=WHERE)
    assert str(caught.value).startswith(f"{WHERE}: unknown keys alpha, min_chnage")
    with pytest.raises(ConfigurationError, match=r"^retrain.toml \[rollout.champion\]: label"):
        ChampionGate.from_mapping({"holdout": "hold.csv"}, where=WHERE)
    with pytest.raises(ConfigurationError, match=r"\]: confidence: .* not 95"):
        ChampionGate.from_mapping({**table, "confidence": 95}, where=WHERE)
    with pytest.raises(ConfigurationError, match=r"must be a table"):
        ChampionGate.from_mapping([], where=WHERE)  # type: ignore[arg-type]


def _training(rows: int, *, crlf: bool = False) -> bytes:
    end = "\r\n" if crlf else "\n"
    lines = ["age,note,income"]
    lines += [f'{20 + i},"row {i}, quoted",{">50K" if i % 3 else "<=50K"}' for i in range(rows)]
    return (end.join(lines) + end).encode()


def test_hold_out_is_reproducible_with_a_seed_and_differs_with_another() -> None:
    data = _training(200)
    first = hold_out(data, 0.25, 11, "income")
    assert hold_out(data, 0.25, 11, "income") == first
    other = hold_out(data, 0.25, 12, "income")
    assert other[1].rows != first[1].rows and other[0] != first[0]
    assert len(first[1].rows) == 50


@pytest.mark.parametrize("crlf", [False, True])
def test_hold_out_loses_no_row_and_keeps_the_training_bytes_as_written(crlf: bool) -> None:
    data = _training(120, crlf=crlf)
    training, holdout = hold_out(data, 0.2, 3, "income")
    lines = data.decode().splitlines(keepends=True)
    kept = training.decode().splitlines(keepends=True)
    assert kept[0] == lines[0]  # the header, line ending and all
    assert set(kept[1:]) <= set(lines[1:])  # rows exactly as written, in order
    assert [lines.index(line) for line in kept[1:]] == sorted(lines.index(k) for k in kept[1:])
    held = {f'{age},"{note}"' for age, note in holdout.rows}
    back = {line.rsplit(",", 1)[0] for line in lines[1:] if line not in kept}
    assert held == back and len(kept) - 1 + len(holdout.rows) == 120
    assert holdout.columns == ("age", "note")
    assert holdout.rows[0][1].startswith("row ")  # the quoted comma is one value


def test_holdout_labels_follow_the_models_positive_class() -> None:
    # The trained model's classes are the sorted label values; "Scored Probabilities" is
    # the probability of the second ('>50K' sorts after '<=50K'), so that is label 1.
    _, holdout = hold_out(_training(90), 0.3, 1, "income")
    assert holdout.classes == ("<=50K", ">50K")
    ages = [int(age) for age, _ in holdout.rows]
    assert list(holdout.labels) == [int((age - 20) % 3 != 0) for age in ages]
    text = b"x,label\n" + b"".join(b"%d, %s\n" % (i, b"yes" if i % 2 else b"no") for i in range(20))
    rows = HoldoutRows.from_csv(text, "label")
    assert rows.classes == ("no", "yes") and rows.labels[:4] == (0, 1, 0, 1)


def test_hold_out_and_holdout_files_refuse_what_they_cannot_use(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"census.csv: no label column 'target'"):
        hold_out(_training(100), 0.2, 1, "target", where="census.csv")
    with pytest.raises(ConfigurationError, match=r"census.csv: 30 data rows: .* keeps 6"):
        hold_out(_training(30), 0.2, 1, "income", where="census.csv")
    with pytest.raises(ConfigurationError, match=r"holdout_fraction: .* not 0.6"):
        hold_out(_training(100), 0.6, 1, "income")
    one_class = b"x,y\n" + b"1,a\n" * 100
    with pytest.raises(ConfigurationError, match=r"1 distinct value"):
        hold_out(one_class, 0.2, 1, "y")
    with pytest.raises(ConfigurationError, match=r"data row 2 has 3 values, the header 2"):
        HoldoutRows.from_csv(b"x,y\n1,a\n2,b,3\n", "y", "h.csv")
    missing = tmp_path / "none.csv"
    with pytest.raises(ConfigurationError, match=r"none.csv: cannot read the holdout"):
        HoldoutRows.from_csv(missing, "y")
    path = tmp_path / "holdout.csv"
    path.write_bytes(b"\xef\xbb\xbfx,y\r\n1,a\r\n2,b\r\n")
    assert HoldoutRows.from_csv(path, "y").labels == (0, 1)  # a BOM and CRLF are fine


def _result(columns: tuple[str, ...], rows: tuple[tuple[Any, ...], ...]) -> ScoreResult:
    return ScoreResult(outputs={"output1": ScoreTable(columns=columns, rows=rows)})


def test_scores_are_read_from_strings_or_numbers_and_bad_ones_are_named() -> None:
    columns = ("Scored Labels", "Scored Probabilities")
    assert scores_from(_result(columns, (("a", "0.25"), ("b", 0.75), ("b", 1)))) == [
        0.25,
        0.75,
        1.0,
    ]
    lower = _result(("scored probabilities",), (("0.5",),))
    assert scores_from(lower) == [0.5]  # a service's casing is tolerated
    with pytest.raises(ConfigurationError, match=r"no column 'Scored Probabilities'.*'Score'"):
        scores_from(_result(("Score",), (("0.1",),)))
    with pytest.raises(ConfigurationError, match=r"row 1: 'Scored Probabilities' is 'n/a'"):
        scores_from(_result(columns, (("a", "0.1"), ("b", "n/a"))))
    for bad in (None, True, "nan"):
        with pytest.raises(ConfigurationError, match=r"row 0: .* not a finite number"):
            scores_from(_result(columns, (("a", bad),)))


def _paired(n: int, gain: float, seed: int) -> tuple[list[int], list[float], list[float]]:
    rng = random.Random(seed)
    labels = [rng.randrange(2) for _ in range(n)]
    shared = [rng.gauss(0, 1) for _ in range(n)]
    champion = [1.0 * y + s + rng.gauss(0, 0.5) for y, s in zip(labels, shared, strict=True)]
    challenger = [
        (1.0 + gain) * y + s + rng.gauss(0, 0.5) for y, s in zip(labels, shared, strict=True)
    ]
    return labels, champion, challenger


def test_a_clearly_better_challenger_is_promoted() -> None:
    labels, champion, challenger = _paired(600, 1.0, seed=1)
    verdict = judge(_gate(), labels, champion, challenger)
    assert verdict.promoted and verdict.lower > 0 and verdict.difference > 0.05
    assert verdict.reason.startswith("challenger promoted: auc")
    assert not judge(_gate(min_change=verdict.difference), labels, champion, challenger).promoted


def test_an_equal_challenger_is_refused_even_at_min_change_zero() -> None:
    labels, champion, _ = _paired(300, 0.0, seed=2)
    same = judge(_gate(), labels, champion, list(champion))
    assert same.difference == 0 and same.lower == 0 and not same.promoted
    assert same.reason.startswith("champion kept:")
    labels, champion, challenger = _paired(600, 1.0, seed=1)
    worse = judge(_gate(), labels, challenger, champion)
    assert worse.difference < 0 and not worse.promoted


def test_log_loss_is_lower_is_better() -> None:
    labels, champion, challenger = _paired(600, 1.0, seed=3)
    a = [1 / (1 + math.exp(-s)) for s in champion]
    b = [1 / (1 + math.exp(-s)) for s in challenger]
    better = judge(_gate(metric="log_loss"), labels, a, b)
    assert better.challenger < better.champion and better.difference > 0 and better.promoted
    assert better.difference == pytest.approx(better.champion - better.challenger)
    assert not judge(_gate(metric="log_loss"), labels, b, a).promoted
    with pytest.raises(ConfigurationError, match=r"between 0 and 1"):
        judge(_gate(metric="log_loss"), labels, champion, challenger)  # not probabilities


def test_judge_refuses_unpaired_scores_and_a_single_class() -> None:
    labels, champion, challenger = _paired(100, 0.5, seed=4)
    with pytest.raises(ConfigurationError, match=r"100 rows, the champion scored 99"):
        judge(_gate(), labels, champion[:-1], challenger)
    with pytest.raises(ConfigurationError, match=r"all of one class"):
        judge(_gate(), [1] * 100, champion, challenger)


def test_the_evidence_has_the_ledger_keys_and_is_json_ready() -> None:
    import json

    labels, champion, challenger = _paired(200, 0.5, seed=5)
    verdict = judge(_gate(seed=9, min_change=0.01), labels, champion, challenger)
    evidence = verdict.to_evidence()
    assert list(evidence) == [
        *("metric", "n", "champion", "challenger", "difference", "lower"),
        *("confidence", "resamples", "seed", "min_change", "promoted"),
    ]
    assert json.loads(json.dumps(evidence)) == evidence
    assert (evidence["n"], evidence["seed"], evidence["min_change"]) == (200, 9, 0.01)
    assert evidence["promoted"] is verdict.promoted
    assert judge(_gate(seed=9, min_change=0.01), labels, champion, challenger) == verdict


def test_the_module_examples_run() -> None:
    import doctest

    import amlretrain.champion

    result = doctest.testmod(amlretrain.champion)
    assert result.attempted > 0 and result.failed == 0


def test_the_docs_page_examples_run() -> None:
    blocks = python_blocks(REPO / "docs" / "champion.md")
    assert blocks, "docs/champion.md has no python examples"
    namespace: dict[str, Any] = {}
    for index, block in enumerate(blocks):
        exec(compile(block, f"docs/champion.md[{index}]", "exec"), namespace)
