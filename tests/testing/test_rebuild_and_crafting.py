"""How the kit rebuilds a codec in a fresh process, and the crafted streams it builds."""

from __future__ import annotations

import pickle
import struct
import zlib

import pytest
import torch

from rdgap.codecs.baselines import baseline_codecs
from rdgap.testing.crafting import HUGE, crc32_trailer, rdgap_container
from rdgap.testing.rebuild import rebuild, recipe


class Saves:
    """A codec with its own save/load pair (what rdgap's fitted codecs have)."""

    def __init__(self, tables=(1, 2, 3), fail=False):
        self.tables, self.fail = tuple(tables), fail

    def save(self, folder):
        if self.fail:
            raise OSError("disk full")
        with open(f"{folder}/tables", "wb") as handle:
            pickle.dump(self.tables, handle)

    @classmethod
    def load(cls, folder):
        with open(f"{folder}/tables", "rb") as handle:
            return cls(pickle.load(handle))

    def encode(self, x):
        return bytes(x)

    def decode(self, data):
        return list(data)

    def estimate_bits(self, x):
        return None


def test_save_and_load_come_before_pickling_and_pickling_is_the_fallback():
    how = recipe(Saves((4, 5)))
    try:
        assert how.how == "load" and "Saves.load" in how.describe()
        assert rebuild(how.payload()).tables == (4, 5)
    finally:
        how.close()
    fallback = recipe(Saves(fail=True))
    assert fallback.how == "pickle"
    assert rebuild(fallback.payload()).tables == (1, 2, 3)


def test_a_declared_factory_comes_first_and_main_classes_are_refused_with_a_reason():
    codec = Saves()
    codec.factory = ("collections:OrderedDict", (), {"a": 1})
    how = recipe(codec)
    assert how.how == "factory"
    with pytest.raises(TypeError):          # an OrderedDict is not a codec: adapt refuses it
        rebuild(how.payload())
    local = type("Local", (Saves,), {"__module__": "__main__"})()
    reason = recipe(local)
    assert isinstance(reason, str) and "__main__" in reason and "factory" in reason


def test_crc32_trailer_crafts_each_field_with_a_valid_checksum():
    body = struct.pack("<4sIh", b"DEMO", 7, 3) + b"payload"
    data = body + struct.pack("<I", zlib.crc32(body))
    streams = crc32_trailer(data, {"tokens": (4, "<I"), "channels": (8, "<h")})
    values = {what: s for what, s in streams}
    assert set(values) >= {"tokens = 0", f"tokens = {HUGE}", "tokens = 4294967295",
                           "channels = -1", "channels = 32767"}
    assert f"tokens = {HUGE}, channels = 32767" in values       # 2^20 does not fit <h
    for crafted in values.values():
        assert len(crafted) == len(data)
        assert struct.unpack("<I", crafted[-4:])[0] == zlib.crc32(crafted[:-4])
    with pytest.raises(ValueError, match="does not end in a little-endian CRC32"):
        crc32_trailer(data[:-1] + b"\0", {"tokens": (4, "<I")})
    with pytest.raises(ValueError, match="outside"):
        crc32_trailer(data, {"tokens": (len(data), "<I")})


def test_rdgap_container_streams_pass_the_container_check_and_declare_other_shapes():
    from rdgap.codecs.coders.container import unpack
    codec = next(c for c in baseline_codecs() if c.codec_id == "fp16")
    data = codec.encode(torch.ones(3, 5))
    shapes = [unpack(s, codec.codec_id, codec.digest).shape for _, s in rdgap_container(data)]
    assert shapes == [(HUGE, 5), (0, 5), (3, 0), (1 << 16, 1 << 15)]
    with pytest.raises(ValueError, match="not an rdgap container"):
        rdgap_container(b"nope" * 8)
