r"""Synthetic sources whose entropy is known exactly, for coverage tests of the bounds.

Length (≈460 lines): a catalogue — one small frozen dataclass per source with a known
entropy; splitting it would scatter the catalogue the coverage tests pick from.

Every source is a frozen dataclass with

- ``sample(size, rng)``: ``size`` independent draws of the source's i.i.d. unit
  (a symbol, a vector, or a whole sequence) from a ``numpy.random.Generator``;
- ``entropy_bits``: the exact entropy of one such unit, in bits.

The discrete scalar sources (:class:`DiscreteSource`, :class:`QuantizedScalar`,
:class:`QuantizedMixture`) also expose their tabulated pmf (``support``,
``probabilities``), ``log2_pmf(symbols)``, and exact ``cross_entropy_to(model)``
and ``kl_to(model)`` for any model with a ``log2_pmf`` method (or a pmf array
over ``0..K-1``). "Exact" means summed in closed form or over every cell that
holds mass above ``1e-20`` (see :mod:`rdgap.bounds.quantized`).

Examples
--------
>>> import numpy as np
>>> source = QuantizedScalar("gaussian", scale=1.0, step=0.5)
>>> x = source.sample(1000, np.random.default_rng(0))
>>> print(x.shape, round(source.entropy_bits, 6))
(1000,) 3.061969
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy import special

from rdgap.bounds import _arguments as check
from rdgap.bounds import _inputs
from rdgap.bounds.gibbs import entropy as _entropy
from rdgap.bounds.gibbs import kl_divergence
from rdgap.bounds.quantized import (DISTRIBUTIONS, differential_entropy, quantized_entropy,
                                    quantized_log_pmf)

LN2 = math.log(2.0)

_SAMPLERS = {
    "gaussian": lambda rng, size: rng.standard_normal(size),
    "laplace": lambda rng, size: rng.laplace(0.0, 1.0, size),
    "logistic": lambda rng, size: rng.logistic(0.0, 1.0, size),
}


def _generator(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def _draw(pmf_cumulative: np.ndarray, rng: np.random.Generator, size) -> np.ndarray:
    """Indices drawn from a pmf given by its cumulative sums (inverse-CDF sampling)."""
    u = rng.random(size) * pmf_cumulative[-1]
    return np.minimum(np.searchsorted(pmf_cumulative, u, side="right"),
                      pmf_cumulative.size - 1)


def quantize(values, step: float) -> np.ndarray:
    """Mid-tread quantization ``floor(y / step + 1/2)``.

    Symbol ``k`` is the cell ``[(k-1/2) step, (k+1/2) step)``, as in T5.
    """
    return np.floor(np.asarray(values) / step + 0.5).astype(np.int64)


class _Tabulated:
    """A discrete scalar source given by ``support`` and ``log_probabilities`` (nats)."""

    support: np.ndarray
    log_probabilities: np.ndarray

    @cached_property
    def probabilities(self) -> np.ndarray:
        """``P(S = support[i])``."""
        return np.exp(self.log_probabilities)

    @cached_property
    def _cumulative(self) -> np.ndarray:
        return np.cumsum(self.probabilities)

    @property
    def mean(self) -> float:
        """``E S`` (exact sum over the support)."""
        return float(np.sum(self.probabilities * self.support))

    @property
    def variance(self) -> float:
        """``Var S`` (exact sum over the support)."""
        return float(np.sum(self.probabilities * (self.support - self.mean) ** 2))

    def log2_pmf(self, symbols) -> np.ndarray:
        """``log2 P(S = s)`` for each symbol (``-inf`` off the support)."""
        symbols = np.asarray(symbols, dtype=np.int64)
        index = np.searchsorted(self.support, symbols)
        inside = (index < self.support.size) & (
            self.support[np.minimum(index, self.support.size - 1)] == symbols)
        out = np.full(symbols.shape, -np.inf)
        out[inside] = self.log_probabilities[index[inside]] / LN2
        return out

    def cross_entropy_to(self, model) -> float:
        """Exact ``E[-log2 q(S)]`` in bits for ``model.log2_pmf`` (or a pmf array on 0..K-1)."""
        if not hasattr(model, "log2_pmf"):
            model = DiscreteSource(model)
        keep = self.probabilities > 0
        log_q = model.log2_pmf(self.support[keep])
        if np.any(~np.isfinite(log_q)):
            raise ValueError("model: expected q > 0 on the support of the source")
        return float(-np.sum(self.probabilities[keep] * log_q))

    def kl_to(self, model) -> float:
        """Exact ``D(p || q) = cross_entropy_to(model) - entropy_bits`` in bits."""
        return max(self.cross_entropy_to(model) - self.entropy_bits, 0.0)

    def sample(self, size, rng) -> np.ndarray:
        """``size`` i.i.d. symbols (int64) drawn by inverse-CDF from the tabulated pmf."""
        return self.support[_draw(self._cumulative, _generator(rng), size)]


@dataclass(frozen=True, eq=False)
class DiscreteSource(_Tabulated):
    """I.i.d. symbols with a given pmf, on ``0..K-1`` or on a given increasing ``support``.

    Examples
    --------
    >>> print(DiscreteSource([0.5, 0.25, 0.25]).entropy_bits)
    1.5
    """

    pmf: np.ndarray
    support: np.ndarray | None = None

    def __post_init__(self):
        pmf = _inputs.pmf(check.finite_array(self.pmf, "pmf", ndim=1), "pmf")
        if self.support is None:
            support = np.arange(pmf.size, dtype=np.int64)
        else:
            support = _inputs.integer_array(self.support, "support", ndim=1)
            if support.size != pmf.size or np.any(np.diff(support) <= 0):
                raise ValueError(f"support: expected {pmf.size} increasing integers")
        object.__setattr__(self, "pmf", pmf)
        object.__setattr__(self, "support", support)
        with np.errstate(divide="ignore"):
            object.__setattr__(self, "log_probabilities", np.log(pmf))

    @property
    def entropy_bits(self) -> float:
        """``H(S)`` in bits."""
        return _entropy(self.pmf)


@dataclass(frozen=True, eq=False)
class QuantizedScalar(_Tabulated):
    """``S = round((loc + scale X) / step)`` for ``X`` standard Gaussian, Laplace or logistic."""

    dist: str
    scale: float
    step: float
    loc: float = 0.0

    def __post_init__(self):
        support, log_p = quantized_log_pmf(self.dist, self.scale, self.step, self.loc)
        object.__setattr__(self, "support", support)
        object.__setattr__(self, "log_probabilities", log_p)

    @property
    def entropy_bits(self) -> float:
        """Exact ``H(S)`` in bits (:func:`rdgap.bounds.quantized_entropy`)."""
        return quantized_entropy(self.dist, self.scale, self.step, self.loc)

    @property
    def differential_entropy_bits(self) -> float:
        """``h(Y)`` of the unquantized scalar, in bits."""
        return differential_entropy(self.dist, self.scale)

    def sample(self, size, rng) -> np.ndarray:
        """``size`` i.i.d. symbols, drawn by sampling ``Y`` and rounding it."""
        y = self.loc + self.scale * _SAMPLERS[self.dist](_generator(rng), size)
        return quantize(y, self.step)


@dataclass(frozen=True, eq=False)
class QuantizedMixture(_Tabulated):
    """A quantized mixture ``sum_c w_c Law_c(loc_c, scale_c)`` with one step.

    ``components`` is a sequence of ``(dist, scale, loc)``. The pmf is the
    mixture of the components' exact cell probabilities (log-sum-exp), so the
    entropy is exact.

    Examples
    --------
    >>> mix = QuantizedMixture([0.5, 0.5], [("gaussian", 1.0, -3.0), ("laplace", 0.5, 3.0)], 0.5)
    >>> print(round(mix.entropy_bits, 6))
    3.767084
    """

    weights: np.ndarray
    components: tuple
    step: float

    def __post_init__(self):
        weights = _inputs.pmf(check.finite_array(self.weights, "weights", ndim=1), "weights")
        components = tuple(tuple(c) for c in self.components)
        if len(components) != weights.size or any(len(c) != 3 for c in components):
            raise ValueError(f"components: expected {weights.size} triples (dist, scale, loc), "
                             f"got {self.components!r}")
        tables = [quantized_log_pmf(d, s, self.step, loc) for d, s, loc in components]
        support = np.arange(min(t[0][0] for t in tables), max(t[0][-1] for t in tables) + 1)
        with np.errstate(divide="ignore"):
            log_w = np.log(weights)
        stacked = np.stack([quantized_log_pmf(d, s, self.step, loc, symbols=support)[1]
                            for d, s, loc in components])
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "components", components)
        object.__setattr__(self, "support", support)
        object.__setattr__(self, "log_probabilities",
                           special.logsumexp(stacked + log_w[:, None], axis=0))

    @property
    def entropy_bits(self) -> float:
        """Exact ``H(S)`` in bits, summed over the union of the components' cells."""
        finite = np.isfinite(self.log_probabilities)
        return float(-np.sum(self.probabilities[finite] * self.log_probabilities[finite]) / LN2)

    def sample(self, size, rng) -> np.ndarray:
        """``size`` i.i.d. symbols: a component by its weight, then its rounded value."""
        rng = _generator(rng)
        which = _draw(np.cumsum(self.weights), rng, size)
        y = np.zeros(np.shape(which))
        for index, (dist, scale, loc) in enumerate(self.components):
            chosen = which == index
            y[chosen] = loc + scale * _SAMPLERS[dist](rng, int(chosen.sum()))
        return quantize(y, self.step)


