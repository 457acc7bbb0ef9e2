"""The validate job: every codec at every split, measured on real text.

For each split point and codec the job reports the real bytes per token, the
likelihood estimate where the codec has one, and the distortion (ΔCE, KL,
top-1 agreement) with confidence intervals over documents.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from rdgap.codecs.baselines import baseline_codecs
from rdgap.codecs.base import HiddenStateCodec
from rdgap.codecs import ans
from rdgap.codecs.capture import logits_and_hidden
from rdgap.codecs.container import header_size
from rdgap.codecs.fit import VARIANTS, FitContext, fit_codec
from rdgap.codecs.split import SplitModel, decoder_layers
from rdgap.codecs.symbol_zstd import ZstdSymbols

from .corpus import DEFAULT_CORPUS, load_documents, split_documents, token_windows
from .distortion import document_estimate, exact_log_probs, per_window_metrics
from .models import DEFAULT_MODEL, load_model


@dataclass
class ValidateConfig:
    """What ``rdgap validate`` runs.

    Attributes
    ----------
    model : str
        ``"smollm2-135m"`` (embedded default) or a causal-LM folder.
    splits : list of int or None
        Split points (layers in the prefix); None spreads ``split_count`` over the depth.
    split_count : int
        Number of split points when ``splits`` is None.
    corpus : str
        ``"lee_background"`` or a text file / folder.
    window_length, windows : int
        Tokens per window and number of evaluation windows (one per document).
    batch_size : int
        Windows per forward pass.
    seed : int
        Seed of the fit / evaluation document split.
    variants : tuple of str
        Reference-codec variants (:data:`rdgap.codecs.fit.VARIANTS`) fitted at each split.
    levels : tuple of float
        ΔCE targets (nats/token) each variant is calibrated to on the fit windows.
    fit_windows : int
        Windows from fit documents: the first half fits statistics and the
        Fisher matrix, the second half calibrates the steps to each level.
    zstd_symbols_of : str or None
        A fitted variant whose integer symbols are also coded with zstd (the
        generic-compressor baseline at exactly that variant's distortion).
    """

    model: str = DEFAULT_MODEL
    splits: list[int] | None = None
    split_count: int = 5
    corpus: str = DEFAULT_CORPUS
    window_length: int = 256
    windows: int = 32
    batch_size: int = 4
    seed: int = 0
    cache_dir: str | None = None
    variants: tuple[str, ...] = ("gaussian-std", "gaussian-fisher", "klt-laplace")
    levels: tuple[float, ...] = (0.05,)
    fit_windows: int = 32
    zstd_symbols_of: str | None = "gaussian-fisher"

    @classmethod
    def quick(cls, **overrides) -> "ValidateConfig":
        """The small run CI uses: 3 splits, 8 windows of 128 tokens, the Fisher-allocated
        factorized codec at one level (the KLT needs more fit data than a quick run has)."""
        settings = {"split_count": 3, "window_length": 128, "windows": 8,
                    "variants": ("gaussian-fisher",), "levels": (0.05,), "fit_windows": 8}
        settings.update(overrides)
        return cls(**settings)


def spread_splits(num_layers: int, count: int) -> list[int]:
    """``count`` split points spread evenly over ``1 .. num_layers - 1``."""
    if num_layers < 2:
        raise ValueError(f"model: needs ≥ 2 decoder layers to split, has {num_layers}")
    count = min(count, num_layers - 1)
    points = np.linspace(0, num_layers, count + 2)[1:-1]
    return sorted({int(min(max(round(p), 1), num_layers - 1)) for p in points})


@dataclass
class RunRow:
    """One (architecture, split, codec, level) result."""

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
    delta_ce_nats: float
    delta_ce_nats_stderr: float | None
    delta_ce_nats_ci: list[float | None]
    kl_nats: float
    kl_nats_ci: list[float | None]
    top1_agreement: float
    top1_agreement_ci: list[float | None]
    max_abs_error: float
    encode_s: float
    decode_s: float
    fit_delta_ce_nats: float | None = None
    predicted_delta_ce_nats: float | None = None
    t2_violations: int | None = None


@dataclass
class _Job:
    """One codec at one split, with what its fitting found."""

    codec: HiddenStateCodec
    name: str
    level: str | None = None
    fit_delta_ce: float | None = None
    predicted_delta_ce: float | None = None


@dataclass
class _Accumulator:
    bytes: int = 0
    estimated_bits: float | None = 0.0
    tokens: int = 0
    encode_s: float = 0.0
    decode_s: float = 0.0
    max_abs_error: float = 0.0
    t2_violations: int = 0
    metrics: dict[str, list[float]] = field(default_factory=dict)
    documents: list[int] = field(default_factory=list)


def _code_windows(codec: HiddenStateCodec, hidden: torch.Tensor,
                  acc: _Accumulator) -> torch.Tensor:
    """Encode and decode each window as one stream; return the reconstructions."""
    out = torch.empty_like(hidden)
    for w in range(hidden.shape[0]):
        start = time.perf_counter()
        data = codec.encode(hidden[w])
        middle = time.perf_counter()
        out[w] = codec.decode(data)
        acc.decode_s += time.perf_counter() - middle
        acc.encode_s += middle - start
        acc.bytes += len(data)
        acc.tokens += hidden.shape[1]
        estimate = codec.estimate_bits(hidden[w])
        acc.estimated_bits = None if estimate is None or acc.estimated_bits is None \
            else acc.estimated_bits + estimate
        if estimate is not None:  # T2's working form, checked on every stream
            payload = 8 * (len(data) - header_size(codec.codec_id, 2))
            acc.t2_violations += payload > (1 + ans.RELATIVE_OVERHEAD) * estimate \
                + ans.STREAM_OVERHEAD_BITS
    acc.max_abs_error = max(acc.max_abs_error, float((out - hidden).abs().max()))
    return out


def _fit_jobs(config: ValidateConfig, model, splits, documents, fit_indices, tokenizer,
              progress: bool) -> dict[int, list[_Job]]:
    """Fit and calibrate every variant at every split on the fit windows."""
    jobs: dict[int, list[_Job]] = {k: [] for k in splits}
    if not config.variants or not config.levels:
        return jobs
    fit_windows = token_windows(documents, fit_indices, tokenizer, config.window_length,
                                max_windows=config.fit_windows)
    hidden = {k: [] for k in splits}
    for start in range(0, len(fit_windows), config.batch_size):
        _, states = logits_and_hidden(model, fit_windows.input_ids[start:start + config.batch_size],
                                      None, splits)
        for k in splits:
            hidden[k].append(states[k])
    bar = tqdm(total=len(splits) * len(config.variants) * len(config.levels),
               disable=not progress, desc="fit codecs", unit="codec")
    for k in splits:
        context = FitContext.build(SplitModel(model, k), fit_windows.input_ids,
                                   torch.cat(hidden[k]))
        for variant in config.variants:
            for level in config.levels:
                bar.set_postfix_str(f"split {k} {variant} ΔCE≤{level}")
                fitted = fit_codec(variant, context, level)
                jobs[k].append(_Job(fitted.codec, variant, f"dce<={level:g}",
                                    fitted.calibration.delta_ce, fitted.predicted_delta_ce))
                if variant == config.zstd_symbols_of:
                    jobs[k].append(_Job(ZstdSymbols(fitted.codec), f"zstd-symbols[{variant}]",
                                        f"dce<={level:g}", fitted.calibration.delta_ce,
                                        fitted.predicted_delta_ce))
                bar.update()
    bar.close()
    return jobs


def run_validation(config: ValidateConfig, codecs: list[HiddenStateCodec] | None = None,
                   progress: bool = True) -> dict:
    """Run the job and return the ``results.json`` document (see :mod:`.report`)."""
    from .report import SCHEMA_VERSION, environment

    started = time.perf_counter()
    stages: dict[str, float] = {}
    codecs = codecs if codecs is not None else baseline_codecs()
    for name in config.variants:
        if name not in VARIANTS:
            raise ValueError(f"variants: expected names from {VARIANTS}, got {name!r}")
    loaded = load_model(config.model, cache_dir=config.cache_dir)
    model, tokenizer = loaded.model, loaded.tokenizer
    num_layers = len(decoder_layers(model))
    splits = config.splits or spread_splits(num_layers, config.split_count)
    for k in splits:
        SplitModel(model, k)  # clear error for an out-of-range split before any work
    stages["load model"] = time.perf_counter() - started

    mark = time.perf_counter()
    documents = load_documents(config.corpus)
    fit_indices, evaluation = split_documents(len(documents), seed=config.seed)
    windows = token_windows(documents, evaluation, tokenizer, config.window_length,
                            max_windows=config.windows)
    stages["tokenize"] = time.perf_counter() - mark

    mark = time.perf_counter()
    jobs = _fit_jobs(config, model, splits, documents, fit_indices, tokenizer, progress)
    for k in splits:
        jobs[k] = [_Job(codec, codec.codec_id) for codec in codecs] + jobs[k]
    stages["fit codecs"] = time.perf_counter() - mark

    accumulators = {(k, i): _Accumulator() for k in splits for i in range(len(jobs[k]))}
    batches = range(0, len(windows), config.batch_size)
    mark = time.perf_counter()
    bar = tqdm(total=len(batches) * sum(len(j) for j in jobs.values()), disable=not progress,
               desc="validate", unit="job")
    for start in batches:
        ids = windows.input_ids[start:start + config.batch_size]
        docs = windows.document[start:start + config.batch_size].tolist()
        exact, hidden = logits_and_hidden(model, ids, None, splits)
        log_p = exact_log_probs(exact)
        for k in splits:
            split_model = SplitModel(model, k)
            for index, job in enumerate(jobs[k]):
                bar.set_postfix_str(f"split {k} {job.name} {job.level or ''}")
                acc = accumulators[(k, index)]
                recon = _code_windows(job.codec, hidden[k], acc)
                metrics = per_window_metrics(exact, split_model.suffix(recon), ids, log_p)
                for name, values in metrics.items():
                    acc.metrics.setdefault(name, []).extend(values.tolist())
                acc.documents.extend(docs)
                bar.update()
        del exact, hidden, log_p
    bar.close()
    stages["code and evaluate"] = time.perf_counter() - mark

    width = int(model.config.hidden_size)
    rows = [asdict(_row(loaded.name, str(model.config.model_type), k, job, width,
                        accumulators[(k, i)]))
            for k in splits for i, job in enumerate(jobs[k])]
    stages["total"] = time.perf_counter() - started
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": "rdgap",
        "config": asdict(config) | {"splits": splits},
        "model": {"name": loaded.name, "model_type": str(model.config.model_type),
                  "num_layers": num_layers, "width": width},
        "corpus": {"source": str(config.corpus), "documents": len(documents),
                   "evaluation_documents": len(evaluation),
                   "windows": len(windows), "window_length": config.window_length,
                   "skipped_short_documents": windows.skipped_documents},
        "environment": environment(),
        "stages_s": stages,
        "runs": rows,
    }


def _row(name: str, model_type: str, split: int, job: _Job, width: int,
         acc: _Accumulator) -> RunRow:
    docs = np.array(acc.documents)
    est = {m: document_estimate(np.array(v), docs) for m, v in acc.metrics.items()}
    actual = 8.0 * acc.bytes / acc.tokens
    windows = len(acc.documents)
    ci = lambda e: [e.low, e.high]  # noqa: E731
    return RunRow(
        architecture=name, model_type=model_type, task="next-token prediction",
        split=split, codec=job.name, level=job.level, width=width,
        tokens=acc.tokens, windows=windows, documents=est["kl_nats"].documents,
        bits_per_token_actual=actual,
        bits_per_token_estimated=None if acc.estimated_bits is None
        else acc.estimated_bits / acc.tokens,
        saving_vs_fp16_percent=100.0 * (1.0 - actual / (16.0 * width)),
        container_bits_per_token=8.0 * header_size(job.codec.codec_id, 2) * windows / acc.tokens,
        delta_ce_nats=est["delta_ce_nats"].mean,
        delta_ce_nats_stderr=est["delta_ce_nats"].stderr,
        delta_ce_nats_ci=ci(est["delta_ce_nats"]),
        kl_nats=est["kl_nats"].mean, kl_nats_ci=ci(est["kl_nats"]),
        top1_agreement=est["top1_agreement"].mean,
        top1_agreement_ci=ci(est["top1_agreement"]),
        max_abs_error=acc.max_abs_error, encode_s=acc.encode_s, decode_s=acc.decode_s,
        fit_delta_ce_nats=job.fit_delta_ce, predicted_delta_ce_nats=job.predicted_delta_ce,
        t2_violations=None if acc.estimated_bits is None else acc.t2_violations)
