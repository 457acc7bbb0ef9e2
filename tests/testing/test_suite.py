"""check_codec's properties fail where they must (cheating, mis-fitted, hanging, greedy and
sloppy codecs), accept what they must, and name bad arguments; the pytest plugin is installed."""

from __future__ import annotations

import importlib.metadata
import struct
import threading
import time
import zlib

import numpy as np
import pytest
import torch

from rdgap.codecs.entropy_models.factorized import ChannelStatistics, FactorizedCodec
from hypothesis import strategies as st

from rdgap.testing import (FunctionCodec, PropertyNotChecked, PropertyViolation, adapt,
                           check_codec, declarations)
from rdgap.testing.adapters import _factorized_source


def _framed(payload: bytes) -> bytes:
    return payload + struct.pack("<I", zlib.crc32(payload))


def _unframe(data: bytes) -> bytes:
    if len(data) < 4 or struct.unpack("<I", data[-4:])[0] != zlib.crc32(data[:-4]):
        raise ValueError("data: checksum mismatch")
    return data[:-4]


def raw_float32_codec(**declared):
    """float32 bytes with shape and CRC: lossless, no model."""
    def encode(x):
        x = torch.as_tensor(x, dtype=torch.float32)
        return _framed(struct.pack("<II", *x.shape) + x.numpy().tobytes())

    def decode(data):
        body = _unframe(data)
        tokens, channels = struct.unpack("<II", body[:8])
        if len(body) != 8 + 4 * tokens * channels:
            raise ValueError("data: length does not match the shape")
        return torch.from_numpy(np.frombuffer(body[8:], "<f4").reshape(tokens, channels).copy())

    return FunctionCodec(encode, decode, **declared)


class MemoCheater:
    """Stores every tensor it encodes and writes a 4-byte key: it beats the entropy."""

    input_kind = "symbols"
    lossless = True

    def __init__(self):
        self.store = {}

    def encode(self, x):
        x = np.asarray(x, dtype=np.int64)
        key = zlib.crc32(x.tobytes() + str(x.shape).encode())
        self.store[key] = x.copy()
        return _framed(struct.pack("<I", key))

    def decode(self, data):
        (key,) = struct.unpack("<I", _unframe(data))
        if key not in self.store:
            raise ValueError("data: unknown stream")
        return self.store[key].copy()

    def estimate_bits(self, x):
        return None


def test_a_codec_that_beats_the_entropy_fails_t1():
    with pytest.raises(PropertyViolation) as caught:
        check_codec(MemoCheater(), max_examples=5)
    assert caught.value.property == "T1-entropy"
    assert "beats the entropy" in str(caught.value)


def _gaussian_codec(scale_factor: float) -> FactorizedCodec:
    rng = np.random.default_rng(0)
    windows = torch.from_numpy(rng.normal(0.0, 3.0, (4, 30, 8)).astype(np.float32))
    stats = ChannelStatistics.fit(windows, "gaussian")
    wide = ChannelStatistics(stats.mean, scale_factor * stats.scale, stats.first_mean,
                             scale_factor * stats.first_scale)
    return FactorizedCodec(wide, 0.5 * stats.scale, 0.5 * stats.first_scale, "gaussian")


def test_a_gaussian_codec_with_a_wrong_scale_exceeds_its_t3_bound():
    true, wide = _gaussian_codec(1.0), _gaussian_codec(6.0)
    adapter = adapt(wide)                     # models every channel 6× too wide …
    adapter.entropy_source = lambda: _factorized_source(true)   # … for data of the true law
    report = check_codec(adapt(true), properties=["T3-family"], sources=1)
    assert report.checked == ["T3-family"]
    with pytest.raises(PropertyViolation) as caught:
        check_codec(adapter, properties=["T1-entropy", "T2-calibration", "T3-family"],
                    sources=1)
    assert caught.value.property == "T3-family"
    assert "T3 bound" in str(caught.value)


