"""The shift guard over the primaries it once refused (issue 19): a primary that codes token
ids (klt-context-tokens) and a window-controlled one (-wc).

Token ids: the guarded codec needs the ids exactly when its primary does, passes them to
the primary only, round-trips on both paths (the ids read back from the stream where the
primary coded the window, none where the fallback did), refuses missing or bad ids by
name on every window and a stream of a guard with another embedding table, holds the
level on the shifted source where the primary misses it — and a detector that never flags
is caught there. Window control: the -wc primary keeps its own per-window header and cap
inside the guard, shifted windows go to the fallback, and the rate theorem bounds every
stream (both sub-codecs bounded).

The source and the shift are test_shift_guard.py's (tests/shift_guard_source.py); the token primary is
``klt-context-tokens`` fitted on the guarded ``klt-context``'s transform and steps with
random ids and a random embedding table (so it misses the level on the shifted windows
as ``klt-context`` does).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdgap.codecs.coders.container import BitstreamError, header_size, unpack
from rdgap.codecs.entropy_models.token_context import fit_token_context_codec
from rdgap.codecs.quantizers.rate_cap import RateCappedCodec
from rdgap.codecs.quantizers.shift_guard import (USE_FALLBACK, USE_PRIMARY, ShiftDetector,
                                                 ShiftGuardedCodec)
from rdgap.codecs.quantizers.shift_guard_fit import fit_guarded
from rdgap.codecs.quantizers.window_control import WindowControlledCodec
from rdgap.codecs.recipes import load_codec, recipe

from linear_split import KLProbe
from shift_guard_source import LEVEL, QUIET, TOKENS, shifted
from shift_guard_source import fitted, source  # noqa: F401 (the module's fixtures)

IDS, WIDTH = 50, 4


def token_ids(windows: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, IDS, (windows, TOKENS)))


def embedding(seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(IDS, WIDTH)).astype(np.float32)


def token_primary(context, base, table: np.ndarray):
    """``klt-context-tokens`` on ``base``'s (a fitted klt-context) transform and steps."""
    arrays = {name: getattr(base, name) for name in (
        "mean", "analysis", "synthesis", "step", "first_mean", "first_scale", "first_step")}
    return fit_token_context_codec(context.hidden, token_ids(context.hidden.shape[0], 1),
                                   table, **arrays, rounding=base.rounding)


@pytest.fixture(scope="module")
def guarded(fitted, source):
    plain = fitted.codec
    primary = token_primary(source[1], plain.primary, embedding())
    return ShiftGuardedCodec(primary, plain.fallback, plain.detector)


def test_the_guard_needs_ids_exactly_when_its_primary_does(guarded, fitted):
    assert guarded.needs_input_ids and guarded.primary.needs_input_ids
    assert guarded.codec_id == "sg-klt-context-tokens"
    assert not fitted.codec.needs_input_ids and not ShiftGuardedCodec.needs_input_ids


def test_round_trip_with_ids_on_both_paths(guarded, source):
    evaluation = source[2]
    ids = token_ids(2, 9)
    other, _ = shifted(guarded.primary, evaluation[:2])
    for window, window_ids, which, sub in ((evaluation[0], ids[0], USE_PRIMARY, guarded.primary),
                                           (other[1], ids[1], USE_FALLBACK, guarded.fallback)):
        given = {"input_ids": window_ids} if sub is guarded.primary else {}
        data = guarded.encode(window, input_ids=window_ids)
        payload = unpack(data, guarded.codec_id, guarded.digest).payload
        assert payload[0] == which and payload[1:] == sub._encode_payload(window, **given)
        if sub is guarded.primary:  # the primary's own stream's payload, ids included
            own = sub.encode(window, input_ids=window_ids)
            assert payload[1:] == unpack(own, sub.codec_id, sub.digest).payload
        hidden, back_ids = guarded.decode_with_ids(data)
        assert torch.equal(hidden, sub.reconstruct(window, **given))
        assert torch.equal(guarded.decode(data), hidden)
        assert torch.equal(hidden, guarded.reconstruct(window, input_ids=window_ids))
        if sub is guarded.primary:
            assert torch.equal(back_ids, window_ids)
        else:
            assert back_ids is None  # the fallback's payload holds no ids
        assert guarded.estimate_bits(window, input_ids=window_ids) == pytest.approx(
            sub.estimate_bits(window, **given) + 8)


