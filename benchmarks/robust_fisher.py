"""Issue 19: does a Fisher shrunk toward its diagonal keep the level on text the fit never saw?

Fits on the news fit windows exactly as ``benchmarks/domain_shift.py`` does (22
statistics + 32 probe windows of 256 tokens of ``lee_background``'s fit documents;
the step scale calibrated on the probe windows by :func:`rdgap.codecs.fit.fit_codec`)
with the Fisher matrix shrunk toward its diagonal by each ``λ`` of ``--shrinkage``
(:func:`rdgap.codecs.transforms.fisher.shrink_toward_diagonal`; ``λ = 0`` is today's
fit), then evaluates every fitted codec on the news evaluation documents and on each
other text (``newsgroups``, ``wikipedia``; none of it enters fitting or calibration):
bits/token of real streams, ΔCE ± s.e. over documents, windows over the level, and
THEORY.md T7's prediction with the estimated (unshrunk) news Fisher. Nothing but news
enters the fit: ``λ`` is a fixed robustness choice, chosen on these measurements.

``--predict-only`` measures no ΔCE: for ``klt-laplace`` with the step set so that
T7 with the news Fisher meets the level on the news evaluation windows, it reports T7
with each text's *own* Fisher (the oracle of ``domain_shift.py``, estimated on the
text's windows, for diagnosis only; never used to fit) and the estimated bits: a
screening prediction (T7 with the text's Fisher tracked ``klt-laplace``'s measured
ΔCE within ×1.01–1.20 in ``domain_shift.json``), no probe or suffix pass.

Usage::

    python benchmarks/robust_fisher.py [--split 15] [--level 0.05] [--windows 16]
        [--texts newsgroups,wikipedia] [--shrinkage 0,0.5,1]
        [--codecs klt-laplace,klt-context] [--cache DIR] [--out FILE] [--tiny]
        [--predict-only]

``--cache`` shares ``domain_shift.py``'s cache (states of every text, the fit Fisher).
The committed result and what it shows: ``docs/domain-shift.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rdgap.codecs.fit import FitContext, fit_codec
from rdgap.codecs.quantizers.calibrate import DistortionProbe
from rdgap.split import SplitModel
from rdgap.codecs.transforms.fisher import fisher_diagonal, shrink_toward_diagonal

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "robust_fisher.json"


def _domain_shift():
    """``benchmarks/domain_shift.py`` as a module (its texts, cache and ΔCE helpers)."""
    spec = importlib.util.spec_from_file_location("domain_shift_for_robust_fisher",
                                                  HERE / "domain_shift.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


@dataclass
class Setup:
    """What a run fits and evaluates with: ``domain_shift.py`` as ``ds``, the model split,
    the news fit windows (``fit``), the evaluation texts (news first), and the estimated
    news Fisher of the statistics windows (``own``: the per-text Fishers of the cache)."""

    ds: object
    model: object
    name: str
    split: SplitModel
    fit: object
    texts: dict
    missing: dict
    cache: Path | None
    tag: str
    estimated: object
    own: dict
    fisher_source: str
    statistics_windows: int

    def document(self, generator: str, args, fits: list, rows: list, started: float,
                 **fit) -> dict:
        """The result JSON of a run: ``fit`` adds to its description of the fit."""
        return {"schema_version": 1, "generator": generator, "model": self.name,
                "split": self.split.split, "level": args.level,
                "fit": {"corpus": "lee_background fit documents",
                        "statistics_windows": self.statistics_windows,
                        "probe_windows": args.probe_windows, **fit,
                        "fisher": self.fisher_source},
                "texts_missing": self.missing, "fits": fits, "rows": rows,
                "seconds": time.perf_counter() - started}

    def probe(self) -> DistortionProbe:
        """The calibration probe: the fit windows after the statistics windows."""
        count, k = self.statistics_windows, self.split.split
        return DistortionProbe(self.split, self.fit.input_ids[count:],
                               self.fit.hidden[k][count:],
                               documents=torch.as_tensor(self.fit.documents[count:]))


def setup(args, ds=None) -> Setup:
    """Model, texts and news Fisher of ``args`` (``--split``, ``--tiny``, ``--texts``,
    ``--windows``, ``--statistics-windows``, ``--probe-windows``, ``--cache``); states and
    Fishers come from ``domain_shift.py``'s cache where it has them."""
    ds = ds or _domain_shift()
    torch.manual_seed(0)
    k = args.split
    if args.tiny:
        model, name, fit_w, windows, missing = ds.tiny_setup(
            args.windows, args.statistics_windows, args.probe_windows)
    else:
        model, name, fit_w, windows, missing = ds.real_setup(
            [n for n in args.texts.split(",") if n], args.windows, args.statistics_windows,
            args.probe_windows)
    cache = Path(args.cache) if args.cache else None
    tag = f"{name}-{args.statistics_windows}+{args.probe_windows}"
    fit = ds.cached_text(model, "fit", fit_w.input_ids, fit_w.document.numpy(), [k], cache,
                         tag, "news fit documents")
    texts = {n: ds.cached_text(model, n, w.input_ids, w.document.numpy(), [k], cache, tag, s)
             for n, (w, s) in windows.items()}
    split = SplitModel(model, k)
    saved, own = None, {}
    for path in ((cache / f"{tag}-fisher8-split{k}.pt", cache / f"{tag}-fisher16-split{k}.pt")
                 if cache else ()):
        if path.is_file():
            own = torch.load(path, weights_only=False)
            saved = own.get("fit")
            break
    estimated = saved or fisher_diagonal(split, fit.hidden[k][:args.statistics_windows],
                                         full=True)
    return Setup(ds, model, name, split, fit, texts, missing, cache, tag, estimated, own,
                 "from the cache of domain_shift.py" if saved else "estimated here",
                 args.statistics_windows)


