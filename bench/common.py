"""Shared by the benchmarks: the thread count, one training step per framework, and workers.

BLAS and OpenMP read their thread counts when the library loads, so ``pin_threads()`` must run
before NumPy and torch are imported (this module imports neither at load time): every
implementation then runs on the same threads.

Workers: a script that compares implementations runs each in its own process, ``python SCRIPT
--worker NAME ...``, which prints one ``WORKER {json}`` line (``send``); the parent, which
imports neither nabla nor torch, launches them one at a time, alternating the implementations
over rounds (``alternate``). Each framework keeps thread pools that spin or sleep after a call
(OpenBLAS, torch's OpenMP, numba's OpenMP); two of them in one process slow each other down.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from importlib import metadata
from typing import NamedTuple

WORKER_TAG = "WORKER "
# Environment changes for a nabla worker: the compiled kernels, or the NumPy reference updates.
KERNELS = {"NABLA_KERNELS": None}  # None: removed from the worker's environment (the default)
REFERENCE = {"NABLA_KERNELS": "reference"}


def pin_threads(argv: list[str] | None = None) -> int:
    """Read ``--threads`` (default: the cores this process may use) and export it to BLAS/OpenMP
    and to nabla's compiled kernels (``NUMBA_NUM_THREADS``: numba's pool and
    ``nabla.get_num_threads()`` start from it), so that every script's ``--threads`` reaches
    nabla whether or not it also calls ``nabla.set_num_threads``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    threads = parser.parse_known_args(argv)[0].threads
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(threads)
    # What ``import nabla`` sets before NumPy loads (nabla/kernels/runtime.py), set here because
    # some workers import NumPy first; torch computes with its own libraries, not OpenBLAS.
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")
    return threads


def training_steps(model, twin, x, y) -> dict:
    """One training step (zero grads, forward, cross-entropy, backward) of a nabla ``model`` and
    of its torch ``twin`` on the batch (x, y), each a function of no arguments returning the
    loss."""
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
                f"{key!s:<{width}}{name:<{impl_width}}{seconds * 1e3:>10.3f}"
                f"{size / seconds:>12,.0f}"
                + "".join(f"{t[ref] / seconds:>12.2f}" for ref in references)
            )
    names = ", ".join(references)
    print(f"(vs X = samples/s relative to X ({names}); > 1 means faster than X)")


# --- implementations in their own processes -----------------------------------------------------


def versions(*packages: str) -> str:
    """``"numpy 2.4.6, torch 2.13.0+cpu"``: installed versions, read without importing."""

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    return ", ".join(f"{p} {version(p)}" for p in packages)


def send(result: dict) -> None:
    """In a worker: hand ``result`` (JSON-serializable) to the parent, as the last line."""
    print(WORKER_TAG + json.dumps(result), flush=True)


def run_worker(script: str, name: str, args: list[str], env: dict | None = None) -> dict:
    """Run ``python SCRIPT --worker NAME ARGS`` in a fresh process (this process's environment
    with the changes in ``env``; a value None removes the variable) and return what it sent.
    Its stderr (warnings) is passed on, each line tagged with ``name``; a failure stops here."""
    environ = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    command = [sys.executable, script, "--worker", name, *args]
    done = subprocess.run(command, capture_output=True, text=True, env=environ)
    for line in done.stderr.splitlines():
        print(f"[{name}] {line}", file=sys.stderr)
    sent = [line for line in done.stdout.splitlines() if line.startswith(WORKER_TAG)]
    if done.returncode != 0 or not sent:
        raise SystemExit(
            f"worker {name} failed (exit {done.returncode}): {' '.join(command)}\n"
            f"{done.stdout}{done.stderr}"
        )
    return json.loads(sent[-1][len(WORKER_TAG) :])


class Job(NamedTuple):
    """One worker process: ``python SCRIPT --worker NAME ARGS`` with the environment changes
    ``env`` (see ``run_worker``)."""

    name: str
    args: list[str]
    env: dict | None = None


