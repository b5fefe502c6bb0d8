"""Training throughput of the MNIST MLP with Adam: nabla against PyTorch's fastest configuration,
scikit-learn and the GEMM-only bound, every implementation in its own process.

The model is the classic MNIST MLP, 784-256-256-10 with ReLU, cross-entropy loss and Adam
(lr 1e-3), in float32, starting from the same weights everywhere (drawn with NumPy as torch's
``nn.Linear`` draws them, and loaded into each framework). One training step is

    gather the minibatch  ->  zero the gradients  ->  forward  ->  cross-entropy  ->  backward
    ->  Adam update

Data: the MNIST-10k training split (7,000 real images, ``nabla.data.datasets.mnist10k``) when
``$NABLA_DATA`` is set, flattened to 784 values and standardized with the split's mean and
standard deviation. Without ``$NABLA_DATA``: 7,000 random images with random labels, and the
output says so. Every epoch the 7,000 examples are shuffled (the same permutations for every
implementation) and each minibatch is gathered by fancy indexing, ``x[idx]``, as a training loop
does; an epoch's last incomplete batch is dropped.

Implementations:

* nabla: ``nabla.models.mlp`` and ``nabla.optim.Adam``, on the compiled kernels
  (``nabla.kernels``), and "nabla reference": the same under ``NABLA_KERNELS=reference`` (the
  NumPy updates), so the kernels' gain shows.
* torch: ``torch.nn.Sequential``, eager, in three configurations: ``torch.optim.Adam`` by default
  (on CPU a Python loop over the tensors: torch picks ``foreach`` only for GPU tensors),
  ``fused=True`` (one multithreaded C++ kernel over the tensor list), and fused after
  ``torch.set_flush_denormal(True)`` ("fused+FTZ"). At each batch size the fastest of the three
  is the reference for the targets.
* sklearn: ``MLPClassifier(hidden_layer_sizes=(256, 256), solver="adam", batch_size=B,
  alpha=0)`` in float32. It has no single-step API: it is timed by ``partial_fit`` calls, each an
  epoch over the same 7,000 examples (its own shuffling, slicing and input validation included),
  as time per example x B.
* GEMM bound: the eight matrix products one step needs, timed alone in NumPy into preallocated
  ``out=`` arrays: three forward (x W1^T, h1 W2^T, h2 W3^T) and five backward (dW3 = g3^T h2,
  g2 = g3 W3, dW2 = g2^T h1, g1 = g2 W2, dW1 = g1^T x; no gradient for the input). No framework
  on NumPy's BLAS can be faster; nabla's step time as a multiple of it is its overhead.

Why separate processes: every library keeps a thread pool (OpenBLAS, torch's OpenMP, numba's
OpenMP for nabla's kernels) whose threads spin or sleep after each call; with two of them in one
process each slows the other, which flattered nabla by up to 1.7x. So each implementation runs
in a fresh process (``--worker NAME``), launched one at a time by this script, which imports
neither nabla nor torch; and each batch size too, since a process keeps its allocator's state
(nabla's batch-512 step measured up to 1.6x slower in a process that had trained at batch 64 first).
Every worker uses the same ``--threads`` (BLAS and OpenMP variables set before anything loads,
``nabla.set_num_threads``, ``torch.set_num_threads``). The workers run in rounds, every
implementation once per round, in turn (A B C ... A B C ...), and each figure is the median over
the rounds: load from other processes falls on every implementation alike. The range of
nabla/torch over the rounds is printed as a measure of the noise.

Steady state: a worker builds a fresh model, warms up for one epoch or 100 steps, whichever is
more (numba loads its cached kernels, allocators and thread pools settle), then times
``--steps`` steps (1,000; ``--quick``: 300) back to back, minibatch gathering included, reading
the clock every 50 steps: its figure is the median over those blocks of the mean time per step,
which a burst of load from another process on a shared machine does not distort; the mean over
all the steps is printed beside it. The first five losses of every framework are compared (same
weights, same minibatches): they must agree to 1e-5, or the timings would compare different
computations.

Where the time goes: after the timed steps each framework worker times every part of the step
alone (gather, zero_grad, forward + loss, backward, optimizer step) over ``--phase-steps`` more
steps, median per part; printed for nabla, nabla reference and the fastest torch, next to the
GEMM bound's forward and backward halves (timed alone in the GEMM worker).

Targets (from the compiled-kernels issue): nabla/fastest-torch samples/s >= 1.2 at batch 64 and
>= 1.0 at batch 512; nabla's batch-512 step <= 1.2x the GEMM-only bound; the kernels never
slower than the reference. Each line says met or NOT met.

    python bench/mlp_train.py               # about 4 minutes: 3 rounds of 1,000 steps
    python bench/mlp_train.py --quick       # about 40 s: 1 round of 300 steps (CI)
    python bench/mlp_train.py --threads 1   # default: as many threads as this process's cores

The last lines, ``RESULT name=value``, are for ``bench/all.py``.
"""

