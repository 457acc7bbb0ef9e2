"""Golden streams: every recipe fitted on a fixed tiny input, its streams' SHA-256.

Issue 16 moves the codec's code into parts without changing its bytes. This script
fits every recipe of ``benchmarks/codec_bench.py`` (``FITTERS``) on a fixed small
synthetic input — a tiny random Llama (4 layers, width 64, 128 tokens, seed 0)
split after layer 2, 12 windows of 48 random token ids (6 statistics + 6 probe
windows) — at ΔCE level 0.02, codes 2 held-out windows with the CPU coder and,
for the recipes that have one, the torch rANS coder (``lanes=4``), and records
the SHA-256 of every stream and of every codec's parameter hash. Recipes are fitted with
``cap=None`` (their own format); the rate-capped format of each rescalable one
(:mod:`rdgap.codecs.quantizers.rate_cap`, ``Recipe.fit``'s default) has its own entry,
``<recipe>+cap`` (CPU coder, and the torch coder of the capped format:
:class:`~rdgap.codecs.coders.torch_window.TorchWindowCodec`).

``python benchmarks/golden_streams.py`` prints the digests;
``--write`` stores them in ``tests/codecs/golden_streams.json``, which
``tests/codecs/test_golden_streams.py`` compares against (bit-identical streams
after a refactor). The learned recipes train a few torch steps only (small
``iterations`` / ``steps``): the point is identical bytes, not a good codec.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests/codecs/golden_streams.json"
LEVEL = 1e-3
#: Small training budgets of the learned recipes (bytes, not quality, are compared).
TRAINING = {"klt-context-learned": {"iterations": 4, "crop": 32, "progress": False},
            "klt-hyperprior": {"float_steps": 20, "quantized_steps": 10, "progress": False},
            "klt-deep": {"steps": 40, "progress": False}}


def tiny_input():
    """``(split, fit_ids, fit_hidden, eval_ids, eval_hidden)`` of the fixed tiny input."""
    from rdgap.split import SplitModel
    from rdgap.validation.models import tiny_llama

    torch.manual_seed(0)
    model = tiny_llama(num_layers=4, hidden_size=64, vocab_size=128, seed=0)
    split = SplitModel(model, 2)
    ids = torch.randint(3, 128, (14, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        hidden = split.prefix(ids)
    return split, ids[:12], hidden[:12], ids[12:], hidden[12:]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _torch_codec(codec):
    from rdgap.codecs.coders.backend import torch_codec

    try:
        return torch_codec(codec, device="cpu", lanes=4)
    except ValueError:  # no torch coder
        return None


def record(fitters: dict | None = None) -> dict:
    """``{recipe: {"codec": sha, "cpu": [sha, ...], "torch": [sha, ...] | None}}``."""
    from rdgap.codecs.fit import FitContext
    from rdgap.codecs.quantizers.rate_cap import DEFAULT_CAP_MULTIPLE, cap_fitted, capable

    uncapped = {}
    if fitters is None:  # the recipes as they are (cap=None), then their capped format
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from codec_bench import FITTERS as fitters  # noqa: N811
        uncapped = {"cap": None}
    split, fit_ids, fit_hidden, eval_ids, eval_hidden = tiny_input()
    figures = {}
    for name, fitter in fitters.items():
        start = time.perf_counter()
        torch.manual_seed(0)
        context = FitContext.build(split, fit_ids, fit_hidden, statistics_windows=6)
        fitted = fitter(context, fit_ids[:6], LEVEL, "fit", **uncapped,
                        **TRAINING.get(name, {}))
        if uncapped and capable(fitted.codec) and not name.endswith("-wc"):
            capped = cap_fitted(fitted, context.probe.hidden, DEFAULT_CAP_MULTIPLE).codec
            coder = _torch_codec(capped)
            figures[f"{name}+cap"] = {"codec": capped.digest.hex(), "cpu": [
                _sha(capped.encode(h)) for h in eval_hidden], "torch": None if coder is None
                else [_sha(coder.encode(h)) for h in eval_hidden],
                "cap_bits_per_token": repr(capped.cap_bits_per_token)}
        codec = fitted.codec
        tokens = getattr(codec, "needs_input_ids", False)
        streams = [codec.encode(h, input_ids=i) if tokens else codec.encode(h)
                   for h, i in zip(eval_hidden, eval_ids)]
        entry = {"codec": codec.digest.hex(), "scale": repr(fitted.calibration.scale),
                 "cpu": [_sha(s) for s in streams], "torch": None}
        coder = _torch_codec(codec)
        if coder is not None:
            if hasattr(coder, "encode_batch"):
                batch = (coder.encode_batch(eval_hidden, eval_ids) if tokens
                         else coder.encode_batch(eval_hidden))
            else:
                batch = [coder.encode(h) for h in eval_hidden]
            entry["torch"] = [_sha(s) for s in batch]
        figures[name] = entry
        print(f"{name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"store the digests in {GOLDEN}")
    args = parser.parse_args(argv)
    figures = record()
    text = json.dumps(figures, indent=1, sort_keys=True) + "\n"
    if args.write:
        GOLDEN.write_text(text)
        print(f"wrote {GOLDEN}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
