"""Derivations of T4: the bounded difference of the plug-in entropy and McDiarmid's radius."""

from __future__ import annotations

import sympy as sp

from ._symbolic import log2, require_equal
from .derivation import Derivation, derivation


def _binary_entropy_bits(x):
    return -(x * log2(x) + (1 - x) * log2(1 - x))


def _sensitivity_bits(samples):
    """c(M) = h_b(1/M) in bits, the closed form derived below."""
    return _binary_entropy_bits(1 / samples)


@derivation("plugin_entropy_sensitivity")
def plugin_entropy_sensitivity() -> Derivation:
    """Changing one of M samples changes the plug-in entropy by at most h_b(1/M)."""
    big_m = sp.Symbol("M", positive=True)
    k, n_a, n_b = sp.symbols("k n_a n_b", positive=True)

    def g(x):
        return (x + 1) * sp.log(x + 1) - x * sp.log(x)

    def t(x):                                    # n log n, the count's term in M ln M - M Hhat
        return x * sp.log(x)

    change = -(t(n_a - 1) - t(n_a) + t(n_b + 1) - t(n_b)) / big_m    # Hhat' - Hhat, nats
    steps = [
        ("Plug-in entropy in nats: Hhat = ln M - (1/M) sum_i n_i ln n_i. Moving one sample "
         "from symbol a to symbol b changes it by (g(n_a - 1) - g(n_b)) / M with "
         "g(k) = (k+1) ln(k+1) - k ln k.",
         require_equal(change, (g(n_a - 1) - g(n_b)) / big_m, "one-sample change")),
        ("g is increasing (g'(k) = ln((k+1)/k) > 0) and g(0) = 0.",
         require_equal(sp.diff(g(k), k), sp.log(k + 1) - sp.log(k), "g'")),
        ("n_a - 1 and n_b lie in [0, M-1], so |change| <= g(M-1)/M, attained by moving one "
         "sample out of a constant sequence; g(M-1)/M is the binary entropy of 1/M:",
         require_equal(g(big_m - 1) / big_m,
                       -(sp.log(1 / big_m) / big_m + (1 - 1 / big_m) * sp.log(1 - 1 / big_m)),
                       "g(M-1)/M = h_b(1/M)")),
        ("ln(1 + x) <= x gives (M-1) ln(M/(M-1)) <= 1, so c(M) <= ln(eM)/M nats.",
         sp.Le((big_m - 1) * sp.log(big_m / (big_m - 1)), 1)),
    ]
    return Derivation("plugin_entropy_sensitivity", _sensitivity_bits(big_m), (big_m,),
                      ["M >= 2 samples; two samples sets differing in one position"], steps)


@derivation("marginal_entropy_floor")
def marginal_entropy_floor() -> Derivation:
    """McDiarmid over N i.i.d. sequences, solved for the one-sided radius."""
    n, m, big_n = sp.symbols("n m N", positive=True)
    delta, eps, c = sp.symbols("delta epsilon c", positive=True)
    per_sequence = n * m * c
    tail = sp.exp(-2 * eps ** 2 / (big_n * per_sequence ** 2))
    radius = [r for r in sp.solve(sp.Eq(tail, delta), eps) if r.is_positive is not False][0]
    result = radius.subs(c, _sensitivity_bits(big_n * m))
    steps = [
        ("E Hhat_j <= H(S_j): E phat_j = pbar_j even for dependent tokens, and H is concave "
         "(Jensen).", sp.Symbol("E[Hhat_j] <= H(pbar_j)")),
        ("One sequence changes m tokens in each of n channels; chaining one-token changes, "
         "sum_j Hhat_j moves by at most n m c with c = c(N m).",
         sp.Eq(sp.Symbol("c_i"), per_sequence)),
        ("McDiarmid over N independent sequences, UPPER tail: P(sum Hhat - E sum Hhat >= "
         "eps) <= exp(-2 eps^2 / sum_i c_i^2). The floor sum Hhat - eps fails only when the "
         "plug-in lies more than eps above its mean (otherwise sum Hhat - eps <= E sum Hhat "
         "<= sum_j H(S_j) by the first step). Set the tail equal to delta and solve for eps:",
         sp.Eq(eps, radius)),
        ("Substitute c = h_b(1/(N m)) (plugin_entropy_sensitivity).", sp.Eq(eps, result)),
    ]
    return Derivation("marginal_entropy_floor", result, (n, m, big_n, delta),
                      ["N i.i.d. sequences of m tokens, n channels", "0 < delta < 1"], steps)
