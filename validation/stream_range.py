"""``B``: the worst case of one stream of a codec's format, in bits per token.

The range of the per-document rates that T8 and the held-out bound need; see
:mod:`rdgap.validation.statistics` (T8) for what it is made of and why it is
large.
"""

from __future__ import annotations

from rdgap.codecs.coders import ans
from rdgap.codecs.coders.container import header_size

#: Worst cost of one escaped value in any shipped table codec (torch rANS: 5 bytes).
ESCAPE_WORST_BITS = 40.0
#: Bits per element of fixed-size formats and of the raw input of zstd formats.
_FIXED_BITS = {"fp16": 16, "bf16": 16, "int8-absmax": 8, "int4-absmax": 4}
_ZSTD_RAW_BITS = {"zstd-fp16": 16, "zstd-symbols": 32}


def _in_table(table) -> float:
    """Worst bits of one value inside ``table`` (+1 bit of T2 table rounding)."""
    return float(table.neg_log2[:-1].max()) + 1.0


def _worst(table) -> float:
    """Worst bits of one value under ``table``: inside it, or escaped."""
    return max(_in_table(table), float(table.neg_log2[-1]) + ESCAPE_WORST_BITS + 1.0)


def _table_layout(codec, quantizer):
    """``(side, first, rest)`` of a table codec: the side-latent tables (per token), position
    0's tables, and ``(channels, tables)`` pairs for positions >= 1 (that many channels
    whose symbols may use any of those tables); None for other codecs. A :class:`~rdgap.codecs.entropy_models.context.ContextCodec` picks one of its
    tables ``MIN_INDEX..MAX_INDEX`` per symbol, so each channel may use any of them."""
    from rdgap.codecs.entropy_models import context

    if isinstance(codec, context.ContextCodec):
        every = [codec._table(i) for i in range(context.MIN_INDEX, context.MAX_INDEX + 1)]
        return list(codec._side_tables), list(codec._first_tables), [(codec.channels, every)]
    first = getattr(quantizer, "_first_tables", None)
    rest = getattr(quantizer, "_tables", None)
    if isinstance(first, list) and isinstance(rest, list):
        return [], first, [(1, [table]) for table in rest]
    return None


def fixed_header_bits(codec, parts: dict | None, tokens: int) -> float:
    """Bits per token every stream of ``codec`` spends outside its entropy-coded
    payload: the container header (and, for the per-window ladder formats — the
    rate-capped and window-controlled codecs — their window header), as the rate
    prediction adds them to the payload it models.

    ``parts`` is :func:`stream_bound_parts` of the codec; its ``"header"`` part is
    used where it has one. The ladder formats' parts are ``{"rate_cap"}`` (their
    bound is the cap), so their header is computed from the format:
    ``header_size(codec_id, 2) + WINDOW_HEADER_BYTES`` bytes.

    >>> fixed_header_bits(object(), {"header": 3.5}, 128)
    3.5
    """
    if parts and "header" in parts:
        return float(parts["header"])
    if callable(getattr(codec, "stream_bytes_bound", None)):
        from rdgap.codecs.quantizers.window_ladder import WINDOW_HEADER_BYTES

        return 8.0 * (header_size(codec.codec_id, 2) + WINDOW_HEADER_BYTES) / tokens
    return 0.0


def stream_bound_parts(codec, quantizer, tokens: int, channels: int) -> dict | None:
    """Where the worst case ``B`` of one stream comes from, in bits per token.

    ``{"header", "flush", "position_0", "side", "in_table", "escape"}`` for
    table codecs: the container header; constriction's flush and the lanes'
    state words; position 0's symbols at their worst entry; side latents (the
    context codec's hyperprior) at their worst entry; positions >= 1 at their
    most expensive *table entry* (+1 bit of T2 rounding) and, on top of that,
    what an escape costs beyond it (escape entry + :data:`ESCAPE_WORST_BITS`).
    Symbol parts include T2's 0.5 %. Their sum is :func:`stream_bound_bits`.
    ``{"rate_cap"}`` for a codec that caps every stream by construction (its
    ``stream_bytes_bound(tokens)``, header included: the window-controlled codecs).
    ``{"header", "payload"}`` for fixed-size and zstd formats; None otherwise.
    """
    capped = getattr(codec, "stream_bytes_bound", None)
    if callable(capped):  # a rate cap by construction (rdgap.codecs.quantizers.window_control)
        return {"rate_cap": 8.0 * capped(tokens) / tokens}
    header = 8.0 * header_size(codec.codec_id, 2)
    elements = tokens * channels
    if codec.codec_id in _FIXED_BITS:
        payload = _FIXED_BITS[codec.codec_id] * elements + (32 * tokens if "absmax" in
                                                            codec.codec_id else 0)
        payload += 4 * tokens if codec.codec_id == "int4-absmax" else 0  # odd-width padding
        return {"header": header / tokens, "payload": payload / tokens}
    if codec.codec_id in _ZSTD_RAW_BITS:
        raw = _ZSTD_RAW_BITS[codec.codec_id] * elements / 8
        payload = 8 * (raw + raw / 256 + max(0.0, (131072 - raw) / 2048) + 64)
        return {"header": header / tokens, "payload": payload / tokens}
    layout = _table_layout(codec, quantizer)
    if layout is None:
        return None
    side, first, rest = layout
    factor, later = 1 + ans.RELATIVE_OVERHEAD, (tokens - 1) / tokens
    lanes = int(getattr(codec, "lanes", 1))
    rest_in_table = sum(count * max(map(_in_table, tables)) for count, tables in rest)
    rest_worst = sum(count * max(map(_worst, tables)) for count, tables in rest)
    parts = {"header": header / tokens, "flush": (32 + 64 * (1 + lanes)) / tokens,
             "position_0": factor * sum(map(_worst, first)) / tokens,
             "side": factor * later * sum(map(_worst, side)),
             "in_table": factor * later * rest_in_table,
             "escape": factor * later * (rest_worst - rest_in_table)}
    id_table = getattr(codec, "_id_table", None)  # klt-context-tokens: one coded id a token
    if id_table is not None:
        parts["token_ids"] = factor * _worst(id_table)
    return parts


def stream_bound_bits(codec, quantizer, tokens: int, channels: int) -> float | None:
    """Worst-case bits per token of one stream of ``tokens`` tokens (``B`` of T8/T9).

    For table codecs ``(header + 32 + 64 (1 + lanes) + 1.005 Σ_symbols (max
    table cost + 40)) / m``; the sum of :func:`stream_bound_parts`.
    """
    parts = stream_bound_parts(codec, quantizer, tokens, channels)
    return None if parts is None else float(sum(parts.values()))
