"""The code-and-evaluate stage: every window of a part coded with every codec of the
shard's jobs, the suffix run on the reconstruction and the task's distortions measured
(:func:`evaluate`), then the task's whole-set metrics (:func:`corpus_metrics`)."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from . import cap_binding
from .architecture import Architecture, batches
from .cache import tensor_digest
from .coding import CodedCodec, code_windows
from .config import ValidateConfig
from .cost_model import Work
from .jobs import Job


#: Outputs up to this many elements per window (embeddings, class logits; not LM logits)
#: are kept for the task's whole-set metrics (e.g. retrieval agreement).
CORPUS_OUTPUT_LIMIT = 65536


def evaluate(archs: dict[str, Architecture], mine: list[Job],
             coded_jobs: dict[Job, list[CodedCodec]], config: ValidateConfig,
             progress: bool, work: Work, part: str = "eval") -> None:
    """Code every window of ``part`` (the evaluation windows, or another corpus's:
    :mod:`.other_text`) with every codec of ``mine``, run the suffix on the
    reconstruction and measure the task's distortions. Identical reconstructions (e.g.
    fp16 and zstd of fp16) share one suffix pass and its metrics. Suffix passes run in
    ``torch.inference_mode`` (no autograd bookkeeping; the outputs only feed metrics)."""
    units = sum(len(coded_jobs[j]) * len(batches(len(archs[j.architecture].window_set(part)),
                                                 config.batch_size)) for j in mine)
    bar = tqdm(total=units, disable=not progress, desc="code and evaluate", unit="codec-batch")
    for name, arch in archs.items():
        jobs = [job for job in mine if job.architecture == name]
        if not jobs:
            continue
        windows = arch.window_set(part)
        deepest = max(job.split for job in jobs)
        references: list[torch.Tensor] = []
        for batch in batches(len(windows), config.batch_size):
            inputs = windows.select(batch).inputs
            documents = windows.document[batch].tolist()
            # bit-exact with the unsplit model (tested in tests/split)
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
                                recon = code_windows(coded, hidden, inputs.get("input_ids"))
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
                    bound = cap_binding.bound_windows(coded.cap_flags, hidden.shape[0])
                    if bound:  # what the cap cost on these windows (issue 14)
                        with work(name, "cap cost"):
                            cap_binding.binding_cost(coded, arch.task, job.split, inputs,
                                                     hidden, recon, reference, metrics, bound)
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
            corpus_metrics(arch, [c for job in jobs for c in coded_jobs[job]],
                            torch.cat(references))
    bar.close()


def corpus_metrics(arch: Architecture, coded_list: list[CodedCodec],
                    reference: torch.Tensor) -> None:
    """The task's whole-set metrics of every codec (then its outputs are dropped)."""
    for coded in coded_list:
        if coded.outputs:
            coded.corpus_metrics = {name: float(value) for name, value in
                                    arch.task.corpus_metrics(reference,
                                                             torch.cat(coded.outputs)).items()}
        coded.outputs = None