@dataclass(frozen=True, eq=False)
class MarkovSource:
    """Sequences of ``length`` symbols from a stationary Markov chain.

    The i.i.d. unit is the *sequence*: ``sample(size, rng)`` returns an array
    ``(size, length)`` of independent sequences, each started from the
    stationary law ``pi``; ``entropy_bits`` is the exact block entropy
    ``H(X_1..X_m) = H(pi) + (m - 1) H(X_2 | X_1)``.

    Examples
    --------
    >>> chain = MarkovSource([[0.9, 0.1], [0.2, 0.8]], length=4)
    >>> print(round(chain.entropy_rate_bits, 6), round(chain.entropy_bits, 6))
    0.553306 2.578215
    """

    transition: np.ndarray
    length: int

    def __post_init__(self):
        p = _inputs.pmf(check.finite_array(self.transition, "transition", ndim=2),
                        "transition", axis=1)
        if p.shape[0] != p.shape[1]:
            raise ValueError(f"transition: expected a square matrix, got shape {p.shape}")
        object.__setattr__(self, "transition", p)
        object.__setattr__(self, "length", check.count(self.length, "length"))

    @cached_property
    def stationary(self) -> np.ndarray:
        """The stationary pmf ``pi`` (``pi P = pi``), unique if the chain is irreducible."""
        k = self.transition.shape[0]
        system = np.vstack([self.transition.T - np.eye(k), np.ones(k)])
        pi = np.linalg.lstsq(system, np.concatenate([np.zeros(k), [1.0]]), rcond=None)[0]
        pi = np.clip(pi, 0.0, None)
        return pi / pi.sum()

    @property
    def marginal_entropy_bits(self) -> float:
        """``H(X_t) = H(pi)`` for every position ``t``."""
        return _entropy(self.stationary)

    @property
    def entropy_rate_bits(self) -> float:
        """``H(X_2 | X_1) = sum_i pi_i H(P_i.)``."""
        return float(sum(w * _entropy(row) for w, row in zip(self.stationary, self.transition)))

    @property
    def entropy_bits(self) -> float:
        """Block entropy of one sequence: ``H(pi) + (length - 1) H(X_2 | X_1)``."""
        return self.marginal_entropy_bits + (self.length - 1) * self.entropy_rate_bits

    def kl_to(self, model: "MarkovSource") -> float:
        """Exact block divergence ``D(pi || pi') + (m-1) sum_i pi_i D(P_i. || P'_i.)`` (bits)."""
        if not isinstance(model, MarkovSource) or model.transition.shape != self.transition.shape:
            raise ValueError("model: expected a MarkovSource on the same alphabet")
        rows = sum(w * kl_divergence(row, other) for w, row, other
                   in zip(self.stationary, self.transition, model.transition) if w > 0)
        return kl_divergence(self.stationary, model.stationary) + (self.length - 1) * rows

    def cross_entropy_to(self, model: "MarkovSource") -> float:
        """Exact ``E[-log2 q(X_1..X_m)]`` of the stationary chain ``model``, in bits."""
        return self.entropy_bits + self.kl_to(model)

    def sample(self, size, rng) -> np.ndarray:
        """``size`` independent stationary sequences, shape ``(size, length)``."""
        rng = _generator(rng)
        size = check.count(size, "size")
        cumulative = np.cumsum(self.transition, axis=1)
        out = np.empty((size, self.length), dtype=np.int64)
        out[:, 0] = _draw(np.cumsum(self.stationary), rng, size)
        for t in range(1, self.length):
            u = rng.random(size)[:, None]
            out[:, t] = np.minimum((u > cumulative[out[:, t - 1]]).sum(axis=1),
                                   self.transition.shape[0] - 1)
        return out


