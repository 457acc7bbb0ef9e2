"""The property suite passes on every codec rdgap ships, with the properties that apply."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdgap.codecs.baselines import baseline_codecs
from rdgap.codecs.factorized import ChannelStatistics, FactorizedCodec
from rdgap.codecs.symbol_zstd import ZstdSymbols
from rdgap.codecs.torch_factorized import TorchFactorizedCodec
from rdgap.codecs.transform import fisher_klt
from rdgap.testing import HiddenStateAdapter, adapt, check_codec

CHANNELS = 12


def fit_windows(seed: int = 0) -> torch.Tensor:
    """(windows, tokens, channels): Student-t states, spreads over two decades, a big token 0."""
    rng = np.random.default_rng(seed)
    spread = 10.0 ** rng.uniform(0.0, 2.0, CHANNELS)
    windows = rng.standard_t(5.0, (6, 40, CHANNELS)) * spread
    windows[:, 0, 1] += 2.0e4
    return torch.from_numpy(windows.astype(np.float32))


def factorized(family: str, transform: bool = False) -> FactorizedCodec:
    windows = fit_windows()
    analysis = synthesis = None
    if transform:
        rest = windows[:, 1:].reshape(-1, CHANNELS).double().numpy()
        klt = fisher_klt(np.cov(rest.T), np.eye(CHANNELS))
        analysis, synthesis = klt.analysis, klt.synthesis
    stats = ChannelStatistics.fit(windows, family, analysis=analysis)
    return FactorizedCodec(stats, 0.4 * stats.scale, 0.4 * stats.first_scale, family,
                           analysis=analysis, synthesis=synthesis)


SHIPPED = [(c.codec_id, lambda c=c: c) for c in baseline_codecs()] + [
    ("factorized-gaussian", lambda: factorized("gaussian")),
    ("factorized-laplace", lambda: factorized("laplace")),
    ("transform-gaussian", lambda: factorized("gaussian", transform=True)),
    ("factorized-laplace-rans", lambda: TorchFactorizedCodec(factorized("laplace"), lanes=4)),
    ("zstd-symbols", lambda: ZstdSymbols(factorized("gaussian"))),
]
ALWAYS = {"round-trip", "determinism", "robustness", "T1-entropy"}


@pytest.mark.parametrize("make", [m for _, m in SHIPPED], ids=[i for i, _ in SHIPPED])
def test_every_shipped_codec_passes(make):
    codec = make()
    report = check_codec(codec, max_examples=8, streams=12)
    assert ALWAYS <= set(report.checked), report.not_applicable
    has_model = codec.estimate_bits(fit_windows()[0]) is not None
    assert ("T2-upper" in report.checked) == has_model
    assert ("T2-calibration" in report.checked) == has_model
    # Only the torch rANS coder has a lower constant (its lanes start at 2^31).
    assert ("T2-lower" in report.checked) == isinstance(codec, TorchFactorizedCodec)
    assert ("T3-family" in report.checked) == (codec.codec_id == "factorized-gaussian")
    t1 = report.numbers["T1-entropy"]
    assert t1["mean_bits"] >= t1["entropy_bits"] - t1["radius_bits"] - t1["kraft_bits"]


def test_the_adapter_declares_the_container_and_the_ans_constants():
    from rdgap.codecs import ans
    from rdgap.codecs.container import BitstreamError, header_size
    codec = factorized("gaussian")
    adapter = adapt(codec)
    assert isinstance(adapter, HiddenStateAdapter)
    assert adapter.header_bits == 8 * header_size(codec.codec_id, 2)
    assert adapter.relative_overhead == ans.RELATIVE_OVERHEAD
    assert adapter.stream_overhead_bits == ans.STREAM_OVERHEAD_BITS
    assert adapter.lower_overhead_bits == float("inf")
    assert adapter.decode_errors == (BitstreamError,)
    source = adapter.entropy_source()
    symbols = source.sample(np.random.default_rng(3))
    assert np.array_equal(codec.quantize(source.encodable(symbols)), symbols)
    assert source.family_bound_bits >= source.entropy_bits   # T3 bounds H(S) from above


@pytest.mark.parametrize("bits", [8, 4])
def test_the_absmax_reconstruction_is_the_codecs_bit_for_bit(bits):
    codec = next(c for c in baseline_codecs() if c.codec_id == f"int{bits}-absmax")
    adapter = adapt(codec)
    x = fit_windows(1)[0]
    x[3, :] = 0.0                  # a token of zeros (scale 0)
    x[4, 2] = -1e-3                # rounds to −0 before the integer cast
    decoded = codec.decode(codec.encode(x))
    assert decoded.numpy().tobytes() == adapter.reconstruct(x).numpy().tobytes()
    source = adapter.entropy_source()
    sample = source.encodable(source.sample(np.random.default_rng(0)))
    assert torch.equal(codec.decode(codec.encode(sample)), sample)
