"""A learned scale hyperprior with an integer hyper-synthesis: ``klt-hyperprior``.

The codec is :class:`rdgap.codecs.entropy_models.context.ContextCodec` (``klt-context``) with a
second, *learned* set of side latents that choose the entropy-coding tables
(Ballé, Minnen, Singh, Hwang & Johnston 2018, "Variational image compression
with a scale hyperprior"; PAPER.md's scale hyperprior; THEORY.md T1's two-part
rate ``R = Σ −log2 p(ŷ) + Σ −log2 q(S | ŷ)``):

Quantizer, prediction, reconstruction
    exactly klt-context's: the closed-form side latents ``k_tg`` are still coded
    and still fix the centroid offsets of the reconstruction, so at equal steps
    the reconstruction is bit-identical to klt-context's and only the rate differs.
Hyper-analysis ``h_a`` (encoder only, float)
    ``ŷ_t = clip(round(h_a(f_t)), ±GAIN_LIMIT)``, ``S`` small integers per token,
    from the token's residual in steps normalised by the closed-form scale,
    ``f_tj = log2(|x_tj| / 2^{i_tj/R} + 1/8)``; ``h_a`` = Linear–ReLU–Linear. The
    decoder never runs it, so float differences in it cannot desynchronise anything.
Side densities
    each of the ``S`` channels has a factorized categorical density (histogram of
    the fit windows), coded after klt-context's side latents.
Integer hyper-synthesis ``h_s`` (Ballé, Johnston & Minnen 2019, "Integer networks
for data compression")
    from ``v_t = [k_t, ŷ_t]`` (integers): ``a = W1 v + b1`` (integer weights, scale
    ``2^F``), ``h = clip(a, 0, HIDDEN_LIMIT·2^F)``, ``o = W2 h + b2`` (scale
    ``2^{2F}``), ``δ = clip((o + 2^{2F−1}) >> 2F, ±DELTA_LIMIT)`` (arithmetic right
    shift = floor), and the table index of component ``j`` is
    ``clip(u_j + GAIN_STEP·k_{t,g(j)} + δ_j, MIN_INDEX, MAX_INDEX)``. Only int64
    additions, multiplications, clips and shifts: every machine selects the same
    tables (the weights are bounded so that no intermediate exceeds 2^62).

Stream (one ANS stream per window): klt-context's side latents, the ``S`` learned
latents per token, position 0, then every symbol grouped by its *table* index.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from ..coders import ans

from .. import persist
from .context import (_FLOAT_ARRAYS, _INT_ARRAYS, GAIN_LIMIT, GAIN_STEP, MAX_INDEX, MIN_INDEX,
                      SCALE_RESOLUTION, ContextCodec, _Analysis, table_scale)

HYPER_FORMAT_VERSION = 1
#: Fractional bits ``F`` of the integer hyper-synthesis weights.
FRACTION_BITS = 10
#: The hidden activations of ``h_s`` are clipped to ``0..HIDDEN_LIMIT`` (in units).
HIDDEN_LIMIT = 32
#: The learned index correction ``δ`` is clipped to ``±DELTA_LIMIT`` table indices.
DELTA_LIMIT = 16
#: Largest magnitude of an integer weight or bias (keeps int64 exact: see _check_range).
WEIGHT_LIMIT = 1 << 24
#: Feature offset of ``f = log2(|x| / s + FEATURE_FLOOR)``.
FEATURE_FLOOR = 0.125
_HYPER_FLOAT = ("analysis_weight1", "analysis_bias1", "analysis_weight2", "analysis_bias2",
                "hyper_side_probabilities")
_HYPER_INT = ("synthesis_weight1", "synthesis_bias1", "synthesis_weight2", "synthesis_bias2")


def integer_synthesis(v, weight1, bias1, weight2, bias2):
    """The integer hyper-synthesis ``δ`` of side vectors ``v`` ``(N, G + S)``.

    Works on int64 numpy arrays and on int64 torch tensors alike (the same
    operations: integer matmul, clip, arithmetic right shift), so both give
    identical results on any machine.

    Parameters
    ----------
    v : numpy.ndarray or torch.Tensor
        int64 ``(N, G + S)`` side vectors ``[k, ŷ]`` (each ``|v| ≤ GAIN_LIMIT``).
    weight1, bias1 : int64 arrays or tensors
        First layer, ``(H, G + S)`` and ``(H,)``, in units of ``2^-F``.
    weight2, bias2 : int64 arrays or tensors
        Second layer, ``(C, H)`` in units of ``2^-F`` and ``(C,)`` in units of ``2^-2F``.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        int64 ``(N, C)`` index corrections ``δ``, clipped to ``±DELTA_LIMIT``.
    """
    if isinstance(v, torch.Tensor):
        hidden = torch.clamp(v @ weight1.T + bias1, 0, HIDDEN_LIMIT << FRACTION_BITS)
        out = (hidden @ weight2.T + bias2 + (1 << (2 * FRACTION_BITS - 1))) >> (2 * FRACTION_BITS)
        return torch.clamp(out, -DELTA_LIMIT, DELTA_LIMIT)
    hidden = np.clip(v @ weight1.T + bias1, 0, HIDDEN_LIMIT << FRACTION_BITS)
    out = (hidden @ weight2.T + bias2 + (1 << (2 * FRACTION_BITS - 1))) >> (2 * FRACTION_BITS)
    return np.clip(out, -DELTA_LIMIT, DELTA_LIMIT)


def residual_features(x: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``h_a``'s input: ``log2(|x| / 2^{index/R} + FEATURE_FLOOR)``.

    Parameters
    ----------
    x : numpy.ndarray
        Prediction residuals in steps.
    index : numpy.ndarray
        The closed-form table indices of the same components (same shape).

    Returns
    -------
    numpy.ndarray
        The features, shape of ``x``.
    """
    return np.log2(np.abs(x) / table_scale(index) + FEATURE_FLOOR)


