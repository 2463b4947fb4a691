"""The import direction: no import cycles, and each layer imports only itself and below.

Every module of the package is parsed (``ast``, nothing is imported) and every import of
an amlretrain module is collected with its kind: ``runtime`` (module level, run when the
module is imported, class bodies and ``try`` blocks included), ``function`` (inside a
function: run when it is called) or ``typing`` (under ``if TYPE_CHECKING:``).

* Cycles are counted among modules (full names) over imports of every kind: a
  ``runtime`` cycle can fail half-way through an import, and a ``function`` or
  ``typing`` one still ties two modules together (neither can be read, tested or moved
  without the other). The definition, its trained-model rewriter and its HTML
  rendering had one (``studio.definition`` <-> ``studio.ilearner`` <-> ``_html``),
  broken by diffing plain documents in ``studio.ilearner``.
* Layers are checked over imports of every kind: a function-level or typing-only import
  of a higher layer still ties the lower module to it.

The layers, written from what the code does today (lowest first). A module may import
its own layer and the layers below; ``emulator`` may import anything and nothing but the
CLI imports it; nothing in the library imports the CLI. ``errors`` sits above
``_redact``: exceptions redact their messages with it, and ``_redact`` imports nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import amlretrain

PACKAGE = Path(amlretrain.__file__).parent

#: Lowest first. A unit is a module of the package, or a subpackage as a whole.
LAYERS: tuple[frozenset[str], ...] = (
    # imports nothing of amlretrain
    frozenset(
        {
            "_redact",
            "_version",
            "_progress",
            "_deprecated",
            "_enums",
            "polling",
            "studio.jobstatus",
            "_charts",
        }
    ),
    frozenset({"errors"}),
    # pure code (no network) and the HTTP plumbing the clients share
    frozenset(
        {
            "blobs",
            "_wire",
            "studio._validate",
            "_numbers",
            "_config_reader",
            "_html",
            "_http",
            "_arm",
            "_errormap",
            "_tracing",
            "credentials",
            "studio.definition",
            "studio.ilearner",
            "azureml.models",
            "azureml.traffic",
            "studio.schema",
            "studio.models",
            "metrics",
            "evaluation",
            "interrupt",
            "result",
            "waves",
            "_fleet_progress",
            "records",
            "history",
            "probe_stats",
            # the rollout's alarms and notifications (user hooks loaded by _hooks)
            "_hooks",
            "alarms",
            "notify",
            "bootstrap",
            "champion",
            # reads a History (not a Ledger): result may draw it (RetrainResult.report)
            "report",
        }
    ),
    # the service clients
    frozenset(
        {
            "studio.webservices",
            "studio.management",
            "studio.batch",
            "studio.scoring",
            "storage",
            "azureml.operations",
            "azureml.endpoints",
            "azureml.registry",
            "azureml.jobs",
            "azureml.scoring",
        }
    ),
    # what the loop is made of
    frozenset(
        {
            "targets",
            "studio.targets",
            "azureml.targets",
            "ledger",
            "locks",
            "gate",
            "training",
            "azureml.training",
            "rollout",
        }
    ),
    # the loop, and the configuration that builds it from retrain.toml
    frozenset(
        {
            "swap",
            "reconciliation",
            "candidates",
            "_rollout_guard",
            "_run",
            "_fleet_run",
            "_retire",
            "fleet",
            "workflow",
            "config",
            "_config_training",
            "retention",
            "configured",
            "migrate",
        }
    ),
    # the package's lazy re-exports
    # the package's lazy re-exports, the subpackage's docstring, and the deprecated
    # module paths of 0.1.0 (each an alias of its new module)
    frozenset(
        {
            "amlretrain",
            "studio",
            "azureml",
            "arm",
            "classic",
            "jobs",
            "jobstatus",
            "scoring",
            "definition",
            "ilearner",
            "schema",
        }
    ),
    frozenset({"cli", "__main__"}),
    # the Airflow operators (only they import Airflow; nothing imports them)
    frozenset({"airflow"}),
)
#: Subpackages whose modules sit in different layers (a platform's clients and targets).
PLATFORMS = ("studio", "azureml")
#: Imports anything (it serves the real protocols with the library's own models).
EMULATOR = "emulator"

#: Imports against the layers that remain, each with why it stays: (importer, imported).
#: None today. The one there was, locks -> config (``locks_for`` annotated with
#: ``RetrainConfig``), became the ``locks.LedgerSettings`` protocol.
ALLOWED: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    """True when ``name`` is a module or package of amlretrain (on disk)."""
    base = PACKAGE.parent.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def _imports(
    node: ast.AST, module: str, is_package: bool, kind: str
) -> Iterator[tuple[str, str, int]]:
    """(imported module, kind, line) for every amlretrain import under ``node``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _imports_of(stmt, module, is_package, "typing")
            for stmt in child.orelse:
                yield from _imports_of(stmt, module, is_package, kind)
            continue
        yield from _imports_of(child, module, is_package, kind)


