"""The demo's evidence report step without matplotlib: it says how to install it."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlretrain.cli import demo


def test_without_matplotlib_the_demo_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import amlretrain._charts

    def missing() -> None:
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr(amlretrain._charts, "require_matplotlib", missing)

    class Ledger:
        def history(self) -> None:
            raise AssertionError("no report is built without matplotlib")

    config = tmp_path / "rollout.toml"
    written = demo._write_report(demo._Narrator(False), Ledger(), "run-1", tmp_path / "out", config)
    assert written is None
    out = capsys.readouterr().out
    assert "pip install 'amlretrain[report]'" in out
    assert f"amlretrain report run-1 --config {config}" in out
    assert not (tmp_path / "out").exists()


def test_the_rollout_config_drops_beat_incumbent_and_adds_the_rollout() -> None:
    from types import SimpleNamespace

    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]

    base = '[gate]\nthresholds = { AUC = 0.7 }\nbeat_incumbent = ["AUC"]\n'
    info = SimpleNamespace(subscription_id="s", resource_group="rg")
    text = demo._rollout_config(base, info, Path("/tmp/probe.csv"))
    data = tomllib.loads(text)
    assert data["waves"] == "1,100%"
    assert "beat_incumbent" not in data["gate"]
    assert data["rollout"]["stages"] == ["smoke", "shadow", "canary"]
    assert [a["metric"] for a in data["rollout"]["alarms"]] == ["error_rate", "psi"]
    assert "/commitmentPlans/" in data["rollout"]["arm_commitment_plan"]


def test_the_v2_sections_read_a_deployments_model_version_in_both_spellings() -> None:
    from amlretrain.cli._demo_v2 import _version_of

    arm = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices"
    assert _version_of(f"{arm}/workspaces/ws/models/census/versions/1") == ("census", "1")
    assert _version_of("azureml:census:a022c7b02c46") == ("census", "a022c7b02c46")
    assert _version_of("azureml://registries/r/models/census/versions") is None
    assert _version_of("") is None


def _event(stage: str, verdict: str, **evidence: object) -> object:
    from amlretrain.records import RolloutEvent

    return RolloutEvent.new(run_id="run-1", stage=stage, verdict=verdict, evidence=evidence)


def test_the_v2_stages_show_the_deployment_the_percentage_and_one_line_per_bake(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from amlretrain.cli._demo_v2 import _show_stages

    arm = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices"
    rounds = [_event("bake", "passed", wave=1, round=n, rows=30, error_rate=0.0) for n in (1, 2)]
    events = [
        _event("mirror", "started", deployment="green", percent=20),
        _event("traffic", "done", deployment="green", percent=10, wave=1),
        *rounds,
        _event("traffic", "done", deployment="green", percent=50, wave=1),
        *rounds,
        _event("alarm", "fired", alarm="error_rate", value=1 / 6, threshold=0.05),
        _event("retire", "done", deployment="blue", model_ref=f"{arm}/models/census/versions/1"),
    ]
    _show_stages(demo._Narrator(False), events)
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [line.split()[:2] for line in lines] == [
        ["mirror", "started"],
        ["traffic", "done"],
        ["bake", "passed"],
        ["traffic", "done"],
        ["bake", "passed"],
        ["alarm", "fired"],
        ["retire", "done"],
    ]
    assert lines[0].endswith("green at 20%") and lines[3].endswith("green at 50%")
    assert lines[2].endswith("wave 1, 2 rounds; rows 30; error_rate 0")
    assert lines[5].endswith("error_rate 0.167 > threshold 0.05")
    assert lines[6].endswith("deployment blue (model census:1)")
