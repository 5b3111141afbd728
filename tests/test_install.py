"""``pip install .`` (not editable) into a fresh virtual environment, then the README's library
examples and the command line from another directory: the scenarios ship inside the package.

Network-free: the wheel is built without build isolation (setuptools from this environment) and
installed with ``--no-deps``; the new environment sees this one's site-packages (through a
``.pth`` line, which does not run this environment's editable-install hook) for pydantic, PyYAML
and the other dependencies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _copy_source(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    shutil.copytree(ROOT / "realip", dest / "realip", symlinks=True, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, dest / name)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("setuptools", minversion="77")
    base = tmp_path_factory.mktemp("install")
    src, env = base / "src", base / "venv"
    _copy_source(src)
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['purelib'])"], capture_output=True, text=True, check=True)
    (Path(purelib.stdout.strip()) / "_realip_test_deps.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    out = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                          "--quiet", "--no-deps", "--no-build-isolation", "--no-index", str(src)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return python


def _run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REALIP_DATA", "PYTHONPATH")}
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run([str(python), *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_the_installed_package_is_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    out = _run(installed, "-c", "import realip, realip.topology as t; print(realip.__file__); "
               "print(t.data_dir()); print(len(t.scenarios()))", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    module, data, count = out.stdout.split()
    assert not module.startswith(str(ROOT)) and str(installed.parent.parent) in module
    assert str(installed.parent.parent) in data
    assert int(count) == len(list((ROOT / "realip" / "data" / "topologies").glob("*.yaml")))


def test_py_typed_license_configs_ship(installed: Path, tmp_path: Path) -> None:
    code = ("import importlib.metadata as m, importlib.resources as r; "
            "print(r.files('realip').joinpath('py.typed').is_file()); "
            "print(r.files('realip').joinpath('data/nginx/tcp-single-lb1.conf').is_file()); "
            "print(any(str(f).endswith('LICENSE') for f in m.files('realip')))")
    out = _run(installed, "-c", code, cwd=tmp_path)
    assert out.stdout.split() == ["True", "True", "True"], out.stderr


def test_the_readme_examples_run_from_another_directory(installed: Path, tmp_path: Path
                                                        ) -> None:
    code = ("import doctest, sys; r = doctest.testfile(sys.argv[1], module_relative=False, "
            "optionflags=doctest.ELLIPSIS); print(r.attempted, r.failed)")
    out = _run(installed, "-c", code, str(ROOT / "README.md"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    attempted, failed = map(int, out.stdout.split()[-2:])
    assert failed == 0 and attempted >= 8, out.stdout


def test_the_command_line_takes_names_outside_a_checkout(installed: Path, tmp_path: Path
                                                        ) -> None:
    out = _run(installed, "-m", "realip", "simulate", "ws-multi-recursive", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "✓ ws-multi-recursive" in out.stdout
