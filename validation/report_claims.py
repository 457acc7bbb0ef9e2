"""The claims part of report.md: the claims table, coverage, the paper's claims, rates, bounds.

:func:`claims_section` renders everything :mod:`rdgap.validation.claims` and
:mod:`rdgap.validation.paper_claims` say about a complete ``results.json``;
:mod:`rdgap.validation.report` puts it after the result table.
"""

from __future__ import annotations

from .claims import KINDS
from .paper_claims import paper_claims
from .rate_prediction_claim import prediction_section


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _markdown_table(columns, rows) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + \
        ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |"
         for row in rows]


def _numbers(numbers: dict, limit: int = 6) -> str:
    """A short ``key=value`` rendering of a claim's scalar numbers."""
    parts = []
    for key, value in numbers.items():
        if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
            parts.append(f"{key}={_fmt(value)}")
        elif isinstance(value, (list, tuple)) and len(value) == 2 \
                and all(isinstance(v, (int, float)) or v is None for v in value):
            parts.append(f"{key}=[{_fmt(value[0])}, {_fmt(value[1])}]")
        if len(parts) == limit:
            break
    return ", ".join(parts)


def failed_gates(results: dict) -> list[dict]:
    """The gating claims that failed (their failure makes the command exit 1)."""
    return [c for c in results.get("claims") or [] if c.get("gates") and c["status"] != "PASS"]


def _hypotheses(claim: dict) -> str:
    marks = {True: "met", False: "NOT met", None: "not checked"}
    return "; ".join(f"{h['text']} ({marks[h['met']]})" for h in claim.get("hypotheses") or []) \
        or "—"


def claims_section(results: dict) -> list[str]:
    claims = results.get("claims")
    if claims is None:
        return []
    failed = failed_gates(results)
    verdict = (f"**{len(failed)} gating claim(s) FAILED** — the run exits with status 1: "
               + "; ".join(f"`{c['name']}`: {c['reason']}" for c in failed)) if failed else \
        "Every gating claim passed."
    passed = sum(c["status"] == "PASS" for c in claims)
    gating = [c for c in claims if c.get("gates")]
    lines = ["", "## Claims", "",
             f"{passed} of {len(claims)} claims PASS ({sum(c['status'] == 'PASS' for c in gating)}"
             f" of {len(gating)} gating). {verdict}", "",
             "Kinds: a **theorem** holds for every sample and fails only on a bug or a "
             "miscounted byte; a **bound** holds with probability ≥ 1 − δ under the "
             "hypotheses listed beside it (a bound whose hypothesis this run breaks FAILs); "
             "a **prediction** is an approximation that can fail on real data without a bug "
             "(that is what it tests); a **coverage** test re-runs a bound on a synthetic "
             "source where it is nearly tight (exact binomial test, false alarm ≤ 0.01); a "
             "**statistic** is reported and never gates. See docs/claims.md.", ""]
    lines += _markdown_table(("claim", "kind", "status", "gates", "why", "hypotheses (met?)",
                              "numbers"), [
        [f"`{c['name']}`", KINDS.get(c.get("kind"), "—"), c["status"],
         "yes" if c.get("gates") else "no", c.get("reason", ""), _hypotheses(c),
         _numbers(c.get("numbers") or {})] for c in claims])
    lines += _coverage_section(claims) + _paper_section(results)
    lines += _rates_section(results) + _bounds_section(results.get("runs") or [])
    lines += _heldout_section(results.get("runs") or [])
    lines += prediction_section(results.get("runs") or [])
    lines += other_text_section(results)
    correlations = results.get("correlations") or []
    if correlations:
        lines += ["", "## Rate against each statistic", "",
                  "Per codec (its rows at the different splits) and pooled within codec; "
                  "the pooled intervals resample whole splits (each split's codec rows "
                  "together: the independent unit), and `units` counts the splits. "
                  "95 % percentile bootstrap intervals. Statistics computed from the codec's "
                  "own symbols at its steps are near-tautological against its rate.", ""]
        lines += _markdown_table(
            ("architecture", "statistic", "group", "rows", "units", "Pearson r [CI]",
             "Spearman ρ [CI]"),
            [[r["architecture"], r["statistic"] + (" (near-tautological)"
                                                   if r.get("tautological") else ""),
              r.get("group", "—"), r["n"], r.get("units", "—"),
              f"{_fmt(r['pearson'], 3)} [{_fmt(r['pearson_ci'][0], 3)}, "
              f"{_fmt(r['pearson_ci'][1], 3)}]",
              f"{_fmt(r['spearman'], 3)} [{_fmt(r['spearman_ci'][0], 3)}, "
              f"{_fmt(r['spearman_ci'][1], 3)}]"] for r in correlations])
    return lines


