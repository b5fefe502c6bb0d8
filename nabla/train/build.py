"""From a resolved config (see :mod:`nabla.train.config`) to the objects of a run: data,
model, optimizer with its schedule, loaders and augmentation.

Data splits never depend on the run's ``seed`` (they use seed 0), so runs that differ only in
seed see the same train, dev and test samples: the seed moves initialization, dropout, shuffling
and augmentation only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .. import models, nn, optim
from ..data import ArrayDataset, DataLoader, datasets, random_split, train_dev_split, transforms
from ..data.transforms import augment, mixing
from ..optim import registry, schedules
from . import config

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..data import Subset

SPLIT_SEED = 0
SYNTHETIC = {  # 2-D classification sets: 60% train, 20% dev, 20% test
    "spirals": lambda: datasets.spirals(n_per_class=300, classes=3, seed=SPLIT_SEED),
    "moons": lambda: datasets.moons(n=900, noise=0.2, seed=SPLIT_SEED),
    "blobs": lambda: datasets.blobs(n=900, centers=3, seed=SPLIT_SEED),
    "xor": lambda: datasets.xor(n=900, noise=0.3, seed=SPLIT_SEED),
}


@dataclass
class Data:
    train: ArrayDataset
    dev: ArrayDataset
    test: ArrayDataset
    classes: int

    @property
    def images(self) -> bool:
        return self.train.x.ndim == 4


def _materialize(subset: Subset, name: str) -> ArrayDataset:
    base, idx = subset.dataset, subset.indices
    return ArrayDataset(base.x[idx], base.y[idx], name=name)


def load_data(cfg: dict) -> Data:
    name = cfg["dataset"]
    if name == "mnist10k":
        train, dev, test = datasets.mnist10k(seed=SPLIT_SEED)
    elif name in SYNTHETIC:
        full = SYNTHETIC[name]()
        parts = random_split(full, [0.6, 0.2, 0.2], seed=SPLIT_SEED)
        train, dev, test = (
            _materialize(p, f"{name}-{s}") for p, s in zip(parts, ("train", "dev", "test"))
        )
    else:
        if name == "digits":
            full, test = datasets.digits()
        else:
            loader = {
                "mnist": datasets.mnist,
                "fashion_mnist": datasets.fashion_mnist,
                "cifar10": datasets.cifar10,
            }[name]
            full, test = loader("train"), loader("test")
        train, dev = train_dev_split(full, cfg["dev_fraction"], seed=SPLIT_SEED)
        train, dev = _materialize(train, f"{name}-train"), _materialize(dev, f"{name}-dev")
    classes = int(max(train.y.max(), test.y.max())) + 1
    return Data(train, dev, test, classes)


def build_model(cfg: dict, data: Data) -> nn.Module:
    shape = data.train.x.shape[1:]
    if cfg["model"] == "mlp":
        body = models.mlp(
            [math.prod(shape), *cfg["hidden"], data.classes],
            cfg["activation"],
            cfg["dropout"],
            cfg["batch_norm"],
        )
        return nn.Sequential(nn.Flatten(), *body) if len(shape) > 1 else body
    if cfg["model"] == "lenet":
        return models.lenet(data.classes, in_channels=shape[0], activation=cfg["activation"])
    return models.resnet(cfg["depth"], num_classes=data.classes, in_channels=shape[0])


def peak_lr(cfg: dict) -> float:
    """The peak learning rate: ``lr``, or with ``lr_batch_size`` set, the linear scaling rule
    lr x batch_size / lr_batch_size (batch_size is the global batch in distributed training)."""
    if not cfg["lr_batch_size"]:
        return cfg["lr"]
    return optim.scaling.linear_scaling_rule(cfg["lr"], cfg["batch_size"], cfg["lr_batch_size"])


def build_schedule(cfg: dict, steps_per_epoch: int) -> schedules.Schedule:
    """The learning rate as a function of the step, over ``epochs * steps_per_epoch`` updates:
    the registered schedule ``cfg["schedule"]``'s recipe for such a run (``for_run`` in
    :mod:`nabla.optim.schedules`), after the warmup."""
    plan = schedules.RunPlan(
        lr=peak_lr(cfg),
        total=cfg["epochs"] * steps_per_epoch,
        warmup=round(cfg["warmup_epochs"] * steps_per_epoch),
        steps_per_epoch=steps_per_epoch,
        decay_rate=cfg["decay_rate"],
    )
    return schedules.for_run(cfg["schedule"], plan)


def schedule_change(
    cfg: dict,
    epochs_before: int,
    lr_before: float | Callable[[int], float],
    lr_after: float | Callable[[int], float],
    step: int,
) -> str:
    """What training a run more does to its learning rate, in a sentence: the schedule
    ``lr_before`` (planned for ``epochs_before``) is planned again for ``cfg["epochs"]``
    (``lr_after``) and continues at ``step``. Schedules that do not depend on the number of
    epochs come out the same: the run goes on as one longer run."""
    epochs = cfg["epochs"]
    before, after = (float(lr(step)) if callable(lr) else lr for lr in (lr_before, lr_after))
    text = (
        f"training more: {epochs_before} -> {epochs} epochs; the {cfg['schedule']} schedule is "
        f"planned again for {epochs} epochs and continues at step {step} "
        f"(lr {before:.3g} -> {after:.3g})"
    )
    if _config(lr_before) == _config(lr_after):
        text += f": it does not depend on the epochs, so this is one {epochs}-epoch run"
    return text


def _config(lr: float | Callable[[int], float]) -> dict | float | Callable[[int], float]:
    return lr.get_config() if isinstance(lr, schedules.Schedule) else lr


def build_optimizer(cfg: dict, model: nn.Module, steps_per_epoch: int) -> optim.Optimizer:
    """The optimizer registered under ``cfg["optimizer"]`` (:mod:`nabla.optim.registry`) with its
    table of hyperparameters and the run's learning-rate schedule."""
    lr, name = build_schedule(cfg, steps_per_epoch), cfg["optimizer"]
    return registry.get(name)(model.named_parameters(), lr=lr, **cfg[name])


