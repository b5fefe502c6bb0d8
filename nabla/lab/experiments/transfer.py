"""``nabla experiment transfer``: a frozen pretrained body beats training from scratch when the
target task has few labels (Yosinski et al. 2014; the course's transfer-learning lecture).

Setup. The *source* task is to tell apart the digits 0-4 of MNIST-10k's training split; LeNet's
convolutional feature extractor (conv5x5(6) - pool - conv5x5(16) - pool, 400 features) is the
``body``, trained with a linear 5-way head on all of it. Yosinski et al. found the first layers of
a convnet general and the top ones specialized to their task, so the body is the convolutional
part (in a pilot, an MLP's hidden layers pretrained on 0-4 transferred worse than training from
scratch at every n: they are specialized). The *target* task is the digits 5-9 with only ``n``
labeled examples per class, drawn from the training split; error is measured on every 5-9 of the
test split. For each ``n`` and each of several draws of the small labeled set, three models with
the same architecture are trained with the same budget (a fixed number of Adam updates, no early
stopping: with a handful of labels there is no dev set):

- ``scratch``: random initialization, every parameter trains;
- ``frozen``: the pretrained body with ``requires_grad_(False)`` and a new random head; only the
  head trains (logistic regression on the pretrained features);
- ``fine-tune``: the pretrained body and a new head, all trainable, the body at a 10x smaller
  learning rate (shown for context; not part of the verdict).

The check, fixed before running: (1) at every n <= 10 the frozen body's mean test error is lower
than from scratch; (2) the gap (scratch error - frozen error) at the largest n is smaller than at
the smallest n (the advantage fades as labels grow); (3) in every frozen run the body's
parameters are bitwise identical before and after training, never got a gradient, and the
optimizer, although handed every parameter of the model, holds buffers and state only for the
head's. ``size="tiny"`` runs the same code on the embedded 8x8 digits with a one-conv body.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import nabla as nb

from ... import models, nn, optim
from ...data import ArrayDataset, DataLoader
from .common import classifier, derive_seed, splits
from .framework import Experiment, Outcome

SOURCE, TARGET = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)
METHODS = ("scratch", "frozen", "fine-tune")
FEW = 10  # "few labels": the claim is checked at every n <= FEW examples per class


@dataclass(frozen=True)
class Size:
    dataset: str  # "mnist10k" (full) or "digits" (tiny, embedded)
    pretrain_epochs: int
    shots: tuple  # labeled target examples per class
    repeats: int  # draws of the small labeled set per n
    steps: int  # Adam updates of every target run
    batch_size: int
    lr: float  # Adam's lr for the source run, the scratch run and every head
    body_lr: float  # the body's lr when fine-tuning


def load(size: Size) -> dict:
    """Images: source (digits 0-4) train/test, target (5-9, labels 0-4) pool/test."""
    train, _, test = splits(size.dataset)
    parts = {}
    for task, classes in (("source", SOURCE), ("target", TARGET)):
        for split, ds in (("train", train), ("test", test)):
            keep = np.isin(ds.y, classes)
            parts[task, split] = ArrayDataset(
                ds.x[keep], ds.y[keep] - classes[0], f"{task} {split}"
            )
    return parts


def make_body(side: int) -> tuple[nn.Sequential, int]:
    """The transferable part and its output width: LeNet's convolutional feature extractor for
    28x28 images (``models.lenet()`` up to its flatten), one conv3x3(6) - pool for 8x8."""
    if side == 28:
        return models.lenet()[:7], 16 * 5 * 5
    if side == 8:
        return nn.Sequential(
            nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()
        ), 6 * 4 * 4
    raise ValueError(f"transfer: no body for {side}x{side} images (28 or 8)")


def body_text(side: int) -> str:
    """The body of :func:`make_body`, in words for the report."""
    if side == 28:
        return (
            "LeNet's feature extractor (conv5x5(6, pad 2) - ReLU - max pool - conv5x5(16) - "
            "ReLU - max pool, 400 features)"
        )
    return "conv3x3(6, pad 1) - ReLU - max pool (96 features)"


def make_model(side: int, classes: int = 5) -> nn.Sequential:
    """``model[0]`` is the body, ``model[1]`` the linear head."""
    body, width = make_body(side)
    return nn.Sequential(body, nn.Linear(width, classes))


def few_shot(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` examples of every class of ``labels``, drawn without replacement."""
    picks = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < n:
            raise ValueError(f"few_shot: class {c} has {len(members)} examples, {n} requested")
        picks.append(rng.choice(members, size=n, replace=False))
    return np.sort(np.concatenate(picks))


