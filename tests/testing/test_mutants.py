"""Mutation tests: deliberately broken codecs are each caught, with the right property named."""

from __future__ import annotations

import importlib.util
import math
import struct
import zlib
from pathlib import Path

import constriction
import numpy as np
import pytest

from rdgap.testing import PropertyViolation, check_codec


def _example():
    path = Path(__file__).with_name("example_user_codec_test.py")
    spec = importlib.util.spec_from_file_location("rdgap_example_user_codec", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXAMPLE = _example()
Base = EXAMPLE.HistogramCodec


class DropsLastByte(Base):
    def encode(self, symbols):
        return super().encode(symbols)[:-1]


class EstimateLow(Base):
    def estimate_bits(self, symbols):
        return 0.9 * super().estimate_bits(symbols)


class EstimateHigh(Base):
    def estimate_bits(self, symbols):
        return 1.1 * super().estimate_bits(symbols)


class EstimateHighWithLowerConstant(EstimateHigh):
    lower_overhead_bits = 64.0


class NonDeterministic(Base):
    """Writes a random 'reserved' header byte, which decode ignores (the CRC covers it)."""

    def encode(self, symbols):
        s = self._check(symbols)
        nonce = int(np.random.default_rng().integers(256))
        body = self.HEADER.pack(self.MAGIC, nonce, s.shape[0], self.channels) + self.payload(s)
        return body + struct.pack("<I", zlib.crc32(body))


class OffByOne(Base):
    def decode(self, data):
        out = super().decode(data)
        out[-1, -1] += 1
        return out


class IgnoresCorruptHeader(Base):
    """Its checksum covers the payload only, and it trusts the header's token count without
    checking it against the payload (no ``is_empty`` check)."""

    def encode(self, symbols):
        s = self._check(symbols)
        payload = self.payload(s)
        head = self.HEADER.pack(self.MAGIC, 0, s.shape[0], self.channels)
        return head + payload + struct.pack("<I", zlib.crc32(payload))

    def decode(self, data):
        if len(data) < self.HEADER.size + 4:
            raise ValueError("data: too short")
        payload = data[self.HEADER.size:-4]
        if struct.unpack("<I", data[-4:])[0] != zlib.crc32(payload) or len(payload) % 4:
            raise ValueError("data: checksum mismatch")
        _, _, tokens, _ = self.HEADER.unpack_from(data)
        if tokens > 100_000:   # keeps the mutant from allocating without bound
            raise ValueError("data: implausible token count")
        coder = constriction.stream.stack.AnsCoder(np.frombuffer(payload, "<u4").astype(np.uint32))
        columns = [coder.decode(model, tokens) for model in self.models]
        return np.stack(columns, axis=1).astype(np.int64) + self.symbol_range[0]


MUTANTS = [
    (DropsLastByte, "round-trip"),
    (EstimateLow, "T2-upper"),
    (EstimateHigh, "T2-calibration"),
    (EstimateHighWithLowerConstant, "T2-lower"),
    (NonDeterministic, "determinism"),
    (OffByOne, "round-trip"),
    (IgnoresCorruptHeader, "robustness"),
]


def _mutant(cls):
    codec = EXAMPLE.fitted_codec()
    codec.__class__ = cls
    return codec


@pytest.mark.parametrize("cls, prop", MUTANTS, ids=[m[0].__name__ for m in MUTANTS])
def test_each_mutant_is_caught_by_its_property(cls, prop):
    with pytest.raises(AssertionError) as caught:
        check_codec(_mutant(cls), max_examples=12)
    error = caught.value
    assert isinstance(error, PropertyViolation)
    assert error.property == prop
    message = str(error)
    assert message.startswith(f"{prop}: ")
    assert "input:" in message or "source:" in message   # the (shrunk) input or the source
    assert any(ch.isdigit() for ch in message.split("\n")[0])  # the numbers


def test_the_unbroken_codec_passes_every_property_that_catches_a_mutant():
    report = check_codec(EXAMPLE.fitted_codec(), max_examples=12)
    assert {prop for _, prop in MUTANTS} - {"T2-lower"} <= set(report.checked)
    assert "T2-lower" in report.not_applicable   # c0 = inf: constriction starts empty
    assert set(report.checked) | set(report.not_applicable) == {
        "round-trip", "determinism", "T2-upper", "T2-lower", "robustness", "T1-entropy",
        "T2-calibration", "T3-family"}
    assert not math.isnan(report.numbers["T2-calibration"]["mean_estimate_bits"])
