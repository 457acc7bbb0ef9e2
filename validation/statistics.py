r"""Bound statistics of one codec at one split: what THEORY.md predicts, per token.

:func:`codec_statistics` turns the hidden states a codec was fitted and
evaluated on, and the bits it wrote, into a JSON-ready dict of figures in
**bits per token** (``None`` where a figure does not apply to the codec);
:func:`split_statistics` adds the codec-independent figures of a split. The
validate job stores both in ``row["statistics"]``; :mod:`.claims` checks them.

The domain a codec codes
    A codec has *symbols* when it (or its ``.model`` / ``.quantizer``, looked up
    in that order) has ``quantize(hidden) -> int symbols``, ``dequantize`` and
    per-channel ``step`` and ``first_step`` (:class:`~rdgap.codecs.factorized.
    FactorizedCodec`, its torch rANS twin, the zstd-of-symbols baseline). All
    symbol statistics are computed in the domain the symbols live in:
    ``Yhat = step * S`` (after the codec's transform, if it has one), so T3 is
    evaluated "at the codec's steps in the domain it codes". fp16, bf16,
    absmax integers and zstd of fp16 have no per-channel steps: their symbol
    statistics are ``None``.
Positions
    Position 0 of every window is quantized with its own steps (the codecs'
    first-token model). Every per-token figure is
    ``(F_0 + (m - 1) F_rest) / m`` for windows of ``m`` tokens. Position 0 has
    one sample per window, fewer than the width, so no full covariance can be
    estimated there: it contributes its *diagonal* T3 bound to both the full
    and the diagonal figure.
Factorized, joint or generic
    ``entropy_model`` is what the codec declares in an attribute
    ``entropy_model`` (``"factorized"``, ``"joint"`` or ``"generic"``);
    otherwise ``"factorized"`` for a FactorizedCodec / TorchFactorizedCodec,
    ``"joint"`` for any other codec with symbols and a likelihood model
    (``estimated_bits`` given), ``"generic"`` for one without (zstd of the
    symbols: a general-purpose compressor, held to no bound); ``None``
    without symbols. The floor of T4 binds factorized codecs only.
T8 (``rate_interval``)
    The i.i.d. unit is the document: bits and tokens of all eval windows of a
    document are summed into one bits-per-token value, and
    :func:`rdgap.bounds.rate_interval` (empirical Bernstein, ``delta = 1 -
    confidence``) gives the interval. Which mean: the interval bounds the
    *mean over documents of per-document bits/token*
    (``rate_document_mean``), while ``rate_actual`` is *total bits / total
    tokens*; they coincide when every document has as many tokens (the
    validate job's windows), and differ otherwise. ``rate_interval_status``
    says what the interval is worth (:func:`interval_status`): ``"exact
    (fixed-size format)"`` for fp16, bf16 and absmax integers (their size
    is known: nothing to estimate), ``"uninformative (contains 0)"``,
    ``"uninformative (wider than the rate)"`` or ``"informative"``;
    ``rate_interval_informative`` is True only for the last. Its range ``B`` (``rate_interval_bound``,
    bits per token) is the worst case of the stream format: for table codecs
    ``(header + 32 + 64 (1 + lanes) + 1.005 Σ_symbols (max table cost + 40)) / m``
    (every symbol at its most expensive table entry or escape, T2's working
    form, the escape count and lane flushes; for the context codec every
    symbol at its worst over all the tables it may pick, plus its side
    latents), for fixed-size formats their exact size, for zstd the
    library's compress bound. ``rate_interval_bound_parts`` says where ``B`` comes from (header, flush,
    position 0, positions >= 1 at their worst table entry, and the escapes on
    top): on SmolLM2 (B ≈ 35,300 bits per token) the escapes (40 raw bits +
    the escape entry, possible for every value) are 65 % of ``B``, positions
    >= 1 at their worst table entry 34 %, position 0 under 1 % and header
    and flush a few bits per token. No smaller range is valid without
    an assumption on the hidden states (a bounded activation range would
    cap the escapes), so ``B`` is kept. With ``N`` = 32 documents the
    empirical Bernstein range term ``7 B ln(4/delta) / (3 (N - 1))`` alone
    is thousands of bits per token: the lower end clips to 0 and the status
    says "uninformative"; ``t8_documents_needed`` gives the inversion of
    THEORY.md T8 at ``epsilon = 0.1 · rate``: ``hoeffding``
    (:func:`rdgap.bounds.sample_size`, valid for any variance) and
    ``bernstein_projected`` (the empirical Bernstein radius at today's sample
    variance: a projection). ``rate_ci_student_t`` is the practical
    Student-t interval over documents (no range needed, but only
    asymptotically valid), for comparison; no claim uses it and it is not
    a bound.
Gibbs on the sample (``gibbs_sample_*``, factorized codecs only)
    A factorized codec codes position 0 of every window with one table per
    channel and positions >= 1 with another table per channel, the same for
    every window; its likelihood estimate counts ``-log2 q`` of each symbol
    (an escaped value at ``-log2 q(escape) + 33`` bits: still a sub-pmf, so
    Kraft holds). For any such product pmf and ANY sample, Gibbs' inequality
    on the sample's empirical distribution gives ``Σ_windows estimate >= W
    Σ_j Ĥ(S_0j) + W (m - 1) Σ_j Ĥ(S_tj)``: the plug-in marginal entropies of
    the very symbols coded (``gibbs_sample_floor``, bits per token, on the
    ``gibbs_sample_windows`` windows whose ``gibbs_sample_estimated`` and
    ``gibbs_sample_actual`` are given). It is a theorem, not a statistical
    statement: it fails only on a bug (a table that does not sum to 1, a
    miscounted symbol, symbols that are not the ones coded). Only for codecs
    whose own ``quantize`` gives the symbols (not the :class:`LatticeQuantizer`
    stand-in).
T4
    :func:`rdgap.bounds.marginal_entropy_floor` on the eval symbols, documents
    as sequences (windows of one document are kept together only when every
    document has the same number; otherwise the first window of each),
    ``delta / 2`` for position 0 and for positions >= 1.
    ``t4_miller_madow_estimate`` is the Miller–Madow sum (a point estimate
    of ``Σ_j H(S_j)``, no guarantee), ``t4_marginal_floor_plugin`` the
    plug-in sum and ``t4_marginal_floor_lower`` the proven McDiarmid lower
    bound at ``delta`` (documents i.i.d., tokens inside a document may be
    dependent), radius ``t4_marginal_floor_deviation`` — or None, with
    ``t4_marginal_floor_status`` = ``"uninformative (radius R >= plug-in
    P bits/token)"``, when the radius reaches the plug-in (then the proven
    statement is only ``Σ_j H(S_j) >= 0``). Why it is uninformative on real
    data: one document moves ``Σ_j Ĥ_j`` by up to ``n m h_b(1/(Nm)) ≈ n
    log2(eNm) / N`` bits, so the radius is about ``n log2(eNm) sqrt(ln(2/delta)
    / (2N))``: it shrinks with the number ``N`` of documents only, not with
    their length, and grows with the width ``n`` (576 channels, 32
    documents: about 2,000 bits per token, above the floor itself).
    ``t4_documents_needed`` is the number of documents that brings it to
    0.1 × the plug-in floor (about 20,000–40,000 on SmolLM2 and MiniLM).
    No token-level (i.i.d. tokens) radius is reported: tokens of a document
    depend on each other, and that figure's coverage measured 0.8955
    [0.881, 0.909] at delta = 0.05 on 32 documents × 255 tokens.
Held-out bound (``heldout_*``; replaces the T9 bound as the gating use)
    A test-set bound: the codec is fitted without the evaluation documents,
    so their per-document rates (bits/token, total over the document's
    windows, in ``[0, B]`` with ``B`` as for T8) are i.i.d. draws from the
    document law and independent of the codec. The one-sided empirical
    Bernstein bound (:func:`rdgap.bounds.empirical_bernstein_upper`, Maurer
    & Pontil 2009, Thm 4) at the full ``delta`` gives ``heldout_rate_upper``:
    with probability ``>= 1 - delta``, the *expected* per-document rate of
    this codec on a new document is at most it (a bound on the expectation,
    not on the sample mean ``heldout_rate_mean``). No complexity term is
    needed because nothing was chosen on these documents. Hypotheses:
    documents i.i.d.; codec independent of them (``heldout_disjoint``:
    ``{"fit_windows", "shared_windows"}`` counts fit windows that reappear
    bit for bit among the eval windows); rates in ``[0, B]`` (checked: a
    document above ``B`` leaves every interval None). ``heldout_informative``:
    upper − mean <= 0.1 × mean.
T9 (Rademacher statistics: the paper's correlation, never a bound)
    In the symbol domain a factorized discretised Gaussian (or Laplace) model
    centred on the channel means has the per-token Jensen code length
    ``Σ_j [c_j + w_j φ(S_j)]`` with ``φ(s) = s² + 1/12`` (Gaussian) or
    ``φ(s) = |s|`` (Laplace), ``w_j = 1 / (2 v_j ln 2)``. Per fit document
    the features are ``x_ij = mean_t φ(S_tj)`` (positions >= 1), and
    ``t9_rademacher_mc`` / ``t9_rademacher_massart`` are the empirical
    Rademacher complexity of ``{x -> w·x : ||w||_1 <= 1}`` on them
    (:func:`rdgap.bounds.empirical_rademacher_linf`, Monte Carlo, and
    :func:`rdgap.bounds.massart_linf_bound`); ``t9_weight_l1`` is the fitted
    codec's ``||w||_1`` and ``t9_complexity = W · min(MC upper, Massart) +
    Σ_j |c_j| / sqrt(N)``. These are STATISTICS. They are not turned into a
    generalisation bound because that bound would not be valid as computed:
    ``W`` is read off the fitted codec (a data-dependent class, no union
    bound over ``W``), the class is the Jensen quadratic code length while
    the rates are the codec's table code lengths (escapes, position 0), the
    quadratic lengths are not in ``[0, B]``, and the Monte Carlo complexity
    spends its own ``delta``. ``t9_fit_rate`` is the codec's likelihood
    estimate on the fit windows, ``t9_eval_rate`` on the eval windows.
T7
    Differential entropies ``h(Y_j)`` of the fit states (positions >= 1) by
    :func:`scipy.stats.differential_entropy` (Vasicek spacings), the Fisher
    diagonal of the fit; ``t7_predicted_rate`` is
    :func:`rdgap.bounds.predicted_rate_curve` at the ΔCE that T7 predicts
    for the codec's steps (plus position 0's high-resolution rate ``Σ_j
    max(0, h(Y_0j) - log2 Δ0_j)`` / m), and ``t7_error`` = measured -
    predicted. Only for codecs without a transform (the Fisher diagonal is
    that of ``Y``). ``t7_curve`` samples the prediction at 12 ΔCE values for
    plots. Both are APPROXIMATIONS, never bounds.
T6
    ``t6_curve``: the Gaussian rate–distortion function
    (:func:`rdgap.bounds.gaussian_rate_distortion`) of the eval states'
    covariance (positions >= 1) against total MSE per token, and ``mse`` the
    codec's measured MSE per token, for the reference plot.
T10 (``t10_entropy_model_lipschitz``)
    ``None`` for fixed tables (every factorized codec shipped). A learned
    entropy model exposes ``entropy_network`` (a differentiable torch callable
    that predicts its parameters) and optionally
    ``entropy_network_inputs(hidden) -> tensor`` (what it is applied to; the
    window's hidden states otherwise); the figure is
    :func:`rdgap.bounds.jacobian_spectral_norm` (20 steps) at 2 eval windows
    — a LOWER bound on its Lipschitz constant. The context codec
    (:class:`rdgap.codecs.context.ContextCodec`, variant ``klt-context``)
    exposes its predictor: previous decoded token -> predicted mean, in the
    KLT domain, whose Jacobian is the ridge matrix ``W`` at every point, so
    the figure estimates ``‖W‖₂`` from below.

T3 bias
    The log-det of a sample covariance of ``N`` rows in ``n`` dimensions is
    biased low (about ``n² / (4 N ln 2)`` bits for Gaussian rows), which would
    show as spurious dependency headroom. The same rows with each channel
    permuted independently have no dependence and the same marginals; their
    headroom (``t3_dependency_headroom_null``) estimates that bias, and
    ``t3_dependency_headroom = max(0, raw - null)``, ``t3_logdet_full =
    t3_logdet_diag - t3_dependency_headroom`` (``t3_logdet_full_raw`` keeps
    the uncorrected value).

Codec-independent figures (the T6 spectrum of the eval states, the T7
entropies of the fit states) are computed once per content of the hidden
states and shared by every codec at a split (a small cache keyed by a hash).

Cost: the symbol statistics use at most ``max_tokens`` tokens (default
65,536) of positions >= 1, and the covariance at most ``max_cov_tokens``
(default 16,384); when they subsample, ``subsampled`` says so. On a
SmolLM2 state (16 fit and 32 eval windows × 256 × 576, split 15) the
first codec at a split took 1.4 s of CPU (2.7 s wall on a loaded 2-core
machine), the next ones 0.7–1.0 s of CPU; BLAS runs on one thread here
(``threadpoolctl`` when installed), which on that machine was 7× faster than
two threads fighting other work.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
from scipy import stats as scipy_stats

from rdgap.bounds import (dependency_headroom, empirical_bernstein_upper,
                          empirical_rademacher_linf, gaussian_logdet_bound,
                          gaussian_rate_distortion, jacobian_spectral_norm,
                          marginal_entropy_floor, massart_linf_bound, mcdiarmid_deviation,
                          predicted_rate_curve, rate_interval, sample_size)
from rdgap.codecs import ans
from rdgap.codecs.container import header_size

from .distortion import document_estimate

try:  # BLAS threads fight each other on a loaded 2-core machine (eigvalsh 7x slower)
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - optional
    threadpool_limits = None

LN2 = math.log(2.0)
#: Worst cost of one escaped value in any shipped table codec (torch rANS: 5 bytes).
ESCAPE_WORST_BITS = 40.0
#: Bits per element of fixed-size formats and of the raw input of zstd formats.
_FIXED_BITS = {"fp16": 16, "bf16": 16, "int8-absmax": 8, "int4-absmax": 4}
_ZSTD_RAW_BITS = {"zstd-fp16": 16, "zstd-symbols": 32}
RADEMACHER_DRAWS = 500
T7_CURVE_POINTS = 12
#: The radius, relative to the estimate, that the ``*_documents_needed`` figures aim at.
TARGET_RELATIVE_RADIUS = 0.1
MAX_TOKENS = 65_536
MAX_COV_TOKENS = 16_384
#: Tokens of the covariance behind the T6 reference curve (a reference, not a bound).
T6_COV_TOKENS = 4_096


# ----------------------------------------------------------------- the codec's parts
class LatticeQuantizer:
    """The uniform quantizer at a codec's steps, in its (transform) domain.

    For codecs that expose ``step``, ``first_step``, ``first_mean``, ``mean`` and
    optionally ``analysis`` / ``synthesis`` but quantize in their own way (e.g.
    a predictive or dead-zone quantizer): symbols ``round(A (Y - mean) / step)``
    for positions >= 1 and ``round((Y_0 - first_mean) / first_step)`` for
    position 0 — the lattice that T3's diagonal bound refers to.
    """

    def __init__(self, codec):
        self.step = np.asarray(codec.step, float)
        self.first_step = np.asarray(codec.first_step, float)
        self.first_mean = np.asarray(codec.first_mean, float)
        self.mean = np.asarray(codec.mean, float)
        self.analysis = getattr(codec, "analysis", None)
        self.synthesis = getattr(codec, "synthesis", None)

    def quantize(self, hidden: torch.Tensor) -> np.ndarray:
        x = hidden.detach().double().numpy()
        rest = x[1:] - self.mean
        if self.analysis is not None:
            rest = rest @ np.asarray(self.analysis).T
        first = (x[:1] - self.first_mean) / self.first_step
        return np.rint(np.concatenate([first, rest / self.step])).astype(np.int64)

    def dequantize(self, symbols: np.ndarray) -> torch.Tensor:
        rest = symbols[1:] * self.step
        if self.synthesis is not None:
            rest = rest @ np.asarray(self.synthesis).T
        out = np.concatenate([self.first_mean + self.first_step * symbols[:1],
                              self.mean + rest])
        return torch.from_numpy(out)


def quantizer_of(codec):
    """The object that maps hidden states to symbols for ``codec``, or None.

    Looks at ``codec``, ``codec.model`` and ``codec.quantizer``, in that order,
    for ``quantize``, ``dequantize``, ``step`` and ``first_step``; failing
    that, a codec with ``step``, ``first_step``, ``first_mean`` and ``mean``
    gets its :class:`LatticeQuantizer`.
    """
    for candidate in (codec, getattr(codec, "model", None), getattr(codec, "quantizer", None)):
        if candidate is not None and all(hasattr(candidate, name) for name in
                                         ("quantize", "dequantize", "step", "first_step")):
            return candidate
    if all(hasattr(codec, name) for name in ("step", "first_step", "first_mean", "mean")):
        return LatticeQuantizer(codec)
    return None


def entropy_model_kind(codec, quantizer, has_likelihood: bool = True) -> str | None:
    """``"factorized"``, ``"joint"``, ``"generic"`` or None (see the module docstring)."""
    declared = getattr(codec, "entropy_model", None)
    if declared in ("factorized", "joint", "generic"):
        return declared
    if quantizer is None:
        return None
    from rdgap.codecs.factorized import FactorizedCodec

    if isinstance(quantizer, FactorizedCodec) and (
            codec is quantizer or getattr(codec, "model", None) is quantizer):
        return "factorized"
    return "joint" if has_likelihood else "generic"


def _in_table(table) -> float:
    """Worst bits of one value inside ``table`` (+1 bit of T2 table rounding)."""
    return float(table.neg_log2[:-1].max()) + 1.0


def _worst(table) -> float:
    """Worst bits of one value under ``table``: inside it, or escaped."""
    return max(_in_table(table), float(table.neg_log2[-1]) + ESCAPE_WORST_BITS + 1.0)


def _table_layout(codec, quantizer):
    """``(side, first, rest)`` of a table codec: the side-latent tables (per token), position
    0's tables, and ``(channels, tables)`` pairs for positions >= 1 (that many channels
    whose symbols may use any of those tables); None for other codecs. A :class:`~rdgap.codecs.context.ContextCodec` picks one of its
    tables ``MIN_INDEX..MAX_INDEX`` per symbol, so each channel may use any of them."""
    from rdgap.codecs import context

    if isinstance(codec, context.ContextCodec):
        every = [codec._table(i) for i in range(context.MIN_INDEX, context.MAX_INDEX + 1)]
        return list(codec._side_tables), list(codec._first_tables), [(codec.channels, every)]
    first = getattr(quantizer, "_first_tables", None)
    rest = getattr(quantizer, "_tables", None)
    if isinstance(first, list) and isinstance(rest, list):
        return [], first, [(1, [table]) for table in rest]
    return None


def stream_bound_parts(codec, quantizer, tokens: int, channels: int) -> dict | None:
    """Where the worst case ``B`` of one stream comes from, in bits per token.

    ``{"header", "flush", "position_0", "side", "in_table", "escape"}`` for
    table codecs: the container header; constriction's flush and the lanes'
    state words; position 0's symbols at their worst entry; side latents (the
    context codec's hyperprior) at their worst entry; positions >= 1 at their
    most expensive *table entry* (+1 bit of T2 rounding) and, on top of that,
    what an escape costs beyond it (escape entry + :data:`ESCAPE_WORST_BITS`).
    Symbol parts include T2's 0.5 %. Their sum is :func:`stream_bound_bits`.
    ``{"header", "payload"}`` for fixed-size and zstd formats; None otherwise.
    """
    header = 8.0 * header_size(codec.codec_id, 2)
    elements = tokens * channels
    if codec.codec_id in _FIXED_BITS:
        payload = _FIXED_BITS[codec.codec_id] * elements + (32 * tokens if "absmax" in
                                                            codec.codec_id else 0)
        payload += 4 * tokens if codec.codec_id == "int4-absmax" else 0  # odd-width padding
        return {"header": header / tokens, "payload": payload / tokens}
    if codec.codec_id in _ZSTD_RAW_BITS:
        raw = _ZSTD_RAW_BITS[codec.codec_id] * elements / 8
        payload = 8 * (raw + raw / 256 + max(0.0, (131072 - raw) / 2048) + 64)
        return {"header": header / tokens, "payload": payload / tokens}
    layout = _table_layout(codec, quantizer)
    if layout is None:
        return None
    side, first, rest = layout
    factor, later = 1 + ans.RELATIVE_OVERHEAD, (tokens - 1) / tokens
    lanes = int(getattr(codec, "lanes", 1))
    rest_in_table = sum(count * max(map(_in_table, tables)) for count, tables in rest)
    rest_worst = sum(count * max(map(_worst, tables)) for count, tables in rest)
    parts = {"header": header / tokens, "flush": (32 + 64 * (1 + lanes)) / tokens,
             "position_0": factor * sum(map(_worst, first)) / tokens,
             "side": factor * later * sum(map(_worst, side)),
             "in_table": factor * later * rest_in_table,
             "escape": factor * later * (rest_worst - rest_in_table)}
    id_table = getattr(codec, "_id_table", None)  # klt-context-tokens: one coded id a token
    if id_table is not None:
        parts["token_ids"] = factor * _worst(id_table)
    return parts


def stream_bound_bits(codec, quantizer, tokens: int, channels: int) -> float | None:
    """Worst-case bits per token of one stream of ``tokens`` tokens (``B`` of T8/T9).

    For table codecs ``(header + 32 + 64 (1 + lanes) + 1.005 Σ_symbols (max
    table cost + 40)) / m``; the sum of :func:`stream_bound_parts`.
    """
    parts = stream_bound_parts(codec, quantizer, tokens, channels)
    return None if parts is None else float(sum(parts.values()))


def smallest_sample_size(radius, epsilon: float, limit: int = 10 ** 12) -> int | None:
    """The smallest ``N >= 2`` with ``radius(N) <= epsilon`` for a radius that decreases
    in ``N`` (doubling, then bisection); None when even ``limit`` does not reach it."""
    if not epsilon > 0:
        return None
    high = 2
    while radius(high) > epsilon:
        if high >= limit:
            return None
        high *= 2
    low = high // 2
    if low < 2 or radius(low) <= epsilon:
        return max(2, low)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if radius(middle) <= epsilon else (middle, high)
    return high


# ----------------------------------------------------------------- helpers
def _per_document(values: np.ndarray, tokens: int, documents: np.ndarray) -> np.ndarray:
    """Bits per token of each document from per-window bits (windows of ``tokens``)."""
    _, inverse = np.unique(documents, return_inverse=True)
    return np.bincount(inverse, weights=values) / (np.bincount(inverse) * tokens)


def _document_blocks(symbols: np.ndarray, documents: np.ndarray) -> tuple[np.ndarray, int]:
    """Windows grouped so that each document is one block of equal length."""
    ids, counts = np.unique(documents, return_counts=True)
    if np.all(counts == counts[0]):
        order = np.argsort(documents, kind="stable")
        return symbols[order], int(counts[0])
    first = np.array([int(np.flatnonzero(documents == i)[0]) for i in ids])
    return symbols[first], 1


def _array(values, name: str, length: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size != length:
        raise ValueError(f"{name}: expected one value per eval window ({length}), got "
                         f"{array.size}")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{name}: expected finite values >= 0 (bits per window)")
    return array


def _hidden(value, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dim() != 3 or value.shape[1] < 2 \
            or value.shape[0] < 2:
        raise ValueError(f"{name}: expected hidden states (windows >= 2, positions >= 2, "
                         f"width), got {tuple(getattr(value, 'shape', ()))}")
    return value.detach().to("cpu", torch.float32)


def _symbols(quantizer, hidden: torch.Tensor) -> np.ndarray:
    return np.stack([quantizer.quantize(window) for window in hidden])


def _per_token(first: float, rest: float, tokens: int) -> float:
    return (first + (tokens - 1) * rest) / tokens


def _subsample(rows: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    if rows.shape[0] <= limit:
        return rows
    return rows[np.sort(rng.choice(rows.shape[0], limit, replace=False))]


def _t8_documents_needed(per_document: np.ndarray, rate: float, bound: float,
                         delta: float) -> dict:
    """Documents for the T8 interval to reach radius ``TARGET_RELATIVE_RADIUS · rate``.

    ``hoeffding``: :func:`rdgap.bounds.sample_size` (a guarantee for any variance);
    ``bernstein_projected``: the smallest ``N`` whose two-sided empirical
    Bernstein radius ``sqrt(2 V ln(4/delta) / N) + 7 B ln(4/delta) / (3 (N - 1))``
    (:func:`rdgap.bounds.empirical_bernstein_interval`) reaches it if the
    sample variance stayed at today's ``V`` — a projection, not a bound.
    """
    epsilon = TARGET_RELATIVE_RADIUS * rate
    if not epsilon > 0:
        return {"epsilon": epsilon, "hoeffding": None, "bernstein_projected": None}
    variance, log_term = float(np.var(per_document, ddof=1)), math.log(4.0 / delta)
    return {"epsilon": epsilon, "hoeffding": sample_size(epsilon, delta, bound),
            "bernstein_projected": smallest_sample_size(
                lambda n: math.sqrt(2 * variance * log_term / n)
                + 7 * bound * log_term / (3 * (n - 1)), epsilon)}


# ----------------------------------------------------------------- T3, T4, T6
def _diagonal_bound(variances: np.ndarray, steps: np.ndarray) -> float:
    """T3's diagonal bound as the sum of its one-dimensional terms (no n×n algebra)."""
    return float(sum(gaussian_logdet_bound([[v]], d, diagonal=True)
                     for v, d in zip(variances, steps)))


