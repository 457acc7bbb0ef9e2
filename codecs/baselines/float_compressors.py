"""The error-bounded float compressors HPC users reach for: SZ3 and ZFP.

Both code a window ``(tokens, channels)`` of float32 as one 2-D array with an
absolute error bound ``tolerance`` (the knob):

- ``sz3`` — SZ3 (``pysz``, ``szErrorBoundMode.ABS``): prediction + error-controlled
  quantization + lossless stages. **Theorem** (of the format): every element is
  reconstructed within ``tolerance``.
- ``zfp`` — ZFP fixed-accuracy mode (``zfpy.compress_numpy(tolerance=…)``): 4 × 4
  blocks, block-floating-point transform, embedded bit planes. ZFP rounds the
  tolerance down to a power of two (``2^⌊log2 tolerance⌋``, the ``minexp`` of its
  header), so its rate moves in steps. **Theorem** (of the format, for tolerances
  well above float32's resolution of each 4 × 4 block's largest value — tested down
  to 4·10^-7 × that value; at 10^-6 with a 2.5·10^3 value in the block it fails, the
  block's common exponent leaves too few bits): every element is within ``tolerance``.

Neither format checks its own integrity (ZFP decodes a truncated or flipped stream
into garbage without an error); the rdgap container around the payload (length and
CRC-32 of everything, :mod:`rdgap.codecs.coders.container`) is the frame that
catches them. Bounded work: a payload of ``n`` bytes may declare at most
``max(64 · n, 1 MiB)`` bytes of float32 output (:func:`~.simple.zstd_limit`, the rule of
the zstd baseline), checked before anything is decompressed; the encoders refuse
(``ValueError``) states that would compress beyond it. The shape and tolerance the
compressor's own header declares must equal the container's shape and the codec's
tolerance (SZ3: checked by ``pysz`` against the element count before it writes;
ZFP: :func:`zfpy.header` is read first).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..base import HiddenStateCodec
from ..coders.container import BitstreamError
from .simple import ZSTD_FREE_BYTES, ZSTD_MAX_RATIO, zstd_limit


def _check_tolerance(tolerance: float) -> float:
    tolerance = float(tolerance)
    if not (np.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance: expected a finite absolute error bound > 0, got "
                         f"{tolerance!r}")
    return tolerance


class _ErrorBounded(HiddenStateCodec):
    """Shared checks: the expansion limit at both ends and finite output."""

    def __init__(self, tolerance: float):
        self.tolerance = _check_tolerance(tolerance)

    def params(self):
        return {"tolerance": self.tolerance}

    def _encode_payload(self, hidden):
        payload = self._compress(np.ascontiguousarray(hidden.numpy(), dtype=np.float32))
        if 4 * hidden.numel() > zstd_limit(len(payload)):
            raise ValueError(f"hidden: {self.codec_id} compresses these states "
                             f"{4 * hidden.numel() / len(payload):.0f}:1, above the "
                             f"{ZSTD_MAX_RATIO}:1 a stream of more than {ZSTD_FREE_BYTES} bytes "
                             f"may hold (decoders refuse larger expansions); encode shorter "
                             f"windows or lower the tolerance")
        return payload

    def _decode_payload(self, stream):
        tokens, channels = stream.shape
        if 4 * tokens * channels > zstd_limit(len(stream.payload)):
            raise BitstreamError(f"data: shape {stream.shape} needs {4 * tokens * channels} "
                                 f"bytes from a {self.codec_id} payload of "
                                 f"{len(stream.payload)}; an rdgap {self.codec_id} payload "
                                 f"expands at most {ZSTD_MAX_RATIO}× (or to {ZSTD_FREE_BYTES} "
                                 f"bytes)")
        values = self._decompress(stream.payload, (tokens, channels))
        if values.shape != (tokens, channels) or not np.isfinite(values).all():
            raise BitstreamError(f"data: the {self.codec_id} payload decodes to non-finite "
                                 f"values or another shape than {stream.shape}")
        return torch.from_numpy(np.array(values, dtype=np.float32))

    def reconstruct(self, hidden: torch.Tensor) -> torch.Tensor:
        """What decode(encode(hidden)) returns, without the container."""
        values = np.ascontiguousarray(hidden.detach().cpu().float().numpy())
        return torch.from_numpy(np.array(self._decompress(self._compress(values), values.shape),
                                         dtype=np.float32))


class SZ3Codec(_ErrorBounded):
    """SZ3 with an absolute error bound (``pysz``).

    Parameters
    ----------
    tolerance : float
        Absolute error bound per element (> 0).
    """

    codec_id = "sz3"

    def _config(self):
        from pysz import szConfig, szErrorBoundMode

        config = szConfig()
        config.errorBoundMode = szErrorBoundMode.ABS
        config.absErrorBound = self.tolerance
        return config

    def _compress(self, values):
        from pysz import sz

        return sz.compress(values, self._config())[0].tobytes()

    def _decompress(self, payload, shape):
        from pysz import sz

        try:
            values, config = sz.decompress(np.frombuffer(payload, dtype=np.uint8).copy(),
                                           np.float32, shape)
        except (ValueError, RuntimeError) as error:
            raise BitstreamError(f"data: the sz3 payload is corrupted ({error})") from None
        # SZ3 drops dimensions of size 1: compare element counts (pysz checked them too)
        if math.prod(config.dims) != math.prod(shape) or config.absErrorBound != self.tolerance:
            raise BitstreamError(f"data: the sz3 payload declares dims {tuple(config.dims)} and "
                                 f"bound {config.absErrorBound}, the stream {shape} and "
                                 f"{self.tolerance}")
        return values


class ZFPCodec(_ErrorBounded):
    """ZFP in fixed-accuracy mode (``zfpy``).

    Parameters
    ----------
    tolerance : float
        Absolute error bound per element (> 0); ZFP uses ``2^⌊log2 tolerance⌋``.
    """

    codec_id = "zfp"

    def _compress(self, values):
        import zfpy

        return zfpy.compress_numpy(values, tolerance=self.tolerance)

    def _decompress(self, payload, shape):
        import zfpy

        try:
            header = zfpy.header(payload)
        except Exception as error:  # zfpy raises bare exceptions on a foreign header
            raise BitstreamError(f"data: the zfp header is corrupted ({error})") from None
        declared = (header["ny"], header["nx"])
        if (header["nz"], header["nw"]) != (0, 0) or declared != tuple(shape) \
                or header["type"] is not np.float32 or header["mode"] != "tolerance" \
                or not header["config"]["tolerance"] <= self.tolerance:
            raise BitstreamError(f"data: the zfp header declares {declared} "
                                 f"{header['mode']} {header['config']}, the stream {shape} "
                                 f"float32 with tolerance ≤ {self.tolerance}")
        try:
            return zfpy.decompress_numpy(payload)
        except Exception as error:
            raise BitstreamError(f"data: the zfp payload is corrupted ({error})") from None
