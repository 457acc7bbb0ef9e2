"""Rate–distortion of every codec and baseline at one split, from ``codec_bench.json``.

Issue 20 asks for one picture a user can read: every fitted rdgap codec and every
baseline a user would otherwise pick (fp16/bf16, absmax int8/int4, zstd of fp16,
llama.cpp ``Q8_0``/``Q4_0``, Hadamard int4, the KVTC-style transform coder, SZ3, ZFP)
as measured by ``benchmarks/codec_bench.py`` on the same evaluation windows (bits per
token from real bytes against ΔCE ± 2 s.e.), with

- the issue's targets (≤ 356 bits/token at ΔCE 0.05 — the reference paper's figure,
  reached there *with* the LM fine-tuned — and ≤ 600 at 0.01), and
- the model's own cross-entropy in bits per token: what coding the token ids with the
  model itself would cost, the floor that only a receiver holding the whole prefix
  could reach. It is not in ``codec_bench.json``; by default it is read from
  ``domain_shift.json`` (the exact CE on the news evaluation documents it measured) and
  the output says where it came from.

Nothing is measured here: the script reads the JSON and writes a PNG and a JSON of the
points it plotted::

    python benchmarks/rd_plot.py --split 15
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
#: Issue 20's targets: bits/token at each ΔCE level (nats/token).
TARGETS = {0.05: 356.0, 0.01: 600.0}


def model_ce_bits(domain_shift: Path) -> tuple[float, str]:
    """The model's CE on the news evaluation documents in bits/token, and its source."""
    document = json.loads(domain_shift.read_text())
    for result in document["results"]:
        news = result.get("texts", {}).get("news", {})
        if news.get("exact_ce_nats") is not None:
            return (news["exact_ce_nats"] / math.log(2),
                    f"{domain_shift.name}, split {result.get('split')}: exact CE on its news "
                    f"evaluation documents")
    raise ValueError(f"domain_shift: {domain_shift} holds no news exact_ce_nats; pass "
                     f"--model-ce-nats")


def points(bench: dict, split: int) -> list[dict]:
    """Every row of ``split`` with a measured ΔCE: codec, level, bits/token (real bytes),
    ΔCE and its s.e., and whether it is a baseline (fixed, or a published one)."""
    rows = [r for r in bench["rows"] if r["split"] == split
            and r.get("delta_ce_nats") is not None]
    if not rows:
        splits = sorted({r["split"] for r in bench["rows"]})
        raise ValueError(f"split: no measured row at split {split}; the JSON has {splits}")
    return [{"codec": r["codec"], "level": r.get("level"),
             "bits_per_token": r["bits_per_token_actual"],
             "delta_ce_nats": r["delta_ce_nats"],
             "delta_ce_nats_stderr": r.get("delta_ce_nats_stderr"),
             "baseline": bool(r.get("baseline")) or r.get("level") is None}
            for r in rows]


def plot(found: list[dict], ce_bits: float, split: int, path: Path) -> None:
    """ΔCE ± 2 s.e. against bits/token (log axis): rdgap codecs, baselines, targets, CE."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11.5, 5.5))
    names = list(dict.fromkeys(p["codec"] for p in found))
    cmap = plt.get_cmap("tab20")
    for i, name in enumerate(names):
        mine = sorted((p for p in found if p["codec"] == name), key=lambda p: p["bits_per_token"])
        base = mine[0]["baseline"]
        ax.errorbar([p["bits_per_token"] for p in mine], [p["delta_ce_nats"] for p in mine],
                    yerr=[2 * (p["delta_ce_nats_stderr"] or 0.0) for p in mine],
                    fmt=("s--" if base else "o-"), ms=5, capsize=2, color=cmap(i % 20),
                    label=f"{name}{' (baseline)' if base else ''}")
    for level, bits in TARGETS.items():
        ax.plot([bits], [level], "k*", ms=12)
        ax.annotate(f"target {bits:.0f} @ {level:g}", (bits, level), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.axvline(ce_bits, color="grey", ls=":", lw=1)
    ax.annotate(f"model CE {ce_bits:.1f} bits/token", (ce_bits, 0.9), fontsize=7,
                xycoords=("data", "axes fraction"), rotation=90, xytext=(3, 0),
                textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel("bits per token (real bytes, log)")
    ax.set_ylabel("ΔCE nats/token ± 2 s.e. (symlog)")
    ax.set_title(f"SmolLM2-135M, split {split}: every codec and baseline of codec_bench.json")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", type=int, default=15)
    parser.add_argument("--bench", type=Path, default=RESULTS / "codec_bench.json")
    parser.add_argument("--domain-shift", type=Path, default=RESULTS / "domain_shift.json",
                        help="where the model's CE is read (news exact_ce_nats)")
    parser.add_argument("--model-ce-nats", type=float, default=None,
                        help="the model's CE (nats/token) instead of --domain-shift's")
    parser.add_argument("--out", type=Path, default=RESULTS / "rd_all_codecs.png")
    args = parser.parse_args(argv)
    if args.model_ce_nats is not None:
        if not (math.isfinite(args.model_ce_nats) and args.model_ce_nats > 0):
            raise SystemExit(f"--model-ce-nats: expected a positive number, got "
                             f"{args.model_ce_nats}")
        ce_bits, source = args.model_ce_nats / math.log(2), "--model-ce-nats"
    else:
        ce_bits, source = model_ce_bits(args.domain_shift)
    found = points(json.loads(args.bench.read_text()), args.split)
    plot(found, ce_bits, args.split, args.out)
    document = {"generator": "rdgap benchmarks/rd_plot.py", "bench": args.bench.name,
                "split": args.split, "targets_bits": {str(k): v for k, v in TARGETS.items()},
                "model_ce_bits_per_token": ce_bits, "model_ce_source": source,
                "points": found}
    args.out.with_suffix(".json").write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}: {len(found)} points")
    return document


if __name__ == "__main__":
    main()
