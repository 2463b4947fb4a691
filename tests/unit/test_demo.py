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