from __future__ import annotations

from common import (  # bench/common.py; pin before NumPy loads
    KERNELS,
    REFERENCE,
    Job,
    alternate,
    load_note,
    minibatches,
    mlp_weights,
    nabla_about,
    pin_threads,
    print_step_table,
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

SIZES = (784, 256, 256, 10)
BATCHES = (64, 512)
LR = 1e-3
EXAMPLES = 7000  # the MNIST-10k training split, and the random stand-in's size
WARMUP = 100  # steps, at least; or one epoch if that is more
BLOCK = 50  # timed steps between two readings of the clock
CHECK_STEPS, CHECK_TOLERANCE = 5, 1e-5
TARGETS = {64: 1.2, 512: 1.0}  # nabla/fastest torch samples/s, from the compiled-kernels issue
GEMM_TARGET = 1.2  # nabla step time / GEMM bound at batch 512
# Worker name -> (label, environment changes); they run in this order in every round.
WORKERS = {
    "nabla": ("nabla", KERNELS),
    "nabla-reference": ("nabla reference", REFERENCE),
    "torch": ("torch", None),
    "torch-fused": ("torch fused", None),
    "torch-fused-ftz": ("torch fused+FTZ", None),
    "gemm": ("GEMM bound", None),
    "sklearn": ("sklearn", None),
}
FRAMEWORKS = ("nabla", "nabla-reference", "torch", "torch-fused", "torch-fused-ftz")
TORCH = ("torch", "torch-fused", "torch-fused-ftz")
PARTS = ("gather", "zero_grad", "forward + loss", "backward", "optimizer step")


# --- workers: each runs in its own process ------------------------------------------------------


def prepare_data(path: str) -> None:
    """The data worker: write the training set to ``path`` (.npz) and send where it came from.
    It imports nabla (for the MNIST-10k split) so that the parent does not have to."""
    import numpy as np

    if os.environ.get("NABLA_DATA"):
        from nabla.data import datasets

        train = datasets.mnist10k(download=False).train
        x, y = train.x.reshape(len(train.x), -1).astype(np.float32), train.y.astype(np.int64)
        mean, std = float(x.mean()), float(x.std())
        x = (x - np.float32(mean)) / np.float32(std)
        source = (
            f"MNIST-10k train split ($NABLA_DATA), {len(x):,} real images flattened to "
            f"{x.shape[1]}, standardized (mean {mean:.4f}, std {std:.4f})"
        )
    else:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((EXAMPLES, SIZES[0]), dtype=np.float32)
        y = rng.integers(0, SIZES[-1], size=EXAMPLES, dtype=np.int64)
        source = (
            f"NOTE: $NABLA_DATA is unset, so random data instead of MNIST-10k: {EXAMPLES:,} "
            "standard-normal 784-value images with random labels (the same computation per "
            "step; the loss does not fall)"
        )
    np.savez(path, x=np.ascontiguousarray(x), y=y)
    send({"source": source, "real": bool(os.environ.get("NABLA_DATA"))})


def framework(name: str):
    """(description, setup) for a framework worker; ``setup()`` returns a fresh (model,
    optimizer, loss function, array -> tensor) from the initial weights."""
    weights = mlp_weights(SIZES)
    if name.startswith("nabla"):
        import nabla as nb
        from nabla import models, nn, optim

        nb.set_num_threads(THREADS)

        def setup():
            model = models.mlp(SIZES)
            model.load_state_dict(weights)
            opt = optim.Adam(model.parameters(), lr=LR)
            # from_numpy, like torch's: the minibatch x[idx] is already a fresh array
            return model, opt, nn.functional.cross_entropy, nb.from_numpy

        return nabla_about(name), setup

    import torch

    torch.set_num_threads(THREADS)
    flush = torch.set_flush_denormal(True) if name == "torch-fused-ftz" else False

    def setup():
        layers = []
        for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
            layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
        model = torch.nn.Sequential(*layers[:-1])
        model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
        opt = torch.optim.Adam(model.parameters(), lr=LR, fused=(name != "torch") or None)
        return model, opt, torch.nn.functional.cross_entropy, torch.from_numpy

    flags = ", flush denormal on" if flush else ""
    return f"torch {torch.__version__}, {torch.get_num_threads()} thread(s){flags}", setup


def timed_blocks(step, steps: int) -> tuple[float, float]:
    """Run ``step`` ``steps`` times back to back, reading the clock every ``BLOCK`` steps: the
    median over the blocks of the mean seconds per step, and the mean over all the steps."""
    bounds = [time.perf_counter()]
    for i in range(1, steps + 1):
        step()
        if i % BLOCK == 0:
            bounds.append(time.perf_counter())
    blocks = [(b - a) / BLOCK for a, b in zip(bounds, bounds[1:])]
    return statistics.median(blocks), (bounds[-1] - bounds[0]) / (len(blocks) * BLOCK)


def train(setup, x, y, size: int, steps: int, phase_steps: int) -> dict:
    """Warm up, time ``steps`` training steps (``timed_blocks``), then each part of
    ``phase_steps`` more steps alone: seconds per step, the first losses, the median seconds of
    each part."""
    model, opt, loss_fn, wrap = setup()
    batches = minibatches(len(x), size)

    def step():
        idx = next(batches)
        xb, yb = wrap(x[idx]), wrap(y[idx])
        opt.zero_grad()  # torch: set_to_none=True, what a torch training loop does
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    losses = [float(step().item()) for _ in range(CHECK_STEPS)]
    for _ in range(max(WARMUP, len(x) // size) - CHECK_STEPS):
        step()
    seconds, mean = timed_blocks(step, steps)

    times = {part: [] for part in PARTS}
    for _ in range(phase_steps):
        t0 = time.perf_counter()
        idx = next(batches)
        xb, yb = wrap(x[idx]), wrap(y[idx])
        t1 = time.perf_counter()
        opt.zero_grad()
        t2 = time.perf_counter()
        loss = loss_fn(model(xb), yb)
        t3 = time.perf_counter()
        loss.backward()
        t4 = time.perf_counter()
        opt.step()
        t5 = time.perf_counter()
        for part, dt in zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            times[part].append(dt)
    phases = {part: statistics.median(t) for part, t in times.items()}
    return {"seconds": seconds, "mean": mean, "losses": losses, "phases": phases}


class GemmBound:
    """The eight matmuls of one training step, into buffers allocated once (see the docstring).
    Weights in torch's layout (out, in), as nabla and torch store them."""

    def __init__(self, x):
        import numpy as np

        rng = np.random.default_rng(0)
        n = len(x)
        self.matmul = np.matmul
        self.x = x
        self.W = [
            rng.standard_normal((o, i), dtype=np.float32) / np.float32(np.sqrt(i))
            for i, o in zip(SIZES[:-1], SIZES[1:])
        ]
        self.h = [np.empty((n, o), np.float32) for o in SIZES[1:]]  # activations a1, a2, logits
        self.g = [np.empty((n, o), np.float32) for o in SIZES[1:]]  # their gradients
        self.g[2][...] = rng.standard_normal(self.g[2].shape)
        self.dW = [np.empty_like(w) for w in self.W]

    def forward(self) -> None:
        for i, h in enumerate([self.x, *self.h[:2]]):
            self.matmul(h, self.W[i].T, out=self.h[i])

    def backward(self) -> None:
        inputs = [self.x, *self.h[:2]]
        for i in (2, 1, 0):
            self.matmul(self.g[i].T, inputs[i], out=self.dW[i])
            if i > 0:
                self.matmul(self.g[i], self.W[i], out=self.g[i - 1])


def gemm_bound(x, size: int, steps: int, phase_steps: int) -> dict:
    """Seconds per step of the eight matmuls (one block of ``steps`` after a warm-up), and the
    median seconds of the forward and backward halves, each timed alone."""
    import numpy as np

    gemm = GemmBound(np.ascontiguousarray(x[:size]))
    for _ in range(WARMUP):
        gemm.forward()
        gemm.backward()
    seconds, mean = timed_blocks(lambda: (gemm.forward(), gemm.backward()), steps)
    halves = {"forward + loss": [], "backward": []}
    for _ in range(phase_steps):
        t0 = time.perf_counter()
        gemm.forward()
        t1 = time.perf_counter()
        gemm.backward()
        t2 = time.perf_counter()
        halves["forward + loss"].append(t1 - t0)
        halves["backward"].append(t2 - t1)
    phases = {k: statistics.median(v) for k, v in halves.items()}
    return {"seconds": seconds, "mean": mean, "phases": phases}


def sklearn_epochs(x, y, size: int, epochs: int) -> dict:
    """Seconds per ``size`` examples of ``MLPClassifier.partial_fit``, each call an epoch over
    (x, y), after one untimed call (which builds the layers)."""
    import warnings

    import numpy as np
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=SIZES[1:-1],
        activation="relu",
        solver="adam",
        alpha=0.0,  # no L2 term, as in the others (sklearn computes it anyway)
        batch_size=size,
        learning_rate_init=LR,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: one epoch is not convergence
        clf.partial_fit(x, y, classes=np.arange(SIZES[-1]))
        assert clf.coefs_[0].dtype == np.float32, "sklearn would train in float64"
        start = time.perf_counter()
        for _ in range(epochs):
            clf.partial_fit(x, y)
        elapsed = time.perf_counter() - start
    seconds = elapsed / (epochs * len(x)) * size
    return {"seconds": seconds, "mean": seconds}


def worker(name: str, args) -> None:
    """Run implementation ``name`` at batch ``args.batch`` and send its figures."""
    import numpy as np

    if name == "data":
        prepare_data(args.data)
        return
    data = np.load(args.data)
    x, y, size = data["x"], data["y"], args.batch
    if name == "gemm":
        result = gemm_bound(x, size, args.steps, args.phase_steps)
        about = f"numpy {np.__version__}"
    elif name == "sklearn":
        import sklearn

        epochs = 1 if args.quick else 3
        result = sklearn_epochs(x, y, size, epochs)
        about = f"scikit-learn {sklearn.__version__}, {epochs} timed epoch(s) after 1"
    else:
        about, setup = framework(name)
        result = train(setup, x, y, size, args.steps, args.phase_steps)
    send({"about": about, "pools": thread_pools(), **result})


# --- the parent: launches the workers, reports ------------------------------------------------


def median_seconds(runs: dict, size: int, key: str = "seconds") -> dict[str, float]:
    """Median over the rounds of each implementation's seconds per step at ``size`` (``key``
    "seconds": the median over its blocks; "mean": over all its timed steps), by label."""
    return {
        WORKERS[name][0]: statistics.median(r[key] for r in rounds)
        for (name, s), rounds in runs.items()
        if s == size
    }


def fastest_torch(runs: dict, size: int) -> str:
    """The worker name of the fastest torch configuration at batch ``size``."""
    t = median_seconds(runs, size)
    return min(TORCH, key=lambda n: t[WORKERS[n][0]])


def check(runs: dict) -> None:
    """The first losses of every framework at batch 64 (first round) must agree with nabla's."""
    first = {name: runs[name, 64][0]["losses"] for name in FRAMEWORKS}
    errors = {
        name: max(abs(a - b) for a, b in zip(first["nabla"], losses))
        for name, losses in first.items()
        if name != "nabla"
    }
    ok = "ok" if max(errors.values()) < CHECK_TOLERANCE else "MISMATCH"
    print(
        f"check: the first {CHECK_STEPS} losses at batch 64, from the same weights on the same "
        f"minibatches: nabla {first['nabla'][0]:.6f} -> {first['nabla'][-1]:.6f}; max |x - nabla|: "
        + ", ".join(f"{WORKERS[n][0]} {e:.1e}" for n, e in errors.items())
        + f" ({ok})"
    )
    if ok != "ok":
        raise SystemExit("the frameworks disagree; timings would compare different computations")


def report(runs: dict) -> list[str]:
    """Print the table and the ratios against the targets; return the RESULT lines."""
    results = {size: median_seconds(runs, size) for size in BATCHES}
    print_step_table(results, "batch", lambda size: size, ["nabla"])
    print(
        f"(ms/step: the median over the {BLOCK}-step blocks of the timed steps, run back to back; "
        "the mean over all of them, which a burst of load from other processes inflates, for "
        "comparison: "
        + "; ".join(
            f"batch {size}: "
            + ", ".join(f"{k} {v * 1e3:.3f}" for k, v in median_seconds(runs, size, "mean").items())
            for size in BATCHES
        )
        + ". FTZ: torch.set_flush_denormal(True), subnormal floats flushed to zero)"
    )
    print()
    lines, kernel_ok, kernel_text = [], True, []
    for size, t in results.items():
        ref_name = fastest_torch(runs, size)
        ref = WORKERS[ref_name][0]
        vs_torch, vs_sklearn = t[ref] / t["nabla"], t["sklearn"] / t["nabla"]
        spread = [
            a["seconds"] / b["seconds"] for a, b in zip(runs[ref_name, size], runs["nabla", size])
        ]
        rounds = f"rounds: {min(spread):.2f} to {max(spread):.2f}" if len(spread) > 1 else "1 round"
        gemm = t["nabla"] / t["GEMM bound"]
        speedup = t["nabla reference"] / t["nabla"]
        kernel_ok &= speedup >= 1
        kernel_text.append(
            f"batch {size} {t['nabla'] * 1e3:.3f} ms vs {t['nabla reference'] * 1e3:.3f} ms "
            f"({speedup:.2f}x)"
        )
        gemm_target = f" (target <= {GEMM_TARGET}: {verdict(gemm <= GEMM_TARGET)})"
        print(
            f"batch {size}: nabla/torch samples/s = {vs_torch:.2f} ({rounds}) against {ref}, the "
            "fastest torch "
            f"(target >= {TARGETS[size]}: {verdict(vs_torch >= TARGETS[size])}); "
            f"nabla/sklearn = {vs_sklearn:.2f} (target > 1: {verdict(vs_sklearn > 1)}); "
            f"nabla step = {gemm:.2f}x the GEMM bound" + (gemm_target if size == 512 else "")
        )
        lines += [
            f"RESULT mlp_train.nabla_samples_per_s_b{size}={size / t['nabla']:.0f}",
            f"RESULT mlp_train.nabla_reference_samples_per_s_b{size}="
            f"{size / t['nabla reference']:.0f}",
            f"RESULT mlp_train.torch_default_samples_per_s_b{size}={size / t['torch']:.0f}",
            f"RESULT mlp_train.torch_fused_samples_per_s_b{size}={size / t['torch fused']:.0f}",
            f"RESULT mlp_train.torch_fused_ftz_samples_per_s_b{size}="
            f"{size / t['torch fused+FTZ']:.0f}",
            f"RESULT mlp_train.torch_samples_per_s_b{size}={size / t[ref]:.0f}",
            f"RESULT mlp_train.torch_reference_b{size}={ref_name.replace('-', '_')}",
            f"RESULT mlp_train.vs_torch_b{size}={vs_torch:.3f}",
            f"RESULT mlp_train.vs_sklearn_b{size}={vs_sklearn:.3f}",
            f"RESULT mlp_train.gemm_multiple_b{size}={gemm:.3f}",
            f"RESULT mlp_train.kernel_speedup_b{size}={speedup:.3f}",
        ]
    print(
        "kernels vs reference step: "
        + ", ".join(kernel_text)
        + f" (reference time / kernels time): {verdict(kernel_ok)} (kernels must never be slower)"
    )
    return lines


def breakdown(runs: dict, steps: int) -> None:
    """Each part of the step timed alone (median over the part's steps, then over the rounds),
    for nabla, nabla reference and the fastest torch, next to the GEMM bound's halves; then
    their sum against the step as timed in the block."""

    def part(name: str, size: int, p: str) -> float | None:
        values = [r["phases"].get(p) for r in runs[name, size]]
        return statistics.median(values) if None not in values else None

    fastest = {size: fastest_torch(runs, size) for size in BATCHES}
    print(
        f"Where the time goes (each part timed alone: median of {steps} steps per process, then "
        "over the rounds; torch: the fastest, "
        + ", ".join(f"{WORKERS[n][0]} at batch {size}" for size, n in fastest.items())
        + ")"
    )
    labels = ("nabla ms", "nabla ref ms", "torch ms", "GEMMs ms", "nabla - GEMMs")
    header = f"{'batch':>6}  {'part of the step':<22}" + "".join(f"{x:>14}" for x in labels)
    print(header)
    print("-" * len(header))
    for size in BATCHES:
        columns = ("nabla", "nabla-reference", fastest[size])
        for p in PARTS:
            row = f"{size:>6}  {p:<22}" + "".join(
                f"{part(n, size, p) * 1e3:>14.3f}" for n in columns
            )
            bound = part("gemm", size, p)
            if bound is not None:
                row += f"{bound * 1e3:>14.3f}{(part('nabla', size, p) - bound) * 1e3:>14.3f}"
            print(row)
        total = [sum(part(n, size, p) for p in PARTS) for n in columns]
        print(f"{size:>6}  {'sum of the parts':<22}" + "".join(f"{x * 1e3:>14.3f}" for x in total))
        whole = median_seconds(runs, size)
        print(
            f"{size:>6}  {'step, timed in blocks':<22}"
            + "".join(f"{whole[WORKERS[n][0]] * 1e3:>14.3f}" for n in columns)
        )


def main(argv: list[str] | None = None) -> None:
    parser = rounds_parser(__doc__, THREADS)
    parser.add_argument("--phase-steps", type=int, help="steps of the breakdown (200; --quick 50)")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.steps = -(-(args.steps or (300 if args.quick else 1000)) // BLOCK) * BLOCK
    args.phase_steps = args.phase_steps or (50 if args.quick else 200)
    if args.worker:
        worker(args.worker, args)
        return

    load = os.getloadavg()[0]
    print(
        f"{versions('numpy', 'torch', 'scikit-learn', 'nabla')}; {THREADS} thread(s); MLP "
        f"{'-'.join(map(str, SIZES))} ReLU float32, Adam lr {LR:g}; step = gather minibatch + "
        "zero grads + forward + cross-entropy + backward + update; every implementation and "
        f"batch size in its own process, {args.rounds} round(s), median over the rounds; in "
        f"each process a warm-up of one epoch or {WARMUP} steps, whichever is more, then "
        f"{args.steps} steps back to back, timed in blocks of {BLOCK}: the median block"
    )
    script = str(Path(__file__).resolve())
    common = ["--threads", str(THREADS), "--steps", str(args.steps)]
    common += ["--phase-steps", str(args.phase_steps)] + (["--quick"] if args.quick else [])
    jobs = {
        (name, size): Job(name, ["--batch", str(size)], env)
        for size in BATCHES
        for name, (_, env) in WORKERS.items()
    }
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "train.npz")
        source = run_worker(script, "data", [*common, "--data", data])
        print(
            f"data: {source['source']}; shuffled every epoch, minibatches gathered by fancy "
            "indexing, each epoch's last incomplete batch dropped"
        )
        runs = alternate(script, jobs, args.rounds, [*common, "--data", data])
    for name, (label, _) in WORKERS.items():
        first = runs[name, BATCHES[0]][0]
        print(f"  {label}: {first['about']}; thread pools: {first['pools']}")
    print()
    check(runs)
    print()
    lines = report(runs)
    print()
    breakdown(runs, args.phase_steps)
    print()
    print(load_note(load))
    print()
    print(f"RESULT mlp_train.data={'mnist10k' if source['real'] else 'random'}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
