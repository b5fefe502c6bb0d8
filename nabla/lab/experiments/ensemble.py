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
import time
from dataclasses import dataclass

import numpy as np

import nabla as nb
from nabla import models, nn, optim
from nabla.data import DataLoader, datasets
from nabla.train import Trainer

from . import Outcome

NAME = "ensemble"
TITLE = "Ensembles: the average of K seeds beats its average member"
REFERENCE = (
    "Hansen and Salamon 1990, Neural network ensembles (IEEE PAMI); Lakshminarayanan, Pritzel "
    "and Blundell 2017, Simple and scalable predictive uncertainty estimation using deep "
    "ensembles (NeurIPS)"
)
SUMMARY = "K networks differing only in seed: the averaged probabilities beat the average member"


@dataclass(frozen=True)
class Setup:
    dataset: str  # "mnist10k" (LeNet) or "digits" (tiny: an MLP on the embedded 8x8 digits)
    members: int
    epochs: int
    batch_size: int
    lr: float


SETUPS = {
    "tiny": Setup("digits", 3, 2, 32, 1e-2),
    "full": Setup("mnist10k", 5, 6, 64, 1e-3),
}


def member_seed(seed: int, i: int) -> int:
    """Member i's seed: independent streams for init and data order, one per (seed, i)."""
    return int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


def load(setup: Setup):
    if setup.dataset == "digits":
        train, test = datasets.digits(flatten=True)
    else:
        train, _, test = datasets.mnist10k(seed=0)
    return train, test


def make_model(setup: Setup) -> nn.Module:
    return models.mlp([64, 64, 10]) if setup.dataset == "digits" else models.lenet()


def train_member(setup: Setup, train, seed: int) -> nn.Module:
    """One member: the shared recipe, this member's seed for initialization and data order."""
    nb.manual_seed(seed)
    model = make_model(setup)
    opt = optim.Adam(model.named_parameters(), lr=setup.lr)
    loader = DataLoader(train, batch_size=setup.batch_size, shuffle=True, seed=seed)
    Trainer(model, nn.CrossEntropyLoss(), opt).fit(loader, setup.epochs, verbose=0)
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


