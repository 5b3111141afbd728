#!/usr/bin/env python3
"""Build the course notebooks from their sources, execute them, and write the student copy.

    python tools/build_notebooks.py              # build + execute every notebook (about a minute)
    python tools/build_notebooks.py 05 08        # only the notebooks whose names start so
    python tools/build_notebooks.py --check      # exit 1 when a stored notebook is stale
    python tools/build_notebooks.py --nav        # refresh only the navigation cells (no run)

Sources are ``notebooks/src/NN-name.py`` in the "percent" format that VS Code, Spyder and
jupytext read: ``# %%`` starts a code cell, ``# %% [markdown]`` a Markdown cell (its lines
prefixed with ``# ``), and ``tags=["…"]`` after either adds cell tags.

* Navigation (prev · start · next) is generated: a cell after the opening cell and one at the end,
  tagged ``nav``, over every ``NN-*.ipynb`` in ``notebooks/`` (so ``08-live-lab`` is linked
  once it exists; ``--nav`` refreshes the links in the generated notebooks without running them).
* Two copies of the exercises: the **solved** one is written apart, to
  ``notebooks/instructor/09-workshop-exercises.ipynb`` (its links point back up with ``../``);
  the **student** copy ``notebooks/09-workshop-exercises-student.ipynb`` is generated from it: in
  code cells tagged ``solution`` the lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION``
  become ``name = None`` for each name they assign (so ``check`` says "not answered yet"
  instead of raising); Markdown cells tagged ``solution`` are dropped.  The course links to the
  student copy only.
* Outputs are stored executed and deterministic: cell ids are positional, no timings, no widget
  state or widget-view references (their text/HTML faces are kept), no kernel version.

``--check`` compares the cell sources and tags of every stored notebook with what the sources
give now (and that every code cell has been executed); ``tests/test_notebooks_build.py`` runs it.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOURCES = NOTEBOOKS / "src"
INSTRUCTOR = NOTEBOOKS / "instructor"
STUDENT_SUFFIX = "-student"
SOLVED = "09-workshop-exercises"
NAME = re.compile(r"^\d\d-[a-z0-9]+(?:-[a-z0-9]+)*$")
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
DROPPED_MIME = ("application/vnd.jupyter.widget-view+json",
                "application/vnd.jupyter.widget-state+json")

_HEADER = re.compile(r"^# %%(?P<md> \[markdown\])?(?:\s+tags=(?P<tags>\[.*\]))?\s*$")


# ----------------------------------------------------------------------------------------------
# sources


def parse_source(text: str) -> list[dict[str, Any]]:
    """Cells of a percent-format source: ``{"type", "source", "tags"}``."""
    cells: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m:
            current = {"type": "markdown" if m.group("md") else "code", "lines": [],
                       "tags": json.loads(m.group("tags")) if m.group("tags") else []}
            cells.append(current)
            continue
        if current is None:
            if line.strip():
                raise ValueError(f"text before the first '# %%': {line!r}")
            continue
        if current["type"] == "markdown":
            if line.startswith("# "):
                line = line[2:]
            elif line.strip() == "#":
                line = ""
            elif line.strip():
                raise ValueError(f"markdown line without '# ': {line!r}")
        current["lines"].append(line)
    out = []
    for c in cells:
        lines = c["lines"]
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        out.append({"type": c["type"], "source": "\n".join(lines), "tags": c["tags"]})
    return out


def title_of(cells: list[dict[str, Any]]) -> str:
    for c in cells:
        if c["type"] == "markdown":
            for line in c["source"].splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def path_of(stem: str) -> Path:
    """Where notebook *stem* is stored: the solved exercises apart, in ``instructor/``."""
    return (INSTRUCTOR if stem == SOLVED else NOTEBOOKS) / f"{stem}.ipynb"


def _up(source: str) -> str:
    """Links of a notebook stored in ``instructor/``: one folder up."""
    return re.sub(r"\]\((\d\d-[a-z0-9-]+\.ipynb)", r"](../\1", source)


def stored_title(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = [{"type": c["cell_type"], "source": "".join(c["source"]), "tags": []}
             for c in nb["cells"]]
    return title_of(cells)


# ----------------------------------------------------------------------------------------------
# navigation


def sequence(extra: dict[str, str]) -> list[tuple[str, str]]:
    """(stem, title) of every course notebook in order; *extra* are the ones being built."""
    found = {p.stem: None for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")
             if not p.stem.endswith(STUDENT_SUFFIX)}
    found.update({k: None for k in extra})
    out = []
    for stem in sorted(found):
        title = extra.get(stem)
        if title is None:
            title = stored_title(path_of(stem))
        out.append((stem, title or stem))
    return out


def _target(stem: str) -> str:
    """The file a link to *stem* opens: the student copy where there is one (learners follow
    the links; the solved notebook is never linked)."""
    return stem + STUDENT_SUFFIX if stem == SOLVED else stem


def nav_markdown(stem: str, order: list[tuple[str, str]]) -> str:
    base = stem[: -len(STUDENT_SUFFIX)] if stem.endswith(STUDENT_SUFFIX) else stem
    stems = [s for s, _ in order]
    titles = dict(order)
    i = stems.index(base)
    parts = []
    if i > 0:
        parts.append(f"← [{titles[stems[i - 1]]}]({_target(stems[i - 1])}.ipynb)")
    if base != stems[0] and i - 1 != 0:  # the previous one already is the start
        parts.append(f"[{titles[stems[0]]}]({stems[0]}.ipynb)")
    if i + 1 < len(stems):
        parts.append(f"[{titles[stems[i + 1]]}]({_target(stems[i + 1])}.ipynb) →")
    return " · ".join(parts)


def with_nav(cells: list[dict[str, Any]], stem: str,
             order: list[tuple[str, str]]) -> list[dict[str, Any]]:
    nav = {"type": "markdown", "source": nav_markdown(stem, order), "tags": ["nav"]}
    body = [c for c in cells if "nav" not in c["tags"]]
    return [body[0], dict(nav), *body[1:], dict(nav)]


# ----------------------------------------------------------------------------------------------
# the student copy

_BEGIN, _END = "# BEGIN SOLUTION", "# END SOLUTION"


def _assigned(block: str) -> list[str]:
    names: list[str] = []
    for node in ast.parse(block).body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else [])
        for t in targets:
            if isinstance(t, ast.Name) and t.id not in names:
                names.append(t.id)
    return names


def strip_solution(source: str) -> str:
    out, block, inside = [], [], False
    for line in source.splitlines():
        if line.strip() == _BEGIN:
            inside, block = True, []
            continue
        if line.strip() == _END:
            inside = False
            indent = ""
            names = _assigned("\n".join(b.strip() for b in block)) or ["answer"]
            out += [f"{indent}{name} = None  # ✎ your answer here" for name in names]
            continue
        (block if inside else out).append(line)
    if inside:
        raise ValueError("# BEGIN SOLUTION without # END SOLUTION")
    return "\n".join(out)


def student_cells(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for c in cells:
        if "solution" in c["tags"]:
            if c["type"] == "markdown":
                continue
            tags = ["exercise" if t == "solution" else t for t in c["tags"]]
            c = {**c, "source": strip_solution(c["source"]), "tags": tags}
        out.append(c)
    first = dict(out[0])
    first["source"] += (
        "\n\n> **Student copy.** Replace each `None` with your answer and run the cell: the check "
        "prints ✓ or ✗ and says what is wrong; a wrong attempt unlocks a hint. (Instructors: "
        f"the solved copy is `instructor/{SOLVED}.ipynb`, see `notebooks/README.md`.)")
    return [first, *out[1:]]


# ----------------------------------------------------------------------------------------------
# notebooks


def planned() -> dict[str, list[dict[str, Any]]]:
    """Every notebook the sources give: stem -> cells (navigation included)."""
    parsed = {p.stem: parse_source(p.read_text(encoding="utf-8"))
              for p in sorted(SOURCES.glob("[0-9][0-9]-*.py"))}
    for stem in parsed:
        if not NAME.match(stem):
            raise ValueError(f"notebook name {stem!r} is not NN-kebab-case")
    order = sequence({stem: title_of(cells) for stem, cells in parsed.items()})
    out = {stem: with_nav(cells, stem, order) for stem, cells in parsed.items()}
    if SOLVED in out:
        stem = SOLVED + STUDENT_SUFFIX
        out[stem] = with_nav(student_cells([c for c in out[SOLVED] if "nav" not in c["tags"]]),
                             stem, order)
        out[SOLVED] = [{**c, "source": _up(c["source"])} if c["type"] == "markdown" else c
                       for c in out[SOLVED]]
    return out


def to_notebook(cells: list[dict[str, Any]]) -> Any:
    import nbformat

    nb = nbformat.v4.new_notebook()
    for i, c in enumerate(cells):
        meta = {"tags": list(c["tags"])} if c["tags"] else {}
        make = nbformat.v4.new_markdown_cell if c["type"] == "markdown" \
            else nbformat.v4.new_code_cell
        cell = make(c["source"], metadata=meta)
        cell["id"] = f"cell-{i:02d}"
        nb.cells.append(cell)
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    return nb


def clean(nb: Any) -> Any:
    """Drop what cannot repeat: timings, widget state and views, kernel versions."""
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.outputs:
            data = out.get("data")
            if data is not None:
                for mime in DROPPED_MIME:
                    data.pop(mime, None)
                if not data:
                    continue
            kept.append(out)
        cell.outputs = kept
    return nb


def execute(stem: str, cells: list[dict[str, Any]]) -> str:
    import nbformat
    from nbclient import NotebookClient

    nb = to_notebook(cells)
    path = path_of(stem)
    path.parent.mkdir(exist_ok=True)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=False,
                            store_widget_state=False,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                raise RuntimeError(f"{stem}: a cell raised {out.get('ename')}: "
                                   f"{out.get('evalue')}")
    nbformat.write(clean(nb), str(path))
    return stem


def _cells_of(path: Path) -> list[dict[str, Any]]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [{"type": c["cell_type"], "source": "".join(c["source"]),
             "tags": list(c.get("metadata", {}).get("tags", []))} for c in nb["cells"]]


def stale(plan: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Why each stored notebook differs from its sources (empty: all up to date)."""
    problems = []
    for stem, cells in plan.items():
        path = path_of(stem)
        if not path.exists():
            problems.append(f"{path.name} is missing")
            continue
        stored = _cells_of(path)
        if stored != cells:
            n = next((i for i, (a, b) in enumerate(zip(stored, cells, strict=False)) if a != b),
                     min(len(stored), len(cells)))
            problems.append(f"{path.name} differs from its sources from cell {n} on")
        nb = json.loads(path.read_text(encoding="utf-8"))
        if any(c["cell_type"] == "code" and c.get("execution_count") is None
               for c in nb["cells"]):
            problems.append(f"{path.name} has cells that were never executed")
    return problems


