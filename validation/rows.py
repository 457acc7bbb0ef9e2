"""The rows of ``results.json``: one :class:`RunRow` per (architecture, split, codec,
level) from what its :class:`~.coding.CodedCodec` measured (:func:`job_rows`), whether a
fitted codec met its level on the evaluation documents (:func:`level_status`), and the
codecs that could not code a state (:func:`refusals`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from rdgap.codecs.coders.container import header_size

from . import cap_binding
from .architecture import Architecture
from .coding import CodedCodec
from .distortion import document_estimate
from .jobs import Job


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
    #: its standard error over the probe documents and the ``z`` of the calibration
    #: criterion ``fit ΔCE + z·s.e. ≤ level`` (issue 19); None for fixed codecs
    fit_delta_ce_stderr_nats: float | None = None
    calibration_margin: float | None = None
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
    #: a rate-capped codec's B_cap, on how many windows it bound and what that cost in
    #: each metric (:func:`.cap_binding.summary`); None for codecs without a cap
    rate_cap: dict | None = None


def _calibration(coded, name: str):
    """``name`` of the calibration of a fitted row's codec (None for fixed codecs)."""
    calibration = getattr(coded.fitted, "calibration", None)
    return None if calibration is None else getattr(calibration, name, None)


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


def refusals(jobs: list[Job], coded_jobs: dict[Job, list[CodedCodec]]) -> list[dict]:
    """One entry per codec that could not code a state of its job (it has no row)."""
    return [{"job_id": job.job_id, "architecture": job.architecture, "split": job.split,
             "codec": coded.name, "level": coded.level, "reason": coded.refused}
            for job in jobs for coded in coded_jobs[job] if coded.refused is not None]


def job_rows(arch: Architecture, job: Job, coded_list: list[CodedCodec]) -> list[dict]:
    """The rows (:class:`RunRow` as dicts) of one job's codecs that coded every state."""
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
            fit_delta_ce_nats=coded.fit_delta_ce,
            fit_delta_ce_stderr_nats=_calibration(coded, "stderr"),
            calibration_margin=_calibration(coded, "margin"),
            predicted_delta_ce_nats=coded.predicted_delta_ce,
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
            stream_bits=float(sum(coded.window_bits)),
            rate_cap=cap_binding.summary(coded))
        rows.append(asdict(row))
    return rows