def _integers(values, shape: tuple, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != shape or (array.size and not np.all(np.isfinite(array))) or \
            np.any(array != np.rint(array)) or np.any(np.abs(array) > WEIGHT_LIMIT):
        raise ValueError(f"{name}: expected integers of magnitude ≤ 2^24 and shape {shape}, "
                         f"got shape {array.shape}")
    return array.astype(np.int64)


def _floats(values, shape: tuple, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != shape or not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: expected finite values of shape {shape}, got shape "
                         f"{array.shape}")
    return array


class HyperpriorCodec(ContextCodec):
    """klt-context with a learned scale hyperprior and an integer hyper-synthesis.

    Parameters
    ----------
    analysis_weight1, analysis_bias1, analysis_weight2, analysis_bias2 : arrays
        ``h_a`` (float, encoder only): ``(A, C)``, ``(A,)``, ``(S, A)``, ``(S,)``.
    synthesis_weight1, synthesis_bias1 : int arrays
        ``h_s``'s first layer, ``(H, G + S)`` and ``(H,)``, scale ``2^F``
        (:data:`FRACTION_BITS`).
    synthesis_weight2, synthesis_bias2 : int arrays
        ``h_s``'s second layer, ``(C, H)`` (scale ``2^F``) and ``(C,)`` (scale ``2^{2F}``).
    hyper_side_probabilities : (S, 2·GAIN_LIMIT + 2) array
        Each learned latent's categorical density over ``-GAIN_LIMIT..GAIN_LIMIT``
        (then an escape slot a valid stream never uses).
    **context
        Every argument of :class:`rdgap.codecs.entropy_models.context.ContextCodec`.
    """

    codec_id = "klt-hyperprior"

    def __init__(self, analysis_weight1, analysis_bias1, analysis_weight2, analysis_bias2,
                 synthesis_weight1, synthesis_bias1, synthesis_weight2, synthesis_bias2,
                 hyper_side_probabilities, **context):
        channels = np.shape(context.get("mean"))[0]
        groups = np.size(context.get("group_starts"))
        width, latents = np.shape(analysis_weight1)[0], np.shape(analysis_weight2)[0]
        hidden = np.shape(synthesis_weight1)[0]
        if not (width >= 1 and latents >= 1 and hidden >= 1):
            raise ValueError("analysis_weight1, analysis_weight2, synthesis_weight1: expected "
                             "≥ 1 hidden unit, ≥ 1 learned latent and ≥ 1 synthesis unit")
        self.analysis_weight1 = _floats(analysis_weight1, (width, channels), "analysis_weight1")
        self.analysis_bias1 = _floats(analysis_bias1, (width,), "analysis_bias1")
        self.analysis_weight2 = _floats(analysis_weight2, (latents, width), "analysis_weight2")
        self.analysis_bias2 = _floats(analysis_bias2, (latents,), "analysis_bias2")
        self.synthesis_weight1 = _integers(synthesis_weight1, (hidden, groups + latents),
                                           "synthesis_weight1")
        self.synthesis_bias1 = _integers(synthesis_bias1, (hidden,), "synthesis_bias1")
        self.synthesis_weight2 = _integers(synthesis_weight2, (channels, hidden),
                                           "synthesis_weight2")
        self.synthesis_bias2 = _integers(synthesis_bias2, (channels,), "synthesis_bias2")
        # |v| ≤ GAIN_LIMIT, so |a| ≤ (G+S)·12·2^24 + 2^24 and |o| ≤ H·32·2^10·2^24 + 2^24,
        # below 2^62 for the widths (< 2^20) this module accepts.
        if hidden >= 1 << 20 or groups + latents >= 1 << 20:
            raise ValueError("synthesis_weight1: expected fewer than 2^20 units and inputs")
        side = _floats(hyper_side_probabilities, (latents, 2 * GAIN_LIMIT + 2),
                       "hyper_side_probabilities")
        if np.any(side <= 0) or not np.allclose(side.sum(1), 1.0, rtol=0, atol=1e-9):
            raise ValueError("hyper_side_probabilities: expected positive rows summing to 1")
        self.hyper_side_probabilities = side
        self.latents = latents
        super().__init__(**context)
        self._side_tables = self._side_tables + [ans.ChannelTable(p, GAIN_LIMIT) for p in side]

    # -- identity ----------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        return {**super()._arrays(),
                **{name: getattr(self, name) for name in _HYPER_FLOAT + _HYPER_INT}}

    def _hash(self) -> bytes:
        h = hashlib.blake2b(super()._hash(), digest_size=8)
        h.update(json.dumps({"hyper_version": HYPER_FORMAT_VERSION,
                             "fraction_bits": FRACTION_BITS, "hidden_limit": HIDDEN_LIMIT,
                             "delta_limit": DELTA_LIMIT}).encode())
        return h.digest()

    def params(self) -> dict:
        """klt-context's parameters, the learned latents ``S`` and ``h_s``'s hidden units."""
        return {**super().params(), "latents": self.latents,
                "hyper_hidden": int(self.synthesis_weight1.shape[0])}

    # -- side latents and tables ---------------------------------------------------
    def hyper_analysis(self, features: np.ndarray) -> np.ndarray:
        """``ŷ = clip(round(h_a(f)), ±GAIN_LIMIT)`` of features ``(..., C)`` (encoder only)."""
        hidden = np.maximum(features @ self.analysis_weight1.T + self.analysis_bias1, 0.0)
        y = hidden @ self.analysis_weight2.T + self.analysis_bias2
        return np.clip(np.rint(y), -GAIN_LIMIT, GAIN_LIMIT).astype(np.int64)

    def index_corrections(self, side):
        """``δ`` ``(..., C)`` of side vectors ``[k, ŷ]`` ``(..., G + S)`` (numpy int64 or
        torch int64; :func:`integer_synthesis`)."""
        torch_input = isinstance(side, torch.Tensor)
        weights = [self.synthesis_weight1, self.synthesis_bias1, self.synthesis_weight2,
                   self.synthesis_bias2]
        if torch_input:
            weights = [torch.from_numpy(w) for w in weights]
        flat = side.reshape(-1, side.shape[-1])
        return integer_synthesis(flat, *weights).reshape(*side.shape[:-1], self.channels)

    def _table_indices(self, side: np.ndarray) -> np.ndarray:
        """``clip(u_j + GAIN_STEP·k_{t,g(j)} + δ_tj)`` from side vectors ``[k, ŷ]``."""
        side = np.asarray(side, dtype=np.int64)
        index = self.base_index + GAIN_STEP * side[..., self.group_of] \
            + self.index_corrections(side)
        return np.minimum(np.maximum(index, MIN_INDEX), MAX_INDEX)

    def analyse(self, z: np.ndarray, offset: np.ndarray | None = None) -> _Analysis:
        """klt-context's causal loop (:meth:`ContextCodec.analyse`), then the learned
        latents of every token appended to its side latents ``(B, T-1, G + S)``."""
        result = super().analyse(z, offset)
        features = residual_features(result.residual / self.step, self._indices(result.side))
        result.side = np.concatenate([result.side, self.hyper_analysis(features)], axis=-1)
        return result

    # -- persistence -------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``config.json`` and ``tensors.safetensors`` into ``folder``."""
        return persist.write(folder, self._arrays(), {
            "rdgap_codec": "hyperprior", "format_version": HYPER_FORMAT_VERSION,
            "rounding": self.rounding, "label": self.label, "channels": self.channels,
            "rdo": self.rdo, "latents": self.latents, "fraction_bits": FRACTION_BITS,
            "hidden_limit": HIDDEN_LIMIT, "delta_limit": DELTA_LIMIT,
            "scale_resolution": SCALE_RESOLUTION, "hash": self._digest.hex()})

    @classmethod
    def load(cls, folder: str | Path) -> "HyperpriorCodec":
        """Load a codec written by :meth:`save`; checks its version and hash."""
        names = _FLOAT_ARRAYS + _INT_ARRAYS + _HYPER_FLOAT + _HYPER_INT
        config, arrays = persist.read(folder, "hyperprior", HYPER_FORMAT_VERSION, names,
                                      cls.__name__)
        codec = cls(**{n: arrays[n] for n in names}, rounding=config["rounding"],
                    label=config.get("label", ""), rdo=config.get("rdo", 0.0))
        persist.check_hash(codec, config, folder)
        return codec