def refresh_nav(plan: dict[str, list[dict[str, Any]]]) -> None:
    """Rewrite only the navigation cells of the stored notebooks (outputs untouched)."""
    for stem, cells in plan.items():
        path = path_of(stem)
        if not path.exists():
            continue
        import nbformat

        nb = nbformat.read(str(path), as_version=4)
        navs = [c["source"] for c in cells if "nav" in c["tags"]]
        k = 0
        for cell in nb.cells:
            if "nav" in cell.get("metadata", {}).get("tags", []) and k < len(navs):
                cell["source"] = navs[k]
                k += 1
        nbformat.write(nb, str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", help="build only notebooks whose names start so")
    parser.add_argument("--check", action="store_true", help="report stale notebooks, exit 1")
    parser.add_argument("--nav", action="store_true", help="refresh navigation cells only")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks executed at once")
    args = parser.parse_args(argv)
    plan = planned()
    if args.check:
        problems = stale(plan)
        for p in problems:
            print(p)
        if problems:
            print("run: python tools/build_notebooks.py")
        return 1 if problems else 0
    if args.nav:
        refresh_nav(plan)
        return 0
    todo = {s: c for s, c in plan.items()
            if not args.only or any(s.startswith(o) for o in args.only)}
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for stem in pool.map(execute, todo, [copy.deepcopy(c) for c in todo.values()]):
            print(f"built {path_of(stem).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
