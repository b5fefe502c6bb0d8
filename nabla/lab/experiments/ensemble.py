"""``nabla experiment ensemble``: the average of K networks that differ only in their seed is
better than its average member (Hansen and Salamon 1990; Lakshminarayanan et al. 2017).

Setup. K LeNets are trained on MNIST-10k's 7,000 training images with the same recipe (Adam,
lr 1e-3, batch 64, a few epochs); member i's seed sets both its initialization and its data
order, nothing else differs. The ensemble predicts the mean of the members' probabilities,

    p̄(y | x) = (1/K) Σ_i p_i(y | x)        (``nn.Ensemble(members, mode="probs")``).

For every ensemble size k = 1..K every subset of k members is scored on the 2,000 test images:
error (argmax of p̄) and negative log-likelihood NLL = -(1/N) Σ_n log p̄(y_n | x_n).

Jensen's inequality, a sanity check: -log is convex, so for every example

    -log p̄(y | x) = -log((1/K) Σ_i p_i(y | x)) <= (1/K) Σ_i -log p_i(y | x),

and averaged over examples the ensemble's NLL can never exceed its members' mean NLL (equality
only where all members give the true class the same probability). The error has no such
guarantee: averaging can flip a correct majority, so that half of the claim is empirical.

The check, fixed before running: (1) the K-ensemble's test error is below the mean of its
members' errors; (2) its NLL is below the members' mean NLL; and, as sanity checks that the
measurement is right, (3) Jensen's inequality holds for every single test example and (4)
``nn.Ensemble`` returns the mean of the members' softmax outputs. Whether the ensemble also
beats its *best* member is reported, not checked ("usually", not always).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

import nabla as nb

from ... import models, nn, optim
from ...data import DataLoader
from .common import classifier, derive_seed, splits
from .framework import Experiment, Outcome


@dataclass(frozen=True)
class Size:
    dataset: str  # "mnist10k" (LeNet) or "digits" (tiny: an MLP on the embedded 8x8 digits)
    members: int
    epochs: int
    batch_size: int
    lr: float


def make_model(size: Size) -> nn.Module:
    return models.mlp([64, 64, 10]) if size.dataset == "digits" else models.lenet()


def train_member(size: Size, train, seed: int) -> nn.Module:
    """One member: the shared recipe, this member's seed for initialization and data order."""
    nb.manual_seed(seed)
    model = make_model(size)
    opt = optim.Adam(model.named_parameters(), lr=size.lr)
    loader = DataLoader(train, batch_size=size.batch_size, shuffle=True, seed=seed)
    classifier(model, opt).fit(loader, size.epochs, verbose=0)
    return model


