"""The Azure ML v2 data plane: ``POST {scoringUri}`` of a managed online endpoint (V2-NOTES 6),
and how a deployment's model reference becomes the learner model it serves.

``scoringUri`` is ``{emulator}/v2/online/{endpoint}/score`` (route ``v2.score``) and
``swaggerUri`` ``…/swagger.json`` (``v2.swagger``). Credentials (``Authorization: Bearer``):
a ``Key`` endpoint takes its primary or secondary key, an ``AMLToken`` endpoint a token
from ``/token`` (until it expires), an ``AADToken`` endpoint the emulator's ARM token; 401
otherwise.

Routing: ``azureml-model-deployment: <name>`` goes to that deployment whatever its
traffic (T5) and is never mirrored; without it a deployment is drawn by the live traffic
weights from the endpoint's own seeded RNG (deterministic for a given sequence of calls),
and 404 when no deployment has positive weight (T8). Header-less calls are copied to the
mirror deployment with its mirror percentage (the same RNG): the copy is scored, its answer
discarded, and counted (``V2Endpoint.mirrored``, ``V2Deployment.mirrored``). The answer
carries the ``azureml-model-deployment`` header naming the deployment that served it.

The emulator's scoring script takes MLflow's split-orientation body::

    {"input_data": {"columns": ["age", ...], "index": [0, ...], "data": [[39, ...], ...]}}

(``index`` optional) and answers a JSON list, one object per row::

    [{"Scored Labels": ">50K", "Scored Probabilities": 0.73}, ...]

computed by the bundled learner from the model the deployment loaded (a swap to another
model version changes the answer). A body it cannot read is 400 ``BadRequest``. A model
carrying behaviour (the learner's ``"emulator"`` member) is honoured: its latency is added,
its score shift applied, and its error share of requests answered 424 with
``ms-azureml-model-error-statuscode`` (the model's error status) and
``ms-azureml-model-error-reason``. More than ``2 * maxConcurrentRequestsPerInstance *
sku.capacity`` requests pending on one deployment: 429 ``TooManyRequests`` (V2-NOTES 6).

Model references (``properties.model`` of a deployment): a model version's ARM id
(``…/workspaces/{ws}/models/{name}/versions/{v}``) or ``azureml:name:version``. The
version's ``modelUri`` is ``azureml://datastores/<ds>/paths/<p>`` (short or long form) or
``azureml://jobs/<job>/outputs/<output>[/paths/<p>]``; a path that names a folder means
its ``model.json``. The blob must hold the learner's JSON model format
(:mod:`amlretrain.emulator.learner`). A classic ``.ilearner`` is refused (V2-NOTES 7.3:
v2 has no loader for it): the deployment's operation ends ``Failed`` /
``ResourceNotReady``, as for any model ``init()`` cannot load.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from amlretrain.emulator._server import Request, Response, Router, arm_error, json_response
from amlretrain.emulator._storage import BlobAccessError, Storage
from amlretrain.emulator.state import State
from amlretrain.emulator.v2state import (
    V2Deployment,
    V2Endpoint,
    V2State,
    V2Workspace,
    datastore_path,
    job_output,
)

if TYPE_CHECKING:
    from amlretrain.emulator.learner import Model

__all__ = ["ModelProblem", "V2ScoreApi", "model_blob", "resolve_model"]

log = logging.getLogger(__name__)

_ARM_VERSION = re.compile(
    r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices"
    r"/workspaces/[^/]+/models/([^/]+)/versions/([^/]+)$",
    re.IGNORECASE,
)
_ASSET = re.compile(r"^azureml:([^:/]+):([^:/]+)$")


class ModelProblem(Exception):
    """A deployment's model cannot be served: ``code`` is the operation's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def model_blob(v2: V2State, ws: V2Workspace, uri: str) -> tuple[str, str]:
    """The ``(container, blob)`` of a model version's ``modelUri``.

    Raises:
        ModelProblem: a URI form the emulator cannot map, or an unknown job or output.
    """
    where = datastore_path(uri)
    if where is None and (found := job_output(uri)) is not None:
        job_name, output, path = found
        job = v2.job(ws, job_name)
        outputs = job.resource["properties"].get("outputs") or {} if job else {}
        out = outputs.get(output) if isinstance(outputs, dict) else None
        out_uri = str(out.get("uri") or "") if isinstance(out, dict) else ""
        base = datastore_path(out_uri)
        if base is None:
            raise ModelProblem(
                "ResourceNotFound", f"The job output {job_name}/{output} of {uri!r} does not exist."
            )
        container, blob = base
        if path:
            folder = blob.rsplit("/", 1)[0] if blob.endswith(".json") else blob.rstrip("/")
            blob = f"{folder}/{path}"
        where = (container, blob)
    if where is None:
        raise ModelProblem(
            "ResourceNotReady",
            f"The model URI {uri!r} is not an azureml://datastores/… or azureml://jobs/… URI.",
        )
    container, blob = where
    if not blob or blob.endswith("/") or "." not in blob.rsplit("/", 1)[-1]:
        blob = blob.rstrip("/") + "/model.json" if blob else "model.json"
    return container, blob


