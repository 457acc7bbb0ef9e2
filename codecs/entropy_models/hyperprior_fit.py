"""Train the scale hyperprior of :mod:`rdgap.codecs.entropy_models.hyperprior` on the rate objective.

Starting from a fitted :class:`rdgap.codecs.entropy_models.context.ContextCodec` (at the steps it
will code with), the encoder's causal loop is run once on the fit windows: its
symbols ``S``, closed-form side latents ``k`` and residuals are then *fixed* (the
hyperprior changes tables, never the quantizer or the reconstruction). The
networks minimise THEORY.md T1's two-part rate per token,

``R = Σ_s −log2 p_s(ŷ_s) + Σ_j −log2 q(S_j | 2^{i_j/R})``,
``i_j = u_j + GAIN_STEP·k_{g(j)} + h_s([k, ŷ])_j``,  ``ŷ = h_a(f)``,

with ``q`` the dead-zone discretised Laplace law of the tables
(:func:`rdgap.codecs.entropy_models.context_fit.laplace_bits`, written in torch so that it is
differentiable in the scale) and ``p_s`` a per-channel discretised logistic
density (only for training; the codec stores a histogram of the fit latents).
Stage 1 trains in float: ``ŷ`` with additive uniform noise for the side rate
and straight-through rounding as ``h_s``'s input, the index correction
continuous. Stage 2 is quantization-aware: weights rounded to multiples of
``2^-F`` (``2^-2F`` for the last bias), the correction rounded, all with
straight-through gradients; in float64 this forward is *exactly* the integer
network's (every intermediate is a dyadic rational with < 53 significant bits),
so the integer codec selects the tables the last stage trained with.

Minibatches of tokens, Adam, a fixed seed; seconds to a few minutes on a CPU.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from .context import GAIN_LIMIT, GAIN_STEP, MAX_INDEX, MIN_INDEX, SCALE_RESOLUTION, ContextCodec
from .context_fit import fit_model as context_model
from .context_fit import side_probabilities
from ..fit import FitContext, FittedCodec, fit_codec
from .hyperprior import (DELTA_LIMIT, FRACTION_BITS, HIDDEN_LIMIT, HyperpriorCodec,
                         residual_features)
from .model_fit import ModelFit, every_fit_window
from ..quantizers.ste import round_ste

VARIANT = "klt-hyperprior"
#: Learned side latents per token, hidden units of ``h_a`` and of ``h_s``. On SmolLM2
#: split 15 (level 0.05, trained on 44 fit windows, 10 held out): S = 4 with 32 units
#: −0.51 % bits against klt-context, S = 8 with 64 units −0.44 %; S = 16 with 64 units
#: trained on 22 windows: +0.8 % on the 32 others (its latents cost ≈ 9 bits/token and
#: saved ≈ 3.4 on symbols). Giving ``h_s`` the neighbouring tokens' ``k`` as well (they
#: are in the stream before the symbols): no change (717.59 vs 717.59 bits/token on the
#: 14 held-out fit windows), so it does not.
LATENTS, ANALYSIS_UNITS, SYNTHESIS_UNITS = 4, 64, 32
#: Adam steps of the float stage and of the quantization-aware stage.
FLOAT_STEPS, QUANTIZED_STEPS = 400, 200
#: Tokens per minibatch.
BATCH = 1024
#: Steps between two evaluations on the held-out fit windows (quantization-aware stage).
CHECK_EVERY = 25
_FLOOR = math.log(2.0 ** -20)  # the tables' probability floor


@dataclass
class HyperpriorFit:
    """A trained codec and how training went: training seconds, and the estimated bits
    per token (``Σ −log2 q`` of whole streams, side latents included) on the fit windows
    of the klt-context codec it started from and of the trained codec (held-out windows
    included)."""

    codec: HyperpriorCodec
    seconds: float
    bits_per_token_before: float
    bits_per_token_after: float
    #: ``(step, bits per token)`` of the held-out fit windows during training (symbols
    #: and learned latents; the float stage with its continuous corrections).
    history: list


def _floor(x: torch.Tensor) -> torch.Tensor:
    """Straight-through floor."""
    return x + (torch.floor(x) - x).detach()


def symbol_bits(magnitude: torch.Tensor, index: torch.Tensor, rounding: float) -> torch.Tensor:
    """``−log2 q(S)`` under the dead-zone Laplace law of scale ``2^{index/R}`` steps
    (``magnitude = |S|``), floored at the tables' ``2^-20``; differentiable in ``index``."""
    scale = torch.exp2(index / SCALE_RESOLUTION)
    zero = torch.log(-torch.expm1(-(1.0 - rounding) / scale))
    other = (math.log(0.5) - (torch.clamp(magnitude, min=1.0) - rounding) / scale
             + torch.log(-torch.expm1(-1.0 / scale)))
    log_q = torch.where(magnitude == 0, zero, other)
    return -torch.clamp(log_q, min=_FLOOR) / math.log(2.0)