def evaluate(ds, split: SplitModel, codec, text, estimated, level: float, real: bool) -> dict:
    """Bits/token, ΔCE ± s.e. over documents, windows over ``level`` and T7 (estimated
    news Fisher) of ``codec`` on ``text``."""
    hidden = text.hidden[split.split]
    recon = ds.reconstruct(codec, hidden)
    dce = ds.window_delta_ce(split, text, recon)
    mean, stderr = ds._estimate(dce, text.documents)
    return {"text": text.name, "bits_per_token": ds._bits(codec, hidden, real),
            "bits_kind": "actual stream" if real else "estimated",
            "delta_ce_nats": mean, "delta_ce_nats_stderr": stderr,
            "windows": int(len(dce)), "windows_over_level": int(np.sum(dce > level)),
            "held": bool(mean <= level + 2 * (stderr or 0.0)),
            "t7_estimated_fisher_nats": float(ds.t7_per_window(hidden, recon, estimated).mean()),
            "per_window_delta_ce": dce.round(5).tolist()}


def describe(arm: str, codec: str, row: dict) -> str:
    """One printed line of an evaluated row."""
    return (f"{arm} {codec:<12} {row['text']:<11} {row['bits_per_token']:7.1f} b  ΔCE "
            f"{row['delta_ce_nats']:.4f} ± {row['delta_ce_nats_stderr'] or 0:.4f}  >lvl "
            f"{row['windows_over_level']}/{row['windows']}")


def predict(ds, fit_hidden: torch.Tensor, texts: dict, estimated, own: dict, weight: float,
            level: float, k: int) -> list[dict]:
    """``--predict-only``: ``klt-laplace`` fitted from the Fisher shrunk by ``weight``, its
    one whitened step scaled so that T7 with the estimated news Fisher meets ``level`` on
    the news evaluation windows; per text the estimated bits/token and T7 with the
    estimated news Fisher and with the text's own Fisher ``own[text]`` (predictions)."""
    from rdgap.codecs.entropy_models.factorized import FactorizedCodec
    from rdgap.codecs.fit import base_steps

    fisher = shrink_toward_diagonal(estimated, weight) if weight else estimated
    stats, base, first_base, klt, family = base_steps(
        "klt-laplace", FitContext(None, fit_hidden, fisher, None))

    def codec(scale):
        return FactorizedCodec(stats, scale * base, scale * first_base, family,
                               analysis=klt.analysis, synthesis=klt.synthesis)

    news = texts["news"].hidden[k]
    scale = 0.05
    for _ in range(3):  # T7 is quadratic in the scale where no component sits in the zero cell
        t7 = ds.t7_per_window(news, ds.reconstruct(codec(scale), news), estimated).mean()
        scale *= float(np.sqrt(level / t7))
    fitted, rows = codec(scale), []
    for text in texts.values():
        hidden = text.hidden[k]
        recon = ds.reconstruct(fitted, hidden)
        rows.append({"codec": "klt-laplace", "shrinkage": weight, "text": text.name,
                     "scale": scale, "bits_per_token": ds._bits(fitted, hidden, False),
                     "bits_kind": "estimated",
                     "t7_estimated_fisher_nats": float(
                         ds.t7_per_window(hidden, recon, estimated).mean()),
                     "t7_text_fisher_nats": float(
                         ds.t7_per_window(hidden, recon, own[text.name]).mean())})
        print(f"λ={weight:g} predicted {text.name:<11} {rows[-1]['bits_per_token']:7.1f} b  "
              f"T7 news F {rows[-1]['t7_estimated_fisher_nats']:.4f}  T7 own F "
              f"{rows[-1]['t7_text_fisher_nats']:.4f}", flush=True)
    return rows


