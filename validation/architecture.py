"""One loaded architecture of the run (:class:`Architecture`): its task, windows, hidden
states at each split (from :mod:`.cache` or one forward pass), fit contexts, the variants
it can run, and its entry in ``results.json`` (:func:`describe`)."""

from __future__ import annotations

import torch

from rdgap.codecs import recipes

from .cache import HiddenCache, entry_key, model_digest
from .config import ValidateConfig, spread_splits
from .tasks import token_variant_refusal


def batches(count: int, size: int) -> list[slice]:
    """Slices of ``size`` consecutive windows (the last one shorter) covering ``count``."""
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


class Architecture:
    """One loaded task and what the run computed for it: windows, hidden states, fits."""

    def __init__(self, task, config: ValidateConfig, cache: HiddenCache):
        self.task, self.config, self.cache = task, config, cache
        self.splits = config.splits or spread_splits(task.num_layers, config.split_count)
        for k in self.splits:
            if not 0 < k < task.num_layers:
                raise ValueError(f"split: expected 0 < split < {task.num_layers} for "
                                 f"{task.name}, got {k}")
        self.model_hash: str | None = None
        self.windows: dict[str, object] = {}
        self.hidden: dict[tuple[str, int], torch.Tensor] = {}
        self.contexts: dict[int, object] = {}
        self.split_statistics: dict[int, dict] = {}
        #: (split, level) → the shift guard's fallback fitted there (one FittedCodec shared
        #: by every guarded recipe and the fallback recipe's own job; issue 19)
        self.fallbacks: dict[tuple[int, float], object] = {}
        #: variant → why this architecture cannot run it (it is skipped): a recipe that
        #: codes the token ids needs the token-embedding table at the receiver
        self.skipped_variants: dict[str, str] = {}
        for variant in config.variants:
            refusal = token_variant_refusal(task, variant) \
                if recipes.recipe(variant).needs_token_ids else None
            if refusal:
                self.skipped_variants[variant] = refusal
        self.variants = tuple(v for v in config.variants if v not in self.skipped_variants)

    def window_set(self, part: str):
        if part not in self.windows:
            count = self.config.windows if part == "eval" else self.config.fit_windows
            self.windows[part] = self.task.windows(part, count, self.config.window_length)
        return self.windows[part]

    def hidden_states(self, part: str, splits: list[int], bar) -> None:
        """Hidden states of every window of ``part`` at ``splits``: from the cache, or one
        forward pass per batch for all the splits the cache lacks (then stored)."""
        windows = self.window_set(part)
        if self.model_hash is None:
            self.model_hash = model_digest(self.task.model)
        keys = {k: entry_key(self.task.name, self.model_hash, windows.inputs, k,
                             {"part": part, "batch_size": self.config.batch_size})
                for k in splits if (part, k) not in self.hidden}
        missing = []
        for k, key in keys.items():
            cached = self.cache.get(key)
            if cached is None:
                missing.append(k)
            else:
                self.hidden[(part, k)] = cached
        if not missing:
            bar.update(len(windows))
            return
        parts: dict[int, list[torch.Tensor]] = {k: [] for k in missing}
        for batch in batches(len(windows), self.config.batch_size):
            bar.set_postfix_str(f"{self.task.name} {part} windows {batch.start}–{batch.stop - 1}")
            with torch.no_grad():
                _, states = self.task.forward(windows.select(batch).inputs, missing)
            for k in missing:
                parts[k].append(states[k].detach())
            bar.update(batch.stop - batch.start)
        for k in missing:
            self.hidden[(part, k)] = torch.cat(parts[k])
            self.cache.put(keys[k], self.hidden[(part, k)])

    def fit_context(self, k: int):
        if k not in self.contexts:
            self.contexts[k] = self.task.fit_context(k, self.window_set("fit"),
                                                     self.hidden[("fit", k)])
        return self.contexts[k]


def describe(arch: Architecture) -> dict:
    """The architecture's entry in ``results.json["architectures"]``."""
    task = arch.task
    windows = arch.window_set("eval")
    return {"name": task.name, "model_type": task.model_type, "task": task.task,
            "num_layers": task.num_layers, "width": task.width, "splits": arch.splits,
            "metrics": list(task.metrics_names), "windows": len(windows),
            "window_length": arch.config.window_length,
            "documents": int(len(set(windows.document.tolist()))),
            "skipped_variants": dict(arch.skipped_variants),
            "chosen_because": getattr(task, "chosen_because", None),
            "corpora": dict(getattr(task, "sources", {})) or None}