def alternate(script: str, jobs: dict, rounds: int, args: list[str]) -> dict[object, list[dict]]:
    """Run every job (key -> Job) once per round, one at a time, in turn (A B C A B C ...), each
    with ``args`` after its own: what each sent, by key, one entry per round. Load from other
    processes then falls on every implementation alike, not on whichever ran during it."""
    results: dict[object, list[dict]] = {key: [] for key in jobs}
    for _ in range(rounds):
        for key, job in jobs.items():
            results[key].append(run_worker(script, job.name, [*job.args, *args], job.env))
    return results


def rounds_parser(doc: str, threads: int) -> argparse.ArgumentParser:
    """The options every round-based benchmark takes (``--quick``, ``--threads``, ``--rounds``,
    ``--steps``) and the hidden ones its workers get (``--worker``, ``--batch``, ``--data``)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of fewer steps (CI)")
    parser.add_argument("--threads", type=int, default=threads, help="BLAS/OpenMP/torch threads")
    parser.add_argument("--rounds", type=int, help="rounds of workers (default 3; --quick 1)")
    parser.add_argument("--steps", type=int, help="timed steps per batch size (1000; --quick 300)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    return parser


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def thread_pools() -> str:
    """The native thread pools loaded in this process and their sizes (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (no threadpoolctl)"
    pools = [f"{p['internal_api']} {p['num_threads']}" for p in threadpool_info()]
    return ", ".join(pools) or "none found"


def load_note(start: float) -> str:
    """The 1-minute load average before the run (``start``, from ``os.getloadavg()[0]``: other
    work) and at its end (this benchmark's own threads included), with a warning when other work
    alone exceeded this process's cores."""
    now, cores = os.getloadavg()[0], len(os.sched_getaffinity(0))
    note = f"load average (1 min): {start:.2f} before the run, {now:.2f} at its end"
    if start > cores:
        note += f" (above the {cores} core(s) before the run: other work shared the machine)"
    return note


def nabla_about(worker: str) -> str:
    """In a nabla worker: nabla's version, whether its updates run the compiled kernels or the
    NumPy references, and its threads. The parent's environment decides (``KERNELS``,
    ``REFERENCE``); a worker whose name ends in "reference" must run the references, any other
    the kernels, or it stops here rather than mislabel its figures."""
    import nabla as nb

    compiled = nb.kernels.compiled()
    kind = f"compiled kernels ({nb.kernels.threading_layer()})" if compiled else "NumPy references"
    if compiled == worker.endswith("reference"):
        raise SystemExit(f"worker {worker}: nabla runs {kind}; NABLA_KERNELS decides")
    return f"nabla {nb.__version__}, {kind}, {nb.get_num_threads()} thread(s)"


# --- the MNIST MLP, the same in every framework ---------------------------------------------------


def mlp_weights(sizes=(784, 256, 256, 10), seed: int = 0) -> dict:
    """The weights and biases of an MLP (``nn.Sequential`` keys "0.weight", "0.bias",
    "2.weight", ...) drawn as torch's ``nn.Linear`` draws them, uniform within 1/sqrt(fan_in),
    from a NumPy seed, in float32: the same start for nabla and torch."""
    import numpy as np

    rng = np.random.default_rng(seed)
    weights = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = 1 / np.sqrt(fan_in)
        weights[f"{2 * i}.weight"] = rng.uniform(-bound, bound, (fan_out, fan_in))
        weights[f"{2 * i}.bias"] = rng.uniform(-bound, bound, fan_out)
    return {k: v.astype(np.float32) for k, v in weights.items()}


def minibatches(n: int, size: int, seed: int = 0):
    """Index arrays of ``size`` into ``n`` examples, forever: a fresh permutation every epoch
    (the same for every framework, given the seed), each epoch's last partial batch dropped."""
    import numpy as np

    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        for start in range(0, n - size + 1, size):
            yield order[start : start + size]


def nabla_logits(model, x):
    """``model``'s logits for the NumPy batch ``x``, in evaluation mode (dropout off)."""
    import numpy as np

    import nabla as nb

    model.eval()
    with nb.no_grad():
        return np.concatenate([model(nb.tensor(c)).numpy() for c in np.array_split(x, 4)])
