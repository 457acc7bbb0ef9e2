"""klt-context against its window-controlled variant, on the fit text and on other text.

Fits on the default corpus (lee_background) exactly as ``benchmarks/codec_bench.py``
does (22 statistics windows + 32 probe windows of 256 tokens, the same fit
documents, seed 0), then evaluates both codecs on the fit corpus's evaluation
documents and on the other named corpora (newsgroups and wikipedia, every document
with a full window, up to ``--windows``), one stream per window: bits per token
(real bytes, container included), ΔCE ± s.e. over documents, and for the
controlled codec how the ladder factor spread and how often the rate cap bound (from
the window header of every stream). Writes ``benchmarks/results/window_control.json``.

Usage::

    python benchmarks/window_control_bench.py [--splits 15] [--levels 0.05,0.01]
        [--windows 32] [--corpora newsgroups,wikipedia] [--cache DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import codec_bench  # noqa: E402

sys.path.remove(str(HERE))

from rdgap.codecs.fit import FitContext  # noqa: E402
from rdgap.codecs.quantizers.window_control import (FLAG_CAP, FLAG_FALLBACK,  # noqa: E402
                                                    FLAG_LEVEL_UNREACHED, LADDER,
                                                    window_header)
from rdgap.codecs.recipes import recipe  # noqa: E402
from rdgap.split import SplitModel  # noqa: E402
from rdgap.validation.corpus import (DEFAULT_CORPUS, load_documents,  # noqa: E402
                                     split_documents, token_windows)
from rdgap.codecs.transforms.fisher import FisherDiagonal  # noqa: E402
from rdgap.validation.distortion import document_estimate, per_window_metrics  # noqa: E402
from rdgap.validation.models import load_model  # noqa: E402

OUT = HERE / "results" / "window_control.json"
VARIANTS = ("klt-context", "klt-context-wc")
BATCH = 4


def _prefix(split: SplitModel, input_ids: torch.Tensor) -> torch.Tensor:
    """Hidden states at the split only (no full-vocabulary logits kept)."""
    with torch.no_grad():
        return torch.cat([split.prefix(input_ids[s:s + BATCH])
                          for s in range(0, len(input_ids), BATCH)])


def measure(codec, split: SplitModel, hidden: torch.Tensor, input_ids: torch.Tensor,
            documents: np.ndarray) -> dict:
    """One stream per window: real bits/token, ΔCE and KL ± s.e. over documents (the exact
    logits recomputed per batch from the exact states, so memory stays at one batch), and
    the window header of every controlled stream."""
    total, headers, recon = 0, [], torch.empty_like(hidden)
    start = time.perf_counter()
    for w in range(hidden.shape[0]):
        data = codec.encode(hidden[w])
        total += len(data)
        if codec.codec_id.startswith("wc-"):
            headers.append(window_header(data))
        recon[w] = codec.decode(data)
    coding_s = time.perf_counter() - start
    values = {"delta_ce_nats": [], "kl_nats": []}
    with torch.no_grad():
        for s in range(0, hidden.shape[0], BATCH):
            part = slice(s, s + BATCH)
            metrics = per_window_metrics(split.suffix(hidden[part]), split.suffix(recon[part]),
                                         input_ids[part])
            for name in values:
                values[name].extend(metrics[name].tolist())
    dce = document_estimate(np.array(values["delta_ce_nats"]), documents)
    kl = document_estimate(np.array(values["kl_nats"]), documents)
    return {"bits_per_token": 8.0 * total / (hidden.shape[0] * hidden.shape[1]),
            "delta_ce_nats": dce.mean, "delta_ce_nats_stderr": dce.stderr,
            "kl_nats": kl.mean, "coding_s": coding_s, "headers": headers}


def _windows(tokenizer, corpus: str, windows: int):
    """Evaluation windows of ``corpus``: the fit corpus's evaluation documents, or every
    document of another corpus (none of them was fitted on)."""
    documents = load_documents(corpus)
    if corpus == DEFAULT_CORPUS:
        indices = split_documents(len(documents), seed=0)[1]
    else:
        indices = list(range(len(documents)))
    return token_windows(documents, indices, tokenizer, codec_bench.WINDOW_LENGTH,
                         max_windows=windows)


def _fit_context(split, fit, k: int, statistics: int, cache: Path | None, tag: str):
    """The FitContext of codec_bench's fit windows at split ``k`` (states and Fisher kept
    under ``cache``)."""
    path = cache / f"wc-fit-{tag}-split{k}.pt" if cache else None
    if path is not None and path.is_file():
        saved = torch.load(path, weights_only=True)
        fisher = FisherDiagonal(saved["rest"].numpy(), saved["first"].numpy(),
                                int(saved["tokens"]), saved["matrix"].numpy())
        hidden = saved["hidden"]
    else:
        hidden, fisher = _prefix(split, fit.input_ids), None
    context = FitContext.build(split, fit.input_ids, hidden, statistics_windows=statistics,
                               documents=fit.document, fisher=fisher)
    if path is not None and fisher is None:
        cache.mkdir(parents=True, exist_ok=True)
        torch.save({"hidden": hidden, "rest": torch.from_numpy(context.fisher.rest),
                    "first": torch.from_numpy(context.fisher.first),
                    "tokens": context.fisher.tokens,
                    "matrix": torch.from_numpy(context.fisher.matrix)}, path)
    return context


def run(splits, levels, windows: int, corpora, cache: Path | None, out: Path) -> dict:
    loaded = load_model("smollm2-135m")
    model, tokenizer = loaded.model, loaded.tokenizer
    torch.manual_seed(0)
    documents = load_documents(DEFAULT_CORPUS)
    fit_indices, _ = split_documents(len(documents), seed=0)
    statistics, probe = codec_bench.STATISTICS_WINDOWS, codec_bench.PROBE_WINDOWS
    fit = token_windows(documents, fit_indices, tokenizer, codec_bench.WINDOW_LENGTH,
                        max_windows=statistics + probe)
    tag = f"{loaded.name}-{statistics}+{probe}x{codec_bench.WINDOW_LENGTH}"
    evaluation = {corpus: _windows(tokenizer, corpus, windows)
                  for corpus in (DEFAULT_CORPUS, *corpora)}
    result = {"facts": {"fit_windows": statistics + probe, "statistics_windows": statistics,
                        "window_tokens": codec_bench.WINDOW_LENGTH, "model": loaded.name,
                        "fit_corpus": DEFAULT_CORPUS, "seconds": {}}, "rows": []}
    for k in splits:
        split = SplitModel(model, k)
        start = time.perf_counter()
        context = _fit_context(split, fit, k, statistics, cache, tag)
        result["facts"]["seconds"][f"fit_context:{k}"] = time.perf_counter() - start
        states = {corpus: _prefix(split, ev.input_ids) for corpus, ev in evaluation.items()}
        for level in levels:
            start = time.perf_counter()
            torch.manual_seed(0)
            controlled = recipe("klt-context-wc").fit(context, fit.input_ids[:statistics], level)
            result["facts"]["seconds"][f"fit:{k}:{level:g}"] = time.perf_counter() - start
            codecs = {"klt-context": controlled.codec.base, "klt-context-wc": controlled.codec}
            for corpus, ev in evaluation.items():
                for name, codec in codecs.items():
                    measured = measure(codec, split, states[corpus], ev.input_ids,
                                       ev.document.numpy())
                    headers = measured.pop("headers")
                    row = {"split": k, "codec": name, "level": level, "corpus": corpus,
                           "windows": int(len(ev)),
                           "documents": int(np.unique(ev.document.numpy()).size),
                           **measured, "level_met_within_2se": bool(
                               measured["delta_ce_nats"] <= level + 2 *
                               measured["delta_ce_nats_stderr"])}
                    if headers:
                        flags = np.array([f for f, _ in headers])
                        factors = np.array([np.nan if f & FLAG_FALLBACK else LADDER[i]
                                            for f, i in headers])
                        row |= {"cap_bits_per_token": codec.cap_bits_per_token,
                                "margin": codec.margin,
                                "cap_binds": int(np.sum(flags & FLAG_CAP > 0)),
                                "fallback": int(np.sum(flags & FLAG_FALLBACK > 0)),
                                "level_unreached": int(np.sum(flags & FLAG_LEVEL_UNREACHED > 0)),
                                "factor_median": float(np.nanmedian(factors)),
                                "factor_min": float(np.nanmin(factors)),
                                "factor_max": float(np.nanmax(factors)),
                                "fit_report": codec.fit_report}
                    result["rows"].append(row)
                    _write(result, out)
                    print(f"split {k} level {level:g} {corpus:15s} {name:15s} "
                          f"{row['bits_per_token']:7.1f} bits/token  ΔCE "
                          f"{row['delta_ce_nats']:.4f} ± {row['delta_ce_nats_stderr']:.4f}"
                          + (f"  factor {row['factor_median']:.3f} cap binds "
                             f"{row['cap_binds']}/{row['windows']}" if headers else ""),
                          flush=True)
    return result


def _write(result: dict, out: Path) -> None:
    """Write ``result`` into ``out``, keeping rows of (split, level) pairs not re-run."""
    rows = result["rows"]
    if out.is_file():
        keys = {(r["split"], r["level"]) for r in rows}
        rows = [r for r in json.loads(out.read_text()).get("rows", [])
                if (r["split"], r["level"]) not in keys] + rows
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"facts": result["facts"], "rows": rows}, indent=1) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", default="15")
    parser.add_argument("--levels", default="0.05,0.01")
    parser.add_argument("--windows", type=int, default=32)
    parser.add_argument("--corpora", default="newsgroups,wikipedia",
                        help="other corpora evaluated (comma-separated names)")
    parser.add_argument("--cache", default=None, help="keep fit hidden states and Fisher here")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    splits = [int(s) for s in args.splits.split(",")]
    levels = [float(v) for v in args.levels.split(",")]
    corpora = [c for c in args.corpora.split(",") if c]
    start = time.perf_counter()
    out = Path(args.out)
    result = run(splits, levels, args.windows, corpora,
                 Path(args.cache) if args.cache else None, out)
    result["facts"]["wall_s"] = time.perf_counter() - start
    _write(result, out)
    print(f"wrote {out} ({result['facts']['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
