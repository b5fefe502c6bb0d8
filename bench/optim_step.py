"""Time of one optimizer step alone, nabla against PyTorch, on ~1M parameters in 20 tensors.

The parameters are the weights and biases of ten 316x316 linear layers (20 tensors, ~1.0M
float32 values), with fixed random gradients. A step is ``opt.step()`` only: gradients are
already in place, nothing is recomputed. nabla's optimizers update one flat buffer per group with
a few in-place ufuncs; PyTorch runs its default implementation (``foreach``: a loop fused over
the tensor list). Both run in the same process, one after the other, with the same number of
threads.

    python bench/optim_step.py            # about 10 s
    python bench/optim_step.py --quick    # about 2 s
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="fewer repeats, for CI logs")
parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
args = parser.parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np  # noqa: E402 - after the thread settings
import torch  # noqa: E402

import nabla as nb  # noqa: E402
from nabla import optim  # noqa: E402

torch.set_num_threads(args.threads)
WIDTH, LAYERS = 316, 10
STEPS, REPEATS = (20, 3) if args.quick else (100, 7)


def make_params():
    rng = np.random.default_rng(0)
    shapes = [s for _ in range(LAYERS) for s in ((WIDTH, WIDTH), (WIDTH,))]
    values = [rng.standard_normal(s).astype(np.float32) * 0.05 for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) * 0.01 for s in shapes]
    return values, grads


def time_steps(step) -> float:
    """Median over repeats of the mean seconds per step."""
    for _ in range(5):
        step()
    runs = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(STEPS):
            step()
        runs.append((time.perf_counter() - start) / STEPS)
    return statistics.median(runs)


def nabla_step(make_opt):
    values, grads = make_params()
    params = [nb.tensor(v, requires_grad=True) for v in values]
    opt = make_opt(params)
    for p, g in zip(params, grads):
        p.grad[...] = g  # the optimizer made p.grad a view into its flat buffer
    return time_steps(opt.step)


def torch_step(make_opt):
    values, grads = make_params()
    params = [torch.tensor(v, requires_grad=True) for v in values]
    for p, g in zip(params, grads):
        p.grad = torch.from_numpy(g.copy())
    opt = make_opt(params)
    with torch.no_grad():
        return time_steps(opt.step)


CASES = [
    ("Adam", lambda p: optim.Adam(p, lr=1e-3), lambda p: torch.optim.Adam(p, lr=1e-3)),
    (
        "SGD momentum",
        lambda p: optim.SGD(p, lr=0.01, momentum=0.9),
        lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
    ),
    ("AdamW", lambda p: optim.AdamW(p, lr=1e-3), lambda p: torch.optim.AdamW(p, lr=1e-3)),
]


def main() -> None:
    n = LAYERS * (WIDTH * WIDTH + WIDTH)
    print(
        f"numpy {np.__version__}, torch {torch.__version__}, nabla {nb.__version__}; "
        f"{args.threads} thread(s); {n:,} float32 parameters in {2 * LAYERS} tensors; "
        f"median of {REPEATS} repeats of {STEPS} steps"
    )
    print(f"{'optimizer':<14}{'nabla ms':>10}{'torch ms':>10}{'nabla/torch time':>18}")
    for name, ours, theirs in CASES:
        a, b = nabla_step(ours), torch_step(theirs)
        print(f"{name:<14}{a * 1e3:>10.3f}{b * 1e3:>10.3f}{a / b:>18.2f}")
    print("(time ratio: < 1 means nabla's step is faster; target <= 1.0)")


if __name__ == "__main__":
    main()
