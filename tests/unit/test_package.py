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


def test_help_loads_no_library_module_beyond_the_cli() -> None:
    code = (
        "import sys\n"
        "from amlretrain.cli import build_parser\n"
        "build_parser().format_help()\n"
        "print(sorted(m for m in sys.modules if m.startswith('amlretrain.')"
        " and not m.startswith('amlretrain.cli')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(eval(out.stdout))  # a printed list of module names
    assert loaded <= {"amlretrain._version", "amlretrain._redact", "amlretrain.errors"}, loaded


def test_public_names_resolve_lazily_to_their_modules() -> None:
    for name in amlretrain.__all__:
        if name != "__version__":
            assert getattr(amlretrain, name).__name__ == name
