"""T10: Jacobian spectral norms by power iteration, and entropy after a map.

(1) Numeric functions equal their lambdified derivations: the power-iteration
estimate on a map with two singular values equals the closed-form Rayleigh
quotient after k steps; the entropy formulas equal theirs. (2) Independent:
the spectral norm of the full Jacobian from torch.autograd.functional.jacobian.
(3) The claims where truth is known: the estimate never exceeds the local norm
and never decreases with more steps (it is a LOWER bound); the change of
variables is exact for a Gaussian under a linear map and for x -> x² on U[0, 1].
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch.autograd.functional import jacobian

from rdgap.bounds import lipschitz as t10
from rdgap.proofs import DERIVATIONS



@pytest.fixture(autouse=True, scope="module")
def float64():
    """Tensors made in this module are float64; the global default is restored after."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@cache
def closed_form(name: str):
    return DERIVATIONS[name]().lambdify()


def mlp(seed: int, n_in: int, n_out: int, width: int = 16):
    """A small tanh network with fixed random weights."""
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(width, n_in, generator=g, dtype=torch.float64) / math.sqrt(n_in)
    w2 = torch.randn(n_out, width, generator=g, dtype=torch.float64) / math.sqrt(width)
    return lambda x: torch.tanh(x @ w1.T + 0.1) @ w2.T


def exact_norm(fn, x) -> float:
    full = jacobian(fn, x).reshape(-1, x.numel())
    return float(torch.linalg.matrix_norm(full, ord=2))


# ---------------------------------------------------------------- (1) sympy
@settings(max_examples=60, deadline=None)
@given(l1=st.floats(0.1, 10), ratio=st.floats(0.0, 1.0), a=st.floats(0.1, 3),
       b=st.floats(-3, 3), k=st.integers(1, 15))
def test_power_iteration_matches_the_rayleigh_quotient(l1, ratio, a, b, k):
    """For J = diag(sqrt(l1), sqrt(l2)) and v_0 = (a, b), k steps give exactly the
    derivation's sqrt((a² l1^(2k+1) + b² l2^(2k+1)) / (a² l1^(2k) + b² l2^(2k)))."""
    l2 = max(ratio * l1, 1e-3)
    scale = torch.tensor([math.sqrt(l1), math.sqrt(l2)])
    estimate = t10.jacobian_spectral_norm(lambda v: scale * v, torch.zeros(2), iters=k,
                                          init=[a, b])
    expected = float(closed_form("jacobian_spectral_norm")(l1, l2, a, b, k))
    assert math.isclose(estimate, expected, rel_tol=1e-9)


@settings(max_examples=60, deadline=None)
@given(h=st.floats(-50, 50), n=st.integers(1, 4096), s=st.floats(1e-3, 1e3),
       logdets=st.lists(st.floats(-20, 20), min_size=1, max_size=20))
def test_entropy_formulas_match_derivations(h, n, s, logdets):
    assert math.isclose(t10.entropy_after_map_bound(h, n, s),
                        float(closed_form("entropy_after_map_bound")(h, n, s)),
                        rel_tol=1e-9, abs_tol=1e-9)
    mean = float(np.mean(logdets))
    assert math.isclose(t10.logdet_entropy_bound(h, logdets),
                        float(closed_form("logdet_entropy_bound")(h, mean)),
                        rel_tol=1e-9, abs_tol=1e-9)


# ------------------------------------------------------ (2) full Jacobians
@pytest.mark.parametrize("n_in,n_out", [(5, 5), (7, 3), (3, 9), (6, 1)])
def test_estimate_converges_to_the_full_jacobian_norm(n_in, n_out):
    """Non-square maps included; n_out = 1 is a code-length function, whose
    Jacobian norm is the gradient norm."""
    fn = mlp(n_in * 10 + n_out, n_in, n_out)
    x = torch.randn(n_in, generator=torch.Generator().manual_seed(1))
    exact = exact_norm(fn, x)
    estimate = t10.jacobian_spectral_norm(fn, x, iters=300, seed=2)
    assert estimate <= exact * (1 + 1e-12)
    assert math.isclose(estimate, exact, rel_tol=1e-6)


def test_batched_points_give_per_point_norms():
    fn = mlp(3, 4, 6)
    xs = torch.randn(8, 4, generator=torch.Generator().manual_seed(4))
    batched = t10.jacobian_spectral_norm(fn, xs, iters=300, batched=True)
    exact = np.array([exact_norm(fn, x) for x in xs])
    assert batched.shape == (8,)
    assert np.all(batched <= exact * (1 + 1e-12))
    assert np.allclose(batched, exact, rtol=1e-6)


