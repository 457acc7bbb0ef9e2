"""llama.cpp-style blockwise integers and their Hadamard-rotated int4 variant.

Each token's channels are cut into blocks of :data:`BLOCK` = 32 (the last block may be
shorter); each block stores one float16 scale ``d`` and one integer per element, as
ggml's ``Q8_0`` and ``Q4_0`` do (``ggml-quants.c``, ``quantize_row_q8_0_ref`` /
``quantize_row_q4_0_ref``):

- ``Q8_0``: ``d = max|x| / 127``, ``q = round(x / d)`` in −127..127 (one byte each):
  8.5 bits per element for full blocks. rdgap rounds ``d`` *up* to the next float16
  (ggml rounds to nearest, at most one float16 ulp apart, 2^-11 relative), so that
  ``|x / d| ≤ 127`` holds with the stored scale and the error theorem below is exact.
  **Theorem**: every element is reconstructed within ``d / 2``.
- ``Q4_0``: ``d = m / −8`` with ``m`` the element of largest magnitude (its sign
  kept), ``q = min(15, ⌊x / d + 8.5⌋)`` in 0..15 (a nibble), reconstruction
  ``(q − 8)·d``: 4.5 bits per element. **Theorem**: an element whose ``q`` is not
  clipped at 15 is within ``|d| / 2``; a clipped one (``x/d > 7.5``, only on the side
  opposite ``m``) within ``|d|·(1 + 2^-7)`` (``|x| ≤ 8|d|(1 + 2^-11)`` with the
  float16 scale). (A block whose ``|m| / 8`` is below float16's smallest subnormal,
  ≈ 6·10^-8, gets ``d = 0`` as in ggml and decodes to zeros.)
- ``hadamard-int4``: the rotation trick of QuaRot / SpinQuant / TurboQuant: each run
  of :data:`ROTATION` = 64 channels (zero-padded at the end; the padding is coded and
  counted) is multiplied by the orthonormal Walsh–Hadamard matrix
  ``H / √64`` (``scipy.linalg.hadamard``, a dense 64 × 64 product: cheaper here than a
  fast transform in Python), which spreads an outlier channel over the run, then coded
  as ``Q4_0``. The rotation is orthonormal, so **theorem**: the error of each run of 64
  channels has Euclidean norm at most that of the rotated run's errors, each bounded
  as in ``Q4_0``.

The decoders check the payload size against the shape before allocating, refuse
scales that are not finite (and ``Q8_0`` symbols −128, never written), so a
corrupted stream raises :class:`~rdgap.codecs.coders.container.BitstreamError`.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.linalg import hadamard

from ..base import HiddenStateCodec
from ..coders.container import BitstreamError

#: Elements per block (ggml's QK8_0 = QK4_0 = 32).
BLOCK = 32
#: Channels per Hadamard rotation (a power of two).
ROTATION = 64
_FP16_MAX = float(np.finfo(np.float16).max)


def _blocks(values: np.ndarray) -> tuple[np.ndarray, int]:
    """``(tokens, blocks, BLOCK)`` view of ``values`` zero-padded to whole blocks."""
    tokens, channels = values.shape
    count = -(-channels // BLOCK)
    padded = np.zeros((tokens, count * BLOCK), dtype=np.float32)
    padded[:, :channels] = values
    return padded.reshape(tokens, count, BLOCK), count


def _fp16_up(value: np.ndarray) -> np.ndarray:
    """The smallest float16 ≥ each (non-negative) value, as float32."""
    half = value.astype(np.float16)
    low = half.astype(np.float32) < value
    half[low] = np.nextafter(half[low], np.float16(np.inf))
    return half.astype(np.float32)


def _check_range(values: np.ndarray, levels: float) -> None:
    peak = float(np.abs(values).max(initial=0.0))
    if peak / levels > _FP16_MAX:
        raise ValueError(f"hidden: |value| {peak:.4g} needs a block scale above the float16 "
                         f"range; rescale the states or use a float32 codec")


def q8_0_quantize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``Q8_0`` of ``(tokens, channels)`` float32: float16 scales ``(tokens, blocks)``
    and int8 symbols ``(tokens, blocks, 32)`` (padding symbols are 0)."""
    _check_range(values, 127.0)
    blocks, _ = _blocks(values)
    scale = _fp16_up(np.abs(blocks).max(axis=2) / 127.0)
    safe = np.where(scale > 0, scale, 1.0)
    symbols = np.clip(np.rint(blocks / safe[..., None]), -127, 127).astype(np.int8)
    return scale.astype(np.float16), symbols