def _coverage_section(claims: list[dict]) -> list[str]:
    rows = [[f"`{c['name']}`", _fmt((c.get("numbers") or {}).get("coverage")),
             _fmt((c.get("numbers") or {}).get("target")),
             _fmt((c.get("numbers") or {}).get("critical_factor"), 3),
             _fmt((c.get("numbers") or {}).get("min_slack")), c["status"]]
            for c in claims if c["name"].startswith("coverage[")]
    if not rows:
        return []
    return ["", "## Coverage of the bounds on sources where they are nearly tight", "",
            "Critical factor: the factor by which the radius could shrink before the observed "
            "coverage fell below its target (near 1: a tight experiment that would catch a "
            "smaller radius; near 0: a vacuous one, which FAILs as insensitive below 0.5). "
            "Min slack: the smallest radius − deviation over the trials (negative: the "
            "bound missed in some trials, as a tight bound must at rate δ).", ""] + \
        _markdown_table(("experiment", "coverage", "target", "critical factor", "min slack",
                         "status"), rows)


def _paper_section(results: dict) -> list[str]:
    if not results.get("runs"):
        return []
    records = paper_claims(results)
    return ["", "## The reference paper's claims, checked", "",
            "Each empirical claim of the paper with this run's verdict. The independent unit "
            "is the split (its codec rows share its hidden states), or the architecture for "
            "the cross-architecture rows; a verdict needs at least 4 units and a 95 % "
            "bootstrap interval (units resampled) that excludes 0, otherwise it is "
            "*undecided at this sample size*.", ""] + _markdown_table(
        ("claim", "scope", "verdict", "independent units", "numbers"),
        [[r["claim"], r["scope"], r["verdict"], f"{r['units']} {r['unit']}", r["numbers"]]
         for r in records])


def _count(value) -> str:
    return "—" if value is None else f"{value:,}"


def _rates_section(results: dict) -> list[str]:
    """The numbers behind gibbs_sample_floor and rate_within_bounds, one row per check."""
    rows = []
    for claim in results.get("claims") or []:
        if not claim["name"].startswith("rate_within_bounds["):
            continue
        architecture = claim["name"][len("rate_within_bounds["):-1]
        for c in (claim.get("numbers") or {}).get("checks", []):
            rows.append([architecture, c["where"], c["entropy_model"], _fmt(c.get("floor"), 6),
                         _fmt(c.get("estimated"), 6), f"{c['rate']:.1f}",
                         f"{c['upper_limit']:.1f}",
                         f"{c['upper_limit'] - c['rate']:.1f}",
                         "FAIL" if c["fails"] else "PASS"])
    if not rows:
        return []
    return ["", "## Measured rates against their bounds", "",
            "Lower: the plug-in marginal entropies of the codec's own symbols on the same "
            "windows (factorized codecs; the codec's estimate of them is never below, "
            "`gibbs_sample_floor`). Upper: the T3 diagonal bound at the codec's steps on "
            "the same documents + T2 (0.5 % + 64 bits per stream + header). Both at the "
            "measured rate, in bits per token.", ""] + _markdown_table(
        ("architecture", "row", "entropy model", "plug-in floor", "estimate", "measured",
         "upper limit", "headroom", "check"), rows)


