"""The notebooks as files: up to date with their sources (the student copy too), named
NN-kebab-case, stored executed without errors, each opening with goals, prerequisites and time,
with working navigation links.  (Running them is nbval's job: ``--nbval`` in pytest's options.)"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
INSTRUCTOR = NOTEBOOKS / "instructor"
ALL = sorted([*NOTEBOOKS.glob("*.ipynb"), *INSTRUCTOR.glob("*.ipynb")])
OURS = sorted(p for p in ALL if (NOTEBOOKS / "src" / f"{p.stem}.py").exists()
              or p.stem.endswith("-student"))


def _build() -> Any:
    spec = importlib.util.spec_from_file_location("build_notebooks",
                                                  ROOT / "tools" / "build_notebooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _nb(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _text(cell: dict[str, Any]) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def test_the_course_is_there() -> None:
    stems = {p.stem for p in ALL}
    for stem in ("00-start-here", "01-proxy-protocol-bytes", "02-tcp-single-tier",
                 "03-tcp-multi-tier", "04-websocket-single-tier", "05-websocket-multi-tier",
                 "06-haproxy", "07-tls-and-certificates", "08-live-lab",
                 "09-workshop-exercises", "09-workshop-exercises-student",
                 "10-your-own-config"):
        assert stem in stems


def test_stored_notebooks_match_their_sources_and_the_student_copy_is_fresh() -> None:
    build = _build()
    problems = build.stale(build.planned())
    assert problems == [], "\n".join([*problems, "run: python tools/build_notebooks.py"])


@pytest.mark.parametrize("path", ALL, ids=[p.stem for p in ALL])
def test_names_are_numbered_kebab_case(path: Path) -> None:
    assert re.fullmatch(r"\d\d-[a-z0-9]+(-[a-z0-9]+)*\.ipynb", path.name), path.name


@pytest.mark.parametrize("path", OURS, ids=[p.stem for p in OURS])
def test_stored_outputs_and_no_errors(path: Path) -> None:
    nb = _nb(path)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c.get("execution_count") is not None for c in code)
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert outputs, f"{path.name} has no stored outputs"
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert not [o for o in outputs if o.get("name") == "stderr"], "stderr in stored outputs"


@pytest.mark.parametrize("path", OURS, ids=[p.stem for p in OURS])
def test_opens_with_goals_prerequisites_and_time(path: Path) -> None:
    first = _text(_nb(path)["cells"][0])
    assert first.startswith("# ")
    for word in ("**Goals**", "**Prerequisites**", "**Time**"):
        assert word in first, f"{path.name}: the first cell lacks {word}"
    assert re.search(r"\*\*Time\*\* — \d+ minutes", first)


@pytest.mark.parametrize("path", OURS, ids=[p.stem for p in OURS])
def test_navigation_and_links_work(path: Path) -> None:
    cells = _nb(path)["cells"]
    navs = [c for c in cells if "nav" in c.get("metadata", {}).get("tags", [])]
    assert len(navs) == 2 and cells[1] is navs[0] and cells[-1] is navs[1]
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        for target in re.findall(r"\]\(([^)#]+\.ipynb)\)", _text(cell)):
            assert (path.parent / target).exists(), f"{path.name} links to missing {target}"


def test_student_copy_has_no_solutions_and_no_solved_checks() -> None:
    student = _nb(NOTEBOOKS / "09-workshop-exercises-student.ipynb")
    solved = _nb(INSTRUCTOR / "09-workshop-exercises.ipynb")
    assert not (NOTEBOOKS / "09-workshop-exercises.ipynb").exists(), "solutions beside students"
    text = "\n".join(_text(c) for c in student["cells"])
    assert "BEGIN SOLUTION" not in text and "$remote_addr" not in text

    def checks_of(nb: dict[str, Any]) -> list[str]:
        return ["".join(o["data"]["text/plain"]) for c in nb["cells"]
                if "check(" in _text(c) for o in c.get("outputs", [])
                if "Exercise " in "".join(o.get("data", {}).get("text/plain", ""))]

    checks, solved_checks = checks_of(student), checks_of(solved)
    assert len(checks) == len(solved_checks) >= 12
    assert all("not answered yet" in o and "Hint" not in o for o in checks)
    assert all("Solved:" in o for o in solved_checks)
    # the student copy links to no solution, and imports nothing that answers an exercise
    assert "](instructor/" not in text and "09-workshop-exercises.ipynb)" not in text
    imports = [line for c in student["cells"] for line in _text(c).splitlines()
               if line.startswith(("import ", "from "))]
    assert imports == ["from realip.teaching import check, exercise"]


def test_strip_solution_keeps_the_names() -> None:
    build = _build()
    source = ("# BEGIN SOLUTION\nx = {'a': 1,\n     'b': 2}\ny: int = 3\n# END SOLUTION\n"
              "check('e', x)")
    assert build.strip_solution(source) == ("x = None  # ✎ your answer here\n"
                                            "y = None  # ✎ your answer here\ncheck('e', x)")
    with pytest.raises(ValueError):
        build.strip_solution("# BEGIN SOLUTION\nx = 1")
