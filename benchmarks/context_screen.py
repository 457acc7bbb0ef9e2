"""Issue 20 screen: how much rate could a stronger causal context model buy?

Length (≈450 lines): one script — windows and states, today's codec at its steps, the
codec's own rate estimate with a swapped prediction, every candidate's row, the check
against real bytes, the figure — whose parts no other module uses; the predictors are
``context_predictors.py``, the real streams of ``--closed-loop`` ``context_closed_loop.py``.

Offline, no codec change. At each split, ``klt-context-tokens`` is fitted by the
project's pipeline (``codecs/fit.py``: Fisher-whitened KLT, T7's steps, the context
model, fitted on codec_bench's 22 statistics windows) and set to the step scale that
``codec_bench.py`` calibrated for the level (read from ``codec_bench.json``; no probe
pass), so every predictor below is judged at *today's steps and dead zone*. The news
training windows (codec_bench's 54 fit windows plus every further 256-token window of
the same fit documents, ``--per-document``; never an evaluation document) are split by
document into training (¾) and validation (¼) windows.

Each candidate predictor of the KLT components ``Z_t`` (``context_predictors.py``)
sees what a decoder holds: the **decoded** earlier states, here the open-loop
dead-zone reconstruction of ``Z`` at the codec's steps (:func:`decoded_states`; the
real decoder's closed loop holds a little more: prediction plus residual), and the
window's token ids. Its rate is the codec's own estimate (:func:`coded_bits`): a
``ContextCodec`` whose prediction is replaced by the candidate's, with its per-component
Laplace tables and side-latent density fitted as ``fit_context_model`` does, on the
validation windows (the predictor's out-of-sample residual), then ``Σ −log2 q`` of the
evaluation windows' symbols, side latents and position 0 — plus the token ids' bits
(the codec's id table) for predictors that read ids. The estimate is checked against
the real bytes of today's codecs on the same windows (``check``).

Usage::

    python benchmarks/context_screen.py [--splits 15,8] [--windows 32] [--level 0.05]
        [--cache DIR] [--per-document 8] [--out benchmarks/results/context_screen.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rdgap.codecs.coders import ans
from rdgap.codecs.coders.sections import grouped_columns
from rdgap.codecs.entropy_models import context_fit, token_fit
from rdgap.codecs.entropy_models.context import ContextCodec, _Analysis
from rdgap.codecs.entropy_models.model_fit import FitStart
from rdgap.codecs.fit import FitContext
from rdgap.split import SplitModel
from rdgap.validation.corpus import (DEFAULT_CORPUS, Windows, load_documents, split_documents,
                                     token_windows)
from rdgap.validation.distortion import exact_log_probs
from rdgap.validation.models import load_model

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import codec_bench  # noqa: E402  (its windows, states, cache and measurement)
import context_closed_loop  # noqa: E402
import context_predictors as cp  # noqa: E402

VARIANT = "klt-context-tokens"


def quantized_laplace_entropy(scale, rounding: float) -> np.ndarray:
    """Entropy (bits) of the dead-zone symbol of a zero-mean Laplace law of ``scale``
    steps, offset ``ρ``: ``P(0) = 1 − e^{−(1−ρ)/s}``, ``P(±k) = ½ e^{−(k−ρ)/s}(1 − e^{−1/s})``
    for ``k ≥ 1`` (closed form of the geometric tail)."""
    s = np.asarray(scale, dtype=np.float64)
    if np.any(~(s > 0)) or not 0 < rounding <= 0.5:
        raise ValueError(f"scale, rounding: expected scales > 0 and ρ in (0, 0.5], got "
                         f"{np.min(s)}, {rounding}")
    p0 = -np.expm1(-(1 - rounding) / s)
    tail = 1 - p0                                  # P(|S| ≥ 1), split over ± and k
    q = np.exp(-1 / s)                             # geometric ratio of P(|S| = k)
    # H = −p0 log p0 − tail·log(tail/2) + tail·H(geometric(1 − q)) in nats
    geometric = np.where(q > 0, -np.log1p(-q) - q / (1 - q) * np.log(np.maximum(q, 1e-300)), 0)
    nats = -p0 * np.log(np.maximum(p0, 1e-300)) \
        - np.where(tail > 0, tail * np.log(np.maximum(tail / 2, 1e-300)), 0) + tail * geometric
    return nats / np.log(2)


def rate_model(template: ContextCodec, z: np.ndarray, prediction: np.ndarray) -> ContextCodec:
    """``template``'s codec with the prediction replaced by ``prediction`` (given as
    offsets): tables and side-latent density fitted on ``z`` ``(B, T−1, C)`` as
    :func:`rdgap.codecs.entropy_models.context_fit.fit_context_model` does."""
    return context_closed_loop.closed_loop_model(template, np.zeros((0, 0)),
                                                 np.zeros(template.channels), z, prediction)


def coded_bits(model: ContextCodec, hidden: torch.Tensor, prediction: np.ndarray) -> np.ndarray:
    """The codec's estimate ``Σ −log2 q`` of each window of ``hidden`` ``(B, T, C)``
    (side latents, position 0, body) with ``prediction`` ``(B, T−1, C)`` as the mean."""
    x = hidden.double()
    loop = model.loop()
    first = loop.first_symbols(x[:, 0]).numpy()
    z = loop.to_klt(x[:, 1:]).numpy()
    result = model.analyse(z, prediction)
    bits = []
    for w in range(hidden.shape[0]):
        one = _Analysis(*(a[w:w + 1] for a in (result.symbols, result.side, result.decoded,
                                                result.residual)))
        bits.append(ans.estimate_bits(*grouped_columns(model._sections_of(first[w], one),
                                                       model.section_tables())))
    return np.array(bits)


def todays_codecs(context: FitContext, ids: torch.Tensor, scale: float, level: float):
    """``klt-context-tokens`` (and ``klt-context`` at the same steps) fitted by the
    pipeline at codec_bench's calibrated ``scale`` (no probe pass)."""
    stats, base, first_base, klt, unit, initial = token_fit.t7_start(context, level)
    start = FitStart(VARIANT, stats, base, first_base, klt, "laplace", initial, VARIANT)
    tokens = token_fit.fit_model(start, context, ids)
    plain = context_fit.fit_model(start, context)
    return {VARIANT: tokens.finish(tokens.at(scale)),
            "klt-context": plain.finish(plain.at(scale))}


