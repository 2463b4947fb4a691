"""The emulated Azure ML v2 model containers, model versions and command jobs (V2-NOTES 4, 5).

Routes: ``v2.model.{list,get,put,delete}``, ``v2.modelversion.{list,get,put,delete}``,
``v2.job.{list,get,put,delete,cancel}`` (synchronous PUTs; job delete and cancel are
202 + ``Location`` operations).

* A version PUT creates its container when missing. Versions are immutable (UNVERIFIED in
  V2-NOTES 4.1): a second PUT of an existing version with the same ``modelUri``,
  ``modelType``, ``flavors`` and ``jobName`` is 200 (only its description, tags,
  properties, ``isArchived`` and ``stage`` are updated); with any other content it is
  refused, 409 ``Conflict`` (GUESS: the status and code are not documented).
  ``latestVersion`` is the highest version (numerically when it is a number, else the
  last created) and ``nextVersion`` one more than the highest integer version.
  ``modelType`` is accepted in either spelling (``custom_model``, ``CustomModel`` …).
* A job PUT of a new name creates and runs it (201); of an existing one it replaces the
  tags only (200). Only ``jobType: Command`` is served, with a non-empty ``command``. The
  run is :class:`~amlretrain.emulator.v2jobs.JobRunner`'s (its ``command`` is not
  executed).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from amlretrain.emulator._server import Request, Response, Router, json_response
from amlretrain.emulator.faults import Faults
from amlretrain.emulator.state import State
from amlretrain.emulator.v2base import V2Base, W, bad, conflict, not_found
from amlretrain.emulator.v2jobs import JobRunner
from amlretrain.emulator.v2state import PROVIDER, V2Job, V2Model, V2Workspace, system_data

__all__ = ["V2AssetsApi"]

log = logging.getLogger(__name__)

_IMMUTABLE = ("modelUri", "modelType", "flavors", "jobName")
_TYPES = {"custommodel": "custom_model", "mlflowmodel": "mlflow_model"}
_TYPES["tritonmodel"] = "triton_model"


def _model_type(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).lower().replace("_", "")
    return _TYPES.get(text, str(value))


def _version_key(version: str) -> tuple[int, int, str]:
    return (0, int(version), "") if version.isdigit() else (1, 0, version)


class V2AssetsApi(V2Base):
    """Models and jobs on the emulator's server."""

    def __init__(self, *, state: State, faults: Faults, arm_token: str, runner: JobRunner) -> None:
        super().__init__(state=state, faults=faults, arm_token=arm_token)
        self.runner = runner

    def register(self, router: Router) -> None:
        """Add the routes."""

        def add(method: str, pattern: str, name: str, handler: Any) -> None:
            router.add(method, pattern, name, handler, ignore_case=True)

        add("GET", W + "/models", "v2.model.list", self.list_models)
        add("GET", W + "/models/{name}", "v2.model.get", self.get_model)
        add("PUT", W + "/models/{name}", "v2.model.put", self.put_model)
        add("DELETE", W + "/models/{name}", "v2.model.delete", self.delete_model)
        versions = W + "/models/{name}/versions"
        add("GET", versions, "v2.modelversion.list", self.list_versions)
        add("GET", versions + "/{version}", "v2.modelversion.get", self.get_version)
        add("PUT", versions + "/{version}", "v2.modelversion.put", self.put_version)
        add("DELETE", versions + "/{version}", "v2.modelversion.delete", self.delete_version)
        add("GET", W + "/jobs", "v2.job.list", self.list_jobs)
        add("GET", W + "/jobs/{id}", "v2.job.get", self.get_job)
        add("PUT", W + "/jobs/{id}", "v2.job.put", self.put_job)
        add("DELETE", W + "/jobs/{id}", "v2.job.delete", self.delete_job)
        add("POST", W + "/jobs/{id}/cancel", "v2.job.cancel", self.cancel_job)

    # -- model containers --------------------------------------------------------------

    def _container(self, ws: V2Workspace, name: str) -> V2Model | None:
        found: V2Model | None = self.v2.models.get((*ws.key, name.lower()))
        return found

    def _new_container(self, ws: V2Workspace, name: str, props: dict[str, Any]) -> V2Model:
        resource = {
            "id": f"{ws.arm_id}/models/{name}",
            "name": name,
            "type": f"{PROVIDER}/workspaces/models",
            "systemData": system_data(),
            "properties": {
                "description": props.get("description"),
                "tags": dict(props.get("tags") or {}),
                "properties": dict(props.get("properties") or {}),
                "isArchived": bool(props.get("isArchived", False)),
                "provisioningState": "Succeeded",
            },
        }
        model = V2Model(name=name, resource=resource)
        key = (*ws.key, name.lower())
        self.v2.models[key] = model
        return model

    @staticmethod
    def _container_view(model: V2Model) -> dict[str, Any]:
        view = copy.deepcopy(model.resource)
        if model.versions:
            ordered = sorted(model.versions, key=_version_key)
            view["properties"]["latestVersion"] = ordered[-1]
        numbers = [int(v) for v in model.versions if v.isdigit()]
        view["properties"]["nextVersion"] = str(max(numbers, default=0) + 1)
        return view

    def list_models(self, req: Request) -> Response:
        """``ModelContainers_List``."""
        with self.state.locked():
            ws = self.workspace(req)
            found = [m for k, m in self.v2.models.items() if k[:3] == ws.key]
            return self.page(req, [self._container_view(m) for m in found])

    def get_model(self, req: Request) -> Response:
        """``ModelContainers_Get``."""
        with self.state.locked():
            model = self._container(self.workspace(req), req.params["name"])
            if model is None:
                raise not_found(f"The model {req.params['name']}")
            return json_response(200, self._container_view(model))

    def put_model(self, req: Request) -> Response:
        """``ModelContainers_CreateOrUpdate``: 201 create, 200 update (description, tags …)."""
        with self.state.locked():
            ws = self.workspace(req)
            props = self.body(req).get("properties")
            if not isinstance(props, dict):
                raise bad("The request body must contain 'properties'.")
            model = self._container(ws, req.params["name"])
            if model is None:
                model = self._new_container(ws, req.params["name"], props)
                return json_response(201, self._container_view(model))
            p = model.resource["properties"]
            for member in ("description", "tags", "properties", "isArchived"):
                if member in props:
                    p[member] = copy.deepcopy(props[member])
            model.resource["systemData"] = system_data(model.resource["systemData"])
            return json_response(200, self._container_view(model))

    def delete_model(self, req: Request) -> Response:
        """``ModelContainers_Delete`` (its versions too): 200, or 204 when absent."""
        with self.state.locked():
            ws = self.workspace(req)
            gone = self.v2.models.pop((*ws.key, req.params["name"].lower()), None)
            return Response(status=200 if gone else 204)

    # -- model versions ----------------------------------------------------------------

    def list_versions(self, req: Request) -> Response:
        """``ModelVersions_List`` (newest first)."""
        with self.state.locked():
            model = self._container(self.workspace(req), req.params["name"])
            if model is None:
                raise not_found(f"The model {req.params['name']}")
            ordered = sorted(model.versions, key=_version_key, reverse=True)
            return self.page(req, [copy.deepcopy(model.versions[v]) for v in ordered])

    def get_version(self, req: Request) -> Response:
        """``ModelVersions_Get``."""
        with self.state.locked():
            ws = self.workspace(req)
            found = self.v2.model_version(ws, req.params["name"], req.params["version"])
            if found is None:
                raise not_found(f"The model {req.params['name']} version {req.params['version']}")
            return json_response(200, copy.deepcopy(found))

    def put_version(self, req: Request) -> Response:
        """``ModelVersions_CreateOrUpdate``: 201 create, 200 same content, 409 otherwise."""
        with self.state.locked():
            ws = self.workspace(req)
            props = self.body(req).get("properties")
            if not isinstance(props, dict):
                raise bad("The request body must contain 'properties'.")
            name, version = req.params["name"], req.params["version"]
            model = self._container(ws, name) or self._new_container(ws, name, {})
            new = {
                "description": props.get("description"),
                "tags": dict(props.get("tags") or {}),
                "properties": dict(props.get("properties") or {}),
                "isArchived": bool(props.get("isArchived", False)),
                "isAnonymous": bool(props.get("isAnonymous", False)),
                "flavors": copy.deepcopy(props.get("flavors")),
                "jobName": props.get("jobName"),
                "modelType": _model_type(props.get("modelType")),
                "modelUri": props.get("modelUri"),
                "stage": props.get("stage"),
                "provisioningState": "Succeeded",
            }
            old = model.versions.get(version)
            if old is not None:
                changed = [k for k in _IMMUTABLE if old["properties"].get(k) != new[k]]
                if changed:
                    raise conflict(
                        f"The model {name} version {version} already exists with other "
                        f"{', '.join(changed)}: versions are immutable; register a new version "
                        f"(next: {self._container_view(model)['properties']['nextVersion']})."
                    )
                new["isAnonymous"] = old["properties"].get("isAnonymous", False)
                old["properties"] = new
                old["systemData"] = system_data(old["systemData"])
                return json_response(200, copy.deepcopy(old))
            resource = {
                "id": f"{ws.arm_id}/models/{model.name}/versions/{version}",
                "name": version,
                "type": f"{PROVIDER}/workspaces/models/versions",
                "systemData": system_data(),
                "properties": new,
            }
            model.versions[version] = resource
            return json_response(201, copy.deepcopy(resource))

    def delete_version(self, req: Request) -> Response:
        """``ModelVersions_Delete``: 200, or 204 when absent."""
        with self.state.locked():
            model = self._container(self.workspace(req), req.params["name"])
            gone = model.versions.pop(req.params["version"], None) if model else None
            return Response(status=200 if gone else 204)

    # -- jobs --------------------------------------------------------------------------

    def _job(self, ws: V2Workspace, req: Request) -> V2Job:
        job: V2Job | None = self.v2.job(ws, req.params["id"])
        if job is None:
            raise not_found(f"The job {req.params['id']}")
        return job

    def list_jobs(self, req: Request) -> Response:
        """``Jobs_List`` (creation order)."""
        with self.state.locked():
            ws = self.workspace(req)
            found = sorted(
                (j for k, j in self.v2.jobs.items() if k[:3] == ws.key), key=lambda j: j.created
            )
            return self.page(req, [copy.deepcopy(j.resource) for j in found])

    def get_job(self, req: Request) -> Response:
        """``Jobs_Get``."""
        with self.state.locked():
            return json_response(200, copy.deepcopy(self._job(self.workspace(req), req).resource))

    def put_job(self, req: Request) -> Response:
        """``Jobs_CreateOrUpdate``: 201 creates and runs; 200 replaces the tags."""
        with self.state.locked():
            ws = self.workspace(req)
            props = self.body(req).get("properties")
            if not isinstance(props, dict):
                raise bad("The request body must contain 'properties'.")
            job = self.v2.job(ws, req.params["id"])
            if job is not None:
                job.resource["properties"]["tags"] = dict(props.get("tags") or {})
                return json_response(200, copy.deepcopy(job.resource))
            if props.get("jobType") != "Command":
                raise bad(
                    f"jobType {props.get('jobType')!r} is not served: the emulator runs "
                    "Command jobs only."
                )
            if not str(props.get("command") or "").strip():
                raise bad("properties.command is required (a non-empty string).")
            job = self.runner.create(req, ws, req.params["id"], props)
            return json_response(201, copy.deepcopy(job.resource))

    def cancel_job(self, req: Request) -> Response:
        """``Jobs_Cancel``: 202 + ``Location``; the job goes CancelRequested -> Canceled."""
        with self.state.locked():
            ws = self.workspace(req)
            job = self._job(ws, req)
            if job.status in ("Completed", "Failed", "Canceled"):
                return Response(status=200)
            job.resource["properties"]["status"] = "CancelRequested"
            job.history.append("CancelRequested")
            job.cancel.set()
            target = job

            def apply() -> None:
                target.resource["properties"]["status"] = "Canceled"
                target.history.append("Canceled")

            op = self.start(ws, on_success=apply, delay=self.lro_slow(req))
            return Response(
                status=202, headers=self.async_headers(req, op, location=True, status=False)
            )

    def delete_job(self, req: Request) -> Response:
        """``Jobs_Delete``: 202 + ``Location``; 204 when absent."""
        with self.state.locked():
            ws = self.workspace(req)
            job = self.v2.job(ws, req.params["id"])
            if job is None:
                return Response(status=204)
            job.cancel.set()
            target = job

            def apply() -> None:
                self.v2.jobs.pop((*ws.key, target.name.lower()), None)

            op = self.start(ws, on_success=apply, delay=self.lro_slow(req))
            return Response(
                status=202, headers=self.async_headers(req, op, location=True, status=False)
            )
