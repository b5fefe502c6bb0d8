"""Training throughput of an MLP with Adam: nabla against PyTorch eager, scikit-learn and the
GEMM-only bound.

The model is the classic MNIST MLP, 784-256-256-10 with ReLU, cross-entropy loss and Adam
(lr 1e-3), in float32. One training step is

    zero the gradients  ->  forward  ->  cross-entropy  ->  backward  ->  Adam update

* nabla: ``nabla.models.mlp`` and ``nabla.optim.Adam`` (``opt.zero_grad()`` fills the flat
  gradient buffer with zeros).
* torch: ``torch.nn.Sequential`` and ``torch.optim.Adam``, eager mode, in two flavours: the
  default (on CPU, a Python loop over the tensors, a few kernels each: torch picks ``foreach``
  only for GPU tensors) and ``fused=True`` (one multithreaded C++ kernel doing the whole
  update over the tensor list; on CPU since torch 2.4). The faster of the two at each batch
  size is the reference.
* sklearn: ``MLPClassifier(hidden_layer_sizes=(256, 256), solver="adam", batch_size=B,
  alpha=0)``. It has no single-step API, so it is timed by ``partial_fit`` on a fixed set of
  ``SKLEARN_BATCHES`` batches: one call runs one epoch over them (shuffling, slicing, forward,
  backward, Adam), and its samples/s is samples processed / time of the call. That includes its
  per-call input validation, spread over the batches.
* GEMM bound: the eight matrix products one step needs, timed alone in NumPy into preallocated
  ``out=`` arrays: three forward (x W1^T, h1 W2^T, h2 W3^T) and five backward (dW3 = g3^T h2,
  g2 = g3 W3, dW2 = g2^T h1, g1 = g2 W2, dW1 = g1^T x; no gradient for the input). No framework
  on NumPy's BLAS can be faster; nabla's step time as a multiple of it is its overhead.

All of them run in one process, with the same number of BLAS / OpenMP threads (``--threads``,
set before NumPy and torch load; ``torch.set_num_threads`` likewise), on the same data: a cycle
of a few random batches, identical for every implementation. Before timing, the script trains a
nabla model and its torch twin (the same initial weights, copied) for a few steps on the same
batches and checks that their losses agree at every step, so the timings compare the same
computation.

Timing runs in rounds: in each round every implementation in turn warms up (``common.warm_up``)
and then takes several steps (``common.measure``), one implementation after the other, since
their thread pools spin after each call and alternating step by step would make each pay for the
other's idle threads. Each figure is the best round's mean time per step: load from other
processes only ever adds time (and on a shared 2-core machine it can add a lot: a thread pool
that loses a core to another process waits a scheduler tick at every barrier), so the fastest
round is the closest to what the machine does alone. Rounds, rather than all of one
implementation's repeats in a row, give every implementation a chance at the quiet moments; the
range of nabla/torch over the rounds is printed as a measure of the noise.

Last, where the time goes: each part of the step (zero_grad, forward + loss, backward,
optimizer step) timed alone in nabla and in the reference torch, next to the matmuls that part
needs (the GEMM bound's three forward and five backward products): what is left is overhead.

    python bench/mlp_train.py               # about 30 s
    python bench/mlp_train.py --quick       # a few seconds, for CI
    python bench/mlp_train.py --threads 1   # default: as many threads as this process's cores

The last lines, ``RESULT name=value``, are for ``bench/all.py``.
"""

from __future__ import annotations

from common import measure, pin_threads, print_step_table  # bench/common.py; pin before NumPy loads

THREADS = pin_threads()

import argparse  # noqa: E402
import itertools  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import NamedTuple  # noqa: E402

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
import torch  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

import nabla as nb  # noqa: E402
from nabla import models, nn, optim  # noqa: E402

SIZES = (784, 256, 256, 10)
BATCHES = (64, 512)
LR = 1e-3
DISTINCT_BATCHES = 8  # the data cycle: enough that no step reuses the previous step's batch
SKLEARN_BATCHES = 16  # batches per partial_fit call
TARGETS = {64: 1.2, 512: 0.95}  # nabla/torch samples/s, from issue 8
GEMM_TARGET = 1.3  # nabla step time / GEMM bound at batch 512


