"""Split any transformers model after layer ``k`` of its layer stack, bit for bit.

One mechanism for every architecture, not a list of families:

- **the layer stack** (:func:`find_layers`): the ``nn.ModuleList`` of the
  model's repeated block class whose length is ``config.num_hidden_layers``
  (``model.layers`` of Llama/Qwen/Gemma/Phi/Mistral, ``transformer.h`` of
  GPT-2 and Falcon, ``gpt_neox.layers``, ``model.decoder.layers`` of OPT,
  ``encoder.layer`` of BERT, ``vit.encoder.layer(s)``), or the one named by
  ``layers=``;
- **the prefix** runs the model's own forward and a forward hook on layer
  ``k-1`` keeps its output and stops the pass;
- **the suffix** runs the model's own forward on *placeholder* inputs of the
  right shape (token ids 0, or a blank image) with the real attention mask and
  positions, while layers ``0..k-2`` are swapped for stand-ins that pass their
  input through and layer ``k-1`` for one that outputs the given state. So
  whatever the model applies before its first layer (embeddings, OPT's
  ``project_in``, Gemma's scaling, GPT-2's position embedding) runs on the
  placeholder and is discarded, and the real state enters layer ``k`` exactly
  where the unsplit pass delivers it. Stand-ins return what the real layer
  returns (a tensor, or a tuple whose first item is the state, as Falcon's
  layers do; learned once per stack from one stopped pass), and keep the real
  layer's plain attributes (e.g. ``attention_type``), so per-layer settings
  still apply. The layer list keeps its length and is restored afterwards,
  even on error.

Layers ``k..L-1``, the final norm and the head then see exactly the tensors
of the unsplit pass, so ``suffix(prefix(x))`` equals ``model(x)`` bit for bit
(``tests/split/test_architectures.py`` checks every split of 14 architectures).
"""

from __future__ import annotations

import inspect
from typing import Callable

import torch
from torch import nn

