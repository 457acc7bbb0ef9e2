"""The step-scale calibration: least-squares power-law choice, probe determinism."""

import math

import numpy as np
import pytest
import torch

from rdgap.codecs.quantizers.calibrate import DistortionProbe, calibrate_scale, power_law
from rdgap.codecs.fit import FitContext, fit_codec
from rdgap.split import SplitModel


def _noisy_square(seed: int, sigma: float, c: float = 0.3):
    """ΔCE = c·α² times a fresh log-normal draw per call: the noise of one
    particular quantization error, independent across scales."""
    rng = np.random.default_rng(seed)
    return lambda alpha: c * alpha ** 2 * math.exp(sigma * rng.standard_normal())


@pytest.mark.parametrize("sigma", [0.05, 0.15])
def test_fitted_choice_is_closer_to_the_target_than_bracketing(sigma):
    """Over 40 seeds (initial scale off by a log-normal factor, as T7's prediction is),
    the true ΔCE at the scale chosen from the power-law fit is closer to the target
    than at the largest scale that happened to measure ≤ target, with fewer probes."""
    target, c = 0.03, 0.3
    errors = {"fit": [], "bracket": []}
    probes = {"fit": [], "bracket": []}
    for seed in range(40):
        start = math.sqrt(target / c) * math.exp(0.3 * np.random.default_rng(1000 + seed)
                                                 .standard_normal())
        for method, ratio in (("fit", 1.02), ("bracket", 1.08)):
            result = calibrate_scale(_noisy_square(seed, sigma, c), target, start,
                                     evaluations=6, ratio=ratio, method=method)
            assert result.met and result.delta_ce <= target
            errors[method].append(abs(math.log(c * result.scale ** 2 / target)))
            probes[method].append(len(result.trace))
    assert np.mean(errors["fit"]) < 0.85 * np.mean(errors["bracket"])
    assert np.mean(probes["fit"]) < np.mean(probes["bracket"])


def test_power_law_recovers_exponent_and_scale():
    trace = [(a, 0.2 * a ** 2.5) for a in (0.5, 0.7, 1.0, 1.3)]
    scale, exponent = power_law(trace, 0.1, prior_weight=0.0)
    assert exponent == pytest.approx(2.5) and 0.2 * scale ** 2.5 == pytest.approx(0.1)
    scale, exponent = power_law(trace, 0.1)  # the ridge pulls p slightly towards 2
    assert 2.4 < exponent < 2.5 and 0.2 * scale ** 2.5 == pytest.approx(0.1, rel=0.02)
    # one point: THEORY.md T7's exponent 2 (the ridge prior) decides
    scale, exponent = power_law([(2.0, 0.4)], 0.1)
    assert exponent == pytest.approx(2.0) and scale == pytest.approx(1.0)
    with pytest.raises(ValueError, match="trace"):
        power_law([(1.0, 0.0)], 0.1)
    with pytest.raises(ValueError, match="target"):
        power_law([(1.0, 0.1)], 0.0)


def test_fit_method_verifies_its_choice_and_validates_arguments():
    result = calibrate_scale(lambda a: 0.3 * a ** 2, 0.03, initial=2.0, evaluations=6,
                             ratio=1.02)
    assert result.met and result.delta_ce <= 0.03
    assert (result.scale, result.delta_ce) in result.trace
    assert math.sqrt(0.1) / 1.02 <= result.scale <= math.sqrt(0.1) * 1.0001
    assert result.exponent == pytest.approx(2.0) and len(result.trace) <= 3
    unreachable = calibrate_scale(lambda a: 1.0, 0.03, initial=1.0, evaluations=4)
    assert not unreachable.met and len(unreachable.trace) == 4
    for bad, match in (({"ratio": 1.0}, "ratio"), ({"method": "x"}, "method"),
                       ({"evaluations": 0}, "evaluations")):
        with pytest.raises(ValueError, match=match):
            calibrate_scale(lambda a: a, 0.03, 1.0, **bad)


