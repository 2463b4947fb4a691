"""Tracing: every public client method is one span ``Class.method`` over its HTTP spans.

With ``settings.tracing_implementation = "opentelemetry"`` and an in-memory exporter,
each public method of the clients is called once against the emulator. Its span is the
parent of the HTTP spans it caused: azure-core's own for ARM and storage, those of
``amlretrain._tracing.http_span`` for the requests-based clients. No span attribute
holds a secret.
"""

from __future__ import annotations

import inspect
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from azure.core.paging import ItemPaged
from azure.core.settings import settings
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from amlretrain.emulator import Emulator
from amlretrain.storage import BlobStore
from amlretrain.studio.batch import BatchClient, PollPolicy, TrainingJob
from amlretrain.studio.management import ClassicClient
from amlretrain.studio.scoring import ScoringClient
from amlretrain.studio.webservices import WebServicesClient, split_payloads

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CLIENTS = (WebServicesClient, ClassicClient, BatchClient, TrainingJob, ScoringClient, BlobStore)

#: Public methods that never reach the network (no span, as in the Azure SDKs).
LOCAL = {
    "WebServicesClient.close",
    "WebServicesClient.resource_id",
    "ClassicClient.close",
    "ClassicClient.endpoint_url",
    "BatchClient.close",
    "ScoringClient.close",
    "BlobStore.close",
    "BlobStore.from_connection_string",
    "BlobStore.ref",
    "BlobStore.owns",
}

#: Traced methods that may send nothing (an account-key SAS is signed locally).
MAY_SEND_NOTHING = {"BlobStore.sas"}


def public_methods() -> set[str]:
    """``Class.method`` for every public method (not property) of the client classes."""
    names = set()
    for cls in CLIENTS:
        for name in dir(cls):
            if name.startswith("_"):
                continue
            attr = inspect.getattr_static(cls, name)
            if isinstance(attr, classmethod | staticmethod) or inspect.isfunction(attr):
                names.add(f"{cls.__name__}.{name}")
    return names


class World:
    """The clients, and what the calls hand each other (a created service, a job)."""

    def __init__(self, emulator: Emulator, tmp: Path) -> None:
        info = emulator.info
        assert info.training_endpoint_api_location and info.training_api_key
        assert info.predictive_endpoint_api_location and info.predictive_api_key
        self.info = info
        self.tmp = tmp
        self.arm = WebServicesClient(
            emulator.credential(),
            info.subscription_id,
            base_url=info.arm_base_url,
            polling_interval=0.05,
        )
        self.classic = ClassicClient(
            info.workspace_id,
            info.workspace_token,
            base_url=info.management_url,
            poll=PollPolicy.fixed(0.1),
        )
        self.store = BlobStore.from_connection_string(info.storage_connection_string)
        self.bes = BatchClient(
            info.training_endpoint_api_location,
            info.training_api_key,
            poll=PollPolicy(initial=0.05),
        )
        self.rrs = ScoringClient(info.predictive_endpoint_api_location, info.predictive_api_key)
        self.rg = info.resource_group
        self.service = str(info.arm_service_name)
        self.suffix = uuid.uuid4().hex[:8]
        self.endpoint = "tr" + self.suffix
        self.values: dict[str, Any] = {}

    def name(self, prefix: str) -> str:
        return f"{prefix}-{self.suffix}"

    def seeded(self) -> Any:
        if "seeded" not in self.values:
            self.values["seeded"] = self.arm.get(self.rg, self.service)
        return self.values["seeded"]

    def blob(self) -> Any:
        if "blob" not in self.values:
            self.values["blob"] = self.store.upload(
                b"a,b\n1,2\n", container="tracing", blob_name=f"{self.suffix}.csv"
            )
        return self.values["blob"]

    def close(self) -> None:
        for client in (self.arm, self.classic, self.store, self.bes, self.rrs):
            client.close()


def _model(w: World) -> Any:
    initial = w.store.download_bytes(str(w.info.initial_model))
    ref = w.store.upload(initial, container="models", blob_name=f"tr-{w.suffix}.ilearner")
    return w.store.sas(ref, expires_in=timedelta(hours=3))


def _payloads(w: World) -> tuple[Any, Any]:
    small, graph = split_payloads(w.seeded())
    blob = w.store.upload(
        json.dumps(graph).encode(), container="payloads", blob_name=f"tr-{w.suffix}.json"
    )
    return small, w.store.sas(blob, expires_in=timedelta(hours=1))


