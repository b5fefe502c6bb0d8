"""Adam is a good default; SGD with momentum and a decaying rate often ends better, once tuned.

Claim (the training-tips lecture, "So what should I use in practice?"; Wilson, Roelofs, Stern,
Srebro and Recht 2017, "The Marginal Value of Adaptive Gradient Methods in Machine Learning",
section 4): Adam works well at its default learning rate and is less sensitive to the rate;
SGD with momentum and a decaying rate often reaches a lower test error, but needs tuning.

Setup: LeNet-5 on MNIST-10k (7,000 training, 1,000 dev, 2,000 test images), batches of 64,
12 epochs, cosine decay to 0 for both: SGD with momentum 0.9, and Adam (0.9, 0.999, 1e-8).
An equal tuning budget: 5 rates, one seed each, on log grids two decades wide around each
one's usual value,

    SGD:  10^-1.5 * 10^(k/2) = 0.00316, 0.01, 0.0316, 0.1, 0.316    (k = -2 ... 2)
    Adam: 10^-3   * 10^(k/2) = 0.0001, 0.000316, 0.001, 0.00316, 0.01

(SGD's centre is the geometric mean of its two usual values, 0.01 and 0.1). Each optimizer's
tuned rate is the grid point of lowest dev error (ties: the smaller rate). Its default rate is
its library default: Adam 1e-3 (Kingma and Ba; torch, Keras, nabla) and SGD 0.01 (Keras, nabla;
0.1, the ResNet convention at batch 256, is on the grid too). The tuned and default rates then
run two more seeds: test error, mean and std over 3 seeds (the grid's seed and two new ones; the
seed is the initialization and the batch order, the same for both optimizers). The grid uses
one seed so that 12 epochs fit the 5-minute budget (3 seeds at every rate would leave about 7):
the trade-off is a noisier sensitivity measure (b) for runs closer to convergence. A run whose
loss turns NaN counts as chance (90% error). No weight decay, no early stopping.

Check, fixed before the full run:

    (a) good default:     mean test error of Adam at 1e-3 - tuned Adam's <= 0.5 points;
    (b) less sensitive:   share of Adam's grid with dev error within 0.5 points of its best
                          > SGD's share (a tie fails);
    (c) SGD ends better:  tuned SGD's mean test error <= tuned Adam's.

PASS needs all three. One dataset can only be consistent with "often" in (c), or not.
Pilots before fixing the setup (timings; a PyTorch LeNet on the same data, dev only) showed that
in 12 epochs Adam at 1e-3 does not quite fit the training images (about 1% training error,
SGD at 0.03 about 0.1%): a fixed short budget favours larger rates, which weighs against (a).
The first full run compared the errors without allowing for float rounding (``at_most``): it
counted SGD's 2.40% as more than 0.5 points above its 1.90% and passed (b) by 2/5 to 1/5. The
comparison was fixed to the rule as written (a test now covers it), not the rule, and the full
run repeated: every number identical (same seeds, one thread), (b) a 2/5 tie.
The run uses one BLAS and kernel thread (``common.one_thread``): on the shared 2-core
machine, threads spinning against other jobs made LeNet about 4 times slower.

Tiny size: the embedded 8x8 digits with an MLP 64-32-10, 3 epochs, 2 seeds: proves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import nabla as nb

from ... import models, nn, optim
from ...data import DataLoader
from ...optim import schedules
from ...train import TrainingDivergedError
from .common import classifier, one_thread, seeds, splits
from .framework import Experiment, Outcome

CENTRES = {"SGD": 10**-1.5, "Adam": 1e-3}  # the middle of each grid
DEFAULTS = {"SGD": 0.01, "Adam": 1e-3}  # the library defaults
COLORS = {"SGD": "#1f77b4", "Adam": "#d62728"}
DECADES, MOMENTUM, TOLERANCE, CHANCE, EVAL_BATCH = 2.0, 0.9, 0.005, 0.9, 1000


@dataclass(frozen=True)
class Size:
    data: str
    epochs: int
    batch: int
    points: int  # rates on each grid (odd, so the centre is one)
    seeds: int


@dataclass
class Run:
    optimizer: str
    lr: float
    seed: int
    dev: float  # error after the last epoch
    test: float
    train_loss: float  # mean over the last epoch, in training mode
    diverged: bool


@dataclass
class Results:
    size: Size
    seeds: list
    grids: dict  # optimizer -> its rates
    runs: list  # of Run: the grid (first seed) first

    def pick(self, optimizer: str, lr: float, seed: int | None = None) -> list:
        return [
            r
            for r in self.runs
            if r.optimizer == optimizer and np.isclose(r.lr, lr) and seed in (None, r.seed)
        ]

    def grid_dev(self, optimizer: str) -> np.ndarray:
        """Dev error at each grid rate, first seed."""
        return np.array(
            [self.pick(optimizer, lr, self.seeds[0])[0].dev for lr in self.grids[optimizer]]
        )

    def tuned(self, optimizer: str) -> float:
        return float(self.grids[optimizer][int(np.argmin(self.grid_dev(optimizer)))])

    def test(self, optimizer: str, lr: float) -> tuple[float, float]:
        """Mean and std (n - 1) of the test error over the seeds."""
        errors = np.array([r.test for r in self.pick(optimizer, lr)])
        return float(errors.mean()), float(errors.std(ddof=1)) if len(errors) > 1 else 0.0


def log_grid(centre: float, points: int, decades: float = DECADES) -> np.ndarray:
    """``points`` rates, equally spaced in log10, ``decades`` wide, centred on ``centre``."""
    return centre * np.logspace(-decades / 2, decades / 2, points)


def at_most(x, limit):
    """x <= limit up to float rounding: errors are counts / n, and 1 - 0.976 > (1 - 0.981) + 0.005
    in floating point, although 2.4% is exactly 0.5 points above 1.9%."""
    return np.round(np.asarray(x, dtype=float) - limit, 9) <= 0


def share_near_best(errors, tolerance: float = TOLERANCE) -> float:
    """The share of the grid whose error is within ``tolerance`` of the grid's lowest."""
    errors = np.asarray(errors, dtype=float)
    return float(np.mean(at_most(errors, errors.min() + tolerance)))


