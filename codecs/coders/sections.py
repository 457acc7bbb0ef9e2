r"""Integer tables and the sectioned rANS payload of the torch backend.

What any entropy model hands the torch coder (:mod:`rdgap.codecs.coders.rans_torch`)
is, per *section* of a window, the signed symbols and, per symbol, the row of that
section's integer table that codes it. This module turns float tables into
integer ones once (:func:`integer_tables`), writes the sections of a batch of
windows into one payload per window (:func:`encode_payloads`) and reads them back
(:func:`decode_payloads`), a section's table rows possibly depending on the
sections decoded before it (a joint model's table indices come from its side
latents). :class:`rdgap.codecs.coders.torch_context.TorchContextCodec` codes the
joint models with it.

Payload of one window (integers little-endian)::

    u32 × S        byte length of each rANS section
    u32            E, the number of escaped values
    sections       each one rans_torch stream (lanes = min(lanes, symbols))
    u32 × E        excess magnitude |s| − w − 1 of each escaped value
    ⌈E/8⌉ bytes    their signs (numpy.packbits, 1 = negative)

A symbol ``s`` of a table of half-width ``w`` is coded as ``s + w``, or as the
escape ``2w + 1`` when ``|s| > w``; escaped values are listed in section order.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from . import ans, rans_torch
from . import limits
from .container import BitstreamError

#: Table precision: ``Σ f = 2^24``. The widest body table of the context model has
#: 8,194 entries, so the padding of narrow tables to a common alphabet costs < 0.05 %
#: of probability mass.
PRECISION = 24


def integer_tables(tables: Sequence[ans.ChannelTable], precision: int = PRECISION
                   ) -> tuple[torch.Tensor, np.ndarray]:
    """Integer frequency rows for ``tables`` on one common alphabet, and their widths.

    Row ``i`` codes symbol ``s`` of ``tables[i]`` as ``s + width`` (the escape as
    ``2·width + 1``); entries beyond a table's alphabet are padding a valid stream
    never uses, each given probability ``2^-precision`` (one unit) so that
    :func:`rans_torch.quantize_table` rounds every row in one pass.

    Parameters
    ----------
    tables : sequence of ans.ChannelTable
        The model's float tables.
    precision : int
        ``log2`` of each row's total.

    Returns
    -------
    freq : torch.Tensor
        int64 ``(len(tables), alphabet)``, rows summing to ``2^precision``.
    widths : numpy.ndarray
        int64 ``(len(tables),)`` half-widths.
    """
    widths = np.array([t.width for t in tables], dtype=np.int64)
    alphabet = int(2 * widths.max() + 2)
    unit = 2.0 ** -precision
    rows = np.full((len(tables), alphabet), unit)
    for row, table in zip(rows, tables):
        size = table.probabilities.size
        row[:size] = table.probabilities * (1.0 - (alphabet - size) * unit)
    return rans_torch.quantize_table(rows, precision), widths


@dataclass(frozen=True)
class SectionTables:
    """One rANS section's integer tables on the device."""

    freq: torch.Tensor      # (tables, alphabet) int64
    widths: torch.Tensor    # (tables,) int64

    @classmethod
    def build(cls, tables, device) -> "SectionTables":
        """The integer tables of ``tables`` (:func:`integer_tables`) on ``device``."""
        freq, widths = integer_tables(tables)
        return cls(freq.to(device), torch.from_numpy(widths).to(device))


def encode_payloads(sections: Sequence[tuple[torch.Tensor, torch.Tensor]],
                    tables: Sequence[SectionTables], lanes: int) -> list[bytes]:
    """One payload per window from ``(values, rows)`` of every section.

    Parameters
    ----------
    sections : sequence of (values, rows)
        Per section, ``(B, n)`` int64 signed symbols and the ``(B, n)`` rows of that
        section's integer tables that code them.
    tables : sequence of SectionTables
        Each section's integer tables.
    lanes : int
        Interleaved rANS states per section.
    """
    coded, escapes = [], []
    for (values, rows), section in zip(sections, tables):
        widths = section.widths[rows]
        index, escaped = escape_index(values, widths)
        coded.append(rans_torch.encode(index, rows, section.freq, lanes))
        escapes.append(escaped_values(values, widths, escaped))
    out = []
    for b in range(len(coded[0])):
        excess = np.concatenate([e[b][0] for e in escapes])
        negative = np.concatenate([e[b][1] for e in escapes])
        parts = [c[b] for c in coded]
        out.append(struct.pack(f"<{len(parts) + 1}I", *map(len, parts), excess.size)
                   + b"".join(parts) + excess.astype("<u4").tobytes()
                   + np.packbits(negative).tobytes())
    return out