def fit(model, opt, train: ArrayDataset, steps: int, batch_size: int, seed: int, test=None):
    """About ``steps`` Adam updates on ``train`` with the Trainer; the test error if ``test``."""
    batch = min(batch_size, len(train))
    epochs = math.ceil(steps / math.ceil(len(train) / batch))
    trainer = classifier(model, opt)
    trainer.fit(DataLoader(train, batch_size=batch, shuffle=True, seed=seed), epochs, verbose=0)
    if test is None:
        return None
    return 1.0 - trainer.evaluate(DataLoader(test, batch_size=1000))["accuracy"]


def pretrain(size: Size, parts: dict, seed: int) -> tuple[dict, float]:
    """Train body + source head on the source task; the body's weights (copies) and test error."""
    nb.manual_seed(derive_seed(seed, 0))
    train, test = parts["source", "train"], parts["source", "test"]
    model = make_model(train.x.shape[-1])
    opt = optim.Adam(model.named_parameters(), lr=size.lr)
    steps = size.pretrain_epochs * math.ceil(len(train) / 64)
    error = fit(model, opt, train, steps, 64, derive_seed(seed, 1), test)
    return {k: v.data.copy() for k, v in model[0].state_dict().items()}, error


def frozen_checks(body: nn.Module, before: dict, opt, head: nn.Module) -> dict:
    """The three properties a frozen body must have after training (True = holds)."""
    after = body.state_dict()
    head_names = {f"1.{name}" for name, _ in head.named_parameters()}
    head_size = sum(p.data.size for p in head.parameters())
    return {
        # bytes, not values: -0.0 == 0.0 and NaN != NaN would hide or invent a change
        "body bitwise unchanged": all(
            after[k].data.dtype == v.dtype and after[k].data.tobytes() == v.tobytes()
            for k, v in before.items()
        ),
        "body got no gradient": all(p.grad is None for p in body.parameters()),
        "optimizer state only for the head": set(opt.state_dict()["state"]) == head_names,
        "flat buffer holds only the head": sum(v.size for v in opt.parameter_vectors())
        == head_size,
    }


def train_target(method: str, body_state: dict, size: Size, train, test, seed: int):
    """Train one target model; returns (test error, frozen checks or None)."""
    if method not in METHODS:
        raise ValueError(f"transfer: method must be one of {METHODS}, got {method!r}")
    nb.manual_seed(seed)  # the same seed builds the same head for every method
    model = make_model(train.x.shape[-1])
    body, head = model[0], model[1]
    if method != "scratch":
        body.load_state_dict(body_state)
    if method == "frozen":
        body.requires_grad_(False)
    if method == "fine-tune":
        params = [
            {"params": [(f"0.{n}", p) for n, p in body.named_parameters()], "lr": size.body_lr},
            {"params": [(f"1.{n}", p) for n, p in head.named_parameters()]},
        ]
    else:  # every parameter, frozen ones included: the optimizer must skip those itself
        params = model.named_parameters()
    opt = optim.Adam(params, lr=size.lr)
    error = fit(model, opt, train, size.steps, size.batch_size, seed, test)
    checks = frozen_checks(body, body_state, opt, head) if method == "frozen" else None
    return error, checks


@dataclass
class Results:
    size: Size
    source_train: int  # training images of the source task
    source_error: float  # the pretrained model's test error on the source task
    test: int  # test images of the target task
    body: dict  # the pretrained body's weights
    first_set: tuple  # (images, labels): the labeled set of the first draw at the smallest n
    errors: dict  # method -> target test errors, (len(shots), repeats)
    checks: dict  # frozen check -> held in every frozen run

    @property
    def side(self) -> int:
        """The images' side, 28 or 8."""
        return self.first_set[0].shape[-1]

    @property
    def mean(self) -> dict:
        return {m: e.mean(axis=1) for m, e in self.errors.items()}

    @property
    def gap(self) -> np.ndarray:
        """scratch - frozen mean error, per n."""
        return self.mean["scratch"] - self.mean["frozen"]


