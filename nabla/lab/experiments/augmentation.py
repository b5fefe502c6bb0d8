"""Data augmentation as a regularizer: lower dev error, higher training error.

Augmentation trains on a random transformation ``T(x)`` of each image, drawn anew every epoch,
instead of ``x`` itself: the model is fit to the orbit ``{T(x)}`` of every training image under
small translations and rotations, a set it cannot memorize point by point. As with any
regularizer this costs fit on the training images and buys generalization: the classic picture
is a higher training error and a lower dev error (Simard, Steinkraus and Platt 2003, on MNIST
with elastic and affine distortions; LeCun et al. 1998).

Setting: a 2,000-image stratified subset of MNIST-10k's training part (a small training set,
where augmentation matters most), LeNet-5, Adam 1e-3 with cosine decay, batches of 32, 30 epochs;
augmentation is ``nabla train --augment translate,rotate``: shifts of up to 3 pixels and
rotations of up to 15 degrees (``transforms.RandomTranslate(3)``, ``RandomRotation(15)``).
Three seeds per condition (initialization, shuffling, augmentation draws).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import nabla as nb

from ... import models, nn, optim
from ...data import DataLoader, transforms
from ...optim import schedules
from .common import EvaluateEachEpoch, classifier, seeds, splits, stratified_subset
from .framework import Experiment, Outcome

BATCH, LR, EVAL_BATCH = 32, 1e-3, 500
KEYS = ("clean", "seen", "dev", "test")  # the errors of a run; see Run
GROUPS = {"without": False, "with": True}  # augmentation


@dataclass(frozen=True)
class Size:
    data: str
    train: int  # training images
    epochs: int
    seeds: int
    shift: int  # pixels
    degrees: float


@dataclass
class Run:
    """One run: per-epoch error on the training images as they are (clean), on the augmented
    batches the optimizer saw (seen) and on dev; the final test error; the training seconds."""

    augment: bool
    seed: int
    clean: np.ndarray
    seen: np.ndarray
    dev: np.ndarray
    test: float
    time: float

    def final(self, key: str) -> float:
        return self.test if key == "test" else getattr(self, key)[-1]


@dataclass
class Results:
    size: Size
    seeds: list
    train_name: str
    lengths: tuple  # (train, dev, test) images
    examples: list  # 8 training images, then their augmented versions in epochs 0, 1, 2
    runs: list  # of Run, without augmentation first

    def stats(self) -> dict:
        """{"without"/"with": {key: (mean, std) of the final error over seeds}}."""
        return {
            name: {
                k: mean_std([r.final(k) for r in self.runs if r.augment == augment]) for k in KEYS
            }
            for name, augment in GROUPS.items()
        }


def load(size: Size):
    """(train subset, dev, test), images NCHW; digits' test split serves as dev and test."""
    train, dev, test = splits(size.data)
    return stratified_subset(train, size.train, f"{train.name} ({size.train})")[0], dev, test


def augmentation(size: Size) -> transforms.Compose:
    return transforms.Compose(
        [transforms.RandomTranslate(size.shift), transforms.RandomRotation(size.degrees)]
    )


def model_for(size: Size) -> nn.Module:
    if size.data == "mnist10k":
        return models.lenet()
    return nn.Sequential(nn.Flatten(), models.mlp([64, 64, 10]))


def train(data, size: Size, augment: bool, seed: int) -> Run:
    train_set, dev, test = data
    nb.manual_seed(seed)
    model = model_for(size)
    transform = augmentation(size) if augment else None
    loader = DataLoader(train_set, batch_size=BATCH, shuffle=True, seed=seed, transform=transform)
    lr = schedules.CosineDecay(LR, decay_steps=size.epochs * len(loader))
    clean = EvaluateEachEpoch(EVAL_BATCH, clean=train_set)  # the images without augmentation
    trainer = classifier(model, optim.Adam(model.parameters(), lr=lr), callbacks=[clean])
    dev_loader = DataLoader(dev, batch_size=EVAL_BATCH)
    history = trainer.fit(loader, epochs=size.epochs, dev=dev_loader, verbose=0)
    return Run(
        augment,
        seed,
        clean=1 - np.asarray(history["clean_accuracy"]),
        seen=1 - np.asarray(history["accuracy"]),
        dev=1 - np.asarray(history["dev_accuracy"]),
        test=1 - trainer.evaluate(DataLoader(test, batch_size=EVAL_BATCH))["accuracy"],
        time=trainer.elapsed,
    )


def spread(mean: float, std: float) -> str:
    return f"{100 * mean:.2f}% ± {100 * std:.2f}"