def _bounds_section(runs: list[dict]) -> list[str]:
    """What the PAC bounds (T8, the held-out bound, the T4 proven floor) say, and why."""
    rows = []
    for r in runs:
        s = r.get("statistics") or {}
        if s.get("entropy_model") is None or s.get("rate_interval") is None:
            continue
        parts = s.get("rate_interval_bound_parts") or {}
        bound = s["rate_interval_bound"]
        t8 = s.get("t8_documents_needed") or {}
        low, high = s["rate_interval"]
        floor = s.get("t4_marginal_floor_plugin")
        rows.append([
            r["architecture"], str(r["split"]), r["codec"], f"{s['rate_actual']:.1f}",
            f"{bound:,.0f} ({100 * parts.get('escape', 0.0) / bound:.0f} %)",
            f"[{low:,.0f}, {high:,.0f}]: {s.get('rate_interval_status') or '—'}",
            f"{_count(t8.get('hoeffding'))} / {_count(t8.get('bernstein_projected'))}",
            "—" if s.get("heldout_rate_upper") is None else
            f"{s['heldout_rate_upper']:,.1f}",
            "—" if floor is None else
            (f"{s['t4_marginal_floor_lower']:,.1f}" if s.get("t4_marginal_floor_lower")
             is not None else s.get("t4_marginal_floor_status") or "—"),
            _count(s.get("t4_documents_needed"))])
    if not rows:
        return []
    return ["", "## How informative the PAC bounds are", "",
            "Per document, the rate lies in [0, B], B the worst case of the stream format "
            "(every value escaped: 40 raw bits + the escape entry; the share of B due to "
            "escapes in brackets). T8: the empirical Bernstein interval over the N eval "
            "documents for the mean over documents of per-document bits/token (equal to "
            "total bits / total tokens here: equal-length windows); its range term "
            "7 B ln(4/δ) / (3 (N − 1)) makes it contain 0 when N is small — *uninformative*; "
            "fixed-size formats are *exact* (nothing to estimate). Held-out: the one-sided "
            "test-set bound on the EXPECTED per-document rate (w.p. ≥ 1 − δ). T4: the proven "
            "lower floor on Σ_j H(S_j), or *uninformative* when its radius reaches the "
            "plug-in (one document moves the plug-in by up to n·log2(e N m) bits per token, "
            "so the radius shrinks with the number of documents only). \"Documents needed\" "
            "are the inversions of THEORY.md T8 for a radius of 10 % of the estimate "
            "(Hoeffding: a guarantee for any variance; Bernstein: at today's sample "
            "variance, a projection).", ""] \
        + _markdown_table(("architecture", "split", "codec", "rate", "B (escapes)",
                           "T8 interval: status", "T8 docs needed (Hoeffding / Bernstein)",
                           "held-out E rate ≤", "T4 proven floor", "T4 docs needed"), rows)


def _heldout_row(r: dict) -> list[str] | None:
    s = r.get("statistics") or {}
    interval = s.get("heldout_rate_interval")
    if s.get("entropy_model") is None or interval is None:
        return None
    mean, bound, (low, high) = s["heldout_rate_mean"], s["heldout_rate_range"], interval
    student = s.get("rate_ci_student_t") or [None, None]
    relative = (high - low) / 2 / mean if mean > 0 else float("inf")
    status = ("informative (±10 %)" if relative <= 0.1 else
              "uninformative: B is the escape range" if (high - low) > mean else
              "wider than ±10 %")
    return [r["architecture"], str(r["split"]), r["codec"],
            f"{s['heldout_documents']} × {s.get('tokens_per_window')}", f"{bound:,.0f}",
            f"{mean:,.1f}", f"[{low:,.1f}, {high:,.1f}] (±{100 * relative:.0f} %)",
            f"{s['heldout_rate_upper']:,.1f}",
            f"{s['heldout_rate_upper_bernstein']:,.1f}",
            "—" if student[0] is None else f"[{student[0]:,.1f}, {student[1]:,.1f}]", status]


