"""The package layout's rules (docs/interfaces.md, "The map"): no import cycles between modules,
and each subsystem imports only what its row of the map allows.

Imports are read with ``ast`` from the source, function-level (lazy) imports included: a cycle
hidden behind a lazy import is still a cycle of ideas, and it is what the map forbids.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "moelens"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """moelens modules imported by one module (``from a import b`` counts ``a.b`` if a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known)
    return {m for m in out if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    graph = {name: _imports(name, path, known) for name, path in mods.items()}
    # Importing a submodule imports its packages first; a package's __init__ importing its own
    # submodules is how packages re-export, not a cycle of ideas, so it is left out.
    for name, deps in graph.items():
        graph[name] = {d for d in deps if not name.startswith(d + ".") and not d.startswith(name + ".")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_cycle_finder_sees_a_lazy_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def _deps_of(prefix: str, graph: dict[str, set[str]]) -> set[str]:
    return {d for name, deps in graph.items() if name == prefix or name.startswith(prefix + ".")
            for d in deps}


MODEL_ANALYSES = ("moelens.analysis.causal", "moelens.analysis.specialization")
"""Analyses that re-run or read the model itself (docs/decisions.md, "Interventions"): they may
import the adapters' public package, whose intervention points hold the family knowledge, and
the placement flags and loader every model-running command shares (``capture.placed``), nothing
else of capture."""
MODEL_ANALYSIS_EDGES = {"moelens.capture.adapters", "moelens.capture.placed"}


def _in(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_analyses_and_store_never_import_capture():
    graph = _graph()
    for sub in ("moelens.analysis", "moelens.store"):
        bad = sorted((name, d) for name, deps in graph.items() if _in(name, (sub,)) for d in deps
                     if d.startswith("moelens.capture")
                     and not (_in(name, MODEL_ANALYSES) and d in MODEL_ANALYSIS_EDGES))
        assert bad == [], f"{sub} imports {bad}"


def test_the_adapter_edge_is_real_and_narrow():
    """The allowance above is used, and only through those modules (no adapter internals)."""
    graph = _graph()
    used = {d for name, deps in graph.items() if _in(name, MODEL_ANALYSES) for d in deps
            if d.startswith("moelens.capture")}
    assert used == MODEL_ANALYSIS_EDGES, used


def test_store_imports_only_the_basics():
    allowed = ("moelens.store", "moelens.errors", "moelens.rundir", "moelens.config")
    bad = sorted(d for d in _deps_of("moelens.store", _graph()) if not d.startswith(allowed))
    assert bad == [], bad


def test_nothing_downstream_imports_the_build_half_but_adapters():
    """An analysis never imports a model family's code (DESIGN.md): only adapters do."""
    graph = _graph()
    bad = sorted(d for d in _deps_of("moelens.analysis", graph)
                 if d.startswith(("moelens.models", "moelens.training")))
    assert bad == [], bad


PLOTTING = "moelens.plotting"
"""Headless matplotlib and atomic figure files, shared so that every analysis, the report and
the experiments draw on the Agg backend and never leave a half-written figure, with one copy of
that code instead of one per figure module. It sits with the basics, below every folder, and
imports only ``rundir`` (and matplotlib only when a figure is drawn, checked below)."""
SHARED = {"moelens.errors", "moelens.config", "moelens.rundir", "moelens.hf_progress", PLOTTING}
MAY_IMPORT = {
    "moelens.models": SHARED,
    "moelens.training": SHARED | {"moelens.models", "moelens.data"},
    "moelens.data": SHARED,
    "moelens.capture": SHARED | {"moelens.data", "moelens.models", "moelens.store"},
    "moelens.store": SHARED,
    "moelens.analysis": SHARED | {"moelens.store", "moelens.data", "moelens.capture"},
    "moelens.report": SHARED | {"moelens"},  # reads result files only; "moelens": __version__
}
"""The "may import" column of the map in docs/interfaces.md (besides the folder itself); which
analyses may reach ``moelens.capture``, and only its ``adapters`` package, is checked above."""


def test_each_folder_imports_only_what_the_map_allows():
    graph = _graph()
    top = lambda m: ".".join(m.split(".")[:2])  # noqa: E731
    bad = sorted((name, d) for name, deps in graph.items() for d in deps
                 if top(name) in MAY_IMPORT and top(d) != top(name)
                 and top(d) not in MAY_IMPORT[top(name)])
    assert bad == [], bad


def test_only_the_cli_imports_the_experiments():
    """Experiments orchestrate every other folder; a folder importing them back would be a cycle."""
    graph = _graph()
    bad = sorted((name, d) for name, deps in graph.items() for d in deps
                 if d.startswith("moelens.experiments") and not name.startswith("moelens.experiments")
                 and name != "moelens.cli")
    assert bad == [], bad


def test_plotting_stays_a_basic():
    """The figure helper imports only ``rundir`` of moelens, and matplotlib only inside its
    functions: importing moelens (every ``--help``) never loads matplotlib."""
    deps = _imports(PLOTTING, PKG / "plotting.py", set(_modules()))
    assert deps <= {"moelens.rundir"}, deps
    tree = ast.parse((PKG / "plotting.py").read_text(encoding="utf-8"))
    top = {a.name for node in tree.body if isinstance(node, ast.Import) for a in node.names}
    top |= {node.module or "" for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert not any(m.split(".")[0] == "matplotlib" for m in top), top