def decode_payloads(payloads: Sequence[bytes], counts: Sequence[int],
                    tables: Sequence[SectionTables], lanes: int, device,
                    rows_of: Callable[[int, list[torch.Tensor]], torch.Tensor]
                    ) -> list[torch.Tensor]:
    """The signed symbols ``(B, counts[k])`` of every section of ``payloads``.

    ``rows_of(k, decoded)`` gives the ``(B, counts[k])`` table rows of section ``k``
    from the sections ``decoded`` before it (it may raise BitstreamError on values
    a valid stream never holds). Raises BitstreamError on a damaged payload.
    """
    parts, escapes = zip(*(split_payload(p, len(counts), sum(counts)) for p in payloads))
    cursor = np.zeros(len(payloads), dtype=np.int64)
    decoded: list[torch.Tensor] = []
    for k, (count, section) in enumerate(zip(counts, tables)):
        rans_torch.check_lengths([p[k] for p in parts], count, section.freq)  # before rows
        rows = rows_of(k, decoded)
        index = rans_torch.decode([p[k] for p in parts], count, rows, section.freq, lanes,
                                  device=device)
        decoded.append(resolve(index, section.widths[rows], escapes, cursor))
    if np.any(cursor != [e[0].size for e in escapes]):
        raise BitstreamError("data: the escape count does not match the escaped symbols; "
                             "the stream is corrupted")
    return decoded


def escape_index(values: torch.Tensor, widths: torch.Tensor):
    """Coded indices ``s + w`` (escape ``2w + 1`` where ``|s| > w``) and the escape mask."""
    index = values + widths
    escaped = (index < 0) | (index > 2 * widths)
    return torch.where(escaped, 2 * widths + 1, index), escaped


