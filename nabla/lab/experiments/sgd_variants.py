"""Full-batch gradient descent, online SGD (B = 1) and minibatch SGD on one convex problem.

The problem is L2-regularized softmax (multinomial logistic) regression::

    F(θ) = (1/N) Σ_i l(θ; x_i, y_i) + (λ/2) ‖θ‖²,     λ = 1e-3

with ``l`` the cross-entropy of ``softmax(W x + b)``: one ``nn.Linear`` trained by ``optim.SGD``
without momentum, ``weight_decay=λ``. F is strongly convex, so its minimum F* is unique; we find
it with ``optim.LBFGS`` in float64 and plot the excess loss F(θ) - F*. (Without λ, MNIST-10k is
linearly separable: the loss goes to 0 as ‖θ‖ grows, ever larger learning rates look best and
the runs turn erratic.) The three methods differ only in the batch size B of the gradient
estimate ``g_S = (1/B) Σ_{i∈S} ∇l_i + λθ``: B = N (full batch), B = 1 (online) and B = 32
(minibatch).

**Time to a given loss.** A step costs about ``c0 + c1 B`` (a fixed per-step overhead plus work
per sample). Full batch pays N samples per update; online pays the overhead N times per epoch;
minibatch SGD pays little of either and its noise is small enough for a large lr. Each method
gets the same CPU-time budget at each lr of one grid; its curve is the lr with the lowest
training loss at the end. The target is the lowest training loss all three reach; the claim is
that minibatch SGD gets there first. (For much smaller excess losses full-batch GD wins in the
end: with a constant lr SGD stalls at a noise floor, GD converges linearly.)

**Gradient noise.** At a fixed θ let ``g_i`` be the per-sample gradients, ``ḡ`` their mean (the
full gradient) and ``σ² = (1/N) Σ ‖g_i - ḡ‖²``. For S drawn uniformly without replacement::

    E ‖g_S - ḡ‖² = (σ² / B) · (N - B) / (N - 1)

(the finite-population correction; with replacement it would be σ²/B). So the noise
``std(B) = sqrt(E ‖g_S - ḡ‖²)`` divided by ``sqrt((N - B) / (N - 1))`` falls like ``B^(-1/2)``:
its log-log slope is -1/2, which we fit on Monte-Carlo estimates over many draws. (The λθ term
is the same for every batch and cancels in ``g_S - ḡ``.)

References: Bottou, Curtis and Nocedal (2018), *Optimization methods for large-scale machine
learning*, SIAM Review, sections 3.3 and 4; the finite-population variance of a sample mean is
in any survey-sampling text (e.g. Cochran 1977, theorem 2.2).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

import nabla as nb

from ... import nn, optim
from ...autograd.grad_mode import no_grad
from ...data import ArrayDataset, DataLoader
from ...train import Trainer
from .common import splits
from .framework import Experiment, Outcome

METHODS = {"full batch": None, "online (B=1)": 1, "minibatch (B=32)": 32}  # None: B = N
MINIBATCH = "minibatch (B=32)"
COLORS = {"full batch": "#1f77b4", "online (B=1)": "#d62728", MINIBATCH: "#2ca02c"}
SLOPE_TOLERANCE = 0.05  # |slope + 1/2| below this passes
WEIGHT_DECAY = 1e-3  # λ


@dataclass(frozen=True)
class Size:
    data: str  # "mnist10k" (NABLA_DATA) or "digits" (embedded)
    lrs: tuple  # the grid every method is run on
    budget: float  # CPU seconds of training per run
    checkpoints: int  # evaluations of the full training loss per run (geometric in time)
    noise_batches: tuple
    noise_draws: int


@dataclass
class Curve:
    """One run: CPU seconds, epochs (samples seen / N) and the objective F at each checkpoint."""

    method: str
    lr: float
    time: list
    epochs: list
    loss: list

    @property
    def final(self) -> float:
        return self.loss[-1]


@dataclass
class Noise:
    """The minibatch gradient's noise at one θ (see :func:`gradient_noise`)."""

    n: int
    batch: np.ndarray  # the batch sizes B
    std: np.ndarray  # measured std(B)
    sigma2: float  # σ², from all N per-sample gradients
    fpc: np.ndarray  # sqrt((N - B) / (N - 1))
    slope: float  # of log(std / fpc) against log B
    raw_slope: float  # of log std against log B
    mean_error: float  # ‖mean of the per-sample gradients - full gradient‖
    full_norm: float
    mismatch: float  # the largest relative deviation of std from the formula


