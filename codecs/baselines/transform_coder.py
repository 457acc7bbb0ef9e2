"""A training-free transform coder in the style of KVTC: PCA, DP bit allocation, zstd.

KVTC (Staniszewski et al., "KV cache transform coding", 2025) compresses key/value
caches without training: a PCA basis fitted on calibration data, a
dynamic-programming allocation of bits to the principal components under a total
budget (components may get 0 bits: dropped), uniform quantization of each
component with its bit width, then a lossless coder (DEFLATE there; zstd here, the
project's lossless coder). Attention-sink tokens are kept in 16-bit floats: here the
first :attr:`TransformCoder.sinks` token(s) of each window (default 1), which costs
``16 · channels`` bits per window, counted in the rate. KVTC's uncompressed window
of recent tokens is not kept (it would be half of a 256-token window in fp16).

**Knob**: the budget ``bits_per_token`` (bits per non-sink token before zstd).
:func:`fit_transform_coder` fits the basis and measures the table ``D[i, b]`` (mean
squared error of component ``i`` at ``b`` bits on the fit tokens) once;
:meth:`TransformFit.at_budget` returns the codec of a budget, its bits chosen by
:func:`allocate_bits`, which minimises ``Σ_i D[i, b_i]`` subject to
``Σ_i b_i ≤ budget`` exactly (a knapsack over components, ``O(C · budget · B_max)``).

Quantizer of component ``i`` at ``b ≥ 1`` bits: ``2^b`` cells of width
``Δ_i = 2 r_i / 2^b`` over ``[−r_i, r_i]`` (``r_i`` the largest ``|coefficient|`` on the
fit tokens), reconstruction at the cell centre, values outside clipped to the end
cells. **Theorem**: a coefficient with ``|c| ≤ r_i`` is reconstructed within
``Δ_i / 2``; a 0-bit component is reconstructed as the fit mean. The basis is
orthonormal, so the squared error of a token is the sum of its coefficients' errors.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from ..base import HiddenStateCodec
from ..coders.container import BitstreamError, Stream
from .simple import FP16_MAX, zstd_compress, zstd_payload

#: Most bits one component may get (symbols of more than 8 bits take two bytes).
MAX_BITS = 12
ZSTD_LEVEL = 19


def allocate_bits(table: np.ndarray, budget: int) -> np.ndarray:
    """Bits ``b_i`` minimising ``Σ_i table[i, b_i]`` subject to ``Σ_i b_i ≤ budget``.

    Exact dynamic programming over components: ``best_i(β)`` is the least distortion
    of components ``0..i`` with at most ``β`` bits, ``best_i(β) = min_b best_{i−1}(β − b)
    + table[i, b]``; the choice is traced back from ``β = budget``.

    Parameters
    ----------
    table : (C, L) array
        ``table[i, b]``: distortion of component ``i`` at ``b`` bits, ``b = 0..L−1``.
    budget : int
        Total bits (≥ 0).

    Returns
    -------
    (C,) int array
    """
    table = np.asarray(table, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] < 1 or not np.isfinite(table).all():
        raise ValueError(f"table: expected a finite (components, bits + 1) array, got shape "
                         f"{table.shape}")
    if int(budget) != budget or budget < 0:
        raise ValueError(f"budget: expected an integer ≥ 0, got {budget!r}")
    budget = int(budget)
    components, widths = table.shape
    best = np.zeros(budget + 1)  # no component yet: distortion 0 at every budget
    choice = np.zeros((components, budget + 1), dtype=np.int16)
    for i in range(components):
        new = np.full(budget + 1, np.inf)
        for b in range(min(widths, budget + 1)):
            candidate = np.full(budget + 1, np.inf)
            candidate[b:] = best[:budget + 1 - b] + table[i, b]
            better = candidate < new
            new[better] = candidate[better]
            choice[i, better] = b
        best = new
    bits = np.zeros(components, dtype=np.int64)
    left = budget
    for i in range(components - 1, -1, -1):
        bits[i] = choice[i, left]
        left -= bits[i]
    return bits


def _quantize(coefficients: np.ndarray, ranges: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Cell indices ``(tokens, C)`` of every coefficient (0 where a component has no bits)."""
    cells = np.exp2(bits).astype(np.float64)
    width = 2.0 * ranges / cells
    safe = np.where(width > 0, width, 1.0)
    index = np.floor((coefficients + ranges) / safe)
    return np.clip(index, 0, cells - 1).astype(np.int64) * (bits > 0)


