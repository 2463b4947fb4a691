"""``BlobRef``: a blob reference in the shapes the services use, and its SAS expiry.

The Batch Execution Service returns outputs as ``BaseLocation`` + ``RelativeLocation``
+ ``SasBlobToken``; a classic endpoint's ``Resources[].Location`` uses the same three
fields; an ARM definition's asset holds one URL. ``BlobRef`` converts between them and
never shows the SAS signature in ``str`` or ``repr``.

Pure code: no network. Storage operations live in :mod:`amlretrain.storage`.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from amlretrain._redact import redact
from amlretrain.errors import ConfigurationError

__all__ = ["BlobRef", "is_loopback_host", "same_blob", "sas_expiry", "strip_sas"]


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def strip_sas(uri: str | None) -> str | None:
    """A blob URL without its query string (the SAS), or None.

    Example:
        >>> strip_sas("https://a.blob.core.windows.net/models/m.ilearner?sv=1&sig=s3cr3t")
        'https://a.blob.core.windows.net/models/m.ilearner'
    """
    if not uri:
        return uri
    parts = urllib.parse.urlsplit(uri)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def same_blob(a: str | BlobRef | None, b: str | BlobRef | None) -> bool:
    """True when ``a`` and ``b`` name the same blob, whatever their SAS.

    The URLs are compared without their query string, the scheme and host
    case-insensitively, the path (container and blob name) exactly. A missing reference
    (None or ``""``) is the same as nothing.

    Example:
        >>> same_blob("https://A.blob.core.windows.net/m/x.ilearner?sig=1",
        ...           "https://a.blob.core.windows.net/m/x.ilearner")
        True
    """
    left = a.url if isinstance(a, BlobRef) else a
    right = b.url if isinstance(b, BlobRef) else b
    if not left or not right:
        return False
    pa, pb = urllib.parse.urlsplit(left), urllib.parse.urlsplit(right)
    return (pa.scheme.lower(), pa.netloc.lower(), pa.path) == (
        pb.scheme.lower(),
        pb.netloc.lower(),
        pb.path,
    )


def _parse_time(value: str) -> datetime | None:
    value = value.strip()
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def sas_expiry(query: str) -> datetime | None:
    """The ``se=`` expiry of a SAS query string (with or without ``?``), UTC, or None."""
    params = urllib.parse.parse_qs(query.lstrip("?"), keep_blank_values=True)
    values = params.get("se")
    if not values:
        return None
    return _parse_time(values[0])


def _strip_slash(value: object) -> str:
    return str(value).lstrip("/")


def _split_relative(relative: str) -> tuple[str, str]:
    rel = relative.lstrip("/")
    container, _, blob = rel.partition("/")
    return container, blob


@attrs.frozen(kw_only=True)
class BlobRef:
    """A reference to one blob: ``base_location`` + ``relative_location`` (+ a SAS).

    Attributes:
        base_location: the account endpoint, ending in ``/``
            (``https://acct.blob.core.windows.net/``; Azurite: ``http://127.0.0.1:10000/devstoreaccount1/``).
        relative_location: ``container/path/to/blob`` (a leading ``/`` is accepted and dropped).
        sas_token: the SAS query string starting with ``?``, or ``""``. Never shown.

    Example:
        >>> ref = BlobRef.from_url("https://a.blob.core.windows.net/models/m.ilearner?se=2030-01-01T00:00:00Z&sig=s3cr3t")
        >>> ref.relative_location
        'models/m.ilearner'
        >>> "s3cr3t" in repr(ref)
        False
    """

    base_location: str = attrs.field()
    relative_location: str = attrs.field(converter=_strip_slash)
    sas_token: str = attrs.field(default="", repr=False)

    @base_location.validator
    def _check_base(self, _attr: attrs.Attribute[str], value: str) -> None:
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(
                f"BaseLocation {redact(value)!r} is not an http(s) URL with a host"
            )

    def __attrs_post_init__(self) -> None:
        if not self.base_location.endswith("/"):
            object.__setattr__(self, "base_location", self.base_location + "/")
        token = self.sas_token
        if token and not token.startswith("?"):
            object.__setattr__(self, "sas_token", "?" + token)
        if not self.relative_location or "/" not in self.relative_location:
            raise ConfigurationError(
                f"RelativeLocation {self.relative_location!r} must be 'container/blob'"
            )

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, *, path_style: bool | None = None) -> BlobRef:
        """Parse a blob URL (with or without a SAS query string).

        Args:
            url: ``https://acct.blob.core.windows.net/container/blob?sas``, or a path-style
                URL (``http://127.0.0.1:10000/devstoreaccount1/container/blob``) as the
                storage emulator uses.
            path_style: whether the first path segment is the account name; guessed from the
                host when None (IP addresses and ``localhost`` are path-style).

        Raises:
            ConfigurationError: the URL is not an http(s) blob URL.
        """
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(f"{redact(url)!r} is not an http(s) blob URL")
        segments = [s for s in parts.path.split("/") if s]
        if path_style is None:
            host = parts.hostname or ""
            path_style = is_loopback_host(host) or _is_ip(host)
        account_segments = 1 if path_style else 0
        if len(segments) < account_segments + 2:
            raise ConfigurationError(f"{redact(url)!r} does not name a container and a blob")
        base_path = "/".join(segments[:account_segments])
        base = f"{parts.scheme}://{parts.netloc}/" + (base_path + "/" if base_path else "")
        relative = "/".join(segments[account_segments:])
        sas = "?" + parts.query if parts.query else ""
        return cls(
            base_location=base,
            relative_location=urllib.parse.unquote(relative),
            sas_token=sas,
        )

    @classmethod
    def from_bes(cls, data: Mapping[str, Any]) -> BlobRef:
        """Build from a BES result / classic resource location (keys in any case).

        Raises:
            ConfigurationError: ``BaseLocation`` or ``RelativeLocation`` is missing.
        """
        from amlretrain._wire import ci_get

        base = ci_get(data, "BaseLocation")
        rel = ci_get(data, "RelativeLocation")
        if not base or not rel:
            raise ConfigurationError(
                "a blob location needs BaseLocation and RelativeLocation; got "
                + ", ".join(sorted(map(str, data)))
                or "nothing"
            )
        return cls(
            base_location=str(base),
            relative_location=str(rel),
            sas_token=str(ci_get(data, "SasBlobToken") or ""),
        )

    # -- views -------------------------------------------------------------------------

    @property
    def container(self) -> str:
        """The container name (first segment of ``relative_location``)."""
        return _split_relative(self.relative_location)[0]

    @property
    def blob_name(self) -> str:
        """The blob name inside its container."""
        return _split_relative(self.relative_location)[1]

    @property
    def url(self) -> str:
        """The blob URL without the SAS (safe to show and to record)."""
        quoted = urllib.parse.quote(self.relative_location, safe="/")
        return self.base_location + quoted

    @property
    def sas_url(self) -> str:
        """The blob URL with the SAS (a secret: never log it)."""
        return self.url + self.sas_token

    @property
    def expires_on(self) -> datetime | None:
        """When the SAS expires (``se=``), UTC; None when there is no SAS or no expiry."""
        return sas_expiry(self.sas_token) if self.sas_token else None

    def expires_within(self, delta: timedelta, *, now: datetime | None = None) -> bool:
        """True when the SAS expires before ``now + delta`` (False without an expiry)."""
        exp = self.expires_on
        if exp is None:
            return False
        now = now or datetime.now(timezone.utc)
        return exp <= now + delta

    def is_expired(self, *, now: datetime | None = None) -> bool:
        """True when the SAS expiry has passed."""
        return self.expires_within(timedelta(0), now=now)

    def with_sas(self, sas_token: str) -> BlobRef:
        """A copy with another SAS token."""
        return attrs.evolve(self, sas_token=sas_token)

    def to_bes(self) -> dict[str, str]:
        """The ``{BaseLocation, RelativeLocation, SasBlobToken}`` shape (holds the SAS)."""
        return {
            "BaseLocation": self.base_location,
            "RelativeLocation": self.relative_location,
            "SasBlobToken": self.sas_token,
        }

    def __str__(self) -> str:
        return self.url + (redact(self.sas_token) if self.sas_token else "")

    def __repr__(self) -> str:
        sas = " sas=<redacted>" if self.sas_token else ""
        exp = self.expires_on
        exp_text = f" expires={exp.isoformat()}" if exp else ""
        return f"BlobRef({self.url!r}{sas}{exp_text})"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
