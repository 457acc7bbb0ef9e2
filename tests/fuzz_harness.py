"""Decode untrusted bytes in a fresh process under a memory and time budget (issue 17).

A thin layer over :mod:`rdgap.testing.isolation` (issue 15's child runner, reused,
not duplicated): the codec is rebuilt in a child interpreter (factory, save/load or
pickling), which caps its own address space (``RLIMIT_AS`` = its size after one
warm-up decode + ``budget`` bytes) and decodes each case while this process's
watchdog kills it when one decode runs past ``timeout`` seconds. A case passes when
its decode raises one of the declared errors (not a MemoryError) or returns exactly
what the valid reference stream decodes to.

Also here: hypothesis strategies for the mutations the fuzz tests draw — random
damage that the checksums must catch, and *crafted* fields with the checksum
recomputed, which only the decoders' own bounds can catch. Part B of issue 17 (the
entropy-model decoders) reuses :func:`decode_in_child` and :func:`damaged`.
"""

from __future__ import annotations

import struct
import zlib

from hypothesis import strategies as st

from rdgap.codecs.base import HiddenStateCodec
from rdgap.codecs.coders.container import BitstreamError
from rdgap.testing.adapters import HiddenStateAdapter
from rdgap.testing.isolation import crafted_violation, run_child
from rdgap.testing.rebuild import recipe

#: Address space a child may add for the decodes (bytes): ≫ any valid test stream's
#: output, ≪ the gigabytes a header-trusting decoder asks for.
BUDGET_BYTES = 256 << 20
#: Seconds one decode may run in the child.
TIMEOUT_S = 10.0


def decode_in_child(codec, reference: bytes, cases: list[tuple[str, bytes]],
                    errors: tuple = (BitstreamError,), budget: int = BUDGET_BYTES,
                    timeout: float = TIMEOUT_S) -> str | None:
    """None when every case raised one of ``errors`` or decoded exactly like ``reference``.

    Parameters
    ----------
    codec
        Anything with ``decode(bytes)`` that :func:`rdgap.testing.rebuild.recipe`
        can rebuild in another process (an rdgap codec that cannot be is rebuilt
        through :class:`rdgap.testing.adapters.HiddenStateAdapter`).
    reference : bytes
        A valid stream (decoded first, before the address-space limit is set).
    cases : list of (label, bytes)
        The streams to decode.

    Returns
    -------
    str or None
        What went wrong first — a wrong error type, an allocation beyond the
        budget, a decode past the timeout, a dead child, a silently different
        result — naming the case; None when all passed.
    """
    made = recipe(codec)
    if isinstance(made, str) and isinstance(codec, HiddenStateCodec):
        made = recipe(HiddenStateAdapter(codec))  # e.g. zstd-symbols: through its quantizer
    if isinstance(made, str):
        raise ValueError(f"codec: cannot be rebuilt in a child process: {made}")
    run = run_child(made, [("crafted", reference, cases, budget)], timeout)
    if run.rebuild_error is not None:
        raise RuntimeError(f"the child could not rebuild the codec: {run.rebuild_error}\n"
                           f"{run.rebuild_trace}")
    return crafted_violation(run, 0, cases, errors, budget, timeout)


def reseal(body: bytes) -> bytes:
    """``body`` followed by its CRC-32 (the rdgap container's trailer)."""
    return body + struct.pack("<I", zlib.crc32(body))


def _apply(data: bytes, operation: tuple) -> tuple[str, bytes]:
    kind, at, value = operation
    n = len(data)
    if kind == "truncate":
        return f"truncated to {at % (n + 1)} bytes", data[:at % (n + 1)]
    if kind == "flip":
        bit = at % (8 * n)
        broken = bytearray(data)
        broken[bit // 8] ^= 1 << (bit % 8)
        return f"bit {bit} flipped", bytes(broken)
    if kind == "insert":
        return f"byte {value} inserted at {at % (n + 1)}", \
            data[:at % (n + 1)] + bytes([value]) + data[at % (n + 1):]
    if kind == "delete":
        return f"byte {at % n} deleted", data[:at % n] + data[at % n + 1:]
    if kind == "overwrite":
        broken = bytearray(data)
        broken[at % n] = value
        return f"byte {at % n} set to {value}", bytes(broken)
    return f"{at % 200} random bytes", bytes((value * (i + 1) * 2654435761 >> 7) & 0xFF
                                             for i in range(at % 200))


def operations() -> st.SearchStrategy:
    """One random damage: truncate, flip, insert, delete, overwrite, or random bytes."""
    return st.tuples(st.sampled_from(["truncate", "flip", "insert", "delete", "overwrite",
                                      "random"]),
                     st.integers(0, 1 << 20), st.integers(0, 255))


def damaged(data: bytes, ops: list[tuple]) -> list[tuple[str, bytes]]:
    """The streams of ``ops`` (from :func:`operations`) applied to ``data``, each alone,
    minus those equal to ``data`` (a flip and its undo are not damage)."""
    out = [_apply(data, op) for op in ops]
    return [(label, stream) for label, stream in out if stream != data]


def container_fields(data: bytes) -> dict:
    """Offsets of an rdgap container stream's integer header fields (2-D streams)."""
    at = 6 + data[5] + 8
    return {"version": (4, "<B"), "ndim": (at, "<B"), "tokens": (at + 1, "<I"),
            "channels": (at + 5, "<I"), "payload_len": (at + 9, "<I")}


def crafted_container(data: bytes, values: dict) -> tuple[str, bytes]:
    """``data`` with the given header fields set and its CRC recomputed."""
    body = bytearray(data[:-4])
    fields = container_fields(data)
    for name, value in values.items():
        offset, fmt = fields[name]
        struct.pack_into(fmt, body, offset, value % (1 << (8 * struct.calcsize(fmt))))
    label = ", ".join(f"{k} = {v}" for k, v in values.items())
    return f"crafted {label} (CRC recomputed)", reseal(bytes(body))
