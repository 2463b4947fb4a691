"""``ModelsClient``: a workspace's model containers and versions (v2, ARM).

The swagger's ``{W}/models`` operations (V2-NOTES 1.2, 4): containers and versions are
read and listed, and written by synchronous PUTs (200 or 201, no long-running
operation). :meth:`~ModelsClient.register_version` is the loop's way to register a
trained model: idempotent for an identical existing version, and refusing a different
one (versions are immutable, 4.1), so a retried run never changes what a version means.

Example:
    >>> models = ModelsClient(DefaultAzureCredential(), sub, "rg", "ws")     # doctest: +SKIP
    >>> v = models.register_version("census", "4", job.output_uri("model"),
    ...                             job_name=job.name)                       # doctest: +SKIP
    >>> deployment.with_model(f"azureml:census:{v.name}")                    # doctest: +SKIP
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from amlretrain._errormap import translated as _translated
from amlretrain._tracing import traced
from amlretrain.azureml.models import (
    ILEARNER_REFUSAL,
    ModelContainer,
    ModelVersion,
    ModelVersionProperties,
)
from amlretrain.azureml.operations import WorkspaceClient, check_segment
from amlretrain.errors import ConfigurationError, ConflictError, NotFoundError

if TYPE_CHECKING:
    from azure.core.paging import ItemPaged

__all__ = ["ModelsClient"]

log = logging.getLogger(__name__)


def _model_type(value: Any) -> str | None:
    """``custom_model``, ``CustomModel`` and ``custommodel`` are one type (V2-NOTES 4.1)."""
    return None if value is None else str(value).replace("_", "").lower()


def _uri(value: Any) -> str | None:
    return None if value is None else str(value).rstrip("/")


class ModelsClient(WorkspaceClient):
    """Client of the model containers and versions of one Azure ML v2 workspace.

    Args: as for :class:`~amlretrain.azureml.endpoints.OnlineEndpointsClient` (no
    ``busy_timeout``: these writes are not long-running).
    """

    def container_id(self, name: str) -> str:
        """The ARM id of a model container."""
        check_segment("model name", name)
        return f"{self.workspace_id}/models/{name}"

    def version_id(self, name: str, version: str) -> str:
        """The ARM id of a model version."""
        check_segment("model version", version)
        return f"{self.container_id(name)}/versions/{version}"

    # -- containers --------------------------------------------------------------------------

    @traced
    def get_container(self, name: str) -> ModelContainer:
        """GET a model container.

        Raises:
            NotFoundError: no model of that name.
        """
        data = self._get(f"GET model {name}", self.container_id(name))
        return ModelContainer.from_dict(data)

    @traced
    def list_containers(self) -> ItemPaged[ModelContainer]:
        """The workspace's models, page by page (an azure-core ``ItemPaged``)."""
        first = f"{self.workspace_id}/models"
        return self._pages("list models", first, ModelContainer.from_dict)

    @traced
    def create_or_update_container(self, name: str, container: ModelContainer) -> ModelContainer:
        """PUT a model container (:meth:`ModelContainer.for_put`: no read-only member)."""
        rid = self.container_id(name)
        with _translated(f"PUT model {name}"):
            response = self._adapter.send_json("PUT", rid, self._params(), container.for_put())
        return ModelContainer.from_dict(response.json())

    # -- versions ----------------------------------------------------------------------------

    @traced
    def get_version(self, name: str, version: str) -> ModelVersion:
        """GET a model version.

        Raises:
            NotFoundError: no such version.
        """
        data = self._get(f"GET model {name} version {version}", self.version_id(name, version))
        return ModelVersion.from_dict(data)

    @traced
    def list_versions(self, name: str) -> ItemPaged[ModelVersion]:
        """A model's versions, page by page (an azure-core ``ItemPaged``)."""
        first = f"{self.container_id(name)}/versions"
        return self._pages(f"list versions of model {name}", first, ModelVersion.from_dict)

    @traced
    def create_or_update_version(
        self, name: str, version: str, model_version: ModelVersion
    ) -> ModelVersion:
        """PUT a model version as given (:meth:`ModelVersion.for_put`); synchronous.

        Prefer :meth:`register_version`, which never overwrites a different version.
        """
        rid = self.version_id(name, version)
        body = model_version.for_put()
        with _translated(f"PUT model {name} version {version}"):
            response = self._adapter.send_json("PUT", rid, self._params(), body)
        return ModelVersion.from_dict(response.json())

    @traced
    def register_version(
        self,
        name: str,
        version: str,
        model_uri: str,
        *,
        model_type: str = "custom_model",
        job_name: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        flavors: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Register ``model_uri`` as version ``version`` of model ``name``, once.

        A GET first: an existing version identical in every member given here (the
        model types ``custom_model`` and ``CustomModel`` are one; a trailing ``/`` of
        the URI is ignored) is returned as it is, with no PUT; one that differs is
        refused. Otherwise one PUT creates it.

        Args:
            model_uri: where the model is (``azureml://jobs/<job>/outputs/<o>/paths/...``,
                ``azureml://datastores/...``, ``runs:/...``); see V2-NOTES 4.2.
            model_type: ``custom_model`` (default), ``mlflow_model``, ``triton_model``.
            job_name: the training job that made it (lineage).

        Raises:
            ConfigurationError: an empty URI, or an ``.ilearner`` blob (Studio (classic):
                v2 cannot load it), before any request.
            ConflictError: the version exists with other members (it is not changed).
        """
        if not model_uri or not str(model_uri).strip():
            raise ConfigurationError("register_version needs the model's URI")
        path = urllib.parse.urlsplit(model_uri).path
        if path.lower().rstrip("/").endswith(".ilearner"):
            shown = urllib.parse.urlunsplit(urllib.parse.urlsplit(model_uri)._replace(query=""))
            raise ConfigurationError(f"{shown!r} {ILEARNER_REFUSAL}")
        wanted = ModelVersionProperties(
            model_uri=model_uri,
            model_type=model_type,
            job_name=job_name,
            description=description,
            tags=dict(tags) if tags is not None else None,
            properties=dict(properties) if properties is not None else None,
            flavors=dict(flavors) if flavors is not None else None,
        )
        try:
            existing: ModelVersion | None = self.get_version(name, version)
        except NotFoundError:
            existing = None
        if existing is not None:
            differs = _differences(existing.properties or ModelVersionProperties(), wanted)
            if differs:
                raise ConflictError(
                    f"model {name} version {version} exists with other members "
                    f"({'; '.join(differs)}): versions are immutable; register a new version",
                    code="ModelVersionExists",
                )
            log.info("model %s version %s is registered already (identical)", name, version)
            return existing
        created = self.create_or_update_version(name, version, ModelVersion(properties=wanted))
        log.info("registered model %s version %s", name, version)
        return created


def _differences(have: ModelVersionProperties, wanted: ModelVersionProperties) -> list[str]:
    out = []
    checks = (
        ("modelUri", _uri(have.model_uri), _uri(wanted.model_uri)),
        ("modelType", _model_type(have.model_type), _model_type(wanted.model_type)),
        ("jobName", have.job_name, wanted.job_name),
        ("description", have.description, wanted.description),
        ("tags", have.tags, wanted.tags),
        ("properties", have.properties, wanted.properties),
        ("flavors", have.flavors, wanted.flavors),
    )
    for member, got, want in checks:
        if want is None:
            continue  # not given: whatever the version holds
        if member == "properties" and isinstance(got, Mapping) and isinstance(want, Mapping):
            # the service may add properties of its own: those given must be there
            if all(got.get(k) == v for k, v in want.items()):
                continue
        elif got == want:
            continue
        out.append(f"{member} is {got!r}, not {want!r}")
    return out
