"""One forward pass that keeps the hidden states at several split points."""

from __future__ import annotations

import torch

from .split import SplitModel, decoder_layers


@torch.no_grad()
def logits_and_hidden(model: torch.nn.Module, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor | None,
                      splits: list[int]) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """The full model's logits and the hidden state after each layer count in ``splits``.

    Each captured state is exactly what :meth:`SplitModel.prefix` returns for
    that split (the same operations run on the same inputs).
    """
    layers = decoder_layers(model)
    for k in splits:
        SplitModel(model, k)  # validates the split index
    captured: dict[int, torch.Tensor] = {}
    handles = []
    for k in sorted(set(splits)):
        def keep(module, args, output, k=k):
            captured[k] = output[0] if isinstance(output, tuple) else output
        handles.append(layers[k - 1].register_forward_hook(keep))
    try:
        logits = SplitModel(model, splits[0]).full(input_ids, attention_mask)
    finally:
        for handle in handles:
            handle.remove()
    return logits, captured
