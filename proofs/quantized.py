"""Derivations of T5: the quantized Laplace entropy in closed form, the high-resolution
limit and the Gish–Pierce gap."""

from __future__ import annotations

import functools

import sympy as sp

from ._symbolic import log2, require_equal
from .derivation import Derivation, derivation


@functools.cache
def _laplace_closed_form():
    b, step = sp.symbols("b Delta", positive=True)
    y, r = sp.symbols("y r", positive=True)
    k = sp.Symbol("k", integer=True, positive=True)
    density = sp.exp(-y / b) / (2 * b)                        # Laplace(0, b) for y >= 0
    p0 = 2 * sp.integrate(density, (y, 0, step / 2))
    pk = sp.integrate(density, (y, (k - sp.Rational(1, 2)) * step, (k + sp.Rational(1, 2)) * step))
    root = sp.exp(-step / (2 * b))                            # sqrt(r), r = exp(-step/b)
    geometric = sp.summation(r ** k, (k, 1, sp.oo)).args[0][0]
    weighted = sp.summation(k * r ** k, (k, 1, sp.oo)).args[0][0]
    # sum_{k>=1} P_k ln P_k with P_k = (1 - r) r^(k - 1/2) / 2 = A r^k, ln P_k = ln A + k ln r
    amplitude = (1 - r) / (2 * sp.sqrt(r))
    tail = amplitude * (geometric * sp.log(amplitude) + weighted * sp.log(r))
    nats = -p0 * sp.log(p0) - 2 * tail.subs(r, root ** 2)
    return (b, step), p0, pk, nats, (geometric, weighted)


def _gaussian_entropy_nats(sigma):
    """``-int N(y; 0, sigma^2) ln N(y; 0, sigma^2) dy``, integrated by sympy."""
    y = sp.Symbol("y", real=True)
    gauss = sp.exp(-y ** 2 / (2 * sigma ** 2)) / sp.sqrt(2 * sp.pi * sigma ** 2)
    integrand = sp.expand(-gauss * sp.expand_log(sp.log(gauss), force=True))
    return sp.simplify(sp.integrate(integrand, (y, -sp.oo, sp.oo)))


@derivation("laplace_quantized_entropy")
@functools.cache                       # a few seconds of sympy: build once
def laplace_quantized_entropy() -> Derivation:
    """Summing -P log P over the geometric cell probabilities of a quantized Laplace."""
    (b, step), p0, pk, nats, (geometric, weighted) = _laplace_closed_form()
    k, r = sp.Symbol("k", integer=True, positive=True), sp.Symbol("r", positive=True)
    steps = [
        ("Central cell: P_0 = 2 int_0^{Delta/2} exp(-y/b)/(2b) dy.", sp.Eq(sp.Symbol("P_0"), p0)),
        ("Cell k >= 1 (and, by symmetry, -k): P_k = (1 - r) r^(k - 1/2) / 2, r = exp(-Delta/b).",
         require_equal(pk, (1 - sp.exp(-step / b))
                       * sp.exp(-step / b) ** (k - sp.Rational(1, 2)) / 2,
                       "geometric cells")),
        ("Geometric series for 0 < r < 1.",
         sp.Tuple(sp.Eq(sp.Sum(r ** k, (k, 1, sp.oo)), geometric),
                  sp.Eq(sp.Sum(k * r ** k, (k, 1, sp.oo)), weighted))),
        ("H = -P_0 ln P_0 - 2 sum_{k>=1} P_k ln P_k, in bits:",
         sp.Eq(sp.Symbol("H"), nats / sp.log(2))),
    ]
    return Derivation("laplace_quantized_entropy", nats / sp.log(2), (b, step),
                      ["Y ~ Laplace(0, b)", "S = round(Y / Delta)"], steps)


