"""Swaps that do not wait for their long-running operation (``detach=True``, what a
scheduler's deferrable task does): the run records the operation's token, hands the
target's lease to itself and stops; resumed later, it finishes the swap from the token.

Verdicts from the emulator's own state (each endpoint's traffic and deployments, the
requests it received) and from Azurite's (the lock blob's lease), never from the result
alone.
"""

from __future__ import annotations

import base64
import re
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.storage.blob import BlobServiceClient

from amlretrain.cli._emulator_config import emulator_config, emulator_environment
from amlretrain.config import RetrainConfig, load_config
from amlretrain.configured import find_target, retrain_configured
from amlretrain.emulator import Emulator, Faults
from amlretrain.errors import OperationsDetached, TrainingDetached
from amlretrain.locks import TargetLocked
from amlretrain.result import RetrainResult
from amlretrain.targets import DetachableTarget
from tests.airflow.harness import v2_config, v2_state
from tests.integration.conftest import wait_for
from tests.integration.v2support import make_endpoint

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DATA = Path(__file__).resolve().parents[2] / "amlretrain" / "emulator" / "data"


def _run(config: RetrainConfig, run_id: str, **kw: Any) -> RetrainResult:
    """One attempt of a detaching run, re-tried while only its training job runs."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return retrain_configured(config, run_id=run_id, detach=True, rollout=None, **kw)
        except TrainingDetached:
            assert time.monotonic() < deadline, "the training job did not end"
            time.sleep(0.2)


def _detached(config: RetrainConfig, run_id: str, **kw: Any) -> OperationsDetached:
    with pytest.raises(OperationsDetached) as caught:
        _run(config, run_id, **kw)
    assert caught.value.run_id == run_id
    return caught.value


def _requests(emulator: Emulator, method: str, path_end: str) -> int:
    """How many ``method`` requests the emulator received on a path ending ``path_end``."""
    end = path_end.lower()
    return sum(1 for r in emulator.requests if r.method == method and r.path.lower().endswith(end))


def _lease(config: RetrainConfig, key: str) -> dict[str, Any]:
    """The lock blob's lease of ``key`` as Azurite has it (state, duration, holder)."""
    from amlretrain.locks import lock_name

    assert config.ledger_blob is not None
    container, _, name = config.ledger_blob.partition("/")
    folder = name.rpartition("/")[0]
    assert config.storage_connection_string is not None
    service = BlobServiceClient.from_connection_string(config.storage_connection_string)
    blob = service.get_blob_client(container, f"{folder}/locks/{lock_name(key)}.lock")
    props = blob.get_blob_properties()
    return {
        "state": props.lease.state,
        "duration": props.lease.duration,
        "holder": (props.metadata or {}).get("holder", ""),
    }


def _unwrapped(text: str) -> str:
    """``text`` with every base64 layer inside it decoded (a token holds tokens)."""
    out = [text]
    for piece in re.findall(r"[A-Za-z0-9+/=_-]{24,}", text):
        try:
            inner = base64.b64decode(piece + "=" * (-len(piece) % 4), altchars=b"-_")
            decoded = inner.decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            continue
        out.append(_unwrapped(decoded))
    return "\n".join(out)


def _no_secret_in(token: str, emulator: Emulator) -> None:
    """No secret the emulator issued, no SAS and no Authorization value in ``token``, however
    deep its base64 layers go."""
    plain = _unwrapped(token)
    assert "amlretrain" in plain  # the layers were opened
    secrets = [v for v in emulator_environment(emulator.info).values() if len(v) > 8]
    secrets += [s.split("AccountKey=")[1].split(";")[0] for s in secrets if "AccountKey=" in s]
    assert not [s for s in secrets if s in plain]
    assert "sig=" not in plain and "Bearer " not in plain and "Authorization" not in plain


def _loaded(emulator: Emulator, path: Path) -> RetrainConfig:
    return load_config(path, environ=emulator_environment(emulator.info))


@pytest.fixture
def endpoint(emulator: Emulator) -> Iterator[str]:
    with requests.Session() as http:
        http.trust_env = False
        yield make_endpoint(http, emulator, traffic={"blue": 100})


def _wait_done(target: Any, token: str) -> None:
    """Poll the detached operation as a trigger does (reads only) until it ended."""
    assert isinstance(target, DetachableTarget)
    poller = target.operation(token)
    wait_for(poller.done, timeout=30, interval=0.2)


