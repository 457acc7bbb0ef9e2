"""Fit statistics also from text the model writes from the fit documents (issue 19).

The Fisher-whitened KLT fitted on news misses its ΔCE level on other text; the same
steps with the KLT basis and mean re-estimated on the other text's own windows meet it
(``docs/domain-shift.md``, item 6: an oracle). This module gets more of the model's
state space into the fit *without another corpus*: the model samples continuations of
prompts taken from the fit windows (their first ``prompt_tokens`` tokens; temperature
1 by default, optional top-p), the prefix runs to the split on those windows, and their
states join the fit windows' states in the statistics from which the transform (mean,
covariance, per-component scales) is estimated. Optionally the Fisher is also
estimated on them and pooled with the fit windows' Fisher.

Nothing but the fit documents and the model enters: a prompt is the start of a fit
window, every later token is sampled from the model with a seeded
:class:`torch.Generator`, so the same seed gives the same tokens. The calibration of
the step scale stays on the fit probe windows (the user's text and level).
:mod:`benchmarks/robust_generated.py <benchmarks.robust_generated>` measures what it
holds and costs.
"""

from __future__ import annotations

import numpy as np
import torch

from ..fit import FitContext
from rdgap.split import SplitModel
from .fisher import FisherDiagonal, fisher_diagonal


