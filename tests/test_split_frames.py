"""The split-run frame format v2 (rdgap/distributed/framing.py): checksums and limits.

Without processes: every header byte is covered by the header CRC, every body byte by
the body CRC, and a body above the receiver's limit is refused before anything is
allocated for it, with a message naming --max-frame-bytes (issue 17).
"""

from __future__ import annotations

import pytest

from rdgap.codecs.coders.container import BitstreamError
from rdgap.distributed.config import SplitRunConfig
from rdgap.distributed.framing import (BATCH, END, END_BODY_BYTES, HEADER_BYTES, FrameReader,
                                       body_limit, header_fields, pack_body, pack_header,
                                       unpack_header)

STREAMS = [b"first stream", b"", b"third"]
BODY = pack_body(STREAMS)
FRAME = pack_header(BATCH, 2, len(STREAMS), BODY) + BODY


def test_a_frame_reads_back_its_streams():
    assert FrameReader(2).decode(FRAME) == STREAMS
    end = pack_header(END, 5, 0, b'{"status": "ok"}') + b'{"status": "ok"}'
    assert FrameReader(5).decode(end) == [b'{"status": "ok"}']


@pytest.mark.parametrize("byte", range(HEADER_BYTES))
def test_every_header_byte_is_checked(byte):
    broken = bytearray(FRAME)
    broken[byte] ^= 0x01
    with pytest.raises(BitstreamError, match="batch 2: frame header"):
        unpack_header(bytes(broken[:HEADER_BYTES]), 2)


def test_every_body_byte_is_checked():
    for byte in range(HEADER_BYTES, len(FRAME)):
        broken = bytearray(FRAME)
        broken[byte] ^= 0x80
        with pytest.raises(BitstreamError, match="CRC-32 .* its header declares"):
            FrameReader(2).decode(bytes(broken))


def test_a_body_above_the_limit_is_refused_naming_the_option():
    header = pack_header(BATCH, 0, 1, bytes(1000))
    assert unpack_header(header, 0, max_body=1000).body_len == 1000
    with pytest.raises(BitstreamError, match="body of 1000 bytes exceeds the limit of 999 "
                                             "bytes \\(--max-frame-bytes"):
        unpack_header(header, 0, max_body=999)
    huge_end = header_fields(END, 0, 0, END_BODY_BYTES + 1, 0)
    with pytest.raises(BitstreamError, match="exceeds the limit"):
        unpack_header(huge_end, 0)


def test_a_header_with_a_valid_crc_but_a_lying_length_is_named():
    crc = int.from_bytes(FRAME[24:28], "little")
    for lie in (-4, +4, 1 << 31):
        forged = header_fields(BATCH, 2, len(STREAMS), len(BODY) + lie, crc) + BODY
        with pytest.raises(BitstreamError, match="batch 2: frame"):
            FrameReader(2, max_body=1 << 20).decode(forged)


def test_an_old_version_1_frame_is_refused_by_version():
    old = header_fields(BATCH, 0, 0, 0, 0, version=1)
    with pytest.raises(BitstreamError, match="frame version 1, this rdgap reads 2"):
        unpack_header(old, 0)


def test_the_default_limit_follows_the_agreed_shape():
    # twice the float32 bytes of a batch plus 64 KiB per window
    assert body_limit(2, 128, 576) == 2 * 4 * 2 * 128 * 576 + 2 * 65536
    fp16_body = 2 * (2 * 128 * 576) + 4 * 2
    assert fp16_body < body_limit(2, 128, 576) / 2


@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_max_frame_bytes_is_validated(value):
    with pytest.raises(ValueError, match="max-frame-bytes: expected an integer ≥ 1"):
        SplitRunConfig(split=1, codec="int8", max_frame_bytes=value)
    assert "max_frame_bytes" not in SplitRunConfig(split=1, codec="int8").identity()
