"""Real streams for a screened predictor: the closed loop of ``context_screen.py``'s winners.

The screen (``context_screen.py``) estimates rates with *open-loop* decoded states.
This module codes each evaluation window for real with a predictor of the form

``m_t = b + W ẑ_{t−1}[:P] + g(x_{≤t})``

(lag-1 decoded state, linear, plus any function ``g`` of the token ids — today's
``V e(x_t)``, a per-id table): a :class:`~rdgap.codecs.entropy_models.context.ContextCodec`
runs its own causal loop with ``W`` (zero-padded to ``C × C``) and ``g`` as the
prediction offsets, its tables and side-latent density fitted in that closed loop on
the validation windows; the token ids go first in the same ANS stream with today's id
table, exactly as ``klt-context-tokens`` writes them. Each stream is decoded again (the
decoder forms ``g`` from the decoded ids) and must give the encoder's reconstruction;
the row reports the real bytes (header included) and ΔCE ± s.e. over documents.
"""

from __future__ import annotations

import numpy as np
import torch

from rdgap.codecs.coders import ans
from rdgap.codecs.coders.container import header_size
from rdgap.codecs.coders.sections import grouped_columns, read_grouped
from rdgap.codecs.entropy_models import context_fit
from rdgap.codecs.entropy_models.context import ContextCodec
from rdgap.codecs.entropy_models.context_loop import GAIN_LIMIT, GAIN_STEP, SCALE_RESOLUTION
from rdgap.validation.distortion import document_estimate, per_window_metrics

_CONTEXT_ARGUMENTS = ("mean", "analysis", "synthesis", "step", "first_mean", "first_scale",
                      "first_step", "group_starts", "rounding")


def linear_parts(predictor, channels: int):
    """``(W (C, C), b (C,), g)`` of a lag-1 linear predictor (a ``Ridge`` with state lag
    1, or an ``IdTable`` over one): ``g(ids)`` ``(B, T−1, C)`` its token part."""
    ridge = getattr(predictor, "base", predictor)
    features = ridge.features
    if tuple(features.state_lags) != (1,):
        raise ValueError(f"predictor: expected one state lag (1), got {features.state_lags}")
    p = features.components
    weights = np.zeros((channels, channels))
    weights[:ridge.weights.shape[0], :p] = ridge.weights[:, :p]
    bias = ridge.bias

    def tokens(ids: np.ndarray) -> np.ndarray:
        zeros = np.zeros(ids.shape[:1] + (ids.shape[1] - 1, channels))
        return predictor.predict(zeros, ids) - bias

    return weights, bias, tokens


def closed_loop_model(template, weights, bias, z: np.ndarray, offset: np.ndarray):
    """A ContextCodec with ``template``'s transform and steps, prediction ``b + W ẑ_{t−1}``
    plus ``offset`` (``W`` ``(P, P)``, ``P = 0``: the offset alone), tables and side
    density fitted in its own loop on ``z`` as
    :func:`rdgap.codecs.entropy_models.context_fit.fit_context_model` fits them."""
    channels = template.channels
    groups = template.group_starts.size
    fixed = {k: v for k, v in template._constructor_arguments().items()
             if k in _CONTEXT_ARGUMENTS}
    uniform = np.full((groups, 2 * GAIN_LIMIT + 2), 1.0 / (2 * GAIN_LIMIT + 2))

    def build(base, probabilities):
        return ContextCodec(**fixed, base_index=base, predictor=weights, bias=bias,
                            side_probabilities=probabilities, label="closed loop")

    start = z - bias - offset
    if weights.size:  # the lag-1 term on the clean previous token, for the first tables
        start[:, 1:, :weights.shape[0]] -= z[:, :-1, :weights.shape[1]] @ weights.T
    base = context_fit.scale_index(np.abs(start).reshape(-1, channels).mean(0) / template.step)
    model = build(base, uniform)
    for _ in range(context_fit.SCALE_ITERATIONS):
        result = model.analyse(z, offset)
        gain = np.exp2(result.side[..., model.group_of] * GAIN_STEP / SCALE_RESOLUTION)
        base = context_fit.scale_index(
            (np.abs(result.residual) / template.step / gain).reshape(-1, channels).mean(0))
        model = build(base, uniform)
    side = model.analyse(z, offset).side
    return build(base, context_fit.side_probabilities(side, groups))


def code_window(model, token_codec, hidden: torch.Tensor, ids: np.ndarray, tokens_part):
    """One real stream (ids, then the context model's sections) and its decoding:
    ``(payload bytes, reconstruction)``; raises AssertionError if the decoder's
    reconstruction differs from the encoder's."""
    count = hidden.shape[0]
    offset = tokens_part(ids[None])[0]
    first, result, recon = model._code(hidden, offset)
    id_tensor = torch.from_numpy(ids.astype(np.int64))[None]
    sections = [token_codec.id_section(id_tensor)] + model._sections_of(first, result)
    tables = [[token_codec._id_table]] + model.section_tables()
    payload = ans.encode(*grouped_columns(sections, tables))

    def rows(k, done):
        if k == 0:
            return torch.zeros((1, count), dtype=torch.int64)
        return model.section_rows(k - 1, done[1:], count)

    decoded = read_grouped(ans.Decoder(payload), [count] + model.section_counts(count),
                           tables, rows, 8 * len(payload))
    got_ids = (decoded[0] + token_codec._id_width)[0].numpy()
    first_d, side, symbols, _ = model.symbols_of(decoded[1:], count)
    back = tokens_part(got_ids[None])  # the decoder's offsets, from the decoded ids
    loop = model.loop()
    body = loop.synthesise(symbols, side, torch.from_numpy(back))
    decoded_recon = loop.output(first_d, body)[0]
    assert np.array_equal(got_ids, ids) and torch.equal(decoded_recon, recon), \
        "the closed-loop stream does not decode to the encoder's reconstruction"
    return len(payload), recon


def measure(predictor, token_codec, held, split, ev_hidden, ev_ids, exact, log_p,
            documents) -> dict:
    """Real bits/token (header included, as ``codec_bench.measure``) and ΔCE ± s.e. of
    ``predictor`` coded in its closed loop on the evaluation windows."""
    channels = token_codec.channels
    weights, bias, tokens_part = linear_parts(predictor, channels)
    model = closed_loop_model(token_codec, weights, bias, held[0], tokens_part(held[2]))
    total, recon = 0, torch.empty_like(ev_hidden)
    for w in range(ev_hidden.shape[0]):
        size, recon[w] = code_window(model, token_codec, ev_hidden[w], ev_ids[w], tokens_part)
        total += size + header_size(token_codec.codec_id, 2)
    deltas = []
    with torch.no_grad():
        for s in range(0, ev_hidden.shape[0], 4):
            part = slice(s, s + 4)
            deltas += per_window_metrics(exact[part], split.suffix(recon[part]),
                                         torch.from_numpy(ev_ids[part]), log_p[part]
                                         )["delta_ce_nats"].tolist()
    dce = document_estimate(np.array(deltas), documents)
    return {"bits_per_token_actual": 8.0 * total / ev_ids.size,
            "delta_ce_nats": dce.mean, "delta_ce_nats_stderr": dce.stderr,
            "decoded_exactly": True}
