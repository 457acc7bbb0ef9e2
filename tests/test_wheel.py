"""`pip install .` ships every sub-package: build the wheel and look inside."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _package_folders() -> dict[str, Path]:
    """Every folder with an __init__.py under the mapped top-level folders, by package name."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {}
    for package, folder in config["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            if "__pycache__" in relative.parts:
                continue
            name = ".".join((package, *relative.parts)) if relative.parts else package
            found[name] = init.parent
    return found


def test_pyproject_lists_every_package_folder():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    missing = set(_package_folders()) - listed
    assert not missing, f"pyproject.toml [tool.setuptools] packages lacks {sorted(missing)}"


@pytest.mark.slow
def test_the_wheel_holds_every_module(tmp_path):
    # built from a clean copy: a stale build/ folder could hold modules the package list lacks
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".hypothesis", "rdgap-results"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path / "dist")],
                   cwd=source, check=True, capture_output=True, timeout=600)
    wheel, = (tmp_path / "dist").glob("rdgap-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package, folder in _package_folders().items():
        for module in folder.glob("*.py"):
            path = "/".join(package.split(".")) + "/" + module.name
            assert path in names, f"the wheel lacks {path}"
