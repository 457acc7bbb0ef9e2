"""rdgap.split: run a transformer up to layer ``k``, keep the hidden state, run the rest.

The split harness every codec is measured through; it is not a codec. Its three jobs,
one module each:

- :mod:`rdgap.split.layers` — find a model's layer stack (:func:`find_layers`) and split
  any layer list after layer ``k`` with forward hooks and stand-in layers
  (:class:`LayerSplit`);
- :mod:`rdgap.split.model` — :class:`SplitModel`: a transformers model's prefix, suffix
  and full pass, ``suffix(prefix(x))`` equal to ``model(x)`` bit for bit;
- :mod:`rdgap.split.capture` — :func:`logits_and_hidden`: one forward pass that keeps the
  states at several split points.

``rdgap.codecs.split``, ``rdgap.codecs.capture`` and ``rdgap.codecs.layer_stack`` are
deprecation aliases of these modules for one release (:mod:`rdgap.codecs._moved`).

>>> import torch
>>> from rdgap.split import SplitModel
>>> from rdgap.validation.models import tiny_llama
>>> split = SplitModel(tiny_llama(num_layers=3), 1)
>>> tokens = torch.tensor([[5, 6, 7]])
>>> bool(torch.equal(split.suffix(split.prefix(tokens)), split.full(tokens)))
True
"""

from .capture import logits_and_hidden
from .layers import LayerSplit, check_split_point, decoder_layers, find_layers
from .model import SplitModel, model_output, position_ids_from_mask

__all__ = ["SplitModel", "logits_and_hidden", "LayerSplit", "find_layers", "decoder_layers",
           "check_split_point", "model_output", "position_ids_from_mask"]
