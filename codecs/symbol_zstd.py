"""zstd of the integer symbols of a quantizer: the generic-compressor baseline.

It quantizes exactly like a given :class:`~rdgap.codecs.entropy_models.factorized.FactorizedCodec`
(same steps, same reconstruction, hence the same distortion) but replaces the
entropy model and ANS coder by zstd over the symbols stored as little-endian
int32. The difference between the two rates at equal distortion is what the
learned entropy model buys over a general-purpose compressor.
"""

from __future__ import annotations

import numpy as np

from .base import HiddenStateCodec
from .baselines import zstd_compress, zstd_payload
from .coders.container import BitstreamError, Stream
from .entropy_models.factorized import FactorizedCodec


class ZstdSymbols(HiddenStateCodec):
    """zstd over the int32 symbols of ``quantizer``.

    Parameters
    ----------
    quantizer : FactorizedCodec
        The codec whose quantization (steps, transform, first-token model) is reused.
    level : int
        zstd compression level (1–22).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from rdgap.codecs.entropy_models.factorized import ChannelStatistics, FactorizedCodec
    >>> windows = torch.randn(4, 32, 8)
    >>> stats = ChannelStatistics.fit(windows)
    >>> quantizer = FactorizedCodec(stats, stats.scale, stats.first_scale)
    >>> codec = ZstdSymbols(quantizer)
    >>> x = windows[0]
    >>> bool(torch.equal(codec.decode(codec.encode(x)), quantizer.reconstruct(x)))
    True
    """

    def __init__(self, quantizer: FactorizedCodec, level: int = 19):
        if not isinstance(quantizer, FactorizedCodec):
            raise ValueError(f"quantizer: expected a FactorizedCodec, got "
                             f"{type(quantizer).__name__}")
        if not 1 <= level <= 22:
            raise ValueError(f"level: expected a zstd level in 1..22, got {level}")
        self.quantizer = quantizer
        self.channels = quantizer.channels
        self.level = level
        self.codec_id = "zstd-symbols"

    def params(self) -> dict:
        return {"quantizer": self.quantizer.digest.hex()}

    def reconstruct(self, hidden):
        """What decoding returns: the quantizer's reconstruction."""
        return self.quantizer.reconstruct(hidden)

    def _encode_payload(self, hidden):
        symbols = self.quantizer.quantize(hidden)
        if np.abs(symbols).max(initial=0) >= 2 ** 31:
            raise ValueError("hidden: a symbol does not fit in int32; expected states like "
                             "those the quantizer was fitted on")
        return zstd_compress(symbols.astype("<i4").tobytes(), self.level)

    def _decode_payload(self, stream: Stream):
        tokens, channels = stream.shape
        if channels != self.quantizer.channels:
            raise BitstreamError(f"data: stream has {channels} channels, the quantizer "
                                 f"{self.quantizer.channels}")
        raw = zstd_payload(stream, 4)
        symbols = np.frombuffer(raw, dtype="<i4").reshape(tokens, channels).astype(np.int64)
        return self.quantizer.dequantize(symbols)
