"""GPU check of rdgap.codecs.coders.rans_torch alone (kept for its old name): CUDA and CPU write
the same bytes and decode each other's streams exactly; prints CUDA throughput.

    python benchmarks/gpu_check_rans.py

The same as ``python benchmarks/gpu_check.py --rans-only`` (gpu_check.py also checks the
joint codecs' torch path). Exits 0 with a message when CUDA is not available.
"""

from __future__ import annotations

import sys

from gpu_check import main   # the sibling script

if __name__ == "__main__":
    sys.exit(main(["--rans-only", *sys.argv[1:]]))
