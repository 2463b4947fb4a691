"""The emulator's learner: training, the .ilearner format, scoring and evaluation."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from importlib import resources

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amlretrain.emulator.learner import (
    LEARNER_FORMAT,
    METRIC_COLUMNS,
    LearnerError,
    Model,
    evaluate,
    evaluation_csv,
    parse_evaluation_csv,
    split_holdout,
    train,
)

DATA = resources.files("amlretrain.emulator") / "data"
FEATURES = ["age", "education_num", "hours_per_week", "capital_gain"]
SMALL = b"x1,x2,y\n1,10,no\n2,9,no\n3,8,no\n4,4,yes\n5,3,yes\n6,2,yes\n"


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.fixture(scope="module")
def old_model() -> Model:
    return train(data("census_train.csv"))


@pytest.fixture(scope="module")
def new_model() -> Model:
    return train(data("census_new.csv"))


def test_training_is_deterministic(old_model: Model) -> None:
    assert train(data("census_train.csv")).to_bytes() == old_model.to_bytes()


def test_trained_model_describes_the_csv(old_model: Model) -> None:
    assert old_model.features == tuple(FEATURES)
    assert old_model.label == "income"
    assert old_model.classes == ("<=50K", ">50K")
    assert old_model.trained_rows == 400


def test_accuracy_on_the_training_data_is_above_0_7(old_model: Model, new_model: Model) -> None:
    assert evaluate(old_model, data("census_train.csv"))["Accuracy"] > 0.7
    assert evaluate(new_model, data("census_new.csv"))["Accuracy"] > 0.7


def test_ilearner_round_trips_exactly(old_model: Model) -> None:
    blob = old_model.to_bytes()
    assert Model.from_bytes(blob) == old_model
    doc = json.loads(blob)
    assert doc["format"] == LEARNER_FORMAT
    assert list(doc) == sorted(doc)


def test_retrained_model_scores_the_sample_rows_differently(
    old_model: Model, new_model: Model
) -> None:
    sample = json.loads(data("score_rows.json"))
    old = old_model.predict(sample["ColumnNames"], sample["Values"])
    new = new_model.predict(sample["ColumnNames"], sample["Values"])
    assert len(old) == len(new) == 5
    assert sum(abs(a[1] - b[1]) > 0.05 for a, b in zip(old, new, strict=True)) >= 3


def test_predict_takes_columns_in_any_order_and_ignores_extras(old_model: Model) -> None:
    row = {"age": "40", "education_num": "13", "hours_per_week": "50", "capital_gain": "0"}
    expected = old_model.predict(FEATURES, [[row[f] for f in FEATURES]])
    columns = ["income", "capital_gain", "hours_per_week", "name", "education_num", "age"]
    shuffled = [">50K", 0, 50.0, "Ann", "13", 40]
    assert old_model.predict(columns, [shuffled]) == expected
    label, probability = expected[0]
    assert label == (">50K" if probability >= 0.5 else "<=50K")
    assert 0.0 < probability < 1.0


def test_predict_names_a_missing_feature_column(old_model: Model) -> None:
    with pytest.raises(LearnerError, match="'hours_per_week'"):
        old_model.predict(["age", "education_num", "capital_gain"], [["1", "2", "3"]])


@pytest.mark.parametrize("bad", ["forty", "", None, "nan", "inf", True])
def test_predict_names_row_and_column_of_a_non_numeric_value(old_model: Model, bad: object) -> None:
    rows: list[list[object]] = [["40", "13", "50", "0"], ["40", "13", bad, "0"]]
    with pytest.raises(LearnerError, match="data row 2, column 'hours_per_week'"):
        old_model.predict(FEATURES, rows)


def test_predict_rejects_a_row_of_the_wrong_length(old_model: Model) -> None:
    with pytest.raises(LearnerError, match="data row 1 has 3 values for 4 columns"):
        old_model.predict(FEATURES, [["40", "13", "50"]])


def test_label_defaults_to_the_last_column_and_can_be_named() -> None:
    assert train(SMALL).label == "y"
    model = train(b"y,x1\nno,1\nno,2\nyes,5\nyes,6\n", label="y")
    assert model.features == ("x1",)
    assert model.predict(["x1"], [["1"], ["6"]])[0][0] == "no"
    assert model.predict(["x1"], [["1"], ["6"]])[1][0] == "yes"


def test_bom_crlf_blank_lines_and_padding_are_tolerated() -> None:
    messy = b"\xef\xbb\xbf" + SMALL.replace(b"\n", b"\r\n").replace(b"no", b" no ") + b"\r\n\r\n"
    assert train(messy) == train(SMALL)


@pytest.mark.parametrize(
    ("csv_bytes", "message"),
    [
        (b"", "CSV is empty"),
        (b"\n\n", "CSV is empty"),
        (b"x1,x2,y\n", "header but no data rows"),
        (b"x1,x2,y\n1,2,no\n3,yes\n", "data row 2 has 2 values, the header 3"),
        (b"x1,x2,y\n1,2,no\n3,4,no\n", r"'y' has 1 distinct value\(s\) \['no'\]"),
        (b"x1,x2,y\n1,2,a\n3,4,b\n5,6,c\n", "has 3 distinct value"),
        (b"x1,x2,y\n1,2,no\n3,four,yes\n", "data row 2, column 'x2': 'four' is not a number"),
        (b"x1,x1,y\n1,2,no\n", "duplicate column names"),
        (b"y\nno\nyes\n", "at least one feature column"),
        (b"x1,y\n\xff,no\n", "not UTF-8"),
    ],
)
def test_bad_training_csv_raises_a_helpful_learner_error(csv_bytes: bytes, message: str) -> None:
    with pytest.raises(LearnerError, match=message):
        train(csv_bytes)


def test_unknown_label_column_is_named() -> None:
    with pytest.raises(LearnerError, match="label column 'income' not in the header"):
        train(SMALL, label="income")


def test_learner_error_is_a_value_error() -> None:
    assert issubclass(LearnerError, ValueError)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\x00\x01binary", "not UTF-8 JSON"),
        (b"[1, 2]", "format: 'list'"),
        (b'{"format": "something-else/1"}', "format: 'something-else/1'"),
    ],
)
def test_from_bytes_rejects_what_is_not_our_format(blob: bytes, message: str) -> None:
    with pytest.raises(LearnerError, match=message):
        Model.from_bytes(blob)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("weights", None, "'weights': expected list of float"),
        ("weights", [1.0, "x", 0.0, 0.0], "'weights': expected list of float"),
        ("bias", True, "'bias': expected float"),
        ("classes", ["a", "b", "c"], "expected 2 values"),
        ("trained_rows", 1.5, "'trained_rows': expected int"),
        ("means", [0.0], "differ in length"),
        ("scales", [1.0, 1.0, 0.0, 1.0], "scales > 0"),
    ],
)
def test_from_bytes_names_the_bad_field(
    old_model: Model, field: str, value: object, message: str
) -> None:
    doc = json.loads(old_model.to_bytes())
    doc[field] = value
    with pytest.raises(LearnerError, match=message):
        Model.from_bytes(json.dumps(doc).encode())


def test_from_bytes_accepts_integral_json_numbers(old_model: Model) -> None:
    doc = json.loads(old_model.to_bytes())
    doc["bias"] = 0
    assert Model.from_bytes(json.dumps(doc).encode()) == attrs.evolve(old_model, bias=0)


def test_evaluate_reports_studio_metrics(old_model: Model) -> None:
    metrics = evaluate(old_model, data("census_train.csv"))
    assert tuple(metrics) == METRIC_COLUMNS
    assert all(isinstance(v, float) for v in metrics.values())
    counts = [metrics[k] for k in ("True Positive", "False Negative", "False Positive")]
    assert sum(counts) + metrics["True Negative"] == 400
    tp, fn, fp = counts
    assert metrics["Precision"] == pytest.approx(tp / (tp + fp))
    assert metrics["Recall"] == pytest.approx(tp / (tp + fn))
    assert metrics["Threshold"] == 0.5
    assert 0.8 < metrics["AUC"] <= 1.0
    assert 0.0 < metrics["Training Log Loss"] < 1.0


def test_auc_is_one_for_a_perfect_ranking_and_half_for_all_ties() -> None:
    model = train(SMALL)
    assert evaluate(model, SMALL)["AUC"] == 1.0
    flat = attrs.evolve(model, weights=(0.0, 0.0))
    assert evaluate(flat, SMALL)["AUC"] == 0.5


def test_a_model_on_new_data_scores_worse_than_on_its_own(old_model: Model) -> None:
    own = evaluate(old_model, data("census_train.csv"))["AUC"]
    assert evaluate(old_model, data("census_new.csv"))["AUC"] < own - 0.2


@pytest.mark.parametrize(
    ("csv_bytes", "message"),
    [
        (b"x1,x2\n1,2\n", "label column 'y' not in the header"),
        (b"x1,y\n1,no\n", "missing feature column\\(s\\): 'x2'"),
        (b"x1,x2,y\n1,2,maybe\n", "label 'maybe' is not in"),
        (b"x1,x2,y\n1,2,no\n3,4,no\n", "both label values"),
    ],
)
def test_evaluate_rejects_unusable_data(csv_bytes: bytes, message: str) -> None:
    with pytest.raises(LearnerError, match=message):
        evaluate(train(SMALL), csv_bytes)


def test_evaluation_csv_round_trips(old_model: Model) -> None:
    metrics = evaluate(old_model, data("census_train.csv"))
    text = evaluation_csv(metrics)
    header, values, *rest = text.decode().splitlines()
    assert header.split(",") == list(METRIC_COLUMNS)
    assert values.split(",")[0].isdigit()  # counts are written as integers
    assert rest == []
    assert parse_evaluation_csv(text) == metrics


def test_evaluation_csv_requires_every_metric() -> None:
    with pytest.raises(LearnerError, match="missing: AUC"):
        evaluation_csv({k: 1.0 for k in METRIC_COLUMNS if k != "AUC"})


def test_parse_evaluation_csv_is_tolerant() -> None:
    text = b"Positive Label,auc,F-Score,ACCURACY,Extra\n>50K,0.9,0.7,0.8,3\n"
    assert parse_evaluation_csv(text) == {"AUC": 0.9, "F1 Score": 0.7, "Accuracy": 0.8, "Extra": 3}


def test_parse_evaluation_csv_rejects_a_non_numeric_metric() -> None:
    with pytest.raises(LearnerError, match="'AUC': 'high' is not a number"):
        parse_evaluation_csv(b"AUC\nhigh\n")


def test_split_holdout_puts_every_fourth_row_in_the_holdout() -> None:
    rows = [f"{i},{i % 2}" for i in range(10)]
    training, holdout = split_holdout(("x,y\n" + "\n".join(rows)).encode())
    assert holdout.decode().splitlines() == ["x,y", "3,1", "7,1"]
    assert training.decode().splitlines() == ["x,y", *(rows[i] for i in (0, 1, 2, 4, 5, 6, 8, 9))]


def test_split_holdout_of_the_census_data_trains_and_evaluates() -> None:
    training, holdout = split_holdout(data("census_train.csv"))
    assert len(holdout.splitlines()) == 1 + 100
    assert evaluate(train(training), holdout)["Accuracy"] > 0.7


@pytest.mark.parametrize(
    ("csv_bytes", "fraction", "message"),
    [
        (SMALL, 0.0, "between 0 and 1"),
        (SMALL, 1.0, "between 0 and 1"),
        (b"x,y\n1,a\n", 0.25, "too few"),
    ],
)
def test_split_holdout_rejects_bad_input(csv_bytes: bytes, fraction: float, message: str) -> None:
    with pytest.raises(LearnerError, match=message):
        split_holdout(csv_bytes, fraction)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_give_a_model_or_a_learner_error(blob: bytes) -> None:
    with contextlib.suppress(LearnerError):
        train(blob, iterations=5)


cells = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=5),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(cells, min_size=1, max_size=4), min_size=0, max_size=8))
def test_any_table_gives_a_model_or_a_learner_error(table: list[list[str]]) -> None:
    out = io.StringIO()
    csv.writer(out).writerows(table)
    try:
        model = train(out.getvalue().encode(), iterations=5)
    except LearnerError:
        return
    assert Model.from_bytes(model.to_bytes()) == model


def test_a_constant_feature_column_trains_and_scores() -> None:
    model = train(b"x1,c,y\n1,7,no\n2,7,no\n5,7,yes\n6,7,yes\n")
    assert model.scales[1] == 1.0
    assert [label for label, _ in model.predict(["x1", "c"], [["1", "7"], ["6", "100"]])] == [
        "no",
        "yes",
    ]


@pytest.mark.parametrize("name", ["predictive_definition.json", "training_definition.json"])
def test_sample_definitions_are_consistent(name: str) -> None:
    props = json.loads(data(name))["properties"]
    assert props["packageType"] == "Graph"
    assert "key" not in props["storageAccount"]
    assert re.fullmatch("[0-9a-f]{32}", props["machineLearningWorkspace"]["id"])
    nodes = props["package"]["nodes"]
    for node_id, node in nodes.items():
        kinds = [k for k in ("assetId", "inputId", "outputId") if k in node]
        assert len(kinds) == 1, node_id
        if "assetId" in node:
            assert node["assetId"] in props["assets"], node_id
        if "inputId" in node:
            assert node["inputId"] in props["input"]["properties"], node_id
        if "outputId" in node:
            assert node["outputId"] in props["output"]["properties"], node_id
    for edge in props["package"]["edges"]:
        assert edge["sourceNodeId"] in nodes, edge
        assert edge["targetNodeId"] in nodes, edge
    columns, row = props["exampleRequest"]["inputs"]["input1"]
    assert columns == list(props["input"]["properties"]["input1"]["properties"])
    assert len(row) == len(columns)
    trained = [a for a in props["assets"].values() if a["name"].endswith("[trained model]")]
    if name.startswith("predictive"):
        assert columns == FEATURES
        assert [a["type"] for a in trained] == ["Resource"]
        scored = props["output"]["properties"]["output1"]["properties"]
        assert list(scored) == ["Scored Labels", "Scored Probabilities"]
    else:
        assert columns == [*FEATURES, "income"]
        assert trained == []
        assert set(props["output"]["properties"]) == {"output1", "output2"}
        assert list(props["output"]["properties"]["output2"]["properties"]) == list(METRIC_COLUMNS)


def test_training_definition_example_row_trains_with_the_census_header() -> None:
    props = json.loads(data("training_definition.json"))["properties"]
    columns, _ = props["exampleRequest"]["inputs"]["input1"]
    header = data("census_train.csv").decode().splitlines()[0]
    assert header.split(",") == columns