def sample_continuations(model, prompts: torch.Tensor, tokens: int, seed: int = 0,
                         temperature: float = 1.0, top_p: float | None = None,
                         batch_size: int = 8) -> torch.Tensor:
    """``prompts`` followed by ``tokens`` tokens sampled from the causal LM ``model``.

    Parameters
    ----------
    model : transformers causal LM
        In evaluation mode; called with ``use_cache=True`` (its key/value cache).
    prompts : (N, P) integer tensor
        Token ids of the prompts (no padding).
    tokens : int
        Tokens to sample after each prompt (≥ 1).
    seed : int
        Seed of the :class:`torch.Generator` every draw uses: the same seed, prompts
        and model give the same tokens.
    temperature : float
        > 0; 1 samples the model's own distribution.
    top_p : float, optional
        Nucleus sampling: keep the smallest set of tokens whose probability reaches
        ``top_p`` (in ``(0, 1]``); None keeps all.
    batch_size : int
        Prompts sampled together.

    Returns
    -------
    (N, P + tokens) tensor of token ids.
    """
    if not isinstance(prompts, torch.Tensor) or prompts.dim() != 2 or prompts.shape[1] < 1 \
            or prompts.is_floating_point():
        raise ValueError(f"prompts: expected integer token ids (prompts, tokens ≥ 1), got "
                         f"{tuple(getattr(prompts, 'shape', ()))}")
    if tokens < 1:
        raise ValueError(f"tokens: expected ≥ 1 tokens to sample, got {tokens}")
    if not temperature > 0:
        raise ValueError(f"temperature: expected > 0 (1: the model's distribution), got "
                         f"{temperature}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p: expected a probability in (0, 1] or None, got {top_p}")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected ≥ 1, got {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for start in range(0, prompts.shape[0], batch_size):
            ids = prompts[start:start + batch_size].long()
            result = model(input_ids=ids, use_cache=True)
            drawn = [ids]
            for step in range(tokens):
                logits = result.logits[:, -1].double() / temperature
                probs = torch.softmax(logits, dim=-1)
                if top_p is not None and top_p < 1:
                    probs = _nucleus(probs, top_p)
                nxt = torch.multinomial(probs, 1, generator=generator)
                drawn.append(nxt)
                if step + 1 < tokens:
                    result = model(input_ids=nxt, use_cache=True, **_cache_of(result))
            out.append(torch.cat(drawn, dim=1))
    return torch.cat(out)


def _cache_of(result) -> dict:
    """The key/value cache of a model output as the keyword the next call takes
    (``cache`` in transformers ≥ 5.x, ``past_key_values`` before)."""
    if "cache" in result:
        return {"cache": result["cache"]}
    return {"past_key_values": result.past_key_values}


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """``probs`` restricted to each row's smallest set reaching ``top_p``, renormalised."""
    ordered, order = probs.sort(dim=-1, descending=True)
    before = ordered.cumsum(-1) - ordered  # mass of the tokens ranked above
    ordered = torch.where(before < top_p, ordered, torch.zeros_like(ordered))
    kept = torch.zeros_like(probs).scatter(-1, order, ordered)
    return kept / kept.sum(-1, keepdim=True)


def window_prompts(input_ids: torch.Tensor, count: int, prompt_tokens: int,
                   name: str = "fit_input_ids") -> torch.Tensor:
    """The prompts of ``count`` generated windows: row ``i`` is the first ``prompt_tokens``
    ids of window ``i mod W`` of ``input_ids`` ``(W, tokens)`` (int64). Refusals name the
    argument (``name`` is the caller's name for ``input_ids``)."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 \
            or input_ids.is_floating_point():
        raise ValueError(f"{name}: expected (windows, tokens) integer token ids, got "
                         f"{tuple(getattr(input_ids, 'shape', ()))}")
    length = input_ids.shape[1]
    if not 1 <= prompt_tokens < length:
        raise ValueError(f"prompt_tokens: expected 1 ≤ prompt_tokens < {length} (the window "
                         f"length), got {prompt_tokens}")
    if count < 1:
        raise ValueError(f"count: expected ≥ 1 generated windows, got {count}")
    rows = torch.arange(count) % input_ids.shape[0]
    return input_ids[rows, :prompt_tokens].long()


def generated_windows(model, fit_input_ids: torch.Tensor, count: int,
                      prompt_tokens: int = 32, seed: int = 0, temperature: float = 1.0,
                      top_p: float | None = None, batch_size: int = 8) -> torch.Tensor:
    """``count`` windows of the fit windows' length: the first ``prompt_tokens`` tokens
    of fit window ``i mod W`` and a continuation the model samples
    (:func:`sample_continuations`). Only the fit windows' prompts enter."""
    prompts = window_prompts(fit_input_ids, count, prompt_tokens)
    length = fit_input_ids.shape[1]
    return sample_continuations(model, prompts, length - prompt_tokens, seed=seed,
                                temperature=temperature, top_p=top_p, batch_size=batch_size)


def split_states(split: SplitModel, input_ids: torch.Tensor, batch_size: int = 4) -> torch.Tensor:
    """States at the split of every window of ``input_ids``, ``(windows, tokens, width)``."""
    return torch.cat([split.prefix(input_ids[s:s + batch_size])
                      for s in range(0, input_ids.shape[0], batch_size)])


def pooled_fisher(parts: list[tuple[FisherDiagonal, int]]) -> FisherDiagonal:
    """The Fisher of several sets of windows, each ``(estimate, windows)`` weighted by its
    number of windows (estimates of one window length, with their full matrices)."""
    if not parts:
        raise ValueError("parts: expected at least one (FisherDiagonal, windows) pair")
    tokens = {f.tokens for f, _ in parts}
    if len(tokens) != 1 or any(f.matrix is None or f.shrinkage for f, _ in parts) \
            or any(w < 1 for _, w in parts):
        raise ValueError("parts: expected unshrunk estimates with full matrices, of one "
                         f"window length (got lengths {sorted(tokens)}), each of ≥ 1 window")
    total = float(sum(w for _, w in parts))
    mix = lambda field: sum(np.asarray(getattr(f, field), dtype=np.float64) * (w / total)  # noqa: E731
                            for f, w in parts)
    return FisherDiagonal(rest=mix("rest"), first=mix("first"), tokens=tokens.pop(),
                          matrix=mix("matrix"))


def with_generated(context: FitContext, generated_hidden: torch.Tensor,
                   fisher: FisherDiagonal | None = None) -> FitContext:
    """``context`` whose statistics windows are its own followed by ``generated_hidden``
    (the transform's mean, covariance and component scales are estimated on both); the
    probe (the calibration on the fit text) is unchanged. ``fisher`` replaces the
    context's Fisher when given (e.g. :func:`pooled_fisher` of the fit and generated
    windows)."""
    hidden = context.hidden
    if generated_hidden.dim() != 3 or generated_hidden.shape[1:] != hidden.shape[1:]:
        raise ValueError(f"generated_hidden: expected (windows, {hidden.shape[1]}, "
                         f"{hidden.shape[2]}) states like the fit windows', got "
                         f"{tuple(generated_hidden.shape)}")
    return FitContext(context.split, torch.cat([hidden, generated_hidden.to(hidden.dtype)]),
                      context.fisher if fisher is None else fisher, context.probe)


def build_with_generated(model, split: SplitModel, input_ids: torch.Tensor,
                         hidden: torch.Tensor, generated: int, *,
                         generated_fisher: bool = False, prompt_tokens: int = 32,
                         seed: int = 0, temperature: float = 1.0,
                         top_p: float | None = None, **build) -> FitContext:
    """:meth:`rdgap.codecs.fit.FitContext.build` plus ``generated`` windows the model
    writes from the statistics windows' prompts (:func:`generated_windows`), whose
    states join the statistics; with ``generated_fisher`` the Fisher is also estimated
    on them and pooled with the statistics windows' (:func:`pooled_fisher`; a per-window
    Fisher costs minutes on a CPU). ``build`` goes to ``FitContext.build``
    (``statistics_windows``, ``documents``, ``fisher``, ``fisher_samples``; a
    ``fisher_shrinkage`` is applied after the pooling)."""
    shrinkage = build.pop("fisher_shrinkage", 0.0)
    context = FitContext.build(split, input_ids, hidden, **build)
    count = context.hidden.shape[0]
    ids = generated_windows(model, input_ids[:count], generated, prompt_tokens, seed=seed,
                            temperature=temperature, top_p=top_p)
    states = split_states(split, ids)
    fisher = context.fisher
    if generated_fisher:
        extra = fisher_diagonal(split, states, samples=build.get("fisher_samples", 1),
                                full=True, seed=seed + 1)
        fisher = pooled_fisher([(fisher, count), (extra, generated)])
    if shrinkage:
        from .fisher import shrink_toward_diagonal
        fisher = shrink_toward_diagonal(fisher, shrinkage)
    return with_generated(context, states, fisher)
