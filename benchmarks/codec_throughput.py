"""Throughput of encode + decode on real SmolLM2 hidden states, one thread.

Prints million symbols (tokens × channels), thousand tokens and MB of fp16
input per second, encode and decode, for every codec, next to two named
baselines measured in the same run on the same windows: the fp16 cast codec,
and the prefix forward pass that produces the hidden states (the codec should
cost less than the computation it sits behind; issue 4). The joint codecs
``klt-context`` and ``klt-context-tokens`` (its encoder gets the token ids) are
fitted once, at THEORY.md T7's step scale for ``--level`` without the ΔCE
calibration (a representative rate; the measured bits/token are printed).

The torch path of the joint codecs (:class:`rdgap.codecs.coders.torch_context.TorchContextCodec`,
the "GPU codec", here on the CPU) codes all windows in one batch
(``encode_batch`` / ``decode_batch``); ``klt-context`` is also fitted with the
learned ``deep`` side density, and the fit times of both side densities are printed.

Usage::

    python benchmarks/codec_throughput.py [--split 15] [--windows 8] [--repeat 3] [--lanes 16]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rdgap.codecs.coders import rans_torch
from rdgap.codecs.baselines import baseline_codecs
from rdgap.codecs.entropy_models.context_fit import fit_context_codec
from rdgap.codecs.entropy_models.factorized import ChannelStatistics, FactorizedCodec
from rdgap.codecs.transforms.fisher import fisher_diagonal
from rdgap.codecs.fit import FitContext, base_steps, unit_delta_ce
from rdgap.split import SplitModel
from rdgap.codecs.entropy_models.token_context import fit_token_context_codec
from rdgap.codecs.entropy_models.token_fit import embedding_table
from rdgap.codecs.coders.torch_context import TorchContextCodec
from rdgap.codecs.transforms.klt import fisher_klt
from rdgap.validation.corpus import load_documents, split_documents, token_windows
from rdgap.validation.models import load_model


def best_time(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def joint_codecs(split: SplitModel, hidden: torch.Tensor, input_ids: torch.Tensor,
                 level: float, deep: bool = False) -> list:
    """``klt-context`` and ``klt-context-tokens`` fitted on ``hidden`` at T7's step scale
    for ΔCE ``level`` (``α = √(level / predicted ΔCE at α = 1)``, THEORY.md T7), with no
    calibration pass; with ``deep``, also ``klt-context`` with the learned side density
    (each codec's fit time, in seconds, is its ``fit_seconds`` attribute)."""
    fisher = fisher_diagonal(split, hidden, samples=1, full=True)
    context = FitContext(split, hidden, fisher, probe=None)
    stats, base, first_base, klt, _ = base_steps("klt-context", context)
    alpha = float(np.sqrt(level / unit_delta_ce("klt-context", fisher, base, first_base)))
    common = (stats.mean, klt.analysis, klt.synthesis, alpha * base, stats.first_mean,
              stats.first_scale, alpha * first_base)
    fits = [lambda: fit_context_codec(hidden, *common, label=f"klt-context T7 scale={alpha:.4g}"),
            lambda: fit_token_context_codec(hidden, input_ids, embedding_table(context),
                                            *common,
                                            label=f"klt-context-tokens T7 scale={alpha:.4g}")]
    if deep:
        fits.append(lambda: fit_context_codec(hidden, *common, side_density="deep",
                                              label=f"klt-context deep T7 scale={alpha:.4g}"))
    codecs = []
    for fit in fits:
        start = time.perf_counter()
        codecs.append(fit())
        codecs[-1].fit_seconds = time.perf_counter() - start
    return codecs


def smollm2_windows(split_index: int, fit_windows: int, eval_windows: int):
    """SmolLM2-135M split at ``split_index``, ``fit_windows`` windows of 256 tokens of fit
    documents with their hidden states, and ``eval_windows`` windows of evaluation documents
    (ids only): ``(split, fit_ids, fit_hidden, eval_ids)``."""
    loaded = load_model("smollm2-135m")
    documents = load_documents()
    fit, evaluation = split_documents(len(documents))
    split = SplitModel(loaded.model, split_index)
    fit_ids = token_windows(documents, fit, loaded.tokenizer, 256,
                            max_windows=fit_windows).input_ids
    eval_ids = token_windows(documents, evaluation, loaded.tokenizer, 256,
                             max_windows=eval_windows).input_ids
    return split, fit_ids, split.prefix(fit_ids), eval_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", type=int, default=15)
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--joint-windows", type=int, default=10,
                        help="fit windows of the joint codecs (≥ 10: the 576 × 576 KLT)")
    parser.add_argument("--level", type=float, default=0.05,
                        help="ΔCE level whose T7 step scale the joint codecs use")
    parser.add_argument("--lanes", type=int, default=rans_torch.DEFAULT_LANES,
                        help="rANS lanes of the torch path of the joint codecs")
    args = parser.parse_args()
    split, joint_ids, joint_hidden, eval_ids = smollm2_windows(
        args.split, max(args.joint_windows, 8), args.windows)
    joint = joint_codecs(split, joint_hidden[:args.joint_windows],
                         joint_ids[:args.joint_windows], args.level, deep=True)
    torch.set_num_threads(1)  # fitting above may use every core; the timings use one
    fit_hidden = joint_hidden[:8]
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
                        synthesis=klt.synthesis)] + joint
    print(f"SmolLM2-135M split {args.split}: {hidden.shape[0]} windows × {hidden.shape[1]} "
          f"tokens × {hidden.shape[2]} channels = {symbols / 1e6:.2f} M symbols "
          f"({symbols * 2 / 1e6:.2f} MB as fp16); one thread")
    print(f"prefix forward pass: {prefix_s:.2f} s")
    print(f"joint codecs fitted on {args.joint_windows} windows at T7's step scale for ΔCE "
          f"{args.level} (no calibration; a representative rate, bits/token below); fit "
          f"time: " + ", ".join(f"{c.label.split(' T7')[0]} {c.fit_seconds:.1f} s" for c in joint))
    print(f"{'codec':>20} {'bits/tok':>9} {'enc Msym/s':>11} {'dec Msym/s':>11} "
          f"{'enc ktok/s':>11} {'dec ktok/s':>11} {'enc MB/s':>9} {'dec MB/s':>9} "
          f"{'enc+dec s':>10} {'vs fp16':>8} {'vs prefix':>10}")
    tokens = hidden.shape[0] * hidden.shape[1]
    fp16_s = None

    def row(name: str, streams: list[bytes], encode_s: float, decode_s: float) -> None:
        nonlocal fp16_s
        total = encode_s + decode_s
        fp16_s = fp16_s or total
        bits = 8 * sum(len(s) for s in streams) / tokens
        rates = [symbols / encode_s / 1e6, symbols / decode_s / 1e6, tokens / encode_s / 1e3,
                 tokens / decode_s / 1e3, 2 * symbols / encode_s / 1e6,
                 2 * symbols / decode_s / 1e6]
        print(f"{name:>20} {bits:>9.0f} " + " ".join(
            f"{r:>{w}.1f}" for r, w in zip(rates, (11, 11, 11, 11, 9, 9)))
            + f" {total:>10.3f} {total / fp16_s:>7.1f}× {total / prefix_s:>9.2f}×")

    for codec in codecs:
        ids = eval_ids if codec.codec_id == "klt-context-tokens" else [None] * len(hidden)
        encode = (lambda w, i: codec.encode(w, input_ids=i)) if ids is eval_ids else \
            (lambda w, i: codec.encode(w))
        streams = [encode(w, i) for w, i in zip(hidden, ids)]
        encode_s = best_time(lambda: [encode(w, i) for w, i in zip(hidden, ids)], args.repeat)
        decode_s = best_time(lambda: [codec.decode(s) for s in streams], args.repeat)
        deep = " deep" if "deep" in getattr(codec, "label", "") else ""
        row(codec.codec_id + deep, streams, encode_s, decode_s)
    for model in joint:  # the torch path: every window in one batch
        codec = TorchContextCodec(model, lanes=args.lanes)
        ids = eval_ids if codec.tokens else None
        streams = codec.encode_batch(hidden, ids)
        encode_s = best_time(lambda: codec.encode_batch(hidden, ids), args.repeat)
        decode_s = best_time(lambda: codec.decode_batch(streams), args.repeat)
        deep = " deep" if "deep" in model.label else ""
        row(codec.codec_id.replace("-laplace", "") + deep, streams, encode_s, decode_s)
    print(f"(-rans: the torch path, {args.lanes} lanes per rANS section, all "
          f"{len(hidden)} windows in one batch, on the CPU)")


if __name__ == "__main__":
    main()
