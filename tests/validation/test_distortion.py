"""ΔCE, KL and top-1 agreement, checked against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import special, stats

from rdgap.validation.distortion import (ExactOutputs, document_estimate,
                                         next_token_cross_entropy, output_moments,
                                         per_window_metrics)


def _logits(seed: int, shape=(3, 6, 11)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 3


def test_identical_outputs_have_no_distortion():
    logits = _logits(0)
    ids = torch.randint(0, 11, (3, 6), generator=torch.Generator().manual_seed(1))
    metrics = per_window_metrics(logits, logits.clone(), ids)
    assert torch.equal(metrics["delta_ce_nats"], torch.zeros(3, dtype=torch.float64))
    assert torch.equal(metrics["kl_nats"], torch.zeros(3, dtype=torch.float64))
    assert torch.equal(metrics["top1_agreement"], torch.ones(3, dtype=torch.float64))


def test_metrics_match_scipy():
    exact, split = _logits(2), _logits(3)
    ids = torch.randint(0, 11, (3, 6), generator=torch.Generator().manual_seed(4))
    metrics = per_window_metrics(exact, split, ids)
    p = special.softmax(exact.double().numpy(), axis=-1)
    q = special.softmax(split.double().numpy(), axis=-1)
    kl = special.rel_entr(p, q).sum(-1).mean(1)
    np.testing.assert_allclose(metrics["kl_nats"].numpy(), kl, rtol=1e-10)
    n = ids.numpy()[:, 1:]
    pick = lambda r: np.take_along_axis(r[:, :-1], n[..., None], -1)[..., 0]  # noqa: E731
    delta = (-np.log(pick(q)) + np.log(pick(p))).mean(1)
    np.testing.assert_allclose(metrics["delta_ce_nats"].numpy(), delta, rtol=1e-10)
    agree = (p.argmax(-1) == q.argmax(-1)).mean(1)
    np.testing.assert_allclose(metrics["top1_agreement"].numpy(), agree)
    assert (metrics["kl_nats"] > 0).all()


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="split_logits"):
        per_window_metrics(_logits(0), _logits(0, (3, 5, 11)), torch.zeros(3, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="input_ids"):
        per_window_metrics(_logits(0), _logits(1), torch.zeros(3, 5, dtype=torch.long))


def test_document_estimate_averages_documents_first():
    values = np.array([1.0, 3.0, 10.0, 4.0, 6.0])
    documents = np.array([0, 0, 1, 2, 2])  # document means 2, 10, 5
    estimate = document_estimate(values, documents, confidence=0.9)
    means = np.array([2.0, 10.0, 5.0])
    low, high = stats.t.interval(0.9, df=2, loc=means.mean(), scale=stats.sem(means))
    assert estimate.mean == pytest.approx(means.mean())
    assert estimate.low == pytest.approx(low) and estimate.high == pytest.approx(high)
    assert estimate.documents == 3


def test_one_document_has_no_interval():
    estimate = document_estimate(np.array([1.0, 2.0]), np.array([7, 7]))
    assert estimate.mean == 1.5 and estimate.low is None and estimate.stderr is None
    with pytest.raises(ValueError, match="confidence"):
        document_estimate(np.array([1.0]), np.array([0]), confidence=1.5)
    with pytest.raises(ValueError, match="values, documents"):
        document_estimate(np.array([1.0]), np.array([0, 1]))


def test_tiny_kl_of_a_near_lossless_codec_is_resolved():
    # fp16-like rounding of the hidden state moves logits by ~1e-4: KL ~1e-9 must not
    # drown in the rounding of the expanded float64 formula
    exact = _logits(5, (2, 4, 50000))
    split = exact + 1e-4 * _logits(6, (2, 4, 50000))
    ids = torch.zeros(2, 4, dtype=torch.long)
    metrics = per_window_metrics(exact, split, ids)
    p = special.softmax(exact.double().numpy(), axis=-1)
    q = special.softmax(split.double().numpy(), axis=-1)
    kl = special.rel_entr(p, q).sum(-1).mean(1)
    assert kl.max() < 1e-6
    np.testing.assert_allclose(metrics["kl_nats"].numpy(), kl, rtol=1e-4, atol=1e-14)


def test_shared_exact_outputs_give_the_same_metrics():
    exact, split = _logits(7), _logits(8)
    ids = torch.randint(0, 11, (3, 6), generator=torch.Generator().manual_seed(9))
    shared = ExactOutputs.of(exact)
    for name, values in per_window_metrics(exact, split, ids).items():
        assert torch.equal(values, per_window_metrics(exact, split, ids, shared)[name]), name


def test_chunked_moments_do_not_depend_on_the_chunk_and_keep_exact_zero():
    # chunk boundaries fall inside windows (3 × 6 positions, 4 rows per chunk)
    exact, split = _logits(10), _logits(11)
    ids = torch.randint(0, 11, (3, 6), generator=torch.Generator().manual_seed(12))
    p = ExactOutputs.of(exact).p
    for rows in (1, 4, 5):
        for got, want in zip(output_moments(split, p, rows=rows), output_moments(split, p)):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    shared = ExactOutputs.of(exact)
    same = per_window_metrics(exact, exact.clone(), ids, shared)
    assert torch.equal(same["kl_nats"], torch.zeros(3, dtype=torch.float64))
    assert torch.equal(same["delta_ce_nats"], torch.zeros(3, dtype=torch.float64))


def test_metrics_match_the_float64_log_softmax_formula_on_a_large_vocabulary():
    # the per-codec moments replace a float64 log-softmax of both outputs: the two must
    # agree to 1e-12 nats on a 49,152-token vocabulary, from coarse to near-lossless
    exact = _logits(13, (2, 5, 49152))
    ids = torch.randint(0, 49152, (2, 5), generator=torch.Generator().manual_seed(14))
    log_p = torch.log_softmax(exact.double(), -1)
    for scale in (0.3, 1e-3, 1e-5):
        split = exact + scale * _logits(15, (2, 5, 49152))
        log_q = torch.log_softmax(split.double(), -1)
        kl = (log_p.exp() * (log_p - log_q)).sum(-1).clamp_min(0).mean(1)
        targets = ids[:, 1:, None]
        delta = (log_p[:, :-1].gather(-1, targets) - log_q[:, :-1].gather(-1, targets)).mean((1, 2))
        metrics = per_window_metrics(exact, split, ids)
        torch.testing.assert_close(metrics["kl_nats"], kl, rtol=0, atol=1e-12)
        torch.testing.assert_close(metrics["delta_ce_nats"], delta, rtol=0, atol=1e-12)
        assert (metrics["kl_nats"] > 0).all()


def test_next_token_cross_entropy_is_the_float64_log_softmax():
    logits = _logits(16, (2, 7, 3000)) * 3
    ids = torch.randint(0, 3000, (2, 7), generator=torch.Generator().manual_seed(17))
    want = -torch.log_softmax(logits.double(), -1)[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
    torch.testing.assert_close(next_token_cross_entropy(logits, ids), want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="input_ids: expected shape"):
        next_token_cross_entropy(logits, ids[:, 1:])
