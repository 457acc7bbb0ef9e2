"""The README's "Property-test your codec" example is the file the tests run, word for word."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _section() -> str:
    # The README's section moved whole to docs/testing.md (issue 16).
    return (ROOT / "docs/testing.md").read_text()


def test_the_readme_example_is_the_collected_example_file():
    blocks = re.findall(r"```python\n(.*?)```", _section(), flags=re.S)
    example = (ROOT / "tests/testing/example_user_codec_test.py").read_text()
    assert blocks and blocks[-1] == example


def test_the_readme_names_every_property():
    from rdgap.testing import PROPERTIES
    section = _section()
    assert all(f"`{prop}`" in section for prop in PROPERTIES)


def test_the_docs_zoo_names_the_property_that_catches_each_broken_codec():
    """The zoo table of docs/testing.md is the one test_mutants.py runs, row for row."""
    import importlib
    mutants = importlib.import_module("testing.test_mutants").MUTANTS
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| `([\w-]+)` \|$", _section(), flags=re.M)
    assert rows == [(cls.__name__, prop) for cls, prop in mutants]


def test_the_docs_table_says_what_each_property_sees_and_misses():
    from rdgap.testing import PROPERTIES
    rows = re.findall(r"^\| `([\w-]+)` \|(.*)\|$", _section(), flags=re.M)
    table = {name: cells.split("|") for name, cells in rows if name in PROPERTIES}
    assert list(table) == list(PROPERTIES)
    assert all(len(cells) == 3 and all(c.strip() for c in cells) for cells in table.values())
