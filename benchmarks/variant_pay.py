"""Does a variant with its own code pay? Its rate against its parent's, paired per window.

Issue 16: a variant that is neither a composition of shared parts nor measurably better
than its parent (beyond two standard errors on the benchmark) does not need its own code.
This script measures "measurably better" the way the benchmark would, but *paired*: the
parent is fitted and calibrated once (``codec_bench``'s fit windows, SmolLM2, one split,
one level), the variant is built from that very codec by its own training step (what its
recipe's fitter does after fitting the parent), and every one of the benchmark's
evaluation windows is coded as one real stream by both. The statistic is the per-window
difference of bits/token (variant − parent), its mean and its standard error over
documents (:func:`rdgap.validation.distortion.document_estimate`); the variant pays when
the mean is below −2 s.e. By default (``--scale bench``) the parent is built at the
step scale its ``codec_bench.json`` row records (no probe pass; with the cached fit
states its rate reproduces that row's), so only the variant's own training runs (a
variant with its own steps, ``klt-context-learned``, is calibrated on the probe). The script also checks that the two reconstructions are equal
(so ΔCE is equal and only the rate differs); for a variant whose reconstruction differs
(``klt-context-learned``: other steps, calibrated again to the level) it reports the
paired ΔCE difference too.

Usage::

    python benchmarks/variant_pay.py [--split 15] [--level 0.05] [--windows 32]
                                     [--variants klt-hyperprior,klt-deep] [--cache DIR]
                                     [--out benchmarks/results/variant_pay.json]

Results merge into ``--out`` by (variant, split, level).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import codec_bench  # noqa: E402

sys.path.remove(str(HERE))

import rdgap.codecs.fit as fit_module  # noqa: E402
from rdgap.codecs.fit import FitContext  # noqa: E402
from rdgap.codecs.recipes import RECIPES, recipe  # noqa: E402
from rdgap.split import SplitModel  # noqa: E402
from rdgap.validation.corpus import (DEFAULT_CORPUS, load_documents,  # noqa: E402
                                     split_documents, token_windows)
from rdgap.validation.distortion import document_estimate, per_window_metrics  # noqa: E402
from rdgap.validation.models import load_model  # noqa: E402

OUT = HERE / "results" / "variant_pay.json"


def _refine_hyperprior(fitted, context):
    """What ``klt-hyperprior``'s fitter does after fitting klt-context."""
    from rdgap.codecs.entropy_models.hyperprior_fit import fit_hyperprior

    probe = getattr(context.probe, "hidden", None)
    hidden = context.hidden if probe is None else torch.cat([context.hidden, probe])
    return fit_hyperprior(fitted.codec, hidden).codec


def _refine_deep(fitted, context):
    """What ``klt-deep``'s fitter does after fitting klt-laplace."""
    from rdgap.codecs.entropy_models.deep_factorized import fit_deep_codec

    probe = getattr(context.probe, "hidden", None)
    windows = context.hidden if probe is None else torch.cat([context.hidden, probe])
    return fit_deep_codec(fitted.codec, windows)


#: variant → how it is built from its parent's fitted codec (None: fitted by its own
#: recipe, another reconstruction).
REFINE = {"klt-hyperprior": _refine_hyperprior, "klt-deep": _refine_deep,
          "klt-context-learned": None}


def _per_window(codec, hidden: torch.Tensor) -> tuple[np.ndarray, torch.Tensor, float]:
    """Bits/token of each window's stream, the decoded windows and the coding seconds."""
    bits, recon = [], torch.empty_like(hidden)
    start = time.perf_counter()
    for w in range(hidden.shape[0]):
        data = codec.encode(hidden[w])
        recon[w] = codec.decode(data)
        bits.append(8.0 * len(data) / hidden.shape[1])
    return np.array(bits), recon, time.perf_counter() - start


def _delta_ce(split, hidden, recon, input_ids) -> np.ndarray:
    values = []
    with torch.no_grad():
        for s in range(0, hidden.shape[0], codec_bench.BATCH):
            part = slice(s, s + codec_bench.BATCH)
            metrics = per_window_metrics(split.suffix(hidden[part]), split.suffix(recon[part]),
                                         input_ids[part])
            values.extend(metrics["delta_ce_nats"].tolist())
    return np.array(values)


