"""The rate-capped and window-controlled formats on the torch rANS coder
(rdgap.codecs.coders.torch_window): ``torch_codec`` returns it for every wrapper; its
stream is the window header and the torch payload of the chosen ladder entry, byte for
byte; the wrapper's decision on its own bytes (the cap theorem holds for the streams it
writes, the distortion search picks the CPU coder's factor); a stream decodes with the
same fitted recipe rebuilt elsewhere (saved and loaded) to the CPU coder's reconstruction;
every bitstream check of the CPU wrappers raises here too.

The source is test_rate_cap's stand-in split (a linear softmax readout over AR(1) Laplace
channels, 32 tokens × 12 channels), so that fitting a recipe takes about a second.
"""

from __future__ import annotations

import pytest
import torch

from rdgap.codecs.coders.backend import torch_codec
from rdgap.codecs.coders.container import BitstreamError, header_size, pack, unpack
from rdgap.codecs.coders.torch_window import TorchWindowCodec
from rdgap.codecs.quantizers.rate_cap import RateCappedCodec
from rdgap.codecs.quantizers.window_control import WindowControlledCodec
from rdgap.codecs.quantizers.window_ladder import (FLAG_CAP, FLAG_FALLBACK, UNIT_INDEX,
                                                   window_header)
from rdgap.codecs.recipes import load_codec, recipe

from codec_data import assert_damage_is_detected, codec_test_module


# test_rate_cap's stand-in source (fixture ``source``: FitContext, 12 held-out windows),
# its heavy windows and sizes
_rate_cap = codec_test_module("test_rate_cap")
source, heavy = _rate_cap.source, _rate_cap.heavy
CHANNELS, TOKENS, LEVEL = _rate_cap.CHANNELS, _rate_cap.TOKENS, _rate_cap.LEVEL
LANES = 4
#: Rate-capped (Recipe.fit's default) and window-controlled recipes, on a factorized and
#: a context base each.
NAMES = ("gaussian-fisher", "klt-context", "klt-laplace-wc", "klt-context-wc")


@pytest.fixture(scope="module")
def fitted(source):
    out = {}
    for name in NAMES:
        torch.manual_seed(0)
        codec = recipe(name).fit(source[0], None, LEVEL).codec
        out[name] = codec, torch_codec(codec, lanes=LANES)
    return out


def decision(codec, window) -> tuple[int, int]:
    chosen = codec.decide(window)
    return chosen[:2] if isinstance(chosen, tuple) else (chosen.index, chosen.flags)


def assert_same_reconstruction(decoded, expected, factorized: bool) -> None:
    """Bit for bit for a factorized base; to float rounding in the context model's
    prediction (test_torch_context's tolerance) for a context base."""
    if factorized:
        assert torch.equal(decoded, expected)
    else:
        atol = 1e-6 * float(expected.abs().max())
        assert torch.allclose(decoded, expected, rtol=4 * 2.0 ** -24, atol=atol)


@pytest.mark.parametrize("name", NAMES)
def test_torch_codec_codes_every_wrapper(fitted, name):
    codec, coder = fitted[name]
    assert isinstance(codec, WindowControlledCodec if name.endswith("-wc") else RateCappedCodec)
    assert type(coder) is TorchWindowCodec and coder.codec_id == codec.codec_id + "-rans"
    assert coder.base.codec_id == codec.base.codec_id + "-rans" and coder.lanes == LANES
    assert coder.digest != codec.digest and torch_codec(codec, lanes=LANES).digest == coder.digest
    assert torch_codec(codec, lanes=LANES + 1).digest != coder.digest


@pytest.mark.parametrize("name", NAMES)
def test_the_stream_is_the_header_and_the_torch_payload_of_the_chosen_entry(fitted, source,
                                                                            name):
    """Byte for byte: container(header + torch payload of ``wrapper.at(index)``), that
    payload the one a torch coder built from scratch for that ladder entry writes; where
    neither stream meets the cap (ordinary windows) the decision is the CPU coder's."""
    codec, coder = fitted[name]
    for window in source[1][:3]:
        data = coder.encode(window)
        index, flags = window_header(data)[::-1]
        assert (index, flags) == decision(coder, window) == decision(codec, window)
        assert not flags & FLAG_CAP
        alone = torch_codec(codec.at(index), lanes=LANES)
        base = unpack(alone.encode(window), alone.codec_id, alone.digest).payload
        assert unpack(data, coder.codec_id, coder.digest).payload == bytes([flags, index]) + base
        assert coder.encode(window) == data                       # deterministic
        assert coder.encode_batch(window[None]) == [data]


