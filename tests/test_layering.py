"""The project's layering, read off the source with ``ast``.

The rule, in one sentence: scratch imports only numpy, the standard library and
scratch; torch_impl only torch, numpy, the standard library and torch_impl; the
harness core (every harness module not named here, harness.bench included) reaches
scratch and torch_impl only through harness.model.registry; harness.checks imports only the
core; harness.plots the core and harness.checks; harness.report, harness.sweep and
harness.calibrate everything below them; harness.cli, at the very top, anything; nothing imports a layer
above its own, and no chain of imports among the project's modules comes back to
where it started.

Every ``import`` statement counts, those inside functions too. Imports of the form
``from package import name`` count as an import of ``package.name`` when that is a
module of the project, else of ``package``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("scratch", "torch_impl", "harness")

#: which layer a module is in: the longest matching prefix wins
LAYER_OF = {
    "scratch": "scratch",
    "torch_impl": "torch_impl",
    "harness": "core",
    "harness.model.registry": "registry",
    "harness.checks": "checks",
    "harness.plots": "plots",
    "harness.report": "top",
    "harness.sweep": "top",
    "harness.calibrate": "top",
    "harness.testing": "top",
    "harness.cli": "cli",
    "harness.__main__": "cli",
}

#: the rule as data: each layer, the project layers it may import and the third-party
#: packages it may import (None: any); the standard library is always allowed
RULES: dict[str, tuple[set[str], set[str] | None]] = {
    "scratch": ({"scratch"}, {"numpy"}),
    "torch_impl": ({"torch_impl"}, {"torch", "numpy"}),
    "core": ({"core", "registry"}, None),
    "registry": ({"core", "registry", "scratch", "torch_impl"}, None),
    "checks": ({"core", "registry", "checks"}, None),
    "plots": ({"core", "registry", "checks", "plots"}, None),
    "top": ({"core", "registry", "checks", "plots", "top"}, None),
    "cli": ({"core", "registry", "checks", "plots", "top", "cli"}, None),
}

#: known exceptions, (importer, imported) and cycles as sorted module tuples: none
KNOWN_PENDING: set[tuple[str, str]] = set()
KNOWN_PENDING_CYCLES: set[tuple[str, ...]] = set()


def _modules() -> dict[str, Path]:
    mods = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _imports(name: str, path: Path) -> set[tuple[str, int]]:
    """(imported module, line) for every import statement in the file, nested ones too."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add((sub if sub in MODULES else module, node.lineno))
    return found


def _layer(module: str) -> str | None:
    matches = [p for p in LAYER_OF if module == p or module.startswith(p + ".")]
    return LAYER_OF[max(matches, key=len)] if matches else None


