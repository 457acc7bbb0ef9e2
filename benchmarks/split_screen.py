"""Screen split points for the joint codecs: bits/token near ΔCE 0.05 at each split.

Issue 4 asks for its targets "at the best split"; the codec benchmark fits and
calibrates at a few splits only (each fit costs minutes). This screen is cheap
enough to cover many: for each split it estimates the Fisher (THEORY.md T7) on
the statistics windows (one backward pass through the suffix per window), fits
``klt-context`` and ``klt-context-tokens`` once at T7's predicted step scale for
``--level`` **without calibration** (no probe loop,
:func:`rdgap.codecs.entropy_models.token_fit.fit_at_t7_scale`), codes every evaluation window as
one real stream and measures bits/token and ΔCE ± s.e. over documents
(:func:`codec_bench.measure`). The hidden states of every split come from one
forward pass per batch (:func:`rdgap.split.logits_and_hidden`).

Since T7's scale misses the level by a split-dependent factor, each rate is also
moved to the level along T7's high-resolution law (an approximation, not a
measurement)::

    bits(level) ≈ bits − (C / 2) · log2(level / ΔCE_measured)

(``ΔCE ∝ α²`` and ``rate ≈ Σ_j max(0, h_j − log2 α Δ_j)``, so a scale change by
``α'/α`` changes the rate by ``−C·log2(α'/α)``), with ``C`` the *active*
components: those whose Laplace differential entropy ``log2(2e·b_j)`` (fit
statistics in the whitened KLT domain) exceeds ``log2`` of their step — the
components T7 gives a positive rate. Position 0 is ignored in ``C`` (1 of 256
tokens). Rows record the measured and the moved rate; the PNG plots both
against the split.

Usage::

    python benchmarks/split_screen.py [--splits 4,6,8,...,28] [--windows 8]
                                      [--statistics-windows 16] [--level 0.05]
                                      [--out benchmarks/results/split_screen.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from rdgap.split import logits_and_hidden
from rdgap.codecs.transforms.fisher import fisher_diagonal
from rdgap.codecs.fit import FitContext
from rdgap.split import SplitModel
from rdgap.codecs.entropy_models.token_fit import fit_at_t7_scale, t7_start
from rdgap.validation.corpus import (DEFAULT_CORPUS, load_documents, split_documents,
                                     token_windows)
from rdgap.validation.distortion import exact_log_probs
from rdgap.validation.models import load_model

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from codec_bench import measure  # noqa: E402  (the same per-window measurement)

DEFAULT_SPLITS = (4, 6, 8, 10, 12, 13, 14, 15, 16, 17, 18, 20, 22, 25, 28)
WINDOW_LENGTH = 256
BATCH = 4
FORMULA = "bits(level) ≈ bits − (C/2)·log2(level / ΔCE_measured), C = active components (T7)"


def hidden_states(model, input_ids: torch.Tensor, splits: list[int]):
    """Logits and hidden states at every split: one forward pass per batch of windows."""
    parts = [logits_and_hidden(model, input_ids[start:start + BATCH], None, splits)
             for start in range(0, len(input_ids), BATCH)]
    return (torch.cat([logits for logits, _ in parts]),
            {k: torch.cat([states[k] for _, states in parts]) for k in splits})


def active_components(context: FitContext, level: float) -> int:
    """Components with a positive T7 rate at T7's scale for ``level``: Laplace entropy
    ``log2(2e·b_j)`` above ``log2(α·Δ_j)`` in the whitened KLT domain."""
    stats, base, _, _, _, alpha = t7_start(context, level)
    entropy = np.log2(2 * math.e * np.asarray(stats.scale, float))
    return int(np.sum(entropy > np.log2(alpha * np.asarray(base, float))))


def at_level(bits: float, delta_ce: float, components: int, level: float) -> float | None:
    """``bits`` moved from the measured ΔCE to ``level`` along T7's law (:data:`FORMULA`)."""
    if not delta_ce > 0:
        return None
    return bits - 0.5 * components * math.log2(level / delta_ce)


def screen_split(model, k: int, fit_ids, fit_hidden, ev, ev_hidden, exact, log_p,
                 level: float) -> list[dict]:
    """Rows of both codecs at split ``k``."""
    split = SplitModel(model, k)
    start = time.perf_counter()
    fisher = fisher_diagonal(split, fit_hidden, samples=1, full=True)
    fisher_s = time.perf_counter() - start
    context = FitContext(split, fit_hidden, fisher, probe=None)
    start = time.perf_counter()
    alpha, codecs = fit_at_t7_scale(context, fit_ids, level)
    fit_s = time.perf_counter() - start
    components = active_components(context, level)
    rows = []
    for name, codec in codecs.items():
        with torch.no_grad():
            row = measure(codec, split, ev_hidden, ev.input_ids, exact, log_p,
                          ev.document.numpy())
        row = {"split": k, "codec": name, "scale": alpha, "level": level,
               "active_components": components,
               "bits_at_level_t7": at_level(row["bits_per_token_actual"], row["delta_ce_nats"],
                                            components, level),
               **row, "fisher_s": fisher_s, "fit_s": fit_s}
        rows.append(row)
    return rows


