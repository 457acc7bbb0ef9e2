"""klt-hyperprior on the torch rANS coder (rdgap.codecs.coders.torch_hyperprior)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from rdgap.codecs.coders import ans
from rdgap.codecs.coders.container import BitstreamError, header_size
from rdgap.codecs.coders.torch_hyperprior import TorchHyperpriorCodec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fitted():
    from rdgap.codecs.fit import FitContext
    from rdgap.codecs.recipes import recipe

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import golden_streams as golden
    finally:
        sys.path.pop(0)
    split, fit_ids, fit_hidden, _, eval_hidden = golden.tiny_input()
    torch.manual_seed(0)
    context = FitContext.build(split, fit_ids, fit_hidden, statistics_windows=6)
    model = recipe("klt-hyperprior").fit(context, fit_ids[:6], golden.LEVEL, cap=None,
                                         **golden.TRAINING["klt-hyperprior"]).codec
    return model, eval_hidden


def test_round_trip_and_batch_equal_single(fitted):
    model, windows = fitted
    coder = TorchHyperpriorCodec(model, lanes=4)
    streams = coder.encode_batch(windows)
    assert streams == [coder.encode(w) for w in windows]
    decoded = coder.decode_batch(streams)
    for b, window in enumerate(windows):
        assert torch.equal(decoded[b], model.reconstruct(window))


def test_the_learned_latents_choose_the_tables(fitted):
    """Zeroing the hyper-synthesis changes the body tables, hence the bytes: the learned
    latents are really what picks the tables (and the decoder follows them)."""
    import copy

    model, windows = fitted
    plain = copy.copy(model)
    plain.synthesis_weight2 = model.synthesis_weight2 * 0
    plain.synthesis_bias2 = model.synthesis_bias2 * 0
    coder, flat = TorchHyperpriorCodec(model, lanes=4), TorchHyperpriorCodec(plain, lanes=4)
    assert coder.encode(windows[0])[-64:] != flat.encode(windows[0])[-64:]


def test_streams_of_the_cpu_and_torch_coders_never_decode_with_each_other(fitted):
    model, windows = fitted
    coder = TorchHyperpriorCodec(model, lanes=4)
    with pytest.raises(BitstreamError):
        coder.decode(model.encode(windows[0]))
    with pytest.raises(BitstreamError):
        model.decode(coder.encode(windows[0]))
    with pytest.raises(ValueError, match="got object"):
        TorchHyperpriorCodec(object())


def test_property_suite_passes(fitted):
    """Round trip bit for bit, determinism, T2 per stream with the torch coder's constants,
    robustness to damaged streams."""
    from rdgap.testing import FunctionCodec, check_codec

    model, _ = fitted
    coder = TorchHyperpriorCodec(model, lanes=2)
    sections = 2
    declared = FunctionCodec(
        coder.encode, coder.decode, coder.estimate_bits, reconstruct=model.reconstruct,
        channels=model.channels, header_bits=8.0 * header_size(coder.codec_id, 2),
        decode_errors=(BitstreamError,), relative_overhead=ans.RELATIVE_OVERHEAD,
        stream_overhead_bits=64.0 * coder.lanes * sections + 32.0 * (sections + 1) + 8,
        lower_overhead_bits=64.0)
    report = check_codec(declared, max_examples=4, streams=8)
    assert {"round-trip", "determinism", "robustness", "T2-upper"} <= set(report.checked)
