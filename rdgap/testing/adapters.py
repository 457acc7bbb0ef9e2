r"""Adapters: rdgap's own codecs and plain function pairs as :class:`~rdgap.testing.Codec`.

:func:`adapt` wraps any :class:`rdgap.codecs.base.HiddenStateCodec` and
declares what the property suite needs:

- the **reconstruction** decode must return bit for bit: the cast for
  ``fp16``/``bf16``/``zstd-fp16`` (``x.half().float()``, ``x.bfloat16().float()``),
  the absmax quantization for ``int8``/``int4-absmax`` (recomputed here, not by
  calling the codec), and ``codec.reconstruct`` for the factorized codec;
- the **T2 constants**: the container's header and checksum
  (:func:`rdgap.codecs.container.header_size`) are ``header_bits``, outside the
  payload estimate; the factorized codec's ``ε`` and ``c1`` are
  :data:`rdgap.codecs.ans.RELATIVE_OVERHEAD` and
  :data:`rdgap.codecs.ans.STREAM_OVERHEAD_BITS`; its lower constant is
  ``inf`` because constriction's ``AnsCoder`` starts from an empty state
  (:func:`rdgap.bounds.rans_length_bounds` with ``start="empty"``);
- a **known-entropy source** the codec carries exactly: symbols ``S`` with a
  known law embedded by the codec's own dequantization (factorized), or with
  one channel pinned at the largest level so the absmax scale is 1 (absmax);
- ``decode_errors = (BitstreamError,)``.

:class:`FunctionCodec` turns a plain ``encode``/``decode`` pair (and an
optional estimate) into a codec with declarations given as keywords.

Examples
--------
>>> import pickle
>>> codec = FunctionCodec(pickle.dumps, pickle.loads, input_kind="symbols", lossless=True)
>>> print(codec.decode(codec.encode([1, 2])), codec.estimate_bits([1, 2]))
[1, 2] None
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .crafting import rdgap_container
from .protocol import declarations

_DECLARATIONS = ("input_kind", "channels", "symbol_range", "lossless", "reconstruct",
                 "relative_overhead", "stream_overhead_bits", "lower_overhead_bits",
                 "calibration_slack_bits", "header_bits", "decode_errors", "family",
                 "entropy_source", "factory", "sibling", "crafted_streams", "header_fields")


class FunctionCodec:
    """A codec from plain functions.

    Parameters
    ----------
    encode : callable ``x -> bytes``
    decode : callable ``bytes -> x``
    estimate_bits : callable ``x -> float``, optional
        The likelihood estimate ``Σ −log2 q``; without it the T2 properties do
        not apply.
    **declared
        Any declaration of :mod:`rdgap.testing.protocol` (``lossless``,
        ``reconstruct``, ``input_kind``, ``relative_overhead``, …).

    Raises
    ------
    ValueError
        If a keyword is not a declaration, or a function is not callable.
    """

    def __init__(self, encode: Callable, decode: Callable, estimate_bits: Callable | None = None,
                 **declared: Any):
        for name, fn in (("encode", encode), ("decode", decode)):
            if not callable(fn):
                raise ValueError(f"{name}: expected a callable, got {type(fn).__name__}")
        if estimate_bits is not None and not callable(estimate_bits):
            raise ValueError(f"estimate_bits: expected a callable or None, got "
                             f"{type(estimate_bits).__name__}")
        unknown = sorted(set(declared) - set(_DECLARATIONS))
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not a codec declaration; expected some of "
                             f"{', '.join(_DECLARATIONS)}")
        self._encode, self._decode, self._estimate = encode, decode, estimate_bits
        for name, value in declared.items():
            setattr(self, name, value)
        declarations(self)  # validate the declarations now, naming the bad one

    def encode(self, x):
        return self._encode(x)

    def decode(self, data):
        return self._decode(data)

    def estimate_bits(self, x):
        return None if self._estimate is None else self._estimate(x)

    def __repr__(self) -> str:
        return f"FunctionCodec({getattr(self._encode, '__name__', self._encode)!r}, ...)"


class HiddenStateAdapter:
    """An rdgap :class:`~rdgap.codecs.base.HiddenStateCodec` with its declarations.

    Parameters
    ----------
    codec : HiddenStateCodec
        One of :func:`rdgap.codecs.baselines.baseline_codecs`, a
        :class:`~rdgap.codecs.factorized.FactorizedCodec`, or any subclass
        (then a ``reconstruct`` method is used if it has one).
    input_ids : callable ``hidden -> ids``, optional
        Required for a codec that codes the window's token ids too
        (``needs_input_ids``: ``klt-context-tokens``, its table refinement, a shift
        guard around either), refused for any other: the ids of a window, a function
        of the window (e.g. of its length) so that a window always gets the same ids;
        ``encode``, ``estimate_bits`` and ``reconstruct`` pass them as
        ``input_ids=``. The decoder reads them from the stream.

    Raises
    ------
    ValueError
        Naming ``codec`` or ``input_ids``.
    """

    input_kind = "hidden"

    def __init__(self, codec, input_ids: Callable | None = None):
        from rdgap.codecs.coders import ans
        from rdgap.codecs.base import HiddenStateCodec
        from rdgap.codecs.baselines import AbsmaxInteger, BFloat16Cast, Float16Cast, ZstdFloat16
        from rdgap.codecs.coders.container import BitstreamError, header_size
        from rdgap.codecs.entropy_models.context import ContextCodec
        from rdgap.codecs.entropy_models.factorized import FactorizedCodec
        from rdgap.codecs.quantizers.rate_cap import RateCappedCodec
        from rdgap.codecs.quantizers.shift_guard import ShiftGuardedCodec
        from rdgap.codecs.coders.torch_guard import TorchShiftGuardedCodec
        from rdgap.codecs.quantizers.window_control import WindowControlledCodec
        from rdgap.codecs.symbol_zstd import ZstdSymbols
        from rdgap.codecs.coders.torch_factorized import TorchFactorizedCodec

        if not isinstance(codec, HiddenStateCodec):
            raise ValueError(f"codec: expected an rdgap HiddenStateCodec, got "
                             f"{type(codec).__name__}")
        needs_ids = bool(getattr(codec, "needs_input_ids", False))
        if needs_ids and not callable(input_ids):
            raise ValueError(f"input_ids: {codec.codec_id} codes the window's token ids, so "
                             f"its encoder needs them; pass input_ids=lambda hidden: ids "
                             f"(the same ids for the same window), got {input_ids!r}")
        if not needs_ids and input_ids is not None:
            raise ValueError(f"input_ids: {codec.codec_id} codes no token ids; leave "
                             f"input_ids out")
        self.codec = codec
        self._input_ids = input_ids
        self.lossless = bool(codec.lossless)
        self.header_bits = 8.0 * header_size(codec.codec_id, 2)
        self.decode_errors = (BitstreamError,)
        # crafted-headers: rdgap's container, crafted with valid CRCs (huge, empty and
        # 2^31-element shapes); since issue 17 every rdgap decoder checks the declared
        # shape against its payload before allocating (rdgap.codecs.coders.limits).
        self.crafted_streams = rdgap_container
        self.reconstruct = None
        self.channels = None
        if isinstance(codec, (Float16Cast, ZstdFloat16)):
            self.reconstruct = lambda x: _hidden(x).half().float()
        elif isinstance(codec, BFloat16Cast):
            self.reconstruct = lambda x: _hidden(x).bfloat16().float()
        elif isinstance(codec, AbsmaxInteger):
            self.reconstruct = lambda x: _absmax(_hidden(x), codec.levels)
            self.entropy_source = lambda: _absmax_source(codec.levels)
        elif isinstance(codec, FactorizedCodec):
            self.reconstruct = codec.reconstruct
            self.channels = codec.channels
            self.relative_overhead = ans.RELATIVE_OVERHEAD
            self.stream_overhead_bits = float(ans.STREAM_OVERHEAD_BITS)
            self.lower_overhead_bits = math.inf   # constriction starts empty: no c0
            if codec.family == "gaussian" and codec.analysis is None:
                self.family = "gaussian"
            self.entropy_source = lambda: _factorized_source(codec)
        elif isinstance(codec, TorchFactorizedCodec):
            # rans_length_bounds(start="lower"): 64 flush bits per lane, and the lanes
            # start at 2^31 so the stream is never shorter than the information; plus
            # the 32-bit escape count and the 2^-20 table quantization.
            self.reconstruct = codec.reconstruct
            self.channels = codec.model.channels
            self.relative_overhead = ans.RELATIVE_OVERHEAD
            self.stream_overhead_bits = 64.0 * codec.lanes + 32.0
            self.lower_overhead_bits = 64.0
            self.entropy_source = lambda: _factorized_source(codec.model)
            # rebuilt in a fresh process from its model's save/load (rdgap.testing.rebuild)
            self.rebuild_from = (codec.model, {"lanes": codec.lanes})
        elif isinstance(codec, ZstdSymbols):
            self.reconstruct = codec.reconstruct
            self.channels = codec.quantizer.channels
            self.entropy_source = lambda: _factorized_source(codec.quantizer)
            self.rebuild_from = (codec.quantizer, {"level": codec.level})
        elif isinstance(codec, (ContextCodec, WindowControlledCodec, RateCappedCodec,
                                ShiftGuardedCodec)) and not isinstance(codec,
                                                                       TorchShiftGuardedCodec):
            # one constriction stack per window, as above (a window-controlled or rate-capped
            # codec adds a 2-byte header, a shift-guarded one a 1-byte header, that its
            # estimate_bits counts); not the torch-coded guard, whose sub-coders flush 64
            # bits per lane and section: like the other torch coders it declares no T2
            # constants
            self.reconstruct = codec.reconstruct
            self.channels = codec.channels
            self.relative_overhead = ans.RELATIVE_OVERHEAD
            self.stream_overhead_bits = float(ans.STREAM_OVERHEAD_BITS)
            self.lower_overhead_bits = math.inf
        elif isinstance(codec, TorchShiftGuardedCodec):
            self.reconstruct = codec.reconstruct   # no T2 constants (see above)
            self.channels = codec.channels
        elif callable(getattr(codec, "reconstruct", None)):
            self.reconstruct = codec.reconstruct
        if needs_ids and self.reconstruct is not None:
            self.reconstruct = lambda x: codec.reconstruct(x, **self._ids_of(x))

    def _ids_of(self, x) -> dict:
        """``{"input_ids": ids}`` of window ``x`` for a codec that codes ids, else ``{}``."""
        if self._input_ids is None:
            return {}
        return {"input_ids": self._input_ids(x)}

    def encode(self, x) -> bytes:
        return self.codec.encode(x, **self._ids_of(x))

    def decode(self, data):
        return self.codec.decode(data)

    def estimate_bits(self, x):
        return self.codec.estimate_bits(x, **self._ids_of(x))

    def __repr__(self) -> str:
        return f"adapt({self.codec!r})"


def adapt(codec, input_ids: Callable | None = None):
    """The codec itself if it already follows :class:`~rdgap.testing.Codec` and is not an
    rdgap :class:`~rdgap.codecs.base.HiddenStateCodec`; the :class:`HiddenStateAdapter`
    of an rdgap codec (``input_ids``: its argument, for a codec that codes token ids);
    a :class:`FunctionCodec` of a pair ``(encode, decode)``.

    Raises
    ------
    TypeError
        For anything else.
    ValueError
        For ``input_ids`` given to anything but an rdgap codec that codes token ids, or
        missing for one that does.
    """
    if "rdgap.codecs.base" in _loaded():
        from rdgap.codecs.base import HiddenStateCodec
        if isinstance(codec, HiddenStateCodec):
            return HiddenStateAdapter(codec, input_ids=input_ids)
    if input_ids is not None:
        raise ValueError(f"input_ids: only for an rdgap codec that codes token ids "
                         f"(needs_input_ids); a {type(codec).__name__} takes its whole input "
                         f"as x")
    if isinstance(codec, (tuple, list)) and len(codec) in (2, 3) and all(map(callable, codec)):
        return FunctionCodec(*codec)
    declarations(codec)   # raises TypeError naming what is missing
    return codec


def _loaded():
    import sys
    return sys.modules


def _hidden(x):
    from rdgap.codecs.base import check_hidden
    return check_hidden(x, "x")


def _absmax(x, levels: int):
    import torch
    scales = x.abs().amax(dim=1) / levels
    safe = torch.where(scales > 0, scales, torch.ones_like(scales))
    symbols = torch.round(x / safe[:, None]).clamp(-levels, levels)
    # through an integer, as the stream stores it: round(-0.3) = -0.0 decodes as +0.0
    return scales[:, None] * symbols.to(torch.int8).to(torch.float32)


def _absmax_source(levels: int, tokens: int = 32, channels: int = 16):
    """Channel 0 pinned at ``+levels`` (so every token's scale is exactly 1), the others
    i.i.d. truncated quantized Laplace on ``±levels``: the codec carries them exactly."""
    import torch

    from rdgap.validation.synthetic import DiscreteSource

    from .strategies import column_source, truncated_scalar
    pinned = DiscreteSource([1.0], support=[levels])
    free = truncated_scalar("laplace", max(levels / 4.0, 0.5), -levels, levels)
    sources = [pinned] + [free] * (channels - 1)
    return column_source(sources, sources, tokens,
                         embed=lambda s: torch.from_numpy(s.astype(np.float32)),
                         name=f"absmax source: channel 0 = {levels}, others Laplace on "
                              f"±{levels}, {tokens}×{channels}")


def _factorized_source(codec, tokens: int = 48):
    """Symbols with the codec's own per-channel law (scale σ/Δ, family), embedded by
    ``codec.dequantize``: the codec carries them exactly and its model fits them."""
    from rdgap.bounds import gaussian_logdet_bound

    from .strategies import column_source, truncated_scalar
    family = codec.family

    def laws(scale, step):
        return [truncated_scalar(family, float(s / d), -4096, 4096, 2.0 ** -20)
                for s, d in zip(scale, step)]

    first = laws(codec.stats.first_scale, codec.first_step)
    rest = laws(codec.stats.scale, codec.step)
    bound = None
    if family == "gaussian" and codec.analysis is None:
        def token_bound(sources, step):
            variance = np.array([s.variance for s in sources]) * step ** 2
            return gaussian_logdet_bound(np.diag(variance), step, diagonal=True)
        bound = token_bound(first, codec.first_step) + (tokens - 1) * token_bound(rest, codec.step)
    return column_source(first, rest, tokens, embed=codec.dequantize,
                         name=f"{codec.codec_id} source: S with the codec's per-channel "
                              f"{family} law, {tokens}×{codec.channels}",
                         family_bound_bits=bound)
