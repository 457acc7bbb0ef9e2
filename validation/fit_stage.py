"""The fit stage: one fitted job's variant fitted and calibrated at its split and level
through its recipe (:mod:`rdgap.codecs.recipes`), with its zstd-of-symbols companion."""

from __future__ import annotations

import time

from rdgap.codecs import recipes
from rdgap.codecs.quantizers.shift_guard_fit import guard_fitted
from rdgap.codecs.symbol_zstd import ZstdSymbols

from .architecture import Architecture
from .coding import CodedCodec
from .config import ValidateConfig
from .cost_model import Work
from .jobs import Job


def guard_of(codec: str, fallback: str | None) -> str | None:
    """The shift guard's fallback for recipe ``codec`` (None: unguarded): when
    ``fallback`` is given, every fitted recipe but the fallback itself is guarded — those
    that code token ids too (the guard passes each window's ids to them) and the
    window-controlled ones (their per-window control stays inside the primary; the guard
    chooses per window between it and the fallback)."""
    if fallback is None or codec == fallback:
        return None
    recipes.recipe(codec)  # an unknown name is refused here, naming the variant
    return fallback


def shared_fallback(arch: Architecture, job: Job, config: ValidateConfig):
    """The shift guard's fallback recipe fitted at ``job``'s split and level, once per
    architecture (``arch.fallbacks``): every guarded recipe there and the fallback's own
    job share it. It is fitted as :func:`rdgap.codecs.quantizers.shift_guard_fit.
    fit_guarded` fits it (no token ids; the run's rate cap and margin)."""
    key = (job.split, job.level)
    if key not in arch.fallbacks:
        arch.fallbacks[key] = recipes.recipe(config.shift_guard).fit(
            arch.fit_context(job.split), None, job.level, cap=config.rate_cap,
            margin=config.calibration_margin)
    return arch.fallbacks[key]


def fit_job(arch: Architecture, job: Job, config: ValidateConfig,
            work: Work) -> list[CodedCodec]:
    """Fit and calibrate one variant at one split through its recipe
    (:meth:`rdgap.codecs.recipes.Recipe.fit`); with its zstd-of-symbols companion.

    A recipe that codes the token ids (``needs_token_ids``) is fitted with the ids of
    the statistics windows (the first fit windows, those of ``context.hidden``).
    """
    if job.split not in arch.contexts:
        with work(arch.task.name, "fit context"):
            arch.fit_context(job.split)
    start = time.perf_counter()
    context = arch.fit_context(job.split)
    recipe = recipes.recipe(job.codec)
    ids = arch.window_set("fit").inputs["input_ids"][:context.hidden.shape[0]] \
        if recipe.needs_token_ids else None
    # issue 14's rate cap (config.rate_cap, default 2 × the fitted rate; None: the recipes'
    # own codecs): B of the held-out interval is the cap; a -wc recipe keeps its own cap
    # issue 19: with calibration_margin z the probe's ΔCE + z·s.e. meets the level
    guard = guard_of(job.codec, config.shift_guard)
    settings = {"cap": config.rate_cap, "margin": config.calibration_margin}
    if guard is not None:  # the primary, and the fallback fitted once per split and level
        fitted = guard_fitted(recipe.fit(context, ids, job.level, **settings),
                              shared_fallback(arch, job, config), context)
    elif job.codec == config.shift_guard:
        fitted = shared_fallback(arch, job, config)
    else:
        fitted = recipe.fit(context, ids, job.level, **settings)
    work.add(arch.task.name, "calibration", time.perf_counter() - start,
             len(fitted.calibration.trace))
    primary = arch.task.metrics_names[0]
    level = f"{'dce' if primary == 'delta_ce_nats' else primary}<={job.level:g}"
    name = job.codec if guard is None else fitted.variant
    coded = [CodedCodec(fitted.codec, name, level, fitted.calibration.delta_ce,
                        fitted.predicted_delta_ce, fitted)]
    if job.codec == config.zstd_symbols_of:  # zstd of the recipe's own symbols (uncapped)
        base = fitted.codec if getattr(fitted, "uncapped", None) is None else fitted.uncapped
        coded.append(CodedCodec(ZstdSymbols(base), f"zstd-symbols[{job.codec}]",
                                level, fitted.calibration.delta_ce,
                                fitted.predicted_delta_ce))
    return coded
