"""Traffic maps of an online endpoint, checked before anything is sent (pure code).

An endpoint's traffic changes only by a whole PUT of the endpoint (V2-NOTES 2.2), and a
PUT without ``traffic`` drops every deployment to 0% (F1); one without ``mirrorTraffic``
turns mirroring off (F10). :func:`endpoint_put_body` is the one way such a body is made:
the endpoint as read (every member kept, the read-only ones dropped) with the whole new
``traffic`` and ``mirrorTraffic`` maps, after :meth:`TrafficMap.validate`:

* T1: live traffic sums to 0 (traffic off) or 100;
* T2: mirror traffic goes to one deployment at most, at most 50%;
* T4: no deployment receives both live and mirror traffic;
* every name is a deployment of the endpoint (matched case-insensitively, written as the
  deployment spells it); every value an integer from 0 to 100.

Example:
    >>> TrafficMap({"blue": 90, "green": 10}).validate(["blue", "green"]).live
    {'blue': 90, 'green': 10}
    >>> TrafficMap({"blue": 90}).validate(["blue"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    amlretrain.errors.ConfigurationError: live traffic sums to 90%: it must be 100% ...
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from amlretrain._wire import find_key
from amlretrain.azureml.models import OnlineEndpoint
from amlretrain.errors import ConfigurationError

__all__ = ["MAX_MIRROR_PERCENT", "TrafficMap", "endpoint_put_body", "positive"]

#: The most mirror traffic one deployment may receive (T2).
MAX_MIRROR_PERCENT = 50


def positive(traffic: Mapping[str, int]) -> dict[str, int]:
    """A traffic map compared as the service may store it: zero entries dropped, names
    lower-cased (V2-NOTES 2.2, the SDK's ``_strip_zeroes_from_traffic``)."""
    return {k.lower(): v for k, v in traffic.items() if v}


def _as_dict(value: Mapping[str, int]) -> dict[str, int]:
    return dict(value)


def _percent(what: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{what} of {name!r} is {value!r}: give a whole percent")
    if not 0 <= value <= 100:
        raise ConfigurationError(f"{what} of {name!r} is {value}%: it must be 0 to 100")
    return value


def _named(what: str, traffic: Mapping[str, Any], deployments: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for raw_name, value in traffic.items():
        name = str(raw_name)
        known = deployments.get(name.lower())
        if known is None:
            listed = ", ".join(sorted(deployments.values())) or "none"
            raise ConfigurationError(
                f"{what} names {name!r}, which is no deployment of the endpoint "
                f"(deployments: {listed})"
            )
        if known in out:
            raise ConfigurationError(f"{what} names deployment {known!r} twice")
        out[known] = _percent(what, name, value)
    return out


@attrs.frozen
class TrafficMap:
    """The whole traffic of an endpoint: live (``traffic``) and mirror (``mirrorTraffic``).

    Attributes:
        live: deployment name -> percent of the live calls.
        mirror: deployment name -> percent of the calls copied to it (shadow traffic).
    """

    live: Mapping[str, int] = attrs.field(converter=_as_dict)
    mirror: Mapping[str, int] = attrs.field(factory=dict, converter=_as_dict)

    def validate(self, deployments: Iterable[str]) -> TrafficMap:
        """This map checked against the endpoint's deployments (T1, T2, T4, names).

        Returns:
            The map with each name spelled as its deployment is.

        Raises:
            ConfigurationError: a rule broken, naming it.
        """
        known = {str(d).lower(): str(d) for d in deployments}
        live = _named("live traffic", self.live, known)
        mirror = _named("mirror traffic", self.mirror, known)
        total = sum(live.values())
        if total not in (0, 100):
            raise ConfigurationError(
                f"live traffic sums to {total}%: it must be 100% (or 0% to turn traffic off) (T1)"
            )
        mirrored = {name: pct for name, pct in mirror.items() if pct > 0}
        if len(mirrored) > 1:
            raise ConfigurationError(
                f"mirror traffic goes to {', '.join(sorted(mirrored))}: it may go to one "
                "deployment only (T2)"
            )
        for name, pct in mirrored.items():
            if pct > MAX_MIRROR_PERCENT:
                raise ConfigurationError(
                    f"mirror traffic to {name!r} is {pct}%: at most {MAX_MIRROR_PERCENT}% (T2)"
                )
            if live.get(name, 0) > 0:
                raise ConfigurationError(
                    f"deployment {name!r} would receive both live ({live[name]}%) and mirror "
                    f"({pct}%) traffic: one or the other (T4); to promote a mirrored "
                    "deployment, give mirror={} with its live traffic"
                )
        return TrafficMap(live, mirror)

    @property
    def serving(self) -> tuple[str, ...]:
        """The deployments with live traffic above 0%."""
        return tuple(name for name, pct in self.live.items() if pct > 0)


def endpoint_put_body(
    endpoint: OnlineEndpoint, traffic: TrafficMap, deployments: Iterable[str]
) -> dict[str, Any]:
    """The whole PUT body that sets ``traffic`` on ``endpoint`` (as read).

    Every member of the endpoint is sent as read, but the read-only ones
    (:meth:`OnlineEndpoint.for_put`); ``properties.traffic`` and
    ``properties.mirrorTraffic`` are the whole maps of the validated ``traffic`` (in the
    member names the endpoint was read with). So no caller can send an endpoint PUT
    without its traffic (F1) or lose its mirror (F10).

    Raises:
        ConfigurationError: ``traffic`` breaks a rule (:meth:`TrafficMap.validate`), or
            the endpoint has no ``location`` or ``properties`` (not a document read from
            the service).
    """
    checked = traffic.validate(deployments)
    if not endpoint.location or endpoint.properties is None:
        raise ConfigurationError(
            "the endpoint has no location or properties: read it from the service first"
        )
    body = endpoint.for_put()
    props = body["properties"]
    for wire_name, value in (("traffic", checked.live), ("mirrorTraffic", checked.mirror)):
        key = find_key(props, wire_name) or wire_name
        props[key] = dict(value)
    return body