def _imports_of(
    node: ast.AST, module: str, is_package: bool, kind: str
) -> Iterator[tuple[str, str, int]]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        kind = "function" if kind == "runtime" else kind
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == "amlretrain" or alias.name.startswith("amlretrain."):
                yield alias.name, kind, node.lineno
    elif isinstance(node, ast.ImportFrom):
        target = node.module or ""
        if node.level:
            base = module.split(".")
            if not is_package:
                base.pop()
            base = base[: len(base) - (node.level - 1)]
            target = ".".join([*base, *([node.module] if node.module else [])])
        if target == "amlretrain" or target.startswith("amlretrain."):
            named = [f"{target}.{a.name}" for a in node.names if is_module(f"{target}.{a.name}")]
            # ``from pkg import submodule`` imports the submodule; other names, pkg itself
            yield from ((n, kind, node.lineno) for n in named)
            if len(named) < len(node.names):
                yield target, kind, node.lineno
    yield from _imports(node, module, is_package, kind)


def import_graph() -> dict[str, list[tuple[str, str, int]]]:
    """Every amlretrain module -> its amlretrain imports (module, kind, line)."""
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[name] = list(_imports(tree, name, path.name == "__init__.py", "runtime"))
    return graph


GRAPH = import_graph()


def unit(module: str) -> str:
    """The layer unit of a module: ``amlretrain.cli.job`` -> ``cli``; a platform's modules
    are units of their own: ``amlretrain.studio.batch`` -> ``studio.batch``."""
    parts = module.split(".")
    if len(parts) > 2 and parts[1] in PLATFORMS:
        return f"{parts[1]}.{parts[2]}"
    return parts[1] if len(parts) > 1 else "amlretrain"


def layer(name: str) -> int:
    for index, units in enumerate(LAYERS):
        if name in units:
            return index
    raise AssertionError(f"{name} is in no layer of LAYERS: add it where it belongs")


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_module_is_in_a_layer() -> None:
    units = {unit(m) for m in GRAPH} - {EMULATOR}
    for name in units:
        layer(name)
    listed = set().union(*LAYERS)
    assert listed <= units, f"LAYERS names modules that do not exist: {listed - units}"


def test_the_parser_sees_imports_of_every_kind() -> None:
    # If these fail, the parser (not the code) is wrong, and the other tests prove nothing.
    def kinds(src: str, dst: str) -> set[str]:
        return {kind for target, kind, _ in GRAPH[src] if target == dst}

    assert "runtime" in kinds("amlretrain.workflow", "amlretrain.swap")
    assert "typing" in kinds("amlretrain.ledger", "amlretrain.locks")
    assert "function" in kinds("amlretrain.ledger", "amlretrain.locks")
    assert kinds("amlretrain.__main__", "amlretrain.cli")
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def _edges(
    kinds: frozenset[str] = frozenset({"runtime", "function", "typing"}),
) -> dict[str, set[str]]:
    return {
        module: {target for target, kind, _ in imports if kind in kinds and target != module}
        for module, imports in GRAPH.items()
    }