def _graph() -> dict[str, dict[str, int]]:
    """Project module -> {imported project module: first line}."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in MODULES.items():
        edges: dict[str, int] = {}
        for target, line in sorted(_imports(name, path)):
            if target.split(".")[0] in PACKAGES and target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _path_through(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    """One cycle inside ``component``, written ``a -> b -> a`` with line numbers."""
    members = set(component)
    start = component[0]
    path, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph[path[-1]] if w in members)
        back = [w for w in nxt if w in seen]
        if back:
            path.append(back[0])
            break
        path.append(nxt[0])
        seen.add(nxt[0])
    i = path.index(path[-1])
    cycle = path[i:]
    return " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])) \
        + f" -> {cycle[-1]}"


def test_every_module_is_in_a_layer():
    unplaced = [m for m in MODULES if _layer(m) is None]
    assert not unplaced, f"modules outside every layer: {unplaced}"


def test_no_import_cycles():
    graph = _graph()
    cycles = [c for c in _cycles(graph) if tuple(c) not in KNOWN_PENDING_CYCLES]
    assert not cycles, "import cycles among the project's modules:\n" + "\n".join(
        f"{', '.join(c)}: {_path_through(c, graph)}" for c in cycles)


def test_no_layering_violations():
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    problems = []
    for name, path in MODULES.items():
        layer = _layer(name)
        allowed_layers, allowed_external = RULES[layer]
        for target, line in sorted(_imports(name, path)):
            top = target.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line}: {name} ({layer}) imports {target}"
            if top in PACKAGES:
                target_layer = _layer(target)
                if target_layer not in allowed_layers and (name, target) not in KNOWN_PENDING:
                    problems.append(f"{where} ({target_layer}); {layer} may import only "
                                    f"{', '.join(sorted(allowed_layers))}")
            elif allowed_external is not None and top not in stdlib \
                    and top not in allowed_external:
                problems.append(f"{where}; {layer} may import only the standard library and "
                                f"{', '.join(sorted(allowed_external))}")
    assert not problems, "layering violations (see tests/test_layering.py):\n" + \
        "\n".join(problems)


def test_known_pending_entries_are_still_real():
    """An entry in KNOWN_PENDING that no longer happens should be deleted."""
    graph = _graph()
    stale = [e for e in KNOWN_PENDING if e[1] not in graph.get(e[0], {})]
    cycles = {tuple(c) for c in _cycles(graph)}
    stale += [c for c in KNOWN_PENDING_CYCLES if c not in cycles]
    assert not stale, f"delete these from KNOWN_PENDING / KNOWN_PENDING_CYCLES: {stale}"


def test_the_checker_sees_a_cycle_and_a_violation():
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _path_through(["a", "b", "c"], graph) == \
        "a (line 1) -> b (line 2) -> c (line 3) -> a"
    assert _layer("harness.plots.bench") == "plots"
    assert _layer("harness.model.registry") == "registry"
    assert _layer("harness.cli.common") == "cli"
    assert "scratch" not in RULES["core"][0]


# --------------------------------------------------------------- the layout of harness/
#: the most entries (modules and packages) at the top of harness/, besides __init__ and __main__
#: 17 since harness.adapt (wrapping published code) joined the sixteen
MAX_TOP_LEVEL = 17
#: the packages of harness/ and their jobs are listed in docs/layout.md
LAYOUT_PAGE = ROOT / "docs" / "layout.md"


def _top_level_entries() -> list[str]:
    here = ROOT / "harness"
    return sorted(p.name for p in here.iterdir()
                  if p.name not in ("__init__.py", "__main__.py", "__pycache__", "templates")
                  and (p.suffix == ".py" or (p / "__init__.py").exists()))


def test_harness_top_level_is_a_few_packages_by_job():
    entries = _top_level_entries()
    assert len(entries) <= MAX_TOP_LEVEL, (
        f"harness/ has {len(entries)} top-level entries (at most {MAX_TOP_LEVEL}): {entries}; "
        f"put a new module in the package of its job")
    page = LAYOUT_PAGE.read_text(encoding="utf-8")
    missing = [e for e in entries if f"harness/{e.removesuffix('.py')}" not in page]
    assert not missing, f"docs/layout.md does not list {missing}"


def test_every_module_says_its_job_in_a_docstring():
    """Every module and package of the project opens with a docstring (its first line, its job)."""
    silent = []
    for path in MODULES.values():
        if path.name == "__main__.py":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        if not doc or not doc.strip().splitlines()[0].strip():
            silent.append(str(path.relative_to(ROOT)))
    assert not silent, f"modules without a docstring saying their job: {silent}"


def _sys_modules_lookups(path: Path) -> list[tuple[int, str]]:
    """(line, name) of every ``sys.modules.get("scratch...")`` / ``sys.modules["torch_impl..."]``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        key = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "get" and _is_sys_modules(node.func.value) and node.args:
            key = node.args[0]
        elif isinstance(node, ast.Subscript) and _is_sys_modules(node.value):
            key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            if key.value.split(".")[0] in ("scratch", "torch_impl"):
                found.append((node.lineno, key.value))
    return found


def _is_sys_modules(node) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "modules" \
        and isinstance(node.value, ast.Name) and node.value.id == "sys"


def test_only_the_registry_reaches_the_backends_through_sys_modules():
    """A lookup in sys.modules is an import in disguise: only the registry may make one."""
    problems = [f"{path.relative_to(ROOT)}:{line}: sys.modules lookup of {key!r}"
                for name, path in MODULES.items()
                if name.startswith("harness") and _layer(name) != "registry"
                for line, key in _sys_modules_lookups(path)]
    assert not problems, "\n".join(problems)
    registry = MODULES["harness.model.registry"]
    assert _sys_modules_lookups(registry), "the checker no longer sees the registry's lookups"


# ------------------------------------------------------- the backends agree with the core
def test_activation_names_and_leaky_slope_agree_with_every_backend():
    pytest.importorskip("torch")
    from harness.model.specs import ACTIVATION_NAMES, LEAKY_RELU_SLOPE
    from scratch.activations import ACTIVATIONS as SCRATCH_ACTIVATIONS
    from scratch.activations import LEAKY_SLOPE
    from torch_impl.model import ACTIVATIONS as TORCH_ACTIVATIONS
    from torch_impl.model import LEAKY_RELU_SLOPE as TORCH_LEAKY_SLOPE

    assert tuple(SCRATCH_ACTIVATIONS) == ACTIVATION_NAMES
    assert tuple(TORCH_ACTIVATIONS) == ACTIVATION_NAMES
    assert LEAKY_SLOPE == TORCH_LEAKY_SLOPE == LEAKY_RELU_SLOPE


def test_registry_hands_out_the_torch_backends_activations():
    pytest.importorskip("torch")
    from harness.errors import ConfigError
    from harness.model.registry import torch_activation
    from torch_impl.model import ACTIVATIONS

    for name, fn in ACTIVATIONS.items():
        assert torch_activation(name) is fn
    with pytest.raises(ConfigError, match="`activation` must be one of relu, tanh, sigmoid, "
                                          "leaky_relu, gelu, got 'swish'"):
        torch_activation("swish")
