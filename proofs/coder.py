"""Derivations of T2: the per-step error of rANS, the stream-length bounds, table quantization."""

from __future__ import annotations

import sympy as sp

from ._symbolic import log2, require_equal
from .derivation import Derivation, derivation

I, m = sp.symbols("I m", nonnegative=True)
P, S, W, K = sp.symbols("P S W K", positive=True, integer=True)
k, x, f, M = sp.symbols("k x f M", positive=True)
delta_sum = sp.Symbol("Sigma_delta", real=True)
x_final = sp.Symbol("x_m", positive=True)


@derivation("rans_length_bounds")
def rans_length_bounds() -> Derivation:
    """Result: (lower and upper for start 'lower', upper for start 'empty')."""
    eps = log2(1 + 2 ** (P - (S - W)))
    step = log2((k + 1) / k)
    flush = W * sp.ceiling(S / W)
    phi_final = (S - W) + I + delta_sum                   # Φ_m = Φ_0 + I + Σδ per lane
    length = phi_final - log2(x_final) + flush            # L = W·E + F = Φ_m - log2 x_m + F
    upper = I + m * eps + K * flush
    lower = I - m * eps + K * (flush - W)
    upper_empty = I + m * eps + P + W
    steps = [
        ("After renormalising, x_r = 2^(W e) x rounded down; with k = floor(x_r/f) the push "
         "gives x' = k M + (x_r mod f) + c < (k + 1) M, so x'/M and x/(2^(W e) f) lie in "
         "[k, k+1): one step changes Phi = log2 x + W E by log2(M/f) + delta with |delta| "
         "at most this.", sp.Le(sp.Abs(sp.Symbol("delta")), step)),
        ("That bound decreases in k (its derivative is negative for k > 0) ...",
         sp.Eq(sp.Symbol("d/dk"), sp.diff(step, k).simplify())),
        ("... and renormalisation keeps k >= 2^(S-W-P), where it equals eps.",
         require_equal(step.subs(k, 2 ** (S - W - P)), eps, "log2(1 + 1/k) at the least k")),
        ("Telescoping from Phi_0 = log2 2^(S-W) (start 'lower'); a lane's length is W E "
         "plus the flush F = W ceil(S/W).", sp.Eq(sp.Symbol("L_k"), length)),
        ("log2 x_m >= S - W and Sigma delta <= m eps give the upper end ...",
         require_equal(length.subs({x_final: 2 ** (S - W), delta_sum: m * eps}),
                       I + m * eps + flush, "upper end of one lane")),
        ("... log2 x_m < S and Sigma delta >= -m eps the lower end (strict).",
         require_equal(length.subs({x_final: 2 ** S, delta_sum: -m * eps}),
                       I - m * eps + flush - W, "lower end of one lane")),
        ("Lanes are independent stacks: lengths, informations and counts add over K lanes.",
         sp.And(sp.Lt(lower, sp.Symbol("L")), sp.Le(sp.Symbol("L"), upper))),
        ("Start 'empty' (state from 0): while x < 2^(S-W) no word is emitted and "
         "x' <= x M/f + M - f, so (x + M) M/f - (x' + M) is at least (M - f)^2 / f >= 0 ...",
         require_equal((x + M) * M / f - (x * M / f + M - f) - M, (M - f) ** 2 / f,
                       "(x+M)M/f - (xM/f + M - f) - M = (M-f)^2/f")),
        ("... so log2(x + M), P at the start, grows by at most log2(M/f) per push; the "
         "flush of ceil(bitlength(x)/W) words adds at most log2 x + W bits.",
         sp.Le(sp.Symbol("L"), upper_empty)),
    ]
    return Derivation(
        name="rans_length_bounds", result=sp.Tuple(lower, upper, upper_empty),
        symbols=(I, m, P, S, W, K),
        assumptions=["integer frequencies f >= 1 summing to M = 2^P", "P <= W, P <= S - W",
                     "push: x -> floor(x/f) M + (x mod f) + c(s), after emitting the low W "
                     "bits when x >= f 2^(S-P)",
                     "start 'lower': K lanes from 2^(S-W), each flushed as ceil(S/W) words",
                     "start 'empty': one lane from 0, flushing only significant words",
                     "I = sum log2(M / f(s_i)), m symbols"],
        steps=steps)


@derivation("table_quantization_cost")
def table_quantization_cost() -> Derivation:
    """E_q[log2(q 2^b / f)] = D(q || f/2^b), on a three-symbol alphabet."""
    q = sp.symbols("q1:4", positive=True)
    fs = sp.symbols("f1:4", positive=True)
    b = sp.Symbol("b", positive=True)
    cost = sum(qi * log2(qi * 2 ** b / fi) for qi, fi in zip(q, fs))
    kl = sum(qi * log2(qi / (fi / 2 ** b)) for qi, fi in zip(q, fs))
    steps = [("Coding s with f(s)/2^b instead of q(s) changes -log2 by log2(q 2^b / f); "
              "average under q.", sp.Eq(sp.Symbol("Delta"), cost)),
             ("Which is the divergence of q from the table read as a pmf (sum f = 2^b), "
              ">= 0 by Gibbs' inequality.", require_equal(cost, kl, "E_q cost = D(q||f/2^b)"))]
    return Derivation("table_quantization_cost", cost, (*q, *fs, b),
                      ["f >= 1 integers with f1 + f2 + f3 = 2^b", "q a pmf"], steps)
