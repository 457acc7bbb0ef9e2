"""The factorized codec with learned per-component densities (Ballé-style deep factorized).

Quantizer, steps, transform and position-0 tables are those of a fitted
:class:`rdgap.codecs.entropy_models.factorized.FactorizedCodec`, so the reconstruction (hence
ΔCE) is bit-identical to it. Only the tables of positions ≥ 1 change: component
``j`` gets an integer count table over ``-w_j..w_j`` plus an escape, from the
deep factorized density of :mod:`rdgap.codecs.entropy_models.deep_density` (Ballé et al. 2018,
appendix 6.1) trained on the fit windows' symbols at the codec's steps, on the
rate ``Σ −log2 p`` (THEORY.md T1, the symbol part of the two-part rate). A
parametric family wastes rate where a component's law is skewed, bimodal or
heavier-tailed than its family; the flexible density does not.

Alphabet
    ``w_j`` is the :data:`COVERAGE` quantile of ``|S_j|`` on the fit symbols;
    the escape slot carries the fit mass outside it (at least one count), and
    escaped symbols are coded exactly as the factorized codec codes them
    (:mod:`rdgap.codecs.coders.ans`: 33 bits each), so no symbol is clipped.
Training
    All components in one module (``DeepFactorizedDensity(channels)``) on the
    counts of each value, each component's input divided by its own spread so
    that one initialisation fits components whose scales differ by orders of
    magnitude: ``c_j(x) = σ(f_j(x / r_j))``, still an increasing cumulative.
Determinism
    The decoder never evaluates the network: the tables (multiples of
    ``2^-PRECISION``) are stored with the codec (safetensors) and hashed; the
    stream's codec id (``deep-…``) and hash keep streams of the parametric
    codec and of this one apart.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..coders import ans

from .. import persist
from .deep_density import DeepFactorizedDensity, PRECISION, integer_table
from .factorized import _ARRAYS, ChannelStatistics, FactorizedCodec
from .factorized import fit_model as factorized_model
from .model_fit import ModelFit, every_fit_window
from .tables import MAX_HALF_WIDTH

VARIANT = "klt-deep"
FORMAT_VERSION = 1
#: Fraction of each component's fit symbols inside its table (the rest escape). All of
#: them: on SmolLM2 split 15 (klt-laplace steps at T7's scale for 0.05, 22 statistics
#: windows, 32 held out) tables at the 99.9 % quantile cost 821.1 bits/token on the
#: held-out windows, tables covering every fit symbol 813.9 (klt-laplace: 808.2): escapes
#: (≈ 43 bits each) cost more than the network's extrapolated tails.
COVERAGE = 1.0
#: Full-batch Adam steps of the density training.
STEPS = 400
_STATISTICS = ("mean", "scale", "first_mean", "first_scale")  # ChannelStatistics order


class DeepFactorizedCodec(FactorizedCodec):
    """A :class:`FactorizedCodec` whose positions ≥ 1 use stored learned tables.

    Parameters
    ----------
    statistics, step, first_step, family, label, analysis, synthesis
        As :class:`FactorizedCodec` (quantizer, reconstruction, position 0).
    tables : (channels, 2·max(widths) + 2) array
        Row ``j``: probabilities of symbols ``-w_j..w_j`` then the escape, padded
        with zeros; multiples of ``2^-PRECISION`` summing to 1 (see :func:`fit_tables`).
    widths : (channels,) int array
        Half-widths ``w_j ≥ 1``.
    """

    def __init__(self, statistics: ChannelStatistics, step, first_step, family: str,
                 label: str, analysis, synthesis, tables, widths):
        channels = statistics.mean.shape[0]
        self.widths, self.deep_tables = _check_tables(tables, widths, channels)
        super().__init__(statistics, step, first_step, family, label, analysis, synthesis)
        self.codec_id = f"deep-{self.codec_id}"
        self._tables = [ans.ChannelTable(row[:2 * w + 2], int(w))
                        for row, w in zip(self.deep_tables, self.widths)]
        self._digest = self._hash()

    @classmethod
    def from_codec(cls, codec: FactorizedCodec, tables, widths,
                   label: str | None = None) -> "DeepFactorizedCodec":
        """``codec``'s quantizer and position-0 tables with learned ``tables``."""
        if not isinstance(codec, FactorizedCodec):
            raise ValueError(f"codec: expected a FactorizedCodec, got {type(codec).__name__}")
        return cls(codec.stats, codec.step, codec.first_step, codec.family,
                   codec.label if label is None else label, codec.analysis, codec.synthesis,
                   tables, widths)

    def _arrays(self) -> dict[str, np.ndarray]:
        return super()._arrays() | {"deep_tables": self.deep_tables, "widths": self.widths}

    def save(self, folder: str | Path) -> Path:
        """Write ``config.json`` and ``tensors.safetensors`` (tables included) into ``folder``."""
        config = {"rdgap_codec": "deep-factorized", "format_version": FORMAT_VERSION,
                  "transform": self.analysis is not None}
        return persist.write(folder, self._arrays(), config | self.params())

    @classmethod
    def load(cls, folder: str | Path) -> "DeepFactorizedCodec":
        """Load a codec written by :meth:`save`; checks its version and hash."""
        config, arrays = persist.read(folder, "deep-factorized", FORMAT_VERSION,
                                      _ARRAYS + ("deep_tables", "widths"),
                                      "DeepFactorizedCodec")
        get = arrays.get
        codec = cls(ChannelStatistics(*(arrays[name] for name in _STATISTICS)),
                    get("step"), get("first_step"), config["family"], config.get("label", ""),
                    get("analysis"), get("synthesis"), get("deep_tables"), get("widths"))
        persist.check_hash(codec, config, folder)
        return codec