def test_missing_or_bad_ids_are_refused_by_name_on_every_window(guarded, fitted, source):
    evaluation = source[2]
    other, _ = shifted(guarded.primary, evaluation[:1])
    ids = token_ids(1, 9)[0]
    for window in (evaluation[0], other[0]):  # the primary's window and the fallback's
        for call in (guarded.encode, guarded.estimate_bits, guarded.reconstruct):
            with pytest.raises(ValueError, match="input_ids: expected the window's token ids"):
                call(window)
            with pytest.raises(ValueError, match=f"input_ids: expected {TOKENS} integer"):
                call(window, input_ids=ids[:-1])
            with pytest.raises(ValueError, match=f"input_ids: expected ids in \\[0, {IDS}\\)"):
                call(window, input_ids=ids + IDS)
    with pytest.raises(ValueError, match="input_ids: the primary klt-context-laplace codes no"):
        fitted.codec.encode(evaluation[0], input_ids=ids)


def test_a_stream_needs_the_guard_with_the_same_embedding_table(guarded, fitted, source):
    """The ids are read from the stream, never from the caller; a guard whose primary
    predicts from another table (or codes no ids) refuses the stream."""
    window, ids = source[2][0], token_ids(1, 9)[0]
    data = guarded.encode(window, input_ids=ids)
    other_table = ShiftGuardedCodec(token_primary(source[1], fitted.codec.primary,
                                                  embedding(seed=4)),
                                    guarded.fallback, guarded.detector)
    assert other_table.digest != guarded.digest
    for other in (other_table, fitted.codec):
        with pytest.raises(BitstreamError):
            other.decode(data)


def test_a_fallback_that_codes_ids_is_refused(guarded, source):
    with pytest.raises(ValueError, match="fallback: a codec that codes token ids"):
        ShiftGuardedCodec(guarded.fallback, guarded.primary, guarded.detector)
    with pytest.raises(ValueError, match="shift_guard: 'klt-context-tokens' codes token ids"):
        fit_guarded(source[1], None, LEVEL, primary="klt-laplace", fallback="klt-context-tokens")
    with pytest.raises(ValueError, match="input_ids: the primary 'klt-context-tokens'"):
        recipe("klt-context-tokens").fit(source[1], None, LEVEL, shift_guard="gaussian-fisher")


def _estimate(split, hidden, ids, reconstruct):
    """The KL probe's (mean, s.e.) of ``reconstruct(window, input_ids=...)`` on ``hidden``."""
    queue = iter(ids)
    return KLProbe(split, hidden).estimate(lambda w: reconstruct(w, input_ids=next(queue)))


def test_the_level_holds_on_the_shifted_source_and_a_silent_detector_is_caught(guarded,
                                                                               source):
    """The token primary misses the level on the shifted windows by more than 2 s.e.; the
    guarded codec meets it within 2 s.e. A guard whose detector never flags (the defect,
    injected) misses it as the primary does, so the check above would catch it."""
    split, evaluation = source[0], source[2]
    other, _ = shifted(guarded.primary, evaluation)
    ids = token_ids(other.shape[0], 11)
    primary, primary_se = _estimate(split, other, ids, guarded.primary.reconstruct)
    level, level_se = _estimate(split, other, ids, guarded.reconstruct)
    assert primary > LEVEL + 2 * primary_se
    assert level <= LEVEL + 2 * level_se
    d = guarded.detector
    silent = ShiftGuardedCodec(guarded.primary, guarded.fallback, ShiftDetector(
        d.mean, d.quiet_analysis, d.quiet_variances, d.quantile, 1e30))
    missed, missed_se = _estimate(split, other, ids, silent.reconstruct)
    assert missed > LEVEL + 2 * missed_se


def test_save_and_load_pass_the_embedding_to_the_primary_only(guarded, source, tmp_path):
    window, ids = source[2][0], token_ids(1, 9)[0]
    guarded.save(tmp_path / "sg")
    loaded = load_codec(tmp_path / "sg", embedding=embedding())
    assert isinstance(loaded, ShiftGuardedCodec) and loaded.digest == guarded.digest
    assert loaded.needs_input_ids
    data = guarded.encode(window, input_ids=ids)
    assert torch.equal(loaded.decode(data), guarded.decode(data))
    with pytest.raises(ValueError, match="embedding: expected the token-embedding table"):
        load_codec(tmp_path / "sg")


@pytest.fixture(scope="module")
def controlled(source):
    torch.manual_seed(0)
    return recipe("klt-laplace-wc").fit(source[1], None, LEVEL, shift_guard="gaussian-fisher",
                                        quiet_fraction=QUIET)  # the default cap: 2×


