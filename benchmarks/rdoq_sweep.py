"""A prediction of what RDOQ buys the factorized ``klt-laplace`` codec, on cached states.

No LM pass: the distortion is THEORY.md T7's predicted ΔCE of the whitened error,
``D = (Σ_{t≥1} ‖A e_t‖² + Σ_j F0_j e_0j²) / (2T)`` nats/token (``A`` the Fisher-whitened
KLT, ``F0`` position 0's Fisher diagonal), the rate ``Σ −log2 q`` of the codec's own
tables (:func:`rdgap.codecs.coders.ans.estimate_bits`, what the real streams track to
within T2). For every RDOQ weight ``c`` (``λ = c·Δ²``,
:mod:`rdgap.codecs.quantizers.rdoq`) the step scale is swept around T7's scales for the
levels, giving a (D, bits/token) curve; each curve is compared with ``c = 0`` (plain
rounding) by ``bd_rate`` of ``codec_bench`` over the common D range, and at matched D
at each level (log-bits interpolated in log-D). A *prediction*, not a measurement:
T7's D is not the measured ΔCE; ``codec_bench.py --variants klt-laplace-rdoq``
measures that.

Fitted as ``codec_bench`` fits ``klt-laplace``: statistics, Fisher and transform from
the first 22 fit windows of its cache file (``fit-<model>-22+32x256-split<k>.pt``,
written by ``codec_bench.py --cache DIR``); D and bits on the other 32 fit windows
(the probe windows, never used for statistics).

Usage::

    python benchmarks/rdoq_sweep.py --cache DIR [--split 15] [--weights 0,0.05,0.1,...]
                                    [--levels 0.05,0.01] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from rdgap.codecs.coders import ans
from rdgap.codecs.entropy_models.factorized import FactorizedCodec
from rdgap.codecs.fit import base_steps, unit_delta_ce
from rdgap.codecs.quantizers import rdoq
from rdgap.codecs.transforms.fisher import FisherDiagonal

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from codec_bench import STATISTICS_WINDOWS, bd_rate  # noqa: E402

#: Step scales tried, relative to T7's scale for each level.
SCALE_FACTORS = (0.7, 0.85, 1.0, 1.2, 1.45)


def load_cache(cache: Path, split: int):
    """``(hidden, fisher)`` of codec_bench's cache file for ``split``."""
    path = cache / f"fit-smollm2-135m-22+32x256-split{split}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"cache: expected {path}; write it with python benchmarks/"
                                f"codec_bench.py --splits {split} --cache {cache}")
    saved = torch.load(path, weights_only=True)
    fisher = FisherDiagonal(saved["rest"].numpy(), saved["first"].numpy(), int(saved["tokens"]),
                            saved["matrix"].numpy())
    return saved["hidden"], fisher


def curve_point(codec: FactorizedCodec, y: np.ndarray, fisher: FisherDiagonal) -> dict:
    """Bits/token and T7's D of ``codec`` on windows ``y`` ``(W, T, C)``, all windows at once
    (every symbol's table is fixed, so stacking windows changes nothing)."""
    first = (y[:, 0] - codec.stats.first_mean) / codec.first_step
    rest = ((y[:, 1:] - codec.stats.mean) @ codec.analysis.T).reshape(-1, y.shape[2]) / codec.step
    levels0 = rdoq.quantize_columns(first, np.rint(first).astype(np.int64), codec._first_tables,
                                    codec.rdoq)
    levels = rdoq.quantize_columns(rest, np.rint(rest).astype(np.int64), codec._tables,
                                   codec.rdoq)
    bits = ans.estimate_bits(list(levels0.T), codec._first_tables) + \
        ans.estimate_bits(list(np.ascontiguousarray(levels.T)), codec._tables)
    whitened = ((rest - levels) * codec.step) ** 2  # ‖A e‖² per component
    error0 = fisher.first * ((first - levels0) * codec.first_step) ** 2
    tokens = y.shape[0] * y.shape[1]
    return {"bits_per_token": bits / tokens,
            "predicted_delta_ce_nats": float(whitened.sum() + error0.sum()) / (2 * tokens),
            "zero_fraction": float(np.mean(levels == 0))}


