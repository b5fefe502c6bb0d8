"""Define-and-run against define-by-run: ``nabla.compile``'s replayed step against eager nabla,
PyTorch's fastest configuration and the GEMM-only bound, every implementation in its own process.

Two problems:

* **MLP**: the MNIST MLP 784-256-256-10 with ReLU, cross-entropy and Adam (lr 1e-3), float32,
  at batch 64 (the target) and 512, on the MNIST-10k training split when ``$NABLA_DATA`` is set
  (random images otherwise). One step = gather the minibatch (``x[idx]``) + zero_grad + forward +
  loss + backward + update, as in ``bench/mlp_train.py``, whose workers this script reuses for
  eager nabla, torch (default, ``fused=True``, fused + flush-denormal) and the GEMM bound (the
  eight matrix products of a step alone, into preallocated buffers). "nabla compiled" runs
  ``nb.compile(step)`` on the same minibatches.
* **Rosenbrock**: the lab's 2-D Rosenbrock function in float64 with Adam (lr 1e-3) from
  (-1.2, 1): a problem so small that eager mode's bookkeeping (graph nodes, Tensor objects,
  dispatch) is nearly all of a step's time.

Each worker builds its problem fresh, checks that its first losses equal eager nabla's (the
compiled step must compute the same numbers: the losses are compared bit for bit), warms up,
then times steps back to back in blocks of 50 and takes the median block. Workers run in rounds
(A B C ... A B C ...) and each figure is the median over the rounds; see ``bench/mlp_train.py``
for why every implementation gets its own process. Each nabla worker also measures the memory
one step allocates (tracemalloc's peak over 20 steps, after the warm-up).

Targets (the define-and-run issue): at batch 64 the compiled step <= 1.25x the GEMM bound and
>= 1.5x faster than PyTorch's fastest configuration; on Rosenbrock >= 5x faster than eager.

    python bench/compile_step.py            # about 3 minutes
    python bench/compile_step.py --quick    # 1 round, fewer steps (CI)
"""

from __future__ import annotations

from common import (  # bench/common.py; pin before NumPy loads
    KERNELS,
    Job,
    alternate,
    load_note,
    minibatches,
    nabla_about,
    pin_threads,
    rounds_parser,
    run_worker,
    send,
    thread_pools,
    verdict,
    versions,
)

THREADS = pin_threads()

import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import mlp_train  # noqa: E402  (bench/mlp_train.py: its data, torch and GEMM workers)

BATCHES = (64, 512)
MLP_WORKERS = {
    "nabla": "nabla eager",
    "nabla-compiled": "nabla compiled",
    "torch": "torch",
    "torch-fused": "torch fused",
    "torch-fused-ftz": "torch fused+FTZ",
    "gemm": "GEMM bound",
}
TORCH = ("torch", "torch-fused", "torch-fused-ftz")
ROSENBROCK_WORKERS = {"rosenbrock-eager": "eager", "rosenbrock-compiled": "compiled"}
GEMM_TARGET, TORCH_TARGET, ROSENBROCK_TARGET = 1.25, 1.5, 5.0
ROSENBROCK_LR = 1e-3


# --- workers ------------------------------------------------------------------------------------


