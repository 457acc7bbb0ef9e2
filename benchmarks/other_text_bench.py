"""Does a recipe's level hold on other text? Fit on news as ``codec_bench.py`` does, measure
on news and on other texts.

Issue 20 requires each new part's level to hold on text other than the fit corpus.
``rdgap validate --other-corpora`` measures that for its recipes; this script does it for
any recipe of :mod:`rdgap.codecs.recipes` (``klt-context-tokens-table`` included) at any
split, with ``codec_bench.py``'s fit: statistics, Fisher and entropy models from the first
22 news fit windows, the step scale calibrated on the next 32 (fit states and Fisher
reused from ``codec_bench.py --cache``). Every fitted codec then codes the evaluation
windows of each text as real streams (``codec_bench.measure``: bits/token, ΔCE ± s.e.
over documents, KL, top-1). News windows are ``codec_bench.py``'s evaluation windows, so
its rows are reproduced; the other texts' windows come from their documents, evaluation
split first (as ``benchmarks/domain_shift.py``), none seen by the fit.

Usage::

    python benchmarks/other_text_bench.py --split 4 --variants klt-context-tokens-table
        [--levels 0.05] [--texts newsgroups,wikipedia] [--windows 32] [--margin Z] [--cache DIR]
        [--shift-guard gaussian-fisher] [--out benchmarks/results/other_text_bench.json]

With ``--shift-guard RECIPE`` every variant is fitted behind a shift guard whose fallback is
``RECIPE`` (issue 19, docs/domain-shift.md "A shift guard"): the fallback is fitted once per
level on the same context with the same margin and shared by every primary; rows are named
``<variant>-sg``, each says how many windows of each text the detector sent to the fallback
(``flagged``), and the fallback's own rows are measured too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from rdgap.codecs.fit import FitContext
from rdgap.codecs.quantizers.shift_guard_fit import guard_fitted
from rdgap.codecs.recipes import RECIPES
from rdgap.split import SplitModel
from rdgap.validation.distortion import exact_log_probs

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import codec_bench  # noqa: E402  (its windows, states, cache, fitters and measurement)


def text_windows(name: str, tokenizer, windows: int):
    """``windows`` windows of 256 tokens of corpus ``name``: news (``lee_background``) as
    ``codec_bench.py``'s evaluation windows, another text from its evaluation documents
    first, then its fit documents (no document of it is ever fitted on)."""
    from rdgap.validation.corpus import (DEFAULT_CORPUS, load_documents, split_documents,
                                         token_windows)

    documents = load_documents(name)
    first, second = split_documents(len(documents), seed=0)
    order = second if name == DEFAULT_CORPUS else second + first
    return token_windows(documents, order, tokenizer, codec_bench.WINDOW_LENGTH,
                         max_windows=windows)


def row_level(row: dict, level: float) -> dict:
    """``row`` with the issue's criterion: evaluation ΔCE + 2 s.e. ≤ ``level``."""
    upper = row["delta_ce_nats"] + 2 * row["delta_ce_nats_stderr"]
    return row | {"delta_ce_upper_two_se": upper, "meets_two_se": bool(upper <= level)}