def _heldout_section(runs: list[dict]) -> list[str]:
    """The held-out rate per row: the proven betting interval beside the Student-t one."""
    rows = [row for row in map(_heldout_row, runs) if row is not None]
    if not rows:
        return []
    confidence = float((runs[0].get("statistics") or {}).get("confidence") or 0.95)
    return ["", "## Held-out rate: proven interval and asymptotic interval", "",
            f"One value per evaluation document (bits/token over its windows; N documents × "
            f"the window length in tokens). **Proven**: the betting confidence interval "
            f"(Waudby-Smith & Ramdas 2023; hedged capital, predictable plug-in bets, Ville's "
            f"inequality) for the EXPECTED per-document rate on new documents of the same "
            f"source, w.p. ≥ {confidence:.2g}, valid for i.i.d. documents with rates in "
            f"[0, B] (B the stream format's worst case, shown); the one-sided bound "
            f"(gating claim `heldout_rate_bound`) and Maurer–Pontil's at the same level "
            f"beside it. **Student-t**: asymptotic (assumes a near-normal mean), not a "
            f"guarantee. Without a rate cap in the codec, B is every value escaped (tens of "
            f"thousands of bits/token), and no method can be informative at tens of "
            f"documents (THEORY.md T8): such rows say so.", ""] + _markdown_table(
        ("architecture", "split", "codec", "documents × tokens", "B", "mean",
         "proven interval (betting)", "E rate ≤ (betting)", "E rate ≤ (Bernstein)",
         "Student-t (asymptotic)", "status"), rows)


_claims_section = claims_section


def _level_cell(bits, mean, stderr, level) -> str:
    """``bits · mean ± s.e.``, in bold with a cross when mean > level + 2 s.e."""
    if mean is None:
        return "—"
    spread = "" if stderr is None else f" ± {stderr:.3g}"
    text = f"{bits:,.1f} · {mean:.3g}{spread}"
    if level is not None and stderr is not None and mean > level + 2.0 * stderr:
        return f"**{text}** ✗"
    return text


def other_text_section(results: dict) -> list[str]:
    """Fitted rows on their evaluation documents beside each other corpus of the run
    (:mod:`rdgap.validation.other_text`; claim ``level_holds_on_other_text``)."""
    corpora = list(results.get("other_corpora") or [])
    rows = [r for r in results.get("runs") or [] if "other_text" in r]
    if not rows:
        return []
    table = []
    for r in rows:
        level = r.get("level_target")
        primary = (r.get("metrics") or {}).get(r.get("distortion_name")) or {}
        cells = [r["architecture"], str(r["split"]), r["codec"], r.get("level") or "—",
                 _level_cell(r["bits_per_token_actual"], r.get("distortion"),
                             primary.get("stderr"), level)]
        for corpus in corpora:
            found = (r.get("other_text") or {}).get(corpus)
            if found is None:
                cells.append(r.get("other_text_skipped") or "not measured")
            elif "refused" in found:
                cells.append(f"refused: {found['refused']}")
            else:
                cells.append(_level_cell(found["bits_per_token_actual"], found["distortion"],
                                         found["distortion_stderr"], level) +
                             f" (N = {found['documents']})")
        table.append(cells)
    return ["", "## The level on other text", "",
            "Every fitted row (calibrated to its level on fit documents of "
            f"{rows[0].get('fit_corpus') or 'the fit corpus'}) on its evaluation documents "
            "and on the evaluation documents of each other corpus: bits/token (real bytes) · "
            "mean primary distortion ± s.e. over N documents (one window each, same length). "
            "Bold with ✗: above level + 2 s.e. (claim `level_holds_on_other_text`, a "
            "*prediction*). Baselines are not measured on other text (no level)." +
            ("" if corpora else " No other corpus was evaluated in this run."), ""] + \
        _markdown_table(("architecture", "split", "codec", "level",
                         f"evaluation ({rows[0].get('eval_corpus') or 'eval'})",
                         *corpora), table)
