"""``OnlineScoringClient``: calls to an online endpoint's scoring URI (v2 data plane).

``POST {scoringUri}`` with ``Authorization: Bearer <key or token>``, the caller's JSON body
(passed to the scoring script's ``run()``), and, to reach one deployment whatever the
traffic (T5: also a 0% or a mirrored one), ``azureml-model-deployment: <name>``
(V2-NOTES 6).

Errors are mapped by :mod:`amlretrain._errormap` (401
:class:`~amlretrain.errors.AuthenticationError`, 404
:class:`~amlretrain.errors.NotFoundError`: no deployment of positive weight, or none of
that name; 408 and 424 :class:`~amlretrain.errors.ServiceError`, a 424 naming the model
container's own status and reason from ``ms-azureml-model-error-statuscode`` /
``-reason``; 429 :class:`~amlretrain.errors.ThrottledError`). Transient failures are
sent again as :class:`~amlretrain.studio.scoring.ScoringClient` does (the same test of
what is transient).

Example:
    >>> keys = endpoints.list_keys("census")                                   # doctest: +SKIP
    >>> ep = endpoints.get_endpoint("census")                                  # doctest: +SKIP
    >>> with OnlineScoringClient(ep.scoring_uri, keys.primary_key) as rt:       # doctest: +SKIP
    ...     rt.score({"data": [[39, "male"]]}, deployment="green")
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from amlretrain._errormap import error_from_response
from amlretrain._http import DEFAULT_TIMEOUT, EndpointClient, retry_transient
from amlretrain._tracing import traced
from amlretrain.errors import ConfigurationError, ServiceError
from amlretrain.studio.scoring import ScoreResult, ScoreTable, ScoringClient

if TYPE_CHECKING:
    import requests
    from azure.core.credentials import AzureKeyCredential

__all__ = ["DEPLOYMENT_HEADER", "OnlineEndpointScoring", "OnlineScoringClient"]

log = logging.getLogger(__name__)

#: The header that sends a call to one deployment (T5).
DEPLOYMENT_HEADER = "azureml-model-deployment"


class OnlineScoringClient(EndpointClient):
    """Client of one online endpoint's scoring URI.

    Args:
        scoring_uri: the endpoint's ``properties.scoringUri``.
        key: a key (``listKeys``) or a token, a string or an ``AzureKeyCredential``
            (read at request time; a secret: never shown).
        session: a ``requests.Session`` to use (its adapters then decide retries).
        timeout: ``(connect, read)`` seconds for every call.
        transient_retries: how many more times a call is sent after a transient error
            (429, 500, 502, 503, 504, no answer), after 0.5 s, 1 s, 2 s... (or the
            service's ``Retry-After``).
    """

    def __init__(
        self,
        scoring_uri: str,
        key: str | AzureKeyCredential,
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        transient_retries: int = 3,
    ) -> None:
        super().__init__(scoring_uri, key, session=session, timeout=timeout)
        if transient_retries < 0:
            raise ConfigurationError("transient_retries must be at least 0")
        self.scoring_uri = self.api_location
        self.transient_retries = transient_retries

    @traced
    def score(self, body: Any, deployment: str | None = None) -> Any:
        """POST ``body`` (JSON) to the scoring URI; the JSON answer (text if not JSON).

        Args:
            deployment: send the call to this deployment (``azureml-model-deployment``),
                whatever its traffic.

        Raises:
            AuthenticationError, NotFoundError, ThrottledError, ServiceError: the
                service's refusal (see the module docstring).
        """
        headers = {DEPLOYMENT_HEADER: deployment} if deployment else None
        response = retry_transient(lambda: self._send(body, headers), self.transient_retries)
        try:
            return response.json()
        except ValueError:
            return response.text

    def _send(self, body: Any, headers: dict[str, str] | None) -> Any:
        response = self._http.request(
            "POST",
            self.scoring_uri,
            json_body=body,
            headers=headers,
            ok=lambda status: 200 <= status < 300 or status == 424,
        )
        if response.status_code != 424:
            return response
        status = response.headers.get("ms-azureml-model-error-statuscode")
        reason = response.headers.get("ms-azureml-model-error-reason")
        err = error_from_response(
            424,
            headers=response.headers,
            body=response.content,
            method="POST",
            url=response.url or self.scoring_uri,
        )
        response.close()
        raise ServiceError(
            f"the model container answered {status or '?'} ({reason or 'no reason'}): "
            f"{err.service_message}",
            status=424,
            code=err.code or "ModelError",
            request_id=err.request_id,
            method="POST",
            url=err.url,
        )


def _table(answer: Any) -> ScoreResult:
    """A v2 scoring answer (a list of records, or outputs -> list of records) as a result."""
    outputs: dict[str, Any]
    if isinstance(answer, list):
        outputs = {"output1": answer}
    elif isinstance(answer, Mapping) and all(isinstance(v, list) for v in answer.values()):
        outputs = dict(answer)
    else:
        raise ServiceError(
            "the scoring answer is not a list of records ({column: value}) nor outputs of them",
            code="UnexpectedScoringAnswer",
        )
    tables: dict[str, ScoreTable] = {}
    for name, records in outputs.items():
        columns: list[str] = []
        for record in records:
            if not isinstance(record, Mapping):
                raise ServiceError(
                    f"the scoring answer's {name!r} holds a {type(record).__name__}, "
                    "not a record ({column: value})",
                    code="UnexpectedScoringAnswer",
                )
            columns.extend(str(k) for k in record if str(k) not in columns)
        rows = tuple(tuple(r.get(c) for c in columns) for r in records)
        tables[str(name)] = ScoreTable(columns=tuple(columns), rows=rows)
    return ScoreResult(outputs=tables)


class OnlineEndpointScoring(ScoringClient):
    """Scoring of an online endpoint as a :class:`~amlretrain.studio.scoring.ScoringClient`
    (``score(columns, rows, input_name=)`` -> :class:`~amlretrain.studio.scoring.ScoreResult`),
    what the loop's smoke test and the guarded rollout's probes call: the body is
    ``{"input_data": {"columns": [...], "data": [[...]]}}``, sent by an
    :class:`~amlretrain.azureml.scoring.OnlineScoringClient`; the answer's records become
    one table (``output1``), columns ``Scored Labels`` and ``Scored Probabilities`` for
    the bundled learner. A context manager (closes its sessions).

    Args:
        scoring_uri: the endpoint's ``properties.scoringUri``.
        key: a key of the endpoint (``listKeys``; a secret: never shown).
        deployment: send every call to this deployment (``azureml-model-deployment``);
            None: the endpoint's live traffic decides.
        transient_retries: how many more times a call is sent after a transient error.
    """

    def __init__(
        self,
        scoring_uri: str,
        key: str,
        *,
        deployment: str | None = None,
        transient_retries: int = 3,
    ) -> None:
        super().__init__(scoring_uri, key, transient_retries=transient_retries)
        self.deployment = deployment
        self.online = OnlineScoringClient(scoring_uri, key, transient_retries=transient_retries)

    def __repr__(self) -> str:
        return f"OnlineEndpointScoring({self.online.scoring_uri!r}, deployment={self.deployment!r})"

    def score(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        input_name: str = "input1",
        swagger: bool = False,
        global_parameters: Mapping[str, Any] | None = None,
    ) -> ScoreResult:
        """Score ``rows``; ``input_name``, ``swagger`` and ``global_parameters`` are not
        used (a v2 body has one input, and no parameters).

        Raises:
            ConfigurationError: a row does not match the columns (before any request).
            ServiceError: the service refused the call, or answered something else than
                records.
        """
        width = len(columns)
        if not width:
            raise ConfigurationError("scoring needs at least one column")
        for i, row in enumerate(rows):
            if len(row) != width:
                raise ConfigurationError(f"row {i} has {len(row)} values for {width} columns")
        body = {"input_data": {"columns": list(columns), "data": [list(r) for r in rows]}}
        return _table(self.online.score(body, deployment=self.deployment))

    def close(self) -> None:
        """Close the scoring clients' sessions."""
        self.online.close()
        super().close()