def test_a_decoder_that_hangs_on_a_corrupted_stream_fails_robustness():
    release = threading.Event()
    codec = raw_float32_codec(lossless=True)
    inner = codec._decode

    def decode(data):
        if len(data) and data[-1:] == b"\0" and len(data) % 4 == 1:   # the padded stream
            release.wait(30)
        return inner(data)

    codec._decode = decode
    try:
        started = time.perf_counter()
        with pytest.raises(PropertyViolation, match="ran past 0.5 s") as caught:
            check_codec(codec, properties=["robustness"], max_examples=4, decode_timeout=0.5)
        assert caught.value.property == "robustness"
        assert time.perf_counter() - started < 20
    finally:
        release.set()


def test_a_decoder_that_allocates_without_bound_fails_robustness():
    codec = raw_float32_codec(lossless=True)
    inner = codec._decode

    def decode(data):
        if len(data) % 4 == 1:   # the padded stream: believes a corrupted size field
            np.ones(1 << 31, dtype=np.uint8)
        return inner(data)

    codec._decode = decode
    with pytest.raises(PropertyViolation, match="memory budget") as caught:
        check_codec(codec, properties=["robustness"], max_examples=4,
                    memory_budget_bytes=256 << 20)
    assert caught.value.property == "robustness"


def test_an_unclear_exception_fails_robustness_unless_declared():
    def decode(data):
        body = _unframe(data) if len(data) >= 4 else data[10**6]   # IndexError when short
        return np.frombuffer(body, "<i8").reshape(-1, 1).copy()

    def encode(x):
        return _framed(np.asarray(x, "<i8").tobytes())

    codec = FunctionCodec(encode, decode, input_kind="symbols", channels=1, lossless=True)
    with pytest.raises(PropertyViolation, match="raised IndexError") as caught:
        check_codec(codec, properties=["robustness"], max_examples=4)
    assert caught.value.property == "robustness"
    declared = FunctionCodec(encode, decode, input_kind="symbols", channels=1, lossless=True,
                             decode_errors=(ValueError, IndexError))
    assert check_codec(declared, properties=["robustness"], max_examples=4).checked == \
        ["robustness"]


def test_a_lossy_codec_without_reconstruct_is_held_to_idempotence():
    good = raw_float32_codec()                       # lossless in fact, declares nothing
    assert check_codec(good, properties=["round-trip"], max_examples=6).checked == ["round-trip"]
    drifting = raw_float32_codec()
    inner = drifting._decode
    drifting._decode = lambda data: inner(data) * 0.5   # decoding again halves again
    with pytest.raises(PropertyViolation, match="second pass") as caught:
        check_codec(drifting, properties=["round-trip"], max_examples=6)
    assert caught.value.property == "round-trip"


def test_a_codec_without_a_model_skips_t2_and_says_why():
    report = check_codec(raw_float32_codec(lossless=True), max_examples=4, streams=4)
    for prop in ("T2-upper", "T2-lower", "T2-calibration"):
        assert "None" in report.not_applicable[prop]
    assert "T1-entropy" in report.checked


def test_bad_arguments_and_declarations_are_named():
    codec = raw_float32_codec()
    with pytest.raises(ValueError, match="properties"):
        check_codec(codec, properties=["round trip"])
    with pytest.raises(ValueError, match="max_examples"):
        check_codec(codec, max_examples=0)
    with pytest.raises(ValueError, match="streams"):
        check_codec(codec, streams=1)
    with pytest.raises(ValueError, match="delta"):
        check_codec(codec, delta=1.5)
    with pytest.raises(ValueError, match="decode_timeout"):
        check_codec(codec, decode_timeout=0)
    with pytest.raises(TypeError, match="lacks decode, estimate_bits"):
        check_codec(object.__new__(type("Half", (), {"encode": lambda self, x: b""})))
    with pytest.raises(ValueError, match="lossles"):
        FunctionCodec(bytes, list, lossles=True)
    with pytest.raises(ValueError, match="codec.relative_overhead"):
        raw_float32_codec(relative_overhead=-0.1)
    with pytest.raises(ValueError, match="codec.input_kind"):
        raw_float32_codec(input_kind="images")
    with pytest.raises(ValueError, match="codec.symbol_range"):
        raw_float32_codec(symbol_range=(3, 1))
    with pytest.raises(ValueError, match="codec.decode_errors"):
        raw_float32_codec(decode_errors=("ValueError",))


