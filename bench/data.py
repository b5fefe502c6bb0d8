"""Throughput of the data pipeline against the training step it feeds, each in its own process.

The loader delivers shuffled batches of 64 real MNIST test images (``$NABLA_DATA``, else a
synthetic stand-in of the same shape) through the full augmentation pipeline: random translation
(3 pixels), rotation (15 degrees, bilinear), Gaussian noise (std 0.05) and random erasing
(p = 0.5). The reference is the training step of the MLP 784-256-256-10 with Adam at the same
batch size (forward, cross-entropy, backward, update). The target: the loader delivers at least
5x the samples per second that training consumes, so it is never the bottleneck; the best of the
full-pipeline rows counts (the loader on the calling thread, or with 1 or 2 worker threads).
Also printed: the loader without transform and with each augmentation alone, on the compiled
kernels (``nabla/kernels/augment.py``) and on the NumPy reference (``NABLA_KERNELS=reference``),
so the kernels' gain shows.

Three kinds of worker process (``--worker NAME``), launched one at a time by this script, which
imports neither nabla nor NumPy: "train" (the MLP step), "loader" (every loader configuration, on
the kernels) and "loader-reference" (the same on the NumPy reference). A training step and a
loader in one process would share thread pools and allocator state; the kernels and the
reference each load only their own code. The workers run in rounds, in turn; in each, a figure is
the median over repeats of the samples per second of a block of batches (after a warm-up), and
the printed figure is the median over the rounds. The last lines, ``RESULT name=value``, are for
``bench/all.py``.

    python bench/data.py            # about 30 s: 3 rounds (more on a loaded machine)
    python bench/data.py --quick    # about 10 s: 1 round, fewer batches (CI)
"""

from __future__ import annotations

from common import (  # bench/common.py; pin before NumPy loads
    KERNELS,
    REFERENCE,
    Job,
    alternate,
    load_note,
    nabla_about,
    pin_threads,
    send,
    verdict,
    versions,
)

THREADS = pin_threads()

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

BATCH = 64
TARGET = 5.0  # loader samples/s over training samples/s
# Loader configurations: label -> (transforms by name, worker threads). "full" is the pipeline.
PIPELINE = "RandomTranslate(3)", "RandomRotation(15)", "GaussianNoise(0.05)", "RandomErasing(p=0.5)"
CONFIGS = {
    "loader, no transform": ((), 0),
    **{f"loader + {name}": ((name,), 0) for name in PIPELINE},
    "loader + full pipeline": (PIPELINE, 0),
    "loader + full pipeline, 1 worker": (PIPELINE, 1),
    "loader + full pipeline, 2 workers": (PIPELINE, 2),
}
FULL = [label for label in CONFIGS if "full" in label]


# --- workers: each runs in its own process ------------------------------------------------------


def images():
    """(dataset, description): the MNIST test split, or a random stand-in of its shape."""
    import numpy as np

    from nabla.data import ArrayDataset, datasets

    try:
        return datasets.mnist("test", download=False), "MNIST test split (10,000 real images)"
    except (FileNotFoundError, OSError):
        rng = np.random.default_rng(0)
        x = rng.random((10_000, 1, 28, 28), dtype=np.float32)
        dataset = ArrayDataset(x, rng.integers(0, 10, 10_000), name="random")
        return dataset, "random stand-in (no NABLA_DATA)"


def rate(run_batches, repeats: int) -> float:
    """Median over ``repeats`` of the samples per second of ``run_batches()`` (which returns the
    samples it delivered), after one untimed call."""
    run_batches()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = run_batches()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def augmentation(name: str):
    """The transform a PIPELINE entry names."""
    from nabla.data.transforms import augment

    return {
        "RandomTranslate(3)": lambda: augment.RandomTranslate(3),
        "RandomRotation(15)": lambda: augment.RandomRotation(15),
        "GaussianNoise(0.05)": lambda: augment.GaussianNoise(0.05),
        "RandomErasing(p=0.5)": lambda: augment.RandomErasing(p=0.5),
    }[name]()


