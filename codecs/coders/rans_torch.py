r"""A batched rANS entropy coder in torch: many streams, many lanes, integer arithmetic only.

Length (≈410 lines): the encoder and decoder of one integer coder, kept together so
that their state arithmetic is read (and checked) side by side.

Every operation on coder state is an int64 tensor operation (shift, mask,
floor division, multiply, add, ``searchsorted``), so a stream encoded on a
GPU decodes on a CPU and vice versa, bit for bit. The only floats are the
caller's probabilities, which :func:`quantize_table` turns into integer
frequencies with numpy float64 on the host, deterministically; parameters that
select a table (e.g. predicted scales) must be quantized to a table index by
the caller before they reach the coder.

Coder constants
---------------
``STATE_BITS = 63``, ``WORD_BITS = 32``: each lane's state ``x`` lies in
``[L, 2^63)`` with ``L = 2^31``, so it fits a signed int64 (torch has no
uint64) and every intermediate value stays below ``2^63``:

- encode ``s`` with frequency ``f`` and cumulative ``c`` (``Σ f = M = 2^P``):
  if ``x >> (63 - P) >= f`` emit the low 32 bits and set ``x >>= 32``; then
  ``x <- (x // f)·M + x mod f + c``. Since ``x // f < 2^(63-P)`` the result is
  ``< 2^63``.
- decode: ``slot = x mod M``, ``s`` the symbol whose ``[c, c + f)`` holds
  ``slot``, ``x <- f·(x >> P) + slot - c``; if ``x < L`` read a word,
  ``x <- (x << 32) | word < 2^63``.

``P = precision`` may be 1..28 (default tables use 16). One renormalisation
word per symbol always suffices because ``P <= 32``.

Layout
------
A stream of ``n`` symbols uses ``K = min(lanes, n)`` lanes; lane ``k`` codes
positions ``k, k + K, k + 2K, ...`` (strided, so one step of the vectorized
loop touches ``K`` consecutive symbols of every stream). All lanes of a stream
share one word stream: at each step the lanes that renormalise emit their
word in lane order, and the decoder, which sees the mirror image, refills in
the mirrored order. The bytes of a stream are, little-endian: the ``K`` final
lane states (8 bytes each), then the emitted 32-bit words in decoding order.
There is no header: the caller supplies ``lengths`` and ``lanes``.

Overhead (THEORY.md T2, :func:`rdgap.bounds.rans_length_bounds`)
-----------------------------------------------------------------
With ``I = Σ log2(M / f(s_i))`` over the ``m`` symbols of a stream and
``ε = log2(1 + 2^(P - 31))`` (``4.4e-5`` bits at ``P = 16``), every stream's
length ``L_bits`` satisfies exactly

``I - m·ε + 32·K < L_bits <= I + m·ε + 64·K``.

The flush costs at most 64 bits per lane; with the default 16 lanes that is
1024 bits per stream, 4 bits/token for a 256-token window (576 channels per
token: 0.007 bits per symbol). One stream per token would cost 64 bits/token.

Cost
----
Encoding is ``ceil(n / K)`` sequential steps of ``O(streams·K)`` vectorized
work. Decoding finds each symbol with one ``torch.searchsorted`` into the
concatenation of all tables' cumulative starts, offset by ``table·M`` so the
concatenation is sorted: ``O(log(num_tables·alphabet))`` per symbol and no
per-table lookup arrays (memory ``O(num_tables·alphabet)``).

Malformed input raises :class:`~rdgap.codecs.coders.container.BitstreamError`:
a length that is not whole words, too few or too many words for the declared
length, a final state out of range, a word read past the end, or a lane that
does not end at its initial state ``L`` with every word consumed (a corrupted
stream passes that check with probability about ``2^-31`` per lane). Work and
memory are bounded by the caller's ``lengths``; nothing loops on the data.

Examples
--------
>>> import torch
>>> freq = quantize_table([[0.5, 0.25, 0.25]], precision=16)
>>> freq.tolist()
[[32768, 16384, 16384]]
>>> symbols = torch.tensor([[0, 1, 2, 0, 0, 2]])
>>> data = encode(symbols, torch.zeros_like(symbols), freq, lanes=2)
>>> len(data[0])
16
>>> decode(data, [6], torch.zeros(1, 6, dtype=torch.int64), freq, lanes=2).tolist()
[[0, 1, 2, 0, 0, 2]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from . import limits
from .container import BitstreamError

STATE_BITS = 63
WORD_BITS = 32
LOWER = 1 << (STATE_BITS - WORD_BITS)        # L = 2^31: the lower end of a lane's state
STATE_BYTES = 8                              # each final state is flushed as 8 bytes
FLUSH_BITS = 8 * STATE_BYTES                 # 64 bits per lane
DEFAULT_LANES = 16
DEFAULT_PRECISION = 16
MAX_PRECISION = 28
_WORD_MASK = (1 << WORD_BITS) - 1


def quantize_table(probabilities, precision: int = DEFAULT_PRECISION) -> torch.Tensor:
    r"""Integer frequency rows from float probability rows, deterministically.

    Each row ``p`` is normalised by its exactly rounded sum (``math.fsum``);
    with ``M = 2^precision``, ``f = max(1, floor(p·M))``. If that leaves units
    over, they go one each to the largest remainders ``p·M - f`` (largest
    remainder rounding, ties to the lower index); if the floor of 1 took too
    many, units are taken back one at a time from the symbol with ``f > 1``
    and the smallest ``p / f`` (the first-order cost of the decrement). Only
    correctly rounded float64 operations decide (no ``log``), so the same
    input gives the same table on every machine.

    Parameters
    ----------
    probabilities : array_like, shape (A,) or (T, A)
        Nonnegative finite weights; each row must have a positive sum.
    precision : int
        ``P`` with ``1 <= P <= 28`` and ``A <= 2^P``.

    Returns
    -------
    torch.Tensor
        int64, shape (T, A) (a 1-D input gives T = 1): every entry ``>= 1``,
        every row summing to exactly ``2^precision``.

    Examples
    --------
    >>> quantize_table([0.7, 0.2, 0.1], precision=4).tolist()
    [[11, 3, 2]]
    """
    precision = _precision(precision)
    try:
        p = np.array(probabilities, dtype=np.float64, ndmin=1)
    except (TypeError, ValueError):
        raise ValueError("probabilities: expected an array of real numbers") from None
    if p.ndim == 1:
        p = p[None, :]
    if p.ndim != 2 or p.shape[1] < 1 or p.shape[0] < 1:
        raise ValueError(f"probabilities: expected shape (A,) or (T, A), got {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("probabilities: expected finite values >= 0")
    total, alphabet = 1 << precision, p.shape[1]
    if alphabet > total:
        raise ValueError(f"precision: 2^{precision} = {total} cannot give {alphabet} "
                         f"symbols a frequency >= 1 each; raise precision")
    sums = np.array([math.fsum(row) for row in p])
    if np.any(sums <= 0):
        raise ValueError("probabilities: every row needs a positive sum")
    ideal = (p / sums[:, None]) * float(total)
    freq = np.maximum(np.floor(ideal).astype(np.int64), 1)
    rows = np.arange(len(p))
    while True:     # at most A rounds: each one moves one unit in every row still off
        left = total - freq.sum(axis=1)
        if not left.any():
            break
        more, less = left > 0, left < 0
        if more.any():
            remainder = np.where(more[:, None], ideal - freq, -np.inf)
            order = np.argsort(-remainder, axis=1, kind="stable")
            rank = np.empty_like(order)
            np.put_along_axis(rank, order, np.broadcast_to(np.arange(alphabet), order.shape),
                              axis=1)
            freq += more[:, None] & (rank < left[:, None])
        if less.any():
            cost = np.where(freq > 1, p / freq, np.inf)
            pick = np.argmin(cost, axis=1)
            freq[rows[less], pick[less]] -= 1
    return torch.from_numpy(freq)


def cdf_from_freq(freq) -> torch.Tensor:
    """Cumulative starts: shape (T, A + 1), ``cdf[:, 0] = 0``, ``cdf[:, -1] = 2^P``."""
    freq = torch.as_tensor(freq)
    return torch.cat([torch.zeros_like(freq[:, :1]), freq.cumsum(1)], dim=1)


@dataclass(frozen=True)
class _Tables:
    """Flattened tables on one device: frequencies, starts and the sorted global starts."""

    freq: torch.Tensor        # (T·A,) int64
    start: torch.Tensor       # (T·A,) int64, cumulative start within the row
    key: torch.Tensor         # (T·A,) int64, table·M + start (strictly increasing)
    num_tables: int
    alphabet: int
    precision: int

    @classmethod
    def build(cls, freq, device) -> "_Tables":
        freq = torch.as_tensor(freq)
        if freq.dim() != 2 or freq.numel() == 0 or freq.dtype.is_floating_point \
                or freq.dtype == torch.bool:
            raise ValueError("freq: expected a non-empty 2-D integer tensor (tables, alphabet)")
        freq = freq.to(device=device, dtype=torch.int64)
        if bool((freq < 1).any()):
            raise ValueError("freq: every frequency must be >= 1")
        sums = freq.sum(1)
        total = int(sums[0])
        precision = total.bit_length() - 1
        if total != 1 << precision or bool((sums != total).any()) \
                or not 1 <= precision <= MAX_PRECISION:
            raise ValueError(f"freq: every row must sum to the same 2^P with 1 <= P <= "
                             f"{MAX_PRECISION}; got row sums {sums.unique().tolist()[:4]}")
        num_tables, alphabet = freq.shape
        start = cdf_from_freq(freq)[:, :-1]
        offset = torch.arange(num_tables, device=device, dtype=torch.int64)[:, None] << precision
        return cls(freq.reshape(-1), start.reshape(-1), (start + offset).reshape(-1),
                   num_tables, alphabet, precision)


def _precision(precision) -> int:
    if isinstance(precision, bool) or not isinstance(precision, int) \
            or not 1 <= precision <= MAX_PRECISION:
        raise ValueError(f"precision: expected an integer 1..{MAX_PRECISION}, got {precision!r}")
    return precision


def _lanes(lanes) -> int:
    if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
        raise ValueError(f"lanes: expected an integer >= 1, got {lanes!r}")
    return lanes


def _layout(n: int, lanes: int) -> tuple[int, int]:
    """Lanes actually used and steps for ``n`` symbols: ``K = min(lanes, n)``, ``ceil(n/K)``."""
    k = min(lanes, n)
    return k, (-(-n // k) if k else 0)


def _index_tensor(values, name: str, shape, upper: int, device) -> torch.Tensor:
    values = torch.as_tensor(values, device=device)
    if values.dtype.is_floating_point or values.dtype.is_complex or values.dtype == torch.bool:
        raise ValueError(f"{name}: expected integers, got {values.dtype}")
    try:
        values = torch.broadcast_to(values.to(torch.int64), shape)
    except RuntimeError:
        raise ValueError(f"{name}: shape {tuple(values.shape)} does not broadcast to "
                         f"{tuple(shape)}") from None
    if values.numel() and (bool((values < 0).any()) or bool((values >= upper).any())):
        raise ValueError(f"{name}: expected values in [0, {upper})")
    return values


def _steps(values: torch.Tensor, k: int, steps: int, fill: int) -> torch.Tensor:
    """(B, n) -> (B, steps, k), padding the tail with ``fill``."""
    b, n = values.shape
    padded = values.new_full((b, steps * k), fill)
    padded[:, :n] = values
    return padded.view(b, steps, k)


def encode(symbols, table, freq, lanes: int = DEFAULT_LANES) -> list[bytes]:
    """Encode each row of ``symbols`` into its own rANS stream.

    Parameters
    ----------
    symbols : tensor, shape (streams, length)
        Symbol indices in ``[0, alphabet)``; the device of this tensor is the
        device the coder runs on.
    table : tensor broadcastable to ``symbols.shape``
        Which row of ``freq`` codes each symbol, in ``[0, num_tables)``.
    freq : int tensor, shape (num_tables, alphabet)
        Every entry ``>= 1``, every row summing to ``2^P`` (:func:`quantize_table`).
    lanes : int
        Interleaved rANS states per stream (``min(lanes, length)`` are used).

    Returns
    -------
    list of bytes
        One stream per row (see the module docstring for the layout).
    """
    lanes = _lanes(lanes)
    symbols = torch.as_tensor(symbols)
    if symbols.dim() != 2:
        raise ValueError(f"symbols: expected shape (streams, length), got {tuple(symbols.shape)}")
    device = symbols.device
    tables = _Tables.build(freq, device)
    symbols = _index_tensor(symbols, "symbols", symbols.shape, tables.alphabet, device)
    table = _index_tensor(table, "table", symbols.shape, tables.num_tables, device)
    streams, n = symbols.shape
    k, steps = _layout(n, lanes)
    if k == 0:
        return [b""] * streams
    p, total = tables.precision, 1 << tables.precision
    flat = table * tables.alphabet + symbols
    # Padding positions code (f, c) = (M, 0): x -> x, and x >> (63 - P) < M never renormalises.
    f = _steps(tables.freq[flat], k, steps, total)
    c = _steps(tables.start[flat], k, steps, 0)
    x = torch.full((streams, k), LOWER, dtype=torch.int64, device=device)
    words = torch.zeros((streams, steps * k + 1), dtype=torch.int64, device=device)
    dump = steps * k                                   # column for lanes that emit nothing
    count = torch.zeros((streams, 1), dtype=torch.int64, device=device)
    for t in range(steps - 1, -1, -1):
        ft, ct = f[:, t], c[:, t]
        emit = (x >> (STATE_BITS - p)) >= ft
        rank = emit.cumsum(1) - emit.to(torch.int64)
        words.scatter_(1, torch.where(emit, count + rank, dump), x & _WORD_MASK)
        count += emit.sum(1, keepdim=True)
        x = torch.where(emit, x >> WORD_BITS, x)
        x = (x // ft) * total + x % ft + ct
    return _serialise(x, words, count)


def _serialise(x: torch.Tensor, words: torch.Tensor, count: torch.Tensor) -> list[bytes]:
    states = x.cpu().numpy().astype("<u8")
    bulk = words.cpu().numpy()
    used = count.cpu().numpy()[:, 0]
    return [states[b].tobytes() + bulk[b, :used[b]][::-1].astype("<u4").tobytes()
            for b in range(len(states))]


def _parse(data: Sequence[bytes], n: int, k: int, device) -> tuple[torch.Tensor, torch.Tensor,
                                                                    torch.Tensor]:
    """Initial states (B, k), word buffer (B, n + 1) and word counts (B, 1), all checked."""
    head = STATE_BYTES * k
    states, counts = np.empty((len(data), k), np.uint64), np.empty(len(data), np.int64)
    bulk = np.zeros((len(data), n + 1), np.int64)
    for b, stream in enumerate(data):
        if not isinstance(stream, (bytes, bytearray, memoryview)):
            raise ValueError(f"data: stream {b} is {type(stream).__name__}, expected bytes")
        size = len(stream)
        if k == 0:
            if size:
                raise BitstreamError(f"data: stream {b} declares 0 symbols but holds {size} bytes")
            continue
        if size % 4 or size < head or (size - head) // 4 > n:
            raise BitstreamError(f"data: stream {b} has {size} bytes; a stream of {n} symbols "
                                 f"in {k} lanes has {head} + 4·w bytes with 0 <= w <= {n}")
        states[b] = np.frombuffer(stream, "<u8", count=k)
        counts[b] = (size - head) // 4
        bulk[b, :counts[b]] = np.frombuffer(stream, "<u4", offset=head)
    if np.any(states >= np.uint64(1 << STATE_BITS)) or np.any(states < np.uint64(LOWER)):
        raise BitstreamError(f"data: a final lane state is outside [2^{STATE_BITS - WORD_BITS}, "
                             f"2^{STATE_BITS}); the stream is corrupted or foreign")
    as_tensor = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    return (as_tensor(states.astype(np.int64)), as_tensor(bulk),
            as_tensor(counts[:, None]))


def decode(data: Sequence[bytes], lengths, table, freq, lanes: int = DEFAULT_LANES,
           device=None) -> torch.Tensor:
    """Decode streams from :func:`encode`; raises BitstreamError on a malformed stream.

    Parameters
    ----------
    data : sequence of bytes
        One stream per row, as :func:`encode` returned them.
    lengths : int or sequence of int
        Symbols per stream; all equal (one call codes one rectangular batch).
    table : tensor broadcastable to ``(streams, length)``
        The table indices the encoder used.
    freq : int tensor, shape (num_tables, alphabet)
        The encoder's frequencies.
    lanes : int
        The encoder's ``lanes``.
    device : torch.device or str, optional
        Where to decode (default: the device of ``table`` if a tensor, else CPU).

    Returns
    -------
    torch.Tensor
        int64 symbols, shape (streams, length), on ``device``.
    """
    lanes = _lanes(lanes)
    if isinstance(data, (bytes, bytearray)):
        raise ValueError("data: expected a sequence of bytes objects, one per stream")
    data = list(data)
    n = _length(lengths, len(data))
    if device is None:
        device = table.device if isinstance(table, torch.Tensor) else torch.device("cpu")
    tables = _Tables.build(freq, device)
    check_lengths(data, n, tables.freq.view(tables.num_tables, -1))
    table = _index_tensor(table, "table", (len(data), n), tables.num_tables, device)
    k, steps = _layout(n, lanes)
    x, bulk, avail = _parse(data, n, k, device)
    streams = len(data)
    if k == 0 or streams == 0:
        return torch.zeros((streams, n), dtype=torch.int64, device=device)
    p, mask = tables.precision, (1 << tables.precision) - 1
    tb = _steps(table, k, steps, 0)
    active = _steps(torch.ones_like(table, dtype=torch.bool), k, steps, False)
    out = torch.zeros((streams, steps, k), dtype=torch.int64, device=device)
    ptr = torch.zeros((streams, 1), dtype=torch.int64, device=device)
    overrun = torch.zeros(streams, dtype=torch.bool, device=device)
    for t in range(steps):
        slot, row, on = x & mask, tb[:, t], active[:, t]
        index = torch.searchsorted(tables.key, (row << p) + slot, right=True) - 1
        out[:, t] = index - row * tables.alphabet
        y = tables.freq[index] * (x >> p) + slot - tables.start[index]
        need = (y < LOWER) & on
        later = need.flip(1).cumsum(1).flip(1) - need.to(torch.int64)
        position = ptr + later
        overrun |= (need & (position >= avail)).any(1)
        word = bulk.gather(1, position.clamp(max=n))
        x = torch.where(on, torch.where(need, (y << WORD_BITS) | word, y), x)
        ptr += need.sum(1, keepdim=True)
        if t % _OVERRUN_POLL == _OVERRUN_POLL - 1 and bool(overrun.any()):
            break  # fail fast: a lane read past its words (checked once per _OVERRUN_POLL steps)
    bad = overrun | (x != LOWER).any(1) | (ptr[:, 0] != avail[:, 0])
    if bool(bad.any()):
        which = torch.nonzero(bad).flatten().tolist()
        raise BitstreamError(f"data: stream(s) {which[:8]} did not decode to the initial "
                             f"state with every word consumed (truncated, corrupted, or "
                             f"decoded with other lengths/tables/lanes)")
    return out.view(streams, steps * k)[:, :n]


#: Steps between the decoder's checks for a lane that read past its stream's words.
_OVERRUN_POLL = 64


def check_lengths(data: Sequence[bytes], n: int, freq: torch.Tensor) -> None:
    """BitstreamError unless each of ``data``'s streams can hold ``n`` symbols.

    A lane's state stays in ``[2^31, 2^63)`` and ends at ``2^31``, so a stream of
    ``s`` bytes (``k`` 8-byte states, ``w`` words) gives its symbols at most ``32k +
    32w <= 8s`` bits, and each symbol takes at least
    :func:`rdgap.codecs.coders.limits.min_bits` of the largest frequency in
    ``freq``: ``n·b <= 8s`` holds for every valid stream (a theorem, not a
    tolerance). ``n`` also stays within ``limits.MAX_STREAM_SYMBOLS``. Called by
    :func:`decode` before it allocates anything of size ``n``; callers that
    allocate per symbol before decoding call it first.
    """
    if n == 0:
        return
    limits.check_cap(n)
    freq = torch.as_tensor(freq)
    precision = int(freq[0].sum()).bit_length() - 1
    bits = float(limits.min_bits(int(freq.max()), precision, STATE_BITS - WORD_BITS))
    for stream in data:  # a stream that is not bytes is _parse's ValueError
        if isinstance(stream, (bytes, bytearray, memoryview)):
            limits.check_information(n * bits, 8 * len(stream), 0.0)


def _length(lengths, streams: int) -> int:
    values = [lengths] * streams if isinstance(lengths, int) else list(lengths)
    if len(values) != streams or any(isinstance(v, bool) or not isinstance(v, int) or v < 0
                                     for v in values):
        raise ValueError(f"lengths: expected an int >= 0 or one per stream ({streams})")
    if len(set(values)) > 1:
        raise ValueError(f"lengths: one call decodes streams of one length, got {sorted(set(values))}")
    return values[0] if values else 0
