"""PNG plots of a ``results.json`` document (matplotlib, Agg backend).

:func:`write_plots` writes, into ``out_dir``:

``rd_<architecture>.png``
    Rate–distortion: bits per token against the task distortion (the row's
    ``distortion``, named by ``distortion_name``: ΔCE for LMs), one panel
    per split, one series per codec (levels joined), with THEORY.md T7's
    predicted curve (``statistics["t7_curve"]``, an approximation) where a
    row has one; a second row of panels shows rate against MSE per token
    with the T6 Gaussian rate–distortion reference (``t6_curve``) where
    available.
``statistics_<architecture>.png``
    Each bound statistic against the rate, one panel each: one colour per
    codec (its rows at the different splits) with its least-squares line, and
    Pearson's r of the within-codec standardised values (what the
    correlation claims use, :func:`rdgap.validation.correlation.correlations`); a
    statistic computed from the codec's own symbols is marked near-tautological.
``rate_prediction_<architecture>.png``
    The rate predicted from fit statistics
    (:mod:`rdgap.validation.rate_prediction`, a prediction) against the
    measured one: per split, each codec's predicted rate–distortion curve
    (rate at the steps × factor against T7's predicted distortion there,
    dashed), its measured point (o), prediction (b) at the calibrated steps
    (x, at the measured distortion) and prediction (a) at T7's step for the
    level (+, at the level); a last panel has predicted against measured rate
    for every row with the ±10 % band.
``actual_vs_estimated.png``
    Actual against estimated bits per token for every row with a likelihood
    model, with ``y = x`` and T2's working limit ``y = 1.005 x + (64 + header)/m``
    at the median window length and header.

Rows without the needed figures are left out of a panel; a figure with no
data at all is not written.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rdgap.codecs.coders import ans  # noqa: E402

from .correlation import (STATISTICS, TAUTOLOGICAL, runs_by_architecture,  # noqa: E402
                          statistic_pairs)
from .rate_prediction_claim import level_value, prediction_rows  # noqa: E402


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-") or "model"


def _save(figure, path: Path, written: list[str]) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    written.append(str(path))


def _series(rows: list[dict], x_of) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        x, y = x_of(row), row.get("bits_per_token_actual")
        if x is not None and y is not None and x > 0 and y > 0:
            series.setdefault(str(row.get("codec")), []).append((float(x), float(y)))
    return series


def _reference(rows: list[dict], key: str, x_key: str):
    """Distinct reference curves of the rows (codecs at one split often share one)."""
    seen = set()
    for row in rows:
        curve = (row.get("statistics") or {}).get(key)
        if curve and curve.get(x_key) and curve.get("rate"):
            signature = tuple(np.round(np.asarray(curve["rate"], float), 3))
            if signature not in seen:
                seen.add(signature)
                yield str(row.get("codec")), curve[x_key], curve["rate"]


def _panel(axis, rows, x_of, curve_key, x_key, label, curve_label, colors) -> bool:
    series = _series(rows, x_of)
    for codec, points in sorted(series.items()):
        points.sort()
        axis.plot(*zip(*points), marker="o", label=codec, color=colors[codec])
    for codec, xs, rates in _reference(rows, curve_key, x_key):
        axis.plot(xs, rates, linestyle="--", linewidth=0.8, color=colors[codec],
                  label=f"{curve_label} ({codec})")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel(label)
    axis.set_ylabel("bits per token")
    return bool(series)


def _distortion(row: dict):
    """The row's task distortion (``distortion``; ``delta_ce_nats`` in schema 1 rows)."""
    value = row.get("distortion")
    return row.get("delta_ce_nats") if value is None else value


def _distortion_label(rows: list[dict]) -> str:
    names = {str(row.get("distortion_name") or "delta_ce_nats") for row in rows}
    return ", ".join(sorted(names))


