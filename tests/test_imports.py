"""rdgap's own code imports the moved modules by their new paths (issue 16).

The old flat names under ``rdgap.codecs`` (``rdgap.codecs.context``, ...) are
deprecation aliases kept for users for one release: one table and import hook,
:mod:`rdgap.codecs._moved` (checked here and in ``tests/test_layout.py``); nothing
shipped with rdgap may use them:

- importing every module of every rdgap package, with DeprecationWarnings raised from
  rdgap code turned into errors, raises none (a fresh interpreter);
- no module of rdgap, ``benchmarks/`` or ``tests/`` names an alias in an import
  statement, even one inside a function that importing alone would not run, nor in a
  ``"module:name"`` string the registry resolves later (the one test that checks the
  aliases on purpose, ``tests/test_layout.py``, and this file are exempt).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from rdgap.codecs._moved import MOVED, PACKAGE, MovedModuleFinder, new_name

ROOT = Path(__file__).resolve().parents[1]
#: Tests that import the aliases on purpose.
CHECKS_THE_ALIASES = {ROOT / "tests" / "test_layout.py", Path(__file__).resolve()}


def _package_folders() -> dict[str, Path]:
    """Every shipped package (``pyproject.toml``) and the folder it is built from."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = config["package-dir"]
    folders = {}
    for package in config["packages"]:
        parts = package.split(".")
        for cut in range(len(parts), 0, -1):  # the longest mapped prefix
            prefix = ".".join(parts[:cut])
            if prefix in mapped:
                folders[package] = ROOT / mapped[prefix] / Path(*parts[cut:])
                break
    return folders


