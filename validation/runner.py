"""The validate job: every codec at every split, measured on real data.

The run is a list of independent jobs (:mod:`.jobs`): one per architecture ×
split × codec (× level for fitted codecs). For each job the runner reports the
real bytes per token, the likelihood estimate where the codec has one, the
task's distortions with confidence intervals over documents, and the bound
statistics of :mod:`.statistics`. Hidden states at each split come from the
on-disk cache of :mod:`.cache` when a previous run computed them.

:func:`run_validation` is the pipeline of stages, each in its own module:

1. load models (:class:`.architecture.Architecture` per task of :class:`.config.ValidateConfig`);
2. hidden states at every split (:meth:`.architecture.Architecture.hidden_states`);
3. fit codecs (:func:`.fit_stage.fit_job`);
4. code and evaluate (:func:`.evaluation.evaluate`, coding in :mod:`.coding`);
5. statistics (:func:`.row_statistics.add_statistics`);
6. other text (:func:`.other_text.evaluate_other_text`);
7. rows (:func:`.rows.job_rows`) and the results document, timed by :mod:`.cost_model`.

It runs every job, or the share of one shard (``shard=(I, N)``) and then returns a
*partial* result that :func:`.merge.merge_results` combines with the other shards'
into the full result; :func:`finalize` adds the claims, correlations and coverage
checks.
"""

from __future__ import annotations

import time
from dataclasses import asdict

from tqdm.auto import tqdm

from rdgap.codecs.base import HiddenStateCodec
from rdgap.codecs.baselines import baseline_codecs

from . import evaluation, other_text
from .architecture import Architecture, describe
from .cache import HiddenCache
from .coding import CodedCodec
from .config import FITTED_VARIANTS, ValidateConfig, spread_splits
from .cost_model import Stages, Work
from .evaluation import CORPUS_OUTPUT_LIMIT
from .fit_stage import fit_job
from .jobs import Job, make_jobs, shard as take_shard
from .merge import MERGE_KEYS, merge_results
from .row_statistics import add_statistics
from .rows import RunRow, job_rows, level_status, refusals
from .tasks import load_task


def run_validation(config: ValidateConfig, codecs: list[HiddenStateCodec] | None = None,
                   progress: bool = True, shard: tuple[int, int] | None = None) -> dict:
    """Run the job (or one shard of it) and return the ``results.json`` document.

    Parameters
    ----------
    config : ValidateConfig
    codecs : list of HiddenStateCodec, optional
        Fixed codecs run at every split (default: :func:`baseline_codecs`).
    progress : bool
        Show a progress bar per stage.
    shard : (int, int), optional
        ``(I, N)``: run only jobs ``I, I + N, …`` and return a partial result
        (``"partial": true``) for :func:`merge_results`.

    Returns
    -------
    dict
        The results document of :mod:`.report` (without claims; see :func:`finalize`).
    """
    from .report import SCHEMA_VERSION, environment

    config.check()
    started = time.perf_counter()
    stages = Stages()
    work = Work()
    codecs = codecs if codecs is not None else baseline_codecs()
    by_id = {codec.codec_id: codec for codec in codecs}
    cache = HiddenCache(config.cache_dir)

    with stages("load models"):
        archs: dict[str, Architecture] = {}
        for name in tqdm(config.architectures, disable=not progress, desc="load models",
                         unit="model"):
            task = load_task(name, cache_dir=config.cache_dir, corpus=config.corpus,
                             seed=config.seed, fit_corpus=config.fit_corpus,
                             eval_corpus=config.eval_corpus)
            archs[task.name] = Architecture(task, config, cache)
    all_jobs = make_jobs({n: a.splits for n, a in archs.items()}, list(by_id),
                         {n: a.variants for n, a in archs.items()},
                         {n: a.task.default_levels if config.levels is None else config.levels
                          for n, a in archs.items()})
    mine = take_shard(all_jobs, *shard) if shard else all_jobs

    with stages("hidden states"):
        needs = {(job.architecture, part, job.split) for job in mine for part in ("eval", "fit")}
        total = sum(len(archs[n].window_set(p)) for n, p in {(n, p) for n, p, _ in needs})
        bar = tqdm(total=total, disable=not progress, desc="hidden states", unit="window")
        for name, arch in archs.items():
            for part in ("eval", "fit"):
                splits = sorted(k for n, p, k in needs if n == name and p == part)
                if splits:
                    arch.hidden_states(part, splits, bar)
        bar.close()

    coded_jobs: dict[Job, list[CodedCodec]] = {}
    with stages("fit codecs"):
        fitted_jobs = [job for job in mine if job.fitted]
        bar = tqdm(fitted_jobs, disable=not progress, desc="fit codecs", unit="codec")
        for job in bar:
            bar.set_postfix_str(job.job_id)
            coded_jobs[job] = fit_job(archs[job.architecture], job, config, work)
    for job in mine:
        if not job.fitted:
            coded_jobs[job] = [CodedCodec(by_id[job.codec], job.codec)]

    with stages("code and evaluate"):
        evaluation.evaluate(archs, mine, coded_jobs, config, progress, work)

    with stages("statistics"):
        add_statistics(archs, mine, coded_jobs, config, progress, work)

    with stages("other text"):
        found = other_text.evaluate_other_text(archs, mine, coded_jobs, config,
                                               config.resolved_other_corpora(), progress, work)
    rows = [row for job in mine
            for row in job_rows(archs[job.architecture], job, coded_jobs[job])]
    other_text.attach(rows, found)
    stages.seconds["total"] = time.perf_counter() - started
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": "rdgap",
        "partial": shard is not None,
        "shard": {"index": shard[0], "count": shard[1]} if shard else None,
        "config": asdict(config),
        "other_corpora": list(config.resolved_other_corpora()),
        "jobs": [job.job_id for job in all_jobs],
        "jobs_done": [job.job_id for job in mine],
        "architectures": [describe(arch) for arch in archs.values()],
        "cache": {"hidden_hits": cache.hits, "hidden_misses": cache.misses,
                  "hidden_rejected": cache.rejected},
        "environment": environment(),
        "stages_s": stages.seconds,
        "work": work.as_dict(),
        "runs": rows,
        "refused": refusals(mine, coded_jobs),
    }


def finalize(results: dict, progress: bool = True) -> dict:
    """Add the claims, correlations and coverage checks to a complete result."""
    from . import claims

    if results.get("partial"):
        raise ValueError("results: expected a complete run; merge the shards first "
                         "(rdgap merge)")
    stages = Stages()
    with stages("coverage claims"):
        results["coverage"] = claims.coverage_claims(bool(results["config"]["quick_run"]))
    with stages("claims"):
        results["correlations"] = claims.correlations(results)
        results["claims"] = claims.evaluate_claims(results)
    results["stages_s"] = {k: v for k, v in results["stages_s"].items() if k != "total"} \
        | stages.seconds | {"total": results["stages_s"].get("total", 0.0)
                            + sum(stages.seconds.values())}
    return results


__all__ = ["ValidateConfig", "FITTED_VARIANTS", "run_validation", "merge_results", "finalize",
           "spread_splits", "RunRow", "level_status", "refusals", "Stages", "Work",
           "MERGE_KEYS", "CORPUS_OUTPUT_LIMIT"]
