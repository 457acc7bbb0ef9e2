r"""The corrupted streams of the ``robustness`` property, and in-process limits on a decode.

:func:`corruptions` yields truncations, bit flips (every bit of the first 32
bytes and random bits after), padding, a shifted and a reversed stream and
foreign bytes. :func:`timed` runs a decode in a worker thread with a timeout;
:class:`AddressLimit` caps the address space of this process while corrupted
streams are decoded (Linux). The ``crafted-headers`` property decodes in a
subprocess instead (:mod:`rdgap.testing.isolation`), so that a decoder that
allocates gigabytes or aborts costs the child, not the test run.
"""

from __future__ import annotations

import threading
import zlib

import numpy as np


def flips(data: bytes, rng: np.random.Generator, head_bytes: int = 32, random_bits: int = 32):
    n = len(data)
    bits = list(range(8 * min(head_bytes, n)))
    if n > head_bytes:
        bits += list(rng.integers(8 * head_bytes, 8 * n, random_bits))
    for bit in bits:
        broken = bytearray(data)
        broken[bit // 8] ^= 1 << (bit % 8)
        yield f"bit {bit} flipped (byte {bit // 8})", bytes(broken)


def corruptions(data: bytes, rng: np.random.Generator):
    n = len(data)
    cuts = sorted({0, 1, n // 2, max(n - 4, 0), n - 1, *rng.integers(0, max(n, 1), 4).tolist()})
    for cut in cuts:
        if cut < n:
            yield f"truncated to {cut} of {n} bytes", data[:cut]
    yield from flips(data, rng)
    yield "one zero byte appended", data + b"\0"
    yield "shifted by a 4-byte prefix", b"\0\1\2\3" + data
    yield "bytes reversed", data[::-1]
    yield "foreign: random bytes of the same length", rng.bytes(n)
    yield "foreign: 3 random bytes", rng.bytes(3)
    yield "foreign: a zlib stream", zlib.compress(rng.bytes(max(n, 8)))


class Timeout(Exception):
    pass


def timed(fn, arg, timeout: float):
    result = {}

    def work():
        try:
            result["value"] = fn(arg)
        except BaseException as error:  # noqa: BLE001 - reported to the caller
            result["error"] = error

    thread = threading.Thread(target=work, daemon=True, name="rdgap-decode")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise Timeout()
    if "error" in result:
        raise result["error"]
    return result["value"]


class AddressLimit:
    """Limit the address space to its current size plus ``budget`` bytes (Linux only)."""

    def __init__(self, budget: int | None):
        self.budget, self.saved = budget, None

    def __enter__(self):
        if not self.budget:
            return self
        try:
            import resource
            with open("/proc/self/status") as status:
                size = next(int(line.split()[1]) * 1024 for line in status
                            if line.startswith("VmSize:"))
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            target = size + self.budget
            if hard != resource.RLIM_INFINITY:
                target = min(target, hard)
            if soft == resource.RLIM_INFINITY or soft > target:
                resource.setrlimit(resource.RLIMIT_AS, (target, hard))
                self.saved = (soft, hard)
        except (ImportError, OSError, StopIteration, ValueError):
            self.saved = None
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            import resource
            resource.setrlimit(resource.RLIMIT_AS, self.saved)
        return False
