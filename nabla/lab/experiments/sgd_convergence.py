"""SGD converges when Σ a_t = ∞ and Σ a_t² < ∞; a constant rate stalls; a summable one stops short.

Claim (the lecture's "Stochastic Gradient Descent Convergence" slide; H. Robbins and S. Monro, A
Stochastic Approximation Method, Ann. Math. Statist. 22, 1951): on a convex problem with a unique
optimum w*, SGD ``w_{t+1} = w_t - a_t g_t`` with unbiased gradients converges to w* almost surely
when Σ a_t = ∞ and Σ a_t² < ∞. A constant rate hovers at a noise floor that scales with the rate;
a summable schedule (Σ a_t < ∞) travels a bounded distance and stops short of w*.

Problem: ridge regression of the one-hot labels on the 64 pixels of the embedded digits (N = 1437),
X and Y centred (the same as an unregularized intercept), W a 64 by 10 matrix, W_0 = 0::

    F(W) = (1/2N) ‖X W - Y‖² + (λ/2) ‖W‖²,     λ = 0.01

F is quadratic with Hessian A = XᵀX/N + λI, eigenvalues h_j in [0.01, 0.72]: strongly convex, its
minimum solves A W* = XᵀY/N exactly (a float64 solve; no L-BFGS needed). Minibatches of B = 16 are
drawn uniformly WITH replacement, so the gradients are independent and unbiased, as the theory
assumes. We measure D_t = ‖W_t - W*‖² / ‖W*‖². Schedules ``a_t = a_0 (1 + t/T)^(-p)``, a_0 = 0.4,
T = 200: p = 0 at a_0 and a_0/4 (constant); p = 1 (Robbins-Monro); p = 1/2 (Σ a² = ∞ too); p = 2
(Σ a = a_0 (T + O(1)) < ∞).

Theory (SGD on a quadratic, the noise taken as additive with its covariance at W*). Along each
eigenvector u_j of A, with c_j² = ‖u_jᵀ W*‖² and s_j the variance of one sample's gradient along
u_j (at W*, summed over the 10 outputs), the expected squared error follows::

    v_{t+1} = (1 - a_t h_j)² v_t + a_t² s_j / B,     v_0 = c_j²,     E D_t ≈ Σ_j v_j(t) / ‖W*‖²

(the dashed curves). A constant a has the floor Σ_j a s_j / (B h_j (2 - a h_j)), ∝ a to first
order. For p = 1, a_t = c/(t + T) with c = a_0 T and v_j → c² s_j / (B (2c h_j - 1)(t + T)):
slope -1 if 2c h_min > 1 (here 1.6; below 1 the rate is t^(-2c h_min)). For p = 1/2, v_j tracks
the floor of the current rate, ∝ t^(-1/2): it converges in mean square although Σ a² = ∞ (on a
strongly convex problem the conditions are sufficient, not necessary). For p = 2,
‖E W_t - W*‖² = Σ_j c_j² Π_k (1 - a_k h_j)² → Σ_j c_j² exp(-2 h_j Σ a) > 0: a plateau.

Why a compiled loop, not the Trainer: the DataLoader reshuffles each epoch (random reshuffling,
whose floor falls like a² rather than a: Mishchenko, Khaled and Richtárik 2020), and 10^5 updates
of a 640-weight model would be mostly the Trainer's per-step overhead. All runs train at once: one
parameter (seeds, 64, 10) per schedule, each its own optim.SGD parameter group with the schedule
as its lr and weight_decay = λ; forward, backward and opt.step are replayed by nb.compile. Each
seed draws its own minibatches; the five schedules share them (common random numbers).

Check, fixed before the full-size run. Slopes are least-squares fits of log(mean D over seeds) on
log t over the checkpoints of the last decade, t in [n/10, n]. (1) Floors Φ(a) = mean D over seeds
and the checkpoints with t ≥ n/2; the exponent log(Φ(a_0)/Φ(a_0/4)) / log 4 lies in 1 ± 0.2.
(2) p = 1: slope in -1 ± 0.3, and every seed's final D < Φ(a_0/4)/10. (3) p = 1/2: slope in
-1/2 ± 0.2 and final mean D < Φ(a_0/4). (4) p = 2: slope > -0.1 (D falls by less than 21% over
the last decade) and final mean D at least 10 times p = 1's. An exploratory NumPy run of this
setup (3·10^4 steps) and the theory's curves for 10^5 steps came first: they chose λ, B, a_0 and
T (the small rate reaches its floor early; 2c h_min > 1), and the plateau bound -0.1 (theory
-0.02 at 10^5 steps).

Tiny size: 2,000 steps, 2 seeds: seconds, and proves nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

import nabla as nb

from ... import nn, optim
from .common import derive_seed, seeds, splits
from .framework import Experiment, Outcome

LAMBDA, BATCH, RATE, DECAY_STEPS, SMALL = 0.01, 16, 0.4, 200, 4  # λ, B, a_0, T, a_0/a_small


@dataclass(frozen=True)
class Power:
    """The schedule a_t = a_0 (1 + t/T)^(-p), t = updates already made (a callable lr)."""

    a0: float
    steps: float  # T
    p: float

    def __call__(self, step) -> float:
        return self.a0 * (1.0 + step / self.steps) ** -self.p

    def rates(self, n: int) -> np.ndarray:
        return self.a0 * (1.0 + np.arange(n) / self.steps) ** -self.p


SCHEDULES = {
    "constant a₀": Power(RATE, DECAY_STEPS, 0),
    "constant a₀/4": Power(RATE / SMALL, DECAY_STEPS, 0),
    "a₀/(1+t/T)": Power(RATE, DECAY_STEPS, 1),
    "a₀/(1+t/T)^½": Power(RATE, DECAY_STEPS, 0.5),
    "a₀/(1+t/T)²": Power(RATE, DECAY_STEPS, 2),
}
BIG, LITTLE, ROBBINS_MONRO, SQRT, SUMMABLE = SCHEDULES
COLORS = dict(zip(SCHEDULES, ("#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd")))
PREDICTED_SLOPE = {BIG: 0.0, LITTLE: 0.0, ROBBINS_MONRO: -1.0, SQRT: -0.5, SUMMABLE: 0.0}
SUMS = {BIG: "Σa = Σa² = ∞", LITTLE: "Σa = Σa² = ∞", ROBBINS_MONRO: "Σa = ∞, Σa² < ∞"}
SUMS |= {SQRT: "Σa = Σa² = ∞", SUMMABLE: "Σa < ∞"}


@dataclass(frozen=True)
class Size:
    steps: int  # n
    seeds: int
    checkpoints: int  # log-spaced


@dataclass
class Problem:
    """The centred ridge problem, its optimum and its spectrum (see the module docstring)."""

    x: np.ndarray  # (N, 64), float64
    y: np.ndarray  # (N, 10)
    lam: float  # λ
    optimum: np.ndarray  # W*
    curvature: np.ndarray  # h_j
    start: np.ndarray  # c_j² for W_0 = 0
    noise: np.ndarray  # s_j


def ridge_problem(x: np.ndarray, labels: np.ndarray, lam: float = LAMBDA) -> Problem:
    x = np.asarray(x, np.float64) - np.mean(x, axis=0)
    y = np.eye(int(labels.max()) + 1)[labels]
    y -= y.mean(axis=0)
    n, d = x.shape
    hessian = x.T @ x / n + lam * np.eye(d)
    optimum = np.linalg.solve(hessian, x.T @ y / n)
    curvature, basis = np.linalg.eigh(hessian)
    per_sample = x[:, :, None] * (x @ optimum - y)[:, None, :]  # ∇ of one sample's loss, (N, d, 10)
    along = np.einsum("dj,ndc->njc", basis, per_sample - per_sample.mean(axis=0))
    start = np.sum((basis.T @ optimum) ** 2, axis=1)
    return Problem(x, y, lam, optimum, curvature, start, np.mean(np.sum(along**2, axis=2), axis=0))


def checkpoints(steps: int, count: int) -> np.ndarray:
    """Log-spaced update counts from 1 to ``steps`` (distinct integers)."""
    return np.unique(np.geomspace(1, steps, count).round().astype(int))


def draws(seed: int, count: int, steps: int, batch: int, n: int) -> np.ndarray:
    """(steps, count, batch) sample indices, drawn with replacement; seed i has its own stream."""
    streams = [np.random.default_rng(derive_seed(seed, i)) for i in range(count)]
    return np.stack([s.integers(0, n, size=(steps, batch)) for s in streams], axis=1)


def train(problem: Problem, schedules: list, indices: np.ndarray, marks: np.ndarray) -> np.ndarray:
    """SGD for every schedule and seed at once; ‖W_t - W*‖² at each mark, (schedule, seed, mark)."""
    _, count, batch = indices.shape
    weights = [nn.Parameter(np.zeros((count, *problem.optimum.shape))) for _ in schedules]
    groups = [{"params": [w], "lr": lr} for w, lr in zip(weights, schedules)]
    opt = optim.SGD(groups, weight_decay=problem.lam)

    def step(x, y):  # the sum of the runs' losses: each run's gradient is its own
        opt.zero_grad()
        loss = sum(((nb.matmul(x, w) - y) ** 2).sum() for w in weights) * (0.5 / batch)
        loss.backward()
        opt.step()
        return loss

    compiled, distances, done = nb.compile(step), [], 0
    for mark in marks:
        for idx in indices[done:mark]:
            x, y = problem.x[idx], problem.y[idx]
            compiled(nb.tensor(x, dtype="float64"), nb.tensor(y, dtype="float64"))
        done = mark
        distances.append([np.sum((w.data - problem.optimum) ** 2, axis=(1, 2)) for w in weights])
    return np.asarray(distances).transpose(1, 2, 0)


def predicted(problem: Problem, rates: np.ndarray, marks: np.ndarray, batch=BATCH) -> np.ndarray:
    """The theory's Σ_j v_j(t) at each mark, for rates (n, K) of K schedules: (K, marks)."""
    h, noise = problem.curvature, problem.noise / batch
    v = np.tile(problem.start, (rates.shape[1], 1))
    out, done = [], 0
    for mark in marks:
        for a in rates[done:mark, :, None]:
            v = (1 - a * h) ** 2 * v + a * a * noise
        done = mark
        out.append(v.sum(axis=1))
    return np.asarray(out).T


