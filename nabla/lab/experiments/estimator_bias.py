"""``nabla experiment estimator-bias``: the sample variance with 1/n is biased by (n - 1)/n, the
one with 1/(n - 1) is not; batch norm normalizes with the first and keeps the second as its
running variance (the lecture's estimator section; Ioffe and Szegedy 2015, Algorithm 2).

For x_1..x_n independent with variance sigma^2 and xbar their mean,

    E[ sum_i (x_i - xbar)^2 ] = (n - 1) sigma^2,

because sum_i (x_i - xbar)^2 = sum_i (x_i - mu)^2 - n (xbar - mu)^2 and E[(xbar - mu)^2] =
sigma^2 / n. So s_n^2 = (1/n) sum (x_i - xbar)^2 has E[s_n^2] = (n - 1)/n sigma^2 (biased low:
half the variance for n = 2), and s^2 = (1/(n - 1)) sum (x_i - xbar)^2 has E[s^2] = sigma^2,
whatever the distribution (finite variance is all it takes).

Part 1, Monte Carlo: for n in {2, 4, 8, 16, 64}, many samples of size n from a normal and from an
exponential distribution (one seeded ``numpy.random.Generator``), both estimators computed with
nabla's ``Tensor.var(axis, ddof)``; the mean of s^2 / sigma^2 is compared with the exact factor,
with the Monte Carlo standard error std(s^2 / sigma^2) / sqrt(samples).

Part 2, batch norm: ``nn.BatchNorm1d`` in training mode normalizes a batch by its mean and its
*biased* variance (1/n), and updates ``running_var`` with the *unbiased* one (n/(n - 1) times
it), as PyTorch does. Checked three ways: one batch against both formulas; ``momentum=None``
(a cumulative average) over many batches of size n, whose running variance should average to
sigma^2 and not (n - 1)/n sigma^2; and, if torch is importable, against ``torch.nn.BatchNorm1d``
on the same batches.

The check, fixed before running: (1) every Monte Carlo mean is within 3.5 standard errors of its
exact factor ((n - 1)/n for 1/n, 1 for 1/(n - 1)), and the 1/n mean is more than 3.5 standard
errors away from 1 at every n (the bias is detected, not just consistent); (2) BatchNorm's
output matches the biased normalization and its running variance the unbiased estimate
(relative error < 1e-9 in float64), and the Monte Carlo mean of the running variance is
within 3.5 standard errors of sigma^2; (3) where torch is available, outputs and running
statistics agree with it to 1e-9.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import nabla as nb
from nabla import nn

from .framework import Experiment, Outcome

Z = 3.5  # in standard errors: with 10 independent comparisons a false FAIL has < 1% chance
EXACT = 1e-9  # relative tolerance of the float64 comparisons
EPS = 1e-5  # BatchNorm's eps
# name -> (draw of shape (m, n) with variance SIGMA2[name], sigma^2)
DISTRIBUTIONS = {
    "normal(3, 2^2)": (lambda rng, shape: rng.normal(3.0, 2.0, shape), 4.0),
    "exponential(1)": (lambda rng, shape: rng.exponential(1.0, shape), 1.0),
}


@dataclass(frozen=True)
class Size:
    ns: tuple
    samples: int  # Monte Carlo samples per n and distribution
    channels: int  # independent BatchNorm channels (replicates)
    batches: int  # batches fed to the BatchNorm
    bn_n: int  # the batch size there


@dataclass
class Estimate:
    """One Monte Carlo row: the mean of s^2 / sigma^2 over the samples and its standard error."""

    distribution: str
    n: int
    estimator: str  # "1/n" or "1/(n-1)"
    mean: float
    se: float
    exact: float  # (n - 1)/n or 1

    @property
    def z(self) -> float:
        return (self.mean - self.exact) / self.se

    @property
    def z1(self) -> float:  # the distance from 1: whether the bias is detected
        return (self.mean - 1.0) / self.se


@dataclass
class BatchNormChecks:
    """BatchNorm1d against the two formulas (largest relative errors over batches and channels),
    against torch (None where it is not importable), and its running variance batch by batch."""

    n: int
    sigma2: float
    output_vs_biased: float = 0.0
    output_vs_unbiased: float = 0.0
    running_vs_unbiased: float = 0.0
    torch_output: float | None = None
    torch_running: float | None = None
    running: list = field(default_factory=list)  # running_var after each batch
    batch_biased: list = field(default_factory=list)  # each batch's biased variance
    running_mean: float = 0.0  # the last running_var / sigma^2: its mean over the channels
    running_se: float = 0.0  # and its standard error


@dataclass
class Results:
    size: Size
    estimates: list  # of Estimate, by distribution, n and estimator
    bn: BatchNormChecks


def sample_variances(draw, n: int, samples: int, rng: np.random.Generator, chunk: int = 1 << 21):
    """(s_n^2, s^2) for ``samples`` samples of size n: nabla's var with ddof 0 and 1."""
    biased, unbiased = [], []
    rows = max(1, chunk // n)
    with nb.no_grad():
        for start in range(0, samples, rows):
            x = nb.tensor(draw(rng, (min(rows, samples - start), n)), dtype="float64")
            biased.append(x.var(axis=1, ddof=0).data)
            unbiased.append(x.var(axis=1, ddof=1).data)
    return np.concatenate(biased), np.concatenate(unbiased)


def monte_carlo(size: Size, rng: np.random.Generator) -> list[Estimate]:
    """One estimate per (distribution, n, estimator)."""
    estimates = []
    for name, (draw, sigma2) in DISTRIBUTIONS.items():
        for n in size.ns:
            biased, unbiased = sample_variances(draw, n, size.samples, rng)
            for estimator, values, exact in (
                ("1/n", biased, (n - 1) / n),
                ("1/(n-1)", unbiased, 1.0),
            ):
                ratio = values / sigma2
                se = float(ratio.std(ddof=1) / np.sqrt(len(ratio)))
                estimates.append(Estimate(name, n, estimator, float(ratio.mean()), se, exact))
    return estimates


def relative_error(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def batch_norm_checks(size: Size, rng: np.random.Generator) -> BatchNormChecks:
    """Feed ``size.batches`` batches of size n from N(mu, sigma^2) to BatchNorm1d(momentum=None)
    in training mode, in float64; compare with the two formulas and (if present) with torch."""
    n, channels, mu, sigma2 = size.bn_n, size.channels, 1.5, 4.0
    bn = nn.BatchNorm1d(channels, momentum=None, dtype="float64")
    reference = _torch_batch_norm(channels)
    out = BatchNormChecks(n, sigma2)
    unbiased_sum = np.zeros(channels)
    for k, x in enumerate(rng.normal(mu, np.sqrt(sigma2), (size.batches, n, channels)), start=1):
        y = bn(nb.tensor(x, dtype="float64")).data
        centered = x - x.mean(axis=0)
        biased, unbiased = centered.var(axis=0), x.var(axis=0, ddof=1)
        out.output_vs_biased = max(
            out.output_vs_biased, relative_error(y, centered / np.sqrt(biased + EPS))
        )
        out.output_vs_unbiased = max(
            out.output_vs_unbiased, relative_error(y, centered / np.sqrt(unbiased + EPS))
        )
        # momentum=None: the running variance is the plain mean of the batches' estimates so far
        # (the initial value 1 gets weight 0 from the first batch on)
        out.batch_biased.append(biased)
        out.running.append(bn.running_var.data.copy())
        if reference is not None:
            y_ref, running_ref = reference(x)
            out.torch_output = max(out.torch_output or 0.0, relative_error(y, y_ref))
            out.torch_running = max(
                out.torch_running or 0.0, relative_error(bn.running_var.data, running_ref)
            )
        unbiased_sum += unbiased
        out.running_vs_unbiased = max(
            out.running_vs_unbiased, relative_error(bn.running_var.data, unbiased_sum / k)
        )
    running = out.running[-1] / sigma2  # one average of `batches` unbiased estimates per channel
    out.running_mean = float(running.mean())
    out.running_se = float(running.std(ddof=1) / np.sqrt(channels))
    return out


def _torch_batch_norm(channels: int):
    """A function batch -> (output, running_var) of torch's BatchNorm1d(momentum=None) in
    float64, or None when torch is not importable."""
    try:
        import torch
    except ImportError:
        return None
    layer = torch.nn.BatchNorm1d(channels, momentum=None, eps=EPS, dtype=torch.float64).train()

    def step(x):
        with torch.no_grad():
            y = layer(torch.from_numpy(np.ascontiguousarray(x)))
        return y.numpy(), layer.running_var.numpy().copy()

    return step


class EstimatorBias(Experiment):
    name = "estimator-bias"
    title = "The 1/n sample variance is biased by (n - 1)/n; batch norm keeps the unbiased one"
    reference = (
        "the lecture's estimator section (bias of the sample variance); Ioffe and Szegedy 2015, "
        "Batch Normalization, Algorithm 2 (the unbiased running variance)"
    )
    summary = (
        "E[s_n^2] = (n-1)/n sigma^2 by Monte Carlo; BatchNorm: 1/n to normalize, 1/(n-1) to keep"
    )
    sizes = {
        "tiny": Size((2, 4, 16), 20_000, 64, 20, 4),
        "full": Size((2, 4, 8, 16, 64), 400_000, 2000, 200, 4),
    }

    def measure(self, size: Size, seed: int) -> Results:
        rng = np.random.default_rng(seed)
        results = Results(size, monte_carlo(size, rng), batch_norm_checks(size, rng))
        for e in results.estimates:
            self.log(
                f"{e.distribution:>15} n={e.n:>3} {e.estimator:>8}: mean {e.mean:.4f} "
                f"exact {e.exact:.4f} z {e.z:+.2f}"
            )
        return results

    def verdict(self, results: Results) -> Outcome:
        size, estimates, bn = results.size, results.estimates, results.bn
        worst = max(abs(e.z) for e in estimates)
        detected = min(abs(e.z1) for e in estimates if e.estimator == "1/n")
        mc_ok = worst <= Z and detected > Z
        bn_ok = (
            bn.output_vs_biased < EXACT
            and bn.running_vs_unbiased < EXACT
            and abs(bn.running_mean - 1) <= Z * bn.running_se
        )
        torch_ok = bn.torch_output is None or (bn.torch_output < EXACT and bn.torch_running < EXACT)
        first = next(e for e in estimates if e.n == min(size.ns) and e.estimator == "1/n")
        torch_text = (
            "not importable"
            if bn.torch_output is None
            else f"matches to {max(bn.torch_output, bn.torch_running):.0e}"
        )
        return Outcome(
            claim="E[s_n^2] = (n-1)/n sigma^2 with 1/n, sigma^2 with 1/(n-1); BatchNorm normalizes "
            "with the biased variance and keeps the unbiased one as running_var",
            ours=f"{size.samples} samples per n in {list(size.ns)}, 2 distributions: every mean "
            f"within {worst:.1f} SE of its exact factor, 1/n at least {detected:.0f} SE from 1 "
            f"(n = {first.n}, 1/n: {first.mean:.4f} vs {first.exact:.4f}); BatchNorm output = "
            f"biased normalization (rel. err {bn.output_vs_biased:.0e}), running_var = unbiased "
            f"({bn.running_vs_unbiased:.0e}), its mean over {size.channels} channels "
            f"{bn.running_mean:.4f} sigma^2 +- {bn.running_se:.4f} (batch n = {bn.n}); "
            f"torch {torch_text}",
            passed=bool(mc_ok and bn_ok and torch_ok),
        )

    def report(self, page, results: Results) -> None:
        size, bn = results.size, results.bn
        page.text(
            f"Monte Carlo: {size.samples} samples of each size n in {list(size.ns)} from "
            f"{' and '.join(DISTRIBUTIONS)}; s^2 with nabla's Tensor.var(ddof=0) and var(ddof=1).",
            f"Batch norm: nn.BatchNorm1d({size.channels}, momentum=None) in float64 and training "
            f"mode, fed {size.batches} batches of size {bn.n} from N(1.5, {bn.sigma2:g}); each "
            "channel is an independent replicate.",
            f"The check, fixed before running: every Monte Carlo mean within {Z:g} standard "
            f"errors of its exact factor; BatchNorm's output equal to the biased normalization and "
            f"its running_var to the running mean of the unbiased estimates (relative error < "
            f"{EXACT:g}); the running variance's Monte Carlo mean within {Z:g} standard errors of "
            "sigma^2; and agreement with torch.nn.BatchNorm1d where torch is importable.",
        )
        page.table(
            [
                "distribution",
                "n",
                "estimator",
                "mean s^2 / sigma^2",
                "standard error",
                "exact",
                "z = (mean - exact) / se",
                "(mean - 1) / se",
            ],
            [
                [e.distribution, e.n, e.estimator, e.mean, e.se, e.exact, e.z, e.z1]
                for e in results.estimates
            ],
            caption="both estimators come from the same samples (one is n/(n-1) times the "
            "other), so their z-scores coincide",
        )
        torch_cells = (
            ["not importable"] * 2
            if bn.torch_output is None
            else [bn.torch_output, bn.torch_running]
        )
        page.table(
            ["check", "relative error"],
            [
                ["output vs (x - mean) / sqrt(biased var + eps)", bn.output_vs_biased],
                ["output vs (x - mean) / sqrt(unbiased var + eps)", bn.output_vs_unbiased],
                ["running_var vs mean of the unbiased batch variances", bn.running_vs_unbiased],
                ["output vs torch.nn.BatchNorm1d", torch_cells[0]],
                ["running_var vs torch.nn.BatchNorm1d", torch_cells[1]],
            ],
            caption="maximum over every batch and channel",
        )
        page.figure(
            mc_figure(size, results.estimates),
            "monte-carlo",
            f"Left: mean of s^2 / sigma^2 against n (bars: {Z:g} standard errors) and the "
            "exact factors. Right: the deviation from the exact factor in standard "
            "errors (the two estimators' points coincide: they come from the same samples).",
        )
        page.figure(
            bn_figure(bn),
            "batchnorm",
            "BatchNorm1d(momentum=None): the running variance (an average of unbiased "
            "batch estimates) against the average of the biased variances the batches "
            "were normalized with, over the batches seen (mean over channels, band: "
            f"{Z:g} standard errors).",
        )


def mc_figure(size: Size, estimates: list[Estimate]):
    from ..report import new_figure

    fig = new_figure((10, 3.8))
    left, right = fig.subplots(1, 2)
    grid = np.geomspace(min(size.ns), max(size.ns), 100)
    left.semilogx(grid, (grid - 1) / grid, "k-", lw=1, label="(n - 1) / n", base=2)
    left.axhline(1.0, color="k", ls="--", lw=1, label="1")
    markers = {"normal(3, 2^2)": "o", "exponential(1)": "s"}
    colors = {"1/n": "#d62728", "1/(n-1)": "#1f77b4"}
    for e in estimates:
        shift = 1.04 if e.distribution.startswith("exp") else 0.96  # side by side
        marker, color = markers[e.distribution], colors[e.estimator]
        left.errorbar(e.n * shift, e.mean, yerr=Z * e.se, fmt=marker, color=color, ms=4, capsize=2)
        right.plot(e.n * shift, e.z, marker, color=color)
    for name, marker in markers.items():
        for estimator, color in colors.items():
            left.plot([], [], marker, color=color, label=f"{estimator}, {name}")
    left.set(xlabel="sample size n", ylabel="mean of s^2 / sigma^2", title="bias of the estimators")
    left.legend(fontsize=7)
    right.set_xscale("log", base=2)
    right.axhspan(-Z, Z, color="0.9")
    right.axhline(0, color="k", lw=0.8)
    right.set(
        xlabel="sample size n",
        ylabel="(mean - exact) / standard error",
        title=f"deviation from the exact factor (band: +-{Z:g})",
        ylim=(-5, 5),
    )
    return fig


def bn_figure(bn: BatchNormChecks):
    from ..report import new_figure

    fig = new_figure((6, 3.8))
    ax = fig.add_subplot()
    running = np.array(bn.running) / bn.sigma2  # (batches, channels)
    biased = np.cumsum(np.array(bn.batch_biased), axis=0) / bn.sigma2
    biased /= np.arange(1, len(biased) + 1)[:, None]
    k = np.arange(1, len(running) + 1)
    for values, label, color in (
        (running, "running_var (unbiased, 1/(n-1))", "#1f77b4"),
        (biased, "average biased batch variance (1/n)", "#d62728"),
    ):
        mean = values.mean(axis=1)
        se = values.std(axis=1, ddof=1) / np.sqrt(values.shape[1])
        ax.semilogx(k, mean, color=color, label=label)
        ax.fill_between(k, mean - Z * se, mean + Z * se, color=color, alpha=0.2)
    n = bn.n
    ax.axhline(1.0, color="k", ls="--", lw=1, label="sigma^2")
    ax.axhline((n - 1) / n, color="k", ls=":", lw=1, label=f"(n - 1)/n sigma^2, n = {n}")
    ax.set(xlabel="batches seen", ylabel="estimate / sigma^2", title="BatchNorm1d running variance")
    ax.legend(fontsize=8)
    return fig
