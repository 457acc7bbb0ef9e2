"""The step-factor ladder of window-controlled codecs, their window header, and the
searches over the ladder (:mod:`rdgap.codecs.quantizers.window_control`).

A window-controlled stream's payload starts with two bytes, ``flags`` and the ladder
index ``k`` of the step factor ``LADDER[k] = 2^{(k − 48)/16}`` (1/8 … 8), before the
base codec's payload. :func:`read_window_header` refuses unknown flags and indices
outside the ladder; :func:`split_window_payload` also checks the header against the
rest of the payload (the decoder checks of both wrappers and their torch coders).
"""

from __future__ import annotations

import math
import struct

import numpy as np

from ..coders.container import BitstreamError

#: Ladder entries per octave of step factor.
STEPS_PER_OCTAVE = 16
#: Ladder exponents ``k``: factors ``2^{k/16}`` from 1/8 to 8.
LADDER_EXPONENTS = np.arange(-48, 49)
#: The step factors of the ladder.
LADDER = np.exp2(LADDER_EXPONENTS / STEPS_PER_OCTAVE)
#: Bytes of the window header (flags, ladder index) in front of the base payload.
WINDOW_HEADER_BYTES = 2
#: Flag: a coarser factor than the distortion control chose, for the rate cap.
FLAG_CAP = 1
#: Flag: the window is not coded (even the coarsest factor exceeds the cap).
FLAG_FALLBACK = 2
#: Flag: even the finest factor's prediction exceeds the level (the finest is used).
FLAG_LEVEL_UNREACHED = 4
_KNOWN_FLAGS = FLAG_CAP | FLAG_FALLBACK | FLAG_LEVEL_UNREACHED
#: The index of factor 1 (the base codec itself).
UNIT_INDEX = int(np.flatnonzero(LADDER_EXPONENTS == 0)[0])


def guess_index(predicted_at_unit: float, target: float) -> int:
    """The index where T7's ``P ∝ f²`` puts ``P = target`` from ``P`` at factor 1.

    >>> guess_index(0.04, 0.01) - UNIT_INDEX   # half the step: 16 entries down
    -16
    """
    if predicted_at_unit <= 0:
        return len(LADDER) - 1
    index = UNIT_INDEX + math.floor(STEPS_PER_OCTAVE * 0.5 * math.log2(target /
                                                                      predicted_at_unit))
    return int(min(max(index, 0), len(LADDER) - 1))


def coarsest_feasible(feasible, guess: int) -> tuple[int, int]:
    """A ladder index ``k`` with ``feasible(k)`` and not ``feasible(k + 1)`` (or the last
    index), by galloping from ``guess`` and bisection; ``(0, FLAG_LEVEL_UNREACHED)`` when
    not even the finest index is feasible. The globally coarsest feasible index when
    ``feasible`` is monotone (true up to some index, false above).

    >>> coarsest_feasible(lambda k: k <= 30, guess=60)
    (30, 0)
    >>> coarsest_feasible(lambda k: False, guess=60)
    (0, 4)
    """
    last = len(LADDER) - 1
    if feasible(guess):
        low, high, step = guess, None, 1
        while low < last:
            probe = min(low + step, last)
            if not feasible(probe):
                high = probe
                break
            low, step = probe, 2 * step
        if high is None:
            return last, 0
    else:
        low, high, step = None, guess, 1
        while high > 0:
            probe = max(high - step, 0)
            if feasible(probe):
                low = probe
                break
            high, step = probe, 2 * step
        if low is None:
            return 0, FLAG_LEVEL_UNREACHED
    return _boundary(low, high, feasible)[0], 0


def first_fitting(start: int, fits) -> int | None:
    """The smallest index above ``start`` whose stream ``fits`` (galloping, then bisection
    between a non-fitting and a fitting index), or None when even the last index does not
    fit; ``fits`` is called on real streams.

    >>> first_fitting(10, lambda k: k >= 37)
    37
    >>> first_fitting(10, lambda k: False) is None
    True
    """
    last = len(LADDER) - 1
    if start >= last or not fits(last):
        return None
    low, step = start, 1  # low: does not fit
    while True:
        probe = min(low + step, last)
        if fits(probe):
            high = probe
            break
        low, step = probe, 2 * step
    return _boundary(low, high, lambda k: not fits(k))[1]


