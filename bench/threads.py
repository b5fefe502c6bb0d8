"""Shared by the benchmarks: one thread count for every library, set before any of them loads.

BLAS and OpenMP read their thread counts when the library loads, so ``pin_threads()`` must run
before NumPy and torch are imported: every implementation then runs on the same threads.
"""

from __future__ import annotations

import argparse
import os


def pin_threads(argv: list[str] | None = None) -> int:
    """Read ``--threads`` (default: the cores this process may use) and export it to BLAS/OpenMP."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    threads = parser.parse_known_args(argv)[0].threads
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    return threads