def _check_tables(tables, widths, channels: int):
    widths = np.asarray(widths)
    if widths.shape != (channels,) or widths.dtype.kind not in "iu" or np.any(widths < 1):
        raise ValueError(f"widths: expected {channels} integer half-widths ≥ 1, got "
                         f"{widths.dtype} of shape {widths.shape}")
    widths = widths.astype(np.int64)
    tables = np.asarray(tables, dtype=np.float64)
    size = 2 * int(widths.max()) + 2
    if tables.shape != (channels, size):
        raise ValueError(f"tables: expected shape ({channels}, {size}) (2·max(widths) + 2), "
                         f"got {tables.shape}")
    used = np.arange(size)[None, :] < (2 * widths + 2)[:, None]
    if (not np.all(np.isfinite(tables)) or np.any(tables[used] <= 0)
            or np.any(tables[~used] != 0) or not np.allclose(tables.sum(1), 1.0, atol=1e-9)):
        raise ValueError("tables: expected rows of positive probabilities over each row's "
                         "2·width + 2 entries, zeros after them, each row summing to 1")
    return widths, tables


def fit_tables(symbols: np.ndarray, coverage: float = COVERAGE, steps: int = STEPS,
               progress: bool = True):
    """Learned integer tables of the components of ``symbols``.

    Parameters
    ----------
    symbols : (N, C) int array
        Fit symbols, one column per component (positions ≥ 1 of the fit windows).
    coverage : float
        In ``(0, 1]``: the half-width ``w_j`` of component ``j`` is this quantile of
        ``|S_j|`` (≥ 1, ≤ :data:`rdgap.codecs.entropy_models.tables.MAX_HALF_WIDTH`).
    steps : int
        Full-batch Adam steps on the rate ``Σ −log2 p`` (THEORY.md T1).
    progress : bool
        Show a tqdm bar over the steps.

    Returns
    -------
    tables : (C, 2·max(w) + 2) array
        As :class:`DeepFactorizedCodec` takes them: the trained density over
        ``-w_j..w_j`` scaled to the in-table fit mass, the escape the fit mass
        outside (≥ ``2^-PRECISION``), as integer counts (:func:`integer_table`).
    widths : (C,) int array
    """
    symbols = np.asarray(symbols)
    if symbols.ndim != 2 or symbols.shape[0] < 1 or symbols.dtype.kind not in "iu":
        raise ValueError(f"symbols: expected a non-empty (N, C) integer array, got "
                         f"{symbols.dtype} of shape {symbols.shape}")
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage: expected a fraction in (0, 1], got {coverage}")
    if steps < 1:
        raise ValueError(f"steps: expected ≥ 1 Adam steps, got {steps}")
    magnitude = np.abs(symbols.astype(np.int64))
    widths = np.clip(np.ceil(np.quantile(magnitude, coverage, axis=0, method="higher")),
                     1, MAX_HALF_WIDTH).astype(np.int64)
    limit = int(widths.max())
    inside = magnitude <= widths
    counts = np.stack([np.bincount(column[keep] + limit, minlength=2 * limit + 1)
                       for column, keep in zip(symbols.T.astype(np.int64), inside.T)])
    escape = 1.0 - inside.mean(0)
    spread = np.maximum(np.sqrt((np.minimum(magnitude, widths[None]) ** 2).mean(0)), 0.5)
    p = _train(counts, spread, limit, steps, progress)
    values = np.arange(-limit, limit + 1)
    tables = np.zeros((symbols.shape[1], 2 * limit + 2))
    for j, w in enumerate(widths):
        keep = np.abs(values) <= w
        inner = p[j, keep] / p[j, keep].sum() * (1.0 - escape[j])
        row = integer_table(np.append(inner, max(escape[j], 2.0 ** -PRECISION))[None])[0]
        tables[j, :2 * w + 2] = np.append(row[:-2], row[-2] + row[-1])  # one escape slot
    return tables, widths


