r"""The joint context model's causal loop, written once, in torch, batched over windows.

Both coders of ``klt-context`` / ``klt-context-tokens`` run this code: the CPU
codec (:class:`~rdgap.codecs.entropy_models.context.ContextCodec`, constriction
coder, float64 on the CPU, a batch of one window) and the torch rANS coder
(:class:`~rdgap.codecs.coders.torch_context.TorchContextCodec`, any device, many
windows). What they share is everything but the bytes:

- the position-0 quantizer (uniform, :mod:`rdgap.codecs.quantizers.uniform`) and
  the KLT ``Z = A (Y − μ)``;
- the encoder's loop (:meth:`CausalLoop.analyse`): per token ``t``, the prediction
  ``m_t = b + W Ẑ_{t−1} (+ V f_t)``, the side latents
  ``k_tg = clip(round(log2 ĝ_tg · R / GAIN_STEP))``, the dead-zone symbols and the
  decoded ``Ẑ_t`` at the cell centroids;
- the table index rule :func:`table_indices` ``i = clip(u_j + GAIN_STEP·k_tg)``
  (integers from integers: the decoder selects the encoder's tables on any device);
- the decoder's loop (:meth:`CausalLoop.synthesise`) and the reconstruction
  (:meth:`CausalLoop.output`).

The float type is the loop's (float64, or float32 on a device without float64);
a float difference in ``m_t`` between devices moves a reconstruction by rounding
noise only, never a table index.

The CPU codec runs the loop for one window: hundreds of torch operations per token on
a few hundred values each, where torch's intra-op threads cost more than they save
(``x.abs()`` on 576 float64 values: ≈3 µs on one thread, ≈30 µs on two on a busy
2-core machine). :func:`one_thread` runs such a call on one torch thread: the same
operations, and the same streams and reconstructions (the golden streams; a 256 × 576
window of a fitted model, ``tests/codecs/test_context_loop.py``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from ..coders import ans
from ..quantizers import deadzone, uniform

#: Table indices per octave of scale.
SCALE_RESOLUTION = 4
#: Table indices per side-latent step (so h = GAIN_STEP / SCALE_RESOLUTION octaves).
GAIN_STEP = 2
#: Side latents are clipped to ``-GAIN_LIMIT..GAIN_LIMIT``.
GAIN_LIMIT = 12
#: Range of table indices: scales 2^-12 .. 2^14 steps.
MIN_INDEX, MAX_INDEX = -12 * SCALE_RESOLUTION, 14 * SCALE_RESOLUTION


def one_thread(function):
    """``function`` run with one torch intra-op thread (the caller's count restored
    after; nested calls keep one). For the CPU codec's batch-of-one calls (see the
    module)."""
    @functools.wraps(function)
    def run(*args, **kwargs):
        threads = torch.get_num_threads()
        if threads == 1:
            return function(*args, **kwargs)
        torch.set_num_threads(1)
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)
    return run


def table_scale(index: np.ndarray) -> np.ndarray:
    """Laplace scale (in steps) of table ``index``: ``2^{index / SCALE_RESOLUTION}``."""
    return np.exp2(np.asarray(index, dtype=np.float64) / SCALE_RESOLUTION)


def table_indices(base_index, group_of, side):
    """Table index of every component from side latents ``side`` ``(..., G)``:
    ``clip(u_j + GAIN_STEP·k_{g(j)}, MIN_INDEX, MAX_INDEX)`` (numpy or torch integers;
    ``base_index`` ``u`` and ``group_of`` ``g`` of the same kind)."""
    if isinstance(side, torch.Tensor):  # index_select: no advanced-indexing overhead
        return (base_index + GAIN_STEP * side.index_select(-1, group_of)).clamp_(
            MIN_INDEX, MAX_INDEX)
    return (base_index + GAIN_STEP * side[..., group_of]).clip(MIN_INDEX, MAX_INDEX)


@dataclass
class Analysis:
    """What one pass of the encoder's loop produces for ``B`` windows of ``T`` tokens
    (tensors on the loop's device)."""

    symbols: torch.Tensor    # (B, T-1, C) int64 body symbols
    side: torch.Tensor       # (B, T-1, G) int64 side latents
    decoded: torch.Tensor    # (B, T-1, C) float, Ẑ
    residual: torch.Tensor   # (B, T-1, C) float, Z − m (unquantized)


class CausalLoop:
    """A fitted context model's parameters as tensors on one device, and its loops.

    Parameters
    ----------
    model : ContextCodec
        The fitted model (``TokenContextCodec`` adds the token offsets ``V f_t``).
    device : torch.device
        Where the loop runs.
    dtype : torch.float64 or torch.float32
        Its float type.
    """

    def __init__(self, model, device: torch.device, dtype: torch.dtype):
        self.model = model
        self.device = torch.device(device)
        self.dtype = dtype
        put = self._tensor
        self.mean, self.analysis, self.synthesis = (
            put(model.mean), put(model.analysis), put(model.synthesis))
        self.step, self.bias, self.predictor = put(model.step), put(model.bias), \
            put(model.predictor)
        self.predicted = model.predicted
        self.first_mean, self.first_step = put(model.first_mean), put(model.first_step)
        self.base_index = torch.from_numpy(model.base_index).to(self.device)
        self.base_scale = put(table_scale(model.base_index))
        self.group_of = torch.from_numpy(model.group_of).to(self.device)
        ends = np.append(model.group_starts, model.channels)
        self.groups = list(zip(ends[:-1].tolist(), ends[1:].tolist()))
        self.group_sizes = put(np.diff(ends).astype(np.float64))
        self.offsets = put(model._offsets)
        self.embedding = None
        if getattr(model, "token_weights", None) is not None:
            self.embedding = torch.from_numpy(model.embedding).to(self.device)
            self.token_weights = put(model.token_weights)
        self.id_rows = None
        if getattr(model, "table_ids", None) is not None:  # klt-context-tokens-table
            rows = np.full(model.vocabulary, len(model.table_ids), dtype=np.int64)
            rows[model.table_ids] = np.arange(len(model.table_ids))
            self.id_rows = torch.from_numpy(rows).to(self.device)
            self.id_table = put(np.vstack([model.table_rows,
                                           np.zeros((1, model.channels))]))

    def _tensor(self, array) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array, dtype=np.float64)).to(self.device, self.dtype)

    # -- the parts ---------------------------------------------------------------------
    def predict(self, previous: torch.Tensor) -> torch.Tensor:
        """``m_t = b + W Ẑ_{t−1}`` for previous decoded tokens ``(B, C)``."""
        prediction = self.bias.expand_as(previous).clone()
        p = self.predicted
        if p:
            prediction[:, :p] += previous[:, :p] @ self.predictor.T
        return prediction

    def indices(self, side: torch.Tensor) -> torch.Tensor:
        """Table index of every component from side latents ``(..., G)``
        (:func:`table_indices`)."""
        return table_indices(self.base_index, self.group_of, side)

    def dequantize(self, symbols: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``x̂`` in steps: 0, or ``sign(S)(|S| − offset)`` at the centroid of the cell
        under table ``index``'s Laplace law (:func:`deadzone.dequantize`)."""
        return deadzone.dequantize(symbols, torch.take(self.offsets, index - MIN_INDEX))

    def token_offsets(self, ids: torch.Tensor) -> torch.Tensor:
        """``V f_t`` for positions ``1..T−1`` of token ids ``(B, T)``
        (``f_t = [e(x_{t−l}) for l in lags]``, zeros before the window start), plus
        ``T[x_t]``, the row of the token's own id, for a model with an id table
        (``klt-context-tokens-table``; unseen ids: a zero row)."""
        tokens = ids.shape[1]
        parts = []
        for lag in self.model.lags:
            looked_up = self.embedding[ids[:, max(1 - lag, 0):tokens - lag]].to(self.dtype)
            pad = looked_up.new_zeros((ids.shape[0], tokens - 1 - looked_up.shape[1],
                                       looked_up.shape[2]))
            parts.append(torch.cat([pad, looked_up], dim=1))
        offset = torch.cat(parts, dim=-1) @ self.token_weights.T
        if self.id_rows is not None:
            offset = offset + self.id_table[self.id_rows[ids[:, 1:]]]
        return offset

    def first_symbols(self, x0: torch.Tensor) -> torch.Tensor:
        """Position 0's symbols ``(B, C)`` (uniform quantizer around its own mean)."""
        return uniform.quantize(x0 - self.first_mean, self.first_step, ans.MAX_MAGNITUDE,
                                "its position-0 mean")

    def to_klt(self, x: torch.Tensor) -> torch.Tensor:
        """``Z = (X − μ) Aᵀ`` of positions ``1..T−1`` ``(B, T−1, C)``."""
        return (x - self.mean) @ self.analysis.T

    # -- the loops ---------------------------------------------------------------------
    def analyse(self, z: torch.Tensor, offset: torch.Tensor | None = None) -> Analysis:
        """The encoder's causal loop on KLT components ``z`` ``(B, T−1, C)``; ``offset``
        ``(B, T−1, C)``, if given, is added to every prediction (a mean the decoder
        knows without decoding, e.g. from token ids)."""
        model = self.model
        batch, tokens, channels = z.shape
        symbols = torch.empty_like(z)
        decoded = torch.empty_like(z)
        residual = torch.empty_like(z)
        side = torch.empty((batch, tokens, len(self.groups)), dtype=torch.int64,
                           device=self.device)
        previous = z.new_zeros((batch, channels))
        for t in range(tokens):
            prediction = self.predict(previous)
            if offset is not None:
                prediction += offset[:, t]
            r = z[:, t] - prediction
            scaled = r / self.step
            magnitude = scaled.abs() / self.base_scale
            gain = torch.stack([magnitude[:, a:b].sum(1) for a, b in self.groups], 1) \
                / self.group_sizes
            k = torch.round(torch.log2(gain.clamp_min(1e-300)) * SCALE_RESOLUTION / GAIN_STEP)
            side[:, t] = k.clamp(-GAIN_LIMIT, GAIN_LIMIT).to(torch.int64)
            s = deadzone.quantize(scaled, model.rounding)
            index = self.indices(side[:, t])
            if model.rdo > 0:  # encoder-only option, run on the host in float64
                host = index.cpu().numpy()
                s = torch.from_numpy(deadzone.rdo_symbols(
                    scaled.cpu().double().numpy(), s.cpu().double().numpy(),
                    table_scale(host), model._offsets[host - MIN_INDEX],
                    model.rounding, model.rdo)).to(self.device, self.dtype)
            symbols[:, t] = s
            residual[:, t] = r
            previous = prediction + self.step * self.dequantize(s, index)
            decoded[:, t] = previous
        uniform.check_range(symbols, ans.MAX_MAGNITUDE, "its prediction")
        return Analysis(symbols.to(torch.int64), side, decoded, residual)

    def synthesise(self, symbols: torch.Tensor, side: torch.Tensor,
                   offset: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's causal loop: ``Ẑ`` ``(B, T−1, C)`` from symbols and side latents
        (and the prediction offsets the encoder used)."""
        batch, tokens, channels = symbols.shape
        steps = self.step * self.dequantize(symbols.to(self.dtype), self.indices(side))
        decoded = torch.empty_like(steps)
        previous = steps.new_zeros((batch, channels))
        for t in range(tokens):  # the operations of analyse()
            prediction = self.predict(previous)
            if offset is not None:
                prediction += offset[:, t]
            previous = prediction + steps[:, t]
            decoded[:, t] = previous
        return decoded

    def output(self, first: torch.Tensor, decoded: torch.Tensor | None) -> torch.Tensor:
        """The reconstruction, float32 ``(B, T, C)`` on the CPU, from position 0's symbols
        ``(B, C)`` and the decoded KLT components ``(B, T−1, C)`` (None when T = 1)."""
        batch, channels = first.shape
        rest = 0 if decoded is None else decoded.shape[1]
        out = torch.empty((batch, rest + 1, channels), dtype=self.dtype, device=self.device)
        out[:, 0] = self.first_mean + uniform.dequantize(first.to(self.dtype), self.first_step)
        if rest:
            out[:, 1:] = self.mean + decoded @ self.synthesis.T
        return out.to("cpu", torch.float32)