def _score_rows() -> dict[str, Any]:
    path = resources.files("amlretrain.emulator").joinpath("data/score_rows.json")
    rows: dict[str, Any] = json.loads(path.read_text())
    return rows


def _job(w: World, key: str) -> TrainingJob:
    job: TrainingJob = w.values[key]
    return job


#: In call order: ``Class.method`` -> (preparation untraced, the call).
Call = tuple[Callable[[World], Any] | None, Callable[[World], Any]]
CALLS: dict[str, Call] = {
    # ARM
    "WebServicesClient.get": (None, lambda w: w.arm.get(w.rg, w.service)),
    "WebServicesClient.list": (None, lambda w: w.arm.list(w.rg)),
    "WebServicesClient.list_keys": (None, lambda w: w.arm.list_keys(w.rg, w.service)),
    "WebServicesClient.create_or_update": (
        lambda w: w.seeded(),
        lambda w: w.arm.create_or_update(w.rg, w.name("a"), w.seeded(), overwrite_fetched=True),
    ),
    "WebServicesClient.begin_create_or_update": (
        None,
        lambda w: w.arm.begin_create_or_update(
            w.rg, w.name("b"), w.seeded(), overwrite_fetched=True
        ).wait(),
    ),
    "WebServicesClient.update": (
        lambda w: w.values.update(current=w.arm.get(w.rg, w.name("a")), model=_model(w)),
        lambda w: w.arm.update(
            w.rg,
            w.name("a"),
            w.values["current"].with_trained_model(w.values["model"].sas_url),
            expected=w.values["current"],
        ),
    ),
    "WebServicesClient.begin_update": (
        lambda w: w.values.update(current=w.arm.get(w.rg, w.name("b"))),
        lambda w: w.arm.begin_update(
            w.rg, w.name("b"), w.values["current"].with_trained_model(w.values["model"].sas_url)
        ).wait(),
    ),
    "WebServicesClient.create_regional_properties": (
        None,
        lambda w: w.arm.create_regional_properties(w.rg, w.name("a"), "West Europe"),
    ),
    "WebServicesClient.begin_create_regional_properties": (
        None,
        lambda w: w.arm.begin_create_regional_properties(w.rg, w.name("b"), "West Europe").wait(),
    ),
    "WebServicesClient.create_from_blob": (
        lambda w: w.values.update(payloads=_payloads(w)),
        lambda w: w.arm.create_from_blob(
            w.rg, w.name("c"), *w.values["payloads"], overwrite_fetched=True
        ),
    ),
    "WebServicesClient.begin_create_from_blob": (
        None,
        lambda w: w.arm.begin_create_from_blob(
            w.rg, w.name("d"), *w.values["payloads"], overwrite_fetched=True
        ).wait(),
    ),
    "WebServicesClient.delete": (None, lambda w: w.arm.delete(w.rg, w.name("a"))),
    "WebServicesClient.begin_delete": (
        lambda w: [w.arm.delete(w.rg, w.name(p)) for p in "cd"],
        lambda w: w.arm.begin_delete(w.rg, w.name("b")).wait(),
    ),
    # classic
    "ClassicClient.list_web_services": (None, lambda w: w.classic.list_web_services()),
    "ClassicClient.get_web_service": (
        None,
        lambda w: w.classic.get_web_service(str(w.info.predictive_service)),
    ),
    "ClassicClient.list_endpoints": (
        None,
        lambda w: w.classic.list_endpoints(str(w.info.predictive_service)),
    ),
    "ClassicClient.get_endpoint": (
        None,
        lambda w: w.classic.get_endpoint(
            str(w.info.predictive_service), str(w.info.predictive_endpoint)
        ),
    ),
    "ClassicClient.create_endpoint": (
        None,
        lambda w: w.classic.create_endpoint(str(w.info.predictive_service), w.endpoint),
    ),
    "ClassicClient.add_endpoint": (  # the deprecated alias: a PUT of the same endpoint
        None,
        lambda w: w.classic.add_endpoint(str(w.info.predictive_service), w.endpoint),
    ),
    "ClassicClient.update_endpoint": (
        None,
        lambda w: w.classic.update_endpoint(
            str(w.info.predictive_service), w.endpoint, description="traced"
        ),
    ),
    "ClassicClient.refresh_endpoint": (
        None,
        lambda w: w.classic.refresh_endpoint(str(w.info.predictive_service), w.endpoint),
    ),
    "ClassicClient.update_trained_model": (
        lambda w: w.values.update(model=_model(w)),
        lambda w: w.classic.update_trained_model(
            str(w.info.predictive_service),
            w.endpoint,
            str(w.info.predictive_resource_name),
            w.values["model"],
            verify_timeout=30,
        ),
    ),
    "ClassicClient.begin_update_trained_model": (
        lambda w: w.values.update(model=_model(w)),
        lambda w: w.classic.begin_update_trained_model(
            str(w.info.predictive_service),
            w.endpoint,
            str(w.info.predictive_resource_name),
            w.values["model"],
            verify_timeout=30,
        ).result(),
    ),
    "ClassicClient.delete_endpoint": (
        None,
        lambda w: w.classic.delete_endpoint(str(w.info.predictive_service), w.endpoint),
    ),
    "ClassicClient.delete_web_service": (
        None,
        lambda w: w.classic.delete_web_service("missing-" + w.suffix),
    ),
    # batch jobs
    "BatchClient.swagger": (None, lambda w: w.bes.swagger()),
    "BatchClient.submit": (
        None,
        lambda w: w.values.update(
            job=w.bes.submit({"input1": str(w.info.new_training_data)}, store=w.store)
        ),
    ),
    "BatchClient.create_job": (
        None,
        lambda w: w.values.update(
            run=w.bes.create_job({"input1": str(w.info.new_training_data)}, store=w.store)
        ),
    ),
    "BatchClient.begin_run_job": (None, lambda w: w.bes.begin_run_job(_job(w, "run")).result(60)),
    "BatchClient.delete_job": (
        lambda w: w.values.update(
            gone=w.bes.create_job({"input1": str(w.info.new_training_data)}, store=w.store)
        ),
        lambda w: w.bes.delete_job(_job(w, "gone").job_id),
    ),
    "BatchClient.get_job": (None, lambda w: w.bes.get_job(_job(w, "job").job_id)),
    "TrainingJob.start": (None, lambda w: _job(w, "job").start()),
    "TrainingJob.refresh": (None, lambda w: _job(w, "job").refresh()),
    "TrainingJob.wait": (None, lambda w: _job(w, "job").wait(timeout=60)),
    "TrainingJob.evaluation": (None, lambda w: _job(w, "job").evaluation()),
    "TrainingJob.cancel": (
        lambda w: w.values.update(
            other=w.bes.submit({"input1": str(w.info.new_training_data)}, store=w.store, start=True)
        ),
        lambda w: _job(w, "other").cancel(),
    ),
    # scoring
    "ScoringClient.score": (
        lambda w: w.values.update(rows=_score_rows()),
        lambda w: w.rrs.score(w.values["rows"]["ColumnNames"], w.values["rows"]["Values"]),
    ),
    # storage
    "BlobStore.ensure_container": (None, lambda w: w.store.ensure_container("tracing")),
    "BlobStore.upload": (
        None,
        lambda w: w.store.upload(b"x", container="tracing", blob_name=f"{w.suffix}.bin"),
    ),
    "BlobStore.exists": (lambda w: w.blob(), lambda w: w.store.exists(w.blob())),
    "BlobStore.download_bytes": (None, lambda w: w.store.download_bytes(w.blob())),
    "BlobStore.download": (None, lambda w: w.store.download(w.blob(), w.tmp / "blob.csv")),
    "BlobStore.sas": (None, lambda w: w.values.update(sas=w.store.sas(w.blob()))),
    "BlobStore.check_readable": (None, lambda w: w.store.check_readable(w.values["sas"])),
    "BlobStore.delete": (None, lambda w: w.store.delete(w.blob())),
}


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    """An in-memory exporter behind the global tracer provider; opentelemetry tracing on."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    memory = InMemorySpanExporter()
    processor = SimpleSpanProcessor(memory)
    provider.add_span_processor(processor)
    settings.tracing_implementation = "opentelemetry"
    try:
        yield memory
    finally:
        settings.tracing_implementation.unset_value()
        processor.shutdown()


@pytest.fixture(scope="module")
def spans_by_call(
    emulator: Emulator, exporter: InMemorySpanExporter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, list[ReadableSpan]]]:
    """Every call of :data:`CALLS`, in order, with the spans it produced.

    A call returning an ``ItemPaged`` is iterated to its end, as a caller would, and
    the spans of the pages read count as the call's.
    """
    world = World(emulator, tmp_path_factory.mktemp("tracing"))
    recorded: dict[str, list[ReadableSpan]] = {}
    try:
        for name, (prepare, call) in CALLS.items():
            if prepare is not None:
                prepare(world)
            exporter.clear()
            result = call(world)
            if isinstance(result, ItemPaged):
                list(result)
            recorded[name] = list(exporter.get_finished_spans())
        yield recorded
    finally:
        world.close()


def test_every_public_client_method_is_called_here_or_named_local() -> None:
    assert public_methods() - LOCAL == set(CALLS)
    assert public_methods() >= LOCAL, "a LOCAL entry names no method"


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_call_is_one_span_over_its_http_spans(
    name: str, spans_by_call: dict[str, list[ReadableSpan]]
) -> None:
    spans = spans_by_call[name]
    own = [s for s in spans if s.name == name]
    assert len(own) == 1, [s.name for s in spans]
    (span,) = own
    assert span.kind is SpanKind.INTERNAL
    assert span.context is not None
    in_trace = [
        s
        for s in spans
        if s.kind is SpanKind.CLIENT
        and s.context is not None
        and s.context.trace_id == span.context.trace_id
    ]
    children = [s for s in in_trace if s.parent and s.parent.span_id == span.context.span_id]
    assert children == in_trace, "every HTTP span of the call is a child of the call's span"
    if name not in MAY_SEND_NOTHING:
        # A pager's pages are read while iterating, after its span ended: still children.
        assert children, f"{name} sent no request under its span"
    for child in children:
        assert child.attributes is not None
        assert child.attributes.get("http.request.method") == child.name
        assert str(child.attributes.get("url.full", "")).startswith("http")
        assert isinstance(child.attributes.get("http.response.status_code"), int)


def test_no_span_attribute_holds_a_secret(
    emulator: Emulator, spans_by_call: dict[str, list[ReadableSpan]]
) -> None:
    info = emulator.info
    secrets = [
        str(s)
        for s in (
            info.workspace_token,
            info.training_api_key,
            info.predictive_api_key,
            info.arm_token,
            info.arm_api_key,
        )
        if s
    ]
    account_key = dict(
        part.split("=", 1) for part in info.storage_connection_string.split(";") if "=" in part
    ).get("AccountKey")
    assert account_key
    secrets.append(account_key)
    keys = spans_by_call["WebServicesClient.list_keys"]
    assert keys  # the call that reads keys is among those checked
    seen = 0
    for spans in spans_by_call.values():
        for span in spans:
            for key, value in (span.attributes or {}).items():
                text = str(value)
                seen += 1
                for secret in secrets:
                    assert secret not in text, f"{span.name} {key} holds a secret"
                assert "Bearer " not in text, f"{span.name} {key} holds a token"
                for sig in ("sig=", "sig%3D"):
                    if sig in text:
                        after = text.split(sig, 1)[1]
                        assert after.startswith("REDACTED"), f"{span.name} {key}: a SAS sig"
    assert seen


def test_azure_cores_own_tracing_also_gives_the_requests_based_clients_http_spans(
    emulator: Emulator, exporter: InMemorySpanExporter
) -> None:
    """``settings.tracing_enabled = True`` without an implementation: native OpenTelemetry."""
    info = emulator.info
    settings.tracing_implementation.unset_value()
    settings.tracing_enabled = True
    try:
        with ClassicClient(
            info.workspace_id, info.workspace_token, base_url=info.management_url
        ) as classic:
            exporter.clear()
            classic.get_web_service(str(info.predictive_service))
            spans = list(exporter.get_finished_spans())
    finally:
        settings.tracing_enabled.unset_value()
        settings.tracing_implementation = "opentelemetry"
    (span,) = [s for s in spans if s.name == "ClassicClient.get_web_service"]
    assert span.context is not None
    (http,) = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert http.parent is not None and http.parent.span_id == span.context.span_id
    assert http.attributes is not None
    assert http.attributes.get("http.response.status_code") == 200
    assert info.workspace_token not in str(dict(http.attributes))
