"""Start-up cost and memory: ``import nabla`` against ``import torch``, the main job's cold and
warm start now that nabla's optimizers run compiled kernels, and the peak resident memory of the
MLP training loop in each framework.

Import time: each import runs in a fresh interpreter (``python -c``), timed inside it with
``time.perf_counter`` around the import statement alone (interpreter start-up excluded); the
figure is the median over several processes, after one untimed run that warms the file cache.
Then ``python -X importtime -c "import nabla"`` gives the breakdown: the import's own time
("self") summed by top-level package, and nabla's slowest modules. ``import nabla`` does not
import numba: the kernels load on the first optimizer step.

Cold and warm start: the wall time of the whole process ``python -m nabla train --out
TMP/run`` (the main job, as the README and CI run it: the MLP on the embedded digits, a few
seconds), timed by this script around ``subprocess.run``. nabla's kernels are compiled by numba
on first use and cached on disk (``cache=True``), so the first run on a machine pays for the
compilation:

* cold: every cached kernel (``__pycache__/*.nbi`` and ``*.nbc``) under the installed
  ``nabla/kernels`` is moved away (and put back at the end, unless a new one took its place) and
  the run gets ``NUMBA_CACHE_DIR`` set to a new, empty folder, so nothing is found: one run.
* warm: the same command with the same ``NUMBA_CACHE_DIR``, now filled by the cold run: the
  median of 3 runs (``--quick``: 1).
* before kernels: ``NABLA_KERNELS=reference``, the NumPy updates, which never import numba: the
  baseline the warm start is compared with (median of 3; ``--quick``: 1). Warm and reference
  runs alternate.

Peak memory: a fresh process imports one framework (and NumPy), builds the MLP 784-256-256-10
with Adam, and runs the training loop of ``bench/mlp_train.py`` (zero grads, forward,
cross-entropy, backward, update) for ``--steps`` steps at batch 64, then as many at batch 512, on
random float32 data. It reports ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the peak resident
set size, KiB on Linux) after the import and at the end; the figure is the median over a few
processes. Both use the same number of BLAS / OpenMP threads (``--threads``), which matters:
each thread of OpenBLAS and of torch's OpenMP pool has its own buffers. nabla's figure includes
numba, loaded by the first optimizer step.

    python bench/startup.py               # about a minute
    python bench/startup.py --quick       # about 30 s
    python bench/startup.py --threads 1   # default: as many threads as this process's cores

Targets: ``import nabla`` < 0.3 s and peak RSS <= PyTorch's (issue 8); from the compiled-kernels
issue, the cold start of the main job <= 10 s and its warm start within 0.5 s of the run before
kernels (``NABLA_KERNELS=reference``). The last lines, ``RESULT name=value``, are for
``bench/all.py``.
"""

from __future__ import annotations

from common import pin_threads, verdict  # bench/common.py; pin before NumPy loads

THREADS = pin_threads()

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

IMPORT_TARGET = 0.3  # seconds
COLD_TARGET = 10.0  # seconds, the main job's whole process with an empty numba cache
WARM_TARGET = 0.5  # seconds, warm start minus the run before kernels (NABLA_KERNELS=reference)
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


# --- the main job, cold and warm -----------------------------------------------------------------


def kernel_cache_files() -> list[Path]:
    """numba's cache files of nabla's kernels: ``__pycache__/*.nbi`` and ``*.nbc`` under the
    installed ``nabla/kernels`` (found without importing nabla)."""
    spec = importlib.util.find_spec("nabla")
    kernels = Path(next(iter(spec.submodule_search_locations))) / "kernels"
    return sorted(
        p
        for p in kernels.rglob("*")
        if p.suffix in (".nbi", ".nbc") and p.parent.name == "__pycache__"
    )


