r"""T1: rate = entropy + gap (Gibbs), the V-entropy, and the two-part (hyperprior) rate.

All quantities are in bits. A pmf is a 1-D array of probabilities (non-negative,
summing to one within ``1e-9``); the model ``q`` must be positive wherever the
source ``p`` is, otherwise the expected code length is infinite and a
``ValueError`` says which symbols are at fault.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _arguments as check
from . import _inputs
from .catalogue import register


def _pair(p, q, p_name: str = "p", q_name: str = "q") -> tuple[np.ndarray, np.ndarray]:
    """Validated pmfs ``p``, ``q`` of one alphabet with ``q > 0`` on the support of ``p``."""
    p = _inputs.pmf(check.finite_array(p, p_name, ndim=1), p_name)
    q = _inputs.pmf(check.finite_array(q, q_name, ndim=1), q_name)
    if p.shape != q.shape:
        raise ValueError(f"{q_name}: expected the shape of {p_name}, {p.shape}, got {q.shape}")
    bad = np.flatnonzero((p > 0) & (q <= 0))
    if bad.size:
        raise ValueError(f"{q_name}: expected {q_name} > 0 wherever {p_name} > 0; "
                         f"{q_name} = 0 at symbols {bad[:10].tolist()} (infinite code length)")
    return p, q


def _plogq(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``p * log2(q)`` with the convention ``0 log 0 = 0`` (and ``0 log q = 0``)."""
    out = np.zeros(np.broadcast(p, q).shape)
    support = np.broadcast_to(p > 0, out.shape)
    pb, qb = np.broadcast_to(p, out.shape), np.broadcast_to(q, out.shape)
    out[support] = pb[support] * np.log2(qb[support])
    return out


def entropy(p) -> float:
    r"""Shannon entropy ``H(p) = -sum_s p(s) log2 p(s)`` in bits.

    Parameters
    ----------
    p : array_like
        A pmf (1-D, non-negative, summing to one).

    Returns
    -------
    float

    Examples
    --------
    >>> print(round(entropy([0.5, 0.25, 0.25]), 6))
    1.5
    """
    p = _inputs.pmf(check.finite_array(p, "p", ndim=1), "p")
    return float(-_plogq(p, p).sum()) + 0.0


def cross_entropy(p, q) -> float:
    r"""Expected code length ``E_p[-log2 q(S)]`` in bits of coding ``p`` with model ``q``.

    Parameters
    ----------
    p, q : array_like
        Pmfs on one alphabet; ``q > 0`` wherever ``p > 0``.

    Returns
    -------
    float

    Examples
    --------
    >>> print(round(cross_entropy([0.5, 0.5], [0.25, 0.75]), 6))
    1.207519
    """
    p, q = _pair(p, q)
    return float(-_plogq(p, q).sum()) + 0.0


@register(
    theory="T1",
    statement="D(p||q) = sum_s p(s) log2(p(s)/q(s)) >= 0, with equality iff p = q (Gibbs)",
    latex=r"D(p\|q) = \sum_s p(s)\log_2\frac{p(s)}{q(s)} \ge 0",
    hypotheses=["p, q pmfs on one finite alphabet", "q > 0 on the support of p"],
    references=["cover2006"],
)
def kl_divergence(p, q) -> float:
    r"""Kullback–Leibler divergence ``D(p||q)`` in bits; ``>= 0`` (Gibbs' inequality).

    .. math:: D(p\|q) = \sum_s p(s)\log_2\frac{p(s)}{q(s)} \ge 0

    Computed term by term (not as a difference of entropies), so it is
    non-negative to rounding even when both entropies are large.

    Parameters
    ----------
    p, q : array_like
        Pmfs on one alphabet; ``q > 0`` wherever ``p > 0``.

    Returns
    -------
    float
        ``D(p||q)`` in bits.

    Notes
    -----
    Hypotheses: finite alphabet, ``q`` positive on the support of ``p``
    (otherwise ``D = +inf`` and a ``ValueError`` is raised).

    References
    ----------
    Cover & Thomas (2006), Thm 2.6.3.

    Examples
    --------
    >>> print(round(kl_divergence([0.5, 0.5], [0.25, 0.75]), 6))
    0.207519
    """
    p, q = _pair(p, q)
    support = p > 0
    return max(float(np.sum(p[support] * np.log2(p[support] / q[support]))), 0.0)


class RateGap(NamedTuple):
    """Expected code length of a model, split as entropy + gap (bits)."""

    rate: float      # E_p[-log2 q(S)]
    entropy: float   # H(S)
    gap: float       # D(p || q) = rate - entropy >= 0


