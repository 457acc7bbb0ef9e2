"""Per-window distortion control and rate cap: a step factor chosen by the encoder.

:class:`WindowControlledCodec` wraps a fitted base codec whose steps can be scaled
(a :class:`~rdgap.codecs.entropy_models.context.ContextCodec` and its subclasses
through ``rescaled``; a plain :class:`~rdgap.codecs.entropy_models.factorized.
FactorizedCodec` rebuilt with ``step·f``). Every ``encode`` call codes one window
and chooses, for that window, a step factor ``f_k`` from a fixed ladder
(:data:`LADDER`, ``2^{k/16}``, ``k = −48..48``: 1/8 … 8), signalled in a two-byte
header in front of the base payload (the ladder, the header and the searches over the
ladder: :mod:`rdgap.codecs.quantizers.window_ladder`; the fit:
:mod:`rdgap.codecs.quantizers.window_control_fit`).

Distortion control (THEORY.md T11)
    The encoder knows the window's state ``Y``, its reconstruction ``Ŷ_k`` at factor
    ``f_k`` and the Fisher ``F`` at the split, so it predicts the window's ΔCE from
    its own error ``e = Y − Ŷ_k`` (T7, second order):
    ``P_k = ½ (Σ_{t≥1} e_tᵀ F e_t + Σ_j F0_j e_0j²) / T`` nats/token (``F`` the full
    Fisher of positions ≥ 1, ``F0`` position 0's diagonal; ``T`` tokens). It picks
    the coarsest factor with ``m·P_k ≤ level``, ``m`` a margin calibrated on fit
    data (:func:`rdgap.codecs.quantizers.window_control_fit.calibrate_margin`).
    **Theorem** (every window, by construction): the chosen ``k`` has
    ``m·P_k ≤ level`` and ``k + 1`` (if on the ladder) has ``m·P_{k+1} > level`` —
    unless even the finest factor misses (``P_{−48}·m > level``), which the stream
    flags (:data:`FLAG_LEVEL_UNREACHED`). Bisection finds *a* locally coarsest
    feasible factor; it is the globally coarsest one when ``P_k`` is monotone in
    ``k`` (it is in practice, not by proof). That the measured ΔCE then meets the
    level is a *prediction* whose failure rate is measured, never assumed.

Rate cap (issue 14 item 1; THEORY.md T8's range ``B``)
    A cap ``B_cap`` bits/token (stored and hashed). If the stream at the chosen
    factor is longer than ``B_cap·T`` bits, coarser factors are tried (real bytes,
    never an estimate) until one fits, flagged :data:`FLAG_CAP`; if even the
    coarsest does not fit, the window is not coded (:data:`FLAG_FALLBACK`, empty
    base payload) and decodes to the codec's per-channel means.
    **Theorem** (every stream ``encode`` writes, container included):
    ``8·len(stream) ≤ max(B_cap·T, 8·(H + 2))``, ``H`` the container's bytes
    (:func:`rdgap.codecs.coders.container.header_size`). So the rate of every
    window lies in ``[0, max(B_cap, 8(H + 2)/T)]`` bits/token.

The decoder reads the header, refuses unknown flags, a ladder index outside the
ladder or a fallback with a payload (:class:`~rdgap.codecs.coders.container.
BitstreamError`, before any work sized by the stream), and decodes the payload
with the base rescaled by ``f_k`` (built lazily, cached: at most one per ladder
entry).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import persist
from ..base import HiddenStateCodec, check_hidden
from ..coders.container import Stream, header_size
from ..coders.limits import check_cap
from .window_ladder import (FLAG_CAP, FLAG_FALLBACK, FLAG_LEVEL_UNREACHED,  # noqa: F401
                            LADDER, LADDER_EXPONENTS, STEPS_PER_OCTAVE, UNIT_INDEX,
                            WINDOW_HEADER_BYTES, coarsest_feasible, first_fitting, guess_index,
                            read_window_header, split_window_payload, window_header)

FORMAT_VERSION = 1
#: Rescaled codecs kept by :meth:`WindowControlledCodec.at` (least recently used dropped).
SCALED_CACHE = 8
def rescale(base: HiddenStateCodec, factor: float) -> HiddenStateCodec:
    """``base`` with every step (positions ≥ 1 and position 0) multiplied by ``factor``.

    Raises
    ------
    ValueError
        For a base that cannot be rescaled (neither ``rescaled`` nor a plain
        :class:`~rdgap.codecs.entropy_models.factorized.FactorizedCodec`).
    """
    from ..entropy_models.factorized import FactorizedCodec

    _check_rescalable(base)
    if hasattr(base, "rescaled"):
        return base.rescaled(factor)
    return FactorizedCodec(base.stats, base.step * factor, base.first_step * factor,
                           base.family, label=base.label, analysis=base.analysis,
                           synthesis=base.synthesis, rdoq=base.rdoq)


def _check_rescalable(base) -> None:
    from ..entropy_models.factorized import FactorizedCodec

    if not (hasattr(base, "rescaled") or type(base) is FactorizedCodec):
        raise ValueError(f"base: expected a codec whose steps can be scaled (a ContextCodec "
                         f"or a FactorizedCodec), got {type(base).__name__}")


def _means(base) -> tuple[np.ndarray, np.ndarray]:
    """``(first_mean, mean)``: the fallback reconstruction of position 0 and the rest."""
    stats = getattr(base, "stats", base)
    return np.asarray(stats.first_mean, float), np.asarray(stats.mean, float)


@dataclass
class WindowDecision:
    """What the encoder chose for one window.

    Attributes
    ----------
    index : int
        Position in :data:`LADDER` (0 for a fallback window).
    flags : int
        :data:`FLAG_CAP`, :data:`FLAG_FALLBACK`, :data:`FLAG_LEVEL_UNREACHED` bits.
    predicted : float
        T11's prediction ``P_k`` (nats/token, margin not applied) at the chosen factor
        (at the fallback reconstruction for a fallback window).
    payload : bytes
        The window header and the base payload (what the container wraps).
    reconstruction : torch.Tensor
        What decoding the stream returns.
    evaluated : dict
        ``{index: P_k}`` of every factor the search evaluated.
    """

    index: int
    flags: int
    predicted: float
    payload: bytes
    reconstruction: torch.Tensor
    evaluated: dict = field(default_factory=dict)

    @property
    def factor(self) -> float:
        return float(LADDER[self.index])


class WindowControlledCodec(HiddenStateCodec):
    """A base codec whose step factor is chosen per window (T11) under a rate cap.

    Parameters
    ----------
    base : HiddenStateCodec
        A fitted, rescalable codec (see :func:`rescale`); factor 1 is the base itself.
    fisher_matrix : (C, C) array
        Fisher matrix of positions ≥ 1 at the split
        (:attr:`rdgap.codecs.transforms.fisher.FisherDiagonal.matrix`).
    fisher_first : (C,) array
        Position 0's Fisher diagonal (``FisherDiagonal.first``).
    level : float
        The ΔCE level (nats/token, > 0).
    margin : float
        ``m > 0``: the encoder requires ``m·P_k ≤ level``.
    cap_bits_per_token : float
        ``B_cap > 0``: the cap on every stream's bits per token (container included).
    label : str
        Free text saved with the codec (not hashed).
    fit_report : dict, optional
        What the fit measured (saved, not hashed).
    """

    def __init__(self, base: HiddenStateCodec, fisher_matrix, fisher_first, level: float,
                 margin: float, cap_bits_per_token: float, label: str = "",
                 fit_report: dict | None = None):
        if getattr(base, "needs_input_ids", False):
            raise ValueError("base: a codec that codes token ids (klt-context-tokens) is not "
                             "supported; wrap klt-context instead")
        _check_rescalable(base)
        channels = int(base.channels)
        matrix = np.asarray(fisher_matrix, dtype=np.float64)
        first = np.asarray(fisher_first, dtype=np.float64)
        if matrix.shape != (channels, channels) or not np.isfinite(matrix).all():
            raise ValueError(f"fisher_matrix: expected a finite ({channels}, {channels}) "
                             f"matrix, got shape {matrix.shape}")
        if first.shape != (channels,) or not np.isfinite(first).all() or np.any(first < 0):
            raise ValueError(f"fisher_first: expected {channels} finite values ≥ 0")
        for name, value in (("level", level), ("margin", margin),
                            ("cap_bits_per_token", cap_bits_per_token)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
        self.base = base
        self.channels = channels
        self.fisher_matrix = 0.5 * (matrix + matrix.T)
        self.fisher_first = first
        self.level, self.margin = float(level), float(margin)
        self.cap_bits_per_token = float(cap_bits_per_token)
        self.label = label
        self.fit_report = dict(fit_report or {})
        self.codec_id = f"wc-{base.codec_id}"
        self._scaled: OrderedDict[int, HiddenStateCodec] = OrderedDict()
        self._digest = self._hash()

    # -- identity ----------------------------------------------------------------
    def _hash(self) -> bytes:
        h = hashlib.blake2b(digest_size=8)
        h.update(json.dumps({"codec": self.codec_id, "version": FORMAT_VERSION,
                             "base": self.base.digest.hex(), "level": self.level,
                             "margin": self.margin, "cap": self.cap_bits_per_token,
                             "header": WINDOW_HEADER_BYTES}).encode())
        for array in (LADDER, self.fisher_matrix, self.fisher_first):
            h.update(np.ascontiguousarray(array, dtype="<f8").tobytes())
        return h.digest()

    @property
    def digest(self) -> bytes:
        return self._digest

    def params(self) -> dict:
        return {"base": self.base.digest.hex(), "level": self.level, "margin": self.margin,
                "cap_bits_per_token": self.cap_bits_per_token, "ladder": [
                    int(LADDER_EXPONENTS[0]), int(LADDER_EXPONENTS[-1]), STEPS_PER_OCTAVE],
                "label": self.label, "hash": self._digest.hex()}

    def at(self, index: int) -> HiddenStateCodec:
        """The base rescaled by ``LADDER[index]``.

        The last :data:`SCALED_CACHE` rescaled codecs are kept (least recently used
        dropped), so streams naming every ladder entry in turn hold at most that many
        table sets in memory, not one per entry."""
        if index == UNIT_INDEX:
            return self.base
        codec = self._scaled.get(index)
        if codec is None:
            codec = self._scaled[index] = rescale(self.base, float(LADDER[index]))
            while len(self._scaled) > SCALED_CACHE:
                self._scaled.popitem(last=False)
        else:
            self._scaled.move_to_end(index)
        return codec

    # -- T11's prediction ------------------------------------------------------------
    def predicted_delta_ce(self, hidden: torch.Tensor, reconstruction: torch.Tensor) -> float:
        """T7/T11's predicted ΔCE (nats/token, no margin) of replacing ``hidden`` by
        ``reconstruction``: ``½ (Σ_{t≥1} e_tᵀ F e_t + Σ_j F0_j e_0j²) / T``."""
        e = hidden.double().numpy() - reconstruction.double().numpy()
        rest = float(np.sum((e[1:] @ self.fisher_matrix) * e[1:])) if e.shape[0] > 1 else 0.0
        return 0.5 * (float(np.sum(self.fisher_first * e[0] ** 2)) + rest) / e.shape[0]

    def _fallback(self, tokens: int) -> torch.Tensor:
        """The reconstruction of a window not coded: the base's per-channel means (at most
        :data:`~rdgap.codecs.coders.limits.MAX_STREAM_SYMBOLS` values, like any stream)."""
        check_cap(tokens * self.channels)
        first_mean, mean = _means(self.base)
        out = torch.empty((tokens, self.channels), dtype=torch.float32)
        out[:] = torch.from_numpy(mean.astype(np.float32))
        out[0] = torch.from_numpy(first_mean.astype(np.float32))
        return out

    def stream_bytes_bound(self, tokens: int) -> int:
        """The most bytes a stream of ``tokens`` tokens can have (the rate-cap theorem):
        ``max(⌊B_cap·T / 8⌋, H + 2)``."""
        floor = header_size(self.codec_id, 2) + WINDOW_HEADER_BYTES
        return max(int(self.cap_bits_per_token * tokens // 8), floor)

    # -- the encoder's choice ------------------------------------------------------
    def decide(self, hidden: torch.Tensor, payload_of=None,
               codec_id: str | None = None) -> WindowDecision:
        """The factor, flags, prediction and payload of one window (see the module).

        ``payload_of(index, hidden)`` writes the base payload at ``LADDER[index]`` and
        ``codec_id`` names the stream (for its container's size): by default this
        codec's (the CPU coder); the torch coder
        (:class:`rdgap.codecs.coders.torch_window.TorchWindowCodec`) passes its own, so
        the cap is decided on the bytes it writes. The distortion search does not
        depend on the coder (both decode to the base's reconstruction)."""
        hidden = check_hidden(hidden)
        if hidden.shape[1] != self.channels:
            raise ValueError(f"hidden: expected {self.channels} channels (the codec was fitted "
                             f"on them), got {hidden.shape[1]}")
        tokens = hidden.shape[0]
        target = self.level / self.margin
        recon: dict[int, torch.Tensor] = {}
        predicted: dict[int, float] = {}

        def feasible(k: int) -> bool:
            if k not in predicted:
                recon[k] = self.at(k).reconstruct(hidden)
                predicted[k] = self.predicted_delta_ce(hidden, recon[k])
            return predicted[k] <= target

        feasible(UNIT_INDEX)
        index, flags = coarsest_feasible(feasible, guess_index(predicted[UNIT_INDEX], target))
        budget = self.cap_bits_per_token * tokens
        container = header_size(codec_id or self.codec_id, 2) + WINDOW_HEADER_BYTES
        payloads: dict[int, bytes] = {}
        payload_of = payload_of or (lambda k, h: self.at(k)._encode_payload(h))

        def stream_bits(k: int) -> float:
            if k not in payloads:
                payloads[k] = payload_of(k, hidden)
            return 8.0 * (container + len(payloads[k]))

        if stream_bits(index) > budget:
            flags |= FLAG_CAP
            index = first_fitting(index, lambda k: stream_bits(k) <= budget)
        if index is None:
            out = self._fallback(tokens)
            return WindowDecision(0, flags | FLAG_FALLBACK, self.predicted_delta_ce(hidden, out),
                                  bytes([flags | FLAG_FALLBACK, 0]), out, predicted)
        if index not in recon:
            recon[index] = self.at(index).reconstruct(hidden)
            predicted[index] = self.predicted_delta_ce(hidden, recon[index])
        return WindowDecision(index, flags, predicted[index],
                              bytes([flags, index]) + payloads[index], recon[index], predicted)

    # -- HiddenStateCodec ------------------------------------------------------------
    def _encode_payload(self, hidden):
        return self.decide(hidden).payload

    def reconstruct(self, hidden: torch.Tensor) -> torch.Tensor:
        """What decoding the stream of ``hidden`` returns."""
        return self.decide(hidden).reconstruction

    def estimate_bits(self, hidden) -> float | None:
        """The chosen factor's ``Σ −log2 q`` of the base payload, plus the 16 header bits."""
        decision = self.decide(hidden)
        if decision.flags & FLAG_FALLBACK:
            return 8.0 * WINDOW_HEADER_BYTES
        bits = self.at(decision.index).estimate_bits(hidden)
        return None if bits is None else bits + 8.0 * WINDOW_HEADER_BYTES

    def _decode_payload(self, stream: Stream) -> torch.Tensor:
        flags, index, body = split_window_payload(stream, self.channels)
        if flags & FLAG_FALLBACK:
            return self._fallback(stream.shape[0])
        scaled = self.at(index)
        return scaled._decode_payload(Stream(scaled.codec_id, stream.shape, body))

    # -- persistence -----------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write the base into ``folder/base`` and this codec's config and arrays."""
        folder = Path(folder)
        self.base.save(folder / "base")
        return persist.write(folder, {"fisher_matrix": self.fisher_matrix,
                                      "fisher_first": self.fisher_first}, {
            "rdgap_codec": "window-controlled", "format_version": FORMAT_VERSION,
            "level": self.level, "margin": self.margin,
            "cap_bits_per_token": self.cap_bits_per_token, "label": self.label,
            "channels": self.channels, "fit_report": self.fit_report,
            "hash": self._digest.hex()})

    @classmethod
    def load(cls, folder: str | Path, **options) -> "WindowControlledCodec":
        """Load a codec written by :meth:`save` (its base through
        :func:`rdgap.codecs.recipes.load_codec`); checks version and hash."""
        from ..recipes import load_codec

        config, arrays = persist.read(folder, "window-controlled", FORMAT_VERSION,
                                      ("fisher_matrix", "fisher_first"), cls.__name__)
        base = load_codec(Path(folder) / "base", **options)
        numbers = {}
        for name in ("level", "margin", "cap_bits_per_token"):
            value = config[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"folder: field {name!r} of {folder}/config.json is "
                                 f"{value!r}, expected a number")
            numbers[name] = float(value)
        report = config.get("fit_report", {})
        codec = cls(base, arrays["fisher_matrix"], arrays["fisher_first"], **numbers,
                    label=config.get("label", ""),
                    fit_report=report if isinstance(report, dict) else {})
        persist.check_hash(codec, config, folder)
        return codec
