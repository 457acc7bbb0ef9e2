"""Stored streams of every baseline format and of a split-run frame, decoded here (issue 17).

tests/codecs/golden_streams.json (issue 16) holds digests of what the fitted recipes
*encode*; this file's golden_baseline_streams.json holds the bytes themselves of the
baseline codecs (fp16, bf16, int8/int4 absmax, zstd-fp16, zstd-symbols) and of a
split-run BATCH frame, with what they decode to. A change of the container or frame
wire format, of ``FORMAT_VERSION`` / ``FRAME_VERSION`` or of a codec's parameter hash
fails here. Regenerate deliberately with
``python tests/codecs/test_golden_baseline_streams.py --write``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rdgap.codecs.baselines import baseline_codecs
from rdgap.codecs.coders import container
from rdgap.codecs.coders.container import BitstreamError
from rdgap.codecs.entropy_models.factorized import ChannelStatistics, FactorizedCodec
from rdgap.codecs.symbol_zstd import ZstdSymbols
from rdgap.distributed.framing import (BATCH, HEADER_BYTES, pack_body, pack_header,
                                       unpack_body, unpack_header)

GOLDEN = Path(__file__).with_name("golden_baseline_streams.json")


def golden_input() -> torch.Tensor:
    """(3, 5) states with both signs, a wide range and an exact zero."""
    values = (torch.arange(15, dtype=torch.float64) - 7) * 0.37
    return (values ** 3).reshape(3, 5).float()


def golden_codecs() -> dict:
    channels = 5
    stats = ChannelStatistics(np.zeros(channels), np.ones(channels), np.zeros(channels),
                              np.ones(channels))
    quantizer = FactorizedCodec(stats, np.full(channels, 0.25), np.full(channels, 0.5),
                                "laplace")
    return {c.codec_id: c for c in baseline_codecs()} | {"zstd-symbols": ZstdSymbols(quantizer)}


def record() -> dict:
    """Each codec's stream of :func:`golden_input` and its decode (float32 bytes), hex."""
    x, out = golden_input(), {}
    for name, codec in golden_codecs().items():
        stream = codec.encode(x)
        decoded = codec.decode(stream).numpy().astype("<f4")
        out[name] = {"stream": stream.hex(), "decoded": decoded.tobytes().hex()}
    streams = [bytes.fromhex(out[name]["stream"]) for name in ("int8-absmax", "fp16")]
    body = pack_body(streams)
    out["split-run frame"] = {"frame": (pack_header(BATCH, 3, len(streams), body) + body).hex()}
    return out


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


def test_every_baseline_format_has_a_golden_stream(golden):
    assert set(golden) == set(golden_codecs()) | {"split-run frame"}


@pytest.mark.parametrize("name", sorted(golden_codecs()))
def test_a_stored_stream_decodes_to_its_stored_values(golden, name):
    codec = golden_codecs()[name]
    stream = bytes.fromhex(golden[name]["stream"])
    decoded = codec.decode(stream).numpy().astype("<f4")
    assert decoded.tobytes().hex() == golden[name]["decoded"]
    assert codec.encode(golden_input()) == stream  # the encoder still writes these bytes


def test_stored_streams_carry_format_version_1(golden):
    """The version byte of the container; this rdgap reads exactly FORMAT_VERSION."""
    for name in golden_codecs():
        assert bytes.fromhex(golden[name]["stream"])[4] == container.FORMAT_VERSION == 1


def test_the_stored_frame_unpacks_to_its_streams(golden):
    frame = bytes.fromhex(golden["split-run frame"]["frame"])
    header = unpack_header(frame[:HEADER_BYTES], 3)
    streams = unpack_body(frame[HEADER_BYTES:], header)
    assert streams == [bytes.fromhex(golden[n]["stream"]) for n in ("int8-absmax", "fp16")]
    assert pack_header(BATCH, 3, 2, frame[HEADER_BYTES:]) == frame[:HEADER_BYTES]
    assert frame[4] == 2  # FRAME_VERSION


def _declaring(shape: tuple[int, ...], payload: bytes = b"\0" * 16) -> bytes:
    codec = golden_codecs()["fp16"]
    return container.pack(codec.codec_id, codec.digest, shape, payload)


@pytest.mark.parametrize("shape", [((1 << 16) + 1, 1 << 15), (1 << 20, 1 << 12), ((1 << 32) - 1, 2)])
def test_a_header_declaring_more_than_2_31_elements_is_refused(shape):
    """The container's 2³¹-element guard: removing it used to survive every test."""
    with pytest.raises(BitstreamError, match="more than the 2147483648 an rdgap stream may hold"):
        container.unpack(_declaring(shape), "fp16", golden_codecs()["fp16"].digest)


def test_the_guard_sits_exactly_at_2_31_elements():
    fp16 = golden_codecs()["fp16"]
    assert container.unpack(_declaring((1 << 16, 1 << 15)), "fp16", fp16.digest).shape == \
        (1 << 16, 1 << 15)  # exactly 2³¹: accepted by the container (the codec checks the payload)
    with pytest.raises(BitstreamError, match="more than the"):
        container.unpack(_declaring(((1 << 16) + 1, 1 << 15)), "fp16", fp16.digest)


if __name__ == "__main__" and "--write" in sys.argv:
    GOLDEN.write_text(json.dumps(record(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
