"""Fit statistics also on text the model writes from the fit prompts (issue 19).

The generation is deterministic and reads nothing of the fit windows but their prompts;
the cached sampling loop draws from the same distribution as a full forward pass; and on
a constructed source whose other text has energy in a direction the fit windows lack
(and the generated windows cover), the generated statistics turn the KLT basis toward
that direction and lower the other text's loss at the same step, news unchanged. The
loss there is the quadratic form ``½ eᵀ F e`` (THEORY.md T7 is exact for it), as in
``test_fisher_shrinkage.py``.
"""

import numpy as np
import pytest
import torch

from rdgap.codecs.entropy_models.factorized import FactorizedCodec
from rdgap.codecs.fit import FitContext, base_steps
from rdgap.codecs.transforms.fisher import FisherDiagonal
from rdgap.codecs.transforms.generated_fit import (_nucleus, build_with_generated,
                                                  generated_windows, pooled_fisher,
                                                  sample_continuations, with_generated)
from rdgap.split import SplitModel
from rdgap.validation.models import tiny_llama

VOCAB, LENGTH, PROMPT = 64, 24, 6


@pytest.fixture(scope="module")
def model():
    return tiny_llama(num_layers=3, hidden_size=32, vocab_size=VOCAB, seed=0).eval()


@pytest.fixture(scope="module")
def fit_ids():
    return torch.randint(3, VOCAB, (5, LENGTH), generator=torch.Generator().manual_seed(1))


def test_same_seed_same_tokens_and_only_prompts_enter(model, fit_ids):
    first = generated_windows(model, fit_ids, 7, PROMPT, seed=3)
    assert first.shape == (7, LENGTH)
    assert torch.equal(first, generated_windows(model, fit_ids, 7, PROMPT, seed=3))
    assert not torch.equal(first, generated_windows(model, fit_ids, 7, PROMPT, seed=4))
    # window i starts with the prompt of fit window i mod 5, and nothing after the
    # prompts of the fit windows changes what is written
    assert torch.equal(first[:, :PROMPT], fit_ids[torch.arange(7) % 5, :PROMPT])
    other_tail = fit_ids.clone()
    other_tail[:, PROMPT:] = torch.randint(3, VOCAB, other_tail[:, PROMPT:].shape,
                                           generator=torch.Generator().manual_seed(9))
    assert torch.equal(first, generated_windows(model, other_tail, 7, PROMPT, seed=3))
    # the continuations are sampled, not copied from the fit windows
    assert not torch.equal(first[:5, PROMPT:], fit_ids[:, PROMPT:])


def test_cached_sampling_follows_the_full_pass(model, fit_ids):
    """At a vanishing temperature the sampled tokens are the full forward pass's argmax
    at every step: the key/value cache path sees the same logits."""
    out = sample_continuations(model, fit_ids[:2, :PROMPT], 10, temperature=1e-6)
    with torch.no_grad():
        logits = model(input_ids=out).logits
    assert torch.equal(out[:, PROMPT:], logits[:, PROMPT - 1:-1].argmax(-1))


def test_sampling_draws_the_model_distribution(model, fit_ids):
    """First sampled token over many draws of one prompt: its frequencies match the
    model's next-token probabilities at the temperature (the tiny random model is near
    uniform at temperature 1, so 0.05 sharpens it until a wrong law would show)."""
    prompts = fit_ids[:1, :PROMPT].repeat(4000, 1)
    drawn = sample_continuations(model, prompts, 1, seed=0, temperature=0.05,
                                 batch_size=4000)[:, -1]
    with torch.no_grad():
        logits = model(input_ids=fit_ids[:1, :PROMPT]).logits[0, -1].double()
    probs = torch.softmax(logits / 0.05, -1)
    freq = torch.bincount(drawn, minlength=VOCAB).double() / len(drawn)
    assert 0.5 * float((freq - probs).abs().sum()) < 0.06
    # the test can tell: temperature 1 and a uniform law are both far from it
    assert 0.5 * float((freq - torch.softmax(logits, -1)).abs().sum()) > 0.2
    assert 0.5 * float((freq - 1.0 / VOCAB).abs().sum()) > 0.2