def data(size: int, count: int = DISTINCT_BATCHES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count * size`` random images in [0, 1) and labels: what every implementation sees."""
    rng = np.random.default_rng(seed)
    x = rng.random((count * size, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], size=count * size, dtype=np.int64)
    return x, y


def nabla_model() -> nn.Sequential:
    nb.manual_seed(0)
    return models.mlp(SIZES)


def torch_twin(model: nn.Sequential) -> torch.nn.Sequential:
    """The same MLP in torch, holding a copy of ``model``'s weights."""
    layers = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    twin = torch.nn.Sequential(*layers[:-1])
    twin.load_state_dict(
        {k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()}
    )
    return twin


class Setup(NamedTuple):
    """What a training loop needs; nabla's and torch's have the same interface."""

    model: object
    opt: object
    loss_fn: object
    batches: list  # (x, y) pairs of framework tensors


def nabla_setup(x: np.ndarray, y: np.ndarray, size: int) -> Setup:
    model = nabla_model()
    batches = [
        (nb.tensor(x[i : i + size]), nb.tensor(y[i : i + size])) for i in range(0, len(x), size)
    ]
    return Setup(model, optim.Adam(model.parameters(), lr=LR), nn.functional.cross_entropy, batches)


def torch_setup(x: np.ndarray, y: np.ndarray, size: int, fused: bool) -> Setup:
    """The torch twin, with the default Adam or the fused one."""
    twin = torch_twin(nabla_model())
    opt = torch.optim.Adam(twin.parameters(), lr=LR, fused=fused or None)
    batches = [
        (torch.from_numpy(x[i : i + size]), torch.from_numpy(y[i : i + size]))
        for i in range(0, len(x), size)
    ]
    return Setup(twin, opt, torch.nn.functional.cross_entropy, batches)


def training_step(setup: Setup):
    """A function of no arguments: one training step on the next batch of the cycle."""
    model, opt, loss_fn, _ = setup
    cycle = itertools.cycle(setup.batches)

    def step():
        x, y = next(cycle)
        opt.zero_grad()  # torch: set_to_none=True, what a torch training loop does
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def phases(setup: Setup, steps: int) -> dict[str, float]:
    """Median seconds of each part of the training step, timed separately over ``steps`` steps
    (after as many untimed ones)."""
    model, opt, loss_fn, batches = setup
    times = {"zero_grad": [], "forward + loss": [], "backward": [], "optimizer step": []}
    for i in range(2 * steps):
        x, y = batches[i % len(batches)]
        t0 = time.perf_counter()
        opt.zero_grad()
        t1 = time.perf_counter()
        loss = loss_fn(model(x), y)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        if i >= steps:
            for part, seconds in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                times[part].append(seconds)
    return {part: statistics.median(t) for part, t in times.items()}


def sklearn_epoch(size: int):
    """One ``partial_fit`` call: an epoch over ``SKLEARN_BATCHES`` batches of ``size``."""
    x, y = data(size, SKLEARN_BATCHES)
    clf = MLPClassifier(
        hidden_layer_sizes=SIZES[1:-1],
        activation="relu",
        solver="adam",
        alpha=0.0,  # no L2 term, as in the others (sklearn computes it anyway)
        batch_size=size,
        learning_rate_init=LR,
        random_state=0,
    )
    clf.partial_fit(x, y, classes=np.arange(SIZES[-1]))  # builds the layers
    assert clf.coefs_[0].dtype == np.float32, "sklearn would train in float64"
    return lambda: clf.partial_fit(x, y)


class GemmBound:
    """The eight matmuls of one training step, into buffers allocated once (see the docstring).
    Weights in torch's layout (out, in), as nabla and torch store them."""

    def __init__(self, x: np.ndarray):
        rng = np.random.default_rng(0)
        n = len(x)
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
            np.matmul(h, self.W[i].T, out=self.h[i])

    def backward(self) -> None:
        inputs = [self.x, *self.h[:2]]
        for i in (2, 1, 0):
            np.matmul(self.g[i].T, inputs[i], out=self.dW[i])
            if i > 0:
                np.matmul(self.g[i], self.W[i], out=self.g[i - 1])

    def __call__(self) -> None:
        self.forward()
        self.backward()


def check(steps: int = 5) -> None:
    """Train nabla and torch from the same weights on the same batches; their losses must agree."""
    x, y = data(64)
    run = {
        "nabla": training_step(nabla_setup(x, y, 64)),
        "torch": training_step(torch_setup(x, y, 64, fused=False)),
        "torch fused": training_step(torch_setup(x, y, 64, fused=True)),
    }
    losses = {name: [float(step().item()) for _ in range(steps)] for name, step in run.items()}
    error = max(
        abs(a - b)
        for name in ("torch", "torch fused")
        for a, b in zip(losses["nabla"], losses[name])
    )
    ok = "ok" if error < 1e-5 else "MISMATCH"
    print(
        f"check: {steps} Adam steps at batch 64 from the same weights; loss nabla "
        f"{losses['nabla'][0]:.6f} -> {losses['nabla'][-1]:.6f}, torch {losses['torch'][0]:.6f} "
        f"-> {losses['torch'][-1]:.6f}; max |nabla - torch| over the steps {error:.1e} ({ok})"
    )
    if ok != "ok":
        raise SystemExit("nabla and torch disagree; timings would compare different computations")


def time_batch(size: int, number: int, rounds: int, warm: float) -> list[dict[str, float]]:
    """Seconds per training step of every implementation at batch ``size``, one dict per round."""
    x, y = data(size)
    run = {
        "nabla": training_step(nabla_setup(x, y, size)),
        "torch": training_step(torch_setup(x, y, size, fused=False)),
        "torch fused": training_step(torch_setup(x, y, size, fused=True)),
        "GEMM bound": GemmBound(x[:size]),
    }
    sklearn_run = {"sklearn": sklearn_epoch(size)}
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: one epoch is not convergence
        for _ in range(rounds):
            seconds = measure(run, number, 1, warm)
            seconds["sklearn"] = measure(sklearn_run, 1, 1, warm)["sklearn"] / SKLEARN_BATCHES
            times.append(seconds)
    return times


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(rounds: dict[int, list[dict[str, float]]]) -> list[str]:
    """Print the table and the ratios against the targets; return the RESULT lines."""
    results = {
        size: {name: min(r[name] for r in times) for name in times[0]}
        for size, times in rounds.items()
    }
    print_step_table(results, "batch", lambda size: size, ["nabla"])
    print()
    lines = []
    for size, t in results.items():
        ref = min(("torch", "torch fused"), key=t.get)  # the faster torch is the reference
        vs_torch, vs_sklearn = t[ref] / t["nabla"], t["sklearn"] / t["nabla"]
        spread = [r[ref] / r["nabla"] for r in rounds[size]]
        gemm = t["nabla"] / t["GEMM bound"]
        gemm_target = f" (target <= {GEMM_TARGET}: {verdict(gemm <= GEMM_TARGET)})"
        print(
            f"batch {size}: nabla/torch samples/s = {vs_torch:.2f} (rounds: {min(spread):.2f} to "
            f"{max(spread):.2f}) against {ref}, the faster torch "
            f"(target >= {TARGETS[size]}: {verdict(vs_torch >= TARGETS[size])}); "
            f"nabla/sklearn = {vs_sklearn:.2f} (target > 1: {verdict(vs_sklearn > 1)}); "
            f"nabla step = {gemm:.2f}x the GEMM bound" + (gemm_target if size == 512 else "")
        )
        lines += [
            f"RESULT mlp_train.nabla_samples_per_s_b{size}={size / t['nabla']:.0f}",
            f"RESULT mlp_train.torch_samples_per_s_b{size}={size / t[ref]:.0f}",
            f"RESULT mlp_train.torch_reference_b{size}={ref.replace(' ', '_')}",
            f"RESULT mlp_train.vs_torch_b{size}={vs_torch:.3f}",
            f"RESULT mlp_train.vs_sklearn_b{size}={vs_sklearn:.3f}",
            f"RESULT mlp_train.gemm_multiple_b{size}={gemm:.3f}",
        ]
    return lines


def breakdown(rounds: dict[int, list[dict[str, float]]], steps: int) -> None:
    """Print where the step's time goes: each part timed alone, in nabla and in the reference
    torch, next to the matmuls that part needs (the GEMM bound's forward and backward halves)."""
    header = (
        f"{'batch':>6}  {'part of the step':<16}{'nabla ms':>10}{'torch ms':>10}"
        f"{'GEMMs ms':>10}{'nabla - GEMMs':>15}"
    )
    print(
        f"Where the time goes (each part timed alone, median of {steps} steps; torch: the "
        "reference)"
    )
    print(header)
    print("-" * len(header))
    for size, times in rounds.items():
        x, y = data(size)
        fused = min(("torch", "torch fused"), key=lambda k: min(r[k] for r in times))
        ours = phases(nabla_setup(x, y, size), steps)
        theirs = phases(torch_setup(x, y, size, fused=fused == "torch fused"), steps)
        gemm = GemmBound(x[:size])
        halves = measure({"forward + loss": gemm.forward, "backward": gemm.backward}, steps, 3)
        for part, seconds in ours.items():
            bound = halves.get(part)
            extra = f"{(seconds - bound) * 1e3:>15.3f}" if bound else ""
            gemms = f"{bound * 1e3:>10.3f}" if bound else f"{'':>10}"
            print(
                f"{size:>6}  {part:<16}{seconds * 1e3:>10.3f}{theirs[part] * 1e3:>10.3f}"
                f"{gemms}{extra}"
            )
    print()


def blas_threads() -> str:
    """The thread count NumPy's BLAS runs with, as threadpoolctl reports it."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (no threadpoolctl)"
    pools = [f"{p['internal_api']} {p['num_threads']}" for p in threadpool_info()]
    return ", ".join(pools) or "none found"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, fewer steps (CI)")
    parser.add_argument("--threads", type=int, default=THREADS, help="BLAS/OpenMP/torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    number, rounds, warm = (5, 3, 0.05) if args.quick else (30, 7, 0.2)
    print(
        f"numpy {np.__version__}, torch {torch.__version__}, scikit-learn {sklearn.__version__}, "
        f"nabla {nb.__version__}; {THREADS} thread(s) (torch {torch.get_num_threads()}; "
        f"thread pools: {blas_threads()}); MLP {'-'.join(map(str, SIZES))} ReLU float32, Adam lr "
        f"{LR:g}; step = zero grads + forward + cross-entropy + backward + update; best of "
        f"{rounds} rounds of the mean of {number} steps (sklearn: of one partial_fit over "
        f"{SKLEARN_BATCHES} batches)\n"
    )
    check()
    times = {size: time_batch(size, number, rounds, warm) for size in BATCHES}
    print()
    lines = report(times)
    print()
    breakdown(times, 20 if args.quick else 100)
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
