"""Crafted-header campaign against the entropy-model decoders (issue 17, part B): figures.

For every fitted codec of ``tests/codecs/test_fuzz_entropy_decoders.py`` it encodes
one 16×24 window, crafts streams declaring ``(tokens, 24)`` for each ``--tokens``
with the CRC recomputed, and decodes each in a forked child capped at
``--cap-gib`` of address space, printing the outcome, the wall time and the peak
resident memory the decode added (``VmHWM`` − ``VmRSS`` before it). ``--no-limits``
turns the checks of :mod:`rdgap.codecs.coders.limits` into no-ops, which is how
the decoders behaved before part B (for the before/after table of docs/codec.md).

``python benchmarks/fuzz_campaign.py [--no-limits] [--tokens 65536 1048576]``.
The longer randomized campaign is the fuzz test with more examples:
``RDGAP_FUZZ_EXAMPLES=20 pytest tests/codecs/test_fuzz_entropy_decoders.py``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _decode_in_fork(codec, data: bytes, cap: int, timeout: float) -> str:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        before = _kib("VmRSS")
        start = time.perf_counter()
        try:
            out = codec.decode(data)
            what = f"decoded {tuple(out.shape)}"
        except MemoryError:
            what = "MemoryError"
        except Exception as error:  # noqa: BLE001 — the outcome is the figure
            what = type(error).__name__
        line = f"{what}|{time.perf_counter() - start:.3f}|{(_kib('VmHWM') - before) / 1024:.1f}"
        os.write(write, line.encode())
        os._exit(0)
    os.close(write)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(read)
        return f"timeout|>{timeout:.0f}|?"
    text = os.read(read, 4096).decode() or f"child died (status {status})|?|?"
    os.close(read)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-limits", action="store_true",
                        help="disable rdgap.codecs.coders.limits (the decoders before part B)")
    parser.add_argument("--tokens", type=int, nargs="+", default=[1 << 16, 1 << 20])
    parser.add_argument("--codecs", nargs="*", help="subset of the fuzz test's codecs")
    parser.add_argument("--cap-gib", type=float, default=4.0)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # a forked child must not wait on the parent's thread pool
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests/codecs")]
    import test_fuzz_entropy_decoders as fuzz
    from fuzz_harness import crafted_container

    from rdgap.codecs.coders import limits

    if args.no_limits:
        limits.check_cap = lambda *a, **k: None
        limits.check_information = lambda *a, **k: None
    print("| codec | stream bytes | declared shape | outcome | seconds | peak MiB added |")
    print("|---|---|---|---|---|---|")
    for name in args.codecs or sorted(fuzz.CODECS):
        codec = fuzz.CODECS[name]()
        stream = fuzz._stream(codec)
        for tokens in args.tokens:
            data = crafted_container(stream, {"tokens": tokens})[1]
            what, seconds, peak = _decode_in_fork(codec, data, int(args.cap_gib * (1 << 30)),
                                                  args.timeout).split("|")
            print(f"| {name} | {len(stream)} | ({tokens}, C) | {what} | "
                  f"{seconds} | {peak} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
