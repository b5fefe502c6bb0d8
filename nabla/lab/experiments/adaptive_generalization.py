"""``nabla experiment adaptive-generalization``: on a separable least-squares problem with d > n,
AdaGrad, RMSProp and Adam converge to a solution that labels every new point positive, while
gradient descent finds the minimum-norm solution and makes no error (Wilson et al. 2017, §3.3).

The data (the paper's construction). Labels y_i = +1 with probability p > 1/2, else -1 (p = 0.55
here). Each x_i has

    x_i1 = y_i                      the label itself: the one useful feature
    x_i2 = x_i3 = 1                 always on
    1 feature of its own set to 1   if y_i = +1   (features 4 + 5(i-1) ... 4 + 5(i-1) + 2(1 - y_i))
    5 features of its own set to 1  if y_i = -1
    0 elsewhere.

The paper's x is infinite-dimensional; we keep d = 3 + 5 (n + n_test) features, so every test
point has its own features too (d > n). The paper assumes b = sum_i y_i > 0 ("with arbitrarily
high probability for large n"); a draw with b <= 0 is redrawn.

Why adaptive methods fail (the paper's Lemma 3.1). Let u = X^T y and s = sign(u). Here
<s, x_i> = y_i + 2 + y_i (3 - 2 y_i) = 4 y_i, i.e. X s = c y with c = 4. From w = 0 the full-batch
gradient of (1/n) ||X w - y||^2 at w = lambda s is (2/n) (lambda c - 1) u: proportional to u, so
every coordinate of AdaGrad's g / sqrt(sum g^2), RMSProp's g / sqrt(avg g^2) and Adam's
s_hat / sqrt(r_hat) is the same number times sign(u_j). By induction the iterates stay
w_k = lambda_k sign(u). A new point has its own (unseen, zero-weight) features, so
<w, x_test> = lambda (y_test + 2) > 0 for lambda > 0: every test point is labeled positive, and
the test error is the share of negatives (about 1 - p).

Why gradient descent succeeds. From w = 0 GD stays in the row space of X and converges to the
minimum-norm interpolant w = X^T a with X X^T a = y. With a_i = a+ for positives and a- for
negatives (n+ and n- of them), X X^T = y y^T + 2 11^T + diag(1 or 5) gives

    (3 n+ + 1) a+ + n- a- = 1,   n+ a+ + (3 n- + 5) a- = -1,

so with D = 8 n+ n- + 15 n+ + 3 n- + 5: a+ = (4 n- + 5) / D and a- = -(4 n+ + 1) / D (derived here;
tests/lab check it against a least-squares solve). On a new point
<w, x_test> = y_test (n+ a+ - n- a-) + 2 (n+ a+ + n- a-), positive for y = +1 and negative for
y = -1 whenever n+, n- >= 1: test error 0.

Regime: the lemma needs full-batch gradients. A side run repeats the adaptive methods with
minibatches (the gradient of a batch is no longer proportional to u).

The check, fixed before running: for every seed, each adaptive method's test error is within
0.02 of the test set's share of negatives, and GD's test error is at most 0.02.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

import nabla.nn.functional as F
from nabla import nn, optim
from nabla.data import ArrayDataset, DataLoader
from nabla.train import Trainer, callbacks

from .framework import Experiment, Outcome

MARGIN = 0.02  # the check's tolerance on test errors
ADAPTIVE = ("AdaGrad", "RMSProp", "Adam")
METHODS = ("GD", *ADAPTIVE)
COLORS = {"GD": "#1f77b4", "AdaGrad": "#d62728", "RMSProp": "#2ca02c", "Adam": "#9467bd"}


@dataclass(frozen=True)
class Size:
    n: int  # training points
    n_test: int
    p: float  # P(y = +1)
    steps: int  # full-batch updates
    seeds: int  # independent draws of the data
    batch_sizes: tuple  # the minibatch side run (first seed only)
    side_steps: int
    record_every: int


@dataclass
class Run:
    """A full-batch run: the final weights, and the recorded updates with the training loss,
    the test error and the lemma deviation after each."""

    w: np.ndarray
    step: np.ndarray
    loss: np.ndarray
    test_error: np.ndarray
    deviation: np.ndarray


@dataclass
class Draw:
    """One draw of the data and the full-batch run of every method on it."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    w_min: np.ndarray  # the minimum-norm interpolant (least squares)
    runs: dict  # method -> Run

    @property
    def negatives(self) -> float:
        return float(np.mean(self.y_test < 0))

    def test_error(self, method: str) -> float:
        return errors(self.runs[method].w, self.x_test, self.y_test)


