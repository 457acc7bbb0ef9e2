"""The split-run wire format: one frame per batch, sizes first, then bytes.

Every message travels as two uint8 tensors, so that the receiver always knows
how many bytes to post for (``torch.distributed`` send/recv need the size in
advance):

1. a fixed **frame header** of :data:`HEADER_BYTES` = 32 bytes (little-endian)::

       magic        4 bytes  b"RDSR"
       version      u8       FRAME_VERSION (2)
       kind         u8       BATCH (0), END (1)
       reserved     u16      0
       batch        u32      batch index (END: number of batches sent)
       streams      u32      container streams in the body (END: 0)
       body_len     u64      bytes of the body that follows
       body_crc     u32      CRC-32 of the body
       header_crc   u32      CRC-32 of the 28 bytes above

   :func:`unpack_header` checks the header's CRC first, then every field, and
   refuses a ``body_len`` above the receiver's limit (:func:`body_limit`, or
   ``--max-frame-bytes``) *before* any buffer is allocated for the body, so a
   damaged or forged header costs at most its 32 bytes.

2. the **body** of ``body_len`` bytes:

   * BATCH: a table of ``streams`` u32 stream lengths (:data:`LENGTH_BYTES`
     = 4 bytes each), then the streams themselves, back to back. Each stream
     is an rdgap container (magic, version, codec id, parameter hash, shape,
     payload, CRC-32) holding one window, as :meth:`HiddenStateCodec.encode`
     wrote it.
   * END: rank 0's timings as UTF-8 JSON (not hidden-state data).

So a batch of ``n`` windows costs ``Σ len(stream) + 32 + 4·n`` bytes on the
wire (:func:`framing_bytes`), and the run ends with one END frame. The body
travels in messages of at most :data:`CHUNK_BYTES` (see
:mod:`rdgap.distributed.transport`).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from rdgap.codecs.coders.container import BitstreamError

MAGIC = b"RDSR"
FRAME_VERSION = 2
BATCH, END = 0, 1
_FIELDS = struct.Struct("<4sBBHIIQI")
_CRC = struct.Struct("<I")
HEADER_BYTES = _FIELDS.size + _CRC.size  # 32
LENGTH_BYTES = 4
#: Messages a frame body is cut into (bytes); the receiver posts buffers of this size.
CHUNK_BYTES = 1 << 20
#: Default cap on an END frame's body (rank 0's report as JSON).
END_BODY_BYTES = 16 << 20
#: Default cap on a BATCH body when no limit is derived from the agreed shape.
MAX_BODY_BYTES = 1 << 30


def body_limit(batch_size: int, window_length: int, width: int) -> int:
    """Default cap on one BATCH body for the shape both ranks agreed on (bytes).

    Twice the float32 bytes of the batch (no rdgap codec writes more than 32
    bits per value plus a per-token scale), plus 64 KiB per window for
    container headers and tables: an fp16 stream fills a quarter of it.
    """
    return 2 * 4 * batch_size * window_length * width + (64 << 10) * batch_size


@dataclass(frozen=True)
class FrameHeader:
    """A parsed frame header."""

    kind: int
    batch: int
    streams: int
    body_len: int
    body_crc: int = 0


def framing_bytes(streams: int) -> int:
    """Bytes a BATCH frame adds around ``streams`` container streams (header + lengths)."""
    return HEADER_BYTES + LENGTH_BYTES * streams


def pack_header(kind: int, batch: int, streams: int, body: bytes) -> bytes:
    """The 32-byte header of a frame carrying ``body`` (its length and CRC-32 go in it)."""
    if kind not in (BATCH, END):
        raise ValueError(f"kind: expected BATCH ({BATCH}) or END ({END}), got {kind!r}")
    if not isinstance(body, (bytes, bytearray)):
        raise ValueError(f"body: expected the frame's body as bytes, got {type(body).__name__}")
    return header_fields(kind, batch, streams, len(body), zlib.crc32(body))


def header_fields(kind: int, batch: int, streams: int, body_len: int, body_crc: int,
                  version: int = FRAME_VERSION) -> bytes:
    """A header with any field values and a valid header checksum.

    What :func:`pack_header` writes for a real body; tests and fault injection
    use it to build headers that lie about their body (crafted frames).
    """
    fields = _FIELDS.pack(MAGIC, version, kind, 0, batch, streams, body_len, body_crc)
    return fields + _CRC.pack(zlib.crc32(fields))


def unpack_header(data: bytes, expected_batch: int, max_body: int = MAX_BODY_BYTES,
                  max_end_body: int = END_BODY_BYTES) -> FrameHeader:
    """Check a received header before anything is allocated for its body.

    Parameters
    ----------
    data : bytes
        The :data:`HEADER_BYTES` received.
    expected_batch : int
        The batch index the receiver waits for.
    max_body, max_end_body : int
        Largest BATCH / END body accepted (bytes).

    Raises
    ------
    BitstreamError
        On a wrong size or header checksum, magic, version or kind, a batch
        index out of order, or a body length above the limit or too short for
        its lengths table; the message names the expected batch.
    """
    where = f"batch {expected_batch}: frame header"
    if len(data) != HEADER_BYTES:
        raise BitstreamError(f"{where} is {len(data)} bytes, expected {HEADER_BYTES}")
    fields, (crc,) = data[:_FIELDS.size], _CRC.unpack_from(data, _FIELDS.size)
    magic, version, kind, _, batch, streams, body_len, body_crc = _FIELDS.unpack(fields)
    if magic != MAGIC:
        raise BitstreamError(f"{where}: magic {magic!r}, expected {MAGIC!r} (not a split-run "
                             f"frame; is the sender an rdgap split-run rank 0?)")
    if zlib.crc32(fields) != crc:
        raise BitstreamError(f"{where}: checksum mismatch; the header is corrupted")
    if version != FRAME_VERSION:
        raise BitstreamError(f"{where}: frame version {version}, this rdgap reads "
                             f"{FRAME_VERSION}")
    if kind not in (BATCH, END):
        raise BitstreamError(f"{where}: unknown frame kind {kind}")
    if kind == BATCH and batch != expected_batch:
        raise BitstreamError(f"{where}: carries batch {batch}, expected {expected_batch} "
                             f"(frames lost or reordered)")
    limit = max_body if kind == BATCH else max_end_body
    if body_len > limit:
        raise BitstreamError(f"{where}: body of {body_len} bytes exceeds the limit of {limit} "
                             f"bytes (--max-frame-bytes; the default follows from batch-size "
                             f"× window-length × width)")
    if kind == BATCH and body_len < LENGTH_BYTES * streams:
        raise BitstreamError(f"{where}: implausible body length {body_len} for {streams} "
                             f"streams")
    return FrameHeader(kind, batch, streams, body_len, body_crc)


def check_body(body: bytes, header: FrameHeader) -> None:
    """Raise BitstreamError unless ``body`` has the length and CRC-32 its header declares."""
    where = f"batch {header.batch}: frame body of {len(body)} bytes"
    if len(body) != header.body_len:
        raise BitstreamError(f"{where}: its header declares {header.body_len}; the frame is "
                             f"cut or padded")
    crc = zlib.crc32(body)
    if crc != header.body_crc:
        raise BitstreamError(f"{where}: CRC-32 {crc:08x}, its header declares "
                             f"{header.body_crc:08x}; the body is corrupted or the header lies "
                             f"about its length")


def pack_body(streams: list[bytes]) -> bytes:
    """Lengths table then the streams."""
    table = struct.pack(f"<{len(streams)}I", *(len(s) for s in streams))
    return table + b"".join(streams)


def unpack_body(body: bytes, header: FrameHeader) -> list[bytes]:
    """Split a BATCH body into its container streams.

    Raises
    ------
    BitstreamError
        If the body's length or CRC differ from its header, or the lengths
        table does not add up to the body (a cut or padded frame).
    """
    check_body(body, header)
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


class FrameReader:
    """Checks and splits one whole frame (header then body) as rank 1 does.

    Rank 1 receives the header and the body separately
    (:class:`rdgap.distributed.transport.Receiver`); this reads them from one
    buffer, for stored frames, tests and fuzzing. :meth:`decode` returns the
    BATCH body's streams (an END body as a one-item list).

    Parameters
    ----------
    expected_batch : int
        The batch index the frame must carry.
    max_body : int
        Largest BATCH body accepted (bytes).
    """

    def __init__(self, expected_batch: int = 0, max_body: int = MAX_BODY_BYTES):
        self.expected_batch, self.max_body = expected_batch, max_body

    def decode(self, data: bytes) -> list[bytes]:
        """The frame's streams; BitstreamError on any damage or inconsistency."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise BitstreamError(f"data: expected bytes, got {type(data).__name__}")
        data = bytes(data)
        header = unpack_header(data[:HEADER_BYTES], self.expected_batch, self.max_body)
        body = data[HEADER_BYTES:]
        if header.kind == END:
            check_body(body, header)
            return [body]
        return unpack_body(body, header)
