"""benchmarks/variant_pay.py: the paired rule that decides whether a variant keeps its code."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import variant_pay  # noqa: E402

sys.path.remove(str(ROOT / "benchmarks"))


def _windows(offset: float, noise: float, seed: int = 0):
    """32 windows of 32 documents whose rates vary a lot between documents (±100 bits)
    while the variant differs from the parent by ``offset`` ± ``noise`` per window."""
    rng = np.random.default_rng(seed)
    parent = 700.0 + 100.0 * rng.standard_normal(32)
    return parent + offset + noise * rng.standard_normal(32), parent, np.arange(32)


def test_a_small_steady_gain_pays_though_documents_vary_far_more():
    """Pairing: a −5 bits/token gain on windows whose rates spread by ±100 is 25 s.e. out
    (unpaired, the two means would be indistinguishable)."""
    variant, parent, documents = _windows(-5.0, 1.0)
    result = variant_pay.paired_difference(variant, parent, documents)
    assert result["pays"] and result["z"] < -10
    assert result["mean"] == pytest.approx(-5.0, abs=0.5)


@pytest.mark.parametrize("offset", [0.0, 0.1, 5.0])
def test_no_gain_a_gain_within_noise_or_a_loss_does_not_pay(offset):
    variant, parent, documents = _windows(offset, 3.0, seed=1)
    result = variant_pay.paired_difference(variant, parent, documents)
    assert not result["pays"], result


def test_one_document_gives_no_standard_error_and_never_pays():
    result = variant_pay.paired_difference(np.array([600.0, 610.0]), np.array([700.0, 705.0]),
                                           np.array([3, 3]))
    assert result["stderr"] is None and result["z"] is None and not result["pays"]


def test_the_fixed_scale_replaces_the_calibration_only_inside_the_block():
    import rdgap.codecs.fit as fit

    calibrate = fit.calibrate_scale
    with variant_pay._fixed_scale(0.25):
        assert fit.calibrate_scale(None, 0.05, 1.0).scale == 0.25
    assert fit.calibrate_scale is calibrate
