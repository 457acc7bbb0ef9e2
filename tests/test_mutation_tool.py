"""tools/mutate.py: it mutates a tiny module and counts killed and surviving mutants correctly."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("rdgap_mutate_tool", ROOT / "tools" / "mutate.py")
mutate = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = mutate
spec.loader.exec_module(mutate)

TINY = '''"""A tiny module."""


def clip(x: float, low: float) -> float:
    """Docstrings and annotations are not mutated."""
    if x < low:
        return low
    return x


def scaled(x):
    if x is None:
        raise ValueError(f"x: expected a number, got {x!r}")
    return 2 * x
'''
# clip: 3 mutants (negate the if, < -> <=, which is equivalent, and nothing else);
# scaled: negate, is -> is not, raise -> pass, 2 -> 3, * -> /.
#  The tests below check clip's both branches and scaled(3) == 6 but never scaled(None):
#  killed: negate clip, negate scaled, is -> is not, 2 -> 3, * -> /; survived: < -> <=
#  (equivalent: clip(x, x) == x either way) and raise -> pass (the error path is untested).
TESTS = '''
from tiny_target import clip, scaled


def test_clip():
    assert clip(1.0, 2.0) == 2.0 and clip(3.0, 2.0) == 3.0


def test_scaled():
    assert scaled(3) == 6
'''


def test_mutants_of_a_tiny_module_are_listed_and_applied():
    mutants = mutate.list_mutants(TINY)
    labels = [(m.operator, m.description.split(": ", 1)[1].split(" in ")[0]) for m in mutants]
    assert labels == [("negate", "condition -> not (condition)"), ("compare", "< -> <="),
                      ("negate", "condition -> not (condition)"), ("compare", "is -> is not"),
                      ("raise", "raise -> pass"), ("binop", "* -> /"), ("constant", "2 -> 3")]
    assert [m.line for m in mutants] == [6, 6, 12, 12, 13, 14, 14]
    changed = mutate.mutant_source(TINY, 4)
    assert "raise" not in changed and "pass" in changed
    assert "return 2 / x" in mutate.mutant_source(TINY, 5)
    assert "return 3 * x" in mutate.mutant_source(TINY, 6)
    for m in mutants:                                   # every mutant is valid Python
        ast.parse(mutate.mutant_source(TINY, m.index))
    with pytest.raises(ValueError, match="index"):
        mutate.mutant_source(TINY, len(mutants))


def test_the_tool_counts_killed_and_surviving_mutants(tmp_path):
    target = tmp_path / "tiny_target.py"
    target.write_text(TINY)
    (tmp_path / "test_tiny.py").write_text(TESTS)
    (tmp_path / "exclude.txt").write_text("compare: < -> <=  # clip(x, x) == x either way\n")
    out = tmp_path / "outcomes.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "mutate.py"), str(target), "--module",
         "tiny_target", "--preimport", "", "--exclude", str(tmp_path / "exclude.txt"),
         "--json", str(out), "--", str(tmp_path / "test_tiny.py"), "--rootdir",
         str(tmp_path), "-p", "no:rdgap"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    outcome = {o["description"].split(" in ")[0].split(": ", 1)[1] + f" L{o['line']}":
               o["outcome"] for o in result["outcomes"]}
    assert outcome == {"condition -> not (condition) L6": "killed",
                       "< -> <= L6": "excluded",
                       "condition -> not (condition) L12": "killed",
                       "is -> is not L12": "killed",
                       "raise -> pass L13": "survived",
                       "* -> / L14": "killed",
                       "2 -> 3 L14": "killed"}
    assert (result["killed"], result["counted"]) == (5, 6)
    # each mutant ran the test files whose tests executed its line in the unmutated run
    # (here the one file, both tests); the untested raise ran nothing
    ran = {o["line"]: o["tests_run"] for o in result["outcomes"] if "tests_run" in o}
    assert ran == {6: 2, 12: 2, 13: 0, 14: 2}
    assert "score: 5 killed of 6 = 83.3%" in done.stdout
    assert "SURVIVED L13 raise: raise -> pass" in done.stdout
    assert target.read_text() == TINY                   # the file on disk is never touched


def test_tests_that_fail_unmutated_are_refused(tmp_path):
    (tmp_path / "tiny_target.py").write_text(TINY)
    (tmp_path / "test_tiny.py").write_text(TESTS + "\n\ndef test_wrong():\n    assert clip(0, 1) == 0\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "mutate.py"), str(tmp_path / "tiny_target.py"),
         "--module", "tiny_target", "--preimport", "", "--", str(tmp_path / "test_tiny.py"),
         "--rootdir", str(tmp_path), "-p", "no:rdgap"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "fail on the unmutated module" in done.stderr