def escaped_values(values, widths, escaped) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per window: (excess magnitudes ``|s| − w − 1``, signs) of its escaped symbols."""
    counts = escaped.sum(1).cpu().numpy()
    picked = values[escaped].cpu().numpy()
    excess = np.abs(picked) - widths[escaped].cpu().numpy() - 1
    cuts = np.cumsum(counts)[:-1]
    return list(zip(np.split(excess, cuts), np.split(picked < 0, cuts)))


def split_payload(payload: bytes, sections: int, symbols: int):
    """The section bytes and the escape list ``(excess, negative)`` of one payload."""
    head = 4 * (sections + 1)
    if len(payload) < head:
        raise BitstreamError(f"data: payload of {len(payload)} bytes is shorter than its "
                             f"{head}-byte section table")
    *lengths, escapes = struct.unpack_from(f"<{sections + 1}I", payload)
    if escapes > symbols:
        raise BitstreamError(f"data: {escapes} escaped values declared for {symbols} symbols; "
                             f"the stream is corrupted")
    expected = head + sum(lengths) + 4 * escapes + -(-escapes // 8)
    if len(payload) != expected:
        raise BitstreamError(f"data: payload of {len(payload)} bytes, its section table "
                             f"declares {expected}; the stream is corrupted")
    parts, at = [], head
    for length in lengths:
        parts.append(payload[at:at + length])
        at += length
    excess = np.frombuffer(payload, "<u4", count=escapes, offset=at).astype(np.int64)
    signs = np.unpackbits(np.frombuffer(payload, np.uint8, offset=at + 4 * escapes))
    if signs[escapes:].any():
        raise BitstreamError("data: nonzero padding after the escape signs; the stream is "
                             "corrupted")
    negative = signs[:escapes].astype(bool)
    return parts, (excess, negative)


def resolve(index: torch.Tensor, widths: torch.Tensor, escapes, cursor: np.ndarray
            ) -> torch.Tensor:
    """Signed symbols from decoded indices, escaped ones taken from each window's escape
    list at ``cursor`` (advanced in place)."""
    if bool((index > 2 * widths + 1).any()):
        raise BitstreamError("data: a symbol outside its table; the stream is corrupted")
    values = index - widths
    escaped = index == 2 * widths + 1
    if not bool(escaped.any()):
        return values
    counts = escaped.sum(1).cpu().numpy()
    excess_parts, negative_parts = [], []
    for b, count in enumerate(counts):
        excess, negative = escapes[b]
        if cursor[b] + count > excess.size:
            raise BitstreamError(f"data: stream {b} has more escaped symbols than escaped "
                                 f"values; the stream is corrupted")
        excess_parts.append(excess[cursor[b]:cursor[b] + count])
        negative_parts.append(negative[cursor[b]:cursor[b] + count])
        cursor[b] += count
    magnitude = widths[escaped] + 1 + torch.from_numpy(np.concatenate(excess_parts)).to(
        values.device)
    negative = torch.from_numpy(np.concatenate(negative_parts)).to(values.device)
    values[escaped] = torch.where(negative, -magnitude, magnitude)
    return values


# -- the same sections on the constriction coder (one window, CPU) -----------------------
def _groups(rows: np.ndarray):
    """Stable order of symbols by table row, the rows used (ascending) and their counts
    (a radix sort on 16-bit keys when the rows fit)."""
    keys = rows.astype(np.int16) if rows.size and rows.max() < 2 ** 15 else rows
    order = np.argsort(keys, kind="stable")
    used, counts = np.unique(rows[order], return_counts=True)
    return order, used, counts


def grouped_columns(sections: Sequence[tuple[torch.Tensor, torch.Tensor]],
                    tables: Sequence[Sequence[ans.ChannelTable]]):
    """constriction's ``(columns, tables)`` of one window's sections: each section's
    values grouped by table row (rows ascending, symbols in section order within a row),
    one column per row used (:func:`rdgap.codecs.coders.ans.encode`).

    Parameters
    ----------
    sections : sequence of (values, rows)
        Per section, ``(1, n)`` signed symbols and their table rows (the model's
        ``sections``).
    tables : sequence of sequences of ans.ChannelTable
        Each section's float tables (the model's ``section_tables``).
    """
    columns, chosen = [], []
    for (values, rows), section in zip(sections, tables):
        flat = rows.reshape(-1).cpu().numpy()
        if flat.size == 0:
            continue
        order, used, counts = _groups(flat)
        columns += np.split(values.reshape(-1).cpu().numpy()[order], np.cumsum(counts)[:-1])
        chosen += [section[int(r)] for r in used]
    return columns, chosen


def read_grouped(decoder: ans.Decoder, counts: Sequence[int],
                 tables: Sequence[Sequence[ans.ChannelTable]],
                 rows_of: Callable[[int, list[torch.Tensor]], torch.Tensor],
                 payload_bits: int) -> list[torch.Tensor]:
    """Inverse of :func:`grouped_columns`: the ``(1, counts[k])`` signed symbols of every
    section from ``decoder``, escapes resolved (then ``decoder.finish()``).

    ``rows_of(k, decoded)`` gives section ``k``'s table rows from the sections decoded
    before it (it may raise BitstreamError). Before ``rows_of`` allocates them, a
    section whose tables are a list is checked against the payload's ``payload_bits``
    (:mod:`rdgap.codecs.coders.limits`); a lazily built table sequence (the context
    model's body) relies on the sections before it, which bound the window's length.
    """
    decoded, pending, total, needed = [], [], 0, 0.0
    for k, count in enumerate(counts):
        total += count
        if isinstance(tables[k], (list, tuple)) and count:
            limits.check_cap(total)
            needed += count * min(t.min_bits for t in tables[k])
            limits.check_information(needed, payload_bits, ans.COUNT_SLACK_BITS)
        rows = rows_of(k, decoded).reshape(-1).cpu().numpy()
        values = np.zeros(count, dtype=np.int64)
        columns = []
        if count:
            order, used, sizes = _groups(rows)
            columns = decoder.columns(sizes.tolist(), [tables[k][int(r)] for r in used])
            values[order] = np.concatenate(columns)
            pending.append((values, order, columns))
        decoded.append(torch.from_numpy(values)[None])
    decoder.finish()  # resolves escaped values in the columns, in place
    for values, order, columns in pending:
        values[order] = np.concatenate(columns)
    return decoded
