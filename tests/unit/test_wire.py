"""The one tolerant reader (amlretrain._wire): its case-insensitive lookup."""

from __future__ import annotations

from amlretrain._wire import ci_get, find_key


def test_a_member_is_found_in_any_casing() -> None:
    assert ci_get({"StatusCode": "Finished"}, "statusCode") == "Finished"
    assert ci_get({"statuscode": "Failed"}, "StatusCode") == "Failed"


def test_the_exact_spelling_wins_over_another_casing() -> None:
    data = {"Code": "pascal", "code": "camel"}
    assert ci_get(data, "code") == "camel"
    assert find_key(data, "CODE") == "Code"  # else the first in document order


def test_the_first_of_several_names_present_wins() -> None:
    body = {"errorInfo": {"code": "B"}, "error": {"code": "A"}}
    assert ci_get(body, "error", "errorInfo") == {"code": "A"}
    assert ci_get(body, "odata.error", "ErrorInfo") == {"code": "B"}


def test_nothing_found_is_none_also_for_no_mapping() -> None:
    assert ci_get({"a": 1}, "b") is None
    assert ci_get(None, "a") is None
    assert ci_get({}, "a") is None
    assert ci_get({1: "x"}, "1") is None  # a key that is no string is no member name


def test_headers_are_read_in_any_casing() -> None:
    from requests.structures import CaseInsensitiveDict

    assert ci_get(CaseInsensitiveDict({"X-Ms-Request-Id": "r1"}), "x-ms-request-id") == "r1"
    assert ci_get({"retry-after": "5"}, "Retry-After") == "5"
