"""Fine-tune SmolLM2's suffix jointly with the learned steps, then fit, calibrate and measure.

One prepared script for a lent GPU (≤ 8 minutes on an H200), runnable on the CPU with
``--smoke`` (a few steps on a few windows, to prove that it works):

1. hidden states of the fit windows (22 statistics + 32 probe windows of 256 tokens,
   or ``--cache`` from ``benchmarks/codec_bench.py``) and of 32 evaluation windows at
   the split; the :class:`rdgap.codecs.fit.FitContext` (Fisher, KLT) of the ORIGINAL model;
2. :func:`rdgap.codecs.quantizers.finetune.finetune`: the suffix of a copy of the model and the
   KLT-domain steps trained on ``CE(x̂) + λ·rate`` on the device (``--train-s`` caps the
   wall time of the training);
3. the ``klt-context`` codec with the learned steps, calibrated on the probe windows so
   that the fine-tuned suffix on its reconstruction meets the level against the ORIGINAL
   model's CE (:func:`rdgap.codecs.quantizers.finetune.fit_finetuned_codec`; on the CPU);
4. every evaluation window coded as one real stream: bits/token (bytes and estimate),
   eval ΔCE ± s.e. against the original model, KL, top-1, T2 violations (and the fine-tuned
   model's own ΔCE on the exact states, no codec, against the original) — and the same for
   the plain ``klt-context`` codec (T7 steps, frozen LM) on the same windows
   (``--no-baseline`` skips it).

Writes ``finetune.json`` (and, with ``--save-state``, the fine-tuned parameters as
``suffix.safetensors``) into ``--out`` (default ``$OUT`` if set, else ``./gpu-finetune``).

Usage::

    python benchmarks/gpu_finetune.py [--split 15] [--level 0.05] [--iterations 1500]
        [--windows-per-step 8] [--crop 256] [--lr 0.01] [--parameter-lr 1e-5]
        [--train-s 180] [--trainable suffix|none] [--device cuda|cpu]
        [--cache DIR] [--out DIR] [--save-state] [--no-baseline] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from codec_bench import (BATCH, PROBE_WINDOWS, STATISTICS_WINDOWS,  # noqa: E402
                         WINDOW_LENGTH, _fit_states, _states, measure)

from rdgap.codecs.quantizers.finetune import finetune, fit_finetuned_codec  # noqa: E402
from rdgap.codecs.fit import FitContext, fit_codec  # noqa: E402
from rdgap.split import SplitModel  # noqa: E402
from rdgap.validation.corpus import (DEFAULT_CORPUS, load_documents,  # noqa: E402
                                     split_documents, token_windows)
from rdgap.validation.distortion import (document_estimate, exact_log_probs,  # noqa: E402
                                         per_window_metrics)
from rdgap.validation.models import load_model  # noqa: E402


def _arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", type=int, default=15)
    parser.add_argument("--level", type=float, default=0.05)
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--windows-per-step", type=int, default=8)
    parser.add_argument("--crop", type=int, default=WINDOW_LENGTH)
    parser.add_argument("--lr", type=float, default=0.01, help="Adam rate of the log-steps")
    parser.add_argument("--parameter-lr", type=float, default=1e-5,
                        help="Adam rate of the LM parameters")
    parser.add_argument("--lam", type=float, default=None,
                        help="λ in nats per bit (default: T7's slope at the level)")
    parser.add_argument("--train-s", type=float, default=180.0,
                        help="wall-time cap of the training, seconds")
    parser.add_argument("--trainable", choices=("suffix", "none"), default="suffix")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--windows", type=int, default=32, help="evaluation windows")
    parser.add_argument("--probe-windows", type=int, default=PROBE_WINDOWS,
                        help="fit windows of the calibration probe (at most 32)")
    parser.add_argument("--cache", default=None,
                        help="codec_bench.py's cache of fit-window hidden states and Fisher")
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu-finetune")
    parser.add_argument("--save-state", action="store_true",
                        help="also write the fine-tuned parameters (safetensors)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the plain klt-context codec on the same windows")
    parser.add_argument("--smoke", action="store_true",
                        help="CPU smoke: 3 steps of 2 windows × 64 tokens, 4 evaluation and "
                             "4 probe windows")
    args = parser.parse_args(argv)
    if args.smoke:
        args.iterations, args.windows_per_step, args.crop, args.windows = 3, 2, 64, 4
        args.probe_windows = 4
    for name in ("iterations", "windows_per_step", "windows", "probe_windows"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected ≥ 1, got {getattr(args, name)}")
    if not 0 < args.level:
        parser.error(f"--level: expected a ΔCE level > 0, got {args.level}")
    return args


def main(argv=None) -> dict:
    """Fine-tune, fit, code and measure as the module says (``argv``: the command line,
    default ``sys.argv``); write ``finetune.json`` and return what it holds."""
    args = _arguments(argv)
    started = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    loaded = load_model("smollm2-135m")
    model = loaded.model
    torch.manual_seed(0)
    documents = load_documents(DEFAULT_CORPUS)
    fit_indices, evaluation = split_documents(len(documents), seed=0)
    fit = token_windows(documents, fit_indices, loaded.tokenizer, WINDOW_LENGTH,
                        max_windows=STATISTICS_WINDOWS + PROBE_WINDOWS)
    ev = token_windows(documents, evaluation, loaded.tokenizer, WINDOW_LENGTH,
                       max_windows=args.windows)
    tag = f"{loaded.name}-{STATISTICS_WINDOWS}+{PROBE_WINDOWS}x{WINDOW_LENGTH}"
    cache = Path(args.cache) if args.cache else None
    fit_hidden, saved_fisher = _fit_states(model, fit, [args.split], cache, tag)
    exact, ev_hidden = _states(model, ev.input_ids, [args.split])
    log_p = exact_log_probs(exact)
    split = SplitModel(model, args.split)
    used = STATISTICS_WINDOWS + min(args.probe_windows, PROBE_WINDOWS)
    context = FitContext.build(split, fit.input_ids[:used], fit_hidden[args.split][:used],
                               statistics_windows=STATISTICS_WINDOWS,
                               documents=fit.document[:used], fisher=saved_fisher[args.split])
    prepared = time.perf_counter() - started
    ids = fit.input_ids[:STATISTICS_WINDOWS]

    start = time.perf_counter()
    tuned = finetune(context, ids, args.level, trainable=args.trainable, lam=args.lam,
                     iterations=args.iterations, windows_per_step=args.windows_per_step,
                     crop=args.crop, lr=args.lr, parameter_lr=args.parameter_lr,
                     device=args.device, max_seconds=args.train_s)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    train_s = time.perf_counter() - start
    tuned.model.to("cpu")  # fitting, coding and the suffix on the eval windows run on the CPU
    if args.save_state:
        tuned.save_state(out / "suffix.safetensors")

    rows = []
    docs = ev.document.numpy()
    fitters = [("finetuned", lambda: fit_finetuned_codec(context, tuned, args.level), tuned.split)]
    if not args.no_baseline:
        fitters.append(("klt-context", lambda: fit_codec("klt-context", context, args.level),
                        split))
    for name, fitter, suffix in fitters:
        start = time.perf_counter()
        fitted = fitter()
        fit_s = time.perf_counter() - start
        row = {"codec": fitted.variant, "role": name, "split": args.split,
               "level": args.level, "fit_s": fit_s,
               "fit_delta_ce_nats": fitted.calibration.delta_ce,
               "fit_delta_ce_nats_stderr": fitted.calibration.stderr,
               "scale": fitted.calibration.scale, "calibration_met": fitted.calibration.met}
        # ΔCE against the ORIGINAL model: `exact` / `log_p` are the original logits
        row |= measure(fitted.codec, suffix, ev_hidden[args.split], ev.input_ids, exact,
                       log_p, docs)
        rows.append(row)
        print(f"{row['codec']:>40}: {row['bits_per_token_actual']:.1f} bits/token "
              f"(estimate {row['bits_per_token_estimated']:.1f}), eval ΔCE "
              f"{row['delta_ce_nats']:.4f} ± {row['delta_ce_nats_stderr']:.4f}, "
              f"T2 violations {row['t2_violations']}", flush=True)
    # the fine-tuned model alone (exact hidden states, no codec) against the original
    alone = []
    with torch.no_grad():
        for start in range(0, len(ev.input_ids), BATCH):
            part = slice(start, start + BATCH)
            logits = tuned.split.suffix(ev_hidden[args.split][part])
            alone += per_window_metrics(exact[part], logits, ev.input_ids[part],
                                        log_p[part])["delta_ce_nats"].tolist()
    alone = document_estimate(np.array(alone), docs)
    print(f"fine-tuned model alone (no codec): eval ΔCE {alone.mean:.4f} ± {alone.stderr:.4f}")
    trace = tuned.learned.trace
    document = {
        "generator": "rdgap benchmarks/gpu_finetune.py", "smoke": args.smoke,
        "device": args.device, "device_name": (torch.cuda.get_device_name()
                                                if args.device.startswith("cuda") else "cpu"),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "cache")},
        "lam_nats_per_bit": tuned.learned.lam, "trainable_parameters": len(tuned.names),
        "steps_done": len(trace), "train_s": train_s, "prepare_s": prepared,
        "seconds": time.perf_counter() - started,
        "trace_first": trace[:5], "trace_last": trace[-5:],
        "finetuned_alone_delta_ce_nats": alone.mean,
        "finetuned_alone_delta_ce_nats_stderr": alone.stderr,
        "evaluation_windows": len(ev.input_ids), "window_length": WINDOW_LENGTH, "rows": rows}
    (out / "finetune.json").write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {out / 'finetune.json'} ({document['seconds']:.0f} s, "
          f"{len(trace)} training steps in {train_s:.0f} s)")
    return document


if __name__ == "__main__":
    main()
