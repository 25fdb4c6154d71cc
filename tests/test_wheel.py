"""aekit as a package away from its checkout: ``python -m build`` makes an sdist and a wheel from a copy
of the sources, the wheel goes into a fresh virtual environment outside the repository, and the
commands a new user starts with run there from the installed files alone (recipes, mnist-mini and
the page's static files are package data).

Only aekit is installed from the wheel. Its dependencies (the pinned torch among them) come from the
environment running the tests, through a ``.pth`` file that appends that environment's
site-packages after the new one's: installing torch again would take minutes. A path appended that
way is not scanned for ``.pth`` files, so the checkout's editable install (a ``.pth`` naming
``src/``) stays off, and every command checks that ``aekit`` was imported from the new environment.

``build`` and ``pip`` come with the dev extra (``pip install -e '.[dev]'``, which ``make`` runs);
without them these tests fail and say so rather than skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

import aekit
from aekit.config import list_recipes, recipes_dir

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "aekit"
VERSION = aekit.__version__


def package_files() -> set[str]:
    """What the wheel must hold besides the modules: py.typed, the recipes, mnist-mini, the page."""
    data = [PKG / "py.typed", *recipes_dir().glob("*.toml"), *(PKG / "data" / "assets").glob("*.npz"),
            *(PKG / "serve" / "static").iterdir()]
    return {p.relative_to(PKG.parent).as_posix() for p in data}


def modules() -> set[str]:
    return {p.relative_to(PKG.parent).as_posix() for p in PKG.rglob("*.py") if "__pycache__" not in p.parts}


def run(argv: list[str], cwd: Path, timeout: float = 300, env: dict[str, str] | None = None) -> str:
    """Run a command; its stdout, or a failure that shows everything it printed."""
    p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(map(str, argv))} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p.stdout


def require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"`{module}` is not installed in {sys.prefix}: install the dev extra (pip install -e '.[dev]', "
                    "as `make test` does) to build and install the wheel")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "PYTHONNOUSERSITE": "1", **extra}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist and the wheel, built (without build isolation: offline, with this environment's
    setuptools) from a copy of the sources, so nothing is written into the checkout (setuptools
    leaves build/ and *.egg-info behind, and a stale build/lib would leak into the next wheel)."""
    require("build")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "aekit-src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    start = time.perf_counter()
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "dist"), str(src)], tmp,
        env=clean_env())
    print(f"python -m build (sdist, then the wheel from it): {time.perf_counter() - start:.1f} s")
    wheels, sdists = sorted((tmp / "dist").glob("*.whl")), sorted((tmp / "dist").glob("*.tar.gz"))
    assert [w.name for w in wheels] == [f"aekit-{VERSION}-py3-none-any.whl"], wheels
    assert [s.name for s in sdists] == [f"aekit-{VERSION}.tar.gz"], sdists
    return {"wheel": wheels[0], "sdist": sdists[0], "tmp": tmp}


@pytest.fixture(scope="module")
def venv(dist: dict[str, Path]) -> Path:
    """A fresh virtual environment outside the checkout with the wheel installed by pip (no index)."""
    require("pip")
    home = dist["tmp"] / "venv"
    assert not home.resolve().is_relative_to(ROOT)
    run([sys.executable, "-m", "venv", "--without-pip", str(home)], dist["tmp"])
    python = home / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
         "--disable-pip-version-check", "-q", str(dist["wheel"])], dist["tmp"], env=clean_env())
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    dist["tmp"], env=clean_env()).strip())
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))  # ordered, no duplicates
    (site / "_aekit_test_dependencies.pth").write_text("".join(f"{p}\n" for p in ours))
    return home


def test_the_version_lives_in_one_place() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "aekit.__version__"}
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d\d-\d\d$", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert releases and releases[0] == VERSION, releases  # the newest release in CHANGELOG.md is this version


def test_the_wheel_holds_the_package_and_its_data(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as z:
        names = set(z.namelist())
        metadata = z.read(f"aekit-{VERSION}.dist-info/METADATA").decode()
        entry_points = z.read(f"aekit-{VERSION}.dist-info/entry_points.txt").decode()
    assert {"aekit/py.typed", "aekit/recipes/simplest.toml", "aekit/data/assets/mnist-mini.npz",
            "aekit/serve/static/index.html"} <= names
    assert package_files() - names == set() and modules() - names == set()
    assert all(n.startswith(("aekit/", f"aekit-{VERSION}.dist-info/")) for n in names), sorted(names)
    assert f"\nVersion: {VERSION}\n" in metadata and "Requires-Dist: torch>=2.3" in metadata
    assert "License-Expression: MIT" in metadata and f"aekit-{VERSION}.dist-info/licenses/LICENSE" in names
    assert "aekit = aekit.cli:main" in entry_points


def test_the_sdist_holds_the_package_and_its_data(dist: dict[str, Path]) -> None:
    with tarfile.open(dist["sdist"]) as t:
        names = {n.removeprefix(f"aekit-{VERSION}/") for n in t.getnames()}
    assert {"pyproject.toml", "README.md", "LICENSE"} <= names
    assert {f"src/{n}" for n in package_files() | modules()} - names == set()


def test_commands_run_from_the_installed_wheel(venv: Path, tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"  # no configs/ folder, no src/: only what the wheel installed
    work.mkdir()
    env = clean_env(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    aekit_cmd = str(venv / "bin" / "aekit")

    def cli(*args: str) -> str:
        return run([aekit_cmd, *args], work, env=env)

    start = time.perf_counter()
    assert cli("--version").strip() == f"aekit {VERSION}"
    listed = [line.split()[0] for line in cli("recipes").splitlines()]
    assert listed == list(list_recipes()) and "simplest" in listed
    cli("demo", "--epochs", "1", "--quiet", "--out", "demo")
    assert (work / "demo" / "reconstructions.png").is_file()
    cli("train", "--config", "simplest", "--epochs", "1", "--data", "mnist-mini", "--max-steps", "5", "--quiet",
        "--out", "R")
    saved = json.loads((work / "R" / "config.json").read_text())
    assert saved["model"]["code"] == 32 and saved["run"]["train"]["lr"] == 0.002  # simplest.toml's settings
    assert "--configs" in cli("serve", "--help")
    code = ("import json, aekit\nfrom aekit.config import recipes_dir\nm = aekit.load('R')\n"
            "print(json.dumps({'file': aekit.__file__, 'recipes': str(recipes_dir()), 'version': aekit.__version__,"
            " 'model': type(m).__name__}))")
    got = json.loads(run([str(venv / "bin" / "python"), "-c", code], work, env=env))
    for key in ("file", "recipes"):  # imported from the wheel, not from the checkout's src/
        assert Path(got[key]).resolve().is_relative_to(venv.resolve()), got
    assert got["version"] == VERSION and got["model"] == "MLPAE", got
    print(f"commands in the new environment: {time.perf_counter() - start:.1f} s")
