"""The rate prediction in a report: per-row errors, prediction (a), the claim, the section.

Reads the ``rate_predicted*`` statistics that :func:`rdgap.validation.rate_prediction.
rate_prediction` puts in each row (see that module for the prediction itself).
"""

from __future__ import annotations

import math

import numpy as np

from .rate_prediction import PREDICTION_TOLERANCE

def level_value(row: dict) -> float | None:
    """The number of a row's level ``"dce<=0.05"`` (None without one)."""
    level = row.get("level")
    if not isinstance(level, str) or "<=" not in level:
        return None
    try:
        return float(level.split("<=", 1)[1])
    except ValueError:
        return None


def prediction_at_level(row: dict) -> float | None:
    """Prediction (a): the predicted rate at T7's step for the row's level, before calibration.

    T7 predicts ΔCE ∝ (step factor)², so T7's step for level ``L`` is the codec's
    step times ``f = sqrt(L / predicted_delta_ce_nats)``; the rate there is read
    off ``rate_prediction_curve`` (log-linear between samples). None outside the
    sampled factors or without the figures.
    """
    curve = (row.get("statistics") or {}).get("rate_prediction_curve")
    level, predicted = level_value(row), row.get("predicted_delta_ce_nats")
    if not curve or level is None or not predicted or predicted <= 0 or level <= 0:
        return None
    factor = math.sqrt(level / predicted)
    factors, rates = np.log(curve["factor"]), np.log(np.maximum(curve["rate"], 1e-300))
    if not factors[0] <= math.log(factor) <= factors[-1]:
        return None
    return float(np.exp(np.interp(math.log(factor), factors, rates)))


def prediction_rows(rows: list[dict]) -> list[dict]:
    """Per row with a prediction: where, measured, both predictions and their errors."""
    out = []
    for row in rows:
        s = row.get("statistics") or {}
        predicted = s.get("rate_predicted")
        if predicted is None or not s.get("rate_actual"):
            continue
        measured = float(s["rate_actual"])
        at_level = prediction_at_level(row)
        level = "" if not row.get("level") else f" {row['level']}"
        out.append({
            "where": f"split {row.get('split')} {row.get('codec')}{level}",
            "architecture": row.get("architecture"), "codec": row.get("codec"),
            "split": row.get("split"), "measured": measured, "predicted": predicted,
            "relative_error": (predicted - measured) / measured,
            "predicted_in_sample": s.get("rate_predicted_in_sample"),
            "predicted_at_level": at_level,
            "relative_error_at_level": None if at_level is None
            else (at_level - measured) / measured,
            "model": s.get("rate_prediction_model"),
            "within_tolerance": abs(predicted - measured) <= PREDICTION_TOLERANCE * measured})
    return out


def rate_prediction_claim(architecture: str, rows: list[dict]) -> dict | None:
    """``rate_prediction[ARCH]`` (prediction, reported, never gating): PASS when the
    prediction at the calibrated steps is within :data:`PREDICTION_TOLERANCE` of the
    measured rate in every row; the numbers give every row, and the reason the worst
    error, where, and what the prediction there does not model."""
    from .claims import _hypothesis, make_claim  # claims imports this module

    checks = prediction_rows(rows)
    if not checks:
        return None
    failures = [c for c in checks if not c["within_tolerance"]]
    worst = max(checks, key=lambda c: abs(c["relative_error"]))
    at_level = [c for c in checks if c["relative_error_at_level"] is not None]
    worst_level = max(at_level, key=lambda c: abs(c["relative_error_at_level"])) \
        if at_level else None
    text = (f"worst {worst['relative_error']:+.1%} at {worst['where']} (predicted "
            f"{worst['predicted']:.1f}, measured {worst['measured']:.1f} bits/token; "
            f"model: {worst['model']})")
    if worst_level is not None:
        text += (f"; at T7's step for the level (before calibration) worst "
                 f"{worst_level['relative_error_at_level']:+.1%} at {worst_level['where']}")
    numbers = {"rows": len(checks), "outside_tolerance": len(failures),
               "tolerance": PREDICTION_TOLERANCE,
               "worst_relative_error": worst["relative_error"], "worst_where": worst["where"],
               "worst_relative_error_at_level": None if worst_level is None
               else worst_level["relative_error_at_level"], "checks": checks}
    return make_claim(
        f"rate_prediction[{architecture}]", failures, numbers, False,
        f"rate predicted from fit statistics within ±{PREDICTION_TOLERANCE:.0%} of the "
        f"measured rate in all {len(checks)} rows: {text}",
        f"rate predicted from fit statistics outside ±{PREDICTION_TOLERANCE:.0%} in "
        f"{len(failures)} of {len(checks)} rows: {text}", kind="prediction",
        hypotheses=[_hypothesis("each channel's symbols follow the codec's family at the "
                                "held-out fit windows' scale (no hyperprior, no token "
                                "context)", None),
                    _hypothesis("evaluation documents from the fit documents' source", None)])


def _percent(value) -> str:
    return "—" if value is None else f"{value:+.1%}"


def prediction_section(runs: list[dict]) -> list[str]:
    """The report's section: per row measured and predicted rates and their errors."""
    checks = prediction_rows(runs)
    if not checks:
        return []
    lines = ["", "## Rate predicted from fit statistics", "",
             "A PREDICTION (`rdgap.validation.rate_prediction`): bits/token from the codec's "
             "steps and second-order statistics of the fit windows, before any entropy model "
             "is fitted (discretised cross-entropy per channel or KLT component, scales of "
             "the held-out fit windows; context codecs: the lag-1 linear-prediction "
             "residual). (b) at the calibrated steps; (a) at T7's step for the level, "
             "before calibration (their gap is T7's distortion-prediction error); "
             "in-sample: (b) with the statistics windows' own scales. Error = "
             "(predicted − measured) / measured; tolerance "
             f"±{PREDICTION_TOLERANCE:.0%}.", "",
             "| architecture | row | measured | predicted (b) | error (b) | predicted (a) "
             "| error (a) | in-sample (b) | what it does not model |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in checks:
        model = str(c["model"] or "")
        missing = model.split("; ", 1)[1] if "not modelled" in model else "—"
        at_level = "—" if c["predicted_at_level"] is None else f"{c['predicted_at_level']:.1f}"
        in_sample = "—" if c["predicted_in_sample"] is None \
            else f"{c['predicted_in_sample']:.1f}"
        lines.append(f"| {c['architecture']} | {c['where']} | {c['measured']:.1f} | "
                     f"{c['predicted']:.1f} | {_percent(c['relative_error'])} | {at_level} | "
                     f"{_percent(c['relative_error_at_level'])} | {in_sample} | "
                     f"{missing.replace('; data scales from the held-out fit windows', '')} |")
    return lines
