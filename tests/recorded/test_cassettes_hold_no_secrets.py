"""Every cassette (and the recorded target file) is scanned for secrets; one hit fails."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.recorded.conftest import CASSETTES, scrub_request, scrub_response

#: The storage emulator's well-known development key: public, but a secret all the same.
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

SECRET_PATTERNS: dict[str, re.Pattern[str]] = {
    "SAS signature": re.compile(r"(?i)\bsig=(?!REDACTED)[^&\s\"'<>]+"),
    "account key": re.compile(r"(?i)AccountKey=(?!REDACTED)[^;\s\"'<>]+"),
    "shared access signature": re.compile(r"(?i)SharedAccessSignature=(?!REDACTED)[^;\s\"']+"),
    "bearer token": re.compile(r"(?i)\bBearer\s+(?!REDACTED)[A-Za-z0-9\-._~+/=]{4,}"),
    "shared key auth": re.compile(r"\bSharedKey\s+\S+:\S+"),
    "authorization header": re.compile(r"(?im)^\s*['\"]?authorization['\"]?\s*:"),
    "azurite key": re.compile(re.escape(AZURITE_KEY)),
    "secret member": re.compile(
        r"(?i)[\"'](?:primary|secondary|primaryKey|secondaryKey|apiKey|api_key|key|token|"
        r"accessToken|access_token|password|credentials|accountKey|connectionString|"
        r"authorizationToken|clientSecret)[\"']\s*:\s*[\"'](?!REDACTED)[^\"']+[\"']"
    ),
}


def find_secrets(text: str) -> list[str]:
    """The names of the secret patterns found in ``text``."""
    return [name for name, pattern in SECRET_PATTERNS.items() if pattern.search(text)]


def _cassette_files() -> list[Path]:
    return sorted(p for p in CASSETTES.rglob("*") if p.is_file() and p.suffix != ".md")


def test_there_are_cassettes_to_scan():
    assert any(p.suffix == ".yaml" for p in _cassette_files())


@pytest.mark.parametrize("path", _cassette_files(), ids=lambda p: p.name)
def test_cassette_holds_no_secret(path: Path):
    text = path.read_text(encoding="utf-8", errors="replace")
    hits = find_secrets(text)
    assert not hits, f"{path.relative_to(CASSETTES)} holds: {', '.join(hits)}"


@pytest.mark.parametrize(
    "planted",
    [
        "https://a.blob.core.windows.net/c/m.ilearner?sv=1&sig=abcDEF%2F123",
        "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0;",
        "Authorization: Bearer " + "ey" + "J0eXAiOiJKV1QiLCJhbGciOi",  # split: no literal token
        '{"primary": "k3y-value"}',
        '"PrimaryKey": "abc"',
        '{"ConnectionString": "whatever"}',
        f"x {AZURITE_KEY} y",
        "    Authorization:\n    - SharedKey devstoreaccount1:abc=",
    ],
)
def test_the_scanner_finds_planted_secrets(planted: str):
    assert find_secrets(planted)


def test_the_scrubbers_leave_nothing_the_scanner_finds():
    class Req:
        uri = "http://127.0.0.1:1/c/b.ilearner?se=2030-01-01&sig=SECRETSIG"
        headers = {"Authorization": "Bearer tok3n", "User-Agent": "amlretrain/0 x"}
        body = (
            b'{"Inputs": {"input1": {"ConnectionString": "AccountName=a;AccountKey=s3cr3t",'
            b' "RelativeLocation": "c/b.csv"}}, "apiKey": "k"}'
        )

    request = scrub_request(Req())
    response = scrub_response(
        {
            "status": {"code": 200, "message": "OK"},
            "headers": {"Location": ["http://h/x?sig=SIG2"]},
            "body": {
                "string": b'{"PrimaryKey": "p", "Results": {"o": {"SasBlobToken": '
                b'"?se=2030-01-01&sig=SIG3", "BaseLocation": "http://h/"}}}'
            },
        }
    )
    text = f"{request.uri} {request.headers} {request.body!r} {response!r}"
    assert find_secrets(text) == []
    assert "se=2099" in text  # SAS expiry pinned so playback never sees it expire


def test_requests_not_made_by_amlretrain_are_not_recorded():
    class Req:
        uri = "http://127.0.0.1:1/devstoreaccount1/c/b"
        headers = {"User-Agent": "azsdk-python-storage-blob/12"}
        body = None

    assert scrub_request(Req()) is None
