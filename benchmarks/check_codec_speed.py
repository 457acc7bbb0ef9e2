"""Wall time of rdgap.testing.check_codec on the docs' example codec (a small constriction codec).

Prints the median of three runs for all properties, and without the two that start a
fresh process (cross-process, crafted-headers). Run: ``.venv/bin/python
benchmarks/check_codec_speed.py``. Issue 15 measured 0.4 s before the new properties and
1.3–1.6 s after, on 2 busy CPU cores (load average ≈ 9).
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _example():
    path = ROOT / "tests/testing/example_user_codec_test.py"
    spec = importlib.util.spec_from_file_location("example_user_codec_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module       # the fresh process unpickles the codec from it
    spec.loader.exec_module(module)
    return module


def main() -> None:
    from rdgap.testing import PROPERTIES, check_codec
    example = _example()
    codec, sibling = example.fitted_codec(), example.fitted_codec(seed=1)
    in_process = [p for p in PROPERTIES if p not in ("cross-process", "crafted-headers")]
    for label, props in (("all properties", None), ("without the fresh process", in_process)):
        times = []
        for _ in range(3):
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = check_codec(codec, max_examples=12, sibling=sibling, properties=props)
            times.append(time.perf_counter() - started)
        print(f"check_codec, {label:26s}: median {statistics.median(times):.2f} s over 3 runs "
              f"({len(report.checked)} properties checked)")


if __name__ == "__main__":
    main()
