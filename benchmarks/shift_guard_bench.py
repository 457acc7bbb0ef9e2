"""Issue 19: a shift guard (detector + ``gaussian-fisher`` fallback) on SmolLM2.

Fits on the news fit windows exactly as ``benchmarks/robust_fisher.py`` does (its
``setup``: 22 statistics + 32 probe windows of 256 tokens of ``lee_background``'s fit
documents, the cached news Fisher; each codec's step scale calibrated on the probe
windows by :func:`rdgap.codecs.fit.fit_codec`, no rate cap), so its rows compare with
``benchmarks/results/robust_fisher.json``. For each primary of ``--codecs`` it
evaluates the primary, ``gaussian-fisher`` and the primary guarded by
``gaussian-fisher`` (:func:`rdgap.codecs.quantizers.shift_guard_fit.guard_fitted`, the
detector fitted on the fit windows only) on the news evaluation documents and each
other text (``robust_fisher.evaluate``: real-stream bits/token, ΔCE ± s.e. over
documents, windows over the level), plus the detector's score of every window and the
fraction of windows it sends to the fallback per text, and the guarded codec's rate
cost on news against its primary.

Usage::

    python benchmarks/shift_guard_bench.py [--split 15] [--level 0.05] [--windows 16]
        [--texts newsgroups,wikipedia] [--codecs klt-laplace,klt-context]
        [--cache DIR] [--out FILE] [--tiny] [--plot-only] [--slack 1.1]
    python benchmarks/shift_guard_bench.py --detector-only --windows 64 [--chosen-on 16]
        --out benchmarks/results/shift_guard_detector.json

``--detector-only`` scores many windows per text with the detector alone (states, no
codec): its false-alarm rate on news and its detection rate on the other texts, on the
windows after the first ``--chosen-on`` (the form of the statistic, its quiet fraction
and quantile, were chosen on those first 16 windows per text).

Results and what they show: ``docs/domain-shift.md`` ("A shift guard").
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

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "shift_guard.json"
FALLBACK = "gaussian-fisher"


def _robust_fisher():
    """``benchmarks/robust_fisher.py`` as a module (setup and evaluation)."""
    spec = importlib.util.spec_from_file_location("robust_fisher_for_shift_guard",
                                                  HERE / "robust_fisher.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def detector_rows(codec, texts: dict, probe_hidden: torch.Tensor, k: int) -> dict:
    """Per text (and the probe): every window's score and the fraction flagged."""
    detector = codec.detector
    out = {"probe (fit)": [detector.score(w) for w in probe_hidden]}
    out |= {name: [detector.score(w) for w in text.hidden[k]] for name, text in texts.items()}
    return {name: {"scores": np.round(scores, 4).tolist(),
                   "flagged": int(np.sum(np.array(scores) > detector.threshold)),
                   "windows": len(scores),
                   "flagged_fraction": float(np.mean(np.array(scores) > detector.threshold))}
            for name, scores in out.items()}


def slack_of(args) -> dict:
    """``{"slack": --slack}`` when given, else nothing (the fit's default)."""
    return {} if args.slack is None else {"slack": args.slack}


def detector_only(rf, args, out: Path) -> dict:
    """``--detector-only``: the detector fitted on the fit windows, scored on ``--windows``
    windows per text (states only, no codec): per text the flagged fraction of the first
    ``--chosen-on`` windows (those the statistic's form was chosen on) and of the rest
    (held out from that choice)."""
    from rdgap.codecs.fit import FitContext
    from rdgap.codecs.quantizers.shift_guard_fit import fit_detector

    started = time.perf_counter()
    run = rf.setup(args)
    k = args.split
    context = FitContext(run.split, run.fit.hidden[k][:args.statistics_windows],
                         run.estimated, run.probe())
    detector, report = fit_detector(context, **slack_of(args))
    texts = {}
    for name, text in run.texts.items():
        scores = np.array([detector.score(w) for w in text.hidden[k]])
        flagged = scores > detector.threshold
        first, rest = flagged[:args.chosen_on], flagged[args.chosen_on:]
        texts[name] = {"windows": int(len(scores)), "documents": int(len(set(
            text.documents.tolist()))), "scores": scores.round(4).tolist(),
            "flagged_fraction": float(flagged.mean()),
            "flagged_first": int(first.sum()), "first": int(len(first)),
            "flagged_rest": int(rest.sum()), "rest": int(len(rest))}
        print(f"{name:<11} flagged {flagged.sum()}/{len(scores)} (first {args.chosen_on}: "
              f"{first.sum()}, rest: {rest.sum()}/{len(rest)}); scores "
              f"{scores.min():.2f}…{scores.max():.2f}, threshold {detector.threshold:.3f}",
              flush=True)
    document = {"schema_version": 1, "generator": "rdgap benchmarks/shift_guard_bench.py "
                "--detector-only", "model": run.name, "split": k,
                "fit": {"corpus": "lee_background fit documents",
                        "statistics_windows": args.statistics_windows,
                        "probe_windows": args.probe_windows, "fisher": run.fisher_source},
                "chosen_on": args.chosen_on, "detector": report, "texts": texts,
                "texts_missing": run.missing, "seconds": time.perf_counter() - started}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {out}")
    return document


