"""``nabla experiment mle-efficiency``: maximum likelihood is consistent and asymptotically
efficient; which estimator is the MLE depends on the model (the lecture's "Properties of MLE").

Claim: the MLE converges to the true parameter, and asymptotically no consistent estimator has a
lower mean squared error: m MSE -> 1/I, the Cramér-Rao bound, with I the Fisher information of
one observation. For a location mu,

    Gaussian N(mu, sigma^2):  -log p = (x - mu)^2 / (2 sigma^2),  I = 1/sigma^2,  MLE = mean;
    Laplace(mu, b):           -log p = |x - mu| / b,              I = 1/b^2,      MLE = median.

The mean has m MSE = Var(X): sigma^2 (the bound, at every m) and 2 b^2 (twice the bound). The
median has m MSE -> 1 / (4 f(mu)^2): pi sigma^2 / 2 (efficiency 2/pi) and b^2 (the bound). So the
ordering flips between the two models. We take sigma = 1 and b = 1/sqrt(2): both laws have
variance 1, the mean does the same on both, and the bounds are 1 and 1/2.

Setup: for m in 10 log-spaced odd sizes from 11 to 10,001 (odd, so that the median, the minimizer
of sum |x - mu|, is unique) and R repeats, samples of size m with mu = 2, in float64. The MLE is
FITTED: a parameter tensor of shape (R, 1) from mu = 0, the summed per-repeat NLL's gradient by
nabla's autograd, 100 steps of ``optim.Adam(beta1=0, beta2=0)``, which is sign descent
mu <- mu - lr g / (|g| + eps), with lr = 0.8^t (it can travel 5 in all). Sign descent because
near the median the gradient of sum |x - mu| / m is (#below - #above) / m = +-1/m: plain gradient
descent crosses a gap between order statistics in up to m gap / lr steps (in a pilot with plain
GD, lr 0.5 for 40 steps then decaying, 100 in all, b = 1, about 0.1% of the fits at m = 11 stopped
short of the median, by up to 0.45); a sign step does not depend on m. The other estimator is
computed directly (np.median, np.mean). float64 because the fit check below asks for
1e-6 of a standard error (1e-8 at m = 10,001), below float32's resolution near mu = 2 (2.4e-7);
the float32 fit's gap is measured on one batch and reported. The Fisher information is also
measured with autograd (the mean squared score over 10^6 draws) to confirm the bounds.

m MSE is the mean over repeats of m (estimate - mu)^2, its standard error std / sqrt(R); the
difference between the two estimators uses the paired standard error (same samples). The exact
finite-m variance of the median, int x^2 g(x) dx with g the density of the middle order
statistic, is drawn for comparison (not judged).

The check, fixed before the full-size run (Z = 3.5 standard errors):
(1) every fitted MLE equals the closed form (np.mean, np.median) within 1e-6 sqrt(bound / m);
(2) at the largest m, each MLE's m MSE is within Z SE of its bound (sigma^2; b^2);
(3) at the largest m, the other estimator's m MSE is within Z SE of its limit (pi sigma^2 / 2;
2 b^2) and above the MLE's by more than Z paired SE;
(4) consistency: for all four estimator-model pairs the MSE falls at every step of m, and the
log-log slope fitted over m >= 100 is within 0.05 of -1.
The range m >= 100 in (4) was chosen from the exact median variances computed before any run: for
the Laplace median m Var = b^2 (1 + ~1.6/sqrt(m)) (1.52 b^2 at m = 11, 1.016 b^2 at 10,001), which
bends a slope fitted from m = 11 to about -1.06; over m >= 100 it predicts -1.03.

Full size: 3,000 repeats per m and model (m MSE to about +-2.6%). Tiny size: m in (11, 101,
1001), 200 repeats: seconds, and proves nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import nabla as nb

from ... import optim
from ...optim import schedules
from .framework import Experiment, Outcome

Z = 3.5
FIT_TOL = 1e-6  # |fit - closed form| in standard errors sqrt(bound / m)
SLOPE_TOL, SLOPE_FROM = 0.05, 100
LOCATION, START = 2.0, 0.0
STEPS, LR, DECAY = 100, 1.0, 0.8
CHUNK = 1 << 21  # elements (repeats x m) fitted at once
B = 1 / math.sqrt(2)  # the Laplace scale: variance 2 b^2 = 1


@dataclass(frozen=True)
class Model:
    draw: object  # (rng, shape) -> samples
    nll: object  # residual tensor -> per-observation NLL (constants dropped)
    mle: str  # which estimator the MLE is
    bound: float  # 1 / I: m MSE of an efficient estimator
    other_limit: float  # the other estimator's asymptotic m MSE
    log_tail: object  # x >= 0 -> log P(X - mu > x)
    log_density: object  # x -> log f(mu + x)

    @property
    def other(self) -> str:
        return "median" if self.mle == "mean" else "mean"


def _gauss_log_tail(x):
    erfc = np.vectorize(math.erfc, otypes=[float])
    with np.errstate(divide="ignore"):
        return np.log(0.5 * erfc(x / math.sqrt(2)))


MODELS = {
    "Gaussian": Model(
        lambda rng, shape: rng.normal(LOCATION, 1.0, shape),
        lambda r: 0.5 * r * r,
        "mean",
        1.0,
        math.pi / 2,
        _gauss_log_tail,
        lambda x: -0.5 * x * x - 0.5 * math.log(2 * math.pi),
    ),
    "Laplace": Model(
        lambda rng, shape: rng.laplace(LOCATION, B, shape),
        lambda r: r.abs() / B,
        "median",
        B * B,
        2 * B * B,
        lambda x: math.log(0.5) - x / B,
        lambda x: -math.log(2 * B) - np.abs(x) / B,
    ),
}
ESTIMATORS = {"mean": lambda x: x.mean(axis=1), "median": lambda x: np.median(x, axis=1)}


@dataclass(frozen=True)
class Size:
    ms: tuple
    repeats: int
    score_draws: int  # draws for the Fisher information


@dataclass
class Results:
    size: Size
    errors: dict  # (model, estimator) -> (len(ms), R) array of estimate - mu
    fit_gap: dict  # model -> (len(ms),) max |fit - closed form| / sqrt(bound / m)
    traces: dict  # model -> (len(ms), STEPS) that maximum after each step
    float32_gap: dict  # model -> the same gap for a float32 fit at the largest m
    fisher: dict  # model -> mean squared score (autograd)


def fit_locations(x: np.ndarray, nll, dtype="float64", closed=None):
    """Minimize sum_j nll(x_ij - mu_i) over mu_i for every row i, by sign descent from START:
    Adam with beta1 = beta2 = 0. Returns the fits and, given ``closed``, max_i |mu_i - closed_i|
    after each step."""
    mu = nb.tensor(np.full((len(x), 1), START), dtype=dtype, requires_grad=True)
    data = nb.tensor(x, dtype=dtype)
    lr = schedules.ExponentialDecay(LR, decay_steps=1, decay_rate=DECAY)
    opt = optim.Adam([mu], lr=lr, beta1=0.0, beta2=0.0)
    trace = []
    for _ in range(STEPS):
        opt.zero_grad()
        nll(data - mu).mean(axis=1).sum().backward()  # rows are independent problems
        opt.step()
        if closed is not None:
            trace.append(float(np.max(np.abs(mu.data[:, 0] - closed))))
    return mu.data[:, 0].astype(np.float64), np.array(trace)


def median_variance(m: int, model: Model, points: int = 20_001) -> float:
    """Exact Var of the median of m (odd) draws of a symmetric law: 2 int_0^inf x^2 g(x) dx,
    g = m C(m-1, k) F^k (1 - F)^k f with k = (m - 1)/2 (trapezoid rule in log space)."""
    k = (m - 1) // 2
    scale = math.sqrt(max(model.bound, model.other_limit) / m)
    x = np.linspace(0.0, 40 * scale, points)
    log_upper = model.log_tail(x)
    log_both = np.log1p(-np.exp(log_upper)) + log_upper if k else 0.0  # log F(1 - F), x >= 0
    log_c = math.log(m) + math.lgamma(2 * k + 1) - 2 * math.lgamma(k + 1)
    density = np.exp(log_c + k * log_both + model.log_density(x))
    return float(2 * np.trapezoid(x * x * density, x))


def fisher_information(model: Model, draws: int, rng) -> float:
    """E[(d/dmu log p(x | mu))^2] at the true mu: one parameter per draw, so that autograd's
    gradient of the summed NLL holds each draw's score (negated)."""
    mu = nb.tensor(np.full(draws, LOCATION), dtype="float64", requires_grad=True)
    model.nll(nb.tensor(model.draw(rng, draws), dtype="float64") - mu).sum().backward()
    return float(np.mean(np.asarray(mu.grad) ** 2))


