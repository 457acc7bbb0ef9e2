"""write_plots writes non-empty PNG files for every figure that has data."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from rdgap.validation.plots import write_plots

from .statistics_data import results_document

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def document():
    """Two architectures: "synthetic" (3 splits) and "vit/digits" (its first 2 rows)."""
    document = results_document(np.random.default_rng(6), splits=5, windows=12, tokens=16)
    for row in document["runs"][:2]:
        row["architecture"] = "vit/digits"
    return document


@pytest.fixture(scope="module")
def written(document, tmp_path_factory):
    return write_plots(document, tmp_path_factory.mktemp("plots") / "made")


def test_every_plot_is_a_non_empty_png(written):
    names = sorted(Path(p).name for p in written)
    assert names == ["actual_vs_estimated.png", "rate_prediction_synthetic.png",
                     "rate_prediction_vit-digits.png", "rd_synthetic.png", "rd_vit-digits.png",
                     "statistics_synthetic.png", "statistics_vit-digits.png"]
    for path in written:
        data = Path(path).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000


def test_rows_without_statistics_or_estimates_are_left_out(document, tmp_path):
    bare = copy.deepcopy(document)
    for row in bare["runs"]:
        row["statistics"] = None
        row["bits_per_token_estimated"] = None
        row["architecture"] = "synthetic"
    written = write_plots(bare, tmp_path)
    assert [Path(p).name for p in written] == ["rd_synthetic.png"]


def test_rate_distortion_uses_the_task_distortion(document, tmp_path):
    """An encoder row has no ΔCE, only its own distortion (1 - cosine)."""
    encoder = copy.deepcopy(document)
    for row in encoder["runs"]:
        row.update(architecture="encoder", delta_ce_nats=None, distortion_name="one_minus_cosine",
                   bits_per_token_estimated=None)
        row["statistics"] = None
    assert [Path(p).name for p in write_plots(encoder, tmp_path)] == ["rd_encoder.png"]
    for row in encoder["runs"]:
        row["distortion"] = None
    assert write_plots(encoder, tmp_path / "none") == []


def test_bad_results_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="results"):
        write_plots({"rows": []}, tmp_path)
