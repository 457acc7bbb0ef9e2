r"""Rate against a statistic across splits, with the split as the independent unit.

The rows of an architecture are ``splits × codecs``; the rows of one split
share its hidden states (and every split-level statistic, such as the prefix
Jacobian), so they are not independent. Every interval here comes from a
*split-clustered* bootstrap: whole splits are resampled with replacement,
each bringing all of its codec rows (:func:`bootstrap_correlation` with
``clusters``). ``units`` says how many independent units (splits) a record
has; a record needs :data:`MIN_CORRELATION_ROWS` of them to say anything.

Statistics computed from the codec's own symbols at its own steps (the T3
log-dets, the Miller–Madow estimate of its symbols, the T7 prediction) sit
within a few percent of its rate by construction (rate / T3 diagonal =
1.006–1.05 on the reference run): their correlations with the rate are
near-tautological and flagged ``tautological`` (:data:`TAUTOLOGICAL`); the
paper's claims are about the codec-independent statistics of a split
(:data:`SPLIT_LEVEL`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as scipy_stats

#: Statistics correlated with the rate (all expected to rise with it).
STATISTICS = ("split_logdet_covariance", "t3_logdet_full", "t3_logdet_diag",
              "t3_dependency_headroom", "t4_miller_madow_estimate", "t9_rademacher_mc",
              "t9_rademacher_massart", "t10_entropy_model_lipschitz", "t10_prefix_jacobian",
              "t7_predicted_rate")
#: Computed from the codec's own symbols at its steps: near-tautological against its rate.
TAUTOLOGICAL = frozenset({"t3_logdet_full", "t3_logdet_diag", "t4_miller_madow_estimate",
                          "t7_predicted_rate"})
#: Codec-independent statistics of a split (the paper's correlations).
SPLIT_LEVEL = frozenset({"split_logdet_covariance", "t10_prefix_jacobian"})
MIN_CORRELATION_ROWS = 4
CONFIDENCE = 0.95
POOLED = "pooled (within codec, standardised; splits resampled)"


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair (nan where a row is constant)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((xc ** 2).sum(-1) * (yc ** 2).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (xc * yc).sum(-1) / denominator, np.nan)


def _weighted_pearson(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row of weights ``w`` (B, n) over pairs ``x``, ``y`` ((n,) or (B, n)):
    the correlation of the sample in which pair i appears ``w[b, i]`` times."""
    total = w.sum(-1, keepdims=True)
    xc = x - (w * x).sum(-1, keepdims=True) / total
    yc = y - (w * y).sum(-1, keepdims=True) / total
    spread_x, spread_y = (w * xc ** 2).sum(-1), (w * yc ** 2).sum(-1)
    # a resample is constant when its spread is rounding noise RELATIVE to its values
    # (scale-invariant: the same data in other units gives the same correlations)
    varies = ((spread_x > 1e-24 * (w * x ** 2).sum(-1))
              & (spread_y > 1e-24 * (w * y ** 2).sum(-1)))
    denominator = np.sqrt(spread_x * spread_y)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(varies, (w * xc * yc).sum(-1) / denominator, np.nan)


def _weighted_ranks(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties averaged) of each pair in each weighted sample."""
    below = (x[:, None] < x[None, :]) + 0.5 * (x[:, None] == x[None, :])
    return w @ below + 0.5


def _both(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    p = float(_pearson_rows(x, y))
    s = float(_pearson_rows(scipy_stats.rankdata(x), scipy_stats.rankdata(y)))
    return p, s


def bootstrap_correlation(x, y, n_boot: int = 2000, seed: int = 0,
                          confidence: float = CONFIDENCE, clusters=None) -> dict:
    """Pearson and Spearman correlation with percentile bootstrap CIs.

    Parameters
    ----------
    x, y : array_like, shape (N,)
        Paired values, ``N >= 3``.
    n_boot : int
        Resamples, ``>= 10``.
    seed : int
        Seed of the resampling.
    confidence : float
        Level of the percentile intervals, in (0, 1).
    clusters : array_like, shape (N,), optional
        The independent unit of each pair (e.g. its split). When given, whole
        clusters are resampled with replacement, each bringing all its pairs
        (a cluster bootstrap); otherwise pairs are resampled (they are then
        assumed independent).

    Returns
    -------
    dict
        ``{"n", "units", "pearson", "pearson_ci", "spearman", "spearman_ci",
        "confidence", "n_boot", "n_boot_valid"}``; resamples in which either
        variable is constant are dropped (``n_boot_valid`` counts the rest).

    Raises
    ------
    ValueError
        On arrays of other shapes, ``n_boot < 10``, a confidence outside
        (0, 1), or clusters not one per pair.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 3:
        raise ValueError(f"x, y: expected two 1-D arrays of equal length >= 3, got shapes "
                         f"{x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x, y: expected finite values")
    if int(n_boot) < 10:
        raise ValueError(f"n_boot: expected at least 10 resamples, got {n_boot!r}")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence: expected a value in (0, 1), got {confidence!r}")
    rng = np.random.default_rng(seed)
    if clusters is None:
        labels = np.arange(x.size)
    else:
        labels = np.asarray(clusters)
        if labels.shape != x.shape:
            raise ValueError(f"clusters: expected one label per pair ({x.size}), got shape "
                             f"{labels.shape}")
    ids, members = np.unique(labels, return_inverse=True)
    if clusters is None:
        index = rng.integers(0, x.size, size=(int(n_boot), x.size))
        xs, ys = x[index], y[index]
        pearson = _pearson_rows(xs, ys)
        spearman = _pearson_rows(scipy_stats.rankdata(xs, axis=1),
                                 scipy_stats.rankdata(ys, axis=1))
    else:  # whole clusters drawn: pair i weighs as often as its cluster was drawn
        draws = rng.integers(0, ids.size, size=(int(n_boot), ids.size))
        counts = np.zeros((int(n_boot), ids.size))
        np.add.at(counts, (np.arange(int(n_boot))[:, None], draws), 1.0)
        weights = counts[:, members]
        pearson = _weighted_pearson(weights, x, y)
        spearman = _weighted_pearson(weights, _weighted_ranks(weights, x),
                                     _weighted_ranks(weights, y))
    tail = 100 * (1 - confidence) / 2

    def ci(values):
        values = values[np.isfinite(values)]
        return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))] \
            if values.size else [None, None]

    point_p, point_s = _both(x, y)
    return {"n": int(x.size), "units": int(ids.size),
            "pearson": None if math.isnan(point_p) else point_p, "pearson_ci": ci(pearson),
            "spearman": None if math.isnan(point_s) else point_s,
            "spearman_ci": ci(spearman), "confidence": float(confidence),
            "n_boot": int(n_boot), "n_boot_valid": int(np.isfinite(spearman).sum())}


