"""Issue 19: does fitting the KLT also on text the model writes keep the level on other text?

Fits on the news fit windows exactly as ``benchmarks/robust_fisher.py`` does (22
statistics + 32 probe windows of 256 tokens of ``lee_background``'s fit documents, the
step scale calibrated on the probe windows by :func:`rdgap.codecs.fit.fit_codec`), with
``--generated`` extra statistics windows that SmolLM2 writes itself: the first
``--prompt-tokens`` tokens of a statistics window and a continuation sampled at
temperature 1 (:mod:`rdgap.codecs.transforms.generated_fit`, seeded). Their states join
the statistics from which the transform's mean, covariance and component scales are
estimated. Arms (``--arms``):

``generated``
    generated states in the covariance, the news Fisher as it is;
``generated+shrink``
    the same with the Fisher shrunk toward its diagonal (``λ = 1``);
``generated-fisher``
    generated states in the covariance and in the Fisher (the news Fisher pooled with
    one estimated on ``--generated-fisher-windows`` generated windows, by windows).

Today's fit (news only, ``λ = 0``) and the news-only ``λ = 1`` fit are the rows of
``robust_fisher.json`` (same windows, same fit, same evaluation), marked with their
source. Every fitted codec is evaluated on the news evaluation documents and on each
other text (real streams: bits/token, ΔCE ± s.e. over documents, windows over the
level, T7 with the news Fisher) by ``robust_fisher.evaluate``. Only news and the
model enter the fit; the other texts are evaluation only.

Usage::

    python benchmarks/robust_generated.py [--split 15] [--level 0.05] [--windows 16]
        [--codecs klt-laplace,klt-context] [--arms generated,generated+shrink]
        [--generated 16] [--prompt-tokens 32] [--seed 0] [--cache DIR] [--out FILE]
        [--prepare-only] [--merge A.json,B.json] [--tiny]

``--cache`` is ``domain_shift.py``'s cache folder (states of every text, the fit
Fisher); the generated windows and their states are cached there too. ``--merge``
combines the JSONs of runs split over processes (e.g. one per codec) into ``--out``.
The committed result and what it shows: ``docs/domain-shift.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rdgap.codecs.fit import FitContext, fit_codec
from rdgap.codecs.transforms.fisher import fisher_diagonal, shrink_toward_diagonal
from rdgap.codecs.transforms.generated_fit import (pooled_fisher, sample_continuations,
                                                  split_states, with_generated)

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "robust_generated.json"
ARMS = ("generated", "generated+shrink", "generated-fisher")
#: Arms of ``robust_fisher.json`` shown beside these (news only), by their ``λ``.
NEWS_ONLY = {0.0: "news only (today)", 1.0: "news only, λ=1"}
#: ``--predict-only``'s diagnosis: the transform fitted on the evaluated text's own windows.
CHUNK = 8  # generated windows sampled together (and cached together)
ORACLE = "oracle: the text's own windows"


def _robust_fisher():
    """``benchmarks/robust_fisher.py`` as a module (its evaluation, baseline rows, and
    through it ``domain_shift.py``'s texts and cache)."""
    spec = importlib.util.spec_from_file_location("robust_fisher_for_robust_generated",
                                                  HERE / "robust_fisher.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def news_only_rows(path: Path, split: int, level: float, codecs: list[str]) -> list[dict]:
    """The news-only rows of ``robust_fisher.json`` as arms of this benchmark."""
    if not path.is_file():
        return []
    document = json.loads(path.read_text())
    if document.get("split") != split or document.get("level") != level:
        return []
    rows = []
    for row in document["rows"]:
        arm = NEWS_ONLY.get(float(row["shrinkage"]))
        if arm is not None and row["codec"] in codecs:
            rows.append({"arm": arm, **{k: v for k, v in row.items()
                                        if k != "news_rate_cost_bits"},
                         "source": row.get("source", path.name)})
    return rows


def generated_states(run, args) -> tuple[torch.Tensor, str]:
    """States at the split of the generated windows and the cache key. Window ``i``
    continues the prompt of statistics window ``i mod W``; windows are sampled
    :data:`CHUNK` at a time (the chunk from window ``s``: seed ``100003·seed + s``); the ids
    are cached after every chunk (by count, prompt length, seed, top-p), so a stopped run
    resumes; then the states (only the prefix runs: the windows are fit statistics and
    need no CE)."""
    k, count, cache = args.split, args.statistics_windows, run.cache
    key = f"gen{args.generated}-p{args.prompt_tokens}-seed{args.seed}" + (
        f"-top{args.top_p:g}" if args.top_p else "")
    ids_path = cache / f"{run.tag}-{key}-ids.pt" if cache else None
    states_path = cache / f"{run.tag}-{key}-states-split{k}.pt" if cache else None
    if states_path is not None and states_path.is_file():
        return torch.load(states_path, weights_only=True), key
    chunks = []  # 8 windows a chunk, each its own seed, saved as done: a stopped run resumes
    if ids_path is not None and ids_path.is_file():
        chunks = list(torch.load(ids_path, weights_only=True).split(CHUNK))
    rows = torch.arange(args.generated) % count
    for start in range(len(chunks) * CHUNK, args.generated, CHUNK):
        began = time.perf_counter()
        prompts = run.fit.input_ids[rows[start:start + CHUNK], :args.prompt_tokens]
        chunks.append(sample_continuations(
            run.model, prompts, run.fit.input_ids.shape[1] - args.prompt_tokens,
            seed=args.seed * 100_003 + start, top_p=args.top_p, batch_size=CHUNK))
        print(f"generated windows {start}..{start + len(prompts) - 1} in "
              f"{time.perf_counter() - began:.0f} s", flush=True)
        if ids_path is not None:
            cache.mkdir(parents=True, exist_ok=True)
            torch.save(torch.cat(chunks), ids_path)
    ids = torch.cat(chunks)
    states = split_states(run.split, ids)
    if states_path is not None:
        torch.save(states, states_path)
    return states, key


def arm_fisher(arm: str, estimated, split, generated: torch.Tensor, args, cache, tag, key, k):
    """The Fisher an arm fits with (news as estimated, shrunk, or pooled with generated)."""
    if arm == "generated":
        return estimated, "news fit windows"
    if arm == "generated+shrink":
        return shrink_toward_diagonal(estimated, 1.0), "news fit windows, shrunk λ=1"
    count = args.generated_fisher_windows
    path = cache / f"{tag}-{key}-fisher{count}-split{k}.pt" if cache else None
    if path is not None and path.is_file():
        extra = torch.load(path, weights_only=False)
    else:
        start = time.perf_counter()
        extra = fisher_diagonal(split, generated[:count], full=True, seed=1)
        print(f"generated-window Fisher ({count} windows) in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        if path is not None:
            torch.save(extra, path)
    pooled = pooled_fisher([(estimated, args.statistics_windows), (extra, count)])
    return pooled, f"news fit windows pooled with {count} generated windows"


def rate_costs(rows: list[dict]) -> None:
    """Each row's news bits/token minus today's (news only, λ = 0), per codec."""
    today = {r["codec"]: r["bits_per_token"] for r in rows
             if r["text"] == "news" and r["arm"] == NEWS_ONLY[0.0]}
    news = {(r["codec"], r["arm"]): r["bits_per_token"] for r in rows if r["text"] == "news"}
    for r in rows:
        base, mine = today.get(r["codec"]), news.get((r["codec"], r["arm"]))
        r["news_rate_cost_bits"] = None if base is None or mine is None else mine - base


def plot(rows: list[dict], level: float, path: Path) -> None:
    """ΔCE ± 2 s.e. per arm and text, one panel per codec, news bits/token in the labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    codecs = list(dict.fromkeys(r["codec"] for r in rows))
    texts = list(dict.fromkeys(r["text"] for r in rows))
    fig, axes = plt.subplots(1, len(codecs), figsize=(7 * len(codecs), 5.2), squeeze=False)
    for axis, codec in zip(axes[0], codecs):
        arms = list(dict.fromkeys([*NEWS_ONLY.values(), *(r["arm"] for r in rows)]))
        arms = [a for a in arms if any(r["arm"] == a and r["codec"] == codec for r in rows)]
        width = 0.8 / len(texts)
        for i, text in enumerate(texts):
            part = {r["arm"]: r for r in rows if r["codec"] == codec and r["text"] == text}
            x = [a + (i - (len(texts) - 1) / 2) * width for a in range(len(arms))]
            y = [part[a]["delta_ce_nats"] if a in part else np.nan for a in arms]
            e = [2 * (part[a]["delta_ce_nats_stderr"] or 0) if a in part else 0 for a in arms]
            axis.bar(x, y, width, yerr=e, capsize=2, label=text)
        news = {r["arm"]: r["bits_per_token"] for r in rows
                if r["codec"] == codec and r["text"] == "news"}
        axis.set_xticks(range(len(arms)))
        axis.set_xticklabels([f"{a}\n{news.get(a, float('nan')):.0f} b/tok news"
                              for a in arms], fontsize=7, rotation=30, ha="right")
        axis.axhline(level, color="k", ls=":", lw=1, label=f"level {level:g}")
        axis.set_title(codec)
        axis.set_ylabel("ΔCE (nats/token) ± 2 s.e.")
        axis.legend(fontsize=7)
    fig.suptitle("Fitted on news (+ text SmolLM2 writes from news prompts); "
                 "evaluated on news and on text the fit never saw", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def merge(paths: list[Path], out: Path) -> dict:
    """One document from the JSONs of several runs (rows and fits concatenated, the
    news-only rows once; an arm run with another number of generated windows than the
    first run's is named with its number)."""
    documents = [json.loads(p.read_text()) for p in paths]
    merged = dict(documents[0])
    first = merged["fit"].get("generated_windows")
    rows, seen = [], set()
    for document in documents:
        count = document["fit"].get("generated_windows")
        for row in document["rows"]:
            if row["arm"] not in NEWS_ONLY.values():
                row["generated_windows"] = count
                if count != first:  # runs with another number of generated windows
                    row["arm"] = f"{row['arm']} ({count} windows)"
            key = (row["arm"], row["codec"], row["text"])
            if key not in seen:
                seen.add(key)
                rows.append(row)
    rate_costs(rows)
    merged["rows"] = rows
    merged["fits"] = [f for d in documents for f in d["fits"]]
    merged["seconds"] = sum(d["seconds"] for d in documents)
    merged["merged_from"] = [p.name for p in paths]
    out.write_text(json.dumps(merged, indent=1) + "\n")
    plot(rows, merged["level"], out.with_suffix(".png"))
    return merged


def predict(rf, run, args, news: torch.Tensor, generated: torch.Tensor, arms: list[str],
            started: float) -> dict:
    """``--predict-only``: ``robust_fisher.predict`` (``klt-laplace`` scaled so that T7 with
    the news Fisher meets the level on the news evaluation windows; per text T7 with the
    text's own Fisher, an oracle for diagnosis, and estimated bits) for the news-only fits
    (``λ`` = 0, 1) and each arm's statistics; no ΔCE measured."""
    k, own = args.split, dict(run.own)
    for name, text in run.texts.items():  # the oracle Fisher of each text (diagnosis only)
        if name not in own:
            own[name] = run.estimated if name == "news" else fisher_diagonal(
                run.split, text.hidden[k][:8], full=True)
    both = torch.cat([news, generated.to(news.dtype)])
    fits = [(NEWS_ONLY[0.0], news, 0.0), (NEWS_ONLY[1.0], news, 1.0)]
    fits += [(arm, both, 1.0 if arm == "generated+shrink" else 0.0) for arm in arms
             if arm != "generated-fisher"]  # its Fisher costs minutes per window
    rows = [{"arm": arm} | row for arm, hidden, weight in fits
            for row in rf.predict(run.ds, hidden, run.texts, run.estimated, own, weight,
                                  args.level, k)]
    for name, text in run.texts.items():  # the oracle of domain-shift.md item 6, screened
        if name != "news":
            pair = {"news": run.texts["news"], name: text}
            rows += [{"arm": ORACLE} | row for row in rf.predict(
                run.ds, text.hidden[k], pair, run.estimated, own, 0.0, args.level, k)
                if row["text"] == name]
    document = run.document("rdgap benchmarks/robust_generated.py --predict-only", args, [],
                            rows, started, generated_windows=args.generated,
                            prompt_tokens=args.prompt_tokens,
                            sampling={"temperature": 1.0, "top_p": args.top_p,
                                      "seed": args.seed})
    document["what"] = ("predictions: T7 with each text's own Fisher (news: the fit's), "
                        "klt-laplace scaled so T7 with the news Fisher meets the level on "
                        "news; no ΔCE measured")
    out = Path(args.out)
    out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {out}")
    return document


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", type=int, default=15)
    parser.add_argument("--level", type=float, default=0.05)
    parser.add_argument("--windows", type=int, default=16, help="evaluation windows per text")
    parser.add_argument("--texts", default="newsgroups,wikipedia")
    parser.add_argument("--codecs", default="klt-laplace,klt-context")
    parser.add_argument("--arms", default="generated,generated+shrink",
                        help=f"comma-separated, of {ARMS}")
    parser.add_argument("--generated", type=int, default=16, help="generated windows")
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--generated-fisher-windows", type=int, default=8)
    parser.add_argument("--statistics-windows", type=int, default=22)
    parser.add_argument("--probe-windows", type=int, default=32)
    parser.add_argument("--cache", default=None, help="domain_shift.py's cache folder")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--baseline-from", default=str(HERE / "results" / "robust_fisher.json"),
                        help="robust_fisher.py's result: the news-only arms ('' for none)")
    parser.add_argument("--tiny", action="store_true", help="tiny random model (smoke test)")
    parser.add_argument("--prepare-only", action="store_true",
                        help="generate and cache the windows and their states, fit nothing")
    parser.add_argument("--predict-only", action="store_true",
                        help="T7 screening with each text's own Fisher (no ΔCE measured)")
    parser.add_argument("--merge", default="", help="JSONs of earlier runs to merge into --out")
    args = parser.parse_args(argv)
    arms = [a for a in args.arms.split(",") if a]
    if not arms or any(a not in ARMS for a in arms):
        parser.error(f"--arms: expected some of {ARMS}, got {args.arms!r}")
    if args.generated < 1:
        parser.error(f"--generated: expected ≥ 1 windows, got {args.generated}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        parser.error(f"--top-p: expected a probability in (0, 1], got {args.top_p}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge:
        return merge([Path(p) for p in args.merge.split(",") if p], out)
    codecs = [c for c in args.codecs.split(",") if c]
    rf = _robust_fisher()
    started = time.perf_counter()
    run = rf.setup(args)
    ds, split, fit, k, estimated = run.ds, run.split, run.fit, args.split, run.estimated
    generated, key = generated_states(run, args)
    if args.prepare_only:
        print(f"prepared {key}: {tuple(generated.shape)} states in "
              f"{time.perf_counter() - started:.0f} s")
        return {}
    count = args.statistics_windows
    hidden = fit.hidden[k]
    if args.predict_only:
        return predict(rf, run, args, hidden[:count], generated, arms, started)
    probe = run.probe()
    rows = news_only_rows(Path(args.baseline_from), k, args.level, codecs) \
        if args.baseline_from and not args.tiny else []
    fits, document = [], {}
    for arm in arms:
        fisher, fisher_source = arm_fisher(arm, estimated, split, generated, args, run.cache,
                                           run.tag, key, k)
        context = with_generated(FitContext(split, hidden[:count], fisher, probe), generated)
        for codec_name in codecs:
            start = time.perf_counter()
            fitted = fit_codec(codec_name, context, args.level, method="fit")
            fits.append({"arm": arm, "codec": codec_name, "fisher": fisher_source,
                         "scale": fitted.calibration.scale,
                         "fit_delta_ce_nats": fitted.calibration.delta_ce,
                         "fit_delta_ce_nats_stderr": fitted.calibration.stderr,
                         "t7_predicted_nats": fitted.predicted_delta_ce,
                         "fit_s": time.perf_counter() - start})
            for text in run.texts.values():
                row = rf.evaluate(ds, split, fitted.codec, text, estimated, args.level,
                                  real=not args.tiny)
                rows.append({"arm": arm, "codec": codec_name,
                             "shrinkage": 1.0 if arm == "generated+shrink" else 0.0} | row)
                print(rf.describe(f"{arm:<17}", codec_name, row), flush=True)
            rate_costs(rows)
            document = run.document(
                "rdgap benchmarks/robust_generated.py", args, fits, rows, started,
                generated_windows=args.generated, prompt_tokens=args.prompt_tokens,
                sampling={"temperature": 1.0, "top_p": args.top_p, "seed": args.seed})
            out.write_text(json.dumps(document, indent=1) + "\n")
    plot(rows, args.level, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')} in {document['seconds']:.0f} s")
    return document


if __name__ == "__main__":
    main()
