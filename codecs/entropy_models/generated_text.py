"""More fit text for an entropy model, without another corpus: windows the model writes
from the statistics windows' prompts (issue 20).

The per-token-id table of ``klt-context-tokens-table`` needs many (position, context)
samples per id, and codec_bench's statistics windows hold only 22 × 256 tokens; the rest
of the fit documents is the calibration probe, which must stay held out. Here the model
samples continuations of the statistics windows' first tokens
(:func:`rdgap.codecs.transforms.generated_fit.sample_continuations`, temperature 1),
the prefix runs to the split on them, and those windows join the statistics windows as
fit text of the entropy model (its ridge, table and tables of scales). The transform, the
Fisher and the calibration probe are the context's, unchanged: nothing of the probe or
of any evaluation document enters, only the statistics windows' prompts and the model.

Window ``i`` continues the prompt of statistics window ``i mod W``; the windows are
sampled :data:`CHUNK` at a time, the chunk from window ``s`` with seed
``100003·seed + s`` (as ``benchmarks/robust_generated.py`` samples and caches them), so
the same seed gives the same windows and a count extends a smaller one. Sampling costs
about half a minute per window on a shared CPU, so the ids are kept on disk under
``cache`` (a folder; default :func:`rdgap.paths.cache_dir` ``/generated``), keyed by a
digest of the model's token embeddings and everything that decides them, and the states
in memory for the process (a calibration at a second level reuses them).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..fit import FitContext
from ..transforms.generated_fit import sample_continuations, split_states, window_prompts

#: Tokens of each statistics window that prompt a generated window.
PROMPT_TOKENS = 32
#: Windows sampled together, each chunk with its own seed.
CHUNK = 8

_STATES: dict[tuple, tuple] = {}


def chunk_seed(seed: int, start: int) -> int:
    """The seed of the chunk of generated windows that starts at window ``start``."""
    return seed * 100_003 + start


def generated_ids(model, input_ids: torch.Tensor, count: int, seed: int = 0,
                  prompt_tokens: int = PROMPT_TOKENS, temperature: float = 1.0,
                  cache: str | Path | None = None) -> torch.Tensor:
    """``count`` windows of ``input_ids``' length that ``model`` writes from the first
    ``prompt_tokens`` ids of the windows of ``input_ids`` (window ``i``: row ``i mod W``).

    Parameters
    ----------
    model : transformers causal LM
        In evaluation mode.
    input_ids : (windows, tokens) integer tensor
        The statistics windows' ids; only their first ``prompt_tokens`` columns are read.
    count : int
        Generated windows (≥ 1).
    seed : int
        Chunk ``s`` is sampled with seed :func:`chunk_seed` ``(seed, s)``.
    prompt_tokens : int
        ``1 ≤ prompt_tokens < tokens``.
    temperature : float
        > 0 (1: the model's own distribution).
    cache : path-like, optional
        Folder where the ids are kept (default: ``rdgap.paths.cache_dir() / "generated"``;
        False: none).

    Returns
    -------
    (count, tokens) int64 tensor
    """
    prompts = window_prompts(input_ids, count, prompt_tokens, name="input_ids")
    length = input_ids.shape[1]
    path = _cache_path(model, prompts, length, seed, temperature, cache)
    if path is not None and path.is_file():
        saved = torch.load(path, weights_only=True)
        if torch.equal(saved[:, :prompt_tokens], prompts):
            return saved
    chunks = [sample_continuations(model, prompts[start:start + CHUNK],
                                   length - prompt_tokens, seed=chunk_seed(seed, start),
                                   temperature=temperature, batch_size=CHUNK)
              for start in range(0, count, CHUNK)]
    ids = torch.cat(chunks)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(ids, path)
    return ids


def _cache_path(model, prompts: torch.Tensor, length: int, seed: int, temperature: float,
                cache) -> Path | None:
    if cache is False:
        return None
    if cache is None:
        from rdgap.paths import cache_dir

        cache = cache_dir() / "generated"
    digest = hashlib.sha256()
    weights = model.get_input_embeddings().weight.detach().float().contiguous()
    digest.update(weights.numpy().tobytes())
    digest.update(prompts.contiguous().numpy().tobytes())
    digest.update(f"{length}:{seed}:{temperature!r}:{CHUNK}".encode())
    return Path(cache) / f"windows-{digest.hexdigest()[:24]}.pt"


def with_generated_text(context: FitContext, input_ids: torch.Tensor, count: int,
                        **options) -> tuple[FitContext, torch.Tensor]:
    """``context`` whose fit windows are the statistics windows followed by ``count``
    windows the split's model writes from their prompts (:func:`generated_ids`; same
    Fisher, same probe), and the ids of all of them. ``options``: ``seed``,
    ``prompt_tokens``, ``temperature``, ``cache``."""
    if not isinstance(input_ids, torch.Tensor) or \
            tuple(input_ids.shape) != tuple(context.hidden.shape[:2]):
        raise ValueError(f"input_ids: expected the ids of the statistics windows, shape "
                         f"{tuple(context.hidden.shape[:2])}, got "
                         f"{tuple(getattr(input_ids, 'shape', ()))}")
    split = context.split
    ids = generated_ids(split.model, input_ids, count, **options)
    key = (id(split.model), split.split, hashlib.sha256(ids.numpy().tobytes()).hexdigest())
    kept = _STATES.get(key)
    if kept is None or kept[0] is not split.model:
        with torch.no_grad():
            kept = _STATES[key] = (split.model, split_states(split, ids))
    hidden = kept[1].to(context.hidden.dtype)
    return (FitContext(split, torch.cat([context.hidden, hidden]), context.fisher,
                       context.probe),
            torch.cat([input_ids.long(), ids]))
