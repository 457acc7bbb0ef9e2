"""Synthetic sources, codecs and results documents for the statistics / claims / plots tests.

A factorized Gaussian source (independent channels, known scales) coded with
:class:`rdgap.codecs.entropy_models.factorized.FactorizedCodec`: well specified (fitted on
the source) or mis-specified (its tables ``scale_error`` times too wide).
"""

from __future__ import annotations

import numpy as np
import torch

from rdgap.codecs.coders.container import header_size
from rdgap.codecs.entropy_models.factorized import ChannelStatistics, FactorizedCodec
from rdgap.codecs.coders import ans
from rdgap.validation.statistics import codec_statistics
from rdgap.validation.stream_length import container_mismatch, proven_payload_bound


def gaussian_windows(rng: np.random.Generator, windows: int, tokens: int,
                     scales, mixing=None) -> torch.Tensor:
    """``windows`` i.i.d. windows of i.i.d. Gaussian tokens with per-channel ``scales``."""
    x = rng.standard_normal((windows, tokens, len(scales))) * np.asarray(scales)
    if mixing is not None:
        x = x @ np.asarray(mixing).T
    return torch.from_numpy(x.astype(np.float32))


def fitted_codec(fit: torch.Tensor, step_factor: float = 0.5,
                 scale_error: float = 1.0) -> FactorizedCodec:
    stats = ChannelStatistics.fit(fit)
    wrong = ChannelStatistics(stats.mean, stats.scale * scale_error, stats.first_mean,
                              stats.first_scale * scale_error)
    return FactorizedCodec(wrong, stats.scale * step_factor, stats.first_scale * step_factor)


def measure(codec, hidden: torch.Tensor):
    """Actual and estimated bits of each window's stream."""
    bits = np.array([8.0 * len(codec.encode(w)) for w in hidden])
    estimated = np.array([codec.estimate_bits(w) for w in hidden])
    return bits, estimated


def stream_checks(codec, hidden: torch.Tensor, estimate_factor: float = 1.0,
                  header_error: int = 0) -> dict:
    """The runner's per-stream counts for ``codec`` on ``hidden`` (see validation.runner):
    container mismatches and the streams' bits, working-form and proven T2 violations and
    the smallest proven margin, with the estimate scaled by ``estimate_factor`` (a defect:
    0.97 is an estimate 3 % low) and ``header_error`` bytes added to the booked header."""
    working, proven, margin, tables, mismatches, bits = 0, 0, None, {}, 0, 0.0
    for window in hidden:
        data = codec.encode(window)
        header = header_size(codec.codec_id, 2) + header_error
        mismatches += container_mismatch(data, header)
        bits += 8.0 * len(data)
        payload = 8 * (len(data) - header)
        estimate = estimate_factor * codec.estimate_bits(window)
        working += payload > (1 + ans.RELATIVE_OVERHEAD) * estimate + ans.STREAM_OVERHEAD_BITS
        bound = proven_payload_bound(codec, window, estimate, tables)
        proven += payload > bound
        margin = bound - payload if margin is None else min(margin, bound - payload)
    return {"t2_violations": int(working), "t2_proven_violations": int(proven),
            "t2_proven_smallest_margin_bits": float(margin),
            "container_mismatches": int(mismatches), "stream_bits": bits}


def run_statistics(codec, fit, evaluation, **kwargs) -> dict:
    bits, estimated = measure(codec, evaluation)
    return codec_statistics(codec, fit, evaluation, bits, np.arange(evaluation.shape[0]),
                            estimated_bits=estimated, **kwargs)


def row(statistics: dict, split: int, codec: str = "factorized-gaussian",
        architecture: str = "synthetic", delta_ce: float = 0.01, streams: dict | None = None
        ) -> dict:
    """A results.json run row around ``statistics`` (``streams``: :func:`stream_checks`)."""
    tokens = statistics["tokens_per_window"]
    return {"architecture": architecture, "split": split, "codec": codec, "level": "dce<=0.01",
            "tokens": tokens * statistics["windows"], "windows": statistics["windows"],
            "bits_per_token_actual": statistics["rate_actual"],
            "bits_per_token_estimated": statistics["rate_estimated"],
            "container_bits_per_token": 8.0 * header_size(codec, 2) / tokens,
            "t2_violations": 0, "t2_proven_violations": None, "container_mismatches": None,
            "stream_bits": None,
            "t2_proven_smallest_margin_bits": None, "delta_ce_nats": delta_ce,
            "distortion_name": "delta_ce_nats", "distortion": delta_ce,
            "statistics": statistics} | (streams or {})


def results_document(rng: np.random.Generator, splits: int = 5, windows: int = 40,
                     tokens: int = 32, channels: int = 3) -> dict:
    """Rows at ``splits`` "splits" whose source spread grows with the split."""
    runs = []
    for split in range(1, splits + 1):
        scales = np.linspace(1.0, 2.0, channels) * split
        fit = gaussian_windows(rng, windows, tokens, scales)
        evaluation = gaussian_windows(rng, windows, tokens, scales)
        codec = fitted_codec(fit, step_factor=0.5 / np.sqrt(split))
        runs.append(row(run_statistics(codec, fit, evaluation), split,
                        delta_ce=0.02 / split, streams=stream_checks(codec, evaluation)))
    return {"schema_version": 1, "runs": runs}
