"""The layer stack of a model and the split of any layer list, without editing the model.

:func:`find_layers` finds the stack generically; :class:`LayerSplit` is the
mechanism :class:`rdgap.split.SplitModel` uses for every transformers
model (and the validation tasks for custom forwards): forward hooks capture or
stop after a layer, and stand-ins that return what the real layers return
replace the layers before the split for a suffix pass (module docstring of
:mod:`rdgap.split.model`).
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch import nn


class _StopForward(Exception):
    """Raised by a hook to end the forward pass after a layer."""


#: Output structure of each layer stack seen so far: 0 = a tensor, n = a tuple of n items.
_RETURNS: "weakref.WeakKeyDictionary[nn.ModuleList, int]" = weakref.WeakKeyDictionary()


def _structure(output) -> int:
    return len(output) if isinstance(output, tuple) else 0


def _state(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


class _StandIn(nn.Module):
    """Stands in for a skipped layer: passes its input through, or outputs ``hidden``.

    It keeps the real layer's public plain attributes (``attention_type``,
    ``layer_idx``, ...) and returns a tuple of ``returns`` items (the state, then
    None) when the real layer returns a tuple, a bare tensor otherwise.
    """

    def __init__(self, original: nn.Module, hidden: torch.Tensor | None, returns: int):
        super().__init__()
        for name, value in vars(original).items():
            if not name.startswith("_") and name != "training":
                object.__setattr__(self, name, value)
        object.__setattr__(self, "hidden", hidden)
        self.returns = returns

    def forward(self, *args, **kwargs):
        if self.hidden is not None:
            state = self.hidden
        elif args:
            state = args[0]
        else:  # the state passed by keyword: ``hidden_states`` or the first one given
            state = kwargs.get("hidden_states", next(iter(kwargs.values()), None))
        return (state,) + (None,) * (self.returns - 1) if self.returns else state


def check_split_point(split, count: int, layers: str = "layers") -> int:
    """``split`` itself, or a clear error unless it is an int with ``0 < split < count``."""
    if isinstance(split, bool) or not isinstance(split, int):
        raise TypeError(f"split: expected an int, got {type(split).__name__}")
    if not 0 < split < count:
        raise ValueError(f"split: expected 0 < split < {count} (the model has {count} "
                         f"{layers}), got {split}")
    return split


def _layer_count(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    if config is None:
        return None
    count = getattr(config, "num_hidden_layers", None)
    if count is None and hasattr(config, "get_text_config"):
        count = getattr(config.get_text_config(), "num_hidden_layers", None)
    return int(count) if isinstance(count, int) else None


def find_layers(model: nn.Module, layers: str | nn.ModuleList | None = None) -> nn.ModuleList:
    """The layer stack of ``model``: the list its forward runs in order.

    Parameters
    ----------
    model : nn.Module
        Any transformers model (or a module with one list of repeated blocks).
    layers : str or nn.ModuleList, optional
        The stack itself, or its dotted name in ``model`` (e.g.
        ``"model.decoder.layers"``), when the search finds several or none.

    Returns
    -------
    nn.ModuleList
        The outermost ``nn.ModuleList`` (≥ 2 items) whose items are all of one
        class and whose length is ``config.num_hidden_layers`` (any length when
        the model has no such config).

    Raises
    ------
    TypeError
        If no list or several lists qualify, or ``layers`` is not a list of ``model``.
    """
    if isinstance(layers, str):
        try:
            found = model.get_submodule(layers)
        except AttributeError:
            raise TypeError(f"layers: {type(model).__name__} has no submodule "
                            f"{layers!r}") from None
        layers = found
    if layers is not None:
        if not isinstance(layers, nn.ModuleList) or len(layers) < 2 or \
                not any(module is layers for module in model.modules()):
            raise TypeError(f"layers: expected an nn.ModuleList of ≥ 2 layers inside "
                            f"{type(model).__name__}, got {type(layers).__name__}")
        return layers
    count = _layer_count(model)
    found = [(name, module) for name, module in model.named_modules()
             if isinstance(module, nn.ModuleList) and len(module) >= 2
             and len({type(item) for item in module}) == 1
             and (count is None or len(module) == count)]
    outer = [(name, module) for name, module in found
             if not any(name.startswith(other + ".") for other, _ in found if other)]
    if len(outer) == 1:
        return outer[0][1]
    wanted = f"of length num_hidden_layers = {count}" if count is not None else "of ≥ 2 layers"
    if not outer:
        raise TypeError(f"model: found no nn.ModuleList of one repeated block class "
                        f"{wanted} in {type(model).__name__}; pass layers='dotted.name' "
                        f"(the list its forward runs in order)")
    raise TypeError(f"model: several layer lists {wanted} in {type(model).__name__}: "
                    f"{[name for name, _ in outer]}; pass layers= with the one to split")


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The layer stack of a transformers model (:func:`find_layers` without an override)."""
    return find_layers(model)