def _train(counts: np.ndarray, spread: np.ndarray, limit: int, steps: int,
           progress: bool) -> np.ndarray:
    """Probabilities ``(C, 2·limit + 1)`` of the trained densities at ``-limit..limit``."""
    weights = torch.from_numpy(counts / np.maximum(counts.sum(1, keepdims=True), 1))
    grid = torch.arange(-limit, limit + 1, dtype=torch.float64)
    scale = torch.from_numpy(spread)[:, None, None]
    lower, upper = (grid - 0.5) / scale, (grid + 0.5) / scale  # (C, 1, n)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        density = DeepFactorizedDensity(counts.shape[0], init_scale=1.0)
        optimiser = torch.optim.Adam(density.parameters(), lr=0.05)

        def probabilities():
            low, high = density.logits(lower), density.logits(upper)
            sign = -torch.sign(low + high).detach()  # the side where it does not cancel
            return torch.abs(torch.sigmoid(sign * high) - torch.sigmoid(sign * low))[:, 0]

        for _ in tqdm(range(steps), desc="deep factorized density", disable=not progress,
                      leave=False):
            optimiser.zero_grad()
            p = torch.clamp(probabilities(), min=2.0 ** -PRECISION)
            (-(weights * torch.log2(p)).sum()).backward()
            optimiser.step()
        with torch.no_grad():
            return torch.clamp(probabilities(), min=2.0 ** -PRECISION).numpy()


def fit_deep_codec(codec: FactorizedCodec, windows: torch.Tensor, **training
                   ) -> DeepFactorizedCodec:
    """``codec`` with learned tables from the symbols (positions ≥ 1) of fit
    ``windows`` ``(windows, tokens ≥ 2, channels)`` at its steps (:func:`fit_tables`)."""
    if not isinstance(windows, torch.Tensor) or windows.dim() != 3 or windows.shape[1] < 2:
        raise ValueError("windows: expected hidden states (windows, tokens ≥ 2, channels), "
                         f"got {tuple(getattr(windows, 'shape', ()))}")
    symbols = np.concatenate([codec.quantize(w)[1:] for w in windows])
    tables, widths = fit_tables(symbols, **training)
    return DeepFactorizedCodec.from_codec(codec, tables, widths,
                                          label=f"{VARIANT} ({codec.label})")


def fit_model(start, context, input_ids=None, **training) -> ModelFit:
    """The ``deep-factorized`` entropy model at a fit start (the pipeline's interface,
    :mod:`rdgap.codecs.entropy_models.model_fit`): the calibration measures
    ``klt-laplace``'s tables (:func:`rdgap.codecs.entropy_models.factorized.fit_model`),
    and at the chosen steps the tables of positions ≥ 1 are learned
    (:func:`fit_deep_codec`, ``**training``) on every fit window: the statistics windows
    and the probe's (the tables do not change the reconstruction the probe calibrated).
    Held-out documents differ from the fit ones: on SmolLM2 split 15 (T7's klt-laplace
    steps for 0.05, last 10 of 54 fit windows held out) tables learned on 22 windows lost
    to klt-laplace's Laplace tables, on 44 they won by ≈ 0.4 %. Reconstruction and ΔCE
    are the calibrated klt-laplace's; only the rate differs. ``input_ids`` is unused."""
    parent = factorized_model(replace(start, label="klt-laplace"), context)  # its label
    return ModelFit(parent.at, lambda codec: fit_deep_codec(codec, every_fit_window(context),
                                                            **training))


def fit_deep_factorized_codec(context, input_ids, target_delta_ce: float, method: str = "fit",
                              margin: float = 0.0, **training):
    """``klt-deep`` at a ΔCE level: :func:`rdgap.codecs.fit.fit_codec` of the recipe
    (``method``, ``margin``; :func:`fit_model` is this model's part of it, ``**training``
    its options). ``input_ids`` is unused."""
    from ..fit import fit_codec  # fit imports the codecs; keep this module importable alone

    return fit_codec(VARIANT, context, target_delta_ce, method=method, margin=margin,
                     input_ids=input_ids, model_options=training)