def bench_scale(split: int, level: float) -> float:
    """The step scale ``codec_bench.py`` calibrated for ``klt-context-tokens`` at the level."""
    rows = json.loads((HERE / "results" / "codec_bench.json").read_text())["rows"]
    for row in rows:
        if row["split"] == split and row["codec"] == VARIANT and row["level"] == f"dce<={level:g}":
            return float(row["scale"])
    raise ValueError(f"--level: codec_bench.json has no {VARIANT} row at split {split} for "
                     f"level {level:g}; run codec_bench.py for it first")


def candidates(embedding: np.ndarray) -> dict:
    """The screened predictors by name (built lazily: some need a fitted base)."""
    f = cp.Features
    lag1 = lambda p, tokens=(): cp.Ridge(f(embedding, (1,), tokens, p))  # noqa: E731
    return {
        "none (mean only)": lambda fitted: cp.Ridge(f(embedding, (), (), 0), outputs=0),
        "a: lag-1 ridge, 128 comp. (klt-context)": lambda fitted: cp.Ridge(
            f(embedding, (1,), (), 128), outputs=128),
        "b: lag-1 ridge 256 + e(x_t) (klt-context-tokens)": lambda fitted: lag1(256, (0,)),
        "b': b unstandardized (today's fit rule)": lambda fitted: cp.Ridge(
            f(embedding, (1,), (0,), 256), standardize=False),
        "b'': b on 22 training windows (today's count)": lambda fitted: cp.Ridge(
            f(embedding, (1,), (0,), 256), windows=22),
        "c1: states 1-2, tokens 0-3 ridge": lambda fitted: cp.Ridge(
            f(embedding, (1, 2), (0, 1, 2, 3), 256)),
        "c2: states 1-3, tokens 0-7 ridge": lambda fitted: cp.Ridge(
            f(embedding, (1, 2, 3), tuple(range(8)), 256)),
        "d: MLP on [z_t-1, z_t-2, e(x_t), e(x_t-1)] over b": lambda fitted: cp.MLP(
            fitted["b: lag-1 ridge 256 + e(x_t) (klt-context-tokens)"], embedding),
        "e: causal attention over all past [z, e(x)] over b": lambda fitted: cp.Attention(
            fitted["b: lag-1 ridge 256 + e(x_t) (klt-context-tokens)"], embedding),
        "f: per-id residual table over b": lambda fitted: cp.IdTable(
            fitted["b: lag-1 ridge 256 + e(x_t) (klt-context-tokens)"]),
        "f+c1: per-id residual table over c1": lambda fitted: cp.IdTable(
            fitted["c1: states 1-2, tokens 0-3 ridge"]),
    }


