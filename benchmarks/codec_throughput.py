"""Throughput of encode + decode on real SmolLM2 hidden states, one thread.

Prints million symbols (tokens × channels) per second for every codec, next
to two named baselines measured in the same run on the same windows: the fp16
cast codec, and the prefix forward pass that produces the hidden states (the
codec should cost less than the computation it sits behind).

Usage::

    python benchmarks/codec_throughput.py [--split 15] [--windows 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rdgap.codecs.baselines import baseline_codecs
from rdgap.codecs.factorized import ChannelStatistics, FactorizedCodec
from rdgap.codecs.split import SplitModel
from rdgap.codecs.transform import fisher_klt
from rdgap.validation.corpus import load_documents, split_documents, token_windows
from rdgap.validation.models import load_model


def best_time(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", type=int, default=15)
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_model("smollm2-135m")
    documents = load_documents()
    fit, evaluation = split_documents(len(documents))
    split = SplitModel(loaded.model, args.split)
    fit_ids = token_windows(documents, fit, loaded.tokenizer, 256, max_windows=8).input_ids
    eval_ids = token_windows(documents, evaluation, loaded.tokenizer, 256,
                             max_windows=args.windows).input_ids
    fit_hidden = split.prefix(fit_ids)
    prefix_s = best_time(lambda: split.prefix(eval_ids), 1)
    hidden = split.prefix(eval_ids)
    symbols = hidden.shape[0] * hidden.shape[1] * hidden.shape[2]

    stats = ChannelStatistics.fit(fit_hidden, "laplace")
    rest = fit_hidden[:, 1:].reshape(-1, hidden.shape[2]).double().numpy()
    klt = fisher_klt(np.cov(rest, rowvar=False), np.eye(hidden.shape[2]))
    klt_stats = ChannelStatistics.fit(fit_hidden, "laplace", analysis=klt.analysis)
    codecs = baseline_codecs() + [
        FactorizedCodec(stats, 0.5 * stats.scale, 0.5 * stats.first_scale, "laplace"),
        FactorizedCodec(klt_stats, 0.5 * np.median(klt_stats.scale) * np.ones(hidden.shape[2]),
                        0.5 * stats.first_scale, "laplace", analysis=klt.analysis,
                        synthesis=klt.synthesis)]
    print(f"SmolLM2-135M split {args.split}: {hidden.shape[0]} windows × {hidden.shape[1]} "
          f"tokens × {hidden.shape[2]} channels = {symbols / 1e6:.2f} M symbols; one thread")
    print(f"prefix forward pass: {prefix_s:.2f} s")
    print(f"{'codec':>20} {'encode Msym/s':>14} {'decode Msym/s':>14} {'enc+dec s':>10} "
          f"{'vs fp16':>8} {'vs prefix':>10}")
    fp16_s = None
    for codec in codecs:
        streams = [codec.encode(w) for w in hidden]
        encode_s = best_time(lambda: [codec.encode(w) for w in hidden], args.repeat)
        decode_s = best_time(lambda: [codec.decode(s) for s in streams], args.repeat)
        total = encode_s + decode_s
        fp16_s = fp16_s or total
        name = codec.codec_id
        print(f"{name:>20} {symbols / encode_s / 1e6:>14.1f} {symbols / decode_s / 1e6:>14.1f} "
              f"{total:>10.3f} {total / fp16_s:>7.1f}× {total / prefix_s:>9.2f}×")


if __name__ == "__main__":
    main()
