"""The held-out rate interval with B = the rate cap (issue 14, items 1, 3 and 4).

- ``rdgap validate``'s range hook (:func:`rdgap.validation.stream_range.stream_bound_parts`)
  gives ``B`` = the cap of a :class:`~rdgap.codecs.quantizers.rate_cap.RateCappedCodec`,
  and the held-out statistics use the betting interval with that ``B``.
- What the ±10 % target needs (THEORY.md T8, "the range is the limit"): on a constant
  sample no valid interval beats ``x̄ ± (1 − (δ/2)^{1/N})·(x̄ or B − x̄)``; the betting
  interval respects both limits, and at ``N = 32`` the lower one alone is −10.9 %, so
  ±10 % needs ``N ≥ 36`` documents whatever the cap.
- Coverage of the procedure (≥ 1 − δ, exact binomial test, 1,000 trials each) on sources
  shaped like the real per-document rates: the reference run's per-document spread on
  SmolLM2 and MiniLM (coefficient of variation 0.6–5.3 %, from its Student-t intervals;
  per-document values are not stored in results.json, so they are not bootstrapped),
  a skewed (lognormal) law, and a nearly tight two-point law with 2 % of documents at the
  cap; clipped at the cap ``B = 2 ×`` the fitted rate. The test has power: the interval
  shrunk to half its width is rejected on the two-point source.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rdgap.bounds import betting_interval
from rdgap.validation.coverage import coverage_test
from rdgap.validation.rate_bounds import _heldout
from rdgap.validation.stream_range import stream_bound_bits, stream_bound_parts

DELTA = 0.05
CAP = 2.0  # B = 2 × the fitted rate (Recipe.fit's default); rates in units of the fit rate
TRIALS = 1000


def floor_of_any_interval(mean: float, bound: float, documents: int, delta: float = DELTA):
    """``(lower, upper)`` no valid two-sided interval can beat on a sample constant at
    ``mean`` in ``[0, bound]`` (THEORY.md T8)."""
    share = 1.0 - (delta / 2) ** (1.0 / documents)
    return mean - share * mean, mean + share * (bound - mean)


class _Capped:  # what stream_bound_parts reads of a capped codec
    codec_id = "rc-factorized-gaussian"

    def __init__(self, cap_bits_per_token: float):
        self.cap_bits_per_token = cap_bits_per_token

    def stream_bytes_bound(self, tokens: int) -> int:
        return max(int(self.cap_bits_per_token * tokens // 8), 40)


def test_validate_range_of_a_capped_codec_is_the_cap():
    codec = _Capped(2 * 1152.0)
    assert stream_bound_parts(codec, None, 256, 576) == {"rate_cap": 2304.0}
    assert stream_bound_bits(codec, None, 256, 576) == 2304.0


def test_a_real_capped_codec_gives_its_cap_as_the_range():
    from rdgap.codecs.entropy_models.factorized import ChannelStatistics, FactorizedCodec
    from rdgap.codecs.quantizers.rate_cap import RateCappedCodec
    import torch

    hidden = torch.from_numpy(np.random.default_rng(0).normal(size=(4, 32, 8))).float()
    stats = ChannelStatistics.fit(hidden, "gaussian")
    codec = RateCappedCodec(FactorizedCodec(stats, 0.5 * stats.scale, 0.5 * stats.first_scale,
                                            "gaussian"), 100.0)
    bits = stream_bound_bits(codec, None, 32, 8)
    assert bits == 8 * codec.stream_bytes_bound(32) / 32 <= 100.0
    assert all(8 * len(codec.encode(w)) / 32 <= bits for w in hidden)


def test_heldout_statistics_with_the_cap_as_range():
    rates = np.random.default_rng(1).normal(1152.0, 0.02 * 1152.0, size=129)
    s = _heldout(rates, CAP * 1152.0, DELTA)
    low, high = s["heldout_rate_interval"]
    assert s["heldout_rate_range"] == CAP * 1152.0 and s["heldout_documents"] == 129
    assert (low, high) == pytest.approx(betting_interval(rates, DELTA, CAP * 1152.0))
    mean = rates.mean()
    assert mean - low < 0.05 * mean and high - mean < 0.05 * mean  # ±5 % at N = 129


@pytest.mark.parametrize("documents", [5, 32, 47, 64, 129])
@pytest.mark.parametrize("cap", [1.5, 2.0])
def test_betting_respects_the_range_limit_on_a_constant_sample(documents, cap):
    """A valid interval cannot beat the limit; an interval that did would be invalid."""
    low, high = betting_interval(np.ones(documents), DELTA, cap)
    floor_low, floor_high = floor_of_any_interval(1.0, cap, documents)
    assert low <= floor_low + 1e-9 and high >= floor_high - 1e-9


def test_what_the_ten_percent_target_needs():
    # N = 32 (the reference run): the lower end alone is −10.9 % below, whatever the cap
    low, high = floor_of_any_interval(1.0, 2.0, 32)
    assert 1 - low == pytest.approx(0.109, abs=5e-4) and high - 1 == pytest.approx(0.109,
                                                                                abs=5e-4)
    needed = math.ceil(math.log(DELTA / 2) / math.log(0.9))
    assert needed == 36 and 1 - floor_of_any_interval(1.0, 2.0, needed)[0] <= 0.1
    assert 1 - floor_of_any_interval(1.0, 2.0, needed - 1)[0] > 0.1
    # the betting interval on the reference spread (CV 5.3 %) at N = 64 and 129, B = 2x̄
    rng = np.random.default_rng(3)
    for documents, within in ((64, 0.08), (129, 0.045)):
        rates = np.clip(rng.normal(1.0, 0.053, size=documents), 0, CAP)
        low, high = betting_interval(rates, DELTA, CAP)
        mean = rates.mean()
        assert max(mean - low, high - mean) < within * mean, (documents, low, high)


def _sources(rng, documents: int):
    """Per-document rates (units of the fit rate) shaped like the real ones, clipped at the
    cap, with their exact means: ``{name: (samples (TRIALS, N), mean)}``."""
    reference = np.clip(rng.normal(1.0, 0.053, (TRIALS, documents)), 0, CAP)
    skew = np.clip(rng.lognormal(-0.0032, 0.08, (TRIALS, documents)), 0, CAP)
    tight = np.where(rng.random((TRIALS, documents)) < 0.02, CAP, 0.98)
    return {"reference spread (CV 5.3 %)": (reference, 1.0),  # clipping at 2: P < 1e-70
            "lognormal (σ = 0.08)": (skew, 1.0),
            "two-point (2 % at the cap)": (tight, 0.98 * 0.98 + 0.02 * CAP)}


@pytest.mark.parametrize("documents", [32, 64, 129])
def test_coverage_of_the_capped_heldout_interval(documents):
    rng = np.random.default_rng(documents)
    for name, (samples, truth) in _sources(rng, documents).items():
        low, high = betting_interval(samples, DELTA, CAP)
        held = (low <= truth) & (truth <= high)
        result = coverage_test(held, DELTA, alpha=0.01,
                               slack=np.minimum(truth - low, high - truth))
        assert result.trials == TRIALS and not result.contradicted, (name, result)


def test_the_coverage_test_has_power_on_the_tight_source():
    rng = np.random.default_rng(7)
    samples, truth = _sources(rng, 129)["two-point (2 % at the cap)"]
    low, high = betting_interval(samples, DELTA, CAP)
    centre, half = (low + high) / 2, 0.5 * (high - low) / 2
    assert coverage_test(np.abs(centre - truth) <= half, DELTA, alpha=0.01).contradicted


# ------------------------------------------------- the defect: a stream longer than B
def _capped_rows(monkeypatch=None, lie: float = 1.0):
    """One row of a capped factorized codec through validate's statistics (B = the cap);
    ``lie < 1``: the codec states a cap that ``lie`` times its real streams' bound (an
    injected stream longer than the cap, i.e. a broken cap theorem)."""

    from rdgap.codecs.quantizers.rate_cap import RateCappedCodec

    from .statistics_data import fitted_codec, gaussian_windows, row, run_statistics

    rng = np.random.default_rng(0)
    fit = gaussian_windows(rng, 24, 32, [1.0, 2.0, 3.0])
    evaluation = gaussian_windows(rng, 24, 32, [1.0, 2.0, 3.0])
    base = fitted_codec(fit)
    rate = np.mean([8.0 * len(RateCappedCodec(base, 1e9).encode(w)) / 32 for w in fit])
    codec = RateCappedCodec(base, CAP * rate)
    if lie != 1.0:
        true_bound = RateCappedCodec.stream_bytes_bound
        monkeypatch.setattr(RateCappedCodec, "stream_bytes_bound",
                            lambda self, tokens: int(lie * true_bound(self, tokens)))
    statistics = run_statistics(codec, fit, evaluation)
    return codec, [row(statistics, 1, codec=codec.codec_id)]


def test_the_heldout_claim_passes_with_b_the_cap():
    from rdgap.validation.claims import _heldout_claim

    codec, rows = _capped_rows()
    s = rows[0]["statistics"]
    assert s["rate_interval_bound_parts"] == {"rate_cap": 8.0 * codec.stream_bytes_bound(32)
                                              / 32}
    assert s["heldout_rate_range"] == s["rate_interval_bound"] <= codec.cap_bits_per_token
    claim = _heldout_claim("synthetic", rows)
    assert claim["status"] == "PASS", claim["reason"]
    assert [h["met"] for h in claim["hypotheses"] if "[0, B]" in h["text"]] == [True]


def test_a_stream_longer_than_the_cap_fails_the_heldout_claim(monkeypatch):
    """Injected defect: the codec's streams are twice what its stated cap allows. The
    statistics find a document above B and the held-out claim FAILs (before this, the
    row was silently left out of the claim)."""
    from rdgap.validation.claims import _heldout_claim

    _, rows = _capped_rows(monkeypatch, lie=0.5)
    s = rows[0]["statistics"]
    assert s["heldout_rate_upper"] is None
    assert s["rate_interval_method"].startswith("none: a document's rate")
    claim = _heldout_claim("synthetic", rows)
    assert claim["status"] == "FAIL" and "exceeds B" in claim["reason"], claim["reason"]
    assert [h["met"] for h in claim["hypotheses"] if "[0, B]" in h["text"]] == [False]
    # the same from a numeric field, should the statistics carry the largest document
    numeric = dict(rows[0], statistics=dict(s, rate_interval_method=None,
                                            rate_document_max=2 * s["rate_interval_bound"]))
    assert _heldout_claim("synthetic", [numeric])["status"] == "FAIL"


def test_t2_proven_length_bounds_capped_streams_where_the_cap_binds_or_not():
    """validate's proven T2 check covers the capped codecs (else t2_proven_length would
    silently leave their rows out): every payload ≤ the proven bound, and a bound 3 %
    too low (an estimate 3 % low) is exceeded somewhere."""
    import torch

    from rdgap.codecs.coders.container import header_size
    from rdgap.codecs.quantizers.rate_cap import RateCappedCodec, cap_binds
    from rdgap.validation.stream_length import proven_payload_bound

    from .statistics_data import fitted_codec, gaussian_windows

    rng = np.random.default_rng(2)
    windows = gaussian_windows(rng, 8, 64, [1.0, 2.0, 3.0, 0.5])
    base = fitted_codec(windows, step_factor=0.1)
    rate = np.mean([8.0 * len(base.encode(w)) / 64 for w in windows])
    codec = RateCappedCodec(base, rate)  # binds on about half of the windows
    binds, low = 0, 0
    for window in torch.cat([windows, 3 * windows[:2]]):
        data = codec.encode(window)
        payload = 8 * (len(data) - header_size(codec.codec_id, 2))
        estimate = codec.estimate_bits(window)
        bound = proven_payload_bound(codec, window, estimate, {})
        assert bound is not None and payload <= bound
        low += payload > proven_payload_bound(codec, window, 0.97 * estimate, {})
        binds += cap_binds(data)
    assert binds >= 2 and low >= 1


@pytest.mark.parametrize("argv, expected", [([], 2.0), (["--rate-cap", "1.5"], 1.5),
                                            (["--rate-cap", "none"], None)])
def test_validate_takes_the_rate_cap(argv, expected):
    from rdgap.cli import _validate_config, build_parser

    args = build_parser().parse_args(["validate", "--out", "o"] + argv)
    config = _validate_config(args)
    assert config.rate_cap == expected
    config.check()


@pytest.mark.parametrize("argv, message", [(["--rate-cap", "x"], "--rate-cap: expected"),
                                           (["--rate-cap", "1"], "rate_cap: expected a mult")])
def test_a_bad_rate_cap_is_refused_by_name(argv, message):
    from rdgap.cli import _validate_config, build_parser

    args = build_parser().parse_args(["validate", "--out", "o"] + argv)
    with pytest.raises(ValueError, match=message):
        _validate_config(args).check()