def _t3(symbols: np.ndarray, step: np.ndarray, first_step: np.ndarray,
        rng: np.random.Generator, max_cov_tokens: int) -> dict:
    tokens = symbols.shape[1]
    rest = _subsample(symbols[:, 1:].reshape(-1, symbols.shape[2]), max_cov_tokens, rng) * step
    cov = np.cov(rest, rowvar=False)
    # The same rows with every channel permuted on its own: no dependence, same marginals,
    # so its Hadamard headroom is the estimation bias of the sample covariance's log-det.
    null = dependency_headroom(np.cov(rng.permuted(rest, axis=0), rowvar=False), step)
    first = _diagonal_bound(np.var(symbols[:, 0] * first_step, axis=0, ddof=1), first_step)
    diag_rest = _diagonal_bound(np.diag(cov), step)
    raw = diag_rest - gaussian_logdet_bound(cov, step)
    headroom = max(raw - null, 0.0)
    return {"t3_logdet_full": _per_token(first, diag_rest - headroom, tokens),
            "t3_logdet_full_raw": _per_token(first, diag_rest - raw, tokens),
            "t3_logdet_diag": _per_token(first, diag_rest, tokens),
            "t3_dependency_headroom": headroom * (tokens - 1) / tokens,
            "t3_dependency_headroom_null": null * (tokens - 1) / tokens,
            "_cov_rows": rest.shape[0]}