@register(
    theory="T1",
    statement="E_p[-log2 q(S)] = H(S) + D(p||q) for any pmf q > 0 on the support of p",
    latex=r"\mathbb{E}_p[-\log_2 q(S)] = H(S) + D(p\|q)",
    hypotheses=["p, q pmfs on one finite alphabet", "q > 0 on the support of p"],
    references=["cover2006", "xu2020"],
)
def rate_entropy_gap(p, q) -> RateGap:
    r"""The rate of model ``q`` on source ``p``, its entropy and the gap between them.

    .. math:: \underbrace{\mathbb{E}_p[-\log_2 q(S)]}_{\text{rate}}
              = \underbrace{H(S)}_{\text{entropy}} + \underbrace{D(p\|q)}_{\text{gap}\ \ge 0}

    Parameters
    ----------
    p : array_like
        Source pmf.
    q : array_like
        Model pmf, positive wherever ``p`` is.

    Returns
    -------
    RateGap
        ``(rate, entropy, gap)`` in bits; ``gap`` is computed directly as
        ``D(p||q)``, and ``rate - entropy - gap`` is zero to rounding.

    References
    ----------
    Cover & Thomas (2006), Thm 5.4.3 (wrong code); Xu et al. (2020), Def. 1.

    Examples
    --------
    >>> rate, h, gap = rate_entropy_gap([0.5, 0.25, 0.25], [0.25, 0.25, 0.5])
    >>> print(round(rate, 6), round(h, 6), round(gap, 6))
    1.75 1.5 0.25
    """
    p, q = _pair(p, q)
    return RateGap(cross_entropy(p, q), entropy(p), kl_divergence(p, q))


class VEntropy(NamedTuple):
    """The best model of a finite family and its gap (bits)."""

    v_entropy: float   # min over the family of E_p[-log2 q(S)]
    entropy: float     # H(S)
    gap: float         # v_entropy - entropy >= 0
    best: int          # index of the minimizing model


@register(
    theory="T1",
    statement="H_V(S) = inf_{q in V} E_p[-log2 q(S)] = H(S) + inf_{q in V} D(p||q) >= H(S), "
              "equality iff p in V (finite V: the minimum over its members)",
    latex=r"H_V(S) = \inf_{q\in V}\mathbb{E}_p[-\log_2 q(S)] = H(S) + \inf_{q\in V} D(p\|q)",
    hypotheses=["V a finite family of pmfs on the alphabet of p",
                "models with q = 0 somewhere on the support of p have infinite rate"],
    references=["xu2020", "cover2006"],
)
def v_entropy(p, family) -> VEntropy:
    r"""V-entropy of ``p`` over a finite family of models, and the rate–entropy gap.

    .. math:: H_V(S) = \min_{q\in V}\mathbb{E}_p[-\log_2 q(S)],\qquad
              G_V = H_V(S) - H(S) = \min_{q\in V} D(p\|q) \ge 0

    Parameters
    ----------
    p : array_like, shape (K,)
        Source pmf.
    family : array_like, shape (M, K)
        One model pmf per row. Rows that vanish somewhere on the support of
        ``p`` have infinite rate; at least one row must not.

    Returns
    -------
    VEntropy
        ``(v_entropy, entropy, gap, best)``.

    References
    ----------
    Xu et al. (2020), "A Theory of Usable Information", Def. 1.

    Examples
    --------
    >>> result = v_entropy([0.5, 0.5], [[0.9, 0.1], [0.6, 0.4]])
    >>> print(round(result.gap, 6), result.best)
    0.029447 1
    """
    p = _inputs.pmf(check.finite_array(p, "p", ndim=1), "p")
    family = _inputs.pmf(check.finite_array(family, "family", ndim=2), "family", axis=1)
    if family.shape[1] != p.size:
        raise ValueError(f"family: expected rows of length {p.size} (the alphabet of p), "
                         f"got shape {family.shape}")
    finite = np.all((family > 0) | (p == 0), axis=1)
    if not np.any(finite):
        raise ValueError("family: expected at least one model positive on the support of p")
    rates = np.where(finite, -_plogq(p, np.where(finite[:, None], family, 1.0)).sum(axis=1),
                     np.inf)
    best = int(np.argmin(rates))
    h = entropy(p)
    return VEntropy(float(rates[best]), h, kl_divergence(p, family[best]), best)


class TwoPartRate(NamedTuple):
    """The hyperprior rate E[-log q(Z)] + E[-log q(S|Z)], term by term (bits)."""

    rate_z: float                # E[-log2 q_Z(Z)]
    rate_s_given_z: float        # E[-log2 q_{S|Z}(S|Z)]
    total: float                 # rate_z + rate_s_given_z
    entropy: float               # H(S) = H(Z) + H(S|Z)
    gap_z: float                 # D(p_Z || q_Z)
    gap_s_given_z: float         # E_Z D(p_{S|Z} || q_{S|Z})


