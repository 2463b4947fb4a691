"""A blue/green swap on an Azure ML v2 online endpoint vs the protocol minimum of its stages.

amlretrain's side is what the loop does per target (amlretrain/swap.py): the pin read
under the lease (``OnlineEndpointTarget.read``) and then
``OnlineEndpointTarget.deploy(model, state, pinned=True)``, with a smoke sample, on a
fresh endpoint each repetition (``blue`` at 100% serving the seeded model version), to
a fresh model blob each time. Its clients keep their default polling policy (5 s).

The emulator's operations last D seconds (``State.lro_delay``, set for the swap only)
and, for this benchmark, the service asks ``Retry-After: R`` on the 201/200 answer of
a PUT and on every ``InProgress`` operation-status document (``V2Base.async_headers``
and ``op_status`` wrapped in this process before the emulator starts, put back after;
the stock emulator sends none). V2-NOTES 1.3: a client polls ``Azure-AsyncOperation``
at the ``Retry-After`` delay, and its operation is done when the status document is
terminal. The spec's Retry-After is an integer of 10 to 600 s (declared on the 202s;
sending it on a PUT's 201/200 and on the status document is this benchmark's choice,
ARM's generic rule); this benchmark asks R = 1 s, the least integer (azure-mgmt-resource
parses the header as an int: 0.25 fails the PUT), so that a run takes seconds. D is a
multiple of R (1 s and 3 s; 1 s ``--quick``), so a client that honours Retry-After sees
the end at D exactly.

**The protocol minimum of each stage** (P = ceil(D / R), the polls an operation of D
seconds needs when the first is sent R after its answer):

=========  =======================================================  ==========
stage      requests                                                 count
=========  =======================================================  ==========
read       GET the endpoint (traffic: which deployment is live),    3
           GET its deployments (one list: the live one's body, to
           copy; whether the standby exists), GET the live one's
           model version (its ``modelUri``: what it serves, the
           ledger's previous model)
register   PUT the model version                                    1
standby    PUT the standby deployment (a copy of the live one       2 + P
           with the new model), P polls, the final GET of the
           deployment (``final-state-via: original-uri``; shows
           it Succeeded with the new model)
smoke      POST listKeys (a Key endpoint), POST score with          2
           ``azureml-model-deployment: <standby>`` (T5)
traffic    PUT the endpoint with the whole traffic map, P polls,    2 + P
           the final GET of the endpoint: a fresh read that shows
           the standby at 100% (the verification: the standby's
           model was shown by its own final GET)
=========  =======================================================  ==========

in all 10 + 2P requests. The wall minimum is 2D plus the round trips not overlapped by
an operation (all but the P - 1 polls made while each runs): 12 x rtt, where rtt
is one GET's round trip on this emulator, measured in the same run (a keep-alive
``requests`` session, median of 10 per repetition). The targets: requests within 1.25x
of the minimum, wall within 1.2x (reported, never asserted).

Requests are counted from the emulator's own request log (``Emulator.requests``) and
attributed to stages by time (the probe on its dispatch, bench._probe, timestamps each
request; the stages' boundaries are marked by wrapping the target's
``models.register_version``, ``_smoke``, ``_settle`` and ``endpoints.begin_set_traffic``
on the instance). The client runs in this process with the emulator.
"""

from __future__ import annotations

import itertools
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench import Report, Row, median
from bench._probe import emulator

NAME = "v2_swap"
TITLE = "a v2 blue/green swap vs the protocol minimum of its stages"
#: The stages of a swap, in order.
STAGES = ("read", "register", "standby", "smoke", "traffic")
#: Requests of each stage apart from the polls (see the module docstring).
FIXED = {"read": 3, "register": 1, "standby": 2, "smoke": 2, "traffic": 2}
#: Stages that wait for one long-running operation.
POLLED = ("standby", "traffic")
#: The ``Retry-After`` the emulator asks, seconds (azure-mgmt-resource reads it as an int).
RETRY_AFTER = 1
REQUEST_TARGET = 1.25
WALL_TARGET = 1.2
_API = {"api-version": "2024-04-01"}


def polls(duration: float, retry_after: float) -> int:
    """The polls an operation of ``duration`` s needs at ``Retry-After: retry_after``.

    >>> polls(1.0, 1), polls(3.0, 1), polls(0.6, 0.25)
    (1, 3, 3)
    """
    return max(1, math.ceil(round(duration / retry_after, 9)))