def resolve_model(storage: Storage, v2: V2State, ws: V2Workspace, ref: str) -> Model:
    """Load the model a deployment's ``properties.model`` references.

    Raises:
        ModelProblem: ``ResourceNotFound`` (no such version or blob) or
            ``ResourceNotReady`` (an ``.ilearner`` or bytes that are not a model).
    """
    from amlretrain.emulator.learner import LearnerError, Model

    m = _ARM_VERSION.search(ref) or _ASSET.match(ref)
    if m is None:
        raise ModelProblem(
            "ResourceNotFound",
            f"The model {ref!r} is neither a model version's ARM id nor azureml:name:version.",
        )
    version = v2.model_version(ws, m.group(1), m.group(2))
    if version is None:
        raise ModelProblem(
            "ResourceNotFound", f"The model {m.group(1)} version {m.group(2)} does not exist."
        )
    uri = str(version["properties"].get("modelUri") or "")
    if uri.split("?", 1)[0].lower().endswith(".ilearner"):
        raise ModelProblem(
            "ResourceNotReady",
            f"The model {uri!r} is a Studio (classic) .ilearner: no v2 scoring runtime can "
            "load it (retrain it in v2).",
        )
    container, blob = model_blob(v2, ws, uri)
    try:
        data = storage.download(container, blob)
    except BlobAccessError as err:
        raise ModelProblem("ResourceNotFound", f"The model file is not there: {err}") from err
    try:
        return Model.from_bytes(data)
    except LearnerError as err:
        raise ModelProblem("ResourceNotReady", f"init() cannot load the model: {err}") from err


def _error(status: int, code: str, message: str) -> Response:
    return arm_error(status, code, message)


