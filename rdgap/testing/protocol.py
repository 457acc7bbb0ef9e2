r"""The :class:`Codec` protocol that :func:`rdgap.testing.check_codec` tests, and its defaults.

A codec needs three methods; everything else is an optional declaration read
with :func:`declarations`, which fills in the documented defaults below.

Required
    ``encode(x) -> bytes``, ``decode(data) -> x``, ``estimate_bits(x) -> float``
    (the likelihood estimate ``Σ −log2 q`` of what the model codes, or
    ``None`` for a codec without a model: then the T2 properties do not apply).

Optional declarations (attributes)
    ========================  =================================================
    ``input_kind``            ``"hidden"`` (float tensors ``(tokens, channels)``,
                              default) or ``"symbols"`` (int64 arrays)
    ``channels``              fixed channel count, or ``None`` (any)
    ``symbol_range``          ``(lo, hi)`` of valid symbols (default
                              :data:`DEFAULT_SYMBOL_RANGE`)
    ``lossless``              ``decode(encode(x))`` equals ``x`` (default False)
    ``reconstruct(x)``        what ``decode(encode(x))`` must equal, bit for bit
    ``relative_overhead``     T2's ``ε`` (default :data:`DEFAULT_RELATIVE_OVERHEAD`)
    ``stream_overhead_bits``  T2's ``c1`` (default :data:`DEFAULT_STREAM_OVERHEAD_BITS`)
    ``lower_overhead_bits``   T2's ``c0`` (default :data:`DEFAULT_LOWER_OVERHEAD_BITS`;
                              ``math.inf`` for a coder with no lower constant,
                              e.g. constriction's ``AnsCoder``)
    ``calibration_slack_bits`` mean shortfall of the stream below the
                              estimate that the T2 calibration property allows
                              beyond ``ε·E`` (default
                              :data:`DEFAULT_CALIBRATION_SLACK_BITS`)
    ``header_bits``           fixed bits per stream outside the estimate (a
                              container header; default 0)
    ``decode_errors``         exception types a bad stream may raise (default
                              ``(ValueError,)``; rdgap's own codecs raise
                              :class:`rdgap.codecs.container.BitstreamError`,
                              a ValueError)
    ``family``                an entropy-model family with a T3 bound
                              (``"gaussian"``); needs ``entropy_source``
    ``entropy_source()``      a :class:`rdgap.testing.strategies.KnownEntropySource`
                              whose streams the codec carries exactly
    ``factory``               ``("package.module:callable", args, kwargs)``
                              that builds this codec in a fresh process
                              (``cross-process``; without it the codec's
                              ``save``/``load`` pair or pickling is used, see
                              :mod:`rdgap.testing.rebuild`)
    ``sibling``               the same codec fitted differently (an object, or
                              a method returning one): its streams must raise
                              a declared error or decode exactly
                              (``sibling-streams``)
    ``crafted_streams(data)`` ``[(what, bytes), ...]``: well-formed streams
                              with crafted header fields and a valid checksum,
                              built from the valid stream ``data``
                              (``crafted-headers``)
    ``header_fields``         ``{name: (offset, struct format)}`` of integer
                              header fields of a stream that ends in a CRC32
                              of the bytes before it: the kit crafts the
                              streams itself (:mod:`rdgap.testing.crafting`)
    ========================  =================================================

Examples
--------
>>> class Raw:
...     def encode(self, x): return bytes(x)
...     def decode(self, data): return list(data)
...     def estimate_bits(self, x): return None
>>> isinstance(Raw(), Codec)
True
>>> d = declarations(Raw())
>>> print(d.input_kind, d.relative_overhead, d.stream_overhead_bits, d.lower_overhead_bits)
hidden 0.01 64.0 64.0
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

#: Default T2 relative overhead ``ε`` for a codec that declares none.
DEFAULT_RELATIVE_OVERHEAD = 0.01
#: Default T2 flush constant ``c1`` in bits (a 64-bit coder state).
DEFAULT_STREAM_OVERHEAD_BITS = 64.0
#: Default T2 lower constant ``c0`` in bits: an arithmetic/range coder, or an
#: ANS coder that starts from its lower state, cannot write fewer bits than the
#: estimate minus one state.
DEFAULT_LOWER_OVERHEAD_BITS = 64.0
#: Default T2-calibration slack in bits: one 32-bit word, about what a coder that
#: starts from an empty state saves at the start (a working constant; rdgap's
#: constriction codecs write 30–40 bits *more* than the estimate on average).
DEFAULT_CALIBRATION_SLACK_BITS = 32.0
#: Default symbol range of a symbol codec.
DEFAULT_SYMBOL_RANGE = (-128, 127)
_KINDS = ("hidden", "symbols")


@runtime_checkable
class Codec(Protocol):
    """What :func:`rdgap.testing.check_codec` needs from a codec.

    Methods
    -------
    encode(x) -> bytes
        One self-contained stream for ``x`` (a float tensor ``(tokens,
        channels)`` of hidden states, or an int64 array of symbols).
    decode(data) -> x
        The inverse: the reconstruction of ``x``; a stream that is truncated,
        corrupted or foreign raises an exception of ``decode_errors``.
    estimate_bits(x) -> float or None
        ``Σ −log2 q`` of what the entropy model codes for ``x`` (``None``
        without a model).

    See the module docstring for the optional declarations.
    """

    def encode(self, x: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...

    def estimate_bits(self, x: Any) -> float | None: ...


@dataclass(frozen=True)
class Declarations:
    """A codec's declarations with defaults filled in (see the module docstring)."""

    input_kind: str
    channels: int | None
    symbol_range: tuple[int, int]
    lossless: bool
    reconstruct: Callable | None
    relative_overhead: float
    stream_overhead_bits: float
    lower_overhead_bits: float
    calibration_slack_bits: float
    header_bits: float
    decode_errors: tuple
    family: str | None
    entropy_source: Callable | None
    factory: tuple | None = None
    sibling: Any = None
    crafted_streams: Callable | None = None
    header_fields: dict | None = None