def test_no_import_cycles_at_module_level() -> None:
    assert cycles(_edges(frozenset({"runtime"}))) == []


def test_no_import_cycles_of_any_kind() -> None:
    # function-level and TYPE_CHECKING imports count too (see the module docstring)
    assert cycles(_edges()) == []


def test_a_cycle_through_a_function_level_import_is_found() -> None:
    GRAPH["amlretrain.studio.ilearner"].append(("amlretrain.studio.definition", "function", 0))
    try:
        assert ["amlretrain.studio.definition", "amlretrain.studio.ilearner"] in cycles(_edges())
    finally:
        GRAPH["amlretrain.studio.ilearner"].pop()


def test_the_definition_ilearner_and_html_import_no_higher_of_the_three() -> None:
    # ilearner works on plain documents, _html on plain rows: only definition imports them
    def imported(module: str) -> set[str]:
        return {target for target, _, _ in GRAPH[f"amlretrain.{module}"]}

    assert "amlretrain.studio.definition" not in imported("studio.ilearner") | imported("_html")
    assert "amlretrain.studio.ilearner" not in imported("_html")


def _upward_imports() -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for module, imports in GRAPH.items():
        src = unit(module)
        if src == EMULATOR:
            continue
        for target, kind, line in imports:
            dst = unit(target)
            if dst == src:
                continue
            # only the CLI runs the emulator; otherwise a higher layer is upward
            top = layer("cli") if dst == EMULATOR else layer(dst)
            if top > layer(src):
                found.setdefault((src, dst), []).append(f"{module}:{line} ({kind})")
    return found


def test_each_layer_imports_only_itself_and_below() -> None:
    unexpected = {k: v for k, v in _upward_imports().items() if k not in ALLOWED}
    assert unexpected == {}, "import a lower layer, or move the code (see LAYERS)"


def test_every_allowed_exception_is_still_needed() -> None:
    stale = set(ALLOWED) - set(_upward_imports())
    assert stale == set(), "these no longer import upward: drop them from ALLOWED"


def test_an_upward_import_is_found() -> None:
    # The layer check itself can fail: a lower layer naming a higher one is caught.
    GRAPH["amlretrain.blobs"].append(("amlretrain.workflow", "function", 0))
    try:
        assert ("blobs", "workflow") in _upward_imports()
    finally:
        GRAPH["amlretrain.blobs"].pop()


def test_nothing_in_the_library_imports_the_emulator_or_the_cli() -> None:
    library = [m for m in GRAPH if unit(m) not in (EMULATOR, "cli", "__main__")]
    offending = [
        f"{module}:{line} imports {target}"
        for module in library
        for target, _, line in GRAPH[module]
        if unit(target) in (EMULATOR, "cli")
    ]
    assert offending == []


DEPRECATED = ("arm", "classic", "jobs", "jobstatus", "scoring", "definition", "ilearner", "schema")


def test_nothing_imports_the_airflow_operators() -> None:
    importers = sorted(
        f"{src}:{line}"
        for src, imports in GRAPH.items()
        if unit(src) != "airflow"
        for dst, _kind, line in imports
        if unit(dst) == "airflow"
    )
    assert importers == []


def test_nothing_in_the_library_imports_a_deprecated_module_path() -> None:
    offending = [
        f"{module}:{line} imports {target}"
        for module, imports in GRAPH.items()
        for target, _, line in imports
        if target.split(".")[1:2]
        and target.split(".")[1] in DEPRECATED
        and len(target.split(".")) == 2
        and unit(module) not in DEPRECATED
    ]
    assert offending == []