def _floor_radius(channels: int, tokens: int, per_document: int, documents: int,
                  delta: float) -> float:
    """Per-token McDiarmid radius of the T4 floor over ``documents`` i.i.d. documents of
    ``per_document`` windows (``delta / 2`` for position 0 and for the rest)."""
    rest = mcdiarmid_deviation(channels, per_document * (tokens - 1), documents, delta / 2)
    first = mcdiarmid_deviation(channels, per_document, documents, delta / 2)
    return _per_token(first, rest, tokens)


def _t4(symbols: np.ndarray, documents: np.ndarray, delta: float) -> dict:
    blocks, per_document = _document_blocks(symbols, documents)
    windows, tokens, channels = symbols.shape
    # delta / 2 for each position group (a union bound: both hold with prob >= 1 - delta)
    rest = marginal_entropy_floor(blocks[:, 1:].reshape(-1, channels), delta / 2,
                                  tokens_per_sequence=per_document * (tokens - 1))
    first = marginal_entropy_floor(blocks[:, 0], delta / 2, tokens_per_sequence=per_document)
    plugin = _per_token(first.plugin_sum, rest.plugin_sum, tokens)
    radius = _per_token(first.deviation, rest.deviation, tokens)
    needed = smallest_sample_size(
        lambda n: _floor_radius(channels, tokens, per_document, n, delta),
        TARGET_RELATIVE_RADIUS * plugin)
    informative = plugin - radius > 0
    return {"t4_miller_madow_estimate": _per_token(first.miller_madow_sum,
                                                   rest.miller_madow_sum, tokens),
            "t4_marginal_floor_plugin": plugin,
            "t4_marginal_floor_lower": plugin - radius if informative else None,
            "t4_marginal_floor_status": "proven lower bound" if informative else
            f"uninformative (radius {radius:,.1f} >= plug-in {plugin:,.1f} bits/token)",
            "t4_marginal_floor_deviation": radius,
            "t4_documents": int(blocks.shape[0]),
            "t4_documents_needed": needed,
            "_all_windows": blocks.shape[0] == windows}


