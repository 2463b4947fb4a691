"""Blob storage over azure-storage-blob: upload, download, exists, delete, containers, SAS.

``azure.storage.blob`` is imported inside the methods, never at module import. Every
azure-core error is translated here, once, to :mod:`amlretrain.errors`. Retries are
azure-core's (``ExponentialRetry`` of azure-storage-blob: 3 retries on connection errors,
408, 429 and 5xx, for every call; uploads are idempotent block writes).

Example:
    >>> store = BlobStore.from_connection_string(conn_str)        # doctest: +SKIP
    >>> ref = store.upload("train.csv", container="training")       # doctest: +SKIP
    >>> readable = store.sas(ref, expires_in=timedelta(hours=1))    # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import sys
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlretrain._errormap import translated
from amlretrain._redact import redact
from amlretrain._tracing import traced
from amlretrain.blobs import BlobRef
from amlretrain.errors import ConfigurationError

if TYPE_CHECKING:
    from typing import TypeAlias

    from azure.core.credentials import AzureNamedKeyCredential, TokenCredential
    from azure.storage.blob import BlobClient, BlobServiceClient

    #: What :class:`BlobStore` signs with: a token credential, an account key (string,
    #: ``AzureNamedKeyCredential`` or ``{"account_name", "account_key"}``), or nothing.
    BlobCredential: TypeAlias = (
        TokenCredential | AzureNamedKeyCredential | str | Mapping[str, str] | None
    )

__all__ = [
    "DEFAULT_SAS_LIFETIME",
    "MAX_SAS_LIFETIME",
    "MAX_USER_DELEGATION_SAS_LIFETIME",
    "BlobStore",
    "account_url_from_connection_string",
    "check_readable",
    "parse_connection_string",
]

log = logging.getLogger(__name__)

#: How long a SAS minted by :meth:`BlobStore.sas` lives unless told otherwise.
DEFAULT_SAS_LIFETIME = timedelta(hours=1)
#: The longest SAS :meth:`BlobStore.sas` mints: one signed with an account key.
MAX_SAS_LIFETIME = timedelta(days=365)
#: The longest SAS signed by user delegation (a user-delegation key lives 7 days at most).
MAX_USER_DELEGATION_SAS_LIFETIME = timedelta(days=7)
#: Clock skew allowed for: a SAS starts this long before now.
_SAS_SKEW = timedelta(minutes=5)
_CHUNK = 4 * 1024 * 1024
#: Files up to this size go up in one request (azure-storage-blob's own default).
_SINGLE_PUT = 64 * 1024 * 1024


def parse_connection_string(connection_string: str) -> dict[str, str]:
    """Split a storage connection string into its ``Name=value`` parts (names as written).

    Raises:
        ConfigurationError: the string has no ``Name=value`` parts.
    """
    parts: dict[str, str] = {}
    for item in connection_string.split(";"):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigurationError("a storage connection string is 'Name=value;...' pairs")
        parts[name.strip()] = value.strip()
    if not parts:
        raise ConfigurationError("the storage connection string is empty")
    return parts


def account_url_from_connection_string(connection_string: str) -> str:
    """The blob endpoint of a connection string (``BlobEndpoint`` or built from the account).

    Raises:
        ConfigurationError: neither ``BlobEndpoint`` nor ``AccountName`` is present.
    """
    parts = {k.lower(): v for k, v in parse_connection_string(connection_string).items()}
    if parts.get("blobendpoint"):
        return parts["blobendpoint"].rstrip("/")
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        return "http://127.0.0.1:10000/devstoreaccount1"
    account = parts.get("accountname")
    if not account:
        raise ConfigurationError("the storage connection string names no account")
    protocol = parts.get("defaultendpointsprotocol", "https")
    suffix = parts.get("endpointsuffix", "core.windows.net")
    return f"{protocol}://{account}.blob.{suffix}"


class BlobStore:
    """One storage account: upload, download, exists, delete, and read-only SAS minting.

    Args:
        account_url: the blob endpoint (``https://acct.blob.core.windows.net``; Azurite:
            ``http://127.0.0.1:10000/devstoreaccount1``).
        credential: a ``TokenCredential`` (SAS by user delegation), an account key string,
            an ``AzureNamedKeyCredential`` or a ``{"account_name", "account_key"}`` mapping
            (SAS by account key), or None for a public / SAS-only account.
        chunk_size: upload block size in bytes (bigger files go up in blocks, in parallel).
        timeout: ``(connect, read)`` seconds for every request.
        retries: how many times azure-storage-blob retries a request.

    Retries: azure-storage-blob's own (``retries`` times, exponential, on connection
    errors, 408, 429, 5xx).

    :meth:`close` (or ``with BlobStore(...) as store:``) closes the service client.
    """

    def __init__(
        self,
        account_url: str,
        credential: BlobCredential = None,
        *,
        chunk_size: int = _CHUNK,
        timeout: tuple[float, float] = (10.0, 120.0),
        retries: int = 3,
    ) -> None:
        parts = urllib.parse.urlsplit(account_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(f"{redact(account_url)!r} is not an http(s) blob endpoint")
        self.account_url = account_url.rstrip("/")
        self._credential = credential
        self._connection_string: str | None = None
        self._client: BlobServiceClient | None = None
        self._containers: set[str] = set()
        self.chunk_size = chunk_size
        self.timeout = timeout
        self.retries = retries

    @classmethod
    def from_connection_string(
        cls,
        connection_string: str,
        *,
        chunk_size: int = _CHUNK,
        timeout: tuple[float, float] = (10.0, 120.0),
        retries: int = 3,
    ) -> BlobStore:
        """A store from a storage connection string (holds the account key: never shown).

        Raises:
            ConfigurationError: the connection string is malformed.
        """
        url = account_url_from_connection_string(connection_string)
        parts = {k.lower(): v for k, v in parse_connection_string(connection_string).items()}
        credential: BlobCredential = None
        if parts.get("accountkey"):
            credential = {
                "account_name": parts.get("accountname", ""),
                "account_key": parts["accountkey"],
            }
        store = cls(url, credential, chunk_size=chunk_size, timeout=timeout, retries=retries)
        store._connection_string = connection_string
        return store

    def __repr__(self) -> str:
        kind = self._credential_kind()
        return f"BlobStore({self.account_url!r}, credential={kind})"

    def close(self) -> None:
        """Close the service client (its connections); the store opens a new one if used again."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> BlobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connection_string(self) -> str | None:
        """The connection string this store was made from, if any (a secret)."""
        return self._connection_string

    def _credential_kind(self) -> str:
        cred = self._credential
        if cred is None:
            return "none"
        if isinstance(cred, str | Mapping) or hasattr(cred, "named_key"):
            return "account key"
        if hasattr(cred, "get_token"):
            return "token"
        return type(cred).__name__

    @property
    def service(self) -> BlobServiceClient:
        """The underlying ``azure.storage.blob.BlobServiceClient`` (created on first use)."""
        if self._client is None:
            from azure.storage.blob import BlobServiceClient

            from amlretrain._version import __version__

            size = self.chunk_size
            agent = f"amlretrain/{__version__}"
            if self._connection_string is not None:
                self._client = BlobServiceClient.from_connection_string(
                    self._connection_string,
                    max_block_size=size,
                    max_single_put_size=_SINGLE_PUT,
                    user_agent=agent,
                    **self._transport_options(),
                )
            else:
                cred = self._credential
                self._client = BlobServiceClient(
                    self.account_url,
                    credential=dict(cred) if isinstance(cred, Mapping) else cred,
                    max_block_size=size,
                    max_single_put_size=_SINGLE_PUT,
                    user_agent=agent,
                    **self._transport_options(),
                )
        return self._client

    def _transport_options(self) -> dict[str, Any]:
        connect, read = self.timeout
        return {"connection_timeout": connect, "read_timeout": read, "retry_total": self.retries}

    # -- references -----------------------------------------------------------------------

    def ref(self, container: str, blob_name: str) -> BlobRef:
        """A :class:`BlobRef` (without SAS) for a blob of this account."""
        return BlobRef(
            base_location=self.account_url + "/", relative_location=f"{container}/{blob_name}"
        )

    def owns(self, blob: BlobRef) -> bool:
        """True when ``blob`` lives in this account."""
        return blob.base_location.rstrip("/").lower() == self.account_url.lower()

    def _blob_client(self, blob: BlobRef | str) -> BlobClient:
        ref = self._as_ref(blob)
        has_credential = self._credential is not None or self._connection_string is not None
        if self.owns(ref) and (has_credential or not ref.sas_token):
            return self.service.get_blob_client(ref.container, ref.blob_name)
        if ref.sas_token:
            from azure.storage.blob import BlobClient

            from amlretrain._version import __version__

            return BlobClient.from_blob_url(ref.sas_url, user_agent=f"amlretrain/{__version__}")
        raise ConfigurationError(
            f"{ref.url} is not in {self.account_url} and carries no SAS: cannot reach it"
        )

    def _as_ref(self, blob: BlobRef | str) -> BlobRef:
        if isinstance(blob, BlobRef):
            return blob
        if blob.startswith(("http://", "https://")):
            return BlobRef.from_url(blob)
        container, _, name = blob.lstrip("/").partition("/")
        return self.ref(container, name)

    # -- operations -------------------------------------------------------------------------

    @traced
    def upload(
        self,
        source: str | os.PathLike[str] | bytes,
        *,
        container: str,
        blob_name: str | None = None,
        overwrite: bool = True,
        max_concurrency: int = 4,
        progress: bool = False,
        create_container: bool = True,
    ) -> BlobRef:
        """Upload a local file or bytes; return its reference (without a SAS).

        Args:
            source: a file path or the content.
            container: the target container (created when missing and ``create_container``).
            blob_name: the blob name; default: ``<uuid>/<file name>`` (``<uuid>.bin`` for bytes).
            overwrite: replace an existing blob.
            max_concurrency: parallel block uploads.
            progress: show a tqdm.auto progress bar on a terminal or in a notebook, with
                the ``progress`` extra (elsewhere, e.g. a CI log, and without tqdm: none).

        Raises:
            ConfigurationError: the file does not exist.
            ServiceError: storage refused the upload.
        """
        if isinstance(source, bytes):
            name = blob_name or f"{uuid.uuid4().hex}.bin"
            size = len(source)
        else:
            path = Path(source)
            if not path.is_file():
                raise ConfigurationError(f"{path} is not a file")
            name = blob_name or f"{uuid.uuid4().hex}/{path.name}"
            size = path.stat().st_size
        ref = self.ref(container, name)
        with translated(f"upload to {ref.url}"):
            if create_container:
                self._create_container(container)
            client = self.service.get_blob_client(container, name)
            with _progress_bar(progress, size, name) as hook:
                if isinstance(source, bytes):
                    client.upload_blob(
                        source,
                        overwrite=overwrite,
                        max_concurrency=max_concurrency,
                        progress_hook=hook,
                    )
                else:
                    with open(source, "rb") as handle:
                        client.upload_blob(
                            handle,
                            length=size,
                            overwrite=overwrite,
                            max_concurrency=max_concurrency,
                            progress_hook=hook,
                        )
        log.info("uploaded %d bytes to %s", size, ref.url)
        return ref

    @traced
    def ensure_container(self, container: str) -> None:
        """Create the container unless it exists (idempotent).

        One request per container and store: later calls for it make none. A blob SAS
        (what :meth:`sas` mints) cannot create its container, so a container a service is
        to write into through one must exist first.

        Raises:
            AuthenticationError: the credential may not create containers.
            ServiceError: storage refused for another reason.
        """
        with translated(f"creating container {container!r} in {self.account_url}"):
            self._create_container(container)

    def _create_container(self, container: str) -> None:
        # Once per container and store: later uploads to it make no create request.
        if container in self._containers:
            return
        from azure.core.exceptions import ResourceExistsError

        with suppress(ResourceExistsError):
            self.service.create_container(container)
        self._containers.add(container)

    @traced
    def download_bytes(self, blob: BlobRef | str, *, max_concurrency: int = 4) -> bytes:
        """The content of a blob.

        Raises:
            NotFoundError: the blob does not exist.
        """
        client = self._blob_client(blob)
        with translated(f"download of {self._as_ref(blob).url}"):
            data: bytes = client.download_blob(max_concurrency=max_concurrency).readall()
        return data

    @traced
    def download(
        self, blob: BlobRef | str, path: str | os.PathLike[str], *, max_concurrency: int = 4
    ) -> Path:
        """Download a blob to a local file (written atomically); return the path.

        Raises:
            NotFoundError: the blob does not exist.
        """
        target = Path(path)
        tmp = target.with_name(target.name + ".part")
        client = self._blob_client(blob)
        with translated(f"download of {self._as_ref(blob).url}"), open(tmp, "wb") as handle:
            client.download_blob(max_concurrency=max_concurrency).readinto(handle)
        os.replace(tmp, target)
        return target

    @traced
    def exists(self, blob: BlobRef | str) -> bool:
        """True when the blob exists."""
        client = self._blob_client(blob)
        with translated(f"existence check of {self._as_ref(blob).url}"):
            return bool(client.exists())

    @traced
    def check_readable(self, blob: BlobRef) -> None:
        """Refuse a model a service could not read: read its properties *with the SAS
        the service will be sent* (anonymously; without a SAS only a public blob passes).

        Raises:
            ConfigurationError: the blob does not exist, or storage refuses its SAS
                (expired, revoked, without read permission) or its lack of one.
        """
        check_readable(blob, **self._transport_options())

    @traced
    def delete(self, blob: BlobRef | str) -> None:
        """Delete a blob; deleting a missing blob is not an error."""
        from azure.core.exceptions import ResourceNotFoundError

        client = self._blob_client(blob)
        with translated(f"delete of {self._as_ref(blob).url}"):
            try:
                client.delete_blob()
            except ResourceNotFoundError:
                log.debug("%s was already absent", self._as_ref(blob).url)

    @traced
    def sas(
        self,
        blob: BlobRef | str,
        *,
        expires_in: timedelta = DEFAULT_SAS_LIFETIME,
        write: bool = False,
    ) -> BlobRef:
        """Mint a narrow SAS for one blob: read-only (``write=True`` adds create+write).

        Account-key SAS when the store has a key; user-delegation SAS when it has a
        ``TokenCredential``. The SAS starts 5 minutes back (clock skew) and lives
        ``expires_in``: at most 365 days (:data:`MAX_SAS_LIFETIME`) with an account key,
        at most 7 days (:data:`MAX_USER_DELEGATION_SAS_LIFETIME`) by user delegation,
        whose key lives 7 days at most.

        Returns:
            A copy of the reference carrying the new SAS.

        Raises:
            ConfigurationError: the lifetime is out of range, the blob is in another
                account, or the store has no credential that can sign.
        """
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        if expires_in <= timedelta(0) or expires_in > MAX_SAS_LIFETIME:
            raise ConfigurationError(
                f"a SAS lifetime must be more than 0 and at most {MAX_SAS_LIFETIME.days} days "
                f"(signed with an account key; {MAX_USER_DELEGATION_SAS_LIFETIME.days} days "
                f"by user delegation), not {expires_in}"
            )
        ref = self._as_ref(blob)
        if not self.owns(ref):
            raise ConfigurationError(f"{ref.url} is not in {self.account_url}")
        now = datetime.now(timezone.utc)
        start, expiry = now - _SAS_SKEW, now + expires_in
        permission = BlobSasPermissions(read=True, create=write, write=write)
        account_name, account_key = self._account_key()
        with translated(f"SAS for {ref.url}"):
            if account_key:
                token = generate_blob_sas(
                    account_name,
                    ref.container,
                    ref.blob_name,
                    account_key=account_key,
                    permission=permission,
                    expiry=expiry,
                    start=start,
                )
            elif hasattr(self._credential, "get_token"):
                if expires_in > MAX_USER_DELEGATION_SAS_LIFETIME:
                    raise ConfigurationError(
                        "a SAS signed by user delegation lives at most "
                        f"{MAX_USER_DELEGATION_SAS_LIFETIME.days} days (its key does), not "
                        f"{expires_in}: sign with an account key for up to "
                        f"{MAX_SAS_LIFETIME.days} days"
                    )
                delegation = self.service.get_user_delegation_key(start, expiry)
                token = generate_blob_sas(
                    self.service.account_name or account_name,
                    ref.container,
                    ref.blob_name,
                    user_delegation_key=delegation,
                    permission=permission,
                    expiry=expiry,
                    start=start,
                )
            else:
                raise ConfigurationError(
                    "this BlobStore has neither an account key nor a token credential: "
                    "it cannot sign a SAS"
                )
        return ref.with_sas("?" + token)

    def _account_key(self) -> tuple[str, str | None]:
        cred = self._credential
        name = self.service.account_name or ""
        if isinstance(cred, Mapping):
            return cred.get("account_name") or name, cred.get("account_key")
        if isinstance(cred, str):
            return name, cred
        named = getattr(cred, "named_key", None)
        if named is not None:  # AzureNamedKeyCredential, read now so update() rotates it
            return named.name or name, named.key
        key = getattr(cred, "account_key", None)
        return getattr(cred, "account_name", name), key


