"""Fitted codecs measured on text other than the one they were fitted on (issue 19).

A fitted codec is calibrated to its level on fit documents of one corpus; the
main evaluation measures it on evaluation documents of (usually) the same
corpus. This module measures every fitted row of a run again on the evaluation
windows of each *other* corpus (:func:`other_corpora`: by default the named
corpora of :data:`.corpus.NAMED_CORPORA` other than the fit and evaluation
corpora): same window length, the same number of windows, one window per
document, documents from the evaluation part of that corpus's split. It stores,
per corpus, the primary distortion's mean ± s.e. over documents, the real and
estimated bits per token and the counts in ``row["other_text"]``, for the gating
prediction claim ``level_holds_on_other_text`` (:mod:`.other_text_claim`).

Baselines (fixed codecs, no level) are not measured again: their distortion
does not depend on a calibration. Image tasks have no text: their fitted rows
carry ``other_text = {}`` and the reason in ``other_text_skipped``. The work
reuses the runner's machinery: windows cut by the task
(:meth:`~.tasks.SplitTask.windows` on the other corpus), hidden states through
the run's cache, coding and metrics by :func:`.evaluation.evaluate`.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from tqdm.auto import tqdm

from . import cap_binding
from .corpus import NAMED_CORPORA
from .distortion import document_estimate
from .tasks import TextWindows

#: Prefix of the window-set part of another corpus (``arch.windows`` / ``arch.hidden``).
PART_PREFIX = "other:"


def other_corpora(requested, fit_corpus: str, eval_corpus: str) -> tuple[str, ...]:
    """The corpora a run measures fitted codecs on besides its evaluation corpus.

    Parameters
    ----------
    requested : sequence of str or None
        Corpus names or paths; None = every named corpus that is neither the fit
        nor the evaluation corpus (``("newsgroups", "wikipedia")`` for the default
        ``lee_background``); empty = none.
    fit_corpus, eval_corpus : str
        The run's fit and evaluation corpora.

    Raises
    ------
    ValueError
        If a requested corpus is the fit or the evaluation corpus, or is repeated.
    """
    if requested is None:
        return tuple(name for name in NAMED_CORPORA if name not in (fit_corpus, eval_corpus))
    if isinstance(requested, str):
        raise ValueError(f"other_corpora: expected a tuple of corpus names or paths, got the "
                         f"string {requested!r} (write ({requested!r},))")
    corpora = tuple(str(name) for name in requested)
    for name in corpora:
        if name in (fit_corpus, eval_corpus):
            raise ValueError(f"other_corpora: {name!r} is the run's "
                             f"{'fit' if name == fit_corpus else 'evaluation'} corpus; name "
                             f"text other than {fit_corpus!r} and {eval_corpus!r}, or none")
    if len(set(corpora)) != len(corpora):
        raise ValueError(f"other_corpora: each corpus once, got {list(corpora)}")
    return corpora


def skipped_reason(task) -> str | None:
    """Why ``task`` cannot be measured on other text, or None (a text task)."""
    if isinstance(task, TextWindows):
        return None
    return f"{task.name} ({task.task}) does not read text"


@contextmanager
def _evaluating_on(task: TextWindows, corpus: str):
    """The task's evaluation windows come from ``corpus`` inside the block."""
    saved = dict(task.sources)
    task.sources["eval"] = corpus
    try:
        yield
    finally:
        task.sources.clear()
        task.sources.update(saved)


def other_windows(task: TextWindows, corpus: str, count: int | None, length: int):
    """Up to ``count`` (None: every document with one) windows of ``length`` tokens, one per evaluation document of
    ``corpus`` (its split by the task's seed), cut exactly as the task cuts its own."""
    with _evaluating_on(task, corpus):
        return task.windows("eval", count, length)


