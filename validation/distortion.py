"""Distortion of a transformed hidden state, measured on the model's outputs.

For each window the exact logits (the unsplit model) and the split logits
(the hidden state at the split replaced by its reconstruction) give, per
token, in nats:

- ΔCE: next-token cross-entropy with the reconstruction minus without it, on
  the ``length − 1`` positions that have a next token;
- KL(full ‖ split) between the two output distributions, on every position;
- top-1 agreement: whether both put their maximum on the same token.

Documents are the i.i.d. unit: each metric is averaged within a document,
then the document means give the mean and a Student-t confidence interval.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats


def exact_log_probs(exact_logits: torch.Tensor) -> torch.Tensor:
    """Float64 log-softmax of the unsplit model's logits, to share across many codecs."""
    return torch.log_softmax(exact_logits.double(), dim=-1)


#: Positions per chunk of the float64 passes over the vocabulary (bounds the float64
#: copy of the logits that exists at a time; the result does not depend on it).
CHUNK_ROWS = 64


def output_moments(logits: torch.Tensor, p: torch.Tensor | None,
                   center: torch.Tensor | None = None, rows: int = CHUNK_ROWS
                   ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Per position, in float64: ``Z = logsumexp_v x_v``, ``Σ_v p_v (x_v − c)`` and the arg-max.

    ``Z`` is ``x_m − log softmax(x)_m`` at the arg-max ``m`` (found in one float32
    pass; torch's fused float64 log-softmax subtracts the maximum, so this is
    ``x_m + log Σ_v exp(x_v − x_m)``); ``c`` is ``center`` per position (default
    ``x_m``; pass the reference's peak so that two outputs' sums share it and their
    difference loses no digits to the logit scale). The float64 copy of the logits
    is made ``rows`` positions at a time, so it stays in cache between the passes
    (2.5× faster than one float64 log-softmax of the whole output, measured on one
    core); float32 differences are exact in float64. The result depends only on the
    values, so identical logits give identical bits (hence exactly zero distortion).
    With ``p`` None only ``Z`` and the arg-max are computed (the mean is None).
    """
    if p is not None and p.shape != logits.shape:
        raise ValueError(f"p: expected the shape of logits {tuple(logits.shape)}, "
                         f"got {tuple(p.shape)}")
    flat = logits.reshape(-1, logits.shape[-1])
    weights = None if p is None else p.reshape(-1, p.shape[-1])
    peak, top1 = flat.max(-1)
    center = peak.double() if center is None else center.reshape(-1).double()
    normaliser = torch.empty(flat.shape[0], dtype=torch.float64)
    mean = None if weights is None else torch.empty(flat.shape[0], dtype=torch.float64)
    for start in range(0, flat.shape[0], rows):
        chunk = slice(start, start + rows)
        part = flat[chunk].double()
        at_peak = top1[chunk, None]
        normaliser[chunk] = (part.gather(-1, at_peak)
                             - torch.log_softmax(part, dim=-1).gather(-1, at_peak)).squeeze(-1)
        if mean is not None:
            mean[chunk] = torch.einsum("tv,tv->t", weights[chunk], part.sub_(center[chunk, None]))
    shape = logits.shape[:-1]
    return (normaliser.reshape(shape), None if mean is None else mean.reshape(shape),
            top1.reshape(shape))


def next_token_cross_entropy(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """``−log softmax(logits)[next token]`` in float64, ``(windows, tokens − 1)``.

    Equal to the float64 log-softmax's value to ≈ 1e-15 nats but without a float64
    copy of the whole output (:func:`output_moments`); e.g. for a ΔCE probe that
    measures many reconstructions against one cached exact cross-entropy.
    """
    if logits.dim() != 3 or input_ids.shape != logits.shape[:2]:
        raise ValueError(f"input_ids: expected shape {tuple(logits.shape[:2])} (windows, "
                         f"tokens) of logits {tuple(logits.shape)}, got {tuple(input_ids.shape)}")
    normaliser = output_moments(logits[:, :-1], None)[0]
    picked = logits[:, :-1].gather(-1, input_ids[:, 1:, None]).squeeze(-1).double()
    return normaliser - picked


@dataclass(frozen=True)
class ExactOutputs:
    """The unsplit model's output distribution, computed once per batch of windows and
    shared by every codec measured against it.

    Attributes
    ----------
    p : torch.Tensor
        Float64 probabilities, ``(windows, tokens, vocab)``.
    p_mass : torch.Tensor
        ``Σ_v p`` per position (1 up to rounding), kept so that KL is exact in float64.
    normaliser : torch.Tensor
        ``logsumexp`` of the logits in float64 per position, ``(windows, tokens)``.
    top1 : torch.Tensor
        The arg-max token per position.
    mean_logit : torch.Tensor
        ``Σ_v p_v (r_v − c)`` per position (float64) with ``c`` = ``peak``.
    peak : torch.Tensor
        ``max_v r_v`` per position (float64), the common centre of both logit means.
    """

    p: torch.Tensor
    p_mass: torch.Tensor
    normaliser: torch.Tensor
    top1: torch.Tensor
    mean_logit: torch.Tensor
    peak: torch.Tensor

    @classmethod
    def of(cls, exact_logits: torch.Tensor, log_p: torch.Tensor | None = None) -> "ExactOutputs":
        """From the logits (and their float64 log-softmax, if already computed)."""
        log_p = exact_log_probs(exact_logits) if log_p is None else log_p
        p = log_p.exp()
        normaliser, mean, top1 = output_moments(exact_logits, p)
        peak = exact_logits.gather(-1, top1[..., None]).squeeze(-1).double()
        return cls(p, p.sum(-1), normaliser, top1, mean, peak)


def per_window_metrics(exact_logits: torch.Tensor, split_logits: torch.Tensor,
                       input_ids: torch.Tensor,
                       log_p: torch.Tensor | ExactOutputs | None = None) -> dict[str, torch.Tensor]:
    """Mean ΔCE, KL and top-1 agreement of each window, shape ``(windows,)`` each.

    ``log_p`` may pass :func:`exact_log_probs` of ``exact_logits``, or better an
    :class:`ExactOutputs`, computed once per batch. In float64, with ``r`` the
    exact and ``s`` the split logits and ``Z(·)`` their log-normalisers,
    ``−log q(v) = Z(s) − s_v`` and
    ``KL(p‖q) = (Σ_v p_v (r_v − c) − Σ_v p_v (s_v − c)) + (Σ_v p_v)(Z(s) − Z(r))``
    with ``c = max_v r_v``, the definition with both log-softmaxes expanded.
    ``Σ p (r − c)`` and ``Z(r)`` are computed once per batch; per codec only ``Z(s)``
    and ``Σ p (s − c)`` are (one chunked float64 pass over
    the vocabulary, :func:`output_moments`, no per-codec log-softmax or
    exponential of ``p``). Both pairs come from the same function, so identical logits
    give exactly 0; the rounding of their difference is ≈ 1e-16 × the spread of the logits, far
    below the KL of a near-lossless codec (tested against scipy down to KL ≈ 1e-9).
    """
    if exact_logits.shape != split_logits.shape or exact_logits.dim() != 3:
        raise ValueError(f"split_logits: expected shape {tuple(exact_logits.shape)} "
                         f"(windows, tokens, vocab), got {tuple(split_logits.shape)}")
    if input_ids.shape != exact_logits.shape[:2]:
        raise ValueError(f"input_ids: expected shape {tuple(exact_logits.shape[:2])}, "
                         f"got {tuple(input_ids.shape)}")
    exact = log_p if isinstance(log_p, ExactOutputs) else ExactOutputs.of(exact_logits, log_p)
    normaliser, mean_split, top1_split = output_moments(split_logits, exact.p, exact.peak)
    targets = input_ids[:, 1:, None]
    picked_exact = exact_logits[:, :-1].gather(-1, targets).squeeze(-1).double()
    picked_split = split_logits[:, :-1].gather(-1, targets).squeeze(-1).double()
    ce_exact = exact.normaliser[:, :-1] - picked_exact
    ce_split = normaliser[:, :-1] - picked_split
    kl = (exact.mean_logit - mean_split) + exact.p_mass * (normaliser - exact.normaliser)
    top1 = (exact.top1 == top1_split).double()
    return {"delta_ce_nats": (ce_split - ce_exact).mean(1),
            "ce_exact_nats": ce_exact.mean(1),
            "kl_nats": kl.clamp_min(0.0).mean(1),
            "top1_agreement": top1.mean(1)}


@dataclass
class Estimate:
    """A mean over documents with its standard error and confidence interval."""

    mean: float
    stderr: float | None
    low: float | None
    high: float | None
    documents: int

    def as_dict(self) -> dict:
        return {"mean": self.mean, "stderr": self.stderr, "ci_low": self.low,
                "ci_high": self.high, "documents": self.documents}


def document_estimate(values: np.ndarray, documents: np.ndarray,
                      confidence: float = 0.95) -> Estimate:
    """Mean of per-document means, with a Student-t interval over documents.

    With a single document there is no interval: ``stderr``, ``low`` and
    ``high`` are None.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence}")
    values = np.asarray(values, dtype=float)
    documents = np.asarray(documents)
    if values.shape != documents.shape or values.ndim != 1 or values.size == 0:
        raise ValueError("values, documents: expected two non-empty 1-D arrays of the same "
                         f"length, got {values.shape} and {documents.shape}")
    groups: dict[int, list[float]] = defaultdict(list)
    for value, doc in zip(values, documents):
        groups[int(doc)].append(float(value))
    means = np.array([np.mean(v) for v in groups.values()])
    mean = float(means.mean())
    if means.size < 2:
        return Estimate(mean, None, None, None, int(means.size))
    stderr = float(means.std(ddof=1) / math.sqrt(means.size))
    half = float(stats.t.ppf(0.5 + confidence / 2, df=means.size - 1)) * stderr
    return Estimate(mean, stderr, mean - half, mean + half, int(means.size))
