"""Coding one codec on a batch of windows: real streams, their bytes, the likelihood
estimate, and T2 checked on every stream (:func:`code_windows`); :class:`CodedCodec`
holds what a codec of a job measured across the stages of the run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from rdgap.codecs.base import HiddenStateCodec
from rdgap.codecs.coders import ans
from rdgap.codecs.coders.container import header_size

from .cap_binding import window_flags
from .stream_length import container_mismatch, proven_payload_bound


@dataclass
class CodedCodec:
    """One codec of a job, with what its fitting found and what coding it measured."""

    codec: HiddenStateCodec
    name: str
    level: str | None = None
    fit_delta_ce: float | None = None
    predicted_delta_ce: float | None = None
    fitted: object = None
    bytes: int = 0
    window_bits: list[float] = field(default_factory=list)
    window_estimates: list[float] | None = field(default_factory=list)
    tokens: int = 0
    encode_s: float = 0.0
    decode_s: float = 0.0
    max_abs_error: float = 0.0
    t2_violations: int = 0
    t2_proven_violations: int | None = 0
    t2_proven_margin: float | None = None
    t2_tables: dict = field(default_factory=dict)
    container_mismatches: int = 0
    metrics: dict[str, list[float]] = field(default_factory=dict)
    documents: list[int] = field(default_factory=list)
    statistics: dict = field(default_factory=dict)
    outputs: list[torch.Tensor] | None = field(default_factory=list)
    corpus_metrics: dict = field(default_factory=dict)
    #: why the codec could not code a state (e.g. fp16 out of range); then no row
    refused: str | None = None
    #: window flags of a rate-capped codec's streams (empty otherwise), and per metric
    #: the capped − uncapped difference on each window where the cap bound (.cap_binding)
    cap_flags: list[int] = field(default_factory=list)
    cap_cost: dict[str, list[float]] = field(default_factory=dict)


def code_windows(coded: CodedCodec, hidden: torch.Tensor,
                 input_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Encode and decode each window as one stream; return the reconstructions. A codec
    that codes the token ids too (``needs_input_ids``, e.g. ``klt-context-tokens``) gets
    each window's ``input_ids`` at the encoder; its stream, and so its rate, holds them."""
    codec = coded.codec
    needs_ids = getattr(codec, "needs_input_ids", False)
    if needs_ids and input_ids is None:
        raise ValueError(f"input_ids: codec {codec.codec_id} codes the token ids and needs "
                         f"each window's ids, got None")
    out = torch.empty_like(hidden)
    for w in range(hidden.shape[0]):
        ids = {"input_ids": input_ids[w]} if needs_ids else {}
        start = time.perf_counter()
        data = codec.encode(hidden[w], **ids)
        middle = time.perf_counter()
        out[w] = codec.decode(data)
        coded.decode_s += time.perf_counter() - middle
        coded.encode_s += middle - start
        coded.bytes += len(data)
        coded.window_bits.append(8.0 * len(data))
        flags = window_flags(codec, data)
        if flags is not None:
            coded.cap_flags.append(flags)
        coded.container_mismatches += container_mismatch(
            data, header_size(codec.codec_id, hidden[w].dim()))
        coded.tokens += window_tokens(hidden[w])
        estimate = codec.estimate_bits(hidden[w], **ids)
        if estimate is None or coded.window_estimates is None:
            coded.window_estimates = None
        else:
            coded.window_estimates.append(float(estimate))
            # T2's working form (THEORY.md T2), checked on every stream.
            payload = 8 * (len(data) - header_size(codec.codec_id, 2))
            coded.t2_violations += payload > (1 + ans.RELATIVE_OVERHEAD) * estimate \
                + ans.STREAM_OVERHEAD_BITS
            proven = proven_payload_bound(codec, hidden[w], estimate, coded.t2_tables)
            if proven is None or coded.t2_proven_violations is None:
                coded.t2_proven_violations = None
            else:  # T2 proven (rdgap.bounds.rans_length_bounds), table quantization included
                coded.t2_proven_violations += payload > proven
                margin = proven - payload
                coded.t2_proven_margin = margin if coded.t2_proven_margin is None \
                    else min(coded.t2_proven_margin, margin)
    coded.max_abs_error = max(coded.max_abs_error, float((out - hidden).abs().max()))
    return out


def window_tokens(window: torch.Tensor) -> int:
    """Positions of one window's hidden state (all but the channel axis)."""
    return int(np.prod(window.shape[:-1]))
