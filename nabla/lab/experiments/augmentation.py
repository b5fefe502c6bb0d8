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
from nabla import models, nn, optim
from nabla.data import ArrayDataset, DataLoader, datasets, transforms
from nabla.data.datasets import stratified_indices
from nabla.optim import schedules
from nabla.train import Trainer, callbacks

from . import Outcome

NAME = "augmentation"
TITLE = "Data augmentation: lower dev error at the cost of training error"
REFERENCE = "Simard, Steinkraus and Platt 2003; LeCun et al. 1998"
SUMMARY = "translations and rotations lower LeNet's dev error on 2,000 MNIST images"


@dataclass(frozen=True)
class Setting:
    data: str
    train_size: int
    epochs: int
    seeds: int
    shift: int  # pixels
    degrees: float


SETTINGS = {
    "full": Setting("mnist10k", 2000, 30, 3, 3, 15.0),
    "tiny": Setting("digits", 300, 10, 2, 1, 15.0),
}


def load(cfg: Setting):
    """(train subset, dev, test), images NCHW: a stratified ``train_size`` subset of the train
    part (always rng 0, so every seed sees the same images)."""
    if cfg.data == "mnist10k":
        train, dev, test = datasets.mnist10k(seed=0)
    else:  # the tiny run: digits' test split serves as both dev and test
        train, dev = datasets.digits()
        test = dev
    keep = stratified_indices(
        train.y, [cfg.train_size, len(train) - cfg.train_size], np.random.default_rng(0)
    )[0]
    return (
        ArrayDataset(train.x[keep], train.y[keep], name=f"{train.name} ({cfg.train_size})"),
        dev,
        test,
    )


def augmentation(cfg: Setting) -> transforms.Compose:
    return transforms.Compose(
        [transforms.RandomTranslate(cfg.shift), transforms.RandomRotation(cfg.degrees)]
    )


def model_for(cfg: Setting) -> nn.Module:
    if cfg.data == "mnist10k":
        return models.lenet()
    return nn.Sequential(nn.Flatten(), models.mlp([64, 64, 10]))


class CleanTrainError(callbacks.Callback):
    """After each epoch: the error on the training images as they are (no augmentation)."""

    def __init__(self, loader: DataLoader):
        self.loader, self.errors = loader, []

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        self.errors.append(1 - trainer.evaluate(self.loader)["accuracy"])


def train(data, cfg: Setting, augment: bool, seed: int) -> dict:
    """One run; per-epoch clean-train, augmented-train and dev errors, and the final test error."""
    train_set, dev, test = data
    nb.manual_seed(seed)
    model = model_for(cfg)
    loader = DataLoader(
        train_set,
        batch_size=32,
        shuffle=True,
        seed=seed,
        transform=augmentation(cfg) if augment else None,
    )
    lr = schedules.CosineDecay(1e-3, decay_steps=cfg.epochs * len(loader))
    clean = CleanTrainError(DataLoader(train_set, batch_size=500))
    trainer = Trainer(
        model,
        nn.CrossEntropyLoss(),
        optim.Adam(model.parameters(), lr=lr),
        metrics=["accuracy"],
        callbacks=[clean],
    )
    history = trainer.fit(loader, epochs=cfg.epochs, dev=DataLoader(dev, batch_size=500), verbose=0)
    return dict(
        augment=augment,
        seed=seed,
        clean=np.asarray(clean.errors),
        seen=1 - np.asarray(history["accuracy"]),
        dev=1 - np.asarray(history["dev_accuracy"]),
        test=1 - trainer.evaluate(DataLoader(test, batch_size=500))["accuracy"],
        time=trainer.elapsed,
    )


