"""The tracing helper's pure parts: span names, no-op when untraced, URLs without secrets.

The spans of real calls are checked against the emulator in
tests/integration/test_tracing.py.
"""

from __future__ import annotations

import pytest

from amlretrain._tracing import _sanitized, http_span, traced
from amlretrain.storage import BlobStore
from amlretrain.studio.management import ClassicClient


def test_a_traced_method_keeps_its_name_signature_and_docstring() -> None:
    method = BlobStore.upload
    assert method.__qualname__ == "BlobStore.upload"
    assert method.__doc__
    assert "container" in method.__wrapped__.__code__.co_varnames  # type: ignore[attr-defined]


def test_a_traced_function_returns_and_raises_as_before_when_untraced() -> None:
    @traced
    def answer(x: int) -> int:
        if x < 0:
            raise ValueError(x)
        return x * 2

    assert answer(21) == 42
    with pytest.raises(ValueError):
        answer(-1)


def test_an_http_span_records_nothing_when_no_tracing_is_configured() -> None:
    from azure.core.settings import settings

    assert settings.tracing_implementation() is None
    with http_span("GET", "https://example.invalid/x?sig=abc") as span:
        span.response(200, "rid")  # no span: nothing to record, nothing raised


def test_an_http_span_shows_only_the_api_version_of_the_query() -> None:
    url = _sanitized(
        "https://acct.blob.core.windows.net/c/b.csv?sv=2023&sig=secret%2Bvalue&se=2030"
        "&api-version=2.0"
    )
    assert url == (
        "https://acct.blob.core.windows.net/c/b.csv"
        "?sv=REDACTED&sig=REDACTED&se=REDACTED&api-version=2.0"
    )
    assert "secret" not in url


def test_a_url_without_a_query_is_unchanged() -> None:
    url = "https://ussouthcentral.services.azureml.net/workspaces/w/webservices/s"
    assert _sanitized(url) == url


def test_local_helpers_are_not_traced() -> None:
    assert not hasattr(BlobStore.ref, "__wrapped__")
    assert not hasattr(ClassicClient.close, "__wrapped__")
