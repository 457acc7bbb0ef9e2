"""A rate cap on every window: the cap-only mode of the window-controlled codecs.

:class:`RateCappedCodec` wraps a fitted codec whose steps can be scaled (the
:func:`~rdgap.codecs.quantizers.window_control.rescale` of the window-controlled
codecs) and caps the bits of every stream it writes, container included, at
``B_cap`` bits per token (THEORY.md T8: the range ``B`` of the per-document rates is
the cap, so the held-out betting interval is informative).

Encoding a window
    The base codes it at step factor 1. If the stream is longer than ``B_cap·T``
    bits, coarser factors of the ladder (:data:`~rdgap.codecs.quantizers.window_ladder.
    LADDER`, ``2^{k/16}`` up to 8) are tried on real bytes, never an estimate, and the
    finest that fits is used, flagged :data:`FLAG_CAP`; if even factor 8 does not fit,
    the window is not coded (:data:`FLAG_FALLBACK`, empty base payload) and decodes to
    the base's per-channel means — for windows of at most :data:`MAX_FALLBACK_TOKENS`
    tokens (a fallback holds no data, so its declared shape alone sizes the output; a
    longer window that needs one is refused at the encoder, a longer declared one at
    the decoder). No distortion control: a window the cap does not
    bind on is the base's stream plus a two-byte header, and decodes to exactly the
    base's reconstruction. So the distortion takes the excess, only on the windows
    where the cap binds.

**Theorem** (every stream ``encode`` writes): ``8·len(stream) ≤ max(B_cap·T,
8·(H + 2))``, ``H`` the container's bytes. So the rate of every window is in
``[0, max(B_cap, 8(H + 2)/T)]`` bits per token, the value
:meth:`RateCappedCodec.stream_bytes_bound` gives and
:func:`rdgap.validation.stream_range.stream_bound_parts` uses as ``B``.

The stream is the window-controlled one's (flags, ladder index, base payload) with
its own codec id (``rc-…``) and hash; the decoder refuses unknown flags, the
distortion flag (this codec never sets it), a ladder index finer than 1, an index
other than 1 without the cap flag, and a fallback with a payload
(:class:`~rdgap.codecs.coders.container.BitstreamError`, before any work sized by
the stream).

:func:`cap_fitted` sets ``B_cap`` = ``multiple`` × the mean real bits per token of
the base on the fit probe windows (container and header included) and records how
often the cap binds there (``fit_report``, saved, not hashed).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from .. import persist
from ..recipes import DEFAULT_CAP
from ..base import HiddenStateCodec, check_hidden
from ..coders.container import BitstreamError, Stream, header_size
from .window_control import WindowControlledCodec, _check_rescalable
from .window_ladder import (FLAG_CAP, FLAG_FALLBACK, LADDER, UNIT_INDEX, WINDOW_HEADER_BYTES,
                            first_fitting, split_window_payload, window_header)

FORMAT_VERSION = 1
#: The longest window coded as a fallback (its means, no data): a fallback stream's
#: declared shape alone sizes the decoder's output, so it is bounded by this constant
#: (4,096 tokens; ``rdgap validate``'s windows are 128–256).
MAX_FALLBACK_TOKENS = 4096
#: The default cap: this multiple of the fitted rate (``Recipe.fit(cap=...)``).
DEFAULT_CAP_MULTIPLE = DEFAULT_CAP


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)


class RateCappedCodec(HiddenStateCodec):
    """A rescalable base codec whose every stream is capped at ``B_cap`` bits/token.

    Parameters
    ----------
    base : HiddenStateCodec
        A fitted codec whose steps can be scaled (a ``ContextCodec`` or a plain
        ``FactorizedCodec``); codecs that code token ids are refused.
    cap_bits_per_token : float
        ``B_cap > 0`` (container included); stored and hashed.
    label : str
        Free text saved with the codec (not hashed).
    fit_report : dict, optional
        What :func:`cap_fitted` measured (saved, not hashed).

    Attributes
    ----------
    model : HiddenStateCodec
        The base (so that :func:`rdgap.validation.codec_domain.quantizer_of` finds
        its quantizer and lattice).
    """

    def __init__(self, base: HiddenStateCodec, cap_bits_per_token: float, label: str = "",
                 fit_report: dict | None = None):
        if getattr(base, "needs_input_ids", False):
            raise ValueError("base: a codec that codes token ids (klt-context-tokens) cannot "
                             "be rescaled window by window; fit it with cap=None")
        _check_rescalable(base)
        self.base = self.model = base
        self.channels = int(base.channels)
        self.cap_bits_per_token = _positive("cap_bits_per_token", cap_bits_per_token)
        self.label = label
        self.fit_report = dict(fit_report or {})
        self.codec_id = f"rc-{base.codec_id}"
        self._scaled: OrderedDict[int, HiddenStateCodec] = OrderedDict()
        h = hashlib.blake2b(digest_size=8)
        h.update(json.dumps({"codec": self.codec_id, "version": FORMAT_VERSION,
                             "base": base.digest.hex(), "cap": self.cap_bits_per_token,
                             "header": WINDOW_HEADER_BYTES}).encode())
        h.update(np.ascontiguousarray(LADDER, dtype="<f8").tobytes())
        self._digest = h.digest()

    @property
    def digest(self) -> bytes:
        return self._digest

    def params(self) -> dict:
        return {"base": self.base.digest.hex(), "cap_bits_per_token": self.cap_bits_per_token,
                "label": self.label, "hash": self._digest.hex()}

    #: The base rescaled by ``LADDER[index]`` (the base itself at factor 1; the last few
    #: kept, least recently used dropped): the window-controlled codecs' cache.
    at = WindowControlledCodec.at

    def _container_bytes(self, codec_id: str | None = None) -> int:
        return header_size(codec_id or self.codec_id, 2) + WINDOW_HEADER_BYTES

    def stream_bytes_bound(self, tokens: int) -> int:
        """The most bytes a stream of ``tokens`` tokens can have (the theorem of the
        module): ``max(⌊B_cap·T / 8⌋, H + 2)``."""
        return max(int(self.cap_bits_per_token * tokens // 8), self._container_bytes())

    def _fallback(self, tokens: int) -> torch.Tensor:
        """The reconstruction of a window not coded: the base's per-channel means, for at
        most :data:`MAX_FALLBACK_TOKENS` tokens (a fallback stream holds no data, so its
        declared shape alone would size the output; a crafted header declaring more is a
        BitstreamError)."""
        if tokens > MAX_FALLBACK_TOKENS:
            raise BitstreamError(f"data: a fallback (not coded) window declares {tokens} "
                                 f"tokens; the encoder writes one for at most "
                                 f"{MAX_FALLBACK_TOKENS}; the stream is corrupted")
        return WindowControlledCodec._fallback(self, tokens)

    def decide(self, hidden: torch.Tensor, payload_of=None, codec_id: str | None = None
               ) -> tuple[int, int, bytes]:
        """``(ladder index, flags, payload)`` of one window (see the module).

        ``payload_of(index, hidden)`` writes the base payload at ``LADDER[index]`` and
        ``codec_id`` names the stream (for its container's size): by default this
        codec's (the CPU coder); the torch coder
        (:class:`rdgap.codecs.coders.torch_window.TorchWindowCodec`) passes its own, so
        the cap is decided on the bytes it writes."""
        hidden = check_hidden(hidden)
        if hidden.shape[1] != self.channels:
            raise ValueError(f"hidden: expected {self.channels} channels (the codec was fitted "
                             f"on them), got {hidden.shape[1]}")
        budget = self.cap_bits_per_token * hidden.shape[0]
        container = self._container_bytes(codec_id)
        payloads: dict[int, bytes] = {}
        payload_of = payload_of or (lambda k, h: self.at(k)._encode_payload(h))

        def fits(k: int) -> bool:
            if k not in payloads:
                payloads[k] = payload_of(k, hidden)
            return 8.0 * (container + len(payloads[k])) <= budget

        if fits(UNIT_INDEX):
            return UNIT_INDEX, 0, bytes([0, UNIT_INDEX]) + payloads[UNIT_INDEX]
        index = first_fitting(UNIT_INDEX, fits)
        if index is None:
            if hidden.shape[0] > MAX_FALLBACK_TOKENS:
                raise ValueError(f"hidden: not even step factor 8 fits the cap of "
                                 f"{self.cap_bits_per_token:g} bits/token on this window of "
                                 f"{hidden.shape[0]} tokens, and a window of more than "
                                 f"{MAX_FALLBACK_TOKENS} tokens is never coded as a fallback "
                                 f"(its means); raise the cap or code shorter windows")
            return 0, FLAG_CAP | FLAG_FALLBACK, bytes([FLAG_CAP | FLAG_FALLBACK, 0])
        return index, FLAG_CAP, bytes([FLAG_CAP, index]) + payloads[index]

    # -- HiddenStateCodec ------------------------------------------------------------
    def _encode_payload(self, hidden):
        return self.decide(hidden)[2]

    def reconstruct(self, hidden: torch.Tensor) -> torch.Tensor:
        """What decoding the stream of ``hidden`` returns."""
        index, flags, _ = self.decide(hidden)
        if flags & FLAG_FALLBACK:
            return self._fallback(hidden.shape[0])
        return self.at(index).reconstruct(hidden)

    def estimate_bits(self, hidden) -> float | None:
        """The chosen factor's ``Σ −log2 q`` of the base payload plus the 16 header bits."""
        index, flags, _ = self.decide(hidden)
        if flags & FLAG_FALLBACK:
            return 8.0 * WINDOW_HEADER_BYTES
        bits = self.at(index).estimate_bits(hidden)
        return None if bits is None else bits + 8.0 * WINDOW_HEADER_BYTES

    def _decode_payload(self, stream: Stream) -> torch.Tensor:
        flags, index, body = split_window_payload(stream, self.channels, cap_only=True)
        if flags & FLAG_FALLBACK:
            return self._fallback(stream.shape[0])
        scaled = self.at(index)
        return scaled._decode_payload(Stream(scaled.codec_id, stream.shape, body))

    # -- persistence -----------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write the base into ``folder/base`` and the cap into ``folder/config.json``."""
        folder = Path(folder)
        self.base.save(folder / "base")
        return persist.write(folder, {}, {
            "rdgap_codec": "rate-capped", "format_version": FORMAT_VERSION,
            "cap_bits_per_token": self.cap_bits_per_token, "label": self.label,
            "channels": self.channels, "fit_report": self.fit_report,
            "hash": self._digest.hex()})

    @classmethod
    def load(cls, folder: str | Path, **options) -> "RateCappedCodec":
        """Load a codec written by :meth:`save` (its base through
        :func:`rdgap.codecs.recipes.load_codec`); checks version and hash."""
        from ..recipes import load_codec

        config, _ = persist.read(folder, "rate-capped", FORMAT_VERSION, (), cls.__name__)
        cap = config["cap_bits_per_token"]
        if isinstance(cap, bool) or not isinstance(cap, (int, float)):
            raise ValueError(f"folder: field 'cap_bits_per_token' of {folder}/config.json is "
                             f"{cap!r}, expected a number")
        report = config.get("fit_report", {})
        codec = cls(load_codec(Path(folder) / "base", **options), float(cap),
                    label=config.get("label", ""),
                    fit_report=report if isinstance(report, dict) else {})
        persist.check_hash(codec, config, folder)
        return codec


def cap_binds(data: bytes) -> bool:
    """Whether the cap bound on the window a rate-capped stream holds (its flag)."""
    return bool(window_header(data)[0] & FLAG_CAP)


def capable(codec) -> bool:
    """Whether :class:`RateCappedCodec` can wrap ``codec`` (rescalable, no token ids)."""
    if getattr(codec, "needs_input_ids", False):
        return False
    try:
        _check_rescalable(codec)
    except ValueError:
        return False
    return True


def cap_fitted(fitted, probe_hidden: torch.Tensor, multiple: float = DEFAULT_CAP_MULTIPLE):
    """``fitted`` (a :class:`rdgap.codecs.fit.FittedCodec`) with its codec capped.

    ``B_cap`` = ``multiple`` × the mean real bits per token of the capped format on
    ``probe_hidden`` (the fit probe windows: base stream + window header, container
    included) when the cap does not bind. The codec's ``fit_report`` records the fitted
    rate, the multiple, the cap, and on how many probe windows it binds (and on how
    many even factor 8 does not fit, a fallback).

    Raises
    ------
    ValueError
        For ``multiple`` not a finite number > 1, or a codec that cannot be rescaled.
    """
    from ..fit import FittedCodec

    if isinstance(multiple, bool) or not isinstance(multiple, (int, float)) \
            or not (math.isfinite(multiple) and multiple > 1):
        raise ValueError(f"cap: expected a multiple > 1 of the fitted rate (e.g. "
                         f"{DEFAULT_CAP_MULTIPLE}), or None for no cap; got {multiple!r}")
    base = fitted.codec
    uncapped = RateCappedCodec(base, 1e12)
    windows = probe_hidden.shape[0]
    tokens = probe_hidden.shape[1]
    bits = np.array([8.0 * len(uncapped.encode(w)) for w in probe_hidden]) / tokens
    cap = float(multiple) * float(bits.mean())
    codec = RateCappedCodec(base, cap, label=f"{getattr(base, 'label', '')} cap={cap:.6g}")
    flags = [codec.decide(w)[1] for w in probe_hidden]
    codec.fit_report = {
        "fit_bits_per_token": float(bits.mean()), "cap_multiple": float(multiple),
        "cap_bits_per_token": cap, "fit_windows": int(windows),
        "fit_windows_cap_binds": int(sum(bool(f & FLAG_CAP) for f in flags)),
        "fit_windows_fallback": int(sum(bool(f & FLAG_FALLBACK) for f in flags))}
    return FittedCodec(fitted.variant, codec, fitted.calibration, fitted.predicted_delta_ce,
                       uncapped=base)


def apply_cap(fitted, context, cap: float | None, own_cap: bool = False):
    """What :meth:`rdgap.codecs.recipes.Recipe.fit` returns: ``fitted`` capped by
    :func:`cap_fitted` at ``cap`` × its fitted rate on ``context.probe``'s windows, with
    :attr:`~rdgap.codecs.fit.FittedCodec.rate_cap` saying in words what was done
    (``cap=None``: not capped, and says so; ``own_cap``: a window-controlled codec,
    which carries its own cap; a codec that cannot be rescaled: not capped, and why)."""
    if own_cap:
        codec = fitted.codec
        fitted.rate_cap = (f"B_cap = {codec.cap_bits_per_token:.6g} bits/token (the "
                           f"window-controlled codec's own cap)")
        return fitted
    if cap is None:
        fitted.rate_cap = "none (cap=None): the rate range B is the format's worst case"
        return fitted
    if not capable(fitted.codec):
        fitted.rate_cap = (f"none: a {type(fitted.codec).__name__} cannot be rescaled window "
                           f"by window; B is the format's worst case")
        return fitted
    capped = cap_fitted(fitted, context.probe.hidden, cap)
    report = capped.codec.fit_report
    capped.rate_cap = (f"B_cap = {report['cap_bits_per_token']:.6g} bits/token = {cap:g} × the "
                       f"fitted rate; binds on {report['fit_windows_cap_binds']} of "
                       f"{report['fit_windows']} fit probe windows")
    return capped


__all__ = ["apply_cap", "RateCappedCodec", "cap_fitted", "cap_binds", "capable", "DEFAULT_CAP_MULTIPLE"]