def minimum(duration: float, retry_after: float) -> dict[str, int]:
    """The fewest requests of each stage of a swap (module docstring).

    >>> minimum(3.0, 1)
    {'read': 3, 'register': 1, 'standby': 5, 'smoke': 2, 'traffic': 5}
    """
    p = polls(duration, retry_after)
    return {s: FIXED[s] + (p if s in POLLED else 0) for s in STAGES}


def minimum_wall(duration: float, retry_after: float, rtt: float) -> dict[str, float]:
    """The least wall time of each stage: its operation plus its unoverlapped round trips.

    >>> round(minimum_wall(3.0, 1, 0.001)["standby"], 6)
    3.003
    """
    counts = minimum(duration, retry_after)
    p = polls(duration, retry_after)
    return {
        s: (duration + (counts[s] - (p - 1)) * rtt) if s in POLLED else counts[s] * rtt
        for s in STAGES
    }


@contextmanager
def retry_after(seconds: float) -> Iterator[None]:
    """Make the emulator's v2 operations ask ``Retry-After: seconds`` (this process only).

    Wraps ``V2Base.async_headers`` (the headers of a write's answer) and
    ``V2Base.op_status`` (an ``InProgress`` status document); enter it before the
    emulator starts (its routes bind the handler then). Put back on exit.
    """
    from amlretrain.emulator.v2base import V2Base

    headers = V2Base.__dict__["async_headers"]
    status = V2Base.__dict__["op_status"]
    value = f"{seconds:g}"

    def async_headers(req: Any, op: Any, *, location: bool, status: bool) -> dict[str, str]:
        out: dict[str, str] = headers.__func__(req, op, location=location, status=status)
        out["Retry-After"] = value
        return out

    def op_status(api: Any, req: Any) -> Any:
        response = status(api, req)
        if response.status == 200 and b'"InProgress"' in response.body:
            response.headers["Retry-After"] = value
        return response

    setattr(V2Base, "async_headers", staticmethod(async_headers))  # noqa: B010
    setattr(V2Base, "op_status", op_status)  # noqa: B010
    try:
        yield
    finally:
        setattr(V2Base, "async_headers", headers)  # noqa: B010
        setattr(V2Base, "op_status", status)  # noqa: B010


# -- a fresh endpoint, over HTTP (not timed) ---------------------------------------------------


def _ws_url(info: Any) -> str:
    return (
        f"{info.arm_base_url}/subscriptions/{info.v2_subscription_id}/resourceGroups/"
        f"{info.v2_resource_group}/providers/Microsoft.MachineLearningServices/workspaces/"
        f"{info.v2_workspace}"
    )


def _wait(http: Any, info: Any, response: Any) -> None:
    response.raise_for_status()
    url = response.headers["Azure-AsyncOperation"]
    auth = {"Authorization": f"Bearer {info.arm_token}"}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        doc = http.get(url, headers=auth, timeout=30).json()
        if doc["status"] == "Succeeded":
            return
        if doc["status"] in ("Failed", "Canceled"):
            raise RuntimeError(f"setting up the endpoint: the operation ended {doc['status']}")
        time.sleep(0.005)
    raise RuntimeError("setting up the endpoint: an operation did not finish in 30 s")