def test_a_window_controlled_primary_keeps_its_control_and_every_stream_is_bounded(
        controlled, fitted, source):
    """Recipe.fit(shift_guard=...) guards a -wc recipe: its own cap (the fallback capped
    at 2×), its two-byte window header inside the guard's payload, shifted windows coded
    by the fallback, and the rate theorem (every stream ≤ max_s(bound_s − H_s) + H + 1)
    on ordinary, shifted and heavy windows. (The shift: klt-context's quiet components,
    the detector's, which does not depend on the primary.)"""
    codec = controlled.codec
    assert controlled.variant == "klt-laplace-wc-sg"
    assert codec.codec_id == "sg-" + codec.primary.codec_id and codec.codec_id.startswith("sg-wc-")
    assert isinstance(codec.primary, WindowControlledCodec)
    assert isinstance(codec.fallback, RateCappedCodec)
    assert "window-controlled codec's own cap" in controlled.rate_cap
    assert not codec.needs_input_ids
    evaluation = source[2][:4]
    other, _ = shifted(fitted.codec.primary, evaluation)
    heavy = evaluation.clone()
    heavy[:, 1:] += torch.from_numpy(np.random.default_rng(5).laplace(
        0.0, 8.0, heavy[:, 1:].shape).astype(np.float32))
    own = header_size(codec.codec_id, 2) + 1
    bound = codec.stream_bytes_bound(TOKENS)
    assert bound == max(c.stream_bytes_bound(TOKENS) - header_size(c.codec_id, 2) + own
                        for c in (codec.primary, codec.fallback))
    chosen = set()
    for window in (*evaluation, *other, *heavy):
        data = codec.encode(window)
        assert len(data) <= bound
        which, sub = codec.choose(window)
        chosen.add(which)
        payload = unpack(data, codec.codec_id, codec.digest).payload
        assert payload[1:] == sub._encode_payload(window)  # the sub-codec's own header
        assert torch.equal(codec.decode(data), sub.reconstruct(window))
    assert chosen == {USE_PRIMARY, USE_FALLBACK}
    strong, _ = shifted(fitted.codec.primary, evaluation, 5.0)  # 25× the energy
    assert all(codec.choose(w)[0] == USE_FALLBACK for w in strong)
    assert all(codec.choose(w)[0] == USE_PRIMARY for w in source[1].probe.hidden)


def test_the_property_suite_with_ids(guarded, fitted, source):
    """check_codec(..., input_ids=) drives the guarded token codec: its windows reach both
    paths (the shifted ones the fallback), its streams round-trip with the ids read back,
    and corrupted streams are refused. Without the ids the kit refuses it by name."""
    from rdgap.testing import PROPERTIES, check_codec

    def ids_for(hidden):
        return torch.arange(np.shape(hidden)[0]) % IDS

    plain, d = fitted.codec, fitted.codec.detector
    sibling = ShiftGuardedCodec(guarded.primary, plain.fallback, ShiftDetector(
        d.mean, d.quiet_analysis, d.quiet_variances, d.quantile, 2 * d.threshold))
    chosen = [p for p in PROPERTIES if p != "cross-process"]  # loading needs the table
    report = check_codec(guarded, properties=chosen, max_examples=4, streams=8,
                         sibling=sibling, input_ids=ids_for)
    assert {"round-trip", "determinism", "robustness", "T2-upper",
            "sibling-streams"} <= set(report.checked)
    with pytest.raises(ValueError, match="input_ids: sg-klt-context-tokens codes"):
        check_codec(guarded, properties=["round-trip"])
    with pytest.raises(ValueError, match=r"input_ids: sg-klt-context-laplace codes no token ids; leave input_ids out"):
        check_codec(plain, properties=["round-trip"], input_ids=ids_for)


def test_the_torch_coder_of_the_guarded_token_codec(guarded, source):
    """torch_codec of the guard codes the primary's windows with the torch token coder
    (ids in its payload, read back) and the fallback's without ids, choosing as the CPU
    codec does; it refuses missing ids by name."""
    from rdgap.codecs.coders.backend import torch_codec

    coder = torch_codec(guarded, lanes=4)
    assert coder.needs_input_ids and coder.codec_id == "sg-klt-context-tokens-rans"
    ids = token_ids(2, 9)
    other, _ = shifted(guarded.primary, source[2][:2])
    for window, window_ids, which in ((source[2][0], ids[0], USE_PRIMARY),
                                      (other[1], ids[1], USE_FALLBACK)):
        data = coder.encode(window, input_ids=window_ids)
        assert unpack(data, coder.codec_id, coder.digest).payload[0] == which
        hidden, back = coder.decode_with_ids(data)
        cpu = guarded.decode(guarded.encode(window, input_ids=window_ids))
        assert torch.allclose(hidden, cpu, atol=1e-5)
        assert torch.equal(coder.decode(data), hidden)
        if which == USE_PRIMARY:
            assert torch.equal(back, window_ids)
        else:
            assert back is None
    with pytest.raises(ValueError, match="input_ids: expected the window's token ids"):
        coder.encode(source[2][0])