class HyperpriorNetworks(torch.nn.Module):
    """The float / quantization-aware ``h_a``, ``h_s`` and the training side density.

    Parameters
    ----------
    channels, groups, latents : int
        Components ``C``, closed-form side latents ``G`` and learned latents ``S``.
    analysis_units, synthesis_units : int
        Hidden units of ``h_a`` and ``h_s``.
    """

    def __init__(self, channels: int, groups: int, latents: int, analysis_units: int,
                 synthesis_units: int):
        super().__init__()
        self.analysis1 = torch.nn.Linear(channels, analysis_units, dtype=torch.float64)
        self.analysis2 = torch.nn.Linear(analysis_units, latents, dtype=torch.float64)
        self.weight1 = torch.nn.Parameter(
            torch.randn(synthesis_units, groups + latents, dtype=torch.float64) * 0.3)
        self.bias1 = torch.nn.Parameter(torch.ones(synthesis_units, dtype=torch.float64))
        self.weight2 = torch.nn.Parameter(
            torch.zeros(channels, synthesis_units, dtype=torch.float64))
        self.bias2 = torch.nn.Parameter(torch.zeros(channels, dtype=torch.float64))
        self.side_mean = torch.nn.Parameter(torch.zeros(latents, dtype=torch.float64))
        self.side_log_scale = torch.nn.Parameter(torch.full((latents,), -1.0,
                                                            dtype=torch.float64))

    def latents(self, features: torch.Tensor) -> torch.Tensor:
        """``h_a(f)``: the float learned latents (before rounding) of features ``(N, C)``."""
        return self.analysis2(torch.relu(self.analysis1(features)))

    def side_bits(self, y: torch.Tensor) -> torch.Tensor:
        """``Σ −log2 p(y)`` per token under discretised logistic densities."""
        scale = torch.exp(self.side_log_scale)
        upper = torch.sigmoid((y + 0.5 - self.side_mean) / scale)
        lower = torch.sigmoid((y - 0.5 - self.side_mean) / scale)
        log_p = torch.log(torch.clamp(upper - lower, min=2.0 ** -20))
        return -log_p.sum(-1) / math.log(2.0)

    def quantized(self) -> list[torch.Tensor]:
        """Weights rounded to the integer network's grid (straight through), in units."""
        one, two = 2.0 ** FRACTION_BITS, 2.0 ** (2 * FRACTION_BITS)
        return [round_ste(self.weight1 * one) / one, round_ste(self.bias1 * one) / one,
                round_ste(self.weight2 * one) / one, round_ste(self.bias2 * two) / two]

    def corrections(self, v: torch.Tensor, quantized: bool) -> torch.Tensor:
        """``δ`` from side vectors ``v``: continuous (float stage) or the integer
        network's value (quantization-aware stage)."""
        w1, b1, w2, b2 = self.quantized() if quantized else \
            [self.weight1, self.bias1, self.weight2, self.bias2]
        hidden = torch.clamp(v @ w1.T + b1, 0.0, float(HIDDEN_LIMIT))
        out = hidden @ w2.T + b2
        if quantized:
            out = _floor(out + 0.5)
        return torch.clamp(out, -DELTA_LIMIT, DELTA_LIMIT)

    def integer_weights(self) -> dict[str, torch.Tensor]:
        """``h_s``'s weights as the integer network's (rounded to ``2^-F``, the last bias
        to ``2^-2F``, in those units), by the :class:`HyperpriorCodec` argument names."""
        one, two = 2.0 ** FRACTION_BITS, 2.0 ** (2 * FRACTION_BITS)
        with torch.no_grad():
            return {"synthesis_weight1": torch.round(self.weight1 * one),
                    "synthesis_bias1": torch.round(self.bias1 * one),
                    "synthesis_weight2": torch.round(self.weight2 * one),
                    "synthesis_bias2": torch.round(self.bias2 * two)}


