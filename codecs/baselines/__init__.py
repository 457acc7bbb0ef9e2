"""Baseline codecs with real bytes: what users would pick instead of rdgap's codec.

- :mod:`.simple` — casts (``fp16``, ``bf16``), per-token absmax ``int8`` / ``int4`` and
  ``zstd`` of the fp16 bytes: :func:`baseline_codecs`, measured in every report.
- :mod:`.blockwise` — llama.cpp-style ``Q8_0`` / ``Q4_0`` (32-element blocks, fp16
  scale) and Hadamard-rotated blockwise int4 (QuaRot / SpinQuant / TurboQuant):
  :func:`blockwise_codecs` (fixed rates, no knob).
- :mod:`.transform_coder` — a training-free transform coder in the style of KVTC
  (PCA, dynamic-programming bit allocation, zstd of the integers); knob: the bit budget.
- :mod:`.float_compressors` — the error-bounded float compressors SZ3 (``pysz``) and
  ZFP (``zfpy``); knob: the absolute error bound.

``benchmarks/codec_bench.py --published-baselines`` measures the last three modules'
codecs on the benchmark's windows, the knobs calibrated to each ΔCE level.
"""

from __future__ import annotations

from .blockwise import BlockwiseInteger, HadamardInt4, blockwise_codecs
from .float_compressors import SZ3Codec, ZFPCodec
from .simple import (BF16_MAX, FP16_MAX, ZSTD_FREE_BYTES, ZSTD_MAX_RATIO, AbsmaxInteger,
                     BFloat16Cast, Float16Cast, ZstdFloat16, baseline_codecs, zstd_compress,
                     zstd_limit, zstd_payload)
from .transform_coder import TransformCoder, allocate_bits, fit_transform_coder

__all__ = ["BF16_MAX", "FP16_MAX", "ZSTD_FREE_BYTES", "ZSTD_MAX_RATIO", "AbsmaxInteger",
           "BFloat16Cast", "BlockwiseInteger", "Float16Cast", "HadamardInt4", "SZ3Codec",
           "TransformCoder", "ZFPCodec", "ZstdFloat16", "allocate_bits", "baseline_codecs",
           "blockwise_codecs", "fit_transform_coder", "zstd_compress", "zstd_limit",
           "zstd_payload"]