@dataclass(frozen=True, eq=False)
class UnimodularVector:
    """Correlated integer vectors ``S = A X`` with exact entropy (for T3 and T4 checks).

    ``X`` has independent coordinates from the scalar ``sources`` and ``A`` is
    an integer matrix with ``det A = +-1``, a bijection of ``Z^n``; hence
    ``H(S) = sum_j H(X_j)`` exactly, while ``Cov(S) = A diag(Var X_j) A^T`` is
    far from diagonal.

    Examples
    --------
    >>> v = UnimodularVector((QuantizedScalar("gaussian", 2.0, 1.0),
    ...                       QuantizedScalar("laplace", 1.0, 1.0)), [[1, 1], [0, 1]])
    >>> print(round(v.entropy_bits, 6), v.covariance.shape)
    5.546113 (2, 2)
    """

    sources: tuple
    matrix: np.ndarray

    def __post_init__(self):
        a = _inputs.integer_array(self.matrix, "matrix", ndim=2)
        if a.shape != (len(self.sources), len(self.sources)):
            raise ValueError(f"matrix: expected shape ({len(self.sources)}, "
                             f"{len(self.sources)}), got {a.shape}")
        if round(abs(np.linalg.det(a))) != 1:
            raise ValueError("matrix: expected an integer matrix with determinant +-1")
        object.__setattr__(self, "matrix", a)
        object.__setattr__(self, "sources", tuple(self.sources))

    @property
    def entropy_bits(self) -> float:
        """``H(S) = sum_j H(X_j)`` in bits per vector."""
        return float(sum(s.entropy_bits for s in self.sources))

    @property
    def mean(self) -> np.ndarray:
        """``E S = A E X``."""
        return self.matrix @ np.array([s.mean for s in self.sources])

    @property
    def covariance(self) -> np.ndarray:
        """``Cov S = A diag(Var X_j) A^T`` (exact)."""
        variances = np.array([s.variance for s in self.sources])
        return (self.matrix * variances) @ self.matrix.T

    def marginal(self, j: int) -> DiscreteSource:
        """The exact law of ``S_j = sum_i A_ji X_i``: a convolution of scaled component pmfs."""
        j = check.count(j, "j", minimum=0)
        if j >= self.matrix.shape[0]:
            raise ValueError(f"j: expected a channel in 0..{self.matrix.shape[0] - 1}, got {j}")
        pmf, low = np.ones(1), 0
        for a, source in zip(self.matrix[j], self.sources):
            if a == 0:
                continue
            support, probs = source.support, source.probabilities
            if a < 0:
                support, probs = -support[::-1], probs[::-1]
            dense = np.zeros(abs(a) * (support[-1] - support[0]) + 1)
            dense[abs(a) * (support - support[0])] = probs
            pmf, low = np.convolve(pmf, dense), low + abs(a) * support[0]
        keep = pmf > 0
        return DiscreteSource(pmf[keep] / pmf[keep].sum(),
                              support=np.arange(low, low + pmf.size)[keep])

    @property
    def marginal_entropy_bits(self) -> float:
        """``sum_j H(S_j)`` in bits: the floor of factorized codecs (T4)."""
        return float(sum(self.marginal(j).entropy_bits for j in range(self.matrix.shape[0])))

    @property
    def total_correlation_bits(self) -> float:
        """``TC(S) = sum_j H(S_j) - H(S) >= 0``."""
        return self.marginal_entropy_bits - self.entropy_bits

    def sample(self, size, rng) -> np.ndarray:
        """``size`` i.i.d. vectors ``S = A X``, shape ``(size, n)``."""
        x = np.stack([s.sample(size, rng) for s in self.sources], axis=-1)
        return x @ self.matrix.T


