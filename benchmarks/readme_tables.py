"""The result tables of README.md and docs/, generated from the committed JSON.

``python benchmarks/readme_tables.py`` prints both tables; ``--check`` exits 1
when README.md or a page of docs/ holds a table that differs from what the
committed JSON gives (``tests/test_docs.py`` runs the same check).

- :func:`reference_table`: the headline table of README.md, from
  ``validation/reports/reference/results.json`` (the full default
  ``rdgap validate``): per architecture, every codec at the split of its
  cheapest fitted codec.
- :func:`recipe_table`: the recipes of ``rdgap.codecs.recipes`` in docs/codec.md;
- :func:`codec_bench_table`: the table of docs/benchmarks.md, from
  ``benchmarks/results/codec_bench.json``: every fitted row of the codec
  benchmark (baselines are in the JSON, not in the table);
- :func:`published_baseline_table`: the second table of docs/benchmarks.md, from the
  same JSON: the published baselines users would pick instead (rows marked
  ``"baseline": true``, ``codec_bench.py --published-baselines``) next to rdgap's
  cheapest fitted codec at the same split and level.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "validation/reports/reference/results.json"
QUICK_REFERENCE = ROOT / "validation/reports/quick-reference/results.json"
CODEC_BENCH = ROOT / "benchmarks/results/codec_bench.json"
SHOWN_BASELINES = ("fp16", "int8-absmax", "int4-absmax")


def _markdown(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _ci(mean: float, ci) -> str:
    if not ci or ci[0] is None:
        return f"{mean:.4f}"
    return f"{mean:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]"


def reference_table(results: dict) -> str:
    """Per architecture, the baselines and fitted codecs at its cheapest fitted split."""
    rows = []
    for arch in dict.fromkeys(r["architecture"] for r in results["runs"]):
        runs = [r for r in results["runs"] if r["architecture"] == arch]
        fitted = [r for r in runs if r["level"]]
        if not fitted:
            raise ValueError(f"results: architecture {arch!r} has no fitted codec row")
        split = min(fitted, key=lambda r: r["bits_per_token_actual"])["split"]
        chosen = [r for r in runs if r["split"] == split
                  and (r["level"] or r["codec"] in SHOWN_BASELINES)]
        chosen.sort(key=lambda r: (r["level"] is not None, -r["bits_per_token_actual"]))
        rows += [[arch, str(split), r["codec"], r["level"] or "—",
                  f"{r['bits_per_token_actual']:.0f}", f"{r['saving_vs_fp16_percent']:.1f} %",
                  f"{r['distortion_name']} {_ci(r['distortion'], r['distortion_ci'])}"]
                 for r in chosen]
    return _markdown(("architecture", "split", "codec", "level", "bits/token",
                      "saving vs fp16", "distortion (95 % CI)"), rows)


def _level_key(level: str) -> tuple[float, bool]:
    value = float(level.split("<=")[1].split()[0])
    return value, "margin" in level


def codec_bench_table(document: dict) -> str:
    """Every fitted row of ``codec_bench.json``: rate, estimate, calibration and eval ΔCE."""
    fitted = [r for r in document["rows"] if r["level"] and not r.get("baseline")]
    fitted.sort(key=lambda r: (r["split"], _level_key(r["level"]), r["codec"]))
    rows = []
    for r in fitted:
        probe = r["fit_windows"] - r["statistics_windows"]
        calibration = "—" if r.get("fit_delta_ce_nats") is None else (
            f"{r['fit_delta_ce_nats']:.4f}" + (
                "" if r.get("fit_delta_ce_nats_stderr") is None
                else f" ± {r['fit_delta_ce_nats_stderr']:.4f}"))
        rows.append([str(r["split"]), r["codec"], r["level"].replace(" margin=2se", ", margin 2 s.e."),
                     f"{r['statistics_windows']} + {probe}",
                     f"{r['bits_per_token_actual']:.0f}", f"{r['bits_per_token_estimated']:.0f}",
                     calibration,
                     f"{r['delta_ce_nats']:.4f} ± {r['delta_ce_nats_stderr']:.4f}",
                     f"{r['kl_nats']:.4f}"])
    return _markdown(("split", "codec", "level", "fit windows", "bits/token (bytes)", "estimate",
                      "ΔCE ± s.e. (calibration)", "ΔCE nats ± s.e. (eval)", "KL nats"), rows)


def published_baseline_table(document: dict) -> str:
    """The published baselines of ``codec_bench.json`` (rows marked ``baseline``) at each
    split: rate, eval ΔCE, and the ratio of their bits to those of rdgap's cheapest fitted
    row at the same split and level (fixed-rate formats have no level: —)."""
    baselines = [r for r in document["rows"] if r.get("baseline")]
    baselines.sort(key=lambda r: (r["split"], r["level"] is not None,
                                  _level_key(r["level"]) if r["level"] else 0.0,
                                  r["bits_per_token_actual"]))
    rows = []
    for r in baselines:
        rdgap = [o for o in document["rows"] if o["level"] == r["level"] and r["level"]
                 and o["split"] == r["split"] and not o.get("baseline")]
        best = min(rdgap, key=lambda o: o["bits_per_token_actual"], default=None)
        knob = r.get("knob")
        knob = "fixed rate" if knob is None else (
            f"budget {knob} bits" if r["codec"] == "kvtc" else f"±{knob:.4g}")
        rows.append([str(r["split"]), r["codec"], r["level"] or "—", knob,
                     f"{r['bits_per_token_actual']:.0f}",
                     f"{r['delta_ce_nats']:.4f} ± {r['delta_ce_nats_stderr']:.4f}",
                     f"{r['kl_nats']:.4f}",
                     "—" if best is None else
                     f"{best['codec']} {best['bits_per_token_actual']:.0f} "
                     f"({best['delta_ce_nats']:.4f})",
                     "—" if best is None else
                     f"{r['bits_per_token_actual'] / best['bits_per_token_actual']:.2f}×"])
    return _markdown(("split", "baseline", "level", "knob", "bits/token (bytes)",
                      "ΔCE nats ± s.e. (eval)", "KL nats", "rdgap's cheapest at the level "
                      "(eval ΔCE)", "baseline ÷ rdgap bits"), rows)


def recipe_table() -> str:
    """The recipes of :mod:`rdgap.codecs.recipes`, part by part (docs/codec.md)."""
    from rdgap.codecs.recipes import RECIPES

    rows = [[f"`{r.name}`", r.transform, r.quantizer, r.steps, r.entropy_model,
             "yes" if r.torch_coder else "no", "yes" if r.in_validate else "no",
             f"`{r.parent}`" if r.parent else "—"] for r in RECIPES.values()]
    return _markdown(("recipe", "transform", "quantizer", "steps", "entropy model",
                      "torch coder", "in validate", "refines"), rows)


def tables() -> list[tuple[Path, str]]:
    """Each generated table with a page that must hold it verbatim."""
    reference = reference_table(json.loads(REFERENCE.read_text()))
    quick = reference_table(json.loads(QUICK_REFERENCE.read_text()))
    return [(ROOT / "README.md", reference), (ROOT / "docs/validate.md", reference),
            (ROOT / "docs/validate.md", quick),
            (ROOT / "docs/benchmarks.md", codec_bench_table(json.loads(CODEC_BENCH.read_text()))),
            (ROOT / "docs/benchmarks.md",
             published_baseline_table(json.loads(CODEC_BENCH.read_text()))),
            (ROOT / "docs/codec.md", recipe_table())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a page does not hold its generated table verbatim")
    args = parser.parse_args(argv)
    stale = []
    for page, table in tables():
        if args.check:
            if table not in page.read_text():
                stale.append(page.relative_to(ROOT))
        else:
            print(f"<!-- {page.relative_to(ROOT)} -->\n{table}\n")
    if stale:
        print("stale tables (regenerate with python benchmarks/readme_tables.py): "
              + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