def loader_rates(batches: int, repeats: int) -> dict:
    from nabla.data import DataLoader
    from nabla.data.transforms import Compose

    dataset, _ = images()
    rates = {}
    for label, (names, workers) in CONFIGS.items():
        transform = Compose([augmentation(name) for name in names]) if names else None
        loader = DataLoader(
            dataset, batch_size=BATCH, shuffle=True, seed=0, transform=transform, workers=workers
        )

        def run(loader=loader):
            n = 0
            for i, (x, _) in enumerate(loader):
                n += len(x)
                if i + 1 == batches:
                    break
            return n

        rates[label] = rate(run, repeats)
    return rates


def training_rate(batches: int, repeats: int) -> float:
    import nabla as nb
    from nabla import models, nn, optim

    dataset, _ = images()
    nb.manual_seed(0)
    model = models.mlp([784, 256, 256, 10])
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x = nb.tensor(dataset.x[:BATCH].reshape(BATCH, -1))
    y = nb.tensor(dataset.y[:BATCH])

    def run():
        for _ in range(batches):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        return batches * BATCH

    return rate(run, repeats)


def worker(name: str, batches: int, repeats: int) -> None:
    import nabla as nb

    nb.set_num_threads(THREADS)
    about = nabla_about(name)
    if name == "train":
        send({"about": about, "rates": {"train": training_rate(batches, repeats)}})
    else:
        send({"about": about, "rates": loader_rates(batches, repeats), "source": images()[1]})


# --- the parent: launches the workers, reports ------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round, fewer batches (CI)")
    parser.add_argument("--threads", type=int, default=THREADS, help="BLAS/OpenMP threads")
    parser.add_argument("--rounds", type=int, help="rounds of workers (default 3; --quick 1)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--batches", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    batches, repeats = (40, 5) if args.quick else (150, 7)
    batches, repeats = args.batches or batches, args.repeats or repeats
    if args.worker:
        worker(args.worker, batches, repeats)
        return

    load = os.getloadavg()[0]
    jobs = {"train": Job("train", [], KERNELS), "kernels": Job("loader", [], KERNELS)}
    jobs["reference"] = Job("loader-reference", [], REFERENCE)
    common = ["--threads", str(THREADS), "--batches", str(batches), "--repeats", str(repeats)]
    runs = alternate(str(Path(__file__).resolve()), jobs, rounds, common)
    print(
        f"{versions('numpy', 'numba', 'nabla')}; {THREADS} thread(s); batch {BATCH}; "
        f"{runs['kernels'][0]['source']}; the training step and the loader (kernels, NumPy "
        f"reference) each in its own process, {rounds} round(s); per process the median of "
        f"{repeats} repeats of {batches} batches; the figures: the median over the rounds"
    )
    for key, results in runs.items():
        print(f"  {jobs[key].name}: {results[0]['about']}")
    print()

    def median(key: str, label: str) -> float:
        return statistics.median(r["rates"][label] for r in runs[key])

    train = median("train", "train")
    print(f"{'MLP 784-256-256-10 training step (Adam)':<44}{train:>14,.0f} samples/s")
    print()
    header = f"{'samples/s':<44}{'kernels':>14}{'NumPy ref':>14}{'speed-up':>10}{'vs step':>9}"
    print(header)
    print("-" * len(header))
    for label in CONFIGS:
        k, r = median("kernels", label), median("reference", label)
        print(f"{label:<44}{k:>14,.0f}{r:>14,.0f}{k / r:>10.2f}{k / train:>8.1f}x")
    print(f"(vs step: samples/s over the training step's; the pipeline: {', '.join(PIPELINE)})")
    print()
    best = max(FULL, key=lambda label: median("kernels", label))
    ratio = median("kernels", best) / train
    reference = max(median("reference", label) for label in FULL) / train
    print(
        f"data pipeline / training step: {ratio:.2f}x (target >= {TARGET:g}: "
        f"{verdict(ratio >= TARGET)}), best row: {best}; on the NumPy reference {reference:.2f}x"
    )
    print(load_note(load))
    print()
    print(f"RESULT data.pipeline_vs_training={ratio:.3f}")
    print(f"RESULT data.pipeline_vs_training_reference={reference:.3f}")
    print(f"RESULT data.training_samples_per_s={train:.0f}")
    for label in FULL:
        key = label.replace("loader + full pipeline", "pipeline").replace(", ", "_")
        key = key.replace(" ", "_")
        print(f"RESULT data.{key}_samples_per_s={median('kernels', label):.0f}")


if __name__ == "__main__":
    main()