@contextmanager
def _progress_bar(enabled: bool, total: int, label: str) -> Iterator[Any]:
    from amlretrain._progress import in_notebook, is_terminal

    # A bar redraws itself with "\r": only where that renders (no noise in a CI log).
    if not enabled or not (is_terminal(sys.stderr) or in_notebook()):
        yield None
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - depends on the extra
        log.debug("no upload progress bar: pip install 'amlretrain[progress]' for one")
        yield None
        return
    bar = tqdm(total=total, unit="B", unit_scale=True, desc=label)
    seen = 0

    def hook(current: int, _total: int | None) -> None:
        nonlocal seen
        bar.update(current - seen)
        seen = current

    try:
        yield hook
    finally:
        bar.close()


def check_readable(blob: BlobRef, **options: Any) -> None:
    """What :meth:`BlobStore.check_readable` does, for a blob of any account.

    ``options`` are azure-storage-blob client options (timeouts, retries).

    Raises:
        ConfigurationError: the blob does not exist, or storage refuses the SAS.
    """
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
    from azure.storage.blob import BlobClient

    if blob.is_expired():
        raise ConfigurationError(
            f"the SAS of {blob.url} expired at {blob.expires_on}: mint a new one"
        )
    client = BlobClient.from_blob_url(blob.sas_url, **options)
    try:
        with translated(f"read check of {blob.url}"):
            try:
                client.get_blob_properties()
            except (ClientAuthenticationError, HttpResponseError) as err:
                status = getattr(err, "status_code", None)
                if status == 404:
                    raise ConfigurationError(f"the model {blob.url} does not exist") from err
                if status in (401, 403):
                    what = "its SAS" if blob.sas_token else "a request without a SAS"
                    raise ConfigurationError(
                        f"storage refused {what} for {blob.url} (HTTP {status}): expired, "
                        "revoked, without read permission, or a private blob without a SAS"
                    ) from err
                raise
    finally:
        client.close()