def baseline_rows(path: Path, split: int, level: float, codecs: list[str]) -> list[dict]:
    """λ = 0 rows of ``domain_shift.py``'s result (same windows, same fit, the step scale
    that ``codec_bench.py``'s calibration chose on the same probe windows), marked with
    their source, for a run that did not fit λ = 0 itself."""
    document = json.loads(path.read_text())
    if document.get("level") != level:
        return []
    rows = []
    for result in document["results"]:
        if result["split"] != split:
            continue
        for row in result["rows"]:
            if row["codec"] in codecs:
                rows.append({"codec": row["codec"], "shrinkage": 0.0, "text": row["text"],
                             "bits_per_token": row["bits_per_token"],
                             "bits_kind": row.get("bits_kind", "actual stream"),
                             "delta_ce_nats": row["delta_ce_nats"],
                             "delta_ce_nats_stderr": row["delta_ce_nats_stderr"],
                             "windows": len(row["per_window_delta_ce"]),
                             "windows_over_level": row["windows_over_level"],
                             "held": bool(row["delta_ce_nats"] <= level + 2 * (
                                 row["delta_ce_nats_stderr"] or 0.0)),
                             "t7_estimated_fisher_nats": row["t7_news_fisher_nats"],
                             "source": f"{path.name} (λ = 0 not refitted here)"})
    return rows


