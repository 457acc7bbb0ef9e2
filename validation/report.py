"""results.json and report.md: the machine-readable and the readable result.

``results.json`` schema (``schema_version`` 1)::

    schema_version   int     bumped on any incompatible change
    generator        "rdgap"
    config           the ValidateConfig that ran, with the resolved splits
    model, corpus    what was measured
    environment      versions of rdgap, torch, transformers, python
    stages_s         wall time of each stage, seconds
    runs             one row per (architecture, split, codec, level):
        architecture, model_type, task, split, codec, level, width, tokens,
        windows, documents,
        level                      null for fixed codecs; "dce<=T" for a reference-codec
                                   variant calibrated to ΔCE ≤ T on the fit windows
        bits_per_token_actual      8 × stream bytes / tokens (headers included)
        bits_per_token_estimated   likelihood estimate Σ −log2 q / tokens, or null
        saving_vs_fp16_percent     vs 16 × width bits per token
        container_bits_per_token   the part of the actual rate that is header
        delta_ce_nats (+ _stderr, _ci), kl_nats (+ _ci),
        top1_agreement (+ _ci)     means over documents, 95 % Student-t CI
        max_abs_error, encode_s, decode_s
        fit_delta_ce_nats          ΔCE on the fit windows at the chosen steps (or null)
        predicted_delta_ce_nats    THEORY.md T7's prediction at those steps (or null)
        t2_violations              streams whose payload broke T2's working form
                                   (bytes ≤ 1.005 × estimate + 64 bits); null without
                                   a likelihood model

Files are written atomically. An existing ``results.json`` in the output
folder is replaced only when rdgap wrote it (its ``generator`` is ``"rdgap"``);
anything else there is left alone and the write is refused.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

SCHEMA_VERSION = 1
DEFAULT_OUT = "rdgap-results"


def environment() -> dict:
    import torch
    import transformers

    import rdgap

    return {"rdgap": rdgap.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version()}


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _ci(mean, ci) -> str:
    if ci[0] is None:
        return f"{mean:.4f}"
    return f"{mean:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]"


TABLE_COLUMNS = ("split", "codec", "level", "bits/token", "est. bits/token", "saving vs fp16",
                 "ΔCE nats (95% CI)", "KL nats", "top-1 agree")


def table_rows(runs: list[dict]) -> list[list[str]]:
    return [[str(r["split"]), r["codec"], r["level"] or "—", f"{r['bits_per_token_actual']:.1f}",
             _fmt(r["bits_per_token_estimated"], 6), f"{r['saving_vs_fp16_percent']:.1f}%",
             _ci(r["delta_ce_nats"], r["delta_ce_nats_ci"]), f"{r['kl_nats']:.2e}",
             f"{r['top1_agreement']:.4f}"] for r in runs]


def format_table(runs: list[dict]) -> str:
    """The result table as aligned plain text."""
    rows = [list(TABLE_COLUMNS)] + table_rows(runs)
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report_markdown(results: dict) -> str:
    """report.md: what ran, the table, and the stage times."""
    model, corpus = results["model"], results["corpus"]
    lines = [
        "# rdgap validate",
        "",
        f"Model **{model['name']}** ({model['model_type']}, {model['num_layers']} layers, "
        f"width {model['width']}); corpus `{corpus['source']}`: {corpus['windows']} "
        f"evaluation windows of {corpus['window_length']} tokens, one per document, from "
        f"documents never used for fitting. Bits per token count every byte of each "
        f"stream (header and checksum included); fp16 = {16 * model['width']} bits/token. "
        f"Distortions are means over documents with 95 % Student-t intervals.",
        "",
        "| " + " | ".join(TABLE_COLUMNS) + " |",
        "|" + "---|" * len(TABLE_COLUMNS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results["runs"])]
    lines += ["", "## Time per stage", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in results["stages_s"].items()]
    env = results["environment"]
    lines += ["", f"rdgap {env['rdgap']}, torch {env['torch']}, transformers "
                  f"{env['transformers']}, Python {env['python']}; results schema version "
                  f"{results['schema_version']}.", ""]
    return "\n".join(lines)


def _atomic_write(path: Path, text: str) -> None:
    handle, staging = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def write_results(results: dict, out: str | os.PathLike) -> tuple[Path, Path]:
    """Write results.json and report.md into ``out`` (created if missing).

    Raises
    ------
    FileExistsError
        If ``out`` already holds a results.json or report.md that rdgap did not
        write: nothing of the user's is overwritten.
    """
    folder = Path(out).expanduser()
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"out: {folder} exists and is not a folder; expected a folder")
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "results.json", folder / "report.md"
    ours = False
    if json_path.exists():
        try:
            ours = json.loads(json_path.read_text(encoding="utf-8")).get("generator") == "rdgap"
        except (ValueError, UnicodeDecodeError, AttributeError):
            ours = False
        if not ours:
            raise FileExistsError(f"out: {json_path} exists and was not written by rdgap; "
                                  f"choose another folder with --out")
    if md_path.exists() and not ours:
        raise FileExistsError(f"out: {md_path} exists and was not written by rdgap; "
                              f"choose another folder with --out")
    _atomic_write(json_path, json.dumps(results, indent=2, allow_nan=False) + "\n")
    _atomic_write(md_path, report_markdown(results))
    return json_path, md_path