def _modules() -> dict[str, Path]:
    """Module name → file for every ``.py`` file of every shipped package."""
    modules = {}
    for package, folder in _package_folders().items():
        for path in sorted(folder.glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = path
    return modules


MODULES = _modules()
#: The deprecated old names (no file: :mod:`rdgap.codecs._moved` resolves them).
ALIASES = {f"{PACKAGE}.{old}" for old in MOVED}


def test_the_scan_sees_the_packages_and_the_aliases():
    """The module list is not empty by a wrong path (else the tests below pass vacuously)."""
    for name in ("rdgap", "rdgap.cli", "rdgap.bounds.coder", "rdgap.codecs.recipes",
                 "rdgap.codecs.entropy_models.context", "rdgap.validation.runner",
                 "rdgap.proofs.coder", "rdgap.testing.adapters", "rdgap.distributed.worker"):
        assert name in MODULES
    assert {"rdgap.codecs.context", "rdgap.codecs.ans", "rdgap.codecs.transform"} <= ALIASES
    assert not ALIASES & set(MODULES)  # an old name is no module file any more
    assert {new_name(old) for old in ALIASES} <= set(MODULES)  # targets exist


#: Imports every module given on the command line, DeprecationWarnings raised from
#: rdgap code made errors (an alias warns at its importer: stacklevel 2); prints each.
#: Third-party deprecations stay warnings: they are not rdgap's to fix here.
_IMPORT_ALL = """
import importlib, sys, traceback, warnings
warnings.filterwarnings("error", category=DeprecationWarning, module=r"rdgap(\\.|$)")
failed = 0
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except DeprecationWarning as warning:
        failed += 1
        frames = [frame for frame in traceback.extract_tb(warning.__traceback__)
                  if "importlib" not in frame.filename]
        frame = frames[-2] if len(frames) > 1 else frames[-1]  # the alias's importer
        print(f"{name}: {warning} (imported at {frame.filename}:{frame.lineno})")
sys.exit(1 if failed else 0)
"""


def test_importing_every_rdgap_module_raises_no_deprecation_warning():
    names = sorted(set(MODULES) - ALIASES - {"rdgap.__main__"})
    result = subprocess.run([sys.executable, "-c", _IMPORT_ALL, *names], capture_output=True, text=True,
                            cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]


def _alias_references(source: str, where: str, package: str | None) -> list[str]:
    """Where ``source`` (file ``where`` of ``package``) names an alias module: imports,
    at any depth, and ``"module:name"`` strings."""
    found = []
    for node in ast.walk(ast.parse(source, filename=where)):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                if package is None:
                    continue
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            head = node.value.partition(":")[0]
            if head.startswith("rdgap.") and " " not in head:
                targets = [head]
        for target in targets:
            for alias in ALIASES:
                if target == alias or target.startswith(alias + "."):
                    found.append(f"{where}:{node.lineno}: {alias}")
    return sorted(set(found))


def _sources():
    """(file, its package or None) for rdgap's packages, ``benchmarks/`` and ``tests/``."""
    for name, path in MODULES.items():
        if name not in ALIASES:
            yield path, name if path.stem == "__init__" else name.rpartition(".")[0]
    for folder in ("benchmarks", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path not in CHECKS_THE_ALIASES:
                yield path, None


def test_no_module_names_a_deprecated_alias():
    found = [where for path, package in _sources()
             for where in _alias_references(path.read_text(), str(path.relative_to(ROOT)),
                                            package)]
    assert not found, "import the moved modules by their new paths:\n" + "\n".join(found)


@pytest.mark.parametrize("source, package", [
    ("from rdgap.codecs.context import ContextCodec", None),
    ("def f():\n    from rdgap.codecs import ans", None),
    ("from ..factorized import FactorizedCodec", "rdgap.codecs.quantizers"),
    ("from . import calibrate", "rdgap.codecs"),
    ("import rdgap.codecs.rans_torch as rt", None),
    ("FITTER = 'rdgap.codecs.token_fit:fit_token_recipe'", None),
])
def test_the_scan_finds_an_alias_in_each_form(source, package):
    """Each form of reference the scan exists to catch is caught."""
    assert _alias_references(source, "probe.py", package), source


@pytest.mark.parametrize("source", [
    "from rdgap.codecs.entropy_models.context import ContextCodec",
    "from ..entropy_models.factorized import FactorizedCodec",
    "from . import calibrate",  # rdgap.codecs.quantizers.calibrate, not the alias
    "from rdgap.codecs import recipes",
    "NOTE = 'rdgap.codecs.context moved'",  # a sentence, not a module path
])
def test_the_scan_passes_the_new_paths(source):
    assert not _alias_references(source, "probe.py", "rdgap.codecs.quantizers"), source


#: Imports each old name given on the command line in a fresh interpreter, from this
#: file (so the warning must name this file, not the import machinery), and prints
#: "old new same-object spec-name warning-file" for each.
_IMPORT_OLD = """
import importlib, sys, warnings
for old in sys.argv[1:]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(f"import {old}")  # an import statement, as a user writes it
    module = sys.modules[old]
    moved = [w for w in caught if issubclass(w.category, DeprecationWarning)
             and old in str(w.message)]
    new = module.__spec__.name
    print(old, new, module is importlib.import_module(new), len(moved),
          moved[0].filename if moved else None, str(moved[0].message) if moved else "")
"""


def test_every_old_name_imports_warns_at_the_importer_and_is_the_moved_module():
    """Each old name is the moved module object itself (monkeypatching and private names
    keep working), keeps the moved module's own spec, and warns once, at the importer
    (``<string>`` here: the -c script), naming the new path."""
    old_names = sorted(ALIASES)
    result = subprocess.run([sys.executable, "-c", _IMPORT_OLD, *old_names],
                            capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(old_names)
    for old, line in zip(old_names, lines):
        name, new, same, warnings, filename, message = line.split(" ", 5)
        assert name == old
        assert new == new_name(old), line  # the moved module's own spec, not the alias's
        assert same == "True", line
        assert warnings == "1" and filename == "<string>", line
        assert new in message and "next release" in message, line


def test_from_import_of_an_old_name_gives_the_moved_module():
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from rdgap.codecs import context_fit
    assert context_fit is importlib.import_module("rdgap.codecs.entropy_models.context_fit")


@pytest.mark.parametrize("name", ["rdgap.codecs.no_such_module", "rdgap.codecs.recipes",
                                  "rdgap.codecs.coders.context", "rdgap.context",
                                  "rdgap.codecs.context.deeper"])
def test_the_finder_claims_only_the_old_names(name):
    """A name that did not move is left to the ordinary finders (an unknown one still
    raises ModuleNotFoundError)."""
    assert MovedModuleFinder().find_spec(name) is None


def test_an_unknown_codecs_module_still_fails_to_import():
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        __import__("rdgap.codecs.no_such_module")
