"""The validate job: every codec at every split, measured on real data.

The run is a list of independent jobs (:mod:`.jobs`): one per architecture ×
split × codec (× level for fitted codecs). For each job the runner reports the
real bytes per token, the likelihood estimate where the codec has one, the
task's distortions with confidence intervals over documents, and the bound
statistics of :mod:`.statistics`. Hidden states at each split come from the
on-disk cache of :mod:`.cache` when a previous run computed them.

:func:`run_validation` runs every job, or the share of one shard
(``shard=(I, N)``) and then returns a *partial* result that
:func:`merge_results` combines with the other shards' into the full result;
:func:`finalize` adds the claims, correlations and coverage checks.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from rdgap.codecs.coders import ans
from rdgap.codecs.base import HiddenStateCodec
from rdgap.codecs.baselines import baseline_codecs
from rdgap.codecs.coders.container import header_size
from rdgap.codecs import recipes
from rdgap.codecs.fit import VARIANTS, fit_codec
from rdgap.codecs.entropy_models.token_fit import VARIANT as TOKEN_VARIANT
from rdgap.codecs.entropy_models.token_fit import fit_token_codec
from rdgap.codecs.symbol_zstd import ZstdSymbols

from .cache import HiddenCache, entry_key, model_digest, tensor_digest
from .corpus import DEFAULT_CORPUS
from . import other_text, statistics
from .stream_length import container_mismatch, proven_payload_bound
from .distortion import document_estimate
from .prefix_map import prefix_map
from .jobs import Job, check_complete, make_jobs, shard as take_shard
from .tasks import TASKS, load_task, token_variant_refusal

#: Variants ``rdgap validate`` fits (recipes of :mod:`rdgap.codecs.recipes` with
#: ``in_validate``): :data:`rdgap.codecs.fit.VARIANTS` and
#: ``klt-context-tokens`` (:mod:`rdgap.codecs.token_fit`; never a default, and only for
#: architectures whose receiver holds the token-embedding table, see
#: :func:`.tasks.token_variant_refusal`).
FITTED_VARIANTS = recipes.names(in_validate=True)


@dataclass
class ValidateConfig:
    """What ``rdgap validate`` runs.

    Attributes
    ----------
    architectures : tuple of str
        Task names (:data:`rdgap.validation.tasks.TASKS`, or the optional
        ``"gemma3-270m"``) or transformers model folders (the task follows the config:
        :func:`rdgap.validation.tasks.task_kind`).
    splits : list of int or None
        Split points (layers in the prefix) used for every architecture; None
        spreads ``split_count`` over each one's depth.
    split_count : int
        Number of split points when ``splits`` is None.
    corpus : str
        A named corpus (:data:`.corpus.NAMED_CORPORA`) or a text file / folder (text
        architectures); split into fit and evaluation documents.
    fit_corpus, eval_corpus : str or None
        The corpus of the fit windows and of the evaluation windows (each from its
        part of that corpus's split; None = ``corpus``). Different corpora measure a
        codec calibrated on one text source on another; every fitted row then says
        whether its level held on the evaluation documents (``level_status``).
    window_length, windows : int
        Tokens per window and number of evaluation windows (one per document).
    batch_size : int
        Windows per forward pass.
    seed : int
        Seed of the fit / evaluation document split.
    variants : tuple of str
        Reference-codec variants (:data:`FITTED_VARIANTS`) fitted at each split;
        ``klt-context-tokens`` is skipped, with the reason in the results'
        ``architectures[].skipped_variants``, on an architecture whose receiver does
        not hold the token-embedding table (:func:`.tasks.token_variant_refusal`).
    levels : tuple of float or None
        Distortion targets (the task's primary distortion, e.g. ΔCE in
        nats/token) each variant is calibrated to on the fit windows; None uses
        each architecture's ``default_levels`` (ΔCE 0.05 for the LM and the ViT,
        1 − cos 0.01 for the sentence encoder), since one number cannot mean the
        same loss for every distortion.
    fit_windows : int
        Windows from fit documents: the first half fits statistics and the
        Fisher matrix, the second half calibrates the steps to each level.
    zstd_symbols_of : str or None
        A fitted variant whose integer symbols are also coded with zstd (the
        generic-compressor baseline at exactly that variant's distortion).
    cache_dir : str or None
        The rdgap cache folder (models, hidden states).
    jacobian_windows, jacobian_positions : int
        Evaluation windows, and positions of each, on which T10's power iteration
        estimates the prefix's Jacobian spectral norm at each split.
    quick_run : bool
        Set by :meth:`quick`; the coverage claims then run their small version.
    other_corpora : tuple of str or None
        Text other than the fit and evaluation corpora on which every fitted row is
        measured again (:mod:`.other_text`; results in ``row["other_text"]``); None =
        every named corpus other than those two (``("newsgroups", "wikipedia")`` for
        the default ``lee_background``), ``()`` = none.
    """

    architectures: tuple[str, ...] = TASKS
    splits: list[int] | None = None
    split_count: int = 5
    corpus: str = DEFAULT_CORPUS
    fit_corpus: str | None = None
    eval_corpus: str | None = None
    window_length: int = 256
    windows: int = 32
    batch_size: int = 4
    seed: int = 0
    cache_dir: str | None = None
    variants: tuple[str, ...] = ("gaussian-std", "gaussian-fisher", "klt-laplace")
    levels: tuple[float, ...] | None = None
    fit_windows: int = 32
    zstd_symbols_of: str | None = "gaussian-fisher"
    jacobian_windows: int = 2
    jacobian_positions: int = 32
    quick_run: bool = False
    other_corpora: tuple[str, ...] | None = None

    @classmethod
    def quick(cls, **overrides) -> "ValidateConfig":
        """The small run CI uses: every architecture at 3 splits, 8 windows of 128
        tokens, the Fisher-allocated factorized codec at one level (the KLT needs
        more fit data than a quick run has)."""
        settings = {"quick_run": True, "split_count": 3, "window_length": 128, "windows": 8,
                    "variants": ("gaussian-fisher",), "fit_windows": 8,
                    "jacobian_windows": 1, "jacobian_positions": 16}
        settings.update(overrides)
        return cls(**settings)

    def check(self) -> None:
        """Raise ValueError naming the first setting that cannot run."""
        if not self.architectures:
            raise ValueError("architectures: expected at least one task name or model folder")
        for name in self.variants:
            if name not in FITTED_VARIANTS:
                raise ValueError(f"variants: expected names from {FITTED_VARIANTS}, "
                                 f"got {name!r}")
        if self.zstd_symbols_of is not None and self.zstd_symbols_of not in VARIANTS:
            raise ValueError(f"zstd_symbols_of: expected a name from {VARIANTS} or None, "
                             f"got {self.zstd_symbols_of!r}")
        self.resolved_other_corpora()

    def resolved_other_corpora(self) -> tuple[str, ...]:
        """The corpora of :attr:`other_corpora`, None resolved
        (:func:`.other_text.other_corpora`)."""
        return other_text.other_corpora(self.other_corpora, self.fit_corpus or self.corpus,
                                        self.eval_corpus or self.corpus)


def spread_splits(num_layers: int, count: int) -> list[int]:
    """``count`` split points spread evenly over ``1 .. num_layers - 1``."""
    if num_layers < 2:
        raise ValueError(f"model: needs ≥ 2 layers to split, has {num_layers}")
    count = min(count, num_layers - 1)
    points = np.linspace(0, num_layers, count + 2)[1:-1]
    return sorted({int(min(max(round(p), 1), num_layers - 1)) for p in points})


@dataclass
class RunRow:
    """One (architecture, split, codec, level) result (see :mod:`.report` for the fields)."""

    job_id: str
    architecture: str
    model_type: str
    task: str
    split: int
    codec: str
    level: str | None
    width: int
    tokens: int
    windows: int
    documents: int
    bits_per_token_actual: float
    bits_per_token_estimated: float | None
    saving_vs_fp16_percent: float
    container_bits_per_token: float
    distortion_name: str
    distortion: float
    distortion_ci: list[float | None]
    metrics: dict[str, dict]
    corpus_metrics: dict[str, float]
    delta_ce_nats: float | None
    delta_ce_nats_stderr: float | None
    delta_ce_nats_ci: list[float | None] | None
    kl_nats: float | None
    kl_nats_ci: list[float | None] | None
    top1_agreement: float | None
    top1_agreement_ci: list[float | None] | None
    max_abs_error: float
    encode_s: float
    decode_s: float
    fit_delta_ce_nats: float | None = None
    predicted_delta_ce_nats: float | None = None
    t2_violations: int | None = None
    statistics: dict = field(default_factory=dict)
    #: streams above T2's proven bound (validation.stream_length); null where not bounded
    t2_proven_violations: int | None = None
    t2_proven_smallest_margin_bits: float | None = None
    #: the level a fitted codec was calibrated to on fit documents, and whether the
    #: evaluation documents met it (:func:`level_status`); None for fixed codecs
    level_target: float | None = None
    level_status: str | None = None
    fit_corpus: str | None = None
    eval_corpus: str | None = None
    #: streams whose booked header + declared payload != length, and Σ 8 len(stream)
    container_mismatches: int | None = None
    stream_bits: float | None = None


@dataclass
class _Coded:
    """One codec of a job, with what its fitting found and what coding it measured."""

    codec: HiddenStateCodec
    name: str
    level: str | None = None
    fit_delta_ce: float | None = None
    predicted_delta_ce: float | None = None
    fitted: object = None
    bytes: int = 0
    window_bits: list[float] = field(default_factory=list)
    window_estimates: list[float] | None = field(default_factory=list)
    tokens: int = 0
    encode_s: float = 0.0
    decode_s: float = 0.0
    max_abs_error: float = 0.0
    t2_violations: int = 0
    t2_proven_violations: int | None = 0
    t2_proven_margin: float | None = None
    t2_tables: dict = field(default_factory=dict)
    container_mismatches: int = 0
    metrics: dict[str, list[float]] = field(default_factory=dict)
    documents: list[int] = field(default_factory=list)
    statistics: dict = field(default_factory=dict)
    outputs: list[torch.Tensor] | None = field(default_factory=list)
    corpus_metrics: dict = field(default_factory=dict)
    #: why the codec could not code a state (e.g. fp16 out of range); then no row
    refused: str | None = None


#: Outputs up to this many elements per window (embeddings, class logits; not LM logits)
#: are kept for the task's whole-set metrics (e.g. retrieval agreement).
CORPUS_OUTPUT_LIMIT = 65536


class Stages:
    """Wall time of each named stage (seconds), accumulated over calls."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


class Work:
    """Units of work per architecture and their wall time: the run's cost model.

    ``counts[arch][unit]`` and ``seconds[arch][unit]`` for the units ``suffix`` (one
    suffix pass over a batch of evaluation windows), ``metrics`` (one codec's
    distortions of one batch), ``coding`` (one codec's encode + decode + estimate of
    one batch), ``fit context`` (statistics, Fisher and probe at one split),
    ``calibration`` (probe passes while fitting the variants; counted from their
    traces), ``prefix jacobian`` (T10 of the prefix at one split) and
    ``codec statistics`` (:func:`.statistics.codec_statistics` of one row).
    """

    def __init__(self):
        self.counts: dict[str, dict[str, int]] = {}
        self.seconds: dict[str, dict[str, float]] = {}

    def add(self, arch: str, unit: str, seconds: float, count: int = 1) -> None:
        counts = self.counts.setdefault(arch, {})
        times = self.seconds.setdefault(arch, {})
        counts[unit] = counts.get(unit, 0) + count
        times[unit] = times.get(unit, 0.0) + seconds

    @contextmanager
    def __call__(self, arch: str, unit: str, count: int = 1):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(arch, unit, time.perf_counter() - start, count)

    def as_dict(self) -> dict:
        return {arch: {unit: {"count": self.counts[arch][unit],
                              "seconds": self.seconds[arch][unit]}
                       for unit in self.counts[arch]} for arch in self.counts}

    @staticmethod
    def merged(parts: list[dict]) -> dict:
        """Sum of several :meth:`as_dict` results (shards of one run)."""
        total = Work()
        for part in parts:
            for arch, units in part.items():
                for unit, value in units.items():
                    total.add(arch, unit, value["seconds"], value["count"])
        return total.as_dict()


def _code_windows(coded: _Coded, hidden: torch.Tensor,
                  input_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Encode and decode each window as one stream; return the reconstructions. A codec
    that codes the token ids too (``needs_input_ids``, e.g. ``klt-context-tokens``) gets
    each window's ``input_ids`` at the encoder; its stream, and so its rate, holds them."""
    codec = coded.codec
    needs_ids = getattr(codec, "needs_input_ids", False)
    if needs_ids and input_ids is None:
        raise ValueError(f"input_ids: codec {codec.codec_id} codes the token ids and needs "
                         f"each window's ids, got None")
    out = torch.empty_like(hidden)
    for w in range(hidden.shape[0]):
        ids = {"input_ids": input_ids[w]} if needs_ids else {}
        start = time.perf_counter()
        data = codec.encode(hidden[w], **ids)
        middle = time.perf_counter()
        out[w] = codec.decode(data)
        coded.decode_s += time.perf_counter() - middle
        coded.encode_s += middle - start
        coded.bytes += len(data)
        coded.window_bits.append(8.0 * len(data))
        coded.container_mismatches += container_mismatch(
            data, header_size(codec.codec_id, hidden[w].dim()))
        coded.tokens += _tokens(hidden[w])
        estimate = codec.estimate_bits(hidden[w], **ids)
        if estimate is None or coded.window_estimates is None:
            coded.window_estimates = None
        else:
            coded.window_estimates.append(float(estimate))
            # T2's working form (THEORY.md T2), checked on every stream.
            payload = 8 * (len(data) - header_size(codec.codec_id, 2))
            coded.t2_violations += payload > (1 + ans.RELATIVE_OVERHEAD) * estimate \
                + ans.STREAM_OVERHEAD_BITS
            proven = proven_payload_bound(codec, hidden[w], estimate, coded.t2_tables)
            if proven is None or coded.t2_proven_violations is None:
                coded.t2_proven_violations = None
            else:  # T2 proven (rdgap.bounds.rans_length_bounds), table quantization included
                coded.t2_proven_violations += payload > proven
                margin = proven - payload
                coded.t2_proven_margin = margin if coded.t2_proven_margin is None \
                    else min(coded.t2_proven_margin, margin)
    coded.max_abs_error = max(coded.max_abs_error, float((out - hidden).abs().max()))
    return out


def _tokens(window: torch.Tensor) -> int:
    """Positions of one window's hidden state (all but the channel axis)."""
    return int(np.prod(window.shape[:-1]))


def _batches(count: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


class _Architecture:
    """One loaded task and what the run computed for it: windows, hidden states, fits."""

    def __init__(self, task, config: ValidateConfig, cache: HiddenCache):
        self.task, self.config, self.cache = task, config, cache
        self.splits = config.splits or spread_splits(task.num_layers, config.split_count)
        for k in self.splits:
            if not 0 < k < task.num_layers:
                raise ValueError(f"split: expected 0 < split < {task.num_layers} for "
                                 f"{task.name}, got {k}")
        self.model_hash: str | None = None
        self.windows: dict[str, object] = {}
        self.hidden: dict[tuple[str, int], torch.Tensor] = {}
        self.contexts: dict[int, object] = {}
        self.split_statistics: dict[int, dict] = {}
        refusal = token_variant_refusal(task) if TOKEN_VARIANT in config.variants else None
        #: variant → why this architecture cannot run it (it is skipped)
        self.skipped_variants = {TOKEN_VARIANT: refusal} if refusal else {}
        self.variants = tuple(v for v in config.variants if v not in self.skipped_variants)

    def window_set(self, part: str):
        if part not in self.windows:
            count = self.config.windows if part == "eval" else self.config.fit_windows
            self.windows[part] = self.task.windows(part, count, self.config.window_length)
        return self.windows[part]

    def hidden_states(self, part: str, splits: list[int], bar) -> None:
        """Hidden states of every window of ``part`` at ``splits``: from the cache, or one
        forward pass per batch for all the splits the cache lacks (then stored)."""
        windows = self.window_set(part)
        if self.model_hash is None:
            self.model_hash = model_digest(self.task.model)
        keys = {k: entry_key(self.task.name, self.model_hash, windows.inputs, k,
                             {"part": part, "batch_size": self.config.batch_size})
                for k in splits if (part, k) not in self.hidden}
        missing = []
        for k, key in keys.items():
            cached = self.cache.get(key)
            if cached is None:
                missing.append(k)
            else:
                self.hidden[(part, k)] = cached
        if not missing:
            bar.update(len(windows))
            return
        parts: dict[int, list[torch.Tensor]] = {k: [] for k in missing}
        for batch in _batches(len(windows), self.config.batch_size):
            bar.set_postfix_str(f"{self.task.name} {part} windows {batch.start}–{batch.stop - 1}")
            with torch.no_grad():
                _, states = self.task.forward(windows.select(batch).inputs, missing)
            for k in missing:
                parts[k].append(states[k].detach())
            bar.update(batch.stop - batch.start)
        for k in missing:
            self.hidden[(part, k)] = torch.cat(parts[k])
            self.cache.put(keys[k], self.hidden[(part, k)])

    def fit_context(self, k: int):
        if k not in self.contexts:
            self.contexts[k] = self.task.fit_context(k, self.window_set("fit"),
                                                     self.hidden[("fit", k)])
        return self.contexts[k]


def _fit_job(arch: _Architecture, job: Job, config: ValidateConfig,
             work: Work) -> list[_Coded]:
    """Fit and calibrate one variant at one split; with its zstd-of-symbols companion."""
    if job.split not in arch.contexts:
        with work(arch.task.name, "fit context"):
            arch.fit_context(job.split)
    start = time.perf_counter()
    context = arch.fit_context(job.split)
    if job.codec == TOKEN_VARIANT:  # the ids of the statistics windows (the first ones)
        ids = arch.window_set("fit").inputs["input_ids"][:context.hidden.shape[0]]
        fitted = fit_token_codec(context, ids, job.level)
    elif job.codec in VARIANTS:
        fitted = fit_codec(job.codec, context, job.level)
    else:  # another recipe of the registry (e.g. a window-controlled one)
        fitted = recipes.recipe(job.codec).fit(context, None, job.level)
    work.add(arch.task.name, "calibration", time.perf_counter() - start,
             len(fitted.calibration.trace))
    primary = arch.task.metrics_names[0]
    level = f"{'dce' if primary == 'delta_ce_nats' else primary}<={job.level:g}"
    coded = [_Coded(fitted.codec, job.codec, level, fitted.calibration.delta_ce,
                    fitted.predicted_delta_ce, fitted)]
    if job.codec == config.zstd_symbols_of:
        coded.append(_Coded(ZstdSymbols(fitted.codec), f"zstd-symbols[{job.codec}]", level,
                            fitted.calibration.delta_ce, fitted.predicted_delta_ce))
    return coded


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
        archs: dict[str, _Architecture] = {}
        for name in tqdm(config.architectures, disable=not progress, desc="load models",
                         unit="model"):
            task = load_task(name, cache_dir=config.cache_dir, corpus=config.corpus,
                             seed=config.seed, fit_corpus=config.fit_corpus,
                             eval_corpus=config.eval_corpus)
            archs[task.name] = _Architecture(task, config, cache)
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

    coded_jobs: dict[Job, list[_Coded]] = {}
    with stages("fit codecs"):
        fitted_jobs = [job for job in mine if job.fitted]
        bar = tqdm(fitted_jobs, disable=not progress, desc="fit codecs", unit="codec")
        for job in bar:
            bar.set_postfix_str(job.job_id)
            coded_jobs[job] = _fit_job(archs[job.architecture], job, config, work)
    for job in mine:
        if not job.fitted:
            coded_jobs[job] = [_Coded(by_id[job.codec], job.codec)]

    with stages("code and evaluate"):
        _evaluate(archs, mine, coded_jobs, config, progress, work)

    with stages("statistics"):
        _add_statistics(archs, mine, coded_jobs, config, progress, work)

    with stages("other text"):
        found = other_text.evaluate_other_text(archs, mine, coded_jobs, config,
                                               config.resolved_other_corpora(), progress, work)
    rows = [row for job in mine for row in _rows(archs[job.architecture], job,
                                                 coded_jobs[job])]
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
        "architectures": [_describe(arch) for arch in archs.values()],
        "cache": {"hidden_hits": cache.hits, "hidden_misses": cache.misses,
                  "hidden_rejected": cache.rejected},
        "environment": environment(),
        "stages_s": stages.seconds,
        "work": work.as_dict(),
        "runs": rows,
        "refused": refusals(mine, coded_jobs),
    }


def _describe(arch: _Architecture) -> dict:
    task = arch.task
    windows = arch.window_set("eval")
    return {"name": task.name, "model_type": task.model_type, "task": task.task,
            "num_layers": task.num_layers, "width": task.width, "splits": arch.splits,
            "metrics": list(task.metrics_names), "windows": len(windows),
            "window_length": arch.config.window_length,
            "documents": int(len(set(windows.document.tolist()))),
            "skipped_variants": dict(arch.skipped_variants),
            "chosen_because": getattr(task, "chosen_because", None),
            "corpora": dict(getattr(task, "sources", {})) or None}


def _evaluate(archs: dict[str, _Architecture], mine: list[Job],
              coded_jobs: dict[Job, list[_Coded]], config: ValidateConfig,
              progress: bool, work: Work, part: str = "eval") -> None:
    """Code every window of ``part`` (the evaluation windows, or another corpus's:
    :mod:`.other_text`) with every codec of ``mine``, run the suffix on the
    reconstruction and measure the task's distortions. Identical reconstructions (e.g.
    fp16 and zstd of fp16) share one suffix pass and its metrics. Suffix passes run in
    ``torch.inference_mode`` (no autograd bookkeeping; the outputs only feed metrics)."""
    units = sum(len(coded_jobs[j]) * len(_batches(len(archs[j.architecture].window_set(part)),
                                                  config.batch_size)) for j in mine)
    bar = tqdm(total=units, disable=not progress, desc="code and evaluate", unit="codec-batch")
    for name, arch in archs.items():
        jobs = [job for job in mine if job.architecture == name]
        if not jobs:
            continue
        windows = arch.window_set(part)
        deepest = max(job.split for job in jobs)
        references: list[torch.Tensor] = []
        for batch in _batches(len(windows), config.batch_size):
            inputs = windows.select(batch).inputs
            documents = windows.document[batch].tolist()
            # bit-exact with the unsplit model (tested in codecs/split)
            with work(name, "suffix"), torch.inference_mode():
                reference = arch.task.suffix(deepest, inputs, arch.hidden[(part, deepest)][batch])
            seen: dict[tuple[int, str], tuple[dict, object]] = {}
            keep = isinstance(reference, torch.Tensor) and \
                reference[0].numel() <= CORPUS_OUTPUT_LIMIT
            if keep:
                references.append(reference)
            for job in jobs:
                hidden = arch.hidden[(part, job.split)][batch]
                for coded in coded_jobs[job]:
                    bar.set_postfix_str(f"{job.job_id} {coded.name}")
                    if coded.refused is None:
                        try:
                            with work(name, "coding"):
                                recon = _code_windows(coded, hidden, inputs.get("input_ids"))
                        except ValueError as error:  # the codec cannot code this state
                            coded.refused, coded.outputs = str(error), None
                    if coded.refused is not None:
                        bar.update()
                        continue
                    key = (job.split, tensor_digest([recon]))
                    if key not in seen:
                        with work(name, "suffix"), torch.inference_mode():
                            output = arch.task.suffix(job.split, inputs, recon)
                        with work(name, "metrics"):
                            seen[key] = (arch.task.metrics(reference, output, inputs), output)
                    metrics, output = seen[key]
                    if keep and coded.outputs is not None:
                        coded.outputs.append(output)
                    else:
                        coded.outputs = None
                    for metric, values in metrics.items():
                        coded.metrics.setdefault(metric, []).extend(np.asarray(values).tolist())
                    coded.documents.extend(documents)
                    bar.update()
            del reference
        if references:
            _corpus_metrics(arch, [c for job in jobs for c in coded_jobs[job]],
                            torch.cat(references))
    bar.close()


def _corpus_metrics(arch: _Architecture, coded_list: list[_Coded],
                    reference: torch.Tensor) -> None:
    """The task's whole-set metrics of every codec (then its outputs are dropped)."""
    for coded in coded_list:
        if coded.outputs:
            coded.corpus_metrics = {name: float(value) for name, value in
                                    arch.task.corpus_metrics(reference,
                                                             torch.cat(coded.outputs)).items()}
        coded.outputs = None


def _add_statistics(archs: dict[str, _Architecture], mine: list[Job],
                    coded_jobs: dict[Job, list[_Coded]], config: ValidateConfig,
                    progress: bool, work: Work) -> None:
    """THEORY.md statistics of each row: the split's (T10 of the prefix, once per split)
    and the codec's (T3, T4, T6–T9; :func:`.statistics.codec_statistics`)."""
    bar = tqdm(mine, disable=not progress, desc="statistics", unit="job")
    for job in bar:
        bar.set_postfix_str(job.job_id)
        arch = archs[job.architecture]
        if job.split not in arch.split_statistics:
            with work(job.architecture, "prefix jacobian"):
                arch.split_statistics[job.split] = _split_statistics(arch, job.split, config)
        context = arch.contexts.get(job.split)
        for coded in coded_jobs[job]:
            if coded.refused is not None:
                continue
            with work(job.architecture, "codec statistics"):
                found = statistics.codec_statistics(
                    coded.codec, arch.hidden[("fit", job.split)],
                    arch.hidden[("eval", job.split)], np.asarray(coded.window_bits),
                    np.asarray(coded.documents),
                    estimated_bits=None if coded.window_estimates is None
                    else np.asarray(coded.window_estimates),
                    fisher=getattr(context, "fisher", None) if coded.fitted else None,
                    seed=config.seed,
                    fit_input_ids=arch.window_set("fit").inputs.get("input_ids"))
            coded.statistics = dict(arch.split_statistics[job.split]) | found


def _split_statistics(arch: _Architecture, k: int, config: ValidateConfig) -> dict:
    """T10 of the prefix at ``k`` on the first ``jacobian_windows`` evaluation windows,
    cut to ``jacobian_positions`` positions (the power iteration is costly on a CPU)."""
    windows = arch.window_set("eval").select(slice(0, config.jacobian_windows))
    inputs = {name: value[:, :config.jacobian_positions] if value.dim() == 2 else value
              for name, value in windows.inputs.items()} if "input_ids" in windows.inputs \
        else windows.inputs
    found = prefix_map(arch.task, k, inputs)
    if found is None:
        return {"t10_prefix_jacobian": None,
                "t10_prefix_jacobian_note": "no differentiable prefix for this architecture"}
    return statistics.split_statistics(*found, seed=config.seed)


def _estimate_dict(values: list[float], documents: list[int]) -> dict:
    return document_estimate(np.array(values), np.array(documents)).as_dict()


def level_status(level: float, ci_low: float | None, ci_high: float | None) -> str:
    """Whether the evaluation documents met a fitted codec's level, from the 95 %
    confidence interval of its mean primary distortion over them: ``"met"`` (the whole
    interval at or below the level), ``"missed"`` (the whole interval above it: the
    calibration on fit documents did not carry over) or ``"unresolved"`` (the
    interval contains the level, or is missing)."""
    if ci_low is None or ci_high is None:
        return "unresolved"
    if ci_high <= level:
        return "met"
    return "missed" if ci_low > level else "unresolved"


def refusals(jobs: list[Job], coded_jobs: dict[Job, list[_Coded]]) -> list[dict]:
    """One entry per codec that could not code a state of its job (it has no row)."""
    return [{"job_id": job.job_id, "architecture": job.architecture, "split": job.split,
             "codec": coded.name, "level": coded.level, "reason": coded.refused}
            for job in jobs for coded in coded_jobs[job] if coded.refused is not None]


def _rows(arch: _Architecture, job: Job, coded_list: list[_Coded]) -> list[dict]:
    task = arch.task
    rows = []
    for coded in coded_list:
        if coded.refused is not None:
            continue
        metrics = {m: _estimate_dict(v, coded.documents) for m, v in coded.metrics.items()}
        primary = metrics[task.metrics_names[0]]
        actual = 8.0 * coded.bytes / coded.tokens
        windows = len(coded.documents)

        def ci(name):
            return [metrics[name]["ci_low"], metrics[name]["ci_high"]] if name in metrics else None

        def mean(name):
            return metrics[name]["mean"] if name in metrics else None

        row = RunRow(
            job_id=job.job_id, architecture=task.name, model_type=task.model_type,
            task=task.task, split=job.split, codec=coded.name, level=coded.level,
            width=task.width, tokens=coded.tokens, windows=windows,
            documents=primary["documents"], bits_per_token_actual=actual,
            bits_per_token_estimated=None if coded.window_estimates is None
            else sum(coded.window_estimates) / coded.tokens,
            saving_vs_fp16_percent=100.0 * (1.0 - actual / (16.0 * task.width)),
            container_bits_per_token=8.0 * header_size(coded.codec.codec_id, 2) * windows
            / coded.tokens,
            distortion_name=task.metrics_names[0], distortion=primary["mean"],
            distortion_ci=[primary["ci_low"], primary["ci_high"]], metrics=metrics,
            corpus_metrics=coded.corpus_metrics,
            delta_ce_nats=mean("delta_ce_nats"),
            delta_ce_nats_stderr=metrics["delta_ce_nats"]["stderr"]
            if "delta_ce_nats" in metrics else None,
            delta_ce_nats_ci=ci("delta_ce_nats"), kl_nats=mean("kl_nats"),
            kl_nats_ci=ci("kl_nats"), top1_agreement=mean("top1_agreement"),
            top1_agreement_ci=ci("top1_agreement"),
            max_abs_error=coded.max_abs_error, encode_s=coded.encode_s, decode_s=coded.decode_s,
            fit_delta_ce_nats=coded.fit_delta_ce, predicted_delta_ce_nats=coded.predicted_delta_ce,
            t2_violations=None if coded.window_estimates is None else coded.t2_violations,
            statistics=coded.statistics,
            t2_proven_violations=None if coded.window_estimates is None
            else coded.t2_proven_violations,
            t2_proven_smallest_margin_bits=None if coded.window_estimates is None
            or coded.t2_proven_violations is None else coded.t2_proven_margin,
            level_target=job.level if coded.level is not None else None,
            level_status=level_status(job.level, primary["ci_low"], primary["ci_high"])
            if coded.level is not None else None,
            fit_corpus=getattr(task, "sources", {}).get("fit"),
            eval_corpus=getattr(task, "sources", {}).get("eval"),
            container_mismatches=coded.container_mismatches,
            stream_bits=float(sum(coded.window_bits)))
        rows.append(asdict(row))
    return rows


#: Result fields that must agree between shards for their results to be merged.
MERGE_KEYS = ("schema_version", "generator", "config", "jobs")


def merge_results(partials: list[dict]) -> dict:
    """Combine the partial results of shards into the result of the whole run.

    Raises
    ------
    ValueError
        If the partial results come from different configurations, rdgap
        versions or result schemas, or do not cover every job exactly once.
    """
    if not partials:
        raise ValueError("partial results: expected at least one, got none")
    first = partials[0]
    for other in partials[1:]:
        for key in MERGE_KEYS:
            if other.get(key) != first.get(key):
                raise ValueError(f"partial results: expected the same {key!r} in every "
                                 f"shard; they differ (shards of different runs?)")
        if other["environment"].get("rdgap") != first["environment"].get("rdgap"):
            raise ValueError(f"partial results: expected one rdgap version, got "
                             f"{first['environment'].get('rdgap')} and "
                             f"{other['environment'].get('rdgap')}")
    check_complete(first["jobs"], [j for p in partials for j in p["jobs_done"]])
    order = {job_id: i for i, job_id in enumerate(first["jobs"])}
    runs = sorted((row for p in partials for row in p["runs"]),
                  key=lambda row: (order[row["job_id"]], row["codec"]))
    stages: dict[str, float] = {}
    for p in partials:
        for name, seconds in p["stages_s"].items():
            stages[name] = stages.get(name, 0.0) + seconds
    architectures = {a["name"]: a for p in partials for a in p["architectures"]}
    merged = {key: first[key] for key in first if key not in ("shard", "jobs_done")}
    merged.update(partial=False, shard=None, jobs_done=list(first["jobs"]),
                  architectures=list(architectures.values()), stages_s=stages, runs=runs,
                  work=Work.merged([p.get("work", {}) for p in partials]),
                  shards=len(partials),
                  refused=[r for p in partials for r in p.get("refused", [])],
                  cache={k: sum(p["cache"][k] for p in partials) for k in first["cache"]})
    return merged


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


__all__ = ["ValidateConfig", "run_validation", "merge_results", "finalize", "spread_splits",
           "RunRow"]
