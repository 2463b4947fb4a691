"""The package surface: public names, and `import amlretrain` stays light."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# -- one table of names ------------------------------------------------------------------------

INIT = Path(amlretrain.__file__)


def _typing_imports() -> dict[str, str]:
    """name -> module of the ``if TYPE_CHECKING:`` imports of ``amlretrain/__init__.py``."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.module:
                    found.update({a.name: stmt.module for a in stmt.names})
    return found


def test_all_is_derived_from_the_one_table() -> None:
    table = amlretrain._NAMES  # type: ignore[attr-defined]
    assert list(amlretrain.__all__) == ["__version__", *sorted(table)]


def test_the_type_checking_imports_are_the_table() -> None:
    # Static checkers read these imports; the lazy loader reads the table: they agree.
    assert _typing_imports() == amlretrain._NAMES  # type: ignore[attr-defined]


def _module_names(module: Any) -> dict[str, Any]:
    """A module's globals plus what it imports under ``TYPE_CHECKING`` (resolved)."""
    names = dict(vars(module))
    source = inspect.getsource(module)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.module:
                    if not stmt.module.startswith("amlretrain"):
                        continue
                    imported = importlib.import_module(stmt.module)
                    for alias in stmt.names:
                        value = getattr(imported, alias.name, None)
                        if value is not None:
                            names[alias.asname or alias.name] = value
    return names


def _returned_types(obj: Any, names: dict[str, Any]) -> set[type]:
    """The amlretrain classes named in ``obj``'s return annotation."""
    try:
        annotation = inspect.signature(obj).return_annotation
    except (TypeError, ValueError):
        return set()
    if annotation is inspect.Signature.empty:
        return set()
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    found = set()
    for word in re.findall(r"[A-Za-z_][A-Za-z_0-9]*", text):
        value = names.get(word)
        if inspect.isclass(value) and value.__module__.startswith("amlretrain"):
            found.add(value)
    return found


def _public_callables(cls: type) -> Iterator[Any]:
    for name, member in vars(cls).items():
        if name.startswith("_") and name != "__enter__":
            continue
        if isinstance(member, property) and member.fget is not None:
            yield member.fget
        elif isinstance(member, staticmethod | classmethod):
            yield member.__func__
        elif inspect.isfunction(member):
            yield member


def test_every_type_a_public_name_returns_is_exported_from_the_root() -> None:
    missing: dict[str, set[str]] = {}
    for name in amlretrain.__all__:
        if name == "__version__":
            continue
        obj = getattr(amlretrain, name)
        names = _module_names(importlib.import_module(obj.__module__))
        callables = list(_public_callables(obj)) if inspect.isclass(obj) else [obj]
        for fn in callables:
            for returned in _returned_types(fn, names):
                exported = getattr(amlretrain, returned.__name__, None) is returned
                if not exported and not issubclass(returned, BaseException):
                    missing.setdefault(returned.__name__, set()).add(f"{name}.{fn.__name__}")
    assert missing == {}, "export these from amlretrain (add them to _NAMES)"


def test_the_return_type_check_sees_what_a_method_returns() -> None:
    # The check above can fail: it finds the classes a method returns, typing-only
    # imports included (WebServicesClient.list_keys returns WebServiceKeys).
    from amlretrain.studio import definition, webservices

    returned = _returned_types(webservices.WebServicesClient.list_keys, _module_names(webservices))
    assert returned == {definition.WebServiceKeys}
