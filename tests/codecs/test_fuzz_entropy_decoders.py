"""Fuzzing the entropy-model decoders (issue 17, part B): every fitted codec's decoder.

Each codec — factorized, KLT, deep factorized, klt-context, klt-context-tokens,
klt-hyperprior, and the torch rANS coders of factorized / context / hyperprior —
decodes, in a fresh process under an address-space budget and a per-decode
timeout (tests/fuzz_harness.py over rdgap.testing.isolation, part A's harness,
reused; the torch context and token codecs, which cannot be rebuilt in a
child, in this process), random damage (truncations, flips, insertions, deletions, overwrites,
random bytes) and **crafted headers with the CRC recomputed**: the shapes of
``rdgap.testing.crafting.rdgap_container`` (2²⁰ tokens, zero tokens or channels,
the container's 2³¹-element limit) and hypothesis-drawn token counts from 2 to
2³¹/channels. Each must raise ``BitstreamError`` or decode exactly like the
valid stream. Before part B, a 198-byte factorized stream declaring (2²⁰, 24)
decoded (silently) into a 1.2 GB tensor in 20 s; now the decoders check the
declared symbol count against the payload (rdgap.codecs.coders.limits) before
they allocate. A longer campaign: ``RDGAP_FUZZ_EXAMPLES=20`` or
``benchmarks/fuzz_campaign.py``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from codec_data import lm_like, make_codec
from fuzz_harness import crafted_container, damaged, decode_in_child, operations
from rdgap.codecs.coders.backend import torch_codec
from rdgap.codecs.coders.container import BitstreamError
from rdgap.testing.crafting import rdgap_container
from rdgap.testing.rebuild import recipe

EXAMPLES = int(os.environ.get("RDGAP_FUZZ_EXAMPLES", "1"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.generate],  # no shrinking: one child per example
                suppress_health_check=list(HealthCheck))


def _context(channels: int = 24):
    from rdgap.codecs.entropy_models.context_fit import fit_context_codec
    from rdgap.codecs.entropy_models.factorized import ChannelStatistics

    fit = lm_like(6, 48, channels, 0)
    eye = np.eye(channels)
    stats = ChannelStatistics.fit(fit, "laplace", analysis=eye)
    steps = 0.5 * stats.scale
    return fit, fit_context_codec(fit, stats.mean, eye, eye, steps, stats.first_mean,
                                  stats.first_scale, 0.5 * stats.first_scale, groups=2)


def _deep():
    from rdgap.codecs.entropy_models.deep_factorized import fit_deep_codec

    return fit_deep_codec(make_codec("laplace", transform=True), lm_like(4, 64, 24, 0),
                          steps=20, progress=False)


def _hyperprior():
    from rdgap.codecs.entropy_models.hyperprior_fit import fit_hyperprior

    fit, plain = _context()
    return fit_hyperprior(plain, fit, latents=4, float_steps=20, quantized_steps=10,
                          batch=256, progress=False).codec


def _token_tests():
    """tests/codecs/test_token_context.py as a module (its fitted() and embedded_tokens())."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("test_token_context.py")
    spec = importlib.util.spec_from_file_location("_fuzz_token_context", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tokens():
    return _token_tests().fitted()[0]


def _stream(codec) -> bytes:
    if getattr(codec, "needs_input_ids", False):
        hidden, ids, _ = _token_tests().embedded_tokens(1, TOKENS, seed=5)
        return codec.encode(hidden[0], input_ids=ids[0])
    return codec.encode(lm_like(1, TOKENS, CHANNELS, 5)[0])


#: name -> factory of a fitted codec (small fits: the decoders, not the rates, are tested).
CODECS = {
    "factorized": lambda: make_codec("gaussian"),
    "klt": lambda: make_codec("laplace", transform=True),
    "deep-factorized": _deep,
    "klt-context": lambda: _context()[1],
    "klt-context-tokens": _tokens,
    "klt-hyperprior": _hyperprior,
    "torch-factorized": lambda: torch_codec(make_codec("laplace"), lanes=4),
    "torch-context": lambda: torch_codec(_context()[1], lanes=4),
    "torch-hyperprior": lambda: torch_codec(_hyperprior(), lanes=4),
}
TOKENS, CHANNELS = 16, 24


@pytest.mark.parametrize("name", sorted(CODECS))
@FUZZ
@given(ops=st.lists(operations(), min_size=40, max_size=40),
       tokens=st.lists(st.integers(2, (1 << 31) // CHANNELS), min_size=12, max_size=12))
def test_entropy_decoders_name_every_bad_stream_within_budget(name, ops, tokens):
    codec = CODECS[name]()
    stream = _stream(codec)
    cases = damaged(stream, ops) + rdgap_container(stream)
    cases += [crafted_container(stream, {"tokens": t}) for t in tokens + [1 << 16, 1 << 20]]
    # The torch context coder does not pickle and the token codec's load needs the
    # embedding table: both decode here, in this process.
    if isinstance(recipe(codec), str) or getattr(codec, "needs_input_ids", False):
        expected = codec.decode(stream)
        for label, data in cases:
            try:
                decoded = codec.decode(data)
            except BitstreamError:
                continue
            assert torch.equal(decoded, expected), f"{label}: decoded silently to another tensor"
        return
    violation = decode_in_child(codec, stream, cases)
    assert violation is None, violation


def test_a_crafted_count_fails_before_decoding_and_the_cap_is_configurable(monkeypatch):
    """What the child checks above, in-process and cheaply: the factorized decoder
    refuses 2^16 tokens from a ~200-byte payload by the information bound, and
    2^20 tokens by MAX_STREAM_SYMBOLS; lowering the cap refuses a valid stream's
    shape at both ends (the encoder refuses to write it)."""
    from rdgap.codecs.coders import limits

    codec = make_codec("gaussian")
    window = lm_like(1, TOKENS, CHANNELS, 5)[0]
    stream = codec.encode(window)
    with pytest.raises(BitstreamError, match="payload bits"):
        codec.decode(crafted_container(stream, {"tokens": 1 << 16})[1])
    with pytest.raises(BitstreamError, match="MAX_STREAM_SYMBOLS"):
        codec.decode(crafted_container(stream, {"tokens": 1 << 20})[1])
    assert torch.equal(codec.decode(stream), codec.reconstruct(window))
    monkeypatch.setattr(limits, "MAX_STREAM_SYMBOLS", TOKENS * CHANNELS - 1)
    with pytest.raises(BitstreamError, match="MAX_STREAM_SYMBOLS"):
        codec.decode(stream)
    with pytest.raises(ValueError, match="MAX_STREAM_SYMBOLS"):
        codec.encode(window)


def test_the_torch_bound_is_a_theorem_on_valid_streams():
    """rans_torch.check_lengths accepts every valid stream (n·b <= 8·bytes) and refuses
    one more symbol than the bytes can hold."""
    from rdgap.codecs.coders import limits, rans_torch

    freq = rans_torch.quantize_table(torch.tensor([[0.7, 0.2, 0.1]]), 16)
    rng = np.random.default_rng(0)
    symbols = torch.from_numpy(rng.choice(3, (1, 5000), p=[0.7, 0.2, 0.1]))
    (data,) = rans_torch.encode(symbols, torch.zeros_like(symbols), freq, lanes=4)
    rans_torch.check_lengths([data], 5000, freq)
    bits = float(limits.min_bits(int(freq.max()), 16, 31))
    most = int(8 * len(data) / bits)
    rans_torch.check_lengths([data], most, freq)
    with pytest.raises(BitstreamError, match="payload bits"):
        rans_torch.check_lengths([data], most + 1, freq)
    assert torch.equal(rans_torch.decode([data], 5000, torch.zeros_like(symbols), freq,
                                         lanes=4), symbols)


@pytest.mark.parametrize("family", ["gaussian", "laplace"])
@pytest.mark.parametrize("scale", [0.3, 1.0, 50.0])
def test_the_ans_bound_is_tight_and_sound_on_the_cheapest_valid_stream(family, scale):
    """The cheapest stream a table allows — its most likely symbol n times — decodes
    (the bound never refuses what the encoder wrote) and its payload is within 0.01
    bit per symbol of the bound; a count the payload cannot hold is refused before decoding."""
    from rdgap.codecs.coders import ans
    from rdgap.codecs.entropy_models.tables import discretised_table

    width = max(2, int(8 * scale))
    table = ans.ChannelTable(discretised_table(family, 0.0, scale, width), width)
    n = 20000
    data = ans.encode([np.zeros(n, np.int64)], [table])
    assert np.array_equal(ans.decode(data, [n], [table])[0], np.zeros(n))
    assert n * table.min_bits <= 8 * len(data) + ans.COUNT_SLACK_BITS
    assert 8 * len(data) - n * table.min_bits <= 0.01 * n + ans.COUNT_SLACK_BITS
    most = int((8 * len(data) + ans.COUNT_SLACK_BITS) / table.min_bits)
    with pytest.raises(BitstreamError, match="payload bits"):
        ans.Decoder(data).columns([most + 1], [table])
