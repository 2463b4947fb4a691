"""BlobRef: the BES shape and URLs both ways, SAS expiry, and no signature shown."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amlretrain import BlobRef, ConfigurationError
from amlretrain.blobs import is_loopback_host, same_blob, sas_expiry, strip_sas

SAS = "?sv=2019-02-02&sr=b&sp=r&se=2030-01-01T00:00:00Z&sig=S3CRET%2Fx"


def test_from_bes_and_back() -> None:
    data = {
        "ConnectionString": None,
        "RelativeLocation": "experimentoutput/job1/model.ilearner",
        "BaseLocation": "https://acct.blob.core.windows.net/",
        "SasBlobToken": SAS,
    }
    ref = BlobRef.from_bes(data)
    assert ref.container == "experimentoutput"
    assert ref.blob_name == "job1/model.ilearner"
    assert ref.to_bes() == {k: v for k, v in data.items() if k != "ConnectionString"}
    assert (
        ref.sas_url
        == "https://acct.blob.core.windows.net/experimentoutput/job1/model.ilearner" + SAS
    )


def test_from_bes_reads_any_casing_and_a_leading_slash() -> None:
    ref = BlobRef.from_bes(
        {"baselocation": "https://a.blob.core.windows.net", "relativeLocation": "/c/b.csv"}
    )
    assert ref.url == "https://a.blob.core.windows.net/c/b.csv"
    assert ref.sas_token == ""


def test_from_bes_without_locations_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="BaseLocation and RelativeLocation"):
        BlobRef.from_bes({"SasBlobToken": SAS})


def test_url_round_trip_for_account_and_path_style() -> None:
    url = "https://acct.blob.core.windows.net/models/a/b.ilearner" + SAS
    assert BlobRef.from_url(url).sas_url == url
    local = "http://127.0.0.1:10000/devstoreaccount1/models/b.ilearner" + SAS
    ref = BlobRef.from_url(local)
    assert ref.base_location == "http://127.0.0.1:10000/devstoreaccount1/"
    assert ref.relative_location == "models/b.ilearner"
    assert ref.sas_url == local


def test_str_and_repr_never_show_the_signature() -> None:
    ref = BlobRef.from_url("https://acct.blob.core.windows.net/models/m.ilearner" + SAS)
    for text in (str(ref), repr(ref), f"{ref}"):
        assert "S3CRET" not in text
    assert "models/m.ilearner" in repr(ref)


def test_sas_expiry() -> None:
    ref = BlobRef.from_url("https://acct.blob.core.windows.net/models/m.ilearner" + SAS)
    assert ref.expires_on == datetime(2030, 1, 1, tzinfo=timezone.utc)
    now = datetime(2029, 12, 31, 23, 30, tzinfo=timezone.utc)
    assert not ref.is_expired(now=now)
    assert ref.expires_within(timedelta(hours=1), now=now)
    assert ref.with_sas("").expires_on is None
    assert sas_expiry("se=2030-01-01") == datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert sas_expiry("sv=x") is None


@pytest.mark.parametrize(
    "url", ["ftp://a/b/c", "https://acct.blob.core.windows.net/only-container", "not a url"]
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        BlobRef.from_url(url)


def test_loopback_hosts() -> None:
    assert is_loopback_host("127.0.0.1")
    assert is_loopback_host("localhost")
    assert is_loopback_host("[::1]")
    assert not is_loopback_host("10.0.0.1")
    assert not is_loopback_host("acct.blob.core.windows.net")
    assert not is_loopback_host(None)


@given(
    container=st.from_regex(r"[a-z0-9]{3,20}", fullmatch=True),
    blob=st.lists(
        # Unpaired surrogates cannot be encoded in a URL (nor stored as a blob name).
        st.text(
            st.characters(blacklist_characters="/?#\x00", blacklist_categories=("Cs",)),
            min_size=1,
            max_size=8,
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_any_blob_name_survives_url_round_trip(container: str, blob: list[str]) -> None:
    ref = BlobRef(
        base_location="https://acct.blob.core.windows.net/",
        relative_location=container + "/" + "/".join(blob),
        sas_token=SAS,
    )
    assert BlobRef.from_url(ref.sas_url) == ref


MODEL = "https://acct.blob.core.windows.net/models/m.ilearner"


def test_strip_sas_drops_the_query_and_keeps_none() -> None:
    assert strip_sas(MODEL + SAS) == MODEL
    assert strip_sas(None) is None
    assert strip_sas("") == ""


def test_the_ledger_still_exports_strip_sas() -> None:
    from amlretrain import ledger

    assert ledger.strip_sas is strip_sas


def test_same_blob_ignores_the_sas_and_the_host_case() -> None:
    assert same_blob(MODEL + SAS, MODEL)
    assert same_blob(MODEL.replace("acct", "ACCT").replace("https", "HTTPS"), MODEL + "?sig=x")
    assert same_blob(BlobRef.from_url(MODEL + SAS), MODEL)


def test_same_blob_compares_container_and_name_exactly() -> None:
    assert not same_blob(MODEL, MODEL.replace("m.ilearner", "M.ilearner"))
    assert not same_blob(MODEL, MODEL.replace("models", "other"))
    assert not same_blob(MODEL, MODEL.replace("acct", "acct2"))


def test_a_missing_reference_is_never_the_same_blob() -> None:
    assert not same_blob(None, MODEL)
    assert not same_blob(MODEL, "")
    assert not same_blob(None, None)


@given(st.sampled_from(["", SAS, "?sig=a", "?sv=1&se=2030-01-01T00:00:00Z"]), st.booleans())
def test_same_blob_holds_for_any_sas_and_host_case(query: str, upper: bool) -> None:
    host = "ACCT.BLOB.CORE.WINDOWS.NET" if upper else "acct.blob.core.windows.net"
    assert same_blob(f"https://{host}/models/m.ilearner{query}", MODEL)
