"""The retrain commands end to end: config file, dry run, gate exit code, history, rollback, demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from amlretrain.cli import main
from amlretrain.cli._emulator_config import emulator_config, emulator_environment
from amlretrain.emulator import Emulator

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "amlretrain" / "emulator" / "data"


@pytest.fixture
def config(emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in emulator_environment(emulator.info).items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "retrain.toml"
    path.write_text(
        emulator_config(
            emulator.info, data=DATA / "census_new.csv", ledger=tmp_path / "ledger.jsonl"
        )
    )
    return path


def _secrets(emulator: Emulator) -> list[str]:
    return [v for v in emulator_environment(emulator.info).values() if v]


def test_dry_run_prints_the_plan_without_secrets(
    config: Path, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["retrain", "--config", str(config), "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "planned request" in captured.out
    assert '"op": "replace"' in captured.out
    assert "sig=REDACTED" in captured.out
    for secret in _secrets(emulator):
        assert secret not in captured.out + captured.err


def test_retrain_history_rollback(
    config: Path, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["retrain", "--config", str(config), "--data", str(DATA / "census_train.csv")])
    out = capsys.readouterr().out
    assert code == 0, out  # a fresh ledger: no incumbent to beat
    # census_new.csv trains a model with a lower AUC than census_train.csv's, now recorded
    assert main(["retrain", "--config", str(config), "--output", "json"]) == 11
    result = json.loads(capsys.readouterr().out)
    assert [t["status"] for t in result["targets"]] == ["rejected", "rejected"]
    assert all("does not beat the incumbent" in t["error"] for t in result["targets"])

    assert main(["history", "--config", str(config), "--output", "json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert history, "the ledger recorded the deployments"
    assert all("sig=" not in json.dumps(e) for e in history)

    deployed = [e for e in history if e["outcome"] == "succeeded"]
    assert len(deployed) == 2, "the first run deployed to both targets"
    target = deployed[-1]["target"]
    assert main(["rollback", target, "--config", str(config)]) == 0
    assert "succeeded" in capsys.readouterr().out
    assert main(["history", target, "--config", str(config)]) == 0
    assert "rollback" in capsys.readouterr().out


def test_gate_rejection_exits_11(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = config.read_text().replace("AUC = 0.7", "AUC = 0.9999")
    config.write_text(text)
    assert main(["retrain", "--config", str(config)]) == 11
    err = capsys.readouterr().err
    assert "GateRejected" in err and "AUC" in err
    errors = [line for line in err.splitlines() if line.startswith("amlretrain: error:")]
    assert len(errors) == 1
    assert "Traceback" not in err


def test_unknown_rollback_target(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rollback", "nonesuch", "--config", str(config)]) == 4
    assert "no target 'nonesuch'" in capsys.readouterr().err


def _served_in_state(emulator: Emulator) -> dict[str, str]:
    """What each predictive service references in the emulator's own state (no SAS)."""
    from amlretrain.blobs import strip_sas
    from amlretrain.emulator.state import trained_model_asset

    info = emulator.info
    with emulator.state.locked() as state:
        arm = state.arm[
            (
                info.subscription_id.lower(),
                info.resource_group.lower(),
                info.arm_service_name.lower(),
            )
        ]
        found = trained_model_asset(arm.properties)
        assert found is not None
        ws = state.workspaces[info.workspace_id.lower()]
        endpoint = ws.services[info.predictive_service].endpoints[info.predictive_endpoint]
        location = endpoint.resources[0]["Location"]
        return {
            "arm": strip_sas(found[1]["locationInfo"]["uri"]),
            "classic": location["BaseLocation"] + location["RelativeLocation"],
        }


def _v2_in_state(emulator: Emulator) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The seeded v2 endpoint and the workspace's jobs, from the emulator's own state:
    each deployment's live and mirror traffic and the modelUri of the version it serves."""
    info = emulator.info
    assert emulator.state is not None and info.v2_endpoint is not None
    with emulator.state.lock:
        v2 = emulator.state.v2
        ep = v2.endpoint_named(info.v2_endpoint)
        assert ep is not None
        deployments: dict[str, dict[str, Any]] = {}
        for dep in ep.deployments.values():
            parts = str(dep.resource["properties"]["model"]).split("/")
            name, version = parts[parts.index("models") + 1], parts[parts.index("versions") + 1]
            found = v2.model_version(ep.workspace, name, version)
            assert found is not None
            deployments[dep.name] = {
                "traffic": ep.weight(dep.name),
                "mirror": int(ep.mirror_traffic.get(dep.name, 0)),
                "model_uri": found["properties"]["modelUri"],
            }
        jobs = {j.name: j.status for j in v2.jobs.values()}
    return deployments, jobs


