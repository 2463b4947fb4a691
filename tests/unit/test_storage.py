"""BlobStore without a network: connection strings, references, SAS minting, reprs.

Uploads and downloads run against Azurite in tests/integration.
"""

from __future__ import annotations

import urllib.parse
from datetime import datetime, timedelta, timezone

import pytest

from amlretrain.errors import ConfigurationError
from amlretrain.storage import (
    MAX_SAS_LIFETIME,
    MAX_USER_DELEGATION_SAS_LIFETIME,
    BlobStore,
    account_url_from_connection_string,
    parse_connection_string,
)

KEY = "QUNDT1VOVEtFWVZBTFVFQUNDT1VOVEtFWVZBTFVF"
CONN = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};EndpointSuffix=core.windows.net"
AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    f"AccountKey={KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)


def test_connection_strings_give_the_blob_endpoint():
    assert account_url_from_connection_string(CONN) == "https://acct.blob.core.windows.net"
    assert account_url_from_connection_string(AZURITE) == "http://127.0.0.1:10000/devstoreaccount1"
    assert (
        account_url_from_connection_string("UseDevelopmentStorage=true")
        == "http://127.0.0.1:10000/devstoreaccount1"
    )
    with pytest.raises(ConfigurationError):
        parse_connection_string("garbage")
    with pytest.raises(ConfigurationError):
        account_url_from_connection_string("DefaultEndpointsProtocol=https")


def test_the_store_never_shows_its_key():
    store = BlobStore.from_connection_string(CONN)
    assert KEY not in repr(store)
    assert "account key" in repr(store)


def test_refs_and_ownership():
    store = BlobStore.from_connection_string(AZURITE)
    ref = store.ref("models", "m.ilearner")
    assert ref.url == "http://127.0.0.1:10000/devstoreaccount1/models/m.ilearner"
    assert store.owns(ref)
    assert not BlobStore.from_connection_string(CONN).owns(ref)


def test_sas_is_read_only_for_one_blob_and_short_lived():
    store = BlobStore.from_connection_string(CONN)
    ref = store.sas(store.ref("models", "m.ilearner"))
    query = urllib.parse.parse_qs(ref.sas_token.lstrip("?"))
    assert query["sp"] == ["r"]
    assert query["sr"] == ["b"]
    assert ref.expires_on is not None
    lifetime = ref.expires_on - datetime.now(timezone.utc)
    assert timedelta(minutes=55) < lifetime <= timedelta(hours=1)
    assert KEY not in repr(ref)


def test_sas_lifetime_is_configurable_and_bounded():
    store = BlobStore.from_connection_string(CONN)
    ref = store.sas("models/m.ilearner", expires_in=timedelta(minutes=10))
    assert ref.expires_on is not None
    assert ref.expires_on - datetime.now(timezone.utc) <= timedelta(minutes=10)
    with pytest.raises(ConfigurationError, match="at most 365 days"):
        store.sas("models/m.ilearner", expires_in=timedelta(days=366))
    with pytest.raises(ConfigurationError):
        store.sas("models/m.ilearner", expires_in=timedelta(0))
    with pytest.raises(ConfigurationError):
        store.sas("models/m.ilearner", expires_in=timedelta(seconds=-1))


def test_an_account_key_sas_may_live_a_year():
    assert MAX_SAS_LIFETIME.days == 365
    store = BlobStore.from_connection_string(CONN)
    ref = store.sas("models/m.ilearner", expires_in=MAX_SAS_LIFETIME)
    assert ref.expires_on is not None
    lifetime = ref.expires_on - datetime.now(timezone.utc)
    assert timedelta(days=364) < lifetime <= timedelta(days=365)
    # a key given as a mapping signs the same way
    keyed = BlobStore(
        "https://acct.blob.core.windows.net", {"account_name": "acct", "account_key": KEY}
    )
    assert keyed.sas("models/m.ilearner", expires_in=timedelta(days=30)).expires_on is not None


class _Token:
    """A TokenCredential that must never be asked: the lifetime is refused first."""

    def get_token(self, *scopes, **kwargs):
        raise AssertionError("no token may be requested")


def test_a_user_delegation_sas_lives_at_most_7_days():
    assert MAX_USER_DELEGATION_SAS_LIFETIME.days == 7
    store = BlobStore("https://acct.blob.core.windows.net", _Token())
    with pytest.raises(ConfigurationError, match="user delegation lives at most 7 days"):
        store.sas("models/m.ilearner", expires_in=timedelta(days=7, seconds=1))
    with pytest.raises(ConfigurationError, match="user delegation lives at most 7 days"):
        store.sas("models/m.ilearner", expires_in=timedelta(days=30))


def test_sas_for_a_blob_of_another_account_is_refused():
    store = BlobStore.from_connection_string(CONN)
    with pytest.raises(ConfigurationError):
        store.sas("https://other.blob.core.windows.net/c/b.ilearner")


def test_a_store_without_credentials_cannot_sign():
    store = BlobStore("https://acct.blob.core.windows.net")
    with pytest.raises(ConfigurationError, match="cannot sign"):
        store.sas("c/b.ilearner")


def test_uploading_a_missing_file_is_refused(tmp_path):
    store = BlobStore.from_connection_string(CONN)
    with pytest.raises(ConfigurationError):
        store.upload(tmp_path / "nope.csv", container="c")


def test_a_store_is_a_context_manager_that_closes_its_service_client():
    with BlobStore.from_connection_string(CONN) as store:
        service = store.service
        closed: list[bool] = []
        original = service.close
        service.close = lambda: (closed.append(True), original())[1]  # type: ignore[method-assign]
    assert closed == [True]
    store.close()  # closing twice is harmless
    assert closed == [True]
    assert store.service is not service  # used again, it opens a new client


def test_a_named_key_credential_signs_and_is_not_shown():
    from azure.core.credentials import AzureNamedKeyCredential

    store = BlobStore("https://acct.blob.core.windows.net", AzureNamedKeyCredential("acct", KEY))
    assert store.sas("models/m.ilearner").sas_token
    assert KEY not in repr(store)
    assert "account key" in repr(store)
