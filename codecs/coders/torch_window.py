"""The window wrappers (rate cap, distortion control) on the batched torch rANS coder.

:class:`TorchWindowCodec` codes a fitted :class:`~rdgap.codecs.quantizers.rate_cap.
RateCappedCodec` (``Recipe.fit``'s default format) or :class:`~rdgap.codecs.quantizers.
window_control.WindowControlledCodec` (``klt-context-wc``, ``klt-laplace-wc``,
``gaussian-fisher-wc``) with the torch coder of its base (:func:`rdgap.codecs.coders.
backend.torch_codec`): the same two-byte window header (flags, ladder index;
:mod:`rdgap.codecs.quantizers.window_ladder`), then the payload that the torch coder
of the base rescaled to that ladder entry (``wrapper.at(index)``) writes.

The decision is the wrapper's own code (``decide``), given the torch coder's payloads:

- the distortion search (window control) reads the base's reconstruction, which both
  coders decode to (bit for bit on the CPU), so it picks the same factor as the CPU
  coder;
- the rate cap is decided on the real bytes of *this* stream, never the CPU coder's,
  so the cap theorem of both wrappers holds for the streams written here:
  ``8·len(stream) ≤ max(B_cap·T, 8·(H + 2))`` with ``H`` this codec's container
  (:meth:`TorchWindowCodec.stream_bytes_bound`). The torch payload of a window is not
  the CPU coder's (another entropy coder: 64 flush bits per lane and section), so on a
  window near the cap the two coders may choose different factors.

Codec id ``<wrapper codec_id>-rans`` (e.g. ``rc-klt-context-laplace-rans``) and a hash
of the wrapper's hash, the lanes and the precision: a CPU stream and a torch stream
are never confused (decoding one with the other raises :class:`~rdgap.codecs.coders.
container.BitstreamError` naming the writer). A torch stream is the same bytes on
every device (the base's torch coders' property) and decodes on any device with the
same fitted wrapper; the decoder refuses what the CPU wrapper refuses (one helper:
:func:`~rdgap.codecs.quantizers.window_ladder.split_window_payload`).
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from ..base import HiddenStateCodec, check_hidden
from .container import Stream, header_size, pack, params_hash, unpack
from ..quantizers.rate_cap import RateCappedCodec
from ..quantizers.window_control import SCALED_CACHE, WindowControlledCodec
from ..quantizers.window_ladder import (FLAG_FALLBACK, UNIT_INDEX, WINDOW_HEADER_BYTES,
                                        split_window_payload)
from . import rans_torch

#: Version of the payload layout (window header, then the torch base payload).
LAYOUT_VERSION = 1


class TorchWindowCodec(HiddenStateCodec):
    """A fitted rate-capped or window-controlled codec coded with torch rANS.

    Parameters
    ----------
    wrapper : RateCappedCodec or WindowControlledCodec
        The fitted wrapper (its base, cap, level and decision rule).
    device : str or torch.device
        Where the base's torch coder runs.
    lanes : int
        Interleaved rANS states of the base's torch coder.

    Raises
    ------
    ValueError
        For another codec, or a base without a torch coder.
    """

    def __init__(self, wrapper, device="cpu", lanes: int = rans_torch.DEFAULT_LANES):
        if not isinstance(wrapper, (RateCappedCodec, WindowControlledCodec)):
            raise ValueError(f"wrapper: expected a RateCappedCodec or WindowControlledCodec, "
                             f"got {type(wrapper).__name__}")
        self.wrapper = self.model = wrapper
        self.device = torch.device(device)
        self.lanes = lanes
        self.channels = wrapper.channels
        self.cap_only = isinstance(wrapper, RateCappedCodec)
        self.codec_id = wrapper.codec_id + "-rans"
        self._coders: OrderedDict[int, HiddenStateCodec] = OrderedDict()
        self.base = self.at(UNIT_INDEX)   # refuses a base without a torch coder, now
        self._digest = params_hash(self.codec_id, {
            "wrapper": wrapper.digest.hex(), "base": self.base.digest.hex(),
            "lanes": self.lanes, "layout": LAYOUT_VERSION})

    @property
    def digest(self) -> bytes:
        """Hash of the wrapper's hash, the base torch coder's hash (lanes, precision)
        and the layout version."""
        return self._digest

    def params(self) -> dict:
        return {"wrapper": self.wrapper.digest.hex(), "base": self.base.digest.hex(),
                "lanes": self.lanes, "layout": LAYOUT_VERSION}

    def at(self, index: int) -> HiddenStateCodec:
        """The torch coder of ``wrapper.at(index)`` (the last
        :data:`~rdgap.codecs.quantizers.window_control.SCALED_CACHE` kept); a joint
        model's shares the base coder's body tables (they depend on the table index
        and the rounding only, not on the steps)."""
        from .backend import torch_codec

        coder = self._coders.get(index)
        if coder is None:
            scaled, base = self.wrapper.at(index), getattr(self, "base", None)
            if base is not None and hasattr(base, "body_tables") \
                    and type(scaled) is type(base.model) \
                    and scaled.rounding == base.model.rounding:
                # a rescaled joint model: the body tables are the base's (index, rounding)
                coder = type(base)(scaled, self.device, self.lanes, body=base.body_tables)
            else:
                coder = torch_codec(scaled, self.device, self.lanes)
            self._coders[index] = coder
            while len(self._coders) > SCALED_CACHE:
                self._coders.popitem(last=False)
        else:
            self._coders.move_to_end(index)
        return coder

    # -- the base payload at one ladder entry ----------------------------------------
    def _base_payload(self, index: int, hidden: torch.Tensor) -> bytes:
        coder = self.at(index)
        return unpack(coder.encode(hidden), coder.codec_id, coder.digest).payload

    def decide(self, hidden: torch.Tensor):
        """The wrapper's decision on this coder's bytes: ``(index, flags, payload)`` of a
        rate-capped codec, a :class:`~rdgap.codecs.quantizers.window_control.
        WindowDecision` of a window-controlled one (the payload holds the window header
        and the torch base payload)."""
        return self.wrapper.decide(hidden, self._base_payload, self.codec_id)

    def _header(self, hidden: torch.Tensor) -> tuple[int, int, bytes]:
        decision = self.decide(hidden)
        if self.cap_only:
            return decision
        return decision.index, decision.flags, decision.payload

    # -- HiddenStateCodec ------------------------------------------------------------
    def encode(self, hidden: torch.Tensor) -> bytes:
        """One stream holding the window ``hidden`` (any device; the decision runs on the
        host, the base payload is coded on :attr:`device`)."""
        if isinstance(hidden, torch.Tensor):
            hidden = hidden.detach().cpu()
        return super().encode(hidden)

    def _encode_payload(self, hidden: torch.Tensor) -> bytes:
        return self._header(hidden)[2]

    def encode_batch(self, hidden) -> list[bytes]:
        """One stream per window of ``hidden`` (``(B, T, C)`` or a list of ``(T_i, C)``);
        each window is decided on its own bytes."""
        return [self.encode(window) for window in hidden]

    def decode_windows(self, data) -> list[torch.Tensor]:
        """One float32 ``(T_i, C)`` tensor per stream."""
        return [self.decode(d) for d in data]

    def _decode_payload(self, stream: Stream) -> torch.Tensor:
        flags, index, body = split_window_payload(stream, self.channels, self.cap_only)
        if flags & FLAG_FALLBACK:
            return self.wrapper._fallback(stream.shape[0])
        coder = self.at(index)
        return coder.decode(pack(coder.codec_id, coder.digest, stream.shape, body)).cpu()

    def reconstruct(self, hidden: torch.Tensor) -> torch.Tensor:
        """What decoding the stream of ``hidden`` returns (to the base torch coder's
        float rounding)."""
        index, flags, _ = self._header(hidden)
        if flags & FLAG_FALLBACK:
            return self.wrapper._fallback(hidden.shape[0])
        return self.at(index).reconstruct(hidden)

    def estimate_bits(self, hidden: torch.Tensor) -> float | None:
        """The chosen factor's model estimate of the base payload plus the 16 header
        bits."""
        hidden = check_hidden(hidden)
        index, flags, _ = self._header(hidden)
        if flags & FLAG_FALLBACK:
            return 8.0 * WINDOW_HEADER_BYTES
        bits = self.at(index).estimate_bits(hidden)
        return None if bits is None else bits + 8.0 * WINDOW_HEADER_BYTES

    def stream_bytes_bound(self, tokens: int) -> int:
        """The most bytes a stream of ``tokens`` tokens written here can have (the cap
        theorem with this codec's container): ``max(⌊B_cap·T / 8⌋, H + 2)``."""
        floor = header_size(self.codec_id, 2) + WINDOW_HEADER_BYTES
        return max(int(self.wrapper.cap_bits_per_token * tokens // 8), floor)


__all__ = ["TorchWindowCodec"]
