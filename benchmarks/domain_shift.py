"""Why a level calibrated on news does not hold on other text: the mechanism, measured.

Length (≈610 lines): one benchmark script — setup, every ablation, the factor split and
the figure — run as one command; its measurements are in docs/domain-shift.md.

Issue 19: codecs fitted and calibrated on news (gensim's ``lee_background``) at ΔCE
0.05 keep the level on news but not on other text (``klt-context`` at split 15: 0.054
on news, 0.120 on encyclopedic text), while ``gaussian-fisher`` keeps it. This
script measures, for one fit on the news fit windows (as ``codec_bench.py`` fits:
statistics and Fisher from the first ``--statistics-windows``, the ΔCE probe that
calibrates the step scale from the next ``--probe-windows``), on the news evaluation
documents and on each other text (every window one document, none of it seen by
the fit):

1. ``klt-laplace``, ``klt-context``, ``gaussian-fisher``: bits/token (real streams),
   ΔCE ± s.e. over documents, and THEORY.md T7's per-window prediction
   ``½ mean_t e_tᵀ F e_t`` of the codec's own error with the news Fisher and with a
   Fisher re-estimated on the text's own windows (an oracle: it separates "the error
   grew" from "the sensitivity changed");
2. the error in the news Fisher-whitened KLT domain ``e_Z = A e`` (positions ≥ 1):
   per component ``E[e_j²]`` against ``Δ²/12``, the fraction of symbols in the zero
   cell, and which components (ranked by news variance) carry the excess. With the
   news Fisher, ``Σ_j E[e_j²] = E[eᵀ F e]`` (``A`` whitens ``F``), so the per-component
   energies decompose T7's prediction exactly (ridge ``KLT_RIDGE`` aside);
3. ablations that change one part at a time: dead zone off (``ρ = ½``), context
   prediction off, KLT basis (and Fisher) refitted on the text, the step scale
   calibrated on the text itself (oracle), and the hidden-state RMS of each text.

Length (≈610 lines): one script (texts, fit, measure, decompose, ablate, plot) whose
parts are not used elsewhere; the core arithmetic (:func:`whitened_errors`,
:func:`t7_per_window`, :func:`excess_by_rank`) is tested in
``tests/test_domain_shift_bench.py``.

Usage::

    python benchmarks/domain_shift.py [--splits 15] [--level 0.05] [--windows 32]
        [--texts newsgroups,wikipedia] [--fisher-windows 16] [--no-news-fisher]
        [--ablations deadzone,prediction,neither,basis,basis-fisher] [--no-oracle]
        [--scales-from benchmarks/results/codec_bench.json] [--cache DIR] [--out FILE]
        [--tiny]

The committed result and what it shows: ``docs/domain-shift.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from rdgap.codecs.entropy_models.factorized import ChannelStatistics, FactorizedCodec
from rdgap.codecs.fit import KLT_RIDGE, FitContext
from rdgap.codecs.quantizers.calibrate import calibrate_scale
from rdgap.codecs.recipes import RECIPES
from rdgap.split import SplitModel
from rdgap.codecs.transforms.fisher import FisherDiagonal, fisher_diagonal
from rdgap.codecs.transforms.klt import fisher_klt
from rdgap.validation.distortion import document_estimate, next_token_cross_entropy

HERE = Path(__file__).resolve().parent
CODECS = ("klt-laplace", "klt-context", "gaussian-fisher")
#: ``--ablations``: dead zone off, context prediction off, both, KLT basis (and Fisher)
#: refitted on the text.
ABLATIONS = ("deadzone", "prediction", "neither", "basis", "basis-fisher")
WINDOW_LENGTH = 256
STATISTICS_WINDOWS, PROBE_WINDOWS = 22, 32  # as codec_bench.py
BATCH = 4


@dataclass
class Text:
    """Windows of one text at every split: ids, documents, states, exact CE."""

    name: str
    input_ids: torch.Tensor            # (W, T)
    documents: np.ndarray              # (W,)
    hidden: dict[int, torch.Tensor]    # split → (W, T, C)
    exact_ce: torch.Tensor             # (W, T − 1) nats
    source: str = ""


# -- the core arithmetic (tested on a tiny model) ------------------------------------------
def whitened_errors(hidden: torch.Tensor, recon: torch.Tensor, analysis: np.ndarray) -> np.ndarray:
    """Errors of positions ≥ 1 in the whitened KLT domain, ``e_Z = A (Y − Ŷ)``, ``(W, T−1, C)``."""
    error = (hidden[:, 1:].double() - recon[:, 1:].double()).numpy()
    return error @ np.asarray(analysis).T


def t7_per_window(hidden: torch.Tensor, recon: torch.Tensor, fisher: FisherDiagonal) -> np.ndarray:
    """THEORY.md T7's per-window prediction ``½ Σ_t e_tᵀ F e_t / T`` (nats/token), ``(W,)``:
    the full Fisher of positions ≥ 1 (its diagonal when no matrix was estimated) and the
    diagonal of position 0. A prediction, never a bound."""
    error = hidden.double() - recon.double()
    rest = error[:, 1:].numpy()
    if fisher.matrix is not None:
        quadratic = ((rest @ fisher.matrix) * rest).sum((1, 2))
    else:
        quadratic = np.einsum("wtc,c->w", rest ** 2, fisher.rest)
    first = (error[:, 0].numpy() ** 2 * fisher.first).sum(-1)
    return 0.5 * (quadratic + first) / hidden.shape[1]


def excess_by_rank(news_energy: np.ndarray, other_energy: np.ndarray,
                   news_variance: np.ndarray, cell: float, bands: int = 8) -> dict:
    """Where the extra error energy of the other text sits, components ranked by news
    variance (largest first): its share in each of ``bands`` equal rank bands, and in the
    components whose news variance is below ``cell`` (= ``Δ²/12``: they sit in the zero
    cell on news). Shares are of the total excess ``Σ_j (other_j − news_j)`` and sum to 1
    over the bands (they may be negative where a band's error fell)."""
    order = np.argsort(-np.asarray(news_variance))
    excess = (np.asarray(other_energy) - np.asarray(news_energy))[order]
    total = float(excess.sum())
    parts = np.array_split(np.arange(excess.size), bands)
    quiet = np.asarray(news_variance)[order] < cell
    news_sorted, other_sorted = np.asarray(news_energy)[order], np.asarray(other_energy)[order]
    return {"total_excess": total,
            "band_share": [float(excess[p].sum() / total) if total else None for p in parts],
            "band_ranks": [[int(p[0]), int(p[-1])] for p in parts],
            "quiet_components": int(quiet.sum()),
            "quiet_share": float(excess[quiet].sum() / total) if total else None,
            "energy": {"news_quiet": float(news_sorted[quiet].sum()),
                       "other_quiet": float(other_sorted[quiet].sum()),
                       "news_active": float(news_sorted[~quiet].sum()),
                       "other_active": float(other_sorted[~quiet].sum())}}


def factors(news: dict, other: dict) -> dict:
    """``ΔCE_other / ΔCE_news`` as the product of three ratios (rows of one codec):
    the error grew (T7 with the news Fisher), the sensitivity changed (T7 with each
    text's own Fisher over T7 with the news Fisher), and what T7 misses (measured over
    T7 with the text's own Fisher)."""
    def ratio(row, top, bottom):
        return row[top] / row[bottom]

    return {"measured": other["delta_ce_nats"] / news["delta_ce_nats"],
           "error_growth": other["t7_news_fisher_nats"] / news["t7_news_fisher_nats"],
           "sensitivity": ratio(other, "t7_text_fisher_nats", "t7_news_fisher_nats")
           / ratio(news, "t7_text_fisher_nats", "t7_news_fisher_nats"),
           "beyond_t7": ratio(other, "delta_ce_nats", "t7_text_fisher_nats")
           / ratio(news, "delta_ce_nats", "t7_text_fisher_nats")}


def window_delta_ce(split: SplitModel, text: Text, recon: torch.Tensor) -> np.ndarray:
    """``(W,)`` ΔCE (nats/token) of each window when its state is replaced by ``recon``."""
    values = []
    with torch.no_grad():
        for start in range(0, recon.shape[0], BATCH):
            logits = split.suffix(recon[start:start + BATCH])
            ce = next_token_cross_entropy(logits, text.input_ids[start:start + BATCH])
            values.append((ce - text.exact_ce[start:start + BATCH]).mean(1))
    return torch.cat(values).numpy()


def reconstruct(codec, hidden: torch.Tensor) -> torch.Tensor:
    return torch.stack([codec.reconstruct(window) for window in hidden])


def zero_fraction(codec, hidden: torch.Tensor) -> np.ndarray | None:
    """Per component, the fraction of symbols of positions ≥ 1 that are 0 (KLT codecs)."""
    if getattr(codec, "analysis", None) is None:
        return None
    if hasattr(codec, "analyse"):  # the context codec: its causal loop's symbols
        z = (hidden[:, 1:].double().numpy() - codec.mean) @ codec.analysis.T
        symbols = codec.analyse(z).symbols
    else:
        symbols = np.stack([codec.quantize(window)[1:] for window in hidden])
    return (symbols == 0).reshape(-1, symbols.shape[-1]).mean(0)


# -- texts ----------------------------------------------------------------------------------
def capture(model, input_ids: torch.Tensor, splits: list[int]):
    """States at every split and the exact next-token CE, logits never kept."""
    from rdgap.split import logits_and_hidden

    hidden, ce = {k: [] for k in splits}, []
    for start in range(0, len(input_ids), BATCH):
        ids = input_ids[start:start + BATCH]
        logits, states = logits_and_hidden(model, ids, None, splits)
        ce.append(next_token_cross_entropy(logits, ids))
        for k in splits:
            hidden[k].append(states[k])
    return {k: torch.cat(v) for k, v in hidden.items()}, torch.cat(ce)


def cached_text(model, name: str, ids: torch.Tensor, documents, splits, cache: Path | None,
                tag: str, source: str) -> Text:
    path = cache / f"{tag}-{name}-{len(ids)}x{ids.shape[1]}-s{'_'.join(map(str, splits))}.pt" \
        if cache else None
    if path is not None and path.is_file():
        saved = torch.load(path, weights_only=True)
        if torch.equal(saved["ids"], ids):
            return Text(name, ids, np.asarray(documents), saved["hidden"], saved["ce"], source)
    hidden, ce = capture(model, ids, splits)
    if path is not None:
        cache.mkdir(parents=True, exist_ok=True)
        torch.save({"ids": ids, "hidden": hidden, "ce": ce}, path)
    return Text(name, ids, np.asarray(documents), hidden, ce, source)


def real_setup(names: list[str], windows: int, statistics: int, probe: int):
    """SmolLM2-135M, the news fit windows, and the evaluation windows of every text."""
    from rdgap.validation.corpus import (DEFAULT_CORPUS, NAMED_CORPORA, load_documents,
                                         split_documents, token_windows)
    from rdgap.validation.models import load_model

    loaded = load_model("smollm2-135m")
    documents = load_documents(DEFAULT_CORPUS)
    fit_docs, eval_docs = split_documents(len(documents), seed=0)
    fit = token_windows(documents, fit_docs, loaded.tokenizer, WINDOW_LENGTH,
                        max_windows=statistics + probe)
    texts = {"news": (token_windows(documents, eval_docs, loaded.tokenizer, WINDOW_LENGTH,
                                    max_windows=windows), NAMED_CORPORA[DEFAULT_CORPUS]
                      + ", evaluation documents")}
    missing = {}
    for name in names:
        if name not in NAMED_CORPORA:
            missing[name] = f"not a named corpus of this rdgap ({sorted(NAMED_CORPORA)})"
            continue
        docs = load_documents(name)
        first, second = split_documents(len(docs), seed=0)  # evaluation documents first
        texts[name] = (token_windows(docs, second + first, loaded.tokenizer, WINDOW_LENGTH,
                                     max_windows=windows), NAMED_CORPORA[name])
    return loaded.model, loaded.name, fit, texts, missing


def tiny_setup(windows: int, statistics: int, probe: int):
    """A tiny random Llama; "news" ids uniform over the vocabulary, the "other" text drawn
    from a skewed law over part of it (a shift the tiny model's states feel)."""
    from rdgap.validation.models import tiny_llama

    model = tiny_llama(num_layers=5, hidden_size=64, vocab_size=128, seed=0)
    g = torch.Generator().manual_seed(0)
    news = lambda n: torch.randint(3, 128, (n, 64), generator=g)  # noqa: E731
    weights = torch.linspace(1.0, 8.0, 60) ** 2
    other = torch.multinomial(weights, windows * 64, replacement=True, generator=g) + 3
    win = lambda ids: SimpleNamespace(input_ids=ids, document=torch.arange(len(ids)))  # noqa: E731
    texts = {"news": (win(news(windows)), "uniform ids"),
             "other": (win(other.reshape(windows, 64)), "skewed ids 3..62")}
    return model, "tiny-llama", win(news(statistics + probe)), texts, {}


# -- one split ------------------------------------------------------------------------------
def _estimate(values: np.ndarray, documents: np.ndarray) -> tuple[float, float | None]:
    e = document_estimate(values, documents)
    return e.mean, e.stderr


def _bits(codec, hidden: torch.Tensor, real: bool) -> float:
    tokens = hidden.shape[0] * hidden.shape[1]
    if real:  # real streams
        return 8.0 * sum(len(codec.encode(window)) for window in hidden) / tokens
    return sum(codec.estimate_bits(window) for window in hidden) / tokens


def _row(split, text, recon, fisher_news, fisher_text, **extra) -> dict:
    dce = window_delta_ce(split, text, recon)
    hidden = text.hidden[split.split]
    news_t7 = t7_per_window(hidden, recon, fisher_news)
    text_t7 = t7_per_window(hidden, recon, fisher_text)
    mean, stderr = _estimate(dce, text.documents)
    return {"text": text.name, "delta_ce_nats": mean, "delta_ce_nats_stderr": stderr,
            "t7_news_fisher_nats": float(news_t7.mean()),
            "t7_text_fisher_nats": float(text_t7.mean()),
            "measured_over_t7_news": float(dce.mean() / news_t7.mean()),
            "windows_over_level": None, "per_window_corr_t7_news":
                float(np.corrcoef(dce, news_t7)[0, 1]) if len(dce) > 2 else None,
            "per_window_delta_ce": dce.round(5).tolist(),
            "per_window_t7_news": news_t7.round(5).tolist(), **extra}


def _variants(fitted: dict, text: Text, k: int, fisher_news: FisherDiagonal,
              fisher_text: FisherDiagonal, ablations: tuple[str, ...] = ABLATIONS):
    """(name, codec, what it changes) of every ablation named in ``ablations`` on ``text``."""
    laplace, context = fitted["klt-laplace"].codec, fitted["klt-context"].codec
    arguments = context._constructor_arguments()
    no_prediction = {"predictor": np.zeros_like(context.predictor),
                     "bias": np.zeros_like(context.bias)}
    out = []
    if "deadzone" in ablations:
        out.append(("klt-context, no dead zone (rho=1/2)",
                    type(context)(**arguments | {"rounding": 0.5}), "quantizer"))
    if "prediction" in ablations:
        out.append(("klt-context, no context prediction",
                    type(context)(**arguments | no_prediction), "prediction"))
    if "neither" in ablations:
        out.append(("klt-context, neither", type(context)(
            **arguments | no_prediction | {"rounding": 0.5}), "quantizer+prediction"))
    hidden = text.hidden[k]
    rest = hidden[:, 1:].reshape(-1, hidden.shape[-1]).double().numpy()
    covariance = np.cov(rest, rowvar=False)
    for label, fisher in (("basis", fisher_news), ("basis and Fisher", fisher_text)):
        if label.replace(" and ", "-").lower() not in ablations:
            continue
        klt = fisher_klt(covariance, fisher.matrix, ridge=KLT_RIDGE)
        stats = ChannelStatistics.fit(hidden, "laplace", analysis=klt.analysis)
        stats.first_mean, stats.first_scale = laplace.stats.first_mean, laplace.stats.first_scale
        out.append((f"klt-laplace, {label} refitted on the text (oracle)",
                    FactorizedCodec(stats, laplace.step, laplace.first_step, "laplace",
                                    analysis=klt.analysis, synthesis=klt.synthesis), "transform"))
    return out


def fit_at_scale(name: str, context: FitContext, level: float, scale: float | None):
    """``name`` fitted as :func:`rdgap.codecs.fit.fit_codec` fits it, at step ``scale``
    without calibrating (``None``: T7's predicted scale for ``level``); a calibration
    recorded elsewhere on the same fit windows (``--scales-from``) gives the same codec
    without its probe passes. Returns the codec and the scale."""
    from rdgap.codecs.entropy_models.context_fit import fit_context_codec, refit_side_density
    from rdgap.codecs.fit import base_steps, unit_delta_ce

    stats, base, first_base, klt, family = base_steps(name, context)
    initial = float(np.sqrt(level / unit_delta_ce(name, context.fisher, base, first_base)))
    scale = initial if scale is None else scale
    if name == "klt-context":  # fitted at T7's scale, then rescaled (as fit_codec does)
        reference = fit_context_codec(context.hidden, stats.mean, klt.analysis, klt.synthesis,
                                      initial * base, stats.first_mean, stats.first_scale,
                                      initial * first_base, label=name)
        return refit_side_density(reference.rescaled(scale / initial), context.hidden), scale
    return FactorizedCodec(stats, scale * base, scale * first_base, family, label=name,
                           analysis=None if klt is None else klt.analysis,
                           synthesis=None if klt is None else klt.synthesis), scale


def recorded_scales(path: Path, split: int, level: float, statistics: int, fit_windows: int):
    """Calibrated scales of ``codec_bench.py`` rows fitted on the same windows."""
    rows = json.loads(path.read_text())["rows"]
    return {r["codec"]: r["scale"] for r in rows
            if r["split"] == split and r["level"] == f"dce<={level:g}" and r.get("scale")
            and r["statistics_windows"] == statistics and r["fit_windows"] == fit_windows
            and r.get("method") == "fit" and not r.get("margin")}


def oracle_scale(split, text, codec, level: float, measured: float) -> tuple[float, object]:
    """The step factor that meets ``level`` on the text's own windows (in-sample: an oracle
    of what a per-text step scale could do), and the rescaled codec; the search starts at
    T7's ``√(level / measured)`` from the ΔCE ``measured`` at factor 1."""
    def make(factor):
        if hasattr(codec, "rescaled"):
            return codec.rescaled(factor)
        return FactorizedCodec(codec.stats, factor * codec.step, factor * codec.first_step,
                               codec.family, analysis=codec.analysis, synthesis=codec.synthesis)

    hidden = text.hidden[split.split]
    measure = lambda f: _estimate(window_delta_ce(split, text, reconstruct(make(f), hidden)),  # noqa: E731
                                  text.documents)
    initial = float(np.sqrt(level / measured)) if measured > 0 else 1.0
    calibration = calibrate_scale(measure, level, initial, evaluations=4, ratio=1.03,
                                  method="fit")
    return calibration.scale, make(calibration.scale)


def run_split(model, k: int, fit, texts: dict[str, Text], level: float, statistics: int,
              real: bool, cache: Path | None, tag: str, oracle: bool = True,
              fisher_windows: int = 16, scales_from: Path | None = None,
              ablations: tuple[str, ...] = ABLATIONS, news_fisher: bool = True) -> dict:
    split = SplitModel(model, k)
    timings = {}
    start = time.perf_counter()
    fisher_path = cache / f"{tag}-fisher{fisher_windows}-split{k}.pt" if cache else None
    fishers = torch.load(fisher_path, weights_only=False) if fisher_path and \
        fisher_path.is_file() else {}
    fit_hidden = fit.hidden[k]
    recorded = {} if scales_from is None else recorded_scales(
        scales_from, k, level, statistics, len(fit.input_ids))
    if scales_from is None:
        context = FitContext.build(split, fit.input_ids, fit_hidden,
                                   statistics_windows=statistics,
                                   documents=torch.as_tensor(fit.documents),
                                   fisher=fishers.get("fit"))
    else:  # no calibration: no probe
        fisher = fishers.get("fit") or fisher_diagonal(split, fit_hidden[:statistics], full=True)
        context = FitContext(split, fit_hidden[:statistics], fisher, probe=None)
    fishers["fit"] = context.fisher
    if not news_fisher:  # the news text's sensitivity is the fit's (other news windows)
        fishers.setdefault("news", context.fisher)
    for name, text in texts.items():  # the oracle Fisher of every text, on its own windows
        if name not in fishers:
            fishers[name] = fisher_diagonal(split, text.hidden[k][:fisher_windows], full=True)
    if fisher_path:
        torch.save(fishers, fisher_path)
    timings["fisher_s"] = time.perf_counter() - start
    fitted, how = {}, {}
    for name in CODECS:
        start = time.perf_counter()
        if scales_from is None:
            # the recipe's own codec (cap=None): the mechanism reads its transform and steps
            fitted[name] = RECIPES[name].fit(context, fit.input_ids[:statistics], level, "fit",
                                             cap=None)
            how[name] = {"scale": fitted[name].calibration.scale, "how": "calibrated here",
                         "fit_delta_ce_nats": fitted[name].calibration.delta_ce,
                         "fit_delta_ce_nats_stderr": fitted[name].calibration.stderr,
                         "t7_predicted_nats": fitted[name].predicted_delta_ce}
        else:
            codec, scale = fit_at_scale(name, context, level, recorded.get(name))
            fitted[name] = SimpleNamespace(codec=codec)
            how[name] = {"scale": scale, "how": f"calibrated scale of {scales_from.name}"
                         if name in recorded else "T7's predicted scale, not calibrated"}
        timings[f"fit {name}"] = time.perf_counter() - start
    laplace = fitted["klt-laplace"].codec
    analysis, step = laplace.analysis, float(laplace.step[0])
    cell = step ** 2 / 12
    result = {"split": k, "step_whitened": step, "cell_variance": cell, "rows": [],
              "ablations": [], "texts": {}, "components": {}, "timings_s": timings,
              "fit": how}
    news_variance = None
    for name, text in texts.items():
        start = time.perf_counter()
        hidden = text.hidden[k]
        z = (hidden[:, 1:].double().numpy() - laplace.stats.mean) @ analysis.T
        variance = (z ** 2).reshape(-1, z.shape[-1]).mean(0)
        news_variance = variance if name == "news" else news_variance
        synthesis = laplace.synthesis  # diag of A^-T F_text A^-1 (1 for the news fit's F)
        sensitivity = ((fishers[name].matrix @ synthesis) * synthesis).sum(0)
        result["texts"][name] = {
            "source": text.source, "windows": int(hidden.shape[0]),
            "documents": int(len(set(text.documents.tolist()))),
            "rms_hidden": float(hidden[:, 1:].double().pow(2).mean().sqrt()),
            "exact_ce_nats": float(text.exact_ce.double().mean()),
            "fisher_trace_over_news_fit": float(np.trace(fishers[name].matrix)
                                                / np.trace(context.fisher.matrix)),
            "whitened_sensitivity_mean": float(sensitivity.mean()),
            "components_above_cell": int((variance > cell).sum())}
        comp = {"second_moment": variance.tolist(), "sensitivity": sensitivity.tolist(),
                "energy": {}, "zero_fraction": {}}
        for codec_name, f in fitted.items():
            recon = reconstruct(f.codec, hidden)
            row = _row(split, text, recon, context.fisher, fishers[name], codec=codec_name,
                       bits_per_token=_bits(f.codec, hidden, real), bits_kind="actual stream"
                       if real else "estimated")
            row["windows_over_level"] = int(sum(d > level for d in row["per_window_delta_ce"]))
            energy = (whitened_errors(hidden, recon, analysis) ** 2).reshape(-1, z.shape[-1])
            comp["energy"][codec_name] = energy.mean(0).tolist()
            zeros = zero_fraction(f.codec, hidden)
            if zeros is not None:
                comp["zero_fraction"][codec_name] = zeros.tolist()
                row["zero_cell_fraction"] = float(zeros.mean())
            result["rows"].append(row)
        for label, codec, part in _variants(fitted, text, k, context.fisher, fishers[name],
                                            ablations):
            row = _row(split, text, reconstruct(codec, hidden), context.fisher, fishers[name],
                       ablation=label, moves=part, bits_per_token=_bits(codec, hidden, False),
                       bits_kind="estimated")
            result["ablations"].append(row)
        if oracle:
            for codec_name in ("klt-laplace", "klt-context"):
                measured = next(r["delta_ce_nats"] for r in result["rows"]
                                if r["text"] == name and r["codec"] == codec_name)
                factor, codec = oracle_scale(split, text, fitted[codec_name].codec, level,
                                             measured)
                row = _row(split, text, reconstruct(codec, hidden), context.fisher,
                           fishers[name], ablation=f"{codec_name}, step scale calibrated on "
                           f"the text (oracle)", moves="steps", step_factor=factor,
                           bits_per_token=_bits(codec, hidden, False), bits_kind="estimated")
                result["ablations"].append(row)
        result["components"][name] = comp
        timings[f"text {name}"] = time.perf_counter() - start
        print(f"split {k} {name}: " + ", ".join(
            f"{r['codec']} {r['bits_per_token']:.0f} b · ΔCE {r['delta_ce_nats']:.4f}"
            for r in result["rows"] if r["text"] == name), flush=True)
    result["excess"], result["factors"] = {}, {}
    for name in texts:
        if name == "news":
            continue
        for codec_name in CODECS:
            result["excess"][f"{name}:{codec_name}"] = excess_by_rank(
                result["components"]["news"]["energy"][codec_name],
                result["components"][name]["energy"][codec_name], news_variance, cell)
            rows = {r["text"]: r for r in result["rows"] if r["codec"] == codec_name}
            result["factors"][f"{name}:{codec_name}"] = factors(rows["news"], rows[name])
    return result


# -- output ---------------------------------------------------------------------------------
def plot(results: list[dict], path: Path) -> None:
    """Error energy per whitened component (ranked by news variance) on each text, for
    ``klt-laplace`` and ``klt-context`` at the first split, with ``Δ²/12`` and the
    news and other-text second moments of the components."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = results[0]
    comps = result["components"]
    order = np.argsort(-np.asarray(comps["news"]["second_moment"]))
    ranks = np.arange(order.size)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    colours = dict(zip(comps, ("tab:blue", "tab:red", "tab:green", "tab:purple")))
    for ax, codec in zip(axes, ("klt-laplace", "klt-context")):
        for name, comp in comps.items():
            row = next(r for r in result["rows"] if r["text"] == name and r["codec"] == codec)
            ax.plot(ranks, np.asarray(comp["energy"][codec])[order], ".", ms=2.5,
                    color=colours[name], label=f"{name}: E[e_j²] (ΔCE {row['delta_ce_nats']:.3f})")
            ax.plot(ranks, np.asarray(comp["second_moment"])[order], "-", lw=0.6, alpha=0.6,
                    color=colours[name], label=f"{name}: E[z_j²]")
        ax.axhline(result["cell_variance"], color="k", ls=":", lw=1, label="Δ²/12")
        ax.set_yscale("log")
        ax.set_xlabel("whitened KLT component, ranked by news variance")
        ax.set_title(f"{codec}, split {result['split']}, news-fitted")
        ax.legend(fontsize=7, loc="lower left")
    axes[0].set_ylabel("per-token energy (Fisher-whitened units)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarise(results: list[dict], level: float) -> None:
    for result in results:
        k = result["split"]
        print(f"\nsplit {k}: step Δ = {result['step_whitened']:.4g} (whitened), "
              f"Δ²/12 = {result['cell_variance']:.4g}")
        for name, facts in result["texts"].items():
            print(f"  {name:>11}: {facts['windows']} windows, RMS {facts['rms_hidden']:.2f}, "
                  f"CE {facts['exact_ce_nats']:.3f}, tr F / tr F_news-fit "
                  f"{facts['fisher_trace_over_news_fit']:.2f}, whitened sensitivity "
                  f"{facts['whitened_sensitivity_mean']:.2f}, components above Δ²/12 "
                  f"{facts['components_above_cell']}")
        print(f"  {'text':>11} {'codec / ablation':<58} {'bits':>6} {'ΔCE':>7} {'±se':>6} "
              f"{'T7 news F':>9} {'T7 text F':>9} {'>lvl':>4}")
        for row in result["rows"] + result["ablations"]:
            name = row.get("codec") or row["ablation"]
            print(f"  {row['text']:>11} {name:<58} {row['bits_per_token']:>6.0f} "
                  f"{row['delta_ce_nats']:>7.4f} {row['delta_ce_nats_stderr'] or 0:>6.4f} "
                  f"{row['t7_news_fisher_nats']:>9.4f} {row['t7_text_fisher_nats']:>9.4f} "
                  f"{row['windows_over_level'] if row['windows_over_level'] is not None else '':>4}")
        for key, value in result["excess"].items():
            print(f"  excess {key}: {value['quiet_components']} components below Δ²/12 on news "
                  f"carry {value['quiet_share']:.0%} of it; by rank band "
                  + " ".join(f"{s:+.0%}" for s in value["band_share"]))
        for key, value in result["factors"].items():
            print(f"  ΔCE ratio {key}: {value['measured']:.2f} = error growth "
                  f"{value['error_growth']:.2f} × sensitivity {value['sensitivity']:.2f} × "
                  f"beyond T7 {value['beyond_t7']:.2f}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--splits", default="15")
    parser.add_argument("--level", type=float, default=0.05)
    parser.add_argument("--windows", type=int, default=32, help="evaluation windows per text")
    parser.add_argument("--texts", default="newsgroups,wikipedia",
                        help="other named corpora (skipped, and said so, when absent)")
    parser.add_argument("--statistics-windows", type=int, default=STATISTICS_WINDOWS)
    parser.add_argument("--probe-windows", type=int, default=PROBE_WINDOWS)
    parser.add_argument("--fisher-windows", type=int, default=16,
                        help="windows of each text its own (oracle) Fisher is estimated on")
    parser.add_argument("--scales-from", default=None,
                        help="a codec_bench.py JSON: take the step scales its calibration chose "
                             "on the same fit windows (no probe passes; a codec without a "
                             "row gets T7's scale, uncalibrated, and says so)")
    parser.add_argument("--ablations", default=",".join(ABLATIONS),
                        help=f"subset of {','.join(ABLATIONS)}")
    parser.add_argument("--no-news-fisher", action="store_true",
                        help="take the fit's Fisher as the news text's own")
    parser.add_argument("--no-oracle", action="store_true",
                        help="skip the step-scale calibration on each text (4 probe passes)")
    parser.add_argument("--cache", default=None, help="folder keeping states and Fishers")
    parser.add_argument("--out", default=str(HERE / "results" / "domain_shift.json"))
    parser.add_argument("--tiny", action="store_true",
                        help="a tiny random model and synthetic texts (a smoke test)")
    args = parser.parse_args(argv)
    for name in ("windows", "statistics_windows", "probe_windows", "fisher_windows"):
        if getattr(args, name) < 2:
            parser.error(f"--{name.replace('_', '-')}: expected ≥ 2, got {getattr(args, name)}")
    if not args.level > 0:
        parser.error(f"--level: expected a ΔCE level > 0 nats/token, got {args.level}")
    splits = [int(k) for k in args.splits.split(",")]
    ablations = tuple(a for a in args.ablations.split(",") if a)
    if set(ablations) - set(ABLATIONS):
        parser.error(f"--ablations: expected names from {ABLATIONS}, got {ablations}")
    started = time.perf_counter()
    torch.manual_seed(0)
    setup = tiny_setup if args.tiny else real_setup
    names = [] if args.tiny else [n for n in args.texts.split(",") if n]
    model, model_name, fit_windows, windows, missing = (
        setup(args.windows, args.statistics_windows, args.probe_windows) if args.tiny else
        setup(names, args.windows, args.statistics_windows, args.probe_windows))
    cache = Path(args.cache) if args.cache else None
    tag = f"{model_name}-{args.statistics_windows}+{args.probe_windows}"
    fit = cached_text(model, "fit", fit_windows.input_ids, fit_windows.document.numpy(), splits,
                      cache, tag, "news fit documents")
    texts = {name: cached_text(model, name, w.input_ids, w.document.numpy(), splits, cache, tag,
                               source) for name, (w, source) in windows.items()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = []
    for k in splits:  # the file is rewritten after every split
        results.append(run_split(model, k, fit, texts, args.level, args.statistics_windows,
                                 real=not args.tiny, cache=cache, tag=tag,
                                 oracle=not args.no_oracle,
                                 fisher_windows=args.fisher_windows,
                                 scales_from=Path(args.scales_from) if args.scales_from
                                 else None, ablations=ablations,
                                 news_fisher=not args.no_news_fisher))
        document = {"schema_version": 1, "generator": "rdgap benchmarks/domain_shift.py",
                    "model": model_name, "level": args.level, "splits": splits,
                    "fit": {"corpus": "lee_background fit documents",
                            "statistics_windows": args.statistics_windows,
                            "probe_windows": args.probe_windows,
                            "window_length": int(fit.input_ids.shape[1])},
                    "fisher_windows": args.fisher_windows,
                    "texts_missing": missing, "seconds": time.perf_counter() - started,
                    "results": results}
        out.write_text(json.dumps(document, indent=1) + "\n")
        plot(results, out.with_suffix(".png"))
    summarise(results, args.level)
    print(f"\nwrote {out} and {out.with_suffix('.png')} in {document['seconds']:.0f} s")
    return document


if __name__ == "__main__":
    main()