def run(out, size: str = "full", seed: int = 0, verbose: bool = True) -> Outcome:
    from ..report import LabReport

    setup = SETUPS[size]
    start = time.perf_counter()
    train, test = load(setup)
    members, member_lp = [], []
    for i in range(setup.members):
        model = train_member(setup, train, member_seed(seed, i))
        members.append(model)
        member_lp.append(log_probs(model, test.x))
        if verbose:
            error, nll = scores(member_lp[-1], test.y)
            print(f"member {i + 1}/{setup.members}: test error {error:.2%}, NLL {nll:.4f}")
    member_lp = np.stack(member_lp)  # (K, N, C)
    wall = time.perf_counter() - start

    y, rows = test.y, np.arange(len(test.y))
    member_scores = np.array([scores(lp, y) for lp in member_lp])  # (K, 2)
    ens_lp = ensemble_log_probs(member_lp)
    ens_error, ens_nll = scores(ens_lp, y)
    mean_error, mean_nll = member_scores.mean(axis=0)
    best_error = member_scores[:, 0].min()
    # Jensen, example by example (a float64 rounding margin; the two sides differ by far more)
    jensen = bool(np.all(-ens_lp[rows, y] <= -member_lp[:, rows, y].mean(axis=0) + 1e-12))
    with nb.no_grad():
        library = nn.Ensemble(members, mode="probs")(nb.tensor(test.x)).data
    agrees = bool(np.allclose(library, np.exp(ens_lp), atol=1e-5))
    sizes = by_size(member_lp, y)

    error_wins, nll_wins = ens_error < mean_error, ens_nll < mean_nll
    passed = error_wins and nll_wins and jensen and agrees
    size_k = setup.members
    claim = "an ensemble of K seeds has lower test error and NLL than its average member"
    ours = (
        f"K={size_k}: error {ens_error:.2%} vs mean member {mean_error:.2%} "
        f"(best {best_error:.2%}); "
        f"NLL {ens_nll:.4f} vs mean member {mean_nll:.4f}; Jensen holds on every example: "
        f"{'yes' if jensen else 'no'}"
    )
    outcome = Outcome(claim, ours, passed)

    page = LabReport(out, TITLE, subtitle=REFERENCE)
    model_text = "LeNet" if setup.dataset == "mnist10k" else "an MLP 64-64-10"
    page.text(
        f"{size_k} copies of {model_text} are trained on the {len(train)} training images of "
        f"{setup.dataset} (Adam lr {setup.lr:g}, batch {setup.batch_size}, {setup.epochs} "
        f"epochs); member i's seed alone sets its initialization and its data order. The "
        f"ensemble averages the members' softmax probabilities; every subset of every size is "
        f"scored on the {len(test)} test images.",
        "Jensen's inequality: -log is convex, so -log of the mean probability of the true class "
        "is at most the mean of the members' -log probabilities, on every example; the "
        "ensemble's NLL can never exceed its members' mean NLL. The error has no such "
        "guarantee.",
        "Check, fixed before the run: the K-ensemble's error and NLL are below its members' "
        "means; sanity: Jensen holds on every test example, and nn.Ensemble returns the mean "
        "of the members' softmax outputs.",
    )
    page.figure(
        size_figure(sizes, member_scores),
        "ensemble-size",
        "Test error and NLL against ensemble size: the mean over all subsets of that "
        "size (band: best to worst subset); dots: the single members.",
    )
    named = [(f"member {i + 1}", e, n) for i, (e, n) in enumerate(member_scores)]
    named += [
        ("mean of members", mean_error, mean_nll),
        (f"ensemble of {size_k}", ens_error, ens_nll),
    ]
    table = [[name, f"{100 * e:.2f}%", f"{n:.4f}"] for name, e, n in named]
    page.table(["model", "test error", "test NLL"], table)
    disagree = np.any(member_lp.argmax(axis=2) != member_lp[0].argmax(axis=1), axis=0)
    page.table(
        ["sanity check", "result"],
        [
            ["Jensen on every test example", "holds" if jensen else "VIOLATED"],
            ["nn.Ensemble == mean of softmax", "yes" if agrees else "NO"],
            ["test images where members disagree", f"{int(disagree.sum())} of {len(y)}"],
            ["ensemble below the best member", "yes" if ens_error < best_error else "no"],
        ],
    )
    page.text(f"Wall time: {wall:.1f} s.")
    page.outcome(outcome.line(), outcome.passed)
    page.write()
    return outcome


def size_figure(sizes: dict, member_scores: np.ndarray):
    from ..report import new_figure

    figure = new_figure((10, 4))
    k = np.array(sorted(sizes))
    for ax, column, label, scale in (
        (figure.add_subplot(1, 2, 1), 0, "test error (%)", 100.0),
        (figure.add_subplot(1, 2, 2), 1, "test NLL (nats)", 1.0),
    ):
        values = [scale * sizes[j][:, column] for j in k]
        ax.fill_between(
            k,
            [v.min() for v in values],
            [v.max() for v in values],
            color="#0969da",
            alpha=0.15,
            linewidth=0,
            label="best to worst subset",
        )
        ax.plot(k, [v.mean() for v in values], "o-", color="#0969da", label="mean over subsets")
        ax.plot(
            np.ones(len(member_scores)),
            scale * member_scores[:, column],
            "o",
            color="#cf222e",
            alpha=0.6,
            label="single members",
        )
        ax.axhline(
            scale * member_scores[:, column].mean(),
            color="#cf222e",
            linestyle="--",
            linewidth=1,
            label="mean member",
        )
        ax.set(xlabel="ensemble size k", ylabel=label, xticks=k)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle("averaging the probabilities of networks that differ only in seed")
    return figure
