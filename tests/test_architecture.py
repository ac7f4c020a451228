"""The shape of the package: dependencies point one way, and no module imports itself in a loop.

Read from the source with ``ast`` (no import needed), every import counted, including
the lazy ones inside functions: a lazy upward import is still an upward dependency.

Layers, lowest first (ARCHITECTURE.md draws them):

0. ``_core``: pure rules and data (policy, decide, names, addrinfo, config, version);
1. ``_cache`` (the store), ``_sources`` (where answers come from), ``_connect``
   (Happy Eyeballs, address health): each may use ``_core`` and nothing beside it;
2. ``_engine``: the Resolver and what carries out its decisions;
3. ``_activation``: the only code that rebinds ``socket.*`` and other modules' attributes;
4. ``_tools`` and the public surface (``dnscache``, ``testing``, ``pytest_plugin``,
   ``__main__``, the ``_startup`` alias).
"""

from __future__ import annotations

import ast
import collections
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src"
PACKAGE = ROOT / "dnscache"
LAYERS = {"_core": 0, "_cache": 1, "_sources": 1, "_connect": 1, "_engine": 2, "_activation": 3}
TOP = 4


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    """The dnscache modules ``name`` imports (package-relative ones resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] == "dnscache":
                found.add(target)
                for alias in node.names:  # `from . import lookup` imports a module
                    if f"{target}.{alias.name}" in MODULES:
                        found.add(f"{target}.{alias.name}")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "dnscache")
    return {f for f in found if f != name}


def _layer(module: str) -> tuple[int, str]:
    parts = module.split(".")
    role = parts[1] if len(parts) > 1 else ""
    return LAYERS.get(role, TOP), role


MODULES = _modules()
GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_the_layers_are_the_folders() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name.startswith("_")}
    folders.discard("__pycache__")
    assert folders == {*LAYERS, "_tools"}


def test_no_module_imports_a_higher_layer_or_a_sibling_role() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        layer, role = _layer(module)
        for target in targets:
            if target not in MODULES and target.rpartition(".")[0] in MODULES:
                target = target.rpartition(".")[0]  # `from pkg.mod import name`
            other, other_role = _layer(target)
            if other > layer or (layer == other == 1 and role != other_role):
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_no_import_cycles() -> None:
    # Cycles through a package's own __init__ (a package importing its submodules to
    # re-export them, a submodule importing a sibling through the package) are how
    # packages work: only module-to-module cycles count.
    graph = {
        m: {t for t in targets if t in MODULES and not m.startswith(t + ".")}
        for m, targets in GRAPH.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert cycles == [], cycles


def test_every_module_says_what_it_is() -> None:
    missing = [
        name
        for name, path in MODULES.items()
        if path.stat().st_size and ast.get_docstring(ast.parse(path.read_text())) is None
    ]
    assert missing == []


def test_the_layering_check_sees_an_upward_import() -> None:
    # The check itself can fail: an engine module importing activation is caught.
    layer, _ = _layer("dnscache._engine.lookup")
    other, _ = _layer("dnscache._activation.patch")
    assert other > layer
    assert collections.Counter(_layer(m)[0] for m in MODULES)[0] >= 5