def q4_0_quantize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``Q4_0`` of ``(tokens, channels)`` float32: float16 scales ``(tokens, blocks)``
    (signed) and symbols 0..15 ``(tokens, blocks, 32)`` (padding symbols are 8)."""
    _check_range(values, 8.0)
    blocks, _ = _blocks(values)
    index = np.abs(blocks).argmax(axis=2)
    peak = np.take_along_axis(blocks, index[..., None], axis=2)[..., 0]
    scale = (peak / -8.0).astype(np.float16).astype(np.float32)
    inverse = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale != 0)
    symbols = np.clip(np.floor(blocks * inverse[..., None] + 8.5), 0, 15).astype(np.uint8)
    return scale.astype(np.float16), symbols


def _dequantize(scale: np.ndarray, symbols: np.ndarray, offset: int,
                channels: int) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        values = scale.astype(np.float32)[..., None] * (symbols.astype(np.float32) - offset)
    tokens = values.shape[0]
    return values.reshape(tokens, -1)[:, :channels]


def _pack(symbols: np.ndarray) -> bytes:
    flat = symbols.reshape(symbols.shape[0], -1)
    return (flat[:, 0::2] | (flat[:, 1::2] << 4)).astype(np.uint8).tobytes()


def _unpack(raw: np.ndarray, tokens: int, blocks: int) -> np.ndarray:
    packed = raw.reshape(tokens, blocks * BLOCK // 2)
    both = np.empty((tokens, blocks * BLOCK), dtype=np.uint8)
    both[:, 0::2] = packed & 0x0F
    both[:, 1::2] = packed >> 4
    return both.reshape(tokens, blocks, BLOCK)


class BlockwiseInteger(HiddenStateCodec):
    """ggml ``Q8_0`` or ``Q4_0`` of each token's channels (fixed rate, no knob).

    Parameters
    ----------
    kind : {"q8_0", "q4_0"}
        The block format (module docstring).
    """

    def __init__(self, kind: str = "q8_0"):
        if kind not in ("q8_0", "q4_0"):
            raise ValueError(f"kind: expected 'q8_0' or 'q4_0', got {kind!r}")
        self.kind = kind
        self.codec_id = kind

    def params(self):
        return {"block": BLOCK}

    def _stored_channels(self, channels: int) -> int:
        return channels

    def _forward(self, values: np.ndarray) -> np.ndarray:
        return values

    def _inverse(self, values: np.ndarray, channels: int) -> np.ndarray:
        return values[:, :channels]

    def _encode_payload(self, hidden):
        values = self._forward(hidden.numpy())
        if self.kind == "q8_0":
            scale, symbols = q8_0_quantize(values)
            return scale.astype("<f2").tobytes() + symbols.tobytes()
        scale, symbols = q4_0_quantize(values)
        return scale.astype("<f2").tobytes() + _pack(symbols)

    def _decode_payload(self, stream):
        tokens, channels = stream.shape
        stored = self._stored_channels(channels)
        blocks = -(-stored // BLOCK)
        per_block = BLOCK if self.kind == "q8_0" else BLOCK // 2
        self._expect_payload(stream, tokens * blocks * (2 + per_block))
        scale = np.frombuffer(stream.payload, dtype="<f2", count=tokens * blocks)
        scale = scale.reshape(tokens, blocks)
        if not np.isfinite(scale).all() or (self.kind == "q8_0" and (scale < 0).any()):
            raise BitstreamError(f"data: block scales of {self.kind} must be finite"
                                 + (" and ≥ 0" if self.kind == "q8_0" else ""))
        raw = np.frombuffer(stream.payload, dtype=np.uint8, offset=2 * tokens * blocks)
        if self.kind == "q8_0":
            symbols = raw.view(np.int8).reshape(tokens, blocks, BLOCK)
            if (symbols == -128).any():
                raise BitstreamError("data: Q8_0 symbol −128 is never written; the stream "
                                     "is corrupted")
            values = _dequantize(scale, symbols, 0, stored)
        else:
            values = _dequantize(scale, _unpack(raw, tokens, blocks), 8, stored)
        values = self._inverse(values, channels)
        if not np.isfinite(values).all():
            raise BitstreamError("data: scale × symbol overflows float32; the stream is "
                                 "corrupted")
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))

    def reconstruct(self, hidden: torch.Tensor) -> torch.Tensor:
        """What decode(encode(hidden)) returns, computed without bytes or container."""
        values = np.ascontiguousarray(hidden.detach().cpu().float().numpy())
        channels = values.shape[1]
        if self.kind == "q8_0":
            scale, symbols = q8_0_quantize(self._forward(values))
            decoded = _dequantize(scale, symbols, 0, self._stored_channels(channels))
        else:
            scale, symbols = q4_0_quantize(self._forward(values))
            decoded = _dequantize(scale, symbols, 8, self._stored_channels(channels))
        return torch.from_numpy(np.ascontiguousarray(self._inverse(decoded, channels),
                                                     dtype=np.float32))


class HadamardInt4(BlockwiseInteger):
    """Walsh–Hadamard rotation of every :data:`ROTATION` channels, then ``Q4_0``.

    The rotated run is coded as :class:`BlockwiseInteger` ``"q4_0"``; channels are
    zero-padded to a multiple of :data:`ROTATION` first (4.5 bits per padded element).
    """

    def __init__(self):
        super().__init__("q4_0")
        self.codec_id = "hadamard-int4"
        self.matrix = (hadamard(ROTATION) / np.sqrt(ROTATION)).astype(np.float32)

    def params(self):
        return {"block": BLOCK, "rotation": ROTATION, "transform": "walsh-hadamard"}

    def _stored_channels(self, channels: int) -> int:
        return -(-channels // ROTATION) * ROTATION

    def _forward(self, values: np.ndarray) -> np.ndarray:
        tokens, channels = values.shape
        padded = np.zeros((tokens, self._stored_channels(channels)), dtype=np.float32)
        padded[:, :channels] = values
        runs = padded.reshape(tokens, -1, ROTATION)
        return (runs @ self.matrix).reshape(tokens, -1)

    def _inverse(self, values: np.ndarray, channels: int) -> np.ndarray:
        tokens = values.shape[0]
        with np.errstate(over="ignore", invalid="ignore"):
            runs = values.reshape(tokens, -1, ROTATION) @ self.matrix  # H/√n is its own inverse
        return runs.reshape(tokens, -1)[:, :channels]


def blockwise_codecs() -> list[HiddenStateCodec]:
    """``Q8_0``, ``Q4_0`` and Hadamard-rotated int4, in the order reports list them."""
    return [BlockwiseInteger("q8_0"), BlockwiseInteger("q4_0"), HadamardInt4()]
