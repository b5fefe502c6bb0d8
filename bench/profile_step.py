"""Where nabla's MLP training step spends its time: a cProfile of the step, by function.

The step is bench/mlp_train.py's (MLP 784-256-256-10 ReLU, Adam 1e-3, float32; zero_grad,
forward, cross-entropy, backward, update) on shuffled minibatches of MNIST-10k's training images
(standardized; random images where ``$NABLA_DATA`` is unset), at batch 64 and 512. After a
warm-up, ``cProfile`` records ``--steps`` steps; the table lists the functions with the most time
of their own (excluding the functions they call), in milliseconds per step and as a share of the
profiled step. cProfile adds a little time per Python call, so the shares, not the absolute
times, are the figures to read; bench/mlp_train.py times the step without a profiler.

    python bench/profile_step.py            # 500 steps per batch size, about 10 s
    python bench/profile_step.py --quick    # 100 steps
"""

from __future__ import annotations

from common import pin_threads  # bench/common.py; pin before NumPy loads

THREADS = pin_threads()

import argparse  # noqa: E402
import cProfile  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import nabla as nb  # noqa: E402
from nabla import models, nn, optim  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOP = 12


def images() -> tuple[np.ndarray, np.ndarray, str]:
    try:
        from nabla.data import datasets

        train = datasets.mnist10k(seed=0, download=False).train
        x = train.x.reshape(len(train), -1)
        return ((x - x.mean()) / x.std()).astype(np.float32), train.y, "MNIST-10k train"
    except (FileNotFoundError, OSError):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((7000, 784), dtype=np.float32)
        return x, rng.integers(0, 10, 7000), "random images ($NABLA_DATA unset)"


def profile(batch: int, steps: int, x: np.ndarray, y: np.ndarray) -> pstats.Stats:
    nb.manual_seed(0)
    model = models.mlp([784, 256, 256, 10])
    opt = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)

    def step():
        index = rng.integers(0, len(x), batch)
        xb, yb = nb.from_numpy(x[index]), nb.from_numpy(y[index])
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()

    for _ in range(200):
        step()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        step()
    profiler.disable()
    return pstats.Stats(profiler)


def table(stats: pstats.Stats, steps: int) -> None:
    rows = []
    for (path, line, name), (_, calls, own, _, _) in stats.stats.items():
        where = os.path.relpath(path, ROOT) if path.startswith(str(ROOT)) else Path(path).name
        label = f"{name} ({where}:{line})" if line else name.strip("<>")
        rows.append((own, calls, label))
    rows.sort(reverse=True)
    total = sum(own for own, _, _ in rows)
    print(f"{'ms/step':>9}{'share':>7}{'calls/step':>11}  function (own time)")
    for own, calls, label in rows[:TOP]:
        print(f"{own / steps * 1e3:>9.3f}{own / total:>7.0%}{calls / steps:>11.0f}  {label[:90]}")
    print(f"{total / steps * 1e3:>9.3f}   100%  (whole profiled step)\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 steps per batch size")
    parser.add_argument("--threads", type=int, default=THREADS, help="BLAS and kernel threads")
    args = parser.parse_args()
    nb.set_num_threads(args.threads)
    steps = 100 if args.quick else 500
    x, y, source = images()
    print(
        f"nabla {nb.__version__}, numpy {np.__version__}; {args.threads} thread(s); MLP "
        f"784-256-256-10, Adam; {source}; cProfile over {steps} steps after 200 untimed\n"
    )
    for batch in (64, 512):
        print(f"batch {batch}:")
        table(profile(batch, steps, x, y), steps)


if __name__ == "__main__":
    main()