@pytest.mark.parametrize("name", NAMES)
def test_a_stream_decodes_with_the_same_recipe_loaded_elsewhere(fitted, source, name,
                                                                tmp_path):
    """The fitted recipe saved and loaded (another process, another device) builds the
    same torch coder, which decodes the stream to the CPU coder's reconstruction."""
    codec, coder = fitted[name]
    codec.save(tmp_path / name)
    other = torch_codec(load_codec(tmp_path / name), lanes=LANES)
    assert other.digest == coder.digest
    factorized = "context" not in name
    for window in source[1][:2]:
        data = coder.encode(window)
        decoded = other.decode(data)
        assert decoded.shape == window.shape and decoded.dtype == torch.float32
        assert_same_reconstruction(decoded, codec.decode(codec.encode(window)), factorized)
        assert_same_reconstruction(decoded, coder.reconstruct(window), factorized)
        assert other.decode_windows([data])[0].equal(decoded)


def test_cpu_and_torch_streams_are_never_confused(fitted, source):
    codec, coder = fitted["klt-context"]
    window = source[1][0]
    with pytest.raises(BitstreamError, match="rc-klt-context-laplace-rans"):
        codec.decode(coder.encode(window))
    with pytest.raises(BitstreamError, match="cannot be decoded by 'rc-klt-context-laplace-rans'"):
        coder.decode(codec.encode(window))
    with pytest.raises(BitstreamError, match="parameters or tables differ"):
        torch_codec(codec, lanes=1).decode(coder.encode(window))
    with pytest.raises(BitstreamError):       # the base's own torch stream
        coder.decode(coder.base.encode(window))


@pytest.mark.parametrize("name", ["gaussian-fisher", "klt-laplace-wc", "klt-context"])
def test_the_cap_theorem_holds_on_the_torch_streams(fitted, source, name):
    """On heavy windows the cap binds on the torch coder's own bytes: every stream within
    ``stream_bytes_bound`` (this container), the finest factor that fits chosen (the next
    finer one's real torch stream is over the cap), decoded to what ``reconstruct`` says."""
    codec, coder = fitted[name]
    budget = codec.cap_bits_per_token * TOKENS
    windows = source[1][:1] if name == "klt-context" else source[1][:3]
    binds = 0
    for i, window in enumerate(windows):
        for x in (heavy(window, 3.0, i), heavy(window, 30.0, i)):
            data = coder.encode(x)
            assert 8 * len(data) <= max(budget, 8 * coder.stream_bytes_bound(TOKENS))
            assert len(data) <= coder.stream_bytes_bound(TOKENS)
            flags, index = window_header(data)
            assert torch.equal(coder.decode(data), coder.reconstruct(x)) or \
                "context" in name
            if flags & FLAG_CAP and not flags & FLAG_FALLBACK:
                binds += 1
                finer = len(coder.at(index - 1).encode(x)) - header_size(
                    coder.at(index - 1).codec_id, 2)
                assert 8 * (header_size(coder.codec_id, 2) + 2 + finer) > budget
    assert binds >= 1      # the heavy windows do exceed the cap (else nothing was tested)


@pytest.mark.parametrize("name", ["gaussian-fisher", "klt-laplace-wc"])
def test_a_window_no_factor_fits_is_the_fallback(fitted, source, name):
    codec, _ = fitted[name]
    if isinstance(codec, RateCappedCodec):
        tight = RateCappedCodec(codec.base, 1.0)
    else:
        tight = WindowControlledCodec(codec.base, codec.fisher_matrix, codec.fisher_first,
                                      codec.level, codec.margin, 1.0)
    coder = torch_codec(tight, lanes=LANES)
    window = source[1][0]
    data = coder.encode(window)
    assert window_header(data) == (FLAG_CAP | FLAG_FALLBACK, 0)
    assert len(data) == header_size(coder.codec_id, 2) + 2 == coder.stream_bytes_bound(TOKENS)
    assert torch.equal(coder.decode(data), tight.decode(tight.encode(window)))
    assert coder.estimate_bits(window) == 16