def _boundary(low: int, high: int, holds) -> tuple[int, int]:
    """Bisection from ``holds(low)`` and not ``holds(high)`` to two adjacent indices with
    the same property."""
    while high - low > 1:
        middle = (low + high) // 2
        if holds(middle):
            low = middle
        else:
            high = middle
    return low, high


def read_window_header(payload: bytes) -> tuple[int, int]:
    """``(flags, ladder index)`` of a controlled stream's payload.

    Raises
    ------
    BitstreamError
        For a payload shorter than the header, unknown flag bits or an index outside
        :data:`LADDER`.
    """
    if len(payload) < WINDOW_HEADER_BYTES:
        raise BitstreamError(f"data: payload of {len(payload)} bytes; a window-controlled "
                             f"stream starts with a {WINDOW_HEADER_BYTES}-byte window header")
    flags, index = payload[0], payload[1]
    if flags & ~_KNOWN_FLAGS:
        raise BitstreamError(f"data: unknown window flags {flags:#04x}; the stream is corrupted "
                             f"or from a newer rdgap")
    if index >= len(LADDER):
        raise BitstreamError(f"data: ladder index {index} outside the ladder of {len(LADDER)} "
                             f"step factors; the stream is corrupted")
    return flags, index


def window_header(data: bytes) -> tuple[int, int]:
    """``(flags, ladder index)`` of a whole stream written by a controlled codec (for
    counting how often the cap binds); the container is parsed, not checked against a
    codec (use ``decode`` for that)."""
    try:
        at = 6 + data[5] + 8
        at += 1 + 4 * data[at]
        (length,) = struct.unpack_from("<I", data, at)
    except (IndexError, struct.error):
        raise BitstreamError(f"data: {len(data)} bytes are not a whole rdgap stream") from None
    return read_window_header(data[at + 4:at + 4 + length])


def split_window_payload(stream, channels: int, cap_only: bool = False
                         ) -> tuple[int, int, bytes]:
    """``(flags, ladder index, base payload)`` of a window-controlled (``cap_only``:
    rate-capped) stream, checked before any work sized by the stream.

    Parameters
    ----------
    stream : rdgap.codecs.coders.container.Stream
        The unpacked stream (its shape and payload).
    channels : int
        The wrapper's channels.
    cap_only : bool
        A rate-capped stream (:mod:`rdgap.codecs.quantizers.rate_cap`): no distortion
        flag, factor 1 unless the cap flag is set, then a coarser one.

    Raises
    ------
    BitstreamError
        For another number of channels, a bad header (:func:`read_window_header`), a
        fallback with a payload or a ladder index, and (``cap_only``) the flag / index
        combinations a rate-capped encoder never writes.
    """
    if stream.shape[1] != channels:
        raise BitstreamError(f"data: stream has {stream.shape[1]} channels, the codec "
                             f"{channels}")
    flags, index = read_window_header(stream.payload)
    body = stream.payload[WINDOW_HEADER_BYTES:]
    if cap_only and flags & ~(FLAG_CAP | FLAG_FALLBACK):
        raise BitstreamError(f"data: window flags {flags:#04x} include distortion control, "
                             f"which a rate-capped stream never sets; the stream is "
                             f"corrupted")
    if flags & FLAG_FALLBACK:
        if body or index != 0 or (cap_only and not flags & FLAG_CAP):
            raise BitstreamError("data: a window flagged 'not coded' (fallback) carries "
                                 "a payload or a ladder index; the stream is corrupted")
    elif cap_only and ((index == UNIT_INDEX) == bool(flags & FLAG_CAP) or index < UNIT_INDEX):
        raise BitstreamError(f"data: ladder index {index} with flags {flags:#04x}: a "
                             f"rate-capped stream uses factor 1 unless the cap flag is set, "
                             f"then a coarser one; the stream is corrupted")
    return flags, index, body
