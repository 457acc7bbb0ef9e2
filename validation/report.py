"""results.json and report.md: the machine-readable and the readable result.

``results.json`` schema (``schema_version`` 2)::

    schema_version   int     bumped on any incompatible change (2: several
                             architectures, jobs, statistics, claims)
    generator        "rdgap"
    partial          true for one shard's share (file partial-I-of-N.json), false
                     for a complete run or a merge
    shard            {"index", "count"} of a partial result, else null
    shards           (merged results only) how many partial results were merged
    config           the ValidateConfig that ran (architectures, splits or null,
                     split_count, corpus, window_length, windows, batch_size,
                     seed, cache_dir, variants, levels, fit_windows,
                     zstd_symbols_of, jacobian_windows, jacobian_positions, quick_run)
    jobs             every job id of the run, in order
                     ("ARCH/split=K/CODEC[/level=T]", see validation/jobs.py)
    jobs_done        the job ids this file holds rows of
    architectures    one entry per architecture: name, model_type, task,
                     num_layers, width, splits (resolved), metrics (names; the
                     first is the primary distortion), windows, window_length,
                     documents (distinct i.i.d. groups among the eval windows)
    cache            hidden_hits, hidden_misses, hidden_rejected: hidden-state
                     cache entries reused, computed, and found corrupt (recomputed)
    environment      versions of rdgap, torch, transformers, python
    stages_s         wall time of each stage, seconds ("load models", "hidden
                     states", "fit codecs", "code and evaluate", "statistics",
                     "coverage claims", "claims", "total"); summed over shards
                     when merged
    runs             one row per (architecture, split, codec, level):
        job_id                     the job that produced the row
        architecture, model_type, task, split, codec, width, tokens, windows, documents
        level                      null for fixed codecs; "dce<=T" (or "METRIC<=T") for a
                                   reference-codec variant calibrated to that target on
                                   the fit windows
        bits_per_token_actual      8 × stream bytes / tokens (headers included)
        bits_per_token_estimated   likelihood estimate Σ −log2 q / tokens, or null
        saving_vs_fp16_percent     vs 16 × width bits per token
        container_bits_per_token   the part of the actual rate that is header
        distortion_name            the task's primary distortion (e.g. delta_ce_nats)
        distortion, distortion_ci  its mean over documents and 95 % Student-t CI
        metrics                    every task metric: {name: {mean, stderr, ci_low,
                                   ci_high, documents}}
        corpus_metrics             the task's whole-set metrics over all eval windows
                                   (e.g. retrieval_agreement of the sentence encoder;
                                   {} for causal LMs, whose logits are not kept)
        delta_ce_nats (+ _stderr, _ci), kl_nats (+ _ci),
        top1_agreement (+ _ci)     causal-LM metrics (null for other tasks)
        max_abs_error, encode_s, decode_s
        fit_delta_ce_nats          primary distortion on the fit windows at the chosen
                                   steps (or null)
        fit_delta_ce_stderr_nats, calibration_margin
                                   its s.e. over probe documents and the z of the
                                   calibration criterion fit ΔCE + z·s.e. ≤ level
                                   (--calibration-margin; null for fixed codecs)
        predicted_delta_ce_nats    THEORY.md T7's prediction at those steps (or null)
        t2_violations              streams whose payload broke the working tolerance
                                   (bytes ≤ 1.005 × estimate + 64 bits; not a theorem);
                                   null without a likelihood model
        t2_proven_violations       streams above T2's proven length
                                   (validation.stream_length); null where the codec's
                                   coder is not bounded
        t2_proven_smallest_margin_bits  smallest (proven bound − payload) over streams
        statistics                 validation.statistics.codec_statistics of the row's
                                   codec merged with split_statistics of its split
                                   (T3, T4, T6–T10 and T8's rate interval; every key is
                                   documented in validation/statistics.py)
    correlations     (complete results) validation.claims.correlations: per
                     architecture and statistic, Pearson and Spearman of the rate
                     against it with bootstrap CIs
    coverage         (complete results) validation.claims.coverage_claims: the
                     synthetic coverage claims of the bounds, re-run
    claims           (complete results) every named claim {name, status: "PASS" |
                     "FAIL" | "UNDECIDED" (level_holds_on_other_text with nothing
                     measured, a correlation with too few splits; never gating),
                     numbers, reason, gates, kind, hypotheses}; a FAIL of a
                     claim with gates = true makes ``rdgap validate`` / ``rdgap merge``
                     exit 1; kind is "theorem", "bound", "prediction", "coverage" or
                     "statistic" (validation.claims.KINDS); hypotheses is a list of
                     {text, met: true | false | null} (kind and hypotheses added in
                     schema 2 without a bump: readers that ignore them are unaffected)
    plots            file names of the PNG plots written next to results.json

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

from .cap_binding import cap_section
from .levels import levels_section
from .report_claims import (_claims_section, _coverage_section, _fmt,  # noqa: F401
                            _markdown_table, claims_section, failed_gates)

SCHEMA_VERSION = 2
DEFAULT_OUT = "rdgap-results"


def environment() -> dict:
    import torch
    import transformers

    import rdgap

    return {"rdgap": rdgap.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version()}


def _ci(mean, ci) -> str:
    if mean is None:
        return "—"
    if not ci or ci[0] is None:
        return f"{mean:.4f}"
    return f"{mean:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]"


TABLE_COLUMNS = ("architecture", "split", "codec", "level", "bits/token", "est. bits/token",
                 "saving vs fp16", "distortion (95% CI)", "KL nats", "top-1 agree",
                 "whole-set")


def table_rows(runs: list[dict]) -> list[list[str]]:
    return [[r["architecture"], str(r["split"]), r["codec"], r["level"] or "—",
             f"{r['bits_per_token_actual']:.1f}", _fmt(r["bits_per_token_estimated"], 6),
             f"{r['saving_vs_fp16_percent']:.1f}%",
             f"{r['distortion_name']} {_ci(r['distortion'], r['distortion_ci'])}",
             "—" if r["kl_nats"] is None else f"{r['kl_nats']:.2e}",
             "—" if r["top1_agreement"] is None else f"{r['top1_agreement']:.4f}",
             ", ".join(f"{k} {v:.4f}" for k, v in (r.get("corpus_metrics") or {}).items())
             or "—"] for r in runs]


def format_table(runs: list[dict]) -> str:
    """The result table as aligned plain text."""
    rows = [list(TABLE_COLUMNS)] + table_rows(runs)
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report_markdown(results: dict) -> str:
    """report.md: what ran, the result table, the claims, correlations, times and plots."""
    config = results["config"]
    lines = ["# rdgap validate" + (" (quick run)" if config.get("quick_run") else ""), ""]
    if results.get("partial"):
        shard = results["shard"]
        lines += [f"**Partial result**: shard {shard['index']}/{shard['count']} "
                  f"({len(results['jobs_done'])} of {len(results['jobs'])} jobs). Merge all "
                  f"shards with `rdgap merge` for the claims.", ""]
    for arch in results["architectures"]:
        lines.append(f"- **{arch['name']}** ({arch['model_type']}, {arch['task']}, "
                     f"{arch['num_layers']} layers, width {arch['width']}, fp16 = "
                     f"{16 * arch['width']} bits/token): splits {arch['splits']}, "
                     f"{arch['windows']} evaluation windows from {arch['documents']} "
                     f"documents never used for fitting; primary distortion "
                     f"`{arch['metrics'][0]}`"
                     + (f"; task chosen from {arch['chosen_because']}"
                        if arch.get("chosen_because") else "")
                     + (f"; fit on `{arch['corpora']['fit']}`, evaluated on "
                        f"`{arch['corpora']['eval']}`" if arch.get("corpora") else "") + ".")
    lines += ["", "Bits per token count every byte of each stream (header and checksum "
              "included). Distortions are means over documents with 95 % Student-t "
              f"intervals. Corpus `{config['corpus']}` for the text models.", ""]
    lines += _markdown_table(TABLE_COLUMNS, table_rows(results["runs"]))
    lines += levels_section(results)  # rdgap.validation.levels: levels met, refused codecs
    lines += cap_section(results)  # rdgap.validation.cap_binding: how often the cap bound
    lines += claims_section(results)
    plots = results.get("plots") or []
    if plots:
        lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in plots]
    lines += ["", "## Time per stage", ""]
    lines += _markdown_table(("stage", "seconds"), [[name, f"{seconds:.1f}"] for name, seconds
                                                    in results["stages_s"].items()])
    cache = results.get("cache") or {}
    env = results["environment"]
    lines += ["", f"Hidden-state cache: {cache.get('hidden_hits', 0)} entries reused, "
                  f"{cache.get('hidden_misses', 0)} computed, {cache.get('hidden_rejected', 0)} "
                  f"rejected as corrupt. rdgap {env['rdgap']}, torch {env['torch']}, "
                  f"transformers {env['transformers']}, Python {env['python']}; results schema "
                  f"version {results['schema_version']}.", ""]
    return "\n".join(lines)


def _atomic_write(path: Path, text: str) -> None:
    handle, staging = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o666 & ~umask)  # mkstemp's 0600 would hide the results from others
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def _ours(path: Path) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("generator") == "rdgap"
    except (ValueError, UnicodeDecodeError, AttributeError, OSError):
        return False


def _output_folder(out: str | os.PathLike) -> Path:
    folder = Path(out).expanduser()
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"out: {folder} exists and is not a folder; expected a folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_results(results: dict, out: str | os.PathLike, plots: bool = True) -> tuple[Path, Path]:
    """Write results.json, report.md and (for complete results) the PNG plots into ``out``.

    Raises
    ------
    FileExistsError
        If ``out`` already holds a results.json or report.md that rdgap did not
        write: nothing of the user's is overwritten.
    """
    folder = _output_folder(out)
    json_path, md_path = folder / "results.json", folder / "report.md"
    ours = json_path.exists() and _ours(json_path)
    if json_path.exists() and not ours:
        raise FileExistsError(f"out: {json_path} exists and was not written by rdgap; "
                              f"choose another folder with --out")
    if md_path.exists() and not ours:
        raise FileExistsError(f"out: {md_path} exists and was not written by rdgap; "
                              f"choose another folder with --out")
    if plots and not results.get("partial"):
        from .plots import write_plots

        results["plots"] = [Path(path).name for path in write_plots(results, folder)]
    _atomic_write(json_path, json.dumps(results, indent=2, allow_nan=False) + "\n")
    _atomic_write(md_path, report_markdown(results))
    return json_path, md_path


PARTIAL_PATTERN = "partial-*-of-*.json"


def write_partial(results: dict, out: str | os.PathLike) -> Path:
    """Write one shard's partial result as ``partial-I-of-N.json`` into ``out``."""
    if not results.get("partial"):
        raise ValueError("results: expected a partial result (run with a shard)")
    folder = _output_folder(out)
    shard = results["shard"]
    path = folder / f"partial-{shard['index']}-of-{shard['count']}.json"
    if path.exists() and not _ours(path):
        raise FileExistsError(f"out: {path} exists and was not written by rdgap")
    _atomic_write(path, json.dumps(results, indent=2, allow_nan=False) + "\n")
    return path