@derivation("high_resolution_entropy")
@functools.cache                       # a few seconds of sympy: build once
def high_resolution_entropy() -> Derivation:
    """H(round(Y/Delta)) = h(Y) - log2 Delta + o(1); Gaussian gap to R(D) = 1/2 log2(pi e/6)."""
    (b, step), _, _, nats, _ = _laplace_closed_form()
    sigma = sp.Symbol("sigma", positive=True)
    h_gauss = _gaussian_entropy_nats(sigma) / sp.log(2)
    approximation = h_gauss - log2(step)
    x = sp.Symbol("x", positive=True)
    laplace_error = sp.expand(sp.expand_log(
        (nats / sp.log(2) - log2(2 * sp.E * b) + log2(step)).subs(step, x * b), force=True))
    rate = log2(sigma ** 2 / (step ** 2 / 12)) / 2                 # R(D) at D = Delta^2/12
    gap = approximation - rate
    steps = [
        ("Mean value theorem: P_k = Delta p(xi_k), so H = -sum Delta p(xi_k) log2 p(xi_k) "
         "- log2 Delta -> h(Y) - log2 Delta as Delta -> 0 (Riemann sum; Cover & Thomas 8.3.1).",
         sp.Symbol("H(S) = h(Y) - log2(Delta) + o(1)")),
        ("Check on the exact Laplace closed form (x = Delta/b): the error of h - log2 Delta "
         "is O(x^2 log x), so it tends to 0.",
         sp.Eq(sp.Symbol("H - (h - log2 Delta)"), sp.series(laplace_error, x, 0, 2))),
        ("Gaussian differential entropy -int N ln N, in bits.", sp.Eq(sp.Symbol("h(Y)"), h_gauss)),
        ("The MSE of the quantizer is Delta^2/12; the Gaussian R(D) there is "
         "1/2 log2(12 sigma^2 / Delta^2); the high-resolution rate exceeds it by the "
         "Gish-Pierce constant:",
         require_equal(gap, log2(sp.pi * sp.E / 6) / 2, "Gish-Pierce gap")),
    ]
    return Derivation("high_resolution_entropy", approximation, (sigma, step),
                      ["Y ~ N(mu, sigma^2) (the result); any Riemann-integrable density for "
                       "the limit", "Delta -> 0"], steps)



@derivation("quantized_entropy")
def quantized_entropy() -> Derivation:
    """The case of the general sum that has a closed form: Laplace, cells centred on the mode.

    Gaussian and logistic sums have no closed form; the tests check them
    against 80-digit mpmath sums instead.
    """
    laplace = laplace_quantized_entropy()
    return Derivation("quantized_entropy", laplace.result, laplace.symbols,
                      laplace.assumptions + ["dist = 'laplace', loc = 0 (the closed-form case)"],
                      laplace.steps)


@derivation("differential_entropy")
def differential_entropy() -> Derivation:
    """h(Y) = -int p log2 p for the Gaussian (the result) and the Laplace law (a step)."""
    sigma, b = sp.symbols("sigma b", positive=True)
    h_gauss = _gaussian_entropy_nats(sigma)
    t = sp.Symbol("t", positive=True)
    laplace = sp.exp(-t / b) / (2 * b)                       # symmetric: twice the half-line
    integrand = -laplace * sp.expand_log(sp.log(laplace), force=True)
    h_laplace = sp.simplify(2 * sp.integrate(integrand, (t, 0, sp.oo)))
    steps = [
        ("Gaussian: -int N(y; 0, sigma^2) ln N dy (nats).",
         require_equal(h_gauss, sp.log(2 * sp.pi * sp.E * sigma ** 2) / 2, "Gaussian entropy")),
        ("Laplace: -int exp(-|y|/b)/(2b) ln(...) dy = 1 + ln(2b) nats.",
         require_equal(h_laplace, 1 + sp.log(2 * b), "Laplace entropy")),
        ("In bits, divide by ln 2; the scale enters as + log2(scale).",
         sp.Eq(sp.Symbol("h(Y)"), h_gauss / sp.log(2))),
    ]
    return Derivation("differential_entropy", h_gauss / sp.log(2), (sigma,),
                      ["Y ~ N(mu, sigma^2) (result); Laplace(mu, b) in step 2"], steps)
