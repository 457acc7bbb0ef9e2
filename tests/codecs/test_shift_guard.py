"""The shift-guarded codec (rdgap.codecs.quantizers.shift_guard): the chosen codec in the
stream, streams of other codecs and crafted headers refused, the detector fitted on fit
windows flags an injected shift and keeps its false-alarm rate on fresh fit-like windows,
the level held on the shifted source where the primary misses it, the rate theorem with
both sub-codecs capped, save / load, the property suite, and the fitter's checks.

The source (tests/shift_guard_source.py) is test_window_control.py's: a linear softmax
read-out and a KL probe (ΔCE's expectation, no label noise) over AR(1) Laplace channels
whose spreads span two decades, so that the Fisher-whitened KLT has components far below
the step; the shift gives those components 5× their energy on the evaluation windows
(issue 19's mechanism).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdgap.codecs.coders.container import BitstreamError, header_size, pack, unpack
from rdgap.codecs.quantizers.rate_cap import RateCappedCodec
from rdgap.codecs.quantizers.window_ladder import FLAG_CAP
from rdgap.codecs.quantizers.shift_guard import (USE_FALLBACK, USE_PRIMARY, ShiftDetector,
                                                 ShiftGuardedCodec)
from rdgap.codecs.quantizers.shift_guard_fit import fit_detector
from rdgap.codecs.recipes import load_codec, recipe

from linear_split import KLProbe
from shift_guard_source import FRESH, LEVEL, PROBE, QUIET, TOKENS, shifted
from shift_guard_source import fitted, source  # noqa: F401 (the module's fixtures)

def test_round_trip_on_both_paths_with_the_choice_in_the_stream(fitted, source):
    codec = fitted.codec
    assert fitted.variant == "klt-context-sg" and codec.codec_id == "sg-klt-context-laplace"
    other, _ = shifted(codec.primary, source[2])
    for window, which, sub in ((source[2][0], USE_PRIMARY, codec.primary),
                               (other[0], USE_FALLBACK, codec.fallback)):
        data = codec.encode(window)
        payload = unpack(data, codec.codec_id, codec.digest).payload
        assert payload[0] == which and payload[1:] == sub._encode_payload(window)
        assert torch.equal(codec.decode(data), sub.reconstruct(window))
        assert torch.equal(codec.decode(data), codec.reconstruct(window))
        assert codec.encode(window) == data
        assert codec.estimate_bits(window) == pytest.approx(sub.estimate_bits(window) + 8)
    single = source[2][1][:1]  # one token: nothing to score, the primary codes it
    assert codec.detector.score(single) == 0.0
    assert torch.equal(codec.decode(codec.encode(single)), codec.primary.reconstruct(single))


def test_streams_of_the_sub_codecs_and_of_another_detector_are_refused(fitted, source):
    codec, window = fitted.codec, source[2][0]
    for sub in (codec.primary, codec.fallback):
        with pytest.raises(BitstreamError, match="written by codec"):
            sub.decode(codec.encode(window))
        with pytest.raises(BitstreamError, match="written by codec"):
            codec.decode(sub.encode(window))
    d = codec.detector
    other = ShiftGuardedCodec(codec.primary, codec.fallback, ShiftDetector(
        d.mean, d.quiet_analysis, d.quiet_variances, d.quantile, 1.01 * d.threshold))
    with pytest.raises(BitstreamError, match="parameters or tables differ"):
        other.decode(codec.encode(window))
    swapped = ShiftGuardedCodec(codec.fallback, codec.primary, codec.detector)
    assert swapped.digest != codec.digest


@pytest.mark.parametrize("header, message", [
    (b"", "empty payload"),
    (bytes([2]), "names neither"),
    (bytes([0xFF]), "names neither"),
])
def test_a_crafted_window_header_is_refused(fitted, source, header, message):
    codec, window = fitted.codec, source[2][0]
    payload = unpack(codec.encode(window), codec.codec_id, codec.digest).payload
    body = header + (payload[1:] if header else b"")
    with pytest.raises(BitstreamError, match=message):
        codec.decode(pack(codec.codec_id, codec.digest, tuple(window.shape), body))


def test_a_payload_sent_to_the_other_sub_codec_is_refused(fitted, source):
    """The fallback's byte in front of the primary's payload (and the reverse): the
    sub-codec that reads it refuses a payload it did not write."""
    codec, window = fitted.codec, source[2][0]
    other, _ = shifted(codec.primary, source[2][:1])
    for w in (window, other[0]):
        payload = unpack(codec.encode(w), codec.codec_id, codec.digest).payload
        flipped = bytes([USE_PRIMARY + USE_FALLBACK - payload[0]]) + payload[1:]
        with pytest.raises(BitstreamError):
            codec.decode(pack(codec.codec_id, codec.digest, tuple(w.shape), flipped))


def test_the_detector_flags_the_shift_and_keeps_its_false_alarm_rate(fitted, source):
    """Fitted on the fit windows only: at least 7/8 of the windows of the injected shift
    are flagged (all of them at 25× the energy); of 240 fresh windows of the fit law at most the predicted 1/(n+1) (n = 16 probe windows)
    plus three binomial standard errors are."""
    codec, (_, context, evaluation, fresh) = fitted.codec, source
    report = codec.fit_report
    assert report["detector_probe_windows"] == PROBE
    assert codec.detector.threshold == pytest.approx(1.1 * report["detector_probe_max"])
    assert not any(codec.detector.flags(w) for w in context.probe.hidden)
    other, moved = shifted(codec.primary, evaluation)
    assert moved >= 3
    assert np.mean([codec.detector.flags(w) for w in other]) >= 7 / 8
    assert all(codec.detector.flags(w) for w in shifted(codec.primary, evaluation, 5.0)[0])
    rate = report["detector_false_alarm_prediction"]
    assert rate == pytest.approx(1 / (PROBE + 1))
    alarms = np.mean([codec.detector.flags(w) for w in fresh])
    assert alarms <= rate + 3 * np.sqrt(rate * (1 - rate) / FRESH)


def test_the_level_holds_on_the_shifted_source_where_the_primary_misses_it(fitted, source):
    """Issue 19's defect, injected: the primary (klt-context as calibrated) misses the
    level on the shifted windows by more than 2 s.e.; the guarded codec meets it within
    2 s.e., and on fit-like windows it is the primary."""
    split, _, evaluation, _ = source
    codec = fitted.codec
    other, _ = shifted(codec.primary, evaluation)
    probe = KLProbe(split, other)
    primary, primary_se = probe.estimate(codec.primary.reconstruct)
    guarded, guarded_se = probe.estimate(codec.reconstruct)
    assert primary > LEVEL + 2 * primary_se
    assert guarded <= LEVEL + 2 * guarded_se
    same = KLProbe(split, evaluation)
    assert same.estimate(codec.reconstruct) == same.estimate(codec.primary.reconstruct)


def test_both_sub_codecs_capped_bound_every_stream(source):
    """``Recipe.fit(shift_guard=...)`` caps both sub-codecs by default, and the rate
    theorem holds: every stream is at most
    max_s(bound_s − H_s) + H + 1 bytes, on ordinary, shifted and heavy windows; an
    uncapped guard declares no bound."""
    torch.manual_seed(0)
    result = recipe("klt-context").fit(source[1], None, LEVEL, shift_guard="gaussian-fisher",
                                       quiet_fraction=QUIET)  # the default cap: 2×
    assert result.variant == "klt-context-sg" and "B_cap" in result.rate_cap
    capped = result.codec
    assert isinstance(capped.primary, RateCappedCodec)
    assert isinstance(capped.fallback, RateCappedCodec)
    evaluation = source[2]
    heavy = evaluation[:4].clone()
    heavy[:, 1:] += torch.from_numpy(np.random.default_rng(5).laplace(
        0.0, 8.0, heavy[:, 1:].shape).astype(np.float32))
    other, _ = shifted(capped.primary.base, evaluation[:4])
    own = header_size(capped.codec_id, 2) + 1
    for window in (*evaluation[:4], *other, *heavy):
        data = capped.encode(window)
        bound = capped.stream_bytes_bound(TOKENS)
        assert len(data) <= bound
        assert bound == max(c.stream_bytes_bound(TOKENS) - header_size(c.codec_id, 2) + own
                            for c in (capped.primary, capped.fallback))
    assert {capped.choose(w)[0] for w in (*evaluation[:4], *other)} == {USE_PRIMARY,
                                                                          USE_FALLBACK}
    assert all(capped.choose(w)[1].decide(w)[1] & FLAG_CAP for w in heavy)  # the cap binds
    uncapped = ShiftGuardedCodec(capped.primary.base, capped.fallback.base, capped.detector)
    assert not hasattr(uncapped, "stream_bytes_bound")


def test_save_and_load_by_the_registry(fitted, source, tmp_path):
    codec, window = fitted.codec, source[2][0]
    codec.save(tmp_path / "sg")
    loaded = load_codec(tmp_path / "sg")
    assert isinstance(loaded, ShiftGuardedCodec) and loaded.digest == codec.digest
    assert loaded.decode(codec.encode(window)).equal(codec.decode(codec.encode(window)))
    assert loaded.fit_report["detector_threshold"] == codec.detector.threshold


def test_the_property_suite(fitted):
    from rdgap.testing import check_codec

    codec, d = fitted.codec, fitted.codec.detector
    sibling = ShiftGuardedCodec(codec.primary, codec.fallback, ShiftDetector(
        d.mean, d.quiet_analysis, d.quiet_variances, d.quantile, 2 * d.threshold))
    report = check_codec(codec, max_examples=4, streams=8, sibling=sibling)
    assert {"round-trip", "determinism", "robustness", "T2-upper",
            "sibling-streams"} <= set(report.checked)


@pytest.mark.parametrize("option, value, message", [
    ("slack", 0.9, "slack: expected a multiple ≥ 1"),
    ("quantile", 1.5, "quantile: expected"),
    ("quiet_fraction", 0.0, "quiet_fraction: expected"),
])
def test_the_fitter_refuses_bad_options_by_name(source, option, value, message):
    with pytest.raises(ValueError, match=message):
        fit_detector(source[1], **{option: value})


def test_the_codec_refuses_mismatched_parts(fitted):
    codec, d = fitted.codec, fitted.codec.detector
    narrow = ShiftDetector(d.mean[:8], d.quiet_analysis[:, :8], d.quiet_variances,
                           d.quantile, d.threshold)
    with pytest.raises(ValueError, match="primary: codes 16 channels, the detector 8"):
        ShiftGuardedCodec(codec.primary, codec.fallback, narrow)
    with pytest.raises(ValueError, match="threshold: expected"):
        ShiftDetector(d.mean, d.quiet_analysis, d.quiet_variances, d.quantile, 0.0)