@register(
    theory="T1",
    statement="Z = phi(S): E[-log2 q(Z)] + E[-log2 q(S|Z)] = H(S) + D(p_Z||q_Z) "
              "+ E_Z D(p_{S|Z}||q_{S|Z})",
    latex=r"\mathbb{E}[-\log_2 q(Z)] + \mathbb{E}[-\log_2 q(S|Z)] = H(S) + D(p_Z\|q_Z)"
          r" + \mathbb{E}_Z D(p_{S|Z}\|q_{S|Z}),\ Z=\varphi(S)",
    hypotheses=["Z = phi(S) a deterministic function of S (side information)",
                "q_Z > 0 where p_Z > 0; q(s|phi(s)) > 0 where p(s) > 0"],
    references=["cover2006", "balle2018"],
)
def two_part_rate(p, phi, q_z, q_s_given_z) -> TwoPartRate:
    r"""Exact decomposition of a two-part (hyperprior) code for ``S`` with ``Z = phi(S)``.

    .. math:: \mathbb{E}[-\log_2 q(Z)] + \mathbb{E}[-\log_2 q(S\mid Z)]
              = H(S) + D(p_Z\|q_Z) + \mathbb{E}_Z\, D(p_{S|Z}\|q_{S|Z})

    Because ``Z`` is a function of ``S``, ``H(S) = H(Z) + H(S|Z)``, and each
    part splits by Gibbs (T1) into its entropy plus its divergence.

    Parameters
    ----------
    p : array_like, shape (K,)
        Pmf of ``S`` on symbols ``0..K-1``.
    phi : array_like of int, shape (K,)
        ``phi[s]`` is the side-information symbol ``z`` of ``s``, in ``0..M-1``.
    q_z : array_like, shape (M,)
        Model pmf of ``Z``.
    q_s_given_z : array_like, shape (M, K)
        Row ``z`` is the model pmf of ``S`` given ``Z = z`` (mass it puts on
        symbols with ``phi(s) != z`` is allowed, and wasted).

    Returns
    -------
    TwoPartRate
        ``(rate_z, rate_s_given_z, total, entropy, gap_z, gap_s_given_z)``;
        ``total = entropy + gap_z + gap_s_given_z`` to rounding.

    References
    ----------
    Cover & Thomas (2006), Thm 2.5.1 (chain rule) and 2.6.3; Ballé et al. (2018).

    Examples
    --------
    >>> p = [0.4, 0.1, 0.25, 0.25]
    >>> parts = two_part_rate(p, [0, 0, 1, 1], [0.5, 0.5], [[0.8, 0.2, 0, 0], [0, 0, 0.5, 0.5]])
    >>> print(round(parts.total, 6), round(parts.entropy + parts.gap_z + parts.gap_s_given_z, 6))
    1.860964 1.860964
    """
    p = _inputs.pmf(check.finite_array(p, "p", ndim=1), "p")
    phi = _inputs.integer_array(phi, "phi", ndim=1)
    if phi.size != p.size:
        raise ValueError(f"phi: expected one side-information symbol per symbol of p "
                         f"({p.size}), got {phi.size}")
    q_z = _inputs.pmf(check.finite_array(q_z, "q_z", ndim=1), "q_z")
    if phi.min() < 0 or phi.max() >= q_z.size:
        raise ValueError(f"phi: expected values in 0..{q_z.size - 1} (the alphabet of q_z), "
                         f"got range [{phi.min()}, {phi.max()}]")
    q_cond = _inputs.pmf(check.finite_array(q_s_given_z, "q_s_given_z", ndim=2),
                         "q_s_given_z", axis=1)
    if q_cond.shape != (q_z.size, p.size):
        raise ValueError(f"q_s_given_z: expected shape ({q_z.size}, {p.size}), "
                         f"got {q_cond.shape}")
    p_z, q_z = _pair(np.bincount(phi, weights=p, minlength=q_z.size), q_z, "p_Z", "q_z")
    q_s = q_cond[phi, np.arange(p.size)]                # q(s | phi(s))
    bad = np.flatnonzero((p > 0) & (q_s <= 0))
    if bad.size:
        raise ValueError(f"q_s_given_z: expected q(s | phi(s)) > 0 wherever p > 0; zero at "
                         f"symbols {bad[:10].tolist()}")
    p_s_given_z = np.divide(p, p_z[phi], out=np.zeros_like(p), where=p_z[phi] > 0)
    gap_cond = float(np.sum(_plogq(p, p_s_given_z) - _plogq(p, q_s)))
    rate_z, rate_cond = -float(_plogq(p_z, q_z).sum()), -float(_plogq(p, q_s).sum())
    return TwoPartRate(rate_z, rate_cond, rate_z + rate_cond, entropy(p),
                       kl_divergence(p_z, q_z), max(gap_cond, 0.0))