class Transfer(Experiment):
    name = "transfer"
    title = "Transfer learning: a frozen pretrained body against training from scratch"
    reference = (
        "Yosinski, Clune, Bengio and Lipson 2014, How transferable are features in deep neural "
        "networks? (NeurIPS); the course's transfer-learning lecture"
    )
    summary = "pretrain on digits 0-4; with few labeled 5-9s a frozen body + new head beats scratch"
    sizes = {
        "tiny": Size("digits", 10, (2, 10), 1, 40, 32, 1e-2, 1e-3),
        "full": Size("mnist10k", 8, (1, 3, 10, 30, 100, 300), 4, 300, 32, 1e-3, 1e-4),
    }

    def measure(self, size: Size, seed: int) -> Results:
        parts = load(size)
        body, source_error = pretrain(size, parts, seed)
        self.log(f"pretrained on digits 0-4: source test error {source_error:.2%}")
        pool, test = parts["target", "train"], parts["target", "test"]
        errors = {m: np.zeros((len(size.shots), size.repeats)) for m in METHODS}
        checks: dict[str, bool] = {}
        for i, n in enumerate(size.shots):
            for r in range(size.repeats):
                rng = np.random.default_rng(derive_seed(seed, 2, n, r))
                small = pool.batch(few_shot(pool.y, n, rng))
                train = ArrayDataset(*small, name=f"target {n}-shot")
                if i == r == 0:
                    first_set = small
                for method in METHODS:
                    error, frozen = train_target(
                        method, body, size, train, test, derive_seed(seed, 3, n, r)
                    )
                    errors[method][i, r] = error
                    for key, held in (frozen or {}).items():
                        checks[key] = checks.get(key, True) and held
            self.log(
                f"n = {n:>3} per class: "
                + "  ".join(f"{m} {errors[m][i].mean():.2%}" for m in METHODS)
            )
        sources = len(parts["source", "train"])
        return Results(size, sources, source_error, len(test), body, first_set, errors, checks)

    def verdict(self, results: Results) -> Outcome:
        shots, mean, gap = np.array(results.size.shots), results.mean, results.gap
        beats = bool(np.all(gap[shots <= FEW] > 0))
        closes = bool(gap[-1] < gap[0])
        intact = bool(results.checks) and all(results.checks.values())
        return Outcome(
            claim="with few labels a frozen pretrained body + new head beats training from "
            "scratch, and the gap closes as labels grow",
            ours=f"error at n={shots[0]}/class frozen {mean['frozen'][0]:.1%} vs scratch "
            f"{mean['scratch'][0]:.1%}; frozen wins at every n<={FEW}: "
            f"{'yes' if beats else 'no'}; gap {100 * gap[0]:+.1f} pts at n={shots[0]} -> "
            f"{100 * gap[-1]:+.1f} pts at n={shots[-1]}; frozen body bitwise unchanged, no "
            f"optimizer state: {'yes' if intact else 'no'}",
            passed=beats and closes and intact,
        )

    def report(self, page, results: Results) -> None:
        size, shots, errors = results.size, np.array(results.size.shots), results.errors
        page.text(
            f"Source task: digits 0-4 of {size.dataset} ({results.source_train} training "
            f"images); the body is {body_text(results.side)}, trained with a linear 5-way head "
            f"(Adam lr {size.lr:g}, {size.pretrain_epochs} epochs of batch 64): source test "
            f"error {results.source_error:.2%}. Target models have the same architecture: body "
            "+ linear head. The body is the convolutional part because Yosinski et al. found a "
            "convnet's first layers general and its top layers specialized; in a pilot, an MLP's "
            "hidden layers pretrained on 0-4 transferred worse than training from scratch at "
            "every n.",
            f"Target task: digits 5-9 with n labeled examples per class, drawn from the training "
            f"split ({size.repeats} draws per n); test error on all {results.test} test images "
            f"of 5-9. Every target model gets about {size.steps} Adam updates (batch "
            f"{size.batch_size} or the whole set if smaller, lr {size.lr:g}) and no early "
            "stopping, since a few labels leave nothing for a dev set. Fine-tuning trains the "
            f"body at lr {size.body_lr:g}.",
            f"Check, fixed before the run: the frozen body's mean error is below scratch at every "
            f"n <= {FEW}; the gap scratch - frozen is smaller at the largest n than at the "
            "smallest; and in every frozen run the body is bitwise unchanged, got no gradient, "
            "and the optimizer (built from every parameter of the model) holds state only for "
            "the head.",
        )
        page.figure(
            error_figure(shots, errors),
            "transfer-error",
            "Target test error against labeled examples per class (mean over draws, band: "
            "min to max; log scales). Right: the frozen body's advantage over scratch, the "
            "mean and each draw (both trained on the same labeled set).",
        )
        page.figure(
            body_figure(results.body, results.first_set),
            "transfer-body",
            f"Top: the whole labeled training set of the first n = {shots[0]} draw. Bottom: "
            "the first convolution's filters after pretraining on 0-4, which the frozen "
            "body applies unchanged to 5-9.",
        )
        paired = errors["scratch"] - errors["frozen"]  # per draw: same labeled set, same head seed
        few = shots <= FEW
        page.text(
            f"Paired over draws, the frozen body beat scratch in {int((paired[few] > 0).sum())} "
            f"of {paired[few].size} runs with n <= {FEW}; the draw-to-draw spread of the error "
            f"(the bands) is larger than the mean gap at small n, so the mean over "
            f"{size.repeats} draws decides the verdict."
        )
        rows = [
            [
                int(n),
                *(f"{100 * results.mean[m][i]:.2f}%" for m in METHODS),
                f"{100 * results.gap[i]:+.2f}",
                f"{int((paired[i] > 0).sum())} of {size.repeats}",
            ]
            for i, n in enumerate(shots)
        ]
        header = ["n per class", *[f"{m} error" for m in METHODS], "scratch - frozen (pts)"]
        page.table(
            [*header, "frozen better in"],
            rows,
            caption=f"Mean target test error over {size.repeats} draws of the labeled set.",
        )
        page.table(
            ["check on every frozen run", "holds"],
            [[k, "yes" if v else "NO"] for k, v in results.checks.items()],
        )


