"""Derivations of T1: Gibbs' identity, Gibbs' inequality, V-entropy and the two-part rate."""

from __future__ import annotations

import sympy as sp

from ._symbolic import log2, require_equal
from .derivation import Derivation, derivation

ALPHABET = 3


def _pmf_symbols(name: str, size: int = ALPHABET):
    return sp.symbols(f"{name}1:{size + 1}", positive=True)


def _entropy(p):
    return -sum(pi * log2(pi) for pi in p)


def _cross(p, q):
    return -sum(pi * log2(qi) for pi, qi in zip(p, q))


def _kl(p, q):
    return sum(pi * log2(pi / qi) for pi, qi in zip(p, q))


@derivation("kl_divergence")
def kl_divergence() -> Derivation:
    """D(p||q) = sum p log2(p/q) >= 0, from ln x <= x - 1."""
    p, q = _pmf_symbols("p"), _pmf_symbols("q")
    x = sp.Symbol("x", positive=True)
    slack = x - 1 - sp.log(x)
    steps = [
        ("Definition on a three-symbol alphabet.", sp.Eq(sp.Symbol("D"), _kl(p, q))),
        ("The function x - 1 - ln x is stationary only at x = 1 ...",
         sp.Eq(sp.Symbol("x*"), sp.solve(sp.diff(slack, x), x)[0])),
        ("... where it is 0 and convex (second derivative 1/x^2 > 0), so ln x <= x - 1.",
         sp.Eq(sp.diff(slack, x, 2), 1 / x ** 2)),
        ("Hence -D ln 2 = sum p ln(q/p) <= sum p (q/p - 1) = sum q - sum p = 0 (pmfs).",
         sp.Le(sum(pi * sp.log(qi / pi) for pi, qi in zip(p, q)),
               sum(qi - pi for pi, qi in zip(p, q)))),
    ]
    return Derivation("kl_divergence", _kl(p, q), (*p, *q),
                      ["p, q pmfs on a finite alphabet", "q > 0 on the support of p"], steps)


@derivation("rate_entropy_gap")
def rate_entropy_gap() -> Derivation:
    """E_p[-log q] = H(p) + D(p||q): split log q = log p - log(p/q)."""
    p, q = _pmf_symbols("p"), _pmf_symbols("q")
    rate = _cross(p, q)
    steps = [
        ("The rate of model q on source p.", sp.Eq(sp.Symbol("R"), rate)),
        ("Write -log q = -log p + log(p/q) in every term; the difference vanishes.",
         require_equal(rate, _entropy(p) + _kl(p, q), "E[-log q] = H + D")),
    ]
    return Derivation("rate_entropy_gap", _entropy(p) + _kl(p, q), (*p, *q),
                      ["p, q pmfs on a finite alphabet", "q > 0 on the support of p"], steps)


@derivation("v_entropy")
def v_entropy() -> Derivation:
    """H_V = min over V of the rate = H + min over V of D, for V = {a, b}."""
    p, a, b = _pmf_symbols("p"), _pmf_symbols("a"), _pmf_symbols("b")
    h = _entropy(p)
    steps = [
        ("Each member's rate is H + D (rate_entropy_gap), with H common to all members.",
         require_equal(_cross(p, a), h + _kl(p, a), "rate of a")),
        ("So the minimum rate is H plus the minimum divergence, and the gap is >= 0 by Gibbs.",
         sp.Eq(sp.Min(_cross(p, a), _cross(p, b)), h + sp.Min(_kl(p, a), _kl(p, b)))),
    ]
    return Derivation("v_entropy", h + sp.Min(_kl(p, a), _kl(p, b)), (*p, *a, *b),
                      ["V = {a, b}: two pmfs positive on the support of p"], steps)


@derivation("two_part_rate")
def two_part_rate() -> Derivation:
    """Hyperprior: S in {1..4}, Z = phi(S) with phi = (1, 1, 2, 2)."""
    p = sp.symbols("p1:5", positive=True)
    qz, qa, qb = sp.symbols("q_z q_a q_b", positive=True)      # q_Z(1), q(1|1), q(3|2)
    q_z = (qz, qz, 1 - qz, 1 - qz)                             # q_Z(phi(s))
    q_cond = (qa, 1 - qa, qb, 1 - qb)                          # q(s | phi(s))
    pz = (p[0] + p[1], p[2] + p[3])
    p_z = (pz[0], pz[0], pz[1], pz[1])
    lhs = _cross(p, q_z) + _cross(p, q_cond)
    h, gap_z = _entropy(p), _kl(pz, (qz, 1 - qz))
    gap_cond = sum(p_z[s] * (p[s] / p_z[s]) * log2((p[s] / p_z[s]) / q_cond[s]) for s in range(4))
    steps = [
        ("Two-part rate: code Z with q_Z, then S with q(.|Z).", sp.Eq(sp.Symbol("R"), lhs)),
        ("Chain rule, since Z is a function of S: H(S) = H(Z) + H(S|Z).",
         require_equal(h, _entropy(pz) - sum(pi * log2(pi / pzi) for pi, pzi in zip(p, p_z)),
                       "H(S) = H(Z) + H(S|Z)")),
        ("Gibbs on each part: E[-log q_Z] = H(Z) + D(p_Z||q_Z), "
         "E[-log q(S|Z)] = H(S|Z) + E_Z D(p_{S|Z}||q_{S|Z}); the sum is the claim.",
         require_equal(lhs, h + gap_z + gap_cond, "two-part decomposition")),
    ]
    return Derivation("two_part_rate", h + gap_z + gap_cond, (*p, qz, qa, qb),
                      ["Z = phi(S) deterministic", "q_Z > 0 and q(s|phi(s)) > 0 where p > 0"],
                      steps)
