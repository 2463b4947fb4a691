"""``ScoringClient``: request-response (RRS, api-version 2.0) calls, used to verify a swap.

``POST {ApiLocation}/execute?api-version=2.0&details=true[&format=swagger]``. Both response
shapes are read without relying on the ``type`` member: the table form
``{"Results": {"output1": {"type": "table", "value": {"ColumnNames", "ColumnTypes",
"Values"}}}}`` and the swagger form ``{"Results": {"output1": [{column: value}, ...]}}``.

Example:
    >>> rrs = ScoringClient(endpoint.api_location, endpoint.primary_key)    # doctest: +SKIP
    >>> rrs.score(["age", "sex"], [["39", "male"]]).rows                      # doctest: +SKIP
    (('>50K', '0.92'),)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from amlretrain._http import DEFAULT_TIMEOUT, EndpointClient, retry_transient
from amlretrain._tracing import traced
from amlretrain._wire import ci_get
from amlretrain.errors import (
    ConfigurationError,
    ServiceError,
)

if TYPE_CHECKING:
    import requests
    from azure.core.credentials import AzureKeyCredential

__all__ = ["ScoreResult", "ScoreTable", "ScoringClient"]

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class ScoreTable:
    """One output table of a scoring call.

    Attributes:
        columns: column names.
        types: column types when the service gave them (table form), else ().
        rows: the values, one tuple per row (strings in the table form).
    """

    columns: tuple[str, ...]
    types: tuple[str, ...] = ()
    rows: tuple[tuple[Any, ...], ...] = ()

    def records(self) -> list[dict[str, Any]]:
        """The rows as ``{column: value}`` dicts."""
        return [dict(zip(self.columns, row, strict=False)) for row in self.rows]


@attrs.frozen(kw_only=True)
class ScoreResult:
    """The outputs of a scoring call, by output name.

    ``columns`` and ``rows`` are those of the only (or first) output.
    """

    outputs: Mapping[str, ScoreTable]

    @property
    def first(self) -> ScoreTable:
        """The only (or first) output table."""
        if not self.outputs:
            raise ConfigurationError("the scoring call returned no output")
        return next(iter(self.outputs.values()))

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names of the first output."""
        return self.first.columns

    @property
    def rows(self) -> tuple[tuple[Any, ...], ...]:
        """Rows of the first output."""
        return self.first.rows

    def output(self, name: str) -> ScoreTable:
        """The output table called ``name``.

        Raises:
            ConfigurationError: no such output.
        """
        if name not in self.outputs:
            raise ConfigurationError(f"no output {name!r}; outputs: {sorted(self.outputs)}")
        return self.outputs[name]

    @classmethod
    def from_response(cls, data: Any) -> ScoreResult:
        """Read an RRS response body (table or swagger form, any key casing).

        Raises:
            ServiceError: the body has no ``Results`` object.
        """
        results = ci_get(data, "Results") if isinstance(data, Mapping) else None
        if not isinstance(results, Mapping):
            raise ServiceError("the scoring response has no Results object")
        return cls(outputs={str(n): _table(t) for n, t in results.items()})


def _table(raw: Any) -> ScoreTable:
    if isinstance(raw, list):  # swagger form: a list of records
        columns: list[str] = []
        for record in raw:
            if isinstance(record, Mapping):
                columns.extend(str(k) for k in record if str(k) not in columns)
        rows = tuple(
            tuple(record.get(c) for c in columns) for record in raw if isinstance(record, Mapping)
        )
        return ScoreTable(columns=tuple(columns), rows=rows)
    if isinstance(raw, Mapping):
        value = ci_get(raw, "Value")
        table = value if isinstance(value, Mapping) else raw
        if isinstance(value, list):
            return _table(value)
        names = ci_get(table, "ColumnNames") or []
        types = ci_get(table, "ColumnTypes") or []
        values = ci_get(table, "Values") or []
        return ScoreTable(
            columns=tuple(str(n) for n in names),
            types=tuple(str(t) for t in types),
            rows=tuple(tuple(r) for r in values if isinstance(r, list | tuple)),
        )
    raise ServiceError("a scoring output is neither a table nor a list of records")


class ScoringClient(EndpointClient):
    """Client of one endpoint's request-response service.

    Args:
        api_location: the endpoint's ``ApiLocation`` (an ``.../execute?...`` URL is
            accepted too).
        api_key: the endpoint's API key, a string or an ``AzureKeyCredential`` (read at
            request time, so ``credential.update()`` rotates it; a secret: never shown).
        session: a ``requests.Session`` to use (its adapters then decide retries).
        timeout: ``(connect, read)`` seconds for every call.

        transient_retries: how many more times a score is sent after a transient error.

    Retries: scoring changes nothing on the service, so a call that failed transiently
    (429, 500, 502, 503, 504, a lost connection, a timeout) is sent again, up to
    ``transient_retries`` times, after 0.5 s, 1 s, 2 s ... (or the service's
    ``Retry-After``). A verification then decides on a real failure, not a blip.
    """

    def __init__(
        self,
        api_location: str,
        api_key: str | AzureKeyCredential,
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        transient_retries: int = 3,
    ) -> None:
        super().__init__(api_location, api_key, session=session, timeout=timeout)
        if transient_retries < 0:
            raise ConfigurationError("transient_retries must be at least 0")
        self.transient_retries = transient_retries

    @traced
    def score(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        input_name: str = "input1",
        swagger: bool = False,
        global_parameters: Mapping[str, Any] | None = None,
    ) -> ScoreResult:
        """Score rows and return the output tables.

        Args:
            columns: the input column names.
            rows: the rows, each as many values as ``columns``.
            input_name: the service's input port.
            swagger: use the ``format=swagger`` request and response form.
            global_parameters: web-service parameters.

        Raises:
            ConfigurationError: a row does not match the columns (before any request).
            ServiceError: the service refused the call.
        """
        width = len(columns)
        if not width:
            raise ConfigurationError("scoring needs at least one column")
        for i, row in enumerate(rows):
            if len(row) != width:
                raise ConfigurationError(f"row {i} has {len(row)} values for {width} columns")
        table: Any
        if swagger:
            table = [dict(zip(columns, row, strict=True)) for row in rows]
        else:
            table = {"ColumnNames": list(columns), "Values": [list(r) for r in rows]}
        body = {"Inputs": {input_name: table}, "GlobalParameters": dict(global_parameters or {})}
        params = {"api-version": "2.0", "details": "true"}
        if swagger:
            params["format"] = "swagger"
        response = self._post_execute(params, body)
        try:
            data = response.json()
        except ValueError as err:
            raise ServiceError("the scoring response is not JSON") from err
        return ScoreResult.from_response(data)

    def _post_execute(self, params: Mapping[str, str], body: Any) -> requests.Response:
        return retry_transient(
            lambda: self._http.request(
                "POST", f"{self.api_location}/execute", params=params, json_body=body
            ),
            self.transient_retries,
        )
