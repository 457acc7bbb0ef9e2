"""Predicted against measured bits per token (issue 14 item 5), without running a validate.

Two parts, both printed as tables:

1. **Reports.** Every row of the given ``results.json`` files that carries the
   prediction (``statistics["rate_predicted"]``, :mod:`rdgap.validation.rate_prediction`):
   measured rate, prediction (b) at the calibrated steps, prediction (a) at T7's
   step for the level, their relative errors, and the in-sample value.
2. **Cached hidden states.** The validate cache (``~/.cache/rdgap/hidden``) holds the
   fit and evaluation states of every split of earlier runs, unlabelled. Files of one
   shape are paired (the fit and evaluation states of one split have the closest
   per-channel log-variances); for each pair, codecs are fitted on the first file
   (statistics on its first half, as :class:`rdgap.codecs.fit.FitContext` does) and
   measured on the second. The steps are stand-ins (no Fisher is computed here):
   ``c·σ_j`` (gaussian-std's rule), one step for every channel (a Fisher proxy), and
   the KLT with an identity Fisher at one step for every component (klt-laplace and
   klt-context with the proxy transform), at two step sizes each.

Usage::

    python benchmarks/rate_prediction_check.py [--results PATH ...] [--pairs N]
        [--min-windows N] [--cache-dir DIR] [--no-cache]

On SmolLM2 (576 channels, 32 windows × 256 tokens per file) one pair takes about
a minute of CPU, most of it the context codec's fit and its causal loop.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from rdgap.codecs.entropy_models.context_fit import fit_context_codec
from rdgap.codecs.entropy_models.factorized import ChannelStatistics, FactorizedCodec
from rdgap.codecs.transforms.klt import fisher_klt
from rdgap.paths import cache_dir
from rdgap.validation.rate_prediction import rate_prediction
from rdgap.validation.rate_prediction_claim import prediction_rows

REPORTS = ("reference", "reference-joint", "quick-reference", "gemma-quick")
ROOT = Path(__file__).resolve().parents[1]


def _percent(value) -> str:
    return "      —" if value is None else f"{value:+7.1%}"


def report_rows(paths: list[Path]) -> None:
    for path in paths:
        if not path.exists():
            print(f"{path}: not found")
            continue
        rows = prediction_rows(json.loads(path.read_text())["runs"])
        if not rows:
            print(f"{path}: no row has rate_predicted (a report from before the prediction)")
            continue
        print(f"\n{path}")
        print(f"{'architecture':<18} {'row':<44} {'measured':>9} {'pred (b)':>9} {'err (b)':>7} "
              f"{'pred (a)':>9} {'err (a)':>7} {'in-sample':>9}")
        for c in rows:
            at_level = "—" if c["predicted_at_level"] is None else f"{c['predicted_at_level']:.1f}"
            print(f"{str(c['architecture'])[:18]:<18} {c['where'][:44]:<44} {c['measured']:9.1f} "
                  f"{c['predicted']:9.1f} {_percent(c['relative_error'])} {at_level:>9} "
                  f"{_percent(c['relative_error_at_level'])} {c['predicted_in_sample']:9.1f}")
        worst = max(rows, key=lambda c: abs(c["relative_error"]))
        print(f"worst (b): {worst['relative_error']:+.1%} at {worst['architecture']} "
              f"{worst['where']}")


# ----------------------------------------------------------------- cached states
def _states(folder: Path, min_windows: int) -> dict[tuple, list[tuple[str, torch.Tensor]]]:
    from safetensors.torch import load_file

    shapes: dict[tuple, list[tuple[str, torch.Tensor]]] = {}
    for path in sorted(folder.glob("*.safetensors")):
        hidden = load_file(path)["hidden"]
        if hidden.shape[0] >= min_windows and hidden.shape[1] >= 64:
            shapes.setdefault(tuple(hidden.shape), []).append((path.name[:8], hidden))
    return shapes


def _pairs(states: list[tuple[str, torch.Tensor]]) -> list[tuple]:
    """Mutually nearest files by mean |Δ log variance| per channel (one split's fit and
    evaluation states)."""
    logvar = [np.log(h[:, 1:].reshape(-1, h.shape[2]).double().var(0).numpy() + 1e-30)
              for _, h in states]
    nearest = []
    for i in range(len(states)):
        distances = [np.abs(logvar[i] - logvar[j]).mean() if j != i else np.inf
                     for j in range(len(states))]
        nearest.append(int(np.argmin(distances)))
    return [(states[i], states[j]) for i, j in enumerate(nearest) if j > i and nearest[j] == i]


def _measured(codec, hidden: torch.Tensor) -> float:
    """Bits per token the codec's tables charge (its likelihood estimate), plus 0 header."""
    return sum(codec.estimate_bits(w) for w in hidden) / (hidden.shape[0] * hidden.shape[1])