def loglog_slope(marks: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of log(values) on log(t) over the last decade, t ≥ t_max/10."""
    last = marks >= marks[-1] / 10
    return float(np.polyfit(np.log(marks[last]), np.log(values[last]), 1)[0])


@dataclass
class Results:
    size: Size
    seeds: list
    marks: np.ndarray
    distance: dict  # schedule -> (seeds, marks), relative to ‖W*‖²
    predicted: dict  # schedule -> (marks,)
    bias_limit: float  # ‖E W_n - W*‖² / ‖W*‖² for the summable schedule (noise-free)
    curvature: tuple  # (h_min, h_max)
    cpu: float

    def mean(self, name: str) -> np.ndarray:
        return self.distance[name].mean(axis=0)

    def slope(self, name: str) -> float:
        return loglog_slope(self.marks, self.mean(name))

    def floor(self, name: str) -> float:
        return float(self.mean(name)[self.marks >= self.marks[-1] / 2].mean())

    def exponent(self) -> float:
        return float(np.log(self.floor(BIG) / self.floor(LITTLE)) / np.log(SMALL))


class SGDConvergence(Experiment):
    name = "sgd-convergence"
    title = "SGD convergence: Robbins-Monro step sizes, constant rates and summable schedules"
    reference = (
        "H. Robbins and S. Monro, A Stochastic Approximation Method, Ann. Math. Statist. 22 (1951)"
    )
    summary = "ridge regression on digits: ‖w_t - w*‖² under constant, t^-1, t^-1/2 and t^-2 rates"
    sizes = {"tiny": Size(2_000, 2, 30), "full": Size(100_000, 5, 100)}

    def measure(self, size: Size, seed: int) -> Results:
        train_set = splits("digits", flat=True).train
        problem = ridge_problem(train_set.x, train_set.y)
        marks, scale = checkpoints(size.steps, size.checkpoints), float(np.sum(problem.optimum**2))
        indices = draws(seed, size.seeds, size.steps, BATCH, len(problem.x))
        start = time.process_time()
        distance = train(problem, list(SCHEDULES.values()), indices, marks) / scale
        cpu = time.process_time() - start
        rates = np.stack([s.rates(size.steps) for s in SCHEDULES.values()], axis=1)
        theory = predicted(problem, rates, marks) / scale
        summable = rates[:, [list(SCHEDULES).index(SUMMABLE)]]
        bias = predicted(problem, summable, marks[-1:], batch=np.inf)[0, -1] / scale
        for name, d, p in zip(SCHEDULES, distance, theory):
            self.log(f"{name:>14}: final D {d[:, -1].mean():.3g} (theory {p[-1]:.3g})")
        h = problem.curvature
        return Results(
            size,
            seeds(seed, size.seeds),
            marks,
            dict(zip(SCHEDULES, distance)),
            dict(zip(SCHEDULES, theory)),
            float(bias),
            (float(h[0]), float(h[-1])),
            cpu,
        )

    def verdict(self, results: Results) -> Outcome:
        r, little = results, results.floor(LITTLE)
        final = {name: float(r.mean(name)[-1]) for name in SCHEDULES}
        slope = {name: r.slope(name) for name in SCHEDULES}
        checks = (
            abs(r.exponent() - 1) <= 0.2,
            abs(slope[ROBBINS_MONRO] + 1) <= 0.3,
            bool(np.all(r.distance[ROBBINS_MONRO][:, -1] < little / 10)),
            abs(slope[SQRT] + 0.5) <= 0.2 and final[SQRT] < little,
            slope[SUMMABLE] > -0.1 and final[SUMMABLE] >= 10 * final[ROBBINS_MONRO],
        )
        return Outcome(
            claim="SGD on a strongly convex problem converges with Σa = ∞, Σa² < ∞ (a0/(1+t/T): "
            "slope -1 ± 0.3, every seed below floor(a0/4)/10); a constant rate stalls at a floor "
            "∝ rate (exponent 1 ± 0.2); a0/√(1+t/T) still converges (slope -0.5 ± 0.2); a "
            "summable a0/(1+t/T)² stops short (slope > -0.1, ≥ 10 x Robbins-Monro)",
            ours=f"{len(r.seeds)} seeds, {r.size.steps} steps: floors {r.floor(BIG):.2e} (a0) / "
            f"{little:.2e} (a0/4), exponent {r.exponent():.2f}; 1/t: slope "
            f"{slope[ROBBINS_MONRO]:.2f}, final {final[ROBBINS_MONRO]:.1e} (worst seed "
            f"{r.distance[ROBBINS_MONRO][:, -1].max():.1e}); 1/√t: slope {slope[SQRT]:.2f}, final "
            f"{final[SQRT]:.1e}; 1/t²: slope {slope[SUMMABLE]:.3f}, final {final[SUMMABLE]:.1e} "
            f"= {final[SUMMABLE] / final[ROBBINS_MONRO]:.0f} x 1/t",
            passed=all(checks),
        )

    def report(self, page, results: Results) -> None:
        r, (h_min, h_max) = results, results.curvature
        page.text(
            "Ridge regression of the one-hot digit labels on the 64 centred pixels (1,437 "
            f"training images), λ = {LAMBDA:g}: the Hessian's eigenvalues lie in [{h_min:.3f}, "
            f"{h_max:.3f}], so the optimum W* is unique (a float64 linear solve). SGD from W = 0 "
            f"with minibatches of {BATCH} drawn with replacement, {r.size.steps} updates, "
            f"{len(r.seeds)} seeds; a_t = a₀(1+t/T)^-p with a₀ = {RATE:g}, T = {DECAY_STEPS}. "
            "All runs train together in one nb.compile'd step (one optim.SGD parameter group per "
            f"schedule): {r.cpu:.0f} CPU seconds. D = ‖W_t - W*‖² / ‖W*‖².",
            "Check (fixed before running; slopes over the last decade of t, of the mean over "
            "seeds): floor exponent log(Φ(a₀)/Φ(a₀/4))/log 4 in 1 ± 0.2; 1/t slope in -1 ± 0.3 "
            "with every seed below Φ(a₀/4)/10 at the end; 1/√t slope in -0.5 ± 0.2, ending below "
            "Φ(a₀/4); 1/t² slope above -0.1, ending at least 10 times above 1/t.",
        )
        page.figure(figure(r), "distance", "squared distance to the optimum against updates")
        rows = []
        for name, schedule in SCHEDULES.items():
            rates = schedule.rates(r.size.steps)
            final = r.distance[name][:, -1]
            seed_slopes = [loglog_slope(r.marks, d) for d in r.distance[name]]
            rows.append(
                [
                    name,
                    float(rates.sum()),
                    float(np.sum(rates**2)),
                    PREDICTED_SLOPE[name],
                    f"{r.slope(name):.3f} ± {np.std(seed_slopes, ddof=1):.3f}",
                    f"{final.mean():.3e} ± {final.std(ddof=1):.1e}",
                    float(r.predicted[name][-1]),
                ]
            )
        page.table(
            [
                "schedule",
                "Σa_t (run)",
                "Σa_t² (run)",
                "theory slope",
                "slope (mean, seed std)",
                "final D (mean ± seed std)",
                "theory final D",
            ],
            rows,
            caption="slopes over the last decade of t; theory: the linear-noise recursion "
            "(module docstring)",
        )
        page.text(
            f"Floors (mean D for t ≥ n/2): a₀ {r.floor(BIG):.3e} (theory "
            f"{r.predicted[BIG][-1]:.3e}), a₀/4 {r.floor(LITTLE):.3e} (theory "
            f"{r.predicted[LITTLE][-1]:.3e}); exponent {r.exponent():.3f}. The summable "
            f"schedule's noise-free limit ‖E W_n - W*‖² / ‖W*‖² = {r.bias_limit:.3e}: it stops "
            "short by that much even without noise."
        )


def figure(r: Results):
    from ..report import new_figure

    fig = new_figure((12, 4.8))
    left, right = fig.subplots(1, 2, width_ratios=(1, 2))
    for name, schedule in SCHEDULES.items():
        rates = schedule.rates(r.size.steps)[r.marks - 1]
        left.plot(r.marks, rates, color=COLORS[name], label=f"{name}: {SUMS[name]}")
        for d in r.distance[name]:
            right.plot(r.marks, d, color=COLORS[name], lw=0.6, alpha=0.35)
        right.plot(r.marks, r.mean(name), color=COLORS[name], lw=2.2, label=name)
        right.plot(r.marks, r.predicted[name], color="k", lw=0.8, ls="--")
    right.plot([], [], color="k", lw=0.8, ls="--", label="theory (linear-noise recursion)")
    last = r.marks >= r.marks[-1] / 10
    for name, text in ((ROBBINS_MONRO, "slope -1"), (SQRT, "slope -½")):
        x = r.marks[last]
        y = 0.35 * r.mean(name)[last][0] * (x / x[0]) ** PREDICTED_SLOPE[name]
        right.plot(x, y, color=COLORS[name], lw=1.2, ls=":")
        right.annotate(
            text,
            (x[-1], y[-1]),
            (4, 0),
            textcoords="offset points",
            va="center",
            color=COLORS[name],
        )
    left.set(
        xscale="log",
        yscale="log",
        xlabel="update t",
        ylabel="learning rate a_t",
        title=f"schedules: a₀ = {RATE:g}, T = {DECAY_STEPS}",
    )
    title = f"distance to the optimum: mean of {len(r.seeds)} seeds (thin: each seed)"
    right.set(
        xscale="log", yscale="log", xlabel="update t", ylabel="‖W_t - W*‖² / ‖W*‖²", title=title
    )
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
    left.legend(fontsize=8)
    right.legend(fontsize=8, loc="lower left")
    fig.suptitle("SGD on ridge regression (digits): constant, Robbins-Monro, t^-½ and summable")
    return fig
