"""T9: Rademacher generalisation rescaled to [0, B], contraction composed with
it, Massart's lemma optimised over its free parameter, and the Monte Carlo
error of the sign-vector average."""

from __future__ import annotations

import sympy as sp

from .derivation import Derivation, derivation

Ehat = sp.Symbol("Ehat", nonnegative=True)      # empirical mean of f on the sample
R = sp.Symbol("R", nonnegative=True)            # Rademacher complexity of F (in [0, B] units)
N = sp.Symbol("N", positive=True)
delta = sp.Symbol("delta", positive=True)
B = sp.Symbol("B", positive=True)
L = sp.Symbol("L", nonnegative=True)
RG = sp.Symbol("R_G", nonnegative=True)

_CLASS = ["z_1..z_N i.i.d., one per sequence", "every f in F maps into [0, B]",
          "0 < delta < 1"]


def _rescaled(name: str, factor: int, level: int, complexity: str) -> Derivation:
    """Mohri Thm 3.3 for g in [0, 1], applied to g = f/B."""
    eg, rg = sp.Symbol("Ehat_g"), sp.Symbol("R_g")
    unit = eg + 2 * rg + factor * sp.sqrt(sp.log(level / delta) / (2 * N))
    substituted = unit.subs({eg: Ehat / B, rg: R / B})
    result = sp.expand(B * substituted)
    return Derivation(
        name=name, result=result, symbols=(Ehat, R, N, delta, B),
        assumptions=_CLASS + [
            f"Mohri et al. (2018) Thm 3.3 for G with values in [0, 1], with the "
            f"{complexity} Rademacher complexity: w.p. >= 1 - delta, for all g, "
            f"E g <= Ehat g + 2 R(G) + {factor} sqrt(ln({level}/delta)/(2N))"],
        steps=[("The theorem for g = f/B, which maps into [0, 1].",
                sp.Le(sp.Symbol("E[g]"), unit)),
               ("Rademacher complexity is positively homogeneous, R(G) = R(F)/B, and "
                "Ehat g = Ehat f / B.", substituted),
               ("Multiply by B: E f = B E g, uniformly over F.", result)])


@derivation("rademacher_generalization_bound")
def rademacher_generalization_bound() -> Derivation:
    return _rescaled("rademacher_generalization_bound", 3, 2, "empirical")


@derivation("rademacher_generalization_bound_expected")
def rademacher_generalization_bound_expected() -> Derivation:
    return _rescaled("rademacher_generalization_bound_expected", 1, 1, "expected")


@derivation("contraction")
def contraction() -> Derivation:
    bound = rademacher_generalization_bound().result
    composed = bound.subs(R, L * RG)
    return Derivation(
        name="contraction", result=L * RG, symbols=(L, RG),
        assumptions=["phi is L-Lipschitz and F = phi o G",
                     "Talagrand's lemma (Mohri et al. Lemma 5.7; Ledoux & Talagrand "
                     "1991 Thm 4.12): Rhat(phi o G) <= L Rhat(G)"],
        steps=[("Contraction bounds the complexity of F by that of G.",
                sp.Le(R, L * RG)),
               ("The generalisation bound is increasing in R, so substituting the "
                "upper bound L R_G keeps it valid.", bound),
               ("Composed bound: with probability >= 1 - delta, for all f = phi o g, "
                "E f is at most", composed)])


@derivation("massart_linf_bound")
def massart_linf_bound() -> Derivation:
    t, r, size = sp.symbols("t r A", positive=True)
    W, n = sp.Symbol("W", positive=True), sp.Symbol("n", positive=True)
    # exp(t E max) <= E exp(t max) <= sum_a E exp(t sum sigma_i a_i) <= |A| exp(t^2 r^2 / 2)
    chernoff = sp.log(size) / t + t * r ** 2 / 2
    (t_star,) = [s for s in sp.solve(sp.diff(chernoff, t), t) if s.is_positive is not False]
    optimum = sp.simplify(chernoff.subs(t, t_star))
    assert sp.simplify(optimum - r * sp.sqrt(2 * sp.log(size))) == 0
    result = (optimum.subs({size: 2 * n, r: W * r}) / N)
    return Derivation(
        name="massart_linf_bound", result=result, symbols=(W, r, n, N),
        assumptions=["A = {+-W x_.j : j = 1..n}: the l1 ball's 2n vertices, where a "
                     "linear function attains its supremum", "r = max_j ||x_.j||_2",
                     "Hoeffding's lemma: E exp(t sigma a) <= exp(t^2 a^2 / 2)",
                     "Jensen: exp(t E max) <= E exp(t max)"],
        steps=[("For every t > 0, Jensen, a union of exponentials and Hoeffding's lemma "
                "give E max_a sum_i sigma_i a_i <= ", chernoff),
               ("Minimise over t: the derivative vanishes at", sp.Eq(t, t_star)),
               ("Massart's lemma.", optimum),
               ("|A| = 2n, radius W r, and the 1/N of the average.", result)])


@derivation("empirical_rademacher_linf")
def empirical_rademacher_linf() -> Derivation:
    c, S = sp.Symbol("c", positive=True), sp.Symbol("S", positive=True)
    eps = sp.Symbol("epsilon", positive=True)
    tail = sp.Eq(2 * sp.exp(-2 * S * eps ** 2 / c ** 2), delta)
    (radius,) = [s for s in sp.solve(tail, eps) if s.is_positive is not False]
    return Derivation(
        name="empirical_rademacher_linf", result=radius, symbols=(c, S, delta),
        assumptions=["dual norm: sup_{||w||_1 <= W} w.v = W ||v||_inf",
                     "each draw W ||(1/N) sum sigma_i x_i||_inf lies in [0, c], "
                     "c = W max_j (1/N) sum_i |x_ij| (triangle inequality)",
                     "S independent sign draws; Hoeffding two-sided"],
        steps=[("Hoeffding's two-sided tail for the mean of S draws in [0, c], set to "
                "delta.", tail),
               ("Solve for the radius.", sp.Eq(eps, radius))])