def reads_ids(predictor) -> bool:
    """Whether a predictor reads token ids (its rate then includes the ids' bits)."""
    if isinstance(predictor, cp.Ridge):
        return bool(predictor.features.token_lags)
    return True


def prefix_parameters(model, split: int) -> int:
    """Parameters of the prefix: token embeddings and the first ``split`` layers."""
    body = model.model
    return int(sum(p.numel() for p in body.embed_tokens.parameters())
               + sum(p.numel() for layer in body.layers[:split] for p in layer.parameters()))


def screen_split(k, model, fit, extra, extra_hidden, fit_hidden, fisher, ev, ev_hidden,
                 exact, log_p, level, budget_s, only=(), closed=()) -> dict:
    """Every candidate's estimated rate at split ``k`` and the check against real bytes."""
    split = SplitModel(model, k)
    context = FitContext.build(split, fit.input_ids, fit_hidden, statistics_windows=22,
                               documents=fit.document, fisher=fisher)
    scale = bench_scale(k, level)
    started = time.perf_counter()
    today = todays_codecs(context, fit.input_ids[:22], scale, level)
    codec = today[VARIANT]
    fit_today_s = time.perf_counter() - started
    docs = ev.document.numpy()
    measured = {name: codec_bench.measure(c, split, ev_hidden, ev.input_ids, exact, log_p, docs)
                for name, c in today.items()}
    started = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(ev.input_ids), codec_bench.BATCH):
            split.prefix(ev.input_ids[s:s + codec_bench.BATCH])
    prefix_per_token = (time.perf_counter() - started) / ev.input_ids.numel()
    # training windows (fit + extra), split by document; states in the KLT domain
    hidden = torch.cat([fit_hidden, extra_hidden])
    ids = np.concatenate([fit.input_ids.numpy(), extra.input_ids.numpy()])
    owners = np.concatenate([fit.document.numpy(), extra.document.numpy()])
    documents = np.unique(owners)
    valid_docs = documents[-max(1, len(documents) // 4):]
    valid = np.isin(owners, valid_docs)
    to_z = lambda h: ((h.double().numpy()[:, 1:] - codec.mean) @ codec.analysis.T)  # noqa: E731
    z = to_z(hidden)
    zhat, index = cp.decoded_states(z, codec.step, codec.rounding)
    ev_z = to_z(ev_hidden)
    ev_zhat, _ = cp.decoded_states(ev_z, codec.step, codec.rounding, index)
    ev_ids = ev.input_ids.numpy()
    train = (z[~valid], zhat[~valid], ids[~valid])
    held = (z[valid], zhat[valid], ids[valid])
    tokens = ev.input_ids.numel()
    id_bits = sum(codec.id_bits(ev.input_ids[w]) for w in range(len(ev_ids))) / tokens
    embedding = codec.embedding
    rows, fitted = [], {}
    loops = {}
    for name, build in candidates(embedding).items():
        if only and not any(name.startswith(prefix) for prefix in only):
            continue
        predictor = build(fitted)
        started = time.perf_counter()
        torch.manual_seed(0)
        if isinstance(predictor, cp._Network):
            predictor.fit(train, held, codec.step, codec.rounding, budget_s=budget_s)
        else:
            predictor.fit(train, held, codec.step, codec.rounding)
        train_s = time.perf_counter() - started
        fitted[name] = predictor
        rows.append(_row(name, predictor, codec, hidden[valid], held, ev_hidden, ev_zhat,
                         ev_ids, id_bits, tokens, prefix_per_token, train_s, k, model))
        print(f"split {k}  {name:<52} {rows[-1]['bits_per_token_estimated']:8.1f} b/token"
              f"  {rows[-1]['parameters']:>9,} params  x{rows[-1]['cpu_ratio_to_prefix']:.3f} "
              f"prefix", flush=True)
        if any(name.startswith(prefix) for prefix in closed):
            loops[name] = context_closed_loop.measure(predictor, codec, held, split, ev_hidden,
                                                      ev_ids, exact, log_p, docs)
            print(f"split {k}  {name:<52} closed loop, real bytes: "
                  f"{loops[name]['bits_per_token_actual']:8.1f} b/token, ΔCE "
                  f"{loops[name]['delta_ce_nats']:.4f} ± {loops[name]['delta_ce_nats_stderr']:.4f}",
                  flush=True)
    # the screen's estimate against today's codec's real bytes on the same windows
    todays = cp.Ridge(cp.Features(embedding, (1,), (0,), codec.predicted))
    todays.weights = np.concatenate([codec.predictor, codec.token_weights[:codec.predicted]], 1)
    todays.bias = codec.bias
    rest = codec.token_weights[codec.predicted:]
    m = todays.predict(ev_zhat, ev_ids)
    m[..., codec.predicted:] += cp.Features(embedding, (), (0,))(ev_zhat, ev_ids) @ rest.T
    hm = todays.predict(held[1], held[2])
    hm[..., codec.predicted:] += cp.Features(embedding, (), (0,))(held[1], held[2]) @ rest.T
    screened = rate_model(codec, held[0], hm)
    estimate = coded_bits(screened, ev_hidden, m).sum() / tokens + id_bits
    real = measured[VARIANT]
    check = {"codec": VARIANT, "scale": scale, "real_bits_per_token": real["bits_per_token_actual"],
             "codec_estimate_bits_per_token": real["bits_per_token_estimated"],
             "screen_estimate_bits_per_token": float(estimate),
             "screen_estimate_error_percent": float(
                 100 * (estimate / real["bits_per_token_actual"] - 1)),
             "what": "today's fitted W, V applied to open-loop decoded states, tables refitted "
                     "on the validation windows, vs the real closed-loop stream"}
    return {"split": k, "level": level, "scale": scale, "rows": rows, "check": check,
            "closed_loop": loops,
            "todays_codecs": {n: {key: r[key] for key in (
                "bits_per_token_actual", "bits_per_token_estimated", "delta_ce_nats",
                "delta_ce_nats_stderr", "encode_s", "decode_s")} for n, r in measured.items()},
            "id_bits_per_token": id_bits, "prefix_s_per_token": prefix_per_token,
            "prefix_parameters": prefix_parameters(model, k),
            "training_windows": int((~valid).sum()), "validation_windows": int(valid.sum()),
            "training_tokens": int((~valid).sum() * (z.shape[1])),
            "fit_today_s": fit_today_s}


def _row(name, predictor, codec, valid_hidden, held, ev_hidden, ev_zhat, ev_ids, id_bits,
         tokens, prefix_per_token, train_s, k, model) -> dict:
    model_ = rate_model(codec, held[0], predictor.predict(held[1], held[2]))
    prediction = predictor.predict(ev_zhat, ev_ids)
    bits = coded_bits(model_, ev_hidden, prediction)
    ids = reads_ids(predictor)
    estimate = bits.sum() / tokens + (id_bits if ids else 0.0)
    z = (ev_hidden.double().numpy()[:, 1:] - codec.mean) @ codec.analysis.T
    scale = np.maximum(np.abs(z - prediction).reshape(-1, z.shape[-1]).mean(0) / codec.step,
                       1e-6)
    seconds = cp.sequential_seconds(predictor, ev_zhat[:1], ev_ids[:1])
    started = time.perf_counter()
    predictor.predict(ev_zhat[:1], ev_ids[:1])
    batched = (time.perf_counter() - started) / ev_zhat.shape[1]
    per_window = bits / ev_hidden.shape[1] + (id_bits if ids else 0.0)
    return {"predictor": name, "reads_token_ids": ids,
            "bits_per_token_estimated": float(estimate),
            "bits_per_token_stderr": float(per_window.std(ddof=1) / np.sqrt(len(per_window))),
            "per_window_bits_per_token": per_window.tolist(),
            "oracle_laplace_entropy_bits_per_token": float(
                cp_entropy(scale, codec.rounding) * (z.shape[1] / ev_hidden.shape[1])),
            "parameters": int(predictor.parameters),
            "parameters_fraction_of_prefix": predictor.parameters / prefix_parameters(model, k),
            "train_s": train_s, "cpu_s_per_token_sequential": seconds,
            "cpu_ratio_to_prefix": seconds / prefix_per_token,
            "cpu_s_per_token_whole_window": batched,
            "cpu_ratio_to_prefix_whole_window": batched / prefix_per_token,
            "epochs": getattr(predictor, "epochs", None),
            "ridge": getattr(predictor, "ridge", None), "lambda": getattr(predictor, "lam", None)}


def cp_entropy(scale, rounding) -> float:
    """Σ over components of the quantized-Laplace entropy (bits per coded token)."""
    return float(quantized_laplace_entropy(scale, rounding).sum())


def extra_windows(documents, fit, tokenizer, per_document: int):
    """Further 256-token windows of the fit documents (not among ``fit``'s)."""
    fit_indices, _ = split_documents(len(documents), seed=0)
    more = token_windows(documents, fit_indices, tokenizer, codec_bench.WINDOW_LENGTH,
                         per_document=per_document)
    known = {tuple(row) for row in fit.input_ids.tolist()}
    keep = [i for i, row in enumerate(more.input_ids.tolist()) if tuple(row) not in known]
    return Windows(more.input_ids[keep], more.document[keep], more.skipped_documents)


def plot(result: dict, path: Path) -> None:
    """Bar chart: estimated bits/token of each predictor at each split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = result["splits"]
    fig, axes = plt.subplots(1, len(splits), figsize=(7 * len(splits), 6.2), squeeze=False)
    for ax, entry in zip(axes[0], splits):
        names = [r["predictor"] for r in entry["rows"]]
        values = [r["bits_per_token_estimated"] for r in entry["rows"]]
        errors = [2 * r["bits_per_token_stderr"] for r in entry["rows"]]
        colours = ["tab:grey" if n.startswith("none") else "tab:blue" if n[0] in "ab"
                   else "tab:orange" for n in names]
        ax.barh(range(len(names)), values, xerr=errors, color=colours)
        ax.set_yticks(range(len(names)), [n[:48] for n in names], fontsize=8)
        ax.invert_yaxis()
        real = entry["check"]["real_bits_per_token"]
        ax.axvline(real, color="tab:red", ls="--", lw=1,
                   label=f"today's klt-context-tokens, real bytes ({real:.0f})")
        for n, (name, loop) in enumerate(entry.get("closed_loop", {}).items()):
            ax.plot(loop["bits_per_token_actual"], names.index(name), "kx", ms=9, mew=2,
                    label=None if n else "closed loop, real bytes")
        ax.set_xlim(0.8 * min(values), 1.02 * max(values))
        ax.set_xlabel("estimated bits / token (held-out news windows, ± 2 s.e.)")
        ax.set_title(f"split {entry['split']}, steps of ΔCE ≤ {entry['level']:g}", fontsize=10)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=1)
    fig.suptitle("SmolLM2-135M: causal context predictors screened at today's steps")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def merge_closed_loop(source: Path, out: Path) -> dict:
    """``out`` with the closed-loop rows of ``source`` added to its splits (same windows)."""
    result, other = json.loads(out.read_text()), json.loads(source.read_text())
    if other["evaluation_documents"] != result["evaluation_documents"]:
        raise ValueError(f"--merge-from: {source} was measured on other evaluation windows")
    by_split = {entry["split"]: entry for entry in result["splits"]}
    for entry in other["splits"]:
        if entry["split"] in by_split:
            target = by_split[entry["split"]]
            target.setdefault("closed_loop", {}).update(entry["closed_loop"])
            have = {row["predictor"] for row in target["rows"]}
            target["rows"] += [row | {"from": source.name} for row in entry["rows"]
                               if row["predictor"] not in have]
            target["closed_loop_check"] = entry["check"]
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out.with_suffix(".png"))
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--splits", default="15,8")
    parser.add_argument("--windows", type=int, default=32, help="evaluation windows")
    parser.add_argument("--level", type=float, default=0.05)
    parser.add_argument("--per-document", type=int, default=8,
                        help="256-token windows per fit document for training the predictors")
    parser.add_argument("--budget-s", type=float, default=600.0,
                        help="training time limit of each network (seconds)")
    parser.add_argument("--cache", default=None, help="codec_bench.py's --cache folder")
    parser.add_argument("--predictors", default="",
                        help="screen only the predictors whose names start with these "
                             "comma-separated prefixes (default: all; 'b:' is needed by d-f)")
    parser.add_argument("--closed-loop", default="",
                        help="also code these predictors (name prefixes, lag-1 linear ones: "
                             "a, b, f) as real closed-loop streams (context_closed_loop.py)")
    parser.add_argument("--out", default=str(HERE / "results" / "context_screen.json"))
    parser.add_argument("--merge-from", default=None, metavar="FILE",
                        help="measure nothing: copy the closed-loop rows of FILE (a run with "
                             "--closed-loop) into --out, by split, and redraw the figure")
    args = parser.parse_args(argv)
    if args.merge_from:
        return merge_closed_loop(Path(args.merge_from), Path(args.out))
    if args.windows < 2 or args.per_document < 1 or not args.level > 0:
        parser.error("--windows ≥ 2, --per-document ≥ 1 and --level > 0 expected")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    started = time.perf_counter()
    splits = [int(s) for s in args.splits.split(",") if s]
    loaded = load_model("smollm2-135m")
    model = loaded.model
    documents = load_documents(DEFAULT_CORPUS)
    fit_indices, evaluation = split_documents(len(documents), seed=0)
    fit = token_windows(documents, fit_indices, loaded.tokenizer, codec_bench.WINDOW_LENGTH,
                        max_windows=codec_bench.STATISTICS_WINDOWS + codec_bench.PROBE_WINDOWS)
    ev = token_windows(documents, evaluation, loaded.tokenizer, codec_bench.WINDOW_LENGTH,
                       max_windows=args.windows)
    if set(ev.document.tolist()) & set(fit_indices):
        raise RuntimeError("an evaluation window comes from a fit document")
    cache = Path(args.cache) if args.cache else None
    tag = (f"{loaded.name}-{codec_bench.STATISTICS_WINDOWS}+{codec_bench.PROBE_WINDOWS}"
           f"x{codec_bench.WINDOW_LENGTH}")
    fit_hidden, fishers = codec_bench._fit_states(model, fit, splits, cache, tag)
    extra = extra_windows(documents, fit, loaded.tokenizer, args.per_document)
    with torch.no_grad():
        extra_hidden = codec_bench._states(model, extra.input_ids, splits)[1]
        exact, ev_hidden = codec_bench._states(model, ev.input_ids, splits)
    log_p = exact_log_probs(exact)
    out = Path(args.out)
    result = {"schema_version": 1, "generator": "rdgap benchmarks/context_screen.py",
              "model": loaded.name, "corpus": DEFAULT_CORPUS, "level": args.level,
              "evaluation_windows": len(ev.input_ids),
              "evaluation_documents": sorted(set(ev.document.tolist())),
              "window_length": codec_bench.WINDOW_LENGTH,
              "fit_windows": len(fit.input_ids), "extra_fit_windows": len(extra),
              "decoded_states": "open loop: dead-zone symbols of Z at the codec's steps, "
                                "centroid reconstruction (fit windows' table index)",
              "splits": []}
    for k in splits:
        if fishers[k] is None:
            split = SplitModel(model, k)
            context = FitContext.build(split, fit.input_ids, fit_hidden[k],
                                       statistics_windows=codec_bench.STATISTICS_WINDOWS,
                                       documents=fit.document)
            fishers[k] = context.fisher
            codec_bench._save_fit_state(cache, tag, k, fit_hidden[k], context.fisher)
        result["splits"].append(screen_split(k, model, fit, extra, extra_hidden[k], fit_hidden[k],
                                             fishers[k], ev, ev_hidden[k], exact, log_p,
                                             args.level, args.budget_s,
                                             [p for p in args.predictors.split(",") if p],
                                             [p for p in args.closed_loop.split(",") if p]))
        result["seconds"] = time.perf_counter() - started
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out.with_suffix(".png"))
    return result


if __name__ == "__main__":
    main()