def _rate_distortion(architecture: str, rows: list[dict], out_dir: Path,
                     written: list[str]) -> None:
    splits = sorted({row.get("split") for row in rows}, key=lambda s: (s is None, s))
    figure, axes = plt.subplots(2, len(splits), figsize=(4.2 * len(splits), 7.5),
                                squeeze=False)
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {codec: cycle[i % len(cycle)] for i, codec in
              enumerate(sorted({str(row.get("codec")) for row in rows}))}
    drawn = False
    for column, split in enumerate(splits):
        chosen = [row for row in rows if row.get("split") == split]
        drawn |= _panel(axes[0, column], chosen, _distortion, "t7_curve", "delta_ce",
                        _distortion_label(chosen), "T7 prediction", colors)
        _panel(axes[1, column], chosen, lambda r: (r.get("statistics") or {}).get("mse"),
               "t6_curve", "mse", "MSE per token", "T6 Gaussian R(D)", colors)
        axes[0, column].set_title(f"{architecture}, split {split}")
        for axis in axes[:, column]:
            if axis.get_legend_handles_labels()[0]:
                axis.legend(fontsize=6)
    if drawn:
        figure.suptitle(f"{architecture}: rate against task distortion (top; values <= 0 "
                        f"not shown on the log scale) and against MSE (bottom)", fontsize=9)
        _save(figure, out_dir / f"rd_{_slug(architecture)}.png", written)
    else:
        plt.close(figure)


def _statistics(architecture: str, rows: list[dict], out_dir: Path,
                written: list[str]) -> None:
    panels = []
    for name in STATISTICS:
        groups, pooled = statistic_pairs(rows, name)
        if sum(g[0].size for g in groups.values()) >= 2:
            panels.append((name, groups, pooled))
    if not panels:
        return
    columns = min(3, len(panels))
    lines = -(-len(panels) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3.6 * lines),
                                squeeze=False)
    for axis in axes.flat[len(panels):]:
        axis.set_visible(False)
    for axis, (name, groups, pooled) in zip(axes.flat, panels):
        for index, (codec, (x, y, _)) in enumerate(sorted(groups.items())):
            color = f"C{index % 10}"
            axis.scatter(x, y, s=14, color=color, label=codec)
            if x.size >= 2 and np.ptp(x) > 0:
                slope, intercept = np.polyfit(x, y, 1)
                grid = np.linspace(x.min(), x.max(), 20)
                axis.plot(grid, slope * grid + intercept, color=color, linewidth=0.8)
        title = name + (" (near-tautological)" if name in TAUTOLOGICAL else "")
        if pooled[0].size >= 3:
            title += (f"  r = {np.corrcoef(*pooled[:2])[0, 1]:.2f} (within codec, "
                      f"{pooled[0].size} rows, {np.unique(pooled[2]).size} splits)")
        axis.set_title(title, fontsize=8)
        axis.set_xlabel(name, fontsize=8)
        axis.set_ylabel("bits per token (actual)", fontsize=8)
        axis.legend(fontsize=5)
    figure.suptitle(f"{architecture}: each codec across splits, least-squares line per codec")
    _save(figure, out_dir / f"statistics_{_slug(architecture)}.png", written)


