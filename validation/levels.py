"""report.md sections on what a run's calibration held and what it could not code.

- **Levels on evaluation documents**: every fitted row's level (calibrated on
  fit documents), the corpora it was fitted and evaluated on, and the
  distortion the evaluation documents actually show (mean with its 95 %
  interval over documents). A row is flagged ``MISSED`` when the whole
  interval lies above its level: the calibration did not carry over (e.g.
  from news to another text source, ``--eval-corpus``).
- **Codecs that could not code a state**: a codec that refuses a hidden state
  (fp16 beyond ±65504, for example) gets no result row but an entry here with
  its reason; the run goes on.
"""

from __future__ import annotations


def _interval(row: dict) -> str:
    low, high = row["distortion_ci"]
    if low is None:
        return f"{row['distortion']:.4g}"
    return f"{row['distortion']:.4g} [{low:.4g}, {high:.4g}]"


def levels_section(results: dict) -> list[str]:
    """Markdown lines of both sections (empty when there is nothing to say)."""
    lines: list[str] = []
    fitted = [row for row in results.get("runs") or [] if row.get("level_status")]
    if fitted:
        missed = sum(row["level_status"] == "missed" for row in fitted)
        lines += ["", "## Levels on evaluation documents", "",
                  "Each fitted codec is calibrated to its level on fit documents; the "
                  "evaluation documents (never used for fitting) show the distortion below, "
                  "mean and 95 % interval over documents. **met**: the whole interval is at "
                  "or below the level; **MISSED**: the whole interval is above it; "
                  f"**unresolved**: the interval contains the level. {missed} of "
                  f"{len(fitted)} rows missed their level.", "",
                  "| architecture | split | codec | level | fit corpus | eval corpus | "
                  "eval distortion (95% CI) | status |", "|---|---|---|---|---|---|---|---|"]
        for row in fitted:
            status = "MISSED" if row["level_status"] == "missed" else row["level_status"]
            lines.append(f"| {row['architecture']} | {row['split']} | {row['codec']} | "
                         f"{row['distortion_name']} ≤ {row['level_target']:g} | "
                         f"{row.get('fit_corpus') or '—'} | {row.get('eval_corpus') or '—'} | "
                         f"{_interval(row)} | {status} |")
    refused = results.get("refused") or []
    if refused:
        lines += ["", "## Codecs that could not code a state", "",
                  "These codecs refused a hidden state of their job, which therefore has no "
                  "row; the run went on.", "", "| architecture | split | codec | reason |",
                  "|---|---|---|---|"]
        for entry in refused:
            reason = str(entry["reason"]).replace("|", "\\|")
            lines.append(f"| {entry['architecture']} | {entry['split']} | {entry['codec']} | "
                         f"{reason} |")
    return lines