def test_declared_defaults():
    d = declarations(raw_float32_codec())
    assert (d.relative_overhead, d.stream_overhead_bits, d.lower_overhead_bits) == \
        (0.01, 64.0, 64.0)
    assert d.calibration_slack_bits == 32.0      # one coder word, not c1 (issue 15)
    assert d.decode_errors == (ValueError,) and d.input_kind == "hidden"


def test_the_plugin_is_registered_and_gives_the_fixture(codec_properties):
    entries = importlib.metadata.entry_points(group="pytest11")
    assert any(e.name == "rdgap" and e.value == "rdgap.testing.plugin" for e in entries)
    report = codec_properties(raw_float32_codec(lossless=True), properties=["round-trip"],
                              max_examples=3)
    assert report.checked == ["round-trip"]
    new = ["output-ownership", "cross-process", "crafted-headers"]
    assert codec_properties(RawCodec(), properties=new, max_examples=3).checked == new


def test_custom_inputs_replace_the_default_strategy():
    poison = torch.full((2, 3), 7.0)
    codec = raw_float32_codec(lossless=True)
    inner = codec._decode
    codec._decode = lambda data: inner(data) * 0 if len(data) == 12 + 4 * 6 else inner(data)
    assert check_codec(codec, properties=["round-trip"], max_examples=5,
                       inputs=st.just(torch.ones(1, 4))).checked == ["round-trip"]
    with pytest.raises(PropertyViolation, match=r"shape \(2, 3\)"):
        check_codec(codec, properties=["round-trip"], max_examples=5, inputs=st.just(poison))
    # the fixed input of the fresh process is drawn from them too
    report = check_codec(RawCodec(), properties=["cross-process"], inputs=st.just(poison))
    assert report.numbers["cross-process"]["input_shape"] == (2, 3)


# -- issue 15: across processes, fittings and calls -------------------------------------
def lossless_raw_codec():
    """A module-level factory: what a fresh process imports and calls."""
    return raw_float32_codec(lossless=True)


def broken_factory():
    raise RuntimeError("the tables file is missing")


class RawCodec:
    """raw_float32_codec as a picklable class; ``greedy`` allocates from the shape field,
    ``sleepy`` hangs on a shape it does not expect."""

    lossless = True
    header_fields = {"tokens": (0, "<I"), "channels": (4, "<I")}

    def __init__(self, greedy=False, sleepy=False):
        self.greedy, self.sleepy = greedy, sleepy

    def encode(self, x):
        x = torch.as_tensor(x, dtype=torch.float32)
        return _framed(struct.pack("<II", *x.shape) + x.numpy().tobytes())

    def decode(self, data):
        body = _unframe(data)
        tokens, channels = struct.unpack("<II", body[:8])
        if self.greedy:
            np.ones(tokens * channels * 4, np.uint8)
        if self.sleepy and tokens > 1 << 16:
            time.sleep(60)
        if len(body) != 8 + 4 * tokens * channels:
            raise ValueError("data: length does not match the shape")
        return torch.from_numpy(np.frombuffer(body[8:], "<f4").reshape(tokens, channels).copy())

    def estimate_bits(self, x):
        return None


def test_the_robustness_reference_is_a_copy():
    """A decoder that keeps one buffer and, on a bad checksum, zeroes it and returns it: the
    reference it wrote earlier was that buffer, so without the copy it compared equal."""
    class Zeroing:
        lossless, input_kind = True, "symbols"
        buffer = None

        def encode(self, x):
            return _framed(np.asarray(x, "<i8").tobytes())

        def decode(self, data):
            ok = len(data) >= 4 and struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])
            if ok:
                self.buffer = np.frombuffer(data[:-4], "<i8").reshape(-1, 1).copy()
            elif self.buffer is not None:
                self.buffer[...] = 0          # "recovers" a bad stream as zeros
            return self.buffer

        def estimate_bits(self, x):
            return None

    with pytest.raises(PropertyViolation, match="returned a wrong tensor silently") as caught:
        check_codec(Zeroing(), properties=["robustness"], max_examples=8,
                    inputs=st.just(np.array([[5], [7]])))
    assert caught.value.property == "robustness"


