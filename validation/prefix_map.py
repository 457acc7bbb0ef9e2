"""The prefix as a differentiable map, for THEORY.md T10's Jacobian spectral norm.

:func:`rdgap.validation.statistics.split_statistics` needs the prefix as a
torch function of a floating-point input. For a causal LM that input is the
token embeddings: the model's own forward runs from ``inputs_embeds`` and a
forward hook ends it after layer ``k - 1``. Forward-mode AD (the JVP of the
power iteration) is not implemented for the fused CPU attention kernel, so the
map runs with the mathematically identical eager attention, restored after each
call. A task may instead provide its own ``prefix_map(k, inputs) -> (fn, x)``.
"""

from __future__ import annotations

from typing import Callable

import torch

from rdgap.split import decoder_layers


class _StopForward(Exception):
    """Raised by the hook that ends the prefix."""


def causal_lm_prefix_map(model: torch.nn.Module, k: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """``embeddings (windows, positions, width) -> hidden state after layer k``."""
    layers = decoder_layers(model)
    if not 0 < k < len(layers):
        raise ValueError(f"k: expected 0 < k < {len(layers)}, got {k}")

    def prefix(embeddings: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []

        def stop(module, args, output):
            captured.append(output[0] if isinstance(output, tuple) else output)
            raise _StopForward

        handle = layers[k - 1].register_forward_hook(stop)
        attention = model.config._attn_implementation
        model.config._attn_implementation = "eager"
        try:
            model(inputs_embeds=embeddings, use_cache=False)
        except _StopForward:
            pass
        finally:
            handle.remove()
            model.config._attn_implementation = attention
        return captured[0]

    return prefix


def prefix_map(task, k: int, inputs: dict) -> tuple[Callable, torch.Tensor] | None:
    """The prefix of ``task`` at split ``k`` as ``(fn, x)`` with ``fn(x)`` the hidden
    state, or None when the architecture offers no differentiable prefix.

    Parameters
    ----------
    task : SplitTask
        Uses ``task.prefix_map(k, inputs)`` when the task defines it, else the
        causal-LM route (``task.model`` with decoder layers and ``inputs_embeds``).
    k : int
        Split point.
    inputs : dict
        A few windows of model inputs (``input_ids`` for a causal LM).
    """
    own = getattr(task, "prefix_map", None)
    if callable(own):
        return own(k, inputs)
    model = getattr(task, "model", None)
    if model is None or "input_ids" not in inputs:
        return None
    try:
        decoder_layers(model)
    except (AttributeError, ValueError, TypeError):
        return None
    with torch.no_grad():
        embeddings = model.get_input_embeddings()(inputs["input_ids"]).detach()
    return causal_lm_prefix_map(model, k), embeddings
