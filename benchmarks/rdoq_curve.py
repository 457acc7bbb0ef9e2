"""RDOQ against plain quantization along whole rate–distortion curves, on real streams.

``codec_bench`` compares two calibrated points per codec, and its calibration lands
where a noisy probe ΔCE says (klt-laplace's level-0.01 point sits at eval ΔCE 0.0064, its
RDOQ's at 0.0092), so a two-point BD-rate between them mostly measures where the points
landed. Here each entropy model is fitted once (``klt-laplace``: the factorized Laplace
model; ``klt-context``: the joint model, fitted at T7's scale for 0.05 and rescaled) and
coded at the *same* step scales with RDOQ weight 0 and ``c``; every (scale, weight) is
measured by ``codec_bench.measure`` on its evaluation windows (one real stream per
window: bits/token from the bytes, ΔCE ± s.e. over documents, KL, top-1). The BD-rate of
each RDOQ curve against its weight-0 curve (``codec_bench.bd_rate`` over the common
range, many points) is reported twice: in ΔCE (the level's measure, whose first-order
term is not zero-mean for an error biased toward zero) and in KL (second order only).

Usage::

    python benchmarks/rdoq_curve.py --cache DIR [--split 15] [--weight 0.12]  # JSON + PNG
                                    [--models klt-laplace,klt-context] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import codec_bench  # noqa: E402

from rdgap.codecs.fit import FitContext, base_steps, unit_delta_ce  # noqa: E402
from rdgap.codecs.entropy_models import context_fit, factorized  # noqa: E402
from rdgap.codecs.entropy_models.context import ContextCodec  # noqa: E402
from rdgap.codecs.entropy_models.model_fit import FitStart  # noqa: E402
from rdgap.codecs.recipes import RDOQ_WEIGHT  # noqa: E402
from rdgap.split import SplitModel  # noqa: E402
from rdgap.validation.corpus import (DEFAULT_CORPUS, load_documents, split_documents,  # noqa: E402
                                     token_windows)
from rdgap.validation.distortion import exact_log_probs  # noqa: E402
from rdgap.validation.models import load_model  # noqa: E402

#: Step scales, relative to T7's scale for ΔCE 0.05 (spanning the two levels).
RELATIVE_SCALES = (0.3, 0.4, 0.5, 0.65, 0.8, 1.0, 1.2)


def codec_at(name: str, model, alpha: float, weight: float):
    """The ``name`` model's codec at step scale ``alpha`` with RDOQ weight ``weight``."""
    codec = model(alpha)
    if name == "klt-laplace":
        return factorized.FactorizedCodec(codec.stats, codec.step, codec.first_step,
                                          codec.family, codec.label, codec.analysis,
                                          codec.synthesis, rdoq=weight)
    return ContextCodec(**{**codec._constructor_arguments(), "rdo": weight})