def _gibbs_sample(quantizer, kind: str | None, symbols: np.ndarray, t4: dict,
                  bits: np.ndarray, estimated: np.ndarray | None) -> dict:
    """T4 on the sample itself: a factorized codec's estimate of the very symbols it coded
    is at least their plug-in marginal entropies (Gibbs on the empirical distribution)."""
    out = dict.fromkeys(("gibbs_sample_floor", "gibbs_sample_estimated",
                         "gibbs_sample_actual", "gibbs_sample_windows"))
    if kind != "factorized" or estimated is None or isinstance(quantizer, LatticeQuantizer):
        return out
    windows, tokens, channels = symbols.shape
    if t4["_all_windows"]:
        floor = t4["t4_marginal_floor_plugin"]
    else:
        floor = _per_token(
            marginal_entropy_floor(symbols[:, 0], 0.5).plugin_sum,
            marginal_entropy_floor(symbols[:, 1:].reshape(-1, channels), 0.5).plugin_sum,
            tokens)
    scale = 1.0 / (windows * tokens)
    return {"gibbs_sample_floor": floor, "gibbs_sample_estimated": float(estimated.sum()) * scale,
            "gibbs_sample_actual": float(bits.sum()) * scale, "gibbs_sample_windows": int(windows)}


_SHARED: dict = {}
_SHARED_ENTRIES = 8


