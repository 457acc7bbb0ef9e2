"""The token-aided context codec with a per-token-id residual table:
``klt-context-tokens-table``.

Over ``klt-context-tokens``' prediction (:mod:`rdgap.codecs.entropy_models.token_context`)

``m_t = b + W Ẑ_{t−1} + V f_t + T[x_t]``

where ``T[x]`` is the mean of the ridge's open-loop residual over the fit windows'
positions whose token is ``x``, shrunk toward 0 by ``n_x / (n_x + λ)`` (``n_x`` the id's
count there, ``λ`` = :data:`SHRINK`): :func:`fit_id_table`. Only ids seen in the fit
windows have a row; any other id gets no offset. The decoder reads ``x_t`` from the
stream before the body (as for ``V f_t``), so ``T[x_t]`` is an offset it knows without
decoding; both coders form it in
:meth:`rdgap.codecs.entropy_models.context_loop.CausalLoop.token_offsets`.

The table (seen ids and their rows, float64) is saved with the codec and enters its
hash, so a codec with another table refuses this one's streams. It is fitted on the
statistics windows only (``context.hidden``), never on the calibration probe.

Screened (benchmarks/context_screen.py, docs/benchmarks.md "Stronger context models,
screened"; real closed-loop streams, SmolLM2 split 15, today's steps for ΔCE 0.05, a
ridge on 51 fit windows): 607.9 → 551.1 bits/token, split 8 591.2 → 493.3. Calibrated
by the fit pipeline on codec_bench's 22 statistics windows (real streams, 32 evaluation
windows, level 0.05): split 8 506.9 bits/token at ΔCE 0.0477 ± 0.0057 against
``klt-context-tokens``' 591.1 at 0.0505 (≈ −18 % at equal ΔCE, −10 % at equal KL);
split 15 561.5 at 0.0533 ± 0.0071 against 608.0 at 0.0479, **no gain** at equal ΔCE
(−0.4 %): the table needs more fit text than 22 windows at split 15.

``klt-context-tokens-table-gen`` fits the ridge, the table and the scales also on windows
the model writes from the statistics windows' prompts (:func:`fit_model`'s ``generated``;
:mod:`rdgap.codecs.entropy_models.generated_text`), the probe still held out. Calibrated
(48 generated windows, real streams): split 8 503.8 bits/token at ΔCE 0.0432 ± 0.0057
(KL 0.076; two-point BD-rate in KL −13.5 % against ``klt-context-tokens``, the
22-window table −7.4 %); split 15 545.8 at 0.0583 ± 0.0062, no established gain
(docs/benchmarks.md, "The id table with more fit text").
"""

from __future__ import annotations

import numpy as np
import torch

from .token_context import TokenContextCodec, fit_token_context_codec

#: ``λ`` of the shrinkage ``n / (n + λ)`` of each id's mean residual (the screen's choice).
SHRINK = 1.0


def fit_id_table(residual: np.ndarray, ids: np.ndarray,
                 shrink: float = SHRINK) -> tuple[np.ndarray, np.ndarray]:
    """Per-token-id mean of ``residual``, shrunk by ``n / (n + shrink)``.

    Parameters
    ----------
    residual : (windows, tokens − 1, C) array
        The prediction's residual at positions ``1..T−1`` of fit windows.
    ids : (windows, tokens) integer array
        Their token ids; position ``t``'s row is keyed by its own id ``ids[:, t]``.
    shrink : float
        ``λ ≥ 0``.

    Returns
    -------
    table_ids : (n,) int64
        The ids seen at positions ``1..T−1``, increasing.
    table_rows : (n, C) float64
        ``Σ residual / (n_x + λ)`` for each of them (= ``n/(n+λ)`` · mean).
    """
    residual = np.asarray(residual, dtype=np.float64)
    ids = np.asarray(ids)
    if residual.ndim != 3 or ids.shape != (residual.shape[0], residual.shape[1] + 1) \
            or ids.dtype.kind not in "iu":
        raise ValueError(f"ids: expected integer ids of shape (windows, tokens) = "
                         f"{(residual.shape[0], residual.shape[1] + 1) if residual.ndim == 3 else '?'}"
                         f" for residual of shape {residual.shape} (positions 1..T−1), got "
                         f"{ids.dtype} of shape {ids.shape}")
    if not shrink >= 0:
        raise ValueError(f"shrink: expected λ ≥ 0, got {shrink}")
    own = ids[:, 1:].reshape(-1).astype(np.int64)
    table_ids, inverse, counts = np.unique(own, return_inverse=True, return_counts=True)
    sums = np.zeros((table_ids.size, residual.shape[-1]))
    np.add.at(sums, inverse, residual.reshape(-1, residual.shape[-1]))
    return table_ids, sums / (counts + shrink)[:, None]