def test_nucleus_keeps_the_smallest_set_reaching_top_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]], dtype=torch.float64)
    kept = _nucleus(probs, 0.8)
    assert torch.allclose(kept, torch.tensor([[0.625, 0.375, 0.0, 0.0]], dtype=torch.float64))
    assert torch.allclose(_nucleus(probs, 0.81)[0, :3].sum(), torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("kwargs, name", [
    ({"prompts": torch.zeros(2, 3), "tokens": 4}, "prompts"),
    ({"prompts": torch.zeros(2, 3, dtype=torch.long), "tokens": 0}, "tokens"),
    ({"prompts": torch.zeros(2, 3, dtype=torch.long), "tokens": 2, "temperature": 0}, "temperature"),
    ({"prompts": torch.zeros(2, 3, dtype=torch.long), "tokens": 2, "top_p": 1.5}, "top_p"),
])
def test_bad_sampling_arguments_are_named(model, kwargs, name):
    with pytest.raises(ValueError, match=name):
        sample_continuations(model, **kwargs)


def test_prompt_longer_than_window_is_refused(model, fit_ids):
    with pytest.raises(ValueError, match="prompt_tokens"):
        generated_windows(model, fit_ids, 2, prompt_tokens=LENGTH)


def test_build_with_generated_adds_states_keeps_probe(model, fit_ids):
    split = SplitModel(model, 2)
    hidden = torch.cat([split.prefix(fit_ids[i:i + 1]) for i in range(5)])
    plain = FitContext.build(split, fit_ids, hidden, statistics_windows=3)
    context = build_with_generated(model, split, fit_ids, hidden, 4, statistics_windows=3,
                                   prompt_tokens=PROMPT, seed=2, generated_fisher=True)
    assert context.hidden.shape == (7, LENGTH, 32)
    assert torch.equal(context.hidden[:3], hidden[:3])
    ids = generated_windows(model, fit_ids[:3], 4, PROMPT, seed=2)  # statistics prompts only
    assert torch.allclose(context.hidden[3:], split.prefix(ids), atol=1e-5)
    assert context.probe.hidden.shape[0] == 2  # the calibration stays on the fit probe
    # the pooled Fisher moved away from the statistics windows' own, by 4/7 of the way
    assert not np.allclose(context.fisher.matrix, plain.fisher.matrix)


def test_pooled_fisher_weights_by_windows():
    a = FisherDiagonal(rest=np.ones(2), first=np.ones(2), tokens=8, matrix=np.eye(2))
    b = FisherDiagonal(rest=4 * np.ones(2), first=np.zeros(2), tokens=8, matrix=4 * np.eye(2))
    pooled = pooled_fisher([(a, 3), (b, 1)])
    assert np.allclose(pooled.rest, 1.75) and np.allclose(pooled.first, 0.75)
    assert np.allclose(pooled.matrix, 1.75 * np.eye(2))
    with pytest.raises(ValueError, match="parts"):
        pooled_fisher([(a, 1), (FisherDiagonal(np.ones(2), np.ones(2), 9, np.eye(2)), 1)])


# -- the constructed source ------------------------------------------------------------
CHANNELS, STEP = 6, 1.0
#: The direction the other text (and the generated text) has energy in, the fit text not.
DIRECTION = np.array([0.0, 0.0, 0.5, 0.5, 0.5, 0.5])


def _windows(rng, windows: int, active: float, along: float) -> torch.Tensor:
    """States with large independent energy in channels 0, 1 (std ``active``), distinct
    tiny energies in channels 2..5 (so the fit's KLT has them as its axes), and std
    ``along`` along :data:`DIRECTION`."""
    tiny = np.array([0, 0, 1e-3, 2e-3, 3e-3, 4e-3])
    base = rng.normal(size=(windows, 64, CHANNELS)) * np.r_[active, active, tiny[2:]]
    return torch.from_numpy(base + rng.normal(size=(windows, 64, 1)) * along * DIRECTION)


def _codec(context: FitContext) -> FactorizedCodec:
    stats, base, first_base, klt, family = base_steps("klt-laplace", context)
    return FactorizedCodec(stats, STEP * base, STEP * first_base, family,
                           analysis=klt.analysis, synthesis=klt.synthesis)


def _loss(codec, windows: torch.Tensor) -> float:
    """``½ mean_t |e|²`` over positions ≥ 1: the ΔCE of the quadratic loss with F = I."""
    error = torch.stack([w - codec.reconstruct(w) for w in windows])[:, 1:].numpy()
    return 0.5 * float((error ** 2).sum(-1).mean())


def test_generated_states_turn_the_basis_toward_what_the_fit_text_lacks():
    rng = np.random.default_rng(0)
    news, generated = _windows(rng, 24, 20.0, 0.0), _windows(rng, 24, 20.0, 4.0)
    other, news_eval = _windows(rng, 16, 20.0, 4.0), _windows(rng, 16, 20.0, 0.0)
    fisher = FisherDiagonal(rest=np.ones(CHANNELS), first=np.ones(CHANNELS), tokens=64,
                            matrix=np.eye(CHANNELS))
    plain = FitContext(split=None, hidden=news, fisher=fisher, probe=None)
    extended = with_generated(plain, generated)

    def alignment(context):  # |cos| of the direction with its best-aligned KLT axis
        synthesis = base_steps("klt-laplace", context)[3].synthesis
        axes = synthesis / np.linalg.norm(synthesis, axis=0)
        return float(np.abs(DIRECTION @ axes).max())

    assert alignment(plain) < 0.6  # the fit's axes split the direction over 4 channels
    assert alignment(extended) > 0.99
    before, after = _codec(plain), _codec(extended)
    # on the other text the error falls (4 components at Δ²/12 become 1); news unchanged
    assert _loss(after, other) < 0.7 * _loss(before, other)
    assert _loss(after, news_eval) == pytest.approx(_loss(before, news_eval), rel=0.1)


def test_generated_states_of_another_width_are_refused():
    context = FitContext(split=None, hidden=torch.zeros(2, 8, 4), fisher=None, probe=None)
    with pytest.raises(ValueError, match="generated_hidden"):
        with_generated(context, torch.zeros(2, 8, 5))