# ------------------------------------------- (3) the claims, where truth is known
@pytest.mark.parametrize("seed", range(4))
def test_estimate_is_a_lower_bound_nondecreasing_in_steps(seed):
    """||J v_k|| <= ||J||_2 for every k (a Rayleigh quotient), and it is nondecreasing
    in k (m_{2k+1}/m_{2k} with log-convex moments m_j = v_0^T (J^T J)^j v_0)."""
    fn = mlp(100 + seed, 6, 6)
    x = torch.randn(6, generator=torch.Generator().manual_seed(seed))
    exact = exact_norm(fn, x)
    estimates = [t10.jacobian_spectral_norm(fn, x, iters=k, seed=seed) for k in range(1, 12)]
    assert all(e <= exact * (1 + 1e-12) for e in estimates)
    assert all(later >= earlier * (1 - 1e-12) for earlier, later in zip(estimates, estimates[1:]))


def gaussian_entropy_bits(cov: np.ndarray) -> float:
    n = cov.shape[0]
    return 0.5 * math.log2((2 * math.pi * math.e) ** n * np.linalg.det(cov))


def test_change_of_variables_is_exact_for_a_linear_map_of_a_gaussian():
    """h(AX) = h(X) + log2|det A| in closed form; the spectral bound lies above it by
    exactly sum_i log2(sigma_max / sigma_i) >= 0 (its slack, small for a well
    conditioned A: below n log2(cond A))."""
    rng = np.random.default_rng(0)
    n = 4
    cov = np.cov(rng.standard_normal((n, 50)))
    a = rng.standard_normal((n, n)) + 3 * np.eye(n)
    h_x, h_ax = gaussian_entropy_bits(cov), gaussian_entropy_bits(a @ cov @ a.T)
    log_det = math.log2(abs(np.linalg.det(a)))
    assert math.isclose(t10.logdet_entropy_bound(h_x, log_det), h_ax, rel_tol=1e-10)
    top = t10.jacobian_spectral_norm(lambda v: torch.as_tensor(a) @ v, torch.zeros(n),
                                     iters=500)
    singular = np.linalg.svd(a, compute_uv=False)
    assert math.isclose(top, singular[0], rel_tol=1e-8)
    slack = t10.entropy_after_map_bound(h_x, n, singular[0]) - h_ax
    assert math.isclose(slack, float(np.sum(np.log2(singular[0] / singular))), rel_tol=1e-9)
    assert 0 <= slack <= n * math.log2(singular[0] / singular[-1])


def test_change_of_variables_for_a_nonlinear_map():
    """X ~ U[0, 1], f(x) = x²: h(f(X)) = E log2|2X| = 1 - log2(e) bits exactly. The
    per-point Jacobian norms (1-D: |f'(x)|, by batched power iteration) give it up
    to Monte Carlo error (4 standard errors), and the global bound sup|f'| = 2
    gives h(f(X)) <= 1 bit."""
    x = torch.as_tensor(np.random.default_rng(1).uniform(0, 1, (20_000, 1)))
    norms = t10.jacobian_spectral_norm(lambda v: v ** 2, x, iters=2, batched=True)
    logs = np.log2(norms)
    truth = 1 - math.log2(math.e)
    assert abs(t10.logdet_entropy_bound(0.0, logs) - truth) < 4 * logs.std() / math.sqrt(logs.size)
    assert t10.entropy_after_map_bound(0.0, 1, norms) == pytest.approx(
        t10.logdet_entropy_bound(0.0, logs), rel=1e-12)    # n = 1: |det J| = ||J||
    assert t10.entropy_after_map_bound(0.0, 1, 2.0) >= truth


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("call,argument", [
    (lambda: t10.jacobian_spectral_norm("f", torch.zeros(2)), "fn"),
    (lambda: t10.jacobian_spectral_norm(torch.sin, torch.tensor([float("nan")])), "x"),
    (lambda: t10.jacobian_spectral_norm(torch.sin, torch.zeros(2), iters=0), "iters"),
    (lambda: t10.jacobian_spectral_norm(torch.sin, torch.zeros(2), seed=-3), "seed"),
    (lambda: t10.jacobian_spectral_norm(torch.sin, torch.zeros(2), batched=1), "batched"),
    (lambda: t10.jacobian_spectral_norm(torch.sum, torch.zeros(3, 2), batched=True), "fn"),
    (lambda: t10.jacobian_spectral_norm(torch.sin, torch.zeros(2), init=[1.0]), "init"),
    (lambda: t10.logdet_entropy_bound(float("inf"), 1.0), "h_x"),
    (lambda: t10.logdet_entropy_bound(1.0, [1.0, float("nan")]), "logabsdet"),
    (lambda: t10.entropy_after_map_bound(1.0, 0, 2.0), "n"),
    (lambda: t10.entropy_after_map_bound(1.0, 3, [2.0, 0.0]), "spectral_norm"),
])
def test_bad_input_names_the_argument(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()