@dataclass
class Results:
    size: Size
    draws: list  # of Draw
    side: dict  # method -> the test error for each minibatch size (first draw)


def wilson_data(n: int, n_test: int, p: float, rng: np.random.Generator):
    """The paper's construction: ``(X, y, X_test, y_test)``, float64, d = 3 + 5 (n + n_test).

    Point i (training points first, then test points) owns features 3 + 5 i ... 3 + 5 i + 4
    (0-based); it sets the first of them if y_i = +1, all five if y_i = -1.
    """
    if n < 1 or n_test < 1 or not 0.5 < p < 1:
        raise ValueError(
            f"wilson_data: need n, n_test >= 1 and 1/2 < p < 1, got {n}, {n_test}, {p}"
        )
    m = n + n_test
    while True:  # the paper assumes b = sum of the training labels > 0
        y = np.where(rng.random(m) < p, 1.0, -1.0)
        if y[:n].sum() > 0:
            break
    x = np.zeros((m, 3 + 5 * m))
    x[:, 0], x[:, 1:3] = y, 1.0
    own = 3 + 5 * np.arange(m)
    for k in range(5):  # the k-th own feature is on for positives only when k == 0
        rows = np.flatnonzero((y < 0) | (k == 0))
        x[rows, own[rows] + k] = 1.0
    return x[:n], y[:n], x[n:], y[n:]


def min_norm_dual(n_pos: int, n_neg: int) -> tuple[float, float]:
    """(a+, a-) of the minimum-norm interpolant w = X^T a (module docstring)."""
    d = 8 * n_pos * n_neg + 15 * n_pos + 3 * n_neg + 5
    return (4 * n_neg + 5) / d, -(4 * n_pos + 1) / d


def lemma_deviation(w: np.ndarray, u: np.ndarray) -> float:
    """max_j |w_j - lambda sign(u_j)| / |lambda| over u_j != 0, lambda the best common scale:
    0 when w is exactly a multiple of sign(u) (the lemma), O(1) otherwise."""
    support = u != 0
    s = np.sign(u[support])
    lam = float(np.mean(w[support] * s))
    if lam == 0:
        return float("inf")
    return float(np.max(np.abs(w[support] - lam * s)) / abs(lam))


def make_optimizer(name: str, params, gd_lr: float):
    """GD at 1/L (L: the loss's largest curvature); the adaptive ones at their default lr."""
    if name == "GD":
        return optim.SGD(params, lr=gd_lr)
    return {"AdaGrad": optim.AdaGrad, "RMSProp": optim.RMSProp, "Adam": optim.Adam}[name](params)


def linear(d: int) -> nn.Linear:
    """A bias-free nabla Linear, float64 (so the lemma check sees the algorithm, not rounding),
    started at w = 0 as the lemma requires."""
    layer = nn.Linear(d, 1, bias=False, dtype="float64")
    layer.weight.data[...] = 0.0
    return layer


