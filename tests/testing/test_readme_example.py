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
