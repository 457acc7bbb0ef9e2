"""The split-run wire format: one frame per batch, sizes first, then bytes.

Every message travels as two uint8 tensors, so that the receiver always knows
how many bytes to post for (``torch.distributed`` send/recv need the size in
advance):

1. a fixed **frame header** of :data:`HEADER_BYTES` = 24 bytes (little-endian)::

       magic        4 bytes  b"RDSR"
       version      u8       FRAME_VERSION
       kind         u8       BATCH (0), END (1)
       reserved     u16      0
       batch        u32      batch index (END: number of batches sent)
       streams      u32      container streams in the body (END: 0)
       body_len     u64      bytes of the body that follows

2. the **body** of ``body_len`` bytes:

   * BATCH: a table of ``streams`` u32 stream lengths (:data:`LENGTH_BYTES`
     = 4 bytes each), then the streams themselves, back to back. Each stream
     is an rdgap container (magic, version, codec id, parameter hash, shape,
     payload, CRC-32) holding one window, as :meth:`HiddenStateCodec.encode`
     wrote it.
   * END: rank 0's timings as UTF-8 JSON (not hidden-state data).

So a batch of ``n`` windows costs ``Σ len(stream) + 24 + 4·n`` bytes on the
wire (:func:`framing_bytes`), and the run ends with one END frame.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from rdgap.codecs.container import BitstreamError

MAGIC = b"RDSR"
FRAME_VERSION = 1
BATCH, END = 0, 1
_HEADER = struct.Struct("<4sBBHIIQ")
HEADER_BYTES = _HEADER.size  # 24
LENGTH_BYTES = 4
#: Upper bound on one frame's body, checked before any buffer is allocated for it.
MAX_BODY_BYTES = 1 << 34


@dataclass(frozen=True)
class FrameHeader:
    """A parsed frame header."""

    kind: int
    batch: int
    streams: int
    body_len: int


def framing_bytes(streams: int) -> int:
    """Bytes a BATCH frame adds around ``streams`` container streams (header + lengths)."""
    return HEADER_BYTES + LENGTH_BYTES * streams


def pack_header(kind: int, batch: int, streams: int, body_len: int) -> bytes:
    """The 24-byte header of a frame."""
    if kind not in (BATCH, END):
        raise ValueError(f"kind: expected BATCH ({BATCH}) or END ({END}), got {kind!r}")
    return _HEADER.pack(MAGIC, FRAME_VERSION, kind, 0, batch, streams, body_len)


def unpack_header(data: bytes, expected_batch: int) -> FrameHeader:
    """Check a received header.

    Raises
    ------
    BitstreamError
        On a wrong size, magic, version or kind, a batch index out of order,
        or an implausible body length; the message names the expected batch.
    """
    where = f"batch {expected_batch}: frame header"
    if len(data) != HEADER_BYTES:
        raise BitstreamError(f"{where} is {len(data)} bytes, expected {HEADER_BYTES}")
    magic, version, kind, _, batch, streams, body_len = _HEADER.unpack(data)
    if magic != MAGIC:
        raise BitstreamError(f"{where}: magic {magic!r}, expected {MAGIC!r} (not a split-run "
                             f"frame; is the sender an rdgap split-run rank 0?)")
    if version != FRAME_VERSION:
        raise BitstreamError(f"{where}: frame version {version}, this rdgap reads "
                             f"{FRAME_VERSION}")
    if kind not in (BATCH, END):
        raise BitstreamError(f"{where}: unknown frame kind {kind}")
    if kind == BATCH and batch != expected_batch:
        raise BitstreamError(f"{where}: carries batch {batch}, expected {expected_batch} "
                             f"(frames lost or reordered)")
    if body_len > MAX_BODY_BYTES or (kind == BATCH and body_len < LENGTH_BYTES * streams):
        raise BitstreamError(f"{where}: implausible body length {body_len} for {streams} "
                             f"streams")
    return FrameHeader(kind, batch, streams, body_len)


def pack_body(streams: list[bytes]) -> bytes:
    """Lengths table then the streams."""
    table = struct.pack(f"<{len(streams)}I", *(len(s) for s in streams))
    return table + b"".join(streams)


def unpack_body(body: bytes, header: FrameHeader) -> list[bytes]:
    """Split a BATCH body into its container streams.

    Raises
    ------
    BitstreamError
        If the lengths table does not add up to the body (a cut or padded frame).
    """
    count = header.streams
    lengths = struct.unpack_from(f"<{count}I", body, 0)
    at = LENGTH_BYTES * count
    if at + sum(lengths) != len(body):
        raise BitstreamError(f"batch {header.batch}: frame body is {len(body)} bytes but its "
                             f"table declares {at + sum(lengths)}; the frame is cut or padded")
    streams = []
    for length in lengths:
        streams.append(body[at:at + length])
        at += length
    return streams