def _rate(nets: HyperpriorNetworks, batch: list[torch.Tensor], rounding: float,
          quantized: bool, side_weight: float, noise: bool = True) -> torch.Tensor:
    """Mean two-part rate per token of a batch ``[features, k, u + GAIN_STEP·k, |S|]``:
    side bits (of ``y`` + uniform noise, or of the rounded latents) weighted by
    ``side_weight``, plus the symbols' bits under the tables ``h_s`` selects."""
    features, k, base, magnitude = batch
    y = nets.latents(features)
    rounded = torch.clamp(round_ste(y), -GAIN_LIMIT, GAIN_LIMIT)
    index = torch.clamp(base + nets.corrections(torch.cat([k, rounded], -1), quantized),
                        MIN_INDEX, MAX_INDEX)
    side = nets.side_bits(y + torch.rand_like(y) - 0.5 if noise else rounded)
    return side_weight * side.mean() + symbol_bits(magnitude, index, rounding).sum(-1).mean()


def fit_hyperprior(codec: ContextCodec, hidden: torch.Tensor, latents: int = LATENTS,
                   analysis_units: int = ANALYSIS_UNITS,
                   synthesis_units: int = SYNTHESIS_UNITS, float_steps: int = FLOAT_STEPS,
                   quantized_steps: int = QUANTIZED_STEPS, batch: int = BATCH,
                   learning_rate: float = 0.01, validation: float = 0.25, seed: int = 0,
                   progress: bool = True) -> HyperpriorFit:
    """Train ``h_a`` and the integer ``h_s`` for ``codec``'s steps on fit windows.

    Parameters
    ----------
    codec : ContextCodec
        A fitted klt-context codec (not one that predicts from token ids), at the
        steps the hyperprior codec will use.
    hidden : torch.Tensor
        ``(windows, tokens ≥ 2, channels)`` hidden states of fit windows.
    latents, analysis_units, synthesis_units : int
        ``S`` learned side latents per token; hidden units of ``h_a`` and ``h_s``.
    float_steps, quantized_steps : int
        Adam steps of the float and of the quantization-aware stage.
    batch : int
        Tokens per minibatch.
    learning_rate : float
        Adam's step size (a tenth of it in the quantization-aware stage).
    validation : float
        Fraction of the windows (the last ones) held out of training: the
        quantization-aware networks are evaluated on them every :data:`CHECK_EVERY`
        steps and the best are kept (early stopping). ``0``: the last networks.
    seed : int
        Seed of the initialisation, the minibatches and the noise.
    progress : bool
        Show a tqdm bar.
    """
    if type(codec) is not ContextCodec:
        raise ValueError(f"codec: expected a fitted klt-context ContextCodec, got "
                         f"{type(codec).__name__}")
    if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3 or hidden.shape[1] < 2 \
            or hidden.shape[2] != codec.channels:
        raise ValueError(f"hidden: expected fit windows (windows, tokens ≥ 2, "
                         f"{codec.channels}), got {tuple(getattr(hidden, 'shape', ()))}")
    for name, value in (("latents", latents), ("analysis_units", analysis_units),
                        ("synthesis_units", synthesis_units), ("batch", batch)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name}: expected an integer ≥ 1, got {value!r}")
    if not 0 <= validation < 1 or int(round(validation * hidden.shape[0])) >= hidden.shape[0]:
        raise ValueError(f"validation: expected a fraction in [0, 1) of the "
                         f"{hidden.shape[0]} windows that leaves ≥ 1 to train on, got "
                         f"{validation}")
    if not float_steps >= 0:
        raise ValueError(f"float_steps: expected ≥ 0 Adam steps, got {float_steps}")
    if not quantized_steps >= 1:
        raise ValueError(f"quantized_steps: expected ≥ 1 Adam steps, got {quantized_steps}")
    start = time.perf_counter()
    z = (hidden.detach().double().numpy()[:, 1:] - codec.mean) @ codec.analysis.T
    result = codec.analyse(z)
    groups = codec.group_starts.size
    side = result.side.reshape(-1, groups)
    base = codec.base_index + GAIN_STEP * side[:, codec.group_of]  # unclipped, as h_s adds
    features = residual_features(result.residual.reshape(side.shape[0], -1) / codec.step,
                                 codec._indices(side))
    magnitude = torch.from_numpy(np.abs(result.symbols).reshape(side.shape[0], -1)
                                 .astype(np.float64))
    data = [torch.from_numpy(a) for a in (features, side.astype(np.float64),
                                          base.astype(np.float64))] + [magnitude]
    per_window = hidden.shape[1] - 1
    held = int(round(validation * hidden.shape[0])) * per_window
    train = torch.arange(side.shape[0] - held)
    check = [a[side.shape[0] - held:] for a in data]
    history = []
    threads = torch.get_num_threads()
    with torch.random.fork_rng():
        torch.set_num_threads(1)  # small matrices: one thread is faster on a busy CPU
        try:
            torch.manual_seed(seed)
            nets = HyperpriorNetworks(codec.channels, groups, latents, analysis_units,
                                      synthesis_units)
            optimiser = torch.optim.Adam(nets.parameters(), lr=learning_rate)
            best = (np.inf, None)
            bar = tqdm(total=float_steps + quantized_steps, desc="hyperprior", unit="step",
                       disable=not progress)
            for step in range(float_steps + quantized_steps):
                quantized = step >= float_steps
                if step == float_steps:
                    optimiser = torch.optim.Adam(nets.parameters(), lr=learning_rate / 10)
                rows = train[torch.randperm(train.numel())[:batch]]
                weight = min(1.0, 2.0 * step / max(float_steps, 1))  # side rate phased in
                loss = _rate(nets, [a[rows] for a in data], codec.rounding, quantized, weight)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                bar.update()
                bar.set_postfix(bits=f"{loss.item():.1f}", stage="int" if quantized else "float")
                last = step == float_steps + quantized_steps - 1
                if held and (step % CHECK_EVERY == 0 or last):
                    with torch.no_grad():
                        value = _rate(nets, check, codec.rounding, quantized, 1.0,
                                      noise=False).item()
                    history.append((step, value))
                    if quantized and value < best[0]:
                        best = (value, copy.deepcopy(nets.state_dict()))
            bar.close()
        finally:
            torch.set_num_threads(threads)
    if best[1] is not None:
        nets.load_state_dict(best[1])
    integer = {n: w.numpy().astype(np.int64) for n, w in nets.integer_weights().items()}
    with torch.no_grad():
        analysis = {"analysis_weight1": nets.analysis1.weight.numpy().copy(),
                    "analysis_bias1": nets.analysis1.bias.numpy().copy(),
                    "analysis_weight2": nets.analysis2.weight.numpy().copy(),
                    "analysis_bias2": nets.analysis2.bias.numpy().copy()}
    label = f"{codec.label} hyperprior S={latents}".strip()
    draft = HyperpriorCodec(**analysis, **integer,
                            hyper_side_probabilities=side_probabilities(
                                np.zeros((1, latents), dtype=np.int64), latents),
                            **{**codec._constructor_arguments(), "label": label})
    trained = HyperpriorCodec(**{**draft._constructor_arguments(), "hyper_side_probabilities":
                                 side_probabilities(draft.hyper_analysis(features), latents)})
    windows = hidden.shape[0]
    before = sum(codec.estimate_bits(hidden[w]) for w in range(windows))
    after = sum(trained.estimate_bits(hidden[w]) for w in range(windows))
    coded = windows * hidden.shape[1]
    return HyperpriorFit(trained, time.perf_counter() - start, before / coded, after / coded,
                         history)


