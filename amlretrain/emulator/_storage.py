"""Blob access for the emulated services: Azurite through azure-storage-blob and plain HTTP.

The services read and write blobs the way the real ones do: through the references a
client sends (a connection string, or a base URL + SAS), and they hand out fresh
read-only SAS tokens signed with the account key.
"""

from __future__ import annotations

import contextlib
import logging
import urllib.parse
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import requests

from amlretrain._redact import redact

__all__ = ["BlobAccessError", "Storage", "parse_connection_string"]

log = logging.getLogger(__name__)


class BlobAccessError(Exception):
    """A blob could not be read or written. ``reason`` is ``missing``, ``denied`` or ``error``."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(redact(message))
        self.reason = reason


def parse_connection_string(value: str) -> dict[str, str]:
    """``Key=Value;...`` into a dict (keys as written; values may contain ``=``)."""
    out: dict[str, str] = {}
    for part in value.split(";"):
        if not part.strip():
            continue
        key, sep, val = part.partition("=")
        if not sep:
            raise ValueError("a connection string is a list of Key=Value pairs")
        out[key.strip()] = val.strip()
    return out


class Storage:
    """The Azurite account the emulator works with.

    Args:
        blob_endpoint: ``http://127.0.0.1:PORT/devstoreaccount1`` (no trailing slash).
        account_name: the account name.
        account_key: the account key (a secret; never logged).
    """

    def __init__(self, *, blob_endpoint: str, account_name: str, account_key: str) -> None:
        self.blob_endpoint = blob_endpoint.rstrip("/")
        self.account_name = account_name
        self._account_key = account_key
        self._http = requests.Session()
        self._http.trust_env = False  # loopback: never through a proxy
        from azure.storage.blob import BlobServiceClient

        self._service = BlobServiceClient(self.blob_endpoint, credential=self._credential())

    def _credential(self) -> dict[str, str]:
        return {"account_name": self.account_name, "account_key": self._account_key}

    @property
    def account_key(self) -> str:
        """The account key (a secret)."""
        return self._account_key

    @property
    def connection_string(self) -> str:
        """The account's connection string (a secret)."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};"
            f"AccountKey={self._account_key};BlobEndpoint={self.blob_endpoint};"
        )

    @property
    def base_location(self) -> str:
        """``BaseLocation`` of this account's blobs (ends in ``/``)."""
        return self.blob_endpoint + "/"

    def close(self) -> None:
        """Release HTTP connections."""
        self._http.close()
        self._service.close()

    # -- account-key access ------------------------------------------------------------

    def upload(self, container: str, blob: str, data: bytes) -> None:
        """Write a blob (creating the container when missing)."""
        from azure.core.exceptions import ResourceExistsError

        cont = self._service.get_container_client(container)
        with contextlib.suppress(ResourceExistsError):
            cont.create_container()
        cont.upload_blob(blob, data, overwrite=True)

    def download(self, container: str, blob: str) -> bytes:
        """Read a blob with the account key.

        Raises:
            BlobAccessError: it does not exist.
        """
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self._service.get_blob_client(container, blob).download_blob().readall()
        except ResourceNotFoundError as err:
            raise BlobAccessError(f"blob {container}/{blob} not found", reason="missing") from err

    def exists(self, container: str, blob: str) -> bool:
        """True when the blob exists."""
        return bool(self._service.get_blob_client(container, blob).exists())

    def read_sas(
        self, container: str, blob: str, *, lifetime: timedelta = timedelta(hours=1)
    ) -> str:
        """A fresh read-only blob SAS (``?sv=...&sr=b&sp=r&sig=...``), valid for ``lifetime``."""
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        now = datetime.now(timezone.utc)
        token = generate_blob_sas(
            account_name=self.account_name,
            container_name=container,
            blob_name=blob,
            account_key=self._account_key,
            permission=BlobSasPermissions(read=True),
            start=now - timedelta(minutes=5),
            expiry=now + lifetime,
        )
        return "?" + token

    def owns(self, url: str) -> bool:
        """True when ``url`` points into this account."""
        return url.startswith(self.base_location)

    def split(self, url: str) -> tuple[str, str]:
        """``(container, blob)`` of a URL in this account."""
        path = urllib.parse.urlsplit(url).path
        account_path = urllib.parse.urlsplit(self.base_location).path
        rel = (
            urllib.parse.unquote(path[len(account_path) :]) if path.startswith(account_path) else ""
        )
        container, _, blob = rel.partition("/")
        if not container or not blob:
            raise BlobAccessError(f"{url} does not name a container and a blob", reason="error")
        return container, blob

    # -- access through client-supplied references -------------------------------------

    def fetch(self, url: str) -> bytes:
        """GET a blob URL (with whatever SAS it carries) over HTTP.

        Raises:
            BlobAccessError: ``missing`` (404), ``denied`` (401/403) or ``error``.
        """
        try:
            resp = self._http.get(url, timeout=30)
        except requests.RequestException as err:
            raise BlobAccessError(f"cannot reach {url}: {err}", reason="error") from err
        if resp.status_code == 200:
            return resp.content
        reason = {404: "missing", 401: "denied", 403: "denied"}.get(resp.status_code, "error")
        raise BlobAccessError(f"GET {url} answered {resp.status_code}", reason=reason)

    def client_for(self, ref: Mapping[str, Any]) -> Any:
        """A ``BlobClient`` for a BES reference (``ConnectionString`` or ``BaseLocation`` + SAS).

        Raises:
            ValueError: the reference is incomplete or its connection string malformed;
                the message names the problem.
        """
        from azure.storage.blob import BlobClient

        lower = {str(k).lower(): v for k, v in ref.items()}
        rel = str(lower.get("relativelocation") or "").lstrip("/")
        container, _, blob = rel.partition("/")
        if not container or not blob:
            raise ValueError("RelativeLocation must be 'container/blob'")
        conn = lower.get("connectionstring")
        if conn:
            try:
                parts = {k.lower(): v for k, v in parse_connection_string(str(conn)).items()}
            except ValueError as err:
                raise ValueError(f"InvalidBlobConnectionString: {err}") from err
            if parts.get("usedevelopmentstorage", "").lower() == "true":
                parts = {
                    "accountname": self.account_name,
                    "accountkey": self._account_key,
                    "blobendpoint": self.blob_endpoint,
                }
            name, key = parts.get("accountname"), parts.get("accountkey")
            sas = parts.get("sharedaccesssignature")
            if not name or not (key or sas):
                raise ValueError(
                    "InvalidBlobConnectionString: AccountName and AccountKey are required"
                )
            endpoint = parts.get("blobendpoint")
            if not endpoint:
                if name == self.account_name:
                    endpoint = self.blob_endpoint
                else:
                    proto = parts.get("defaultendpointsprotocol", "https")
                    suffix = parts.get("endpointsuffix", "core.windows.net")
                    endpoint = f"{proto}://{name}.blob.{suffix}"
            credential: Any = {"account_name": name, "account_key": key} if key else sas
            return BlobClient(endpoint.rstrip("/"), container, blob, credential=credential)
        base = lower.get("baselocation")
        if base:
            sas = str(lower.get("sasblobtoken") or "")
            url = str(base).rstrip("/") + "/" + urllib.parse.quote(rel, safe="/")
            if sas:
                url += sas if sas.startswith("?") else "?" + sas
            return BlobClient.from_blob_url(url)
        raise ValueError(
            "MissingInputBlobInformation: give ConnectionString, or BaseLocation and SasBlobToken"
        )

    def read_ref(self, ref: Mapping[str, Any]) -> bytes:
        """Read the blob a BES reference names.

        Raises:
            BlobAccessError: missing, denied or unreadable.
            ValueError: the reference itself is malformed.
        """
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
        )

        client = self.client_for(ref)
        try:
            return bytes(client.download_blob().readall())
        except ResourceNotFoundError as err:
            raise BlobAccessError(f"blob {client.url} not found", reason="missing") from err
        except ClientAuthenticationError as err:
            raise BlobAccessError(f"access to {client.url} denied", reason="denied") from err
        except HttpResponseError as err:
            reason = "denied" if err.status_code in (401, 403) else "error"
            raise BlobAccessError(
                f"reading {client.url} failed: {err.status_code}", reason=reason
            ) from err
        except ServiceRequestError as err:
            raise BlobAccessError(f"cannot reach {client.url}", reason="error") from err

    def ref_exists(self, ref: Mapping[str, Any]) -> bool:
        """True when the referenced blob exists and is readable with its credentials."""
        try:
            self.read_ref(ref)
        except BlobAccessError:
            return False
        return True

    def write_ref(self, ref: Mapping[str, Any], data: bytes) -> tuple[str, str]:
        """Write ``data`` to the blob a BES output reference names; ``(container, blob)``.

        Raises:
            BlobAccessError: the write was refused.
            ValueError: the reference is malformed.
        """
        from azure.core.exceptions import (
            HttpResponseError,
            ResourceExistsError,
            ServiceRequestError,
        )

        client = self.client_for(ref)
        container, blob = str(client.container_name), str(client.blob_name)
        if client.account_name == self.account_name and client.credential is not None:
            try:
                self._service.get_container_client(container).create_container()
            except ResourceExistsError:
                pass
            except HttpResponseError:
                pass  # a SAS that cannot create containers: the upload reports it
        try:
            client.upload_blob(data, overwrite=True)
        except HttpResponseError as err:
            reason = "denied" if err.status_code in (401, 403) else "missing"
            raise BlobAccessError(
                f"writing {client.url} failed: {err.status_code}", reason=reason
            ) from err
        except ServiceRequestError as err:
            raise BlobAccessError(f"cannot reach {client.url}", reason="error") from err
        return container, blob