def errors(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Classification error of sign(x w); a score of exactly 0 counts as an error."""
    return float(np.mean(np.sign(x @ w) != y))


def updates(loader, steps: int):
    """The first ``steps`` batches of passes over ``loader`` (each pass a new epoch, so a new
    shuffle): one Trainer epoch of exactly ``steps`` updates, which may end inside a pass."""
    return itertools.islice(itertools.chain.from_iterable(itertools.repeat(loader)), steps)


def fit(name: str, loader, steps: int, gd_lr: float, *record: callbacks.Callback) -> np.ndarray:
    """``steps`` updates of the mean squared error from w = 0 on ``loader``'s batches; the
    final w."""
    layer = linear(loader.dataset.x.shape[1])
    opt = make_optimizer(name, layer.parameters(), gd_lr)
    Trainer(layer, F.mse_loss, opt, callbacks=record).fit(updates(loader, steps), 1, verbose=0)
    return layer.weight.data[0].copy()


class Record(callbacks.Callback):
    """After the first update and every ``every``-th: the full training loss, the test error
    and the lemma deviation."""

    def __init__(self, x, y, x_test, y_test, every: int):
        self.data, self.u, self.every = (x, y, x_test, y_test), x.T @ y, every
        self.history = {"step": [], "loss": [], "test_error": [], "deviation": []}

    def on_batch_end(self, trainer, step, logs):
        if step % self.every == 0 or step == 1:
            x, y, x_test, y_test = self.data
            w = trainer.model.weight.data[0]
            self.history["step"].append(step)
            self.history["loss"].append(float(np.mean((x @ w - y) ** 2)))
            self.history["test_error"].append(errors(w, x_test, y_test))
            self.history["deviation"].append(lemma_deviation(w, self.u))


class AdaptiveGeneralization(Experiment):
    name = "adaptive-generalization"
    title = "Adaptive methods and generalization: a separable problem where they fail"
    reference = (
        "Wilson, Roelofs, Stern, Srebro and Recht 2017, The Marginal Value of Adaptive Gradient "
        "Methods in Machine Learning (NeurIPS), section 3.3"
    )
    summary = "d > n least squares: AdaGrad/RMSProp/Adam label every new point +1, GD errs on none"
    sizes = {
        "tiny": Size(40, 60, 0.55, 150, 1, (1, 8), 60, 10),
        "full": Size(400, 400, 0.55, 1000, 3, (1, 4, 16, 64), 1000, 10),
    }

    def measure(self, size: Size, seed: int) -> Results:
        draws = []
        for k in range(size.seeds):
            data = wilson_data(size.n, size.n_test, size.p, np.random.default_rng([seed, k]))
            x, y = data[:2]
            curvature = 2 / len(x) * np.linalg.eigvalsh(x @ x.T)[-1]  # Hessian (2/n) X^T X
            full = DataLoader(ArrayDataset(x, y[:, None]), batch_size=len(x))
            runs = {}
            for m in METHODS:
                record = Record(*data, size.record_every)
                w = fit(m, full, size.steps, 1 / curvature, record)
                runs[m] = Run(w, **{key: np.array(v) for key, v in record.history.items()})
            w_min = np.linalg.lstsq(x, y, rcond=None)[0]
            draws.append(draw := Draw(*data, w_min, runs))
            self.log(
                f"draw {k}: share of negatives {draw.negatives:.3f}; test error "
                + ", ".join(f"{m} {draw.test_error(m):.3f}" for m in METHODS)
            )
        first = draws[0]
        dataset, side = ArrayDataset(first.x, first.y[:, None]), {}
        for m in METHODS:  # minibatches: SGD at lr 0.05 (stable for every batch here) for GD
            side[m] = []
            for batch in size.batch_sizes:
                loader = DataLoader(dataset, batch, shuffle=True, seed=seed)
                w = fit(m, loader, size.side_steps, 0.05)
                side[m].append(errors(w, first.x_test, first.y_test))
        return Results(size, draws, side)

    def verdict(self, results: Results) -> Outcome:
        size, draws = results.size, results.draws
        adaptive_ok = all(
            abs(d.test_error(m) - d.negatives) <= MARGIN for d in draws for m in ADAPTIVE
        )
        gd_ok = all(d.test_error("GD") <= MARGIN for d in draws)
        mean = {m: np.mean([d.test_error(m) for d in draws]) for m in METHODS}
        share = np.mean([d.negatives for d in draws])
        return Outcome(
            claim="from w = 0 with full-batch gradients, AdaGrad, RMSProp and Adam reach test "
            "error = share of negatives, GD reaches 0 (Wilson et al. 2017, sec. 3.3)",
            ours=f"{size.seeds} draws, n = {size.n}, d = {draws[0].x.shape[1]}: share of "
            f"negatives {share:.3f}; test error "
            + ", ".join(f"{m} {mean[m]:.3f}" for m in METHODS)
            + f" (margin {MARGIN})",
            passed=bool(adaptive_ok and gd_ok),
        )

    def report(self, page, results: Results) -> None:
        size, first = results.size, results.draws[0]
        page.text(
            f"Data: the construction of section 3.3 with P(y = +1) = p = {size.p}, n = {size.n} "
            f"training points, {size.n_test} test points, d = {first.x.shape[1]} features (3 "
            "shared, 5 of its own per point: a positive sets 1 of them, a negative all 5), drawn "
            f"{size.seeds} times. Feature 1 is the label, so a linear rule classifies every "
            "point.",
            f"Training: a bias-free nabla Linear (float64) from w = 0, {size.steps} full-batch "
            "updates of the mean squared error with nabla's SGD at lr 1/L (L the largest "
            "eigenvalue of the Hessian (2/n) X^T X), AdaGrad (lr 0.01), RMSProp (lr 0.01, beta "
            "0.9) and Adam (lr 0.001, betas 0.9, 0.999): each at its default.",
            f"The check, fixed before running: every adaptive method's test error within {MARGIN} "
            f"of the test set's share of negatives, and GD's at most {MARGIN}, for every draw.",
        )
        page.table(
            [
                "draw",
                "method",
                "share of negatives",
                "test error",
                "train error",
                "train loss",
                "lemma deviation",
                "|w - w_min| / |w_min|",
            ],
            [
                [
                    k,
                    m,
                    d.negatives,
                    d.test_error(m),
                    errors(d.runs[m].w, d.x, d.y),
                    float(d.runs[m].loss[-1]),
                    float(d.runs[m].deviation[-1]),
                    float(np.linalg.norm(d.runs[m].w - d.w_min) / np.linalg.norm(d.w_min)),
                ]
                for k, d in enumerate(results.draws)
                for m in METHODS
            ],
            caption="lemma deviation: max_j |w_j - lambda sign(u_j)| / lambda, u = X^T y (0 = the "
            "lemma's sign pattern exactly); w_min: the minimum-norm interpolant (least squares)",
        )
        page.figure(
            curves_figure(first),
            "curves",
            "Training loss and test error against full-batch updates (first draw).",
        )
        page.figure(
            weights_figure(first),
            "weights",
            "The weights at the end of training, by feature group (first draw). The lemma "
            "predicts one common magnitude for every seen feature for the adaptive methods.",
        )
        page.figure(
            deviation_figure(first),
            "lemma",
            "Lemma 3.1 along the run: how far each iterate is from a multiple of sign(X^T y). "
            "The adaptive methods stay close; what is left comes from eps: an update is "
            "g_j / (sqrt(r_j) + eps), not exactly a common factor times sign(u_j), a "
            "relative error of about eps / |g_j|. It grows for RMSProp once its loss "
            "reaches about 0 (update 60), where the gradients are tiny.",
        )
        page.text(
            "Side run (first draw): the same optimizers on shuffled minibatches. A batch's "
            "gradient is not proportional to X^T y, so the lemma's argument no longer applies."
        )
        page.table(
            ["batch size", *[f"{m} test error" for m in METHODS]],
            [[b, *[results.side[m][i] for m in METHODS]] for i, b in enumerate(size.batch_sizes)]
            + [[f"{size.n} (full)", *[first.test_error(m) for m in METHODS]]],
            caption=f"{size.side_steps} updates per run; GD is SGD at lr 0.05 on minibatches",
        )
        page.figure(
            batch_figure(results),
            "minibatch",
            "Test error against batch size (first draw; the last point is the full-batch run).",
        )


def curves_figure(draw: Draw):
    from ..report import new_figure

    fig = new_figure((10, 3.8))
    loss_ax, err_ax = fig.subplots(1, 2)
    for m in METHODS:
        r = draw.runs[m]
        loss_ax.loglog(r.step, np.maximum(r.loss, 1e-32), label=m, color=COLORS[m])
        err_ax.semilogx(r.step, r.test_error, label=m, color=COLORS[m])
    err_ax.axhline(draw.negatives, color="gray", ls="--", lw=1, label="share of negatives")
    loss_ax.set(xlabel="full-batch update", ylabel="training loss (MSE)", title="training loss")
    err_ax.set(
        xlabel="full-batch update", ylabel="test error", title="test error", ylim=(-0.02, 0.6)
    )
    loss_ax.legend()
    err_ax.legend()
    return fig


def weights_figure(draw: Draw):
    """w_j by feature group: 1 (label), 2-3 (constant), own features of positives / negatives."""
    from ..report import new_figure

    fig = new_figure((10, 3.8))
    axes = fig.subplots(1, 2, sharey=False)
    own = 3 + 5 * np.arange(len(draw.x))
    groups = [
        ("x1 = y", np.array([0])),
        ("x2, x3 = 1", np.array([1, 2])),
        ("own, y = +1", own[draw.y > 0]),
        ("own, y = -1", (own[draw.y < 0][:, None] + np.arange(5)).ravel()),
    ]
    for ax, m in zip(axes, ("GD", "Adam")):
        w = draw.runs[m].w
        for i, (_, idx) in enumerate(groups):
            jitter = np.linspace(-0.25, 0.25, len(idx)) if len(idx) > 1 else np.zeros(1)
            ax.plot(i + jitter, w[idx], ".", ms=4, alpha=0.6)
        ax.axhline(0, color="gray", lw=0.8)
        ax.set_xticks(range(len(groups)), [g[0] for g in groups])
        ax.set(ylabel="weight w_j", title=f"{m}: weights by feature group")
    return fig


def deviation_figure(draw: Draw):
    from ..report import new_figure

    fig = new_figure((6, 3.8))
    ax = fig.add_subplot()
    for m in METHODS:
        r = draw.runs[m]
        ax.loglog(r.step, np.maximum(r.deviation, 1e-17), label=m, color=COLORS[m])
    ax.set(
        xlabel="full-batch update",
        ylabel="max_j |w_j / lambda - sign(u_j)|",
        title="distance of w from a multiple of sign(X^T y)",
    )
    ax.legend()
    return fig


def batch_figure(results: Results):
    from ..report import new_figure

    fig = new_figure((6, 3.8))
    ax = fig.add_subplot()
    first = results.draws[0]
    sizes = [*results.size.batch_sizes, results.size.n]
    for m, marker, ms in zip(METHODS, "osD^", (9, 7, 5, 3)):  # overlapping points stay visible
        errs = [*results.side[m], first.test_error(m)]
        ax.semilogx(sizes, errs, marker=marker, ms=ms, label=m, color=COLORS[m], base=2)
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.minorticks_off()
    ax.axhline(first.negatives, color="gray", ls="--", lw=1, label="share of negatives")
    ax.set(
        xlabel="batch size (last point: full batch)",
        ylabel="test error",
        title="test error against batch size",
        ylim=(-0.02, 0.6),
    )
    ax.legend()
    return fig