def mean_std(values) -> tuple[float, float]:
    """Mean and unbiased (n - 1) standard deviation."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


class Augmentation(Experiment):
    name = "augmentation"
    title = "Data augmentation: lower dev error at the cost of training error"
    reference = "Simard, Steinkraus and Platt 2003; LeCun et al. 1998"
    summary = "translations and rotations lower LeNet's dev error on 2,000 MNIST images"
    sizes = {
        "tiny": Size("digits", train=300, epochs=10, seeds=2, shift=1, degrees=15.0),
        "full": Size("mnist10k", train=2000, epochs=30, seeds=3, shift=3, degrees=15.0),
    }

    def measure(self, size: Size, seed: int) -> Results:
        data = load(size)
        lengths = tuple(map(len, data))
        shown = examples(data[0].x[:8], size, seed)
        results = Results(size, seeds(seed, size.seeds), data[0].name, lengths, shown, [])
        for augment in GROUPS.values():
            for s in results.seeds:
                r = train(data, size, augment, s)
                results.runs.append(r)
                self.log(
                    f"augment {augment!s:5} seed {s}: train {r.clean[-1]:.4f} dev "
                    f"{r.dev[-1]:.4f} test {r.test:.4f} ({r.time:.0f} s)"
                )
        return results

    def verdict(self, results: Results) -> Outcome:
        stats = results.stats()
        (dev_plain, sd_plain), (dev_aug, sd_aug) = stats["without"]["dev"], stats["with"]["dev"]
        clean, test = ({n: stats[n][k][0] for n in GROUPS} for k in ("clean", "test"))
        return Outcome(
            claim="augmentation (shifts, rotations) lowers dev error by more than the seed std, "
            "at the cost of a higher training error",
            ours=f"dev error {spread(dev_aug, sd_aug)} with vs {spread(dev_plain, sd_plain)} "
            f"without; train error {100 * clean['with']:.2f}% vs {100 * clean['without']:.2f}%; "
            f"test {100 * test['with']:.2f}% vs {100 * test['without']:.2f}%",
            passed=bool(
                dev_plain - dev_aug > max(sd_plain, sd_aug) and clean["with"] > clean["without"]
            ),
        )

    def report(self, page, results: Results) -> None:
        size, (n_train, n_dev, n_test) = results.size, results.lengths
        page.text(
            f"{'LeNet-5' if size.data == 'mnist10k' else 'A 64-64-10 MLP'} trained on {n_train} "
            f"images ({results.train_name}), Adam 1e-3 with cosine decay, batches of {BATCH}, "
            f"{size.epochs} epochs, seeds {results.seeds}; with augmentation each training image "
            f"is shifted by up to {size.shift} pixels and rotated by up to {size.degrees:g} "
            f"degrees, drawn anew each epoch. Dev: {n_dev} images; test: {n_test} images, "
            "evaluated once at the end.",
            "Check, stated before the run: the mean final dev error with augmentation is lower "
            "than without by more than the larger of the two seed standard deviations (n - 1), "
            "and the mean final error on the (unaugmented) training images is higher with "
            "augmentation.",
        )
        page.figure(
            examples_figure(results.examples),
            "examples",
            "what the network sees: training images (top row) and their augmented "
            "versions in epochs 0, 1 and 2",
        )
        page.figure(
            curves_figure(results.runs),
            "errors",
            "error against epochs, mean over seeds with the min-max band: solid dev, "
            "dashed training images as they are, dotted the augmented batches the "
            "optimizer saw",
        )
        seen = "error on the batches trained on"
        page.table(
            ["augmentation", "train error", seen, "dev error", "test error"],
            [[name, *[spread(*ms) for ms in st.values()]] for name, st in results.stats().items()],
            caption=f"final epoch, mean ± std over {len(results.seeds)} seeds",
        )
        page.table(
            ["augmentation", "seed", "train error", "dev error", "test error", "training s"],
            [
                [
                    "with" if r.augment else "without",
                    r.seed,
                    *[f"{100 * r.final(k):.2f}%" for k in ("clean", "dev", "test")],
                    round(r.time, 1),
                ]
                for r in results.runs
            ],
            caption="each run, final epoch",
        )


def examples(images: np.ndarray, size: Size, seed: int) -> list:
    """``images`` and their augmented versions in epochs 0, 1 and 2 (drawn before training, as
    the old page did, so the augmentation's first-call compilation is not in a run's time)."""
    indices = np.arange(len(images))
    rows = [images]
    for epoch in range(3):
        context = transforms.Context(seed, epoch, indices)
        rows.append(augmentation(size)(images[indices], None, context)[0])
    return rows


def examples_figure(rows: list):
    from ..report import new_figure

    fig = new_figure((8, 4.2))
    axes = fig.subplots(len(rows), len(rows[0]))
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            axes[i, j].imshow(image[0], cmap="gray_r", vmin=0, vmax=1)
            axes[i, j].set_xticks([]), axes[i, j].set_yticks([])
        axes[i, 0].set_ylabel("original" if i == 0 else f"epoch {i - 1}", fontsize=9)
    return fig


def curves_figure(runs: list):
    from ..report import new_figure

    fig = new_figure((6.6, 4.2))
    ax = fig.add_subplot()
    top = 0.0
    for (name, augment), color in zip(GROUPS.items(), ("#d62728", "#1f77b4")):
        group = [r for r in runs if r.augment == augment]
        for key, style, what in (
            ("dev", "-", "dev"),
            ("clean", "--", "train"),
            ("seen", ":", "augmented batches"),
        ):
            if key == "seen" and not augment:
                continue  # without augmentation the batches are the training images
            curves = 100 * np.stack([getattr(r, key) for r in group])
            epochs = np.arange(1, curves.shape[1] + 1)
            ax.plot(
                epochs, curves.mean(0), style, color=color, label=f"{what}, {name} augmentation"
            )
            ax.fill_between(epochs, curves.min(0), curves.max(0), color=color, alpha=0.15)
            top = max(top, curves[:, min(2, curves.shape[1] - 1) :].max())
    ax.set(
        xlabel="epoch",
        ylabel="error (%)",
        ylim=(0, top * 1.05),
        title="Training and dev error with and without augmentation",
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig
