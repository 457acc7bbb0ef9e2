r"""The child of :mod:`rdgap.testing.isolation`: rebuild the codec, run the jobs, write records.

Run as ``python -c "from rdgap.testing._worker import main; main()" JOB RESULTS``.
``JOB`` is a pickle of ``{"codec": Recipe.payload(), "threads": int, "jobs": [...]}``;
each job is ``("encode", x)``, ``("decode", data)`` or ``("crafted", reference_stream,
[(what, data), ...], budget_bytes)``. Every record is one line of
``base64(pickle((time.monotonic(), *record)))`` appended to ``RESULTS`` and flushed at once, so the
parent reads what was done even when a later decode hangs, runs out of memory
or aborts the interpreter. A crafted decode writes ``("start", i)`` before it
begins: the parent's watchdog times it.
"""

from __future__ import annotations

import base64
import os
import pickle
import sys
import time
import traceback


def _error(error: BaseException) -> dict:
    names = [(c.__module__, c.__qualname__) for c in type(error).__mro__]
    return {"type": type(error).__name__, "mro": names, "message": str(error)[:2000],
            "memory": isinstance(error, MemoryError) or "allocate" in str(error).lower()}


def _threads(count: int) -> None:
    """OMP/MKL/OpenBLAS read the parent's environment settings; torch too when it starts,
    and is told again here if the rebuild imported it (without importing it otherwise)."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)


def _limit_address_space(budget: int) -> int | None:
    try:
        import resource
        with open("/proc/self/status") as status:
            size = next(int(line.split()[1]) * 1024 for line in status
                        if line.startswith("VmSize:"))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        target = size + budget
        if hard != resource.RLIM_INFINITY:
            target = min(target, hard)
        resource.setrlimit(resource.RLIMIT_AS, (target, hard))
        return target
    except (ImportError, OSError, StopIteration, ValueError):
        return None


def main() -> None:
    job_path, result_path = sys.argv[1], sys.argv[2]
    out = open(result_path, "a", buffering=1)

    def record(*item):
        item = (time.monotonic(),) + item         # the parent's watchdog clock
        out.write(base64.b64encode(pickle.dumps(item)).decode() + "\n")
        out.flush()
        os.fsync(out.fileno())

    with open(job_path, "rb") as handle:
        job = pickle.load(handle)
    os.chdir(job["codec"].get("cwd", os.getcwd()))
    try:
        from .rebuild import rebuild
        codec = rebuild(job["codec"])
        _threads(job["threads"])
    except BaseException as error:  # noqa: BLE001 - reported to the parent
        record("rebuild-failed", _error(error), traceback.format_exc()[-3000:])
        return
    record("rebuilt", type(codec).__qualname__)
    from .compare import difference, same
    for number, task in enumerate(job["jobs"]):
        kind = task[0]
        try:
            if kind == "encode":
                record(number, "ok", bytes(codec.encode(task[1])))
            elif kind == "decode":
                record(number, "ok", codec.decode(task[1]))
            elif kind == "crafted":
                _, stream, crafted, budget = task
                reference = codec.decode(stream)      # warm up before the limit is set
                limit = _limit_address_space(budget)
                record(number, "limit", limit)
                for index, (what, data) in enumerate(crafted):
                    record(number, "start", index)
                    try:
                        result = codec.decode(data)
                    except BaseException as error:  # noqa: BLE001
                        record(number, "raised", index, _error(error))
                        continue
                    if same(result, reference):
                        record(number, "same", index)
                    else:
                        record(number, "differs", index, difference(result, reference))
                    del result
                record(number, "done")
        except BaseException as error:  # noqa: BLE001
            record(number, "raised", None, _error(error))
    record("finished")


if __name__ == "__main__":
    main()
