"""The rate cap of every reference recipe (rdgap.codecs.quantizers.rate_cap): the cap
theorem on ordinary, heavy and hopeless windows (real bytes), a stream that decodes to
the base's reconstruction where the cap does not bind, crafted headers refused, save /
load by the registry with the cap hashed, and Recipe.fit's default and ``cap=None``.

The source is a stand-in split (a linear softmax readout ``logits = Y W``) over AR(1)
Laplace channels, so that fitting a recipe takes a fraction of a second.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdgap.codecs.coders.container import BitstreamError, header_size, pack, unpack
from rdgap.codecs.fit import FitContext
from rdgap.codecs.quantizers.rate_cap import (RateCappedCodec, apply_cap, cap_binds,
                                              cap_fitted, capable)
from rdgap.codecs.quantizers.window_ladder import FLAG_CAP, FLAG_FALLBACK, UNIT_INDEX
from rdgap.codecs.quantizers.window_ladder import window_header
from rdgap.codecs.recipes import DEFAULT_CAP, RECIPES, load_codec, recipe
from rdgap.codecs.transforms.fisher import fisher_diagonal

from linear_split import KLProbe, LinearReadout

CHANNELS, VOCAB, TOKENS = 12, 24, 32
LEVEL = 0.05


def states(windows: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    spread = np.exp(np.linspace(-1.5, 1.5, CHANNELS))
    noise = rng.laplace(0.0, 1.0, (windows, TOKENS, CHANNELS)) * spread
    x = np.empty_like(noise)
    x[:, 0] = noise[:, 0]
    for t in range(1, TOKENS):
        x[:, t] = 0.6 * x[:, t - 1] + noise[:, t]
    return torch.from_numpy(x).float()


@pytest.fixture(scope="module")
def source():
    split = LinearReadout(CHANNELS, VOCAB)
    hidden = states(36, seed=0)
    fisher = fisher_diagonal(split, hidden[:12], samples=4, full=True)
    context = FitContext(split, hidden[:12], fisher, KLProbe(split, hidden[12:24]))
    return context, hidden[24:]


@pytest.fixture(scope="module")
def fitted(source):
    context, _ = source
    torch.manual_seed(0)
    return {name: recipe(name).fit(context, None, LEVEL)
            for name in ("gaussian-fisher", "klt-context")}


def heavy(window: torch.Tensor, spread: float = 6.0, seed: int = 5) -> torch.Tensor:
    out = window.clone()
    out[1:] += torch.from_numpy(np.random.default_rng(seed).laplace(
        0.0, spread, out[1:].shape).astype(np.float32))
    return out


@pytest.mark.parametrize("name", ["gaussian-fisher", "klt-context"])
def test_recipe_fit_caps_by_default_at_twice_the_fitted_rate(fitted, name):
    result = fitted[name]
    codec = result.codec
    assert isinstance(codec, RateCappedCodec) and result.uncapped is codec.base
    report = codec.fit_report
    assert DEFAULT_CAP == 2.0 == report["cap_multiple"]
    assert codec.cap_bits_per_token == pytest.approx(2 * report["fit_bits_per_token"])
    assert report["fit_windows"] == 12 and report["fit_windows_cap_binds"] == 0
    assert "B_cap" in result.rate_cap and "binds on 0 of 12" in result.rate_cap


@pytest.mark.parametrize("name", ["gaussian-fisher", "klt-context"])
def test_where_the_cap_does_not_bind_the_stream_is_the_base_plus_two_bytes(fitted, source,
                                                                             name):
    codec = fitted[name].codec
    for window in source[1]:
        data = codec.encode(window)
        assert window_header(data) == (0, UNIT_INDEX) and not cap_binds(data)
        base = unpack(codec.base.encode(window), codec.base.codec_id, codec.base.digest)
        assert unpack(data, codec.codec_id, codec.digest).payload[2:] == base.payload
        assert torch.equal(codec.decode(data), codec.base.decode(codec.base.encode(window)))


@pytest.mark.parametrize("name", ["gaussian-fisher", "klt-context"])
def test_the_cap_theorem_holds_on_ordinary_heavy_and_hopeless_windows(fitted, source, name):
    codec = fitted[name].codec
    bound = codec.stream_bytes_bound(TOKENS)
    bound_count = 0
    for i, window in enumerate(source[1]):
        for x in (window, heavy(window, 3.0, i), heavy(window, 30.0, i)):
            data = codec.encode(x)
            assert 8 * len(data) <= max(codec.cap_bits_per_token * TOKENS, 8 * bound)
            assert len(data) <= bound
            assert torch.equal(codec.decode(data), codec.reconstruct(x))
            bound_count += cap_binds(data)
    assert bound_count >= 4  # the heavy windows do exceed the cap (else nothing was tested)


def test_a_binding_window_uses_the_finest_factor_that_fits(fitted, source):
    codec = fitted["gaussian-fisher"].codec
    x = heavy(source[1][0], 3.0)
    assert 8 * len(codec.base.encode(x)) > codec.cap_bits_per_token * TOKENS
    data = codec.encode(x)
    flags, index = window_header(data)
    assert flags == FLAG_CAP and index > UNIT_INDEX
    finer = header_size(codec.codec_id, 2) + 2 + len(codec.at(index - 1)._encode_payload(x))
    assert 8 * finer > codec.cap_bits_per_token * TOKENS


def test_a_window_no_factor_fits_decodes_to_the_means(fitted, source):
    base = fitted["gaussian-fisher"].codec.base
    tight = RateCappedCodec(base, 1.0)
    data = tight.encode(source[1][0])
    assert window_header(data) == (FLAG_CAP | FLAG_FALLBACK, 0)
    assert len(data) == header_size(tight.codec_id, 2) + 2 == tight.stream_bytes_bound(TOKENS)
    decoded = tight.decode(data)
    assert torch.equal(decoded[1], torch.from_numpy(base.stats.mean.astype(np.float32)))
    assert tight.estimate_bits(source[1][0]) == 16


@pytest.mark.parametrize("header, message", [
    (bytes([4, UNIT_INDEX]), "distortion control"),
    (bytes([0, UNIT_INDEX + 3]), "uses factor 1 unless"),
    (bytes([FLAG_CAP, UNIT_INDEX]), "uses factor 1 unless"),
    (bytes([FLAG_CAP, UNIT_INDEX - 2]), "uses factor 1 unless"),
    (bytes([FLAG_CAP | FLAG_FALLBACK, 7]), "fallback"),
    (bytes([FLAG_FALLBACK, 0]), "fallback"),
    (bytes([64, UNIT_INDEX]), "unknown window flags"),
    (bytes([0, 200]), "outside the ladder"),
])
def test_a_crafted_window_header_is_refused(fitted, source, header, message):
    codec = fitted["klt-context"].codec
    window = source[1][0]
    body = unpack(codec.encode(window), codec.codec_id, codec.digest).payload[2:]
    crafted = pack(codec.codec_id, codec.digest, tuple(window.shape), header + body)
    with pytest.raises(BitstreamError, match=message):
        codec.decode(crafted)


def test_streams_of_the_base_or_of_another_cap_are_refused(fitted, source):
    codec = fitted["klt-context"].codec
    window = source[1][0]
    with pytest.raises(BitstreamError):
        codec.decode(codec.base.encode(window))
    other = RateCappedCodec(codec.base, codec.cap_bits_per_token * 1.01)
    assert other.digest != codec.digest
    with pytest.raises(BitstreamError):
        codec.decode(other.encode(window))


@pytest.mark.parametrize("name", ["gaussian-fisher", "klt-context"])
def test_save_and_load_keep_the_cap_and_refuse_an_edited_one(fitted, source, name, tmp_path):
    codec, window = fitted[name].codec, source[1][0]
    codec.save(tmp_path / name)
    loaded = load_codec(tmp_path / name)
    assert type(loaded) is RateCappedCodec and loaded.digest == codec.digest
    assert loaded.cap_bits_per_token == codec.cap_bits_per_token
    assert loaded.fit_report == codec.fit_report
    assert loaded.encode(window) == codec.encode(window)
    config = tmp_path / name / "config.json"
    config.write_text(config.read_text().replace('"cap_bits_per_token": ',
                                                 '"cap_bits_per_token": 1'))
    with pytest.raises(ValueError, match="edited"):
        load_codec(tmp_path / name)


def test_cap_none_switches_it_off_and_says_so(source):
    context, _ = source
    result = recipe("gaussian-fisher").fit(context, None, LEVEL, cap=None)
    assert not isinstance(result.codec, RateCappedCodec) and result.uncapped is None
    assert result.rate_cap.startswith("none (cap=None)")
    tighter = recipe("gaussian-fisher").fit(context, None, LEVEL, cap=1.5)
    assert tighter.codec.fit_report["cap_multiple"] == 1.5


def test_a_codec_that_cannot_be_rescaled_is_left_uncapped_with_the_reason(fitted, source):
    from rdgap.codecs.baselines import baseline_codecs

    fixed = next(c for c in baseline_codecs() if c.codec_id == "fp16")
    result = fitted["gaussian-fisher"]
    stand_in = type(result)(result.variant, fixed, result.calibration, 0.0)
    assert apply_cap(stand_in, source[0], DEFAULT_CAP).rate_cap.startswith("none: a ")


@pytest.mark.parametrize("multiple", [1.0, 0.5, float("nan"), True, "2"])
def test_bad_cap_multiples_are_refused_by_name(fitted, source, multiple):
    result = fitted["gaussian-fisher"]
    plain = type(result)(result.variant, result.uncapped, result.calibration, 0.0)
    with pytest.raises(ValueError, match="cap: expected a multiple > 1"):
        cap_fitted(plain, source[0].probe.hidden, multiple)


def test_bad_codec_arguments_are_refused_by_name(fitted):
    base = fitted["gaussian-fisher"].uncapped
    with pytest.raises(ValueError, match="cap_bits_per_token: expected a finite number > 0"):
        RateCappedCodec(base, float("inf"))
    with pytest.raises(ValueError, match="base: expected a codec whose steps can be scaled"):
        RateCappedCodec(object(), 10.0)


def test_a_fallback_stream_declaring_too_many_values_is_refused(fitted, source):
    """A fallback carries no payload, so its declared shape alone sizes the output: a
    shape over the stream limit is a BitstreamError, never an allocation."""
    from rdgap.codecs.coders.limits import MAX_STREAM_SYMBOLS

    codec = RateCappedCodec(fitted["gaussian-fisher"].codec.base, 1.0)
    tokens = MAX_STREAM_SYMBOLS // CHANNELS + 1
    crafted = pack(codec.codec_id, codec.digest, (tokens, CHANNELS),
                   bytes([FLAG_CAP | FLAG_FALLBACK, 0]))
    with pytest.raises(BitstreamError):
        codec.decode(crafted)


def test_a_fallback_is_refused_beyond_its_token_limit_on_both_sides(fitted, source):
    from rdgap.codecs.quantizers.rate_cap import MAX_FALLBACK_TOKENS

    codec = RateCappedCodec(fitted["gaussian-fisher"].codec.base, 1.0)
    crafted = pack(codec.codec_id, codec.digest, (MAX_FALLBACK_TOKENS + 1, CHANNELS),
                   bytes([FLAG_CAP | FLAG_FALLBACK, 0]))
    with pytest.raises(BitstreamError, match="fallback"):
        codec.decode(crafted)
    ok = pack(codec.codec_id, codec.digest, (MAX_FALLBACK_TOKENS, CHANNELS),
              bytes([FLAG_CAP | FLAG_FALLBACK, 0]))
    assert codec.decode(ok).shape == (MAX_FALLBACK_TOKENS, CHANNELS)
    long_window = source[1][0].repeat(MAX_FALLBACK_TOKENS // TOKENS + 1, 1)
    with pytest.raises(ValueError, match="never coded as a fallback"):
        codec.encode(long_window)


@pytest.mark.parametrize("name", ["gaussian-fisher", "klt-context"])
def test_the_rate_prediction_counts_every_byte_outside_the_payload(fitted, source, name):
    """Where the cap does not bind, a capped stream is the container, the window
    header and the base's payload, so the bits the rate prediction adds to its
    modelled payload are exactly ``len(stream) − len(base payload)`` (they were once
    dropped for capped codecs: predictions 3–5 bits/token low on the quick run)."""
    from rdgap.validation.stream_range import fixed_header_bits, stream_bound_parts

    codec = fitted[name].codec
    window = source[1][0]
    tokens, width = window.shape
    data = codec.encode(window)
    assert not cap_binds(data)
    base = unpack(codec.base.encode(window), codec.base.codec_id, codec.base.digest)
    parts = stream_bound_parts(codec, None, tokens, width)
    assert fixed_header_bits(codec, parts, tokens) * tokens == pytest.approx(
        8 * (len(data) - len(base.payload)))
