"""Issue 20 screen: which extra fit text helps the token-id table, the probe held out?

At one split, ``klt-context-tokens`` and ``klt-context-tokens-table`` are fitted by their
entropy model's ``fit_model`` (Fisher-whitened KLT and T7 steps from codec_bench's 22
statistics windows, its cached fit states and Fisher) at the step scale codec_bench
calibrated for ``klt-context-tokens`` at ΔCE 0.05 (``codec_bench.json``; no probe pass),
on each fit set:

* ``S``: the 22 statistics windows (what codec_bench fits on);
* ``S+O64`` / ``S+O32``: plus every further 256-token window of the statistics documents
  at stride 64 / 32 (overlapping; more (position, context) samples of the same text);
* ``S+G16`` / ``S+G48``: plus 16 / 48 windows the model writes from the statistics
  windows' prompts (:func:`rdgap.codecs.entropy_models.generated_text.generated_ids`,
  seed 0).

No set holds a probe or evaluation document. Each row is the codec's own estimate
(``estimate_bits``, token ids included) on the 32 evaluation windows, at equal steps.
``--shrink`` then chooses the table's ``λ`` on fit data only: table fitted on the
generated windows and statistics windows 0–10, bits estimated on statistics windows
11–21.

Usage::

    python benchmarks/token_table_fit_text_screen.py --cache DIR [--split 15]
        [--shrink 0.25,1,4,16] [--out benchmarks/results/token_table_fit_text_screen.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import codec_bench  # noqa: E402  (windows, states, cache)

SETS = ("S", "S+O64", "S+O32", "S+G16", "S+G48")
#: Sets on which the ridge alone (klt-context-tokens) is fitted too.
RIDGE_SETS = ("S", "S+O32", "S+G48")


def overlapping(documents, indices, tokenizer, stride: int, length: int) -> torch.Tensor:
    """Every window of ``length`` tokens at offsets ``stride, 2·stride, …`` of each listed
    document (offset 0 is its statistics window)."""
    rows = []
    for d in indices:
        ids = tokenizer(documents[d])["input_ids"]
        rows += [ids[s:s + length] for s in range(stride, len(ids) - length + 1, stride)]
    return torch.tensor(rows, dtype=torch.long)


def main(argv: list[str] | None = None) -> dict:
    from rdgap.codecs.entropy_models import token_fit, token_table
    from rdgap.codecs.entropy_models.generated_text import generated_ids
    from rdgap.codecs.entropy_models.model_fit import FitStart
    from rdgap.codecs.fit import FitContext
    from rdgap.split import SplitModel
    from rdgap.validation.corpus import (DEFAULT_CORPUS, load_documents, split_documents,
                                         token_windows)
    from rdgap.validation.models import load_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", type=int, default=15)
    parser.add_argument("--cache", required=True, help="codec_bench.py's --cache folder")
    parser.add_argument("--shrink", default="0.25,1,4,16")
    parser.add_argument("--out", default=str(HERE / "results" / "token_table_fit_text_screen.json"))
    args = parser.parse_args(argv)
    k, length, statistics = args.split, codec_bench.WINDOW_LENGTH, codec_bench.STATISTICS_WINDOWS
    loaded = load_model("smollm2-135m")
    model, tokenizer = loaded.model, loaded.tokenizer
    documents = load_documents(DEFAULT_CORPUS)
    fit_indices, evaluation = split_documents(len(documents), seed=0)
    fit = token_windows(documents, fit_indices, tokenizer, length,
                        max_windows=statistics + codec_bench.PROBE_WINDOWS)
    ev = token_windows(documents, evaluation, tokenizer, length, max_windows=32)
    tag = f"{loaded.name}-{statistics}+{codec_bench.PROBE_WINDOWS}x{length}"
    fit_hidden, fishers = codec_bench._fit_states(model, fit, [k], Path(args.cache), tag)
    split = SplitModel(model, k)
    context = FitContext.build(split, fit.input_ids, fit_hidden[k], statistics_windows=statistics,
                               documents=fit.document, fisher=fishers[k])
    stat_docs = fit.document[:statistics].tolist()
    sid = fit.input_ids[:statistics]
    extra = {"O64": overlapping(documents, stat_docs, tokenizer, 64, length),
             "O32": overlapping(documents, stat_docs, tokenizer, 32, length),
             "G48": generated_ids(model, sid, 48)}
    states = {name: codec_bench._states(model, ids, [k])[1][k] for name, ids in extra.items()}
    ev_hidden = codec_bench._states(model, ev.input_ids, [k])[1][k]
    bench = json.loads((HERE / "results" / "codec_bench.json").read_text())["rows"]
    scale = next(r["scale"] for r in bench if r["split"] == k and r["level"] == "dce<=0.05"
                 and r["codec"] == "klt-context-tokens")
    stats, base, first_base, klt, _, initial = token_fit.t7_start(context, 0.05)
    start = FitStart("klt-context-tokens", stats, base, first_base, klt, "laplace", initial,
                     "screen")

    def fit_set(name):
        hidden, ids = [context.hidden], [sid]
        for part in name.split("+")[1:]:
            key = "G48" if part.startswith("G") else part
            count = int(part[1:]) if part.startswith("G") else None
            hidden.append(states[key][:count])
            ids.append(extra[key][:count])
        return FitContext(split, torch.cat(hidden), context.fisher, context.probe), torch.cat(ids)

    def bits(codec, hidden, ids):
        return sum(codec.estimate_bits(hidden[w], input_ids=ids[w])
                   for w in range(len(ids))) / ids.numel()

    rows = []
    for name in SETS:
        ctx, ids = fit_set(name)
        for model_name, fit_model in (("klt-context-tokens", token_fit.fit_model),
                                      ("klt-context-tokens-table", token_table.fit_model)):
            if model_name == "klt-context-tokens" and name not in RIDGE_SETS:
                continue
            began = time.perf_counter()
            fitted = fit_model(start, ctx, ids)
            rate = bits(fitted.finish(fitted.at(scale)), ev_hidden, ev.input_ids)
            rows.append({"split": k, "set": name, "model": model_name, "windows": len(ids),
                         "bits_per_token_estimated": rate, "s": time.perf_counter() - began})
            print(json.dumps(rows[-1]), flush=True)
    half = statistics // 2
    ctx = FitContext(split, torch.cat([context.hidden[:half], states["G48"]]), context.fisher,
                     context.probe)
    ids = torch.cat([sid[:half], extra["G48"]])
    shrink_rows = []
    for lam in (float(x) for x in args.shrink.split(",")):
        fitted = token_fit.fit_model(start, ctx, ids, fitter=partial(
            token_table.fit_token_table_codec, shrink=lam))
        shrink_rows.append({"split": k, "shrink": lam, "held_statistics_bits": bits(
            fitted.finish(fitted.at(scale)), context.hidden[half:], sid[half:])})
        print(json.dumps(shrink_rows[-1]), flush=True)
    document = {"schema_version": 1, "generator": "benchmarks/token_table_fit_text_screen.py",
                "split": k, "scale": scale, "evaluation_windows": len(ev.input_ids),
                "rows": rows, "shrink": shrink_rows}
    Path(args.out).write_text(json.dumps(document, indent=2) + "\n")
    return document


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
