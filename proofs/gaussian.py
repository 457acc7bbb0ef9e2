"""Derivations of T3: the Gaussian log-det bound, its Jensen form and the Hadamard headroom.

Worked in two dimensions with explicit symbols (the general-n trace identity
is shown with a ``MatrixSymbol``); the numeric functions are tested against
these closed forms.
"""

from __future__ import annotations

import sympy as sp

from ._symbolic import log2, require_equal
from .derivation import Derivation, derivation

_ASSUMPTIONS = [
    "S = round(Y / Delta) per channel, Yhat = Delta S, U ~ Uniform(cell) independent of S",
    "K = Cov(Yhat) + diag(Delta^2)/12 positive definite",
]


def _two_by_two():
    c11, c22, d1, d2 = sp.symbols("c11 c22 Delta1 Delta2", positive=True)
    c12 = sp.Symbol("c12", real=True)
    cov = sp.Matrix([[c11, c12], [c12, c22]])
    k = cov + sp.diag(d1 ** 2, d2 ** 2) / 12
    return cov, k, (c11, c12, c22, d1, d2)


def _uniform_moments():
    d, u = sp.symbols("Delta u", positive=True)
    mean = sp.integrate(u / d, (u, -d / 2, d / 2))
    variance = sp.integrate(u ** 2 / d, (u, -d / 2, d / 2))
    return sp.Eq(sp.Symbol("E[U]"), mean), sp.Eq(sp.Symbol("E[U^2]"), variance)


@derivation("gaussian_logdet_bound")
def gaussian_logdet_bound() -> Derivation:
    """H(S) <= 1/2 log2 det(2 pi e K) - sum log2 Delta_j (n = 2)."""
    cov, k, symbols = _two_by_two()
    d1, d2 = symbols[3:]
    n = sp.Symbol("n", integer=True, positive=True)
    big_k = sp.MatrixSymbol("K", n, n)
    h_s = sp.Symbol("H(S)")
    result = (log2(((2 * sp.pi * sp.E) ** 2) * k.det()) / 2 - log2(d1) - log2(d2))
    steps = [
        ("Yhat + U has density P(s)/(Delta1 Delta2) on the cell of s, so its differential "
         "entropy is exactly H(S) + log2 Delta1 + log2 Delta2.",
         sp.Eq(sp.Symbol("h(Yhat+U)"), h_s + log2(d1) + log2(d2))),
        ("U is centred with variance Delta^2/12 per channel and independent of Yhat, so "
         "Cov(Yhat + U) = Cov(Yhat) + diag(Delta^2)/12 = K.", sp.Tuple(*_uniform_moments())),
        ("Cross-entropy of any density against N(mu, K): -E ln N = 1/2 ln det(2 pi K) + "
         "1/2 E[(x-mu)' K^-1 (x-mu)], and E[(x-mu)' K^-1 (x-mu)] = tr(K^-1 Cov) = tr(I) = n "
         "when Cov = K.", sp.Eq(sp.Trace(big_k.I * big_k), sp.Trace(big_k.I * big_k).doit())),
        ("The same trace with the explicit 2 x 2 K.", sp.Eq(sp.trace(sp.simplify(k.inv() * k)), 2)),
        ("h(X) <= cross-entropy against N(mu, K) (Gibbs) = 1/2 log2 det(2 pi e K); subtract "
         "the log-steps of step 1.", sp.Le(h_s, result)),
    ]
    return Derivation("gaussian_logdet_bound", result, symbols, _ASSUMPTIONS, steps)


@derivation("dependency_headroom")
def dependency_headroom() -> Derivation:
    """1/2 log2(K11 K22 / det K) >= 0 (Hadamard, n = 2)."""
    _, k, symbols = _two_by_two()
    product = k[0, 0] * k[1, 1]
    result = log2(product / k.det()) / 2
    steps = [
        ("Diagonal bound minus joint bound: the 2 pi e and log-step terms cancel.",
         sp.Eq(sp.Symbol("G"), result)),
        ("Hadamard for n = 2: K11 K22 - det K = K12^2 >= 0, so the ratio is >= 1.",
         require_equal(product - k.det(), k[0, 1] ** 2, "K11 K22 - det K = K12^2")),
    ]
    return Derivation("dependency_headroom", result, symbols, _ASSUMPTIONS, steps)


@derivation("gaussian_jensen_codelength")
def gaussian_jensen_codelength() -> Derivation:
    """-log2 q(s) <= -sum log2 Delta - E_U log2 N(yhat + U; mu, K), in closed form (n = 2)."""
    e1, e2 = sp.symbols("e1 e2", real=True)                 # yhat - mu
    k11, k22, d1, d2 = sp.symbols("k11 k22 Delta1 Delta2", positive=True)
    k12 = sp.Symbol("k12", real=True)
    u1, u2 = sp.symbols("u1 u2", real=True)
    k = sp.Matrix([[k11, k12], [k12, k22]])
    inverse = k.inv()
    centred, shifted = sp.Matrix([e1, e2]), sp.Matrix([e1 + u1, e2 + u2])
    quadratic = (centred.T * inverse * centred)[0]
    cell_average = sp.integrate((shifted.T * inverse * shifted)[0] / (d1 * d2),
                                (u1, -d1 / 2, d1 / 2), (u2, -d2 / 2, d2 / 2))
    trace = (inverse * sp.diag(d1 ** 2, d2 ** 2)).trace() / 12
    result = (-log2(d1) - log2(d2) + log2((2 * sp.pi) ** 2 * k.det()) / 2
              + (quadratic + trace) / (2 * sp.log(2)))
    cov = sp.Matrix(2, 2, sp.symbols("c11 c12 c12 c22"))
    steps = [
        ("q(s) = Delta1 Delta2 E_U N(yhat + U; mu, K); -log is convex, so Jensen gives "
         "-log2 q(s) <= -log2(Delta1 Delta2) - E_U log2 N(yhat + U; mu, K).",
         sp.Symbol("-log2 q(s) <= -log2(Delta1 Delta2) - E_U log2 N(yhat+U)")),
        ("The cell average of the quadratic form: the cross terms vanish (E U = 0) and "
         "E U U' = diag(Delta^2)/12.",
         require_equal(cell_average, quadratic + trace, "E_U quadratic form")),
        ("With mu = E Yhat and K = Cov(Yhat) + diag(Delta^2)/12, the mean over Yhat of "
         "quadratic + trace is tr(K^-1 K) = 2, which returns the log-det bound.",
         require_equal((inverse.subs({k11: cov[0, 0] + d1 ** 2 / 12, k12: cov[0, 1],
                                      k22: cov[1, 1] + d2 ** 2 / 12})
                        * (cov + sp.diag(d1 ** 2, d2 ** 2) / 12)).trace(), 2,
                       "tr(K^-1 K) = 2")),
    ]
    return Derivation("gaussian_jensen_codelength", result, (e1, e2, k11, k12, k22, d1, d2),
                      ["q the discretized Gaussian N(mu, K) integrated over cells",
                       "K positive definite", "steps > 0"], steps)