def check_against_codec(codec: FactorizedCodec, window: torch.Tensor) -> None:
    """The stacked computation of :func:`curve_point` writes the codec's own symbols."""
    y = window.double().numpy()
    rest = ((y[1:] - codec.stats.mean) @ codec.analysis.T) / codec.step
    levels = rdoq.quantize_columns(rest, np.rint(rest).astype(np.int64), codec._tables,
                                   codec.rdoq)
    if not np.array_equal(levels, codec.quantize(window)[1:]):
        raise AssertionError("rdoq_sweep: the stacked symbols differ from the codec's")


def matched(plain: list[tuple[float, float]], test: list[tuple[float, float]],
            level: float) -> float | None:
    """% bits of ``test`` against ``plain`` at D = ``level`` (log-bits linear in log-D)."""
    def at(points):
        d = np.log([p[0] for p in sorted(points)])
        if not d[0] <= math.log(level) <= d[-1]:
            return None
        return float(np.interp(math.log(level), d, np.log([p[1] for p in sorted(points)])))
    a, b = at(plain), at(test)
    return None if a is None or b is None else 100.0 * (math.exp(b - a) - 1.0)


def run(cache: Path, split: int, weights: list[float], levels: list[float]) -> dict:
    torch.set_num_threads(1)
    hidden, fisher = load_cache(cache, split)
    context = SimpleNamespace(hidden=hidden[:STATISTICS_WINDOWS], fisher=fisher)
    stats, base, first_base, klt, family = base_steps("klt-laplace", context)
    unit = unit_delta_ce("klt-laplace", fisher, base, first_base)
    evaluation = hidden[STATISTICS_WINDOWS:]
    y = evaluation.double().numpy()
    scales = sorted({round(math.sqrt(level / unit) * f, 6) for level in levels
                     for f in SCALE_FACTORS})
    curves = {}
    for weight in weights:
        points = []
        for alpha in scales:
            codec = FactorizedCodec(stats, alpha * base, alpha * first_base, family,
                                    analysis=klt.analysis, synthesis=klt.synthesis, rdoq=weight)
            if alpha == scales[0]:
                check_against_codec(codec, evaluation[0])
            points.append({"scale": alpha} | curve_point(codec, y, fisher))
            print(f"c={weight:g} α={alpha:.4g}: {points[-1]}", file=sys.stderr)
        curves[f"{weight:g}"] = points
    pairs = {w: [(p["predicted_delta_ce_nats"], p["bits_per_token"]) for p in pts]
             for w, pts in curves.items()}
    plain = pairs[f"{weights[0]:g}"]
    summary = {w: {"bd_rate_percent": bd_rate(plain, pts),
                   **{f"bits_percent_at_{level:g}": matched(plain, pts, level)
                      for level in levels}}
               for w, pts in pairs.items()}
    return {"statistic": "prediction: T7's whitened-error ΔCE and the tables' Σ −log2 q, "
                         "no LM pass", "split": split, "anchor_weight": weights[0],
            "statistics_windows": STATISTICS_WINDOWS, "evaluation_windows": len(evaluation),
            "levels": levels, "curves": curves, "against_anchor": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", required=True)
    parser.add_argument("--split", type=int, default=15)
    parser.add_argument("--weights", default="0,0.05,0.08,0.1,0.12,0.15,0.2,0.3")
    parser.add_argument("--levels", default="0.05,0.01")
    parser.add_argument("--out", default=str(HERE / "results" / "rdoq_sweep.json"))
    args = parser.parse_args()
    weights = [float(v) for v in args.weights.split(",")]
    if weights[0] != 0:
        parser.error("--weights: the first weight is the anchor and must be 0 (plain rounding)")
    result = run(Path(args.cache), args.split, weights,
                 [float(v) for v in args.levels.split(",")])
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for weight, row in result["against_anchor"].items():
        print(weight, row)


if __name__ == "__main__":
    main()
