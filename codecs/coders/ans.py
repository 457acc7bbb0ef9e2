"""Entropy coding of per-channel symbol tables with constriction's ANS coder.

The coder is constriction's default ``AnsCoder`` (a stack: 64-bit state,
32-bit words, 24-bit probabilities). A stream holds, in decoding order: every
channel's symbols (channel-major, one table per channel and group of tokens),
then, for every symbol outside its table, its sign and magnitude with uniform
models.

Overhead against the model (THEORY.md T2)
-----------------------------------------
Let ``q`` be the float table handed to constriction, ``f`` the integer table
it builds from it (``Σ f = 2^24``, ``f ≥ 1``), ``m`` the number of symbols and
``L`` the payload length in bits. :func:`rdgap.bounds.rans_length_bounds` with
``start="empty"`` (state 64 bits, words 32, precision 24) proves

``L ≤ Σ log2(2^24/f(s_i)) + m·log2(1 + 2^-8) + 56``,

and ``Σ log2(2^24/f) = Σ −log2 q + Σ log2(q·2^24/f)`` (the table quantization
cost, :func:`rdgap.bounds.table_quantization_cost`; small because every table
is floored at ``2^-20 ≫ 2^-24``). The ``m·log2(1 + 2^-8)`` term is a worst
case reached only while the state sits at its lower limit. There is **no**
lower constant: constriction's stack starts from state 0, where a symbol at
the start of its table costs nothing (helper tests in
``tests/bounds/test_coder.py`` show it), so the payload can be shorter than
``Σ −log2 q``; a *prefix-free* stream still cannot beat the true ideal length
``−log2 p(s)`` by ``c`` bits with probability above ``2^-c`` (Kraft), which
the tests check on sources with known law.

The working form that rdgap checks on every stream it writes, and that the
issue's target states, is ``L ≤ (1 + RELATIVE_OVERHEAD)·Σ −log2 q +
STREAM_OVERHEAD_BITS`` with the estimate including 33 bits per escaped value.
"""

from __future__ import annotations

from dataclasses import dataclass

import constriction
import numpy as np

from . import limits
from .container import BitstreamError

_MODEL = constriction.stream.model
ESCAPE_SIGN = _MODEL.Uniform(2)
ESCAPE_HALF = _MODEL.Uniform(1 << 16)
ESCAPE_BITS = 33.0   # sign + two 16-bit halves of the magnitude excess
MAX_MAGNITUDE = (1 << 32) - 1
#: Working constants of T2 for this coder (see the module docstring): 56 bits of
#: flush (proven) plus up to 8 bits of table quantization, and 0.5 % per symbol.
RELATIVE_OVERHEAD = 0.005
STREAM_OVERHEAD_BITS = 64
#: constriction's table precision (``Σ f = 2^24``).
PRECISION = 24
#: Bits of state the decoders' symbol-count bound grants a payload beyond its length
#: (:mod:`rdgap.codecs.coders.limits`; :func:`encode` enforces the same bound).
COUNT_SLACK_BITS = 64
#: The fewest bits one escaped value (sign + two 16-bit halves) takes off a payload.
ESCAPE_MIN_BITS = 33.0 - 3 * limits.EPSILON_BITS


@dataclass
class ChannelTable:
    """One channel's table: probabilities over ``-width..width`` and the escape."""

    probabilities: np.ndarray
    width: int

    def __post_init__(self):
        self.model = _MODEL.Categorical(self.probabilities, perfect=False)
        self.neg_log2 = -np.log2(self.probabilities)
        # constriction's f_i <= p_i·s + 2 (s = (2^24 − n)/Σp; stream_length's derivation)
        # and f_max <= 2^24 − (n − 1): one unit of float error more, to be safe.
        p = np.asarray(self.probabilities, dtype=np.float64)
        total = float(1 << PRECISION)
        f_max = min(total - p.size + 1, float(p.max()) * (total - p.size) / float(p.sum()) + 3)
        self.min_bits = float(limits.min_bits(f_max, PRECISION))

    @property
    def escape(self) -> int:
        return 2 * self.width + 1


def _split_escapes(symbols: np.ndarray, width: int):
    index = symbols.astype(np.int64) + width
    outside = (index < 0) | (index > 2 * width)
    index[outside] = 2 * width + 1
    return index.astype(np.int32), outside


def estimate_bits(columns: list[np.ndarray], tables: list[ChannelTable]) -> float:
    """``Σ −log2 q(s)`` over all symbols, plus 33 bits per escaped value."""
    total = 0.0
    for symbols, table in zip(columns, tables):
        index, outside = _split_escapes(symbols, table.width)
        total += float(table.neg_log2[index].sum()) + ESCAPE_BITS * int(outside.sum())
    return total


def _needed_bits(lengths, tables) -> float:
    return float(sum(length * table.min_bits for length, table in zip(lengths, tables)))