@dataclass
class Results:
    size: Size
    data: str  # the training set's name
    shape: tuple  # (N, inputs)
    optimum: float  # F*
    residual: float  # the largest |component| of ∇F at the L-BFGS minimum
    curves: dict  # (method, lr) -> Curve
    noise: Noise

    def best(self) -> dict:
        """method -> its curve at the lr with the lowest final F."""
        return {
            m: min((c for (k, _), c in self.curves.items() if k == m), key=lambda c: c.final)
            for m in METHODS
        }

    def target(self) -> float:
        """The lowest training loss that all three methods reach."""
        return max(min(c.loss) for c in self.best().values())

    def reach(self) -> dict:
        target = self.target()
        return {m: time_to_reach(c, target) for m, c in self.best().items()}


def load(data: str) -> ArrayDataset:
    """The training split, flattened: mnist10k's 7,000 images or the 1,437 embedded digits."""
    return splits(data, flat=True).train


def regularized(model, x, y):
    """F(θ) on (x, y) as a Tensor: mean cross-entropy + λ/2 ‖θ‖² (biases too, as SGD's
    weight_decay)."""
    penalty = nn.l2_penalty(model, include_biases=True)
    return nn.functional.cross_entropy(model(x), y) + WEIGHT_DECAY * penalty


def full_loss(model, x, y) -> float:
    with no_grad():
        return float(regularized(model, x, y).data)


def minimum(data: ArrayDataset, seed: int) -> tuple[float, float]:
    """F* by L-BFGS (strong Wolfe line search) in float64 from the common initial θ; returns
    F* and the largest |component| of ∇F there (how close to the minimum it got)."""
    nb.manual_seed(seed)
    model = nn.Linear(data.x.shape[1], int(data.y.max()) + 1).double()
    x, y = nb.tensor(data.x, dtype="float64"), nb.tensor(data.y)
    opt = optim.LBFGS(
        model.parameters(),
        lr=1.0,
        max_iter=1000,
        history_size=20,
        line_search="strong_wolfe",
        tolerance_grad=1e-9,
        tolerance_change=1e-14,
    )

    def closure():
        opt.zero_grad()
        loss = regularized(model, x, y)
        loss.backward()
        return loss

    opt.step(closure)
    value = float(closure().data)
    return value, max(float(np.abs(p.grad).max()) for p in model.parameters())