def _dequantize(index: np.ndarray, ranges: np.ndarray, bits: np.ndarray) -> np.ndarray:
    width = 2.0 * ranges / np.exp2(bits)
    return np.where(bits > 0, -ranges + (index + 0.5) * width, 0.0)


@dataclass(frozen=True)
class TransformFit:
    """The fitted PCA and its distortion table; :meth:`at_budget` gives a codec.

    Attributes
    ----------
    mean : (C,) array
    basis : (C, C) array
        Orthonormal principal directions in columns, by decreasing variance.
    ranges : (C,) array
        ``r_i``: largest ``|coefficient|`` of each component on the fit tokens.
    table : (C, MAX_BITS + 1) array
        Mean squared error of each component at 0..MAX_BITS bits on the fit tokens.
    sinks : int
        Leading tokens of each window kept in float16.
    """

    mean: np.ndarray
    basis: np.ndarray
    ranges: np.ndarray
    table: np.ndarray
    sinks: int

    def at_budget(self, bits_per_token: int) -> "TransformCoder":
        """The codec whose components share ``bits_per_token`` bits (before zstd)."""
        limit = MAX_BITS * len(self.mean)
        if int(bits_per_token) != bits_per_token or not 0 <= bits_per_token <= limit:
            raise ValueError(f"bits_per_token: expected an integer in 0..{limit}, got "
                             f"{bits_per_token!r}")
        return TransformCoder(self, allocate_bits(self.table, int(bits_per_token)))


def fit_transform_coder(hidden: torch.Tensor, sinks: int = 1) -> TransformFit:
    """PCA, ranges and distortion table from fit windows ``(windows, tokens, C)``.

    The first ``sinks`` tokens of every window are left out (they are sent in float16).
    """
    hidden = torch.as_tensor(hidden)
    if hidden.dim() != 3 or hidden.shape[1] <= sinks or hidden.shape[2] < 1:
        raise ValueError(f"hidden: expected fit windows (windows, tokens > sinks={sinks}, "
                         f"channels), got shape {tuple(hidden.shape)}")
    if sinks < 0:
        raise ValueError(f"sinks: expected ≥ 0, got {sinks}")
    rows = hidden[:, sinks:].reshape(-1, hidden.shape[2]).double().numpy()
    mean = rows.mean(axis=0)
    centred = rows - mean
    variance, vectors = np.linalg.eigh(centred.T @ centred / len(rows))
    basis = vectors[:, ::-1].copy()
    coefficients = centred @ basis
    ranges = np.abs(coefficients).max(axis=0)
    table = np.empty((len(mean), MAX_BITS + 1))
    for b in range(MAX_BITS + 1):
        bits = np.full(len(mean), b)
        error = coefficients - _dequantize(_quantize(coefficients, ranges, bits), ranges, bits)
        table[:, b] = np.mean(error ** 2, axis=0)
    return TransformFit(mean, basis, ranges, table, sinks)