def plot(rows: list[dict], level: float, path: Path) -> None:
    """ΔCE ± 2 s.e. against ``λ`` per text and codec, and news bits/token against ``λ``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"klt-laplace": "-o", "klt-context": "--s"}
    for codec in sorted({r["codec"] for r in rows}):
        for text in dict.fromkeys(r["text"] for r in rows):
            part = sorted((r for r in rows if r["codec"] == codec and r["text"] == text),
                          key=lambda r: r["shrinkage"])
            lam = [r["shrinkage"] for r in part]
            left.errorbar(lam, [r["delta_ce_nats"] for r in part],
                          yerr=[2 * (r["delta_ce_nats_stderr"] or 0) for r in part],
                          fmt=styles.get(codec, "-x"), ms=4, capsize=2,
                          label=f"{codec}, {text}")
            if text == "news":
                right.plot(lam, [r["bits_per_token"] for r in part], styles.get(codec, "-x"),
                           label=codec)
    left.axhline(level, color="k", ls=":", lw=1, label=f"level {level:g}")
    left.set_xlabel("shrinkage λ of the Fisher toward its diagonal")
    left.set_ylabel("ΔCE (nats/token) ± 2 s.e.")
    left.legend(fontsize=7)
    right.set_xlabel("shrinkage λ")
    right.set_ylabel("bits/token on news (real streams)")
    right.legend(fontsize=7)
    fig.suptitle("Fitted on news only; evaluated on news and on text the fit never saw")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", type=int, default=15)
    parser.add_argument("--level", type=float, default=0.05)
    parser.add_argument("--windows", type=int, default=16, help="evaluation windows per text")
    parser.add_argument("--texts", default="newsgroups,wikipedia")
    parser.add_argument("--shrinkage", default="0,0.5,1", help="weights λ in [0, 1]")
    parser.add_argument("--codecs", default="klt-laplace,klt-context")
    parser.add_argument("--statistics-windows", type=int, default=22)
    parser.add_argument("--probe-windows", type=int, default=32)
    parser.add_argument("--cache", default=None, help="domain_shift.py's cache folder")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--tiny", action="store_true", help="tiny random model (smoke test)")
    parser.add_argument("--baseline-from", default=str(HERE / "results" / "domain_shift.json"),
                        help="λ = 0 rows taken from domain_shift.py's result when λ = 0 is "
                             "not in --shrinkage ('' for none)")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw --out's figure from its JSON")
    parser.add_argument("--predict-only", action="store_true",
                        help="T7 screening with each text's own Fisher (no ΔCE measured)")
    args = parser.parse_args(argv)
    weights = [float(w) for w in args.shrinkage.split(",") if w]
    if not weights or any(not 0 <= w <= 1 for w in weights):
        parser.error(f"--shrinkage: expected weights in [0, 1], got {args.shrinkage!r}")
    if not args.level > 0:
        parser.error(f"--level: expected a ΔCE level > 0 nats/token, got {args.level}")
    codecs = [c for c in args.codecs.split(",") if c]
    if args.plot_only:
        document = json.loads(Path(args.out).read_text())
        plot(document["rows"], document["level"], Path(args.out).with_suffix(".png"))
        return document
    started = time.perf_counter()
    run = setup(args)
    ds, split, texts, estimated, own = run.ds, run.split, run.texts, run.estimated, run.own
    name, missing, fit, k = run.name, run.missing, run.fit, args.split
    count = args.statistics_windows
    hidden = fit.hidden[k]
    if args.predict_only:
        for name_, text in texts.items():  # the oracle Fisher of each text (diagnosis only)
            if name_ not in own:
                own[name_] = estimated if name_ == "news" else fisher_diagonal(
                    split, text.hidden[k][:8], full=True)
        rows = [row for weight in weights for row in predict(
            ds, hidden[:count], texts, estimated, own, weight, args.level, k)]
        document = {"schema_version": 1, "generator": "rdgap benchmarks/robust_fisher.py "
                    "--predict-only", "model": name, "split": k, "level": args.level,
                    "what": "predictions: T7 with each text's own Fisher (news: the fit's), "
                    "klt-laplace scaled so T7 with the news Fisher meets the level on news; "
                    "no ΔCE measured", "texts_missing": missing, "rows": rows,
                    "seconds": time.perf_counter() - started}
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(document, indent=1) + "\n")
        print(f"wrote {out}")
        return document
    probe = run.probe()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, fits = [], []
    if 0.0 not in weights and args.baseline_from:
        rows = baseline_rows(Path(args.baseline_from), k, args.level, codecs)
    for weight in weights:
        fisher = shrink_toward_diagonal(estimated, weight) if weight else estimated
        context = FitContext(split, hidden[:count], fisher, probe)
        for codec_name in codecs:
            start = time.perf_counter()
            fitted = fit_codec(codec_name, context, args.level, method="fit")
            fits.append({"codec": codec_name, "shrinkage": weight,
                         "scale": fitted.calibration.scale,
                         "fit_delta_ce_nats": fitted.calibration.delta_ce,
                         "fit_delta_ce_nats_stderr": fitted.calibration.stderr,
                         "t7_predicted_nats": fitted.predicted_delta_ce,
                         "fit_s": time.perf_counter() - start})
            for text in texts.values():
                row = evaluate(ds, split, fitted.codec, text, estimated, args.level,
                               real=not args.tiny)
                rows.append({"codec": codec_name, "shrinkage": weight} | row)
                print(describe(f"λ={weight:g}", codec_name, row), flush=True)
            news = {(r["codec"], r["shrinkage"]): r for r in rows if r["text"] == "news"}
            for r in rows:
                base = news.get((r["codec"], 0.0))
                mine = news.get((r["codec"], r["shrinkage"]))
                r["news_rate_cost_bits"] = (None if base is None or mine is None
                                            else mine["bits_per_token"] - base["bits_per_token"])
            document = run.document("rdgap benchmarks/robust_fisher.py", args, fits, rows,
                                    started)
            out.write_text(json.dumps(document, indent=1) + "\n")
    plot(rows, args.level, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')} in {document['seconds']:.0f} s")
    return document


if __name__ == "__main__":
    main()