def random_unimodular(n: int, rng, mixes: int = 6, magnitude: int = 2) -> np.ndarray:
    """A random integer ``n x n`` matrix with determinant ``+-1``: a product of
    ``mixes`` elementary row operations ``row_i += c row_j`` (``|c| <= magnitude``)."""
    n, rng = check.count(n, "n"), _generator(rng)
    a = np.eye(n, dtype=np.int64)
    for _ in range(check.count(mixes, "mixes", minimum=0)):
        if n < 2:
            break
        i, j = rng.choice(n, size=2, replace=False)
        a[i] += rng.integers(-magnitude, magnitude + 1) * a[j]
    return a


@dataclass(frozen=True, eq=False)
class GaussianVector:
    """Continuous ``Y ~ N(mean, cov)`` with exact differential entropy (for T6).

    Examples
    --------
    >>> print(round(GaussianVector([0.0], [[1.0]]).differential_entropy_bits, 6))
    2.047096
    """

    mean: np.ndarray
    cov: np.ndarray
    _factor: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        cov = _inputs.psd_matrix(self.cov, "cov")
        mean = check.finite_array(self.mean, "mean", ndim=1)
        if mean.size != cov.shape[0]:
            raise ValueError(f"mean: expected {cov.shape[0]} values, got {mean.size}")
        try:
            factor = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise ValueError("cov: expected a positive definite matrix") from None
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "cov", cov)
        object.__setattr__(self, "_factor", factor)

    @property
    def eigenvalues(self) -> np.ndarray:
        """Eigenvalues of ``cov`` (ascending)."""
        return np.linalg.eigvalsh(self.cov)

    @property
    def differential_entropy_bits(self) -> float:
        """``h(Y) = 1/2 log2 det(2 pi e cov)``."""
        n = self.mean.size
        return 0.5 * n * math.log2(2 * math.pi * math.e) + float(
            np.sum(np.log2(np.diag(self._factor))))

    def sample(self, size, rng) -> np.ndarray:
        """``size`` i.i.d. vectors, shape ``(size, n)``."""
        z = _generator(rng).standard_normal((check.count(size, "size"), self.mean.size))
        return self.mean + z @ self._factor.T


__all__ = ["DISTRIBUTIONS", "DiscreteSource", "GaussianVector", "MarkovSource",
           "QuantizedMixture", "QuantizedScalar", "UnimodularVector", "quantize",
           "random_unimodular"]
