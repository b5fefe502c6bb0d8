"""Per-operation overhead of nabla against PyTorch eager, on tensors too small to do real work.

On a (4,) float32 tensor an operation's arithmetic takes nanoseconds, so its time is the
framework's overhead: argument checks, dtype promotion, making the output tensor and recording
the graph node. This script times, with gradient recording on (the inputs require grad):

    a * b,  a + 1.0,  a.exp(),  a.sum(),  a @ W  (W of shape (4, 4)),
    and one forward + backward of (a * b).sum()

for NumPy alone on the same arrays (the floor no NumPy framework can beat), nabla, and torch, in
one process with one thread each. Each figure is the best of several `timeit` repeats, in
microseconds per operation. The last line compares the mean elementwise time with torch's.

    python bench/op_overhead.py            # about 15 s
    python bench/op_overhead.py --quick    # about 2 s, for CI
"""

from __future__ import annotations

import os

# BLAS and OpenMP read their thread counts when the library loads, so set them before importing
# NumPy and torch: every framework then runs on one thread (nabla's kernels: NUMBA_NUM_THREADS).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import timeit  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import nabla as nb  # noqa: E402

# (label, statement for nabla and torch, the same computation in plain NumPy)
CASES = [
    ("a * b", "a * b", "a * b"),
    ("a + 1.0", "a + 1.0", "a + 1.0"),
    ("a.exp()", "a.exp()", "np.exp(a)"),
    ("a.sum()", "a.sum()", "a.sum()"),
    ("a @ W", "a @ W", "a @ W"),
    # NumPy's floor for backward: the seed dL/dy = 1 broadcasts for free, one product per input.
    ("(a*b).sum() fwd+bwd", "(a * b).sum().backward()", "(a * b).sum(); one * b; one * a"),
]
ELEMENTWISE = ("a * b", "a + 1.0", "a.exp()")


def namespaces(seed: int = 0) -> dict[str, dict]:
    """The operands of every case, as NumPy arrays, nabla tensors and torch tensors."""
    rng = np.random.default_rng(seed)
    arrays = {
        "a": rng.standard_normal(4).astype(np.float32),
        "b": rng.standard_normal(4).astype(np.float32),
        "W": rng.standard_normal((4, 4)).astype(np.float32),
    }
    return {
        "numpy": {"np": np, "one": np.float32(1.0), **arrays},
        "nabla": {k: nb.tensor(v, requires_grad=True) for k, v in arrays.items()},
        "torch": {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()},
    }


def best_us(stmt: str, namespace: dict, number: int, repeat: int) -> float:
    """Best time of ``stmt`` over ``repeat`` runs of ``number`` loops, in microseconds per loop."""
    timer = timeit.Timer(stmt, globals=namespace)
    timer.timeit(max(1, number // 10))  # warm up caches and lazy initialisation
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def measure(number: int, repeat: int) -> dict[str, dict[str, float]]:
    """Microseconds per operation: ``{case label: {framework: time}}``."""
    spaces = namespaces()
    results = {}
    for label, stmt, numpy_stmt in CASES:
        results[label] = {
            "numpy": best_us(numpy_stmt, spaces["numpy"], number, repeat),
            "nabla": best_us(stmt, spaces["nabla"], number, repeat),
            "torch": best_us(stmt, spaces["torch"], number, repeat),
        }
    return results


def report(results: dict[str, dict[str, float]]) -> None:
    header = (
        f"{'operation (4,) float32':<24}{'numpy':>9}{'nabla':>9}{'torch':>9}{'nabla/torch':>13}"
    )
    print(header)
    print("-" * len(header))
    for label, t in results.items():
        ratio = t["nabla"] / t["torch"]
        print(f"{label:<24}{t['numpy']:>9.2f}{t['nabla']:>9.2f}{t['torch']:>9.2f}{ratio:>13.2f}")
    print("(microseconds per operation, best of repeats; numpy = the same arithmetic, no autograd)")
    nabla_us = float(np.mean([results[k]["nabla"] for k in ELEMENTWISE]))
    torch_us = float(np.mean([results[k]["torch"] for k in ELEMENTWISE]))
    print(
        f"per-op overhead (elementwise with grad): nabla {nabla_us:.2f} us, "
        f"torch {torch_us:.2f} us, "
        f"ratio {nabla_us / torch_us:.2f} (target <= 1.0)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer loops and repeats (CI)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    number, repeat = (3_000, 3) if args.quick else (20_000, 7)
    print(
        f"numpy {np.__version__}, torch {torch.__version__}, nabla {nb.__version__}; "
        f"1 thread; {number} loops, best of {repeat}\n"
    )
    report(measure(number, repeat))


if __name__ == "__main__":
    main()
