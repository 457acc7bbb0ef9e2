"""Start a split run: two local processes, or one rank under ``torchrun``.

Locally, :func:`run_local` spawns both ranks (``torch.multiprocessing``'s
spawn context) on a free TCP port of 127.0.0.1, waits for them with a bounded
time, and merges their reports; a rank that dies without reporting is
recorded as such. Under ``torchrun`` each process runs one rank
(:func:`run_torchrun`); rank 1 holds the merged summary.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch.multiprocessing as mp

from .config import SplitRunConfig
from .summary import summarize
from .worker import WORLD_SIZE, run_rank

def under_torchrun() -> bool:
    """Whether this process was started by torchrun (or set up like it)."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR",
                                               "MASTER_PORT"))


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _child(config: SplitRunConfig, rank: int, init_method: str, path: str) -> None:
    report = run_rank(config, rank, init_method)
    Path(path).write_text(json.dumps(report))
    if report["status"] != "ok":
        os._exit(1)  # at once: a broken process group must not hold the exit


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "did not finish in time and was killed"
    if code < 0:
        return f"was killed by signal {signal.Signals(-code).name}"
    return f"exited with code {code}"


def run_local(config: SplitRunConfig, configs: dict[int, SplitRunConfig] | None = None,
              start_method: str = "spawn") -> dict:
    """Start both ranks on this machine and return the merged summary.

    Parameters
    ----------
    config : SplitRunConfig
        The run.
    configs : {rank: SplitRunConfig}, optional
        A different config per rank (tests use it to give the ranks different
        codecs and see the start-up check fail).
    start_method : {"spawn", "fork"}
        How the ranks start. ``spawn`` (the command's choice) starts clean
        interpreters; ``fork`` skips re-importing torch (tests use it, with one
        torch thread per rank) but is unsafe once the parent has used CUDA.
    """
    if start_method not in ("spawn", "fork"):
        raise ValueError(f"start_method: expected 'spawn' or 'fork', got {start_method!r}")
    configs = configs or {rank: config for rank in range(WORLD_SIZE)}
    init_method = f"tcp://127.0.0.1:{free_port()}"
    context = mp.get_context(start_method)
    with tempfile.TemporaryDirectory(prefix="rdgap-split-run-") as folder:
        paths = {rank: os.path.join(folder, f"rank{rank}.json") for rank in configs}
        processes = {rank: context.Process(target=_child, daemon=True,
                                           args=(configs[rank], rank, init_method, paths[rank]))
                     for rank in configs}
        for process in processes.values():
            process.start()
        _join(processes, config.timeout)
        reports = {}
        for rank, process in processes.items():
            if os.path.isfile(paths[rank]):
                reports[rank] = json.loads(Path(paths[rank]).read_text())
            else:
                reports[rank] = {"rank": rank, "status": "error",
                                 "error": f"rank {rank} {_exit_reason(process.exitcode)} "
                                          f"before reporting"}
    return summarize(reports, asdict(config))


def _join(processes: dict, timeout: float) -> None:
    """Wait for every process; once one has ended, give the others ``timeout`` + 15 s
    (they see the failure within their own timeout), then kill what is left."""
    deadline = None
    while any(p.is_alive() for p in processes.values()):
        if deadline is None and any(not p.is_alive() for p in processes.values()):
            deadline = time.monotonic() + timeout + 15
        if deadline is not None and time.monotonic() > deadline:
            for p in processes.values():
                if p.is_alive():
                    p.kill()
                    p.join(5)
            return
        time.sleep(0.05)
    for p in processes.values():
        p.join()


def run_torchrun(config: SplitRunConfig) -> tuple[dict, dict]:
    """Run the rank torchrun assigned to this process; returns ``(report, summary)``.

    Rank 1's summary is the whole run's (rank 0's part arrives with the
    end-of-stream frame); rank 0's covers only what it saw, so it always
    reads incomplete: rank 0 judges its own part by ``report["status"]``.
    """
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    report = run_rank(config, rank, "env://", world_size=world)
    return report, summarize({rank: report}, asdict(config))
