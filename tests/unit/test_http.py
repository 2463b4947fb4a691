"""The HTTP layer's pure parts: the one error mapping, Retry-After, API locations.

Retries, timeouts and headers on the wire are tested against a local server in
tests/integration/test_http_retries.py (tests/unit opens no sockets).
"""

from __future__ import annotations

import json

import pytest

from amlretrain._errormap import error_from_response, parse_error_body
from amlretrain._http import api_base_url
from amlretrain.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    NotFoundError,
    ServiceError,
    ThrottledError,
)

# -- the error mapping --------------------------------------------------------------------------------

CLASSIC_401 = {
    "error": {
        "code": "Unauthorized",
        "message": "Authorization failed.",
        "details": [
            {"code": "ScoreRequestUnauthorized", "message": "Invalid credentials provided."}
        ],
    }
}
ARM_404 = {
    "error": {
        "code": "NotFound",
        "message": "The specified resource was not found.",
        "details": [{"code": "PerRegionPayloadNotFound", "message": "Web Service Definition ..."}],
    }
}


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (409, ConflictError),
        (412, ConflictError),
        (429, ThrottledError),
        (503, ThrottledError),
        (400, ServiceError),
        (500, ServiceError),
    ],
)
def test_statuses_map_to_the_exception_tree(status, kind):
    err = error_from_response(status, body=json.dumps(CLASSIC_401).encode())
    assert type(err) is kind
    assert err.status == status


def test_classic_error_body_gives_code_details_and_request_id():
    err = error_from_response(
        401,
        headers={"X-MS-Request-Id": "rid-1"},
        body=json.dumps(CLASSIC_401).encode(),
        method="GET",
        url="https://management.azureml.net/workspaces/w/webservices",
    )
    assert err.code == "Unauthorized"
    assert err.details == (("ScoreRequestUnauthorized", "Invalid credentials provided."),)
    assert err.request_id == "rid-1"
    assert "Authorization failed." in str(err)


def test_arm_error_body_is_read_the_same_way():
    err = error_from_response(404, body=json.dumps(ARM_404))
    assert isinstance(err, NotFoundError)
    assert err.code == "NotFound"
    assert err.details[0][0] == "PerRegionPayloadNotFound"


def test_lro_status_document_error_and_error_info_are_understood():
    assert parse_error_body({"status": "Failed", "error": {"code": "X", "message": "m"}})[:2] == (
        "X",
        "m",
    )
    assert parse_error_body({"errorInfo": {"code": "Y", "message": "n", "details": []}})[0] == "Y"
    assert parse_error_body({"Code": "Z", "Message": "o"})[:2] == ("Z", "o")
    assert parse_error_body(["not", "an", "object"]) == (None, None, [])


def test_a_ten_megabyte_error_body_does_not_become_a_ten_megabyte_message():
    body = b"x" * (10 * 1024 * 1024)
    err = error_from_response(500, body=body)
    assert len(str(err)) < 5000


def test_a_long_json_message_is_truncated():
    err = error_from_response(
        400, body=json.dumps({"error": {"code": "C", "message": "m" * 50000}})
    )
    assert len(str(err)) < 2000


def test_error_messages_and_urls_are_redacted():
    body = json.dumps(
        {"error": {"code": "BadArgument", "message": "bad blob ...?sv=1&sig=LEAKEDSIG"}}
    )
    err = error_from_response(
        400,
        body=body,
        method="GET",
        url="https://a.blob.core.windows.net/c/b?sig=URLSIG",
    )
    text = str(err)
    assert "LEAKEDSIG" not in text
    assert "URLSIG" not in text


def test_retry_after_http_date_is_understood():
    err = error_from_response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert isinstance(err, ThrottledError)
    assert err.retry_after == 0.0


def test_api_location_accepts_help_page_urls():
    base = "https://ussouthcentral.services.azureml.net/workspaces/w/services/s"
    assert api_base_url(base + "/") == base
    assert api_base_url(base + "/jobs?api-version=2.0") == base
    assert api_base_url(base + "/execute?api-version=2.0&details=true") == base
    with pytest.raises(ConfigurationError):
        api_base_url("not a url")


def test_translated_maps_azure_core_errors_once_with_the_context() -> None:
    from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

    from amlretrain._errormap import translated
    from amlretrain.errors import AuthenticationError, ServiceError

    refused = pytest.raises(AuthenticationError, match="GET web service w: could not get a token")
    with refused, translated("GET web service w"):
        raise ClientAuthenticationError("no credential")
    unreachable = pytest.raises(ServiceError, match="list web services: could not reach")
    with unreachable as info, translated("list web services", lambda: "rid-1"):
        raise ServiceRequestError("connection refused")
    assert info.value.status is None
    assert info.value.request_id == "rid-1"
    assert isinstance(info.value.__cause__, ServiceRequestError)


def test_a_session_reads_the_environment_s_proxies_once_per_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import requests.sessions

    from amlretrain._http import new_session

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    calls: list[str] = []
    real = requests.sessions.get_environ_proxies

    def counting(url: str, no_proxy: object = None) -> dict[str, str]:
        calls.append(url)
        return real(url, no_proxy=no_proxy)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counting)
    session = new_session()
    a = [
        session.merge_environment_settings(f"https://a.example/x/{i}", {}, None, None, None)
        for i in range(3)
    ]
    b = session.merge_environment_settings("https://internal.example/y", {}, None, None, None)
    assert a[0]["proxies"]["https"] == "http://proxy.example:3128" == a[2]["proxies"]["https"]
    assert "https" not in b["proxies"]  # NO_PROXY still honoured, per host
    assert calls == ["https://a.example/x/0", "https://internal.example/y"]
    a[0]["proxies"]["https"] = "changed"  # each caller gets its own copy
    again = session.merge_environment_settings("https://a.example/z", {}, None, None, None)
    assert again["proxies"]["https"] == "http://proxy.example:3128"
