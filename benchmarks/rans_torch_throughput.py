"""Throughput of rdgap.codecs.coders.rans_torch on the CPU, next to constriction's AnsCoder.

A printout, not a test: 8 streams of one 256-token window × 576 channels
(147,456 symbols each), one 64-symbol table per channel, symbols drawn from
the tables. constriction codes the same symbols channel by channel with one
Categorical model per channel (as rdgap.codecs.coders.ans does).

    python benchmarks/rans_torch_throughput.py [--lanes 16 64 256] [--streams 8]
                                               [--precision 16 24]

``--precision``: the tables' ``Σ f = 2^P`` (16: the default of rans_torch; 24: the joint
codecs' torch path, :data:`rdgap.codecs.coders.torch_context.PRECISION`). Larger ``P`` gives
the coder fewer state bits per symbol (T2's ``ε`` grows) but costs no speed.
"""

from __future__ import annotations

import argparse
import time

import constriction
import numpy as np
import torch

from rdgap.codecs.coders import rans_torch as rt

TOKENS, CHANNELS, ALPHABET = 256, 576, 64


def workload(streams: int, seed: int = 0, precision: int = 16):
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.5, 8.0, CHANNELS)
    grid = np.arange(ALPHABET) - ALPHABET // 2
    probabilities = np.exp(-np.abs(grid)[None, :] / scales[:, None])
    freq = rt.quantize_table(probabilities, precision)
    table = np.tile(np.arange(CHANNELS), TOKENS)                 # token-major, channel fastest
    cdf = np.cumsum(freq.numpy(), axis=1)
    u = rng.integers(0, 1 << precision, size=(streams, table.size))
    symbols = (u[..., None] >= cdf[table]).sum(-1)
    return probabilities / probabilities.sum(1, keepdims=True), freq, \
        torch.from_numpy(symbols), torch.from_numpy(table)


def timed(function, repeat: int = 3):
    """The result and the best wall time of ``repeat`` runs (the CPU may be shared)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return result, best


def constriction_baseline(probabilities, symbols: np.ndarray):
    models = [constriction.stream.model.Categorical(p, perfect=False) for p in probabilities]
    columns = symbols.reshape(len(symbols), TOKENS, CHANNELS).astype(np.int32)

    def encode():
        out = []
        for stream in columns:
            coder = constriction.stream.stack.AnsCoder()
            for channel in reversed(range(CHANNELS)):
                coder.encode_reverse(stream[:, channel], models[channel])
            out.append(coder.get_compressed())
        return out

    def decode(compressed):
        return [_decode_one(words, models) for words in compressed]

    compressed, t_enc = timed(encode)
    decoded, t_dec = timed(lambda: decode(compressed))
    assert all(np.array_equal(d, c) for d, c in zip(decoded, columns))
    return sum(32 * len(c) for c in compressed), t_enc, t_dec


def _decode_one(words, models):
    coder = constriction.stream.stack.AnsCoder(words)
    return np.stack([coder.decode(models[c], TOKENS) for c in range(CHANNELS)], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--precision", type=int, nargs="+", default=[16, 24])
    args = parser.parse_args()
    for precision in args.precision:
        probabilities, freq, symbols, table = workload(args.streams, precision=precision)
        count = symbols.numel()
        info = np.log2((1 << precision) / freq.numpy()[table.numpy(), symbols.numpy()]).sum()
        print(f"{args.streams} streams x {symbols.shape[1]} symbols, P = {precision}, torch "
              f"{torch.__version__}, {torch.get_num_threads()} threads; information "
              f"{info / count:.4f} bits/symbol")
        for lanes in args.lanes:
            data, t_enc = timed(lambda: rt.encode(symbols, table, freq, lanes=lanes))
            decoded, t_dec = timed(lambda: rt.decode(data, symbols.shape[1], table, freq,
                                                     lanes=lanes))
            assert torch.equal(decoded, symbols)
            bits = sum(8 * len(d) for d in data)
            print(f"rans_torch P={precision} lanes={lanes:4d}: encode "
                  f"{count / t_enc / 1e6:6.2f} M symbols/s, decode {count / t_dec / 1e6:6.2f} "
                  f"M symbols/s, {bits / count:.4f} bits/symbol (information + "
                  f"{(bits - info) / count:.4f}), flush <= {64 * lanes} bits/stream = "
                  f"{64 * lanes / TOKENS:.1f} bits/token")
    bits, t_enc, t_dec = constriction_baseline(probabilities, symbols.numpy())
    print(f"constriction AnsCoder   : encode {count / t_enc / 1e6:6.2f} M symbols/s, "
          f"decode {count / t_dec / 1e6:6.2f} M symbols/s, {bits / count:.4f} bits/symbol")


if __name__ == "__main__":
    main()