def test_a_v2_swap_detached_twice_keeps_its_lease_and_is_finished_from_its_tokens(
    emulator: Emulator, faults: Faults, endpoint: str, tmp_path: Path
) -> None:
    config = _loaded(emulator, v2_config(emulator, tmp_path, endpoint))
    ((target, _data),) = config.targets()
    faults.add(route="v2.deployment.put", kind="lro_slow", seconds=4, count=1)
    faults.add(route="v2.endpoint.put", kind="lro_slow", seconds=4, count=1)
    rid = f"af-detach-{uuid.uuid4().hex[:8]}"
    puts = _requests(emulator, "PUT", f"/onlineendpoints/{endpoint}/deployments/green")

    first = _detached(config, rid)

    (op,) = first.operations
    assert op.target == target.key and "PUT of deployment green" in op.what
    _no_secret_in(op.token, emulator)
    traffic, models = v2_state(emulator, endpoint)
    assert traffic == {"blue": 100} and "green" in models  # sent, not yet live
    assert _requests(emulator, "PUT", f"/onlineendpoints/{endpoint}/deployments/green") == puts + 1
    lease = _lease(config, target.key)
    assert lease["state"] == "leased" and lease["duration"] == "infinite", lease
    assert "deferred" in lease["holder"] and rid in lease["holder"]
    with pytest.raises(TargetLocked), config.ledger().locks.hold(target.key, run_id="other"):
        pass  # another run is kept out while the swap is detached
    ledger = config.ledger()
    (pending,) = ledger.pending()
    assert pending.target == target.key  # the intent stays open
    _wait_done(target, op.token)

    second = _detached(config, rid)  # the standby's PUT finished; the traffic PUT is slow

    (op2,) = second.operations
    assert "traffic PUT" in op2.what
    _no_secret_in(op2.token, emulator)
    assert (
        _requests(emulator, "PUT", f"/onlineendpoints/{endpoint}/deployments/green") == puts + 1
    )  # nothing sent again
    assert _lease(config, target.key)["duration"] == "infinite"
    _wait_done(target, op2.token)

    result = _run(config, rid)

    (outcome,) = result.targets
    assert outcome.status == "succeeded", outcome.error
    traffic, models = v2_state(emulator, endpoint)
    assert traffic == {"green": 100} and set(models) == {"green"}  # blue retired
    assert _requests(emulator, "PUT", f"/onlineendpoints/{endpoint}/deployments/green") == puts + 1
    entries = [e for e in ledger.entries(target.key) if e.run_id == rid]
    assert [e.outcome for e in entries] == ["succeeded"]
    assert pending.latest is not None and pending.latest.id in entries[0].intents
    # the requests the detached attempts sent are recorded with the outcome
    ops = [r for r in ledger.read().records if type(r).__name__ == "OperationRecord"]
    assert [len(o.request_ids) for o in ops] == [1, 2]  # the standby PUT, then the traffic PUT
    assert set(ops[-1].request_ids) <= set(entries[0].request_ids)
    # one intent, finished by the resumed run from its tokens (not a second swap)
    assert [i.id for i in ledger.intents(target.key) if i.run_id == rid] == [pending.latest.id]
    assert ledger.pending() == []
    assert _lease(config, target.key)["state"] == "available"
    history = ledger.history()
    assert history.detached(rid) == {}


def test_a_detached_standby_that_fails_leaves_the_live_deployment_and_is_recorded(
    emulator: Emulator, faults: Faults, endpoint: str, tmp_path: Path
) -> None:
    config = _loaded(emulator, v2_config(emulator, tmp_path, endpoint))
    ((target, _data),) = config.targets()
    faults.add(route="v2.deployment.put", kind="lro_slow", seconds=3, count=1)
    faults.add(route="v2.deployment.put", kind="v2_lro_fail", count=1)
    rid = f"af-detach-{uuid.uuid4().hex[:8]}"
    (op,) = _detached(config, rid).operations
    _wait_done(target, op.token)

    result = _run(config, rid)

    (outcome,) = result.targets
    assert outcome.status == "failed"
    assert outcome.error is not None and "no traffic was changed" in outcome.error
    traffic, _models = v2_state(emulator, endpoint)
    assert traffic == {"blue": 100}
    ledger = config.ledger()
    assert [e.outcome for e in ledger.entries(target.key) if e.run_id == rid] == ["failed"]
    assert ledger.pending() == []
    assert _lease(config, target.key)["state"] == "available"