def plot(rows: list[dict], level: float, path: Path) -> None:
    """ΔCE ± 2 s.e. per text for each codec, and bits/token per text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    codecs = list(dict.fromkeys(r["codec"] for r in rows))
    texts = list(dict.fromkeys(r["text"] for r in rows))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    width = 0.8 / max(len(codecs), 1)
    for i, codec in enumerate(codecs):
        part = {r["text"]: r for r in rows if r["codec"] == codec}
        x = [j + (i - (len(codecs) - 1) / 2) * width for j, t in enumerate(texts) if t in part]
        shown = [t for t in texts if t in part]
        left.errorbar(x, [part[t]["delta_ce_nats"] for t in shown],
                      yerr=[2 * (part[t]["delta_ce_nats_stderr"] or 0) for t in shown],
                      fmt="o", ms=4, capsize=2, label=codec)
        right.bar(x, [part[t]["bits_per_token"] for t in shown], width, label=codec)
    for axis in (left, right):
        axis.set_xticks(range(len(texts)), texts)
    left.axhline(level, color="k", ls=":", lw=1, label=f"level {level:g}")
    left.set_ylabel("ΔCE (nats/token) ± 2 s.e.")
    left.legend(fontsize=7)
    right.set_ylabel("bits/token (real streams)")
    right.legend(fontsize=7)
    fig.suptitle("Fitted on news only; the shift guard sends flagged windows to "
                 "gaussian-fisher")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", type=int, default=15)
    parser.add_argument("--level", type=float, default=0.05)
    parser.add_argument("--windows", type=int, default=16, help="evaluation windows per text")
    parser.add_argument("--texts", default="newsgroups,wikipedia")
    parser.add_argument("--codecs", default="klt-laplace,klt-context", help="the primaries")
    parser.add_argument("--statistics-windows", type=int, default=22)
    parser.add_argument("--probe-windows", type=int, default=32)
    parser.add_argument("--cache", default=None, help="domain_shift.py's cache folder")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--tiny", action="store_true", help="tiny random model (smoke test)")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw --out's figure from its JSON")
    parser.add_argument("--slack", type=float, default=None,
                        help="the detector's threshold over the largest probe score "
                             "(default: shift_guard_fit.SLACK, 1.1)")
    parser.add_argument("--detector-only", action="store_true",
                        help="score --windows windows per text with the detector (no codec)")
    parser.add_argument("--chosen-on", type=int, default=16,
                        help="--detector-only: the first windows per text that the "
                             "statistic's form was chosen on")
    args = parser.parse_args(argv)
    if not args.level > 0:
        parser.error(f"--level: expected a ΔCE level > 0 nats/token, got {args.level}")
    out = Path(args.out)
    if args.plot_only:
        document = json.loads(out.read_text())
        plot(document["rows"], document["level"], out.with_suffix(".png"))
        return document
    torch.set_num_threads(1)
    from rdgap.codecs.fit import FitContext, fit_codec
    from rdgap.codecs.quantizers.shift_guard_fit import guard_fitted

    rf = _robust_fisher()
    if args.detector_only:
        return detector_only(rf, args, out)
    started = time.perf_counter()
    run = rf.setup(args)
    ds, split, texts, estimated, k = run.ds, run.split, run.texts, run.estimated, args.split
    probe = run.probe()
    context = FitContext(split, run.fit.hidden[k][:args.statistics_windows], estimated, probe)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, fits, detectors = [], [], {}

    def fit(name):
        begin = time.perf_counter()
        fitted = fit_codec(name, context, args.level, method="fit")
        fits.append({"codec": name, "scale": fitted.calibration.scale,
                     "fit_delta_ce_nats": fitted.calibration.delta_ce,
                     "fit_delta_ce_nats_stderr": fitted.calibration.stderr,
                     "t7_predicted_nats": fitted.predicted_delta_ce,
                     "fit_s": time.perf_counter() - begin})
        return fitted

    def measure(name, codec, **extra):
        for text in texts.values():
            row = rf.evaluate(ds, split, codec, text, estimated, args.level,
                              real=not args.tiny)
            rows.append({"codec": name} | extra | row)
            print(rf.describe("", name, row), flush=True)
        document = run.document("rdgap benchmarks/shift_guard_bench.py", args, fits, rows,
                                started, cap="none (as robust_fisher.py)")
        document["detectors"] = detectors
        out.write_text(json.dumps(document, indent=1) + "\n")
        return document

    fallback = fit(FALLBACK)
    document = measure(FALLBACK, fallback.codec)
    for name in [c for c in args.codecs.split(",") if c]:
        primary = fit(name)
        guarded = guard_fitted(primary, fallback, context, **slack_of(args))
        report = guarded.codec.fit_report
        detectors[guarded.variant] = {
            key: report[key] for key in report if key != "detector_probe_scores"} | {
            "texts": detector_rows(guarded.codec, texts, probe.hidden, k)}
        measure(name, primary.codec)
        document = measure(guarded.variant, guarded.codec, primary=name, fallback=FALLBACK)
        news = {r["codec"]: r for r in rows if r["text"] == "news"}
        for r in rows:
            base = news.get(r.get("primary", r["codec"]))
            mine = news.get(r["codec"])
            r["news_rate_cost_bits"] = None if base is None or mine is None else \
                mine["bits_per_token"] - base["bits_per_token"]
        out.write_text(json.dumps(document, indent=1) + "\n")
    plot(rows, args.level, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')} in {document['seconds']:.0f} s")
    return document


if __name__ == "__main__":
    main()
