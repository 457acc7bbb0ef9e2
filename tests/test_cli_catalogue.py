"""`rdgap bounds list`, `rdgap cite NAME` and `rdgap proofs NAME`."""

from __future__ import annotations

import pytest

import rdgap.bounds  # noqa: F401  (fills the catalogue)
import rdgap.proofs  # noqa: F401
from rdgap.bounds.catalogue import CATALOGUE
from rdgap.bounds.references import REFERENCES
from rdgap.cli import main
from rdgap.proofs.derivation import DERIVATIONS

#: Catalogue entries that only combine other derived bounds (their parts are derived).
COMPOSITIONS = {"rate_interval": ("hoeffding_radius", "empirical_bernstein_upper")}


def test_bounds_list_shows_every_entry(capsys):
    assert main(["bounds", "list"]) == 0
    out = capsys.readouterr().out
    for name, entry in CATALOGUE.items():
        assert f"{name}  [{entry.theory}]" in out
    assert len(CATALOGUE) >= 25


def test_every_theory_item_is_covered():
    items = {entry.theory for entry in CATALOGUE.values()}
    assert {f"T{i}" for i in (1, 3, 4, 5, 6, 7, 8, 9, 10)} <= items


def test_every_bound_has_a_derivation():
    for name in CATALOGUE:
        parts = COMPOSITIONS.get(name, (name,))
        assert all(part in DERIVATIONS for part in parts), name


def test_cite_prints_bibtex_and_latex(capsys):
    assert main(["cite", "hoeffding_radius"]) == 0
    out = capsys.readouterr().out
    assert "\\begin{equation}" in out and REFERENCES["hoeffding1963"] in out


def test_cite_unknown_name(capsys):
    assert main(["cite", "no_such_bound"]) == 2
    assert "no bound called 'no_such_bound'" in capsys.readouterr().err


@pytest.mark.parametrize("latex", [False, True])
def test_proofs_render(capsys, latex):
    argv = ["proofs", "hoeffding_radius"] + (["--latex"] if latex else [])
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Assumptions:" in out and "Step 1." in out and "Result:" in out
    assert main(["proofs", "nope"]) == 2