def test_probe_is_deterministic_across_batching_and_threads(tiny_model):
    """The same codec gives the same ΔCE bit for bit whatever the batch size of the
    probe's suffix passes or the number of torch threads."""
    split = SplitModel(tiny_model, 2)
    ids = torch.randint(3, 128, (6, 16), generator=torch.Generator().manual_seed(3))
    hidden = split.prefix(ids)
    noise = torch.randn(hidden.shape[1:], generator=torch.Generator().manual_seed(4)) * 0.05

    def reconstruct(window):
        return window + noise

    threads = torch.get_num_threads()
    values = []
    try:
        for batch, count in ((1, 1), (4, 1), (6, 2), (3, 2)):
            torch.set_num_threads(count)
            values.append(DistortionProbe(split, ids, hidden, batch_size=batch)
                          .delta_ce(reconstruct))
    finally:
        torch.set_num_threads(threads)
    assert values[0] != 0.0 and all(v == values[0] for v in values)
    documents = torch.tensor([0, 0, 1, 1, 2, 2])
    mean, stderr = DistortionProbe(split, ids, hidden, documents=documents).estimate(reconstruct)
    assert mean == values[0] and stderr > 0
    seen = []

    def reconstruct_with_ids(window, window_ids):  # each window must come with its own ids
        seen.append(window_ids)
        return window + noise * (window_ids[0] % 2 + 1)

    probe = DistortionProbe(split, ids, hidden)
    probe.delta_ce(reconstruct_with_ids, with_ids=True)
    assert torch.equal(torch.stack(seen), ids)
    with pytest.raises(ValueError, match="documents"):
        DistortionProbe(split, ids, hidden, documents=documents[:4])


def _tiny_context(model, windows: int):
    """Split 2 of the tiny model, ``windows`` fit windows of 24 tokens (2 for statistics)."""
    split = SplitModel(model, 2)
    ids = torch.randint(3, 128, (windows, 24), generator=torch.Generator().manual_seed(5))
    hidden = split.prefix(ids)
    context = FitContext.build(split, ids, hidden, statistics_windows=2,
                               documents=torch.arange(windows))
    return split, ids, hidden, context


def test_fit_context_windows_and_calibration_stderr(tiny_model):
    split, ids, hidden, context = _tiny_context(tiny_model, 6)
    assert context.hidden.shape[0] == 2 and context.probe.hidden.shape[0] == 4
    assert torch.equal(context.probe.hidden, hidden[2:])
    fitted = fit_codec("gaussian-fisher", context, 0.02)
    assert fitted.calibration.met
    assert context.probe.delta_ce(fitted.codec.reconstruct) == fitted.calibration.delta_ce
    assert fitted.calibration.stderr is not None and fitted.calibration.stderr > 0
    again = FitContext.build(split, ids, hidden, statistics_windows=2, fisher=context.fisher)
    assert again.fisher is context.fisher  # a saved Fisher is used as it is
    for bad in (0, 6):
        with pytest.raises(ValueError, match="statistics_windows"):
            FitContext.build(split, ids, hidden, statistics_windows=bad)


def _noisy_square_with_stderr(seed: int, sigma: float, c: float = 0.3, spread: float = 0.25):
    """A probe of known noise: mean ``c·α²`` times a log-normal draw, standard error
    ``spread·c·α²`` (both ∝ α², as T7 predicts for the mean and its spread)."""
    draw = _noisy_square(seed, sigma, c)
    return lambda alpha: (draw(alpha), spread * c * alpha ** 2)


