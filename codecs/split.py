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
(``tests/test_architectures.py`` checks every split of 14 architectures).
"""

from __future__ import annotations

import inspect
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
        state = self.hidden if self.hidden is not None else \
            (args[0] if args else kwargs["hidden_states"])
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


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that count only real tokens, so left padding does not shift them.

    Padded slots get position 0 (their outputs are masked and never used).
    """
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.clamp_min(0)


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