def build_augmentation(cfg: dict, data: Data) -> list[transforms.Transform]:
    size = data.train.x.shape[-1]
    make = {
        "translate": lambda: augment.RandomTranslate(max(1, round(size / 10))),
        "rotate": lambda: augment.RandomRotation(15),
        "scale": lambda: augment.RandomScale((0.9, 1.1)),
        "flip": lambda: augment.RandomHorizontalFlip(),
        "crop": lambda: augment.RandomCrop(size, padding=max(1, size // 8)),
        "noise": lambda: augment.GaussianNoise(0.05),
        "erase": lambda: augment.RandomErasing(p=0.5),
        "mixup": lambda: mixing.Mixup(0.2, num_classes=data.classes),
        "cutmix": lambda: mixing.CutMix(1.0, num_classes=data.classes),
    }
    return [make[name]() for name in cfg["augment"]]


def build_loaders(
    cfg: dict, data: Data, shard: tuple[int, int] | None = None
) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Training loader (shuffled, augmented, then standardized) and dev/test loaders.

    ``shard=(rank, world_size)``: the training loader gives this rank's share of every global
    batch of ``batch_size`` (world_size must divide it); dev and test stay whole on every rank."""
    per = "channel" if data.images else "feature"
    standardize = [transforms.Standardize(per=per).fit(data.train.x)] if cfg["standardize"] else []
    train_tf = build_augmentation(cfg, data) + standardize
    world = 1 if shard is None else shard[1]
    if cfg["batch_size"] % world:
        raise config.ConfigError(
            f"batch_size {cfg['batch_size']} is the global batch of all ranks: it must be a "
            f"multiple of the {world} ranks"
        )
    train = DataLoader(
        data.train,
        batch_size=cfg["batch_size"] // world,
        shuffle=True,
        seed=cfg["seed"],
        transform=transforms.Compose(train_tf) if train_tf else None,
        workers=cfg["loader_threads"],
        shard=shard,
    )
    plain = transforms.Compose(standardize) if standardize else None
    batch = max(cfg["batch_size"], 256)  # evaluation holds no graph: bigger batches are faster
    dev, test = (DataLoader(d, batch_size=batch, transform=plain) for d in (data.dev, data.test))
    return train, dev, test


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """``m[i, j]`` = number of samples of class i predicted as j."""
    return np.bincount(labels * classes + predictions, minlength=classes * classes).reshape(
        classes, classes
    )
