r"""How many symbols a payload of ``b`` bits can hold: the decoders' work bound (issue 17).

A stream's header declares its shape, and the shape decides how many symbols the
entropy decoder reads and how much memory it allocates. A crafted header (with
its checksum recomputed) must not buy more work than the payload's bytes justify,
so every rdgap entropy decoder checks the declared symbol count **before**
allocating, against two limits:

1. **Information.** Under an integer table of precision ``P`` whose largest
   frequency is ``f_max``, every symbol moves an rANS state by at least
   ``b = log2(2^P / f_max) − ε`` bits, ``ε = log2(1 + 2^-8)`` (the state stays at
   or above ``2^32`` and ``P <= 24``; see :func:`min_bits`). A payload of ``B``
   bits therefore holds at most ``(B + slack) / b`` symbols. For the torch coder
   (state ``>= 2^32`` from start to end) this is a theorem about every valid stream.
   constriction's stack coder starts from state 0, where the first entry of a
   table costs nothing, so :mod:`rdgap.codecs.coders.ans` *also* checks the same
   inequality when it encodes and refuses (``ValueError``) the pathological input
   that would break it: no stream it writes is refused by its decoder.
2. **A cap** on the symbols of one stream, :data:`MAX_STREAM_SYMBOLS` (default
   ``2^24``; environment variable ``RDGAP_MAX_STREAM_SYMBOLS``), for tables whose
   most likely entry has probability near 1, where ``b`` is close to 0 and the
   information bound is weak. Encoders refuse to write more.

Both are decode-side checks on values every stream already carries: no stream's
bytes change (tests/codecs/golden_streams.json).
"""

from __future__ import annotations

import math
import os

import numpy as np

from .container import BitstreamError

#: ``log2(1 + 2^-8)``: the most a symbol's cost can fall short of ``log2(2^P / f)``
#: while the state is ``>= 2^32`` and ``P <= 24``.
EPSILON_BITS = math.log2(1.0 + 2.0 ** -8)


def _cap_from_environment() -> int:
    text = os.environ.get("RDGAP_MAX_STREAM_SYMBOLS", "")
    if not text:
        return 1 << 24
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"RDGAP_MAX_STREAM_SYMBOLS: expected a positive integer, got {text!r}")
    return value


#: Most symbols one entropy-coded stream may hold (tokens × channels plus side
#: latents and escapes). Configurable: set this attribute, or the environment
#: variable ``RDGAP_MAX_STREAM_SYMBOLS`` before import.
MAX_STREAM_SYMBOLS = _cap_from_environment()


def min_bits(largest_frequency, precision: int, state_floor_bits: int = 32) -> np.ndarray:
    """``max(0, log2(2^P / f_max) − ε)``: the fewest bits one symbol can take off a payload.

    Decoding a symbol of frequency ``f`` from a state ``x >= 2^F`` gives ``y =
    f·⌊x / 2^P⌋ + (x mod 2^P) − c < f·(x / 2^P + 1)``, so the state loses more
    than ``log2(2^P / f) − log2(1 + 2^(P − F))`` bits: ``ε = log2(1 + 2^(P − F))``.

    Parameters
    ----------
    largest_frequency : array_like of int
        ``f_max`` of each table (``1 <= f_max <= 2^P``).
    precision : int
        ``P``, the tables' total is ``2^P``.
    state_floor_bits : int
        ``F``: the coder keeps its state at or above ``2^F`` (32 for constriction,
        31 for :mod:`rdgap.codecs.coders.rans_torch`).
    """
    f = np.asarray(largest_frequency, dtype=np.float64)
    epsilon = np.log2(1.0 + 2.0 ** (precision - state_floor_bits))
    return np.maximum(0.0, precision - np.log2(f) - epsilon)


def check_cap(symbols: int, what: str = "data") -> None:
    """BitstreamError when one stream declares more than :data:`MAX_STREAM_SYMBOLS` symbols."""
    if symbols > MAX_STREAM_SYMBOLS:
        raise BitstreamError(f"{what}: the stream declares {symbols} symbols, more than "
                             f"MAX_STREAM_SYMBOLS = {MAX_STREAM_SYMBOLS} (rdgap.codecs.coders."
                             f"limits; raise it, or RDGAP_MAX_STREAM_SYMBOLS, for larger windows)")


def check_information(needed_bits: float, payload_bits: int, slack_bits: float,
                      what: str = "data") -> None:
    """BitstreamError when the declared symbols need more bits than the payload has."""
    if needed_bits > payload_bits + slack_bits:
        raise BitstreamError(f"{what}: the declared shape needs at least {needed_bits:.0f} "
                             f"payload bits under the codec's tables, the payload has "
                             f"{payload_bits} (+{slack_bits:.0f} of state); the header is "
                             f"corrupted or crafted")
