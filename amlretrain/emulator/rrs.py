"""The emulated request-response service: ``POST {base}/execute?api-version=2.0`` (API-NOTES 2.7).

A predictive service scores with the ``.ilearner`` its definition (New) or endpoint
resource (classic) references at the moment of the call, fetched from Azurite through
the SAS in that reference. A reference that cannot be fetched (missing blob, expired or
bad SAS) fails like the real service: 500 ``InternalError`` with ``ResourceDownload``;
bytes that are not a model fail with ``ResourceLoadFailed``.

A model that carries behaviour (the ``.ilearner``'s ``"emulator"`` member, see
:class:`~amlretrain.emulator.learner.Behaviour`) is honoured: ``latency`` seconds are
added to every scoring with it, ``score_shift`` to every Scored Probability, and the
``error_rate`` share of requests (picked by their feature values and the seed, so the
same request fails through every endpoint serving that model) is answered 500
``InternalError`` / ``ModelExecutionFailed`` (or, with ``error_status`` 503,
``ServiceUnavailable`` / ``ModelUnavailable``; both detail codes are GUESSes, API-NOTES
2.6 lists the classes only). Because the behaviour is in the model file, swapping an
endpoint to such a model changes what it serves and swapping back removes it.

Both shapes are served: ``{"Inputs": {"input1": {"ColumnNames", "Values"}}}`` answered
with a ``table`` of strings, and, with ``format=swagger``, ``{"Inputs": {"input1":
[{column: value}]}}`` answered with a list of row objects.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from amlretrain._redact import redact
from amlretrain.emulator._runtime import CLASSIC_BASE, NEW_BASE, authorize, check_version, resolve
from amlretrain.emulator._server import (
    Reply,
    Request,
    Response,
    Router,
    json_response,
    runtime_error,
)
from amlretrain.emulator._storage import BlobAccessError, Storage
from amlretrain.emulator.state import Runtime, State, ci_get

if TYPE_CHECKING:
    from amlretrain.emulator.learner import Model

__all__ = ["ModelUnavailable", "RrsApi", "load_model"]

log = logging.getLogger(__name__)

SCORED_COLUMNS = ("Scored Labels", "Scored Probabilities")


class ModelUnavailable(Exception):
    """The referenced model cannot be downloaded (``ResourceDownload``) or loaded."""

    def __init__(self, detail: str, message: str) -> None:
        super().__init__(f"{detail}: {message}")
        self.detail = detail
        self.message = message


def load_model(storage: Storage, runtime: Runtime) -> Model:
    """Fetch and load the model ``runtime`` references now.

    Raises:
        ModelUnavailable: no reference, a blob that cannot be fetched, or not a model.
    """
    from amlretrain.emulator.learner import LearnerError, Model

    url = runtime.model_url
    if not url:
        raise ModelUnavailable("ResourceDownload", "The web service references no trained model.")
    try:
        data = storage.fetch(url)
    except BlobAccessError as err:
        data = _fetch_with_storage_key(storage, runtime, url, err)
    try:
        return Model.from_bytes(data)
    except LearnerError as err:
        raise ModelUnavailable(
            "ResourceLoadFailed", f"Failed to load the trained model resource: {err}"
        ) from err


def _fetch_with_storage_key(
    storage: Storage, runtime: Runtime, url: str, err: BlobAccessError
) -> bytes:
    # A definition may name its blob without a SAS (the documented base + relative uri);
    # the service then reads it with the storage account registered on the web service.
    if "?" not in url and storage.owns(url) and runtime.storage_key == storage.account_key:
        try:
            return storage.download(*storage.split(url))
        except BlobAccessError as again:
            err = again
    why = {
        "missing": "blob not found",
        "denied": "access denied (missing, wrong or expired SAS?)",
    }.get(err.reason, "download failed")
    raise ModelUnavailable(
        "ResourceDownload",
        f"Failed to download the trained model resource {redact(url.split('?', 1)[0])}: {why}.",
    ) from err


def _table(value: Any, *, swagger: bool) -> tuple[list[str], list[list[Any]]]:
    if isinstance(value, list):
        rows = [r for r in value if isinstance(r, Mapping)]
        if len(rows) != len(value):
            raise ValueError("each row of the swagger form must be an object")
        columns: list[str] = []
        for row in rows:
            columns.extend(str(k) for k in row if str(k) not in columns)
        return columns, [[row.get(c) for c in columns] for row in rows]
    if isinstance(value, Mapping):
        columns_v = ci_get(value, "ColumnNames")
        values = ci_get(value, "Values")
        if isinstance(values, list) and (columns_v is None or isinstance(columns_v, list)):
            if not all(isinstance(r, list) for r in values):
                raise ValueError("Values must be a list of rows")
            return [str(c) for c in columns_v or []], [list(r) for r in values]
    del swagger
    raise ValueError("an input must be {ColumnNames, Values} or a list of row objects")


def _model_failure(status: int) -> Response:
    """The answer of a request a misbehaving model fails (GUESS: detail codes)."""
    if status == 503:
        return runtime_error(
            503,
            "ServiceUnavailable",
            "Service is temporarily unavailable.",
            "ModelUnavailable",
            "The model failed to serve this request (emulated model behaviour).",
        )
    return runtime_error(
        500,
        "InternalError",
        "Execution encountered an internal error.",
        "ModelExecutionFailed",
        "The model failed while scoring this request (emulated model behaviour).",
    )


class RrsApi:
    """The request-response routes for classic endpoints and New web services."""

    def __init__(self, *, state: State, storage: Storage) -> None:
        self.state = state
        self.storage = storage

    def register(self, router: Router) -> None:
        """Add ``/execute`` and ``/swagger.json`` under both base paths."""
        for base in (CLASSIC_BASE, NEW_BASE):
            router.add("POST", base + "/execute", "rrs.execute", self.execute)
            router.add("GET", base + "/swagger.json", "rrs.swagger", self.swagger)

    def execute(self, req: Request) -> Response:
        """Score the request's rows with the model referenced now."""
        runtime = resolve(self.state, req)
        authorize(req, runtime)
        check_version(req)
        swagger = (req.arg("format") or "").lower() == "swagger"
        details = (req.arg("details") or "").lower() == "true"
        if runtime.kind != "predictive":
            raise Reply(
                runtime_error(
                    400,
                    "InvalidOperation",
                    "The requested operation is not valid.",
                    "RequestResponseNotSupported",
                    "This web service is a training service; call it through batch execution.",
                )
            )
        body = req.json(
            error=lambda m: runtime_error(
                400, "BadArgument", "Invalid argument.", "RequestBodyInvalid", m
            )
        )
        inputs = ci_get(body, "Inputs") if isinstance(body, Mapping) else None
        if not isinstance(inputs, Mapping) or not inputs:
            raise Reply(
                runtime_error(
                    400,
                    "BadArgument",
                    "Invalid argument.",
                    "MissingRequestInput",
                    "The request has no Inputs.",
                )
            )
        unknown = [n for n in inputs if n not in runtime.inputs]
        if unknown:
            raise Reply(
                runtime_error(
                    400,
                    "BadArgument",
                    "Invalid argument.",
                    "InvalidInputNames",
                    f"Input name(s) {', '.join(map(repr, unknown))} are not valid; expected "
                    f"{', '.join(map(repr, runtime.inputs))}.",
                )
            )
        try:
            columns, rows = _table(inputs[next(iter(inputs))], swagger=swagger)
        except ValueError as err:
            raise Reply(
                runtime_error(400, "BadUserArgument", "Invalid input.", "InputParseError", str(err))
            ) from err
        try:
            model = load_model(self.storage, runtime)
        except ModelUnavailable as err:
            log.info("scoring on %s failed: %s", runtime.key, err.detail)
            raise Reply(
                runtime_error(
                    500,
                    "InternalError",
                    "Execution encountered an internal error.",
                    err.detail,
                    err.message,
                )
            ) from err
        answer = self._answer(model, columns, rows, runtime, swagger, details)
        behaviour = model.behaviour
        if behaviour is not None:
            if behaviour.latency > 0:
                time.sleep(behaviour.latency)
            if behaviour.fails(model, columns, rows):
                log.info("scoring on %s: the model's behaviour fails this request", runtime.key)
                raise Reply(_model_failure(behaviour.error_status))
        return json_response(200, answer)

    @staticmethod
    def _answer(
        model: Model,
        columns: list[str],
        rows: Sequence[Sequence[Any]],
        runtime: Runtime,
        swagger: bool,
        details: bool,
    ) -> dict[str, Any]:
        from amlretrain.emulator.learner import LearnerError

        try:
            scored = model.predict(columns, rows)
        except LearnerError as err:
            raise Reply(
                runtime_error(
                    400, "BadUserArgument", "Invalid input.", "InputMismatchError", str(err)
                )
            ) from err
        output = next(iter(runtime.outputs))
        if swagger:
            table: Any = [{SCORED_COLUMNS[0]: label, SCORED_COLUMNS[1]: p} for label, p in scored]
            return {"Results": {output: table}}
        value: dict[str, Any] = {"ColumnNames": list(SCORED_COLUMNS)}
        if details:
            value["ColumnTypes"] = ["String", "Double"]
        value["Values"] = [[label, repr(p)] for label, p in scored]
        return {"Results": {output: {"type": "table", "value": value}}}

    def swagger(self, req: Request) -> Response:
        """A minimal swagger document naming the execute and jobs operations."""
        runtime = resolve(self.state, req)
        base = req.path.rsplit("/", 1)[0]
        doc = {
            "swagger": "2.0",
            "info": {"title": "Azure ML web service (emulated)", "version": "2.0"},
            "host": req.base_url.split("://", 1)[1],
            "basePath": base,
            "schemes": ["http"],
            "paths": {
                "/execute?api-version=2.0&format=swagger": {"post": {"operationId": "execute"}},
                "/jobs?api-version=2.0": {"post": {"operationId": "submitJob"}},
                "/jobs/{jobId}/start?api-version=2.0": {"post": {"operationId": "startJob"}},
                "/jobs/{jobId}?api-version=2.0": {
                    "get": {"operationId": "getJob"},
                    "delete": {"operationId": "deleteJob"},
                },
            },
            "x-ms-service-kind": runtime.kind,
            "x-ms-inputs": list(runtime.inputs),
            "x-ms-outputs": list(runtime.outputs),
        }
        if runtime.columns:
            # GUESS (API-NOTES 2.1 names the document, not its shape): the input's columns
            # as the properties of an "<input>Item" definition, the way the R AzureML
            # package's discoverSchema reads them.
            item = {
                "type": "object",
                "properties": {c: {"type": "string"} for c in runtime.columns},
            }
            doc["definitions"] = {f"{name}Item": item for name in runtime.inputs}
        return json_response(200, doc)