def test_a_codec_that_cannot_be_rebuilt_is_reported_not_checked():
    with pytest.warns(PropertyNotChecked, match="cross-process NOT checked"):
        report = check_codec(raw_float32_codec(lossless=True), properties=["cross-process"])
    assert report.checked == []
    assert "pickling raised" in report.not_checked["cross-process"]
    assert "factory" in report.not_checked["cross-process"]


def test_a_declared_factory_rebuilds_the_codec_in_a_fresh_process():
    codec = raw_float32_codec(lossless=True, factory=(f"{__name__}:lossless_raw_codec", (), {}))
    report = check_codec(codec, properties=["cross-process"])
    assert report.checked == ["cross-process"]
    numbers = report.numbers["cross-process"]
    assert numbers["rebuilt_by"] == "factory"
    assert numbers["child"]["PYTHONHASHSEED"] != numbers["here"]["PYTHONHASHSEED"]
    assert numbers["child"]["threads"] != numbers["here"]["threads"]
    broken = raw_float32_codec(lossless=True, factory=(f"{__name__}:broken_factory", (), {}))
    with pytest.raises(PropertyViolation, match="tables file is missing") as caught:
        check_codec(broken, properties=["cross-process"])
    assert caught.value.property == "cross-process"


def test_crafted_headers_catch_an_allocation_in_the_child_and_accept_a_checked_decoder():
    report = check_codec(RawCodec(), properties=["crafted-headers"])
    assert report.checked == ["crafted-headers"]
    assert report.numbers["crafted-headers"]["decoded_in"].startswith("a fresh process")
    with pytest.raises(PropertyViolation, match="beyond the budget") as caught:
        check_codec(RawCodec(greedy=True), properties=["crafted-headers"])
    assert caught.value.property == "crafted-headers"


def test_a_crafted_stream_that_hangs_the_child_is_caught_by_the_watchdog():
    started = time.perf_counter()
    with pytest.raises(PropertyViolation, match="ran past 1 s") as caught:
        check_codec(RawCodec(sleepy=True), properties=["crafted-headers"], decode_timeout=1.0)
    assert caught.value.property == "crafted-headers"
    assert time.perf_counter() - started < 50


def test_crafted_headers_fall_back_to_this_process_without_a_rebuild():
    fields = {"header_fields": {"tokens": (0, "<I"), "channels": (4, "<I")}}
    report = check_codec(raw_float32_codec(lossless=True, **fields),
                         properties=["crafted-headers"])
    assert report.numbers["crafted-headers"]["decoded_in"].startswith("this process")
    greedy = raw_float32_codec(lossless=True, **fields)
    inner = greedy._decode

    def decode(data):
        tokens, channels = struct.unpack("<II", data[:8])
        np.ones(tokens * channels * 4, np.uint8)
        return inner(data)

    greedy._decode = decode
    with pytest.raises(PropertyViolation, match="beyond the budget"):
        check_codec(greedy, properties=["crafted-headers"])


def test_sibling_and_crafted_declarations_are_checked():
    codec = RawCodec()
    with pytest.raises(ValueError, match="sibling: wrote the same bytes"):
        check_codec(codec, properties=["sibling-streams"], sibling=RawCodec(), max_examples=4)
    with pytest.raises(ValueError, match="codec.header_fields"):
        raw_float32_codec(header_fields={"tokens": (0, "<f")})
    with pytest.raises(ValueError, match="codec.factory"):
        raw_float32_codec(factory="module.function")
    with pytest.raises(ValueError, match="crafted_budget_bytes"):
        check_codec(codec, crafted_budget_bytes=10)
    with pytest.warns(PropertyNotChecked, match="declares no sibling"):
        report = check_codec(codec, properties=["sibling-streams"], max_examples=2)
    assert "sibling" in report.not_checked["sibling-streams"]


def test_codec_property_tests_records_what_was_not_checked():
    from rdgap.testing import CodecPropertyTests
    recorded = []
    with pytest.warns(PropertyNotChecked):
        CodecPropertyTests().test_sibling_streams(RawCodec(), lambda k, v: recorded.append(k))
    assert recorded == ["NOT checked: sibling-streams"]