def error_figure(shots, errors: dict):
    from ..report import new_figure

    figure = new_figure((10, 4))
    left, right = figure.subplots(1, 2)
    colors = {"scratch": "#cf222e", "frozen": "#0969da", "fine-tune": "#8250df"}
    xlabel, green = "labeled target examples per class", "#1a7f37"
    for method, e in errors.items():
        low, high, color = 100 * e.min(axis=1), 100 * e.max(axis=1), colors[method]
        left.plot(shots, 100 * e.mean(axis=1), "o-", color=color, label=method)
        left.fill_between(shots, low, high, color=color, alpha=0.15, linewidth=0)
    left.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="target test error (%)")
    left.set_title("digits 5-9 after pretraining on 0-4")
    left.legend()
    paired = 100 * (errors["scratch"] - errors["frozen"])
    for r in range(paired.shape[1]):
        label = "each draw" if r == 0 else None
        right.plot(shots, paired[:, r], "o", color=green, alpha=0.35, markersize=4, label=label)
    right.plot(shots, paired.mean(axis=1), "o-", color=green, label="mean over draws")
    right.axhline(0, color="black", linewidth=0.8)
    right.axvspan(shots[0], FEW, color=green, alpha=0.08, label=f"n <= {FEW}: claim checked")
    right.set(xscale="log", xlabel=xlabel, ylabel="scratch error - frozen error (points)")
    right.set_title("the advantage of transfer")
    right.legend()
    lowest = 100 * min(e.min() for e in errors.values())
    ticks = [t for t in (1, 2, 5, 10, 20, 50, 100) if lowest / 2 <= t]
    left.set_yticks(ticks, [str(t) for t in ticks])
    for ax in (left, right):
        ax.set_xticks(shots, [str(n) for n in shots])
        ax.grid(alpha=0.3)
    return figure


def body_figure(body_state: dict, labeled: tuple):
    from ..report import new_figure

    images, labels = labeled
    filters = body_state["0.weight"][:, 0]
    columns = max(len(images), len(filters))
    figure = new_figure((1.3 * columns, 3.0))
    axes = figure.subplots(2, columns, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for k, (image, label) in enumerate(zip(images, labels)):
        axes[0, k].imshow(image[0], cmap="gray_r")
        axes[0, k].set_title(f"label {int(label) + TARGET[0]}", fontsize=9)
    for k, w in enumerate(filters):
        limit = float(np.abs(w).max()) or 1.0
        axes[1, k].imshow(w, cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes[1, k].set_title(f"conv1 filter {k}", fontsize=9)
    figure.suptitle("the labeled target set (top) and the pretrained first filters (red +, blue -)")
    return figure
