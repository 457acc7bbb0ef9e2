"""T9: generalisation of a learned codec through Rademacher complexity.

Length (≈430 lines): one theorem (T9), its two estimators of the complexity (Monte Carlo
and Massart) and their argument checks, kept with the bound they feed.

A class F of code-length functions with values in ``[0, B]`` (bits per
sequence, say) is trained on N i.i.d. sequences; these functions bound the
expected code length of every member of F at once, from its empirical mean
and the class's Rademacher complexity. The complexity of linear functionals
``x -> w.x`` with ``||w||_1 <= W`` is the data statistic
``W E_sigma ||(1/N) sum_i sigma_i x_i||_inf``, estimated here by Monte Carlo
(with its own Hoeffding error) and bounded in closed form by Massart's lemma.

Rademacher complexities follow Mohri et al. (2018), Def. 3.1, without an
absolute value: ``Rhat_S(G) = E_sigma sup_g (1/N) sum_i sigma_i g(z_i)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _arguments as check
from .catalogue import register
from .concentration import hoeffding_radius

_CHUNK_ENTRIES = 1 << 22   # sign-matrix entries per Monte Carlo chunk (32 MiB of float64)


def _means_in_range(empirical_mean, bound: float) -> np.ndarray:
    means = check.finite_array(empirical_mean, "empirical_mean")
    if np.any(means < 0.0) or np.any(means > bound):
        raise ValueError(f"empirical_mean: expected values in [0, bound] = [0, {bound!r}] "
                         f"(a mean of values in [0, B]), found range "
                         f"[{means.min()!r}, {means.max()!r}]")
    return means


def _generalization(empirical_mean, rademacher, n, delta, bound, factor: float,
                    level: float):
    n = check.count(n, "n")
    delta = check.probability(delta)
    bound = check.positive(bound, "bound")
    means = _means_in_range(empirical_mean, bound)
    complexity = check.finite(rademacher, "rademacher")
    if complexity < 0.0:
        raise ValueError(f"rademacher: expected a value >= 0, got {rademacher!r}")
    value = means + 2.0 * complexity + factor * bound * math.sqrt(
        math.log(level / delta) / (2.0 * n))
    return float(value) if value.ndim == 0 else value


_CLASS_HYPOTHESES = ["z_1..z_N i.i.d. (one per sequence)",
                     "every f in F maps into [0, B]", "0 < delta < 1",
                     "the bound holds simultaneously for all f in F"]


@register(
    theory="T9",
    statement="With probability >= 1 - delta, for all f in F: E f <= Ehat_N f "
              "+ 2 Rhat_N(F) + 3 B sqrt(ln(2/delta) / (2N)), Rhat_N the empirical "
              "Rademacher complexity on the same sample.",
    latex=r"\mathbb{E}f \le \hat{\mathbb{E}}_N f + 2\hat{\mathfrak{R}}_N(F)"
          r" + 3B\sqrt{\frac{\ln(2/\delta)}{2N}}\quad\forall f\in F",
    hypotheses=_CLASS_HYPOTHESES + ["Rhat_N(F) computed on the same N points "
                                    "(or an upper bound on it)"],
    references=["mohri2018", "bartlett2002"],
)
def rademacher_generalization_bound(empirical_mean, rademacher: float, n: int,
                                    delta: float, bound: float):
    r"""Uniform upper bound on expected code length via empirical Rademacher complexity.

    .. math:: \mathbb{E}f \le \hat{\mathbb{E}}_N f + 2\hat{\mathfrak{R}}_N(F)
              + 3B\sqrt{\frac{\ln(2/\delta)}{2N}}
              \quad\text{for all } f\in F,\ \text{with probability} \ge 1-\delta.

    Mohri et al. (2018), Thm 3.3, second inequality, stated for ``[0, 1]``
    and rescaled to ``[0, B]`` (Rademacher complexity is positively
    homogeneous: :math:`\hat{\mathfrak R}(BG) = B\hat{\mathfrak R}(G)`). The
    factor 3 and ``ln(2/delta)`` come from spending delta/2 on the
    concentration of the empirical complexity around its expectation. For
    the version with the *expected* complexity see
    :func:`rademacher_generalization_bound_expected`.

    Parameters
    ----------
    empirical_mean : float or array_like
        :math:`\hat{\mathbb E}_N f` for one or several members f of F, each
        in ``[0, bound]``.
    rademacher : float
        :math:`\hat{\mathfrak R}_N(F)` on the same sample, ``>= 0``, or any
        upper bound on it (e.g. :func:`massart_linf_bound`, or the upper end
        of :func:`empirical_rademacher_linf` with its delta added to this one).
    n : int
        Number N of i.i.d. sequences, ``>= 1``.
    delta : float
        Failure probability, ``0 < delta < 1``.
    bound : float
        Range B of every member of F, ``> 0``.

    Returns
    -------
    float or ndarray
        The bound, shaped like ``empirical_mean``.

    Notes
    -----
    THEORY.md T9. Derivation:
    ``rdgap.proofs.DERIVATIONS["rademacher_generalization_bound"]``.

    References
    ----------
    .. [1] Mohri, Rostamizadeh & Talwalkar (2018), Foundations of Machine
       Learning, 2nd ed., Thm 3.3 — the source of the constants 2 and 3 and of
       ``ln(2/delta)`` used here (Rademacher complexity without absolute
       value, Def. 3.1).
    .. [2] Bartlett & Mendelson (2002), JMLR 3, Thm 8: the same idea with a
       different normalisation of the complexity (and hence other constants);
       cited for history, not for these constants.

    Examples
    --------
    >>> round(rademacher_generalization_bound(20.0, 0.3, 1000, 0.05, 64.0), 3)
    28.846
    """
    return _generalization(empirical_mean, rademacher, n, delta, bound, 3.0, 2.0)


@register(
    theory="T9",
    statement="With probability >= 1 - delta, for all f in F: E f <= Ehat_N f "
              "+ 2 R_N(F) + B sqrt(ln(1/delta) / (2N)), R_N the expected Rademacher "
              "complexity.",
    latex=r"\mathbb{E}f \le \hat{\mathbb{E}}_N f + 2\mathfrak{R}_N(F)"
          r" + B\sqrt{\frac{\ln(1/\delta)}{2N}}\quad\forall f\in F",
    hypotheses=_CLASS_HYPOTHESES + ["R_N(F) the expectation over samples of the "
                                    "empirical complexity (or an upper bound on it)"],
    references=["bartlett2002", "mohri2018"],
)
def rademacher_generalization_bound_expected(empirical_mean, rademacher: float, n: int,
                                             delta: float, bound: float):
    r"""Uniform upper bound via the *expected* Rademacher complexity.

    .. math:: \mathbb{E}f \le \hat{\mathbb{E}}_N f + 2\mathfrak{R}_N(F)
              + B\sqrt{\frac{\ln(1/\delta)}{2N}}
              \quad\text{for all } f\in F,\ \text{with probability} \ge 1-\delta.

    Mohri et al. (2018), Thm 3.3, first inequality, rescaled to ``[0, B]``.
    Use it only with a value that bounds :math:`\mathfrak R_N(F) =
    \mathbb E_S \hat{\mathfrak R}_S(F)`, e.g. a data-independent bound; with
    the empirical complexity of the sample at hand use
    :func:`rademacher_generalization_bound`.

    Parameters
    ----------
    empirical_mean : float or array_like
        Empirical means, each in ``[0, bound]``.
    rademacher : float
        :math:`\mathfrak R_N(F)` or an upper bound on it, ``>= 0``.
    n : int
        Number N of i.i.d. sequences, ``>= 1``.
    delta : float
        Failure probability, ``0 < delta < 1``.
    bound : float
        Range B, ``> 0``.

    Returns
    -------
    float or ndarray

    Notes
    -----
    THEORY.md T9 (the expected-complexity variant).

    References
    ----------
    .. [1] Mohri, Rostamizadeh & Talwalkar (2018), Thm 3.3.
    .. [2] Bartlett & Mendelson (2002), JMLR 3.

    Examples
    --------
    >>> round(rademacher_generalization_bound_expected(20.0, 0.3, 1000, 0.05, 64.0), 3)
    23.077
    """
    return _generalization(empirical_mean, rademacher, n, delta, bound, 1.0, 1.0)


@register(
    theory="T9",
    statement="If every f in F is phi o g with g in G and phi L-Lipschitz, then "
              "Rhat_N(F) <= L Rhat_N(G) (Ledoux-Talagrand contraction).",
    latex=r"\hat{\mathfrak R}_N(\varphi\circ G) \le L\,\hat{\mathfrak R}_N(G)",
    hypotheses=["phi: R -> R is L-Lipschitz", "the same phi for every member of F",
                "Rademacher complexity without absolute value (Mohri Def. 3.1)"],
    references=["ledoux1991", "mohri2018"],
)
def contraction(lipschitz: float, rademacher: float) -> float:
    r"""Talagrand's contraction: the complexity of an L-Lipschitz image of G.

    .. math:: \hat{\mathfrak R}_N(\varphi\circ G) \le L\,\hat{\mathfrak R}_N(G)

    Parameters
    ----------
    lipschitz : float
        A Lipschitz constant L of :math:`\varphi`, ``>= 0`` (it must be an
        upper bound, not an estimate such as
        :func:`rdgap.bounds.lipschitz.jacobian_spectral_norm`).
    rademacher : float
        :math:`\hat{\mathfrak R}_N(G)`, ``>= 0``.

    Returns
    -------
    float
        ``L * rademacher``.

    Notes
    -----
    THEORY.md T9, "Contraction". Derivation (composed with the
    generalisation bound): ``rdgap.proofs.DERIVATIONS["contraction"]``.

    References
    ----------
    .. [1] Ledoux & Talagrand (1991), Probability in Banach Spaces, Thm 4.12.
    .. [2] Mohri et al. (2018), Lemma 5.7.

    Examples
    --------
    >>> contraction(2.0, 0.25)
    0.5
    """
    values = []
    for value, name in ((lipschitz, "lipschitz"), (rademacher, "rademacher")):
        value = check.finite(value, name)
        if value < 0.0:
            raise ValueError(f"{name}: expected a value >= 0, got {value!r}")
        values.append(value)
    return values[0] * values[1]


def _data_matrix(x) -> np.ndarray:
    return check.finite_array(x, "x", ndim=2)


def _weight(weight_l1) -> float:
    return check.positive(weight_l1, "weight_l1")


@dataclass(frozen=True)
class RademacherEstimate:
    """A Monte Carlo estimate of an empirical Rademacher complexity.

    Attributes
    ----------
    estimate : float
        Mean over sign draws of ``W ||(1/N) sum_i sigma_i x_i||_inf``.
    radius : float
        Two-sided Hoeffding radius of the Monte Carlo mean at ``delta``: the
        exact complexity lies in ``estimate +- radius`` with probability
        ``>= 1 - delta`` over the sign draws (and below ``upper`` with
        probability ``>= 1 - delta/2``).
    delta : float
        Failure probability of the radius.
    n_draws : int
        Number of sign vectors drawn.
    value_range : float
        ``W max_j (1/N) sum_i |x_ij|``: every draw's value lies in
        ``[0, value_range]``.
    """

    estimate: float
    radius: float
    delta: float
    n_draws: int
    value_range: float

    @property
    def upper(self) -> float:
        """``estimate + radius``."""
        return self.estimate + self.radius

    @property
    def lower(self) -> float:
        """``max(0, estimate - radius)``."""
        return max(0.0, self.estimate - self.radius)


@register(
    theory="T9",
    statement="Rhat_N(G) = W E_sigma ||(1/N) sum_i sigma_i x_i||_inf for G = {x -> w.x : "
              "||w||_1 <= W}; the Monte Carlo mean over S sign draws is within "
              "c sqrt(ln(2/delta)/(2S)) of it w.p. >= 1 - delta, c = W max_j (1/N) sum_i |x_ij|.",
    latex=r"\hat{\mathfrak R}_N(G) = W\,\mathbb{E}_\sigma\Big\|\frac1N\sum_i\sigma_i x_i"
          r"\Big\|_\infty \in \hat\mu_S \pm c\sqrt{\frac{\ln(2/\delta)}{2S}}",
    hypotheses=["G = {x -> w.x : ||w||_1 <= W}", "sigma_i i.i.d. uniform on {-1, +1}",
                "S independent sign draws", "0 < delta < 1"],
    references=["bartlett2002", "hoeffding1963", "deandrade2026"],
)
def empirical_rademacher_linf(x, n_draws: int = 1000, seed: int = 0,
                              weight_l1: float = 1.0, delta: float = 0.05
                              ) -> RademacherEstimate:
    r"""Monte Carlo empirical Rademacher complexity of l1-bounded linear functionals.

    .. math:: \hat{\mathfrak R}_N(G) = W\,\mathbb E_\sigma
              \Big\|\frac1N\sum_{i=1}^N\sigma_i x_i\Big\|_\infty,
              \qquad G = \{x\mapsto w^\top x : \|w\|_1\le W\},

    since :math:`\sup_{\|w\|_1\le W} w^\top v = W\|v\|_\infty` (the dual
    norm). Each draw's value lies in ``[0, c]`` with
    :math:`c = W\max_j \frac1N\sum_i |x_{ij}|` (triangle inequality), so by
    Hoeffding the mean of S draws is within
    :math:`c\sqrt{\ln(2/\delta)/(2S)}` of the exact value with probability
    ``>= 1 - delta`` over the draws. Draws are processed in chunks, so
    ``x`` of shape (10 000, 576) needs about 32 MiB at a time.

    Parameters
    ----------
    x : array_like, shape (N, n)
        One row per i.i.d. sample (sequence), one column per coordinate.
    n_draws : int
        Number S of sign vectors, ``>= 1``.
    seed : int
        Seed of the sign draws, ``>= 0``.
    weight_l1 : float
        W, the l1 radius of the weights, ``> 0``.
    delta : float
        Failure probability of the Monte Carlo radius, ``0 < delta < 1``.

    Returns
    -------
    RademacherEstimate

    Notes
    -----
    THEORY.md T9: "the data statistic of the reference paper", with its
    Monte Carlo error as a Hoeffding term. Using ``.upper`` inside
    :func:`rademacher_generalization_bound` at level delta' gives a bound
    that holds with probability ``>= 1 - delta' - delta/2``.

    References
    ----------
    .. [1] Bartlett & Mendelson (2002), JMLR 3.
    .. [2] Hoeffding (1963), JASA 58.
    .. [3] de Andrade, Harell & Bajic (2026), arXiv 2601.22002.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal((200, 8))
    >>> r = empirical_rademacher_linf(x, n_draws=2000, seed=1)
    >>> 0.10 < r.estimate < 0.16, r.radius < 0.03
    (True, True)
    """
    data = _data_matrix(x)
    n_draws = check.count(n_draws, "n_draws")
    seed = check.count(seed, "seed", minimum=0)
    weight = _weight(weight_l1)
    delta = check.probability(delta)
    rows = data.shape[0]
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_draws, _CHUNK_ENTRIES // max(rows, data.shape[1])))
    total, done = 0.0, 0
    while done < n_draws:
        size = min(chunk, n_draws - done)
        signs = rng.integers(0, 2, size=(size, rows), dtype=np.int8).astype(np.float64)
        signs = 2.0 * signs - 1.0
        total += float(np.abs(signs @ data).max(axis=1).sum())
        done += size
    estimate = weight * total / (n_draws * rows)
    value_range = weight * float(np.abs(data).sum(axis=0).max()) / rows
    radius = hoeffding_radius(n_draws, delta, value_range) if value_range > 0 else 0.0
    return RademacherEstimate(estimate=estimate, radius=radius, delta=delta,
                              n_draws=n_draws, value_range=value_range)


@register(
    theory="T9",
    statement="Rhat_N(G) <= W max_j ||x_{.j}||_2 sqrt(2 ln(2n)) / N for G = {x -> w.x : "
              "||w||_1 <= W} on N points in R^n (Massart's finite-class lemma on the "
              "2n vertices +-W e_j of the l1 ball).",
    latex=r"\hat{\mathfrak R}_N(G) \le \frac{W\max_j\|x_{\cdot j}\|_2\sqrt{2\ln(2n)}}{N}",
    hypotheses=["G = {x -> w.x : ||w||_1 <= W}", "x has N rows (samples), n columns"],
    references=["massart2000", "mohri2018"],
)
def massart_linf_bound(x, weight_l1: float = 1.0) -> float:
    r"""Massart's closed-form bound on the l1-linear Rademacher complexity.

    .. math:: \hat{\mathfrak R}_N(G) \le
              \frac{W\,\max_j\|x_{\cdot j}\|_2\sqrt{2\ln(2n)}}{N}

    A linear function attains its supremum over the l1 ball at a vertex
    :math:`\pm W e_j`, so the supremum is over the finite set
    :math:`A = \{\pm W x_{\cdot j}\}\subset\mathbb R^N` of ``2n`` vectors (the
    factor 2 counts both signs of each coordinate) of Euclidean norm at most
    :math:`r = W\max_j\|x_{\cdot j}\|_2`; Massart's lemma gives
    :math:`\mathbb E\max_{a\in A}\frac1N\sum_i\sigma_i a_i \le r\sqrt{2\ln|A|}/N`.

    Parameters
    ----------
    x : array_like, shape (N, n)
        One row per sample, one column per coordinate.
    weight_l1 : float
        W, ``> 0``.

    Returns
    -------
    float

    Notes
    -----
    THEORY.md T9. Derivation: ``rdgap.proofs.DERIVATIONS["massart_linf_bound"]``.

    References
    ----------
    .. [1] Massart (2000), Ann. Fac. Sci. Toulouse 9, Lemma 5.2.
    .. [2] Mohri et al. (2018), Thm 3.7.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal((200, 8))
    >>> round(massart_linf_bound(x), 2)
    0.18
    """
    data = _data_matrix(x)
    weight = _weight(weight_l1)
    rows, columns = data.shape
    radius = float(np.sqrt((data ** 2).sum(axis=0)).max())
    return weight * radius * math.sqrt(2.0 * math.log(2 * columns)) / rows
