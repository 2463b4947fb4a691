"""Fault injection for the emulator: latency, error statuses, dropped connections, failures.

Faults are rules matched against *route names* (``arm.get``, ``arm.patch``, ``bes.submit``,
``rrs.execute``, ``classic.patch_endpoint`` ... or a glob such as ``classic.*`` or ``*``).
Each rule fires at most ``count`` times (``None`` = forever).

Kinds:

* ``latency``: ``seconds`` added to every matching request;
* ``status``: answer ``status`` (429 with ``Retry-After``, 500, 503 ...) with the error body
  of the route's family, without running the handler;
* ``drop``: close the connection without a response;
* ``lro_fail``: the next long-running ARM operation started on a matching route ends
  ``Failed`` (the resource is left unchanged);
* ``job_fail``: the next batch job started on a matching route ends ``Failed`` with
  ``Details``;
* ``job_slow``: the next batch job takes ``seconds`` to run.

Example::

    emu.faults.add(route="arm.patch", kind="status", status=429, retry_after=1, count=1)
    emu.faults.add(route="bes.*", kind="job_fail", message="Out of memory")

A config file (JSON or TOML) holds a list of rules under ``faults``::

    [[faults]]
    route = "arm.patch"
    kind = "status"
    status = 503
    count = 2
"""

from __future__ import annotations

import fnmatch
import json
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

__all__ = ["KINDS", "Fault", "Faults"]

#: The kinds of fault a rule can inject.
KINDS = ("latency", "status", "drop", "lro_fail", "job_fail", "job_slow")

#: Kinds that act on the HTTP exchange itself (checked before the route's handler runs).
REQUEST_KINDS = ("latency", "status", "drop")


@attrs.define(kw_only=True)
class Fault:
    """One fault rule.

    Attributes:
        route: route name or glob (``"arm.patch"``, ``"classic.*"``, ``"*"``).
        kind: one of :data:`KINDS`.
        status: HTTP status for ``status`` faults (default 503).
        retry_after: seconds for the ``Retry-After`` header (429 and 503 faults; 429
            defaults to 1).
        seconds: added latency (``latency``) or job duration (``job_slow``).
        message: error text for ``status``, ``lro_fail`` and ``job_fail`` faults.
        count: how many more times the rule fires; ``None`` = forever.
        fired: how many times it has fired.
    """

    route: str = "*"
    kind: str
    status: int | None = None
    retry_after: float | None = None
    seconds: float = 0.0
    message: str | None = None
    count: int | None = 1
    fired: int = 0

    def __attrs_post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {KINDS}")
        if self.kind == "status":
            if self.status is None:
                self.status = 503
            if not 400 <= self.status <= 599:
                raise ValueError(f"a status fault needs a 4xx/5xx status, not {self.status}")
            if self.status == 429 and self.retry_after is None:
                self.retry_after = 1
        if self.count is not None and self.count < 0:
            raise ValueError("count must be >= 0 or None")
        if self.seconds < 0:
            raise ValueError("seconds must be >= 0")

    def matches(self, route: str) -> bool:
        """True when this rule applies to ``route`` and has firings left."""
        if self.count is not None and self.count <= 0:
            return False
        return fnmatch.fnmatchcase(route, self.route)

    @property
    def exhausted(self) -> bool:
        """True when the rule will not fire again."""
        return self.count is not None and self.count <= 0


class Faults:
    """The thread-safe set of fault rules an emulator consults on every request.

    Example:
        >>> faults = Faults()
        >>> _ = faults.add(route="arm.get", kind="status", status=500)
        >>> [f.kind for f in faults.rules]
        ['status']
    """

    def __init__(self, rules: Iterable[Fault] = ()) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = list(rules)

    # -- building ----------------------------------------------------------------------

    def add(
        self,
        route: str = "*",
        kind: str = "status",
        *,
        status: int | None = None,
        retry_after: float | None = None,
        seconds: float = 0.0,
        message: str | None = None,
        count: int | None = 1,
    ) -> Fault:
        """Add a rule and return it.

        Args:
            route: route name or glob (see the module docstring).
            kind: ``latency``, ``status``, ``drop``, ``lro_fail``, ``job_fail`` or ``job_slow``.
            status: HTTP status of a ``status`` fault (default 503).
            retry_after: ``Retry-After`` seconds (429 defaults to 1).
            seconds: latency to add, or the duration of a ``job_slow`` job.
            message: error text for the injected failure.
            count: how many times it fires; ``None`` = forever.

        Raises:
            ValueError: an unknown kind or an impossible value.
        """
        fault = Fault(
            route=route,
            kind=kind,
            status=status,
            retry_after=retry_after,
            seconds=seconds,
            message=message,
            count=count,
        )
        with self._lock:
            self._rules.append(fault)
        return fault

    def extend(self, other: Faults) -> None:
        """Add every rule of ``other``."""
        with self._lock:
            self._rules.extend(other.rules)

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[Fault]:
        """A snapshot of the rules."""
        with self._lock:
            return list(self._rules)

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | list[Any]) -> Faults:
        """Build from parsed config data: ``{"faults": [rule, ...]}`` or a bare list.

        Raises:
            ValueError: the data does not describe fault rules.
        """
        items = data.get("faults", []) if isinstance(data, Mapping) else data
        if not isinstance(items, list):
            raise ValueError("'faults' must be a list of rules")
        faults = cls()
        allowed = {"route", "kind", "status", "retry_after", "seconds", "message", "count"}
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise ValueError(f"fault #{i} is not a table/object")
            unknown = set(item) - allowed
            if unknown:
                raise ValueError(f"fault #{i} has unknown keys: {', '.join(sorted(unknown))}")
            kwargs = dict(item)
            if kwargs.get("count", 1) == "forever":
                kwargs["count"] = None
            faults.add(**kwargs)
        return faults

    @classmethod
    def load(cls, path: str | Path) -> Faults:
        """Read rules from a JSON (``.json``) or TOML (anything else) file.

        Raises:
            ValueError: the file does not describe fault rules.
            OSError: the file cannot be read.
        """
        p = Path(path)
        text = p.read_text(encoding="utf-8")
        if p.suffix.lower() == ".json":
            data: Any = json.loads(text)
        else:
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - exercised on 3.10 only
                import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]
            data = tomllib.loads(text)
        return cls.from_data(data)

    # -- consulting --------------------------------------------------------------------

    def take(self, route: str, kinds: Iterable[str]) -> list[Fault]:
        """Consume and return the matching rules of the given kinds (one firing each).

        ``latency`` rules all fire; of the other kinds only the first match fires.
        """
        wanted = tuple(kinds)
        out: list[Fault] = []
        with self._lock:
            decisive_taken = False
            for rule in self._rules:
                if rule.kind not in wanted or not rule.matches(route):
                    continue
                if rule.kind != "latency":
                    if decisive_taken:
                        continue
                    decisive_taken = True
                if rule.count is not None:
                    rule.count -= 1
                rule.fired += 1
                out.append(rule)
        return out

    def take_one(self, routes: Iterable[str], kind: str) -> Fault | None:
        """Consume the first rule of ``kind`` that matches any of ``routes``."""
        names = tuple(routes)
        with self._lock:
            for rule in self._rules:
                if rule.kind == kind and any(rule.matches(r) for r in names):
                    if rule.count is not None:
                        rule.count -= 1
                    rule.fired += 1
                    return rule
        return None

    def __repr__(self) -> str:
        return f"Faults({self.rules!r})"
