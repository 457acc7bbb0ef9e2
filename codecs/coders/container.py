"""The rdgap stream container: a checked header around every codec payload.

Layout (all integers little-endian)::

    magic        4 bytes   b"RDGP"
    version      u8        FORMAT_VERSION
    codec_len    u8        length of the codec id
    codec_id     ascii     e.g. "int8-absmax"
    params_hash  8 bytes   blake2b-64 of the codec's parameters and tables
    ndim         u8        dimensions of the decoded tensor
    shape        u32 × ndim
    payload_len  u32
    payload      payload_len bytes
    crc32        u32       of everything above

:func:`unpack` checks the length, magic, version, codec id, parameter hash and
checksum, and bounds the shape, *before* any codec allocates memory sized by
the header. Every failure raises :class:`BitstreamError` saying what was
expected.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass

MAGIC = b"RDGP"
FORMAT_VERSION = 1
_MAX_NDIM = 8
_MAX_ELEMENTS = 1 << 31
_TRAILER = struct.Struct("<I")


class BitstreamError(ValueError):
    """A stream that cannot be decoded: truncated, corrupted, or foreign."""


def params_hash(codec_id: str, params: dict) -> bytes:
    """8-byte digest of a codec id and its JSON-serialisable parameters."""
    text = json.dumps({"codec": codec_id, "params": params}, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=8).digest()


@dataclass(frozen=True)
class Stream:
    """A parsed, checked stream: the decoded tensor's shape and the payload."""

    codec_id: str
    shape: tuple[int, ...]
    payload: bytes


def pack(codec_id: str, digest: bytes, shape: tuple[int, ...], payload: bytes) -> bytes:
    """Wrap ``payload`` in a header and checksum."""
    name = codec_id.encode("ascii")
    if len(name) > 255 or len(digest) != 8 or len(shape) > _MAX_NDIM:
        raise ValueError("codec_id/digest/shape: expected an id of ≤255 ascii bytes, "
                         "an 8-byte digest and at most 8 dimensions")
    head = (MAGIC + struct.pack("<BB", FORMAT_VERSION, len(name)) + name + digest
            + struct.pack("<B", len(shape)) + struct.pack(f"<{len(shape)}I", *shape)
            + struct.pack("<I", len(payload)))
    body = head + payload
    return body + _TRAILER.pack(zlib.crc32(body))


def header_size(codec_id: str, ndim: int) -> int:
    """Bytes of header and checksum around a payload (the container's overhead)."""
    return 4 + 2 + len(codec_id.encode("ascii")) + 8 + 1 + 4 * ndim + 4 + _TRAILER.size


def unpack(data: bytes, codec_id: str, digest: bytes) -> Stream:
    """Check a stream against the codec that is asked to decode it.

    Raises
    ------
    BitstreamError
        On truncation, a wrong magic, version, codec id or parameter hash, an
        implausible shape, or a checksum mismatch.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BitstreamError(f"data: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    minimum = header_size("", 0)
    if len(data) < minimum:
        raise BitstreamError(f"data: truncated stream of {len(data)} bytes; an rdgap stream "
                             f"has at least {minimum}")
    if data[:4] != MAGIC:
        raise BitstreamError(f"data: not an rdgap stream (magic {data[:4]!r}, expected {MAGIC!r})")
    version, name_len = struct.unpack_from("<BB", data, 4)
    if version != FORMAT_VERSION:
        raise BitstreamError(f"data: stream format version {version}; this rdgap reads "
                             f"version {FORMAT_VERSION}")
    at = 6
    if len(data) < at + name_len + 9:
        raise BitstreamError("data: truncated stream (header cut inside the codec id)")
    name = data[at:at + name_len].decode("ascii", errors="replace")
    at += name_len
    found_digest = data[at:at + 8]
    at += 8
    (ndim,) = struct.unpack_from("<B", data, at)
    at += 1
    if ndim > _MAX_NDIM or len(data) < at + 4 * ndim + 4 + _TRAILER.size:
        raise BitstreamError(f"data: truncated or corrupted header (ndim={ndim})")
    shape = struct.unpack_from(f"<{ndim}I", data, at)
    at += 4 * ndim
    (payload_len,) = struct.unpack_from("<I", data, at)
    at += 4
    if len(data) != at + payload_len + _TRAILER.size:
        raise BitstreamError(f"data: stream is {len(data)} bytes but its header declares "
                             f"{at + payload_len + _TRAILER.size}; it is truncated or padded")
    (crc,) = _TRAILER.unpack_from(data, at + payload_len)
    if zlib.crc32(data[:at + payload_len]) != crc:
        raise BitstreamError("data: checksum mismatch; the stream is corrupted")
    if name != codec_id:
        raise BitstreamError(f"data: stream was written by codec {name!r}; it cannot be decoded "
                             f"by {codec_id!r} (use the codec that wrote it)")
    if found_digest != digest:
        raise BitstreamError(f"data: codec {codec_id!r} parameters or tables differ from the "
                             f"encoder's (hash {found_digest.hex()} in the stream, "
                             f"{digest.hex()} here); load the same codec version and tables")
    elements = 1
    for size in shape:
        elements *= size
    if elements > _MAX_ELEMENTS:
        raise BitstreamError(f"data: header declares {elements} elements, more than the "
                             f"{_MAX_ELEMENTS} an rdgap stream may hold")
    return Stream(codec_id=name, shape=tuple(shape), payload=data[at:at + payload_len])
