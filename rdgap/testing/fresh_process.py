r"""``cross-process`` and ``crafted-headers``: the suite's side of :mod:`rdgap.testing.isolation`.

:class:`FreshProcessProperties` (a mixin of the suite's context) picks the fixed
input, starts one child for both properties (:class:`isolation.Child`) before
the in-process properties run, so that its start-up (about 3 s of imports) overlaps
them, and
turns its records into a verdict, a :class:`~rdgap.testing.PropertyViolation`
or the reason the property was not checked.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings

from . import isolation
from .compare import describe as _describe
from .rebuild import recipe as rebuild_recipe
from .report import PropertyViolation


def _first_example(strategy):
    drawn = []
    run = given(strategy)(lambda x: drawn.append(x) if not drawn else None)
    settings(max_examples=1, derandomize=True, database=None, phases=[Phase.generate],
             suppress_health_check=list(HealthCheck))(run)()
    return drawn[0]


class FreshProcessProperties:
    """Needs ``codec``, ``decl``, ``chosen``, ``crafter``, ``crafted_budget``, ``timeout``,
    ``_fixed``, ``_child``, ``_symbol_range()`` and ``_fail()`` from the suite's context."""

    def fixed_input(self):
        """A small deterministic input: the first example of the caller's ``inputs``
        strategy (derandomized), else a sample of the declared entropy source, else 16
        tokens of Student-t states over two decades of channel scale (or symbols)."""
        if self._fixed is None:
            d, rng = self.decl, np.random.default_rng(0)
            if getattr(self, "custom_inputs", None) is not None:
                self._fixed = _first_example(self.custom_inputs)
            elif d.entropy_source is not None:
                source = d.entropy_source()
                self._fixed = source.encodable(source.sample(rng))
            elif d.input_kind == "symbols":
                lo, hi = self._symbol_range()
                self._fixed = rng.integers(lo, hi + 1, (16, d.channels or 4)).astype(np.int64)
            else:
                import torch
                channels = d.channels or 8
                states = rng.standard_t(5.0, (16, channels)) * 10.0 ** rng.uniform(0, 2, channels)
                self._fixed = torch.from_numpy(states.astype(np.float32))
        return self._fixed

    def start_child(self) -> None:
        """Start the child now, so that it runs while this process checks the other
        properties; a codec that cannot code the fixed input is left to them."""
        if any(p in self.chosen for p in ("cross-process", "crafted-headers")):
            try:
                self._child = self._prepare_child()
            except PropertyViolation:
                self._child = None

    def close_child(self) -> None:
        """Kill a child that still runs (a property failed before it was read)."""
        if self._child is not None and self._child["pending"] is not None:
            self._child["pending"].close()

    def _prepare_child(self) -> dict:
        x = self.fixed_input()
        try:
            data = bytes(self.codec.encode(x))
            here = self.codec.decode(data)
        except Exception as error:  # noqa: BLE001 - a valid input: round-trip's failure
            self._fail("round-trip", f"coding the fixed input raised {type(error).__name__}: "
                                     f"{error}", x)
        crafted = crafted_error = None
        if "crafted-headers" in self.chosen and self.crafter is not None:
            try:     # a wrong layout is reported when crafted-headers runs, after robustness
                crafted = [(str(what), bytes(stream)) for what, stream in self.crafter(data)]
                if not crafted:
                    raise ValueError("crafted_streams: returned no streams for the fixed input")
            except ValueError as error:
                crafted_error = error
        jobs, numbers = [], {}
        if "cross-process" in self.chosen:
            numbers["cross"] = (0, 1)
            jobs += [("encode", x), ("decode", data)]
        if crafted:
            numbers["crafted"] = len(jobs)
            jobs.append(("crafted", data, crafted, self.crafted_budget))
        how = rebuild_recipe(self.codec) if jobs else "nothing to run in a fresh process"
        pending = None if isinstance(how, str) else isolation.Child(how, jobs, self.timeout)
        return {"x": x, "data": data, "here": here, "recipe": how, "run": None,
                "pending": pending, "jobs": numbers, "crafted": crafted,
                "crafted_error": crafted_error}

    def _child_run(self) -> dict:
        """The child's results for both properties: rebuild, encode, decode, crafted decodes."""
        if self._child is None:
            self._child = self._prepare_child()
        child = self._child
        if child["pending"] is not None:
            child["run"] = child["pending"].wait()
            child["pending"] = None
        return child

    def in_child(self, prop, report) -> str | None:
        """Run ``cross-process`` or ``crafted-headers``; the reason when not checked."""
        if prop == "crafted-headers" and self.crafter is None:
            return getattr(self.codec, "crafted_streams_missing", None) or (
                "the codec declares neither crafted_streams(data) nor header_fields, so no "
                "well-formed stream with a crafted header can be built (rdgap.testing.crafting)")
        child = self._child_run()
        how, run = child["recipe"], child["run"]
        rebuilt = run is not None and run.rebuilt
        failure = None
        if isinstance(how, str):
            failure = how
        elif not rebuilt:
            error = run.rebuild_error
            failure = (f"the codec could not be rebuilt in a fresh process by {how.describe()}: "
                       + (f"{error['type']}: {error['message']}" if error else
                          f"{run.ended()}; stderr: {run.stderr[-400:]}"))
        if prop == "cross-process":
            if failure and (isinstance(how, str) or how.how == "pickle"):
                return failure
            if failure:
                raise PropertyViolation(prop, f"{failure}\n  codec: {self.codec!r}")
            message = isolation.cross_process_violation(self.codec, child["x"], child["data"],
                                                        child["here"], run, child["jobs"]["cross"])
            if message:
                raise PropertyViolation(prop, f"{message}\n  rebuilt by {how.describe()}\n"
                                              f"  codec: {self.codec!r}")
            report.numbers[prop] = {"rebuilt_by": how.how, "here": isolation.this_process(),
                                    "input_shape": tuple(np.shape(child["x"])),
                                    "child": run.settings, "child_seconds": run.seconds}
            return None
        d = self.decl
        if child["crafted_error"] is not None:
            raise child["crafted_error"]
        if rebuilt:
            message = isolation.crafted_violation(run, child["jobs"]["crafted"], child["crafted"],
                                                  d.decode_errors, self.crafted_budget,
                                                  self.timeout)
            where = "a fresh process (address-space limit, watchdog)"
        else:
            message = isolation.crafted_in_process(self.codec, child["data"], child["crafted"],
                                                   d.decode_errors, self.crafted_budget,
                                                   self.timeout)
            where = f"this process (thread timeout, address-space limit): {failure}"
        if message:
            raise PropertyViolation(prop, f"{message}\n  crafted from the {len(child['data'])}"
                                          f"-byte stream of the fixed input: "
                                          f"{_describe(child['x'])}\n  codec: {self.codec!r}")
        report.numbers[prop] = {"streams": len(child["crafted"]), "decoded_in": where,
                                "budget_bytes": self.crafted_budget}
        return None

