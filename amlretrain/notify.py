"""Notifications of a guarded rollout: the user's hooks and a webhook, on promote, alarm
and rollback (as Flagger's webhooks are).

A :class:`Notifier` (``[rollout.notify]`` in retrain.toml, read by
:meth:`Notifier.from_mapping`) calls each ``"package.module:function"`` hook as
``hook(event, payload)`` and POSTs ``{"event": event, **payload}`` as JSON to its
webhook. Everything sent is redacted first (:func:`amlretrain._redact.redact_data`);
the webhook's query string (which may carry its secret) is never recorded or logged.

:meth:`Notifier.send` never raises for a hook's or the webhook's failure: a
notification must not stop a rollback. Each :class:`Delivery` says what happened.

Example:
    >>> notifier = Notifier.from_mapping({"hooks": ["builtins:print"]}, where="[rollout.notify]")
    >>> notifier.send("promote", {"run_id": "r1"})
    promote {'event': 'promote', 'run_id': 'r1'}
    [Delivery(to='builtins:print', ok=True, error=None)]
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from amlretrain import _http
from amlretrain._hooks import describe_error, json_ready, load_callable, scrub
from amlretrain._numbers import checked
from amlretrain._redact import redact, redact_data
from amlretrain.errors import ConfigurationError

__all__ = ["EVENTS", "TIMEOUT", "Delivery", "Notifier", "webhook_target"]

log = logging.getLogger(__name__)

#: The events a rollout notifies.
EVENTS: Final = ("promote", "alarm", "rollback")
#: Bounds of a webhook's timeout, in seconds.
TIMEOUT: Final = (0.1, 300.0)
_BODY_SHOWN = 200  # characters of an error answer's body quoted in a delivery's error


def webhook_target(url: str) -> str:
    """The webhook's URL as it may be shown: no user info, query string or fragment.

    Example:
        >>> webhook_target("https://user:pw@hooks.example.com/rollout?sig=s3cr3t&x=1")
        'https://hooks.example.com/rollout'
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@attrs.frozen(kw_only=True)
class Delivery:
    """What one notification did.

    Attributes:
        to: the hook's spec, or the webhook's URL without its query string.
        ok: True when the hook returned, or the webhook answered 2xx.
        error: why not (redacted), else None.
    """

    to: str
    ok: bool
    error: str | None = None