def _number(codec, name: str, default: float, allow_inf: bool = False) -> float:
    value = getattr(codec, name, None)
    if value is None:
        return float(default)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"codec.{name}: expected a number, got {value!r}") from None
    if math.isnan(value) or value < 0 or (math.isinf(value) and not allow_inf):
        what = "non-negative number or inf" if allow_inf else "finite non-negative number"
        raise ValueError(f"codec.{name}: expected a {what}, got {value!r}")
    return value


def declarations(codec) -> Declarations:
    """Read a codec's optional declarations, with the documented defaults.

    Raises
    ------
    TypeError
        If ``codec`` lacks ``encode``, ``decode`` or ``estimate_bits``.
    ValueError
        If a declaration has the wrong type (the message names it).
    """
    missing = [m for m in ("encode", "decode", "estimate_bits")
               if not callable(getattr(codec, m, None))]
    if missing:
        raise TypeError(f"codec: expected an object with encode, decode and estimate_bits "
                        f"(the rdgap.testing.Codec protocol); {type(codec).__name__} lacks "
                        f"{', '.join(missing)} (wrap a function pair in FunctionCodec, or an "
                        f"rdgap codec with adapt())")
    kind = getattr(codec, "input_kind", None) or "hidden"
    if kind not in _KINDS:
        raise ValueError(f"codec.input_kind: expected one of {_KINDS}, got {kind!r}")
    channels = getattr(codec, "channels", None)
    if channels is not None and (not isinstance(channels, int) or channels < 1):
        raise ValueError(f"codec.channels: expected a positive int or None, got {channels!r}")
    symbol_range = getattr(codec, "symbol_range", None) or DEFAULT_SYMBOL_RANGE
    try:
        lo, hi = (int(v) for v in symbol_range)
    except (TypeError, ValueError):
        raise ValueError(f"codec.symbol_range: expected (lo, hi), got {symbol_range!r}") from None
    if lo > hi:
        raise ValueError(f"codec.symbol_range: expected lo ≤ hi, got {symbol_range!r}")
    errors = getattr(codec, "decode_errors", None) or (ValueError,)
    errors = tuple(errors) if isinstance(errors, (tuple, list)) else (errors,)
    if not all(isinstance(e, type) and issubclass(e, Exception) for e in errors):
        raise ValueError(f"codec.decode_errors: expected Exception subclasses, got {errors!r}")
    reconstruct = getattr(codec, "reconstruct", None)
    entropy_source = getattr(codec, "entropy_source", None)
    c1 = _number(codec, "stream_overhead_bits", DEFAULT_STREAM_OVERHEAD_BITS)
    fields = getattr(codec, "header_fields", None) or None
    if fields is not None:
        try:
            fields = {str(name): (int(offset), str(fmt)) for name, (offset, fmt) in
                      dict(fields).items()}
            for offset, fmt in fields.values():
                if offset < 0 or fmt[-1] not in "bBhHiIlLqQ":
                    raise ValueError
                struct.calcsize(fmt)
        except (TypeError, ValueError, struct.error):
            raise ValueError(f"codec.header_fields: expected {{name: (offset ≥ 0, integer "
                             f"struct format such as '<I')}}, got {fields!r}") from None
    crafted = getattr(codec, "crafted_streams", None)
    if crafted is not None and not callable(crafted):
        raise ValueError(f"codec.crafted_streams: expected a method data -> [(what, bytes)], "
                         f"got {type(crafted).__name__}")
    factory = getattr(codec, "factory", None)
    if factory is not None and not (isinstance(factory, (tuple, list)) and len(factory) == 3
                                    and isinstance(factory[0], str) and ":" in factory[0]):
        raise ValueError(f"codec.factory: expected ('package.module:callable', args, kwargs), "
                         f"got {factory!r}")
    return Declarations(
        input_kind=kind, channels=channels, symbol_range=(lo, hi),
        lossless=bool(getattr(codec, "lossless", False)),
        reconstruct=reconstruct if callable(reconstruct) else None,
        relative_overhead=_number(codec, "relative_overhead", DEFAULT_RELATIVE_OVERHEAD),
        stream_overhead_bits=c1,
        lower_overhead_bits=_number(codec, "lower_overhead_bits", DEFAULT_LOWER_OVERHEAD_BITS,
                                    allow_inf=True),
        calibration_slack_bits=_number(codec, "calibration_slack_bits",
                                       DEFAULT_CALIBRATION_SLACK_BITS),
        header_bits=_number(codec, "header_bits", 0.0),
        decode_errors=errors, family=getattr(codec, "family", None) or None,
        entropy_source=entropy_source if callable(entropy_source) else None,
        factory=tuple(factory) if factory is not None else None,
        sibling=getattr(codec, "sibling", None), crafted_streams=crafted, header_fields=fields)