def _fresh_endpoint(http: Any, info: Any) -> str:
    """A new Key endpoint whose ``blue`` (the seeded model version) has 100%."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    url = f"{_ws_url(info)}/onlineEndpoints/{name}"
    auth = {"Authorization": f"Bearer {info.arm_token}"}
    endpoint: dict[str, Any] = {
        "location": "eastus",
        "identity": {"type": "SystemAssigned"},
        "properties": {"authMode": "Key"},
    }
    _wait(http, info, http.put(url, params=_API, headers=auth, json=endpoint, timeout=30))
    deployment = {
        "location": "eastus",
        "sku": {"name": "Default", "capacity": 1},
        "properties": {
            "endpointComputeType": "Managed",
            "model": f"azureml:{info.v2_model_name}:{info.v2_model_version}",
        },
    }
    put = http.put(f"{url}/deployments/blue", params=_API, headers=auth, json=deployment)
    _wait(http, info, put)
    endpoint["properties"]["traffic"] = {"blue": 100}
    _wait(http, info, http.put(url, params=_API, headers=auth, json=endpoint, timeout=30))
    return name


def _rtt(http: Any, info: Any, endpoint: str, count: int = 10) -> list[float]:
    """Round trips of a GET of ``endpoint`` (keep-alive session)."""
    url = f"{_ws_url(info)}/onlineEndpoints/{endpoint}"
    auth = {"Authorization": f"Bearer {info.arm_token}"}
    out = []
    for _ in range(count):
        began = time.monotonic()
        http.get(url, params=_API, headers=auth, timeout=30).raise_for_status()
        out.append(time.monotonic() - began)
    return out


# -- one swap ------------------------------------------------------------------------------------


def _mark(owner: Any, name: str, marks: dict[str, float], before: str, after: str | None) -> None:
    """Wrap ``owner.name`` (on the instance) to note when it was entered and left."""
    original: Callable[..., Any] = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        marks.setdefault(before, time.monotonic())
        try:
            return original(*args, **kwargs)
        finally:
            if after is not None:
                marks[after] = time.monotonic()

    setattr(owner, name, wrapped)


def _swap(emu: Any, probe: Any, v2: dict[str, Any], endpoint: str, blob: str, d: float) -> Any:
    """One swap (read + deploy pinned); its stages' requests and wall times."""
    from amlretrain.azureml.targets import OnlineEndpointTarget, version_name

    target = OnlineEndpointTarget(
        v2["endpoints"],
        v2["models"],
        endpoint,
        datastore_account_url=v2["store"].account_url,
        sample=v2["sample"],
    )
    model = v2["store"].ref("workspaceblobstore", blob)
    marks: dict[str, float] = {}
    _mark(target.models, "register_version", marks, "register", "standby")
    _mark(target, "_smoke", marks, "smoke", "traffic")
    _mark(target.endpoints, "begin_set_traffic", marks, "traffic", None)
    emu.state.lro_delay = d
    logged = len(emu.requests)
    probe.clear()
    try:
        marks["read"] = time.monotonic()
        state = target.read()
        after = target.deploy(model, state, pinned=True)
        marks["end"] = time.monotonic()
    finally:
        emu.state.lro_delay = 0.01
    if after.resource != "green" or after.model != model.url:
        raise RuntimeError(f"the swap did not land: {after.resource} serves {after.model}")
    with emu.state.lock:  # judged from the emulator's state too
        ep = emu.state.v2.endpoint_named(endpoint)
        served = str(ep.deployments["green"].resource["properties"]["model"])
        if ep.traffic.get("green") != 100 or version_name(model) not in served:
            raise RuntimeError(f"the emulator shows traffic {ep.traffic}, green serving {served}")
    log = emu.requests[logged:]
    seen = probe.between(marks["read"], marks["end"])
    if len(log) != len(seen):
        raise RuntimeError(f"the emulator logged {len(log)} requests, its probe {len(seen)}")
    edges = [marks[s] for s in STAGES] + [marks["end"]]
    stages: dict[str, list[Any]] = {s: [] for s in STAGES}
    for s in seen:
        for i, stage in enumerate(STAGES):
            if edges[i] <= s.started < edges[i + 1]:
                stages[stage].append(s)
    walls = {stage: edges[i + 1] - edges[i] for i, stage in enumerate(STAGES)}
    return stages, walls, marks


def _gaps(requests: list[Any]) -> list[float]:
    """Seconds between consecutive polls of one operation (status URL)."""
    by_op: dict[str, list[float]] = {}
    for s in requests:
        if s.route == "v2.operation":
            by_op.setdefault(s.path, []).append(s.started)
    return [b - a for times in by_op.values() for a, b in itertools.pairwise(times)]