def _estimate(values: np.ndarray, documents: np.ndarray) -> dict:
    e = document_estimate(values, documents)
    return {"mean": e.mean, "stderr": e.stderr}


def paired_difference(variant_bits: np.ndarray, parent_bits: np.ndarray,
                      documents: np.ndarray) -> dict:
    """Per-window ``variant − parent`` bits/token: mean and standard error over documents,
    ``z = mean / s.e.``, and whether the variant pays (``mean < −2 s.e.``; never with one
    document, which gives no standard error)."""
    difference = _estimate(np.asarray(variant_bits) - np.asarray(parent_bits), documents)
    stderr = difference["stderr"]
    z = difference["mean"] / stderr if stderr else None
    return {**difference, "z": z, "pays": bool(stderr) and difference["mean"] < -2 * stderr}


def _bench_row(parent: str, k: int, level: float) -> dict:
    """The committed ``codec_bench.json`` row of ``parent`` at split ``k`` and ``level``."""
    rows = json.loads((HERE / "results" / "codec_bench.json").read_text())["rows"]
    for row in rows:
        if row["split"] == k and row["codec"] == parent and row["level"] == f"dce<={level:g}":
            return row
    raise ValueError(f"--scale bench: codec_bench.json has no row of {parent} at split {k}, "
                     f"level {level:g}; run with --scale calibrate")


@contextlib.contextmanager
def _fixed_scale(scale: float):
    """``fit_codec`` with its calibration replaced by the given scale (no probe pass)."""
    calibrate = fit_module.calibrate_scale
    fit_module.calibrate_scale = lambda *args, **kwargs: SimpleNamespace(scale=scale)
    try:
        yield
    finally:
        fit_module.calibrate_scale = calibrate


def _fit_parent(parent: str, context, input_ids, k: int, level: float, scale: str):
    if scale == "calibrate":
        return RECIPES[parent].fit(context, input_ids, level, cap=None), None  # the raw codec
    row = _bench_row(parent, k, level)
    with _fixed_scale(row["scale"]):
        return fit_module.fit_codec(parent, context, level), row


