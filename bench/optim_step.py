"""Time of one optimizer step alone, nabla against PyTorch's fastest configuration, on ~1M
float32 parameters in 20 tensors, every implementation in its own process.

The parameters are the weights and biases of ten 316x316 linear layers (20 tensors, 1,001,720
float32 values), with fixed random gradients. A step is ``opt.step()`` only: the gradients are
already in place, nothing is recomputed. The optimizers: Adam (lr 1e-3) and SGD with momentum
0.9 (lr 0.01).

Implementations:

* nabla: ``nabla.optim``, which updates each group's flat buffer in one pass of a compiled kernel
  (``nabla.kernels``); and "nabla ref": the same under ``NABLA_KERNELS=reference`` (the NumPy
  updates), so the kernels' gain shows.
* torch, in four configurations: the default (on CPU a Python loop over the tensors: torch picks
  ``foreach`` only for GPU tensors), ``foreach=True`` (each operation over the whole tensor
  list), ``fused=True`` (one multithreaded C++ kernel over the tensor list), and fused after
  ``torch.set_flush_denormal(True)`` ("fused+FTZ"). The fastest of the four, per optimizer, is
  the reference.

Why separate processes: every library keeps a thread pool (OpenBLAS, torch's OpenMP, numba's
OpenMP for nabla's kernels) whose threads spin or sleep after each call; with two of them in one
process each slows the other. So each implementation runs in a fresh process (``--worker
NAME``), launched one at a time by this script, which imports neither nabla nor torch, with the
same ``--threads`` (BLAS and OpenMP variables set before anything loads,
``nabla.set_num_threads``, ``torch.set_num_threads``); and each optimizer too, since an update
that allocates temporaries (the NumPy reference, torch's unfused paths) runs at a speed that
depends on what the process allocated before (glibc's malloc adapts its thresholds: the
reference's Adam step measured 3x slower as the first optimizer of a process than as the third).
The workers run in rounds, every (implementation, optimizer) once per round, in turn; in each
process the figure is the median over repeats of the mean time of a block of steps (after a
warm-up), and the printed figure is the median of those over the rounds.

Target (from the compiled-kernels issue): nabla's step takes at most half the time of the
fastest torch, for Adam and for SGD with momentum (nabla/torch time <= 0.5). The last lines,
``RESULT name=value``, are for ``bench/all.py``.

    python bench/optim_step.py              # about 2 minutes: 3 rounds of 7 repeats of 200 steps
    python bench/optim_step.py --quick      # about 20 s: 1 round of 3 repeats of 50 steps (CI)
    python bench/optim_step.py --threads 1  # default: as many threads as this process's cores
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

WIDTH, LAYERS = 316, 10
WARMUP = 20  # untimed steps before each optimizer's repeats
TARGET = 0.5  # nabla time / fastest torch time, for each optimizer
OPTIMIZERS = ("Adam", "SGD momentum")
# Worker name -> (label, environment changes); they run in this order in every round.
WORKERS = {
    "nabla": ("nabla", KERNELS),
    "nabla-reference": ("nabla ref", REFERENCE),
    "torch": ("torch", None),
    "torch-foreach": ("torch foreach", None),
    "torch-fused": ("torch fused", None),
    "torch-fused-ftz": ("torch fused+FTZ", None),
}
TORCH = ("torch", "torch-foreach", "torch-fused", "torch-fused-ftz")


# --- workers: each runs in its own process ------------------------------------------------------


def make_params():
    import numpy as np

    rng = np.random.default_rng(0)
    shapes = [s for _ in range(LAYERS) for s in ((WIDTH, WIDTH), (WIDTH,))]
    values = [rng.standard_normal(s).astype(np.float32) * 0.05 for s in shapes]
    grads = [rng.standard_normal(s).astype(np.float32) * 0.01 for s in shapes]
    return values, grads


def time_steps(step, steps: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean seconds per step of a block of ``steps``."""
    for _ in range(WARMUP):
        step()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        runs.append((time.perf_counter() - start) / steps)
    return statistics.median(runs)


def nabla_step(name: str, optimizer: str):
    """(description, opt.step) of nabla's ``optimizer`` on the parameters, gradients in place."""
    import nabla as nb
    from nabla import optim

    nb.set_num_threads(THREADS)
    make = {
        "Adam": lambda p: optim.Adam(p, lr=1e-3),
        "SGD momentum": lambda p: optim.SGD(p, lr=0.01, momentum=0.9),
    }[optimizer]
    values, grads = make_params()
    params = [nb.tensor(v, requires_grad=True) for v in values]
    opt = make(params)
    for p, g in zip(params, grads):
        p.grad[...] = g  # the optimizer made p.grad a view into its flat buffer
    return nabla_about(name), opt.step


