"""The validate job across processes or machines with ``torch.distributed``.

Launch one process per worker with torchrun (``--nnodes``/``--rdzv-endpoint``
for several machines)::

    torchrun --nproc-per-node 2 -m rdgap validate --distributed --out DIR

Rank ``r`` of ``W`` runs jobs ``r, r + W, …`` of the job list
(:mod:`rdgap.validation.jobs`), exactly like ``--shard r/W``; the partial
results are exchanged with ``all_gather_object`` over gloo (CPU, so no GPU is
needed) and rank 0 merges them, evaluates the claims and writes the report.
A rank that fails sends its error instead of a result, so every rank stops
with that error rather than waiting for it.
"""

from __future__ import annotations

import torch.distributed as dist

from .runner import ValidateConfig, finalize, merge_results, run_validation


def run_distributed(config: ValidateConfig, progress: bool = True) -> tuple[int, dict | None]:
    """Run this process's share of the job and gather every share on all ranks.

    Uses the process group if one is initialised, else initialises gloo from the
    environment torchrun sets (``env://``) and destroys it afterwards.

    Returns
    -------
    (int, dict or None)
        This process's rank, and on rank 0 the merged, finalised results (None
        on the other ranks).

    Raises
    ------
    RuntimeError
        On every rank, when any rank failed (naming the rank and its error).
    """
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("gloo")
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        try:
            share = run_validation(config, progress=progress and rank == 0,
                                   shard=(rank, world))
        except Exception as error:  # sent to the other ranks, then raised here too
            share = {"error": f"{type(error).__name__}: {error}"}
        gathered: list = [None] * world
        dist.all_gather_object(gathered, share)
        errors = [f"rank {r}: {g['error']}" for r, g in enumerate(gathered) if "error" in g]
        if errors:
            raise RuntimeError("distributed validate failed: " + "; ".join(errors))
        if rank != 0:
            return rank, None
        results = finalize(merge_results(gathered), progress=progress)
        results["distributed"] = {"backend": dist.get_backend(), "world_size": world}
        return rank, results
    finally:
        if owned:
            _teardown()


def _teardown() -> None:
    """Wait for every rank, then destroy the process group.

    Without the barrier a rank other than 0 tears gloo down while rank 0 is still
    finalising the merged results; under load that rank then aborted in C++
    (``terminate called without an active exception``, CI on 2026-12-07).
    """
    try:
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _local_rank(rank: int, world: int, store: str, config: ValidateConfig, out: str,
                threads: int) -> None:
    import json

    import torch

    torch.set_num_threads(threads)
    dist.init_process_group("gloo", store=dist.FileStore(store, world), rank=rank,
                            world_size=world)
    try:
        _, results = run_distributed(config, progress=False)
        if results is not None:
            with open(out, "w", encoding="utf-8") as handle:
                json.dump(results, handle)
    finally:
        _teardown()
    # The worker's work is done and written; skip interpreter finalisation, where
    # gloo's C++ threads can still hold Python objects and abort the process
    # (pytorch/pytorch#179291 describes the same crash).
    import gc
    import os
    import sys

    gc.collect()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_local(config: ValidateConfig, processes: int, threads: int = 1) -> dict:
    """:func:`run_distributed` in ``processes`` local processes (spawned; gloo over a
    FileStore in a temporary folder); returns rank 0's merged, finalised results.

    Parameters
    ----------
    config : ValidateConfig
    processes : int
        Number of ranks (≥ 1).
    threads : int
        torch threads per process.
    """
    import json
    import tempfile
    from pathlib import Path

    import torch.multiprocessing as mp

    if processes < 1:
        raise ValueError(f"processes: expected ≥ 1, got {processes}")
    with tempfile.TemporaryDirectory(prefix="rdgap-dist-") as folder:
        out = Path(folder) / "results.json"
        mp.spawn(_local_rank, args=(processes, str(Path(folder) / "store"), config, str(out),
                                    threads), nprocs=processes, join=True)
        return json.loads(out.read_text(encoding="utf-8"))