def configurations(results: Results) -> list:
    """(optimizer, rate) pairs that run every seed: each one's tuned and default rates."""
    pairs = [(o, lr) for o in CENTRES for lr in (DEFAULTS[o], results.tuned(o))]
    return list(dict.fromkeys(pairs))


def train(data, size: Size, optimizer: str, lr: float, seed: int) -> Run:
    train_set, dev, test = data
    nb.manual_seed(seed)
    if size.data == "mnist10k":
        model = models.lenet()
    else:
        model = nn.Sequential(nn.Flatten(), models.mlp([64, 32, 10]))
    loader = DataLoader(train_set, batch_size=size.batch, shuffle=True, seed=seed)
    rate = schedules.CosineDecay(lr, size.epochs * len(loader))
    if optimizer == "SGD":
        update = optim.SGD(model.parameters(), lr=rate, momentum=MOMENTUM)
    else:
        update = optim.Adam(model.parameters(), lr=rate)
    trainer = classifier(model, update)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            history = trainer.fit(loader, size.epochs, verbose=0)
    except TrainingDivergedError:
        return Run(optimizer, lr, seed, CHANCE, CHANCE, float("nan"), True)
    dev_error, test_error = (
        1 - trainer.evaluate(DataLoader(d, EVAL_BATCH))["accuracy"] for d in (dev, test)
    )
    return Run(optimizer, lr, seed, dev_error, test_error, float(history["loss"][-1]), False)


def points(error: float) -> str:
    return f"{100 * error:.2f}%"


def spread(mean: float, std: float) -> str:
    return f"{points(mean)} ± {100 * std:.2f}"


def role(results: Results, optimizer: str, lr: float) -> str:
    """ "tuned", "default" or "tuned = default", for a rate that ran every seed."""
    rates = {"tuned": results.tuned(optimizer), "default": DEFAULTS[optimizer]}
    return " = ".join(name for name, rate in rates.items() if np.isclose(lr, rate))


