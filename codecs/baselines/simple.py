"""Baseline codecs with real bytes: casts, absmax integers and zstd.

These are the comparisons every rdgap rate is measured against in the same
run: ``fp16`` and ``bf16`` casts, absmax ``int8`` and ``int4`` per-token
quantization (a float32 scale per token in the stream), and ``zstd`` of the
fp16 bytes (lossless with respect to the fp16 cast).

Decode limits (issue 17): every decoder checks the payload against the shape
before it allocates; fp16/bf16 payloads holding NaN or Inf and int8/int4
streams whose scale × symbol overflows are refused (``BitstreamError``: the
encoders never write them); a zstd payload may expand to at most
:data:`ZSTD_MAX_RATIO` × its bytes or :data:`ZSTD_FREE_BYTES`, whichever is
larger — the encoders refuse (``ValueError``) states that would compress
beyond that, so every stream they write decodes.
"""

from __future__ import annotations

import numpy as np
import torch
import zstandard

from ..base import HiddenStateCodec
from ..coders.container import BitstreamError, Stream

FP16_MAX = float(torch.finfo(torch.float16).max)
BF16_MAX = float(torch.finfo(torch.bfloat16).max)
#: A zstd payload of ``n`` bytes may decompress to at most
#: ``max(ZSTD_MAX_RATIO · n, ZSTD_FREE_BYTES)`` bytes (checked before decompressing).
ZSTD_MAX_RATIO = 64
ZSTD_FREE_BYTES = 1 << 20


def _fp16_bytes(hidden: torch.Tensor) -> bytes:
    peak = float(hidden.abs().max())
    if peak > FP16_MAX:
        raise ValueError(f"hidden: |value| {peak:.4g} exceeds the float16 range "
                         f"({FP16_MAX:.0f}); use the bf16 codec for such states")
    return hidden.to(torch.float16).numpy().tobytes()


def _from_fp16_bytes(raw: bytes, shape: tuple[int, ...]) -> torch.Tensor:
    array = np.frombuffer(raw, dtype=np.float16).reshape(shape).astype(np.float32)
    return torch.from_numpy(_finite(array, "float16"))


def _finite(array: np.ndarray, what: str) -> np.ndarray:
    """``array`` if every value is finite; else BitstreamError (encoders never write NaN/Inf)."""
    if not np.isfinite(array).all():
        token, channel = np.argwhere(~np.isfinite(array))[0]
        raise BitstreamError(f"data: {what} value at token {token}, channel {channel} is NaN "
                             f"or Inf; no rdgap encoder writes one, the stream is corrupted "
                             f"or forged")
    return array


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
        cast = hidden.to(torch.bfloat16)
        if not torch.isfinite(cast).all():  # finite float32 values above BF16_MAX round to Inf
            peak = float(hidden.abs().max())
            raise ValueError(f"hidden: |value| {peak:.6g} rounds to Inf in bfloat16 (largest "
                             f"finite {BF16_MAX:.6g}); rescale the states or use a float32 "
                             f"codec")
        return cast.view(torch.int16).numpy().tobytes()

    def _decode_payload(self, stream):
        self._expect_payload(stream, 2 * stream.shape[0] * stream.shape[1])
        raw = np.frombuffer(stream.payload, dtype=np.int16).reshape(stream.shape)
        decoded = torch.from_numpy(raw.copy()).view(torch.bfloat16).to(torch.float32)
        _finite(decoded.numpy(), "bfloat16")
        return decoded


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
        with np.errstate(over="ignore"):
            values = scales[:, None] * symbols.astype(np.float32)
        return torch.from_numpy(_finite(values, "scale × symbol"))


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
        return zstd_compress(_fp16_bytes(hidden), self.level)

    def _decode_payload(self, stream: Stream):
        return _from_fp16_bytes(zstd_payload(stream, 2), stream.shape)


def zstd_limit(payload_bytes: int) -> int:
    """Most bytes a zstd payload of ``payload_bytes`` may decompress to in an rdgap stream."""
    return max(ZSTD_MAX_RATIO * payload_bytes, ZSTD_FREE_BYTES)


def zstd_compress(raw: bytes, level: int) -> bytes:
    """zstd of ``raw``; ValueError if the stream would break the decoder's ratio limit.

    Only nearly constant states above :data:`ZSTD_FREE_BYTES` compress more
    than :data:`ZSTD_MAX_RATIO`:1; their streams would be refused at decode.
    """
    payload = zstandard.ZstdCompressor(level=level).compress(raw)
    if len(raw) > zstd_limit(len(payload)):
        raise ValueError(f"hidden: zstd compresses these states {len(raw) / len(payload):.0f}:1, "
                         f"above the {ZSTD_MAX_RATIO}:1 a zstd stream of more than "
                         f"{ZSTD_FREE_BYTES} bytes may hold (decoders refuse larger expansions); "
                         f"encode shorter windows or use the fp16 codec")
    return payload


def zstd_payload(stream: Stream, bytes_per_element: int) -> bytes:
    """Decompress a zstd payload that must hold exactly one element per shape entry.

    The size the shape implies is checked against :func:`zstd_limit` of the
    payload, and the size the zstd frame declares against the shape, before
    anything is decompressed; decompression is then capped at that size. So a
    payload costs at most ``max(64 × its bytes, 1 MiB)`` of output, whatever its
    header says. Any mismatch raises BitstreamError.
    """
    expected = bytes_per_element * stream.shape[0] * stream.shape[1]
    if expected > zstd_limit(len(stream.payload)):
        raise BitstreamError(f"data: shape {stream.shape} needs {expected} bytes from a zstd "
                             f"payload of {len(stream.payload)}; an rdgap zstd payload expands "
                             f"at most {ZSTD_MAX_RATIO}× (or to {ZSTD_FREE_BYTES} bytes)")
    try:
        declared = zstandard.frame_content_size(stream.payload)
    except zstandard.ZstdError as error:
        raise BitstreamError(f"data: zstd payload is corrupted ({error})") from None
    if declared not in (-1, expected):  # -1: the frame does not say
        raise BitstreamError(f"data: zstd frame declares {declared} bytes, shape "
                             f"{stream.shape} needs {expected}")
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