def mean_std(values) -> tuple[float, float]:
    """Mean and unbiased (n - 1) standard deviation."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def run(out, size: str = "full", seed: int = 0, verbose: bool = True) -> Outcome:
    from nabla.lab.report import LabReport

    cfg = SETTINGS[size]
    data = load(cfg)
    seeds = [seed + k for k in range(cfg.seeds)]
    report = LabReport(out, TITLE, subtitle=f"{REFERENCE}; {data[0].name}, size {size}")
    report.text(
        f"{'LeNet-5' if cfg.data == 'mnist10k' else 'A 64-64-10 MLP'} trained on {len(data[0])} "
        f"images ({data[0].name}), Adam 1e-3 with cosine decay, batches of 32, {cfg.epochs} "
        f"epochs, seeds {seeds}; with augmentation each training image is shifted by up to "
        f"{cfg.shift} pixels and rotated by up to {cfg.degrees:g} degrees, drawn anew each epoch. "
        f"Dev: {len(data[1])} images; test: {len(data[2])} images, evaluated once at the end.",
        "Check, stated before the run: the mean final dev error with augmentation is lower than "
        "without by more than the larger of the two seed standard deviations (n - 1), and the "
        "mean final error on the (unaugmented) training images is higher with augmentation.",
    )
    report.figure(
        _examples_figure(data[0], cfg, seed),
        "examples",
        "what the network sees: training images (top row) and their augmented "
        "versions in epochs 0, 1 and 2",
    )
    runs = []
    for augment in (False, True):
        for s in seeds:
            r = train(data, cfg, augment, s)
            runs.append(r)
            if verbose:
                print(
                    f"augment {augment!s:5} seed {s}: train {r['clean'][-1]:.4f} dev "
                    f"{r['dev'][-1]:.4f} test {r['test']:.4f} ({r['time']:.0f} s)"
                )
    plain = [r for r in runs if not r["augment"]]
    aug = [r for r in runs if r["augment"]]
    stats = {}
    for name, group in (("without", plain), ("with", aug)):
        stats[name] = {
            k: mean_std([r[k][-1] if k != "test" else r[k] for r in group])
            for k in ("clean", "seen", "dev", "test")
        }
    report.figure(
        _curves_figure(plain, aug),
        "errors",
        "error against epochs, mean over seeds with the min-max band: solid dev, "
        "dashed training images as they are, dotted the augmented batches the "
        "optimizer saw",
    )
    report.table(
        [
            "augmentation",
            "train error",
            "error on the batches trained on",
            "dev error",
            "test error",
        ],
        [
            [name, *[f"{100 * m:.2f}% ± {100 * s:.2f}" for m, s in st.values()]]
            for name, st in stats.items()
        ],
        caption=f"final epoch, mean ± std over {len(seeds)} seeds",
    )
    report.table(
        ["augmentation", "seed", "train error", "dev error", "test error", "training s"],
        [
            [
                "with" if r["augment"] else "without",
                r["seed"],
                *[f"{100 * e:.2f}%" for e in (r["clean"][-1], r["dev"][-1], r["test"])],
                round(r["time"], 1),
            ]
            for r in runs
        ],
        caption="each run, final epoch",
    )
    (dev_plain, sd_plain), (dev_aug, sd_aug) = stats["without"]["dev"], stats["with"]["dev"]
    lower = dev_plain - dev_aug > max(sd_plain, sd_aug)
    costlier = stats["with"]["clean"][0] > stats["without"]["clean"][0]
    outcome = Outcome(
        claim="augmentation (shifts, rotations) lowers dev error by more than the seed std, at "
        "the cost of a higher training error",
        ours=f"dev error {100 * dev_aug:.2f}% ± {100 * sd_aug:.2f} with vs {100 * dev_plain:.2f}% "
        f"± {100 * sd_plain:.2f} without; train error {100 * stats['with']['clean'][0]:.2f}% vs "
        f"{100 * stats['without']['clean'][0]:.2f}%; test {100 * stats['with']['test'][0]:.2f}% "
        f"vs {100 * stats['without']['test'][0]:.2f}%",
        passed=bool(lower and costlier),
    )
    report.outcome(outcome.line(), outcome.passed)
    report.write()
    return outcome


def _examples_figure(train_set: ArrayDataset, cfg: Setting, seed: int):
    from nabla.lab.report import new_figure

    indices = np.arange(8)
    rows = [train_set.x[indices]]
    for epoch in range(3):
        x, _ = augmentation(cfg)(
            train_set.x[indices], None, transforms.Context(seed, epoch, indices)
        )
        rows.append(x)
    fig = new_figure((8, 4.2))
    axes = fig.subplots(len(rows), len(indices))
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            axes[i, j].imshow(image[0], cmap="gray_r", vmin=0, vmax=1)
            axes[i, j].set_xticks([]), axes[i, j].set_yticks([])
        axes[i, 0].set_ylabel("original" if i == 0 else f"epoch {i - 1}", fontsize=9)
    return fig


def _curves_figure(plain: list, aug: list):
    from nabla.lab.report import new_figure

    fig = new_figure((6.6, 4.2))
    ax = fig.add_subplot()
    top = 0.0
    for group, color, name in ((plain, "#d62728", "without"), (aug, "#1f77b4", "with")):
        for key, style, what in (
            ("dev", "-", "dev"),
            ("clean", "--", "train"),
            ("seen", ":", "augmented batches"),
        ):
            if key == "seen" and name == "without":
                continue  # without augmentation the batches are the training images
            curves = 100 * np.stack([r[key] for r in group])
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
