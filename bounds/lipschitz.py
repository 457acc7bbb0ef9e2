"""T10: Lipschitz and spectral statistics of a map, and entropy after the map.

The spectral norm of a Jacobian at data points, by power iteration with JVP
and VJP (no Jacobian is ever formed), is an *estimate*: it is a lower bound
on the local spectral norm at that point, and hence on the global Lipschitz
constant; it is never an upper bound. Entropies are in bits and log-
determinants are base 2 (``torch.linalg.slogdet`` returns natural logs:
divide by ``ln 2``).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from . import _arguments as check
from .catalogue import register


def _point(x) -> torch.Tensor:
    tensor = torch.as_tensor(x)
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    if tensor.numel() == 0 or not bool(torch.isfinite(tensor).all()):
        raise ValueError("x: expected a non-empty array of finite floating-point values")
    return tensor.detach()


def _norms(tensor: torch.Tensor, batched: bool) -> torch.Tensor:
    if batched:
        return torch.linalg.vector_norm(tensor.reshape(tensor.shape[0], -1), dim=1)
    return torch.linalg.vector_norm(tensor.reshape(-1)).reshape(1)


def _scaled(tensor: torch.Tensor, factors: torch.Tensor, batched: bool) -> torch.Tensor:
    if batched:
        return tensor * factors.reshape((-1,) + (1,) * (tensor.ndim - 1))
    return tensor * factors[0]


@register(
    theory="T10",
    statement="For unit v_k from k steps of power iteration on J^T J at x, ||J(x) v_k||_2 <= "
              "||J(x)||_2 <= Lip(f): the estimate is a LOWER bound on the local spectral norm "
              "and on the global Lipschitz constant, converging to ||J(x)||_2.",
    latex=r"\|J_f(x)v_k\|_2 \le \|J_f(x)\|_2 \le \mathrm{Lip}(f),\quad"
          r"v_k = \frac{(J^\top J)^k v_0}{\|(J^\top J)^k v_0\|_2}",
    hypotheses=["f differentiable at x", "v_0 not orthogonal to the top right singular "
                "vector (almost sure for a random start) for convergence",
                "batched: f acts on each row of x independently"],
    references=["deandrade2026"],
)
def jacobian_spectral_norm(fn: Callable, x, iters: int = 50, seed: int = 0,
                           batched: bool = False, init=None):
    r"""Spectral norm of the Jacobian of ``fn`` at ``x``, by power iteration.

    Power iteration on :math:`J^\top J` with one JVP and one VJP per step:

    .. math:: v_{k+1} = \frac{J^\top J v_k}{\|J^\top J v_k\|_2},\qquad
              \hat\sigma = \|J v_K\|_2 \le \|J\|_2 \le \mathrm{Lip}(f).

    For any unit vector v, :math:`\|Jv\|_2 \le \|J\|_2`, so the returned value
    is a LOWER bound on the local spectral norm at ``x`` (it converges to it
    at rate :math:`(\sigma_2/\sigma_1)^{2K}`), and therefore a LOWER bound on
    the global Lipschitz constant of ``fn``: report it as such, never as a
    Lipschitz constant.

    Parameters
    ----------
    fn : callable
        A differentiable torch function, ``R^n -> R^m`` (any input and output
        shapes; they are flattened). With ``batched=True`` it must map a batch
        ``(B, ...)`` to ``(B, ...)`` acting on each row independently (no
        batch norm, no mixing across rows), so that the Jacobian is block
        diagonal and one JVP/VJP serves all points.
    x : array_like or torch.Tensor
        The point (or the batch of points).
    iters : int
        Number K of power-iteration steps, ``>= 1``.
    seed : int
        Seed of the random start, ``>= 0``.
    batched : bool
        Whether the first axis of ``x`` indexes independent points.
    init : array_like, optional
        Start vector ``v_0`` (shape of ``x``) instead of a random one.

    Returns
    -------
    float or ndarray of shape (B,)
        The estimate, or one per point when ``batched``.

    Notes
    -----
    THEORY.md T10. Derivation (Rayleigh quotient after K steps, two singular
    values): ``rdgap.proofs.DERIVATIONS["jacobian_spectral_norm"]``.

    References
    ----------
    .. [1] de Andrade, Harell & Bajic (2026), arXiv 2601.22002.

    Examples
    --------
    >>> import torch
    >>> a = torch.tensor([[3.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    >>> round(jacobian_spectral_norm(lambda v: a @ v, torch.ones(2, dtype=torch.float64)), 6)
    3.0
    >>> out = jacobian_spectral_norm(torch.sin, torch.tensor([[0.0], [3.14159265]]), batched=True)
    >>> [round(float(v), 4) for v in out]
    [1.0, 1.0]
    """
    if not callable(fn):
        raise ValueError(f"fn: expected a callable torch function, got {type(fn).__name__}")
    point = _point(x)
    iters = check.count(iters, "iters")
    seed = check.count(seed, "seed", minimum=0)
    if not isinstance(batched, bool):
        raise ValueError(f"batched: expected True or False, got {batched!r}")
    if batched and point.ndim == 0:
        raise ValueError("x: batched=True needs a leading batch axis, got a scalar")
    if init is None:
        generator = torch.Generator().manual_seed(seed)
        v = torch.randn(point.shape, generator=generator, dtype=point.dtype).to(point.device)
    else:
        v = torch.as_tensor(init, dtype=point.dtype, device=point.device)
        if v.shape != point.shape:
            raise ValueError(f"init: expected shape {tuple(point.shape)}, got {tuple(v.shape)}")
    output, pullback = torch.func.vjp(fn, point)
    if batched and (output.ndim == 0 or output.shape[0] != point.shape[0]):
        raise ValueError(f"fn: with batched=True it must keep the batch axis "
                         f"({point.shape[0]}), got output shape {tuple(output.shape)}")
    tiny = torch.finfo(point.dtype).tiny
    v = _scaled(v, 1.0 / _norms(v, batched).clamp_min(tiny), batched)
    for _ in range(iters):
        _, jv = torch.func.jvp(fn, (point,), (v,))
        (jtjv,) = pullback(jv)
        v = _scaled(jtjv, 1.0 / _norms(jtjv, batched).clamp_min(tiny), batched)
    _, jv = torch.func.jvp(fn, (point,), (v,))
    estimate = _norms(jv, batched).detach().cpu().numpy().astype(np.float64)
    return estimate if batched else float(estimate[0])


def _mean_finite(values, name: str) -> float:
    return float(check.finite_array(np.atleast_1d(values), name).mean())


@register(
    theory="T10",
    statement="For an invertible differentiable f with Jacobian J_f: h(f(X)) = h(X) + "
              "E log2 |det J_f(X)| (change of variables; an equality, hence also <=).",
    latex=r"h(f(X)) = h(X) + \mathbb{E}\log_2|\det J_f(X)|",
    hypotheses=["X has a density with finite differential entropy",
                "f: R^n -> R^n invertible and differentiable (a diffeomorphism onto its image)",
                "E log|det J_f(X)| finite"],
    references=["cover2006"],
)
def logdet_entropy_bound(h_x: float, logabsdet) -> float:
    r"""Differential entropy after an invertible map, from its log-determinants.

    .. math:: h(f(X)) = h(X) + \mathbb{E}\log_2|\det J_f(X)|

    by the change of variables :math:`p_{f(X)}(f(x)) = p_X(x)/|\det J_f(x)|`.
    THEORY.md writes it as ``<=``; for invertible f it is an equality, so
    the value returned is exact when ``logabsdet`` holds exact values at
    i.i.d. samples of X, up to the Monte Carlo error of their mean.

    Parameters
    ----------
    h_x : float
        h(X) in bits.
    logabsdet : float or array_like
        :math:`\log_2|\det J_f(x)|` (base 2) at samples of X, or its mean.

    Returns
    -------
    float
        h(f(X)) in bits.

    Notes
    -----
    THEORY.md T10, first inequality. Derivation:
    ``rdgap.proofs.DERIVATIONS["logdet_entropy_bound"]``.

    References
    ----------
    .. [1] Cover & Thomas (2006), Elements of Information Theory, Thm 8.6.4
       (the linear case) and its change-of-variables proof.

    Examples
    --------
    >>> round(logdet_entropy_bound(2.0, [1.0, 3.0]), 3)
    4.0
    """
    return check.finite(h_x, "h_x") + _mean_finite(logabsdet, "logabsdet")


@register(
    theory="T10",
    statement="For invertible f on R^n: h(f(X)) <= h(X) + n E log2 ||J_f(X)||_2 <= h(X) + "
              "n log2 sup_x ||J_f(x)||_2, since |det J| = prod sigma_i <= sigma_max^n. "
              "A guarantee only when spectral_norm is a scalar UPPER bound on sup_x "
              "||J_f(x)||_2; with norms at sampled points it is a Monte Carlo estimate.",
    latex=r"h(f(X)) \le h(X) + n\,\mathbb{E}\log_2\|J_f(X)\|_2"
          r" \le h(X) + n\log_2\sup_x\|J_f(x)\|_2",
    hypotheses=["hypotheses of logdet_entropy_bound",
                "f a differentiable bijection of R^n (a transformer prefix, whose input is "
                "discrete tokens, is not one)",
                "spectral_norm >= sup_x ||J_f(x)||_2 (a scalar global upper bound); local "
                "norms at sampled points make the result a Monte Carlo ESTIMATE of the "
                "middle term, and a power-iteration estimate (a lower bound) voids it further"],
    references=["cover2006"],
)
def entropy_after_map_bound(h_x: float, n: int, spectral_norm) -> float:
    r"""Upper bound on h(f(X)) from the spectral norm of the Jacobian.

    .. math:: h(f(X)) = h(X) + \mathbb{E}\log_2|\det J_f(X)|
              \le h(X) + n\,\mathbb{E}\log_2\|J_f(X)\|_2
              \le h(X) + n\log_2 \sup_x\|J_f(x)\|_2 ,

    because :math:`|\det J| = \prod_i\sigma_i(J) \le \sigma_{\max}(J)^n`.

    CAUTION: the inequality is a guarantee only for an invertible
    differentiable ``f`` of :math:`\mathbb{R}^n` (a transformer prefix acting
    on discrete tokens is not one) and a scalar ``spectral_norm`` at least
    :math:`\sup_x\|J_f(x)\|_2`. Given an array of local norms at sampled
    points, the mean of their logs is a Monte Carlo ESTIMATE of
    :math:`n\,\mathbb{E}\log_2\|J_f(X)\|_2`, with sampling error and no
    guarantee; :func:`jacobian_spectral_norm` returns LOWER bounds on local
    norms, so plugging it in biases that estimate low as well.

    Parameters
    ----------
    h_x : float
        h(X) in bits.
    n : int
        Dimension of X (and of f(X)), ``>= 1``.
    spectral_norm : float or array_like
        ``> 0``: a bound on :math:`\sup_x\|J_f(x)\|_2` (then the result is a
        bound), or local norms at sampled points (then it is a Monte Carlo
        estimate, not a bound).

    Returns
    -------
    float
        The bound on h(f(X)) in bits, or its Monte Carlo estimate (above).

    Notes
    -----
    THEORY.md T10, second inequality. Derivation:
    ``rdgap.proofs.DERIVATIONS["entropy_after_map_bound"]``.

    References
    ----------
    .. [1] Cover & Thomas (2006), Thm 8.6.4 and Sec. 17.9 (Hadamard-type
       determinant inequalities).

    Examples
    --------
    >>> round(entropy_after_map_bound(2.0, 3, 2.0), 3)
    5.0
    """
    h_x = check.finite(h_x, "h_x")
    n = check.count(n, "n")
    norms = check.positive_array(np.atleast_1d(spectral_norm), "spectral_norm")
    return h_x + n * float(np.log2(norms).mean())
