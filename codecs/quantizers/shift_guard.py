"""A shift guard: a detector of windows unlike the fit windows and a robust fallback codec.

Issue 19: fitted on news, the Fisher-whitened KLT codecs miss their ΔCE level on other
text by 1.6–2.8× because the other text is more sensitive in the KLT components that
are quiet on news, which the encoder cannot see (docs/domain-shift.md). What the
encoder *can* see is that those components carry more energy. :class:`ShiftGuardedCodec`
holds a primary codec (any fitted recipe), a fallback codec (by default
``gaussian-fisher``, whose per-channel steps hold the level on other text) and a
:class:`ShiftDetector`; per window it codes with the primary when the detector's
score is at most its threshold and with the fallback otherwise.

The detector's statistic (:meth:`ShiftDetector.score`)
    With ``z_t = A (y_t − μ)`` the Fisher-whitened KLT coefficients of position
    ``t ≥ 1`` (``A``, ``μ`` and the component variances ``v_j`` estimated on the fit
    statistics windows, as the ``fisher-klt`` transform is), ``Q`` the quietest
    ``quiet`` components (smallest ``v_j``) and
    ``e_t = (1/|Q|) Σ_{j∈Q} z_tj² / v_j`` (about 1 on fit text), the score of a
    window is the ``quantile`` (default the lower quartile) of ``e_1 … e_{T−1}``. A
    quantile over tokens rather than the mean: a few tokens with large quiet energy
    occur on fit text too; a shift moves most tokens. A window of one token scores 0
    (position 0 is the model's attention sink and is not scored).
The threshold
    ``slack`` × the largest score of the fit *probe* windows (not the statistics
    windows, whose scores are biased low by the fit). With ``slack ≥ 1`` every probe
    window is coded by the primary, so the probe calibration of the primary holds for
    the guarded codec unchanged. **Prediction** (not a bound): if windows of the fit
    text are exchangeable, a fresh one scores above the largest of ``n`` probe scores
    with probability at most ``1/(n + 1)``; ``slack > 1`` only lowers it. The false-
    alarm rate on held-out fit text is measured, never assumed
    (``benchmarks/shift_guard_bench.py``).

Token ids (a primary that codes them, ``klt-context-tokens``)
    The guarded codec needs the window's ids exactly when the primary does
    (:attr:`ShiftGuardedCodec.needs_input_ids`): ``encode``, ``estimate_bits`` and
    ``reconstruct`` then take ``input_ids=`` on every window (checked even when the
    fallback codes it, so a caller's error does not depend on the detector), pass them to
    the primary and never to the fallback, which is refused if it needs ids. The ids
    travel inside the primary's payload as they do in its own stream; a window the
    fallback codes holds none (the decoder needs none), and
    :meth:`ShiftGuardedCodec.decode_with_ids` returns None for them there.

The stream
    The payload starts with one byte, :data:`USE_PRIMARY` or :data:`USE_FALLBACK`,
    before the chosen codec's payload; the codec id is ``sg-`` + the primary's and the
    hash covers both codecs' hashes, the detector and the format version, so neither
    sub-codec accepts a guarded stream nor the guard one of theirs. The decoder refuses
    any other first byte and a payload the chosen codec refuses
    (:class:`~rdgap.codecs.coders.container.BitstreamError`).

**Theorem** (rate, every stream ``encode`` writes): if both codecs bound their streams
(``stream_bytes_bound``, e.g. both rate-capped, :mod:`rdgap.codecs.quantizers.rate_cap`,
or a window-controlled primary, :mod:`rdgap.codecs.quantizers.window_control`, whose own
cap bounds it, with a rate-capped fallback),
``len(stream) ≤ max_s (bound_s(T) − H_s) + H + 1``, ``H_s`` the container bytes of
codec ``s``'s own stream and ``H`` the guard's: the guard replaces the sub-codec's
container by its own and adds one byte. :meth:`ShiftGuardedCodec.stream_bytes_bound`
gives it (absent when a sub-codec has no bound, e.g. ``klt-context-tokens``, which
cannot be rescaled and so is never capped). The distortion of a window is its coder's:
the guard holds no distortion theorem of its own (a window-controlled primary keeps its
per-window control, THEORY.md T11, on the windows it codes; the guard only chooses
which codec codes a window).

Fitting: :mod:`rdgap.codecs.quantizers.shift_guard_fit`.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch

from .. import persist
from ..base import HiddenStateCodec, check_hidden
from ..coders.container import BitstreamError, Stream, header_size, pack

FORMAT_VERSION = 1
#: First payload byte: the window is coded by the primary.
USE_PRIMARY = 0
#: First payload byte: the window is coded by the fallback.
USE_FALLBACK = 1
#: Bytes of the guard's window header.
GUARD_HEADER_BYTES = 1
#: The detector's arrays in a saved folder.
DETECTOR_ARRAYS = ("detector_mean", "detector_quiet_analysis", "detector_quiet_variances")


class ShiftDetector:
    """The per-window statistic of the module and its threshold.

    Parameters
    ----------
    mean : (C,) array
        ``μ``, the mean of positions ≥ 1 of the fit statistics windows.
    quiet_analysis : (q, C) array
        The rows of the Fisher-whitened KLT analysis matrix of the ``q`` quietest
        components.
    quiet_variances : (q,) array
        Their variances on the fit statistics windows (> 0).
    quantile : float
        The quantile over tokens taken as the score, in [0, 1].
    threshold : float
        Windows scoring above it are coded by the fallback (> 0).
    """

    def __init__(self, mean, quiet_analysis, quiet_variances, quantile: float,
                 threshold: float):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.quiet_analysis = np.asarray(quiet_analysis, dtype=np.float64)
        self.quiet_variances = np.asarray(quiet_variances, dtype=np.float64)
        channels = self.mean.shape
        if self.mean.ndim != 1 or self.quiet_analysis.ndim != 2 \
                or self.quiet_analysis.shape[1:] != channels \
                or self.quiet_variances.shape != self.quiet_analysis.shape[:1] \
                or self.quiet_analysis.shape[0] == 0:
            raise ValueError(f"quiet_analysis, quiet_variances: expected (q, C) and (q,) with "
                             f"q ≥ 1 and C = {channels} (the mean's length), got "
                             f"{self.quiet_analysis.shape} and {self.quiet_variances.shape}")
        if not (np.isfinite(self.quiet_variances).all() and (self.quiet_variances > 0).all()):
            raise ValueError("quiet_variances: expected finite variances > 0; the quiet "
                             "components were estimated on too few fit tokens")
        if isinstance(quantile, bool) or not (0 <= float(quantile) <= 1):
            raise ValueError(f"quantile: expected a quantile over tokens in [0, 1], got "
                             f"{quantile!r}")
        if isinstance(threshold, bool) or not (math.isfinite(threshold) and threshold > 0):
            raise ValueError(f"threshold: expected a finite score > 0, got {threshold!r}")
        self.quantile, self.threshold = float(quantile), float(threshold)

    @property
    def channels(self) -> int:
        return int(self.mean.shape[0])

    def token_energy(self, hidden: torch.Tensor) -> np.ndarray:
        """``e_t`` of positions ``t ≥ 1`` (the module's statistic before the quantile)."""
        rest = hidden[1:].double().numpy() - self.mean
        z = rest @ self.quiet_analysis.T
        return (z * z / self.quiet_variances).mean(1)

    def score(self, hidden: torch.Tensor) -> float:
        """The window's score: the ``quantile`` of :meth:`token_energy` (0 for one token)."""
        if hidden.shape[0] < 2:
            return 0.0
        return float(np.quantile(self.token_energy(hidden), self.quantile))

    def flags(self, hidden: torch.Tensor) -> bool:
        """Whether the window is coded by the fallback (score above the threshold)."""
        return self.score(hidden) > self.threshold

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(zip(DETECTOR_ARRAYS, (self.mean, self.quiet_analysis,
                                          self.quiet_variances)))

    def params(self) -> dict:
        h = hashlib.blake2b(digest_size=8)
        for array in self.arrays().values():
            h.update(np.ascontiguousarray(array, dtype="<f8").tobytes())
        return {"arrays": h.hexdigest(), "quantile": self.quantile,
                "threshold": self.threshold}


class ShiftGuardedCodec(HiddenStateCodec):
    """A primary codec, a fallback codec and the detector choosing between them per window.

    Parameters
    ----------
    primary, fallback : HiddenStateCodec
        Fitted codecs of the same channels (the fallback: one that holds its level under
        shift, by default ``gaussian-fisher``). The primary may code token ids (then so
        does the guarded codec, see the module); a fallback that codes them is refused.
    detector : ShiftDetector
        Fitted on the primary's fit windows (:func:`rdgap.codecs.quantizers.
        shift_guard_fit.fit_detector`).
    label : str
        Free text saved with the codec (not hashed).
    fit_report : dict, optional
        What the fit measured (saved, not hashed).
    """

    #: Whether ``encode``, ``estimate_bits`` and ``reconstruct`` take ``input_ids=``: set
    #: per codec to the primary's.
    needs_input_ids = False

    def __init__(self, primary: HiddenStateCodec, fallback: HiddenStateCodec,
                 detector: ShiftDetector, label: str = "", fit_report: dict | None = None):
        for name, codec in (("primary", primary), ("fallback", fallback)):
            if not isinstance(codec, HiddenStateCodec):
                raise ValueError(f"{name}: expected a fitted HiddenStateCodec, got "
                                 f"{type(codec).__name__}")
            if int(codec.channels) != detector.channels:
                raise ValueError(f"{name}: codes {codec.channels} channels, the detector "
                                 f"{detector.channels}; fit both on the same windows")
        if getattr(fallback, "needs_input_ids", False):
            raise ValueError("fallback: a codec that codes token ids (klt-context-tokens) "
                             "cannot be the fallback (the guard passes ids to the primary "
                             "only); fall back to one without them, e.g. gaussian-fisher")
        self.needs_input_ids = bool(getattr(primary, "needs_input_ids", False))
        self.primary, self.fallback, self.detector = primary, fallback, detector
        self.channels = detector.channels
        self.label = label
        self.fit_report = dict(fit_report or {})
        self.codec_id = f"sg-{primary.codec_id}"
        h = hashlib.blake2b(digest_size=8)
        h.update(json.dumps({"codec": self.codec_id, "version": FORMAT_VERSION,
                             "primary": primary.digest.hex(),
                             "fallback": fallback.digest.hex(),
                             "detector": detector.params(),
                             "header": GUARD_HEADER_BYTES}, sort_keys=True).encode())
        self._digest = h.digest()
        if all(callable(getattr(c, "stream_bytes_bound", None)) for c in (primary, fallback)):
            self.stream_bytes_bound = self._stream_bytes_bound

    @property
    def digest(self) -> bytes:
        return self._digest

    def params(self) -> dict:
        return {"primary": self.primary.digest.hex(), "fallback": self.fallback.digest.hex(),
                "detector": self.detector.params(), "label": self.label,
                "hash": self._digest.hex()}

    def _stream_bytes_bound(self, tokens: int) -> int:
        """The most bytes a stream of ``tokens`` tokens can have (the module's theorem)."""
        own = header_size(self.codec_id, 2) + GUARD_HEADER_BYTES
        return max(c.stream_bytes_bound(tokens) - header_size(c.codec_id, 2) + own
                   for c in (self.primary, self.fallback))

    def choose(self, hidden: torch.Tensor) -> tuple[int, HiddenStateCodec]:
        """``(header byte, codec)`` coding the window ``hidden``."""
        hidden = check_hidden(hidden)
        if hidden.shape[1] != self.channels:
            raise ValueError(f"hidden: expected {self.channels} channels (the codec was fitted "
                             f"on them), got {hidden.shape[1]}")
        if self.detector.flags(hidden):
            return USE_FALLBACK, self.fallback
        return USE_PRIMARY, self.primary

    def _chosen(self, hidden, input_ids) -> tuple[int, HiddenStateCodec, dict]:
        """``(header byte, codec, keywords)``: :meth:`choose`, and ``{"input_ids": ids}``
        when the primary codes the window and needs them (``{}`` otherwise); the ids are
        checked on every window when the primary needs them, refused when it does not."""
        hidden = check_hidden(hidden)
        if not self.needs_input_ids:
            if input_ids is not None:
                raise ValueError(f"input_ids: the primary {self.primary.codec_id} codes no "
                                 f"token ids; call without input_ids")
            return (*self.choose(hidden), {})
        check = getattr(self.primary, "check_ids", None)
        if input_ids is None:
            raise ValueError(f"input_ids: expected the window's token ids (the primary "
                             f"{self.primary.codec_id} predicts from them and codes them), "
                             f"got None")
        if callable(check):
            check(input_ids, hidden.shape[0])
        which, codec = self.choose(hidden)
        return which, codec, {"input_ids": input_ids} if which == USE_PRIMARY else {}

    # -- HiddenStateCodec ------------------------------------------------------------
    def encode(self, hidden: torch.Tensor, input_ids=None) -> bytes:
        """One stream holding ``hidden`` (tokens × channels); ``input_ids`` (tokens,)
        exactly when :attr:`needs_input_ids` (the primary's ids, see the module)."""
        hidden = check_hidden(hidden)
        return pack(self.codec_id, self.digest, tuple(hidden.shape),
                    self._encode_payload(hidden, input_ids))

    def _encode_payload(self, hidden, input_ids=None):
        which, codec, ids = self._chosen(hidden, input_ids)
        return bytes([which]) + codec._encode_payload(hidden, **ids)

    def reconstruct(self, hidden: torch.Tensor, input_ids=None) -> torch.Tensor:
        """What decoding the stream of ``hidden`` (with ``input_ids`` where needed)
        returns."""
        _, codec, ids = self._chosen(hidden, input_ids)
        return codec.reconstruct(hidden, **ids)

    def estimate_bits(self, hidden, input_ids=None) -> float | None:
        """The chosen codec's estimate (the primary's with the ids where it codes them)
        plus the 8 header bits."""
        _, codec, ids = self._chosen(hidden, input_ids)
        bits = codec.estimate_bits(hidden, **ids)
        return None if bits is None else bits + 8.0 * GUARD_HEADER_BYTES

    def decode_with_ids(self, data: bytes) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(hidden, input_ids)`` of a stream: the ids read from the stream where the
        primary coded the window and codes ids, None where the fallback coded it (its
        payload holds none) or the primary codes none."""
        stream = self._unpack_tokens(data)
        codec, body = self._sub_stream(stream)
        if codec is self.primary and self.needs_input_ids:
            return codec.decode_with_ids(pack(codec.codec_id, codec.digest, stream.shape,
                                              body.payload))
        return codec._decode_payload(body), None

    def _decode_payload(self, stream: Stream) -> torch.Tensor:
        codec, body = self._sub_stream(stream)
        return codec._decode_payload(body)

    def _sub_stream(self, stream: Stream) -> tuple[HiddenStateCodec, Stream]:
        """The codec the window header names and its stream (header removed)."""
        if stream.shape[1] != self.channels:
            raise BitstreamError(f"data: stream has {stream.shape[1]} channels, the codec "
                                 f"{self.channels}")
        if len(stream.payload) < GUARD_HEADER_BYTES:
            raise BitstreamError("data: empty payload; a shift-guarded stream starts with a "
                                 "byte naming the codec of the window")
        which = stream.payload[0]
        if which not in (USE_PRIMARY, USE_FALLBACK):
            raise BitstreamError(f"data: window header {which:#04x} names neither the primary "
                                 f"({USE_PRIMARY}) nor the fallback ({USE_FALLBACK}); the "
                                 f"stream is corrupted or from a newer rdgap")
        codec = self.primary if which == USE_PRIMARY else self.fallback
        return codec, Stream(codec.codec_id, stream.shape, stream.payload[GUARD_HEADER_BYTES:])

    # -- persistence -----------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write the sub-codecs into ``folder/primary`` and ``folder/fallback``, the
        detector's arrays and settings into ``folder``."""
        folder = Path(folder)
        self.primary.save(folder / "primary")
        self.fallback.save(folder / "fallback")
        return persist.write(folder, self.detector.arrays(), {
            "rdgap_codec": "shift-guarded", "format_version": FORMAT_VERSION,
            "quantile": self.detector.quantile, "threshold": self.detector.threshold,
            "label": self.label, "channels": self.channels, "fit_report": self.fit_report,
            "hash": self._digest.hex()})

    @classmethod
    def load(cls, folder: str | Path, **options) -> "ShiftGuardedCodec":
        """Load a codec written by :meth:`save` (its sub-codecs through
        :func:`rdgap.codecs.recipes.load_codec`); checks version and hash. ``options``
        (e.g. ``embedding=`` of a primary that codes token ids) go to the primary only:
        the fallback codes no ids and takes none."""
        from ..recipes import load_codec

        config, arrays = persist.read(folder, "shift-guarded", FORMAT_VERSION,
                                      DETECTOR_ARRAYS, cls.__name__)
        settings = {}
        for name in ("quantile", "threshold"):
            value = config[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"folder: field {name!r} of {folder}/config.json is "
                                 f"{value!r}, expected a number")
            settings[name] = float(value)
        detector = ShiftDetector(arrays["detector_mean"], arrays["detector_quiet_analysis"],
                                 arrays["detector_quiet_variances"], **settings)
        report = config.get("fit_report", {})
        codec = cls(load_codec(Path(folder) / "primary", **options),
                    load_codec(Path(folder) / "fallback"), detector,
                    label=config.get("label", ""),
                    fit_report=report if isinstance(report, dict) else {})
        persist.check_hash(codec, config, folder)
        return codec


__all__ = ["ShiftDetector", "ShiftGuardedCodec", "USE_PRIMARY", "USE_FALLBACK",
           "GUARD_HEADER_BYTES"]