def run(cache: Path, split_index: int, weight: float, names: list[str]) -> dict:
    torch.set_num_threads(1)
    loaded = load_model("smollm2-135m")
    torch.manual_seed(0)
    documents = load_documents(DEFAULT_CORPUS)
    fit_indices, evaluation = split_documents(len(documents), seed=0)
    tokenizer, statistics = loaded.tokenizer, codec_bench.STATISTICS_WINDOWS
    fit = token_windows(documents, fit_indices, tokenizer, codec_bench.WINDOW_LENGTH,
                        max_windows=statistics + codec_bench.PROBE_WINDOWS)
    ev = token_windows(documents, evaluation, tokenizer, codec_bench.WINDOW_LENGTH,
                       max_windows=32)
    tag = f"{loaded.name}-{statistics}+{codec_bench.PROBE_WINDOWS}x{codec_bench.WINDOW_LENGTH}"
    fit_hidden, fisher = codec_bench._fit_states(loaded.model, fit, [split_index], cache, tag)
    if fisher[split_index] is None:
        raise FileNotFoundError(f"cache: no saved Fisher for split {split_index} under "
                                f"{cache}; run codec_bench.py --cache {cache} first")
    exact, ev_hidden = codec_bench._states(loaded.model, ev.input_ids, [split_index])
    log_p, docs = exact_log_probs(exact), ev.document.numpy()
    split = SplitModel(loaded.model, split_index)
    context = FitContext(split, fit_hidden[split_index][:statistics], fisher[split_index], None)
    rows = []
    for name in names:
        stats, base, first_base, transform, family = base_steps(name, context)
        unit = unit_delta_ce(name, context.fisher, base, first_base)
        initial = float((0.05 / unit) ** 0.5)
        start = FitStart(name, stats, base, first_base, transform, family, initial, name)
        fitter = factorized.fit_model if name == "klt-laplace" else context_fit.fit_model
        model = fitter(start, context).at
        for relative in RELATIVE_SCALES:
            for w in (0.0, weight):
                codec = codec_at(name, model, relative * initial, w)
                started = time.perf_counter()
                row = codec_bench.measure(codec, split, ev_hidden[split_index], ev.input_ids,
                                          exact, log_p, docs)
                rows.append({"model": name, "weight": w, "scale": relative * initial} | row)
                print(f"{name} c={w:g} α={relative * initial:.4g}: "
                      f"{row['bits_per_token_actual']:.1f} b, ΔCE {row['delta_ce_nats']:.4f} ± "
                      f"{row['delta_ce_nats_stderr']:.4f}, KL {row['kl_nats']:.4f} "
                      f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    summary = {}
    for name in names:
        curve = {w: [r for r in rows if r["model"] == name and r["weight"] == w]
                 for w in (0.0, weight)}
        summary[name] = {f"bd_rate_percent_{measure}": codec_bench.bd_rate(
            [(r[key], r["bits_per_token_actual"]) for r in curve[0.0]],
            [(r[key], r["bits_per_token_actual"]) for r in curve[weight]])
            for measure, key in (("delta_ce", "delta_ce_nats"), ("kl", "kl_nats"))}
    return {"statistic": "measured on real streams: bits/token from bytes, eval ΔCE and KL "
                         "(codec_bench.measure), BD-rate of weight c against weight 0 at the "
                         "same step scales", "split": split_index, "weight": weight,
            "evaluation_windows": int(ev_hidden[split_index].shape[0]),
            "statistics_windows": statistics, "rdoq_against_plain": summary, "rows": rows}


def plot(result: dict, path: Path) -> None:
    """Bits/token against eval ΔCE (± 2 s.e.) and against KL, each model with and without
    RDOQ (log rate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for name in result["rdoq_against_plain"]:
        for weight, style in ((0.0, "o-"), (result["weight"], "s--")):
            rows = [r for r in result["rows"] if r["model"] == name and r["weight"] == weight]
            bits = [r["bits_per_token_actual"] for r in rows]
            label = f"{name}, c = {weight:g}" + (" (plain)" if weight == 0 else " (RDOQ)")
            axes[0].errorbar([r["delta_ce_nats"] for r in rows], bits, fmt=style, label=label,
                             xerr=[2 * r["delta_ce_nats_stderr"] for r in rows], capsize=2)
            axes[1].plot([r["kl_nats"] for r in rows], bits, style, label=label)
    for axis, what in zip(axes, ("eval ΔCE, nats/token (± 2 s.e.)", "KL, nats/token")):
        axis.set_xlabel(what)
        axis.set_yscale("log")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("bits/token (real streams)")
    axes[0].legend(fontsize=8)
    figure.suptitle(f"RDOQ against plain quantization at equal steps, SmolLM2-135M split "
                    f"{result['split']}, {result['evaluation_windows']} evaluation windows")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", required=True)
    parser.add_argument("--split", type=int, default=15)
    parser.add_argument("--weight", type=float, default=RDOQ_WEIGHT)
    parser.add_argument("--models", default="klt-laplace,klt-context")
    parser.add_argument("--out", default=str(HERE / "results" / "rdoq_curve.json"))
    args = parser.parse_args()
    names = [n for n in args.models.split(",") if n]
    unknown = set(names) - {"klt-laplace", "klt-context"}
    if unknown:
        parser.error(f"--models: expected klt-laplace and/or klt-context, got {sorted(unknown)}")
    if not args.weight > 0:
        parser.error(f"--weight: expected an RDOQ weight c > 0, got {args.weight}")
    result = run(Path(args.cache), args.split, args.weight, names)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    plot(result, Path(args.out).with_suffix(".png"))
    print(json.dumps(result["rdoq_against_plain"], indent=2))


if __name__ == "__main__":
    main()
