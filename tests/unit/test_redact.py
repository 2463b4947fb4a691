"""One redaction function: every kind of secret out, everything else kept."""

from __future__ import annotations

import pytest

from amlretrain._redact import REDACTED, redact, redact_data


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("https://a.blob.core.windows.net/c/b?sv=1&sig=abc%2Bdef%3D&se=2", "abc%2Bdef%3D"),
        ("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=Zm9vYmFy==;Endpoint", "Zm9vYmFy"),
        ("BlobEndpoint=x;SharedAccessSignature=sv=1&sig=qq", "qq"),
        ("Authorization: Bearer " + "ey" + "J0eXAiOiJKV1Qi.abc.def", "J0eXAiOiJKV1Qi"),
        ('{"primary": "k1k1k1", "title": "t"}', "k1k1k1"),
        ('{"PrimaryKey":"pk-123","SecondaryKey":"sk-456"}', "pk-123"),
        ("{'apiKey': 'xyz987'}", "xyz987"),
    ],
)
def test_secrets_are_replaced(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert REDACTED in out


def test_plain_text_is_unchanged() -> None:
    text = "retrained census model; AUC 0.91; https://a.blob.core.windows.net/c/m.ilearner"
    assert redact(text) == text


def test_redact_is_idempotent() -> None:
    text = "sig=abc AccountKey=def Bearer ghi"
    assert redact(redact(text)) == redact(text)


def test_redact_data_walks_structures() -> None:
    data = {
        "Inputs": {"input1": {"ConnectionString": "AccountKey=k;", "RelativeLocation": "c/b.csv"}},
        "keys": {"primary": "p", "secondary": "s"},
        "Results": [{"SasBlobToken": "?sig=zz", "BaseLocation": "https://x/"}],
        "count": 3,
    }
    out = redact_data(data)
    assert out["Inputs"]["input1"]["ConnectionString"] == REDACTED
    assert out["Inputs"]["input1"]["RelativeLocation"] == "c/b.csv"
    assert out["keys"] == {"primary": REDACTED, "secondary": REDACTED}
    assert out["Results"][0]["SasBlobToken"] == REDACTED
    assert out["count"] == 3
    assert data["keys"]["primary"] == "p"  # the input is not modified


@pytest.mark.parametrize(
    "path",
    [
        "/properties/assets/asset1/locationInfo/credentials",
        "/properties/storageAccount/Key",
        "/properties/keys/primary",
        "/properties/assets/a~1b/locationInfo/ConnectionString",
        "/properties/assets/asset1/credentials/inner",
    ],
)
def test_json_patch_values_under_a_secret_member_are_redacted(path: str) -> None:
    ops = [
        {"op": "test", "path": path, "value": "old-secret-1"},
        {"op": "replace", "path": path, "value": "new-secret-2"},
        {"op": "add", "path": path, "value": {"nested": ["new-secret-3"], "n": 1}},
    ]
    out = redact_data({"jsonPatch": ops})["jsonPatch"]
    text = repr(out)
    assert "secret-" not in text
    assert out[0] == {"op": "test", "path": path, "value": REDACTED}
    assert out[2]["value"] == {"nested": [REDACTED], "n": 1}
    assert ops[0]["value"] == "old-secret-1"  # the input is not modified


def test_json_patch_values_elsewhere_are_kept() -> None:
    op = {"op": "replace", "path": "/properties/title", "value": "Census"}
    assert redact_data(op) == op
    uri = {
        "op": "add",
        "path": "/properties/assets/a/locationInfo/uri",
        "value": "https://x/m?sig=s",
    }
    assert redact_data(uri)["value"] == "https://x/m?sig=REDACTED"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('add     /properties/assets/a1/locationInfo/credentials "pa\\"ss word"', 'pa\\"ss word'),
        ('replace /properties/storageAccount/Key "k3y-value"', "k3y-value"),
        ('{"ConnectionString": "Server=x;Password=hunter2"}', "hunter2"),
        ("{'clientSecret': 'c-s-3'}", "c-s-3"),
    ],
)
def test_secret_members_in_patch_lines_and_json_text_are_redacted(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out and REDACTED in out
    assert redact(out) == out


_PIECES = (
    "sig=",
    "SIG=",
    "AccountKey=",
    "accountkey=",
    "SharedAccessSignature=",
    "Bearer ",
    "bearer\t",
    '"primaryKey": "',
    "'apiKey'='",
    "token:'",
    '/credentials "',
    '"',
    "'",
    "=",
    ":",
    "/",
    "&",
    ";",
    " ",
    "abc",
    "x9+/=",
    "REDACTED",
    "\\",
)


def _slow_redact(text: str) -> str:
    """Every pattern on every text: what redact() did before its ASCII shortcut."""
    from amlretrain._redact import _PATTERNS

    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def test_the_ascii_shortcut_redacts_exactly_what_every_pattern_would() -> None:
    import random

    rng = random.Random(7)
    for _ in range(5000):
        text = "".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 12)))
        assert redact(text) == _slow_redact(text), text


def test_a_text_that_is_not_ascii_still_goes_through_every_pattern() -> None:
    text = "café sig=abc ſig=def"  # the long s matches s under (?i): kept as before
    assert redact(text) == _slow_redact(text)
    assert "abc" not in redact(text)