def run(quick: bool) -> Report:
    """Swap at each operation duration, repeated and interleaved; compare to the minimum."""
    import requests

    from amlretrain.azureml.endpoints import OnlineEndpointsClient
    from amlretrain.azureml.registry import ModelsClient
    from amlretrain.emulator import learner
    from amlretrain.storage import BlobStore
    from amlretrain.targets import Sample

    r = RETRY_AFTER
    durations = (1.0,) if quick else (1.0, 3.0)
    reps = 1 if quick else 3
    report = Report(name=NAME, title=TITLE)
    counts: dict[float, list[dict[str, int]]] = {d: [] for d in durations}
    walls: dict[float, list[dict[str, float]]] = {d: [] for d in durations}
    routes: dict[float, dict[str, Counter[str]]] = {}
    gaps: list[float] = []
    rtts: list[float] = []

    with retry_after(r), emulator(seed=True, lro_delay=0.01) as (emu, probe):
        info = emu.info
        where = (info.v2_subscription_id, info.v2_resource_group, info.v2_workspace)
        options: dict[str, Any] = {"base_url": info.arm_base_url}
        from importlib import resources

        data = (resources.files("amlretrain.emulator") / "data" / "census_new.csv").read_bytes()
        trained = learner.train(data, label="income").to_bytes()
        lines = [line.split(",") for line in data.decode().splitlines()[1:5]]
        header = data.decode().splitlines()[0].split(",")
        with (
            OnlineEndpointsClient(emu.credential(), *where, **options) as eps,
            ModelsClient(emu.credential(), *where, **options) as models,
            BlobStore.from_connection_string(info.storage_connection_string) as store,
            requests.Session() as http,
        ):
            http.trust_env = False
            v2 = {
                "endpoints": eps,
                "models": models,
                "store": store,
                "sample": Sample(columns=header, rows=lines),
            }
            for _rep in range(reps):
                for d in durations:
                    endpoint = _fresh_endpoint(http, info)
                    blob = f"bench/{uuid.uuid4().hex[:12]}/model.json"
                    store.upload(trained, container="workspaceblobstore", blob_name=blob)
                    rtts.extend(_rtt(http, info, endpoint))
                    stages, wall, _marks = _swap(emu, probe, v2, endpoint, blob, d)
                    made = {s: len(v) for s, v in stages.items()}
                    short = {s: n for s, n in made.items() if n < minimum(d, r)[s]}
                    if short:  # fewer than the minimum: the stages or the minimum are wrong
                        raise RuntimeError(f"stages below their minimum {minimum(d, r)}: {short}")
                    counts[d].append(made)
                    walls[d].append(wall)
                    routes[d] = {
                        s: Counter(f"{x.method} {x.route}" for x in v) for s, v in stages.items()
                    }
                    gaps.extend(_gaps([x for v in stages.values() for x in v]))

    rtt = median(rtts)
    for d in durations:
        least = minimum(d, r)
        least_wall = minimum_wall(d, r, rtt)
        total = median(sum(c.values()) for c in counts[d])
        total_min = sum(least.values())
        wall = median(sum(w.values()) for w in walls[d])
        wall_min = sum(least_wall.values())
        report.rows.append(
            Row(
                what=f"requests of a swap, D = {d:g} s, Retry-After {r:g} s",
                figure=f"{total:g}",
                baseline=f"{total_min}",
                ratio=total / total_min,
                target=f"<= {REQUEST_TARGET:g}x",
                passed=total / total_min <= REQUEST_TARGET,
            )
        )
        report.rows.append(
            Row(
                what=f"wall time of a swap, D = {d:g} s",
                figure=f"{wall:.3f} s",
                baseline=f"{wall_min:.3f} s",
                ratio=wall / wall_min,
                target=f"<= {WALL_TARGET:g}x",
                passed=wall / wall_min <= WALL_TARGET,
            )
        )
        for stage in STAGES:
            n = median(c[stage] for c in counts[d])
            w = median(x[stage] for x in walls[d])
            report.rows.append(
                Row(
                    what=f"  {stage} (D = {d:g} s): requests, wall",
                    figure=f"{n:g}, {w:.3f} s",
                    baseline=f"{least[stage]}, {least_wall[stage]:.3f} s",
                    ratio=n / least[stage],
                )
            )
    p = {d: polls(d, r) for d in durations}
    report.notes.append(
        f"medians of {reps} repetition(s) per duration, interleaved, each on a fresh endpoint "
        f"and a fresh model blob; rtt (one GET of the endpoint, keep-alive) {rtt * 1000:.2f} ms "
        f"median of {len(rtts)}; minimum polls P = ceil(D / R): "
        + ", ".join(f"{p[d]} at D = {d:g} s" for d in durations)
    )
    if gaps:
        report.notes.append(
            f"amlretrain's polls of one operation came {median(gaps):.3f} s apart (median of "
            f"{len(gaps)}; Retry-After {r:g} s; the clients' own polling interval 5 s)"
        )
    last = durations[-1]
    for stage in STAGES:
        made = ", ".join(f"{k} x{v}" for k, v in sorted(routes[last][stage].items()))
        report.notes.append(
            f"{stage} at D = {last:g} s (minimum {minimum(last, r)[stage]}): {made}"
        )
    report.data = {
        "retry_after": r,
        "rtt": rtt,
        "counts": {str(d): counts[d] for d in durations},
        "walls": {str(d): walls[d] for d in durations},
        "minimum": {str(d): minimum(d, r) for d in durations},
    }
    return report
