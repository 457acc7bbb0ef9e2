"""One forward pass that keeps the hidden states at several split points."""

from __future__ import annotations

import torch

from .model import SplitModel


@torch.no_grad()
def logits_and_hidden(model: torch.nn.Module, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor | None,
                      splits: list[int]) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """The full model's output and the hidden state after each layer count in ``splits``.

    Works for every model :class:`SplitModel` splits (the output is the logits,
    or an encoder's last hidden state). Each captured state is exactly what
    :meth:`SplitModel.prefix` returns for that split (the same operations run
    on the same inputs).
    """
    if not splits:
        raise ValueError("splits: expected at least one split point, got none")
    split = SplitModel(model, splits[0])
    for k in splits:
        split.stack.check_split(k)
    return split.capture(input_ids, attention_mask, splits)
