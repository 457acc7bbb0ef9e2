"""Fuzzing the decoders part A of issue 17 owns: the baseline codecs and split-run frames.

Every case is decoded in a fresh process under an address-space budget and a
per-decode timeout (tests/fuzz_harness.py over rdgap.testing.isolation) and must
raise ``BitstreamError`` or decode exactly like the valid stream. Cases: random
damage that the CRC must catch (truncations, bit flips, insertions, deletions,
overwrites, random bytes), and crafted headers **with the checksum recomputed** —
huge or empty shapes, other payload lengths, versions and dimension counts; zstd
payloads that expand past the ratio limit; frame headers whose body length, stream
count, kind, batch or body CRC lie. hypothesis draws them (derandomized, one
example per codec: one child each), so the campaign is the same on every run.
A failure names the case. A longer campaign: ``RDGAP_FUZZ_EXAMPLES=50``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import zstandard
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from fuzz_harness import container_fields, crafted_container, damaged, decode_in_child, operations
from rdgap.codecs.baselines import baseline_codecs
from rdgap.codecs.coders.container import pack
from rdgap.codecs.entropy_models.factorized import ChannelStatistics, FactorizedCodec
from rdgap.codecs.symbol_zstd import ZstdSymbols
from rdgap.distributed.framing import (BATCH, END, FRAME_VERSION, HEADER_BYTES, FrameReader,
                                       header_fields, pack_body, pack_header)
from rdgap.testing.crafting import rdgap_container

EXAMPLES = int(os.environ.get("RDGAP_FUZZ_EXAMPLES", "1"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.generate],  # no shrinking: one child per example
                suppress_health_check=list(HealthCheck))
TOKENS, CHANNELS = 16, 24


def _window() -> torch.Tensor:
    rng = np.random.default_rng(17)
    return torch.from_numpy(rng.standard_t(3.0, (TOKENS, CHANNELS))).float()


def _codecs() -> dict:
    stats = ChannelStatistics(np.zeros(CHANNELS), np.ones(CHANNELS), np.zeros(CHANNELS),
                              np.ones(CHANNELS))
    quantizer = FactorizedCodec(stats, np.full(CHANNELS, 0.25), np.full(CHANNELS, 0.5),
                                "laplace")
    return {c.codec_id: c for c in baseline_codecs()} | {"zstd-symbols": ZstdSymbols(quantizer)}


CODECS = _codecs()
ORIGINAL = TOKENS * CHANNELS
big_shapes = st.tuples(st.integers(0, (1 << 32) - 1), st.integers(0, (1 << 32) - 1)).filter(
    lambda s: s[0] * s[1] == 0 or s[0] * s[1] >= 64 * ORIGINAL)


def _zstd_bombs(codec, width: int) -> list[tuple[str, bytes]]:
    """Valid zstd payloads of zeros for shapes far larger than the payload justifies."""
    cases = []
    for tokens in (1 << 16, 1 << 18):  # 3 and 12 MB of fp16 zeros, > ZSTD_FREE_BYTES
        payload = zstandard.ZstdCompressor(level=3).compress(bytes(width * tokens * CHANNELS))
        cases.append((f"zstd bomb: {len(payload)} bytes declaring ({tokens}, {CHANNELS})",
                      pack(codec.codec_id, codec.digest, (tokens, CHANNELS), payload)))
    lying = zstandard.ZstdCompressor(level=3).compress(bytes(1 << 24))
    cases.append(("zstd frame declaring 16 MiB for the window's shape",
                  pack(codec.codec_id, codec.digest, (TOKENS, CHANNELS), lying)))
    return cases


@pytest.mark.parametrize("name", sorted(CODECS))
@FUZZ
@given(ops=st.lists(operations(), min_size=80, max_size=80),
       shapes=st.lists(big_shapes, min_size=16, max_size=16),
       payload_lengths=st.lists(st.integers(0, (1 << 32) - 1), min_size=6, max_size=6),
       versions=st.lists(st.integers(0, 255), min_size=3, max_size=3),
       dims=st.lists(st.integers(0, 255), min_size=3, max_size=3))
def test_baseline_decoders_name_every_bad_stream_within_budget(name, ops, shapes,
                                                              payload_lengths, versions, dims):
    codec = CODECS[name]
    stream = codec.encode(_window())
    fields = container_fields(stream)
    original = {k: int.from_bytes(stream[o:o + (1 if f == "<B" else 4)], "little")
                for k, (o, f) in fields.items()}
    cases = damaged(stream, ops) + rdgap_container(stream)
    cases += [crafted_container(stream, {"tokens": t, "channels": c}) for t, c in shapes]
    cases += [crafted_container(stream, {"payload_len": n}) for n in payload_lengths
              if n != original["payload_len"]]
    cases += [crafted_container(stream, {"version": v}) for v in versions if v != 1]
    cases += [crafted_container(stream, {"ndim": d}) for d in dims if d != 2]
    if name.startswith("zstd"):
        cases += _zstd_bombs(codec, 2 if name == "zstd-fp16" else 4)
    violation = decode_in_child(codec, stream, cases)
    assert violation is None, violation


def _frame() -> tuple[bytes, list[bytes]]:
    codec = CODECS["int8-absmax"]
    streams = [codec.encode(_window()), codec.encode(2 * _window())]
    body = pack_body(streams)
    return pack_header(BATCH, 0, len(streams), body) + body, streams


frame_fields = st.fixed_dictionaries({
    "kind": st.sampled_from([BATCH, END, 2, 255]), "batch": st.integers(0, 3),
    "streams": st.integers(0, (1 << 32) - 1), "body_len": st.integers(0, (1 << 64) - 1),
    "body_crc": st.integers(0, (1 << 32) - 1), "version": st.sampled_from([FRAME_VERSION, 0, 1, 3]),
})


@FUZZ
@given(ops=st.lists(operations(), min_size=80, max_size=80),
       headers=st.lists(frame_fields, min_size=40, max_size=40),
       lies=st.lists(st.integers(-64, 1 << 34), min_size=10, max_size=10))
def test_frames_name_every_bad_header_or_body_within_budget(ops, headers, lies):
    frame, streams = _frame()
    body = frame[HEADER_BYTES:]
    real = {"kind": BATCH, "batch": 0, "streams": len(streams), "body_len": len(body),
            "body_crc": int.from_bytes(frame[24:28], "little"), "version": FRAME_VERSION}
    cases = damaged(frame, ops)
    for values in headers:
        if values != real:
            header = header_fields(values["kind"], values["batch"], values["streams"],
                                   values["body_len"], values["body_crc"], values["version"])
            cases.append((f"crafted header {values} (header CRC recomputed)", header + body))
    for lie in lies:  # the body length alone lies (issue 17: −4 aborted rank 1, +2³¹ stalled)
        if lie and len(body) + lie >= 0:
            header = header_fields(BATCH, 0, len(streams), len(body) + lie, real["body_crc"])
            cases.append((f"body_len {len(body)} {lie:+d} (header CRC recomputed)",
                          header + body))
    violation = decode_in_child(FrameReader(0, max_body=1 << 20), frame, cases)
    assert violation is None, violation