def _codecs(fit: torch.Tensor):
    """(name, codec) at stand-in steps, statistics on the first half of ``fit``."""
    half = fit[: fit.shape[0] // 2]
    width = fit.shape[2]
    gauss = ChannelStatistics.fit(half, "gaussian")
    for c in (0.5, 1.5):
        yield f"gaussian, steps {c}·σ", FactorizedCodec(gauss, c * gauss.scale,
                                                        c * gauss.first_scale, "gaussian")
    for q in (30, 70):
        step = np.full(width, np.percentile(gauss.scale, q))
        yield f"gaussian, one step (σ q{q})", FactorizedCodec(gauss, step, gauss.first_scale,
                                                               "gaussian")
    rest = half[:, 1:].reshape(-1, width).double().numpy()
    klt = fisher_klt(np.cov(rest, rowvar=False), np.eye(width), ridge=1e-4)
    laplace = ChannelStatistics.fit(half, "laplace", analysis=klt.analysis)
    for q in (50, 80):
        step = np.full(width, np.percentile(laplace.scale, q))
        first = 0.5 * laplace.first_scale
        yield f"klt-laplace (F = I), step b q{q}", FactorizedCodec(
            laplace, step, first, "laplace", analysis=klt.analysis, synthesis=klt.synthesis)
        yield f"klt-context (F = I), step b q{q}", fit_context_codec(
            half, laplace.mean, klt.analysis, klt.synthesis, step, laplace.first_mean,
            laplace.first_scale, first)


def cached_rows(folder: Path, max_pairs: int, min_windows: int) -> None:
    torch.set_num_threads(1)
    shapes = _states(folder, min_windows)
    if not shapes:
        print(f"\n{folder}: no cached hidden states")
        return
    print(f"\ncached hidden states in {folder} (stand-in steps, see the module docstring)")
    print(f"{'pair':<20} {'codec':<34} {'measured':>9} {'predicted':>9} {'error':>7} "
          f"{'in-sample':>9} {'error':>7}")
    errors = []
    for shape, states in sorted(shapes.items()):
        for (name_a, fit), (name_b, evaluation) in _pairs(states)[:max_pairs]:
            for name, codec in _codecs(fit):
                measured = _measured(codec, evaluation)
                found = rate_prediction(codec, fit, evaluation.shape[1], measured)
                inside = (found["rate_predicted_in_sample"] - measured) / measured
                errors.append(found["rate_prediction_relative_error"])
                print(f"{name_a}>{name_b} {shape[2]:>4}ch {name:<34} {measured:9.1f} "
                      f"{found['rate_predicted']:9.1f} "
                      f"{_percent(found['rate_prediction_relative_error'])} "
                      f"{found['rate_predicted_in_sample']:9.1f} {_percent(inside)}", flush=True)
    if errors:
        print(f"{len(errors)} codecs: largest |error| {max(map(abs, errors)):.1%}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", nargs="*", type=Path,
                        default=[ROOT / "validation" / "reports" / name / "results.json"
                                 for name in REPORTS])
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--pairs", type=int, default=2, help="pairs per shape (default 2)")
    parser.add_argument("--no-cache", action="store_true", help="only the reports")
    parser.add_argument("--min-windows", type=int, default=16,
                        help="cached files with at least this many windows (default 16: the "
                             "KLT needs >= 4 x width statistics tokens, as validate requires)")
    args = parser.parse_args(argv)
    report_rows(args.results)
    if not args.no_cache:
        cached_rows(cache_dir(args.cache_dir) / "hidden", args.pairs, args.min_windows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