class TransformCoder(HiddenStateCodec):
    """KVTC-style coder at one bit allocation (build it with :meth:`TransformFit.at_budget`).

    Payload: the sink tokens as float16, then one zstd frame of the cell indices,
    component by component (one byte per index for components of ≤ 8 bits, two
    little-endian bytes above).
    """

    codec_id = "kvtc"

    def __init__(self, fit: TransformFit, bits: np.ndarray):
        bits = np.asarray(bits, dtype=np.int64)
        if bits.shape != fit.mean.shape or bits.min() < 0 or bits.max() > MAX_BITS:
            raise ValueError(f"bits: expected {len(fit.mean)} widths in 0..{MAX_BITS}")
        self.fit, self.bits = fit, bits
        self.kept = np.flatnonzero(bits > 0)
        self.widths = np.where(bits[self.kept] > 8, 2, 1)
        self.budget = int(bits.sum())
        digest = hashlib.blake2b(digest_size=16)
        for array in (fit.mean, fit.basis, fit.ranges):
            digest.update(np.ascontiguousarray(array, dtype="<f8").tobytes())
        self._tables = digest.hexdigest()

    @property
    def channels(self) -> int:
        return len(self.fit.mean)

    def params(self):
        return {"sinks": self.fit.sinks, "bits": self.bits.tolist(), "tables": self._tables}

    def _indices(self, hidden: np.ndarray) -> np.ndarray:
        coefficients = (hidden.astype(np.float64) - self.fit.mean) @ self.fit.basis
        return _quantize(coefficients, self.fit.ranges, self.bits)

    def _values(self, index: np.ndarray) -> np.ndarray:
        coefficients = _dequantize(index, self.fit.ranges, self.bits)
        return (coefficients @ self.fit.basis.T + self.fit.mean).astype(np.float32)

    def _check_channels(self, channels: int, error=ValueError, name="hidden") -> None:
        if channels != self.channels:
            raise error(f"{name}: {channels} channels, this coder was fitted on "
                        f"{self.channels}; fit it on states of this width")

    def _encode_payload(self, hidden):
        values = hidden.numpy()
        self._check_channels(values.shape[1])
        sinks = min(self.fit.sinks, len(values))
        if sinks and np.abs(values[:sinks]).max() > FP16_MAX:
            raise ValueError(f"hidden: a sink token exceeds the float16 range ({FP16_MAX:.0f})")
        head = values[:sinks].astype("<f2").tobytes()
        if sinks == len(values):
            return head
        index = self._indices(values[sinks:])[:, self.kept]
        parts = [index[:, j].astype("<u2" if w == 2 else np.uint8).tobytes()
                 for j, w in enumerate(self.widths)]
        return head + zstd_compress(b"".join(parts), ZSTD_LEVEL)

    def _decode_payload(self, stream):
        tokens, channels = stream.shape
        self._check_channels(channels, BitstreamError, "data")
        sinks = min(self.fit.sinks, tokens)
        head = 2 * sinks * channels
        if len(stream.payload) < head:
            raise BitstreamError(f"data: payload of {len(stream.payload)} bytes is shorter than "
                                 f"the {head} bytes of its float16 sink tokens")
        sink_values = np.frombuffer(stream.payload, dtype="<f2", count=sinks * channels)
        sink_values = sink_values.reshape(sinks, channels).astype(np.float32)
        if not np.isfinite(sink_values).all():
            raise BitstreamError("data: a float16 sink value is NaN or Inf; the stream is "
                                 "corrupted")
        rest = tokens - sinks
        if rest == 0:
            self._expect_payload(stream, head)
            return torch.from_numpy(sink_values)
        per_token = int(self.widths.sum())
        if per_token == 0:  # a 0-bit budget: every non-sink token is the mean
            raw = b""
            if len(stream.payload) != head + len(zstd_compress(b"", ZSTD_LEVEL)):
                raise BitstreamError("data: a 0-bit coder's payload holds only sink tokens "
                                     "and an empty zstd frame")
        else:
            frame = Stream(stream.codec_id, (rest, per_token), stream.payload[head:])
            raw = zstd_payload(frame, 1)
        index = np.zeros((rest, channels), dtype=np.int64)
        offset = 0
        for j, (component, width) in enumerate(zip(self.kept, self.widths)):
            dtype = "<u2" if width == 2 else np.uint8
            column = np.frombuffer(raw, dtype=dtype, count=rest, offset=offset)
            offset += width * rest
            if column.max(initial=0) >= 1 << self.bits[component]:
                raise BitstreamError(f"data: index of component {component} exceeds its "
                                     f"{self.bits[component]} bits; the stream is corrupted")
            index[:, component] = column
        return torch.from_numpy(np.concatenate([sink_values, self._values(index)]))

    def reconstruct(self, hidden: torch.Tensor) -> torch.Tensor:
        """What decode(encode(hidden)) returns, computed without bytes or container."""
        values = hidden.detach().cpu().float().numpy()
        sinks = min(self.fit.sinks, len(values))
        head = values[:sinks].astype(np.float16).astype(np.float32)
        return torch.from_numpy(np.concatenate([head, self._values(self._indices(values[sinks:]))]))

    def __repr__(self) -> str:
        return f"TransformCoder(budget={self.budget}, components={len(self.kept)})"
