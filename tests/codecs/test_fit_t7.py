"""T7's starting point of the context codecs (``token_fit.t7_start``) and the uncalibrated
fits at that scale (``token_fit.fit_at_t7_scale``) that the split screen uses."""

from __future__ import annotations

import math

import pytest
import torch

from rdgap.codecs.transforms.fisher import fisher_diagonal
from rdgap.codecs.fit import FitContext, base_steps, unit_delta_ce
from rdgap.split import SplitModel
from rdgap.codecs.entropy_models.token_fit import VARIANT, fit_at_t7_scale, t7_start


@pytest.fixture(scope="module")
def context(tiny_model):
    split = SplitModel(tiny_model, 2)
    ids = torch.randint(3, 128, (4, 96), generator=torch.Generator().manual_seed(11))
    hidden = split.prefix(ids)
    fisher = fisher_diagonal(split, hidden, samples=1, full=True)
    return FitContext(split, hidden, fisher, probe=None), ids


def test_t7_start_predicts_the_level_at_its_scale(context):
    context, _ = context
    stats, base, first_base, klt, unit, alpha = t7_start(context, 0.05)
    assert unit == pytest.approx(unit_delta_ce("klt-context", context.fisher, base, first_base))
    assert unit * alpha ** 2 == pytest.approx(0.05)  # T7: ΔCE ∝ α²
    assert t7_start(context, 0.2)[5] == pytest.approx(2 * alpha)  # 4× the level, 2× the scale
    assert klt.analysis.shape == (64, 64) and base.shape == (64,)
    with pytest.raises(ValueError, match="target_delta_ce"):
        t7_start(context, 0.0)
    short = FitContext(context.split, context.hidden[:1, :64], context.fisher, probe=None)
    with pytest.raises(ValueError, match=f"variant: {VARIANT} estimates a 64×64"):
        t7_start(short, 0.05)  # 63 fit tokens for a 64 × 64 KLT: the error names the variant


def test_fit_at_t7_scale_gives_both_codecs_at_that_scale(context):
    context, ids = context
    alpha, codecs = fit_at_t7_scale(context, ids, 0.05)
    assert set(codecs) == {"klt-context", VARIANT}
    assert alpha == pytest.approx(t7_start(context, 0.05)[5])
    base = base_steps("klt-context", context)[1]
    for name, codec in codecs.items():
        assert codec.step == pytest.approx(alpha * base)
    window, window_ids = context.hidden[0], ids[0]
    tokens = codecs[VARIANT]
    back, back_ids = tokens.decode_with_ids(tokens.encode(window, input_ids=window_ids))
    assert torch.equal(back_ids, window_ids)
    assert torch.equal(back, tokens.reconstruct(window, input_ids=window_ids))
    plain = codecs["klt-context"]
    assert torch.equal(plain.decode(plain.encode(window)), plain.reconstruct(window))
    # a coarser level: a larger scale, fewer bits
    coarse = fit_at_t7_scale(context, ids, 0.2)[1][VARIANT]
    assert coarse.estimate_bits(window, input_ids=window_ids) < \
        tokens.estimate_bits(window, input_ids=window_ids) - 0.5 * math.log2(4) * 10