def encode(columns: list[np.ndarray], tables: list[ChannelTable]) -> bytes:
    """One ANS stream for integer symbol columns, column ``i`` with ``tables[i]``.

    Refuses (ValueError) input that :class:`Decoder` would refuse: more than
    :data:`rdgap.codecs.coders.limits.MAX_STREAM_SYMBOLS` symbols, or a payload
    shorter than its symbols' least cost (only when the first entries of the tables
    are coded from constriction's empty state, where they cost nothing).
    """
    lengths = [int(np.size(c)) for c in columns]
    if sum(lengths) > limits.MAX_STREAM_SYMBOLS:
        raise ValueError(f"hidden: {sum(lengths)} symbols in one stream, more than "
                         f"MAX_STREAM_SYMBOLS = {limits.MAX_STREAM_SYMBOLS} (rdgap.codecs."
                         f"coders.limits); encode shorter windows or raise the cap")
    coder = constriction.stream.stack.AnsCoder()
    escapes = []
    indices = []
    for symbols, table in zip(columns, tables):
        index, outside = _split_escapes(symbols, table.width)
        indices.append(index)
        for value in symbols[outside]:
            magnitude = abs(int(value)) - table.width - 1
            if magnitude > MAX_MAGNITUDE:
                raise ValueError(f"hidden: a symbol of magnitude {abs(int(value))} is too large "
                                 f"to code; expected |value / step| < 2^32")
            escapes.append((int(value < 0), magnitude >> 16, magnitude & 0xFFFF))
    for sign, high, low in reversed(escapes):  # decoded last, so pushed first
        coder.encode_reverse(np.array([low], np.int32), ESCAPE_HALF)
        coder.encode_reverse(np.array([high], np.int32), ESCAPE_HALF)
        coder.encode_reverse(np.array([sign], np.int32), ESCAPE_SIGN)
    for index, table in zip(reversed(indices), reversed(tables)):
        coder.encode_reverse(index, table.model)
    payload = coder.get_compressed().astype("<u4").tobytes()
    needed = _needed_bits(lengths, tables) + ESCAPE_MIN_BITS * len(escapes)
    if needed > 8 * len(payload) + COUNT_SLACK_BITS:
        raise ValueError(f"hidden: its symbols code into {8 * len(payload)} bits, fewer than "
                         f"the {needed:.0f} the decoder's symbol-count bound requires (the "
                         f"tables' first entries, coded from an empty state); such a stream "
                         f"could not be told from a crafted one")
    return payload


class Decoder:
    """Decode a stream written by :func:`encode` in stages.

    A joint entropy model decodes its side information first and only then
    knows which table (and how many symbols) each later column has: call
    :meth:`columns` once per stage, in the order the columns were encoded,
    then :meth:`finish`, which reads the escaped values (pushed first, so
    decoded last) and checks that the stream ends exactly.
    """

    def __init__(self, data: bytes):
        if len(data) % 4:
            raise BitstreamError(f"data: ANS payload of {len(data)} bytes is not whole "
                                 f"32-bit words")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        self._pending: list[tuple[np.ndarray, ChannelTable]] = []
        self._payload_bits = 8 * len(data)
        self._needed = 0.0
        self._symbols = 0
        try:
            self._coder = constriction.stream.stack.AnsCoder(words)
        except (ValueError, RuntimeError, OverflowError) as error:
            raise BitstreamError(f"data: the ANS payload cannot be decoded ({error})") from None

    def columns(self, lengths: list[int], tables: list[ChannelTable]) -> list[np.ndarray]:
        """The next columns' symbols; escaped values read ``width + 1`` until
        :meth:`finish` replaces them (in place) with their coded values.

        Checked before anything is decoded or allocated: the symbols of this and
        the earlier calls stay within :data:`rdgap.codecs.coders.limits.
        MAX_STREAM_SYMBOLS` and within what the payload's bits can hold under
        their tables (:mod:`rdgap.codecs.coders.limits`); BitstreamError if not."""
        lengths = [int(length) for length in lengths]
        self._symbols += sum(lengths)
        self._needed += _needed_bits(lengths, tables)
        limits.check_cap(self._symbols)
        limits.check_information(self._needed, self._payload_bits, COUNT_SLACK_BITS)
        out = []
        try:
            for length, table in zip(lengths, tables):
                index = self._coder.decode(table.model, length).astype(np.int64)
                values = index - table.width
                self._pending.append((values, table))
                out.append(values)
        except (ValueError, RuntimeError, OverflowError) as error:
            raise BitstreamError(f"data: the ANS payload cannot be decoded ({error})") from None
        return out

    def finish(self) -> None:
        """Resolve escaped values in place and check that nothing is left."""
        escapes = sum(int(np.count_nonzero(values == table.width + 1))
                      for values, table in self._pending)
        self._needed += ESCAPE_MIN_BITS * escapes
        limits.check_information(self._needed, self._payload_bits, COUNT_SLACK_BITS)
        try:
            for values, table in self._pending:
                for position in np.flatnonzero(values == table.width + 1):
                    sign = int(self._coder.decode(ESCAPE_SIGN, 1)[0])
                    high = int(self._coder.decode(ESCAPE_HALF, 1)[0])
                    low = int(self._coder.decode(ESCAPE_HALF, 1)[0])
                    magnitude = table.width + 1 + ((high << 16) | low)
                    values[position] = -magnitude if sign else magnitude
        except (ValueError, RuntimeError, OverflowError) as error:
            raise BitstreamError(f"data: the ANS payload cannot be decoded ({error})") from None
        if not self._coder.is_empty():
            raise BitstreamError("data: the ANS payload holds more data than the header "
                                 "declares; the stream is corrupted")


def decode(data: bytes, lengths: list[int], tables: list[ChannelTable]) -> list[np.ndarray]:
    """Inverse of :func:`encode`; raises BitstreamError if the stream does not end exactly."""
    decoder = Decoder(data)
    out = decoder.columns(lengths, tables)
    decoder.finish()
    return out
