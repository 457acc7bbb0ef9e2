"""Baseline codecs with real bytes: casts, absmax integers and zstd.

These are the comparisons every rdgap rate is measured against in the same
run: ``fp16`` and ``bf16`` casts, absmax ``int8`` and ``int4`` per-token
quantization (a float32 scale per token in the stream), and ``zstd`` of the
fp16 bytes (lossless with respect to the fp16 cast).
"""

from __future__ import annotations

import numpy as np
import torch
import zstandard

from .base import HiddenStateCodec
from .coders.container import BitstreamError, Stream

FP16_MAX = float(torch.finfo(torch.float16).max)


def _fp16_bytes(hidden: torch.Tensor) -> bytes:
    peak = float(hidden.abs().max())
    if peak > FP16_MAX:
        raise ValueError(f"hidden: |value| {peak:.4g} exceeds the float16 range "
                         f"({FP16_MAX:.0f}); use the bf16 codec for such states")
    return hidden.to(torch.float16).numpy().tobytes()


def _from_fp16_bytes(raw: bytes, shape: tuple[int, ...]) -> torch.Tensor:
    array = np.frombuffer(raw, dtype=np.float16).reshape(shape)
    return torch.from_numpy(array.astype(np.float32))


class Float16Cast(HiddenStateCodec):
    """IEEE half-precision cast: 16 bits per channel."""

    codec_id = "fp16"

    def _encode_payload(self, hidden):
        return _fp16_bytes(hidden)

    def _decode_payload(self, stream):
        self._expect_payload(stream, 2 * stream.shape[0] * stream.shape[1])
        return _from_fp16_bytes(stream.payload, stream.shape)


class BFloat16Cast(HiddenStateCodec):
    """bfloat16 cast (float32 range, 8-bit mantissa): 16 bits per channel."""

    codec_id = "bf16"

    def _encode_payload(self, hidden):
        return hidden.to(torch.bfloat16).view(torch.int16).numpy().tobytes()

    def _decode_payload(self, stream):
        self._expect_payload(stream, 2 * stream.shape[0] * stream.shape[1])
        raw = np.frombuffer(stream.payload, dtype=np.int16).reshape(stream.shape)
        return torch.from_numpy(raw.copy()).view(torch.bfloat16).to(torch.float32)


class AbsmaxInteger(HiddenStateCodec):
    """Per-token absmax quantization to signed ``bits``-bit integers.

    Token ``t`` gets the scale ``s_t = max_j |y_tj| / (2^(bits-1) - 1)`` (float32,
    in the stream) and symbols ``round(y_tj / s_t)``; 4-bit symbols are packed
    two per byte. Reconstruction is ``s_t · symbol``.

    Parameters
    ----------
    bits : {8, 4}
        Bits per symbol.
    """

    def __init__(self, bits: int = 8):
        if bits not in (8, 4):
            raise ValueError(f"bits: expected 8 or 4, got {bits!r}")
        self.bits = bits
        self.codec_id = f"int{bits}-absmax"
        self.levels = 2 ** (bits - 1) - 1

    def params(self):
        return {"bits": self.bits}

    def _encode_payload(self, hidden):
        scales = hidden.abs().amax(dim=1) / self.levels
        safe = torch.where(scales > 0, scales, torch.ones_like(scales))
        symbols = torch.round(hidden / safe[:, None]).clamp(-self.levels, self.levels)
        symbols = symbols.to(torch.int8).numpy()
        if self.bits == 4:
            symbols = _pack_nibbles(symbols)
        return scales.numpy().astype("<f4").tobytes() + symbols.tobytes()

    def _symbol_bytes(self, tokens: int, channels: int) -> int:
        return tokens * channels if self.bits == 8 else tokens * ((channels + 1) // 2)

    def _decode_payload(self, stream):
        tokens, channels = stream.shape
        self._expect_payload(stream, 4 * tokens + self._symbol_bytes(tokens, channels))
        scales = np.frombuffer(stream.payload, dtype="<f4", count=tokens)
        if not np.isfinite(scales).all() or (scales < 0).any():
            raise BitstreamError("data: per-token scales must be finite and ≥ 0")
        raw = np.frombuffer(stream.payload, dtype=np.int8, offset=4 * tokens)
        if self.bits == 4:
            symbols = _unpack_nibbles(raw, tokens, channels)
        else:
            symbols = raw.reshape(tokens, channels)
        if np.abs(symbols.astype(np.int16)).max(initial=0) > self.levels:
            raise BitstreamError(f"data: symbol outside ±{self.levels}; the stream is corrupted")
        return torch.from_numpy(scales[:, None] * symbols.astype(np.float32))


def _pack_nibbles(symbols: np.ndarray) -> np.ndarray:
    tokens, channels = symbols.shape
    offset = (symbols.astype(np.int16) + 8).astype(np.uint8)  # −7..7 → 1..15
    if channels % 2:
        offset = np.concatenate([offset, np.full((tokens, 1), 8, np.uint8)], axis=1)
    return (offset[:, 0::2] | (offset[:, 1::2] << 4)).astype(np.uint8)


def _unpack_nibbles(raw: np.ndarray, tokens: int, channels: int) -> np.ndarray:
    packed = raw.view(np.uint8).reshape(tokens, -1)
    both = np.empty((tokens, 2 * packed.shape[1]), dtype=np.int16)
    both[:, 0::2] = packed & 0x0F
    both[:, 1::2] = packed >> 4
    if (both == 0).any():
        raise BitstreamError("data: 4-bit symbol 0 is never written; the stream is corrupted")
    return (both[:, :channels] - 8).astype(np.int8)


class ZstdFloat16(HiddenStateCodec):
    """zstd of the fp16 bytes: lossless with respect to the fp16 cast.

    Parameters
    ----------
    level : int
        zstd compression level (1–22).
    """

    def __init__(self, level: int = 19):
        if not 1 <= level <= 22:
            raise ValueError(f"level: expected a zstd level in 1..22, got {level}")
        self.level = level
        self.codec_id = "zstd-fp16"

    def params(self):
        return {"format": "fp16"}  # the level changes bytes, not how to decode them

    def _encode_payload(self, hidden):
        return zstandard.ZstdCompressor(level=self.level).compress(_fp16_bytes(hidden))

    def _decode_payload(self, stream: Stream):
        return _from_fp16_bytes(zstd_payload(stream, 2), stream.shape)


def zstd_payload(stream: Stream, bytes_per_element: int) -> bytes:
    """Decompress a zstd payload that must hold exactly one element per shape entry.

    Decompression is capped at that size, so a corrupted stream can never make
    it allocate more; any mismatch raises BitstreamError.
    """
    expected = bytes_per_element * stream.shape[0] * stream.shape[1]
    try:
        raw = zstandard.ZstdDecompressor().decompress(stream.payload, max_output_size=expected)
    except zstandard.ZstdError as error:
        raise BitstreamError(f"data: zstd payload is corrupted ({error})") from None
    if len(raw) != expected:
        raise BitstreamError(f"data: zstd payload holds {len(raw)} bytes, shape "
                             f"{stream.shape} needs {expected}")
    return raw


def baseline_codecs() -> list[HiddenStateCodec]:
    """The baseline codecs, in the order reports list them."""
    return [Float16Cast(), BFloat16Cast(), AbsmaxInteger(8), AbsmaxInteger(4), ZstdFloat16()]