class LayerSplit:
    """Any model whose forward runs a list of layers in order, split after layer ``k``.

    Parameters
    ----------
    layers : nn.ModuleList
        The model's layers, run in order by ``run``; each takes the state first
        and returns it as a tensor or as the first item of a tuple.
    run : callable
        ``run(inputs) -> output``: the full forward pass on a dict of inputs.

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
                            f"{type(layers).__name__} of "
                            f"{len(layers) if hasattr(layers, '__len__') else '?'}")
        self.layers, self.run = layers, run

    def check_split(self, k: int) -> int:
        """``k`` itself, or a clear error unless ``0 < k < len(layers)``."""
        return check_split_point(k, len(self.layers))

    def _watch(self, layer: int, stop: bool, keep: Callable[[torch.Tensor], None]):
        def hook(module, args, output):
            _RETURNS[self.layers] = _structure(output)
            keep(_state(output))
            if stop:
                raise _StopForward
        return self.layers[layer].register_forward_hook(hook)

    @torch.no_grad()
    def capture(self, inputs: dict, splits: list[int]) -> tuple[Any, dict[int, torch.Tensor]]:
        """The full output and the state after layer ``k`` for each ``k`` in ``splits``."""
        captured: dict[int, torch.Tensor] = {}
        handles = [self._watch(k - 1, False, lambda state, k=k: captured.__setitem__(k, state))
                   for k in sorted({self.check_split(k) for k in splits})]
        try:
            output = self.run(inputs)
        finally:
            for handle in handles:
                handle.remove()
        return output, captured

    def prefix_state(self, k: int, inputs: dict, replace: tuple[nn.Module, Callable] | None
                     = None) -> torch.Tensor:
        """The state after layer ``k`` (autograd follows the caller's mode), from a pass
        stopped there; ``replace = (module, fn)`` substitutes ``fn(output)`` for the
        output of ``module`` (e.g. the embedding) on the way."""
        self.check_split(k)
        captured: list[torch.Tensor] = []
        handles = [self._watch(k - 1, True, captured.append)]
        if replace is not None:
            module, fn = replace
            handles.append(module.register_forward_hook(lambda m, a, output: fn(output)))
        try:
            self.run(inputs)
        except _StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
        if not captured:
            raise RuntimeError(f"layer {k - 1} was never called: the model's forward does "
                               f"not run its layer list in order")
        return captured[0]

    def prefix(self, k: int, inputs: dict, entry: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        """The prefix as a differentiable function of ``entry``'s output.

        ``fn(x)`` runs the model's forward on ``inputs`` with the output of the
        module ``entry`` (e.g. the embedding) replaced by ``x`` and stops after
        layer ``k - 1``, returning its output: the map whose Jacobian T10 needs.
        """
        self.check_split(k)
        return lambda x: self.prefix_state(k, inputs, (entry, lambda output: x))

    def returns(self, inputs: dict) -> int:
        """What the layers return (0: a tensor; n: a tuple of n), learned from one
        pass on ``inputs`` stopped after layer 0 the first time it is needed."""
        if self.layers not in _RETURNS:
            with torch.no_grad():
                self.prefix_state(1, inputs)
        return _RETURNS[self.layers]

    def suffix(self, k: int, inputs: dict, hidden: torch.Tensor) -> Any:
        """The output from the state after layer ``k`` (autograd follows the caller's mode).

        ``inputs`` only need the right shapes (placeholders do): what runs before
        layer ``k`` is replaced by stand-ins.
        """
        self.check_split(k)
        if not isinstance(hidden, torch.Tensor) or not hidden.is_floating_point():
            raise ValueError(f"hidden: expected a floating-point tensor, got "
                             f"{getattr(hidden, 'dtype', type(hidden).__name__)}")
        returns = self.returns(inputs)
        with self._replaced(k, hidden, returns):
            return self.run(inputs)

    @contextmanager
    def _replaced(self, k: int, hidden: torch.Tensor, returns: int) -> Iterator[None]:
        originals = [self.layers[j] for j in range(k)]
        try:
            for j in range(k):
                self.layers[j] = _StandIn(originals[j], hidden if j == k - 1 else None, returns)
            yield
        finally:
            for j, layer in enumerate(originals):
                self.layers[j] = layer
