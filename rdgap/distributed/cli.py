"""The ``rdgap split-run`` subcommand: its parser and its handler."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import FAULTS, SplitRunConfig


def add_parser(commands) -> None:
    """Register ``split-run`` on the ``rdgap`` subcommand parser."""
    parser = commands.add_parser(
        "split-run", help="run a model in two processes with a codec on the link",
        description="Rank 0 runs the prefix and encodes each window; rank 1 receives the "
                    "streams over torch.distributed, decodes them and runs the suffix. "
                    "Spawns both ranks locally, or runs one rank under torchrun "
                    "(`torchrun --nproc-per-node 2 -m rdgap split-run ...`). Exit status 0 "
                    "only when every batch arrived and the logits equal the one-process "
                    "path.")
    parser.add_argument("--model", default="smollm2-135m",
                        help="'smollm2-135m' (embedded default) or a causal-LM folder")
    parser.add_argument("--split", type=int, required=True,
                        help="decoder layers in the prefix (rank 0)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--codec", help="baseline codec: fp16, bf16, int8, int4, zstd-fp16; "
                                        "or the folder of a saved FactorizedCodec")
    source.add_argument("--codec-dir", help="folder of a saved FactorizedCodec "
                                            "(FactorizedCodec.save)")
    parser.add_argument("--world", type=int, default=2, help="ranks (exactly 2)")
    parser.add_argument("--batches", type=int, default=4, help="batches streamed")
    parser.add_argument("--batch-size", type=int, default=2, help="windows per batch")
    parser.add_argument("--window-length", type=int, default=128, help="tokens per window")
    parser.add_argument("--corpus", default="lee_background",
                        help="'lee_background' (default), a text file, or a folder of .txt")
    parser.add_argument("--backend", default="auto", choices=["auto", "gloo", "nccl"],
                        help="torch.distributed backend (auto: nccl with CUDA, else gloo)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds a rank waits for the other before failing (default 60)")
    parser.add_argument("--queue", type=int, default=2, help="batches in flight (default 2)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per rank (default: cores / 2)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the check of the logits against the one-process path "
                             "(it keeps every batch's logits in memory on rank 1)")
    parser.add_argument("--max-frame-bytes", type=int, default=None,
                        help="largest frame body rank 1 accepts, in bytes (default: twice "
                             "the float32 bytes of a batch + 64 KiB per window)")
    parser.add_argument("--out", default=None, help="write the summary JSON to this file")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--cache-dir", default=None, help="rdgap cache folder")
    parser.add_argument("--inject-fault", default=None, metavar="NAME:BATCH",
                        help="exercise failure handling: "
                             + "; ".join(f"{k} ({v})" for k, v in FAULTS.items()))


def _write(summary: dict, out: str | None) -> None:
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {path}")


def handle(args) -> int:
    """Run the command; 0 when complete and exact (or unverified), 1 otherwise."""
    from .launch import run_local, run_torchrun, under_torchrun
    from .summary import format_summary

    if args.world != 2:
        raise ValueError(f"--world: split-run runs on exactly 2 ranks, got {args.world}")
    config = SplitRunConfig(
        split=args.split, codec=args.codec or args.codec_dir, model=args.model,
        batches=args.batches, batch_size=args.batch_size, window_length=args.window_length,
        corpus=args.corpus, backend=args.backend, timeout=args.timeout, queue=args.queue,
        verify=not args.no_verify, threads=args.threads, cache_dir=args.cache_dir,
        fault=args.inject_fault, progress=not args.no_progress,
        max_frame_bytes=args.max_frame_bytes)
    if under_torchrun():
        report, summary = run_torchrun(config)
        if report["rank"] == 0:
            print(f"rank 0: {report['status']}" + (f" ({report['error']})"
                                                   if report["error"] else ""))
            if report["status"] != "ok" and args.out:
                _write(summary, f"{args.out}.rank0")
            return 0 if report["status"] == "ok" else 1
    else:
        summary = run_local(config)
    print(format_summary(summary))
    _write(summary, args.out)
    ok = summary["complete"] and summary["exact"] is not False
    if not ok:
        print("split-run: error: the run is incomplete or inexact (see above)",
              file=sys.stderr)
    return 0 if ok else 1