def _shared(kind: str, tensor: torch.Tensor, compute):
    """``compute()`` once per (kind, tensor content): every codec at a split shares the
    codec-independent figures of its hidden states (T6 spectrum, T7 entropies)."""
    data = tensor.detach().contiguous().numpy()
    key = (kind, data.shape, hashlib.blake2b(data.tobytes(), digest_size=16).digest())
    if key not in _SHARED:
        while len(_SHARED) >= _SHARED_ENTRIES:
            _SHARED.pop(next(iter(_SHARED)))
        _SHARED[key] = compute()
    return _SHARED[key]


def _spectrum(eval_hidden: torch.Tensor, seed: int) -> np.ndarray:
    """Eigenvalues of the covariance of the states at positions >= 1 (T6)."""
    states = eval_hidden[:, 1:].reshape(-1, eval_hidden.shape[2]).double().numpy()
    rest = _subsample(states, T6_COV_TOKENS, np.random.default_rng(seed))
    return np.clip(np.linalg.eigvalsh(np.cov(rest, rowvar=False)), 0.0, None)


def _t6(eval_hidden: torch.Tensor, quantizer, symbols: np.ndarray, seed: int) -> dict:
    recon = np.stack([quantizer.dequantize(s).numpy() for s in symbols])
    mse = float(((recon - eval_hidden.numpy()).astype(np.float64) ** 2).sum(-1).mean())
    eigenvalues = _shared(f"spectrum {seed}", eval_hidden,
                          lambda: _spectrum(eval_hidden, seed))
    grid = mse * np.logspace(-1, 1, T7_CURVE_POINTS)
    rates = [gaussian_rate_distortion(eigenvalues, float(d)).rate for d in grid]
    return {"mse": mse, "t6_rate_at_mse": gaussian_rate_distortion(eigenvalues, mse).rate,
            "split_logdet_covariance": split_logdet(eigenvalues),
            "t6_curve": {"mse": grid.tolist(), "rate": [float(r) for r in rates]}}


