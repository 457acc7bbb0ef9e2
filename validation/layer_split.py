"""Split any model whose forward runs a list of layers in order, without editing it.

:class:`rdgap.codecs.split.SplitModel` does this for causal LMs (their forward
accepts ``inputs_embeds`` after the embedding); encoders such as BERT add
position and type embeddings to ``inputs_embeds``, so the hidden state cannot
enter there. :class:`LayerSplit` uses the same two mechanisms on any
``nn.ModuleList`` whose layers take the hidden state first and return it as a
tensor:

- capture: forward hooks on layer ``k-1`` keep its output during one
  unchanged forward pass (several splits at once);
- suffix: layers ``0..k-2`` are swapped for pass-through stand-ins and layer
  ``k-1`` for one that outputs the given hidden state, the model's own forward
  runs, and the layers are restored even on error. Layers ``k..L-1`` then see
  exactly the tensors of the unsplit pass, so ``suffix(capture(x))`` equals
  the full output bit for bit.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch import nn

from rdgap.codecs.split import _Inject, _PassThrough, _StopForward, check_split_point


class LayerSplit:
    """A model split after any layer of ``layers``.

    Parameters
    ----------
    layers : nn.ModuleList
        The model's layers, run in order by its forward pass; each returns its
        hidden state as a tensor.
    run : callable
        ``run(inputs) -> output``: the full forward pass on a dict of inputs
        (including any pooling or head after the layers).

    Examples
    --------
    >>> layers = nn.ModuleList([nn.Linear(3, 3) for _ in range(3)])
    >>> def run(inputs):
    ...     h = inputs["x"]
    ...     for layer in layers:
    ...         h = layer(h)
    ...     return h.sum(-1)
    >>> split = LayerSplit(layers, run)
    >>> x = {"x": torch.randn(2, 3)}
    >>> out, hidden = split.capture(x, [1, 2])
    >>> bool(torch.equal(split.suffix(1, x, hidden[1]), out))
    True
    """

    def __init__(self, layers: nn.ModuleList, run: Callable[[dict], Any]):
        if not isinstance(layers, nn.ModuleList) or len(layers) < 2:
            raise TypeError(f"layers: expected an nn.ModuleList of ≥ 2 layers, got "
                            f"{type(layers).__name__} of {len(layers) if hasattr(layers, '__len__') else '?'}")
        self.layers, self.run = layers, run

    def check_split(self, k: int) -> int:
        """``k`` itself, or a clear error unless ``0 < k < len(layers)``."""
        return check_split_point(k, len(self.layers))

    @torch.no_grad()
    def capture(self, inputs: dict, splits: list[int]) -> tuple[Any, dict[int, torch.Tensor]]:
        """The full output and the hidden state after layer ``k`` for each ``k`` in ``splits``."""
        captured: dict[int, torch.Tensor] = {}
        handles = []
        for k in sorted({self.check_split(k) for k in splits}):
            def keep(module, args, output, k=k):
                captured[k] = output[0] if isinstance(output, tuple) else output
            handles.append(self.layers[k - 1].register_forward_hook(keep))
        try:
            output = self.run(inputs)
        finally:
            for handle in handles:
                handle.remove()
        return output, captured

    def suffix(self, k: int, inputs: dict, hidden: torch.Tensor) -> Any:
        """The output from the hidden state after layer ``k`` (autograd follows the caller's mode)."""
        self.check_split(k)
        if not isinstance(hidden, torch.Tensor) or not hidden.is_floating_point():
            raise ValueError(f"hidden: expected a floating-point tensor, got "
                             f"{getattr(hidden, 'dtype', type(hidden).__name__)}")
        with self._replaced(k, hidden):
            return self.run(inputs)

    def prefix(self, k: int, inputs: dict, entry: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        """The prefix as a differentiable function of ``entry``'s output.

        ``fn(x)`` runs the model's forward on ``inputs`` with the output of the
        module ``entry`` (e.g. the embedding) replaced by ``x`` and stops after
        layer ``k - 1``, returning its output: the map whose Jacobian T10 needs.
        """
        self.check_split(k)

        def fn(x: torch.Tensor) -> torch.Tensor:
            captured: list[torch.Tensor] = []

            def stop(module, args, output):
                captured.append(output[0] if isinstance(output, tuple) else output)
                raise _StopForward

            handles = [entry.register_forward_hook(lambda module, args, output: x),
                       self.layers[k - 1].register_forward_hook(stop)]
            try:
                self.run(inputs)
            except _StopForward:
                pass
            finally:
                for handle in handles:
                    handle.remove()
            return captured[0]

        return fn

    @contextmanager
    def _replaced(self, k: int, hidden: torch.Tensor) -> Iterator[None]:
        originals = [self.layers[j] for j in range(k)]
        try:
            for j in range(k - 1):
                self.layers[j] = _PassThrough(None)
            self.layers[k - 1] = _Inject(hidden, None)
            yield
        finally:
            for j, layer in enumerate(originals):
                self.layers[j] = layer
