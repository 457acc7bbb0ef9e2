"""The run's cost model: wall time of each stage (:class:`Stages`) and the units of work
per architecture with their wall time (:class:`Work`), both in ``results.json``."""

from __future__ import annotations

import time
from contextlib import contextmanager


class Stages:
    """Wall time of each named stage (seconds), accumulated over calls."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


class Work:
    """Units of work per architecture and their wall time: the run's cost model.

    ``counts[arch][unit]`` and ``seconds[arch][unit]`` for the units ``suffix`` (one
    suffix pass over a batch of evaluation windows), ``metrics`` (one codec's
    distortions of one batch), ``coding`` (one codec's encode + decode + estimate of
    one batch), ``fit context`` (statistics, Fisher and probe at one split),
    ``calibration`` (probe passes while fitting the variants; counted from their
    traces), ``prefix jacobian`` (T10 of the prefix at one split) and
    ``codec statistics`` (:func:`.statistics.codec_statistics` of one row).
    """

    def __init__(self):
        self.counts: dict[str, dict[str, int]] = {}
        self.seconds: dict[str, dict[str, float]] = {}

    def add(self, arch: str, unit: str, seconds: float, count: int = 1) -> None:
        counts = self.counts.setdefault(arch, {})
        times = self.seconds.setdefault(arch, {})
        counts[unit] = counts.get(unit, 0) + count
        times[unit] = times.get(unit, 0.0) + seconds

    @contextmanager
    def __call__(self, arch: str, unit: str, count: int = 1):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(arch, unit, time.perf_counter() - start, count)

    def as_dict(self) -> dict:
        return {arch: {unit: {"count": self.counts[arch][unit],
                              "seconds": self.seconds[arch][unit]}
                       for unit in self.counts[arch]} for arch in self.counts}

    @staticmethod
    def merged(parts: list[dict]) -> dict:
        """Sum of several :meth:`as_dict` results (shards of one run)."""
        total = Work()
        for part in parts:
            for arch, units in part.items():
                for unit, value in units.items():
                    total.add(arch, unit, value["seconds"], value["count"])
        return total.as_dict()
