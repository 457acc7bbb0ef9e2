r"""Bound statistics of one codec at one split: what THEORY.md predicts, per token.

(Layout: this module holds the entry point :func:`codec_statistics` and, in
this docstring, the definition of every key it returns — hence its length; the
computations live in :mod:`.rate_statistics` (T8, held-out bound),
:mod:`.codec_domain`, :mod:`.stream_range`, :mod:`.symbol_statistics` (T3, T4,
Gibbs, T6), :mod:`.rademacher_statistics` (T9), :mod:`.t7_statistics` (T7),
:mod:`.jacobian_statistics` (T10, and :func:`split_statistics`, re-exported
here) and :mod:`.rate_prediction`.)

:func:`codec_statistics` turns the hidden states a codec was fitted and
evaluated on, and the bits it wrote, into a JSON-ready dict of figures in
**bits per token** (``None`` where a figure does not apply to the codec);
:func:`split_statistics` adds the codec-independent figures of a split. The
validate job stores both in ``row["statistics"]``; :mod:`.claims` checks them.

The domain a codec codes
    A codec has *symbols* when it (or its ``.model`` / ``.quantizer``, looked up
    in that order) has ``quantize(hidden) -> int symbols``, ``dequantize`` and
    per-channel ``step`` and ``first_step`` (:class:`~rdgap.codecs.entropy_models.factorized.
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
    validate job's windows), and differ otherwise; ``rate_document_max`` is
    the largest per-document rate (above ``B`` it voids every interval and
    bound of the rate). ``rate_interval_status``
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
    document law and independent of the codec. The one-sided betting bound
    (:func:`rdgap.bounds.betting_upper`, Waudby-Smith & Ramdas 2023: hedged
    capital with predictable plug-in bets, Ville's inequality) at the full
    ``delta`` gives ``heldout_rate_upper``:
    with probability ``>= 1 - delta``, the *expected* per-document rate of
    this codec on a new document is at most it (a bound on the expectation,
    not on the sample mean ``heldout_rate_mean``). No complexity term is
    needed because nothing was chosen on these documents. Hypotheses:
    documents i.i.d.; codec independent of them (``heldout_disjoint``:
    ``{"fit_windows", "shared_windows"}`` counts fit windows that reappear
    bit for bit among the eval windows); rates in ``[0, B]`` (checked: a
    document above ``B`` leaves every interval None). ``heldout_informative``:
    upper − mean <= 0.1 × mean. Beside it: ``heldout_rate_interval``
    (two-sided betting interval at ``delta``), ``heldout_rate_upper_bernstein``
    (Maurer & Pontil's one-sided bound, for comparison: its range term
    ``7 B ln(2/δ) / (3 (N − 1))`` makes it wider), ``heldout_rate_range``
    (``B``), ``heldout_rate_method`` (what was bounded, N and B) and
    ``heldout_documents`` (N: one value per evaluation document, its windows
    of ``tokens_per_window`` tokens summed).
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
Rate prediction (``rate_predicted``, ``rate_prediction_relative_error``, ...)
    :func:`rdgap.validation.rate_prediction.rate_prediction`: the bits per
    token predicted from the codec's steps and second-order fit statistics
    (discretised cross-entropy per channel, data scales from the held-out
    fit windows, the lag-1 residual for context codecs), its relative error
    against ``rate_actual``, and the curve over step factors. A PREDICTION;
    ``None`` for codecs without per-channel steps.
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
    (:class:`rdgap.codecs.entropy_models.context.ContextCodec`, variant ``klt-context``)
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

import numpy as np
import torch

from .codec_domain import LatticeQuantizer, entropy_model_kind, quantizer_of  # noqa: F401
from .jacobian_statistics import _lipschitz, split_statistics  # noqa: F401
from .rademacher_statistics import RADEMACHER_DRAWS, _t9  # noqa: F401
from .rate_bounds import _disjoint, _heldout, _t8_documents_needed, interval_status  # noqa: F401
from .rate_prediction import rate_prediction
from .rate_statistics import _per_document, _rate_statistics  # noqa: F401
from .stream_range import (_FIXED_BITS, ESCAPE_WORST_BITS, fixed_header_bits,  # noqa: F401
                           stream_bound_bits, stream_bound_parts)
from .symbol_statistics import (T6_COV_TOKENS, T7_CURVE_POINTS,  # noqa: F401
                                TARGET_RELATIVE_RADIUS, _gibbs_sample, _per_token, _shared,
                                _t3, _t4, _t6, smallest_sample_size, split_logdet)
from .t7_statistics import _differential_entropies, _t7  # noqa: F401

try:  # BLAS threads fight each other on a loaded 2-core machine (eigvalsh 7x slower)
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - optional
    threadpool_limits = None

MAX_TOKENS = 65_536
MAX_COV_TOKENS = 16_384


# ----------------------------------------------------------------- helpers
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
    fisher : rdgap.codecs.transforms.fisher.FisherDiagonal, optional
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
    out = _rate_statistics(codec, kind, confidence, bits, documents, estimated, tokens, parts,
                           fit_hidden, eval_hidden)
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
        out.update(rate_prediction(codec, fit_hidden, tokens, out["rate_actual"],
                                   header_bits=fixed_header_bits(codec, parts, tokens)))
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
    out.update(rate_prediction(codec, fit_hidden, tokens, out["rate_actual"],
                               header_bits=fixed_header_bits(codec, parts, tokens)))
    return out
