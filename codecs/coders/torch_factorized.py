"""The factorized codec on the batched torch rANS coder (the "GPU codec").

Same quantization, statistics and tables as a
:class:`~rdgap.codecs.entropy_models.factorized.FactorizedCodec`, but the symbols are coded by
:mod:`rdgap.codecs.coders.rans_torch` on any torch device. The float tables are turned
into integer frequencies once, on the CPU, deterministically
(:func:`~rdgap.codecs.coders.rans_torch.quantize_table`), so every device codes with
the same integers and writes the same bytes; decoding needs nothing that
depends on floating-point rounding.

Payload: ``u32`` number of escaped values, then one rANS stream over the
``tokens × channels`` symbols (token-major; position 0 with its own tables)
followed by five byte-symbols per escaped value (sign, then the 32-bit excess
over the table, high byte first), each coded with a uniform table.
"""

from __future__ import annotations

import struct

import numpy as np
import torch

from . import rans_torch
from ..base import HiddenStateCodec
from .container import BitstreamError, Stream, params_hash
from ..entropy_models.factorized import FactorizedCodec

PRECISION = 20          # 2^20 ≫ the widest table (2·4096 + 2), so padding costs < 1 %
_ESCAPE_SYMBOLS = 5     # sign, then 4 bytes of the excess magnitude


class TorchFactorizedCodec(HiddenStateCodec):
    """A :class:`FactorizedCodec`'s model, coded with the torch rANS coder.

    Parameters
    ----------
    model : FactorizedCodec
        Supplies quantization and tables.
    device : str or torch.device
        Where symbols are coded (``"cuda"`` when there is a GPU).
    lanes : int
        Interleaved rANS states per stream (64 bits of flush each).
    """

    def __init__(self, model: FactorizedCodec, device="cpu",
                 lanes: int = rans_torch.DEFAULT_LANES):
        if not isinstance(model, FactorizedCodec):
            raise ValueError(f"model: expected a FactorizedCodec, got {type(model).__name__}")
        self.model = model
        self.channels = model.channels
        self.device = torch.device(device)
        self.lanes = int(lanes)
        self.codec_id = model.codec_id + "-rans"
        tables = model._first_tables + model._tables
        self.widths = np.array([t.width for t in tables], dtype=np.int64)
        alphabet = max(256, int(2 * self.widths.max() + 2))
        rows = np.zeros((len(tables) + 1, alphabet))
        for i, table in enumerate(tables):
            rows[i, :table.probabilities.size] = table.probabilities
        rows[-1, :256] = 1.0 / 256  # uniform bytes for escape payloads
        self.freq = rans_torch.quantize_table(rows, PRECISION)
        self._freq_device = self.freq.to(self.device)
        self._digest = params_hash(self.codec_id, {
            "model": model.digest.hex(), "lanes": self.lanes, "precision": PRECISION})

    @property
    def digest(self) -> bytes:
        return self._digest

    def params(self) -> dict:
        return {"model": self.model.digest.hex(), "lanes": self.lanes}

    def reconstruct(self, hidden):
        """What decoding returns (the model's reconstruction)."""
        return self.model.reconstruct(hidden)

    def _table_ids(self, tokens: int, escapes: int) -> torch.Tensor:
        channels = self.model.channels
        ids = np.empty(tokens * channels + _ESCAPE_SYMBOLS * escapes, dtype=np.int64)
        ids[:channels] = np.arange(channels)
        ids[channels:tokens * channels] = np.tile(np.arange(channels, 2 * channels), tokens - 1)
        ids[tokens * channels:] = 2 * channels
        return torch.from_numpy(ids)[None].to(self.device)

    def _encode_payload(self, hidden):
        symbols = self.model._quantize(hidden)
        tokens, channels = symbols.shape
        widths = np.where(np.arange(tokens)[:, None] == 0, self.widths[None, :channels],
                          self.widths[None, channels:])
        index = symbols + widths
        outside = (index < 0) | (index > 2 * widths)
        excess = np.abs(symbols[outside]) - widths[outside] - 1
        index[outside] = 2 * widths[outside] + 1
        payload = [index.reshape(-1)]
        for value, extra in zip(symbols[outside], excess):
            payload.append(np.array([int(value < 0)] + list(int(extra).to_bytes(4, "big"))))
        flat = torch.from_numpy(np.concatenate(payload).astype(np.int64))[None].to(self.device)
        (stream,) = rans_torch.encode(flat, self._table_ids(tokens, len(excess)),
                                      self._freq_device, self.lanes)
        return struct.pack("<I", len(excess)) + stream

    def _decode_payload(self, stream: Stream):
        tokens, channels = stream.shape
        if channels != self.model.channels:
            raise BitstreamError(f"data: stream has {channels} channels, the codec "
                                 f"{self.model.channels}")
        if len(stream.payload) < 4:
            raise BitstreamError("data: payload too short for its escape count")
        (escapes,) = struct.unpack_from("<I", stream.payload)
        if escapes > tokens * channels:
            raise BitstreamError(f"data: {escapes} escaped values declared for "
                                 f"{tokens * channels} symbols; the stream is corrupted")
        length = tokens * channels + _ESCAPE_SYMBOLS * escapes
        rans_torch.check_lengths([stream.payload[4:]], length, self.freq)  # before allocating
        flat = rans_torch.decode([stream.payload[4:]], length,
                                 self._table_ids(tokens, escapes), self._freq_device,
                                 self.lanes, device=self.device)[0].cpu().numpy()
        index = flat[:tokens * channels].reshape(tokens, channels)
        widths = np.where(np.arange(tokens)[:, None] == 0, self.widths[None, :channels],
                          self.widths[None, channels:])
        escaped = index == 2 * widths + 1
        if int(escaped.sum()) != escapes or (index > 2 * widths + 1).any():
            raise BitstreamError("data: escape count or symbols do not match the tables; "
                                 "the stream is corrupted")
        symbols = index - widths
        extra = flat[tokens * channels:].reshape(escapes, _ESCAPE_SYMBOLS)
        magnitude = widths[escaped] + 1 + (extra[:, 1] << 24 | extra[:, 2] << 16
                                          | extra[:, 3] << 8 | extra[:, 4])
        symbols[escaped] = np.where(extra[:, 0] == 1, -magnitude, magnitude)
        return self.model.dequantize(symbols)

    def estimate_bits(self, hidden) -> float:
        """The model's ``Σ −log2 q`` (escape payloads at 33 bits, as coded here: 40)."""
        symbols = self.model.quantize(hidden)  # validates ``hidden`` (encode() did so too)
        tokens, channels = symbols.shape
        widths = np.where(np.arange(tokens)[:, None] == 0, self.widths[None, :channels],
                          self.widths[None, channels:])
        escapes = int(((symbols < -widths) | (symbols > widths)).sum())
        return self.model.estimate_bits(hidden) + (8 * _ESCAPE_SYMBOLS - 33) * escapes