def split_logdet(eigenvalues) -> float:
    """``½ Σ log2 λ`` over the covariance eigenvalues above ``1e-12 · max λ`` (bits).

    The log-det of the hidden states' covariance at a split (positions >= 1,
    the T6 spectrum): codec-independent, the paper's "log-det covariance".
    Directions of (numerically) zero variance are left out rather than sent
    to ``-inf``; a statistic, not a bound.
    """
    values = np.asarray(eigenvalues, float)
    keep = values > 1e-12 * max(float(values.max(initial=0.0)), 1e-300)
    return float(0.5 * np.log2(values[keep]).sum())


# ----------------------------------------------------------------- T8 status, held-out
def interval_status(lower: float, upper: float, rate: float, exact: bool = False) -> str:
    """What a T8 interval says about the rate.

    ``"exact (fixed-size format)"`` when the format's size is fixed (nothing
    is estimated: the interval is not informative, the rate is known);
    ``"uninformative (contains 0)"`` when the lower end is 0;
    ``"uninformative (wider than the rate)"`` when ``upper - lower > rate``;
    otherwise ``"informative"``.
    """
    if exact:
        return "exact (fixed-size format)"
    if not lower > 0:
        return "uninformative (contains 0)"
    if upper - lower > rate:
        return "uninformative (wider than the rate)"
    return "informative"


def _window_digests(hidden: torch.Tensor) -> set:
    data = hidden.detach().contiguous().numpy()
    return {hashlib.blake2b(w.tobytes(), digest_size=16).digest() for w in data}


def _disjoint(fit_hidden: torch.Tensor, eval_hidden: torch.Tensor) -> dict:
    """How many fit windows reappear, bit for bit, among the eval windows."""
    shared = len(_window_digests(fit_hidden) & _window_digests(eval_hidden))
    return {"fit_windows": int(fit_hidden.shape[0]), "shared_windows": int(shared)}


def _heldout(per_document: np.ndarray, bound: float, delta: float) -> dict:
    """The held-out (test-set) bound on the expected per-document rate (module docstring)."""
    upper = min(bound, float(empirical_bernstein_upper(per_document, delta, bound)))
    mean = float(per_document.mean())
    return {"heldout_rate_upper": upper, "heldout_rate_mean": mean,
            "heldout_documents": int(per_document.size),
            "heldout_informative": bool(upper - mean <= TARGET_RELATIVE_RADIUS * mean)}


# ----------------------------------------------------------------- T9
def _jensen_weights(quantizer) -> tuple[np.ndarray, np.ndarray, str]:
    """Per-channel ``w_j``, ``c_j`` of the Jensen code length in steps (rest positions)."""
    scale = np.asarray(quantizer.stats.scale, float) / np.asarray(quantizer.step, float)
    if getattr(quantizer, "family", "gaussian") == "laplace":
        return 1.0 / (scale * LN2), np.log2(2.0 * scale), "laplace"
    variance = scale ** 2 + 1.0 / 12.0
    return 1.0 / (2.0 * variance * LN2), 0.5 * np.log2(2.0 * math.pi * variance), "gaussian"


def _features(symbols: np.ndarray, family: str, documents: np.ndarray) -> np.ndarray:
    rest = symbols[:, 1:].astype(np.float64)
    phi = np.abs(rest) if family == "laplace" else rest ** 2 + 1.0 / 12.0
    per_window = phi.mean(axis=1)
    _, inverse = np.unique(documents, return_inverse=True)
    sums = np.zeros((inverse.max() + 1, per_window.shape[1]))
    np.add.at(sums, inverse, per_window)
    return sums / np.bincount(inverse)[:, None]


def _t9(codec, quantizer, fit_symbols: np.ndarray, fit_hidden: torch.Tensor,
        bound: float | None, delta: float, seed: int,
        fit_input_ids: torch.Tensor | None = None) -> dict:
    out = dict.fromkeys(("t9_fit_rate", "t9_rademacher_mc", "t9_rademacher_mc_upper",
                         "t9_rademacher_massart", "t9_complexity", "t9_weight_l1",
                         "t9_documents"))
    ids = [{}] * fit_hidden.shape[0]  # codecs that code the token ids get each window's
    if getattr(codec, "needs_input_ids", False):
        if fit_input_ids is not None and \
                tuple(fit_input_ids.shape) != tuple(fit_hidden.shape[:2]):
            raise ValueError(f"fit_input_ids: expected the ids of the fit windows, shape "
                             f"{tuple(fit_hidden.shape[:2])}, got {tuple(fit_input_ids.shape)}")
        ids = [] if fit_input_ids is None else [{"input_ids": i} for i in fit_input_ids]
    if quantizer is not None and ids and codec.estimate_bits(fit_hidden[0], **ids[0]) is not None:
        tokens = fit_hidden.shape[1]
        out["t9_fit_rate"] = float(np.mean([codec.estimate_bits(w, **i)
                                            for w, i in zip(fit_hidden, ids)])) / tokens
    if not hasattr(getattr(quantizer, "stats", None), "scale"):
        return out
    fit_docs = np.arange(fit_symbols.shape[0])  # one fit window per fit document
    weights, constants, family = _jensen_weights(quantizer)
    features = _features(fit_symbols, family, fit_docs)
    monte_carlo = empirical_rademacher_linf(features, n_draws=RADEMACHER_DRAWS, seed=seed,
                                            delta=delta)
    massart = massart_linf_bound(features)
    weight = float(weights.sum())
    constant = float(np.abs(constants).sum()) / math.sqrt(features.shape[0])
    complexity = weight * min(monte_carlo.upper, massart) + constant
    out.update(t9_rademacher_mc=monte_carlo.estimate, t9_rademacher_mc_upper=monte_carlo.upper,
               t9_rademacher_massart=massart, t9_weight_l1=weight, t9_complexity=complexity)
    out["t9_documents"] = int(features.shape[0])
    return out


# ----------------------------------------------------------------- T7
def _differential_entropies(samples: np.ndarray) -> np.ndarray:
    """Vasicek estimates of h(Y_j) in bits; a channel whose spacings vanish (many tied
    values) gets its Gaussian value ½ log2(2πe var) instead."""
    with np.errstate(divide="ignore", invalid="ignore"):
        h = scipy_stats.differential_entropy(samples, axis=0, base=2)
    bad = ~np.isfinite(h)
    if bad.any():
        spread = np.maximum(samples[:, bad].std(axis=0), 1e-12)
        h[bad] = np.log2(spread) + 0.5 * math.log2(2 * math.pi * math.e)
    return h


