"""Start-up cost and memory: ``import nabla`` against ``import torch``, and the peak resident
memory of the MLP training loop in each.

Import time: each import runs in a fresh interpreter (``python -c``), timed inside it with
``time.perf_counter`` around the import statement alone (interpreter start-up excluded); the
figure is the median over several processes, after one untimed run that warms the file cache.
Then ``python -X importtime -c "import nabla"`` gives the breakdown: the import's own time
("self") summed by top-level package, and nabla's slowest modules.

Peak memory: a fresh process imports one framework (and NumPy), builds the MLP 784-256-256-10
with Adam, and runs the training loop of ``bench/mlp_train.py`` (zero grads, forward,
cross-entropy, backward, update) for ``--steps`` steps at batch 64, then as many at batch 512, on
random float32 data. It reports ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the peak resident
set size, KiB on Linux) after the import and at the end; the figure is the median over a few
processes. Both use the same number of BLAS / OpenMP threads (``--threads``), which matters:
each thread of OpenBLAS and of torch's OpenMP pool has its own buffers.

    python bench/startup.py               # about 30 s
    python bench/startup.py --quick       # about 10 s
    python bench/startup.py --threads 1   # default: as many threads as this process's cores

Targets (issue 8): ``import nabla`` < 0.3 s; peak RSS <= PyTorch's. The last lines,
``RESULT name=value``, are for ``bench/all.py``.
"""

from __future__ import annotations

from common import pin_threads  # bench/common.py; pin before NumPy loads

THREADS = pin_threads()

import argparse  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections import defaultdict  # noqa: E402

IMPORT_TARGET = 0.3  # seconds
SIZES = (784, 256, 256, 10)
BATCHES = (64, 512)


def python(*args: str) -> subprocess.CompletedProcess:
    """Run this interpreter in a fresh process (with this process's thread settings)."""
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, check=True, env=os.environ
    )


def import_seconds(module: str, runs: int) -> float:
    """Median seconds of ``import module`` in a fresh interpreter, over ``runs`` processes."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    python("-c", code)  # warm the file cache
    return statistics.median(float(python("-c", code).stdout) for _ in range(runs))


def import_breakdown(module: str, top: int = 6) -> list[str]:
    """Lines describing where ``import module``'s time goes, from ``python -X importtime``."""
    stderr = python("-X", "importtime", "-c", f"import {module}").stderr
    rows = []  # (self us, cumulative us, indented module name), in the order Python prints them
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (.*)$", line)
        if match:
            rows.append((int(match[1]), int(match[2]), match[3]))
    # The import statement's own tree: the rows after the last top-level row before ``module``.
    end = max(i for i, r in enumerate(rows) if r[2] == module)
    start = max((i for i, r in enumerate(rows[:end]) if not r[2].startswith(" ")), default=-1)
    tree = rows[start + 1 : end + 1]
    total = rows[end][1]
    by_package = defaultdict(int)
    for own, _, name in tree:
        by_package[name.strip().split(".")[0]] += own
    lines = [f"import {module}: {total / 1e3:.0f} ms in -X importtime (its own overhead included)"]
    biggest = sorted(by_package.items(), key=lambda kv: -kv[1])[:top]
    lines.append(
        "  by top-level package (self time summed): "
        + ", ".join(f"{name} {us / 1e3:.0f} ms" for name, us in biggest)
    )
    ours = sorted((r for r in tree if r[2].strip().split(".")[0] == module), key=lambda r: -r[0])
    lines.append(
        f"  slowest {module} modules (self): "
        + ", ".join(f"{name.strip()} {own / 1e3:.1f} ms" for own, _, name in ours[:top])
    )
    return lines


# --- the memory child: runs in its own process -----------------------------------------------


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def training_loop(framework: str, steps: int) -> None:
    """Import ``framework``, then train the MLP for ``steps`` steps at each batch size; print the
    peak RSS after the import and at the end (MiB)."""
    import numpy as np

    if framework == "nabla":
        import nabla as nb
        from nabla import models, nn, optim
    else:
        import torch

        torch.set_num_threads(THREADS)
    after_import = peak_mib()
    rng = np.random.default_rng(0)
    if framework == "nabla":
        model = models.mlp(SIZES)
        opt = optim.Adam(model.parameters(), lr=1e-3)
        loss_fn, wrap = nn.functional.cross_entropy, nb.tensor
    else:
        layers = []
        for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
            layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
        model = torch.nn.Sequential(*layers[:-1])
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn, wrap = torch.nn.functional.cross_entropy, torch.from_numpy
    for size in BATCHES:
        x = wrap(rng.random((size, SIZES[0]), dtype=np.float32))
        y = wrap(rng.integers(0, SIZES[-1], size=size, dtype=np.int64))
        for _ in range(steps):
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
    print(f"{after_import:.1f} {peak_mib():.1f}")


def peak_rss(framework: str, steps: int, runs: int) -> tuple[float, float]:
    """Median (after import, at the end) peak RSS in MiB of the training loop, fresh processes."""
    outputs = [
        python(__file__, "--child", framework, "--steps", str(steps), "--threads", str(THREADS))
        for _ in range(runs)
    ]
    pairs = [tuple(map(float, out.stdout.split())) for out in outputs]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer processes and steps (CI)")
    parser.add_argument("--threads", type=int, default=THREADS, help="BLAS/OpenMP/torch threads")
    parser.add_argument("--steps", type=int, default=None, help="training steps per batch size")
    parser.add_argument("--child", choices=("nabla", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        training_loop(args.child, args.steps)
        return
    runs, rss_runs = (3, 1) if args.quick else (7, 3)
    steps = args.steps or (10 if args.quick else 50)
    print(
        f"Python {sys.version.split()[0]}; {THREADS} thread(s); import time: median of {runs} "
        f"fresh processes; peak RSS: median of {rss_runs} processes training MLP "
        f"{'-'.join(map(str, SIZES))} with Adam for {steps} steps at batch 64 and {steps} at 512\n"
    )
    seconds = {m: import_seconds(m, runs) for m in ("nabla", "torch")}
    rss = {m: peak_rss(m, steps, rss_runs) for m in ("nabla", "torch")}
    header = f"{'':<8}{'import s':>10}{'RSS after import MiB':>22}{'peak RSS MiB':>14}"
    print(header)
    print("-" * len(header))
    for m in ("nabla", "torch"):
        print(f"{m:<8}{seconds[m]:>10.3f}{rss[m][0]:>22.1f}{rss[m][1]:>14.1f}")
    print()
    print("\n".join(import_breakdown("nabla")))
    print()
    ratio = rss["nabla"][1] / rss["torch"][1]
    print(
        f"import nabla {seconds['nabla']:.3f} s (target < {IMPORT_TARGET} s: "
        f"{verdict(seconds['nabla'] < IMPORT_TARGET)}), import torch {seconds['torch']:.3f} s, "
        f"nabla/torch {seconds['nabla'] / seconds['torch']:.2f}"
    )
    print(f"peak RSS nabla/torch = {ratio:.2f} (target <= 1: {verdict(ratio <= 1)})")
    print()
    print(f"RESULT startup.import_nabla_s={seconds['nabla']:.3f}")
    print(f"RESULT startup.import_torch_s={seconds['torch']:.3f}")
    print(f"RESULT startup.peak_rss_nabla_mib={rss['nabla'][1]:.1f}")
    print(f"RESULT startup.peak_rss_torch_mib={rss['torch'][1]:.1f}")
    print(f"RESULT startup.peak_rss_ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