def _check_webhook(notifier: Notifier, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    where = f"{notifier.where}: webhook"
    if not isinstance(value, str):
        raise ConfigurationError(f"{where}: must be an http(s) URL, not {type(value).__name__}")
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018 (parsing the port may raise ValueError)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        shown = webhook_target(value) if parts is not None else "(unparsable)"
        raise ConfigurationError(f"{where}: must be an http(s) URL, not {redact(shown)!r}")


def _hooks_tuple(value: object) -> Any:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(value)
    return value


def _check_timeout(notifier: Notifier, attribute: attrs.Attribute[float], value: object) -> None:
    low, high = TIMEOUT
    checked(value, name=f"{notifier.where}: timeout", low=low, high=high)


@attrs.frozen(kw_only=True)
class Notifier:
    """Calls the hooks and POSTs to the webhook on promote, alarm and rollback.

    Attributes:
        hooks: ``"package.module:function"`` specs, each imported when the notifier is
            built and called as ``hook(event, payload)``.
        webhook: an http(s) URL (it may carry a secret in its query string: shown
            nowhere); None: no webhook.
        timeout: seconds to wait for the webhook (connect and read), 0.1-300.
        where: what the settings are, first in a construction error's message.

    Raises:
        ConfigurationError: a hook that cannot be loaded, a webhook that is not an
            http(s) URL, or a timeout out of range.
    """

    where: str = attrs.field(default="rollout notify", eq=False, repr=False)
    hooks: tuple[str, ...] = attrs.field(default=(), converter=_hooks_tuple)
    webhook: str | None = attrs.field(default=None, validator=_check_webhook, repr=False)
    timeout: float = attrs.field(default=10.0, validator=_check_timeout)
    _functions: tuple[Callable[..., Any], ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.hooks, tuple):
            raise ConfigurationError(
                f'{self.where}: hooks: must be a list of "package.module:function" strings, '
                f"not {type(self.hooks).__name__}"
            )
        functions = tuple(
            load_callable(spec, where=f"{self.where}: hooks[{index}]")
            for index, spec in enumerate(self.hooks)
        )
        object.__setattr__(self, "_functions", functions)

    @property
    def webhook_target(self) -> str | None:
        """The webhook's URL without user info or query string (what deliveries show)."""
        return webhook_target(self.webhook) if self.webhook else None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str) -> Notifier:
        """The notifier of a ``[rollout.notify]`` table: ``hooks``, ``webhook``, ``timeout``.

        Raises:
            ConfigurationError: not a table, an unknown key, or a bad value; the message
                names ``where``.
        """
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{where}: must be a table, not {type(data).__name__}")
        known = ("hooks", "webhook", "timeout")
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                f"(a typo?); the keys are {', '.join(known)}"
            )
        hooks = data.get("hooks", ())
        if not isinstance(hooks, list | tuple) or not all(isinstance(h, str) for h in hooks):
            raise ConfigurationError(
                f'{where}: hooks: must be a list of "package.module:function" strings'
            )
        return cls(
            where=where,
            hooks=tuple(hooks),
            webhook=data.get("webhook"),
            timeout=data.get("timeout", 10.0),
        )

    def send(self, event: str, payload: Mapping[str, Any]) -> list[Delivery]:
        """Notify every hook, then the webhook, of ``event``; never raises for their failures.

        Args:
            event: ``"promote"``, ``"alarm"`` or ``"rollback"``.
            payload: JSON-like members (run id, targets, model, alarm, evidence ...);
                redacted before anything sees it. An ``event`` member is replaced.

        Returns:
            One delivery per hook (in order), then one for the webhook.

        Raises:
            ConfigurationError: an unknown event (a bug of the caller, not a failure to
                notify).
        """
        if event not in EVENTS:
            raise ConfigurationError(f"event: must be one of {', '.join(EVENTS)}, not {event!r}")
        body: dict[str, Any] = redact_data(
            json_ready({"event": event, **{k: v for k, v in payload.items() if k != "event"}})
        )
        deliveries = []
        for spec, function in zip(self.hooks, self._functions, strict=True):
            try:
                function(event, json.loads(json.dumps(body)))  # each hook gets its own copy
            except Exception as err:  # the user's code: reported, never raised
                deliveries.append(Delivery(to=spec, ok=False, error=describe_error(err)))
                log.warning(
                    "notification hook %s failed on %s: %s", spec, event, describe_error(err)
                )
            else:
                deliveries.append(Delivery(to=spec, ok=True))
        if self.webhook:
            deliveries.append(self._post(body))
        return deliveries

    def _post(self, body: Mapping[str, Any]) -> Delivery:
        assert self.webhook is not None
        target = webhook_target(self.webhook)
        try:
            session = _http.new_session()
            try:
                answer = session.post(
                    self.webhook,
                    data=json.dumps(body).encode("utf-8"),
                    headers={"Content-Type": "application/json"},
                    timeout=self.timeout,
                )
                status, text = answer.status_code, answer.text
            finally:
                session.close()
        except Exception as err:  # connection refused, timeout, TLS ...: reported
            error = describe_error(err, **self._secrets())
            log.warning("webhook %s failed: %s", target, error)
            return Delivery(to=target, ok=False, error=error)
        if 200 <= status < 300:
            return Delivery(to=target, ok=True)
        said = " ".join(text.split())[:_BODY_SHOWN]
        error = scrub(f"HTTP {status}" + (f": {said}" if said else ""), **self._secrets())
        log.warning("webhook %s answered %s", target, error)
        return Delivery(to=target, ok=False, error=error)

    def _secrets(self) -> dict[str, tuple[str, ...]]:
        """The webhook URL's parts never shown: its query string and user info (hidden),
        the query's values of 4 characters or more (masked, wherever they appear)."""
        assert self.webhook is not None
        parts = urllib.parse.urlsplit(self.webhook)
        query = parts.query
        hide = (
            f"?{query}" if query else "",
            query,
            urllib.parse.unquote(query),
            f"{parts.username}:{parts.password}@" if parts.password else "",
            f"{parts.username}@" if parts.username else "",
        )
        values = [v for _, v in urllib.parse.parse_qsl(query, keep_blank_values=True)]
        values += [parts.password or ""]
        mask = {m for v in values if len(v) >= 4 for m in (v, urllib.parse.quote(v, safe=""))}
        return {"hide": tuple(h for h in hide if h), "mask": tuple(sorted(mask))}
