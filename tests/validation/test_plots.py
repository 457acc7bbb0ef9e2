"""write_plots writes non-empty PNG files for every figure that has data."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from rdgap.validation.plots import write_plots

from .statistics_data import results_document

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def document():
    return results_document(np.random.default_rng(6), splits=3, windows=12, tokens=16)


def test_every_plot_is_a_non_empty_png(document, tmp_path):
    written = write_plots(document, tmp_path / "plots")
    names = sorted(p.rsplit("/", 1)[-1] for p in written)
    assert names == ["actual_vs_estimated.png", "rd_synthetic.png", "statistics_synthetic.png"]
    for path in written:
        data = open(path, "rb").read()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000


def test_rows_without_statistics_or_estimates_are_left_out(document, tmp_path):
    bare = copy.deepcopy(document)
    for row in bare["runs"]:
        row["statistics"] = None
        row["bits_per_token_estimated"] = None
    written = write_plots(bare, tmp_path)
    assert [p.rsplit("/", 1)[-1] for p in written] == ["rd_synthetic.png"]


def test_architectures_get_their_own_figures(document, tmp_path):
    two = copy.deepcopy(document)
    for row in two["runs"][:2]:
        row["architecture"] = "vit/digits"
    written = {p.rsplit("/", 1)[-1] for p in write_plots(two, tmp_path)}
    assert {"rd_vit-digits.png", "rd_synthetic.png", "statistics_vit-digits.png"} <= written


def test_bad_results_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="results"):
        write_plots({"rows": []}, tmp_path)
