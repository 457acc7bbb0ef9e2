"""T10: the power-iteration estimate is a Rayleigh quotient (a lower bound on
the spectral norm), the change of variables for entropy, and the determinant
bound by the largest singular value."""

from __future__ import annotations

import sympy as sp

from .derivation import Derivation, derivation

h = sp.Symbol("h", real=True)          # h(X), bits
L = sp.Symbol("L", real=True)          # E log2 |det J_f(X)|
n = sp.Symbol("n", positive=True)
s = sp.Symbol("s", positive=True)      # sup_x ||J_f(x)||_2


@derivation("jacobian_spectral_norm")
def jacobian_spectral_norm() -> Derivation:
    """Two singular values suffice: J^T J = diag(l1, l2) in its eigenbasis."""
    l1, l2 = sp.symbols("lambda_1 lambda_2", positive=True)
    a, b = sp.symbols("a b", real=True)
    k = sp.Symbol("k", nonnegative=True, integer=True)
    v = sp.Matrix([l1 ** k * a, l2 ** k * b])            # (J^T J)^k v_0, unnormalised
    gram = sp.diag(l1, l2)
    rayleigh = sp.simplify((v.T * gram * v)[0] / (v.T * v)[0])
    gap = sp.factor(sp.simplify(l1 - rayleigh))
    assert sp.simplify(gap - (l1 - l2) * l2 ** (2 * k) * b ** 2
                       / (l1 ** (2 * k) * a ** 2 + l2 ** (2 * k) * b ** 2)) == 0
    result = sp.sqrt(rayleigh)
    return Derivation(
        name="jacobian_spectral_norm", result=result, symbols=(l1, l2, a, b, k),
        assumptions=["J^T J has eigenvalues lambda_1 >= lambda_2 >= 0 (squared singular "
                     "values); two suffice to show the mechanism",
                     "v_0 = (a, b) in the eigenbasis, a != 0"],
        steps=[("After k steps the direction is (J^T J)^k v_0.", v),
               ("The estimate squared is the Rayleigh quotient ||J v||^2 / ||v||^2.",
                sp.Eq(sp.Symbol("sigmahat") ** 2, rayleigh)),
               ("Its gap to lambda_1 = ||J||_2^2 is >= 0 (a lower bound) and shrinks like "
                "(lambda_2/lambda_1)^(2k).", sp.Eq(l1 - sp.Symbol("sigmahat") ** 2, gap)),
               ("The estimate.", sp.Eq(sp.Symbol("sigmahat"), result))])


@derivation("logdet_entropy_bound")
def logdet_entropy_bound() -> Derivation:
    x, y = sp.symbols("x y", real=True)
    sigma, c = sp.symbols("sigma c", positive=True)
    density = sp.exp(-x ** 2 / (2 * sigma ** 2)) / sp.sqrt(2 * sp.pi * sigma ** 2)
    entropy = lambda p, var: sp.simplify(  # noqa: E731
        -sp.integrate(p * sp.log(p, 2), (var, -sp.oo, sp.oo)))
    h_x = entropy(density, x)
    mapped = density.subs(x, y / c) / c                   # density of c X at y
    h_y = entropy(sp.expand_log(mapped, force=True), y)
    assert sp.simplify(sp.expand_log(h_y - h_x - sp.log(c, 2), force=True)) == 0
    return Derivation(
        name="logdet_entropy_bound", result=h + L, symbols=(h, L),
        assumptions=["f invertible and differentiable, X with a density",
                     "L = E log2 |det J_f(X)| finite"],
        steps=[("Change of variables: the density of Y = f(X) at f(x).",
                sp.Eq(sp.Symbol("p_Y(f(x))"), sp.Symbol("p_X(x)") / sp.Symbol("|det J_f(x)|"))),
               ("So -log p_Y(f(X)) = -log p_X(X) + log|det J_f(X)|; take expectations.",
                sp.Eq(sp.Symbol("h(f(X))"), h + L)),
               ("Check on a scalar Gaussian, f(x) = c x: h(X) is", h_x),
               ("and h(cX) = h(X) + log2 c, as the formula says:", h_y)])


@derivation("entropy_after_map_bound")
def entropy_after_map_bound() -> Derivation:
    singular = sp.IndexedBase("sigma")
    i = sp.Symbol("i", integer=True, positive=True)
    logdet = sp.Sum(sp.log(singular[i], 2), (i, 1, n))
    result = h + n * sp.log(s, 2)
    return Derivation(
        name="entropy_after_map_bound", result=result, symbols=(h, n, s),
        assumptions=["the assumptions of logdet_entropy_bound",
                     "s >= ||J_f(x)||_2 = sigma_max(J_f(x)) for every x (an upper bound; "
                     "a power-iteration estimate is a lower bound and does not qualify)"],
        steps=[("|det J| is the product of the singular values.",
                sp.Eq(sp.Symbol("log2|det J|"), logdet)),
               ("Each singular value is at most sigma_max <= s, and log is increasing.",
                sp.Le(logdet, n * sp.log(s, 2))),
               ("Insert into h(f(X)) = h(X) + E log2|det J_f(X)|.",
                sp.Le(sp.Symbol("h(f(X))"), result))])
