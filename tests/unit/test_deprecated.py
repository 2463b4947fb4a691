"""The 0.1.0 module paths still import for one release, warn, and are the new modules."""

from __future__ import annotations

import importlib
import sys

import pytest

MOVED = {
    "amlretrain.arm": "amlretrain.studio.webservices",
    "amlretrain.classic": "amlretrain.studio.management",
    "amlretrain.jobs": "amlretrain.studio.batch",
    "amlretrain.jobstatus": "amlretrain.studio.jobstatus",
    "amlretrain.scoring": "amlretrain.studio.scoring",
    "amlretrain.definition": "amlretrain.studio.definition",
    "amlretrain.ilearner": "amlretrain.studio.ilearner",
    "amlretrain.schema": "amlretrain.studio.schema",
}


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_an_old_module_path_warns_and_is_the_new_module(old: str, new: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_from_an_old_path_imports_the_same_class() -> None:
    sys.modules.pop("amlretrain.classic", None)
    with pytest.warns(DeprecationWarning, match="amlretrain.classic moved"):
        from amlretrain.classic import ClassicClient
    from amlretrain import ClassicClient as Root

    assert ClassicClient is Root


@pytest.mark.parametrize("name", ["ArmTarget", "ClassicTarget"])
def test_a_target_from_its_old_module_warns_and_is_the_same_class(name: str) -> None:
    import amlretrain
    import amlretrain.targets

    with pytest.warns(DeprecationWarning, match=f"amlretrain.targets.{name} moved"):
        old = getattr(amlretrain.targets, name)
    assert old is getattr(amlretrain, name)


def test_the_package_root_does_not_warn(recwarn: pytest.WarningsRecorder) -> None:
    import amlretrain

    for name in amlretrain.__all__:
        getattr(amlretrain, name)
    assert [w for w in recwarn if issubclass(w.category, DeprecationWarning)] == []
