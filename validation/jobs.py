"""The validate job as a list of independent jobs, and how to share them out.

A job is one (architecture, split, codec [, level]): it produces that codec's
row(s) at that split — a fitted variant also yields the row of zstd applied to
its integer symbols, at exactly its distortion. Every job has a deterministic
id, so that the same configuration gives the same list, in the same order, in
every process and on every machine; shard ``I/N`` (``I`` counted from 0) takes
the jobs ``I, I + N, I + 2N, …`` of that list, and
:func:`check_complete` verifies that a set of partial results covers the list
exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Job:
    """One codec at one split of one architecture (and one level for fitted codecs).

    Attributes
    ----------
    architecture : str
        A task name (:data:`rdgap.validation.tasks.TASKS`) or a model folder.
    split : int
        Layers in the prefix.
    codec : str
        A baseline codec id or a fitted variant (a recipe of :mod:`rdgap.codecs.recipes`
        with ``in_validate``: :data:`rdgap.validation.runner.FITTED_VARIANTS`).
    level : float or None
        The distortion target a fitted variant is calibrated to; None for baselines.
    """

    architecture: str
    split: int
    codec: str
    level: float | None = None

    @property
    def fitted(self) -> bool:
        return self.level is not None

    @property
    def job_id(self) -> str:
        """``architecture/split=K/codec[/level=T]``, stable across runs and machines."""
        text = f"{self.architecture}/split={self.split}/{self.codec}"
        return text if self.level is None else f"{text}/level={self.level:g}"


def make_jobs(splits: dict[str, list[int]], baselines: list[str],
              variants: tuple[str, ...] | dict[str, tuple[str, ...]],
              levels: tuple[float, ...] | dict[str, tuple[float, ...]]) -> list[Job]:
    """Every job of a run, in a deterministic order.

    Parameters
    ----------
    splits : dict
        Architecture name → its split points.
    baselines : list of str
        Codec ids of the fixed baselines, run at every split.
    variants : tuple or dict
        Fitted variants, each calibrated to each level at every split, for every
        architecture, or architecture name → its variants.
    levels : tuple or dict
        Distortion targets for every architecture, or architecture name → its targets.
    """
    jobs = []
    for architecture in splits:
        for k in sorted(splits[architecture]):
            jobs += [Job(architecture, k, codec) for codec in baselines]
            targets = levels[architecture] if isinstance(levels, dict) else levels
            fitted = variants[architecture] if isinstance(variants, dict) else variants
            jobs += [Job(architecture, k, variant, float(level))
                     for variant in fitted for level in targets]
    ids = [job.job_id for job in jobs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"jobs: expected distinct job ids, got duplicates in {ids}")
    return jobs


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` → ``(I, N)`` with ``0 ≤ I < N``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard: expected I/N with integers such as 0/4, got {text!r}") \
            from None
    if not 0 <= index < count:
        raise ValueError(f"--shard: expected 0 ≤ I < N in I/N, got {text!r}")
    return index, count


def shard(jobs: list[Job], index: int, count: int) -> list[Job]:
    """The share of shard ``index`` of ``count``: jobs ``index, index + count, …``."""
    if not 0 <= index < count:
        raise ValueError(f"index: expected 0 ≤ index < count={count}, got {index}")
    return jobs[index::count]


def check_complete(expected: list[str], done: list[str]) -> None:
    """Raise unless ``done`` holds every id of ``expected`` exactly once and nothing else.

    Raises
    ------
    ValueError
        Naming the missing, duplicated or unexpected job ids.
    """
    seen: dict[str, int] = {}
    for job_id in done:
        seen[job_id] = seen.get(job_id, 0) + 1
    duplicated = sorted(j for j, n in seen.items() if n > 1)
    missing = sorted(set(expected) - set(seen))
    unexpected = sorted(set(seen) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing jobs {missing}")
    if duplicated:
        problems.append(f"duplicate jobs {duplicated} (the same shard merged twice?)")
    if unexpected:
        problems.append(f"jobs not in the configuration {unexpected}")
    if problems:
        raise ValueError("partial results: expected every job of the run exactly once; "
                         + "; ".join(problems))