def log_probs(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """log p(y | x) for every class, float64 (N, C), in eval mode without gradients."""
    model.eval()
    with nb.no_grad():
        logits = model(nb.tensor(x)).data.astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def ensemble_log_probs(member_log_probs: np.ndarray) -> np.ndarray:
    """log of the mean probability over the first axis (members), computed stably:
    log((1/k) Σ_i exp(l_i)) = m + log Σ_i exp(l_i - m) - log k with m = max_i l_i."""
    top = member_log_probs.max(axis=0)
    total = np.exp(member_log_probs - top).sum(axis=0)
    return top + np.log(total) - np.log(len(member_log_probs))


def scores(log_p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(error, NLL) of predictions log p (N, C) against labels y."""
    error = float(np.mean(log_p.argmax(axis=1) != y))
    nll = float(-np.mean(log_p[np.arange(len(y)), y]))
    return error, nll


def by_size(member_log_probs: np.ndarray, y: np.ndarray) -> dict:
    """{k: array (subsets, 2) of (error, NLL)} for every subset of k members, k = 1..K."""
    count = len(member_log_probs)
    return {
        k: np.array(
            [
                scores(ensemble_log_probs(member_log_probs[list(subset)]), y)
                for subset in itertools.combinations(range(count), k)
            ]
        )
        for k in range(1, count + 1)
    }


@dataclass
class Results:
    size: Size
    train: int  # training images
    y: np.ndarray  # the test labels (N,)
    member_lp: np.ndarray  # every member's log p, (K, N, C)
    member_scores: np.ndarray  # every member's test (error, NLL), (K, 2)
    ensemble: tuple[float, float]  # the K-ensemble's test (error, NLL)
    jensen: bool  # Jensen's inequality holds on every test example
    agrees: bool  # nn.Ensemble(mode="probs") returns the mean of the members' softmax outputs


class Ensemble(Experiment):
    name = "ensemble"
    title = "Ensembles: the average of K seeds beats its average member"
    reference = (
        "Hansen and Salamon 1990, Neural network ensembles (IEEE PAMI); Lakshminarayanan, "
        "Pritzel and Blundell 2017, Simple and scalable predictive uncertainty estimation using "
        "deep ensembles (NeurIPS)"
    )
    summary = (
        "K networks differing only in seed: the averaged probabilities beat the average member"
    )
    sizes = {
        "tiny": Size("digits", members=3, epochs=2, batch_size=32, lr=1e-2),
        "full": Size("mnist10k", members=5, epochs=6, batch_size=64, lr=1e-3),
    }

    def measure(self, size: Size, seed: int) -> Results:
        train, _, test = splits(size.dataset, flat=size.dataset == "digits")
        members, member_lp = [], []
        for i in range(size.members):
            members.append(train_member(size, train, derive_seed(seed, i)))
            member_lp.append(log_probs(members[-1], test.x))
            error, nll = scores(member_lp[-1], test.y)
            self.log(f"member {i + 1}/{size.members}: test error {error:.2%}, NLL {nll:.4f}")
        member_lp, y = np.stack(member_lp), test.y
        ens_lp, rows = ensemble_log_probs(member_lp), np.arange(len(y))
        # Jensen, example by example (a float64 rounding margin; the two sides differ by far more)
        jensen = bool(np.all(-ens_lp[rows, y] <= -member_lp[:, rows, y].mean(axis=0) + 1e-12))
        with nb.no_grad():
            library = nn.Ensemble(members, mode="probs")(nb.tensor(test.x)).data
        member_scores = np.array([scores(lp, y) for lp in member_lp])
        agrees = bool(np.allclose(library, np.exp(ens_lp), atol=1e-5))
        return Results(
            size, len(train), y, member_lp, member_scores, scores(ens_lp, y), jensen, agrees
        )

    def verdict(self, results: Results) -> Outcome:
        (ens_error, ens_nll), jensen = results.ensemble, results.jensen
        mean_error, mean_nll = results.member_scores.mean(axis=0)
        best_error = results.member_scores[:, 0].min()
        return Outcome(
            claim="an ensemble of K seeds has lower test error and NLL than its average member",
            ours=f"K={results.size.members}: error {ens_error:.2%} vs mean member "
            f"{mean_error:.2%} (best {best_error:.2%}); NLL {ens_nll:.4f} vs mean member "
            f"{mean_nll:.4f}; Jensen holds on every example: {'yes' if jensen else 'no'}",
            passed=bool(
                ens_error < mean_error and ens_nll < mean_nll and jensen and results.agrees
            ),
        )

    def report(self, page, results: Results) -> None:
        size, y, member_scores = results.size, results.y, results.member_scores
        model_text = "LeNet" if size.dataset == "mnist10k" else "an MLP 64-64-10"
        page.text(
            f"{size.members} copies of {model_text} are trained on the {results.train} training "
            f"images of {size.dataset} (Adam lr {size.lr:g}, batch {size.batch_size}, "
            f"{size.epochs} epochs); member i's seed alone sets its initialization and its data "
            "order. The ensemble averages the members' softmax probabilities; every subset of "
            f"every size is scored on the {len(y)} test images.",
            "Jensen's inequality: -log is convex, so -log of the mean probability of the true "
            "class is at most the mean of the members' -log probabilities, on every example; the "
            "ensemble's NLL can never exceed its members' mean NLL. The error has no such "
            "guarantee.",
            "Check, fixed before the run: the K-ensemble's error and NLL are below its members' "
            "means; sanity: Jensen holds on every test example, and nn.Ensemble returns the mean "
            "of the members' softmax outputs.",
        )
        page.figure(
            size_figure(by_size(results.member_lp, y), member_scores),
            "ensemble-size",
            "Test error and NLL against ensemble size: the mean over all subsets of that "
            "size (band: best to worst subset); dots: the single members.",
        )
        ens_error, ens_nll = results.ensemble
        named = [(f"member {i + 1}", e, n) for i, (e, n) in enumerate(member_scores)]
        named += [
            ("mean of members", *member_scores.mean(axis=0)),
            (f"ensemble of {size.members}", ens_error, ens_nll),
        ]
        table = [[name, f"{100 * e:.2f}%", f"{n:.4f}"] for name, e, n in named]
        page.table(["model", "test error", "test NLL"], table)
        predictions = results.member_lp.argmax(axis=2)
        disagree = np.any(predictions != predictions[0], axis=0)
        best = ens_error < member_scores[:, 0].min()
        page.table(
            ["sanity check", "result"],
            [
                ["Jensen on every test example", "holds" if results.jensen else "VIOLATED"],
                ["nn.Ensemble == mean of softmax", "yes" if results.agrees else "NO"],
                ["test images where members disagree", f"{int(disagree.sum())} of {len(y)}"],
                ["ensemble below the best member", "yes" if best else "no"],
            ],
        )


def size_figure(sizes: dict, member_scores: np.ndarray):
    from ..report import new_figure

    figure = new_figure((10, 4))
    k, blue, red = np.array(sorted(sizes)), "#0969da", "#cf222e"
    for i, (label, scale) in enumerate((("test error (%)", 100.0), ("test NLL (nats)", 1.0))):
        ax = figure.add_subplot(1, 2, i + 1)
        values, members = [scale * sizes[j][:, i] for j in k], scale * member_scores[:, i]
        low, high = [v.min() for v in values], [v.max() for v in values]
        ax.fill_between(k, low, high, color=blue, alpha=0.15, lw=0, label="best to worst subset")
        ax.plot(k, [v.mean() for v in values], "o-", color=blue, label="mean over subsets")
        ax.plot(np.ones(len(members)), members, "o", color=red, alpha=0.6, label="single members")
        ax.axhline(members.mean(), color=red, linestyle="--", linewidth=1, label="mean member")
        ax.set(xlabel="ensemble size k", ylabel=label, xticks=k)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle("averaging the probabilities of networks that differ only in seed")
    return figure
