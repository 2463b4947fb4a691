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
