"""The property suite passes on every codec rdgap ships, with the properties that apply."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from rdgap.codecs.baselines import baseline_codecs
from rdgap.codecs.entropy_models.factorized import ChannelStatistics, FactorizedCodec
from rdgap.codecs.symbol_zstd import ZstdSymbols
from rdgap.codecs.coders.torch_factorized import TorchFactorizedCodec
from rdgap.codecs.transforms.klt import fisher_klt
from rdgap.testing import (HiddenStateAdapter, PropertyNotChecked, PropertyViolation, adapt,
                           check_codec)
from rdgap.testing.crafting import rdgap_container

CHANNELS = 12


def fit_windows(seed: int = 0) -> torch.Tensor:
    """(windows, tokens, channels): Student-t states, spreads over two decades, a big token 0."""
    rng = np.random.default_rng(seed)
    spread = 10.0 ** rng.uniform(0.0, 2.0, CHANNELS)
    windows = rng.standard_t(5.0, (6, 40, CHANNELS)) * spread
    windows[:, 0, 1] += 2.0e4
    return torch.from_numpy(windows.astype(np.float32))


def factorized(family: str, transform: bool = False, seed: int = 0) -> FactorizedCodec:
    windows = fit_windows(seed)
    analysis = synthesis = None
    if transform:
        rest = windows[:, 1:].reshape(-1, CHANNELS).double().numpy()
        klt = fisher_klt(np.cov(rest.T), np.eye(CHANNELS))
        analysis, synthesis = klt.analysis, klt.synthesis
    stats = ChannelStatistics.fit(windows, family, analysis=analysis)
    return FactorizedCodec(stats, 0.4 * stats.scale, 0.4 * stats.first_scale, family,
                           analysis=analysis, synthesis=synthesis)


#: (id, codec factory, sibling factory or None): a fitted codec's sibling is a fit on other data.
SHIPPED = [(c.codec_id, lambda c=c: c, None) for c in baseline_codecs()] + [
    ("factorized-gaussian", lambda: factorized("gaussian"),
     lambda: factorized("gaussian", seed=1)),
    ("factorized-laplace", lambda: factorized("laplace"), lambda: factorized("laplace", seed=1)),
    ("transform-gaussian", lambda: factorized("gaussian", transform=True),
     lambda: factorized("gaussian", transform=True, seed=1)),
    ("factorized-laplace-rans", lambda: TorchFactorizedCodec(factorized("laplace"), lanes=4),
     lambda: TorchFactorizedCodec(factorized("laplace", seed=1), lanes=4)),
    ("zstd-symbols", lambda: ZstdSymbols(factorized("gaussian")),
     lambda: ZstdSymbols(factorized("gaussian", seed=1))),
]
ALWAYS = {"round-trip", "determinism", "cross-process", "output-ownership", "robustness",
          "T1-entropy"}


@pytest.mark.parametrize("make, sibling", [m[1:] for m in SHIPPED], ids=[m[0] for m in SHIPPED])
def test_every_shipped_codec_passes(make, sibling):
    codec = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PropertyNotChecked)
        report = check_codec(codec, max_examples=8, streams=12,
                             sibling=sibling() if sibling else None)
    assert ALWAYS <= set(report.checked), report.not_applicable
    has_model = codec.estimate_bits(fit_windows()[0]) is not None
    assert ("T2-upper" in report.checked) == has_model
    assert ("T2-calibration" in report.checked) == has_model
    # Only the torch rANS coder has a lower constant (its lanes start at 2^31).
    assert ("T2-lower" in report.checked) == isinstance(codec, TorchFactorizedCodec)
    assert ("T3-family" in report.checked) == (codec.codec_id == "factorized-gaussian")
    t1 = report.numbers["T1-entropy"]
    assert t1["mean_bits"] >= t1["entropy_bits"] - t1["radius_bits"] - t1["kraft_bits"]
    # Fitted codecs refuse each other's streams (the parameter hash in the container).
    assert ("sibling-streams" in report.checked) == (sibling is not None)
    # Since issue 17 the adapter declares rdgap's container as crafted streams, and
    # every shipped decoder refuses them (or decodes them exactly) within the budget.
    assert "crafted-headers" in report.checked, report.not_checked.get("crafted-headers")
    # Rebuilt in a fresh process: fitted codecs by save/load (the rANS and zstd-symbols
    # codecs through the FactorizedCodec they wrap), the stateless baselines by pickling.
    assert report.numbers["cross-process"]["rebuilt_by"] == ("load" if sibling else "pickle")


def test_the_factorized_codec_is_rebuilt_by_its_own_save_and_load():
    report = check_codec(factorized("gaussian"), properties=["cross-process"])
    assert report.numbers["cross-process"]["rebuilt_by"] == "load"


def test_crafted_rdgap_container_streams_issue_17_record():
    """What issue 17 fixed, as a hard test: the kit crafts rdgap container streams (a valid
    CRC around a (2^20, channels) shape and others); the int8 codec checks the payload
    size, and the factorized decoder now checks the declared symbol count against its
    payload before allocating (rdgap.codecs.coders.limits), so both pass — and the
    adapter declares those streams itself."""
    int8 = next(c for c in baseline_codecs() if c.codec_id == "int8-absmax")
    report = check_codec(int8, properties=["crafted-headers"], crafted_streams=rdgap_container)
    assert report.checked == ["crafted-headers"]
    report = check_codec(factorized("gaussian"), properties=["crafted-headers"])
    assert report.checked == ["crafted-headers"]
    assert adapt(factorized("gaussian")).crafted_streams is rdgap_container


def test_the_adapter_declares_the_container_and_the_ans_constants():
    from rdgap.codecs.coders import ans
    from rdgap.codecs.coders.container import BitstreamError, header_size
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
