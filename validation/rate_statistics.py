"""T8 and the held-out bound of one codec's measured rate (see :mod:`.statistics`, "T8"
and "Held-out bound", for every key): per-document rates, the empirical Bernstein
interval, the betting bound on a new document's expected rate, and the practical
Student-t interval beside them."""

from __future__ import annotations

import numpy as np
import torch

from rdgap.bounds import rate_interval

from .distortion import document_estimate
from .rate_bounds import _disjoint, _heldout, _t8_documents_needed, interval_status
from .stream_range import _FIXED_BITS


def _per_document(values: np.ndarray, tokens: int, documents: np.ndarray) -> np.ndarray:
    """Bits per token of each document from per-window bits (windows of ``tokens``)."""
    _, inverse = np.unique(documents, return_inverse=True)
    return np.bincount(inverse, weights=values) / (np.bincount(inverse) * tokens)


def _rate_statistics(codec, kind: str | None, confidence: float, bits: np.ndarray,
                     documents: np.ndarray, estimated: np.ndarray | None, tokens: int,
                     parts: dict | None, fit_hidden: torch.Tensor,
                     eval_hidden: torch.Tensor) -> dict:
    """The rate figures of :func:`.statistics.codec_statistics` (its keys up to
    ``t8_documents_needed``): the measured and estimated rate, T8's interval, the held-out
    bound and the practical Student-t interval, from checked inputs."""
    delta = 1.0 - float(confidence)
    windows = bits.size
    bound = None if parts is None else float(sum(parts.values()))  # stream_bound_bits
    per_document = _per_document(bits, tokens, documents)
    out: dict = {
        "entropy_model": kind, "confidence": float(confidence), "documents": int(
            per_document.size), "windows": int(windows), "tokens_per_window": int(tokens),
        "rate_actual": float(bits.sum() / (windows * tokens)),
        "rate_estimated": None if estimated is None else float(estimated.sum() / (windows
                                                                                  * tokens)),
        "rate_document_mean": float(per_document.mean()),
        "rate_document_max": float(per_document.max()),
        "rate_interval": None, "rate_interval_bound": bound, "rate_interval_method": None,
        "rate_interval_status": None, "rate_interval_informative": None, "subsampled": False,
        "heldout_rate_upper": None, "heldout_rate_mean": None, "heldout_documents": None,
        "heldout_informative": None, "heldout_rate_interval": None,
        "heldout_rate_upper_bernstein": None, "heldout_rate_range": None,
        "heldout_rate_method": None,
        "heldout_disjoint": _disjoint(fit_hidden, eval_hidden),
        "rate_ci_student_t": None,
        "rate_interval_bound_parts": parts,
        "t8_documents_needed": None,
    }
    if per_document.size >= 2:  # the practical interval (assumes near-normal means)
        t_interval = document_estimate(bits / tokens, documents, confidence=float(confidence))
        out["rate_ci_student_t"] = [t_interval.low, t_interval.high]
    if bound is not None and per_document.max() > bound:  # never expected: say so, go on
        out["rate_interval_method"] = (f"none: a document's rate {per_document.max():.6g} "
                                       f"exceeds the computed worst case {bound:.6g}")
    elif bound is not None and per_document.size >= 2:
        interval = rate_interval(per_document, delta, bound, method="bernstein")
        status = interval_status(interval.lower, interval.upper, out["rate_actual"],
                                 exact=parts is not None and "payload" in parts
                                 and codec.codec_id in _FIXED_BITS)
        out.update(rate_interval=[interval.lower, interval.upper],
                   rate_interval_method=f"empirical Bernstein (T8) over {interval.n} documents, "
                                        f"per-document bits/token in [0, {bound:.6g}]; bounds "
                                        f"the mean over documents of per-document bits/token",
                   rate_interval_status=status,
                   rate_interval_informative=status == "informative")
        out["t8_documents_needed"] = _t8_documents_needed(per_document, out["rate_actual"],
                                                          bound, delta)
        out.update(_heldout(per_document, bound, delta))
    return out
