r"""Checks that need a fresh process: ``cross-process`` and ``crafted-headers``.

One child interpreter (:mod:`rdgap.testing._worker`) is started per
:func:`rdgap.testing.check_codec` call, with

- another hash seed: ``PYTHONHASHSEED`` set to a value that differs from this
  process's (a fixed seed when this one is randomized), so a table
  fingerprint built with ``hash()`` changes;
- another thread count: ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``,
  ``OPENBLAS_NUM_THREADS`` and ``torch.set_num_threads`` at 1 when this process
  uses more than one thread, else 2;
- the codec rebuilt by :func:`rdgap.testing.rebuild.recipe` (factory, save/load
  or pickling).

The child encodes the fixed input, decodes this process's stream of it and,
under an address-space limit (``RLIMIT_AS`` = its size after a warm-up decode
plus the budget), decodes each crafted stream. A watchdog here kills it when one
decode runs past the timeout; a decoder that aborts the interpreter (a native
allocation failure under the limit) kills only the child, and the last
``start`` record names the stream.
"""

from __future__ import annotations

import base64
import importlib
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field

from .compare import describe, difference, same
from .corrupt import AddressLimit, Timeout, timed

#: Seconds the child may take to start, import and rebuild the codec.
STARTUP_TIMEOUT = 180.0
_SEEDS = ("7919", "104729")


def this_process() -> dict:
    """Hash seed and thread count of this process."""
    threads = None
    if "torch" in sys.modules:
        threads = sys.modules["torch"].get_num_threads()
    return {"PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "random"),
            "threads": threads or os.cpu_count() or 1}


def child_settings() -> dict:
    """The hash seed and thread count the child runs with: both differ from this process's."""
    here = this_process()
    seed = _SEEDS[1] if here["PYTHONHASHSEED"] == _SEEDS[0] else _SEEDS[0]
    return {"PYTHONHASHSEED": seed, "threads": 1 if here["threads"] > 1 else 2}


@dataclass
class ChildRun:
    """Records of one child run, by job number, and how it ended."""

    settings: dict
    rebuilt: bool = False
    rebuild_error: dict | None = None
    rebuild_trace: str = ""
    records: dict = field(default_factory=dict)
    returncode: int | None = None
    hung: tuple | None = None          # (job, what was running, seconds)
    stderr: str = ""
    seconds: float = 0.0

    def ended(self) -> str:
        code = self.returncode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = "?"
            return f"killed by signal {-code} ({name})"
        return f"exit code {code}"


