"""Baseline codecs with real bytes: what users would pick instead of rdgap's codec.

- :mod:`.simple` — casts (``fp16``, ``bf16``), per-token absmax ``int8`` / ``int4`` and
  ``zstd`` of the fp16 bytes: :func:`baseline_codecs`, measured in every report.
"""

from __future__ import annotations

from .simple import (BF16_MAX, FP16_MAX, ZSTD_FREE_BYTES, ZSTD_MAX_RATIO, AbsmaxInteger,
                     BFloat16Cast, Float16Cast, ZstdFloat16, baseline_codecs, zstd_compress,
                     zstd_limit, zstd_payload)

__all__ = ["BF16_MAX", "FP16_MAX", "ZSTD_FREE_BYTES", "ZSTD_MAX_RATIO", "AbsmaxInteger",
           "BFloat16Cast", "Float16Cast", "ZstdFloat16", "baseline_codecs", "zstd_compress",
           "zstd_limit", "zstd_payload"]
