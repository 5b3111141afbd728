"""The repository's promises about itself: one dependency list, a sans-IO core."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tomllib_compat

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_pyproject_dependencies() -> None:
    project = tomllib_compat.load(ROOT / "pyproject.toml")["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in ("lab", "test"):
        wanted |= {_name(r) for r in project["optional-dependencies"][extra]}
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    indent = len(lines[start + 1]) - len(lines[start + 1].lstrip())
    listed = set()
    for line in lines[start + 1 :]:
        if not line.strip() or len(line) - len(line.lstrip()) < indent:
            break
        item = line.strip()[2:].strip().strip("\"'")
        if not item.startswith("-e"):
            listed.add(_name(item))
    assert listed == wanted


def test_apt_txt_names_the_real_programs() -> None:
    packages = (ROOT / "apt.txt").read_text().split()
    assert {"nginx", "libnginx-mod-stream", "haproxy"} <= set(packages)


def test_core_imports_no_io_or_ui_modules() -> None:
    # socket itself is loaded (realip._socket takes its pure inet_pton/inet_ntop, which the
    # brief allows; tests/test_layout.py holds every other core module away from it)
    code = (
        "import sys, realip, realip.proxy_protocol, realip.receivers;"
        "bad = {'asyncio', 'ipywidgets', 'matplotlib', 'ssl'} & set(sys.modules);"
        "print(sorted(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_readme_examples_run() -> None:
    import doctest
    import os

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        result = doctest.testfile(str(ROOT / "README.md"), module_relative=False,
                                  optionflags=doctest.ELLIPSIS)
    finally:
        os.chdir(cwd)
    assert result.failed == 0 and result.attempted >= 8