class SgdVsAdam(Experiment):
    name = "sgd-vs-adam"
    title = "Adam is a good default; tuned SGD with momentum often ends better"
    reference = (
        "the training-tips lecture; A. Wilson, R. Roelofs, M. Stern, N. Srebro, B. Recht, The "
        "Marginal Value of Adaptive Gradient Methods in Machine Learning, NeurIPS 2017, sec. 4"
    )
    summary = "LeNet on MNIST-10k: equal lr grids for SGD+momentum and Adam, defaults vs tuned"
    sizes = {
        "tiny": Size("digits", epochs=3, batch=32, points=5, seeds=2),
        "full": Size("mnist10k", epochs=12, batch=64, points=5, seeds=3),
    }

    def measure(self, size: Size, seed: int) -> Results:
        train_set, dev, test = splits(size.data)
        data = (train_set, dev, test)
        grids = {o: log_grid(c, size.points) for o, c in CENTRES.items()}
        results = Results(size, seeds(seed, size.seeds), grids, [])
        with one_thread():
            for optimizer, grid in grids.items():  # the tuning budget: one seed per rate
                for lr in grid:
                    self._run(results, data, optimizer, lr, results.seeds[0])
            for optimizer, lr in configurations(results):  # the other seeds
                for s in results.seeds[1:]:
                    self._run(results, data, optimizer, lr, s)
        return results

    def _run(self, results: Results, data, optimizer: str, lr: float, seed: int) -> None:
        run = train(data, results.size, optimizer, lr, seed)
        results.runs.append(run)
        self.log(
            f"{optimizer:4} lr {lr:<9.3g} seed {seed}: dev {points(run.dev)} test "
            f"{points(run.test)} train loss {run.train_loss:.4f}"
            + (" (diverged)" if run.diverged else "")
        )

    def verdict(self, results: Results) -> Outcome:
        tuned = {o: results.tuned(o) for o in CENTRES}
        test = {o: results.test(o, tuned[o])[0] for o in CENTRES}
        adam_default = results.test("Adam", DEFAULTS["Adam"])[0]
        sgd_default = results.test("SGD", DEFAULTS["SGD"])[0]
        share = {o: share_near_best(results.grid_dev(o)) for o in CENTRES}
        n = results.size.points
        a = bool(at_most(adam_default - test["Adam"], TOLERANCE))
        b = share["Adam"] > share["SGD"]
        c = bool(at_most(test["SGD"], test["Adam"]))
        return Outcome(
            claim="(a) Adam at 1e-3 within 0.5 pt of tuned Adam (test); (b) more of Adam's lr "
            "grid within 0.5 pt of its best dev error than SGD's; (c) tuned SGD+momentum's "
            "test error <= tuned Adam's",
            ours=f"{len(results.seeds)} seeds, test error: Adam 1e-3 {points(adam_default)}, "
            f"tuned ({tuned['Adam']:.3g}) {points(test['Adam'])}; SGD 0.01 "
            f"{points(sgd_default)}, tuned ({tuned['SGD']:.3g}) {points(test['SGD'])}; "
            f"(a) {100 * (adam_default - test['Adam']):+.2f} pt; (b) near best "
            f"{round(share['Adam'] * n)}/{n} vs {round(share['SGD'] * n)}/{n}; "
            f"(c) {100 * (test['SGD'] - test['Adam']):+.2f} pt; a/b/c "
            + "/".join("yes" if x else "no" for x in (a, b, c)),
            passed=bool(a and b and c),
        )

    def report(self, page, results: Results) -> None:
        size = results.size
        model = "LeNet-5" if size.data == "mnist10k" else "an MLP 64-32-10"
        page.text(
            f"{model} on {size.data}, batches of {size.batch}, {size.epochs} epochs, cosine "
            f"decay to 0. SGD with momentum {MOMENTUM} and Adam each try {size.points} rates on "
            f"a log grid {DECADES:g} decades wide (one seed, {results.seeds[0]}); the lowest "
            "dev error picks the tuned rate. The tuned and the default rates (SGD 0.01, Adam "
            f"1e-3) then run seeds {results.seeds}: test error, mean ± std.",
            "Check, fixed before the run: (a) Adam at 1e-3 within 0.5 points of tuned Adam "
            "(mean test error); (b) Adam's share of the grid within 0.5 points of its best dev "
            "error larger than SGD's; (c) tuned SGD's mean test error <= tuned Adam's.",
        )
        page.figure(
            tuning_figure(results),
            "tuning",
            "left: dev error over each grid (one seed; band: within 0.5 points of the best; "
            "star: default, ring: tuned); right: test error of the default and tuned rates, "
            "mean ± std over seeds, dots are seeds",
        )
        page.table(
            ["optimizer", "lr", "dev error", "test error", "last-epoch train loss"],
            [
                [r.optimizer, f"{r.lr:.3g}", points(r.dev), points(r.test), r.train_loss]
                for r in results.runs[: 2 * size.points]
            ],
            caption=f"the grid, seed {results.seeds[0]} (a diverged run counts 90%)",
        )
        rows = [
            [o, f"{lr:.3g}", role(results, o, lr), spread(*results.test(o, lr))]
            for o, lr in configurations(results)
        ]
        page.table(["optimizer", "lr", "", "test error"], rows, caption="over the seeds")


