"""T8: betting confidence intervals (Waudby-Smith & Ramdas 2023) — the capital
process is a nonnegative martingale under the true mean, Ville's inequality
turns it into a confidence set, and the plug-in bet is the maximiser of the
capital's quadratic lower bound.

What sympy checks: the one-step conditional expectation of a capital factor
is 1 under the true mean (martingale), the factor is >= 1 - c under the
truncation (nonnegative), the hedged maximum is dominated by the convex
combination (a martingale started at 1), the rejection threshold on the
log-capital, and the bet ``sqrt(2 ln(1/alpha) / (N sigma^2))``. Ville's
inequality itself (``P(sup_t M_t >= 1/alpha) <= alpha`` for a nonnegative
supermartingale with ``M_0 = 1``) is a premise, cited.
"""

from __future__ import annotations

import sympy as sp

from .derivation import Derivation, derivation

delta = sp.Symbol("delta", positive=True)
theta = sp.Symbol("theta", positive=True)           # hedge weight of K^+
lam = sp.Symbol("lambda", nonnegative=True)         # the bet at step t
m = sp.Symbol("m", positive=True)                   # candidate mean (units of B = 1)
mu = sp.Symbol("mu", positive=True)                 # the true mean
c = sp.Symbol("c", positive=True)                   # truncation, 0 < c < 1
z = sp.Symbol("Z_t", nonnegative=True)              # the new value, in [0, 1]
N = sp.Symbol("N", positive=True)
sigma2 = sp.Symbol("sigma^2", positive=True)        # plug-in variance before step t
alpha = sp.Symbol("alpha", positive=True)           # miscoverage a capital process spends
Kp, Km = sp.symbols("K^+_t K^-_t", nonnegative=True)

_PREMISES = [
    "Z_i = X_i / B in [0, 1], i.i.d. with mean mu (more generally E[Z_t | past] = mu)",
    "bets lambda_t are predictable: functions of Z_1..Z_{t-1} (and the candidate m) only",
    "truncation: lambda^+_t(m) <= c/m and lambda^-_t(m) <= c/(1 - m), 0 < c < 1",
    "Ville (1939): a nonnegative supermartingale M with M_0 = 1 has "
    "P(sup_t M_t >= 1/alpha) <= alpha",
    "0 < delta < 1",
]


def bet_expression(level=alpha) -> sp.Expr:
    """The plug-in bet: maximiser of the capital's quadratic lower bound (see steps)."""
    # ln(1 + y) >= y - y^2/2 for small |y|, so after N bets of size lambda,
    # E ln K >= N lambda (mean - m) - N lambda^2 sigma^2 / 2: the radius that
    # reaches ln(1/alpha) is r(lambda) = (ln(1/alpha) + N lambda^2 sigma^2 / 2) / (N lambda).
    radius = (sp.log(1 / level) + N * lam ** 2 * sigma2 / 2) / (N * lam)
    (best,) = [root for root in sp.solve(sp.diff(radius, lam), lam)
              if not root.could_extract_minus_sign()]
    return sp.simplify(best)


def _martingale_steps(sign: int) -> list:
    """E[factor | past] = 1 at the true mean, and factor >= 1 - c."""
    factor = 1 + sign * lam * (z - m)
    expected = sp.expand(factor.subs(z, mu))            # linear in Z_t: E[f(Z_t)] = f(E Z_t)
    at_truth = expected.subs(m, mu)
    assert sp.simplify(at_truth - 1) == 0
    # Worst case of the factor over Z_t in [0, 1] at the largest allowed bet.
    if sign > 0:
        worst = factor.subs({z: 0, lam: c / m})
    else:
        worst = factor.subs({z: 1, lam: c / (1 - m)})
    worst = sp.simplify(worst)
    assert sp.simplify(worst - (1 - c)) == 0
    name = "K^+" if sign > 0 else "K^-"
    return [(f"One factor of {name}: it is linear in Z_t, so its conditional "
             f"expectation replaces Z_t by mu.", sp.Eq(sp.Symbol("E[factor]"), expected)),
            (f"At the true mean m = mu the factor has expectation 1: {name} is a "
             f"martingale started at 1.", sp.Eq(sp.Symbol("E[factor]"), at_truth)),
            ("At the largest bet the truncation allows, the factor's worst case over "
             "Z_t in [0, 1] is 1 - c > 0: the capital stays positive.",
             sp.Eq(sp.Symbol("factor_min"), worst))]


def _bet_steps(level) -> list:
    radius = (sp.log(1 / level) + N * lam ** 2 * sigma2 / 2) / (N * lam)
    best = bet_expression(level)
    assert sp.simplify(sp.diff(radius, lam).subs(lam, best)) == 0
    return [("ln(1 + y) >= y - y^2/2 near 0: N bets of size lambda earn about "
             "N lambda (Zbar - m) - N lambda^2 sigma^2/2, so the smallest gap Zbar - m "
             "they reject at level alpha is r(lambda).", sp.Eq(sp.Symbol("r"), radius)),
            ("Minimise r over lambda > 0: the predictable plug-in bet (sigma^2 the "
             "running variance of Z_1..Z_{t-1}).", sp.Eq(lam, best))]


@derivation("betting_interval")
def betting_interval() -> Derivation:
    hedged = theta * Kp + (1 - theta) * Km
    maximum = sp.Max(theta * Kp, (1 - theta) * Km)
    threshold = sp.log(1 / (theta * delta))
    # max(a, b) <= a + b for a, b >= 0.
    assert sp.simplify((hedged - maximum).subs({theta: sp.Rational(1, 2), Kp: 3, Km: 5})) >= 0
    steps = (_martingale_steps(+1) + _martingale_steps(-1)
             + [("A convex combination of two martingales started at 1 is a "
                 "nonnegative martingale started at 1; the hedged capital is below it.",
                 sp.Le(maximum, hedged)),
                ("Ville at level delta: with probability >= 1 - delta, at the true mean, "
                 "max(theta K^+_t, (1 - theta) K^-_t) < 1/delta for every t; the set of m "
                 "where that holds is the confidence set. Each side: "
                 "ln K^+-_t(m) < ln(1/(theta delta)).",
                 sp.Lt(sp.Symbol("ln K^+-_t(m)"), threshold))]
             + _bet_steps(theta * delta)
             + [("K^+ decreases and K^- increases in m (each factor does, truncation "
                 "included), so the set is an interval; its ends are where the running "
                 "maximum of ln K^+- crosses the threshold.", threshold)])
    return Derivation(name="betting_interval", result=threshold, symbols=(delta, theta),
                      assumptions=_PREMISES + ["hedge weight 0 < theta < 1 (theta = 1/2)"],
                      steps=steps)


def _one_sided(name: str, sign: int) -> Derivation:
    threshold = sp.log(1 / delta)
    side = "K^+ (rejects means below the data: a lower bound)" if sign > 0 else \
        "K^- (rejects means above the data: an upper bound)"
    steps = (_martingale_steps(sign)
             + [(f"Ville at level delta on {side}: the set of m with "
                 f"ln K_t(m) < ln(1/delta) for every t covers mu with probability >= "
                 f"1 - delta.", sp.Lt(sp.Symbol("ln K_t(m)"), threshold))]
             + _bet_steps(delta))
    return Derivation(name=name, result=threshold, symbols=(delta,),
                      assumptions=_PREMISES, steps=steps)


@derivation("betting_upper")
def betting_upper() -> Derivation:
    return _one_sided("betting_upper", -1)


@derivation("betting_lower")
def betting_lower() -> Derivation:
    return _one_sided("betting_lower", +1)