def _rate_prediction(architecture: str, rows: list[dict], out_dir: Path,
                     written: list[str]) -> None:
    checks = {(c["split"], c["codec"]): c for c in prediction_rows(rows)}
    if not checks:
        return
    splits = sorted({split for split, _ in checks}, key=lambda s: (s is None, s))
    figure, axes = plt.subplots(1, len(splits) + 1, figsize=(4.2 * (len(splits) + 1), 4.2),
                                squeeze=False)
    codecs = sorted({codec for _, codec in checks})
    colors = {codec: f"C{i % 10}" for i, codec in enumerate(codecs)}
    for axis, split in zip(axes[0], splits):
        for row in rows:
            check = checks.get((row.get("split"), row.get("codec")))
            if row.get("split") != split or check is None:
                continue
            color = colors[check["codec"]]
            curve = row["statistics"]["rate_prediction_curve"]
            unit, distortion = row.get("predicted_delta_ce_nats"), _distortion(row)
            if unit and unit > 0:
                axis.plot(unit * np.asarray(curve["factor"]) ** 2, curve["rate"], "--",
                          color=color, linewidth=0.8)
            if check["predicted_at_level"] is not None:
                axis.plot(level_value(row), check["predicted_at_level"], "+", color=color)
            if distortion is not None and distortion > 0:
                axis.plot(distortion, check["measured"], "o", color=color,
                          label=check["codec"])
                axis.plot(distortion, check["predicted"], "x", color=color)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel(_distortion_label([r for r in rows if r.get("split") == split]))
        axis.set_ylabel("bits per token")
        axis.set_title(f"{architecture}, split {split}", fontsize=9)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=6)
    axis = axes[0, -1]
    for codec in codecs:
        points = [(c["measured"], c["predicted"]) for c in checks.values() if c["codec"] == codec]
        axis.scatter(*zip(*points), s=16, color=colors[codec], label=codec, zorder=3)
    top = 1.15 * max(max(c["measured"], c["predicted"]) for c in checks.values())
    grid = np.linspace(0.0, top, 50)
    axis.plot(grid, grid, color="k", linewidth=0.8, label="predicted = measured")
    axis.fill_between(grid, 0.9 * grid, 1.1 * grid, color="0.85", label="±10 %")
    axis.set_xlabel("measured bits per token")
    axis.set_ylabel("predicted bits per token (calibrated steps)")
    axis.legend(fontsize=6)
    figure.suptitle(f"{architecture}: rate predicted from fit statistics (dashed: predicted "
                    f"R-D curve against T7's distortion; o measured, x predicted at the "
                    f"calibrated steps, + predicted at T7's step for the level)", fontsize=8)
    _save(figure, out_dir / f"rate_prediction_{_slug(architecture)}.png", written)


def _actual_vs_estimated(results: dict, out_dir: Path, written: list[str]) -> None:
    rows = [row for row in results["runs"] if row.get("bits_per_token_estimated") is not None]
    if not rows:
        return
    estimated = np.array([row["bits_per_token_estimated"] for row in rows], float)
    actual = np.array([row["bits_per_token_actual"] for row in rows], float)
    tokens = np.median([row["tokens"] / max(row.get("windows") or 1, 1) for row in rows])
    header = float(np.median([row.get("container_bits_per_token") or 0.0 for row in rows]))
    figure, axis = plt.subplots(figsize=(5.5, 5))
    for architecture in sorted({str(row.get("architecture")) for row in rows}):
        mask = np.array([str(row.get("architecture")) == architecture for row in rows])
        axis.scatter(estimated[mask], actual[mask], s=16, label=architecture)
    grid = np.linspace(0.0, max(estimated.max(), actual.max()) * 1.05, 50)
    axis.plot(grid, grid, color="k", linewidth=0.8, label="actual = estimated")
    axis.plot(grid, (1 + ans.RELATIVE_OVERHEAD) * grid + ans.STREAM_OVERHEAD_BITS / tokens
              + header, color="C3", linestyle="--", linewidth=0.8,
              label=f"T2 limit (m = {tokens:.0f} tokens per stream)")
    axis.set_xlabel("estimated bits per token (Σ −log2 q)")
    axis.set_ylabel("actual bits per token (stream bytes)")
    axis.legend(fontsize=7)
    _save(figure, out_dir / "actual_vs_estimated.png", written)


def write_plots(results: dict, out_dir) -> list[str]:
    """Write every plot of the module docstring into ``out_dir``.

    Parameters
    ----------
    results : dict
        The ``results.json`` document (``runs`` rows, with ``statistics``
        where computed).
    out_dir : str or Path
        Folder to write into (created if missing).

    Returns
    -------
    list of str
        Paths of the PNG files written.
    """
    groups = runs_by_architecture(results)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for architecture, rows in groups.items():
        _rate_distortion(architecture, rows, out_dir, written)
        _statistics(architecture, rows, out_dir, written)
        _rate_prediction(architecture, rows, out_dir, written)
    _actual_vs_estimated(results, out_dir, written)
    return written