def tuning_figure(results: Results):
    from ..report import new_figure

    fig = new_figure((11, 4.3))
    left, right = fig.subplots(1, 2, width_ratios=(1.6, 1))
    top = max(6 * min(results.grid_dev(o).min() for o in CENTRES), 0.05)  # off-scale: clipped
    for optimizer, grid in results.grids.items():
        color, dev = COLORS[optimizer], results.grid_dev(optimizer)
        shown = 100 * np.minimum(dev, 0.97 * top)
        left.plot(grid, shown, "o-", color=color, label=optimizer)
        band = 100 * (dev.min() + np.array([0, TOLERANCE]))
        left.fill_between(grid, *band, color=color, alpha=0.2, lw=0)
        for lr, y, error in zip(grid, shown, dev):
            if error > top:
                left.annotate(
                    f"{100 * error:.0f}%",
                    (lr, y),
                    (6, -12),
                    textcoords="offset points",
                    color=color,
                )
        default, tuned = np.isclose(grid, DEFAULTS[optimizer]), np.argmin(dev)
        left.plot(grid[default], shown[default], "*", ms=17, color=color, mec="k")
        left.plot(grid[tuned], shown[tuned], "o", ms=15, mfc="none", mec="k", mew=1.5)
    left.plot([], [], "*", ms=12, color="grey", mec="k", label="default rate")
    left.plot([], [], "o", ms=11, mfc="none", mec="k", label="tuned: lowest dev error")
    left.fill_between([], [], color="grey", alpha=0.3, label="within 0.5 points of the best")
    left.set(xscale="log", ylim=(0, 100 * top), ylabel="dev error (%)")
    left.set(xlabel="initial learning rate (cosine decay to 0)")
    left.set_title(f"Tuning: dev error over each grid, seed {results.seeds[0]}")
    left.grid(True, alpha=0.3, which="both")
    left.legend(fontsize=8)
    labels = []
    for x, (optimizer, lr) in enumerate(configurations(results)):
        errors = 100 * np.array([r.test for r in results.pick(optimizer, lr)])
        mean, std = results.test(optimizer, lr)
        kw = {"fmt": "s", "color": COLORS[optimizer], "capsize": 5, "ms": 8}
        right.errorbar(x, 100 * mean, 100 * std, **kw)
        right.plot([x] * len(errors), errors, ".", color="k", alpha=0.5)
        labels.append(f"{optimizer} {lr:.3g}\n({role(results, optimizer, lr)})")
    right.set_xticks(range(len(labels)), labels, fontsize=8)
    right.set(xlim=(-0.5, len(labels) - 0.5), ylabel="test error (%)")
    right.set_title(f"Test error, mean ± std over {len(results.seeds)} seeds")
    right.grid(True, axis="y", alpha=0.3)
    return fig
