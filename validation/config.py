"""What ``rdgap validate`` runs: :class:`ValidateConfig`, its checks, and the split points.

:data:`FITTED_VARIANTS` are the recipes of :mod:`rdgap.codecs.recipes` the job accepts
(``in_validate``); :func:`spread_splits` places the default split points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rdgap.codecs import recipes
from rdgap.codecs.fit import VARIANTS

from . import other_text
from .corpus import DEFAULT_CORPUS
from .tasks import TASKS

#: Variants ``rdgap validate`` fits (recipes of :mod:`rdgap.codecs.recipes` with
#: ``in_validate``): :data:`rdgap.codecs.fit.VARIANTS` and
#: ``klt-context-tokens`` (:mod:`rdgap.codecs.token_fit`; never a default, and only for
#: architectures whose receiver holds the token-embedding table, see
#: :func:`.tasks.token_variant_refusal`).
FITTED_VARIANTS = recipes.names(in_validate=True)


@dataclass
class ValidateConfig:
    """What ``rdgap validate`` runs.

    Attributes
    ----------
    architectures : tuple of str
        Task names (:data:`rdgap.validation.tasks.TASKS`, or the optional
        ``"gemma3-270m"``) or transformers model folders (the task follows the config:
        :func:`rdgap.validation.tasks.task_kind`).
    splits : list of int or None
        Split points (layers in the prefix) used for every architecture; None
        spreads ``split_count`` over each one's depth.
    split_count : int
        Number of split points when ``splits`` is None.
    corpus : str
        A named corpus (:data:`.corpus.NAMED_CORPORA`) or a text file / folder (text
        architectures); split into fit and evaluation documents.
    fit_corpus, eval_corpus : str or None
        The corpus of the fit windows and of the evaluation windows (each from its
        part of that corpus's split; None = ``corpus``). Different corpora measure a
        codec calibrated on one text source on another; every fitted row then says
        whether its level held on the evaluation documents (``level_status``).
    window_length : int
        Tokens per window (default 128: of the 144 news evaluation documents, 129 hold
        128 SmolLM2 tokens and 47 hold 256, and the held-out rate interval narrows as
        1/√N in the documents, THEORY.md T8).
    windows : int or None
        Number of evaluation windows, one per document; None (the default of the full
        run) = every evaluation document with one full window (the issue-14 rule: the
        documents are the independent unit, so use all there are). The other corpora
        of :attr:`other_corpora` use the same rule.
    batch_size : int
        Windows per forward pass.
    seed : int
        Seed of the fit / evaluation document split.
    variants : tuple of str
        Reference-codec variants (:data:`FITTED_VARIANTS`) fitted at each split;
        ``klt-context-tokens`` is skipped, with the reason in the results'
        ``architectures[].skipped_variants``, on an architecture whose receiver does
        not hold the token-embedding table (:func:`.tasks.token_variant_refusal`).
    levels : tuple of float or None
        Distortion targets (the task's primary distortion, e.g. ΔCE in
        nats/token) each variant is calibrated to on the fit windows; None uses
        each architecture's ``default_levels`` (ΔCE 0.05 for the LM and the ViT,
        1 − cos 0.01 for the sentence encoder), since one number cannot mean the
        same loss for every distortion.
    fit_windows : int
        Windows from fit documents: the first half fits statistics and the
        Fisher matrix, the second half calibrates the steps to each level.
        Default 64 windows of 128 tokens: the 8,192 fit tokens of the former 32 × 256.
    zstd_symbols_of : str or None
        A fitted variant whose integer symbols are also coded with zstd (the
        generic-compressor baseline at exactly that variant's distortion).
    cache_dir : str or None
        The rdgap cache folder (models, hidden states).
    jacobian_windows, jacobian_positions : int
        Evaluation windows, and positions of each, on which T10's power iteration
        estimates the prefix's Jacobian spectral norm at each split.
    quick_run : bool
        Set by :meth:`quick`; the coverage claims then run their small version.
    other_corpora : tuple of str or None
        Text other than the fit and evaluation corpora on which every fitted row is
        measured again (:mod:`.other_text`; results in ``row["other_text"]``); None =
        every named corpus other than those two (``("newsgroups", "wikipedia")`` for
        the default ``lee_background``), ``()`` = none.
    rate_cap : float or None
        The rate cap of every fitted recipe (:meth:`rdgap.codecs.recipes.Recipe.fit`'s
        ``cap``): a multiple > 1 of its fitted rate (default
        :data:`rdgap.codecs.recipes.DEFAULT_CAP`, 2), so that the range ``B`` of the
        held-out interval is the cap (THEORY.md T8); None fits the recipes' own codecs
        (``B`` = the format's worst case).
    calibration_margin : float
        The ``z`` of every fitted recipe's calibration criterion ``ΔCE + z·s.e. ≤ level``
        on the fit probe documents (:func:`rdgap.codecs.fit.fit_codec`'s ``margin``;
        issue 19). 0 (default): the probe mean alone meets the level, so the evaluation
        mean exceeds it whenever the probe's estimate was low (its s.e. over the 32 probe
        documents is ≈ 8–15 % of the level); ``z = 2`` covers that error at the cost of a
        finer step.
    shift_guard : str or None
        A fallback recipe (e.g. ``"gaussian-fisher"``; one that codes token ids is
        refused) behind which every other fitted recipe is guarded, those that code
        token ids and the window-controlled ones included
        (:meth:`rdgap.codecs.recipes.Recipe.fit`'s ``shift_guard``; rows named
        ``<recipe>-sg``; issue 19, docs/domain-shift.md "A shift guard"); None
        (default): no guard.
    """

    architectures: tuple[str, ...] = TASKS
    splits: list[int] | None = None
    split_count: int = 5
    corpus: str = DEFAULT_CORPUS
    fit_corpus: str | None = None
    eval_corpus: str | None = None
    window_length: int = 128
    windows: int | None = None
    batch_size: int = 4
    seed: int = 0
    cache_dir: str | None = None
    variants: tuple[str, ...] = ("gaussian-std", "gaussian-fisher", "klt-laplace")
    levels: tuple[float, ...] | None = None
    fit_windows: int = 64
    zstd_symbols_of: str | None = "gaussian-fisher"
    jacobian_windows: int = 2
    jacobian_positions: int = 32
    quick_run: bool = False
    other_corpora: tuple[str, ...] | None = None
    rate_cap: float | None = recipes.DEFAULT_CAP
    calibration_margin: float = 0.0
    shift_guard: str | None = None

    @classmethod
    def quick(cls, **overrides) -> "ValidateConfig":
        """The small run CI uses: every architecture at 3 splits, 8 windows of 128
        tokens, the Fisher-allocated factorized codec at one level (the KLT needs
        more fit data than a quick run has)."""
        settings = {"quick_run": True, "split_count": 3, "window_length": 128, "windows": 8,
                    "variants": ("gaussian-fisher",), "fit_windows": 8,
                    "jacobian_windows": 1, "jacobian_positions": 16}
        settings.update(overrides)
        return cls(**settings)

    def check(self) -> None:
        """Raise ValueError naming the first setting that cannot run."""
        if not self.architectures:
            raise ValueError("architectures: expected at least one task name or model folder")
        for name in self.variants:
            if name not in FITTED_VARIANTS:
                raise ValueError(f"variants: expected names from {FITTED_VARIANTS}, "
                                 f"got {name!r}")
        if self.zstd_symbols_of is not None and self.zstd_symbols_of not in VARIANTS:
            raise ValueError(f"zstd_symbols_of: expected a name from {VARIANTS} or None, "
                             f"got {self.zstd_symbols_of!r}")
        cap = self.rate_cap
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, float))
                                or not (np.isfinite(cap) and cap > 1)):
            raise ValueError(f"rate_cap: expected a multiple > 1 of the fitted rate (e.g. "
                             f"{recipes.DEFAULT_CAP}) or None for no cap, got {cap!r}")
        margin = self.calibration_margin
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) \
                or not (np.isfinite(margin) and margin >= 0):
            raise ValueError(f"calibration_margin: expected a finite z ≥ 0 of the criterion "
                             f"ΔCE + z·s.e. ≤ level (e.g. 2), got {margin!r}")
        if self.shift_guard is not None and (self.shift_guard not in FITTED_VARIANTS
                                             or recipes.recipe(self.shift_guard).needs_token_ids):
            raise ValueError(f"shift_guard: expected a fitted recipe without token ids as the "
                             f"fallback (e.g. 'gaussian-fisher') or None, got "
                             f"{self.shift_guard!r}")
        self.resolved_other_corpora()

    def resolved_other_corpora(self) -> tuple[str, ...]:
        """The corpora of :attr:`other_corpora`, None resolved
        (:func:`.other_text.other_corpora`)."""
        return other_text.other_corpora(self.other_corpora, self.fit_corpus or self.corpus,
                                        self.eval_corpus or self.corpus)


def spread_splits(num_layers: int, count: int) -> list[int]:
    """``count`` split points spread evenly over ``1 .. num_layers - 1``."""
    if num_layers < 2:
        raise ValueError(f"model: needs ≥ 2 layers to split, has {num_layers}")
    count = min(count, num_layers - 1)
    points = np.linspace(0, num_layers, count + 2)[1:-1]
    return sorted({int(min(max(round(p), 1), num_layers - 1)) for p in points})