class Child:
    """A child interpreter started on ``jobs`` (:meth:`wait` collects its :class:`ChildRun`).

    It runs while this process checks the other properties; every record carries the
    child's ``time.monotonic()`` (one clock for all processes on Linux), so the watchdog
    measures how long the current decode has run however late :meth:`wait` is called.
    """

    def __init__(self, recipe, jobs: list, timeout: float):
        self.recipe, self.timeout = recipe, timeout
        self.run = ChildRun(settings=child_settings())
        settings = self.run.settings
        env = dict(os.environ, PYTHONHASHSEED=settings["PYTHONHASHSEED"], MALLOC_ARENA_MAX="2",
                   **{name: str(settings["threads"]) for name in
                      ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
        self.folder = tempfile.TemporaryDirectory(prefix="rdgap-child-")
        job_path = os.path.join(self.folder.name, "job")
        self.result_path = os.path.join(self.folder.name, "results")
        self.err_path = os.path.join(self.folder.name, "stderr")
        with open(job_path, "wb") as handle:
            pickle.dump({"codec": recipe.payload(), "threads": settings["threads"],
                         "jobs": jobs}, handle)
        open(self.result_path, "w").close()
        self.started = time.monotonic()
        with open(self.err_path, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from rdgap.testing._worker import main; main()",
                 job_path, self.result_path], env=env, stdout=subprocess.DEVNULL, stderr=err)

    def wait(self) -> ChildRun:
        """Read the child's records until it ends, or kill it when a step runs too long."""
        run, child = self.run, self.process
        seen, last = 0, self.started
        try:
            while True:
                done = child.poll() is not None
                with open(self.result_path) as handle:
                    lines = handle.read().split("\n")
                for line in lines[seen:-1]:           # complete lines only
                    stamp, *record = pickle.loads(base64.b64decode(line))
                    _take(run, tuple(record))
                    last = max(last, stamp)
                seen = max(seen, len(lines) - 1)
                if done:
                    break
                limit = STARTUP_TIMEOUT if not run.rebuilt else self.timeout
                if time.monotonic() - last > limit:
                    run.hung = (run.records.get("_running"), time.monotonic() - last)
                    break
                time.sleep(0.02)
        finally:
            self.close()
        run.returncode = child.returncode
        run.seconds = time.monotonic() - self.started
        return run

    def close(self) -> None:
        """Kill the child if it still runs and remove its files (idempotent)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.folder is not None:
            with open(self.err_path, "rb") as handle:
                self.run.stderr = handle.read()[-2000:].decode(errors="replace")
            self.folder.cleanup()
            self.folder = None
        self.recipe.close()


def run_child(recipe, jobs: list, timeout: float) -> ChildRun:
    """Run ``jobs`` in a fresh interpreter on the codec ``recipe`` rebuilds, and wait."""
    return Child(recipe, jobs, timeout).wait()


def _take(run: ChildRun, record: tuple) -> None:
    if record[0] == "rebuilt":
        run.rebuilt = True
    elif record[0] == "rebuild-failed":
        run.rebuild_error, run.rebuild_trace = record[1], record[2]
    elif isinstance(record[0], int):
        run.records.setdefault(record[0], []).append(record[1:])
        run.records["_running"] = (record[0], record[1:])


def declared(error: dict, errors: tuple) -> bool:
    """Whether an error record of the child is one of the declared exception types: its
    class resolved here by module and name (a module alias resolves to the same class),
    else compared by name."""
    names = {tuple(name) for name in error["mro"]}
    if any((e.__module__, e.__qualname__) in names for e in errors):
        return True
    module_name, qualname = error["mro"][0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
        return isinstance(found, type) and issubclass(found, errors)
    except (ImportError, AttributeError):
        return False


def where(run: ChildRun) -> str:
    s = run.settings
    return (f"a fresh process with PYTHONHASHSEED={s['PYTHONHASHSEED']} and {s['threads']} "
            f"thread(s) (here: PYTHONHASHSEED={this_process()['PYTHONHASHSEED']}, "
            f"{this_process()['threads']} threads)")


def _how_it_stopped(run: ChildRun) -> str:
    if run.hung is not None:
        return f"killed after {run.hung[1]:.0f} s without progress"
    return run.ended()


# -- cross-process ------------------------------------------------------------------
def cross_process_violation(codec, x, data: bytes, here, run: ChildRun, jobs: tuple) -> str | None:
    """What differs between this process and the child for the fixed input ``x``.

    ``jobs`` are the child's job numbers of ``("encode", x)`` and ``("decode", data)``;
    ``here`` is ``decode(data)`` in this process.
    """
    problems = []
    encoded, decoded = (run.records.get(j, []) for j in jobs)
    if not encoded or encoded[0][0] != "ok":
        error = encoded[0][2] if encoded else None
        return (f"encode of the fixed input in {where(run)} "
                + (f"raised {error['type']}: {error['message']}" if error else
                   f"did not finish ({_how_it_stopped(run)}; stderr: {run.stderr[-400:]!r})"))
    there = encoded[0][1]
    if there != data:
        at = next((i for i, (a, b) in enumerate(zip(data, there)) if a != b),
                  min(len(data), len(there)))
        problems.append(f"encode wrote {len(there)} bytes in {where(run)} and {len(data)} bytes "
                        f"here for the same input (first difference at byte {at}): the bytes "
                        f"depend on the process (hash(), thread count, an unseeded generator)")
    if not decoded or decoded[0][0] != "ok":
        error = decoded[0][2] if decoded else None
        problems.append("decode of this process's stream in the fresh process "
                        + (f"raised {error['type']}: {error['message']}" if error else
                           f"did not finish ({_how_it_stopped(run)})"))
    elif not same(decoded[0][1], here):
        problems.append(f"decode of this process's stream in the fresh process differs from "
                        f"its decode here: {difference(decoded[0][1], here)}")
    if there != data:
        try:
            back = codec.decode(there)
        except Exception as error:  # noqa: BLE001 - reported
            problems.append(f"decode here of the fresh process's stream raised "
                            f"{type(error).__name__}: {error}")
        else:
            if not same(back, here):
                problems.append(f"decode here of the fresh process's stream differs from the "
                                f"decode of this process's own: {difference(back, here)}")
    if not problems:
        return None
    return "; ".join(problems) + f"\n  fixed input: {describe(x)}"


# -- crafted headers ----------------------------------------------------------------
def crafted_violation(run: ChildRun, job: int, crafted: list, errors: tuple,
                      budget: int, timeout: float) -> str | None:
    """The first crafted stream the child's decoder mishandled, or None."""
    allowed = ", ".join(e.__name__ for e in errors)
    records = run.records.get(job, [])
    for record in records:
        kind = record[0]
        if kind == "raised" and record[1] is None:
            error = record[2]
            return (f"the valid stream of the fixed input could not be decoded in the child: "
                    f"{error['type']}: {error['message']}")
        if kind == "raised":
            index, error = record[1], record[2]
            what = crafted[index][0]
            if error["memory"]:
                return (f"decode of a crafted stream ({what}; {len(crafted[index][1])} bytes, "
                        f"valid checksum) tried to allocate beyond the budget of {budget} bytes: "
                        f"{error['type']}: {error['message'][:300]}")
            if not declared(error, errors):
                return (f"decode of a crafted stream ({what}) raised {error['type']}: "
                        f"{error['message'][:300]}; expected one of ({allowed})")
        elif kind == "differs":
            what = crafted[record[1]][0]
            return (f"decode of a crafted stream ({what}; valid checksum) returned a different "
                    f"tensor silently instead of raising ({allowed}): {record[2]}")
    if any(r[0] == "done" for r in records):
        return None
    started = [r[1] for r in records if r[0] == "start"]
    last = crafted[started[-1]] if started else None
    name = f"({last[0]}; {len(last[1])} bytes)" if last else "(before the first crafted stream)"
    if run.hung is not None:
        return f"decode of a crafted stream {name} ran past {timeout:g} s"
    return (f"the child interpreter died decoding a crafted stream {name}: {run.ended()} "
            f"(an abort in native code, e.g. an allocation beyond the {budget}-byte "
            f"address-space budget)\n  stderr: {run.stderr[-600:]}")


def crafted_in_process(codec, data: bytes, crafted: list, errors: tuple, budget: int,
                       timeout: float) -> str | None:
    """The in-process fallback for a codec that cannot be rebuilt in a child: the same
    verdicts, with a thread timeout and this process's address space capped."""
    allowed = ", ".join(e.__name__ for e in errors)
    reference = codec.decode(data)
    with AddressLimit(budget):
        for what, stream in crafted:
            try:
                out = timed(codec.decode, stream, timeout)
            except Timeout:
                return f"decode of a crafted stream ({what}) ran past {timeout:g} s"
            except MemoryError:
                return (f"decode of a crafted stream ({what}; {len(stream)} bytes, valid "
                        f"checksum) tried to allocate beyond the budget of {budget} bytes")
            except errors:
                continue
            except Exception as error:  # noqa: BLE001
                if "allocate" in str(error).lower():
                    return (f"decode of a crafted stream ({what}) tried to allocate beyond the "
                            f"budget of {budget} bytes: {type(error).__name__}: {error}")
                return (f"decode of a crafted stream ({what}) raised {type(error).__name__}: "
                        f"{error}; expected one of ({allowed})")
            if not same(out, reference):
                return (f"decode of a crafted stream ({what}; valid checksum) returned a "
                        f"different tensor silently instead of raising ({allowed}): "
                        f"{difference(out, reference)}")
            del out
    return None
