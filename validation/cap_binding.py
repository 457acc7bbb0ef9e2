"""How often the rate cap binds on a run's windows, and what it costs (issue 14).

Every fitted codec of ``rdgap validate`` is capped by default
(:class:`rdgap.codecs.quantizers.rate_cap.RateCappedCodec`, ``--rate-cap``): a window
whose stream would exceed ``B_cap`` bits per token is re-coded at a coarser step, so
its distortion takes the excess. The coding stage reads the flag of every stream
(:func:`window_flags`); where the cap bound, the evaluation stage codes that window
again with the uncapped codec, runs the suffix on both reconstructions, and keeps the
per-window difference of every metric (:func:`binding_cost`). :func:`summary` is what a
row stores: a *statistic*, measured on the run's own windows, not a bound.
"""

from __future__ import annotations

import numpy as np
import torch

from rdgap.codecs.quantizers.rate_cap import RateCappedCodec
from rdgap.codecs.quantizers.window_ladder import FLAG_CAP, FLAG_FALLBACK, window_header


def window_flags(codec, data: bytes) -> int | None:
    """The window flags of a stream ``codec`` wrote, or None when the codec is not
    rate-capped (then there is nothing to count)."""
    if not isinstance(codec, RateCappedCodec):
        return None
    return window_header(data)[0]


def bound_windows(flags: list[int], batch: int) -> list[int]:
    """Positions, within the last ``batch`` windows coded, where the cap bound."""
    recent = flags[len(flags) - batch:]
    return [w for w, f in enumerate(recent) if f & FLAG_CAP]


def binding_cost(coded, task, split: int, inputs: dict, hidden: torch.Tensor,
                 recon: torch.Tensor, reference, metrics: dict, bound: list[int]) -> None:
    """Append to ``coded.cap_cost`` the metric differences (capped − uncapped) of the
    windows ``bound`` of this batch: those windows are coded again with
    ``coded.fitted.uncapped`` (a real stream, decoded), the suffix is run on the batch
    with them replaced, and ``task.metrics`` is compared window by window."""
    uncapped = getattr(coded.fitted, "uncapped", None)
    if uncapped is None or not bound:
        return
    free = recon.clone()
    for w in bound:
        free[w] = uncapped.decode(uncapped.encode(hidden[w]))
    with torch.inference_mode():
        output = task.suffix(split, inputs, free)
    without = task.metrics(reference, output, inputs)
    for name, values in metrics.items():
        capped, base = np.asarray(values), np.asarray(without[name])
        coded.cap_cost.setdefault(name, []).extend(
            float(capped[w] - base[w]) for w in bound)


def summary(coded) -> dict | None:
    """What a row stores about the cap (None for a codec that is not rate-capped):
    ``B_cap``, on how many of the windows it bound (and how many fell back to the
    means), and per metric the mean change over all windows (what the cap adds to the
    row's mean) and over the windows where it bound."""
    if not coded.cap_flags:
        return None
    flags = np.asarray(coded.cap_flags)
    bound = int(np.count_nonzero(flags & FLAG_CAP))
    windows = len(flags)
    cost = {name: {"mean_over_windows": float(np.sum(values)) / windows,
                   "mean_over_bound_windows": float(np.mean(values)) if values else None}
            for name, values in coded.cap_cost.items()}
    return {"cap_bits_per_token": float(coded.codec.cap_bits_per_token),
            "windows": windows, "windows_bound": bound,
            "windows_fallback": int(np.count_nonzero(flags & FLAG_FALLBACK)),
            "cost": cost}


def _cost(cap: dict, name: str, key: str) -> str:
    value = cap["cost"].get(name, {}).get(key)
    return "–" if value is None else f"{value:+.4g}"


def cap_section(results: dict) -> list[str]:
    """report.md lines: per capped row, how often the cap bound on the evaluation
    documents and on each other corpus, and its cost in the primary distortion (empty
    when no row is capped)."""
    rows = [row for row in results.get("runs") or [] if row.get("rate_cap")]
    if not rows:
        return []
    bound = sum(row["rate_cap"]["windows_bound"] for row in rows)
    windows = sum(row["rate_cap"]["windows"] for row in rows)
    lines = ["", "## Rate cap", "",
             "Every fitted codec is capped at B_cap bits/token (`--rate-cap` × its fitted "
             "rate): a window that would exceed it is coded at a coarser step. Where the cap "
             "bound, the window is coded again without the cap and the change of the primary "
             "distortion is measured (a statistic of these windows). The cap bound on "
             f"{bound} of {windows} evaluation windows of the {len(rows)} capped rows.", "",
             "| architecture | split | codec | level | B_cap | bound / windows | fallbacks | "
             "Δ distortion (row mean) | Δ on bound windows | other text: bound / windows |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        cap, name = row["rate_cap"], row["distortion_name"]
        other = ", ".join(
            f"{corpus} {o['rate_cap']['windows_bound']}/{o['rate_cap']['windows']}"
            for corpus, o in (row.get("other_text") or {}).items() if o.get("rate_cap"))
        lines.append(f"| {row['architecture']} | {row['split']} | {row['codec']} | "
                     f"{row['level']} | {cap['cap_bits_per_token']:,.0f} | "
                     f"{cap['windows_bound']} / {cap['windows']} | {cap['windows_fallback']} | "
                     f"{_cost(cap, name, 'mean_over_windows')} | "
                     f"{_cost(cap, name, 'mean_over_bound_windows')} | {other or '–'} |")
    return lines