def mlp_compiled(x, y, size: int, steps: int) -> dict:
    """``train`` of bench/mlp_train.py with the step compiled: the same minibatches, the same
    first losses to compare, the same warm-up and timing."""
    import nabla as nb
    from nabla import models, nn, optim

    nb.set_num_threads(THREADS)
    model = models.mlp(mlp_train.SIZES)
    model.load_state_dict(mlp_train.mlp_weights(mlp_train.SIZES))
    opt = optim.Adam(model.parameters(), lr=mlp_train.LR)

    def train_step(xb, yb):
        loss = nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    compiled = nb.compile(train_step)
    batches = minibatches(len(x), size)

    def step():
        idx = next(batches)
        return compiled(x[idx], y[idx])

    losses = [float(step().item()) for _ in range(mlp_train.CHECK_STEPS)]
    for _ in range(max(mlp_train.WARMUP, len(x) // size) - mlp_train.CHECK_STEPS):
        step()
    seconds, mean = mlp_train.timed_blocks(step, steps)
    plan = compiled.plan
    return {
        "seconds": seconds,
        "mean": mean,
        "losses": losses,
        "bytes": step_bytes(step),
        "plan": f"{len(plan.instructions)} instructions, {len(plan.buffers)} buffers",
    }


def mlp_eager_bytes(x, y, size: int) -> int:
    import nabla as nb
    from nabla import models, nn, optim

    model = models.mlp(mlp_train.SIZES)
    opt = optim.Adam(model.parameters(), lr=mlp_train.LR)
    batches = minibatches(len(x), size)

    def step():
        idx = next(batches)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(nb.from_numpy(x[idx])), nb.from_numpy(y[idx]))
        loss.backward()
        opt.step()

    for _ in range(20):
        step()
    return step_bytes(step)


def step_bytes(step) -> int:
    """The most memory one step allocates at once: tracemalloc's peak above the start, over 20
    steps (after the caller's warm-up)."""
    import tracemalloc

    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(20):
            step()
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def rosenbrock(compiled: bool, steps: int) -> dict:
    import nabla as nb
    from nabla import optim
    from nabla.lab.functions import FUNCTIONS

    f = FUNCTIONS["rosenbrock"]
    point = nb.tensor(f.start, dtype="float64", requires_grad=True)
    opt = optim.Adam([point], lr=ROSENBROCK_LR)

    def train_step():
        loss = f(point)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    step = nb.compile(train_step) if compiled else train_step
    losses = [float(step().item()) for _ in range(mlp_train.CHECK_STEPS)]
    for _ in range(2000):
        step()
    seconds, mean = mlp_train.timed_blocks(step, steps)
    return {
        "seconds": seconds,
        "mean": mean,
        "losses": losses,
        "bytes": step_bytes(step),
        "final": point.data.tolist(),
    }


def worker(name: str, args) -> None:
    import numpy as np

    if name in ROSENBROCK_WORKERS:
        result = rosenbrock(name.endswith("compiled"), args.rosenbrock_steps)
        send({"about": nabla_about("nabla"), "pools": thread_pools(), **result})
        return
    if name == "data":
        mlp_train.prepare_data(args.data)
        return
    data = np.load(args.data)
    x, y, size = data["x"], data["y"], args.batch
    if name == "nabla-compiled":
        about, result = nabla_about("nabla"), mlp_compiled(x, y, size, args.steps)
    elif name == "gemm":
        about, result = f"numpy {np.__version__}", mlp_train.gemm_bound(x, size, args.steps, 10)
    else:
        about, setup = mlp_train.framework(name)
        result = mlp_train.train(setup, x, y, size, args.steps, 10)
        if name == "nabla":
            result["bytes"] = mlp_eager_bytes(x, y, size)
    send({"about": about, "pools": thread_pools(), **result})


# --- the parent -----------------------------------------------------------------------------------


def median(runs: list[dict], key: str = "seconds") -> float:
    return statistics.median(r[key] for r in runs)


def report(runs: dict) -> list[str]:
    results = []
    print(
        f"{'problem':<12} {'implementation':<18} {'us/step':>10} {'vs eager':>9} {'alloc/step':>11}"
    )
    print("-" * 64)
    for size in BATCHES:
        t = {name: median(runs[name, size]) for name in MLP_WORKERS}
        for name, label in MLP_WORKERS.items():
            alloc = runs[name, size][0].get("bytes")
            print(
                f"{'MLP b' + str(size):<12} {label:<18} {t[name] * 1e6:>10.1f} "
                f"{t['nabla'] / t[name]:>8.2f}x {_kib(alloc):>11}"
            )
        fastest = min(TORCH, key=t.get)
        vs_torch, gemm = t[fastest] / t["nabla-compiled"], t["nabla-compiled"] / t["gemm"]
        speedup = t["nabla"] / t["nabla-compiled"]
        goals = ""
        if size == 64:
            goals = (
                f" (targets: <= {GEMM_TARGET}x the GEMM bound: {verdict(gemm <= GEMM_TARGET)}; "
                f">= {TORCH_TARGET}x torch: {verdict(vs_torch >= TORCH_TARGET)})"
            )
        results.append(
            f"batch {size}: compiled = {gemm:.2f}x the GEMM bound, {vs_torch:.2f}x faster than "
            f"{MLP_WORKERS[fastest]} (the fastest torch), {speedup:.2f}x faster than eager" + goals
        )
        results += [
            f"RESULT compile_step.gemm_multiple_b{size}={gemm:.3f}",
            f"RESULT compile_step.vs_torch_b{size}={vs_torch:.3f}",
            f"RESULT compile_step.vs_eager_b{size}={speedup:.3f}",
        ]
    t = {name: median(runs[name, 0]) for name in ROSENBROCK_WORKERS}
    for name, label in ROSENBROCK_WORKERS.items():
        alloc = runs[name, 0][0].get("bytes")
        print(
            f"{'Rosenbrock':<12} {label:<18} {t[name] * 1e6:>10.1f} "
            f"{t['rosenbrock-eager'] / t[name]:>8.2f}x {_kib(alloc):>11}"
        )
    speedup = t["rosenbrock-eager"] / t["rosenbrock-compiled"]
    results.append(
        f"Rosenbrock + Adam: compiled {speedup:.2f}x faster per step than eager "
        f"(target >= {ROSENBROCK_TARGET}: {verdict(speedup >= ROSENBROCK_TARGET)})"
    )
    results.append(f"RESULT compile_step.rosenbrock_speedup={speedup:.3f}")
    print(
        "(us/step: median over rounds of the median 50-step block; alloc/step: tracemalloc's "
        "peak above the start over 20 steps)"
    )
    return results


def check(runs: dict) -> None:
    """The compiled step must compute eager's numbers: its first losses, bit for bit; torch's
    within 1e-5 (bench/mlp_train.py's check)."""
    bad = []
    for size in BATCHES:
        eager = runs["nabla", size][0]["losses"]
        if runs["nabla-compiled", size][0]["losses"] != eager:
            bad.append(f"MLP batch {size}")
        for name in TORCH:
            if max(abs(a - b) for a, b in zip(eager, runs[name, size][0]["losses"])) > 1e-5:
                bad.append(f"{name} batch {size}")
    if runs["rosenbrock-compiled", 0][0]["losses"] != runs["rosenbrock-eager", 0][0]["losses"]:
        bad.append("Rosenbrock")
    print(
        "check: the first losses of the compiled steps equal eager nabla's bit for bit, torch's "
        "within 1e-5: " + ("ok" if not bad else "FAILED for " + ", ".join(bad))
    )
    if bad:
        raise SystemExit(1)


def _kib(n) -> str:
    return "-" if n is None else f"{n / 1024:.1f} KiB"


def main(argv: list[str] | None = None) -> None:
    parser = rounds_parser(__doc__, THREADS)
    parser.add_argument("--rosenbrock-steps", type=int, help="timed steps (20000; --quick 5000)")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    block = mlp_train.BLOCK
    args.steps = -(-(args.steps or (300 if args.quick else 1000)) // block) * block
    steps = args.rosenbrock_steps or (5000 if args.quick else 20000)
    args.rosenbrock_steps = -(-steps // block) * block
    if args.worker:
        worker(args.worker, args)
        return

    load = os.getloadavg()[0]
    print(
        f"{versions('numpy', 'torch', 'nabla')}; {THREADS} thread(s); every implementation and "
        f"problem in its own process, {args.rounds} round(s), median over the rounds; MLP "
        f"{'-'.join(map(str, mlp_train.SIZES))} + Adam, {args.steps} timed steps; Rosenbrock "
        f"(float64) + Adam, {args.rosenbrock_steps} timed steps"
    )
    script = str(Path(__file__).resolve())
    common = ["--threads", str(THREADS), "--steps", str(args.steps)]
    common += ["--rosenbrock-steps", str(args.rosenbrock_steps)]
    jobs = {
        (name, size): Job(name, ["--batch", str(size)], KERNELS if "nabla" in name else None)
        for size in BATCHES
        for name in MLP_WORKERS
    }
    jobs.update({(name, 0): Job(name, [], KERNELS) for name in ROSENBROCK_WORKERS})
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "train.npz")
        source = run_worker(script, "data", [*common, "--data", data])
        print(f"data: {source['source']}")
        started = time.perf_counter()
        runs = alternate(script, jobs, args.rounds, [*common, "--data", data])
    print(
        f"  nabla: {runs['nabla', 64][0]['about']}; compiled plan at batch 64: "
        f"{runs['nabla-compiled', 64][0]['plan']}"
    )
    print(f"  torch: {runs['torch', 64][0]['about']}")
    print(f"  workers: {time.perf_counter() - started:.0f} s")
    print()
    check(runs)
    print()
    lines = report(runs)
    print()
    print(load_note(load))
    print()
    print(f"RESULT compile_step.data={'mnist10k' if source['real'] else 'random'}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
