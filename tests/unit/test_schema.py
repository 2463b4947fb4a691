"""Training data against the training service's expected columns (a tolerant swagger read)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from amlretrain import ConfigurationError
from amlretrain.studio.schema import check_columns, data_columns, expected_columns

COLUMNS = {"age": {"type": "integer"}, "Income": {"type": "string"}}


@pytest.mark.parametrize(
    "doc",
    [
        {"definitions": {"input1Item": {"properties": COLUMNS}}},
        {"Definitions": {"INPUT1ITEM": {"Properties": COLUMNS}}},  # any casing
        {"definitions": {
            "ExecutionInputs": {"properties": {"input1": {"type": "array", "items": {"$ref": "#/definitions/Row"}}}},
            "Row": {"properties": COLUMNS},
        }},
        {"definitions": {"BatchExecutionInputs": {"properties": {"input1": {"items": {"properties": COLUMNS}}}}}},
    ],
)  # fmt: skip
def test_the_expected_columns_are_found_in_the_shapes_seen(doc: Any) -> None:
    assert expected_columns(doc, "input1") == ("age", "Income")


@pytest.mark.parametrize(
    "doc",
    [None, {}, {"definitions": []}, {"definitions": {"input2Item": {"properties": COLUMNS}}},
     {"definitions": {"input1Item": {"properties": {}}}}, {"definitions": {"input1Item": "x"}},
     {"definitions": {"input1Item": {"$ref": "#/definitions/input1Item"}}}],
)  # fmt: skip
def test_no_columns_is_unknown_not_an_error(doc: Any) -> None:
    assert expected_columns(doc, "input1") is None


def test_data_columns_of_csv_tsv_and_arff(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"\xef\xbb\xbfage, Income\n1,x\n")
    (tmp_path / "a.tsv").write_text("age\tIncome\n1\tx\n")
    (tmp_path / "a.arff").write_text(
        "@relation r\n@attribute age numeric\n@attribute 'Income' {a,b}\n@data\n1,a\n"
    )
    for name in ("a.csv", "a.tsv", "a.arff"):
        assert data_columns(tmp_path / name) == ("age", "Income")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ConfigurationError, match="no header row"):
        data_columns(tmp_path / "empty.csv")


def test_a_missing_column_is_refused_and_an_extra_one_warned() -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_columns(["age", "income"], ["age", "Income", "zip"], source="d.csv")
    assert "'income' (the data has 'Income')" in str(caught.value)
    assert "nothing was uploaded" in str(caught.value)
    assert check_columns(["age"], ["age"], source="d.csv") == []
    (warning,) = check_columns(["age"], ["age", "zip"], source="d.csv")
    assert "'zip'" in warning