def run(variants: list[str], k: int, level: float, windows: int, cache: Path | None,
        scale: str = "bench") -> list[dict]:
    loaded = load_model("smollm2-135m")
    model, tokenizer = loaded.model, loaded.tokenizer
    torch.manual_seed(0)
    documents = load_documents(DEFAULT_CORPUS)
    fit_indices, evaluation = split_documents(len(documents), seed=0)
    statistics, probe = codec_bench.STATISTICS_WINDOWS, codec_bench.PROBE_WINDOWS
    fit = token_windows(documents, fit_indices, tokenizer, codec_bench.WINDOW_LENGTH,
                        max_windows=statistics + probe)
    ev = token_windows(documents, evaluation, tokenizer, codec_bench.WINDOW_LENGTH,
                       max_windows=windows)
    tag = f"{loaded.name}-{statistics}+{probe}x{codec_bench.WINDOW_LENGTH}"
    fit_hidden, saved_fisher = codec_bench._fit_states(model, fit, [k], cache, tag)
    split = SplitModel(model, k)
    path = cache / f"eval-{tag}-split{k}-{windows}.pt" if cache else None
    if path is not None and path.is_file():
        ev_hidden = torch.load(path, weights_only=True)
    else:
        with torch.no_grad():
            ev_hidden = torch.cat([split.prefix(ev.input_ids[s:s + codec_bench.BATCH])
                                   for s in range(0, len(ev.input_ids), codec_bench.BATCH)])
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(ev_hidden, path)
    own_calibration = any(REFINE[variant] is None for variant in variants)
    if scale == "bench" and not own_calibration and saved_fisher[k] is not None:
        # no probe pass: the probe's windows only (the variants train on them)
        context = FitContext(split, fit_hidden[k][:statistics], saved_fisher[k],
                             SimpleNamespace(hidden=fit_hidden[k][statistics:]))
    else:
        context = FitContext.build(split, fit.input_ids, fit_hidden[k],
                                   statistics_windows=statistics, documents=fit.document,
                                   fisher=saved_fisher[k])
    if saved_fisher[k] is None:
        codec_bench._save_fit_state(cache, tag, k, fit_hidden[k], context.fisher)
    docs = ev.document.numpy()
    parents, rows = {}, []
    for variant in variants:
        parent = recipe(variant).parent
        if parent not in parents:
            fitted, bench = _fit_parent(parent, context, fit.input_ids[:statistics], k, level,
                                        scale)
            parents[parent] = (fitted, bench, *_per_window(fitted.codec, ev_hidden))
        fitted, bench, parent_bits, parent_recon, parent_s = parents[parent]
        start = time.perf_counter()
        if REFINE[variant] is None:
            codec = RECIPES[variant].fit(context, fit.input_ids[:statistics], level,
                                         cap=None).codec
        else:
            codec = REFINE[variant](fitted, context)
        fit_s = time.perf_counter() - start
        bits, recon, coding_s = _per_window(codec, ev_hidden)
        same = bool(torch.equal(recon, parent_recon))
        difference = paired_difference(bits, parent_bits, docs)
        row = {"variant": variant, "parent": parent, "split": k, "level": level,
               "windows": int(ev_hidden.shape[0]), "documents": int(len(set(docs.tolist()))),
               "same_reconstruction": same, "scale": scale,
               "parent_scale": None if bench is None else bench["scale"],
               "parent_bits_per_token_in_codec_bench": None if bench is None
               else bench["bits_per_token_actual"],
               "parent_bits_per_token": float(parent_bits.mean()),
               "variant_bits_per_token": float(bits.mean()),
               "difference_bits_per_token": {"mean": difference["mean"],
                                             "stderr": difference["stderr"]},
               "difference_percent": 100.0 * difference["mean"] / float(parent_bits.mean()),
               "z": difference["z"], "pays": difference["pays"],
               "fit_s": fit_s, "coding_s": coding_s, "parent_coding_s": parent_s}
        if not same:
            dce = _delta_ce(split, ev_hidden, recon, ev.input_ids)
            parent_dce = _delta_ce(split, ev_hidden, parent_recon, ev.input_ids)
            row |= {"parent_delta_ce_nats": _estimate(parent_dce, docs),
                    "variant_delta_ce_nats": _estimate(dce, docs),
                    "difference_delta_ce_nats": _estimate(dce - parent_dce, docs)}
        print(f"{variant} vs {parent} (split {k}, ΔCE ≤ {level:g}, {row['windows']} windows): "
              f"{row['variant_bits_per_token']:.1f} vs {row['parent_bits_per_token']:.1f} "
              f"bits/token, paired difference {difference['mean']:+.2f} ± "
              f"{difference['stderr']:.2f} (s.e.) = {row['difference_percent']:+.2f} %, "
              f"same reconstruction: {same}; pays (< −2 s.e.): {row['pays']}", flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", type=int, default=15)
    parser.add_argument("--level", type=float, default=0.05)
    parser.add_argument("--windows", type=int, default=32)
    parser.add_argument("--variants", default="klt-hyperprior,klt-deep")
    parser.add_argument("--cache", default=None, help="codec_bench's cache of fit states")
    parser.add_argument("--scale", choices=("bench", "calibrate"), default="bench",
                        help="bench: the parent at the step scale codec_bench.json records for "
                             "it (no probe pass; its rate is checked against that row); "
                             "calibrate: calibrated again on the probe")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    variants = args.variants.split(",")
    for variant in variants:
        if variant not in REFINE:
            parser.error(f"--variants: expected names from {sorted(REFINE)}, got {variant!r}")
    rows = run(variants, args.split, args.level, args.windows,
               Path(args.cache) if args.cache else None, args.scale)
    out = Path(args.out)
    old = json.loads(out.read_text())["rows"] if out.is_file() else []
    keys = {(r["variant"], r["split"], r["level"]) for r in rows}
    merged = [r for r in old if (r["variant"], r["split"], r["level"]) not in keys] + rows
    out.write_text(json.dumps({"generator": "benchmarks/variant_pay.py", "rule":
                               "pays: paired mean difference < -2 standard errors over documents",
                               "rows": merged}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