@pytest.mark.parametrize("name, header, message", [
    ("klt-context", bytes([4, UNIT_INDEX]), "distortion control"),
    ("klt-context", bytes([0, UNIT_INDEX + 3]), "uses factor 1 unless"),
    ("klt-context", bytes([FLAG_CAP, UNIT_INDEX]), "uses factor 1 unless"),
    ("klt-context", bytes([FLAG_CAP, UNIT_INDEX - 2]), "uses factor 1 unless"),
    ("klt-context", bytes([FLAG_CAP | FLAG_FALLBACK, 7]), "fallback"),
    ("klt-context", bytes([FLAG_FALLBACK, 0]), "fallback"),
    ("klt-context", bytes([64, UNIT_INDEX]), "unknown window flags"),
    ("klt-context", bytes([0, 200]), "outside the ladder"),
    ("klt-context-wc", bytes([0x80, UNIT_INDEX]), "unknown window flags"),
    ("klt-context-wc", bytes([0, 97]), "outside the ladder"),
    ("klt-context-wc", bytes([FLAG_FALLBACK, 3]), "fallback"),
    ("klt-laplace-wc", bytes([FLAG_FALLBACK, 0]) + b"x", "fallback"),
    ("klt-laplace-wc", bytes([1]), "window header"),
    ("klt-laplace-wc", b"", "window header"),
])
def test_a_crafted_window_header_is_refused(fitted, source, name, header, message):
    """The CPU wrappers' header checks (one helper, split_window_payload) on torch streams:
    a fallback with a payload, flags a rate-capped encoder never writes, a truncated
    header, all BitstreamError before any work."""
    _, coder = fitted[name]
    window = source[1][0]
    payload = unpack(coder.encode(window), coder.codec_id, coder.digest).payload
    body = header if len(header) != 2 or header[0] & FLAG_FALLBACK else header + payload[2:]
    with pytest.raises(BitstreamError, match=message):
        coder.decode(pack(coder.codec_id, coder.digest, tuple(window.shape), body))


@pytest.mark.parametrize("name", ["gaussian-fisher", "klt-context-wc"])
def test_damaged_and_truncated_streams_raise(fitted, source, name):
    _, coder = fitted[name]
    data = coder.encode(source[1][1])
    assert_damage_is_detected(coder, data, cut_every=9, flips=25, seed=4)
    # damage inside the base payload under a valid container: the base coder's checks
    stream = unpack(data, coder.codec_id, coder.digest)
    for cut in (3, 7, len(stream.payload) - 1):
        with pytest.raises(BitstreamError):
            coder.decode(pack(coder.codec_id, coder.digest, stream.shape, stream.payload[:cut]))
    with pytest.raises(BitstreamError, match="channels"):
        coder.decode(pack(coder.codec_id, coder.digest, (TOKENS, CHANNELS + 1), stream.payload))


@pytest.mark.parametrize("name", ["klt-context", "klt-context-wc"])
def test_a_rescaled_joint_model_shares_the_base_coders_body_tables(fitted, name):
    """The torch coder of a ladder entry reuses the base coder's integer body tables (they
    depend on the table index and the rounding only): the same tables and hash as a coder
    built from scratch for that entry, and its own head tables (position 0's step
    moves)."""
    codec, coder = fitted[name]
    for index in (UNIT_INDEX - 5, UNIT_INDEX + 9):
        shared, alone = coder.at(index), torch_codec(codec.at(index), lanes=LANES)
        assert shared.body_tables is coder.base.body_tables
        assert torch.equal(shared.body_tables.freq, alone.body_tables.freq)
        assert torch.equal(shared.body_tables.widths, alone.body_tables.widths)
        assert torch.equal(shared._sections[0].freq, alone._sections[0].freq)
        assert not torch.equal(shared._sections[0].freq, coder.base._sections[0].freq)
        assert shared.digest == alone.digest


def test_bad_arguments_are_refused_by_name(fitted):
    with pytest.raises(ValueError, match="wrapper: expected a RateCappedCodec"):
        TorchWindowCodec(object())
    _, coder = fitted["gaussian-fisher"]
    with pytest.raises(ValueError, match="hidden: expected 12 channels"):
        coder.encode(torch.zeros(4, 5))
    with pytest.raises(ValueError, match="hidden: contains NaN"):
        coder.encode(torch.full((4, 12), float("nan")))
