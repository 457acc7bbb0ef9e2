"""Benchmark every codec on the embedded default: rate, distortion, speed, BD-rate.

Runs the validate job (:func:`rdgap.validation.runner.run_validation`) on
SmolLM2-135M with evaluation windows never used for fitting, then prints and
writes ``benchmarks/results/codec_bench.json``: one row per (split, codec,
level) with the actual and estimated bits per token, ΔCE with its standard
error, KL, encode / decode seconds and tokens; per split, the BD-rate of each
reference-codec variant against the ``gaussian-std`` anchor; the throughput of
each codec next to the time of the prefix forward pass it compresses; and how
far the best split is from the issue's targets.

Usage::

    python benchmarks/codec_bench.py [--windows 32] [--splits 8,15,22] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from rdgap.codecs.split import SplitModel
from rdgap.validation.corpus import load_documents, split_documents, token_windows
from rdgap.validation.models import load_model
from rdgap.validation.report import format_table
from rdgap.codecs.fit import VARIANTS
from rdgap.validation.runner import ValidateConfig, run_validation

HERE = Path(__file__).resolve().parent
ANCHOR = "gaussian-std"
TARGETS = {0.05: 700.0, 0.01: 1200.0}  # bits/token at ΔCE ≤ level, best split (issue 4)


def bd_rate(anchor: list[tuple[float, float]], test: list[tuple[float, float]]) -> float | None:
    """Average % rate difference of ``test`` against ``anchor`` over their common
    distortion range, interpolating log-rate linearly in ΔCE (points are (ΔCE, bits)).
    With two levels per codec this is a two-point BD-rate; None without overlap."""
    if len(anchor) < 2 or len(test) < 2:
        return None
    a = sorted(anchor)
    t = sorted(test)
    low, high = max(a[0][0], t[0][0]), min(a[-1][0], t[-1][0])
    if not high > low:
        return None
    grid = np.linspace(low, high, 101)
    log_a = np.interp(grid, [d for d, _ in a], [math.log(r) for _, r in a])
    log_t = np.interp(grid, [d for d, _ in t], [math.log(r) for _, r in t])
    return float(100.0 * (math.exp(np.mean(log_t - log_a)) - 1.0))


def prefix_seconds(config: ValidateConfig, splits: list[int]) -> dict[int, float]:
    """Wall time of the prefix forward pass over the evaluation windows, per split."""
    loaded = load_model(config.model)
    documents = load_documents(config.corpus)
    _, evaluation = split_documents(len(documents), seed=config.seed)
    windows = token_windows(documents, evaluation, loaded.tokenizer, config.window_length,
                            max_windows=config.windows)
    seconds = {}
    for k in splits:
        split = SplitModel(loaded.model, k)
        start = time.perf_counter()
        for i in range(0, len(windows), config.batch_size):
            split.prefix(windows.input_ids[i:i + config.batch_size])
        seconds[k] = time.perf_counter() - start
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=32)
    parser.add_argument("--splits", default="8,15,22")
    parser.add_argument("--out", default=str(HERE / "results" / "codec_bench.json"))
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    config = ValidateConfig(splits=[int(k) for k in args.splits.split(",")],
                            windows=args.windows, window_length=256, fit_windows=32,
                            variants=VARIANTS, levels=tuple(TARGETS))
    results = run_validation(config)
    runs = results["runs"]
    print(format_table(runs))

    rows = [{key: r[key] for key in (
        "split", "codec", "level", "bits_per_token_actual", "bits_per_token_estimated",
        "delta_ce_nats", "delta_ce_nats_stderr", "kl_nats", "top1_agreement",
        "encode_s", "decode_s", "tokens", "fit_delta_ce_nats", "predicted_delta_ce_nats")}
        for r in runs]
    splits = results["config"]["splits"]
    prefix = prefix_seconds(config, splits)
    width = results["model"]["width"]

    print("\nThroughput (symbols = tokens × channels; CPU, this machine):")
    print(f"{'split':>5} {'codec':>16} {'level':>10} {'Msym/s enc+dec':>15} "
          f"{'codec s':>8} {'prefix s':>9}")
    for row in rows:
        seconds = row["encode_s"] + row["decode_s"]
        row["symbols_per_s"] = row["tokens"] * width / seconds if seconds > 0 else None
        row["prefix_forward_s"] = prefix[row["split"]]
        print(f"{row['split']:>5} {row['codec']:>16} {row['level'] or '—':>10} "
              f"{row['symbols_per_s'] / 1e6:>15.2f} {seconds:>8.2f} {prefix[row['split']]:>9.2f}")

    bd = {}
    variants = sorted({r["codec"] for r in rows if r["level"]})
    print(f"\nBD-rate vs {ANCHOR} (two-point, log-rate linear in measured ΔCE):")
    for k in splits:
        curve = lambda name: [(r["delta_ce_nats"], r["bits_per_token_actual"])  # noqa: E731
                              for r in rows if r["split"] == k and r["codec"] == name]
        for name in variants:
            value = bd_rate(curve(ANCHOR), curve(name))
            bd[f"{k}:{name}"] = value
            print(f"  split {k:>2} {name:>16}: "
                  + ("no overlap" if value is None else f"{value:+.1f} %"))

    print("\nTargets (issue 4, best split, actual bits at measured eval ΔCE ≤ level):")
    targets = {}
    for level, target in TARGETS.items():
        meeting = [r for r in rows if r["level"] and r["delta_ce_nats"] <= level]
        best = min(meeting, key=lambda r: r["bits_per_token_actual"], default=None)
        targets[str(level)] = {"target_bits": target, "best": best and {
            "split": best["split"], "codec": best["codec"], "level": best["level"],
            "bits": best["bits_per_token_actual"], "delta_ce": best["delta_ce_nats"]}}
        if best is None:
            print(f"  ΔCE ≤ {level}: no fitted codec met the level on evaluation windows")
        else:
            gap = best["bits_per_token_actual"] - target
            print(f"  ΔCE ≤ {level}: best {best['bits_per_token_actual']:.0f} bits/token "
                  f"({best['codec']} {best['level']} at split {best['split']}, ΔCE "
                  f"{best['delta_ce_nats']:.4f}); target {target:.0f}: "
                  + ("met" if gap <= 0 else f"missed by {gap:.0f} bits ({gap / target:.0%})"))

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {"schema_version": 1, "generator": "rdgap benchmarks/codec_bench.py",
                "model": results["model"], "corpus": results["corpus"],
                "environment": results["environment"], "stages_s": results["stages_s"],
                "anchor": ANCHOR, "bd_rate_percent": bd, "targets": targets, "rows": rows}
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