def _arm_config(emulator: Emulator, folder: Path) -> RetrainConfig:
    text = emulator_config(emulator.info, data=DATA / "census_new.csv", ledger="unused.jsonl")
    blob = f'blob = "ledgers/detach-{uuid.uuid4().hex[:12]}/ledger.jsonl"'
    text = text.replace('path = "unused.jsonl"', blob)
    assert blob in text
    path = folder / "retrain.toml"
    path.write_text(text)
    return _loaded(emulator, path)


def test_a_new_arm_swap_detached_is_finished_from_its_token_without_a_second_patch(
    emulator: Emulator, faults: Faults, tmp_path: Path
) -> None:
    config = _arm_config(emulator, tmp_path)
    target = find_target(config, str(emulator.info.arm_service_name))
    before = target.current_model()
    faults.add(route="arm.patch", kind="lro_slow", seconds=3, count=1)
    rid = f"af-detach-{uuid.uuid4().hex[:8]}"
    patches = _requests(emulator, "PATCH", f"/webservices/{emulator.info.arm_service_name}")

    (op,) = _detached(config, rid, targets=[target]).operations

    assert op.target == target.key
    _no_secret_in(op.token, emulator)
    assert (
        _requests(emulator, "PATCH", f"/webservices/{emulator.info.arm_service_name}")
        == patches + 1
    )
    assert _lease(config, target.key)["duration"] == "infinite"
    _wait_done(target, op.token)
    result = _run(config, rid, targets=[target])

    (outcome,) = result.targets
    assert outcome.status == "succeeded", outcome.error
    assert (
        _requests(emulator, "PATCH", f"/webservices/{emulator.info.arm_service_name}")
        == patches + 1
    )  # nothing sent again
    after = target.current_model()
    assert after != before and outcome.serving_model is not None
    assert outcome.serving_model in after
    assert config.ledger().pending() == []


def test_with_a_local_ledger_a_detaching_run_waits_for_its_swaps(
    emulator: Emulator, faults: Faults, tmp_path: Path
) -> None:
    text = emulator_config(
        emulator.info, data=DATA / "census_new.csv", ledger=tmp_path / "ledger.jsonl"
    )
    (tmp_path / "retrain.toml").write_text(text)
    config = _loaded(emulator, tmp_path / "retrain.toml")
    target = find_target(config, str(emulator.info.arm_service_name))
    faults.add(route="arm.patch", kind="lro_slow", seconds=3, count=1)
    rid = f"local-{uuid.uuid4().hex[:8]}"
    result = _run(config, rid, targets=[target])  # no OperationsDetached: it waited
    assert [o.status for o in result.targets] == ["succeeded"], result.targets[0].error
    records = config.ledger().read().records
    assert not [r for r in records if type(r).__name__ == "OperationRecord"]


def test_a_resume_that_cannot_read_its_target_keeps_it_and_a_later_one_finishes(
    emulator: Emulator,
    faults: Faults,
    endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from amlretrain.errors import ServiceError

    config = _loaded(emulator, v2_config(emulator, tmp_path, endpoint))
    ((target, _data),) = config.targets()
    faults.add(route="v2.deployment.put", kind="lro_slow", seconds=3, count=1)
    rid = f"af-detach-{uuid.uuid4().hex[:8]}"
    (op,) = _detached(config, rid).operations
    _wait_done(target, op.token)
    from amlretrain.azureml.targets import OnlineEndpointTarget

    real_read = OnlineEndpointTarget.read
    failed: list[str] = []

    def read_once_failing(self: OnlineEndpointTarget, known: Any = None) -> Any:
        # the read a resumed swap makes under the lease it took back fails, once
        if sys._getframe(1).f_code.co_name == "_resumed" and not failed:
            failed.append("read")
            raise ServiceError("connection reset (injected)", status=None)
        return real_read(self, known)

    monkeypatch.setattr(OnlineEndpointTarget, "read", read_once_failing)

    again = _detached(config, rid)  # the read under the lease failed

    assert failed == ["read"]
    assert [o.token for o in again.operations] == [op.token]
    lease = _lease(config, target.key)
    assert (lease["state"], lease["duration"]) == ("leased", "infinite")  # still the run's
    traffic, _models = v2_state(emulator, endpoint)
    assert traffic == {"blue": 100}
    result = _run(config, rid)
    assert [o.status for o in result.targets] == ["succeeded"], result.targets[0].error
    assert v2_state(emulator, endpoint)[0] == {"green": 100}
    assert config.ledger().pending() == []
