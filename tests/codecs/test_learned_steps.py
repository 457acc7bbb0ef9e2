"""Learned steps end to end: straight-through rounding, the differentiable rate against the
real tables, a training step lowers ΔCE + λ·rate, the learned codec round-trips exactly
with T2, and bad arguments raise errors naming them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdgap.codecs.coders import ans
from rdgap.codecs.coders.container import header_size
from rdgap.codecs.entropy_models.context_fit import laplace_bits
from rdgap.codecs.entropy_models.factorized import build_tables
from rdgap.codecs.fit import fit_codec
from rdgap.codecs.quantizers.learned_steps import (StepObjective, check_lambda, fit_learned_codec,
                                        learn_steps, optimise, step_problem, t7_lambda)
from rdgap.codecs.quantizers.ste import discretised_bits, round_ste

from codec_data import tiny_fit_context

WINDOWS, TOKENS, STATISTICS = 9, 48, 6
LEVEL = 0.02


@pytest.fixture(scope="module")
def problem():
    """A tiny random Llama split after layer 2, its hidden states and fit context."""
    model, ids, hidden, context = tiny_fit_context(WINDOWS, TOKENS, STATISTICS, model_seed=3,
                                                   ids_seed=5)
    return context.split, ids, hidden, context


def test_straight_through_gradient_is_identity():
    x = torch.linspace(-3.3, 4.7, 41, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(41, dtype=torch.float64)
    (round_ste(x) * weights).sum().backward()
    assert torch.equal(round_ste(x.detach()), torch.round(x.detach()))
    assert torch.equal(x.grad, weights)


@pytest.mark.parametrize("family", ["laplace", "gaussian"])
@pytest.mark.parametrize("scale", [0.3, 1.0, 2.5, 7.0])
def test_rate_equals_the_table_bits(family, scale):
    (table,) = build_tables(family, np.array([scale]))
    symbols = torch.arange(-table.width, table.width + 1, dtype=torch.float64)
    bits = discretised_bits(symbols, torch.tensor(scale, dtype=torch.float64), family).numpy()
    # the tables differ only by their escape mass and renormalisation: ≪ 10^-3 bits
    np.testing.assert_allclose(bits, table.neg_log2[:-1], atol=1e-3)


def test_laplace_rate_matches_the_context_codec_code_length():
    rng = np.random.default_rng(0)
    symbols = np.rint(rng.laplace(0, 3.0, 500))
    scale = np.full(500, 2.0)
    ours = float(discretised_bits(torch.from_numpy(symbols), torch.from_numpy(scale)).sum())
    assert ours == pytest.approx(laplace_bits(symbols, scale, 0.5), rel=1e-9)


def test_rate_gradient_lowers_bits_of_a_larger_step():
    z = torch.from_numpy(np.random.default_rng(1).laplace(0, 2.0, 2000))
    log_step = torch.zeros((), dtype=torch.float64, requires_grad=True)
    discretised_bits(round_ste(z / log_step.exp()), 2.0 / log_step.exp()).sum().backward()
    assert log_step.grad < 0  # coarser steps cost fewer bits


@pytest.mark.parametrize("arguments, name", [
    ({"scale": torch.tensor(0.0)}, "scale"),
    ({"scale": torch.tensor(-1.0)}, "scale"),
    ({"symbols": torch.tensor([float("nan")])}, "symbols"),
    ({"scale": torch.tensor(float("nan"))}, "scale"),
    ({"family": "cauchy"}, "family"),
    ({"floor": 0.0}, "floor"),
    ({"symbols": torch.tensor([1, 2])}, "symbols"),
])
def test_bad_rate_arguments_name_themselves(arguments, name):
    values = {"symbols": torch.tensor([0.0, 1.0]), "scale": torch.tensor(1.0)} | arguments
    with pytest.raises(ValueError, match=f"^{name}:"):
        discretised_bits(**values)


@pytest.mark.parametrize("lam", [-1e-3, float("nan"), float("inf"), True])
def test_bad_lambda_raises(lam, problem):
    with pytest.raises(ValueError, match="^lam:"):
        check_lambda(lam)
    _, ids, _, context = problem
    with pytest.raises(ValueError, match="^lam:"):
        learn_steps(context, ids[:STATISTICS], LEVEL, lam=lam, iterations=1, progress=False)


def test_bad_steps_and_levels_raise(problem):
    _, ids, _, context = problem
    for steps in (np.zeros(64), -np.ones(64), np.full(64, np.nan), np.ones(63)):
        with pytest.raises(ValueError, match="^steps:"):
            fit_codec("klt-context", context, LEVEL, steps=steps)
    with pytest.raises(ValueError, match="^target_delta_ce:"):
        learn_steps(context, ids[:STATISTICS], float("nan"), iterations=1, progress=False)
    with pytest.raises(ValueError, match="^variant:"):
        learn_steps(context, ids[:STATISTICS], LEVEL, variant="gaussian-std", iterations=1)
    with pytest.raises(ValueError, match="^input_ids:"):
        learn_steps(context, ids, LEVEL, iterations=1, progress=False)
    with pytest.raises(ValueError, match="^distortion:"):
        learn_steps(context, ids[:STATISTICS], LEVEL, distortion="mse", iterations=1)


def test_t7_lambda_counts_active_components():
    assert t7_lambda(0.05, np.array([1.0, 1.0, 0.01])) == pytest.approx(2 * np.log(2) * 0.05 / 2)
    with pytest.raises(ValueError, match="^target_delta_ce:"):
        t7_lambda(0.0, np.ones(3))


@pytest.mark.parametrize("distortion", ["kl", "ce"])
def test_training_lowers_the_objective(problem, distortion):
    split, ids, _, context = problem
    objective, log_step, _ = step_problem(context, ids[:STATISTICS], LEVEL, crop=32,
                                          distortion=distortion)
    everything = torch.arange(objective.windows)
    before = float(objective(log_step, everything)[0].detach())
    log_step.requires_grad_(True)
    for p in split.model.parameters():
        p.requires_grad_(False)
    try:
        trace = optimise(objective, log_step, iterations=4, windows_per_step=objective.windows,
                         lr=0.02, progress=False)
    finally:
        for p in split.model.parameters():
            p.requires_grad_(True)
    after = float(objective(log_step, everything)[0].detach())
    assert trace[0]["objective"] == pytest.approx(before, rel=1e-5)
    assert after < before


def test_learned_codec_differs_from_t7_and_round_trips_with_t2(problem):
    split, ids, hidden, context = problem
    learned = learn_steps(context, ids[:STATISTICS], LEVEL, iterations=6, crop=32, lr=0.05,
                          progress=False)
    assert learned.step.shape == (64,) and np.all(learned.step > 0)
    assert not np.allclose(learned.step, learned.initial_step)
    assert len(learned.trace) == 6 and learned.lam > 0
    assert all(p.requires_grad for p in split.model.parameters())  # unfrozen afterwards
    again = learn_steps(context, ids[:STATISTICS], LEVEL, iterations=6, crop=32, lr=0.05,
                        progress=False)
    np.testing.assert_array_equal(again.step, learned.step)  # deterministic from the seed
    fitted = fit_learned_codec(context, ids[:STATISTICS], LEVEL, learned=learned)
    reference = fit_codec("klt-context", context, LEVEL)
    assert fitted.variant == "klt-context-learned"
    assert fitted.codec.label.startswith("klt-context-learned")
    ratio = fitted.codec.step / reference.codec.step
    assert not np.allclose(ratio, ratio[0])  # a different allocation, not just a scale
    codec = fitted.codec
    for window in hidden[STATISTICS:]:
        data = codec.encode(window)
        assert torch.equal(codec.decode(data), codec.reconstruct(window))
        payload = 8 * (len(data) - header_size(codec.codec_id, 2))
        bits = codec.estimate_bits(window)
        assert payload <= (1 + ans.RELATIVE_OVERHEAD) * bits + ans.STREAM_OVERHEAD_BITS


def test_objective_checks_its_windows(problem):
    split, ids, hidden, context = problem
    objective, _, _ = step_problem(context, ids[:STATISTICS], LEVEL, crop=16)
    with pytest.raises(ValueError, match="^input_ids:"):
        StepObjective(split, hidden, ids[:2], objective.mean, objective.analysis,
                      objective.synthesis, objective.rate_scale, objective.first_mean,
                      objective.first_step, 0.1)
    with pytest.raises(ValueError, match="^crop:"):
        StepObjective(split, hidden, ids, objective.mean, objective.analysis,
                      objective.synthesis, objective.rate_scale, objective.first_mean,
                      objective.first_step, 0.1, crop=1)


def test_time_limit_stops_training(problem):
    split, ids, _, context = problem
    objective, log_step, _ = step_problem(context, ids[:STATISTICS], LEVEL, crop=16)
    start = log_step.clone()
    log_step.requires_grad_(True)
    assert optimise(objective, log_step, iterations=5, max_seconds=0.0, progress=False) == []
    assert torch.equal(log_step.detach(), start)
    for name, value in (("iterations", -1), ("windows_per_step", 0),
                        ("max_seconds", float("nan"))):
        with pytest.raises(ValueError, match=f"^{name}:"):
            optimise(objective, log_step, progress=False, **{name: value})