def _blob_path(url: str) -> str:
    """The blob path of a model URL or of an ``azureml://datastores/...`` URI."""
    if url.startswith("azureml://datastores/"):
        rest = url.removeprefix("azureml://datastores/")
        datastore, _, path = rest.partition("/paths/")
        return f"{datastore}/{path}"
    return url.split("/devstoreaccount1/", 1)[1]


@pytest.mark.slow
def test_demo_runs_the_whole_loop_and_leaves_nothing_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import amlretrain.emulator
    from amlretrain.cli.demo import run_demo
    from amlretrain.ledger import Ledger

    at_stop: list[dict[str, str]] = []
    v2_at_stop: list[tuple[dict[str, dict[str, Any]], dict[str, str]]] = []

    class Recording(Emulator):
        def stop(self) -> None:
            if self._info is not None and self.state is not None:
                at_stop.append(_served_in_state(self))
                v2_at_stop.append(_v2_in_state(self))
            super().stop()

    monkeypatch.setattr(amlretrain.emulator, "Emulator", Recording)
    summary = run_demo(tmp_path, quiet=True)
    assert summary["scores_changed"]
    assert summary["scores_restored"]
    assert summary["rollout_ok"]

    # The guarded rollouts, as the ledger recorded them.
    ledger = Ledger(tmp_path / "ledger.jsonl")
    history = ledger.history()
    runs = {name: summary["rollouts"][name]["run_id"] for name in ("good", "shadow", "bake")}

    def stages(run: str) -> list[tuple[str, str]]:
        return [(e.stage, e.verdict) for e in history.rollout_events(run)]

    good = stages(runs["good"])
    assert ("smoke", "passed") in good and ("shadow", "passed") in good
    assert good.count(("wave", "done")) == 2 and ("bake", "passed") in good
    assert good[-1] == ("promote", "done")
    shadow = stages(runs["shadow"])
    assert ("shadow", "failed") in shadow and ("alarm", "fired") in shadow
    assert ("wave", "done") not in shadow  # stopped before any live target changed
    bake = stages(runs["bake"])
    assert ("smoke", "passed") not in bake and ("shadow", "passed") not in bake
    assert bake.count(("wave", "done")) == 1
    assert ("bake", "failed") in bake and ("alarm", "fired") in bake
    assert bake[-1] == ("rollback", "done")
    alarm = next(e for e in history.rollout_events(runs["bake"]) if e.stage == "alarm")
    assert (
        alarm.evidence["alarm"] == "psi" and alarm.evidence["value"] > alarm.evidence["threshold"]
    )
    assert summary["rollouts"]["shadow"]["exit_code"] == 11
    assert summary["rollouts"]["bake"]["exit_code"] == 15

    # The bad run's first wave was put back: the emulator serves the good run's model.
    (good_model,) = {
        e.new_model for e in ledger.entries() if e.run_id == runs["good"] and e.action == "deploy"
    }
    assert good_model is not None
    bad_actions = [e.action for e in ledger.entries() if e.run_id == runs["bake"]]
    assert bad_actions == ["deploy", "rollback"]
    (served,) = at_stop
    assert served == {"arm": good_model, "classic": good_model}

    # The evidence report of the rolled-back run: one HTML file with the charts inline.
    report = Path(summary["report"])
    assert report.parent == tmp_path and report.name == f"report-{runs['bake']}.html"
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert runs["bake"] in page and "psi" in page

    # The Azure ML v2 sections: what the emulator held at the end ...
    v2 = summary["v2"]
    assert v2["ok"]
    ((deployments, jobs),) = v2_at_stop
    live = [name for name, d in deployments.items() if d["traffic"]]
    assert len(live) == 1 and deployments[live[0]]["traffic"] == 100
    assert "blue" in deployments and live == ["green"]  # blue: the bad model's, at 0%
    assert not any(d["mirror"] for d in deployments.values())
    assert len(jobs) == 2 and set(jobs.values()) == {"Completed"}
    good_v2, bad_v2 = v2["good"]["run_id"], v2["bad"]["run_id"]
    v2_entries = [e for e in ledger.entries() if e.target.startswith("azureml:")]
    assert [(e.run_id, e.action, e.outcome) for e in v2_entries] == [
        (good_v2, "deploy", "succeeded"),
        (bad_v2, "deploy", "failed"),
    ]
    good_entry, bad_entry = v2_entries
    assert good_entry.job_id in jobs and bad_entry.job_id in jobs
    assert good_entry.new_model is not None and bad_entry.new_model is not None
    # the live deployment serves the good run's model, the standby the bad one's
    assert _blob_path(str(deployments["green"]["model_uri"])) == _blob_path(good_entry.new_model)
    assert _blob_path(str(deployments["blue"]["model_uri"])) == _blob_path(bad_entry.new_model)
    # ... the traffic states the emulator went through, sampled during each run ...
    assert [(s["traffic"], s["mirror"]) for s in v2["good"]["traffic_seen"]] == [
        ({"blue": 100}, {}),
        ({"blue": 100}, {"green": 20}),
        ({"blue": 100}, {}),
        ({"blue": 90, "green": 10}, {}),
        ({"blue": 50, "green": 50}, {}),
        ({"green": 100}, {}),
    ]
    assert [s["traffic"] for s in v2["bad"]["traffic_seen"]] == [
        {"green": 100},
        {"blue": 10, "green": 90},
        {"green": 100},
    ]
    assert v2["good"]["scores_changed"]
    # ... and the stages the ledger recorded
    v2_good = stages(good_v2)
    assert ("mirror", "started") in v2_good and ("mirror", "done") in v2_good
    steps = [e for e in history.rollout_events(good_v2) if e.stage == "traffic"]
    assert [e.evidence["percent"] for e in steps] == [10, 50]
    assert ("retire", "done") in v2_good and v2_good[-1] == ("promote", "done")
    v2_bad = stages(bad_v2)
    assert ("traffic", "done") in v2_bad and ("alarm", "fired") in v2_bad
    assert ("retire", "started") not in v2_bad
    assert v2["bad"]["halted_wave"] == 1 and "alarm" in v2["bad"]["halt_reason"]
    assert v2["bad"]["alarm"]["alarm"] == "error_rate"
    assert v2["bad"]["alarm"]["value"] > v2["bad"]["alarm"]["threshold"]
    # the v2 run's evidence report: its timeline holds the v2 stages
    v2_page = Path(v2["report"]).read_text(encoding="utf-8")
    assert Path(v2["report"]).name == f"report-{good_v2}.html"
    assert all(f"rollout:{stage}" in v2_page for stage in ("mirror", "traffic", "retire"))


