"""The fit stage: one fitted job's variant fitted and calibrated at its split and level
through its recipe (:mod:`rdgap.codecs.recipes`), with its zstd-of-symbols companion."""

from __future__ import annotations

import time

from rdgap.codecs import recipes
from rdgap.codecs.fit import VARIANTS, fit_codec
from rdgap.codecs.entropy_models.token_fit import VARIANT as TOKEN_VARIANT
from rdgap.codecs.entropy_models.token_fit import fit_token_codec
from rdgap.codecs.symbol_zstd import ZstdSymbols

from .architecture import Architecture
from .coding import CodedCodec
from .config import ValidateConfig
from .cost_model import Work
from .jobs import Job


def fit_job(arch: Architecture, job: Job, config: ValidateConfig,
            work: Work) -> list[CodedCodec]:
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
    coded = [CodedCodec(fitted.codec, job.codec, level, fitted.calibration.delta_ce,
                        fitted.predicted_delta_ce, fitted)]
    if job.codec == config.zstd_symbols_of:
        coded.append(CodedCodec(ZstdSymbols(fitted.codec), f"zstd-symbols[{job.codec}]",
                                level, fitted.calibration.delta_ce,
                                fitted.predicted_delta_ce))
    return coded
