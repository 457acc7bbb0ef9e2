r"""T2's proven length of a stream, for the codecs whose coder rdgap can bound exactly.

:func:`rdgap.bounds.rans_length_bounds` bounds a stream's payload by the
*integer-table* information ``I_f = Σ log2(2^P / f(s_i))``; the codec's
likelihood estimate is ``I_q = Σ −log2 q(s_i)`` (33 bits per escaped value).
They differ by the table-quantization cost ``Σ log2(q(s_i) 2^P / f(s_i))``,
which grows with the number ``m`` of symbols. :func:`proven_payload_bound`
bounds it per symbol for constriction's tables and returns

``L <= I_q + Σ_tables count_t τ_t + (m + 3 e) ε + 56``

(``ε = log2(1 + 2^-8)``, ``e`` escaped values, each coded as three uniform
symbols whose integer tables are exact), i.e. ``rans_length_bounds(I_q +
Σ count_t τ_t, m + 3e, 24, 64, 32, start="empty").upper``.

The per-symbol cost ``τ_t`` of a table
    constriction's ``Categorical(p, perfect=False)`` quantizes with
    ``left_i = floor(C_i s) + i``, ``C_i = Σ_{k<i} p_k``, ``s = (2^P − n) /
    Σ p`` (``n`` entries, the last right end ``2^P``), so in exact arithmetic
    ``f_i = floor(C_{i+1} s) − floor(C_i s) + 1 > p_i s``. The cumulative sums
    are float64: their absolute error times ``s`` is below ``η = 2n 2^-29 +
    2^-20`` for ``n < 2^20``, so ``f_i >= p_i s − η`` and the cost of entry
    ``i`` is at most ``log2(p_i 2^P / (p_i s − η))``, largest at the
    smallest ``p_i``: that is ``τ_t`` (about ``n / 2^24 / ln 2`` bits —
    small because every table is floored at ``2^-20``). ``tests/validation/
    test_stream_length.py`` reads constriction's integer tables off its
    decoder and checks the bound on every entry.

:func:`container_mismatch` checks the other half of a stream's length: the
container's header and checksum, as the runner counts them, plus the payload
its header declares must be the stream's length (a byte not counted as header,
or counted twice, is a mismatch).

Only :class:`~rdgap.codecs.entropy_models.factorized.FactorizedCodec` streams (position 0's
tables, then positions >= 1's, all symbols of a column with its table, then
the escapes) are bounded; any other codec gets ``None``: its streams are held
to the working form only, and the claim says how many rows were not checked.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import torch

from rdgap.bounds import rans_length_bounds
from rdgap.codecs.coders.container import BitstreamError, unpack

PRECISION, STATE_BITS, WORD_BITS = 24, 64, 32


def table_cost_bound(probabilities) -> float:
    """``τ``: the largest ``log2(p_i 2^24 / f_i)`` constriction's table for ``p`` can have."""
    p = np.asarray(probabilities, dtype=np.float64)
    n, total = p.size, float(1 << PRECISION)
    if n < 2 or n >= 1 << 20 or np.any(p <= 0):
        raise ValueError(f"probabilities: expected 2..2^20 entries > 0, got {n} entries "
                         f"(min {p.min() if n else None})")
    scale = (total - n) / float(p.sum())
    eta = 2.0 * n * 2.0 ** -29 + 2.0 ** -20
    smallest = float(p.min())
    if smallest * scale <= eta:
        raise ValueError("probabilities: an entry too small for a proven table cost")
    return max(0.0, math.log2(smallest * total / (smallest * scale - eta)))


def _tau(table, cache: dict) -> float:
    key = id(table)
    if key not in cache:
        cache[key] = (table, table_cost_bound(table.probabilities))
    return cache[key][1]


def proven_payload_bound(codec, hidden: torch.Tensor, estimate_bits: float,
                         cache: dict | None = None) -> float | None:
    """T2's proven upper bound (bits) on the payload of ``codec.encode(hidden)``, or None.

    Parameters
    ----------
    codec : HiddenStateCodec
        The codec that wrote the stream; only a
        :class:`~rdgap.codecs.entropy_models.factorized.FactorizedCodec` is bounded, and a
        :class:`~rdgap.codecs.quantizers.rate_cap.RateCappedCodec` of one (its two-byte
        window header plus the bound of the base at the factor the stream names).
    hidden : torch.Tensor, shape (positions, width)
        The window that was coded.
    estimate_bits : float
        ``codec.estimate_bits(hidden)`` (``I_q``, escapes at 33 bits).
    cache : dict, optional
        Keeps each table's ``τ`` between calls (pass the same dict for one codec).

    Returns
    -------
    float or None
        Bits of payload (container header excluded) that the stream cannot
        exceed, by T2 (:func:`rdgap.bounds.rans_length_bounds`, start "empty").
    """
    from rdgap.codecs.entropy_models.factorized import FactorizedCodec
    from rdgap.codecs.quantizers.rate_cap import RateCappedCodec
    from rdgap.codecs.quantizers.window_ladder import FLAG_FALLBACK, WINDOW_HEADER_BYTES

    if isinstance(codec, RateCappedCodec):  # its window header + its base at the chosen factor
        index, flags, _ = codec.decide(hidden)
        header = 8.0 * WINDOW_HEADER_BYTES
        if flags & FLAG_FALLBACK:
            return header
        inner = proven_payload_bound(codec.at(index), hidden, estimate_bits - header, cache)
        return None if inner is None else header + inner
    if not isinstance(codec, FactorizedCodec):
        return None
    cache = {} if cache is None else cache
    symbols = codec.quantize(hidden)
    columns, tables = codec._columns(symbols)
    quantization = 0.0
    escapes = 0
    count = 0
    for column, table in zip(columns, tables):
        quantization += column.size * _tau(table, cache)
        escapes += int(np.count_nonzero(np.abs(column) > table.width))
        count += column.size
    bounds = rans_length_bounds(max(0.0, float(estimate_bits)) + quantization,
                                count + 3 * escapes, PRECISION, STATE_BITS, WORD_BITS,
                                start="empty")
    return float(bounds.upper)


def container_mismatch(data: bytes, counted_header_bytes: int) -> bool:
    """Whether ``counted_header_bytes`` + the payload ``data`` declares != ``len(data)``.

    The stream is parsed and checked (magic, lengths, checksum) by
    :func:`rdgap.codecs.coders.container.unpack` against its own codec id and
    parameter hash; a stream that does not parse is a mismatch too.

    Parameters
    ----------
    data : bytes
        One stream as written by a codec's ``encode``.
    counted_header_bytes : int
        The bytes the caller books as container overhead for it
        (:func:`rdgap.codecs.coders.container.header_size`).
    """
    data = bytes(data)
    try:
        name_len = data[5]
        name = data[6:6 + name_len].decode("ascii")
        digest = data[6 + name_len:14 + name_len]
        stream = unpack(data, name, digest)
    except (IndexError, UnicodeDecodeError, struct.error, BitstreamError):
        return True
    return int(counted_header_bytes) + len(stream.payload) != len(data)