def test_the_ledger_can_live_in_a_blob(
    config: Path, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    text = config.read_text()
    start = text.index("[ledger]")
    end = text.index("\n\n", start)
    config.write_text(
        text[:start] + '[ledger]\nblob = "amlretrain-ledger/test/ledger.jsonl"' + text[end:]
    )
    assert main(["retrain", "--config", str(config), "--output", "json"]) == 0
    capsys.readouterr()
    assert main(["history", "--config", str(config), "--output", "json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [(e["action"], e["outcome"]) for e in entries] == [("deploy", "succeeded")] * 2
    assert not (config.parent / "ledger.jsonl").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("does_not_exist.csv", "no such file"),
        (
            "amlretrain-inputs/census.csv",
            "did you mean the blob 'blob:amlretrain-inputs/census.csv'",
        ),
        ("data.json", "must end in .csv, .tsv, .arff"),
    ],
)
def test_bad_training_data_exits_4_before_anything_is_sent(
    config: Path,
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    data: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.json").write_text("{}")
    start = len(emulator.requests)
    assert main(["retrain", "--config", str(config), "--data", data]) == 4
    err = capsys.readouterr().err
    assert message in err and data in err
    assert emulator.requests[start:] == []  # nothing was read or sent
    assert (
        not (tmp_path / "ledger.jsonl").exists()
        or "intent" not in (tmp_path / "ledger.jsonl").read_text()
    )


def test_data_named_as_a_blob_is_read_from_storage(
    config: Path, emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from amlretrain.storage import BlobStore

    store = BlobStore.from_connection_string(emulator.info.storage_connection_string)
    store.upload(
        DATA / "census_new.csv", container="amlretrain-inputs", blob_name="named/census.csv"
    )
    code = main(
        ["retrain", "--config", str(config), "--data", "blob:amlretrain-inputs/named/census.csv"]
    )
    out = capsys.readouterr().out
    assert code == 0, out  # a fresh ledger: no incumbent to beat
    assert "training data already in storage" in out


def test_blob_sas_prints_the_sas_url_on_stdout_only(
    config: Path,
    emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging
    from urllib.parse import parse_qs, urlsplit

    from amlretrain.blobs import BlobRef
    from amlretrain.storage import BlobStore

    store = BlobStore.from_connection_string(emulator.info.storage_connection_string)
    ref = store.upload(b"model", container="amlretrain-models", blob_name="sas-cli/m.ilearner")
    caplog.set_level(logging.DEBUG)
    assert main(["--debug", "blob", "sas", ref.url, "--config", str(config), "--days", "2"]) == 0
    captured = capsys.readouterr()
    url = captured.out.strip()
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(ref.url + "?") and query["sp"] == ["r"]
    signature = query["sig"][0]
    assert signature not in captured.err and signature not in caplog.text
    assert store.download_bytes(BlobRef.from_url(url)) == b"model"
    assert main(["blob", "sas", ref.url + "-missing", "--config", str(config)]) == 4
    assert (
        main(["blob", "sas", "https://other.blob.core.windows.net/c/m.ilearner", "-c", str(config)])
        == 4
    )
    assert main(["blob", "sas", ref.url, "-c", str(config), "--days", "0"]) == 4


def test_training_data_without_a_column_the_service_expects_exits_4_before_upload(
    config: Path, emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = (DATA / "census_new.csv").read_text().splitlines()
    header = rows[0].split(",")
    dropped = tmp_path / "no_age.csv"
    dropped.write_text("\n".join(",".join(r.split(",")[1:]) for r in rows) + "\n")
    start = len(emulator.requests)
    assert main(["retrain", "--config", str(config), "--data", str(dropped)]) == 4
    err = capsys.readouterr().err
    assert f"expects column(s) '{header[0]}'" in err
    assert not [r for r in emulator.requests[start:] if r.method != "GET"]  # read only


def test_training_data_with_an_extra_column_is_warned_about(
    config: Path, emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = (DATA / "census_new.csv").read_text().splitlines()
    extra = tmp_path / "extra.csv"
    extra.write_text("\n".join(r + (",zip" if i == 0 else ",1") for i, r in enumerate(rows)) + "\n")
    main(["retrain", "--config", str(config), "--data", str(extra), "--dry-run"])
    assert "'zip' are not among the training service's inputs" in capsys.readouterr().err


def test_rollback_gives_the_model_put_back_a_read_sas_of_model_sas_days(
    config: Path, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """`amlretrain rollback` minted a 7-day SAS whatever the config said (the library's
    default); the model put back must stay readable as long as a deployed one."""
    import urllib.parse
    from datetime import datetime, timedelta, timezone

    from amlretrain.emulator.state import trained_model_asset

    config.write_text(
        config.read_text().replace("[training]\n", "[training]\nmodel_sas_days = 20\n")
    )
    assert main(["retrain", "--config", str(config), "--data", str(DATA / "census_train.csv")]) == 0
    capsys.readouterr()
    assert main(["history", "--config", str(config), "--output", "json"]) == 0
    arm = next(
        e["target"] for e in json.loads(capsys.readouterr().out) if e["target"].startswith("arm:")
    )
    assert main(["rollback", arm, "--config", str(config)]) == 0
    info = emulator.info
    with emulator.state.locked() as state:
        key = (
            info.subscription_id.lower(),
            info.resource_group.lower(),
            info.arm_service_name.lower(),
        )
        found = trained_model_asset(state.arm[key].properties)
        assert found is not None
        uri = str(found[1]["locationInfo"]["uri"])
    expiry = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)["se"][0]
    left = datetime.fromisoformat(expiry.replace("Z", "+00:00")) - datetime.now(timezone.utc)
    assert timedelta(days=20) - timedelta(hours=1) < left <= timedelta(days=20), expiry