def summary(coded, task, level: float) -> dict:
    """What a row stores for one other corpus: the primary distortion over documents
    (mean, s.e., 95 % CI, and whether mean ≤ level + 2 s.e.), bits per token (real
    bytes and the likelihood estimate) and the counts."""
    if coded.refused is not None:
        return {"refused": coded.refused}
    primary = task.metrics_names[0]
    estimate = document_estimate(np.array(coded.metrics[primary]),
                                 np.array(coded.documents)).as_dict()
    stderr = estimate["stderr"]
    return {"distortion_name": primary, "distortion": estimate["mean"],
            "distortion_stderr": stderr,
            "distortion_ci": [estimate["ci_low"], estimate["ci_high"]],
            "level_target": level,
            "within_level_2se": None if stderr is None
            else bool(estimate["mean"] <= level + 2.0 * stderr),
            "bits_per_token_actual": 8.0 * coded.bytes / coded.tokens,
            "bits_per_token_estimated": None if coded.window_estimates is None
            else float(sum(coded.window_estimates)) / coded.tokens,
            "windows": len(coded.documents), "documents": estimate["documents"],
            "tokens": coded.tokens, "rate_cap": cap_binding.summary(coded)}


class _Prefixed:
    """The run's cost model with every unit named ``"other text <unit>"`` (so the main
    evaluation's units keep their counts)."""

    def __init__(self, work, prefix: str = "other text "):
        self.work, self.prefix = work, prefix

    def __call__(self, arch: str, unit: str, count: int = 1):
        return self.work(arch, self.prefix + unit, count)

    def add(self, arch: str, unit: str, seconds: float, count: int = 1) -> None:
        self.work.add(arch, self.prefix + unit, seconds, count)


def evaluate_other_text(archs: dict, mine: list, coded_jobs: dict, config, corpora,
                        progress: bool, work) -> dict[tuple[str, str], dict]:
    """Measure every fitted codec of ``mine`` on each corpus of ``corpora``.

    Parameters
    ----------
    archs, mine, coded_jobs, config, progress, work :
        The runner's architectures, this shard's jobs, their coded codecs, the run's
        :class:`~.config.ValidateConfig`, the progress flag and cost model (its units
        ``other text coding``, ``other text suffix``, ``other text metrics``).
    corpora : tuple of str
        :func:`other_corpora` of the run.

    Returns
    -------
    dict
        ``(job_id, codec name) -> {"other_text": {corpus: summary}, "other_text_skipped":
        reason or None}`` for every fitted codec of ``mine`` that coded its own
        evaluation windows.
    """
    from . import evaluation
    from .coding import CodedCodec

    found: dict[tuple[str, str], dict] = {}
    fitted = [job for job in mine if job.fitted]
    for name, arch in archs.items():
        jobs = [job for job in fitted if job.architecture == name]
        if not jobs:
            continue
        reason = skipped_reason(arch.task) if corpora else "no other corpus requested"
        live = {job: [c for c in coded_jobs[job] if c.refused is None] for job in jobs}
        for job, coded_list in live.items():
            for coded in coded_list:
                found[(job.job_id, coded.name)] = {"other_text": {},
                                                   "other_text_skipped": reason}
        if reason is not None:
            continue
        splits = sorted({job.split for job in jobs})
        for corpus in corpora:
            part = PART_PREFIX + corpus
            if part not in arch.windows:
                arch.windows[part] = other_windows(arch.task, corpus, config.windows,
                                                   config.window_length)
            bar = tqdm(total=len(arch.windows[part]), disable=not progress,
                       desc=f"hidden states ({corpus})", unit="window")
            arch.hidden_states(part, splits, bar)
            bar.close()
            clones = {job: [CodedCodec(c.codec, c.name, c.level, fitted=c.fitted)
                            for c in coded_list]
                      for job, coded_list in live.items()}
            evaluation.evaluate({name: arch}, jobs, clones, config, progress, _Prefixed(work),
                                part=part)
            for job, coded_list in clones.items():
                for clone in coded_list:
                    found[(job.job_id, clone.name)]["other_text"][corpus] = \
                        summary(clone, arch.task, job.level)
    return found


def attach(rows: list[dict], found: dict[tuple[str, str], dict]) -> None:
    """Add ``other_text`` and ``other_text_skipped`` to the rows :func:`evaluate_other_text`
    measured (every fitted row of the shard); other rows are left as they are."""
    for row in rows:
        measured = found.get((row["job_id"], row["codec"]))
        if measured is not None:
            row.update(measured)
