"""Pick the torch rANS coder of a fitted codec (the backend that runs on any device).

>>> from rdgap.codecs.coders.backend import torch_codec
>>> torch_codec(object())
Traceback (most recent call last):
...
ValueError: codec: no torch coder for object; expected a factorized codec (FactorizedCodec and its subclasses), a joint ContextCodec / TokenContextCodec / TokenTableCodec / HyperpriorCodec, a RateCappedCodec / WindowControlledCodec of one, or a ShiftGuardedCodec of two
"""

from __future__ import annotations


def torch_codec(codec, device="cpu", lanes: int | None = None):
    """The torch rANS coder of ``codec``: :class:`~rdgap.codecs.coders.torch_factorized.
    TorchFactorizedCodec` for factorized codecs (``klt-deep``'s learned tables
    included), :class:`~rdgap.codecs.coders.torch_context.TorchContextCodec` for the
    joint ``klt-context`` / ``klt-context-tokens``, :class:`~rdgap.codecs.coders.
    torch_hyperprior.TorchHyperpriorCodec` for ``klt-hyperprior``, and
    :class:`~rdgap.codecs.coders.torch_window.TorchWindowCodec` for the rate-capped
    format (``Recipe.fit``'s default) and the window-controlled ``*-wc`` recipes (their
    base on one of the above), :class:`~rdgap.codecs.coders.torch_guard.
    TorchShiftGuardedCodec` for a shift-guarded codec (``<recipe>-sg``; its two
    sub-codecs on theirs).

    Raises
    ------
    ValueError
        For a codec without a torch coder (a wrapper's: for its base).
    """
    from ..entropy_models.factorized import FactorizedCodec
    from ..quantizers.rate_cap import RateCappedCodec
    from ..quantizers.window_control import WindowControlledCodec
    from . import rans_torch

    from ..quantizers.shift_guard import ShiftGuardedCodec

    options = {"device": device, "lanes": rans_torch.DEFAULT_LANES if lanes is None else lanes}
    if isinstance(codec, ShiftGuardedCodec):
        from .torch_guard import TorchShiftGuardedCodec
        return TorchShiftGuardedCodec(codec, **options)
    if isinstance(codec, (RateCappedCodec, WindowControlledCodec)):
        from .torch_window import TorchWindowCodec
        return TorchWindowCodec(codec, **options)
    if isinstance(codec, FactorizedCodec):
        from .torch_factorized import TorchFactorizedCodec
        return TorchFactorizedCodec(codec, **options)
    from ..entropy_models.hyperprior import HyperpriorCodec

    if type(codec) is HyperpriorCodec:
        from .torch_hyperprior import TorchHyperpriorCodec
        return TorchHyperpriorCodec(codec, **options)
    from .torch_context import TorchContextCodec

    if type(codec) in TorchContextCodec.MODELS:  # klt-context, -tokens, -tokens-table
        return TorchContextCodec(codec, **options)
    raise ValueError(f"codec: no torch coder for {type(codec).__name__}; expected a factorized "
                     f"codec (FactorizedCodec and its subclasses), a joint ContextCodec / "
                     f"TokenContextCodec / TokenTableCodec / HyperpriorCodec, a "
                     f"RateCappedCodec / WindowControlledCodec of one, or a "
                     f"ShiftGuardedCodec of two")