class V2ScoreApi:
    """The scoring endpoints of every v2 online endpoint."""

    def __init__(self, *, state: State, arm_token: str) -> None:
        self.state = state
        self.arm_token = arm_token

    def register(self, router: Router) -> None:
        """Add ``v2.score`` and ``v2.swagger``."""
        router.add("POST", "/v2/online/{ep}/score", "v2.score", self.score)
        router.add("GET", "/v2/online/{ep}/swagger.json", "v2.swagger", self.swagger)

    def _endpoint(self, req: Request) -> V2Endpoint:
        ep: V2Endpoint | None = self.state.v2.endpoint_named(req.params["ep"])
        if ep is None:
            from amlretrain.emulator._server import Reply

            raise Reply(_error(404, "EndpointNotFound", f"No endpoint {req.params['ep']}."))
        return ep

    def _authorized(self, req: Request, ep: V2Endpoint) -> bool:
        token = req.bearer()
        if token is None:
            return False
        mode = ep.resource["properties"]["authMode"]
        if mode == "Key":
            return token in (ep.primary_key, ep.secondary_key)
        if mode == "AMLToken":
            return ep.tokens.get(token, 0.0) > time.time()
        return token == self.arm_token

    def swagger(self, req: Request) -> Response:
        """A minimal swagger of the scoring contract (same credentials as scoring)."""
        with self.state.locked():
            ep = self._endpoint(req)
            if not self._authorized(req, ep):
                return _error(401, "Unauthorized", "Invalid credentials.")
        doc = {
            "swagger": "2.0",
            "info": {"title": ep.name, "version": "1.0"},
            "paths": {"/score": {"post": {"description": "See amlretrain.emulator.v2score."}}},
        }
        return json_response(200, doc)

    def score(self, req: Request) -> Response:
        """Score rows with the model of the deployment the call is routed to."""
        with self.state.locked():
            ep = self._endpoint(req)
            if not self._authorized(req, ep):
                return _error(401, "Unauthorized", "Invalid or missing credentials.")
            named = req.header("azureml-model-deployment")
            mirror: V2Deployment | None = None
            if named:
                dep = ep.deployment(named)
                if dep is None:
                    return _error(404, "DeploymentNotFound", f"No deployment {named}.")
            else:
                picked = self._pick(ep)
                if picked is None:
                    return _error(
                        404,
                        "NoValidDeployment",
                        "The endpoint doesn't have any valid deployment with positive weight.",
                    )
                dep, mirror = picked
            limit = _pending_limit(dep)
            if dep.in_flight >= limit:
                return _error(
                    429,
                    "TooManyRequests",
                    f"More than {limit} requests are pending on deployment {dep.name} "
                    "(2 x maxConcurrentRequestsPerInstance x instances).",
                )
            dep.calls += 1
            dep.in_flight += 1
            model = dep.model
            mirror_model = mirror.model if mirror is not None else None
            if mirror is not None:
                mirror.mirrored += 1
                ep.mirrored += 1
        try:
            if model is None:
                return _error(424, "ModelNotReady", f"The deployment {dep.name} serves no model.")
            parsed = _rows(req.body)
            if isinstance(parsed, Response):
                return parsed
            columns, rows = parsed
            if mirror_model is not None:
                _predict(mirror_model, columns, rows)  # T6: the copy's answer is discarded
            return _answer(model, dep.name, columns, rows)
        finally:
            with self.state.lock:
                dep.in_flight -= 1

    @staticmethod
    def _pick(ep: V2Endpoint) -> tuple[V2Deployment, V2Deployment | None] | None:
        weights = [
            (d, ep.weight(d.name)) for d in sorted(ep.deployments.values(), key=lambda d: d.created)
        ]
        weights = [(d, w) for d, w in weights if w > 0]
        if not weights:
            return None
        draw = ep.rng.uniform(0, sum(w for _, w in weights))
        dep = weights[-1][0]
        for d, w in weights:
            if draw < w:
                dep = d
                break
            draw -= w
        mirror = None
        for name, share in ep.mirror_traffic.items():
            target = ep.deployment(name)
            if share > 0 and target is not None and ep.rng.uniform(0, 100) < share:
                mirror = target
        return dep, mirror


def _pending_limit(dep: V2Deployment) -> int:
    """``2 * maxConcurrentRequestsPerInstance * instances`` (V2-NOTES 6: more is 429)."""
    settings = dep.resource["properties"].get("requestSettings") or {}
    per = settings.get("maxConcurrentRequestsPerInstance") if isinstance(settings, dict) else 1
    capacity = (dep.resource.get("sku") or {}).get("capacity")
    per = per if isinstance(per, int) and not isinstance(per, bool) and per > 0 else 1
    capacity = capacity if isinstance(capacity, int) and capacity > 0 else 1
    return 2 * per * capacity


def _rows(body: bytes) -> tuple[list[str], list[list[Any]]] | Response:
    try:
        doc = json.loads(body.decode("utf-8-sig"))
        data = doc["input_data"]
        columns = [str(c) for c in data["columns"]]
        rows = [list(r) for r in data["data"]]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        return _error(
            400,
            "BadRequest",
            'The scoring body must be {"input_data": {"columns": [...], "data": [[...]]}}: '
            f"{err!r:.200}",
        )
    return columns, rows


def _predict(model: Model, columns: list[str], rows: list[list[Any]]) -> Any:
    from amlretrain.emulator.learner import LearnerError

    try:
        return model.predict(columns, rows)
    except LearnerError as err:
        return err


def _answer(model: Model, deployment: str, columns: list[str], rows: list[list[Any]]) -> Response:
    headers = {"azureml-model-deployment": deployment}
    behaviour = model.behaviour
    if behaviour is not None and behaviour.latency:
        time.sleep(behaviour.latency)
    scored = _predict(model, columns, rows)
    if not isinstance(scored, list):
        return arm_error(400, "BadRequest", f"Score: {scored}", headers=headers)
    if behaviour is not None and behaviour.fails(model, columns, rows):
        headers["ms-azureml-model-error-statuscode"] = str(behaviour.error_status)
        headers["ms-azureml-model-error-reason"] = "model_error"
        return arm_error(424, "ModelError", "The model failed on this request.", headers=headers)
    answer = [{"Scored Labels": label, "Scored Probabilities": p} for label, p in scored]
    return json_response(200, answer, headers)
