"""A joint entropy model: causal context over tokens plus a per-token scale hyperprior.

Length (≈520 lines): one class, ContextCodec — its parameters, tables, sections
of ``(values, table rows)`` that either coder writes, and the constriction coding of
one window; the causal loop both coders run is :mod:`rdgap.codecs.entropy_models.
context_loop`, the fit ``context_fit.py``.

The codec works in the Fisher-whitened KLT domain of :mod:`rdgap.codecs.transforms.klt`
(``Z = A (Y − μ)``, one step per component, T7 distortion isotropic), and adds
three things to the factorized model of :mod:`rdgap.codecs.entropy_models.factorized`:

Causal context (predictive coding)
    the mean of token ``t`` is predicted from the *decoded* previous token,
    ``m_t = b + W Ẑ_{t−1}`` (a ridge regression fitted on fit windows; token 1
    is predicted from ``Ẑ_0 = 0``). ``W`` acts on the ``P`` leading (largest
    variance) components only, which keeps the sequential loop cheap. The residual ``Z_t − m_t`` is quantized,
    so the decoder, which knows ``Ẑ_{t−1}``, forms the same prediction.
Scale hyperprior (side information)
    per token and per group of components, a side latent
    ``k_tg = round(log2 ĝ_tg / h)`` (``ĝ`` the maximum-likelihood Laplace gain
    of the residuals, ``h`` = :data:`GAIN_STEP` / :data:`SCALE_RESOLUTION`
    octaves) is coded first with a factorized categorical density learned on
    fit windows (PAPER.md's two-part rate, THEORY.md T1 ``two_part_rate``).
    Component ``j`` of token ``t`` then uses the discretised Laplace table of
    index ``i = u_j + GAIN_STEP·k_tg`` (``u_j`` an integer per component, stored),
    scale ``2^{i/R}`` steps. Table indices are integers computed from integers,
    so the encoder and the decoder select bit-identical tables on any machine;
    float differences in the prediction ``m_t`` can only move a reconstruction
    by rounding noise, never desynchronise the entropy decoder.
Quantizer
    a dead zone ``S = sign(x)·⌊|x| + ρ⌋`` and reconstruction at the centroid
    of the cell under the table's Laplace density. The Laplace law is
    memoryless, so every cell ``|S| = k ≥ 1`` has the same centroid offset
    ``|x̂| = k − ρ + c(s)``, ``c(s) = s − 1/(e^{1/s} − 1)``
    (:mod:`rdgap.codecs.quantizers.deadzone`).

Position 0 (the "massive activation" token) is coded as in the factorized
codec: its own per-channel mean, Laplace scale and step, uniform quantizer
(:mod:`rdgap.codecs.quantizers.uniform`). One stream per window:
side latents, then position 0, then every other symbol grouped by table index
(one ANS stream; :class:`rdgap.codecs.coders.ans.Decoder` decodes it in stages).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from ..coders import ans
from .. import persist
from ..base import HiddenStateCodec, check_hidden
from ..coders.container import BitstreamError, Stream
from ..coders.sections import grouped_columns, read_grouped
from ..quantizers import deadzone
from ..quantizers.deadzone import centroid_offset, rdo_symbols  # noqa: F401 (public here too)
from .context_loop import (GAIN_LIMIT, GAIN_STEP, MAX_INDEX, MIN_INDEX,  # noqa: F401 (public)
                           SCALE_RESOLUTION, CausalLoop, one_thread, table_indices,
                           table_scale)
from .factorized import build_tables
from .tables import discretised_table, half_width

FORMAT_VERSION = 1
_FLOAT_ARRAYS = ("mean", "analysis", "synthesis", "step", "predictor", "bias",
                 "side_probabilities", "first_mean", "first_scale", "first_step")
_INT_ARRAYS = ("base_index", "group_starts")


def scale_index(scale_in_steps: np.ndarray) -> np.ndarray:
    """Integer table index of a positive scale (in steps), clipped to the table range."""
    raw = np.rint(SCALE_RESOLUTION * np.log2(np.maximum(scale_in_steps, 1e-300)))
    return np.clip(raw, MIN_INDEX, MAX_INDEX).astype(np.int64)


@dataclass
class _Analysis:
    """What one pass of the causal loop produces for a batch of windows."""

    symbols: np.ndarray      # (B, T-1, C) int64
    side: np.ndarray         # (B, T-1, G) int64
    decoded: np.ndarray      # (B, T-1, C) float64, Ẑ
    residual: np.ndarray     # (B, T-1, C) float64, Z − m (unquantized)


class ContextCodec(HiddenStateCodec):
    """KLT-domain codec with a causal context model and a per-token scale hyperprior.

    Parameters
    ----------
    mean : (C,) array
        Mean of positions ≥ 1 (channel domain).
    analysis, synthesis : (C, C) arrays
        The transform ``A`` and ``A^{-1}``.
    step : (C,) array
        Quantization step per component.
    base_index : (C,) int array
        ``u_j``: table index of component ``j`` at side latent 0.
    predictor, bias : (P, P) and (C,) arrays
        ``W`` and ``b`` of the prediction ``m_t = b + W Ẑ_{t−1}`` (KLT domain;
        ``W`` maps the first ``P ≤ C`` components to the first ``P``, the rest
        are predicted by ``b`` alone).
    group_starts : (G,) int array
        First component of each side-latent group (``group_starts[0] = 0``,
        increasing); group ``g`` covers components up to the next start.
    side_probabilities : (G, 2·GAIN_LIMIT + 2) array
        Each group's categorical density of side latents ``-GAIN_LIMIT..GAIN_LIMIT``
        (then an escape slot that a valid stream never uses).
    first_mean, first_scale, first_step : (C,) arrays
        Position 0's mean, Laplace scale and step (channel domain).
    rounding : float
        Dead-zone rounding offset ``ρ`` in ``(0, ½]``.
    rdo : float
        Encoder-only rate–distortion optimised quantization: a nonzero symbol moves
        one step toward zero when that lowers ``ΔD + rdo·Δbits`` (``D`` in squared
        steps, bits under the symbol's Laplace table;
        :func:`rdgap.codecs.quantizers.deadzone.rdo_symbols`). ``0``: off.
        The decoder does not depend on it.
    label : str
        Free text saved with the codec.
    """

    codec_id = "klt-context-laplace"

    def __init__(self, mean, analysis, synthesis, step, base_index, predictor, bias,
                 group_starts, side_probabilities, first_mean, first_scale, first_step,
                 rounding: float = 0.4, label: str = "", rdo: float = 0.0):
        mean = np.asarray(mean, dtype=np.float64)
        channels = mean.shape[0] if mean.ndim == 1 else -1
        if channels < 1:
            raise ValueError(f"mean: expected a (channels,) array, got shape {mean.shape}")
        self.channels = channels
        square = (channels, channels)
        self.mean = mean
        self.analysis = _array(analysis, square, "analysis")
        self.synthesis = _array(synthesis, square, "synthesis")
        predicted = np.shape(predictor)[0] if np.ndim(predictor) == 2 else -1
        if not 0 <= predicted <= channels:
            raise ValueError(f"predictor: expected a (P, P) matrix with P ≤ {channels}, got "
                             f"shape {np.shape(predictor)}")
        self.predictor = _array(predictor, (predicted, predicted), "predictor")
        self.predicted = predicted
        self.bias = _array(bias, (channels,), "bias")
        self.step = _array(step, (channels,), "step", positive=True)
        self.first_mean = _array(first_mean, (channels,), "first_mean")
        self.first_scale = _array(first_scale, (channels,), "first_scale", positive=True)
        self.first_step = _array(first_step, (channels,), "first_step", positive=True)
        self.base_index = np.asarray(base_index).astype(np.int64)
        if self.base_index.shape != (channels,) or \
                np.any((self.base_index < MIN_INDEX) | (self.base_index > MAX_INDEX)):
            raise ValueError(f"base_index: expected {channels} integers in "
                             f"[{MIN_INDEX}, {MAX_INDEX}]")
        starts = np.asarray(group_starts).astype(np.int64)
        if starts.ndim != 1 or starts.size < 1 or starts[0] != 0 or \
                np.any(np.diff(starts) <= 0) or starts[-1] >= channels:
            raise ValueError("group_starts: expected increasing first components of each "
                             f"group, starting at 0 and below {channels}, got {starts}")
        self.group_starts = starts
        groups = starts.size
        self.group_of = np.repeat(np.arange(groups), np.diff(np.append(starts, channels)))
        side = _array(side_probabilities, (groups, 2 * GAIN_LIMIT + 2), "side_probabilities",
                      positive=True)
        if not np.allclose(side.sum(1), 1.0, rtol=0, atol=1e-9):
            raise ValueError("side_probabilities: expected each group's row to sum to 1")
        self.side_probabilities = side
        if not 0 < rounding <= 0.5:
            raise ValueError(f"rounding: expected an offset in (0, 0.5], got {rounding}")
        self.rounding = float(rounding)
        if not (np.isfinite(rdo) and rdo >= 0):
            raise ValueError(f"rdo: expected a rate–distortion multiplier ≥ 0 (squared steps "
                             f"per bit), got {rdo}")
        self.rdo = float(rdo)
        self.label = label
        self._side_tables = [ans.ChannelTable(p, GAIN_LIMIT) for p in self.side_probabilities]
        self._first_tables = build_tables("laplace", self.first_scale / self.first_step)
        self._tables: dict[int, ans.ChannelTable] = {}
        indices = np.arange(MIN_INDEX, MAX_INDEX + 1)
        self._offsets = deadzone.centroid_offset(table_scale(indices), self.rounding)
        self._digest = self._hash()
        self._loops: dict = {}      # CausalLoop per (device, dtype)
        self._integers: dict = {}   # base_index, group_of as tensors per device

    # -- identity ----------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "analysis": self.analysis, "synthesis": self.synthesis,
                "step": self.step, "predictor": self.predictor, "bias": self.bias,
                "side_probabilities": self.side_probabilities, "first_mean": self.first_mean,
                "first_scale": self.first_scale, "first_step": self.first_step,
                "base_index": self.base_index, "group_starts": self.group_starts}

    def _hash(self) -> bytes:
        h = hashlib.blake2b(digest_size=8)
        h.update(json.dumps({"codec": self.codec_id, "version": FORMAT_VERSION,
                             "rounding": self.rounding, "resolution": SCALE_RESOLUTION,
                             "gain_step": GAIN_STEP, "gain_limit": GAIN_LIMIT,
                             "index_range": [MIN_INDEX, MAX_INDEX]}).encode())
        for name, array in self._arrays().items():
            h.update(name.encode())
            dtype = "<i8" if array.dtype.kind == "i" else "<f8"
            h.update(np.ascontiguousarray(array, dtype=dtype).tobytes())
        return h.digest()

    @property
    def digest(self) -> bytes:
        return self._digest

    def params(self) -> dict:
        return {"channels": self.channels, "groups": int(self.group_starts.size),
                "rounding": self.rounding, "label": self.label, "hash": self._digest.hex()}

    def _table(self, index: int) -> ans.ChannelTable:
        table = self._tables.get(index)
        if table is None:
            scale = float(table_scale(index))
            width = int(half_width(np.array([scale]))[0])
            table = ans.ChannelTable(discretised_table("laplace", 0.0, scale, width,
                                                       self.rounding), width)
            self._tables[index] = table
        return table

    def rescaled(self, factor: float, side_probabilities: np.ndarray | None = None,
                 label: str | None = None) -> "ContextCodec":
        """The same codec with every step multiplied by ``factor``.

        Predictor, bias and side-latent densities are kept; the table indices move
        by ``−round(R·log2 factor)`` so that each component's Laplace scale stays the
        same in the KLT domain (to within ``1/(2R)`` octave). The reconstruction is
        then a deterministic function of ``factor`` and the fitted model, which is what
        makes the step-scale calibration of :func:`rdgap.codecs.fit.fit_codec`
        (near-)monotone (THEORY.md T7: ΔCE ∝ α²).

        Parameters
        ----------
        factor : float
            Step multiplier (> 0).
        side_probabilities : array, optional
            Replacement side-latent densities (they change the rate only, never the
            reconstruction).
        label : str, optional
            Label of the new codec (default: this codec's).
        """
        if not (np.isfinite(factor) and factor > 0):
            raise ValueError(f"factor: expected a finite step multiplier > 0, got {factor}")
        shift = int(np.rint(SCALE_RESOLUTION * np.log2(factor)))
        arguments = self._constructor_arguments()
        arguments.update(
            step=factor * self.step, first_step=factor * self.first_step,
            base_index=np.clip(self.base_index - shift, MIN_INDEX, MAX_INDEX),
            label=self.label if label is None else label)
        if side_probabilities is not None:
            arguments["side_probabilities"] = side_probabilities
        return type(self)(**arguments)

    def _constructor_arguments(self) -> dict:
        """Keyword arguments that rebuild this codec (subclasses add theirs)."""
        return {**self._arrays(), "rounding": self.rounding, "label": self.label,
                "rdo": self.rdo}

    # -- the causal loop (one implementation: context_loop.CausalLoop) -------------------
    def loop(self, device="cpu", dtype: torch.dtype = torch.float64) -> CausalLoop:
        """The model's causal loop on ``device`` in ``dtype`` (built once per pair); the
        CPU codec runs ``loop()`` (float64 on the CPU), the torch rANS coder its device's."""
        key = (str(torch.device(device)), dtype)
        loop = self._loops.get(key)
        if loop is None:
            loop = self._loops[key] = CausalLoop(self, torch.device(device), dtype)
        return loop

    def _indices(self, side):
        """Table index of every component from the side latents ``(..., G)``, numpy or
        torch (:func:`rdgap.codecs.entropy_models.context_loop.table_indices`)."""
        if isinstance(side, torch.Tensor):
            base, group_of = self._integers.get(side.device, (None, None))
            if base is None:
                base, group_of = self._integers[side.device] = (
                    torch.from_numpy(self.base_index).to(side.device),
                    torch.from_numpy(self.group_of).to(side.device))
            return table_indices(base, group_of, side)
        return table_indices(self.base_index, self.group_of, side)

    def _table_indices(self, side: np.ndarray) -> np.ndarray:
        """Index of the entropy-coding table of every component from the stream's side
        latents; here the reconstruction's index (:meth:`_indices`). A subclass may code
        with other tables (e.g. :mod:`rdgap.codecs.entropy_models.hyperprior`) without changing the
        reconstruction."""
        return self._indices(side)

    def analyse(self, z: np.ndarray, offset: np.ndarray | None = None) -> _Analysis:
        """Run the encoder's causal loop (:meth:`CausalLoop.analyse`, float64 on the CPU)
        on KLT components ``z`` ``(B, T-1, C)``; ``offset`` ``(B, T-1, C)``, if given, is
        added to every prediction ``m_t`` (a mean the decoder knows without decoding,
        e.g. from token ids)."""
        result = self.loop().analyse(torch.from_numpy(np.asarray(z, dtype=np.float64)),
                                     _tensor(offset))
        return _Analysis(result.symbols.numpy(), result.side.numpy(), result.decoded.numpy(),
                         result.residual.numpy())

    def _synthesise(self, symbols: np.ndarray, side: np.ndarray,
                    offset: np.ndarray | None = None) -> np.ndarray:
        """The decoder's causal loop (:meth:`CausalLoop.synthesise`): ``Ẑ`` ``(T-1, C)``
        from symbols and side latents (and the prediction offsets ``(T-1, C)`` the encoder
        used)."""
        return self.loop().synthesise(
            torch.from_numpy(symbols)[None], torch.from_numpy(np.asarray(side))[None],
            None if offset is None else _tensor(offset)[None])[0].numpy()

    def _predict(self, previous: np.ndarray) -> np.ndarray:
        """``m_t = b + W Ẑ_{t−1}`` for a batch ``(B, C)`` of previous decoded tokens."""
        return self.loop().predict(torch.from_numpy(np.asarray(previous, np.float64))).numpy()

    # -- T10: the context model as a differentiable map ------------------------------
    def entropy_network(self, previous: torch.Tensor) -> torch.Tensor:
        """The context model as a torch map (THEORY.md T10), in the coded (KLT) domain.

        The predicted mean ``m_t = b + W Ẑ_{t−1}`` of each token from the previous
        decoded token(s) ``previous`` ``(..., C)``: the same operation as
        :meth:`_predict`, differentiable. It is linear, so its Jacobian is ``W``
        (zero-padded to ``C × C``) at every point and its spectral norm ``‖W‖₂``;
        :func:`rdgap.bounds.jacobian_spectral_norm` estimates it from below.
        """
        weight = torch.as_tensor(self.predictor, dtype=previous.dtype)
        bias = torch.as_tensor(self.bias, dtype=previous.dtype)
        head = previous[..., :self.predicted] @ weight.T
        return bias + torch.cat([head, torch.zeros_like(previous[..., self.predicted:])], -1)

    def entropy_network_inputs(self, hidden: torch.Tensor) -> torch.Tensor:
        """Where :meth:`entropy_network` acts for a window: the previous decoded tokens
        ``Ẑ_{t−1}``, t = 1..T−1 (``Ẑ_0 = 0``), as a float64 ``(T−1, C)`` tensor."""
        _, result, _ = self._code(check_hidden(hidden))
        decoded = np.empty((0, self.channels)) if result is None else result.decoded[0]
        return torch.from_numpy(np.concatenate([np.zeros((1, self.channels)), decoded[:-1]]))

    def _check_width(self, channels: int) -> None:
        if channels != self.channels:
            raise ValueError(f"hidden: expected {self.channels} channels (the codec was fitted "
                             f"on them), got {channels}")

    @one_thread
    def _code(self, hidden: torch.Tensor, offset: np.ndarray | None = None):
        """Position-0 symbols, the loop's :class:`_Analysis` (None for one token) and the
        reconstruction (``offset`` ``(T-1, C)``: see :meth:`analyse`)."""
        self._check_width(hidden.shape[1])
        loop = self.loop()
        x = hidden.to(torch.float64)[None]
        first = loop.first_symbols(x[:, 0])
        if x.shape[1] == 1:
            return first[0].numpy(), None, loop.output(first, None)[0]
        result = self.analyse(loop.to_klt(x[:, 1:]).numpy(),
                              None if offset is None else offset[None])
        return first[0].numpy(), result, loop.output(first, _tensor(result.decoded))[0]

    def reconstruct(self, hidden: torch.Tensor) -> torch.Tensor:
        """What decoding the stream of ``hidden`` returns, without entropy coding."""
        return self._code(check_hidden(hidden))[2]

    # -- what either coder writes: sections of (values, table rows) ---------------------
    # The model's stream is a list of sections; each symbol comes with the row of its
    # section's table list that codes it. The constriction coder (here, one window) and
    # the torch rANS coder (:mod:`rdgap.codecs.coders.torch_context`, many) write the same
    # sections; only the bytes differ (:mod:`rdgap.codecs.coders.sections`).
    def section_tables(self) -> list:
        """Every section's float tables, in stream order: the head (side-latent groups,
        then position 0's channels) and the body (table index ``i`` at row
        ``i − MIN_INDEX``, built on first use)."""
        return [list(self._side_tables) + list(self._first_tables), _IndexTables(self)]

    def section_counts(self, tokens: int) -> list[int]:
        """Symbols in each section of a window of ``tokens`` tokens."""
        rest = tokens - 1
        return [rest * len(self._side_tables) + self.channels, rest * self.channels]

    def head_rows(self, rest: int, batch: int, device="cpu") -> torch.Tensor:
        """Rows ``(batch, rest·S + C)`` of the head: side latent ``(t, g)`` (token-major)
        with row ``g``, then position-0 channel ``j`` with row ``S + j``."""
        width = len(self._side_tables)
        rows = torch.cat([torch.arange(width, device=device).repeat(rest),
                          torch.arange(width, width + self.channels, device=device)])
        return rows.expand(batch, -1)

    def head_values(self, first: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
        """The head's values ``(B, (T−1)·S + C)``: side latents (token-major), then
        position 0's symbols."""
        return torch.cat([side.reshape(side.shape[0], -1), first], 1)

    def body_rows(self, side: torch.Tensor) -> torch.Tensor:
        """Rows ``(B, (T−1)·C)`` of the body from side latents ``(B, T−1, S)``: the table
        indices (:meth:`_table_indices`) less ``MIN_INDEX``."""
        index = self._table_indices(side)
        if not isinstance(index, torch.Tensor):  # a numpy rule (HyperpriorCodec)
            index = torch.from_numpy(np.asarray(index)).to(side.device)
        return (index - MIN_INDEX).reshape(side.shape[0], -1)

    def split_head(self, values: torch.Tensor, rest: int, width: int | None = None):
        """``(side (B, rest, S), first and what follows (B, ·))`` of decoded head values,
        ``S = width`` side latents a token (default: every side table's); raises
        BitstreamError on a side latent no encoder writes."""
        width = len(self._side_tables) if width is None else width
        side = values[:, :rest * width].reshape(values.shape[0], rest, width)
        if side.numel() and bool((side.abs() > GAIN_LIMIT).any()):
            raise BitstreamError("data: a side latent outside its range; the stream is "
                                 "corrupted")
        return side, values[:, rest * width:]

    def sections(self, first: torch.Tensor, side: torch.Tensor, symbols: torch.Tensor,
                 ids: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(values, rows)`` of every section, each ``(B, n)`` int64, for position-0
        symbols ``(B, C)``, side latents ``(B, T−1, S)`` and body symbols ``(B, T−1, C)``."""
        batch, rest = side.shape[:2]
        return [(self.head_values(first, side), self.head_rows(rest, batch, first.device)),
                (symbols.reshape(batch, -1), self.body_rows(side))]

    def section_rows(self, k: int, decoded: list, tokens: int) -> torch.Tensor:
        """Rows of section ``k`` for windows of ``tokens`` tokens, from the sections
        ``decoded`` before it (``(B, n)`` each): what the decoder knows when it reads
        section ``k``."""
        batch = decoded[0].shape[0] if decoded else 1
        if k == 0:
            device = decoded[0].device if decoded else "cpu"
            return self.head_rows(tokens - 1, batch, device)
        return self.body_rows(self.split_head(decoded[0], tokens - 1)[0])

    def symbols_of(self, decoded: list, tokens: int):
        """``(first (B, C), side (B, T−1, S), symbols (B, T−1, C), ids or None)`` of
        decoded sections."""
        side, first = self.split_head(decoded[0], tokens - 1)
        return first, side, decoded[1].reshape(first.shape[0], tokens - 1, self.channels), None

    # -- coding (constriction, one window) ----------------------------------------
    def _sections_of(self, first: np.ndarray, result: _Analysis | None, ids=None):
        rest = 0 if result is None else result.side.shape[1]
        side = torch.zeros((1, rest, len(self._side_tables)), dtype=torch.int64) \
            if result is None else torch.from_numpy(result.side)
        symbols = torch.zeros((1, 0, self.channels), dtype=torch.int64) if result is None \
            else torch.from_numpy(result.symbols)
        return self.sections(torch.from_numpy(first)[None], side, symbols,
                             None if ids is None else torch.from_numpy(ids)[None])

    @one_thread
    def _encode_payload(self, hidden):  # ``hidden`` was checked by encode()
        first, result, _ = self._code(hidden)
        return ans.encode(*grouped_columns(self._sections_of(first, result),
                                           self.section_tables()))

    @one_thread
    def estimate_bits(self, hidden) -> float:
        """``Σ −log2 q`` of the payload: side latents, position 0 and every symbol
        under its table (escaped values at 33 bits each)."""
        first, result, _ = self._code(check_hidden(hidden))
        return ans.estimate_bits(*grouped_columns(self._sections_of(first, result),
                                                  self.section_tables()))

    def _decode_payload(self, stream: Stream):
        self._check_stream(stream)
        return self._decode_body(stream)[0]

    def _check_stream(self, stream: Stream) -> None:
        if stream.shape[1] != self.channels:
            raise BitstreamError(f"data: stream has {stream.shape[1]} channels, the codec "
                                 f"{self.channels}")

    @one_thread
    def _decode_body(self, stream: Stream):
        """Every section of the stream's payload, then the causal loop:
        ``(hidden, ids or None)``."""
        tokens = stream.shape[0]
        decoded = read_grouped(ans.Decoder(stream.payload), self.section_counts(tokens),
                               self.section_tables(),
                               lambda k, done: self.section_rows(k, done, tokens),
                               8 * len(stream.payload))
        first, side, symbols, ids = self.symbols_of(decoded, tokens)
        loop = self.loop()
        offset = self._decoder_offsets(ids, tokens)
        body = loop.synthesise(symbols, side, offset) if tokens > 1 else None
        return loop.output(first, body)[0], ids

    def _decoder_offsets(self, ids, tokens: int):
        """The prediction offsets the decoder forms from decoded ids (none here)."""
        return None

    # -- persistence -------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``config.json`` and ``tensors.safetensors`` into ``folder``."""
        return persist.write(folder, self._arrays(), {
            "rdgap_codec": "context", "format_version": FORMAT_VERSION,
            "rounding": self.rounding, "label": self.label, "channels": self.channels,
            "rdo": self.rdo, "hash": self._digest.hex()})

    @classmethod
    def load(cls, folder: str | Path) -> "ContextCodec":
        """Load a codec written by :meth:`save`; checks its version and hash."""
        names = _FLOAT_ARRAYS + _INT_ARRAYS
        config, arrays = persist.read(folder, "context", FORMAT_VERSION, names, cls.__name__)
        codec = cls(**{n: arrays[n] for n in names}, rounding=config["rounding"],
                    label=config.get("label", ""), rdo=config.get("rdo", 0.0))
        persist.check_hash(codec, config, folder)
        return codec


class _IndexTables:
    """The body's tables as a lazy sequence: row ``r`` is table index ``MIN_INDEX + r``."""

    def __init__(self, model: ContextCodec):
        self.model = model

    def __len__(self) -> int:
        return MAX_INDEX - MIN_INDEX + 1

    def __getitem__(self, row: int) -> ans.ChannelTable:
        if not 0 <= row < len(self):
            raise IndexError(row)
        return self.model._table(MIN_INDEX + int(row))


def _tensor(array: np.ndarray | None) -> torch.Tensor | None:
    return None if array is None else torch.from_numpy(np.asarray(array, dtype=np.float64))


def _array(values, shape: tuple, name: str, positive: bool = False) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {array.shape}")
    if not np.all(np.isfinite(array)) or (positive and not np.all(array > 0)):
        raise ValueError(f"{name}: expected finite{' positive' if positive else ''} values")
    return array
