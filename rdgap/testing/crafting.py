r"""Well-formed streams with crafted header fields, for the ``crafted-headers`` property.

Random corruption never gets past a checksum; a peer with a bug, or an
attacker, writes a *valid* checksum around a header that declares a huge shape
or zero tokens. Three ways to get such streams:

- the codec declares ``crafted_streams(data)``: a list of ``(what, bytes)``
  built from its valid stream ``data`` (any layout);
- the codec declares ``header_fields = {name: (offset, struct_format)}`` and
  ends every stream with a little-endian CRC32 of everything before it:
  :func:`crc32_trailer` sets each field to 0, 1, 2²⁰ and the largest value of
  its format (and all fields to 2²⁰ at once) and recomputes the CRC;
- rdgap's container (:mod:`rdgap.codecs.container`), whose layout the kit
  knows: :func:`rdgap_container` declares shapes ``(2²⁰, channels)``,
  ``(0, channels)``, ``(tokens, 0)`` and ``(2¹⁶, 2¹⁵)`` (2³¹ elements, the
  container's limit) with a valid CRC.

Examples
--------
>>> import struct, zlib
>>> body = struct.pack("<4sI", b"DEMO", 3) + b"payload"
>>> data = body + struct.pack("<I", zlib.crc32(body))
>>> streams = crc32_trailer(data, {"tokens": (4, "<I")})
>>> print([what for what, _ in streams])
['tokens = 0', 'tokens = 1', 'tokens = 1048576', 'tokens = 4294967295']
>>> crafted = streams[2][1]
>>> print(struct.unpack_from("<I", crafted, 4)[0], zlib.crc32(crafted[:-4]) == struct.unpack("<I", crafted[-4:])[0])
1048576 True
"""

from __future__ import annotations

import struct
import zlib

HUGE = 1 << 20


def _seal(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def _top(fmt: str) -> int:
    bits = 8 * struct.calcsize(fmt)
    return (1 << (bits - 1)) - 1 if fmt[-1].islower() else (1 << bits) - 1


def _values(fmt: str, original: int) -> list[int]:
    signed, top = fmt[-1].islower(), _top(fmt)
    values = [0, 1] + ([HUGE] if HUGE <= top else []) + [top]
    if signed:
        values.append(-1)
    return [v for v in dict.fromkeys(values) if v != original]


def crc32_trailer(data: bytes, fields: dict) -> list[tuple[str, bytes]]:
    """Streams with each declared integer field crafted and the trailing CRC32 recomputed.

    Parameters
    ----------
    data : bytes
        A valid stream that ends in ``crc32(data[:-4])`` (little-endian u32).
    fields : dict
        ``name → (offset, struct format)`` of integer header fields, e.g.
        ``{"tokens": (9, "<I")}``.

    Raises
    ------
    ValueError
        If ``data`` does not end in that CRC32, or a field lies outside it.
    """
    data = bytes(data)
    if len(data) < 4 or struct.unpack("<I", data[-4:])[0] != zlib.crc32(data[:-4]):
        raise ValueError("header_fields: the codec's stream does not end in a little-endian "
                         "CRC32 of the bytes before it; declare crafted_streams(data) instead")
    body, out = data[:-4], []
    originals = {}
    for name, (offset, fmt) in fields.items():
        if offset < 0 or offset + struct.calcsize(fmt) > len(body):
            raise ValueError(f"header_fields: field {name!r} at offset {offset} ({fmt}) lies "
                             f"outside the {len(body)}-byte stream body")
        originals[name] = struct.unpack_from(fmt, body, offset)[0]
        for value in _values(fmt, originals[name]):
            crafted = bytearray(body)
            struct.pack_into(fmt, crafted, offset, value)
            out.append((f"{name} = {value}", _seal(bytes(crafted))))
    if len(fields) > 1:
        crafted, labels = bytearray(body), []
        for name, (offset, fmt) in fields.items():
            value = min(HUGE, _top(fmt))
            struct.pack_into(fmt, crafted, offset, value)
            labels.append(f"{name} = {value}")
        out.append((", ".join(labels), _seal(bytes(crafted))))
    return out


def rdgap_container(data: bytes) -> list[tuple[str, bytes]]:
    """Streams of rdgap's container (:func:`rdgap.codecs.container.pack`) that declare
    another 2-D shape, payload kept, CRC recomputed: ``(2²⁰, channels)``, ``(0,
    channels)``, ``(tokens, 0)`` and ``(2¹⁶, 2¹⁵)``.

    Raises
    ------
    ValueError
        If ``data`` is not a valid 2-D rdgap stream.
    """
    data = bytes(data)
    if data[:4] != b"RDGP" or len(data) < 20:
        raise ValueError("data: not an rdgap container stream")
    name_len = data[5]
    at = 6 + name_len + 8
    if data[at] != 2:
        raise ValueError(f"data: an rdgap stream of {data[at]} dimensions; expected 2")
    tokens, channels = struct.unpack_from("<2I", data, at + 1)
    body = bytearray(data[:-4])
    out = []
    for shape in ((HUGE, channels), (0, channels), (tokens, 0), (1 << 16, 1 << 15)):
        if shape == (tokens, channels):
            continue
        struct.pack_into("<2I", body, at + 1, *shape)
        out.append((f"declared shape {shape} (the payload of {tokens}×{channels})",
                    _seal(bytes(body))))
    return out