def plot(rows: list[dict], level: float, path: Path) -> None:
    """Bits/token (measured, and moved to the level) and measured ΔCE against the split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    for name, colour in (("klt-context", "tab:blue"), ("klt-context-tokens", "tab:red")):
        mine = sorted((r for r in rows if r["codec"] == name), key=lambda r: r["split"])
        if not mine:
            continue
        splits = [r["split"] for r in mine]
        top.plot(splits, [r["bits_per_token_actual"] for r in mine], "o--", color=colour,
                 alpha=0.5, label=f"{name}, measured (at its ΔCE)")
        top.plot(splits, [r["bits_at_level_t7"] or np.nan for r in mine], "o-", color=colour,
                 label=f"{name}, moved to ΔCE {level:g} (T7)")
        bottom.errorbar(splits, [r["delta_ce_nats"] for r in mine],
                        yerr=[r["delta_ce_nats_stderr"] or 0 for r in mine], fmt="o-",
                        color=colour, capsize=3, label=name)
    bottom.axhline(level, color="grey", lw=0.8, ls=":")
    top.set_ylabel("bits / token (actual bytes)")
    top.set_title(f"SmolLM2-135M: joint codecs at T7's scale for ΔCE {level:g}, no calibration")
    top.legend(fontsize=8)
    bottom.set_ylabel("eval ΔCE (nats/token) ± s.e.")
    bottom.set_xlabel("split (layers in the prefix)")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    """Screen the splits the command line names (see the module); write the JSON and PNG."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--splits", default=",".join(map(str, DEFAULT_SPLITS)))
    parser.add_argument("--windows", type=int, default=8, help="evaluation windows")
    parser.add_argument("--statistics-windows", type=int, default=16,
                        help="fit windows for statistics, Fisher and entropy models (≥ 10: "
                             "the 576 × 576 KLT)")
    parser.add_argument("--level", type=float, default=0.05,
                        help="ΔCE level whose T7 step scale the codecs use")
    parser.add_argument("--out", default=str(HERE / "results" / "split_screen.json"))
    args = parser.parse_args()
    splits = [int(k) for k in args.splits.split(",") if k]
    for name in ("windows", "statistics_windows"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: expected ≥ 1, got {getattr(args, name)}")
    if not args.level > 0:
        parser.error(f"--level: expected a ΔCE level > 0, got {args.level}")
    started = time.perf_counter()
    loaded = load_model("smollm2-135m")
    model = loaded.model
    documents = load_documents(DEFAULT_CORPUS)
    fit_indices, evaluation = split_documents(len(documents), seed=0)
    fit = token_windows(documents, fit_indices, loaded.tokenizer, WINDOW_LENGTH,
                        max_windows=args.statistics_windows)
    ev = token_windows(documents, evaluation, loaded.tokenizer, WINDOW_LENGTH,
                       max_windows=args.windows)
    with torch.no_grad():
        fit_hidden = hidden_states(model, fit.input_ids, splits)[1]
        exact, ev_hidden = hidden_states(model, ev.input_ids, splits)
    log_p = exact_log_probs(exact)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for k in tqdm(splits, desc="split screen", unit="split"):
        rows += screen_split(model, k, fit.input_ids, fit_hidden[k], ev, ev_hidden[k], exact,
                             log_p, args.level)
        document = {"generator": "rdgap benchmarks/split_screen.py", "model": loaded.name,
                    "corpus": DEFAULT_CORPUS, "level": args.level, "formula": FORMULA,
                    "statistics_windows": len(fit.input_ids),
                    "evaluation_windows": len(ev.input_ids), "window_length": WINDOW_LENGTH,
                    "calibrated": False, "seconds": time.perf_counter() - started,
                    "rows": rows}
        out.write_text(json.dumps(document, indent=2) + "\n")  # partial after every split
    plot(rows, args.level, out.with_suffix(".png"))
    print(f"{'split':>5} {'codec':>18} {'bits':>7} {'ΔCE':>7} {'±SE':>7} {'C':>4} "
          f"{'bits@' + format(args.level, 'g'):>9}")
    for r in rows:
        moved = r["bits_at_level_t7"]
        print(f"{r['split']:>5} {r['codec']:>18} {r['bits_per_token_actual']:>7.0f} "
              f"{r['delta_ce_nats']:>7.4f} {r['delta_ce_nats_stderr'] or 0:>7.4f} "
              f"{r['active_components']:>4} {'—' if moved is None else f'{moved:.0f}':>9}")
    print(f"wrote {out} and {out.with_suffix('.png')} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
