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
from typing import TYPE_CHECKING, Any

from amlretrain._errormap import error_from_response
from amlretrain._http import DEFAULT_TIMEOUT, EndpointClient, retry_transient
from amlretrain._tracing import traced
from amlretrain.errors import ConfigurationError, ServiceError

if TYPE_CHECKING:
    import requests
    from azure.core.credentials import AzureKeyCredential

__all__ = ["DEPLOYMENT_HEADER", "OnlineScoringClient"]

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
