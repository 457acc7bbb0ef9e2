"""The factorized reference codec: per-channel steps, per-channel densities, ANS bytes.

Quantization
    ``S_tj = round((Y_tj − μ_j) / Δ_j)``, reconstruction ``Ŷ_tj = μ_j + Δ_j S_tj``
    (the uniform quantizer of :mod:`rdgap.codecs.quantizers.uniform`).
Entropy model
    channel ``j`` is a discretised Gaussian or Laplace density with scale
    ``σ_j / Δ_j`` (THEORY.md T3 names this family ``V_G`` when Gaussian), coded
    with :mod:`rdgap.codecs.coders.ans`.
RDOQ (optional, encoder only)
    ``rdoq = c > 0`` writes, per symbol, the level among round-to-nearest, one level
    toward zero and zero that minimises ``(x − k)² + c·(−log2 q(k))`` under the
    symbol's own table (:mod:`rdgap.codecs.quantizers.rdoq`); the stream format, hash
    and decoder are the plain codec's.
Transform (optional)
    positions ≥ 1 may first go through a linear analysis transform ``A``
    (the Fisher-whitened KLT of :mod:`rdgap.codecs.transforms.klt`): symbols are
    ``round(A (Y − μ) / Δ)`` per component, reconstruction ``μ + A⁻¹ Δ S``.
First position
    The first token of every stream is modelled on its own (its own ``μ``,
    ``σ`` and ``Δ``): causal LMs put a "massive activation" on position 0
    (SmolLM2: one channel near 2.5·10⁴ while its spread elsewhere is ~30).
    Statistics that mix it with the other positions waste bits on every token
    and steps sized for the others destroy it. A stream therefore must start at
    sequence position 0 (one stream per window or sequence).

One stream codes all tokens of a window, so the per-stream overhead of T2 is
paid once per window, not once per token.
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
from ..quantizers import rdoq as rdoq_quantizer
from ..quantizers import uniform
from .model_fit import ModelFit
from .tables import FAMILIES, discretised_table, half_width

FORMAT_VERSION = 1
_ARRAYS = ("mean", "scale", "step", "first_mean", "first_scale", "first_step")


@dataclass
class ChannelStatistics:
    """Per-channel location and scale of hidden states, for positions ≥ 1 and position 0."""

    mean: np.ndarray
    scale: np.ndarray
    first_mean: np.ndarray
    first_scale: np.ndarray

    @classmethod
    def fit(cls, windows: torch.Tensor, family: str = "gaussian",
            analysis: np.ndarray | None = None) -> "ChannelStatistics":
        """Statistics of fit windows ``(windows, tokens, channels)``.

        Gaussian: mean and standard deviation. Laplace: median and mean absolute
        deviation from it (the maximum-likelihood estimates of each family).
        With an ``analysis`` matrix ``A``, positions ≥ 1 are centred by their
        mean and ``scale`` is that of the components ``Z = A (Y − mean)``.
        """
        if family not in FAMILIES:
            raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")
        if not isinstance(windows, torch.Tensor) or windows.dim() != 3 or windows.shape[1] < 2:
            raise ValueError("windows: expected hidden states (windows, tokens ≥ 2, channels), "
                             f"got {tuple(getattr(windows, 'shape', ()))}")
        data = windows.detach().double().numpy()
        rest = data[:, 1:, :].reshape(-1, data.shape[2])
        first = data[:, 0, :]

        def location_scale(x, centre=None):
            if centre is not None:
                return centre, (np.abs(x).mean(0) if family == "laplace" else
                                np.sqrt((x ** 2).mean(0)))
            if family == "gaussian":
                return x.mean(0), x.std(0)
            median = np.median(x, 0)
            return median, np.abs(x - median).mean(0)

        if analysis is None:
            mean, scale = location_scale(rest)
        else:
            mean = rest.mean(0)
            _, scale = location_scale((rest - mean) @ np.asarray(analysis).T, centre=mean)
        first_mean, first_scale = location_scale(first)
        # A floor keeps every table proper when a channel is (nearly) constant.
        floor = 1e-6 * max(float(np.median(scale)), 1e-12)
        first_floor = 1e-6 * max(float(np.median(first_scale)), 1e-12)
        return cls(mean, np.maximum(scale, floor), first_mean,
                   np.maximum(first_scale, first_floor))


class FactorizedCodec(HiddenStateCodec):
    """Per-channel uniform quantization with a factorized discretised density.

    Parameters
    ----------
    statistics : ChannelStatistics
        Fitted location and scale per channel.
    step, first_step : array of float
        Quantization steps ``Δ_j`` for positions ≥ 1 and for position 0.
    family : {"gaussian", "laplace"}
        The density of each channel.
    label : str
        Free text saved with the codec (how the steps were chosen).
    analysis, synthesis : (channels, channels) arrays, optional
        A linear transform for positions ≥ 1: symbols are
        ``round(A (Y − μ) / Δ)`` and the reconstruction ``μ + A^{-1} Δ S``
        (see :mod:`rdgap.codecs.transforms.klt`); ``statistics.scale`` is then the
        scale of the transformed components.
    rdoq : float
        Encoder-only rate–distortion optimised quantization with weight ``c ≥ 0`` in
        squared steps per bit (:mod:`rdgap.codecs.quantizers.rdoq`; ``λ = c·Δ²``).
        ``0`` (default): round to the nearest level. Not part of the parameter hash: a
        codec that differs only in ``rdoq`` decodes the same streams.
    """

    def __init__(self, statistics: ChannelStatistics, step, first_step,
                 family: str = "gaussian", label: str = "",
                 analysis: np.ndarray | None = None, synthesis: np.ndarray | None = None,
                 rdoq: float = 0.0):
        if family not in FAMILIES:
            raise ValueError(f"family: expected one of {FAMILIES}, got {family!r}")
        channels = statistics.mean.shape[0]
        self.step = _positive(step, channels, "step")
        self.first_step = _positive(first_step, channels, "first_step")
        self.stats = statistics
        self.family = family
        self.label = label
        self.channels = channels
        if (analysis is None) != (synthesis is None):
            raise ValueError("analysis, synthesis: give both matrices of the transform or neither")
        if analysis is not None:
            analysis = np.asarray(analysis, dtype=np.float64)
            synthesis = np.asarray(synthesis, dtype=np.float64)
            if analysis.shape != (channels, channels) or synthesis.shape != (channels, channels):
                raise ValueError(f"analysis, synthesis: expected ({channels}, {channels}) "
                                 f"matrices, got {analysis.shape} and {synthesis.shape}")
        self.analysis, self.synthesis = analysis, synthesis
        self.rdoq = rdoq_quantizer.check_weight(rdoq)
        self.codec_id = f"{'transform' if analysis is not None else 'factorized'}-{family}"
        self._tables = self._build(statistics.scale / self.step)
        self._first_tables = self._build(statistics.first_scale / self.first_step)
        self._digest = self._hash()

    # -- tables and identity -------------------------------------------------
    def _build(self, scales: np.ndarray) -> list[ans.ChannelTable]:
        return build_tables(self.family, scales)

    def _arrays(self) -> dict[str, np.ndarray]:
        s = self.stats
        arrays = {"mean": s.mean, "scale": s.scale, "step": self.step,
                  "first_mean": s.first_mean, "first_scale": s.first_scale,
                  "first_step": self.first_step}
        if self.analysis is not None:
            arrays |= {"analysis": self.analysis, "synthesis": self.synthesis}
        return arrays

    def _hash(self) -> bytes:
        h = hashlib.blake2b(digest_size=8)
        h.update(json.dumps({"family": self.family, "version": FORMAT_VERSION,
                             "codec": self.codec_id}).encode())
        for name, array in self._arrays().items():
            h.update(name.encode())
            h.update(np.ascontiguousarray(array, dtype="<f8").tobytes())
        return h.digest()

    @property
    def digest(self) -> bytes:
        return self._digest

    def params(self) -> dict:
        extra = {"rdoq": self.rdoq} if self.rdoq else {}
        return {"family": self.family, "channels": self.channels, "label": self.label,
                "hash": self._digest.hex()} | extra

    # -- quantization ----------------------------------------------------------
    def quantize(self, hidden: torch.Tensor) -> np.ndarray:
        """Integer symbols ``(tokens, channels)`` of a window (int64)."""
        return self._quantize(check_hidden(hidden))

    def _quantize(self, hidden: torch.Tensor) -> np.ndarray:
        x = hidden.numpy().astype(np.float64)
        self._check_width(x.shape[1])
        symbols = np.empty(x.shape, dtype=np.int64)
        origin = "its channel mean"
        symbols[0] = uniform.quantize(x[0] - self.stats.first_mean, self.first_step,
                                      ans.MAX_MAGNITUDE, origin)
        rest = x[1:] - self.stats.mean
        if self.analysis is not None:
            rest = rest @ self.analysis.T
        symbols[1:] = uniform.quantize(rest, self.step, ans.MAX_MAGNITUDE, origin)
        if self.rdoq > 0:  # encoder only: the levels the tables make cheaper
            symbols[0] = rdoq_quantizer.quantize_columns(
                ((x[0] - self.stats.first_mean) / self.first_step)[None], symbols[:1],
                self._first_tables, self.rdoq)[0]
            if x.shape[0] > 1:
                symbols[1:] = rdoq_quantizer.quantize_columns(rest / self.step, symbols[1:],
                                                              self._tables, self.rdoq)
        return symbols

    def dequantize(self, symbols: np.ndarray) -> torch.Tensor:
        """Reconstruction ``μ + Δ·S`` (float32)."""
        tokens = symbols.shape[0]
        out = np.empty(symbols.shape, dtype=np.float64)
        out[0] = self.stats.first_mean + uniform.dequantize(symbols[0], self.first_step)
        if tokens > 1:
            rest = uniform.dequantize(symbols[1:], self.step)
            if self.synthesis is not None:
                rest = rest @ self.synthesis.T
            out[1:] = self.stats.mean + rest
        return torch.from_numpy(out.astype(np.float32))

    def reconstruct(self, hidden: torch.Tensor) -> torch.Tensor:
        """What decoding the stream of ``hidden`` returns, without entropy coding."""
        return self.dequantize(self.quantize(hidden))

    def _check_width(self, channels: int) -> None:
        if channels != self.channels:
            raise ValueError(f"hidden: expected {self.channels} channels (the codec was fitted "
                             f"on them), got {channels}")

    # -- coding ----------------------------------------------------------------
    def _columns(self, symbols: np.ndarray):
        columns = [symbols[0:1, j] for j in range(self.channels)]
        tables = list(self._first_tables)
        if symbols.shape[0] > 1:
            columns += [np.ascontiguousarray(symbols[1:, j]) for j in range(self.channels)]
            tables += self._tables
        return columns, tables

    def _encode_payload(self, hidden):  # ``hidden`` was checked by encode()
        return ans.encode(*self._columns(self._quantize(hidden)))

    def _decode_payload(self, stream: Stream):
        tokens, channels = stream.shape
        if channels != self.channels:
            raise BitstreamError(f"data: stream has {channels} channels, the codec {self.channels}")
        lengths = [1] * channels + ([tokens - 1] * channels if tokens > 1 else [])
        tables = self._first_tables + (self._tables if tokens > 1 else [])
        columns = ans.decode(stream.payload, lengths, tables)
        symbols = np.empty((tokens, channels), dtype=np.int64)
        symbols[0] = np.concatenate(columns[:channels])
        if tokens > 1:
            symbols[1:] = np.stack(columns[channels:], axis=1)
        return self.dequantize(symbols)

    def estimate_bits(self, hidden) -> float:
        """``Σ −log2 q(s)`` of the payload (escape values at 33 bits each)."""
        return ans.estimate_bits(*self._columns(self.quantize(hidden)))

    # -- persistence -----------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``config.json`` and ``tensors.safetensors`` into ``folder``."""
        return persist.write(folder, self._arrays(), {
            "rdgap_codec": "factorized", "format_version": FORMAT_VERSION,
            "family": self.family, "label": self.label, "channels": self.channels,
            "transform": self.analysis is not None, "hash": self._digest.hex()}
            | ({"rdoq": self.rdoq} if self.rdoq else {}))

    @classmethod
    def load(cls, folder: str | Path) -> "FactorizedCodec":
        """Load a codec written by :meth:`save`; checks its version and hash."""
        config, arrays = persist.read(folder, "factorized", FORMAT_VERSION, _ARRAYS,
                                      "FactorizedCodec")
        stats = ChannelStatistics(arrays["mean"], arrays["scale"], arrays["first_mean"],
                                  arrays["first_scale"])
        codec = cls(stats, arrays["step"], arrays["first_step"], config["family"],
                    config.get("label", ""), arrays.get("analysis"), arrays.get("synthesis"),
                    rdoq=config.get("rdoq", 0.0))
        persist.check_hash(codec, config, folder)
        return codec


