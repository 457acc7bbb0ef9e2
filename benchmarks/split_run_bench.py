"""Split inference on two local processes: fp16 transfer vs every codec, SmolLM2.

For the embedded default at one split, runs ``rdgap split-run`` (two spawned
ranks over gloo, the command's own path) once per codec: the baselines and one
fitted reference codec (``gaussian-fisher`` calibrated to ΔCE ≤ 0.05 nats on a
few fit windows). Prints tokens/s end to end, bytes per token, encode / decode
cost, the predicted throughput on 1 Gbit/s, 100 Mbit/s and 10 Mbit/s links,
and the link rate below which each codec beats fp16 transfer; writes every
run's summary to ``benchmarks/results/split_run_bench.json``.

Usage::

    python benchmarks/split_run_bench.py [--split 15] [--batches 6] [--batch-size 2]
                                         [--window-length 128] [--fit-windows 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

import rdgap
from rdgap.codecs.fit import FitContext, fit_codec
from rdgap.split import SplitModel
from rdgap.distributed.config import SplitRunConfig
from rdgap.distributed.launch import run_local
from rdgap.distributed.summary import LINKS
from rdgap.validation.corpus import load_documents, split_documents, token_windows
from rdgap.validation.models import load_model

BASELINES = ["fp16", "bf16", "int8", "int4", "zstd-fp16"]
OUT = Path(__file__).resolve().parent / "results" / "split_run_bench.json"


def fit_reference(split: int, windows: int, length: int, target: float, folder: Path) -> dict:
    """Fit the gaussian-fisher reference codec on fit documents and save it in ``folder``."""
    loaded = load_model("smollm2-135m")
    documents = load_documents()
    fit, _ = split_documents(len(documents))
    ids = token_windows(documents, fit, loaded.tokenizer, length, max_windows=windows).input_ids
    model = SplitModel(loaded.model, split)
    start = time.perf_counter()
    context = FitContext.build(model, ids, model.prefix(ids))
    fitted = fit_codec("gaussian-fisher", context, target)
    fitted.codec.save(folder)
    return {"variant": "gaussian-fisher", "target_delta_ce_nats": target,
            "fit_windows": windows, "fit_s": time.perf_counter() - start,
            "fit_delta_ce_nats": fitted.calibration.delta_ce}


def row(name: str, summary: dict) -> dict:
    """The figures of one run that the table prints."""
    totals, fp16 = summary.get("totals", {}), summary.get("fp16_reference") or {}
    tokens = totals.get("tokens") or 1
    out = {"codec": name, "complete": summary["complete"], "exact": summary["exact"],
           "errors": summary["errors"]}
    if not totals:
        return out
    out |= {"tokens": totals["tokens"], "tokens_per_s": totals["tokens_per_s"],
            "wire_bytes_per_token": totals["wire_bytes_per_token"],
            "stream_bits_per_token": totals["stream_bits_per_token"],
            "encode_us_per_token": 1e6 * totals["encode_s"] / tokens,
            "decode_us_per_token": 1e6 * totals["decode_s"] / tokens,
            "prefix_ms_per_token": 1e3 * totals["prefix_s"] / tokens,
            "suffix_ms_per_token": 1e3 * totals["suffix_s"] / tokens,
            "wall_s": totals["wall_s"], "overlap_s": totals["overlap_s"],
            "fp16_wire_bytes_per_token": fp16.get("wire_bytes_per_token"),
            "predicted_tokens_per_s": {k: v["tokens_per_s"]
                                       for k, v in summary.get("links", {}).items()},
            "fp16_predicted_tokens_per_s": {k: v["fp16_tokens_per_s"]
                                            for k, v in summary.get("links", {}).items()},
            "break_even": summary.get("break_even")}
    return out


def _rate(value) -> str:
    if value is None:
        return "—"
    return f"{value / 1e6:.3g} M" if value >= 1e6 else f"{value / 1e3:.3g} k"


def format_table(rows: list[dict]) -> str:
    links = list(LINKS)
    head = (f"| codec | bits/token | wire B/token | tokens/s (local) | enc µs/token | "
            f"dec µs/token | " + " | ".join(f"tok/s @ {k}" for k in links)
            + " | pays off below (serial / pipelined, bit/s) | exact |")
    # (×): predicted tokens/s over fp16 transfer's in the same run, on the same windows
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if "tokens" not in r:
            lines.append(f"| {r['codec']} | failed: {r['errors']} |")
            continue
        even = r["break_even"] or {}
        if r["codec"] == "fp16":
            paying = "(reference)"
        elif even.get("note", "").startswith("never"):
            paying = "never"
        else:
            paying = f"{_rate(even.get('serial_bit_per_s'))} / " \
                     f"{_rate(even.get('pipelined_bit_per_s'))}"
            if even.get("serial_bit_per_s") is None:
                paying = "any rate / " + _rate(even.get("pipelined_bit_per_s"))
        lines.append(
            f"| {r['codec']} | {r['stream_bits_per_token']:.0f} | "
            f"{r['wire_bytes_per_token']:.1f} | {r['tokens_per_s']:.1f} | "
            f"{r['encode_us_per_token']:.1f} | {r['decode_us_per_token']:.1f} | "
            + " | ".join(f"{r['predicted_tokens_per_s'][k]:.1f} "
                         f"({r['predicted_tokens_per_s'][k] / r['fp16_predicted_tokens_per_s'][k]:.2f}×)"
                         for k in links)
            + f" | {paying} | {'yes' if r['exact'] else 'NO'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", type=int, default=15)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--window-length", type=int, default=128)
    parser.add_argument("--fit-windows", type=int, default=8)
    parser.add_argument("--target", type=float, default=0.05, help="ΔCE of the fitted codec")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--print", action="store_true",
                        help="print the table of an existing --out file and stop")
    args = parser.parse_args()
    if args.print:
        print(format_table(json.loads(args.out.read_text())["rows"]))
        return 0
    results = {"generator": "benchmarks/split_run_bench.py", "model": "smollm2-135m",
               "split": args.split, "batches": args.batches, "batch_size": args.batch_size,
               "window_length": args.window_length,
               "environment": {"rdgap": rdgap.__version__, "torch": torch.__version__,
                               "python": platform.python_version(),
                               "machine": platform.machine(), "cpus": os.cpu_count()},
               "note": "two ranks on one machine, one torch thread each, gloo over loopback; "
                       "link rates are predicted from the measured stage times"}
    with tempfile.TemporaryDirectory(prefix="rdgap-bench-codec-") as folder:
        print(f"fitting gaussian-fisher at ΔCE ≤ {args.target} on {args.fit_windows} windows")
        results["reference_codec"] = fit_reference(args.split, args.fit_windows,
                                                   args.window_length, args.target,
                                                   Path(folder))
        specs = [(name, name) for name in BASELINES] + [("gaussian-fisher", folder)]
        summaries, rows = {}, []
        for name, spec in tqdm(specs, desc="split-run", unit="codec"):
            config = SplitRunConfig(split=args.split, codec=spec, batches=args.batches,
                                    batch_size=args.batch_size,
                                    window_length=args.window_length, threads=1)
            summary = run_local(config)
            summary["config"]["codec"] = name  # not the temporary folder
            summaries[name] = summary
            rows.append(row(name, summary))
    results["rows"], results["runs"] = rows, summaries
    table = format_table(rows)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0 if all(r["complete"] and r["exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
