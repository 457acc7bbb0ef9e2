"""The package layout: folders mapped to rdgap.* without shadowing the standard library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import rdgap

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
    import rdgap.codecs.split

    for name in rdgap.__all__:
        assert getattr(rdgap, name) is not None
    assert rdgap.SplitModel is rdgap.codecs.split.SplitModel
    try:
        rdgap.no_such_thing
    except AttributeError as error:
        assert "no_such_thing" in str(error)
    else:
        raise AssertionError("an unknown attribute must raise AttributeError")