def m_mse(errors: np.ndarray, m: int):
    """(mean, standard error) of m (estimate - mu)^2 over the repeats."""
    values = m * errors**2
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def log_log_slope(ms, mse) -> float:
    """Least-squares slope of log MSE against log m."""
    return float(np.polyfit(np.log(ms), np.log(mse), 1)[0])


def odd_sizes(low: float, high: float, count: int) -> tuple:
    """``count`` log-spaced sizes from low to high, each rounded up to an odd number."""
    return tuple(int(2 * (round(m) // 2) + 1) for m in np.geomspace(low, high, count))


def simulate(model: Model, m: int, repeats: int, rng):
    """``repeats`` samples of size m: the fitted MLE's and the other estimator's errors, the
    largest |fit - closed form| and its trace over the steps, in standard errors sqrt(bound / m)."""
    unit, rows = math.sqrt(model.bound / m), max(1, CHUNK // m)
    mle, other, gap, trace = [], [], 0.0, np.zeros(STEPS)
    for start in range(0, repeats, rows):
        x = model.draw(rng, (min(rows, repeats - start), m))
        closed = ESTIMATORS[model.mle](x)
        fit, steps = fit_locations(x, model.nll, closed=closed)
        mle.append(fit - LOCATION)
        other.append(ESTIMATORS[model.other](x) - LOCATION)
        gap = max(gap, float(np.max(np.abs(fit - closed))) / unit)
        trace = np.maximum(trace, steps / unit)
    return np.concatenate(mle), np.concatenate(other), gap, trace


class MleEfficiency(Experiment):
    name = "mle-efficiency"
    title = "Maximum likelihood is consistent and reaches the Cramér-Rao bound"
    reference = (
        "the lecture's Properties of MLE slide (consistency, asymptotic efficiency: the "
        "Cramér-Rao bound); the efficiency 2/pi of the median under a Gaussian"
    )
    summary = "Gaussian and Laplace locations fitted by autograd: m MSE of mean and median vs 1/I"
    sizes = {
        "tiny": Size((11, 101, 1001), repeats=200, score_draws=10_000),
        "full": Size(odd_sizes(10, 10_000, 10), repeats=3000, score_draws=1_000_000),
    }

    def measure(self, size: Size, seed: int) -> Results:
        rng = np.random.default_rng(seed)
        results = Results(size, {}, {}, {}, {}, {})
        for name, model in MODELS.items():
            runs = [simulate(model, m, size.repeats, rng) for m in size.ms]
            for m, (mle, other, gap, _) in zip(size.ms, runs):
                self.log(
                    f"{name:8s} m={m:>5}: fit gap {gap:.1e} SE; m MSE {model.mle} "
                    f"{m_mse(mle, m)[0]:.3f}, {model.other} {m_mse(other, m)[0]:.3f}"
                )
            mle, other, gaps, traces = (np.array(column) for column in zip(*runs))
            results.errors[name, model.mle], results.errors[name, model.other] = mle, other
            results.fit_gap[name], results.traces[name] = gaps, traces
            m = size.ms[-1]
            x = model.draw(rng, (min(size.repeats, CHUNK // m), m))
            fit32, _ = fit_locations(x, model.nll, dtype="float32")
            gap32 = np.max(np.abs(fit32 - ESTIMATORS[model.mle](x))) / math.sqrt(model.bound / m)
            results.float32_gap[name] = float(gap32)
            results.fisher[name] = fisher_information(model, size.score_draws, rng)
            self.log(
                f"{name}: float32 gap {gap32:.1e} SE; Fisher information {results.fisher[name]}"
            )
        return results

    def verdict(self, results: Results) -> Outcome:
        ms, last = results.size.ms, -1
        fit_ok = all(float(gap.max()) <= FIT_TOL for gap in results.fit_gap.values())
        parts, checks = [], [fit_ok]
        for name, model in MODELS.items():
            other = model.other
            mle_err, other_err = results.errors[name, model.mle], results.errors[name, other]
            mle, mle_se = m_mse(mle_err[last], ms[last])
            oth, oth_se = m_mse(other_err[last], ms[last])
            paired = ms[last] * (other_err[last] ** 2 - mle_err[last] ** 2)
            paired_se = paired.std(ddof=1) / math.sqrt(len(paired))
            checks += [
                abs(mle - model.bound) <= Z * mle_se,
                abs(oth - model.other_limit) <= Z * oth_se,
                oth - mle > Z * paired_se,
            ]
            slopes = []
            for errors in (mle_err, other_err):
                mse = (errors**2).mean(axis=1)
                judged = np.array(ms) >= SLOPE_FROM
                slopes.append(log_log_slope(np.array(ms)[judged], mse[judged]))
                checks += [bool(np.all(np.diff(mse) < 0)), abs(slopes[-1] + 1) <= SLOPE_TOL]
            parts.append(
                f"{name}: {model.mle} (MLE) {mle:.3f} ± {mle_se:.3f} vs bound {model.bound:.3f}, "
                f"{other} {oth:.3f} ± {oth_se:.3f} vs {model.other_limit:.3f} (efficiency "
                f"{mle / oth:.3f}); MSE slopes {slopes[0]:.3f}, {slopes[1]:.3f}"
            )
        return Outcome(
            claim="the MLE is consistent and efficient: m MSE -> 1/I (Gaussian: mean -> sigma^2, "
            "median -> pi sigma^2/2; Laplace: median -> b^2, mean -> 2 b^2), MSE ~ m^-1",
            ours=f"{results.size.repeats} repeats, m = {ms[0]}..{ms[last]}; autograd fits = "
            f"closed form within {max(g.max() for g in results.fit_gap.values()):.0e} SE; "
            f"sigma = 1, b = 1/sqrt 2; m MSE at m = {ms[last]} and log-log MSE slopes (m >= "
            f"{SLOPE_FROM}): " + "; ".join(parts),
            passed=bool(all(checks)),
        )

    def report(self, page, results: Results) -> None:
        size = results.size
        page.text(
            f"Samples of size m in {list(size.ms)} from N(2, 1) and Laplace(2, b = 1/sqrt 2) "
            f"(both of variance 1), {size.repeats} repeats each, float64. The MLE is fitted with "
            f"nabla's autograd: a parameter per repeat, {STEPS} steps of Adam(beta1 = 0, beta2 = "
            f"0) (sign descent) with lr {LR:g} x {DECAY:g}^t from mu = {START:g}; the other "
            "estimator is computed directly. Fisher information from autograd's score "
            f"({size.score_draws} draws): Gaussian {results.fisher['Gaussian']:.4f} (exact 1), "
            f"Laplace {results.fisher['Laplace']:.4f} (exact 1/b^2 = 2).",
            f"The check, fixed before running: fits equal to np.mean / np.median within "
            f"{FIT_TOL:g} standard errors; at the largest m each MLE's m MSE within {Z:g} SE of "
            f"its bound, the other estimator's within {Z:g} SE of its limit and above the MLE's by "
            f"more than {Z:g} paired SE; every MSE falling with m, slope over m >= {SLOPE_FROM} "
            f"within {SLOPE_TOL:g} of -1.",
        )
        rows = []
        for (name, estimator), errors in results.errors.items():
            model = MODELS[name]
            for m, e in zip(size.ms, errors):
                value, se = m_mse(e, m)
                exact = median_variance(m, model) * m if estimator == "median" else 1.0
                role = "MLE" if estimator == model.mle else "other"
                rows.append(
                    [name, f"{estimator} ({role})", m, value, se, exact, (value - exact) / se]
                )
        page.table(
            ["model", "estimator", "m", "m MSE", "standard error", "exact m Var", "z vs exact"],
            rows,
            caption="exact: Var(X) = 1 for the mean, the middle order statistic's variance for the "
            "median (not judged)",
        )
        page.figure(
            efficiency_figure(results),
            "efficiency",
            "m MSE of the mean and the median against m (bands: 95% confidence, 1.96 SE; thin "
            "dashed: exact finite-m values), with the Cramér-Rao bound 1/I and the other "
            "estimator's limit; right: the MSE itself, log-log, against the slope -1.",
        )
        page.table(
            ["model", "max |fit - closed form| / SE over m and repeats", "float32 fit, largest m"],
            [[n, float(results.fit_gap[n].max()), results.float32_gap[n]] for n in MODELS],
            caption=f"SE = sqrt(bound / m); the check asks for <= {FIT_TOL:g}",
        )
        page.figure(
            fit_figure(results),
            "fits",
            "Fitting the MLE by sign descent on the NLL: the largest distance over the repeats "
            "from the closed form (np.mean, np.median), in standard errors, after each step.",
        )


def efficiency_figure(results: Results):
    from ..report import new_figure

    ms = np.array(results.size.ms)
    fig = new_figure((13, 4.2))
    axes = fig.subplots(1, 3)
    colors = {"mean": "C0", "median": "C3"}
    grid = odd_sizes(ms[0], ms[-1], 40)
    for ax, (name, model) in zip(axes[:2], MODELS.items()):
        for estimator in (model.mle, model.other):
            errors = results.errors[name, estimator]
            stats = np.array([m_mse(e, m) for m, e in zip(ms, errors)])
            role = "MLE" if estimator == model.mle else "not the MLE"
            color = colors[estimator]
            ax.semilogx(ms, stats[:, 0], "o-", color=color, label=f"{estimator} ({role})")
            ax.fill_between(
                ms,
                *(stats[:, 0] + s * 1.96 * stats[:, 1] for s in (-1, 1)),
                color=color,
                alpha=0.2,
                lw=0,
            )
        exact = [m * median_variance(m, model) for m in grid]
        ax.semilogx(grid, exact, "--", color=colors["median"], lw=0.8, label="median, exact")
        limit = "pi/2 sigma^2" if name == "Gaussian" else "2 b^2"
        ax.axhline(model.bound, color="k", lw=1.2, label=f"Cramér-Rao bound 1/I = {model.bound:g}")
        ax.axhline(
            model.other_limit, color="k", ls=":", lw=1, label=f"{limit} = {model.other_limit:.3g}"
        )
        ax.set(
            xlabel="sample size m",
            ylabel="m · MSE",
            title=f"{name} data: the MLE is the {model.mle}",
            ylim=(0, 2.3),
        )
        ax.legend(fontsize=8, loc="lower right" if name == "Gaussian" else "upper right")
    ax = axes[2]
    for (name, estimator), errors in results.errors.items():
        marker = "o" if name == "Gaussian" else "s"
        ax.loglog(
            ms,
            (errors**2).mean(axis=1),
            marker + "-",
            color=colors[estimator],
            ms=4,
            fillstyle="none" if name == "Laplace" else "full",
            label=f"{name}, {estimator}",
        )
    ax.loglog(ms, 1.0 / ms, "k--", lw=1, label="1/m (slope -1)")
    ax.set(xlabel="sample size m", ylabel="MSE", title="consistency: MSE -> 0 like 1/m")
    ax.legend(fontsize=8)
    return fig


def fit_figure(results: Results):
    from matplotlib import colormaps

    from ..report import new_figure

    fig = new_figure((10, 3.8))
    axes = fig.subplots(1, 2, sharey=True)
    steps = np.arange(1, STEPS + 1)
    colors = colormaps["viridis"](np.linspace(0, 0.9, len(results.size.ms)))
    for ax, name in zip(axes, MODELS):
        for m, trace, color in zip(results.size.ms, results.traces[name], colors):
            ax.semilogy(steps, np.maximum(trace, 1e-16), color=color, label=f"m = {m}")
        ax.axhline(FIT_TOL, color="k", ls="--", lw=1, label=f"tolerance {FIT_TOL:g}")
        ax.set(xlabel="step", title=f"{name}: fitting the {MODELS[name].mle}")
    axes[0].set_ylabel("max over repeats |fit - closed form| / SE")
    axes[1].legend(fontsize=7, ncol=2)
    return fig