def read_partials(sources: list[str | os.PathLike]) -> list[dict]:
    """The partial results in the given folders (their ``partial-*-of-*.json``) or files.

    Raises
    ------
    FileNotFoundError
        If a source does not exist or a folder holds no partial result.
    ValueError
        If a file is not a partial result written by rdgap.
    """
    paths: list[Path] = []
    for source in sources:
        source = Path(source).expanduser()
        if source.is_dir():
            found = sorted(source.glob(PARTIAL_PATTERN))
            if not found:
                raise FileNotFoundError(f"sources: {source} holds no {PARTIAL_PATTERN} "
                                        f"(written by rdgap validate --shard)")
            paths += found
        elif source.is_file():
            paths.append(source)
        else:
            raise FileNotFoundError(f"sources: {source} does not exist; expected a folder "
                                    f"or file written by rdgap validate --shard")
    partials = []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"sources: {path} is not JSON ({error})") from None
        if not isinstance(data, dict) or data.get("generator") != "rdgap" \
                or not data.get("partial"):
            raise ValueError(f"sources: {path} is not a partial result written by rdgap "
                             f"validate --shard")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"sources: {path} has results schema version "
                             f"{data.get('schema_version')}; this rdgap reads version "
                             f"{SCHEMA_VERSION}")
        partials.append(data)
    return partials