def build_tables(family: str, scales: np.ndarray) -> list[ans.ChannelTable]:
    """One zero-mean discretised table per channel, ``scales`` in quantization steps."""
    widths = half_width(scales)
    return [ans.ChannelTable(discretised_table(family, 0.0, float(s), int(w)), int(w))
            for s, w in zip(scales, widths)]


def _positive(values, channels: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (channels,):
        raise ValueError(f"{name}: expected {channels} per-channel values, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or not np.all(array > 0):
        raise ValueError(f"{name}: expected finite positive steps")
    return array


def fit_model(start, context, input_ids=None, rdoq: float = 0.0) -> ModelFit:
    """The ``gaussian`` / ``laplace`` entropy models at a fit start: the statistics'
    family per channel (position 0 its own), nothing more to fit; the pipeline's
    interface (:mod:`rdgap.codecs.entropy_models.model_fit`). ``rdoq``: the encoder's
    RDOQ weight ``c`` (:mod:`rdgap.codecs.quantizers.rdoq`; 0: round to nearest), kept at
    every scale the calibration tries. ``context`` and ``input_ids`` are unused."""
    analysis = synthesis = None
    if start.transform is not None:
        analysis, synthesis = start.transform.analysis, start.transform.synthesis
    return ModelFit(lambda alpha: FactorizedCodec(
        start.stats, alpha * start.step, alpha * start.first_step, start.family,
        label=f"{start.label} scale={alpha:.6g}", analysis=analysis, synthesis=synthesis,
        rdoq=rdoq))
