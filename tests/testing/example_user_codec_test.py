"""Property-test your own codec with rdgap.testing (the README's example, run by the tests).

``HistogramCodec`` stands in for a user's codec: integer symbols
``(tokens, channels)``, one Categorical table per channel fitted on a
histogram, constriction's ANS coder, and a minimal header with a CRC32. What
the kit checks across processes, fittings and crafted headers shapes three
details: a CRC32 fingerprint of the tables in every stream (another fitting's
stream is refused), a token count checked against what the payload can hold
(a crafted header cannot make it allocate), and ``__getstate__``/``__setstate__``
(constriction's models do not pickle; the kit rebuilds the codec in a fresh
process by pickling it).
"""

from __future__ import annotations

import math
import struct
import zlib

import constriction
import numpy as np
import pytest

from rdgap.testing import CodecPropertyTests


class HistogramCodec:
    """Per-channel histogram tables + constriction ANS; stream = header, payload, CRC32."""

    input_kind = "symbols"          # int64 arrays (tokens, channels)
    lossless = True                 # decode(encode(s)) == s, bit for bit
    relative_overhead = 0.005       # T2 ε
    stream_overhead_bits = 64       # T2 c1: constriction flushes at most 24 + 32 bits
    lower_overhead_bits = math.inf  # no T2 c0: constriction's AnsCoder starts empty
    decode_errors = (ValueError,)
    HEADER = struct.Struct("<4sBIIH")  # magic, reserved (0), tables' CRC32, tokens, channels
    MAGIC = b"HC02"
    header_fields = {"tokens": (9, "<I"), "channels": (13, "<H")}  # crafted by the kit

    def __init__(self, training: np.ndarray, symbol_range=(-64, 63)):
        lo, hi = symbol_range
        self.symbol_range, self.channels = (lo, hi), training.shape[1]
        counts = np.stack([np.bincount(column - lo, minlength=hi - lo + 1)
                           for column in training.T]) + 1.0        # add-one smoothing
        self.probabilities = counts / counts.sum(axis=1, keepdims=True)
        self.header_bits = 8 * (self.HEADER.size + 4)               # outside the estimate
        self._build()

    def __getstate__(self):          # constriction's models do not pickle: keep the tables
        return {k: v for k, v in self.__dict__.items() if k != "models"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._build()

    def _build(self):
        self.models = [constriction.stream.model.Categorical(p, perfect=False)
                       for p in self.probabilities]
        self.tables = zlib.crc32(self.probabilities.tobytes())     # which fitting wrote it
        # at most this many tokens fit in a payload of b bits: b / (bits of the likeliest row)
        self.min_token_bits = float(-np.log2(self.probabilities.max(axis=1)).sum())

    def _check(self, symbols) -> np.ndarray:
        s = np.asarray(symbols)
        lo, hi = self.symbol_range
        if s.ndim != 2 or s.shape[1] != self.channels or s.dtype.kind not in "iu":
            raise ValueError(f"symbols: expected integers (tokens, {self.channels})")
        if s.size and (s.min() < lo or s.max() > hi):
            raise ValueError(f"symbols: expected values in {lo}..{hi}")
        return s.astype(np.int64)

    def estimate_bits(self, symbols) -> float:
        s = self._check(symbols) - self.symbol_range[0]
        return float(-np.log2(self.probabilities[np.arange(self.channels), s]).sum())

    def payload(self, s: np.ndarray) -> bytes:
        coder = constriction.stream.stack.AnsCoder()
        for j in reversed(range(self.channels)):                   # a stack: last in, first out
            coder.encode_reverse((s[:, j] - self.symbol_range[0]).astype(np.int32), self.models[j])
        return coder.get_compressed().astype("<u4").tobytes()

    def encode(self, symbols) -> bytes:
        s = self._check(symbols)
        head = self.HEADER.pack(self.MAGIC, 0, self.tables, s.shape[0], self.channels)
        body = head + self.payload(s)
        return body + struct.pack("<I", zlib.crc32(body))

    def read_header(self, data: bytes):
        if len(data) < self.HEADER.size + 4:
            raise ValueError(f"data: {len(data)} bytes is too short for a stream")
        if struct.unpack("<I", data[-4:])[0] != zlib.crc32(data[:-4]):
            raise ValueError("data: checksum mismatch; the stream is corrupted")
        magic, _, tables, tokens, channels = self.HEADER.unpack_from(data)
        if magic != self.MAGIC or channels != self.channels:
            raise ValueError("data: not a stream of this codec")
        if tables != self.tables:
            raise ValueError("data: written with other tables (another fitting of this codec)")
        payload = data[self.HEADER.size:-4]
        if tokens * self.min_token_bits > 8 * len(payload) + 64:
            raise ValueError(f"data: {tokens} tokens cannot fit in {len(payload)} bytes")
        return tokens, payload

    def decode(self, data: bytes) -> np.ndarray:
        tokens, payload = self.read_header(bytes(data))
        if len(payload) % 4:
            raise ValueError("data: the payload is not whole 32-bit words")
        coder = constriction.stream.stack.AnsCoder(np.frombuffer(payload, "<u4").astype(np.uint32))
        try:
            columns = [coder.decode(model, tokens) for model in self.models]
        except (ValueError, RuntimeError) as error:
            raise ValueError(f"data: the payload cannot be decoded ({error})") from None
        if not coder.is_empty():
            raise ValueError("data: the payload holds more than the header declares")
        return np.stack(columns, axis=1).astype(np.int64) + self.symbol_range[0]


def fitted_codec(channels: int = 6, seed: int = 0) -> HistogramCodec:
    """A codec fitted on peaked integer data (quantized Laplace, a scale per channel)."""
    rng = np.random.default_rng(seed)
    scales = rng.uniform(1.0, 8.0, channels)
    training = np.clip(np.rint(rng.laplace(0.0, scales, (4000, channels))), -64, 63)
    return HistogramCodec(training.astype(np.int64))


class TestHistogramCodec(CodecPropertyTests):
    """All of rdgap's properties for the codec above, with another fitting as its sibling."""

    check_options = {"max_examples": 12, "sibling": fitted_codec(seed=1)}

    @pytest.fixture
    def codec(self):
        return fitted_codec()
