r"""Hypothesis strategies for property-testing codecs of hidden states.

Three kinds of input:

- **Hidden-state-like tensors** (:func:`hidden_states`): ``(tokens, channels)``
  float32 matrices with heavy tails (Student-t), a few outlier channels whose
  scale is about 1,000× the typical one, and optionally a massive activation on
  the first token, as causal LMs produce; with edge shapes (one token, one
  channel, long sequences) drawn on purpose (:func:`shapes`).
- **Integer symbols** (:func:`symbol_tensors`): ``(tokens, channels)`` int64
  matrices inside a valid symbol range (:func:`symbol_ranges`).
- **Sources with known entropy** (:func:`known_entropy_sources`):
  :class:`KnownEntropySource` objects built on
  :mod:`rdgap.validation.synthetic`, whose streams have an exactly known
  entropy and a computable information ``−log2 p(x)``; the statistical
  properties of :func:`rdgap.testing.check_codec` (T1, T2 calibration, T3) use
  them.

Every strategy draws a seed and a few parameters and builds the tensor with
numpy, so hypothesis shrinks towards small shapes and simple parameters.

Examples
--------
>>> import numpy as np
>>> from rdgap.validation.synthetic import DiscreteSource
>>> source = KnownEntropySource.iid(DiscreteSource([0.5, 0.25, 0.25]), tokens=4, channels=2)
>>> print(source.entropy_bits, source.units, source.unit_bound_bits)
12.0 8 2.0
>>> x = source.sample(np.random.default_rng(0))
>>> print(x.shape, x.dtype, source.information_bits(x) >= 8.0)
(4, 2) int64 True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from hypothesis import strategies as st


#: Largest magnitude :func:`hidden_states` draws by default: inside float16's
#: range (65504), so casts to fp16 are defined.
DEFAULT_MAX_ABS = 6.0e4
#: The scale of outlier channels relative to the typical channel.
OUTLIER_FACTOR = 1000.0
#: The massive first-token activation (SmolLM2 shows ~2.5e4 on one channel).
MASSIVE_ACTIVATION = 2.5e4


def _count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer ≥ {minimum}, got {value!r}")
    return int(value)


def shapes(channels: int | None = None, max_tokens: int = 64, max_channels: int = 32,
           long_tokens: int = 512) -> st.SearchStrategy:
    """``(tokens, channels)`` pairs, with the edge shapes drawn on purpose.

    Parameters
    ----------
    channels : int, optional
        A fixed channel count (a codec fitted on ``channels`` channels);
        otherwise 1..``max_channels``.
    max_tokens : int
        Largest ordinary token count.
    long_tokens : int
        The token count of the "long sequence" edge case.

    Returns
    -------
    hypothesis strategy of (int, int)
        One token, one channel and ``long_tokens`` tokens appear among the
        explicit choices, besides ordinary draws.
    """
    max_tokens = _count(max_tokens, "max_tokens")
    long_tokens = _count(long_tokens, "long_tokens")
    if channels is None:
        channel_st = st.one_of(st.just(1), st.integers(1, _count(max_channels, "max_channels")))
    else:
        channel_st = st.just(_count(channels, "channels"))
    token_st = st.one_of(st.just(1), st.integers(1, max_tokens), st.just(long_tokens))
    return st.tuples(token_st, channel_st)


def hidden_states(channels: int | None = None, max_tokens: int = 64, max_channels: int = 32,
                  long_tokens: int = 512, max_abs: float = DEFAULT_MAX_ABS):
    """Hidden-state-like float32 tensors ``(tokens, channels)``.

    Each channel has a log-uniform typical scale; values are Student-t with a
    drawn number of degrees of freedom (2.5–30: heavy to light tails); up to
    three outlier channels are scaled by :data:`OUTLIER_FACTOR`; the first
    token may carry :data:`MASSIVE_ACTIVATION` on one channel. Values are
    clipped to ``±max_abs``.

    Parameters
    ----------
    channels, max_tokens, max_channels, long_tokens
        As in :func:`shapes`.
    max_abs : float
        Largest magnitude (default inside float16's range).

    Returns
    -------
    hypothesis strategy of torch.Tensor

    Raises
    ------
    ValueError
        For a bad argument (checked when the strategy is built).
    """
    if not isinstance(max_abs, (int, float)) or not np.isfinite(max_abs) or max_abs <= 0:
        raise ValueError(f"max_abs: expected a finite positive magnitude, got {max_abs!r}")
    return _hidden_states(shapes(channels, max_tokens, max_channels, long_tokens), max_abs)


@st.composite
def _hidden_states(draw, shape_strategy, max_abs):
    import torch

    tokens, width = draw(shape_strategy)
    seed = draw(st.integers(0, 2 ** 32 - 1))
    dof = draw(st.sampled_from([2.5, 4.0, 30.0]))
    outliers = draw(st.integers(0, min(3, width)))
    massive = draw(st.booleans())
    rng = np.random.default_rng(seed)
    spread = np.exp(rng.uniform(-1.0, 2.0, width))
    x = rng.standard_t(dof, (tokens, width)) * spread
    if outliers:
        chosen = rng.choice(width, outliers, replace=False)
        x[:, chosen] *= OUTLIER_FACTOR / np.maximum(spread[chosen], 1e-3) * spread.mean()
    if massive:
        x[0, int(rng.integers(width))] = MASSIVE_ACTIVATION
    x = np.clip(x, -max_abs, max_abs)
    return torch.from_numpy(x.astype(np.float32))


def symbol_ranges(low: int = -(2 ** 15), high: int = 2 ** 15) -> st.SearchStrategy:
    """Valid symbol ranges ``(lo, hi)`` with ``low ≤ lo ≤ hi ≤ high``."""
    if low > high:
        raise ValueError(f"low, high: expected low ≤ high, got {low} > {high}")
    return st.tuples(st.integers(low, high), st.integers(low, high)).map(
        lambda pair: (min(pair), max(pair)))


def symbol_tensors(symbol_range: tuple[int, int] = (-128, 127), channels: int | None = None,
                   max_tokens: int = 64, max_channels: int = 32, long_tokens: int = 512):
    """Integer symbol matrices ``(tokens, channels)`` (int64) inside ``symbol_range``.

    Symbols are either spread uniformly over the range, concentrated near
    zero (or the middle of the range) like quantized hidden states, or pinned
    to the range's ends (the edge case).

    Raises
    ------
    ValueError
        For a bad argument (checked when the strategy is built).
    """
    return _symbol_tensors(_symbol_range(symbol_range),
                           shapes(channels, max_tokens, max_channels, long_tokens))


@st.composite
def _symbol_tensors(draw, symbol_range, shape_strategy):
    lo, hi = symbol_range
    tokens, width = draw(shape_strategy)
    seed = draw(st.integers(0, 2 ** 32 - 1))
    kind = draw(st.sampled_from(["peaked", "uniform", "ends"]))
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        s = rng.integers(lo, hi + 1, (tokens, width))
    elif kind == "ends":
        s = np.where(rng.random((tokens, width)) < 0.5, lo, hi)
    else:
        centre = min(max(0, lo), hi)
        s = np.rint(centre + rng.laplace(0.0, 2.0, (tokens, width)))
    return np.clip(s, lo, hi).astype(np.int64)


def _symbol_range(symbol_range) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in symbol_range)
    except (TypeError, ValueError):
        raise ValueError(f"symbol_range: expected a pair of integers (lo, hi), "
                         f"got {symbol_range!r}") from None
    if lo > hi:
        raise ValueError(f"symbol_range: expected lo ≤ hi, got {symbol_range!r}")
    return lo, hi


@dataclass(frozen=True, eq=False)
class KnownEntropySource:
    """Streams ``(tokens, channels)`` with known entropy and computable information.

    The i.i.d. *units* of a stream are its elements (or its rows, for a source
    with dependence inside a row); each unit's information
    ``−log2 p(unit)`` lies in ``[0, unit_bound_bits]``, which is what the T8
    radius of the suite needs.

    Parameters
    ----------
    name : str
        Readable description for failure messages.
    tokens, channels : int
        Stream shape.
    entropy_bits : float
        Exact entropy ``H`` of one stream, in bits.
    units : int
        Number of i.i.d. units per stream.
    unit_bound_bits : float
        Upper bound on the information of one unit.
    draw : callable ``rng -> ndarray``
        One stream of symbols ``(tokens, channels)`` (int64).
    log2_pmf : callable ``ndarray -> ndarray``
        ``log2 p`` of every unit of a stream (one value per unit).
    embed : callable, optional
        Maps the symbols to what the codec encodes (e.g. a float tensor
        ``μ + Δ·s``); it must be injective, so that the embedded stream has the
        same entropy. Default: the symbols themselves.
    family_bound_bits : float, optional
        A declared family's T3 bound on the rate of one stream (bits), when the
        codec declares a family.
    """

    name: str
    tokens: int
    channels: int
    entropy_bits: float
    units: int
    unit_bound_bits: float
    draw: Callable = field(repr=False)
    log2_pmf: Callable = field(repr=False)
    embed: Callable | None = field(default=None, repr=False)
    family_bound_bits: float | None = None

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One stream of symbols ``(tokens, channels)``."""
        return self.draw(rng)

    def encodable(self, symbols: np.ndarray):
        """What the codec is given for ``symbols`` (``embed`` applied)."""
        return symbols if self.embed is None else self.embed(symbols)

    def information_bits(self, symbols: np.ndarray) -> float:
        """``−log2 p(x)`` of one stream of symbols."""
        return float(-np.sum(self.log2_pmf(symbols)))

    @classmethod
    def iid(cls, source, tokens: int, channels: int, embed: Callable | None = None,
            name: str | None = None, family_bound_bits: float | None = None
            ) -> "KnownEntropySource":
        """Every element i.i.d. from a discrete ``source`` of :mod:`rdgap.validation.synthetic`.

        ``source`` needs ``sample(size, rng)``, ``entropy_bits``, ``log2_pmf``
        and a finite ``support`` with ``probabilities``; the unit bound is the
        largest ``−log2 p`` over the support.
        """
        tokens, channels = _count(tokens, "tokens"), _count(channels, "channels")
        if not hasattr(source, "log2_pmf") or not hasattr(source, "probabilities"):
            raise ValueError("source: expected a tabulated source of rdgap.validation.synthetic "
                             f"(DiscreteSource, QuantizedScalar, …), got {type(source).__name__}")
        p = np.asarray(source.probabilities)
        bound = float(-np.log2(p[p > 0].min()))
        shape = (tokens, channels)
        return cls(name=name or repr(source), tokens=tokens, channels=channels,
                   entropy_bits=tokens * channels * float(source.entropy_bits),
                   units=tokens * channels, unit_bound_bits=max(bound, 1e-12),
                   draw=lambda rng: np.asarray(source.sample(shape, rng), dtype=np.int64),
                   log2_pmf=lambda s: source.log2_pmf(s).ravel(), embed=embed,
                   family_bound_bits=family_bound_bits)


def truncated_scalar(dist: str, scale: float, low: int, high: int,
                     min_probability: float = 2.0 ** -16) -> DiscreteSource:
    """A quantized ``dist`` (step 1, ``scale``) restricted to ``low..high`` and to cells
    of probability ≥ ``min_probability``, renormalised: a finite source with exact
    entropy and a small unit bound.

    Examples
    --------
    >>> source = truncated_scalar("gaussian", 2.0, -8, 8)
    >>> print(source.support.min() >= -8, round(float(source.probabilities.sum()), 12))
    True 1.0
    """
    from rdgap.validation.synthetic import DiscreteSource, QuantizedScalar  # imports torch
    base = QuantizedScalar(dist, scale=float(scale), step=1.0)
    keep = (base.support >= low) & (base.support <= high) & (base.probabilities >= min_probability)
    if not keep.any():
        keep = base.support == base.support[np.argmax(base.probabilities)]
    p = base.probabilities[keep]
    return DiscreteSource(p / p.sum(), support=base.support[keep])


@st.composite
def known_entropy_sources(draw, tokens: int | None = None, channels: int | None = None,
                          symbol_range: tuple[int, int] = (-16, 16),
                          embed: Callable | None = None):
    """:class:`KnownEntropySource` streams of i.i.d. symbols in ``symbol_range``.

    The per-element law is a truncated quantized Gaussian, Laplace or logistic
    (:func:`truncated_scalar`) with a drawn scale, or a random pmf
    (:class:`rdgap.validation.synthetic.DiscreteSource`) on a few symbols.
    """
    lo, hi = _symbol_range(symbol_range)
    tokens = draw(st.sampled_from([128, 256])) if tokens is None else _count(tokens, "tokens")
    channels = draw(st.sampled_from([4, 16])) if channels is None else _count(channels, "channels")
    kind = draw(st.sampled_from(["gaussian", "laplace", "logistic", "pmf"]))
    if kind == "pmf":
        from rdgap.validation.synthetic import DiscreteSource
        size = draw(st.integers(min(3, hi - lo + 1), min(8, hi - lo + 1)))
        weights = draw(st.lists(st.integers(1, 16), min_size=size, max_size=size))
        start = draw(st.integers(lo, hi - size + 1))
        source = DiscreteSource(np.array(weights, float) / sum(weights),
                                support=np.arange(start, start + size))
    else:
        scale = draw(st.sampled_from([1.0, 3.0, 8.0]))
        source = truncated_scalar(kind, scale, lo, hi)
        kind = f"{kind}(scale={scale})"
    return KnownEntropySource.iid(source, tokens, channels, embed=embed,
                                  name=f"iid {kind} on {lo}..{hi}, {tokens}×{channels}")


def column_source(first, rest, tokens: int, embed: Callable | None = None,
                  name: str = "per-channel source",
                  family_bound_bits: float | None = None) -> KnownEntropySource:
    """Streams with independent elements: channel ``j`` of the first token from
    ``first[j]``, of every later token from ``rest[j]`` (tabulated sources).

    The elements are independent but not identically distributed; Hoeffding's
    inequality still holds for their mean (it needs independence and a common
    range only), so the unit bound is the largest ``−log2 p`` over all supports.

    Examples
    --------
    >>> from rdgap.validation.synthetic import DiscreteSource
    >>> fixed, coin = DiscreteSource([1.0]), DiscreteSource([0.5, 0.5])
    >>> source = column_source([fixed, coin], [coin, coin], tokens=3)
    >>> print(source.entropy_bits, source.units, source.unit_bound_bits)
    5.0 6 1.0
    """
    tokens = _count(tokens, "tokens")
    first, rest = list(first), list(rest)
    if not first or len(first) != len(rest):
        raise ValueError(f"first, rest: expected one source per channel in each, got "
                         f"{len(first)} and {len(rest)}")
    channels = len(first)
    rows = [first] + [rest] * (tokens - 1)
    entropy = sum(float(s.entropy_bits) for row in rows[:1] for s in row)
    entropy += (tokens - 1) * sum(float(s.entropy_bits) for s in rest)
    bound = max(float(-np.log2(np.asarray(s.probabilities)[np.asarray(s.probabilities) > 0].min()))
                for s in first + rest)

    def draw(rng):
        out = np.empty((tokens, channels), dtype=np.int64)
        for j in range(channels):
            out[0, j] = first[j].sample(1, rng)[0]
            if tokens > 1:
                out[1:, j] = rest[j].sample(tokens - 1, rng)
        return out

    def log2_pmf(symbols):
        values = [first[j].log2_pmf(symbols[:1, j]) for j in range(channels)]
        values += [rest[j].log2_pmf(symbols[1:, j]) for j in range(channels)]
        return np.concatenate(values)

    return KnownEntropySource(name=name, tokens=tokens, channels=channels, entropy_bits=entropy,
                              units=tokens * channels, unit_bound_bits=max(bound, 1e-12),
                              draw=draw, log2_pmf=log2_pmf, embed=embed,
                              family_bound_bits=family_bound_bits)
