"""Throughput of the data pipeline against the training step it feeds, measured in one run.

The loader delivers shuffled batches of 64 real MNIST test images (``$NABLA_DATA``, else a
synthetic stand-in of the same shape) through the full augmentation pipeline: random translation,
rotation (bilinear), Gaussian noise and random erasing. The reference is the training step of the
MLP 784-256-256-10 with Adam at the same batch size (forward, cross-entropy, backward, update).
The target: the loader delivers at least 5x the samples per second that training consumes, so it
is never the bottleneck. Also printed: each augmentation alone, and the loader without any.

    python bench/data.py            # about 15 s
    python bench/data.py --quick    # about 3 s
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="fewer batches, for CI logs")
parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
args = parser.parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np  # noqa: E402 - after the thread settings

import nabla as nb  # noqa: E402
from nabla import models, nn, optim  # noqa: E402
from nabla.data import ArrayDataset, DataLoader, datasets, transforms  # noqa: E402
from nabla.data.transforms import augment  # noqa: E402

BATCH = 64
BATCHES, REPEATS = (30, 3) if args.quick else (150, 5)


def images() -> tuple[ArrayDataset, str]:
    try:
        return datasets.mnist("test", download=False), "MNIST test split (10,000 real images)"
    except (FileNotFoundError, OSError):
        rng = np.random.default_rng(0)
        x = rng.random((10_000, 1, 28, 28), dtype=np.float32)
        return ArrayDataset(
            x, rng.integers(0, 10, 10_000), name="random"
        ), "random stand-in (no NABLA_DATA)"


def samples_per_second(run_batches) -> float:
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        n = run_batches()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def loader_rate(dataset, transform, workers: int = 0) -> float:
    loader = DataLoader(
        dataset, batch_size=BATCH, shuffle=True, seed=0, transform=transform, workers=workers
    )

    def run():
        n = 0
        for i, (x, _) in enumerate(loader):
            n += len(x)
            if i + 1 == BATCHES:
                break
        return n

    run()  # warm-up
    return samples_per_second(run)


def training_rate(dataset) -> float:
    nb.manual_seed(0)
    model = models.mlp([784, 256, 256, 10])
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x = nb.tensor(dataset.x[:BATCH].reshape(BATCH, -1))
    y = nb.tensor(dataset.y[:BATCH])

    def run():
        for _ in range(BATCHES):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        return BATCHES * BATCH

    run()
    return samples_per_second(run)


def main() -> None:
    dataset, source = images()
    pipeline = [
        augment.RandomTranslate(3),
        augment.RandomRotation(15),
        augment.GaussianNoise(0.05),
        augment.RandomErasing(p=0.5),
    ]
    print(
        f"nabla {nb.__version__}, numpy {np.__version__}; {args.threads} thread(s); batch {BATCH}; {source}"
    )
    train = training_rate(dataset)
    print(f"{'MLP 784-256-256-10 training step (Adam)':<44}{train:>12,.0f} samples/s")
    print(f"{'loader, no transform':<44}{loader_rate(dataset, None):>12,.0f} samples/s")
    for t in pipeline:
        print(f"{'loader + ' + type(t).__name__:<44}{loader_rate(dataset, t):>12,.0f} samples/s")
    full = loader_rate(dataset, transforms.Compose(pipeline))
    print(f"{'loader + full pipeline':<44}{full:>12,.0f} samples/s")
    best = full
    for workers in (1, 2):
        rate = loader_rate(dataset, transforms.Compose(pipeline), workers=workers)
        print(f"{f'loader + full pipeline, {workers} worker(s)':<44}{rate:>12,.0f} samples/s")
        best = max(best, rate)
    print(f"data pipeline / training step: {best / train:.2f}x (target >= 5)")


if __name__ == "__main__":
    main()