def train(method: str, lr: float, data: ArrayDataset, size: Size, seed: int) -> Curve:
    """Plain SGD at ``lr`` for ``size.budget`` CPU seconds; the clock stops while we evaluate.

    The full batch is one fixed tensor (a real implementation of GD does not copy the data
    each step); the other two draw shuffled batches from a DataLoader, whose cost is counted.
    """
    # a loop of our own, not the Trainer: it times every step and stops the clock to evaluate
    nb.manual_seed(seed)  # the same initial θ for every method and lr
    n, classes = len(data), int(data.y.max()) + 1
    model = nn.Linear(data.x.shape[1], classes)
    opt = optim.SGD(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    x_all, y_all = nb.tensor(data.x), nb.tensor(data.y)
    batch = METHODS[method]
    loader = DataLoader(data, batch_size=batch, shuffle=True, seed=seed) if batch else None
    marks = iter(np.geomspace(size.budget / 1000, size.budget, size.checkpoints))
    curve = Curve(method, lr, [0.0], [0.0], [full_loss(model, x_all, y_all)])
    clock, samples, mark = 0.0, 0, next(marks)
    tick = time.process_time()
    while clock < size.budget:
        for x, y in loader if loader is not None else [(x_all, y_all)]:
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            samples += len(x)
            now = time.process_time()
            clock, tick = clock + now - tick, now
            if clock < mark:
                continue
            value = full_loss(model, x_all, y_all)
            curve.time.append(clock), curve.epochs.append(samples / n), curve.loss.append(value)
            while mark <= clock and clock < size.budget:
                mark = next(marks, size.budget)
            if not math.isfinite(value) or clock >= size.budget:
                curve.loss[-1] = value if math.isfinite(value) else math.inf
                return curve
            tick = time.process_time()  # the evaluation is not training time
    return curve


def time_to_reach(curve: Curve, target: float) -> float:
    """CPU seconds at the first checkpoint whose loss is at most ``target`` (inf if none)."""
    for t, value in zip(curve.time, curve.loss):
        if value <= target:
            return t
    return math.inf


def model_at(lr: float, data: ArrayDataset, seed: int):
    """The minibatch run repeated for 2 epochs at ``lr``: a θ on a typical trajectory."""
    nb.manual_seed(seed)
    model = nn.Linear(data.x.shape[1], int(data.y.max()) + 1)
    opt = optim.SGD(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    loader = DataLoader(data, batch_size=METHODS[MINIBATCH], shuffle=True, seed=seed)
    Trainer(model, nn.CrossEntropyLoss(), opt).fit(loader, epochs=2, verbose=0)
    return model


def gradient(model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """∇θ of the mean cross-entropy over (x, y), by nabla's backward, as one float64 vector."""
    model.zero_grad()
    nn.functional.cross_entropy(model(nb.tensor(x)), nb.tensor(y)).backward()
    return np.concatenate([p.grad.ravel() for p in model.parameters()]).astype(np.float64)


def gradient_noise(model, x, y, batch_sizes, draws: int, rng: np.random.Generator) -> Noise:
    """Monte-Carlo ``std(B) = sqrt(mean ‖g_S - ḡ‖²)`` over ``draws`` batches drawn without
    replacement, and the exact σ² from all N per-sample gradients (see the module docstring)."""
    n = len(x)
    full = gradient(model, x, y)
    total = np.zeros_like(full)
    squares = 0.0
    for i in range(n):  # σ² = mean ‖g_i‖² - ‖ḡ‖², accumulated without storing N gradients
        g = gradient(model, x[i : i + 1], y[i : i + 1])
        total += g
        squares += float(g @ g)
    mean = total / n
    sigma2 = squares / n - float(mean @ mean)
    std = []
    for b in batch_sizes:
        deviations = [
            np.sum((gradient(model, x[idx], y[idx]) - full) ** 2)
            for idx in (rng.choice(n, size=b, replace=False) for _ in range(draws))
        ]
        std.append(math.sqrt(np.mean(deviations)))
    b, std = np.asarray(batch_sizes, dtype=float), np.asarray(std)
    fpc = np.sqrt((n - b) / (n - 1))
    return Noise(
        n,
        b,
        std,
        sigma2,
        fpc,
        slope=float(np.polyfit(np.log(b), np.log(std / fpc), 1)[0]),
        raw_slope=float(np.polyfit(np.log(b), np.log(std), 1)[0]),
        mean_error=float(np.linalg.norm(mean - full)),
        full_norm=float(np.linalg.norm(full)),
        mismatch=float(np.max(np.abs(std / (np.sqrt(sigma2 / b) * fpc) - 1))),
    )


class SGDVariants(Experiment):
    name = "sgd-variants"
    title = "Full-batch GD vs online SGD vs minibatch SGD"
    reference = "Bottou, Curtis and Nocedal 2018, sections 3.3 and 4"
    summary = "minibatch SGD reaches a loss first in CPU time; gradient noise falls like 1/sqrt(B)"
    sizes = {
        "tiny": Size("digits", (0.03, 0.3), 0.08, 20, (1, 4, 16, 64, 256), 30),
        "full": Size(
            "mnist10k",
            (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0),
            6.0,
            100,
            tuple(2**k for k in range(13)),
            300,
        ),
    }

    def measure(self, size: Size, seed: int) -> Results:
        data = load(size.data)
        optimum, residual = minimum(data, seed)
        curves = {}
        for method in METHODS:
            for lr in size.lrs:
                curves[method, lr] = curve = train(method, lr, data, size, seed)
                self.log(
                    f"{method:>17} lr {lr:<6g} excess {curve.final - optimum:.4g} after "
                    f"{curve.epochs[-1]:.1f} epochs"
                )
        best = min(size.lrs, key=lambda lr: curves[MINIBATCH, lr].final)  # as Results.best
        model, rng = model_at(best, data, seed), np.random.default_rng(seed)
        noise = gradient_noise(model, data.x, data.y, size.noise_batches, size.noise_draws, rng)
        return Results(size, data.name, data.x.shape, optimum, residual, curves, noise)

    def verdict(self, results: Results) -> Outcome:
        reach, noise = results.reach(), results.noise
        fastest = all(reach[MINIBATCH] < t for m, t in reach.items() if m != MINIBATCH)
        times = ", ".join(f"{m.split(' ')[0]} {t:.2g} s" for m, t in reach.items())
        return Outcome(
            claim="minibatch SGD (B=32) reaches a given training loss in less CPU time than "
            "full-batch GD and online SGD; gradient noise std ∝ B^-1/2 (corrected slope -0.5 ± "
            "0.05)",
            ours=f"time to F* + {results.target() - results.optimum:.3g}: {times}; slope "
            f"{noise.slope:.3f} (raw {noise.raw_slope:.3f})",
            passed=bool(fastest and abs(noise.slope + 0.5) < SLOPE_TOLERANCE),
        )

    def report(self, page, results: Results) -> None:
        size, (n, d), optimum, noise = results.size, results.shape, results.optimum, results.noise
        page.text(
            f"Softmax regression ({d} inputs, 10 classes) with L2 regularization λ = "
            f"{WEIGHT_DECAY:g} on {n} training samples of {results.data}, trained by optim.SGD "
            "(no momentum, weight_decay = λ) from one seeded initialization; the minimum F* of "
            "the regularized training loss F comes from optim.LBFGS in float64. Full batch: "
            f"B = N = {n}; online: B = 1; minibatch: B = 32 (shuffled each epoch). Every method "
            f"runs at each lr of the grid {list(size.lrs)} for {size.budget:g} CPU seconds of "
            "training (time.process_time with one BLAS thread: the wall time of an idle core, "
            "not inflated by other jobs on a shared machine; the clock stops while F is "
            "evaluated on the whole training set). Each method's curve is its lr with the lowest "
            "F at the end. The updates are seeded, but where a CPU-time budget cuts a run "
            "depends on the machine's speed, so reruns differ a little (close lrs of a grid can "
            "swap places).",
            "Check, stated before the run: (1) the target is the lowest training loss that all "
            "three methods reach; minibatch SGD must reach it in less CPU time than both "
            "full-batch GD and online SGD; (2) at a fixed θ the noise std(B) of the minibatch "
            "gradient, divided by the finite-population factor sqrt((N-B)/(N-1)), has a log-log "
            f"slope within {SLOPE_TOLERANCE} of -1/2.",
        )
        best, target, reach = results.best(), results.target(), results.reach()
        page.text(
            f"F* = {optimum:.6f} (L-BFGS; largest gradient component there "
            f"{results.residual:.1e}); the target is F* + {target - optimum:.4g}."
        )
        page.table(
            ["method", *[f"lr {lr:g}" for lr in size.lrs]],
            [[m, *[results.curves[m, lr].final - optimum for lr in size.lrs]] for m in METHODS],
            caption=f"excess loss F - F* after {size.budget:g} CPU seconds (inf: diverged); "
            "the lowest of each row is that method's curve",
        )
        page.figure(
            curves_figure(best, target, optimum),
            "loss-curves",
            "excess training loss of each method at its best lr, against epochs and CPU "
            "time; dashed: the target, the lowest loss all three reach; dots: where each "
            "reaches it",
        )
        page.table(
            ["method", "lr", "updates/epoch", "epochs in budget", "CPU s to the target"],
            [
                [m, c.lr, math.ceil(n / (METHODS[m] or n)), c.epochs[-1], reach[m]]
                for m, c in best.items()
            ],
            caption="time to the target (resolution: the geometric checkpoint grid, about "
            f"{100 * (1000 ** (1 / (size.checkpoints - 1)) - 1):.0f}% of the time)",
        )
        page.figure(
            noise_figure(noise),
            "gradient-noise",
            "noise of the minibatch gradient at a fixed θ (after 2 epochs of the "
            "minibatch run): "
            f"root-mean-square deviation from the full gradient over {size.noise_draws} "
            "draws without replacement per B; the formula uses the exact σ² from all N "
            "per-sample gradients",
        )
        page.text(
            f"Gradient noise: σ² = {noise.sigma2:.4g} (‖full gradient‖ = {noise.full_norm:.3g}); "
            f"fitted slope after the correction {noise.slope:.3f}, raw slope "
            f"{noise.raw_slope:.3f} (the raw curve bends down as B approaches N); largest "
            f"deviation of a measured std from the formula {100 * noise.mismatch:.1f}%."
        )


def curves_figure(best: dict, target: float, optimum: float):
    from ..report import new_figure

    fig = new_figure((10, 4))
    labels = ("epochs (samples seen / N)", "CPU seconds of training")
    for ax, key, label in zip(fig.subplots(1, 2), ("epochs", "time"), labels):
        for method, c in best.items():
            xs = np.asarray(getattr(c, key))[1:]
            ys = np.maximum(np.asarray(c.loss)[1:] - optimum, 1e-9)  # float32 F may dip below F*
            ax.plot(xs, ys, color=COLORS[method], label=f"{method}, lr {c.lr:g}")
            hit = np.flatnonzero(ys <= target - optimum)
            if hit.size:
                ax.plot(xs[hit[0]], ys[hit[0]], "o", color=COLORS[method])
        ax.axhline(target - optimum, color="gray", ls="--", lw=1)
        ax.set(xscale="log", yscale="log", xlabel=label, ylabel="excess training loss F - F*")
        ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle("L2-regularized softmax regression: excess loss per epoch and per CPU second")
    return fig


def noise_figure(noise: Noise):
    from ..report import new_figure

    b, std, fpc, n = noise.batch, noise.std, noise.fpc, noise.n
    grid = np.geomspace(b[0], b[-1], 200)
    sigma = math.sqrt(noise.sigma2)
    fig = new_figure((6, 4.2))
    ax = fig.add_subplot()
    ax.plot(b, std, "o", color="#1f77b4", label="measured std(B)")
    ax.plot(
        grid,
        sigma / np.sqrt(grid) * np.sqrt((n - grid) / (n - 1)),
        color="#1f77b4",
        label="σ/√B · √((N-B)/(N-1))",
    )
    ax.plot(
        b,
        std / fpc,
        "s",
        mfc="none",
        color="#ff7f0e",
        label=f"measured / √((N-B)/(N-1)): slope {noise.slope:.3f}",
    )
    ax.plot(grid, sigma / np.sqrt(grid), "--", color="#ff7f0e", label="σ/√B (slope -1/2)")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="batch size B",
        ylabel="‖g_B - full gradient‖ (rms)",
        title=f"Gradient noise vs batch size (N = {n})",
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig
