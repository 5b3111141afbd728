"""The shape of the package: no import circles, program rooms side by side, the sans-IO core.

Every ``import`` statement counts, at module level or inside a function (a lazy import still
ties two modules together), except those under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "realip"
ROOMS = ("nginx", "haproxy", "emqx", "mosquitto", "aedes")
IO_MODULES = {"socket", "asyncio", "ipywidgets", "matplotlib", "selectors", "ssl",
              "subprocess", "websockets", "paho"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(absolute module, imported names) for every import in *path*."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    out: list[tuple[str, tuple[str, ...]]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = tuple(a.name for a in node.names)
            # "from . import x" imports the submodule x
            subs = [f"{mod}.{n}" for n in names if (ROOT.parent / (f"{mod}.{n}".replace(".", "/")
                                                                  + ".py")).exists()
                    or (ROOT.parent / f"{mod}.{n}".replace(".", "/")).is_dir()]
            out += [(s, ()) for s in subs] if subs else [(mod, names)]
    return out


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}
GRAPH = {m: [(t, n) for t, n in _imports(p) if t.startswith("realip")] for m, p in MODULES.items()}


def _resolve(target: str) -> str | None:
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def test_no_import_circles() -> None:
    edges: dict[str, set[str]] = {}
    for mod, targets in GRAPH.items():
        for t, _ in targets:
            r = _resolve(t)
            if r is not None and r != mod:
                edges.setdefault(mod, set()).add(r)
    # a package's own __init__ importing its submodules (the registry) is not a circle with them
    # as long as the submodules do not import it back
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges.get(m, ())):
            if state.get(n) == 1:
                cycles.append([*stack[stack.index(n):], n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(m)
    # the codec's own circle (_model <-> _tlv <-> _validate) is removed on branch `codec`, not
    # yet landed; every other circle fails this test
    known = {"realip.proxy_protocol._model", "realip.proxy_protocol._tlv",
             "realip.proxy_protocol._validate"}
    assert [c for c in cycles if not set(c) <= known] == []


def _room(mod: str) -> str | None:
    parts = mod.split(".")
    if len(parts) >= 3 and parts[1] == "programs" and parts[2] in ROOMS:
        return parts[2]
    return None


@pytest.mark.parametrize("mod", sorted(m for m in MODULES if _room(m)))
def test_rooms_stand_side_by_side(mod: str) -> None:
    """A room imports the shared core and the programs' base, never another room."""
    own = _room(mod)
    for target, _ in GRAPH[mod]:
        other = _room(target)
        assert other in (None, own), f"{mod} imports {target}"
        assert target != "realip.programs", f"{mod} imports the registry"


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_nobody_outside_a_room_uses_its_private_names(mod: str) -> None:
    for target, names in GRAPH[mod]:
        room = _room(target)
        if room is None or _room(mod) == room:
            continue
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        assert not private, f"{mod} imports {private} from {target}"


CORE = [m for m in MODULES
        if not m.startswith(("realip.lab", "realip.viz", "realip.aio", "realip.__main__"))]


@pytest.mark.parametrize("mod", sorted(CORE))
def test_the_core_is_sans_io(mod: str) -> None:
    tree = ast.parse(MODULES[mod].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
        for n in names:
            assert n.split(".")[0] not in IO_MODULES, f"{mod} imports {n}"


def test_generic_modules_name_no_program() -> None:
    """topology, render's generic half, lab's relay/broker and viz reach programs through the
    registry (realip.programs), not through a room."""
    generic = ("realip.topology", "realip.lab.relay", "realip.lab.broker", "realip.viz.flow",
               "realip.receivers", "realip.audit")
    for mod in generic:
        for target, _ in GRAPH[mod]:
            assert _room(target) is None, f"{mod} imports {target}"