def _t7(quantizer, fisher, fit_hidden: torch.Tensor, measured: float | None) -> dict:
    out = dict.fromkeys(("t7_predicted_rate", "t7_error", "t7_relative_error",
                         "t7_predicted_delta_ce", "t7_curve"))
    if fisher is None or getattr(quantizer, "analysis", None) is not None:
        return out
    tokens = fit_hidden.shape[1]
    h_rest, h_first = _shared("entropies", fit_hidden, lambda: (
        _differential_entropies(fit_hidden[:, 1:].reshape(-1, fit_hidden.shape[2])
                                .double().numpy()),
        _differential_entropies(fit_hidden[:, 0].double().numpy())))
    fisher_rest = np.maximum(np.asarray(fisher.rest, float), 1e-30)
    step = np.asarray(quantizer.step, float)
    distortion = float(np.sum(fisher_rest * step ** 2) / 24.0)
    first = float(np.maximum(h_first - np.log2(np.asarray(quantizer.first_step, float)),
                             0.0).sum())
    grid = distortion * np.logspace(-1, 1, T7_CURVE_POINTS)
    curve = predicted_rate_curve(h_rest, fisher_rest, np.append(grid, distortion))
    predicted = _per_token(first, float(curve[-1]), tokens)
    out.update(t7_predicted_rate=predicted, t7_predicted_delta_ce=distortion,
               t7_curve={"delta_ce": grid.tolist(),
                         "rate": [_per_token(first, float(r), tokens) for r in curve[:-1]]})
    if measured is not None:
        out["t7_error"] = measured - predicted
        out["t7_relative_error"] = (measured - predicted) / predicted if predicted > 0 else None
    return out


# ----------------------------------------------------------------- T10
def _lipschitz(codec, eval_hidden: torch.Tensor, seed: int, windows: int = 2) -> float | None:
    network = getattr(codec, "entropy_network", None)
    if network is None or not callable(network):
        return None
    prepare = getattr(codec, "entropy_network_inputs", None)
    values = []
    for window in eval_hidden[:windows]:
        point = prepare(window) if callable(prepare) else window
        values.append(jacobian_spectral_norm(network, point, iters=20, seed=seed))
    return float(max(values))


# ----------------------------------------------------------------- the entry points
def codec_statistics(codec, fit_hidden: torch.Tensor, eval_hidden: torch.Tensor,
                     eval_bits: np.ndarray, eval_documents: np.ndarray, *,
                     estimated_bits: np.ndarray | None = None, confidence: float = 0.95,
                     fisher=None, seed: int = 0, max_tokens: int = MAX_TOKENS,
                     max_cov_tokens: int = MAX_COV_TOKENS,
                     fit_input_ids: torch.Tensor | None = None) -> dict:
    """The bound statistics of one codec at one split, in bits per token.

    Parameters
    ----------
    codec : HiddenStateCodec
        The codec, as fitted.
    fit_hidden, eval_hidden : torch.Tensor, shape (windows, positions, width)
        Hidden states it was fitted on (one window per fit document) and
        evaluated on; at least 2 windows of at least 2 positions each.
    eval_bits : array_like, shape (eval windows,)
        Actual bits of each eval window's stream, headers included.
    eval_documents : array_like, shape (eval windows,)
        Document id of each eval window (the i.i.d. unit).
    estimated_bits : array_like, shape (eval windows,), optional
        The codec's likelihood estimate per window, or None.
    confidence : float
        ``1 - delta`` of every interval and bound (T4, T8, T9).
    fisher : rdgap.codecs.fisher.FisherDiagonal, optional
        The Fisher diagonal used to fit, for T7.
    seed : int
        Seed of every random draw (subsampling, Rademacher signs, power iteration).
    max_tokens, max_cov_tokens : int
        Caps on the tokens used by the symbol statistics and the covariances.
    fit_input_ids : torch.Tensor, shape (fit windows, positions), optional
        Token ids of the fit windows, for a codec that codes them too
        (``needs_input_ids``, e.g. ``klt-context-tokens``); without them its T9 fit
        rate is not computed.

    Returns
    -------
    dict
        JSON-ready; see the module docstring for every key.

    Raises
    ------
    ValueError
        On shapes or values that are not as described, naming the argument.
    """
    limit = threadpool_limits(limits=1, user_api="blas") if threadpool_limits else None
    try:
        return _codec_statistics(codec, fit_hidden, eval_hidden, eval_bits, eval_documents,
                                 estimated_bits, confidence, fisher, seed, max_tokens,
                                 max_cov_tokens, fit_input_ids)
    finally:
        if limit is not None:
            limit.restore_original_limits()