class TokenTableCodec(TokenContextCodec):
    """:class:`~rdgap.codecs.entropy_models.token_context.TokenContextCodec` whose
    prediction adds ``T[x_t]``, a row per token id seen in the fit windows.

    Parameters
    ----------
    table_ids : (n,) integer array
        Ids with a row, strictly increasing, in ``[0, V)``.
    table_rows : (n, C) array
        ``T[x]`` of each (KLT domain, finite).
    **tokens
        Every argument of :class:`TokenContextCodec`.
    """

    codec_id = "klt-context-tokens-table"
    saved_kind = "context-tokens-table"
    saved_arrays = TokenContextCodec.saved_arrays + ("table_ids", "table_rows")

    def __init__(self, *tokens, table_ids, table_rows, **arguments):
        ids = np.asarray(table_ids)
        rows = np.asarray(table_rows, dtype=np.float64)
        if ids.ndim != 1 or ids.dtype.kind not in "iu" or np.any(np.diff(ids) <= 0):
            raise ValueError(f"table_ids: expected strictly increasing integer ids, got "
                             f"{ids.dtype} of shape {ids.shape}")
        channels = np.shape(arguments.get("mean"))[0]
        if rows.shape != (ids.size, channels) or not np.all(np.isfinite(rows)):
            raise ValueError(f"table_rows: expected finite values of shape "
                             f"{(ids.size, channels)} (one row per table id), got "
                             f"{rows.shape}")
        self.table_ids, self.table_rows = ids.astype(np.int64), rows
        super().__init__(*tokens, **arguments)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocabulary):
            raise ValueError(f"table_ids: expected ids in [0, {self.vocabulary}) (rows of "
                             f"embedding), got [{ids.min()}, {ids.max()}]")

    def _arrays(self) -> dict[str, np.ndarray]:
        return {**super()._arrays(), "table_ids": self.table_ids,
                "table_rows": self.table_rows}

    def params(self) -> dict:
        return {**super().params(), "table_ids": int(self.table_ids.size)}


def fit_token_table_codec(hidden: torch.Tensor, input_ids: torch.Tensor, embedding, *arguments,
                          shrink: float = SHRINK, **options) -> TokenTableCodec:
    """Fit :class:`TokenTableCodec` on fit windows (closed form): the ridge of
    :func:`~rdgap.codecs.entropy_models.token_context.fit_token_context_codec`, then
    :func:`fit_id_table` of its open-loop residual on the same windows, then scales and
    side densities with both offsets.

    Parameters
    ----------
    hidden, input_ids, embedding, *arguments, **options
        As :func:`~rdgap.codecs.entropy_models.token_context.fit_token_context_codec`.
    shrink : float
        ``λ`` of :func:`fit_id_table`.
    """
    ids = input_ids.numpy() if isinstance(input_ids, torch.Tensor) else np.asarray(input_ids)

    def refine(residual):
        table_ids, rows = fit_id_table(residual, ids, shrink)
        lookup = np.full(np.shape(embedding)[0], table_ids.size)
        lookup[table_ids] = np.arange(table_ids.size)
        padded = np.vstack([rows, np.zeros((1, rows.shape[1]))])
        return padded[lookup[ids[:, 1:]]], {"table_ids": table_ids, "table_rows": rows}

    return fit_token_context_codec(hidden, input_ids, embedding, *arguments, refine=refine,
                                   make_class=TokenTableCodec, **options)


def fit_model(start, context, input_ids: torch.Tensor, embedding=None, lags=(0,),
              rdo: float = 0.0, generated: int = 0, seed: int = 0, shrink: float = SHRINK):
    """The ``context-tokens-table`` entropy model at a fit start (the pipeline's
    interface): :func:`rdgap.codecs.entropy_models.token_fit.fit_model` with
    :func:`fit_token_table_codec` (table fitted on ``context.hidden`` and its ids, the
    statistics windows; never on the probe).

    Parameters
    ----------
    start, context, input_ids, embedding, lags, rdo
        As :func:`rdgap.codecs.entropy_models.token_fit.fit_model`.
    generated : int
        Windows the model writes from the statistics windows' prompts that join them as
        the ridge's, the table's and the scales' fit text
        (:func:`rdgap.codecs.entropy_models.generated_text.with_generated_text`, seeded
        by ``seed``; 0: the statistics windows alone). The transform, Fisher and probe
        stay the context's.
    shrink : float
        ``λ`` of :func:`fit_id_table`.
    """
    from functools import partial

    from . import token_fit  # the fit pipeline's module (imports rdgap.codecs.fit)

    if generated:
        from .generated_text import with_generated_text

        context, input_ids = with_generated_text(context, input_ids, generated, seed=seed)
    return token_fit.fit_model(start, context, input_ids, embedding=embedding, lags=lags,
                               rdo=rdo, fitter=partial(fit_token_table_codec, shrink=shrink))
