"""T8: Hoeffding's tail solved for radius, sample size and confidence; the
empirical Bernstein bound of Maurer & Pontil rescaled from [0, 1] to [0, B]."""

from __future__ import annotations

import sympy as sp

from .derivation import Derivation, derivation

N = sp.Symbol("N", positive=True)
delta = sp.Symbol("delta", positive=True)
B = sp.Symbol("B", positive=True)
eps = sp.Symbol("epsilon", positive=True)
k = sp.Symbol("k", positive=True)  # 2 for a two-sided event, 1 for one side

_HOEFFDING = [
    "l_1..l_N i.i.d., one value per sequence (THEORY.md: sequences are the unit)",
    "0 <= l_i <= B",
    "Hoeffding (1963) Thm 2: P(Rhat - R >= eps) <= exp(-2 N eps^2 / B^2), and the "
    "same for R - Rhat, so the two-sided tail is at most twice that (k = 2); k = 1 "
    "for one side",
    "0 < delta < 1",
]


def _tail():
    return sp.Eq(k * sp.exp(-2 * N * eps ** 2 / B ** 2), delta)


@derivation("hoeffding_radius")
def hoeffding_radius() -> Derivation:
    tail = _tail()
    logged = sp.Eq(sp.log(k) - 2 * N * eps ** 2 / B ** 2, sp.log(delta))
    roots = sp.solve(logged, eps)
    (radius,) = [r for r in roots if r.is_positive is not False]
    radius = sp.simplify(radius)
    target = B * sp.sqrt(sp.log(k / delta) / (2 * N))
    assert sp.simplify(sp.expand_log(radius - target, force=True)) == 0
    return Derivation(
        name="hoeffding_radius", result=target, symbols=(N, delta, B, k),
        assumptions=_HOEFFDING,
        steps=[("Set Hoeffding's tail bound equal to the failure probability delta.", tail),
               ("Take logarithms of both sides.", logged),
               ("Solve for eps and keep the positive root.", sp.Eq(eps, radius)),
               ("With probability >= 1 - delta the deviation is below this eps.",
                sp.Eq(eps, target))])


@derivation("sample_size")
def sample_size() -> Derivation:
    logged = sp.Eq(sp.log(k) - 2 * N * eps ** 2 / B ** 2, sp.log(delta))
    (n_real,) = sp.solve(logged, N)
    n_real = sp.simplify(n_real)
    target = B ** 2 * sp.log(k / delta) / (2 * eps ** 2)
    assert sp.simplify(sp.expand_log(n_real - target, force=True)) == 0
    result = sp.ceiling(target)
    return Derivation(
        name="sample_size", result=result, symbols=(eps, delta, B, k),
        assumptions=_HOEFFDING + ["eps > 0"],
        steps=[("Set the tail bound equal to delta.", _tail()),
               ("Take logarithms and solve for N.", sp.Eq(N, n_real)),
               ("The radius B sqrt(log(k/delta)/(2N)) decreases in N, so the "
                "smallest integer reaching eps is the ceiling.", sp.Eq(N, result))])


@derivation("hoeffding_confidence")
def hoeffding_confidence() -> Derivation:
    (solved,) = sp.solve(_tail(), delta)
    result = sp.Min(1, solved)
    return Derivation(
        name="hoeffding_confidence", result=result, symbols=(N, eps, B, k),
        assumptions=_HOEFFDING[:3] + ["N >= 1", "eps > 0"],
        steps=[("Set the tail bound equal to delta.", _tail()),
               ("Solve for delta.", sp.Eq(delta, solved)),
               ("A probability never exceeds 1; the value 1 says the radius is "
                "vacuous at this N.", sp.Eq(delta, result))])


mean = sp.Symbol("Xbar", real=True)
V = sp.Symbol("Vhat", nonnegative=True)
_BERNSTEIN = [
    "X_1..X_N i.i.d. in [0, B], one value per sequence", "N >= 2", "0 < delta < 1",
    "Vhat = (1/(N-1)) sum (X_i - Xbar)^2, the unbiased sample variance",
    "Maurer & Pontil (2009) Thm 4: for Z_i i.i.d. in [0, 1], with probability "
    ">= 1 - delta, E Z <= Zbar + sqrt(2 V_N(Z) ln(2/delta)/N) + 7 ln(2/delta)/(3(N-1))",
]


def _bernstein(sign: int, level) -> tuple[sp.Expr, list]:
    """Thm 4 for Z = X/B (sign +1) or Z = (B - X)/B (sign -1), back in X units."""
    zbar, vz = sp.Symbol("Zbar"), sp.Symbol("V_Z", nonnegative=True)
    theorem = zbar + sp.sqrt(2 * vz * sp.log(2 / level) / N) + 7 * sp.log(2 / level) / (3 * (N - 1))
    z_mean = mean / B if sign > 0 else (B - mean) / B
    substituted = theorem.subs({zbar: z_mean, vz: V / B ** 2})
    # E Z <= bound(Z) becomes E X <= B*bound (sign +1) or E X >= B - B*bound (sign -1).
    back = sp.expand(B * substituted) if sign > 0 else sp.expand(B - B * substituted)
    steps = [("Theorem 4 for Z in [0, 1] (upper confidence bound on E Z).",
              sp.Le(sp.Symbol("E[Z]"), theorem)),
             (("Substitute Z = X/B: Zbar = Xbar/B and V_Z = Vhat/B^2." if sign > 0 else
               "Substitute Z = (B - X)/B, which lies in [0, 1]: Zbar = (B - Xbar)/B, "
               "V_Z = Vhat/B^2 (variance is shift-invariant)."), substituted),
             (("Multiply by B: E X = B E Z." if sign > 0 else
               "E X = B - B E Z, so the upper bound on E Z is a lower bound on E X."),
              back)]
    return back, steps


def _bernstein_derivation(name: str, sign: int, level, extra: list[str]) -> Derivation:
    result, steps = _bernstein(sign, level)
    return Derivation(name=name, result=result, symbols=(mean, V, N, delta, B),
                      assumptions=_BERNSTEIN + extra, steps=steps)


@derivation("empirical_bernstein_upper")
def empirical_bernstein_upper() -> Derivation:
    return _bernstein_derivation("empirical_bernstein_upper", +1, delta, [])


@derivation("empirical_bernstein_lower")
def empirical_bernstein_lower() -> Derivation:
    return _bernstein_derivation("empirical_bernstein_lower", -1, delta, [])


@derivation("empirical_bernstein_interval")
def empirical_bernstein_interval() -> Derivation:
    """The two ends at delta/2 each; the result is the half-width."""
    upper, _ = _bernstein(+1, delta / 2)
    lower, _ = _bernstein(-1, delta / 2)
    half = sp.expand((upper - lower) / 2)
    return Derivation(
        name="empirical_bernstein_interval", result=half, symbols=(mean, V, N, delta, B),
        assumptions=_BERNSTEIN + ["union bound: each side fails with probability <= delta/2"],
        steps=[("Upper bound at delta/2.", upper), ("Lower bound at delta/2.", lower),
               ("The interval is Xbar +- this half-width.", half)])