def main_job_seconds(out: Path, env: dict) -> float:
    """Wall time of the whole process ``python -m nabla train --out OUT``, with ``env``."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "nabla", "train", "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return time.perf_counter() - start


def cold_and_warm(runs: int) -> dict:
    """The main job's cold start, warm starts and starts before kernels (see the docstring):
    seconds, and the number of cache files the cold run wrote."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        kernels_env = {k: v for k, v in os.environ.items() if k != "NABLA_KERNELS"}
        kernels_env["NUMBA_CACHE_DIR"] = str(tmp / "numba-cache")
        reference_env = {**os.environ, "NABLA_KERNELS": "reference"}
        moved = {}  # cache file -> where it waits in the meantime
        try:
            for i, path in enumerate(kernel_cache_files()):
                moved[path] = tmp / "moved" / f"{i}{path.suffix}"
                moved[path].parent.mkdir(exist_ok=True)
                shutil.move(path, moved[path])
            cold = main_job_seconds(tmp / "cold", kernels_env)
            written = len(list((tmp / "numba-cache").rglob("*.nbi")))
            warm, reference = [], []
            for i in range(runs):
                warm.append(main_job_seconds(tmp / f"warm{i}", kernels_env))
                reference.append(main_job_seconds(tmp / f"reference{i}", reference_env))
        finally:
            for path, away in moved.items():
                if not path.exists():
                    shutil.move(away, path)
    return {
        "cold": cold,
        "warm": statistics.median(warm),
        "reference": statistics.median(reference),
        "moved": len(moved),
        "written": written,
    }


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
    runs, rss_runs, job_runs = (3, 1, 1) if args.quick else (7, 3, 3)
    steps = args.steps or (10 if args.quick else 50)
    print(
        f"Python {sys.version.split()[0]}; {THREADS} thread(s); import time: median of {runs} "
        f"fresh processes; main job (python -m nabla train): 1 cold run, then the median of "
        f"{job_runs} warm and {job_runs} before-kernels runs, alternating; peak RSS: median of "
        f"{rss_runs} processes training MLP {'-'.join(map(str, SIZES))} with Adam for {steps} "
        f"steps at batch 64 and {steps} at 512\n"
    )
    seconds = {m: import_seconds(m, runs) for m in ("nabla", "torch")}
    job = cold_and_warm(job_runs)
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
    extra = job["warm"] - job["reference"]
    print("python -m nabla train (the main job on the embedded digits), whole process:")
    print(
        f"  cold start, empty numba cache: {job['cold']:.2f} s (moved away {job['moved']} cached "
        f"kernel file(s) under nabla/kernels; the run wrote {job['written']} index file(s) into "
        "its new NUMBA_CACHE_DIR)"
    )
    print(f"  warm start, cache in place:    {job['warm']:.2f} s")
    print(f"  before kernels (reference):    {job['reference']:.2f} s")
    print(
        f"cold start {job['cold']:.2f} s (target <= {COLD_TARGET:g} s: "
        f"{verdict(job['cold'] <= COLD_TARGET)}); warm - before kernels = {extra:+.2f} s (target "
        f"<= {WARM_TARGET} s: {verdict(extra <= WARM_TARGET)}); compiling the kernels cost "
        f"{job['cold'] - job['warm']:.2f} s once"
    )
    print()
    print(f"RESULT startup.import_nabla_s={seconds['nabla']:.3f}")
    print(f"RESULT startup.import_torch_s={seconds['torch']:.3f}")
    print(f"RESULT startup.peak_rss_nabla_mib={rss['nabla'][1]:.1f}")
    print(f"RESULT startup.peak_rss_torch_mib={rss['torch'][1]:.1f}")
    print(f"RESULT startup.peak_rss_ratio={ratio:.3f}")
    print(f"RESULT startup.main_job_cold_s={job['cold']:.2f}")
    print(f"RESULT startup.main_job_warm_s={job['warm']:.2f}")
    print(f"RESULT startup.main_job_reference_s={job['reference']:.2f}")
    print(f"RESULT startup.main_job_warm_minus_reference_s={extra:.3f}")


if __name__ == "__main__":
    main()
