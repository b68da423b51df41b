"""The package's shape: imports flow one way through the layers, with no cycles.

Every import counts, lazy ones inside functions included: a lazy import is still an
arrow from one module to another.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "adaptive_lab"

#: Layers from the bottom up; a module may import only from its own layer or below.
LAYERS: dict[str, int] = {
    "adaptive_lab._host": 0,
    "adaptive_lab.executors.stats": 1,
    "adaptive_lab.executors.thread": 1,
    "adaptive_lab.executors.aio": 1,
    "adaptive_lab.policies": 1,
    "adaptive_lab.trace": 1,
    "adaptive_lab.control": 2,
    "adaptive_lab.executors": 3,
    "adaptive_lab.aio": 3,
    "adaptive_lab.sim": 3,
    "adaptive_lab.scanner": 3,
    "adaptive_lab.bench": 4,
    "adaptive_lab.ui": 4,
    "adaptive_lab.integrations": 4,
    "adaptive_lab.cli": 5,
    "adaptive_lab.__main__": 6,
    "adaptive_lab": 7,
}

#: Modules allowed past about 400 lines, each with the reason.
LONG_MODULES: dict[str, str] = {}
MAX_LINES = 420


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PKG.rglob("*.py"):
        parts = ("adaptive_lab", *p.relative_to(PKG).with_suffix("").parts)
        name = ".".join(parts).removesuffix(".__init__")
        mods[name] = p
    return mods


MODULES = _modules()


def _layer(mod: str) -> int:
    best = max((k for k in LAYERS if mod == k or mod.startswith(k + ".")), key=len)
    return LAYERS[best]


def _imports(mod: str, path: Path) -> set[str]:
    """Modules of the package that ``mod`` imports, lazily or not."""
    is_pkg = path.name == "__init__.py"
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            cands = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            cands = [a.name for a in node.names]
        else:
            continue
        for c in cands:
            if c in MODULES and c != mod:
                found.add(c)
    # a package's own __init__ re-exporting its children is not an arrow upward
    return {t for t in found if not (is_pkg and t.startswith(mod + "."))}


EDGES = {m: _imports(m, p) for m, p in MODULES.items()}


def test_every_module_has_a_layer():
    for m in MODULES:
        assert any(m == k or m.startswith(k + ".") for k in LAYERS), m


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_imports_flow_down(mod):
    up = {t: _layer(t) for t in EDGES[mod] if _layer(t) > _layer(mod)}
    assert not up, f"{mod} (layer {_layer(mod)}) imports from above: {up}"


def test_no_import_cycles():
    # a package importing its child and the child importing the package are one unit
    def norm(m: str) -> str:
        return m

    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        state[v] = 1
        stack.append(v)
        for w in sorted(EDGES[v]):
            if state.get(w) == 1:
                cycles.append([*stack[stack.index(w):], w])
            elif w not in state:
                visit(w)
        stack.pop()
        state[v] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(norm(m))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_mechanism_knows_nothing_of_control():
    """The resizable pool offers resize() and stats(); policies, control and traces
    are layered on top of it, never imported by it."""
    for t in EDGES["adaptive_lab.executors.thread"] | EDGES["adaptive_lab.executors.aio"]:
        assert not t.startswith(("adaptive_lab.policies", "adaptive_lab.control",
                                 "adaptive_lab.trace")), t


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_modules_stay_small(mod):
    n = len(MODULES[mod].read_text().splitlines())
    if mod in LONG_MODULES:
        return
    assert n <= MAX_LINES, f"{mod} has {n} lines; split it or give the reason in LONG_MODULES"


def test_the_layer_checks_can_fail(tmp_path):
    """The import scanner sees lazy imports inside functions."""
    p = tmp_path / "m.py"
    p.write_text("def f():\n    from adaptive_lab.cli.main import main\n")
    assert "adaptive_lab.cli.main" in _imports("adaptive_lab._host", p)
