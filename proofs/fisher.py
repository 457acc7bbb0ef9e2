"""T7 (an APPROXIMATION, not a bound): the second-order distortion of uniform
quantization errors, and the Lagrangian / KKT allocation of steps that
minimises the high-resolution rate at a given ΔCE."""

from __future__ import annotations

import sympy as sp

from .derivation import Derivation, derivation

F = sp.Symbol("F", positive=True)          # F_jj of one channel
Delta = sp.Symbol("Delta", positive=True)  # its step
D = sp.Symbol("D", positive=True)          # total ΔCE target, nats
n = sp.Symbol("n", positive=True)          # number of channels
h = sp.Symbol("h", real=True)              # h(Y_j), bits
theta = sp.Symbol("theta", positive=True)  # water level (distortion per unclipped channel)
d = sp.Symbol("d", positive=True)          # distortion of one channel
lam = sp.Symbol("lambda", positive=True)
mu = sp.Symbol("mu", nonnegative=True)

_APPROX = [
    "APPROXIMATION: ΔCE ≈ ½ E[eᵀ F e] (second-order Taylor of the loss in Y)",
    "errors e_j independent, uniform on [-Δ_j/2, Δ_j/2] (high resolution or dither)",
]
_RATE = _APPROX + ["high-resolution rate of channel j: h(Y_j) - log2 Δ_j bits (T5)"]


@derivation("predicted_delta_ce")
def predicted_delta_ce() -> Derivation:
    e = sp.Symbol("e", real=True)
    second_moment = sp.integrate(e ** 2 / Delta, (e, -Delta / 2, Delta / 2))
    result = sp.Rational(1, 2) * F * second_moment
    return Derivation(
        name="predicted_delta_ce", result=result, symbols=(F, Delta),
        assumptions=_APPROX,
        steps=[("Independent zero-mean errors: E[e_i e_j] = 0 for i != j, so "
                "½ E[eᵀFe] = ½ Σ_j F_jj E[e_j²].", sp.Symbol("½ Σ_j F_jj E[e_j²]")),
               ("Second moment of the uniform error on a cell of width Δ.",
                sp.Eq(sp.Symbol("E[e²]"), second_moment)),
               ("Contribution of one channel, in nats; ΔCE is the sum over j.", result)])


def _channel_rate(distortion):
    """h - log2 Δ with Δ from distortion = F Δ² / 24."""
    step = sp.sqrt(24 * distortion / F)
    return h - sp.log(step, 2)


@derivation("fisher_step_allocation")
def fisher_step_allocation() -> Derivation:
    rate = sp.expand_log(_channel_rate(d), force=True)
    stationarity = sp.Eq(sp.diff(rate + lam * d, d), 0)
    (d_star,) = sp.solve(stationarity, d)
    equal = sp.Eq(n * d_star, D)
    (lam_star,) = sp.solve(equal, lam)
    per_channel = sp.simplify(d_star.subs(lam, lam_star))
    assert sp.simplify(per_channel - D / n) == 0
    (step,) = [s for s in sp.solve(sp.Eq(F * Delta ** 2 / 24, per_channel), Delta)
               if s.is_positive is not False]
    ceiling = F * 2 ** (2 * h) / 24
    assert sp.simplify(_channel_rate(ceiling)) == 0
    kkt = sp.Eq(sp.diff(rate + lam * d + mu * (d - ceiling), d), 0)
    clipped_step = sp.sqrt(24 * sp.Min(theta, ceiling) / F)
    return Derivation(
        name="fisher_step_allocation", result=step, symbols=(D, n, F),
        assumptions=_RATE + ["minimise Σ_j (h(Y_j) - log2 Δ_j) subject to "
                             "Σ_j F_jj Δ_j²/24 = D (T7)"],
        steps=[("Change variables to the channel distortion d = F Δ²/24; the rate of a "
                "channel is convex and decreasing in d.", sp.Eq(sp.Symbol("r(d)"), rate)),
               ("Lagrangian Σ_j r(d_j) + λ(Σ_j d_j - D): stationarity in d_j.",
                stationarity),
               ("The solution does not depend on j: equal distortion per channel.",
                sp.Eq(d, d_star)),
               ("The budget Σ_j d_j = D fixes λ, so d_j = D/n.", sp.Eq(d, per_channel)),
               ("Back to steps: Δ_j² = 24 D / (n F_jj).", sp.Eq(Delta, step)),
               ("A channel's rate reaches 0 at d = c_j; beyond it the channel gets no "
                "bits, so add the constraint d_j <= c_j with multiplier μ_j >= 0.",
                sp.Eq(sp.Symbol("c_j"), ceiling)),
               ("KKT stationarity with μ_j (c_j - d_j) = 0: either μ_j = 0 and "
                "d_j = 1/(2 λ ln 2) = θ < c_j, or d_j = c_j with μ_j = 1/(2 c_j ln 2) - λ "
                ">= 0, i.e. c_j <= θ.", kkt),
               ("Water-filling: F_jj Δ_j²/24 = min(θ, c_j) with Σ_j min(θ, c_j) = D "
                "(θ = D/n when no channel is clipped).", sp.Eq(Delta, clipped_step))])


@derivation("predicted_rate_curve")
def predicted_rate_curve() -> Derivation:
    at_level = sp.expand_log(_channel_rate(theta), force=True)
    equal = sp.expand_log(_channel_rate(D / n), force=True)
    target = h + sp.log(n * F / (24 * D)) / (2 * sp.log(2))
    assert sp.simplify(sp.expand_log(equal - target, force=True)) == 0
    return Derivation(
        name="predicted_rate_curve", result=target, symbols=(h, F, D, n),
        assumptions=_RATE + ["the allocation of fisher_step_allocation"],
        steps=[("Rate of an unclipped channel at water level θ (clipped channels: 0).",
                sp.Eq(sp.Symbol("r_j"), sp.Max(0, at_level))),
               ("With no channel clipped θ = D/n; R_pred(D) is the sum over j of",
                target)])
