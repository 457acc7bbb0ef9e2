"""The shift guard on the batched torch rANS coder.

:class:`TorchShiftGuardedCodec` codes a fitted :class:`~rdgap.codecs.quantizers.
shift_guard.ShiftGuardedCodec` with the torch coders of its two sub-codecs
(:func:`rdgap.codecs.coders.backend.torch_codec`): the same detector decides, on the host,
which of them codes a window (the decision depends on the window's states only, never on
the coder), one header byte names it, and the chosen torch coder's payload follows. So a
window goes to the same sub-codec as on the CPU, and decodes to that sub-codec's
reconstruction (bit for bit on the CPU, as each torch coder does).

Everything else is :class:`~rdgap.codecs.quantizers.shift_guard.ShiftGuardedCodec`'s:
token ids reach the primary only (``needs_input_ids`` is the torch primary's), the
header byte and empty payloads are checked, and the rate theorem holds with the torch
sub-codecs' own bounds (``stream_bytes_bound``, present when both have one).

Codec id ``sg-<torch primary's codec_id>`` (e.g. ``sg-rc-klt-context-laplace-rans``) and
a hash over both torch sub-codecs' hashes and the detector: a CPU stream and a torch
stream are never confused (decoding one with the other raises
:class:`~rdgap.codecs.coders.container.BitstreamError`). The codec is built from the
fitted CPU codec; save that one (``torch_codec`` rebuilds this from it).
"""

from __future__ import annotations

import torch

from ..quantizers.shift_guard import ShiftGuardedCodec
from .container import Stream, pack, unpack
from . import rans_torch


class TorchShiftGuardedCodec(ShiftGuardedCodec):
    """A fitted shift-guarded codec whose sub-codecs are coded with torch rANS.

    Parameters
    ----------
    guarded : ShiftGuardedCodec
        The fitted CPU codec (its primary, fallback and detector).
    device : str or torch.device
        Where the sub-codecs' torch coders run.
    lanes : int
        Interleaved rANS states of each sub-codec's torch coder.

    Raises
    ------
    ValueError
        For another codec, or a sub-codec without a torch coder (naming it).
    """

    def __init__(self, guarded, device="cpu", lanes: int = rans_torch.DEFAULT_LANES):
        from .backend import torch_codec

        if not isinstance(guarded, ShiftGuardedCodec) or isinstance(guarded,
                                                                    TorchShiftGuardedCodec):
            raise ValueError(f"guarded: expected a fitted (CPU) ShiftGuardedCodec, got "
                             f"{type(guarded).__name__}")
        coders = {}
        for name in ("primary", "fallback"):
            try:
                coders[name] = torch_codec(getattr(guarded, name), device, lanes)
            except ValueError as error:
                raise ValueError(f"guarded: its {name} has no torch coder ({error})") from None
        super().__init__(coders["primary"], coders["fallback"], guarded.detector,
                         label=f"{guarded.label} (torch rANS)",
                         fit_report=guarded.fit_report)
        self.guarded = guarded
        self.device = torch.device(device)
        self.lanes = lanes

    def encode(self, hidden: torch.Tensor, input_ids=None) -> bytes:
        """One stream holding the window ``hidden`` (any device: the detector decides on
        the host, the chosen sub-codec codes on :attr:`device`)."""
        if isinstance(hidden, torch.Tensor):
            hidden = hidden.detach().cpu()
        return super().encode(hidden, input_ids)

    def save(self, folder):
        raise ValueError("folder: a torch-coded shift guard is built from its CPU codec; save "
                         "that one (self.guarded.save) and rebuild with torch_codec")

    # the torch coders write whole streams: their payload is cut out of, and put back
    # into, a container of their own
    def _encode_payload(self, hidden, input_ids=None):
        which, codec, ids = self._chosen(hidden, input_ids)
        stream = codec.encode(hidden, **ids)
        return bytes([which]) + unpack(stream, codec.codec_id, codec.digest).payload

    def _sub_decode(self, stream: Stream, with_ids: bool):
        codec, body = self._sub_stream(stream)
        data = pack(codec.codec_id, codec.digest, stream.shape, body.payload)
        if with_ids and codec is self.primary and self.needs_input_ids:
            hidden, ids = codec.decode_with_ids(data)
            return hidden.cpu(), ids
        return codec.decode(data).cpu(), None

    def _decode_payload(self, stream: Stream) -> torch.Tensor:
        return self._sub_decode(stream, with_ids=False)[0]

    def decode_with_ids(self, data: bytes):
        """``(hidden, input_ids)`` as :meth:`ShiftGuardedCodec.decode_with_ids`."""
        return self._sub_decode(self._unpack_tokens(data), with_ids=True)


__all__ = ["TorchShiftGuardedCodec"]