def _standardised(values: np.ndarray) -> np.ndarray | None:
    spread = values.std()
    return None if spread == 0 else (values - values.mean()) / spread


def statistic_pairs(rows: list[dict], name: str):
    """``(statistic, rate, split)`` arrays per codec group, and pooled within-codec z-scores.

    Only rows of codecs with symbols (``entropy_model`` not None) take part;
    ``name`` may be ``"split"`` (the split index itself).
    Returns ``({"CODEC LEVEL": (x, y, splits)}, (x_pooled, y_pooled, splits_pooled))``.
    """
    groups: dict[str, list[tuple[float, float, float]]] = {}
    for r in rows:
        s = r.get("statistics") or {}
        value = r.get("split") if name == "split" else s.get(name)
        if value is not None and r.get("bits_per_token_actual") is not None \
                and s.get("entropy_model") is not None:
            key = f"{r.get('codec')} {r.get('level') or ''}".strip()
            groups.setdefault(key, []).append((float(value), float(r["bits_per_token_actual"]),
                                               float(r.get("split") or 0)))
    arrays = {key: tuple(np.array(triples).T) for key, triples in groups.items()}
    pooled = [(_standardised(x), _standardised(y), k) for x, y, k in arrays.values()
              if x.size >= 2]
    pooled = [(x, y, k) for x, y, k in pooled if x is not None and y is not None]
    if not pooled:
        return arrays, (np.empty(0), np.empty(0), np.empty(0))
    return arrays, tuple(np.concatenate([p[i] for p in pooled]) for i in range(3))


def runs_by_architecture(results: dict) -> dict[str, list[dict]]:
    """The rows of ``results['runs']`` grouped by their ``architecture``."""
    runs = results.get("runs")
    if not isinstance(runs, list):
        raise ValueError("results: expected a dict with a list 'runs' (the results.json "
                         "document)")
    groups: dict[str, list[dict]] = {}
    for row in runs:
        groups.setdefault(str(row.get("architecture")), []).append(row)
    return groups


def correlations(results: dict, n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """Per architecture, the rate against each statistic across splits.

    For each statistic of :data:`STATISTICS`, one record per codec (``group``
    = ``"CODEC LEVEL"``, over that codec's rows at the different splits: one
    row per split, so rows are the unit) and one ``group = POOLED`` over all
    codecs, each codec's rates and statistics standardised across its splits,
    with the *split* as the resampled unit. The rate is
    ``bits_per_token_actual``; only codecs with symbols take part (the rates
    of fp16 and the like are not set by these statistics). A record needs 3
    rows and a statistic that is not constant.

    Returns
    -------
    list of dict
        ``{"architecture", "statistic", "group", "n", "units", "pearson",
        "pearson_ci", "spearman", "spearman_ci", "confidence", "n_boot",
        "n_boot_valid", "direction": "positive", "tautological"}``.
    """
    out = []
    for architecture, rows in runs_by_architecture(results).items():
        for name in STATISTICS:
            groups, (px, py, pk) = statistic_pairs(rows, name)
            base = {"architecture": architecture, "statistic": name, "direction": "positive",
                    "tautological": name in TAUTOLOGICAL}
            for key, (x, y, _) in groups.items():
                if x.size >= 3 and np.ptp(x) > 0:
                    out.append(base | {"group": key}
                               | bootstrap_correlation(x, y, n_boot=n_boot, seed=seed))
            if px.size >= 3 and np.unique(pk).size >= 2:
                out.append(base | {"group": POOLED}
                           | bootstrap_correlation(px, py, n_boot=n_boot, seed=seed,
                                                   clusters=pk))
    return out
