"""Every recipe's streams are bit-identical to the golden digests recorded before issue 16's
refactor (``benchmarks/golden_streams.py``; tests/codecs/golden_streams.json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import golden_streams  # noqa: E402

sys.path.remove(str(ROOT / "benchmarks"))


@pytest.fixture(scope="module")
def figures():
    return golden_streams.record()


def test_every_recipe_has_golden_streams(figures):
    golden = json.loads(golden_streams.GOLDEN.read_text())
    assert set(figures) == set(golden), "recipes added or removed: record new digests " \
                                        "with python benchmarks/golden_streams.py --write"


@pytest.mark.parametrize("recipe", sorted(json.loads(golden_streams.GOLDEN.read_text())))
def test_streams_are_bit_identical_to_the_golden_ones(figures, recipe):
    golden = json.loads(golden_streams.GOLDEN.read_text())[recipe]
    assert figures[recipe] == golden


def test_the_golden_input_exercises_the_coders():
    """Two different windows give different streams (the input is not all-zero symbols),
    except for gaussian-std, whose calibration on the tiny model picks a scale (≈1,200 σ)
    that quantizes every value to its mean (and its rate-capped format, ``+cap``)."""
    golden = json.loads(golden_streams.GOLDEN.read_text())
    for recipe, entry in golden.items():
        if recipe not in ("gaussian-std", "gaussian-std+cap"):
            assert len(set(entry["cpu"])) == 2, recipe