def _codec_statistics(codec, fit_hidden, eval_hidden, eval_bits, eval_documents,
                      estimated_bits, confidence, fisher, seed, max_tokens,
                      max_cov_tokens, fit_input_ids=None) -> dict:
    fit_hidden, eval_hidden = _hidden(fit_hidden, "fit_hidden"), _hidden(eval_hidden,
                                                                          "eval_hidden")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence: expected a value in (0, 1), got {confidence!r}")
    delta = 1.0 - float(confidence)
    windows, tokens, width = eval_hidden.shape
    bits = _array(eval_bits, "eval_bits", windows)
    documents = np.asarray(eval_documents).reshape(-1)
    if documents.size != windows:
        raise ValueError(f"eval_documents: expected one id per eval window ({windows}), got "
                         f"{documents.size}")
    estimated = None if estimated_bits is None else _array(estimated_bits, "estimated_bits",
                                                           windows)
    rng = np.random.default_rng(seed)
    quantizer = quantizer_of(codec)
    kind = entropy_model_kind(codec, quantizer, has_likelihood=estimated is not None)
    parts = stream_bound_parts(codec, quantizer, tokens, width)
    bound = None if parts is None else float(sum(parts.values()))  # stream_bound_bits
    per_document = _per_document(bits, tokens, documents)
    out: dict = {
        "entropy_model": kind, "confidence": float(confidence), "documents": int(
            per_document.size), "windows": int(windows), "tokens_per_window": int(tokens),
        "rate_actual": float(bits.sum() / (windows * tokens)),
        "rate_estimated": None if estimated is None else float(estimated.sum() / (windows
                                                                                  * tokens)),
        "rate_document_mean": float(per_document.mean()),
        "rate_interval": None, "rate_interval_bound": bound, "rate_interval_method": None,
        "rate_interval_status": None, "rate_interval_informative": None, "subsampled": False,
        "heldout_rate_upper": None, "heldout_rate_mean": None, "heldout_documents": None,
        "heldout_informative": None,
        "heldout_disjoint": _disjoint(fit_hidden, eval_hidden),
        "rate_ci_student_t": None,
        "rate_interval_bound_parts": parts,
        "t8_documents_needed": None,
    }
    if per_document.size >= 2:  # the practical interval (assumes near-normal means)
        t_interval = document_estimate(bits / tokens, documents, confidence=float(confidence))
        out["rate_ci_student_t"] = [t_interval.low, t_interval.high]
    if bound is not None and per_document.max() > bound:  # never expected: say so, go on
        out["rate_interval_method"] = (f"none: a document's rate {per_document.max():.6g} "
                                       f"exceeds the computed worst case {bound:.6g}")
    elif bound is not None and per_document.size >= 2:
        interval = rate_interval(per_document, delta, bound, method="bernstein")
        status = interval_status(interval.lower, interval.upper, out["rate_actual"],
                                 exact=parts is not None and "payload" in parts
                                 and codec.codec_id in _FIXED_BITS)
        out.update(rate_interval=[interval.lower, interval.upper],
                   rate_interval_method=f"empirical Bernstein (T8) over {interval.n} documents, "
                                        f"per-document bits/token in [0, {bound:.6g}]; bounds "
                                        f"the mean over documents of per-document bits/token",
                   rate_interval_status=status,
                   rate_interval_informative=status == "informative")
        out["t8_documents_needed"] = _t8_documents_needed(per_document, out["rate_actual"],
                                                          bound, delta)
        out.update(_heldout(per_document, bound, delta))
    keys = ("t3_logdet_full", "t3_logdet_full_raw", "t3_logdet_diag", "t3_dependency_headroom",
            "t3_dependency_headroom_null", "t4_miller_madow_estimate",
            "t4_marginal_floor_plugin", "t4_marginal_floor_lower", "t4_marginal_floor_status",
            "t4_marginal_floor_deviation", "t4_documents", "t4_documents_needed",
            "split_logdet_covariance", "gibbs_sample_floor", "gibbs_sample_estimated",
            "gibbs_sample_actual", "gibbs_sample_windows", "mse", "t6_rate_at_mse",
            "t6_curve", "t9_eval_rate")
    out.update(dict.fromkeys(keys))
    out["t10_entropy_model_lipschitz"] = _lipschitz(codec, eval_hidden, seed)
    if quantizer is None:
        out.update(_t9(codec, None, None, fit_hidden, bound, delta, seed, fit_input_ids))
        out.update(_t7(None, None, fit_hidden, None))
        return out
    notes = []
    keep = max(2, min(windows, max_tokens // tokens))
    if keep < windows:
        notes.append(f"symbol statistics on {keep} of {windows} eval windows")
        chosen = np.sort(rng.choice(windows, keep, replace=False))
    else:
        chosen = np.arange(windows)
    eval_hidden, documents_kept = eval_hidden[chosen], documents[chosen]
    symbols = _symbols(quantizer, eval_hidden)
    step = np.asarray(quantizer.step, float)
    first_step = np.asarray(quantizer.first_step, float)
    t3 = _t3(symbols, step, first_step, rng, max_cov_tokens)
    if t3.pop("_cov_rows") < symbols.shape[0] * (tokens - 1):
        notes.append(f"covariances on {max_cov_tokens} tokens")
    out["subsampled"] = "; ".join(notes) or False
    out.update(t3)
    t4 = _t4(symbols, documents_kept, delta)
    out.update(_gibbs_sample(quantizer, kind, symbols, t4, bits[chosen],
                             None if estimated is None else estimated[chosen]))
    t4.pop("_all_windows")
    out.update(t4)
    out.update(_t6(eval_hidden, quantizer, symbols, seed))
    fit_symbols = _symbols(quantizer, fit_hidden)
    out.update(_t9(codec, quantizer, fit_symbols, fit_hidden, bound, delta, seed,
                   fit_input_ids))
    if estimated is not None:
        out["t9_eval_rate"] = out["rate_estimated"]
    measured = out["rate_estimated"] if estimated is not None else out["rate_actual"]
    out.update(_t7(quantizer, fisher, fit_hidden, measured))
    return out


def split_statistics(prefix_fn, inputs_embeds_or_inputs, *, seed: int = 0,
                     iters: int = 5) -> dict:
    """Codec-independent figures of one split: the prefix map's Jacobian spectral norm.

    Parameters
    ----------
    prefix_fn : callable
        A differentiable torch function from the prefix's input (e.g. input
        embeddings ``(windows, positions, width)``) to the hidden state at the
        split, acting on each window independently.
    inputs_embeds_or_inputs : torch.Tensor
        A few windows of that input (floating point); keep it small on CPU.
    seed : int
        Seed of the power iteration's random start.
    iters : int
        Power-iteration steps (each one JVP and one VJP through the prefix).
        On SmolLM2 (16 positions) 3 and 10 steps agree within 1.5 % at split 8
        and 1e-6 at split 22; each step costs about three prefix passes.

    Notes
    -----
    Runs torch on one thread (restored afterwards): on the 2-core machine
    with other work running, SmolLM2 at split 8 on 16 positions took 12 s
    on one thread and 42 s on two.

    Returns
    -------
    dict
        ``t10_prefix_jacobian`` (the largest per-window estimate),
        ``t10_prefix_jacobian_mean`` and ``t10_prefix_jacobian_windows``.
        Each estimate is a LOWER bound on the local spectral norm and on the
        Lipschitz constant of the prefix (T10, :func:`rdgap.bounds.jacobian_spectral_norm`).
    """
    if not callable(prefix_fn):
        raise ValueError(f"prefix_fn: expected a callable torch function, got "
                         f"{type(prefix_fn).__name__}")
    x = inputs_embeds_or_inputs
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise ValueError("inputs_embeds_or_inputs: expected a floating-point tensor "
                         "(windows, ...) with a leading window axis, got "
                         f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: a second thread only adds contention
    try:
        values = np.atleast_1d(jacobian_spectral_norm(prefix_fn, x.detach(), iters=iters,
                                                      seed=seed, batched=True))
    finally:
        torch.set_num_threads(threads)
    return {"t10_prefix_jacobian": float(values.max()),
            "t10_prefix_jacobian_mean": float(values.mean()),
            "t10_prefix_jacobian_windows": int(values.size),
            "t10_prefix_jacobian_note": "power-iteration estimate: a LOWER bound (T10)"}