def torch_step(name: str, optimizer: str):
    """(description, opt.step) of torch's ``optimizer`` in configuration ``name``."""
    import torch

    torch.set_num_threads(THREADS)
    flush = torch.set_flush_denormal(True) if name == "torch-fused-ftz" else False
    options = {
        "torch": {},
        "torch-foreach": {"foreach": True},
        "torch-fused": {"fused": True},
        "torch-fused-ftz": {"fused": True},
    }[name]
    make = {
        "Adam": lambda p: torch.optim.Adam(p, lr=1e-3, **options),
        "SGD momentum": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, **options),
    }[optimizer]
    values, grads = make_params()
    params = [torch.tensor(v, requires_grad=True) for v in values]
    for p, g in zip(params, grads):
        p.grad = torch.from_numpy(g.copy())
    opt = make(params)
    flags = ", flush denormal on" if flush else ""
    return f"torch {torch.__version__}, {torch.get_num_threads()} thread(s){flags}", opt.step


def worker(name: str, optimizer: str, steps: int, repeats: int) -> None:
    maker = nabla_step if name.startswith("nabla") else torch_step
    about, step = maker(name, optimizer)
    send({"about": about, "seconds": time_steps(step, steps, repeats)})


# --- the parent: launches the workers, reports ------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 3 x 50 steps (CI)")
    parser.add_argument("--threads", type=int, default=THREADS, help="BLAS/OpenMP/torch threads")
    parser.add_argument("--rounds", type=int, help="rounds of workers (default 3; --quick 1)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    steps, repeats = (50, 3) if args.quick else (200, 7)
    steps, repeats = args.steps or steps, args.repeats or repeats
    if args.worker:
        worker(args.worker, args.optimizer, steps, repeats)
        return

    load = os.getloadavg()[0]
    n = LAYERS * (WIDTH * WIDTH + WIDTH)
    print(
        f"{versions('numpy', 'torch', 'nabla')}; {THREADS} thread(s); {n:,} float32 parameters "
        f"in {2 * LAYERS} tensors; every implementation and optimizer in its own process, "
        f"{rounds} round(s); per process {WARMUP} warm-up steps, then the median of {repeats} "
        f"repeats of {steps} steps; the figures: the median over the rounds"
    )
    script = str(Path(__file__).resolve())
    jobs = {
        (name, opt): Job(name, ["--optimizer", opt], env)
        for opt in OPTIMIZERS
        for name, (_, env) in WORKERS.items()
    }
    common = ["--threads", str(THREADS), "--steps", str(steps), "--repeats", str(repeats)]
    runs = alternate(script, jobs, rounds, common)
    for name, (label, _) in WORKERS.items():
        print(f"  {label}: {runs[name, OPTIMIZERS[0]][0]['about']}")
    print()
    ms = {
        opt: {
            name: statistics.median(r["seconds"] for r in runs[name, opt]) * 1e3 for name in WORKERS
        }
        for opt in OPTIMIZERS
    }
    header = f"{'optimizer':<14}" + "".join(f"{WORKERS[n][0] + ' ms':>19}" for n in WORKERS)
    header += f"{'nabla/fastest':>15}"
    print(header)
    print("-" * len(header))
    lines, verdicts = [], []
    for opt, t in ms.items():
        fastest = min(TORCH, key=t.get)
        ratio, speedup = t["nabla"] / t[fastest], t["nabla-reference"] / t["nabla"]
        print(f"{opt:<14}" + "".join(f"{t[n]:>19.3f}" for n in WORKERS) + f"{ratio:>15.2f}")
        verdicts.append(
            f"{opt}: nabla/torch time = {ratio:.2f} against {WORKERS[fastest][0]}, "
            "the fastest torch "
            f"(target <= {TARGET}: {verdict(ratio <= TARGET)}); kernels {speedup:.2f}x faster than "
            "the reference"
        )
        key = opt.lower().replace(" ", "_")
        lines += [
            f"RESULT optim_step.{key}_nabla_ms={t['nabla']:.4f}",
            f"RESULT optim_step.{key}_nabla_reference_ms={t['nabla-reference']:.4f}",
            *(f"RESULT optim_step.{key}_{n.replace('-', '_')}_ms={t[n]:.4f}" for n in TORCH),
            f"RESULT optim_step.{key}_torch_reference={fastest.replace('-', '_')}",
            f"RESULT optim_step.{key}_time_ratio={ratio:.3f}",
            f"RESULT optim_step.{key}_kernel_speedup={speedup:.3f}",
        ]
    print(
        "(ms per opt.step(); nabla/fastest: nabla's time over the fastest torch's, < 1 means "
        "nabla is faster; FTZ: torch.set_flush_denormal(True))"
    )
    print()
    print("\n".join(verdicts))
    print(load_note(load))
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
