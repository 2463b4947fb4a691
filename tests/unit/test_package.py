"""The package surface: public names, and `import amlretrain` stays light."""

from __future__ import annotations

import subprocess
import sys

import amlretrain

HEAVY = ("requests", "urllib3", "azure", "numpy", "jsonpatch")


def test_public_names_are_exactly_all() -> None:
    public = {name for name in dir(amlretrain) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(amlretrain, name)).__name__ == "module"}
    assert public - modules == set(amlretrain.__all__) - {"__version__"}


def test_every_public_name_has_a_docstring() -> None:
    for name in amlretrain.__all__:
        obj = getattr(amlretrain, name)
        if callable(obj):
            assert obj.__doc__, name


def test_import_does_not_load_network_or_azure_libraries() -> None:
    code = (
        "import sys, amlretrain, amlretrain.cli; "
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}); print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
