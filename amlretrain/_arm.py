"""ARM plumbing shared by the clients of ARM resources (Studio's New web services, Azure
ML v2): the one adapter over azure-mgmt-resource's generic operations, the request ids of
a long-running write, its final read, and a poller of an operation that needed no work.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from amlretrain._errormap import error_from_response
from amlretrain.blobs import is_loopback_host

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

__all__ = [
    "DonePoller",
    "Read",
    "RequestIds",
    "ResourcesAdapter",
    "final_read",
    "is_read_of",
    "raw_json",
]


def raw_json(pipeline_response: Any, _deserialized: Any, _headers: Any) -> Any:
    try:
        return pipeline_response.http_response.json()
    except ValueError:  # an empty body
        return None


class Read:
    """The last response of a long-running write: which request it answered, and its body."""

    def __init__(self, method: str, url: str, body: Any) -> None:
        self.method = method
        self.url = url
        self.body = body


def final_read(pipeline_response: Any, deserialized: Any, headers: Any) -> Read:
    request = pipeline_response.http_request
    body = raw_json(pipeline_response, deserialized, headers)
    return Read(str(request.method).upper(), str(request.url), body)


class RequestIds:
    """Remembers the ``x-ms-request-id`` of the first write request of one operation."""

    def __init__(self) -> None:
        self.initial: str | None = None

    def hook(self, pipeline_response: Any) -> None:
        request = pipeline_response.http_request
        if self.initial is None and request.method in ("PUT", "PATCH", "DELETE", "POST"):
            self.initial = pipeline_response.http_response.headers.get("x-ms-request-id")


class ResourcesAdapter:
    """The only code that calls azure-mgmt-resource (api_version keyword-only, v23+)."""

    def __init__(
        self,
        credential: TokenCredential,
        subscription_id: str,
        base_url: str,
        interval: float,
        timeout: tuple[float, float],
    ) -> None:
        from azure.mgmt.resource.resources import ResourceManagementClient

        from amlretrain._version import __version__

        self.client = ResourceManagementClient(
            credential,
            subscription_id,
            base_url=base_url,
            polling_interval=interval,
            user_agent=f"amlretrain/{__version__}",
        )
        host = urllib.parse.urlsplit(base_url).hostname
        # Plain http is allowed for a loopback emulator only; it carries to LRO polls.
        self.options: dict[str, Any] = {"enforce_https": False} if is_loopback_host(host) else {}
        # Per request, polls included: azure-core's transport reads these keywords.
        self.options["connection_timeout"], self.options["read_timeout"] = timeout
        self.interval = interval

    def get(self, resource_id: str, api_version: str, params: dict[str, str]) -> Any:
        return self.client.resources.get_by_id(
            resource_id, api_version=api_version, params=params, cls=raw_json, **self.options
        )

    def _resume(self, token: str | None) -> dict[str, Any]:
        """``continuation_token=`` for a resumed operation (nothing is sent again)."""
        return {} if token is None else {"continuation_token": token}

    def begin_put(
        self,
        resource_id: str,
        body: Any,
        api_version: str,
        ids: RequestIds,
        token: str | None = None,
    ) -> Any:
        begin = self.client.resources.begin_create_or_update_by_id
        return self._begin_write(begin, resource_id, body, api_version, ids, token)

    def begin_patch(
        self,
        resource_id: str,
        body: Any,
        api_version: str,
        ids: RequestIds,
        token: str | None = None,
    ) -> Any:
        begin = self.client.resources.begin_update_by_id
        return self._begin_write(begin, resource_id, body, api_version, ids, token)

    def _begin_write(
        self,
        begin: Callable[..., Any],
        resource_id: str,
        body: Any,
        api_version: str,
        ids: RequestIds,
        token: str | None,
    ) -> Any:
        """A PUT or PATCH followed as a long-running operation (its final read kept)."""
        return begin(
            resource_id,
            body,
            api_version=api_version,
            cls=final_read,
            raw_response_hook=ids.hook,
            **self._resume(token),
            **self.options,
        )

    def begin_delete(
        self, resource_id: str, api_version: str, ids: RequestIds, token: str | None = None
    ) -> Any:
        return self.client.resources.begin_delete_by_id(
            resource_id,
            api_version=api_version,
            raw_response_hook=ids.hook,
            **self._resume(token),
            **self.options,
        )

    def resume_post(self, token: str) -> Any:
        """The poller of a POST action (:meth:`begin_post`) from its continuation token."""
        from azure.core.polling import LROPoller
        from azure.mgmt.core.polling.arm_polling import ARMPolling

        return LROPoller.from_continuation_token(
            ARMPolling(self.interval, **self.options),
            token,
            client=self.client._client,
            deserialization_callback=lambda _response: None,
        )

    def send(self, method: str, url: str, params: dict[str, str] | None = None) -> Any:
        """One plain request (URL absolute or relative to base_url); raises on >= 400."""
        from azure.core.rest import HttpRequest

        request = HttpRequest(method, url, params=params or None)
        response = self.client.send_request(request, **self.options)
        if response.status_code >= 400:
            raise error_from_response(
                response.status_code,
                headers=dict(response.headers),
                body=response.content,
                method=method,
                url=response.request.url,
            )
        return response

    def begin_post(self, url: str, params: dict[str, str], ids: RequestIds) -> Any:
        """A POST action followed as a long-running operation (ARM polling)."""
        from azure.core.polling import LROPoller
        from azure.core.rest import HttpRequest
        from azure.mgmt.core.polling.arm_polling import ARMPolling

        request = HttpRequest("POST", url, params=params)
        pipeline_response: Any = self.client.send_request(
            request, _return_pipeline_response=True, raw_response_hook=ids.hook, **self.options
        )
        response = pipeline_response.http_response
        if response.status_code >= 400:
            response.read()
            raise error_from_response(
                response.status_code,
                headers=dict(response.headers),
                body=response.content,
                method="POST",
                url=response.request.url,
            )
        return LROPoller(
            self.client._client,  # the pipeline client: what ARMPolling polls with
            pipeline_response,
            lambda _response: None,
            ARMPolling(self.interval, **self.options),
        )

    def close(self) -> None:
        self.client.close()


class DonePoller:
    """Stands in for an LROPoller of an operation that needed no work."""

    def done(self) -> bool:
        return True

    def status(self) -> str:
        return "Succeeded"

    def wait(self, timeout: float | None = None) -> None:
        return None

    def result(self, timeout: float | None = None) -> None:
        return None


def is_read_of(final: Any, resource_id: str) -> bool:
    """True when ``final`` is the answer of a GET of ``resource_id`` holding the resource."""
    if not isinstance(final, Read) or final.method != "GET":
        return False
    path = urllib.parse.unquote(urllib.parse.urlsplit(final.url).path).rstrip("/").lower()
    body = final.body
    return (
        path.endswith(resource_id.lower())
        and isinstance(body, dict)
        and isinstance(body.get("properties"), dict)
    )
