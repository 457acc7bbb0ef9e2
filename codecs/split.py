"""Split a transformers causal LM after decoder layer ``k``.

``prefix(tokens) -> hidden`` runs the embedding and layers ``0..k-1``;
``suffix(hidden) -> logits`` runs layers ``k..L-1``, the final norm and the
head. ``suffix(prefix(x))`` equals the full model's logits bit for bit in
float32, because the suffix executes exactly the operations of the full
forward pass on exactly the same inputs: position ids and the attention mask
are built the same way, and the hidden state enters layer ``k`` unchanged.

Nothing in the model's source is edited. The prefix captures the output of
layer ``k-1`` with a forward hook and stops the pass there; the suffix runs the
model's own forward with layers ``0..k-1`` temporarily replaced by stand-ins
that pass the given hidden state through (the layer list keeps its length, so
per-layer settings indexed by position stay right), restored afterwards even
on error.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn


class _StopForward(Exception):
    """Raised by the prefix hook to end the forward pass after layer k-1."""


class _PassThrough(nn.Module):
    """Stands in for a skipped decoder layer: returns its input unchanged."""

    def __init__(self, attention_type: str | None):
        super().__init__()
        if attention_type is not None:
            self.attention_type = attention_type

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


class _Inject(_PassThrough):
    """Stands in for decoder layer k-1: outputs the given hidden state."""

    def __init__(self, hidden: torch.Tensor, attention_type: str | None):
        super().__init__(attention_type)
        self.hidden = hidden

    def forward(self, hidden_states, *args, **kwargs):
        return self.hidden


def check_split_point(split, count: int, layers: str = "layers") -> int:
    """``split`` itself, or a clear error unless it is an int with ``0 < split < count``."""
    if isinstance(split, bool) or not isinstance(split, int):
        raise TypeError(f"split: expected an int, got {type(split).__name__}")
    if not 0 < split < count:
        raise ValueError(f"split: expected 0 < split < {count} (the model has {count} "
                         f"{layers}), got {split}")
    return split


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The list of decoder layers of a transformers causal LM.

    Raises
    ------
    TypeError
        If the model has no ``model.layers`` (Llama family) or ``get_decoder().layers``.
    """
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None and hasattr(model, "get_decoder"):
        layers = getattr(model.get_decoder(), "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise TypeError(f"model: expected a transformers causal LM with decoder layers at "
                        f"`model.model.layers` (Llama family), got {type(model).__name__}")
    return layers


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that count only real tokens, so left padding does not shift them.

    Padded slots get position 0 (their outputs are masked and never used).
    """
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.clamp_min(0)


class SplitModel:
    """A causal LM split after decoder layer ``split``.

    Parameters
    ----------
    model : transformers causal LM
        A Llama-family model (decoder layers at ``model.model.layers``), in
        evaluation mode. It is not copied; the suffix swaps its first layers
        for stand-ins during a call and restores them before returning.
    split : int
        Number of decoder layers in the prefix, ``0 < split < num_layers``.

    Examples
    --------
    >>> import torch
    >>> from rdgap.validation.models import tiny_llama
    >>> model = tiny_llama(num_layers=3)
    >>> split = SplitModel(model, 2)
    >>> tokens = torch.tensor([[5, 6, 7, 8]])
    >>> hidden = split.prefix(tokens)
    >>> tuple(hidden.shape)
    (1, 4, 64)
    >>> bool(torch.equal(split.suffix(hidden), split.full(tokens)))
    True
    """

    def __init__(self, model: nn.Module, split: int):
        self.layers = decoder_layers(model)
        count = len(self.layers)
        check_split_point(split, count, "decoder layers")
        self.model = model
        self.split = split
        self.num_layers = count

    # -- inputs ---------------------------------------------------------------
    def _inputs(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 \
                or input_ids.dtype not in (torch.int64, torch.int32):
            raise ValueError("input_ids: expected an integer tensor of shape (batch, tokens), "
                             f"got {getattr(input_ids, 'dtype', type(input_ids))} "
                             f"{tuple(getattr(input_ids, 'shape', ()))}")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        elif attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask: expected shape {tuple(input_ids.shape)} "
                             f"like input_ids, got {tuple(attention_mask.shape)}")
        return input_ids.long(), attention_mask.long()

    def _forward(self, attention_mask: torch.Tensor, **kwargs) -> torch.Tensor:
        out = self.model(attention_mask=attention_mask,
                         position_ids=position_ids_from_mask(attention_mask),
                         use_cache=False, **kwargs)
        return out.logits

    # -- the three passes -----------------------------------------------------
    @torch.no_grad()
    def full(self, input_ids: torch.Tensor,
             attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the unsplit model, ``(batch, tokens, vocab)``."""
        input_ids, attention_mask = self._inputs(input_ids, attention_mask)
        return self._forward(attention_mask, input_ids=input_ids)

    @torch.no_grad()
    def prefix(self, input_ids: torch.Tensor,
               attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden state after layer ``split``, ``(batch, tokens, width)``."""
        input_ids, attention_mask = self._inputs(input_ids, attention_mask)
        captured: list[torch.Tensor] = []

        def capture(module, args, output):
            captured.append(output[0] if isinstance(output, tuple) else output)
            raise _StopForward

        handle = self.layers[self.split - 1].register_forward_hook(capture)
        try:
            self._forward(attention_mask, input_ids=input_ids)
        except _StopForward:
            pass
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError(f"layer {self.split - 1} was never called: the model's forward "
                               f"does not run its decoder layers in order")
        return captured[0]

    @torch.no_grad()
    def suffix(self, hidden: torch.Tensor,
               attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from a hidden state at the split, ``(batch, tokens, vocab)``."""
        return self.suffix_differentiable(hidden, attention_mask)

    def suffix_differentiable(self, hidden: torch.Tensor,
                              attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`suffix` with autograd on, so gradients reach ``hidden``."""
        if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3:
            raise ValueError("hidden: expected a float tensor (batch, tokens, width), got "
                             f"{tuple(getattr(hidden, 'shape', ()))}")
        if not hidden.is_floating_point():
            raise ValueError(f"hidden: expected a floating-point tensor, got {hidden.dtype}")
        if not torch.isfinite(hidden).all():
            raise ValueError("hidden: contains NaN or Inf; expected finite values "
                             "(check the codec that produced it)")
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        elif attention_mask.shape != hidden.shape[:2]:
            raise ValueError(f"attention_mask: expected shape {tuple(hidden.shape[:2])} "
                             f"(batch, tokens), got {tuple(attention_mask.shape)}")
        with self._layers_replaced(hidden):
            return self._forward(attention_mask.long(), inputs_embeds=hidden)

    @torch.no_grad()
    def full_with_transform(self, input_ids: torch.Tensor,
                            transform: Callable[[torch.Tensor], torch.Tensor],
                            attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of one forward pass whose hidden state at the split is replaced.

        ``transform`` receives the hidden state after layer ``split`` and
        returns the one that enters layer ``split`` (e.g. a codec round trip).
        """
        return self.suffix(transform(self.prefix(input_ids, attention_mask)), attention_mask)

    @contextmanager
    def _layers_replaced(self, hidden: torch.Tensor) -> Iterator[None]:
        originals = [self.layers[j] for j in range(self.split)]
        types = [getattr(layer, "attention_type", None) for layer in originals]
        try:
            for j in range(self.split - 1):
                self.layers[j] = _PassThrough(types[j])
            self.layers[self.split - 1] = _Inject(hidden, types[self.split - 1])
            yield
        finally:
            for j, layer in enumerate(originals):
                self.layers[j] = layer