def run(split_k: int, variants: list[str], levels: list[float], texts: list[str],
        windows: int, cache: Path | None, method: str = "fit",
        margin: float = 0.0, shift_guard: str | None = None) -> list[dict]:
    """Rows of every (variant, level, text); see the module (``margin``: calibrate so that
    the probe ΔCE + ``margin`` standard errors meets the level, as
    ``codec_bench.py --margin``; ``shift_guard``: the fallback recipe of a shift guard
    around every variant, None for none)."""
    from rdgap.validation.corpus import DEFAULT_CORPUS, load_documents, split_documents
    from rdgap.validation.corpus import token_windows
    from rdgap.validation.models import load_model

    loaded = load_model("smollm2-135m")
    model, tokenizer = loaded.model, loaded.tokenizer
    torch.manual_seed(0)
    statistics, probe = codec_bench.STATISTICS_WINDOWS, codec_bench.PROBE_WINDOWS
    documents = load_documents(DEFAULT_CORPUS)
    fit_indices, _ = split_documents(len(documents), seed=0)
    fit = token_windows(documents, fit_indices, tokenizer, codec_bench.WINDOW_LENGTH,
                        max_windows=statistics + probe)
    tag = f"{loaded.name}-{statistics}+{probe}x{codec_bench.WINDOW_LENGTH}"
    fit_hidden, fisher = codec_bench._fit_states(model, fit, [split_k], cache, tag)
    split = SplitModel(model, split_k)
    context = FitContext.build(split, fit.input_ids, fit_hidden[split_k],
                               statistics_windows=statistics, documents=fit.document,
                               fisher=fisher[split_k])
    if fisher[split_k] is None:
        codec_bench._save_fit_state(cache, tag, split_k, fit_hidden[split_k], context.fisher)
    ids = fit.input_ids[:statistics]
    options = {"margin": margin} if margin else {}
    fitted = {}
    for level in levels:
        fallback = None
        if shift_guard is not None:  # one fallback per level, shared by every primary
            start = time.perf_counter()
            fallback = codec_bench.FITTERS[shift_guard](context, ids, level, method, **options)
            fitted[shift_guard, level] = (fallback, time.perf_counter() - start)
        for variant in (v for v in variants if v != shift_guard or fallback is None):
            start = time.perf_counter()
            result = codec_bench.FITTERS[variant](context, ids, level, method, **options)
            if fallback is not None and variant != shift_guard:
                result = guard_fitted(result, fallback, context)
            fitted[result.variant, level] = (result, time.perf_counter() - start)
            print(f"fitted {result.variant} at {level:g} in {fitted[result.variant, level][1]:.0f} s",
                  flush=True)
    rows = []
    for name in [DEFAULT_CORPUS] + [t for t in texts if t != DEFAULT_CORPUS]:
        ev = text_windows(name, tokenizer, windows)
        exact, hidden = codec_bench._states(model, ev.input_ids, [split_k])
        log_p = exact_log_probs(exact)
        for (variant, level), (result, seconds) in fitted.items():
            measured = codec_bench.measure(result.codec, split, hidden[split_k], ev.input_ids,
                                           exact, log_p, ev.document.numpy())
            detector = getattr(result.codec, "detector", None)
            if detector is not None:  # windows the guard sent to the fallback
                measured["flagged"] = int(sum(detector.flags(h) for h in hidden[split_k]))
                measured["fallback"] = shift_guard
            rows.append(row_level({
                "text": name, "split": split_k, "codec": variant, "level": level,
                "margin": margin, "shift_guard": shift_guard if detector is not None else None,
                "windows": len(ev.input_ids),
                "documents": int(len(set(ev.document.tolist()))),
                "fit_delta_ce_nats": result.calibration.delta_ce,
                "scale": result.calibration.scale, "fit_s": seconds} | measured, level))
            r = rows[-1]
            print(f"{name:>15} split {split_k} {variant:>24} {level:g}: "
                  f"{r['bits_per_token_actual']:7.1f} b/tok, ΔCE {r['delta_ce_nats']:.4f} ± "
                  f"{r['delta_ce_nats_stderr']:.4f} (+2 s.e. ≤ level: {r['meets_two_se']})",
                  flush=True)
        del exact, log_p, hidden
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    """Parse the command line (see the module), run, write the JSON (merged by
    (text, split, codec, level) into an existing ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", type=int, required=True)
    parser.add_argument("--variants", required=True)
    parser.add_argument("--levels", default="0.05")
    parser.add_argument("--texts", default="newsgroups,wikipedia")
    parser.add_argument("--windows", type=int, default=32)
    parser.add_argument("--margin", type=float, default=0.0,
                        help="calibrate so that probe ΔCE + MARGIN standard errors ≤ level")
    parser.add_argument("--cache", default=None,
                        help="codec_bench.py's --cache folder (fit states and Fisher)")
    parser.add_argument("--shift-guard", default=None, metavar="RECIPE",
                        help="guard every variant by a shift detector falling back to RECIPE "
                             "(e.g. gaussian-fisher; one that codes token ids is refused)")
    parser.add_argument("--out", default=str(HERE / "results" / "other_text_bench.json"))
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in codec_bench.FITTERS]
    if unknown:
        parser.error(f"--variants: expected recipes from {tuple(codec_bench.FITTERS)}, "
                     f"got {unknown}")
    if args.shift_guard is not None and (args.shift_guard not in codec_bench.FITTERS or
                                         RECIPES[args.shift_guard].needs_token_ids):
        parser.error(f"--shift-guard: expected a recipe without token ids as the fallback "
                     f"(e.g. gaussian-fisher), got {args.shift_guard!r}")
    if args.windows < 2:
        parser.error(f"--windows: expected ≥ 2 (a standard error), got {args.windows}")
    started = time.perf_counter()
    rows = run(args.split, variants, [float(v) for v in args.levels.split(",")],
               [t for t in args.texts.split(",") if t], args.windows,
               Path(args.cache) if args.cache else None, margin=args.margin,
               shift_guard=args.shift_guard)
    out = Path(args.out)
    key = lambda r: (r["text"], r["split"], r["codec"], r["level"], r["margin"],  # noqa: E731
                     r.get("shift_guard"))
    old = json.loads(out.read_text())["rows"] if out.is_file() else []
    fresh = {key(r) for r in rows}
    merged = sorted([r for r in old if key(r) not in fresh] + rows,
                    key=lambda r: (r["split"], r["level"], r["codec"], r["text"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"generator": "rdgap benchmarks/other_text_bench.py",
                               "model": "smollm2-135m", "fit_corpus": "lee_background",
                               "statistics_windows": codec_bench.STATISTICS_WINDOWS,
                               "probe_windows": codec_bench.PROBE_WINDOWS,
                               "seconds_last_run": time.perf_counter() - started,
                               "rows": merged}, indent=2) + "\n")
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
