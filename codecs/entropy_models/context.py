"""A joint entropy model: causal context over tokens plus a per-token scale hyperprior.

Length (≈500 lines): one class, ContextCodec, whose encoder and decoder must stay
side by side (the causal loop, table indices and centroid reconstruction are shared
by both and must agree bit for bit); its fit lives in ``context_fit.py``.

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
from ..quantizers import deadzone, uniform
from ..quantizers.deadzone import centroid_offset, rdo_symbols  # noqa: F401 (public here too)
from .factorized import build_tables
from .tables import discretised_table, half_width

FORMAT_VERSION = 1
#: Table indices per octave of scale.
SCALE_RESOLUTION = 4
#: Table indices per side-latent step (so h = GAIN_STEP / SCALE_RESOLUTION octaves).
GAIN_STEP = 2
#: Side latents are clipped to ``-GAIN_LIMIT..GAIN_LIMIT``.
GAIN_LIMIT = 12
#: Range of table indices: scales 2^-12 .. 2^14 steps.
MIN_INDEX, MAX_INDEX = -12 * SCALE_RESOLUTION, 14 * SCALE_RESOLUTION
_FLOAT_ARRAYS = ("mean", "analysis", "synthesis", "step", "predictor", "bias",
                 "side_probabilities", "first_mean", "first_scale", "first_step")
_INT_ARRAYS = ("base_index", "group_starts")


def table_scale(index: np.ndarray) -> np.ndarray:
    """Laplace scale (in steps) of table ``index``: ``2^{index / SCALE_RESOLUTION}``."""
    return np.exp2(np.asarray(index, dtype=np.float64) / SCALE_RESOLUTION)


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

    # -- the causal loop ---------------------------------------------------------
    def _indices(self, side: np.ndarray) -> np.ndarray:
        """Table index of every component from the side latents ``(..., G)``."""
        index = self.base_index + GAIN_STEP * side[..., self.group_of]
        return np.minimum(np.maximum(index, MIN_INDEX), MAX_INDEX)

    def _table_indices(self, side: np.ndarray) -> np.ndarray:
        """Index of the entropy-coding table of every component from the stream's side
        latents; here the reconstruction's index (:meth:`_indices`). A subclass may code
        with other tables (e.g. :mod:`rdgap.codecs.entropy_models.hyperprior`) without changing the
        reconstruction."""
        return self._indices(side)

    def _dequantize_step(self, symbols: np.ndarray, index: np.ndarray) -> np.ndarray:
        """``x̂`` in steps: 0, or ``sign(S)(|S| − offset)`` at the centroid of the cell
        under table ``index``'s Laplace law (:func:`deadzone.dequantize`)."""
        return deadzone.dequantize(symbols, self._offsets[index - MIN_INDEX])

    def analyse(self, z: np.ndarray, offset: np.ndarray | None = None) -> _Analysis:
        """Run the encoder's causal loop on KLT components ``z`` ``(B, T-1, C)``;
        ``offset`` ``(B, T-1, C)``, if given, is added to every prediction ``m_t`` (a
        mean the decoder knows without decoding, e.g. from token ids)."""
        batch, tokens, channels = z.shape
        symbols = np.empty(z.shape, dtype=np.int64)
        decoded = np.empty(z.shape)
        residual = np.empty(z.shape)
        side = np.empty((batch, tokens, self.group_starts.size), dtype=np.int64)
        base = table_scale(self.base_index)
        previous = np.zeros((batch, channels))
        for t in range(tokens):
            prediction = self._predict(previous)
            if offset is not None:
                prediction += offset[:, t]
            r = z[:, t] - prediction
            x = r / self.step
            gain = np.add.reduceat(np.abs(x) / base, self.group_starts, axis=1) \
                / np.diff(np.append(self.group_starts, channels))
            k = np.rint(np.log2(np.maximum(gain, 1e-300)) * SCALE_RESOLUTION / GAIN_STEP)
            side[:, t] = np.minimum(np.maximum(k, -GAIN_LIMIT), GAIN_LIMIT)
            s = deadzone.quantize(x, self.rounding)
            index = self._indices(side[:, t])
            if self.rdo > 0:
                s = deadzone.rdo_symbols(x, s, table_scale(index),
                                         self._offsets[index - MIN_INDEX], self.rounding,
                                         self.rdo)
            uniform.check_range(s, ans.MAX_MAGNITUDE, "its prediction")
            symbols[:, t] = s
            previous = prediction + self.step * self._dequantize_step(
                symbols[:, t], index)  # decoder: _synthesise
            decoded[:, t] = previous
            residual[:, t] = r
        return _Analysis(symbols, side, decoded, residual)

    def _synthesise(self, symbols: np.ndarray, side: np.ndarray,
                    offset: np.ndarray | None = None) -> np.ndarray:
        """The decoder's causal loop: ``Ẑ`` ``(T-1, C)`` from symbols and side latents
        (and the prediction offsets ``(T-1, C)`` the encoder used)."""
        tokens, channels = symbols.shape
        steps = self.step * self._dequantize_step(symbols, self._indices(side))
        decoded = np.empty(symbols.shape)
        previous = np.zeros((1, channels))
        for t in range(tokens):  # the same operations as analyse() with a batch of one
            prediction = self._predict(previous)
            if offset is not None:
                prediction += offset[None, t]
            previous = prediction + steps[t]
            decoded[t] = previous[0]
        return decoded

    def _predict(self, previous: np.ndarray) -> np.ndarray:
        """``m_t = b + W Ẑ_{t−1}`` for a batch ``(B, C)`` of previous decoded tokens
        (einsum: no BLAS threads, the same operations for every batch size)."""
        prediction = np.repeat(self.bias[None], previous.shape[0], axis=0)
        p = self.predicted
        prediction[:, :p] += np.einsum("bi,oi->bo", previous[:, :p], self.predictor)
        return prediction

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

    def _to_klt(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) @ self.analysis.T

    def _first(self, x0: np.ndarray) -> np.ndarray:
        return uniform.quantize(x0 - self.first_mean, self.first_step, ans.MAX_MAGNITUDE,
                                "its position-0 mean")

    def _output(self, first: np.ndarray, decoded: np.ndarray | None) -> torch.Tensor:
        out = np.empty((1 + (0 if decoded is None else decoded.shape[0]), self.channels))
        out[0] = self.first_mean + uniform.dequantize(first, self.first_step)
        if decoded is not None:
            out[1:] = self.mean + decoded @ self.synthesis.T
        return torch.from_numpy(out.astype(np.float32))

    def _check_width(self, channels: int) -> None:
        if channels != self.channels:
            raise ValueError(f"hidden: expected {self.channels} channels (the codec was fitted "
                             f"on them), got {channels}")

    def _code(self, hidden: torch.Tensor, offset: np.ndarray | None = None):
        """Symbols, side latents, decoded KLT components and the reconstruction
        (``offset`` ``(T-1, C)``: see :meth:`analyse`)."""
        x = hidden.numpy().astype(np.float64)
        self._check_width(x.shape[1])
        first = self._first(x[0])
        if x.shape[0] == 1:
            return first, None, self._output(first, None)
        result = self.analyse(self._to_klt(x[1:])[None],
                              None if offset is None else offset[None])
        return first, result, self._output(first, result.decoded[0])

    def reconstruct(self, hidden: torch.Tensor) -> torch.Tensor:
        """What decoding the stream of ``hidden`` returns, without entropy coding."""
        return self._code(check_hidden(hidden))[2]

    # -- coding ------------------------------------------------------------------
    def _columns(self, first: np.ndarray, result: _Analysis | None):
        columns = []
        tables = []
        if result is not None:
            side = result.side[0]
            columns += [np.ascontiguousarray(side[:, g]) for g in range(side.shape[1])]
            tables += self._side_tables
        columns += [first[j:j + 1] for j in range(self.channels)]
        tables += self._first_tables
        if result is not None:
            flat_index = self._table_indices(result.side[0]).ravel()
            order = _group_order(flat_index)
            values, starts = np.unique(flat_index[order], return_index=True)
            flat = result.symbols[0].ravel()[order]
            columns += np.split(flat, starts[1:])
            tables += [self._table(int(i)) for i in values]
        return columns, tables

    def _encode_payload(self, hidden):  # ``hidden`` was checked by encode()
        first, result, _ = self._code(hidden)
        return ans.encode(*self._columns(first, result))

    def estimate_bits(self, hidden) -> float:
        """``Σ −log2 q`` of the payload: side latents, position 0 and every symbol
        under its table (escaped values at 33 bits each)."""
        first, result, _ = self._code(check_hidden(hidden))
        return ans.estimate_bits(*self._columns(first, result))

    def _decode_payload(self, stream: Stream):
        self._check_stream(stream)
        return self._decode_body(ans.Decoder(stream.payload), stream.shape[0])

    def _check_stream(self, stream: Stream) -> None:
        if stream.shape[1] != self.channels:
            raise BitstreamError(f"data: stream has {stream.shape[1]} channels, the codec "
                                 f"{self.channels}")

    def _decode_body(self, decoder: ans.Decoder, tokens: int,
                     offset: np.ndarray | None = None) -> torch.Tensor:
        """Side latents, position 0 and the grouped symbols from ``decoder``, then the
        causal loop (with the prediction ``offset`` the encoder used)."""
        channels = self.channels
        groups = len(self._side_tables)
        side = None
        if tokens > 1:
            side = np.stack(decoder.columns([tokens - 1] * groups, self._side_tables), axis=1)
            if np.abs(side).max() > GAIN_LIMIT:
                raise BitstreamError("data: a side latent outside its range; the stream is "
                                     "corrupted")
        first_columns = decoder.columns([1] * channels, self._first_tables)
        rest = None
        if tokens > 1:
            flat_index = self._table_indices(side).ravel()
            order = _group_order(flat_index)
            values, counts = np.unique(flat_index[order], return_counts=True)
            rest = decoder.columns(counts.tolist(), [self._table(int(i)) for i in values])
        decoder.finish()
        first = np.concatenate(first_columns)
        if rest is None:
            return self._output(first, None)
        symbols = np.empty(flat_index.shape, dtype=np.int64)
        symbols[order] = np.concatenate(rest)
        symbols = symbols.reshape(tokens - 1, channels)
        return self._output(first, self._synthesise(symbols, side, offset))

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


def _group_order(index: np.ndarray) -> np.ndarray:
    """Stable order of symbols by table index (a radix sort on 16-bit keys)."""
    return np.argsort(index.astype(np.int16), kind="stable")


def _array(values, shape: tuple, name: str, positive: bool = False) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {array.shape}")
    if not np.all(np.isfinite(array)) or (positive and not np.all(array > 0)):
        raise ValueError(f"{name}: expected finite{' positive' if positive else ''} values")
    return array