def fit_model(start, context: FitContext, input_ids=None, **training) -> ModelFit:
    """The ``hyperprior`` entropy model at a fit start (the pipeline's interface,
    :mod:`rdgap.codecs.entropy_models.model_fit`): the calibration measures
    ``klt-context``'s model (:func:`rdgap.codecs.entropy_models.context_fit.fit_model`;
    the reconstruction — hence ΔCE — is its), and at the chosen scale the hyperprior is
    trained (:func:`fit_hyperprior`, ``**training``) on every fit window: the statistics
    windows and the probe's (the last quarter of them held out for early stopping).
    Measured on SmolLM2 split 15 (level 0.05, 10 held-out fit windows): trained on 22
    windows it cost 0.5 % *more* than klt-context, on 44 windows 0.4 % less; only the
    rate differs. ``input_ids`` is unused."""
    parent = context_model(replace(start, label="klt-context"), context)  # its label

    def finish(codec: ContextCodec) -> HyperpriorCodec:
        trained = fit_hyperprior(parent.finish(codec), every_fit_window(context), **training)
        tqdm.write(f"{VARIANT}: trained in {trained.seconds:.1f} s; fit windows "
                   f"{trained.bits_per_token_before:.1f} → {trained.bits_per_token_after:.1f} "
                   f"bits/token (klt-context → hyperprior)")
        return trained.codec

    return ModelFit(parent.at, finish)


def fit_hyperprior_codec(context: FitContext, input_ids: torch.Tensor, target_delta_ce: float,
                         method: str = "fit", margin: float = 0.0,
                         **training) -> FittedCodec:
    """``klt-hyperprior`` at a ΔCE level: :func:`rdgap.codecs.fit.fit_codec` of the
    recipe (``method``, ``margin``; :func:`fit_model` is this model's part of it,
    ``**training`` its options). ``input_ids`` is unused."""
    return fit_codec(VARIANT, context, target_delta_ce, method=method, margin=margin,
                     input_ids=input_ids, model_options=training)
