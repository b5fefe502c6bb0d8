"""Shared by the benchmarks: the thread count, and one training step per framework.

BLAS and OpenMP read their thread counts when the library loads, so ``pin_threads()`` must run
before NumPy and torch are imported (this module imports neither at load time): every
implementation then runs on the same threads.
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


def training_steps(model, twin, x, y) -> dict:
    """One training step (zero grads, forward, cross-entropy, backward) of a nabla ``model`` and
    of its torch ``twin`` on the batch (x, y), each a function of no arguments returning the loss."""
    import torch

    import nabla as nb
    from nabla import nn

    xn, yn = nb.tensor(x), nb.tensor(y)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    params = list(twin.parameters())

    def nabla_step():
        model.zero_grad()
        loss = nn.functional.cross_entropy(model(xn), yn)
        loss.backward()
        return loss

    def torch_step():
        for p in params:
            p.grad = None  # what a torch training loop does
        loss = torch.nn.functional.cross_entropy(twin(xt), yt)
        loss.backward()
        return loss

    return {"nabla": nabla_step, "torch": torch_step}


def warm_up(fn, seconds: float) -> None:
    """Call ``fn`` for about ``seconds`` (at least 3 times): BLAS threads, allocator pools."""
    import time

    end = time.perf_counter() + seconds
    for _ in range(3):
        fn()
    while time.perf_counter() < end:
        fn()


def measure(run: dict, number: int, repeat: int, warm: float = 0.3) -> dict:
    """Median over ``repeat`` rounds of the mean seconds per step over ``number`` steps, for each
    implementation in ``run``. One implementation at a time: NumPy's OpenBLAS threads and torch's
    OpenMP threads spin for a while after each call, so alternating them would make each pay for
    the other's threads."""
    import statistics
    import time

    medians = {}
    for name, fn in run.items():
        warm_up(fn, warm)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times.append((time.perf_counter() - start) / number)
        medians[name] = statistics.median(times)
    return medians


def print_step_table(results: dict, title: str, batch, references: list[str]) -> None:
    """Print ms/step, samples/s and "vs REF" columns for ``results`` = {row key: {implementation:
    seconds per step}}; ``batch`` is the batch size, or a function of the row key giving it."""
    width = max(len(title), *(len(str(key)) for key in results)) + 2
    impl_width = max(6, *(len(name) for t in results.values() for name in t)) + 2
    header = f"{title:<{width}}{'impl':<{impl_width}}{'ms/step':>10}{'samples/s':>12}" + "".join(
        f"{'vs ' + ref:>12}" for ref in references
    )
    print(header)
    print("-" * len(header))
    for key, t in results.items():
        size = batch(key) if callable(batch) else batch
        for name, seconds in t.items():
            print(
                f"{key!s:<{width}}{name:<{impl_width}}{seconds * 1e3:>10.3f}{size / seconds:>12,.0f}"
                + "".join(f"{t[ref] / seconds:>12.2f}" for ref in references)
            )
    names = ", ".join(references)
    print(f"(vs X = samples/s relative to X ({names}); > 1 means faster than X)")