# _RETURNS, _StopForward and decoder_layers are re-exported for the deprecated alias
# rdgap.codecs.split (this module), whose users imported them from there
from .layers import (_RETURNS, LayerSplit, _StopForward, check_split_point,  # noqa: F401
                     decoder_layers, find_layers)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that count only real tokens, so left padding does not shift them.

    Padded slots get position 0 (their outputs are masked and never used).
    """
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.clamp_min(0)


def _accepts(function: Callable, name: str) -> bool:
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def model_output(out) -> torch.Tensor:
    """The output a split is judged by: ``logits`` when the model has a head, else
    ``last_hidden_state`` (an encoder), else the first item."""
    for name in ("logits", "last_hidden_state"):
        value = getattr(out, name, None)
        if isinstance(value, torch.Tensor):
            return value
    return out if isinstance(out, torch.Tensor) else out[0]


class SplitModel:
    """A transformers model split after layer ``split`` of its layer stack.

    Parameters
    ----------
    model : transformers model
        Any architecture whose forward runs one layer list in order (causal LMs,
        encoders such as BERT, vision transformers), in evaluation mode. It is
        not copied; the suffix swaps its first layers for stand-ins during a
        call and restores them before returning.
    split : int
        Number of layers in the prefix, ``0 < split < num_layers``.
    layers : str or nn.ModuleList, optional
        The layer stack when :func:`find_layers` cannot tell it.

    Notes
    -----
    The first argument of :meth:`full` and :meth:`prefix` is the model's main
    input (``model.main_input_name``): token ids ``(batch, tokens)`` with an
    optional attention mask, or ``pixel_values`` ``(batch, channels, height,
    width)``. Models that can generate get positions counted from the mask
    (left padding does not shift them). The output is ``logits`` when the
    model has a head, else ``last_hidden_state``.

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

    def __init__(self, model: nn.Module, split: int, layers: str | nn.ModuleList | None = None):
        self.layers = find_layers(model, layers)
        count = len(self.layers)
        check_split_point(split, count, "layers")
        self.model = model
        self.split = split
        self.num_layers = count
        self.main_input = getattr(model, "main_input_name", "input_ids")
        if self.main_input not in ("input_ids", "pixel_values"):
            raise TypeError(f"model: expected a model whose main input is input_ids or "
                            f"pixel_values, got {self.main_input!r} ({type(model).__name__})")
        forward = model.forward
        self._positions = _accepts(forward, "position_ids") and \
            bool(getattr(model, "can_generate", lambda: False)())
        self._use_cache = _accepts(forward, "use_cache")
        self.stack = LayerSplit(self.layers, self._run)

    # -- inputs ---------------------------------------------------------------
    def inputs(self, main: torch.Tensor, attention_mask: torch.Tensor | None = None) -> dict:
        """The keyword inputs of the model's forward for ``main`` (checked)."""
        if self.main_input == "pixel_values":
            if not isinstance(main, torch.Tensor) or main.dim() != 4 \
                    or not main.is_floating_point():
                raise ValueError("pixel_values: expected a float tensor (batch, channels, "
                                 f"height, width), got {getattr(main, 'dtype', type(main))} "
                                 f"{tuple(getattr(main, 'shape', ()))}")
            if attention_mask is not None:
                raise ValueError("attention_mask: a vision model takes none; pass None")
            return {"pixel_values": main}
        if not isinstance(main, torch.Tensor) or main.dim() != 2 \
                or main.dtype not in (torch.int64, torch.int32):
            raise ValueError("input_ids: expected an integer tensor of shape (batch, tokens), "
                             f"got {getattr(main, 'dtype', type(main))} "
                             f"{tuple(getattr(main, 'shape', ()))}")
        if attention_mask is None:
            attention_mask = torch.ones_like(main)
        elif attention_mask.shape != main.shape:
            raise ValueError(f"attention_mask: expected shape {tuple(main.shape)} "
                             f"like input_ids, got {tuple(attention_mask.shape)}")
        return {"input_ids": main.long(), "attention_mask": attention_mask.long()}

    def placeholder(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None,
                    input_ids: torch.Tensor | None = None) -> dict:
        """Inputs of the right shape for a suffix from ``hidden``: token ids 0 (or the
        given ``input_ids``) with the real mask, or a blank image."""
        if self.main_input == "pixel_values":
            config = self.model.config
            size = config.image_size if isinstance(config.image_size, (tuple, list)) \
                else (config.image_size,) * 2
            parameter = next(self.model.parameters())
            return {"pixel_values": torch.zeros(hidden.shape[0], config.num_channels, *size,
                                                 dtype=parameter.dtype, device=hidden.device)}
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        elif attention_mask.shape != hidden.shape[:2]:
            raise ValueError(f"attention_mask: expected shape {tuple(hidden.shape[:2])} "
                             f"(batch, tokens), got {tuple(attention_mask.shape)}")
        if input_ids is None:
            input_ids = torch.zeros(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        return self.inputs(input_ids, attention_mask)

    def _run(self, inputs: dict) -> torch.Tensor:
        extra = {}
        if self._positions and "attention_mask" in inputs:
            extra["position_ids"] = position_ids_from_mask(inputs["attention_mask"])
        if self._use_cache:
            extra["use_cache"] = False
        return model_output(self.model(**inputs, **extra))

    # -- the three passes -----------------------------------------------------
    @torch.no_grad()
    def full(self, input_ids: torch.Tensor,
             attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Output of the unsplit model (logits, or the last hidden state of an encoder)."""
        return self._run(self.inputs(input_ids, attention_mask))

    @torch.no_grad()
    def prefix(self, input_ids: torch.Tensor,
               attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """State after layer ``split``, ``(batch, tokens, width)``."""
        return self.stack.prefix_state(self.split, self.inputs(input_ids, attention_mask))

    @torch.no_grad()
    def suffix(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None,
               input_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Output from a state at the split (see :meth:`suffix_differentiable`)."""
        return self.suffix_differentiable(hidden, attention_mask, input_ids)

    def suffix_differentiable(self, hidden: torch.Tensor,
                              attention_mask: torch.Tensor | None = None,
                              input_ids: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`suffix` with autograd on, so gradients reach ``hidden``.

        ``input_ids`` (optional) replace the placeholder ids; they only matter to a
        model that feeds token ids to layers after the split.
        """
        if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3:
            raise ValueError("hidden: expected a float tensor (batch, tokens, width), got "
                             f"{tuple(getattr(hidden, 'shape', ()))}")
        if not hidden.is_floating_point():
            raise ValueError(f"hidden: expected a floating-point tensor, got {hidden.dtype}")
        if not torch.isfinite(hidden).all():
            raise ValueError("hidden: contains NaN or Inf; expected finite values "
                             "(check the codec that produced it)")
        inputs = self.placeholder(hidden, attention_mask, input_ids)
        return self.stack.suffix(self.split, inputs, hidden)

    @torch.no_grad()
    def capture(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                splits: list[int]) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """The full output and the state after each layer count in ``splits``, one pass."""
        return self.stack.capture(self.inputs(input_ids, attention_mask), list(splits))

    @torch.no_grad()
    def full_with_transform(self, input_ids: torch.Tensor,
                            transform: Callable[[torch.Tensor], torch.Tensor],
                            attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Output of one forward pass whose state at the split is replaced.

        ``transform`` receives the state after layer ``split`` and returns the one
        that enters layer ``split`` (e.g. a codec round trip).
        """
        return self.suffix(transform(self.prefix(input_ids, attention_mask)), attention_mask)
