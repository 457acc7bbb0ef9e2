"""The statistics stage: THEORY.md statistics of every row, the split's (T10 of the
prefix, once per split: :func:`prefix_statistics`) and the codec's
(:func:`.statistics.codec_statistics`)."""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from . import statistics
from .architecture import Architecture
from .coding import CodedCodec
from .config import ValidateConfig
from .cost_model import Work
from .jobs import Job
from .prefix_map import prefix_map


def add_statistics(archs: dict[str, Architecture], mine: list[Job],
                   coded_jobs: dict[Job, list[CodedCodec]], config: ValidateConfig,
                   progress: bool, work: Work) -> None:
    """THEORY.md statistics of each row: the split's (T10 of the prefix, once per split)
    and the codec's (T3, T4, T6–T9; :func:`.statistics.codec_statistics`)."""
    bar = tqdm(mine, disable=not progress, desc="statistics", unit="job")
    for job in bar:
        bar.set_postfix_str(job.job_id)
        arch = archs[job.architecture]
        if job.split not in arch.split_statistics:
            with work(job.architecture, "prefix jacobian"):
                arch.split_statistics[job.split] = prefix_statistics(arch, job.split, config)
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


def prefix_statistics(arch: Architecture, k: int, config: ValidateConfig) -> dict:
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
