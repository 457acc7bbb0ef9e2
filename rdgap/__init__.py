"""rdgap: rate–entropy gap verification for compressing transformer hidden states.

The public namespace names the few objects most users start from; each is
imported on first use, so ``import rdgap`` (and the command line) stays fast.

====================  ===============================================
``load_model``        the embedded SmolLM2-135M or a local causal LM
``SplitModel``        exact prefix / suffix split after a layer
``baseline_codecs``   fp16, bf16, absmax int8 / int4, zstd of fp16
``FactorizedCodec``   the reference codec (per-channel steps + ANS)
``fit_codec``         fit and calibrate a reference-codec variant
``run_validation``    the validate job (with ``ValidateConfig``)
``check_codec``       the property suite for any codec
====================  ===============================================

The bounds live in :mod:`rdgap.bounds`, their derivations in :mod:`rdgap.proofs`.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "rdgap.validation.models",
    "SplitModel": "rdgap.split",
    "baseline_codecs": "rdgap.codecs.baselines",
    "FactorizedCodec": "rdgap.codecs.entropy_models.factorized",
    "fit_codec": "rdgap.codecs.fit",
    "run_validation": "rdgap.validation.runner",
    "ValidateConfig": "rdgap.validation.runner",
    "check_codec": "rdgap.testing",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rdgap' has no attribute {name!r}")
