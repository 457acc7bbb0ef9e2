"""GPU check of rdgap.codecs.rans_torch: CUDA and CPU write the same bytes and decode
each other's streams exactly; prints CUDA throughput.

    python benchmarks/gpu_check_rans.py

Exits 0 with a message when CUDA is not available; exits non-zero (an
AssertionError) if any byte or symbol differs between devices.
"""

from __future__ import annotations

import sys
import time

import torch

from rans_torch_throughput import TOKENS, workload   # the sibling script's workload
from rdgap.codecs import rans_torch as rt


def cuda_time(function, repeat: int = 3):
    best = float("inf")
    for _ in range(repeat):
        torch.cuda.synchronize()
        start = time.perf_counter()
        result = function()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return result, best


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu_check_rans: no CUDA device available; nothing to check.")
        return 0
    cuda = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    _, freq, symbols, table = workload(streams=4, seed=1)
    n = symbols.shape[1]
    for lanes in (1, 16, 256):
        on_cpu = rt.encode(symbols, table, freq, lanes=lanes)
        on_gpu = rt.encode(symbols.to(cuda), table.to(cuda), freq.to(cuda), lanes=lanes)
        assert on_cpu == on_gpu, f"lanes={lanes}: CUDA and CPU bytes differ"
        back_cpu = rt.decode(on_gpu, n, table, freq, lanes=lanes, device="cpu")
        back_gpu = rt.decode(on_cpu, n, table.to(cuda), freq.to(cuda), lanes=lanes, device=cuda)
        assert torch.equal(back_cpu, symbols), f"lanes={lanes}: CPU decode of CUDA bytes"
        assert torch.equal(back_gpu.cpu(), symbols), f"lanes={lanes}: CUDA decode of CPU bytes"
        print(f"lanes={lanes:4d}: identical bytes on CUDA and CPU; cross-device decode exact")
    for streams in (8, 64):
        _, freq, symbols, table = workload(streams=streams, seed=2)
        s, t, f = symbols.to(cuda), table.to(cuda), freq.to(cuda)
        count = symbols.numel()
        for lanes in (16, 64, 256):
            data, t_enc = cuda_time(lambda: rt.encode(s, t, f, lanes=lanes))
            out, t_dec = cuda_time(lambda: rt.decode(data, n, t, f, lanes=lanes, device=cuda))
            assert torch.equal(out.cpu(), symbols)
            print(f"CUDA streams={streams:3d} lanes={lanes:4d}: encode "
                  f"{count / t_enc / 1e6:7.2f} M symbols/s, decode {count / t_dec / 1e6:7.2f} "
                  f"M symbols/s, flush <= {64 * lanes / TOKENS:.1f} bits/token")
    print("gpu_check_rans: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
