"""The package layout: folders mapped to rdgap.* without shadowing the standard library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import rdgap
from rdgap.codecs._moved import MOVED, PACKAGE, new_name  # issue 16: old → new name

ROOT = Path(__file__).resolve().parents[1]


def test_subpackages_come_from_the_top_level_folders():
    import rdgap.bounds
    import rdgap.codecs
    import rdgap.proofs
    import rdgap.validation

    for name in ("bounds", "codecs", "proofs", "validation"):
        module = sys.modules[f"rdgap.{name}"]
        assert Path(module.__file__).resolve().parent == ROOT / name


def test_import_codecs_is_the_standard_library_even_from_the_repo_root():
    code = "import codecs, sys; print(codecs.__file__); assert hasattr(codecs, 'lookup')"
    for cwd in (ROOT, ROOT / "codecs"):
        out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                             text=True, check=True).stdout
        assert Path(out.strip()).parent != ROOT / "codecs"
        assert "codecs.py" in out


def test_version_and_cli_entry_point():
    out = subprocess.run([sys.executable, "-m", "rdgap", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == f"rdgap {rdgap.__version__}"


def test_public_namespace_resolves_every_export():
    import rdgap.split

    for name in rdgap.__all__:
        assert getattr(rdgap, name) is not None
    assert rdgap.SplitModel is rdgap.split.SplitModel
    try:
        rdgap.no_such_thing
    except AttributeError as error:
        assert "no_such_thing" in str(error)
    else:
        raise AssertionError("an unknown attribute must raise AttributeError")


def test_old_module_paths_are_the_moved_modules_with_a_deprecation_warning():
    """Each old ``rdgap.codecs.X`` is, for one release, the moved module itself (same
    objects: monkeypatching and private names keep working) and warns once imported."""
    import importlib
    import warnings

    for old in MOVED:
        new = new_name(f"{PACKAGE}.{old}")
        moved = importlib.import_module(new)
        code = (f"import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
                f"try:\n    import rdgap.codecs.{old}\nexcept DeprecationWarning as w:\n"
                f"    print(w)\nelse:\n    raise SystemExit('no warning')")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert new in out.stdout, (old, out.stdout, out.stderr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            assert importlib.import_module(f"rdgap.codecs.{old}") is moved


def test_the_codec_folders_show_the_pipeline():
    """transforms → quantizers → entropy models → coders, and the one registry of recipes."""
    for folder in ("transforms", "quantizers", "entropy_models", "coders"):
        assert (ROOT / "codecs" / folder / "__init__.py").is_file()
    assert (ROOT / "codecs" / "recipes.py").is_file()
    for old in MOVED:  # an old name is an entry of the one table, not a file beside them
        assert not (ROOT / "codecs" / f"{old}.py").exists(), old


def test_the_split_harness_is_its_own_package_beside_its_tests():
    """The model-splitting harness is no codec: ``rdgap/split/`` (``rdgap.split``), one
    module per job, its tests in ``tests/split/``; ``rdgap.codecs`` holds none of it."""
    import rdgap.split

    assert Path(rdgap.split.__file__).resolve().parent == ROOT / "rdgap" / "split"
    for module in ("layers", "model", "capture"):
        assert (ROOT / "rdgap" / "split" / f"{module}.py").is_file(), module
    for name in ("SplitModel", "logits_and_hidden", "LayerSplit", "find_layers"):
        assert getattr(rdgap.split, name).__module__.startswith("rdgap.split."), name
    for test in ("test_split_model.py", "test_architectures.py"):
        assert (ROOT / "tests" / "split" / test).is_file(), test
    for old in ("split", "capture", "layer_stack"):
        assert new_name(f"{PACKAGE}.{old}").startswith("rdgap.split."), old


def test_every_long_module_says_why_at_its_top():
    """Issue 16: no file over ~400 lines without a reason written at its top (a
    ``Length (...)`` sentence in the module docstring's first paragraphs)."""
    root = Path(__file__).resolve().parents[1]
    long_without_reason = []
    for folder in ("bounds", "codecs", "proofs", "validation", "rdgap", "benchmarks", "tools"):
        for path in sorted((root / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if text.count("\n") > 400 and "Length (" not in text[:2500]:
                long_without_reason.append(f"{path.relative_to(root)} "
                                           f"({text.count(chr(10))} lines)")
    assert not long_without_reason, long_without_reason