@pytest.mark.parametrize("method", ["fit", "bracket"])
def test_margin_meets_the_upper_bound_with_a_smaller_scale(method):
    """With ``margin = z`` the chosen scale's ΔCE + z·s.e. is ≤ the target, the scale is
    smaller than without a margin (by ≈ √(1 + z·spread) for ΔCE ∝ α²), and z = 0 is the
    behaviour without a margin, point for point."""
    target, c, spread = 0.01, 0.3, 0.25
    ratio = 1.02 if method == "fit" else 1.08
    start = math.sqrt(target / c)
    shrink = {1.0: [], 2.0: []}
    for seed in range(20):
        plain = calibrate_scale(_noisy_square(seed, 0.1, c), target, start, evaluations=6,
                                ratio=ratio, method=method)
        zero = calibrate_scale(_noisy_square_with_stderr(seed, 0.1, c, spread), target, start,
                               evaluations=6, ratio=ratio, method=method, margin=0.0)
        assert (zero.scale, zero.delta_ce, zero.trace) == (plain.scale, plain.delta_ce,
                                                            plain.trace)
        assert zero.upper == zero.delta_ce and zero.stderr == pytest.approx(
            spread * c * zero.scale ** 2)
        for z in (1.0, 2.0):
            result = calibrate_scale(_noisy_square_with_stderr(seed, 0.1, c, spread), target,
                                     start, evaluations=6, ratio=ratio, method=method, margin=z)
            assert result.met and result.margin == z
            assert result.upper == pytest.approx(result.delta_ce + z * result.stderr)
            assert result.upper <= target
            assert result.scale <= plain.scale  # never larger; smaller on average:
            shrink[z].append(math.log(result.scale / plain.scale))
            # the trace keeps the measured means, not the bounds
            assert (result.scale, result.delta_ce) in result.trace
    # ΔCE ∝ α²: z s.e. shrink the scale by √(1 + z·spread) (−0.11 / −0.20 in log for z = 1 / 2)
    assert np.mean(shrink[1.0]) < -0.05 and np.mean(shrink[2.0]) < np.mean(shrink[1.0]) - 0.05
    # the true (noise-free) criterion: the scale where c·α²(1 + z·spread) = target
    exact = calibrate_scale(lambda a: (c * a ** 2, spread * c * a ** 2), target, start,
                            evaluations=6, ratio=1.02, margin=1.0)
    assert exact.scale == pytest.approx(math.sqrt(target / (c * (1 + spread))), rel=0.021)
    assert exact.scale <= math.sqrt(target / (c * (1 + spread))) * 1.0001


def test_margin_needs_a_standard_error():
    with pytest.raises(ValueError, match="margin"):
        calibrate_scale(lambda a: 0.3 * a ** 2, 0.03, 1.0, margin=1.0)
    for stderr in (None, float("nan"), float("inf")):  # e.g. a probe of one document
        with pytest.raises(ValueError, match="^margin:"):
            calibrate_scale(lambda a: (0.3 * a ** 2, stderr), 0.03, 1.0, margin=1.0)
        # z = 0 ignores the error entirely: the search without a margin, point for point
        zero = calibrate_scale(lambda a: (0.3 * a ** 2, stderr), 0.03, 1.0, margin=0.0)
        plain = calibrate_scale(lambda a: 0.3 * a ** 2, 0.03, 1.0)
        assert (zero.scale, zero.delta_ce, zero.trace, zero.met) == \
            (plain.scale, plain.delta_ce, plain.trace, plain.met)
        assert zero.upper == zero.delta_ce
    with pytest.raises(ValueError, match="margin"):
        calibrate_scale(lambda a: (0.3 * a ** 2, 0.01), 0.03, 1.0, margin=-1.0)


def test_fit_codec_margin_gives_a_smaller_scale(tiny_model):
    context = _tiny_context(tiny_model, 8)[3]
    plain = fit_codec("gaussian-fisher", context, 0.02)
    margin = fit_codec("gaussian-fisher", context, 0.02, margin=1.0)
    assert plain.calibration.margin == 0 and margin.calibration.margin == 1.0
    assert margin.calibration.met and margin.calibration.scale < plain.calibration.scale
    bound = margin.calibration.delta_ce + margin.calibration.stderr
    assert margin.calibration.upper == pytest.approx(bound) and bound <= 0.02
    value, stderr = context.probe.estimate(margin.codec.reconstruct)
    assert (value, stderr) == (margin.calibration.delta_ce, margin.calibration.stderr)
