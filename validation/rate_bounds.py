"""What the T8 interval is worth, the documents it would need, and the held-out bound.

See :mod:`rdgap.validation.statistics` (T8 and "Held-out bound").
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

from rdgap.bounds import betting_interval, betting_upper, empirical_bernstein_upper, sample_size

from .symbol_statistics import TARGET_RELATIVE_RADIUS, smallest_sample_size


def _t8_documents_needed(per_document: np.ndarray, rate: float, bound: float,
                         delta: float) -> dict:
    """Documents for the T8 interval to reach radius ``TARGET_RELATIVE_RADIUS · rate``.

    ``hoeffding``: :func:`rdgap.bounds.sample_size` (a guarantee for any variance);
    ``bernstein_projected``: the smallest ``N`` whose two-sided empirical
    Bernstein radius ``sqrt(2 V ln(4/delta) / N) + 7 B ln(4/delta) / (3 (N - 1))``
    (:func:`rdgap.bounds.empirical_bernstein_interval`) reaches it if the
    sample variance stayed at today's ``V`` — a projection, not a bound.
    """
    epsilon = TARGET_RELATIVE_RADIUS * rate
    if not epsilon > 0:
        return {"epsilon": epsilon, "hoeffding": None, "bernstein_projected": None}
    variance, log_term = float(np.var(per_document, ddof=1)), math.log(4.0 / delta)
    return {"epsilon": epsilon, "hoeffding": sample_size(epsilon, delta, bound),
            "bernstein_projected": smallest_sample_size(
                lambda n: math.sqrt(2 * variance * log_term / n)
                + 7 * bound * log_term / (3 * (n - 1)), epsilon)}


def interval_status(lower: float, upper: float, rate: float, exact: bool = False) -> str:
    """What a T8 interval says about the rate.

    ``"exact (fixed-size format)"`` when the format's size is fixed (nothing
    is estimated: the interval is not informative, the rate is known);
    ``"uninformative (contains 0)"`` when the lower end is 0;
    ``"uninformative (wider than the rate)"`` when ``upper - lower > rate``;
    otherwise ``"informative"``.
    """
    if exact:
        return "exact (fixed-size format)"
    if not lower > 0:
        return "uninformative (contains 0)"
    if upper - lower > rate:
        return "uninformative (wider than the rate)"
    return "informative"


def _window_digests(hidden: torch.Tensor) -> set:
    data = hidden.detach().contiguous().numpy()
    return {hashlib.blake2b(w.tobytes(), digest_size=16).digest() for w in data}


def _disjoint(fit_hidden: torch.Tensor, eval_hidden: torch.Tensor) -> dict:
    """How many fit windows reappear, bit for bit, among the eval windows."""
    shared = len(_window_digests(fit_hidden) & _window_digests(eval_hidden))
    return {"fit_windows": int(fit_hidden.shape[0]), "shared_windows": int(shared)}


def _heldout(per_document: np.ndarray, bound: float, delta: float) -> dict:
    """The held-out (test-set) bound on the expected per-document rate.

    ``per_document`` holds one bits-per-token value per evaluation document,
    in document-id order (an order fixed before any rate is seen: the betting
    bounds are predictable, so their value depends on the order, their
    validity does not). With probability ``>= 1 - delta`` each:

    ``heldout_rate_upper``
        One-sided betting upper bound (:func:`rdgap.bounds.betting_upper`,
        Waudby-Smith & Ramdas 2023) on the EXPECTED per-document rate; the
        gating held-out bound. Chosen before seeing the data (not the smaller
        of two bounds, which would spend ``2 delta``).
    ``heldout_rate_interval``
        Two-sided betting interval (:func:`rdgap.bounds.betting_interval`).
    ``heldout_rate_upper_bernstein``
        Maurer & Pontil's one-sided bound on the same values, for comparison.

    All three assume documents i.i.d. and rates in ``[0, bound]`` (``bound``
    = ``heldout_rate_range``, bits per token).
    """
    upper = min(bound, float(betting_upper(per_document, delta, bound)))
    lower_two, upper_two = betting_interval(per_document, delta, bound)
    mean = float(per_document.mean())
    return {"heldout_rate_upper": upper, "heldout_rate_mean": mean,
            "heldout_rate_interval": [float(lower_two), float(upper_two)],
            "heldout_rate_upper_bernstein": min(bound, float(
                empirical_bernstein_upper(per_document, delta, bound))),
            "heldout_rate_range": float(bound),
            "heldout_rate_method": (
                f"betting (Waudby-Smith & Ramdas 2023; hedged capital, predictable plug-in "
                f"bets) over {per_document.size} documents in id order, per-document "
                f"bits/token in [0, B = {bound:.6g}]"),
            "heldout_documents": int(per_document.size),
            "heldout_informative": bool(upper - mean <= TARGET_RELATIVE_RADIUS * mean)}
