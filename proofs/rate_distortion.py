"""Derivations of T6: reverse water-filling by KKT, and the Shannon lower bound."""

from __future__ import annotations

import sympy as sp

from ._symbolic import log2, require_equal
from .derivation import Derivation, derivation


@derivation("gaussian_rate_distortion")
def gaussian_rate_distortion() -> Derivation:
    """Reverse water-filling for three components with sorted eigenvalues l1 <= l2 <= l3."""
    lam = sp.symbols("lambda1:4", positive=True)
    d, nu, theta = sp.symbols("D nu theta", positive=True)
    parts = sp.symbols("D1:4", positive=True)
    lagrangian = sum(log2(li / di) / 2 for li, di in zip(lam, parts)) + nu * (sum(parts) - d)
    stationary = sp.solve(sp.diff(lagrangian, parts[0]), parts[0])[0]
    # theta on each linear piece of sum_i min(theta, lambda_i) = D
    pieces = [sp.solve(sum(lam[:k]) + (3 - k) * theta - d, theta)[0] for k in range(3)]
    level = sp.Piecewise((pieces[0], d < 3 * lam[0]),
                         (pieces[1], d < lam[0] + 2 * lam[1]),
                         (pieces[2], d < lam[0] + lam[1] + lam[2]),
                         (lam[2], True))
    result = sum(sp.Max(0, log2(li / level) / 2) for li in lam)
    steps = [
        ("Minimise sum 1/2 log2(lambda_i / D_i) subject to sum D_i = D, 0 <= D_i <= lambda_i; "
         "the Lagrangian of the active constraints:", sp.Eq(sp.Symbol("L"), lagrangian)),
        ("Stationarity in D_i gives the same value for every active component: "
         "D_i = 1/(2 nu ln 2) =: theta.", sp.Eq(parts[0], stationary)),
        ("Components with lambda_i < theta are clipped (D_i = lambda_i, zero rate); "
         "theta solves sum_i min(theta, lambda_i) = D, piecewise linear in theta.",
         sp.Eq(theta, level)),
        ("Rate: each component contributes max(0, 1/2 log2(lambda_i / theta)).",
         sp.Eq(sp.Symbol("R"), result)),
    ]
    return Derivation("gaussian_rate_distortion", result, (*lam, d),
                      ["Gaussian source, eigenvalues sorted lambda1 <= lambda2 <= lambda3",
                       "D = total squared error > 0"], steps)


@derivation("shannon_lower_bound")
def shannon_lower_bound() -> Derivation:
    """R(D) >= h(Y) - n/2 log2(2 pi e D / n)."""
    h, d = sp.Symbol("h", real=True), sp.Symbol("D", positive=True)
    n = sp.Symbol("n", positive=True, integer=True)
    variances = sp.symbols("v1:4", positive=True)
    nu = sp.Symbol("nu", positive=True)
    three = sum(log2(2 * sp.pi * sp.E * v) / 2 for v in variances)
    stationary = sp.solve([sp.diff(three - nu * (sum(variances) - d), v) for v in variances]
                          + [sum(variances) - d], [*variances, nu], dict=True)[0]
    result = h - n * log2(2 * sp.pi * sp.E * d / n) / 2
    steps = [
        ("I(Y; Yhat) = h(Y) - h(Y | Yhat) >= h(Y) - h(Y - Yhat) (conditioning reduces entropy).",
         sp.Symbol("I(Y;Yhat) >= h(Y) - h(Y - Yhat)")),
        ("h(Y - Yhat) <= sum_i 1/2 log2(2 pi e v_i) with sum v_i <= D (Gaussian maximises "
         "entropy; Hadamard). Maximising over v (n = 3 shown) gives equal shares v_i = D/n:",
         sp.Eq(sp.Tuple(*variances), sp.Tuple(*(stationary[v] for v in variances)))),
        ("At v_i = D/n the bound is n/2 log2(2 pi e D / n).",
         require_equal(three.subs(stationary), 3 * log2(2 * sp.pi * sp.E * d / 3) / 2,
                       "equal shares")),
    ]
    return Derivation("shannon_lower_bound", result, (h, n, d),
                      ["Y has a density, h(Y) finite (bits)", "D = total squared error > 0"],
                      steps)
